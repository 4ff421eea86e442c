//! The load generator of issue 7: it speaks protocol v1 (docs/protocol.md) to one or more
//! gateways, creates its own sessions, and measures what the system promises — throughput,
//! loss, duplicates, order and send→receive latency — while watching the CPU and memory of
//! itself and of the servers, so that a saturated generator is never mistaken for a
//! saturated server.
//!
//! # Layout
//! * [`scenario`]: what to run ([`scenario::LoadScenario`], [`scenario::IdleScenario`]),
//!   validated once.
//! * [`run`]: a load run (setup, paced sending, drain, accounting); [`idle`]: an idle run.
//! * [`connect`]: sessions (guest or locally minted JWT) and websocket connections from
//!   several loopback source addresses; [`token`]: HS256 JWT minting; [`wire`]: the
//!   websocket client framing, lean enough for 100,000 deliveries a second.
//! * [`protocol`]: the frames we send and the one struct we parse every frame into.
//! * [`accounting`]: loss, duplicate and order checks; the stamp carried in message text.
//! * [`stats`]: latency histograms and percentiles; [`plot`]: the SVG latency plot.
//! * [`procstat`]: CPU seconds and RSS from `/proc`; [`monitor`]: the progress line.
//! * [`otlp_sink`]: a trace collector that only counts, for measuring tracing's cost.
//! * [`report`]: the JSON report, the human summary, and where files go.
//!
//! `src/main.rs` only parses flags into a scenario and writes the report.

pub mod accounting;
pub mod connect;
pub mod idle;
pub mod monitor;
pub mod otlp_sink;
pub mod plot;
pub mod procstat;
pub mod protocol;
pub mod report;
pub mod run;
pub mod scenario;
pub mod stats;
pub mod token;
pub mod wire;
