//! Logs and traces.
//!
//! * Logs: readable text for people or JSON lines for machines; the level comes from
//!   configuration unless `RUST_LOG` is set. Every line written inside a recorded trace
//!   carries `trace_id` and `span_id`, so a log search finds the trace and back.
//! * Traces: spans of the message path use the target [`TRACE_TARGET`] and are exported
//!   with OTLP (gRPC or HTTP) to `telemetry.otlp_endpoint`, sampled at
//!   `telemetry.sampling_ratio`, decided where a trace starts before any of its spans is
//!   built ([`MessageTrace`]): a trace is recorded whole or not at all.
//!   With no endpoint, those spans are disabled at their call sites and cost next to
//!   nothing.
//! * Propagation: W3C `traceparent`, in gRPC metadata and in bus entries.

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::OnceLock;
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
            // Roots are sampled before they are built (`MessageTrace`), so the SDK records
            // every root it is given and follows the parent otherwise.
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
            .with_resource(identity.resource(&telemetry.environment))
            .build();
        let tracer = sdk.tracer(identity.service.clone());
        provider = Some(sdk);
        Some(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                // INFO, the level of every message-path span, not TRACE: the most verbose
                // level any layer takes becomes the process's level hint, which the `log`
                // bridge copies, and at TRACE every `log::trace!` in the dependencies (a
                // websocket frame's, a Redis reply's) is built and offered to the filters,
                // 3% of a gateway's CPU at 2,000 msg/s.
                .with_filter(Targets::new().with_target(TRACE_TARGET, LevelFilter::INFO)),
        )
    };
    let exporting = traces.is_some();
    if tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init()
        .is_ok()
        && exporting
    {
        let _ = NEW_TRACE_RATIO.set(telemetry.sampling_ratio);
    }
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
fn traceparent(span: &tracing::Span) -> Option<String> {
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    carrier.remove("traceparent")
}

/// Whether `span` belongs to a trace that is being recorded.
pub fn is_sampled(span: &tracing::Span) -> bool {
    span.context().span().span_context().is_sampled()
}

/// Whether a W3C `traceparent` says its trace is recorded (the `sampled` flag). A
/// malformed one says no.
fn traceparent_is_sampled(traceparent: &str) -> bool {
    traceparent
        .rsplit('-')
        .next()
        .and_then(|flags| u8::from_str_radix(flags, 16).ok())
        .is_some_and(|flags| flags & 1 == 1)
}

/// The share of new traces recorded, set once the exporter is installed; unset, tracing is
/// off and no span of the message path is built.
static NEW_TRACE_RATIO: OnceLock<f64> = OnceLock::new();

/// Where a message's trace stands at one hop: the span this hop's work runs in, when the
/// trace is recorded, or else the `traceparent` to pass on, which says it is not.
///
/// Whether a trace is recorded is decided once, where it starts, before any of its spans
/// is built, and then travels in its `traceparent`: a hop whose trace is left out builds
/// no span at all. Built and thrown away, the spans of the traces that 1% sampling leaves
/// out had cost 15% of the throughput at the ceiling (docs/benchmarks/history.md). Because
/// every root is decided here, the exporter's sampler records every root it is given.
#[derive(Debug)]
pub struct MessageTrace {
    /// `Span::none()` when the trace is not recorded.
    span: tracing::Span,
    /// What to pass on when it is not: the caller's own `traceparent`, or a new one that
    /// says "not sampled", so that no later hop starts a trace of its own for the message.
    passed_on: Option<String>,
}

impl MessageTrace {
    /// The trace of a message that arrives with `incoming` (a W3C `traceparent`, if any):
    /// `span()` is `make()`, as a child of the caller's span, when the caller records its
    /// trace; when there is no caller's trace, a new trace is started with the configured
    /// sampling ratio and `make()` is its root. `make` must build a span without a
    /// contextual parent (`parent: None`).
    pub fn continue_or_start(incoming: Option<String>, make: impl FnOnce() -> tracing::Span) -> Self {
        let Some(&ratio) = NEW_TRACE_RATIO.get() else {
            return Self::left_out(incoming);
        };
        match incoming {
            Some(traceparent) if traceparent_is_sampled(&traceparent) => {
                let span = make();
                set_parent_from_traceparent(&span, &traceparent);
                Self::recorded(span)
            }
            Some(traceparent) => Self::left_out(Some(traceparent)),
            None => match new_trace(ratio) {
                NewTrace::Recorded => Self::recorded(make()),
                NewTrace::LeftOut(traceparent) => Self::left_out(Some(traceparent)),
            },
        }
    }

    /// The trace of work done for `parent`'s: `make(Some(parent))`, its child, when that is
    /// recorded; otherwise a new trace, whose root is `make(None)` if it is recorded.
    pub fn within(parent: &tracing::Span, make: impl FnOnce(Option<&tracing::Span>) -> tracing::Span) -> Self {
        if is_sampled(parent) {
            Self::recorded(make(Some(parent)))
        } else {
            Self::continue_or_start(None, || make(None))
        }
    }

    /// A trace that is not recorded and has nothing to pass on (tests, tracing off).
    pub fn none() -> Self {
        Self::left_out(None)
    }

    fn recorded(span: tracing::Span) -> Self {
        Self { span, passed_on: None }
    }

    fn left_out(passed_on: Option<String>) -> Self {
        Self {
            span: tracing::Span::none(),
            passed_on,
        }
    }

    /// This hop's span: `Span::none()` when the trace is not recorded.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// Whether the trace is recorded: only then are spans made in it.
    pub fn is_recorded(&self) -> bool {
        !self.span.is_disabled()
    }

    /// The `traceparent` to pass on when this hop's own span (not a child) is the parent.
    pub fn traceparent(&self) -> Option<String> {
        self.traceparent_through(&self.span)
    }

    /// The `traceparent` to pass on: `child`'s (a span of this hop made inside
    /// [`MessageTrace::span`]) when the trace is recorded, else the one that came in.
    pub fn traceparent_through(&self, child: &tracing::Span) -> Option<String> {
        if self.is_recorded() {
            traceparent(child)
        } else {
            self.passed_on.clone()
        }
    }
}

enum NewTrace {
    Recorded,
    /// With the `traceparent` that says so.
    LeftOut(String),
}

/// Decides whether a new trace is recorded, the way OpenTelemetry's ratio sampler does, from
/// a new random trace id.
fn new_trace(ratio: f64) -> NewTrace {
    use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};
    let ids = RandomIdGenerator::default();
    let trace_id = ids.new_trace_id();
    if trace_id_is_sampled(trace_id, ratio) {
        return NewTrace::Recorded;
    }
    // Written out by hand: `format!` with the ids' `Display` took 0.6% of a gateway.
    let mut traceparent = String::with_capacity(55);
    traceparent.push_str("00-");
    push_hex(&mut traceparent, &trace_id.to_bytes());
    traceparent.push('-');
    push_hex(&mut traceparent, &ids.new_span_id().to_bytes());
    traceparent.push_str("-00");
    NewTrace::LeftOut(traceparent)
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 0xf)] as char);
    }
}

/// OpenTelemetry's `TraceIdRatioBased` rule: the trace id's low 63 bits below `ratio` of
/// their range.
fn trace_id_is_sampled(trace_id: opentelemetry::trace::TraceId, ratio: f64) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    let bound = (ratio.max(0.0) * (1u64 << 63) as f64) as u64;
    ((u128::from_be_bytes(trace_id.to_bytes()) as u64) >> 1) < bound
}

/// Makes `traceparent` (if valid) the parent of `span`.
fn set_parent_from_traceparent(span: &tracing::Span, traceparent: &str) {
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let context = TraceContextPropagator::new().extract(&carrier);
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
    fn new_traces_are_sampled_by_their_id_at_the_ratio() {
        use opentelemetry::trace::TraceId;
        // The low 63 bits decide, as in OpenTelemetry's ratio sampler.
        let low = TraceId::from(0xffff_0000_0000_0000_0000_0000_0000_0002_u128);
        let high = TraceId::from(0x0000_0000_0000_0000_ffff_ffff_ffff_fffe_u128);
        assert!(trace_id_is_sampled(low, 0.01));
        assert!(!trace_id_is_sampled(high, 0.99));
        assert!(trace_id_is_sampled(high, 1.0));
        assert!(!trace_id_is_sampled(low, 0.0));
        // Left out, a new trace still passes on a valid `traceparent`, one that says so.
        let NewTrace::LeftOut(traceparent) = new_trace(0.0) else {
            panic!("a trace sampled at 0.0");
        };
        let parts: Vec<&str> = traceparent.split('-').collect();
        assert_eq!(
            (parts[0], parts[1].len(), parts[2].len(), parts[3]),
            ("00", 32, 16, "00")
        );
        assert_ne!(parts[1], "0".repeat(32));
        assert!(
            parts[1..3]
                .iter()
                .all(|p| p.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
        );
        let mut hex = String::new();
        push_hex(&mut hex, &[0x00, 0x9f, 0xa0, 0xff]);
        assert_eq!(hex, "009fa0ff");
        assert!(!traceparent_is_sampled(&traceparent));
        assert!(matches!(new_trace(1.0), NewTrace::Recorded));
    }

    #[test]
    fn with_tracing_off_no_span_is_made_and_the_callers_context_passes_through() {
        // No test in this crate installs an exporter.
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned();
        let trace = MessageTrace::continue_or_start(Some(incoming.clone()), || panic!("a span was made"));
        assert!(!trace.is_recorded());
        assert_eq!(trace.traceparent(), Some(incoming));
        let trace = MessageTrace::continue_or_start(None, || panic!("a span was made"));
        assert_eq!(trace.traceparent(), None);
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
