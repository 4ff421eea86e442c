//! Static checks of what deploys Super Channels: `docker-compose.yml`, `.env.example`,
//! `deploy/Dockerfile`, `deploy/haproxy/haproxy.cfg`, `deploy/prometheus.yml`, the
//! collector and Grafana configurations, the Grafana dashboard and the Kubernetes
//! manifests in `deploy/k8s/`.
//!
//! Everything is in `tests/static_checks.rs`: the files are parsed, each service's
//! environment is loaded into that service's real `Settings`, and the ports, probes,
//! selectors and drain timings are checked against each other. Each check has a test that
//! breaks a copy of the files on purpose and sees it fail.
//!
//! Run: `cargo test -p deploy-checks`. No Docker or Kubernetes is needed.
