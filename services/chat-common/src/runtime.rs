//! The tokio runtime a service runs on, sized by `runtime.worker_threads`.
//!
//! Why a setting: where several of our processes share a machine's cores (the local
//! cluster of `scripts/cluster.sh`, a small compose host), each one's default of a worker
//! per core means a message crosses threads at every hand-off inside a process (socket
//! reader, batcher, gRPC, committer, publisher, bus reader), and each crossing wakes a
//! parked thread. On the 2-core benchmark machine, one worker per process cut the commit →
//! XADD hop from 1.1–1.5 to 0.5–0.7 ms at 1,000 msg/s and the gateways' CPU per message
//! with it (docs/benchmarks.md). A process with a machine to itself keeps the default.

use crate::settings::{SettingsError, rule};
use serde::{Deserialize, Serialize};

/// Most worker threads a setting may ask for: beyond any machine we run on, and a typo
/// (an extra zero) is refused rather than spawning thousands of threads.
pub const MAX_WORKER_THREADS: usize = 1024;

/// `[runtime]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeSettings {
    /// Worker threads of the multi-threaded runtime; 0: one per core (tokio's default,
    /// which `TOKIO_WORKER_THREADS` may set).
    pub worker_threads: usize,
}

impl RuntimeSettings {
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.worker_threads > MAX_WORKER_THREADS {
            return Err(rule(
                "runtime.worker_threads",
                format!("must be from 0 (one per core) to {MAX_WORKER_THREADS}"),
            ));
        }
        Ok(())
    }

    /// The runtime the service's `main` blocks on.
    pub fn build(&self) -> std::io::Result<tokio::runtime::Runtime> {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.enable_all();
        if self.worker_threads > 0 {
            builder.worker_threads(self.worker_threads);
        }
        builder.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtime_has_the_workers_asked_for() {
        let runtime = RuntimeSettings { worker_threads: 3 }.build().unwrap();
        assert_eq!(runtime.metrics().num_workers(), 3);
    }

    #[test]
    fn zero_workers_means_the_default_and_too_many_are_refused() {
        let default = RuntimeSettings { worker_threads: 0 };
        default.validate().unwrap();
        assert!(default.build().unwrap().metrics().num_workers() >= 1);
        RuntimeSettings {
            worker_threads: MAX_WORKER_THREADS,
        }
        .validate()
        .unwrap();
        let error = RuntimeSettings {
            worker_threads: MAX_WORKER_THREADS + 1,
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(error.contains("runtime.worker_threads"), "{error}");
    }
}
