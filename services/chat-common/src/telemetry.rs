//! Logs and traces.
//!
//! * Logs: readable text for people or JSON lines for machines; the level comes from
//!   configuration unless `RUST_LOG` is set. Every line written inside a traced operation
//!   carries `trace_id` and `span_id`, so a log search finds the trace and back.
//! * Traces: spans of the message path use the target [`TRACE_TARGET`] and are exported
//!   with OTLP (gRPC or HTTP) to `telemetry.otlp_endpoint`, sampled at
//!   `telemetry.sampling_ratio` (parent-based: a sampled caller keeps its trace whole).
//!   With no endpoint, those spans are disabled at their call sites and cost next to
//!   nothing.
//! * Propagation: W3C `traceparent`, in gRPC metadata and in bus entries.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt::Write as _;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The target of every span on the message path; the exporter takes exactly these.
pub const TRACE_TARGET: &str = "sc::trace";

#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    /// An `EnvFilter` directive, for example `info` or `info,gateway=debug`.
    pub level: String,
}

#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OtlpProtocol {
    Grpc,
    Http,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    /// Where spans go: `http://collector:4317` (gRPC) or `http://collector:4318/v1/traces`
    /// (HTTP). Empty: tracing export is off.
    pub otlp_endpoint: String,
    pub otlp_protocol: OtlpProtocol,
    /// Share of new traces recorded, 0.0 to 1.0.
    pub sampling_ratio: f64,
    /// Where this process runs (`production`, `staging` …): the resource's
    /// `deployment.environment`, so that one trace viewer can hold several.
    pub environment: String,
    /// This process among its service's replicas: the resource's `service.instance.id`.
    /// Empty: the host name (a container's or pod's) and the address it listens on,
    /// unique wherever two replicas share a host.
    pub instance_id: String,
}

impl TelemetrySettings {
    pub fn validate(&self) -> Result<(), crate::settings::SettingsError> {
        if !(0.0..=1.0).contains(&self.sampling_ratio) {
            return Err(crate::settings::rule(
                "telemetry.sampling_ratio",
                "must be between 0.0 and 1.0",
            ));
        }
        if self.environment.trim().is_empty() {
            return Err(crate::settings::rule(
                "telemetry.environment",
                "must name where this runs, for example production",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot set up the OTLP exporter for {endpoint}: {reason}")]
pub struct TelemetryError {
    endpoint: String,
    reason: String,
}

/// Flushes and stops the span exporter when dropped: keep it alive until `main` returns.
#[must_use = "dropping the guard stops trace export"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

/// Which process a span comes from: its service, the build, and the replica. Every span a
/// process exports carries these as resource attributes, so that a trace viewer shows
/// which instance did each hop.
#[derive(Debug, Clone)]
pub struct Identity {
    pub service: String,
    pub version: String,
    /// The replica, as [`TelemetrySettings::instance_id`] names it or, when that is empty,
    /// as [`Identity::new`] derives it.
    pub instance: String,
}

impl Identity {
    /// `service` at `version` (its crate's), listening on `listen`.
    pub fn new(service: &str, version: &str, listen: impl std::fmt::Display, telemetry: &TelemetrySettings) -> Self {
        let instance = if telemetry.instance_id.is_empty() {
            format!("{}@{listen}", host_name())
        } else {
            telemetry.instance_id.clone()
        };
        Self {
            service: service.to_owned(),
            version: version.to_owned(),
            instance,
        }
    }

    /// The OpenTelemetry resource: the SDK's own attributes and `OTEL_RESOURCE_ATTRIBUTES`,
    /// then `service.name`, `service.version`, `service.instance.id`, and the environment
    /// under both its long-standing name (`deployment.environment`) and the one newer
    /// semantic conventions use (`deployment.environment.name`), for viewers of either age.
    fn resource(&self, environment: &str) -> opentelemetry_sdk::Resource {
        use opentelemetry::KeyValue;
        opentelemetry_sdk::Resource::builder()
            .with_service_name(self.service.clone())
            .with_attributes([
                KeyValue::new("service.version", self.version.clone()),
                KeyValue::new("service.instance.id", self.instance.clone()),
                KeyValue::new("deployment.environment", environment.to_owned()),
                KeyValue::new("deployment.environment.name", environment.to_owned()),
            ])
            .build()
    }
}

/// This host's name: `HOSTNAME`, else the kernel's; a container's or pod's own.
pub fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

/// Installs logging and, when an endpoint is configured, trace export. Call once, inside
/// the tokio runtime. A second call (tests) keeps the first subscriber.
pub fn init(
    identity: &Identity,
    log: &LogSettings,
    telemetry: &TelemetrySettings,
) -> Result<TelemetryGuard, TelemetryError> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(&log.level))
        // The message-path spans are for the exporter only: off, they are never created.
        .add_directive(format!("{TRACE_TARGET}=off").parse().expect("a valid directive"));
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .event_format(LineFormat {
            json: log.format == LogFormat::Json,
            ansi: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        })
        .with_filter(filter);

    let mut provider = None;
    let traces = if telemetry.otlp_endpoint.is_empty() {
        None
    } else {
        let error = |reason: String| TelemetryError {
            endpoint: telemetry.otlp_endpoint.clone(),
            reason,
        };
        let exporter = match telemetry.otlp_protocol {
            OtlpProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(&telemetry.otlp_endpoint)
                .build(),
            OtlpProtocol::Http => opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(&telemetry.otlp_endpoint)
                .build(),
        }
        .map_err(|e| error(e.to_string()))?;
        // A message makes about ten spans: at thousands of messages a second the default
        // queue (2,048 spans) overflows and drops them, so queue more and export sooner.
        let batch = opentelemetry_sdk::trace::BatchSpanProcessor::builder(exporter)
            .with_batch_config(
                opentelemetry_sdk::trace::BatchConfigBuilder::default()
                    .with_max_queue_size(65_536)
                    .with_max_export_batch_size(4_096)
                    .with_scheduled_delay(std::time::Duration::from_millis(500))
                    .build(),
            )
            .build();
        let sdk = SdkTracerProvider::builder()
            .with_span_processor(batch)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                telemetry.sampling_ratio,
            ))))
            .with_resource(identity.resource(&telemetry.environment))
            .build();
        let tracer = sdk.tracer(identity.service.clone());
        provider = Some(sdk);
        Some(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(Targets::new().with_target(TRACE_TARGET, LevelFilter::TRACE)),
        )
    };
    let _ = tracing_subscriber::registry().with(logs).with(traces).try_init();
    Ok(TelemetryGuard { provider })
}

/// The `trace_id` and `span_id` of the current span, if it is being traced.
pub fn current_ids() -> Option<(String, String)> {
    let context = tracing::Span::current().context();
    let span = context.span();
    let span_context = span.span_context();
    span_context
        .is_valid()
        .then(|| (span_context.trace_id().to_string(), span_context.span_id().to_string()))
}

/// The W3C `traceparent` of a span, to carry it across a process boundary.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    carrier.remove("traceparent")
}

/// Whether `span` belongs to a trace that is being recorded. Spans of a trace the sampler
/// left out are built all the same (the OpenTelemetry layer sees every span), so a hot
/// path asks this before making the children it would only throw away: at 1 % sampling
/// they had cost nearly what recording every trace does (docs/benchmarks.md).
pub fn is_sampled(span: &tracing::Span) -> bool {
    span.context().span().span_context().is_sampled()
}

/// Whether a W3C `traceparent` says its trace is recorded (the `sampled` flag). A
/// malformed one says no.
pub fn traceparent_is_sampled(traceparent: &str) -> bool {
    traceparent
        .rsplit('-')
        .next()
        .and_then(|flags| u8::from_str_radix(flags, 16).ok())
        .is_some_and(|flags| flags & 1 == 1)
}

/// Makes `traceparent` (if valid) the parent of `span`.
pub fn set_parent_from_traceparent(span: &tracing::Span, traceparent: &str) {
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let context = TraceContextPropagator::new().extract(&carrier);
    if context.span().span_context().is_valid() {
        let _ = span.set_parent(context);
    }
}

/// Injects the current span's context into gRPC metadata (a tonic client interceptor).
pub fn inject_into_metadata(metadata: &mut tonic::metadata::MetadataMap) {
    struct MetadataInjector<'a>(&'a mut tonic::metadata::MetadataMap);
    impl Injector for MetadataInjector<'_> {
        fn set(&mut self, key: &str, value: String) {
            if let (Ok(key), Ok(value)) = (
                tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
                tonic::metadata::MetadataValue::try_from(&value),
            ) {
                self.0.insert(key, value);
            }
        }
    }
    let context = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&context, &mut MetadataInjector(metadata));
}

/// Makes the caller's context, from gRPC metadata, the parent of `span` (server side).
pub fn set_parent_from_metadata(span: &tracing::Span, metadata: &tonic::metadata::MetadataMap) {
    struct MetadataExtractor<'a>(&'a tonic::metadata::MetadataMap);
    impl Extractor for MetadataExtractor<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }
        fn keys(&self) -> Vec<&str> {
            self.0
                .keys()
                .filter_map(|k| match k {
                    tonic::metadata::KeyRef::Ascii(k) => Some(k.as_str()),
                    tonic::metadata::KeyRef::Binary(_) => None,
                })
                .collect()
        }
    }
    let context = TraceContextPropagator::new().extract(&MetadataExtractor(metadata));
    if context.span().span_context().is_valid() {
        let _ = span.set_parent(context);
    }
}

/// One log line: JSON or text, with the trace and span ids of the current span.
struct LineFormat {
    json: bool,
    ansi: bool,
}

#[derive(Default)]
struct Fields {
    message: String,
    rest: serde_json::Map<String, serde_json::Value>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = text;
        } else {
            self.rest
                .insert(field.name().to_owned(), serde_json::Value::String(text));
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.rest.insert(field.name().to_owned(), value.into());
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.rest.insert(field.name().to_owned(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.rest.insert(field.name().to_owned(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.rest.insert(field.name().to_owned(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.rest.insert(field.name().to_owned(), value.into());
    }
}

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> std::fmt::Result {
        let meta = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let ids = current_ids();
        let timestamp = humantime::format_rfc3339_micros(std::time::SystemTime::now());
        if self.json {
            let mut line = serde_json::Map::new();
            line.insert("timestamp".into(), timestamp.to_string().into());
            line.insert("level".into(), meta.level().as_str().into());
            line.insert("target".into(), meta.target().into());
            line.insert("message".into(), fields.message.into());
            if let Some((trace_id, span_id)) = ids {
                line.insert("trace_id".into(), trace_id.into());
                line.insert("span_id".into(), span_id.into());
            }
            line.extend(fields.rest);
            writeln!(writer, "{}", serde_json::Value::Object(line))
        } else {
            let mut text = String::new();
            let level = meta.level().as_str();
            if self.ansi {
                let colour = match *meta.level() {
                    tracing::Level::ERROR => 31,
                    tracing::Level::WARN => 33,
                    tracing::Level::INFO => 32,
                    _ => 34,
                };
                let _ = write!(
                    text,
                    "{timestamp} \x1b[{colour}m{level:>5}\x1b[0m {}: {}",
                    meta.target(),
                    fields.message
                );
            } else {
                let _ = write!(text, "{timestamp} {level:>5} {}: {}", meta.target(), fields.message);
            }
            for (key, value) in &fields.rest {
                match value {
                    serde_json::Value::String(s) => {
                        let _ = write!(text, " {key}={s}");
                    }
                    other => {
                        let _ = write!(text, " {key}={other}");
                    }
                }
            }
            if let Some((trace_id, span_id)) = ids {
                let _ = write!(text, " trace_id={trace_id} span_id={span_id}");
            }
            writeln!(writer, "{text}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> TelemetrySettings {
        TelemetrySettings {
            otlp_endpoint: String::new(),
            otlp_protocol: OtlpProtocol::Grpc,
            sampling_ratio: 1.0,
            environment: "staging".into(),
            instance_id: String::new(),
        }
    }

    #[test]
    fn a_traceparent_is_sampled_only_with_its_flag() {
        let id = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7";
        assert!(traceparent_is_sampled(&format!("{id}-01")));
        assert!(traceparent_is_sampled(&format!("{id}-03")));
        assert!(!traceparent_is_sampled(&format!("{id}-00")));
        assert!(!traceparent_is_sampled(&format!("{id}-zz")));
        assert!(!traceparent_is_sampled(""));
    }

    #[test]
    fn the_resource_names_the_build_the_replica_and_the_environment() {
        let identity = Identity::new("gateway", "1.2.3", "0.0.0.0:8080", &settings());
        assert_eq!(identity.instance, format!("{}@0.0.0.0:8080", host_name()));
        let resource = identity.resource("staging");
        let get = |key: &'static str| {
            resource
                .get(&opentelemetry::Key::from_static_str(key))
                .map(|v| v.to_string())
        };
        assert_eq!(get("service.name").as_deref(), Some("gateway"));
        assert_eq!(get("service.version").as_deref(), Some("1.2.3"));
        assert_eq!(get("service.instance.id"), Some(identity.instance.clone()));
        assert_eq!(get("deployment.environment").as_deref(), Some("staging"));
        assert_eq!(get("deployment.environment.name").as_deref(), Some("staging"));
        // Named in configuration, the replica keeps that name.
        let named = TelemetrySettings {
            instance_id: "gw-a".into(),
            ..settings()
        };
        assert_eq!(
            Identity::new("gateway", "1.2.3", "0.0.0.0:8080", &named).instance,
            "gw-a"
        );
    }

    #[test]
    fn an_empty_environment_is_refused_naming_the_key() {
        let blank = TelemetrySettings {
            environment: " ".into(),
            ..settings()
        };
        assert!(
            blank
                .validate()
                .unwrap_err()
                .to_string()
                .contains("telemetry.environment")
        );
        assert!(settings().validate().is_ok());
    }
}
