//! Our three services, and an environment loaded into each one's real `Settings`: the
//! same `chat_common::settings::load_with_env` the binaries use (minus the process's own
//! environment), then the same `validate()`. A key the service does not know, or a value it
//! cannot take, fails here as it would at start-up.

use chat_common::telemetry::{OtlpProtocol, TelemetrySettings};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Gateway,
    MessageService,
    AllInOne,
}

impl Component {
    pub const ALL: [Component; 3] = [Component::Gateway, Component::MessageService, Component::AllInOne];

    /// The Dockerfile target (and image name) of the service.
    pub fn target(self) -> &'static str {
        match self {
            Component::Gateway => "gateway",
            Component::MessageService => "message-service",
            Component::AllInOne => "all-in-one",
        }
    }

    /// The binary cargo builds for it.
    pub fn binary(self) -> &'static str {
        match self {
            Component::Gateway => "gateway",
            Component::MessageService => "message-service",
            Component::AllInOne => "super-channels",
        }
    }

    pub fn from_target(target: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.target() == target)
    }

    /// The service an image is built from: our images are `[registry/]super-channels/<target>[:tag]`
    /// (others, such as `jaegertracing/all-in-one`, may share a target's name).
    pub fn from_image(image: &str) -> Option<Self> {
        let name = image.split('@').next().unwrap_or(image);
        let mut path = name.rsplit('/');
        let (_, owner) = (path.next(), path.next());
        if owner != Some(IMAGE_REPOSITORY) {
            return None;
        }
        Self::from_target(image_target(image))
    }
}

/// The path our images are published under, before the target name.
pub const IMAGE_REPOSITORY: &str = "super-channels";

/// `registry.example/super-channels/gateway:0.1.0@sha256:…` → `gateway`.
pub fn image_target(image: &str) -> &str {
    let name = image.split('@').next().unwrap_or(image);
    let name = name.rsplit('/').next().unwrap_or(name);
    name.split(':').next().unwrap_or(name)
}

/// What the checks need to know of a service's loaded settings.
#[derive(Debug, Clone)]
pub struct Facts {
    pub service: Component,
    /// The gateway's (and all-in-one's) `listen`; the message service's `grpc_listen`.
    pub public: SocketAddr,
    /// Where `/healthz`, `/readyz` and `/metrics` are served: `ops_listen`, or the
    /// message service's `ops_listen`.
    pub ops: SocketAddr,
    pub drain_timeout_secs: u64,
    pub static_dir: Option<PathBuf>,
    /// The gateway's `message_service.endpoints`.
    pub endpoints: Vec<String>,
    /// `redis.url`, `redis.key_prefix`, `redis.partitions`, for the services that use Redis.
    pub redis: Option<(String, String, u32)>,
    pub database_url: Option<String>,
    /// `telemetry.otlp_endpoint` and its protocol, when trace export is on.
    pub otlp: Option<(String, OtlpProtocol)>,
}

impl Facts {
    /// How long after SIGTERM the process may still be working: the drain bound, plus the
    /// second the gateway allows itself past it to see its sockets closed.
    pub fn stop_secs(&self) -> u64 {
        match self.service {
            Component::MessageService => self.drain_timeout_secs,
            Component::Gateway | Component::AllInOne => self.drain_timeout_secs + 1,
        }
    }
}

/// Loads `env` into the service's settings. With `complete`, the environment must be all
/// the service gets (secrets included), and the service's own `validate()` runs too.
pub fn load(service: Component, env: &BTreeMap<String, String>, complete: bool) -> Result<Facts, String> {
    use chat_common::settings::load_with_env;
    let env = env.iter().map(|(k, v)| (k.clone(), v.clone()));
    let error = |e: chat_common::settings::SettingsError| e.to_string();
    match service {
        Component::Gateway => {
            let s: gateway::settings::Settings =
                load_with_env(gateway::settings::DEFAULTS, None, env).map_err(error)?;
            if complete {
                s.validate().map_err(error)?;
            }
            Ok(Facts {
                service,
                public: s.listen,
                ops: s.ops_listen,
                drain_timeout_secs: s.drain_timeout_secs,
                static_dir: Some(s.static_dir),
                endpoints: s.message_service.endpoints,
                redis: Some((s.redis.url, s.redis.key_prefix, s.redis.partitions)),
                database_url: None,
                otlp: otlp(&s.telemetry),
            })
        }
        Component::MessageService => {
            let s: message_service::settings::Settings =
                load_with_env(message_service::settings::DEFAULTS, None, env).map_err(error)?;
            if complete {
                s.validate().map_err(error)?;
            }
            Ok(Facts {
                service,
                public: s.grpc_listen,
                ops: s.ops_listen,
                drain_timeout_secs: s.drain_timeout_secs,
                static_dir: None,
                endpoints: Vec::new(),
                redis: Some((s.redis.url, s.redis.key_prefix, s.redis.partitions)),
                database_url: Some(s.database.url),
                otlp: otlp(&s.telemetry),
            })
        }
        Component::AllInOne => {
            // The all-in-one has no `validate()`: its only rule is checked inside its
            // `Settings::load`, which reads the process environment, so it is repeated here.
            let s: all_in_one::Settings = load_with_env(all_in_one::DEFAULTS, None, env).map_err(error)?;
            if complete && s.bus_capacity == 0 {
                return Err("invalid configuration: `bus_capacity` must be at least 1".into());
            }
            Ok(Facts {
                service,
                public: s.listen,
                ops: s.ops_listen,
                // Its gateway runs with the gateway's defaults, drain included.
                drain_timeout_secs: gateway::settings::Settings::defaults().drain_timeout_secs,
                static_dir: Some(s.static_dir),
                endpoints: Vec::new(),
                redis: None,
                database_url: Some(s.database_url).filter(|u| !u.is_empty()),
                otlp: otlp(&s.telemetry),
            })
        }
    }
}

fn otlp(telemetry: &TelemetrySettings) -> Option<(String, OtlpProtocol)> {
    Some((telemetry.otlp_endpoint.clone(), telemetry.otlp_protocol)).filter(|(e, _)| !e.is_empty())
}

/// What is wrong with an OTLP endpoint for its protocol: gRPC takes `http(s)://host:port`
/// (a path would be ignored or refused), HTTP takes the full URL of the traces resource,
/// `…/v1/traces`, as it is used verbatim.
pub fn otlp_endpoint_problems(endpoint: &str, protocol: OtlpProtocol) -> Vec<String> {
    let mut problems = Vec::new();
    let Some((scheme, rest)) = endpoint.split_once("://") else {
        return vec![format!("OTLP endpoint {endpoint} is not a URL (http://host:port)")];
    };
    if scheme != "http" && scheme != "https" {
        problems.push(format!(
            "OTLP endpoint {endpoint}: scheme {scheme}, expected http or https"
        ));
    }
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    if url_host_port(endpoint).is_none_or(|(host, port)| host.is_empty() || port.is_none()) {
        problems.push(format!(
            "OTLP endpoint {endpoint}: name the port ({authority} has none)"
        ));
    }
    match protocol {
        OtlpProtocol::Grpc if !path.is_empty() => problems.push(format!(
            "OTLP endpoint {endpoint}: a gRPC endpoint has no path (/{path})"
        )),
        OtlpProtocol::Http if path != "v1/traces" => problems.push(format!(
            "OTLP endpoint {endpoint}: an HTTP endpoint is used as is and must end in /v1/traces"
        )),
        _ => {}
    }
    problems
}

/// The port a collector's OTLP receiver listens on for `protocol`, from its configuration
/// (`receivers.otlp.protocols.<grpc|http>.endpoint`; the collector's defaults otherwise).
pub fn collector_port(config: &serde_yaml::Value, protocol: OtlpProtocol) -> Option<u16> {
    let (key, default) = match protocol {
        OtlpProtocol::Grpc => ("grpc", 4317),
        OtlpProtocol::Http => ("http", 4318),
    };
    let protocols = config.get("receivers")?.get("otlp")?.get("protocols")?;
    let receiver = protocols.get(key)?;
    match receiver.get("endpoint").and_then(|e| e.as_str()) {
        Some(endpoint) => endpoint.rsplit_once(':')?.1.parse().ok(),
        None => Some(default),
    }
}

/// The sample names our services expose on `/metrics`, from their real registries: a
/// counter `x` is `x_total`, a histogram `x` is `x_bucket`, `x_sum` and `x_count`.
pub fn exposed_metrics() -> BTreeSet<String> {
    let mut registry = prometheus_client::registry::Registry::default();
    let gateway = gateway::metrics::Metrics::register(&mut registry);
    // A labelled family is encoded only once it has a member.
    let _ = gateway
        .errors
        .get_or_create(&gateway::metrics::CodeLabel { code: "internal" });
    let _ = message_service::metrics::Metrics::register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("the registries encode");
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let (Some(name), Some(kind)) = (words.next(), words.next()) else {
            continue;
        };
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            "summary" => &["", "_sum", "_count"],
            "info" => &["_info"],
            _ => &[""],
        };
        names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
    }
    names
}

/// In a container the listeners must bind every interface, or nothing outside the
/// container (balancer, probes from the kubelet, Prometheus) reaches them.
pub fn listens_on_all_interfaces(facts: &Facts) -> Vec<String> {
    [("public", facts.public), ("ops", facts.ops)]
        .into_iter()
        .filter(|(_, addr)| !addr.ip().is_unspecified())
        .map(|(what, addr)| {
            format!(
                "{}: the {what} listener binds {addr}, unreachable from outside the container; use 0.0.0.0",
                facts.service.target()
            )
        })
        .collect()
}

/// The host and port of an endpoint URL (`http://host:port`).
pub fn url_host_port(url: &str) -> Option<(String, Option<u16>)> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let authority = authority.rsplit_once('@').map(|(_, a)| a).unwrap_or(authority);
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host.to_owned(), Some(port.parse().ok()?))),
        None => Some((authority.to_owned(), None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mistyped_key_or_bad_value_does_not_load() {
        let env = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        assert!(load(Component::MessageService, &env(&[]), true).is_ok());
        assert!(load(Component::MessageService, &env(&[("SC_GRPC_LISTN", "0.0.0.0:1")]), true).is_err());
        assert!(
            load(
                Component::MessageService,
                &env(&[("SC_REDIS__PARTITIONS", "eight")]),
                true
            )
            .is_err()
        );
        // The gateway needs its secret: without it the load is incomplete.
        assert!(load(Component::Gateway, &env(&[]), false).is_ok());
        assert!(load(Component::Gateway, &env(&[]), true).is_err());
    }

    #[test]
    fn urls_and_images() {
        assert_eq!(
            url_host_port("postgres://u:p@db:5432/x"),
            Some(("db".into(), Some(5432)))
        );
        assert_eq!(url_host_port("redis://redis"), Some(("redis".into(), None)));
        assert_eq!(image_target("reg.example:5000/sc/gateway:1.0"), "gateway");
        assert_eq!(
            Component::from_image("super-channels/all-in-one"),
            Some(Component::AllInOne)
        );
        assert_eq!(Component::from_image("jaegertracing/all-in-one:1"), None);
    }

    #[test]
    fn otlp_endpoints_fit_their_protocol() {
        assert!(otlp_endpoint_problems("http://otel-collector:4317", OtlpProtocol::Grpc).is_empty());
        assert!(otlp_endpoint_problems("https://c.example:4318/v1/traces", OtlpProtocol::Http).is_empty());
        assert!(!otlp_endpoint_problems("otel-collector:4317", OtlpProtocol::Grpc).is_empty());
        assert!(!otlp_endpoint_problems("http://otel-collector", OtlpProtocol::Grpc).is_empty());
        assert!(!otlp_endpoint_problems("http://c:4317/v1/traces", OtlpProtocol::Grpc).is_empty());
        assert!(!otlp_endpoint_problems("http://c:4318", OtlpProtocol::Http).is_empty());
    }

    #[test]
    fn the_exposed_metrics_are_read_from_the_registries() {
        let names = exposed_metrics();
        for name in [
            "sc_gateway_connections",
            "sc_gateway_acks_total",
            "sc_gateway_send_seconds_bucket",
            "sc_message_service_commit_batch_size_count",
        ] {
            assert!(names.contains(name), "{name} missing from {names:?}");
        }
        assert!(!names.contains("sc_gateway_acks"));
    }
}
