//! Ports: the endpoints between our services, the HAProxy balancer, Prometheus' scrapes.

use super::*;
use crate::formats::{haproxy_secs, port_of};
use crate::repo::{HAPROXY, PROMETHEUS};

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
