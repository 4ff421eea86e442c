//! `deploy/Dockerfile`: one runtime target per service, built with locked dependencies,
//! run as a non-root user, with a health check, exposed ports and an environment that
//! the service's settings accept.

use crate::Problems;
use crate::formats::Dockerfile;
use crate::repo::{DOCKERFILE, Repo};
use crate::services::{Component, listens_on_all_interfaces, load};
use std::collections::BTreeMap;
use std::path::Path;

/// The image's own environment for a service, `SC_*` included, or what is wrong with it.
pub fn image_env(dockerfile: &Dockerfile, service: Component) -> Result<BTreeMap<String, String>, String> {
    if dockerfile.stage(service.target()).is_none() {
        return Err(format!("{DOCKERFILE} has no `FROM … AS {}` stage", service.target()));
    }
    dockerfile
        .env(service.target())
        .map_err(|e| format!("{DOCKERFILE} stage {}: {e}", service.target()))
}

/// Every `cargo build` runs with `--locked` and `--release`, and the binary each runtime
/// target starts is copied from the output of such a build.
pub fn build_is_locked(repo: &Repo) -> Problems {
    let dockerfile = repo.dockerfile();
    let mut problems = Problems::new();
    let builds: Vec<(&str, &str)> = dockerfile
        .stages
        .iter()
        .flat_map(|s| {
            s.instructions
                .iter()
                .filter(|i| i.keyword == "RUN" && i.args.contains("cargo build"))
                .map(move |i| (s.name.as_deref().unwrap_or("?"), i.args.as_str()))
        })
        .collect();
    if builds.is_empty() {
        problems.push(format!("{DOCKERFILE} runs no `cargo build`"));
    }
    for (stage, run) in &builds {
        for flag in ["--locked", "--release"] {
            if !run.contains(flag) {
                problems.push(format!(
                    "{DOCKERFILE} stage {stage}: `cargo build` without {flag} (builds must use Cargo.lock as it is)"
                ));
            }
        }
    }
    for service in Component::ALL {
        let target = service.target();
        let Some(entrypoint) = dockerfile.entrypoint(target) else {
            problems.push(format!("{DOCKERFILE} stage {target}: no exec-form ENTRYPOINT"));
            continue;
        };
        let binary = &entrypoint[0];
        if Path::new(binary).file_name().and_then(|n| n.to_str()) != Some(service.binary()) {
            problems.push(format!(
                "{DOCKERFILE} stage {target}: ENTRYPOINT starts {binary}, not the `{}` binary",
                service.binary()
            ));
        }
        let copy = dockerfile.copies(target).into_iter().find(|c| &c.destination == binary);
        let built = copy.as_ref().and_then(|c| c.from.as_deref()).is_some_and(|from| {
            builds
                .iter()
                .any(|(stage, run)| *stage == from && run.contains(&format!("target/release/{}", service.binary())))
        });
        if !built {
            problems.push(format!(
                "{DOCKERFILE} stage {target}: {binary} is not copied from a stage whose `cargo build` produces target/release/{}",
                service.binary()
            ));
        }
    }
    problems
}

/// Each runtime target: a slim base, a non-root user, SIGTERM, a `--probe-ready` health
/// check, its ports exposed, an environment its settings load, listeners on every
/// interface, and the static files where its settings look for them.
pub fn runtime_targets(repo: &Repo) -> Problems {
    let dockerfile = repo.dockerfile();
    let mut problems = Problems::new();
    for service in Component::ALL {
        let target = service.target();
        let env = match image_env(&dockerfile, service) {
            Ok(env) => env,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        let mut problem = |text: String| problems.push(format!("{DOCKERFILE} stage {target}: {text}"));

        let base = dockerfile.base_image(target).unwrap_or_default();
        if !(base.contains("slim") || base.contains("distroless")) || base.starts_with("rust") {
            problem(format!("runs on {base}, not a slim runtime base"));
        }
        match dockerfile.last(target, "USER").map(|u| u.args.clone()) {
            None => problem("sets no USER, so it runs as root".into()),
            Some(user) => {
                let name = user.split(':').next().unwrap_or_default();
                if name == "root" || name == "0" {
                    problem(format!("runs as `USER {user}`, which is root"));
                }
            }
        }
        let signal = dockerfile.last(target, "STOPSIGNAL").map(|s| s.args.as_str());
        if signal != Some("SIGTERM") {
            problem(format!(
                "STOPSIGNAL is {signal:?}, not SIGTERM (which starts the drain)"
            ));
        }
        let entrypoint = dockerfile.entrypoint(target).unwrap_or_default();
        let expected: Vec<String> = entrypoint
            .first()
            .into_iter()
            .cloned()
            .chain(["--probe-ready".into()])
            .collect();
        match dockerfile.healthcheck(target) {
            Some(check) if check == expected => {}
            other => problem(format!("HEALTHCHECK CMD is {other:?}, expected {expected:?}")),
        }

        let facts = match load(service, &env, false) {
            Ok(facts) => facts,
            Err(e) => {
                problem(format!("its ENV does not load into the {target} settings: {e}"));
                continue;
            }
        };
        for p in listens_on_all_interfaces(&facts) {
            problem(p);
        }
        let exposed = dockerfile.exposed(target);
        for (what, port) in [("public", facts.public.port()), ("ops", facts.ops.port())] {
            if !exposed.contains(&port) {
                problem(format!("the {what} port {port} is not in EXPOSE {exposed:?}"));
            }
        }
        if let Some(dir) = &facts.static_dir {
            let copied = dockerfile.copies(target).into_iter().any(|c| {
                c.from.is_none()
                    && c.sources.iter().any(|s| s.trim_end_matches('/') == "static")
                    && Path::new(&c.destination) == dir
            });
            if !copied {
                problem(format!(
                    "static_dir is {}, but `static` is not copied there",
                    dir.display()
                ));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{assert_fails, assert_passes};

    #[test]
    fn the_build_is_locked_and_makes_every_binary() {
        assert_passes(build_is_locked(&Repo::load()));
    }

    #[test]
    fn an_unlocked_build_fails() {
        let mut repo = Repo::load();
        repo.edit(DOCKERFILE, "cargo build --release --locked", "cargo build --release");
        assert_fails(build_is_locked(&repo), "without --locked");
    }

    #[test]
    fn a_binary_the_build_does_not_produce_fails() {
        let mut repo = Repo::load();
        repo.edit(DOCKERFILE, " target/release/super-channels /out/", " /out/");
        assert_fails(build_is_locked(&repo), "target/release/super-channels");
        let mut repo = Repo::load();
        repo.edit(
            DOCKERFILE,
            "ENTRYPOINT [\"/usr/local/bin/gateway\"]",
            "ENTRYPOINT [\"/usr/local/bin/message-service\"]",
        );
        assert_fails(build_is_locked(&repo), "not the `gateway` binary");
    }

    #[test]
    fn the_runtime_targets_are_sound() {
        assert_passes(runtime_targets(&Repo::load()));
    }

    #[test]
    fn a_missing_target_fails() {
        let mut repo = Repo::load();
        repo.edit(DOCKERFILE, "FROM runtime AS all-in-one", "FROM runtime AS allinone");
        assert_fails(runtime_targets(&repo), "no `FROM … AS all-in-one` stage");
    }

    #[test]
    fn root_fails() {
        let mut repo = Repo::load();
        repo.edit(DOCKERFILE, "WORKDIR /app\nUSER 10001:10001", "WORKDIR /app\nUSER root");
        assert_fails(runtime_targets(&repo), "stage gateway: runs as `USER root`");
    }

    #[test]
    fn a_fat_base_or_another_stop_signal_fails() {
        let mut repo = Repo::load();
        repo.edit(
            DOCKERFILE,
            "FROM debian:bookworm-slim AS runtime",
            "FROM rust:1.95-slim-bookworm AS runtime",
        );
        assert_fails(runtime_targets(&repo), "not a slim runtime base");
        let mut repo = Repo::load();
        repo.edit(DOCKERFILE, "STOPSIGNAL SIGTERM", "STOPSIGNAL SIGKILL");
        assert_fails(runtime_targets(&repo), "not SIGTERM");
    }

    #[test]
    fn a_health_check_of_another_binary_fails() {
        let mut repo = Repo::load();
        repo.edit(
            DOCKERFILE,
            "CMD [\"/usr/local/bin/message-service\", \"--probe-ready\"]",
            "CMD [\"/usr/local/bin/gateway\", \"--probe-ready\"]",
        );
        assert_fails(runtime_targets(&repo), "stage message-service: HEALTHCHECK");
    }

    #[test]
    fn a_mistyped_env_key_fails() {
        let mut repo = Repo::load();
        repo.edit(DOCKERFILE, "SC_OPS_LISTEN=0.0.0.0:9091", "SC_HTTP_LISTN=0.0.0.0:9091");
        assert_fails(
            runtime_targets(&repo),
            "does not load into the message-service settings",
        );
    }

    #[test]
    fn loopback_listeners_or_unexposed_ports_fail() {
        let mut repo = Repo::load();
        repo.edit(
            DOCKERFILE,
            "SC_GRPC_LISTEN=0.0.0.0:50051",
            "SC_GRPC_LISTEN=127.0.0.1:50051",
        );
        assert_fails(runtime_targets(&repo), "unreachable from outside the container");
        let mut repo = Repo::load();
        repo.edit(DOCKERFILE, "EXPOSE 50051 9091", "EXPOSE 50051");
        assert_fails(runtime_targets(&repo), "the ops port 9091 is not in EXPOSE");
    }

    #[test]
    fn static_files_elsewhere_fail() {
        let mut repo = Repo::load();
        repo.edit_after(
            DOCKERFILE,
            "FROM runtime AS gateway",
            "SC_STATIC_DIR=/app/static",
            "SC_STATIC_DIR=/srv/static",
        );
        assert_fails(runtime_targets(&repo), "static_dir is /srv/static");
    }
}
