//! The observability services: the OpenTelemetry collector, the traces sent to it, Grafana.

use super::*;
use crate::formats::{port_of, yaml_documents};
use crate::repo::{COLLECTOR, DASHBOARD, GRAFANA_DASHBOARDS, GRAFANA_DATASOURCES};
use crate::services::{collector_port, otlp_endpoint_problems};

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
