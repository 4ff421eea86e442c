//! Each check of `deploy/k8s/` on the repository's files, and on copies broken on purpose.

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
    repo.edit(CONFIG, "SC_REDIS__PARTITIONS: \"64\"", "SC_REDIS__PARTITIONS: 64");
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
