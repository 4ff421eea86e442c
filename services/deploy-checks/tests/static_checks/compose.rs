//! `docker-compose.yml` (with `.env.example`), and the files it mounts: the HAProxy,
//! Prometheus, OpenTelemetry collector and Grafana configurations.

use crate::Problems;
use crate::formats::{
    compose_secs, entries, haproxy_secs, interpolate, items, port_of, scalar, str_at, u64_at, yaml_documents,
};
use crate::image::image_env;
use crate::repo::{
    COLLECTOR, COMPOSE, DASHBOARD, ENV_EXAMPLE, GRAFANA_DASHBOARDS, GRAFANA_DATASOURCES, HAPROXY, PROMETHEUS, Repo,
};
use crate::services::{
    Component, Facts, collector_port, listens_on_all_interfaces, load, otlp_endpoint_problems, url_host_port,
};
use serde_yaml::Value;
use std::collections::BTreeMap;

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

/// The collector: the compose service loads the file it mounts, its pipelines use only
/// components it defines, and it exports to a service of the compose file.
pub fn collector_is_wired(repo: &Repo) -> Problems {
    let compose = repo.compose();
    let all: BTreeMap<String, &Value> = services(&compose).into_iter().collect();
    let mut problems = Problems::new();
    let Some((name, service)) = all
        .iter()
        .find(|(_, s)| str_at(s, &["image"]).is_some_and(|i| i.starts_with("otel/opentelemetry-collector")))
    else {
        return vec![format!("{COMPOSE}: no OpenTelemetry collector service")];
    };
    let mount = items(service.get("volumes"))
        .iter()
        .filter_map(scalar)
        .find(|v| v.trim_start_matches("./").starts_with(COLLECTOR));
    let command: Vec<String> = items(service.get("command")).iter().filter_map(scalar).collect();
    match mount.as_deref().and_then(|m| m.split(':').nth(1)) {
        None => problems.push(format!("{COMPOSE} {name}: does not mount {COLLECTOR}")),
        Some(path) if !command.contains(&format!("--config={path}")) => problems.push(format!(
            "{COMPOSE} {name}: mounts the config at {path} but runs {command:?}"
        )),
        Some(_) => {}
    }
    let config = match yaml_documents(repo.text(COLLECTOR)) {
        Ok(mut docs) if docs.len() == 1 => docs.remove(0),
        _ => return vec![format!("{COLLECTOR}: not one YAML document")],
    };
    let pipelines = entries(config.get("service").and_then(|s| s.get("pipelines")));
    if pipelines.is_empty() {
        problems.push(format!("{COLLECTOR}: no pipelines"));
    }
    for (pipeline, spec) in pipelines {
        for kind in ["receivers", "processors", "exporters"] {
            for component in items(spec.get(kind)).iter().filter_map(scalar) {
                if config.get(kind).and_then(|k| k.get(component.as_str())).is_none() {
                    problems.push(format!(
                        "{COLLECTOR}: pipeline {pipeline} uses {kind} `{component}`, which is not defined"
                    ));
                }
            }
        }
    }
    for (exporter, spec) in entries(config.get("exporters")) {
        let Some(endpoint) = str_at(spec, &["endpoint"]) else {
            continue;
        };
        let host = endpoint
            .split("://")
            .last()
            .unwrap_or_default()
            .split(':')
            .next()
            .unwrap_or_default();
        if !all.contains_key(host) {
            problems.push(format!(
                "{COLLECTOR}: exporter {exporter} sends to `{host}`, which is no service of {COMPOSE}"
            ));
        }
    }
    problems
}

/// The collector service of the compose file (its image is the OpenTelemetry collector).
fn collector(all: &BTreeMap<String, &Value>) -> Option<String> {
    all.iter()
        .find(|(_, s)| str_at(s, &["image"]).is_some_and(|i| i.starts_with("otel/opentelemetry-collector")))
        .map(|(name, _)| name.clone())
}

/// Traces: each of our services in the default topology exports them, to the collector
/// service, on the port its OTLP receiver has for the protocol, in the shape that protocol
/// takes; and the collector has a traces pipeline fed by that receiver. (No `depends_on`:
/// spans are batched and dropped while the collector is away, nothing waits for it.)
pub fn traces_are_exported(repo: &Repo) -> Problems {
    let compose = repo.compose();
    let (facts, _) = facts(repo);
    let all: BTreeMap<String, &Value> = services(&compose).into_iter().collect();
    let mut problems = Problems::new();
    let Some(collector) = collector(&all) else {
        return vec![format!("{COMPOSE}: no OpenTelemetry collector service")];
    };
    let config = match yaml_documents(repo.text(COLLECTOR)) {
        Ok(mut docs) if docs.len() == 1 => docs.remove(0),
        _ => return vec![format!("{COLLECTOR}: not one YAML document")],
    };
    let fed = entries(config.get("service").and_then(|s| s.get("pipelines")))
        .into_iter()
        .any(|(name, spec)| {
            (name == "traces" || name.starts_with("traces/"))
                && items(spec.get("receivers"))
                    .iter()
                    .filter_map(scalar)
                    .any(|r| r == "otlp")
        });
    if !fed {
        problems.push(format!("{COLLECTOR}: no traces pipeline takes the `otlp` receiver"));
    }
    for (name, f) in &facts {
        let Some((endpoint, protocol)) = &f.otlp else {
            if !optional(all[name]) {
                problems.push(format!(
                    "{COMPOSE} {name}: exports no traces; set SC_TELEMETRY__OTLP_ENDPOINT to the collector"
                ));
            }
            continue;
        };
        let shape = otlp_endpoint_problems(endpoint, *protocol);
        if !shape.is_empty() {
            problems.extend(shape.into_iter().map(|p| format!("{COMPOSE} {name}: {p}")));
            continue;
        }
        let Some((host, port)) = url_host_port(endpoint) else {
            continue;
        };
        if host != collector {
            problems.push(format!(
                "{COMPOSE} {name}: sends traces to `{host}`, not to the collector service {collector}"
            ));
        } else if port != collector_port(&config, *protocol) {
            problems.push(format!(
                "{COMPOSE} {name}: sends {protocol:?} OTLP to port {port:?}; {COLLECTOR} receives it on {:?}",
                collector_port(&config, *protocol)
            ));
        }
    }
    problems
}

/// `host path:container path[:mode]` volume mounts, sources relative to the repository.
fn mounts(service: &Value) -> Vec<(String, String)> {
    items(service.get("volumes"))
        .iter()
        .filter_map(scalar)
        .filter_map(|v| {
            let mut parts = v.split(':');
            let (source, target) = (parts.next()?, parts.next()?);
            source.starts_with("./").then(|| {
                (
                    source.trim_start_matches("./").trim_end_matches('/').to_owned(),
                    target.to_owned(),
                )
            })
        })
        .collect()
}

/// Where a file of the repository appears inside a container, through its bind mounts.
fn container_path(mounts: &[(String, String)], path: &str) -> Option<String> {
    mounts.iter().find_map(|(source, target)| {
        if path == source {
            Some(target.clone())
        } else {
            let rest = path.strip_prefix(source.as_str())?.strip_prefix('/')?;
            Some(format!("{}/{rest}", target.trim_end_matches('/')))
        }
    })
}

/// Grafana: it loads the data source and dashboard provisioning from Grafana's provisioning
/// folders, the dashboard file sits where the provider looks, the data source is the
/// compose Prometheus on its port and the default one (the dashboard takes the default
/// through its `datasource` variable), and Grafana starts after Prometheus.
pub fn grafana_is_wired(repo: &Repo) -> Problems {
    let compose = repo.compose();
    let all: BTreeMap<String, &Value> = services(&compose).into_iter().collect();
    let Some((name, service)) = all
        .iter()
        .find(|(_, s)| str_at(s, &["image"]).is_some_and(|i| i.starts_with("grafana/grafana")))
    else {
        return vec![format!("{COMPOSE}: no Grafana service")];
    };
    let mut problems = Problems::new();
    let mounts = mounts(service);
    let mut at = |file: &str, folder: &str| match container_path(&mounts, file) {
        Some(path) if path.starts_with(folder) => Some(path),
        Some(path) => {
            problems.push(format!(
                "{COMPOSE} {name}: {file} is at {path}, outside Grafana's {folder}"
            ));
            None
        }
        None => {
            problems.push(format!("{COMPOSE} {name}: does not mount {file}"));
            None
        }
    };
    at(GRAFANA_DATASOURCES, "/etc/grafana/provisioning/datasources/");
    at(GRAFANA_DASHBOARDS, "/etc/grafana/provisioning/dashboards/");
    let dashboard = at(DASHBOARD, "/");

    let provider_paths: Vec<String> = yaml_documents(repo.text(GRAFANA_DASHBOARDS))
        .unwrap_or_default()
        .iter()
        .flat_map(|d| items(d.get("providers")).to_vec())
        .filter_map(|p| str_at(&p, &["options", "path"]).map(|s| s.trim_end_matches('/').to_owned()))
        .collect();
    if let Some(dashboard) = dashboard
        && !provider_paths.iter().any(|p| dashboard.starts_with(&format!("{p}/")))
    {
        problems.push(format!(
            "{GRAFANA_DASHBOARDS}: no provider path {provider_paths:?} holds the dashboard at {dashboard}"
        ));
    }

    let prometheus_port = |prometheus: &Value| {
        items(prometheus.get("command"))
            .iter()
            .filter_map(scalar)
            .find_map(|a| a.strip_prefix("--web.listen-address=").and_then(port_of))
            .unwrap_or(9090)
    };
    let sources: Vec<Value> = yaml_documents(repo.text(GRAFANA_DATASOURCES))
        .unwrap_or_default()
        .iter()
        .flat_map(|d| items(d.get("datasources")).to_vec())
        .filter(|d| str_at(d, &["type"]) == Some("prometheus"))
        .collect();
    match sources.iter().find(|d| d.get("isDefault") == Some(&Value::Bool(true))) {
        None => problems.push(format!(
            "{GRAFANA_DATASOURCES}: no default Prometheus data source, which the dashboard's `datasource` variable takes"
        )),
        Some(source) => {
            let url = str_at(source, &["url"]).unwrap_or_default();
            match url_host_port(url) {
                Some((host, port)) => match all.get(&host) {
                    None => problems.push(format!(
                        "{GRAFANA_DATASOURCES}: {url} is no service of {COMPOSE}"
                    )),
                    Some(prometheus) => {
                        if port.unwrap_or(80) != prometheus_port(prometheus) {
                            problems.push(format!(
                                "{GRAFANA_DATASOURCES}: {url} is not {host}'s port {}",
                                prometheus_port(prometheus)
                            ));
                        }
                        let waits = entries(service.get("depends_on")).iter().any(|(d, _)| *d == host)
                            || items(service.get("depends_on")).iter().filter_map(scalar).any(|d| d == host);
                        if !waits {
                            problems.push(format!("{COMPOSE} {name}: does not start after {host}"));
                        }
                    }
                },
                None => problems.push(format!("{GRAFANA_DATASOURCES}: cannot read the url {url:?}")),
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{assert_fails, assert_passes};

    const GATEWAY: &str = "\n  gateway:\n";
    const MESSAGE_SERVICE: &str = "\n  message-service:\n";

    #[test]
    fn images_are_built_from_dockerfile_targets() {
        assert_passes(images_are_dockerfile_targets(&Repo::load()));
    }

    #[test]
    fn a_build_target_that_is_no_stage_fails() {
        let mut repo = Repo::load();
        repo.edit(COMPOSE, "target: message-service", "target: messages");
        assert_fails(images_are_dockerfile_targets(&repo), "`messages` is not a stage");
        let mut repo = Repo::load();
        repo.edit(
            COMPOSE,
            "image: super-channels/gateway:latest",
            "image: super-channels/gw:latest",
        );
        assert_fails(images_are_dockerfile_targets(&repo), "name it after the target");
    }

    #[test]
    fn environments_load_into_the_real_settings() {
        assert_passes(environments_load(&Repo::load()));
    }

    #[test]
    fn a_mistyped_key_fails() {
        let mut repo = Repo::load();
        repo.edit_after(COMPOSE, GATEWAY, "SC_REDIS__URL:", "SC_REDIS_URL:");
        assert_fails(
            environments_load(&repo),
            "compose.yml gateway: its environment does not load",
        );
    }

    #[test]
    fn a_bad_value_fails() {
        let mut repo = Repo::load();
        repo.edit_after(
            COMPOSE,
            MESSAGE_SERVICE,
            "SC_DRAIN_TIMEOUT_SECS: \"10\"",
            "SC_DRAIN_TIMEOUT_SECS: 10s",
        );
        assert_fails(
            environments_load(&repo),
            "message-service: its environment does not load",
        );
    }

    #[test]
    fn a_short_secret_or_a_missing_variable_fails() {
        let mut repo = Repo::load();
        repo.edit(
            ENV_EXAMPLE,
            "SC_AUTH__SECRET=replace-me-with-at-least-32-random-bytes-base64",
            "SC_AUTH__SECRET=short",
        );
        assert_fails(environments_load(&repo), "auth.secret");
        let mut repo = Repo::load();
        repo.edit(ENV_EXAMPLE, "POSTGRES_PASSWORD=replace-me", "");
        assert_fails(environments_load(&repo), "`POSTGRES_PASSWORD` is not set");
    }

    #[test]
    fn disagreeing_shards_fail() {
        let mut repo = Repo::load();
        repo.edit_after(COMPOSE, GATEWAY, "SC_REDIS__SHARDS: \"8\"", "SC_REDIS__SHARDS: \"4\"");
        assert_fails(environments_load(&repo), "differ from");
    }

    #[test]
    fn health_checks_and_start_order_are_sound() {
        assert_passes(health_checks_and_start_order(&Repo::load()));
    }

    #[test]
    fn a_health_check_that_is_not_probe_ready_fails() {
        let mut repo = Repo::load();
        repo.edit(
            COMPOSE,
            "[\"CMD\", \"/usr/local/bin/gateway\", \"--probe-ready\"]",
            "[\"CMD\", \"curl\", \"-f\", \"http://localhost:9090/readyz\"]",
        );
        assert_fails(health_checks_and_start_order(&repo), "gateway: healthcheck test");
    }

    #[test]
    fn not_waiting_for_health_fails() {
        let mut repo = Repo::load();
        repo.edit_after(
            COMPOSE,
            MESSAGE_SERVICE,
            "condition: service_healthy",
            "condition: service_started",
        );
        assert_fails(
            health_checks_and_start_order(&repo),
            "message-service: depends on postgres without",
        );
        let mut repo = Repo::load();
        repo.edit_after(
            COMPOSE,
            GATEWAY,
            "      message-service:\n        condition: service_healthy\n",
            "",
        );
        assert_fails(
            health_checks_and_start_order(&repo),
            "connects to message-service but does not wait",
        );
    }

    #[test]
    fn waiting_for_a_service_without_a_health_check_fails() {
        let mut repo = Repo::load();
        repo.edit(
            COMPOSE,
            "    healthcheck:\n      test: [\"CMD\", \"redis-cli\", \"ping\"]\n",
            "    x-no-healthcheck:\n      test: [\"CMD\", \"redis-cli\", \"ping\"]\n",
        );
        assert_fails(
            health_checks_and_start_order(&repo),
            "waits for redis to be healthy, which has no health check",
        );
    }

    #[test]
    fn connecting_to_a_service_that_does_not_exist_fails() {
        let mut repo = Repo::load();
        repo.edit_after(COMPOSE, MESSAGE_SERVICE, "redis://redis:6379", "redis://cache:6379");
        assert_fails(
            health_checks_and_start_order(&repo),
            "connects to `cache`, which is no service",
        );
    }

    #[test]
    fn the_ports_line_up() {
        assert_passes(ports_line_up(&Repo::load()));
    }

    #[test]
    fn an_endpoint_on_another_port_fails() {
        let mut repo = Repo::load();
        repo.edit(COMPOSE, "http://message-service:50051", "http://message-service:50052");
        assert_fails(ports_line_up(&repo), "is not message-service's gRPC port 50051");
    }

    #[test]
    fn a_balancer_that_misses_the_gateways_fails() {
        let mut repo = Repo::load();
        repo.edit(HAPROXY, "gateway:8080 check port 9090", "gateway:8081 check port 9090");
        assert_fails(ports_line_up(&repo), "not the gateway's listen port 8080");
        let mut repo = Repo::load();
        repo.edit(HAPROXY, "gateway:8080 check port 9090", "gateway:8080 check");
        assert_fails(ports_line_up(&repo), "not the gateway's ops port 9090");
        let mut repo = Repo::load();
        repo.edit(HAPROXY, "uri /readyz", "uri /healthz");
        assert_fails(ports_line_up(&repo), "not /readyz");
        let mut repo = Repo::load();
        repo.edit(HAPROXY, "server-template gw 10", "server-template gw 2");
        assert_fails(ports_line_up(&repo), "for 3 gateway replicas");
        let mut repo = Repo::load();
        repo.edit(HAPROXY, "nameserver dns1 127.0.0.11:53", "nameserver dns1 8.8.8.8:53");
        assert_fails(ports_line_up(&repo), "Docker's DNS");
        let mut repo = Repo::load();
        repo.edit(HAPROXY, "timeout tunnel 1h", "timeout tunnel 30s");
        assert_fails(ports_line_up(&repo), "timeout tunnel");
        let mut repo = Repo::load();
        repo.edit(HAPROXY, "    option redispatch\n", "");
        assert_fails(ports_line_up(&repo), "no `option redispatch`");
    }

    #[test]
    fn a_balancer_published_elsewhere_fails() {
        let mut repo = Repo::load();
        repo.edit(HAPROXY, "bind :8080", "bind :80");
        assert_fails(ports_line_up(&repo), "none of which is 8080");
    }

    #[test]
    fn prometheus_on_the_wrong_port_or_missing_a_service_fails() {
        let mut repo = Repo::load();
        repo.edit(PROMETHEUS, "port: 9091", "port: 50051");
        assert_fails(ports_line_up(&repo), "not its ops port 9091");
        let mut repo = Repo::load();
        repo.edit(PROMETHEUS, "names: [gateway]", "names: [gateways]");
        assert_fails(ports_line_up(&repo), "no dns_sd_configs job scrapes gateway");
    }

    #[test]
    fn drain_replicas_and_volumes_are_sound() {
        assert_passes(drain_replicas_and_volumes(&Repo::load()));
    }

    #[test]
    fn a_grace_period_shorter_than_the_drain_fails() {
        let mut repo = Repo::load();
        repo.edit_after(COMPOSE, GATEWAY, "stop_grace_period: 20s", "stop_grace_period: 10s");
        assert_fails(drain_replicas_and_volumes(&repo), "gateway: stop_grace_period");
        let mut repo = Repo::load();
        repo.edit_after(
            COMPOSE,
            MESSAGE_SERVICE,
            "SC_DRAIN_TIMEOUT_SECS: \"10\"",
            "SC_DRAIN_TIMEOUT_SECS: \"30\"",
        );
        assert_fails(drain_replicas_and_volumes(&repo), "message-service: stop_grace_period");
    }

    #[test]
    fn one_replica_or_no_volume_fails() {
        let mut repo = Repo::load();
        repo.edit(COMPOSE, "replicas: 2", "replicas: 1");
        assert_fails(drain_replicas_and_volumes(&repo), "message-service: one replica");
        let mut repo = Repo::load();
        repo.edit(COMPOSE, "      - postgres-data:/var/lib/postgresql/data\n", "");
        assert_fails(
            drain_replicas_and_volumes(&repo),
            "postgres: /var/lib/postgresql/data is not on a named volume",
        );
    }

    #[test]
    fn the_collector_is_wired() {
        assert_passes(collector_is_wired(&Repo::load()));
    }

    #[test]
    fn a_collector_exporting_nowhere_fails() {
        let mut repo = Repo::load();
        repo.edit(COLLECTOR, "endpoint: jaeger:4317", "endpoint: tempo:4317");
        assert_fails(collector_is_wired(&repo), "sends to `tempo`");
        let mut repo = Repo::load();
        repo.edit(COLLECTOR, "exporters: [otlp/jaeger]", "exporters: [otlp/tempo]");
        assert_fails(collector_is_wired(&repo), "uses exporters `otlp/tempo`");
    }

    #[test]
    fn traces_are_exported_to_the_collector() {
        assert_passes(traces_are_exported(&Repo::load()));
    }

    #[test]
    fn a_service_without_traces_or_aimed_elsewhere_fails() {
        let mut repo = Repo::load();
        repo.edit_after(
            COMPOSE,
            GATEWAY,
            "      SC_TELEMETRY__OTLP_ENDPOINT: http://otel-collector:4317\n",
            "",
        );
        assert_fails(traces_are_exported(&repo), "gateway: exports no traces");
        let mut repo = Repo::load();
        repo.edit_after(
            COMPOSE,
            MESSAGE_SERVICE,
            "http://otel-collector:4317",
            "http://jaeger:4317",
        );
        assert_fails(traces_are_exported(&repo), "sends traces to `jaeger`");
        let mut repo = Repo::load();
        repo.edit_after(
            COMPOSE,
            GATEWAY,
            "http://otel-collector:4317",
            "http://otel-collector:4318",
        );
        assert_fails(traces_are_exported(&repo), "receives it on Some(4317)");
        let mut repo = Repo::load();
        repo.edit_after(
            COMPOSE,
            GATEWAY,
            "http://otel-collector:4317",
            "http://otel-collector:4317/v1/traces",
        );
        assert_fails(traces_are_exported(&repo), "a gRPC endpoint has no path");
        let mut repo = Repo::load();
        repo.edit(COLLECTOR, "receivers: [otlp]", "receivers: []");
        assert_fails(
            traces_are_exported(&repo),
            "no traces pipeline takes the `otlp` receiver",
        );
    }

    #[test]
    fn grafana_is_provisioned() {
        assert_passes(grafana_is_wired(&Repo::load()));
    }

    #[test]
    fn grafana_missing_its_files_or_prometheus_fails() {
        let mut repo = Repo::load();
        repo.edit(
            COMPOSE,
            "      - ./deploy/grafana/provisioning/datasources:/etc/grafana/provisioning/datasources:ro\n",
            "",
        );
        assert_fails(
            grafana_is_wired(&repo),
            "does not mount deploy/grafana/provisioning/datasources",
        );
        let mut repo = Repo::load();
        repo.edit(
            COMPOSE,
            ":/etc/grafana/dashboards/super-channels.json:ro",
            ":/var/lib/dashboards/super-channels.json:ro",
        );
        assert_fails(grafana_is_wired(&repo), "no provider path");
        let mut repo = Repo::load();
        repo.edit(
            GRAFANA_DATASOURCES,
            "url: http://prometheus:9090",
            "url: http://prometheus:9091",
        );
        assert_fails(grafana_is_wired(&repo), "is not prometheus's port 9090");
        let mut repo = Repo::load();
        repo.edit(
            GRAFANA_DATASOURCES,
            "url: http://prometheus:9090",
            "url: http://victoria:8428",
        );
        assert_fails(grafana_is_wired(&repo), "is no service of");
        let mut repo = Repo::load();
        repo.edit(GRAFANA_DATASOURCES, "isDefault: true", "isDefault: false");
        assert_fails(grafana_is_wired(&repo), "no default Prometheus data source");
    }
}
