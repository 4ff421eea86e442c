//! Trace export must not raise the level that logging runs at. The `log` bridge takes the
//! process's level hint, the most verbose any layer asks for; were the exporter's filter at
//! TRACE, every `log::trace!` in the dependencies would be built and offered to the filters
//! while tracing is on, though nothing takes it. Its own binary: `init` installs the
//! process's one subscriber.

use chat_common::telemetry::{Identity, LogFormat, LogSettings, OtlpProtocol, TelemetrySettings, init};
use tracing::level_filters::LevelFilter;

#[tokio::test]
async fn exporting_traces_keeps_the_configured_log_level() {
    let telemetry = TelemetrySettings {
        // Nothing listens there: spans would be dropped, and none is made here.
        otlp_endpoint: "http://127.0.0.1:9".into(),
        otlp_protocol: OtlpProtocol::Grpc,
        sampling_ratio: 0.01,
        environment: "test".into(),
        instance_id: String::new(),
    };
    let log = LogSettings {
        format: LogFormat::Text,
        level: "info".into(),
    };
    let identity = Identity::new("level-test", "0.0.0", "127.0.0.1:0", &telemetry);
    assert!(
        std::env::var_os("RUST_LOG").is_none(),
        "run without RUST_LOG: it sets the level this test checks"
    );
    let _guard = init(&identity, &log, &telemetry).expect("the exporter is set up");
    assert_eq!(LevelFilter::current(), LevelFilter::INFO);
    assert_eq!(log::max_level(), log::LevelFilter::Info, "the `log` bridge's level");
}
