//! The message service's settings. Defaults are in [`DEFAULTS`]; every key is documented
//! in `docs/configuration.md`.

use chat_bus::redis_streams::RedisStreamsConfig;
use chat_common::runtime::RuntimeSettings;
use chat_common::settings::{SettingsError, rule};
use chat_common::telemetry::{LogSettings, TelemetrySettings};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::Path;

pub const DEFAULTS: &str = concat!(
    r#"
grpc_listen = "127.0.0.1:50051"
ops_listen = "127.0.0.1:9091"
drain_timeout_secs = 10

[database]
url = "sqlite://./data/chat.db"
max_connections = 16
acquire_timeout_ms = 3000

[redis]
url = "redis://127.0.0.1:6379"
key_prefix = "sc"
partitions = 64
max_len = 100000
block_ms = 2000

[commit]
max_batch = 512
queue = 20000
lanes = 1

[history]
default_limit = 50
max_limit = 500

[search]
index_interval_ms = 200
index_batch = 100
"#,
    chat_common::shared_defaults!()
);

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Where the gRPC server listens.
    pub grpc_listen: SocketAddr,
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub ops_listen: SocketAddr,
    /// How long shutdown may take to finish in-flight batches and publishes.
    pub drain_timeout_secs: u64,
    pub database: DatabaseSettings,
    pub redis: RedisStreamsConfig,
    pub commit: CommitSettings,
    pub history: HistorySettings,
    pub search: SearchSettings,
    pub log: LogSettings,
    pub telemetry: TelemetrySettings,
    pub runtime: RuntimeSettings,
}

pub use chat_common::settings::DatabaseSettings;

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct CommitSettings {
    /// Most sends one transaction commits (group commit).
    pub max_batch: usize,
    /// Sends waiting for a commit, over all lanes; past it, sends are refused as
    /// `unavailable`.
    pub queue: usize,
    /// Group commits in flight at once, each for its own share of the rooms
    /// (`committer`). 1, the default, makes a send wait for the commit before it; more
    /// measured worse on a 2-core machine, where smaller batches cost the database more
    /// CPU than the wait they save (docs/benchmarks.md).
    pub lanes: usize,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct HistorySettings {
    /// Page size when a request asks for none.
    pub default_limit: u32,
    /// Largest page a request may get.
    pub max_limit: u32,
}

/// The search indexer (Postgres indexes after the commit: see `indexer`).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SearchSettings {
    /// How often the indexer looks for messages to index: with the time indexing takes,
    /// how long a new message can go unfound.
    pub index_interval_ms: u64,
    /// Commits (each one queue entry with its messages), edits and deletions indexed in
    /// one transaction.
    pub index_batch: u32,
}

impl Settings {
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        let settings: Self = chat_common::settings::load(DEFAULTS, file)?;
        settings.validate()?;
        Ok(settings)
    }

    pub fn validate(&self) -> Result<(), SettingsError> {
        self.telemetry.validate()?;
        self.runtime.validate()?;
        if self.commit.max_batch == 0 {
            return Err(rule("commit.max_batch", "must be at least 1"));
        }
        if self.commit.queue == 0 {
            return Err(rule("commit.queue", "must be at least 1"));
        }
        // Each lane holds a database connection for its transaction; history reads need
        // one left over.
        if self.commit.lanes == 0 || self.commit.lanes as u64 >= u64::from(self.database.max_connections) {
            return Err(rule(
                "commit.lanes",
                "must be at least 1 and below database.max_connections",
            ));
        }
        if self.history.max_limit == 0 || self.history.default_limit > self.history.max_limit {
            return Err(rule(
                "history.default_limit",
                "must be at most history.max_limit, which must be at least 1",
            ));
        }
        if self.search.index_interval_ms == 0 {
            return Err(rule("search.index_interval_ms", "must be at least 1"));
        }
        if !(1..=10_000).contains(&self.search.index_batch) {
            return Err(rule("search.index_batch", "must be from 1 to 10000"));
        }
        self.redis.validate().map_err(|problem| rule("redis", problem))?;
        self.database.validate()?;
        Ok(())
    }

    /// Defaults only, for tests and embedding.
    pub fn defaults() -> Self {
        chat_common::settings::load_with_env(DEFAULTS, None, std::iter::empty()).expect("built-in defaults are valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_lanes_are_at_least_one_and_leave_a_database_connection_over() {
        let mut settings = Settings::defaults();
        assert_eq!(settings.commit.lanes, 1, "one lane: measured best on two cores");
        settings.database.max_connections = 4;
        for (lanes, valid) in [(0, false), (1, true), (3, true), (4, false)] {
            settings.commit.lanes = lanes;
            let checked = settings.validate();
            assert_eq!(checked.is_ok(), valid, "{lanes} lanes");
            if let Err(error) = checked {
                assert!(error.to_string().contains("commit.lanes"), "{error}");
            }
        }
    }
}
