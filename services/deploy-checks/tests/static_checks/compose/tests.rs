//! Each check of `docker-compose.yml` on the repository's files, and on copies broken on purpose.

use super::*;
use crate::repo::{COLLECTOR, GRAFANA_DATASOURCES, HAPROXY, PROMETHEUS};
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
fn disagreeing_partitions_fail() {
    let mut repo = Repo::load();
    repo.edit_after(
        COMPOSE,
        GATEWAY,
        "SC_REDIS__PARTITIONS: \"64\"",
        "SC_REDIS__PARTITIONS: \"4\"",
    );
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
