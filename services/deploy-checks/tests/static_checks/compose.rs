//! `docker-compose.yml` (with `.env.example`), and the files it mounts: the HAProxy,
//! Prometheus, OpenTelemetry collector and Grafana configurations.

use crate::Problems;
use crate::formats::{compose_secs, entries, interpolate, items, scalar, str_at, u64_at};
use crate::image::image_env;
use crate::repo::{COMPOSE, ENV_EXAMPLE, Repo};
use crate::services::{Component, Facts, listens_on_all_interfaces, load, url_host_port};
use serde_yaml::Value;
use std::collections::BTreeMap;

// A file included by `#[path]` counts as a `mod.rs`: its modules need a path too.
#[path = "compose/observability.rs"]
mod observability;
#[path = "compose/ports.rs"]
mod ports;
#[cfg(test)]
#[path = "compose/tests.rs"]
mod tests;

pub use observability::{collector_is_wired, grafana_is_wired, traces_are_exported};
pub use ports::ports_line_up;

/// The compose services, by name.
fn services(compose: &Value) -> Vec<(String, &Value)> {
    entries(compose.get("services"))
}

/// Which of our services a compose service runs: its build target, or else its image.
fn ours(service: &Value) -> Option<Component> {
    match str_at(service, &["build", "target"]) {
        Some(target) => Component::from_target(target),
        None => str_at(service, &["image"]).and_then(Component::from_image),
    }
}

/// Services outside the default `docker compose up` (those with `profiles`).
fn optional(service: &Value) -> bool {
    !items(service.get("profiles")).is_empty()
}

fn replicas(service: &Value) -> u64 {
    u64_at(service, &["deploy", "replicas"]).unwrap_or(1)
}

/// A service's `environment`, map or list form, `${…}` substituted from `.env.example`.
fn environment(
    name: &str,
    service: &Value,
    vars: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, Problems> {
    let mut raw = Vec::new();
    match service.get("environment") {
        None => {}
        Some(Value::Mapping(_)) => {
            for (key, value) in entries(service.get("environment")) {
                raw.push((key, Some(value).filter(|v| !v.is_null()).and_then(scalar)));
            }
        }
        Some(Value::Sequence(list)) => {
            for item in list {
                let item = scalar(item).unwrap_or_default();
                match item.split_once('=') {
                    Some((k, v)) => raw.push((k.to_owned(), Some(v.to_owned()))),
                    None => raw.push((item, None)),
                }
            }
        }
        Some(_) => {
            return Err(vec![format!(
                "{COMPOSE} {name}: `environment` is neither a map nor a list"
            )]);
        }
    }
    let mut problems = Problems::new();
    if service.get("env_file").is_some() {
        problems.push(format!(
            "{COMPOSE} {name}: uses env_file, which these checks do not read; set `environment` instead"
        ));
    }
    let mut env = BTreeMap::new();
    for (key, value) in raw {
        match value.map(|v| interpolate(&v, vars)) {
            Some(Ok(value)) => {
                env.insert(key, value);
            }
            Some(Err(e)) => problems.push(format!("{COMPOSE} {name}: {key}: {e} ({ENV_EXAMPLE} has no value)")),
            None => problems.push(format!(
                "{COMPOSE} {name}: {key} has no value and would be taken from the shell running compose"
            )),
        }
    }
    if problems.is_empty() { Ok(env) } else { Err(problems) }
}

/// The settings each of our compose services runs with: the image's environment, then the
/// service's. Services whose environment is broken are left out and their problems
/// returned.
fn facts(repo: &Repo) -> (BTreeMap<String, Facts>, Problems) {
    let compose = repo.compose();
    let dockerfile = repo.dockerfile();
    let vars = repo.env_example();
    let mut all = BTreeMap::new();
    let mut problems = Problems::new();
    for (name, service) in services(&compose) {
        let Some(kind) = ours(service) else { continue };
        let mut env = match image_env(&dockerfile, kind) {
            Ok(env) => env,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        match environment(&name, service, &vars) {
            Ok(own) => env.extend(own),
            Err(p) => {
                problems.extend(p);
                continue;
            }
        }
        match load(kind, &env, true) {
            Ok(facts) => {
                all.insert(name, facts);
            }
            Err(e) => problems.push(format!(
                "{COMPOSE} {name}: its environment does not load into the {} settings: {e}",
                kind.target()
            )),
        }
    }
    (all, problems)
}

/// Every service built here names a target of `deploy/Dockerfile`, and its image is named
/// after that target.
pub fn images_are_dockerfile_targets(repo: &Repo) -> Problems {
    let compose = repo.compose();
    let dockerfile = repo.dockerfile();
    let mut problems = Problems::new();
    for (name, service) in services(&compose) {
        let Some(build) = service.get("build") else { continue };
        let context = str_at(build, &["context"]).unwrap_or(".");
        let file = str_at(build, &["dockerfile"]).unwrap_or("Dockerfile");
        let path = std::path::Path::new(context).join(file);
        let normal: std::path::PathBuf = path
            .components()
            .filter(|c| *c != std::path::Component::CurDir)
            .collect();
        if normal != std::path::Path::new(crate::repo::DOCKERFILE) {
            problems.push(format!(
                "{COMPOSE} {name}: builds {}, not deploy/Dockerfile",
                path.display()
            ));
            continue;
        }
        let Some(target) = str_at(build, &["target"]) else {
            problems.push(format!(
                "{COMPOSE} {name}: builds without a target (the last stage is not an image of ours)"
            ));
            continue;
        };
        if dockerfile.stage(target).is_none() {
            problems.push(format!(
                "{COMPOSE} {name}: build target `{target}` is not a stage of deploy/Dockerfile"
            ));
        } else if Component::from_target(target).is_none() {
            problems.push(format!(
                "{COMPOSE} {name}: build target `{target}` is not one of our service images"
            ));
        }
        if let Some(image) = str_at(service, &["image"])
            && crate::services::image_target(image) != target
        {
            problems.push(format!(
                "{COMPOSE} {name}: image {image} is built from target `{target}`; name it after the target"
            ));
        }
    }
    problems
}

/// The environment of each of our services (image defaults, `environment`, secrets from
/// `.env.example`) loads into its settings and passes its validation, and the listeners
/// bind every interface.
pub fn environments_load(repo: &Repo) -> Problems {
    let (facts, mut problems) = facts(repo);
    if facts.is_empty() && problems.is_empty() {
        problems.push(format!("{COMPOSE} runs none of our services"));
    }
    for (name, facts) in &facts {
        problems.extend(
            listens_on_all_interfaces(facts)
                .into_iter()
                .map(|p| format!("{COMPOSE} {name}: {p}")),
        );
    }
    // The streams are sharded by room: a gateway and a message service that disagree on the
    // prefix or the shard count never meet.
    let buses: BTreeMap<_, _> = facts.iter().filter_map(|(n, f)| Some((n, f.redis.as_ref()?))).collect();
    if let Some((first, (_, prefix, shards))) = buses.iter().next() {
        for (name, (_, p, s)) in &buses {
            if (p, s) != (prefix, shards) {
                problems.push(format!(
                    "{COMPOSE} {name}: redis key_prefix/shards {p}/{s} differ from {first}'s {prefix}/{shards}"
                ));
            }
        }
    }
    problems
}

/// Health checks: ours use `--probe-ready` of the right binary; every `depends_on` of ours
/// waits for health, on a service that has a health check; and each of our services waits
/// for the services its settings point at (database, Redis, message services).
pub fn health_checks_and_start_order(repo: &Repo) -> Problems {
    let compose = repo.compose();
    let dockerfile = repo.dockerfile();
    let (facts, _) = facts(repo);
    let all: BTreeMap<String, &Value> = services(&compose).into_iter().collect();
    let mut problems = Problems::new();
    let has_health_check = |service: &Value| {
        service
            .get("healthcheck")
            .is_some_and(|h| h.get("disable") != Some(&Value::Bool(true)))
            || ours(service).is_some_and(|s| dockerfile.healthcheck(s.target()).is_some())
    };
    for (name, service) in &all {
        let kind = ours(service);
        if let Some(kind) = kind
            && let Some(check) = service.get("healthcheck")
        {
            let test: Vec<String> = items(check.get("test")).iter().filter_map(scalar).collect();
            let binary = dockerfile
                .entrypoint(kind.target())
                .and_then(|e| e.first().cloned())
                .unwrap_or_default();
            if test != ["CMD", binary.as_str(), "--probe-ready"] {
                problems.push(format!(
                    "{COMPOSE} {name}: healthcheck test is {test:?}, expected [\"CMD\", \"{binary}\", \"--probe-ready\"]"
                ));
            }
        } else if kind.is_some() && !has_health_check(service) {
            problems.push(format!("{COMPOSE} {name}: no health check"));
        }
        let depends: BTreeMap<String, Option<String>> = match service.get("depends_on") {
            Some(Value::Sequence(list)) => list.iter().filter_map(scalar).map(|d| (d, None)).collect(),
            other => entries(other)
                .into_iter()
                .map(|(d, v)| (d, str_at(v, &["condition"]).map(str::to_owned)))
                .collect(),
        };
        for (dependency, condition) in &depends {
            match all.get(dependency) {
                None => problems.push(format!(
                    "{COMPOSE} {name}: depends on `{dependency}`, which is no service"
                )),
                Some(target) => {
                    // Ours wait for health; others (the collector, waiting for the trace
                    // UI) may wait for less.
                    if kind.is_some() && condition.as_deref() != Some("service_healthy") {
                        problems.push(format!(
                            "{COMPOSE} {name}: depends on {dependency} without `condition: service_healthy`"
                        ));
                    } else if condition.as_deref() == Some("service_healthy") && !has_health_check(target) {
                        problems.push(format!(
                            "{COMPOSE} {name}: waits for {dependency} to be healthy, which has no health check"
                        ));
                    }
                }
            }
        }
        let Some(facts) = facts.get(name) else { continue };
        let urls = facts
            .redis
            .iter()
            .map(|(url, _, _)| url.clone())
            .chain(facts.database_url.clone())
            .chain(facts.endpoints.iter().cloned());
        for url in urls {
            let Some((host, _)) = url_host_port(&url) else { continue };
            if !all.contains_key(&host) {
                problems.push(format!(
                    "{COMPOSE} {name}: connects to `{host}`, which is no service here"
                ));
            } else if !depends.contains_key(&host) {
                problems.push(format!(
                    "{COMPOSE} {name}: connects to {host} but does not wait for it in depends_on"
                ));
            }
        }
    }
    problems
}

/// Stopping waits for the drain: `stop_grace_period` is longer than each service's drain
/// bound. The scaled services run several replicas, and Postgres and Redis keep their data
/// in named volumes.
pub fn drain_replicas_and_volumes(repo: &Repo) -> Problems {
    let compose = repo.compose();
    let (facts, _) = facts(repo);
    let all: BTreeMap<String, &Value> = services(&compose).into_iter().collect();
    let mut problems = Problems::new();
    for (name, f) in &facts {
        let service = all[name];
        // Compose's default is 10 s.
        let grace = match service.get("stop_grace_period").and_then(scalar) {
            Some(text) => compose_secs(&text),
            None => Some(10.0),
        };
        if grace.is_none_or(|g| g <= f.stop_secs() as f64) {
            problems.push(format!(
                "{COMPOSE} {name}: stop_grace_period {grace:?} s is not longer than its drain ({} s): SIGKILL would cut it",
                f.stop_secs()
            ));
        }
        if matches!(f.service, Component::Gateway | Component::MessageService)
            && !optional(service)
            && replicas(service) < 2
        {
            problems.push(format!(
                "{COMPOSE} {name}: one replica; the scaled topology runs several"
            ));
        }
    }
    let declared: Vec<String> = entries(compose.get("volumes")).into_iter().map(|(k, _)| k).collect();
    for (name, service) in &all {
        let image = str_at(service, &["image"]).unwrap_or_default();
        let data = match image.split(':').next().unwrap_or_default() {
            "postgres" => "/var/lib/postgresql/data",
            "redis" => "/data",
            _ => continue,
        };
        let named = items(service.get("volumes")).iter().filter_map(scalar).any(|v| {
            let mut parts = v.split(':');
            let (source, target) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
            target == data && declared.iter().any(|d| d == source)
        });
        if !named {
            problems.push(format!(
                "{COMPOSE} {name}: {data} is not on a named volume; its data would not survive"
            ));
        }
    }
    problems
}
