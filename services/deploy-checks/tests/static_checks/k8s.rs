//! `deploy/k8s/`: Deployments whose environment (image defaults, ConfigMaps, the example
//! Secret, `env`) loads into the services' settings; ports, probes and selectors that meet;
//! a grace period that covers the drain; locked-down pods; a kustomization that lists it
//! all.

use crate::Problems;
use crate::formats::{entries, items, scalar, str_at, u64_at};
use crate::image::image_env;
use crate::repo::{K8S_DIR, K8sObject, KUSTOMIZATION, Repo};
use crate::services::{Component, Facts, IMAGE_REPOSITORY, image_target, listens_on_all_interfaces, load};
use serde_yaml::Value;
use std::collections::{BTreeMap, BTreeSet};

// A file included by `#[path]` counts as a `mod.rs`: its modules need a path too.
#[cfg(test)]
#[path = "k8s/tests.rs"]
mod tests;
#[path = "k8s/wiring.rs"]
mod wiring;
#[path = "k8s/workloads.rs"]
mod workloads;

pub use wiring::{grace_period_covers_drain, ports_line_up, probes_use_ops_endpoints, traces_are_exported};
pub use workloads::{kustomization_lists_every_manifest, pods_are_locked_down, selectors_and_scaling};

fn of_kind<'a>(objects: &'a [K8sObject], kind: &str) -> Vec<&'a K8sObject> {
    objects.iter().filter(|o| o.kind == kind).collect()
}

fn find<'a>(objects: &'a [K8sObject], kind: &str, name: &str) -> Option<&'a K8sObject> {
    objects.iter().find(|o| o.kind == kind && o.name == name)
}

fn pod_spec(deployment: &K8sObject) -> &Value {
    &deployment.value["spec"]["template"]["spec"]
}

fn containers(deployment: &K8sObject) -> &[Value] {
    items(pod_spec(deployment).get("containers"))
}

fn labels(value: Option<&Value>) -> BTreeMap<String, String> {
    entries(value)
        .into_iter()
        .filter_map(|(k, v)| Some((k, scalar(v)?)))
        .collect()
}

fn pod_labels(deployment: &K8sObject) -> BTreeMap<String, String> {
    labels(deployment.value["spec"]["template"]["metadata"].get("labels"))
}

fn labels_of_service(service: &K8sObject) -> BTreeMap<String, String> {
    labels(service.value["spec"].get("selector"))
}

/// Whether a label selector (a plain map) picks pods with `labels`. An empty selector
/// picks nothing here: it is never what we mean.
fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The Deployments a selector picks.
fn selected<'a>(objects: &'a [K8sObject], selector: &BTreeMap<String, String>) -> Vec<&'a K8sObject> {
    of_kind(objects, "Deployment")
        .into_iter()
        .filter(|d| selects(selector, &pod_labels(d)))
        .collect()
}

/// The container port a probe or Service `targetPort` names (by name or number).
fn container_port(containers: &[Value], port: &Value) -> Option<u16> {
    let ports = containers.iter().flat_map(|c| items(c.get("ports")));
    match port {
        Value::Number(n) => {
            let n = n.as_u64()?;
            ports
                .filter_map(|p| u64_at(p, &["containerPort"]))
                .find(|p| *p == n)
                .and_then(|p| p.try_into().ok())
        }
        Value::String(name) => ports
            .filter(|p| str_at(p, &["name"]) == Some(name.as_str()))
            .find_map(|p| u64_at(p, &["containerPort"]))
            .and_then(|p| p.try_into().ok()),
        _ => None,
    }
}

fn namespace(repo: &Repo) -> Option<String> {
    str_at(&repo.yaml(KUSTOMIZATION), &["namespace"]).map(str::to_owned)
}

/// One of our containers in a Deployment, with the settings it runs with.
struct Pod<'a> {
    deployment: &'a K8sObject,
    container: &'a Value,
    facts: Facts,
    /// The keys set by the manifests themselves (not the image's defaults).
    explicit: BTreeSet<String>,
}

impl Pod<'_> {
    fn at(&self) -> String {
        format!("{} Deployment {}", self.deployment.file, self.deployment.name)
    }
}

/// A ConfigMap's `data` or the example Secret's `stringData`, as environment variables.
fn source_data(objects: &[K8sObject], kind: &str, name: &str, at: &str) -> Result<BTreeMap<String, String>, Problems> {
    let Some(object) = find(objects, kind, name) else {
        return Err(vec![format!(
            "{at}: refers to {kind} {name}, which is not in {K8S_DIR}"
        )]);
    };
    let key = if kind == "Secret" { "stringData" } else { "data" };
    if kind == "Secret" && object.value.get("data").is_some() {
        return Err(vec![format!("{}: the example Secret must use stringData", object.file)]);
    }
    let mut data = BTreeMap::new();
    let mut problems = Problems::new();
    for (k, v) in entries(object.value.get(key)) {
        match v {
            Value::String(s) => {
                data.insert(k, s.clone());
            }
            other => problems.push(format!(
                "{}: {kind} {name} {k} is {other:?}; quote it, Kubernetes takes only strings",
                object.file
            )),
        }
    }
    if problems.is_empty() { Ok(data) } else { Err(problems) }
}

/// The environment of a container: the image's, then `envFrom` in order, then `env`.
fn container_env(
    objects: &[K8sObject],
    image: BTreeMap<String, String>,
    container: &Value,
    at: &str,
) -> Result<(BTreeMap<String, String>, BTreeSet<String>), Problems> {
    let mut env = image;
    let mut explicit = BTreeSet::new();
    let mut problems = Problems::new();
    let mut set = |env: &mut BTreeMap<String, String>, k: String, v: String| {
        explicit.insert(k.clone());
        env.insert(k, v);
    };
    for source in items(container.get("envFrom")) {
        let prefix = str_at(source, &["prefix"]).unwrap_or_default();
        let (kind, name) = match (
            str_at(source, &["configMapRef", "name"]),
            str_at(source, &["secretRef", "name"]),
        ) {
            (Some(name), _) => ("ConfigMap", name),
            (_, Some(name)) => ("Secret", name),
            _ => {
                problems.push(format!("{at}: cannot read envFrom {source:?}"));
                continue;
            }
        };
        match source_data(objects, kind, name, at) {
            Ok(data) => data
                .into_iter()
                .for_each(|(k, v)| set(&mut env, format!("{prefix}{k}"), v)),
            Err(p) => problems.extend(p),
        }
    }
    for var in items(container.get("env")) {
        let Some(name) = str_at(var, &["name"]).map(str::to_owned) else {
            problems.push(format!("{at}: an env entry without a name"));
            continue;
        };
        if let Some(value) = var.get("value") {
            match value {
                Value::String(s) => set(&mut env, name, s.clone()),
                other => problems.push(format!(
                    "{at}: env {name} is {other:?}; quote it, Kubernetes takes only strings"
                )),
            }
            continue;
        }
        let reference = [("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")]
            .into_iter()
            .find_map(|(kind, field)| Some((kind, var.get("valueFrom")?.get(field)?)));
        match reference {
            Some((kind, r)) => {
                let (source, key) = (
                    str_at(r, &["name"]).unwrap_or_default(),
                    str_at(r, &["key"]).unwrap_or_default(),
                );
                match source_data(objects, kind, source, at) {
                    Ok(data) => match data.get(key) {
                        Some(v) => set(&mut env, name, v.clone()),
                        None => problems.push(format!(
                            "{at}: env {name} refers to key {key}, which {kind} {source} lacks"
                        )),
                    },
                    Err(p) => problems.extend(p),
                }
            }
            // A value only the cluster knows (fieldRef, …): fine for others, not for settings.
            None if name.starts_with("SC_") => {
                problems.push(format!("{at}: env {name} takes a value these checks cannot see"))
            }
            None => {}
        }
    }
    if problems.is_empty() {
        Ok((env, explicit))
    } else {
        Err(problems)
    }
}

/// Every container of ours in every Deployment, loaded; the problems of those that do not
/// load.
fn pods<'a>(repo: &Repo, objects: &'a [K8sObject]) -> (Vec<Pod<'a>>, Problems) {
    let dockerfile = repo.dockerfile();
    let mut pods = Vec::new();
    let mut problems = Problems::new();
    for deployment in of_kind(objects, "Deployment") {
        for container in containers(deployment) {
            let at = format!("{} Deployment {}", deployment.file, deployment.name);
            let Some(service) = str_at(container, &["image"]).and_then(Component::from_image) else {
                continue;
            };
            let image = match image_env(&dockerfile, service) {
                Ok(env) => env,
                Err(e) => {
                    problems.push(e);
                    continue;
                }
            };
            let (env, explicit) = match container_env(objects, image, container, &at) {
                Ok(loaded) => loaded,
                Err(p) => {
                    problems.extend(p);
                    continue;
                }
            };
            match load(service, &env, true) {
                Ok(facts) => pods.push(Pod {
                    deployment,
                    container,
                    facts,
                    explicit,
                }),
                Err(e) => problems.push(format!(
                    "{at}: the environment does not load into the {} settings: {e}",
                    service.target()
                )),
            }
        }
    }
    (pods, problems)
}

/// Every container image names a target of `deploy/Dockerfile` by its last path
/// component, and the kustomization's image overrides name images that are used.
pub fn images_are_dockerfile_targets(repo: &Repo) -> Problems {
    let objects = repo.k8s_objects();
    let dockerfile = repo.dockerfile();
    let mut problems = Problems::new();
    let mut used = BTreeSet::new();
    for deployment in of_kind(&objects, "Deployment") {
        for container in containers(deployment) {
            let image = str_at(container, &["image"]).unwrap_or_default();
            used.insert(
                image
                    .rsplit_once(':')
                    .filter(|(_, tag)| !tag.contains('/'))
                    .map_or(image, |(n, _)| n),
            );
            let target = image_target(image);
            if dockerfile.stage(target).is_none() || Component::from_image(image).is_none() {
                problems.push(format!(
                    "{} Deployment {}: image {image} is not built by deploy/Dockerfile (no target `{target}`, or not under {IMAGE_REPOSITORY}/)",
                    deployment.file, deployment.name
                ));
            }
        }
    }
    for image in items(repo.yaml(KUSTOMIZATION).get("images")) {
        let name = str_at(image, &["name"]).unwrap_or_default();
        if !used.contains(name) {
            problems.push(format!(
                "{KUSTOMIZATION}: images entry {name} matches no container image"
            ));
        }
    }
    problems
}

/// Every Deployment's environment loads into its service's settings and validates; the
/// listeners bind every interface; no injected service-link variables can reach the
/// settings; the bus is configured alike everywhere.
pub fn environments_load(repo: &Repo) -> Problems {
    let objects = repo.k8s_objects();
    let (pods, mut problems) = pods(repo, &objects);
    if pods.is_empty() && problems.is_empty() {
        problems.push(format!("{K8S_DIR}: no Deployment runs our images"));
    }
    for pod in &pods {
        problems.extend(
            listens_on_all_interfaces(&pod.facts)
                .into_iter()
                .map(|p| format!("{}: {p}", pod.at())),
        );
        // Service links would add `<SERVICE>_PORT=tcp://…` for every Service in the
        // namespace: a Service named `sc-…` makes that an unknown SC_ key, and the pod
        // stops at start-up.
        if pod_spec(pod.deployment).get("enableServiceLinks") != Some(&Value::Bool(false)) {
            problems.push(format!("{}: set enableServiceLinks: false", pod.at()));
        }
    }
    let buses: Vec<_> = pods.iter().filter_map(|p| Some((p, p.facts.redis.as_ref()?))).collect();
    if let Some((first, (_, prefix, partitions))) = buses.first() {
        for (pod, (_, p, s)) in &buses {
            if (p, s) != (prefix, partitions) {
                problems.push(format!(
                    "{}: redis key_prefix/partitions {p}/{s} differ from {}'s {prefix}/{partitions}",
                    pod.at(),
                    first.deployment.name
                ));
            }
        }
    }
    problems
}
