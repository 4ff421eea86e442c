//! What every Super Channels service shares.
//!
//! # Layout
//! * [`cli`]: the flags every binary shares (`--config`, `--print-config`, `--probe-ready`).
//! * [`settings`]: layered configuration (built-in defaults, an optional file, environment
//!   variables), with errors that name the offending key.
//! * [`telemetry`]: log setup, text for people and JSON for machines.
//! * [`shutdown`]: one cancellation token driven by ctrl-c and SIGTERM.
//! * [`startup`]: waiting for dependencies, so services start in any order.
//! * [`ops`]: `/healthz`, `/readyz` and `/metrics`, the same on every service, and the probe
//!   that asks them.
//! * [`runtime`]: the tokio runtime, sized by `runtime.worker_threads`.

pub mod cli;
pub mod ops;
pub mod runtime;
pub mod settings;
pub mod shutdown;
pub mod startup;
pub mod telemetry;
