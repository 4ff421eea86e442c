//! Selectors, disruption budgets and autoscalers; locked-down pods; the kustomization's list.

use super::*;
use crate::repo::SECRET_EXAMPLE;

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
