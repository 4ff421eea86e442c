//! Static checks of the deployment files against each other and against the services'
//! real settings. No Docker or Kubernetes is needed: everything is parsed.
//!
//! Layout:
//! * `repo`: the files as text, and edits for the failure tests;
//! * `formats`: parsers for Dockerfiles, HAProxy configuration, `.env` and `${…}`;
//! * `services`: our three services, and an environment loaded into their `Settings`;
//! * `image`: `deploy/Dockerfile`;
//! * `compose`: `docker-compose.yml` with HAProxy, Prometheus, the collector and Grafana;
//! * `k8s`: `deploy/k8s/`;
//! * `grafana`: the starter dashboard, and the metric names `docs/observability.md` quotes,
//!   against the names the services' registries expose.
//!
//! Each check is a function from the files to a list of problems (empty: passed). The test
//! beside it runs it on the repository's files, and at least one more test breaks a copy
//! of them on purpose and sees the check report it: a check that cannot fail is no check.

#[path = "static_checks/compose.rs"]
mod compose;
#[path = "static_checks/formats.rs"]
mod formats;
#[path = "static_checks/grafana.rs"]
mod grafana;
#[path = "static_checks/image.rs"]
mod image;
#[path = "static_checks/k8s.rs"]
mod k8s;
#[path = "static_checks/repo.rs"]
mod repo;
#[path = "static_checks/services.rs"]
mod services;

/// What a check found wrong, one sentence each; empty when it passed.
pub type Problems = Vec<String>;

/// Asserts that a check found nothing wrong.
#[track_caller]
pub fn assert_passes(problems: Problems) {
    assert!(
        problems.is_empty(),
        "{} problem(s):\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

/// Asserts that a check found a problem whose text contains `expected`.
#[track_caller]
pub fn assert_fails(problems: Problems, expected: &str) {
    assert!(
        problems.iter().any(|p| p.contains(expected)),
        "expected a problem mentioning `{expected}`, got {problems:#?}"
    );
}
