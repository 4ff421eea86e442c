//! How our pods are reached, watched and stopped: ports, probes, traces, the grace period.

use super::*;
use crate::services::{otlp_endpoint_problems, url_host_port};

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
