//! `deploy/k8s/`: Deployments whose environment (image defaults, ConfigMaps, the example
//! Secret, `env`) loads into the services' settings; ports, probes and selectors that meet;
//! a grace period that covers the drain; locked-down pods; a kustomization that lists it
//! all.

use crate::Problems;
use crate::formats::{entries, items, scalar, str_at, u64_at};
use crate::image::image_env;
use crate::repo::{K8S_DIR, K8sObject, KUSTOMIZATION, Repo, SECRET_EXAMPLE};
use crate::services::{
    Component, Facts, IMAGE_REPOSITORY, image_target, listens_on_all_interfaces, load, otlp_endpoint_problems,
    url_host_port,
};
use serde_yaml::Value;
use std::collections::{BTreeMap, BTreeSet};

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
    if let Some((first, (_, prefix, shards))) = buses.first() {
        for (pod, (_, p, s)) in &buses {
            if (p, s) != (prefix, shards) {
                problems.push(format!(
                    "{}: redis key_prefix/shards {p}/{s} differ from {}'s {prefix}/{shards}",
                    pod.at(),
                    first.deployment.name
                ));
            }
        }
    }
    problems
}

/// Ports: containers declare their settings' ports; Services target declared ports; the
/// gateways' endpoint is a headless Service on the message services' gRPC port; the
/// Prometheus annotation names the ops port.
pub fn ports_line_up(repo: &Repo) -> Problems {
    let objects = repo.k8s_objects();
    let (pods, _) = pods(repo, &objects);
    let namespace = namespace(repo);
    let mut problems = Problems::new();
    for pod in &pods {
        let declared: Vec<u64> = items(pod.container.get("ports"))
            .iter()
            .filter_map(|p| u64_at(p, &["containerPort"]))
            .collect();
        for (what, port) in [("public", pod.facts.public.port()), ("ops", pod.facts.ops.port())] {
            if !declared.contains(&port.into()) {
                problems.push(format!(
                    "{}: the {what} port {port} is not a containerPort {declared:?}",
                    pod.at()
                ));
            }
        }
        let annotations = labels(pod.deployment.value["spec"]["template"]["metadata"].get("annotations"));
        if annotations.get("prometheus.io/scrape").map(String::as_str) == Some("true") {
            let port = annotations.get("prometheus.io/port").cloned().unwrap_or_default();
            if port != pod.facts.ops.port().to_string() {
                problems.push(format!(
                    "{}: prometheus.io/port is {port:?}, not the ops port {}",
                    pod.at(),
                    pod.facts.ops.port()
                ));
            }
        }
    }

    for service in of_kind(&objects, "Service") {
        let selector = labels(service.value["spec"].get("selector"));
        let [deployment] = selected(&objects, &selector)[..] else {
            continue;
        };
        for port in items(service.value["spec"].get("ports")) {
            let target = port
                .get("targetPort")
                .or_else(|| port.get("port"))
                .unwrap_or(&Value::Null);
            if container_port(containers(deployment), target).is_none() {
                problems.push(format!(
                    "{} Service {}: targetPort {target:?} is no containerPort of Deployment {}",
                    service.file, service.name, deployment.name
                ));
            }
        }
    }

    for pod in pods.iter().filter(|p| p.facts.service == Component::Gateway) {
        for endpoint in &pod.facts.endpoints {
            let Some((host, port)) = url_host_port(endpoint) else {
                problems.push(format!("{}: cannot read endpoint {endpoint}", pod.at()));
                continue;
            };
            let mut labels = host.split('.');
            let name = labels.next().unwrap_or_default();
            if let (Some(ns), Some(expected)) = (labels.next(), &namespace)
                && ns != expected
            {
                problems.push(format!(
                    "{}: endpoint {endpoint} is in namespace {ns}, not {expected}",
                    pod.at()
                ));
            }
            let Some(service) = find(&objects, "Service", name) else {
                problems.push(format!(
                    "{}: endpoint {endpoint} names no Service of {K8S_DIR}",
                    pod.at()
                ));
                continue;
            };
            // A ClusterIP is one address: every gateway's long-lived HTTP/2 connection would
            // stick to one message service. Headless DNS lists every ready pod.
            if str_at(&service.value, &["spec", "clusterIP"]) != Some("None") {
                problems.push(format!(
                    "{}: endpoint {endpoint} is Service {name}, which is not headless (clusterIP: None)",
                    pod.at()
                ));
            }
            let spec_port = items(service.value["spec"].get("ports"))
                .iter()
                .find(|p| port.is_some_and(|n| u64_at(p, &["port"]) == Some(n.into())));
            let Some(spec_port) = spec_port else {
                problems.push(format!(
                    "{}: endpoint {endpoint}: Service {name} has no port {port:?}",
                    pod.at()
                ));
                continue;
            };
            let selector = labels_of_service(service);
            let target_pod = pods.iter().find(|p| {
                selects(&selector, &pod_labels(p.deployment)) && p.facts.service == Component::MessageService
            });
            let Some(target_pod) = target_pod else {
                problems.push(format!("{}: Service {name} selects no message service", pod.at()));
                continue;
            };
            let target = spec_port
                .get("targetPort")
                .or_else(|| spec_port.get("port"))
                .unwrap_or(&Value::Null);
            let resolved = container_port(std::slice::from_ref(target_pod.container), target);
            if resolved != Some(target_pod.facts.public.port()) {
                problems.push(format!(
                    "{}: endpoint {endpoint} reaches port {resolved:?} of {}, not its gRPC port {}",
                    pod.at(),
                    target_pod.deployment.name,
                    target_pod.facts.public.port()
                ));
            }
        }
    }
    problems
}

fn labels_of_service(service: &K8sObject) -> BTreeMap<String, String> {
    labels(service.value["spec"].get("selector"))
}

/// Probes: readiness asks `/readyz` and liveness `/healthz` (a startup probe either) on the
/// ops port, or the binary's `--probe-ready`.
pub fn probes_use_ops_endpoints(repo: &Repo) -> Problems {
    let objects = repo.k8s_objects();
    let dockerfile = repo.dockerfile();
    let (pods, _) = pods(repo, &objects);
    let mut problems = Problems::new();
    for pod in &pods {
        let binary = dockerfile
            .entrypoint(pod.facts.service.target())
            .and_then(|e| e.first().cloned())
            .unwrap_or_default();
        let probes = [
            ("readinessProbe", true, &["/readyz"][..]),
            ("livenessProbe", true, &["/healthz"][..]),
            ("startupProbe", false, &["/healthz", "/readyz"][..]),
        ];
        for (kind, required, paths) in probes {
            let Some(probe) = pod.container.get(kind) else {
                if required {
                    problems.push(format!("{}: no {kind}", pod.at()));
                }
                continue;
            };
            if let Some(get) = probe.get("httpGet") {
                let path = str_at(get, &["path"]).unwrap_or_default();
                let port = container_port(
                    std::slice::from_ref(pod.container),
                    get.get("port").unwrap_or(&Value::Null),
                );
                if !paths.contains(&path) || port != Some(pod.facts.ops.port()) {
                    problems.push(format!(
                        "{}: {kind} GETs {path} on port {port:?}; expected {} on the ops port {}",
                        pod.at(),
                        paths.join(" or "),
                        pod.facts.ops.port()
                    ));
                }
            } else {
                let command: Vec<String> = items(probe.get("exec").and_then(|e| e.get("command")))
                    .iter()
                    .filter_map(scalar)
                    .collect();
                // The binary's own check asks /readyz: right for readiness only.
                if kind != "readinessProbe" || command != [binary.as_str(), "--probe-ready"] {
                    problems.push(format!(
                        "{}: {kind} is neither an httpGet of {} nor fit for it",
                        pod.at(),
                        paths[0]
                    ));
                }
            }
        }
    }
    problems
}

/// Traces: every pod says where its spans go (`SC_TELEMETRY__OTLP_ENDPOINT`, set in the
/// manifests; `""` is a deliberate off), the address has the shape its protocol takes, and
/// all pods send to the same collector.
pub fn traces_are_exported(repo: &Repo) -> Problems {
    let objects = repo.k8s_objects();
    let (pods, _) = pods(repo, &objects);
    let mut problems = Problems::new();
    let mut endpoints = BTreeMap::new();
    for pod in &pods {
        if !pod.explicit.contains("SC_TELEMETRY__OTLP_ENDPOINT") {
            problems.push(format!(
                "{}: SC_TELEMETRY__OTLP_ENDPOINT is not set; name the collector (or \"\" for no traces)",
                pod.at()
            ));
        }
        let endpoint = pod.facts.otlp.as_ref().map(|(e, _)| e.clone()).unwrap_or_default();
        if let Some((endpoint, protocol)) = &pod.facts.otlp {
            problems.extend(
                otlp_endpoint_problems(endpoint, *protocol)
                    .into_iter()
                    .map(|p| format!("{}: {p}", pod.at())),
            );
        }
        endpoints.insert(pod.at(), endpoint);
    }
    if let Some((first, endpoint)) = endpoints.iter().next() {
        for (at, other) in &endpoints {
            if other != endpoint {
                problems.push(format!(
                    "{at}: sends traces to {other:?}, {first} to {endpoint:?}; one trace needs every hop"
                ));
            }
        }
    }
    problems
}

/// The grace period covers the stop: the preStop pause, then the drain
/// (`SC_DRAIN_TIMEOUT_SECS`, which must be set explicitly beside it).
pub fn grace_period_covers_drain(repo: &Repo) -> Problems {
    let objects = repo.k8s_objects();
    let (pods, _) = pods(repo, &objects);
    let mut problems = Problems::new();
    for pod in &pods {
        if !pod.explicit.contains("SC_DRAIN_TIMEOUT_SECS") {
            problems.push(format!(
                "{}: SC_DRAIN_TIMEOUT_SECS is not set; the grace period is sized against it",
                pod.at()
            ));
        }
        let pre_stop = match pod.container.get("lifecycle").and_then(|l| l.get("preStop")) {
            None => Some(0),
            Some(hook) => {
                let command: Vec<String> = items(hook.get("exec").and_then(|e| e.get("command")))
                    .iter()
                    .filter_map(scalar)
                    .collect();
                match command.as_slice() {
                    [sleep, secs] if sleep.ends_with("sleep") => secs.parse().ok(),
                    _ => u64_at(hook, &["sleep", "seconds"]),
                }
            }
        };
        let Some(pre_stop) = pre_stop else {
            problems.push(format!("{}: cannot tell how long the preStop hook takes", pod.at()));
            continue;
        };
        // Kubernetes' default is 30 s.
        let grace = u64_at(pod_spec(pod.deployment), &["terminationGracePeriodSeconds"]).unwrap_or(30);
        let needed = pre_stop + pod.facts.stop_secs();
        if grace <= needed {
            problems.push(format!(
                "{}: terminationGracePeriodSeconds {grace} is not more than preStop {pre_stop} s + drain {} s",
                pod.at(),
                pod.facts.stop_secs()
            ));
        }
    }
    problems
}

/// Selectors meet the pods they mean: each Deployment selects its own template; each
/// Service and PodDisruptionBudget selects exactly one Deployment, and every Deployment
/// has a budget that still allows a disruption; the autoscaler targets the gateways, which
/// request CPU, and owns their replica count; the others run several replicas.
pub fn selectors_and_scaling(repo: &Repo) -> Problems {
    let objects = repo.k8s_objects();
    let mut problems = Problems::new();
    let deployments = of_kind(&objects, "Deployment");
    for d in &deployments {
        let at = format!("{} Deployment {}", d.file, d.name);
        if d.value["spec"]["selector"].get("matchExpressions").is_some() {
            problems.push(format!("{at}: matchExpressions are not checked here; use matchLabels"));
        }
        let selector = labels(d.value["spec"]["selector"].get("matchLabels"));
        if !selects(&selector, &pod_labels(d)) {
            problems.push(format!(
                "{at}: selector {selector:?} does not select its own pod template"
            ));
        }
    }
    for service in of_kind(&objects, "Service") {
        let picked = selected(&objects, &labels_of_service(service));
        if picked.len() != 1 {
            problems.push(format!(
                "{} Service {}: selects {} Deployments, not one",
                service.file,
                service.name,
                picked.len()
            ));
        }
    }

    let hpas = of_kind(&objects, "HorizontalPodAutoscaler");
    let mut autoscaled = BTreeMap::new();
    for hpa in &hpas {
        let at = format!("{} HorizontalPodAutoscaler {}", hpa.file, hpa.name);
        let spec = &hpa.value["spec"];
        let target = &spec["scaleTargetRef"];
        let name = str_at(target, &["name"]).unwrap_or_default();
        let deployment = deployments.iter().find(|d| d.name == name);
        if str_at(&hpa.value, &["apiVersion"]) != Some("autoscaling/v2")
            || str_at(target, &["kind"]) != Some("Deployment")
            || str_at(target, &["apiVersion"]) != Some("apps/v1")
            || deployment.is_none()
        {
            problems.push(format!(
                "{at}: scaleTargetRef {target:?} is no apps/v1 Deployment of {K8S_DIR} (or not autoscaling/v2)"
            ));
            continue;
        }
        let deployment = deployment.unwrap();
        let (min, max) = (
            u64_at(spec, &["minReplicas"]).unwrap_or(1),
            u64_at(spec, &["maxReplicas"]).unwrap_or(0),
        );
        if min < 2 || max < min {
            problems.push(format!(
                "{at}: replicas {min}..{max}; at least 2, and max not below min"
            ));
        }
        let on_cpu = items(spec.get("metrics"))
            .iter()
            .any(|m| str_at(m, &["type"]) == Some("Resource") && str_at(m, &["resource", "name"]) == Some("cpu"));
        if !on_cpu {
            problems.push(format!("{at}: does not scale on CPU"));
        }
        // Utilisation is measured against the request: without one the autoscaler is blind.
        for container in containers(deployment) {
            if at_path(container, &["resources", "requests", "cpu"]).is_none() {
                problems.push(format!(
                    "{at}: container {:?} requests no CPU",
                    str_at(container, &["name"])
                ));
            }
        }
        if deployment.value["spec"].get("replicas").is_some() {
            problems.push(format!(
                "{} Deployment {}: sets replicas while {at} scales it; every apply would reset the autoscaler",
                deployment.file, deployment.name
            ));
        }
        autoscaled.insert(deployment.name.clone(), min);
    }
    let mut replicas = BTreeMap::new();
    for d in &deployments {
        let ours = containers(d)
            .iter()
            .filter_map(|c| str_at(c, &["image"]).and_then(Component::from_image))
            .next();
        let count = autoscaled
            .get(&d.name)
            .copied()
            .or_else(|| u64_at(&d.value, &["spec", "replicas"]))
            .unwrap_or(1);
        replicas.insert(d.name.clone(), count);
        if ours == Some(Component::Gateway) && !autoscaled.contains_key(&d.name) {
            problems.push(format!(
                "{} Deployment {}: gateways have no HorizontalPodAutoscaler",
                d.file, d.name
            ));
        }
        if count < 2 {
            problems.push(format!(
                "{} Deployment {}: {count} replica(s); run at least 2",
                d.file, d.name
            ));
        }
    }

    let mut budgeted = BTreeSet::new();
    for pdb in of_kind(&objects, "PodDisruptionBudget") {
        let at = format!("{} PodDisruptionBudget {}", pdb.file, pdb.name);
        let picked = selected(&objects, &labels(pdb.value["spec"]["selector"].get("matchLabels")));
        let [deployment] = picked[..] else {
            problems.push(format!("{at}: selects {} Deployments, not one", picked.len()));
            continue;
        };
        budgeted.insert(deployment.name.clone());
        let count = replicas[&deployment.name];
        let spec = &pdb.value["spec"];
        let allows = match (
            spec.get("maxUnavailable").and_then(scalar),
            spec.get("minAvailable").and_then(scalar),
        ) {
            (Some(max), None) => max.trim_end_matches('%').parse::<u64>().is_ok_and(|m| m > 0),
            (None, Some(min)) => min.parse::<u64>().is_ok_and(|m| m < count),
            _ => false,
        };
        if !allows {
            problems.push(format!(
                "{at}: with {count} replicas it allows no disruption (or sets both or neither bound): node drains would hang"
            ));
        }
    }
    for d in &deployments {
        if !budgeted.contains(&d.name) {
            problems.push(format!("{} Deployment {}: no PodDisruptionBudget", d.file, d.name));
        }
    }
    problems
}

fn at_path<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    crate::formats::at(value, path)
}

/// Pods run as non-root on a read-only root file system with no capabilities, and say
/// what they need and may use.
pub fn pods_are_locked_down(repo: &Repo) -> Problems {
    let objects = repo.k8s_objects();
    let mut problems = Problems::new();
    for d in of_kind(&objects, "Deployment") {
        let pod = pod_spec(d);
        for container in containers(d) {
            let at = format!(
                "{} Deployment {} container {}",
                d.file,
                d.name,
                str_at(container, &["name"]).unwrap_or("?")
            );
            let setting = |key: &str| {
                at_path(container, &["securityContext", key]).or_else(|| at_path(pod, &["securityContext", key]))
            };
            if setting("runAsNonRoot") != Some(&Value::Bool(true)) {
                problems.push(format!("{at}: runAsNonRoot is not true"));
            }
            if setting("runAsUser").and_then(Value::as_u64) == Some(0) {
                problems.push(format!("{at}: runAsUser is 0"));
            }
            let own = |key: &str| at_path(container, &["securityContext", key]);
            if own("readOnlyRootFilesystem") != Some(&Value::Bool(true)) {
                problems.push(format!("{at}: readOnlyRootFilesystem is not true"));
            }
            if own("allowPrivilegeEscalation") != Some(&Value::Bool(false)) {
                problems.push(format!("{at}: allowPrivilegeEscalation is not false"));
            }
            let dropped: Vec<String> = items(at_path(container, &["securityContext", "capabilities", "drop"]))
                .iter()
                .filter_map(scalar)
                .collect();
            if !dropped.iter().any(|c| c == "ALL") {
                problems.push(format!("{at}: capabilities do not drop ALL"));
            }
            for path in [["requests", "cpu"], ["requests", "memory"], ["limits", "memory"]] {
                if at_path(container, &["resources", path[0], path[1]]).is_none() {
                    problems.push(format!("{at}: no resources.{}.{}", path[0], path[1]));
                }
            }
        }
    }
    problems
}

/// The kustomization lists every manifest that exists and none that does not, sets the
/// namespace, and leaves the example Secret out (applying it would overwrite the real one).
pub fn kustomization_lists_every_manifest(repo: &Repo) -> Problems {
    let kustomization = repo.yaml(KUSTOMIZATION);
    let mut problems = Problems::new();
    if namespace(repo).is_none() {
        problems.push(format!("{KUSTOMIZATION}: sets no namespace"));
    }
    let listed: Vec<String> = items(kustomization.get("resources"))
        .iter()
        .filter_map(scalar)
        .map(|r| format!("{K8S_DIR}/{r}"))
        .collect();
    let files = repo.k8s_files();
    for resource in &listed {
        if !files.contains(&resource.as_str()) {
            problems.push(format!("{KUSTOMIZATION}: lists {resource}, which does not exist"));
        }
        if resource == SECRET_EXAMPLE {
            problems.push(format!(
                "{KUSTOMIZATION}: lists {SECRET_EXAMPLE}; its placeholders would replace the real Secret"
            ));
        }
    }
    for file in files {
        if file != SECRET_EXAMPLE && !listed.iter().any(|l| l == file) {
            problems.push(format!("{KUSTOMIZATION}: does not list {file}"));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{assert_fails, assert_passes};

    const GATEWAY: &str = "deploy/k8s/gateway.yaml";
    const MESSAGE_SERVICE: &str = "deploy/k8s/message-service.yaml";
    const CONFIG: &str = "deploy/k8s/configmap.yaml";

    #[test]
    fn the_images_are_dockerfile_targets() {
        assert_passes(images_are_dockerfile_targets(&Repo::load()));
    }

    #[test]
    fn an_image_that_is_not_built_here_fails() {
        let mut repo = Repo::load();
        repo.edit(
            GATEWAY,
            "image: super-channels/gateway:0.1.0",
            "image: super-channels/gw:0.1.0",
        );
        assert_fails(images_are_dockerfile_targets(&repo), "no target `gw`");
        let mut repo = Repo::load();
        repo.edit(
            KUSTOMIZATION,
            "- name: super-channels/gateway",
            "- name: super-channels/gw",
        );
        assert_fails(images_are_dockerfile_targets(&repo), "matches no container image");
    }

    #[test]
    fn the_environments_load() {
        assert_passes(environments_load(&Repo::load()));
    }

    #[test]
    fn a_mistyped_key_in_a_config_map_fails() {
        let mut repo = Repo::load();
        repo.edit(CONFIG, "SC_OPS_LISTEN: 0.0.0.0:9090", "SC_OPS_LISTN: 0.0.0.0:9090");
        assert_fails(
            environments_load(&repo),
            "Deployment gateway: the environment does not load",
        );
    }

    #[test]
    fn a_key_of_the_other_service_fails() {
        // The message service has no `listen`: a gateway key in the common map stops it.
        let mut repo = Repo::load();
        repo.edit(
            CONFIG,
            "  SC_LOG__FORMAT: json\n",
            "  SC_LOG__FORMAT: json\n  SC_LISTEN: 0.0.0.0:8080\n",
        );
        assert_fails(
            environments_load(&repo),
            "Deployment message-service: the environment does not load",
        );
    }

    #[test]
    fn an_unquoted_value_or_a_missing_secret_key_fails() {
        let mut repo = Repo::load();
        repo.edit(CONFIG, "SC_REDIS__SHARDS: \"8\"", "SC_REDIS__SHARDS: 8");
        assert_fails(environments_load(&repo), "quote it");
        let mut repo = Repo::load();
        repo.edit(GATEWAY, "key: auth-secret", "key: session-secret");
        assert_fails(environments_load(&repo), "refers to key session-secret");
        let mut repo = Repo::load();
        repo.edit(
            "deploy/k8s/secret.example.yaml",
            "auth-secret: replace-me-with-at-least-32-random-bytes-base64",
            "auth-secret: short",
        );
        assert_fails(environments_load(&repo), "auth.secret");
    }

    #[test]
    fn service_links_fail() {
        let mut repo = Repo::load();
        repo.edit(MESSAGE_SERVICE, "enableServiceLinks: false", "enableServiceLinks: true");
        assert_fails(environments_load(&repo), "set enableServiceLinks: false");
    }

    #[test]
    fn the_ports_line_up() {
        assert_passes(ports_line_up(&Repo::load()));
    }

    #[test]
    fn traces_are_exported() {
        assert_passes(super::traces_are_exported(&Repo::load()));
    }

    #[test]
    fn a_missing_misshapen_or_split_trace_endpoint_fails() {
        let endpoint = "  SC_TELEMETRY__OTLP_ENDPOINT: http://otel-collector.observability.svc.cluster.local:4317\n";
        let mut repo = Repo::load();
        repo.edit(CONFIG, endpoint, "");
        assert_fails(
            super::traces_are_exported(&repo),
            "SC_TELEMETRY__OTLP_ENDPOINT is not set",
        );
        let mut repo = Repo::load();
        repo.edit(
            CONFIG,
            "cluster.local:4317\n",
            "cluster.local:4317\n  SC_TELEMETRY__OTLP_PROTOCOL: http\n",
        );
        assert_fails(super::traces_are_exported(&repo), "must end in /v1/traces");
        let mut repo = Repo::load();
        repo.edit(CONFIG, endpoint, "");
        repo.edit(
            CONFIG,
            "  SC_GRPC_LISTEN: 0.0.0.0:50051\n",
            &format!("  SC_GRPC_LISTEN: 0.0.0.0:50051\n{endpoint}"),
        );
        repo.edit(
            CONFIG,
            "  SC_LISTEN: 0.0.0.0:8080\n",
            "  SC_LISTEN: 0.0.0.0:8080\n  SC_TELEMETRY__OTLP_ENDPOINT: http://tempo:4317\n",
        );
        assert_fails(super::traces_are_exported(&repo), "one trace needs every hop");
    }

    #[test]
    fn an_endpoint_that_misses_the_message_services_fails() {
        let mut repo = Repo::load();
        repo.edit(CONFIG, "http://message-service:50051", "http://message-service:50052");
        assert_fails(ports_line_up(&repo), "has no port Some(50052)");
        let mut repo = Repo::load();
        repo.edit(
            CONFIG,
            "http://message-service:50051",
            "http://message-service.other:50051",
        );
        assert_fails(ports_line_up(&repo), "in namespace other");
        let mut repo = Repo::load();
        repo.edit(MESSAGE_SERVICE, "  clusterIP: None\n", "");
        assert_fails(ports_line_up(&repo), "not headless");
        let mut repo = Repo::load();
        repo.edit(MESSAGE_SERVICE, "      targetPort: grpc", "      targetPort: ops");
        assert_fails(ports_line_up(&repo), "reaches port Some(9091)");
    }

    #[test]
    fn a_service_targeting_an_undeclared_port_fails() {
        let mut repo = Repo::load();
        repo.edit(GATEWAY, "      targetPort: http", "      targetPort: web");
        assert_fails(ports_line_up(&repo), "targetPort String(\"web\")");
    }

    #[test]
    fn container_ports_and_annotations_must_match_the_settings() {
        let mut repo = Repo::load();
        repo.edit(CONFIG, "SC_OPS_LISTEN: 0.0.0.0:9091", "SC_OPS_LISTEN: 0.0.0.0:9092");
        let problems = ports_line_up(&repo);
        assert_fails(problems.clone(), "the ops port 9092 is not a containerPort");
        assert_fails(problems, "prometheus.io/port is \"9091\", not the ops port 9092");
    }

    #[test]
    fn the_probes_use_ops_endpoints() {
        assert_passes(probes_use_ops_endpoints(&Repo::load()));
    }

    #[test]
    fn a_probe_on_the_wrong_path_or_port_fails() {
        let mut repo = Repo::load();
        repo.edit_after(GATEWAY, "readinessProbe:", "path: /readyz", "path: /ready");
        assert_fails(probes_use_ops_endpoints(&repo), "readinessProbe GETs /ready");
        let mut repo = Repo::load();
        repo.edit_after(MESSAGE_SERVICE, "livenessProbe:", "port: ops", "port: grpc");
        assert_fails(
            probes_use_ops_endpoints(&repo),
            "livenessProbe GETs /healthz on port Some(50051)",
        );
        let mut repo = Repo::load();
        repo.edit_after(GATEWAY, "# Ready: Redis", "readinessProbe:", "notAProbe:");
        assert_fails(probes_use_ops_endpoints(&repo), "no readinessProbe");
    }

    #[test]
    fn the_grace_period_covers_the_drain() {
        assert_passes(grace_period_covers_drain(&Repo::load()));
    }

    #[test]
    fn a_short_grace_period_or_a_long_drain_fails() {
        let mut repo = Repo::load();
        repo.edit(
            GATEWAY,
            "terminationGracePeriodSeconds: 30",
            "terminationGracePeriodSeconds: 15",
        );
        assert_fails(grace_period_covers_drain(&repo), "terminationGracePeriodSeconds 15");
        let mut repo = Repo::load();
        repo.edit_after(
            MESSAGE_SERVICE,
            "- name: SC_DRAIN_TIMEOUT_SECS",
            "value: \"10\"",
            "value: \"30\"",
        );
        assert_fails(grace_period_covers_drain(&repo), "preStop 15 s + drain 30 s");
    }

    #[test]
    fn an_implicit_drain_timeout_fails() {
        let mut repo = Repo::load();
        repo.edit(
            GATEWAY,
            "            - name: SC_DRAIN_TIMEOUT_SECS\n              value: \"10\"\n",
            "",
        );
        assert_fails(grace_period_covers_drain(&repo), "SC_DRAIN_TIMEOUT_SECS is not set");
    }

    #[test]
    fn the_selectors_and_scaling() {
        assert_passes(selectors_and_scaling(&Repo::load()));
    }

    #[test]
    fn a_selector_that_misses_fails() {
        let mut repo = Repo::load();
        repo.edit_after(
            GATEWAY,
            "kind: Service",
            "app.kubernetes.io/component: gateway\n  ports",
            "app.kubernetes.io/component: gw\n  ports",
        );
        assert_fails(selectors_and_scaling(&repo), "Service gateway: selects 0 Deployments");
        let mut repo = Repo::load();
        repo.edit_after(
            MESSAGE_SERVICE,
            "kind: PodDisruptionBudget",
            "component: message-service",
            "component: messages",
        );
        let problems = selectors_and_scaling(&repo);
        assert_fails(
            problems.clone(),
            "PodDisruptionBudget message-service: selects 0 Deployments",
        );
        assert_fails(problems, "Deployment message-service: no PodDisruptionBudget");
    }

    #[test]
    fn a_budget_that_blocks_drains_fails() {
        let mut repo = Repo::load();
        repo.edit_after(
            MESSAGE_SERVICE,
            "kind: PodDisruptionBudget",
            "maxUnavailable: 1",
            "minAvailable: 2",
        );
        assert_fails(selectors_and_scaling(&repo), "allows no disruption");
    }

    #[test]
    fn an_autoscaler_of_nothing_or_a_fixed_count_fails() {
        let mut repo = Repo::load();
        repo.edit_after(GATEWAY, "scaleTargetRef:", "name: gateway", "name: gateways");
        let problems = selectors_and_scaling(&repo);
        assert_fails(problems.clone(), "scaleTargetRef");
        assert_fails(problems, "gateways have no HorizontalPodAutoscaler");
        let mut repo = Repo::load();
        repo.edit(
            GATEWAY,
            "  revisionHistoryLimit: 5\n  selector:",
            "  replicas: 3\n  revisionHistoryLimit: 5\n  selector:",
        );
        assert_fails(selectors_and_scaling(&repo), "sets replicas while");
        let mut repo = Repo::load();
        repo.edit(MESSAGE_SERVICE, "replicas: 2", "replicas: 1");
        assert_fails(selectors_and_scaling(&repo), "1 replica(s)");
    }

    #[test]
    fn the_pods_are_locked_down() {
        assert_passes(pods_are_locked_down(&Repo::load()));
    }

    #[test]
    fn a_writable_root_or_kept_capabilities_fail() {
        let mut repo = Repo::load();
        repo.edit(GATEWAY, "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false");
        assert_fails(pods_are_locked_down(&repo), "readOnlyRootFilesystem");
        let mut repo = Repo::load();
        repo.edit(MESSAGE_SERVICE, "drop: [\"ALL\"]", "drop: [\"NET_RAW\"]");
        assert_fails(pods_are_locked_down(&repo), "do not drop ALL");
        let mut repo = Repo::load();
        repo.edit(MESSAGE_SERVICE, "        runAsNonRoot: true\n", "");
        assert_fails(pods_are_locked_down(&repo), "runAsNonRoot");
        let mut repo = Repo::load();
        repo.edit_after(GATEWAY, "limits:", "memory: 512Mi", "");
        assert_fails(pods_are_locked_down(&repo), "no resources.limits.memory");
    }

    #[test]
    fn the_kustomization_lists_every_manifest() {
        assert_passes(kustomization_lists_every_manifest(&Repo::load()));
    }

    #[test]
    fn an_unlisted_manifest_or_the_secret_listed_fails() {
        let mut repo = Repo::load();
        repo.add(
            "deploy/k8s/ingress.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n",
        );
        assert_fails(
            kustomization_lists_every_manifest(&repo),
            "does not list deploy/k8s/ingress.yaml",
        );
        let mut repo = Repo::load();
        repo.edit(
            KUSTOMIZATION,
            "  - gateway.yaml\n",
            "  - gateway.yaml\n  - secret.example.yaml\n",
        );
        assert_fails(kustomization_lists_every_manifest(&repo), "placeholders would replace");
        let mut repo = Repo::load();
        repo.remove(GATEWAY);
        assert_fails(
            kustomization_lists_every_manifest(&repo),
            "lists deploy/k8s/gateway.yaml, which does not exist",
        );
    }
}
