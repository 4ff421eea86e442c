//! Layered configuration with the `config` crate: built-in defaults, then an optional file,
//! then environment variables `SC_<KEY>`, with `__` between nested keys
//! (`SC_DATABASE__URL`). Later layers win. `docs/configuration.md` lists every key.

use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::path::Path;

/// The environment variable prefix of every service.
pub const ENV_PREFIX: &str = "SC";

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A missing file, bad syntax, or a value of the wrong type; the message names the key.
    #[error("invalid configuration: {0}")]
    Invalid(#[from] config::ConfigError),
    /// A value of the right type that breaks a rule.
    #[error("invalid configuration: `{key}` {problem}")]
    Rule { key: &'static str, problem: String },
}

/// Loads settings from `defaults` (TOML), the optional `file`, and the environment.
/// The defaults every binary shares (`[log]`, `[telemetry]` and `[runtime]`), as a string
/// literal to `concat!` onto a binary's own `DEFAULTS`, so the three binaries cannot drift
/// apart.
#[macro_export]
macro_rules! shared_defaults {
    () => {
        r#"
[log]
format = "text"
level = "info"
[telemetry]
otlp_endpoint = ""
otlp_protocol = "grpc"
sampling_ratio = 1.0
environment = "development"
instance_id = ""
[runtime]
worker_threads = 0
"#
    };
}

pub fn load<T: DeserializeOwned>(defaults: &str, file: Option<&Path>) -> Result<T, SettingsError> {
    load_with_env(defaults, file, std::env::vars())
}

/// [`load`] with an explicit environment, so tests need not touch the process's own.
pub fn load_with_env<T: DeserializeOwned>(
    defaults: &str,
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<T, SettingsError> {
    let mut builder = Config::builder().add_source(File::from_str(defaults, FileFormat::Toml));
    if let Some(file) = file {
        builder = builder.add_source(File::from(file).required(true));
    }
    let env = env.into_iter().filter(|(k, _)| k.starts_with("SC_")).collect();
    builder = builder.add_source(
        Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("_")
            .separator("__")
            .list_separator(",")
            .with_list_parse_key("message_service.endpoints")
            .with_list_parse_key("gateway.allowed_origins")
            .with_list_parse_key("gateway.trusted_proxies")
            .with_list_parse_key("trusted_proxies")
            .with_list_parse_key("redis.cluster_nodes")
            .with_list_parse_key("auth.admins")
            .with_list_parse_key("admins")
            .try_parsing(true)
            .source(Some(env)),
    );
    Ok(builder.build()?.try_deserialize()?)
}

/// The effective settings as TOML, for `--print-config`. Secrets are masked by the
/// settings' own `Serialize` (see [`serialize_secret`] and [`serialize_url`]).
pub fn to_toml<T: serde::Serialize>(settings: &T) -> String {
    toml::to_string_pretty(settings).unwrap_or_else(|e| format!("# cannot print the configuration: {e}\n"))
}

/// Serializes a secret as `[redacted]` (or empty when unset).
pub fn serialize_secret<S: serde::Serializer>(secret: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(if secret.is_empty() { "" } else { "[redacted]" })
}

/// Serializes a URL with its password, if any, masked.
pub fn serialize_url<S: serde::Serializer>(url: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&mask_password(url))
}

/// `scheme://user:password@host…` → `scheme://user:[redacted]@host…`.
pub fn mask_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:[redacted]@{host}"),
        None => url.to_owned(),
    }
}

/// A rule violation for `key`, for the checks `try_deserialize` cannot make.
pub fn rule(key: &'static str, problem: impl Into<String>) -> SettingsError {
    SettingsError::Rule {
        key,
        problem: problem.into(),
    }
}

/// Where a service's database is: shared by every service that opens one.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `postgres://…` or `sqlite://path`. May hold a password: never logged.
    #[serde(serialize_with = "serialize_url")]
    pub url: String,
    pub max_connections: u32,
    pub acquire_timeout_ms: u64,
}

impl DatabaseSettings {
    pub fn validate(&self) -> Result<(), SettingsError> {
        if !(self.url.starts_with("postgres") || self.url.starts_with("sqlite:")) {
            return Err(rule("database.url", "must start with postgres:// or sqlite:"));
        }
        if self.max_connections == 0 {
            return Err(rule("database.max_connections", "must be at least 1"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Settings {
        port: u16,
        name: String,
        database: Database,
    }

    #[derive(Debug, Deserialize)]
    struct Database {
        url: String,
    }

    const DEFAULTS: &str = "port = 80\nname = \"default\"\n[database]\nurl = \"sqlite://x\"\n";

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn file_overrides_defaults_and_environment_overrides_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "port = 81\nname = \"file\"\n").unwrap();
        let s: Settings =
            load_with_env(DEFAULTS, Some(&file), env(&[("SC_NAME", "env"), ("OTHER_PORT", "1")])).unwrap();
        assert_eq!(
            (s.port, s.name.as_str(), s.database.url.as_str()),
            (81, "env", "sqlite://x")
        );
        let s: Settings = load_with_env(DEFAULTS, None, env(&[("SC_DATABASE__URL", "postgres://db")])).unwrap();
        assert_eq!(s.database.url, "postgres://db");
    }

    #[test]
    fn passwords_in_urls_are_masked() {
        assert_eq!(
            mask_password("postgres://app:s3cret@db:5432/chat"),
            "postgres://app:[redacted]@db:5432/chat"
        );
        assert_eq!(
            mask_password("redis://:pw@cache:6379"),
            "redis://:[redacted]@cache:6379"
        );
        assert_eq!(mask_password("sqlite://./data/chat.db"), "sqlite://./data/chat.db");
    }

    #[test]
    fn an_invalid_value_names_its_key() {
        let err = load_with_env::<Settings>(DEFAULTS, None, env(&[("SC_PORT", "eighty")])).unwrap_err();
        assert!(err.to_string().contains("port"), "{err}");
        let err = load_with_env::<Settings>(DEFAULTS, None, env(&[("SC_PROT", "80")])).unwrap_err();
        assert!(
            err.to_string().contains("prot"),
            "a mistyped key is refused by name: {err}"
        );
        let err = load_with_env::<Settings>(DEFAULTS, Some(Path::new("/nonexistent/c.toml")), env(&[])).unwrap_err();
        assert!(err.to_string().contains("nonexistent"), "{err}");
    }
}
