//! `docker-compose.yml` (with `.env.example`), and the files it mounts: the HAProxy,
//! Prometheus, OpenTelemetry collector and Grafana configurations.

use crate::Problems;
use crate::formats::{compose_secs, entries, haproxy_secs, interpolate, items, port_of, scalar, str_at, u64_at};
use crate::image::image_env;
use crate::repo::{COMPOSE, ENV_EXAMPLE, HAPROXY, PROMETHEUS, Repo};
use crate::services::{Component, Facts, listens_on_all_interfaces, load, url_host_port};
use serde_yaml::Value;
use std::collections::BTreeMap;

// A file included by `#[path]` counts as a `mod.rs`: its modules need a path too.
#[path = "compose/observability.rs"]
mod observability;
#[cfg(test)]
#[path = "compose/tests.rs"]
mod tests;

pub use observability::{collector_is_wired, grafana_is_wired, traces_are_exported};

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
    // The streams are partitioned by room: a gateway and a message service that disagree on the
    // prefix or the partition count never meet.
    let buses: BTreeMap<_, _> = facts.iter().filter_map(|(n, f)| Some((n, f.redis.as_ref()?))).collect();
    if let Some((first, (_, prefix, partitions))) = buses.iter().next() {
        for (name, (_, p, s)) in &buses {
            if (p, s) != (prefix, partitions) {
                problems.push(format!(
                    "{COMPOSE} {name}: redis key_prefix/partitions {p}/{s} differ from {first}'s {prefix}/{partitions}"
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

/// Ports: the gateways' message-service endpoints name a message service on its gRPC port;
/// the balancer publishes 8080 and sends traffic to the gateways' public port and health
/// checks to their ops `/readyz`; Prometheus scrapes every replica's ops port.
pub fn ports_line_up(repo: &Repo) -> Problems {
    let compose = repo.compose();
    let (facts, _) = facts(repo);
    let all: BTreeMap<String, &Value> = services(&compose).into_iter().collect();
    let mut problems = Problems::new();

    for (name, f) in &facts {
        for endpoint in &f.endpoints {
            let Some((host, port)) = url_host_port(endpoint) else {
                problems.push(format!("{COMPOSE} {name}: cannot read endpoint {endpoint}"));
                continue;
            };
            match facts.get(&host) {
                Some(target) if target.service == Component::MessageService => {
                    if port != Some(target.public.port()) {
                        problems.push(format!(
                            "{COMPOSE} {name}: endpoint {endpoint} is not {host}'s gRPC port {}",
                            target.public.port()
                        ));
                    }
                }
                _ => problems.push(format!(
                    "{COMPOSE} {name}: endpoint {endpoint} is no message service of ours"
                )),
            }
        }
    }

    problems.extend(balancer(repo, &all, &facts));
    problems.extend(prometheus(repo, &all, &facts));
    problems
}

/// The published `host:container` ports of a compose service.
fn published(service: &Value) -> Vec<(Option<u16>, u16)> {
    items(service.get("ports"))
        .iter()
        .filter_map(|p| match p {
            Value::Mapping(_) => Some((at_port(p, "published"), at_port(p, "target")?)),
            other => {
                let text = scalar(other)?;
                let text = text.split('/').next().unwrap_or_default();
                let parts: Vec<&str> = text.rsplitn(3, ':').collect();
                Some((parts.get(1).and_then(|p| p.parse().ok()), parts[0].parse().ok()?))
            }
        })
        .collect()
}

fn at_port(value: &Value, key: &str) -> Option<u16> {
    value.get(key).and_then(scalar).and_then(|p| p.parse().ok())
}

fn balancer(repo: &Repo, all: &BTreeMap<String, &Value>, facts: &BTreeMap<String, Facts>) -> Problems {
    let mut problems = Problems::new();
    let mounts_config = |service: &&Value| {
        items(service.get("volumes"))
            .iter()
            .filter_map(scalar)
            .any(|v| v.trim_start_matches("./").starts_with(HAPROXY))
    };
    let Some((name, service)) = all.iter().find(|(_, s)| mounts_config(s)) else {
        return vec![format!("{COMPOSE}: no service mounts {HAPROXY}")];
    };
    let haproxy = repo.haproxy();
    let gateway_replicas: u64 = facts
        .iter()
        .filter(|(n, f)| f.service == Component::Gateway && !optional(all[*n]))
        .map(|(n, _)| replicas(all[n]))
        .sum();

    // The one way in: 8080 on the host, to a port HAProxy binds.
    let binds: Vec<u16> = haproxy
        .sections("frontend")
        .flat_map(|f| f.lines_starting(&["bind"]))
        .filter_map(|l| l.get(1).and_then(|a| port_of(a)))
        .collect();
    let ports = published(service);
    if !ports
        .iter()
        .any(|(host, container)| *host == Some(8080) && binds.contains(container))
    {
        problems.push(format!(
            "{COMPOSE} {name}: publishes {ports:?}, none of which is 8080 to a port {HAPROXY} binds ({binds:?})"
        ));
    }

    let defaults = haproxy.sections("defaults").next();
    for frontend in haproxy.sections("frontend") {
        let backend_name = frontend
            .lines_starting(&["default_backend"])
            .first()
            .and_then(|l| l.get(1).cloned());
        let Some(backend) = backend_name.as_deref().and_then(|b| haproxy.section("backend", b)) else {
            problems.push(format!(
                "{HAPROXY}: frontend {:?} has no default_backend that exists",
                frontend.name
            ));
            continue;
        };
        let in_backend_or_defaults = |keyword: &[&str]| {
            backend
                .lines_starting(keyword)
                .first()
                .map(|l| l.to_vec())
                .or_else(|| defaults.and_then(|d| d.lines_starting(keyword).first().map(|l| l.to_vec())))
        };
        // Long-lived websockets, and a second chance on another gateway.
        let tunnel =
            in_backend_or_defaults(&["timeout", "tunnel"]).and_then(|l| l.get(2).and_then(|t| haproxy_secs(t)));
        if tunnel.is_none_or(|t| t < 600.0) {
            problems.push(format!(
                "{HAPROXY}: `timeout tunnel` is {tunnel:?} s; websockets need at least 10 minutes"
            ));
        }
        for keyword in [&["option", "redispatch"][..], &["retries"][..]] {
            if in_backend_or_defaults(keyword).is_none() {
                problems.push(format!(
                    "{HAPROXY}: backend {:?} has no `{}`",
                    backend.name,
                    keyword.join(" ")
                ));
            }
        }
        let check_path = backend
            .lines_starting(&["http-check", "send"])
            .iter()
            .find_map(|l| l.iter().position(|w| w == "uri").and_then(|i| l.get(i + 1).cloned()))
            .or_else(|| {
                backend
                    .lines_starting(&["option", "httpchk"])
                    .first()
                    .and_then(|l| l.iter().skip(2).find(|w| w.starts_with('/')).cloned())
            });
        if check_path.as_deref() != Some("/readyz") {
            problems.push(format!(
                "{HAPROXY}: backend {:?} health-checks {check_path:?}, not /readyz",
                backend.name
            ));
        }
        let default_server: Vec<String> = backend.lines_starting(&["default-server"]).concat();
        let servers: Vec<Vec<String>> = backend
            .lines
            .iter()
            .filter(|l| l[0] == "server" || l[0] == "server-template")
            .cloned()
            .collect();
        if servers.is_empty() {
            problems.push(format!("{HAPROXY}: backend {:?} has no servers", backend.name));
        }
        for line in servers {
            let (count, address, params) = match line[0].as_str() {
                "server-template" if line.len() >= 4 => (line[2].parse::<u64>().ok(), &line[3], &line[4..]),
                "server" if line.len() >= 3 => (Some(1), &line[2], &line[3..]),
                _ => {
                    problems.push(format!("{HAPROXY}: cannot read `{}`", line.join(" ")));
                    continue;
                }
            };
            let params: Vec<&String> = default_server.iter().skip(1).chain(params).collect();
            let param = |key: &str| params.iter().position(|p| *p == key).and_then(|i| params.get(i + 1));
            let (host, port) = address.rsplit_once(':').unwrap_or((address, ""));
            let Some(gateway) = facts.get(host).filter(|f| f.service == Component::Gateway) else {
                problems.push(format!(
                    "{HAPROXY}: server {address} is not a gateway service of {COMPOSE}"
                ));
                continue;
            };
            if port.parse().ok() != Some(gateway.public.port()) {
                problems.push(format!(
                    "{HAPROXY}: server {address} is not the gateway's listen port {}",
                    gateway.public.port()
                ));
            }
            if !params.iter().any(|p| *p == "check") {
                problems.push(format!("{HAPROXY}: server {address} is not health-checked (`check`)"));
            }
            let check_port = param("port").and_then(|p| p.parse::<u16>().ok());
            if check_port != Some(gateway.ops.port()) {
                problems.push(format!(
                    "{HAPROXY}: server {address} is health-checked on port {check_port:?}, not the gateway's ops port {}",
                    gateway.ops.port()
                ));
            }
            if count.unwrap_or(0) < gateway_replicas {
                problems.push(format!(
                    "{HAPROXY}: {count:?} server slot(s) for {gateway_replicas} gateway replicas"
                ));
            }
            // Replicas share one name: only a DNS resolver finds them all, and follows them.
            match param("resolvers").and_then(|r| haproxy.section("resolvers", r)) {
                None => problems.push(format!(
                    "{HAPROXY}: server {address} has no `resolvers` section that exists"
                )),
                Some(resolvers) => {
                    let docker_dns = resolvers
                        .lines_starting(&["nameserver"])
                        .iter()
                        .any(|l| l.get(2).map(String::as_str) == Some("127.0.0.11:53"));
                    if !docker_dns {
                        problems.push(format!(
                            "{HAPROXY}: resolvers {:?} do not ask Docker's DNS 127.0.0.11:53",
                            resolvers.name
                        ));
                    }
                }
            }
        }
    }
    problems
}

fn prometheus(repo: &Repo, all: &BTreeMap<String, &Value>, facts: &BTreeMap<String, Facts>) -> Problems {
    let mut problems = Problems::new();
    let config = repo.yaml(PROMETHEUS);
    let mut scraped = Vec::new();
    for job in items(config.get("scrape_configs")) {
        let job_name = str_at(job, &["job_name"]).unwrap_or("?");
        for sd in items(job.get("dns_sd_configs")) {
            let port = u64_at(sd, &["port"]);
            for name in items(sd.get("names")).iter().filter_map(scalar) {
                match facts.get(&name) {
                    Some(f) => {
                        if port != Some(f.ops.port().into()) {
                            problems.push(format!(
                                "{PROMETHEUS} job {job_name}: scrapes {name} on port {port:?}, not its ops port {}",
                                f.ops.port()
                            ));
                        }
                        scraped.push(name);
                    }
                    None if all.contains_key(&name) => {}
                    None => problems.push(format!(
                        "{PROMETHEUS} job {job_name}: {name} is no service of {COMPOSE}"
                    )),
                }
            }
        }
        for target in items(job.get("static_configs"))
            .iter()
            .flat_map(|s| items(s.get("targets")))
        {
            let target = scalar(target).unwrap_or_default();
            let host = target.rsplit_once(':').map_or(target.as_str(), |(host, _)| host);
            if let Some(f) = facts.get(host) {
                problems.push(format!(
                    "{PROMETHEUS} job {job_name}: scrapes {target} statically, which finds one replica; use dns_sd_configs (port {})",
                    f.ops.port()
                ));
            }
        }
    }
    for (name, f) in facts {
        if !optional(all[name]) && !scraped.contains(name) {
            problems.push(format!(
                "{PROMETHEUS}: no dns_sd_configs job scrapes {name} (its ops port {})",
                f.ops.port()
            ));
        }
    }
    problems
}
