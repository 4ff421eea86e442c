//! The all-in-one server: the gateway and the message service in one process, with SQLite
//! in a local file and the in-process bus instead of Redis. The same code paths as the
//! scaled topology: the gateway still reaches the message service over gRPC (on a loopback
//! port of its own), and fan-out still reads the bus.

use chat_bus::in_process::InProcessBus;
use chat_common::runtime::RuntimeSettings;
use chat_common::settings::{SettingsError, rule};
use chat_common::telemetry::{LogSettings, TelemetrySettings};
use gateway::Gateway;
use message_service::MessageService;
use rand::RngCore;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub const DEFAULTS: &str = concat!(
    r#"
listen = "127.0.0.1:8080"
ops_listen = "127.0.0.1:9090"
data_dir = "./data"
static_dir = "static"
database_url = ""
auth_secret = ""
bus_capacity = 100000
guests = true
jwt_secret = ""
admins = []
max_upload_bytes = 5242880
send_rate_per_sec = 20.0
send_burst = 40
trusted_proxies = []

[mail]
# "file" writes each password-reset mail into dir; "smtp" sends it; "off" turns resets off.
transport = "file"
# Empty: <data_dir>/mail.
dir = ""
smtp_url = ""
from = "Super Channels <noreply@localhost>"
# Empty: http://<listen>. Set it to the address people open when serving others.
link_base = ""
"#,
    chat_common::shared_defaults!()
);

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Public address: browser client, websocket and API.
    pub listen: SocketAddr,
    /// `/healthz`, `/readyz`, `/metrics`.
    pub ops_listen: SocketAddr,
    /// Where the SQLite database and the generated session key live.
    pub data_dir: PathBuf,
    pub static_dir: PathBuf,
    /// Empty: `sqlite://<data_dir>/chat.db`. A `postgres://` URL works too.
    #[serde(serialize_with = "chat_common::settings::serialize_url")]
    pub database_url: String,
    /// Empty: a random key is generated once and kept in `<data_dir>/session.key`.
    #[serde(serialize_with = "chat_common::settings::serialize_secret")]
    pub auth_secret: String,
    /// Events the in-process bus keeps for readers that fall behind.
    pub bus_capacity: usize,
    /// Sessions from a display name alone, without an account.
    pub guests: bool,
    /// External-token mode (HS256 JWTs signed with this key); empty is off.
    #[serde(serialize_with = "chat_common::settings::serialize_secret")]
    pub jwt_secret: String,
    /// Usernames that are administrators by configuration.
    pub admins: Vec<String>,
    pub max_upload_bytes: usize,
    /// The gateway's per-socket send rate and burst (`gateway.send_rate_per_sec`, `send_burst`).
    pub send_rate_per_sec: f64,
    pub send_burst: u32,
    /// The gateway's `gateway.trusted_proxies`: proxies whose `X-Forwarded-For` names the
    /// client for the log-in throttle.
    pub trusted_proxies: Vec<String>,
    /// The gateway's `mail` (password-reset links), with the two defaults above.
    pub mail: gateway::settings::MailSettings,
    pub log: LogSettings,
    pub telemetry: TelemetrySettings,
    pub runtime: RuntimeSettings,
}

impl Settings {
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        let settings: Self = chat_common::settings::load(DEFAULTS, file)?;
        settings.telemetry.validate()?;
        settings.runtime.validate()?;
        if settings.bus_capacity == 0 {
            return Err(rule("bus_capacity", "must be at least 1"));
        }
        Ok(settings)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot use the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    MessageService(#[from] message_service::StartError),
    #[error(transparent)]
    Gateway(#[from] gateway::StartError),
}

pub struct AllInOne {
    pub addr: SocketAddr,
    pub ops_addr: SocketAddr,
    gateway: Gateway,
    service: MessageService,
}

/// The session key: configured, or generated once and kept beside the database so that
/// sessions survive a restart.
fn session_secret(settings: &Settings) -> Result<String, StartError> {
    if !settings.auth_secret.is_empty() {
        return Ok(settings.auth_secret.clone());
    }
    let path = settings.data_dir.join("session.key");
    let io = |source| StartError::DataDir {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(key) if key.trim().len() >= 32 => return Ok(key.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let key: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_private(&path, &key).map_err(io)?;
    Ok(key)
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents.as_bytes())
}

/// The database URL the settings name: the configured one, or the SQLite file in the data
/// directory.
pub fn database_url(settings: &Settings) -> String {
    if settings.database_url.is_empty() {
        format!("sqlite://{}", settings.data_dir.join("chat.db").display())
    } else {
        settings.database_url.clone()
    }
}

/// Starts both services. Stops when `shutdown` is cancelled.
pub async fn start(settings: Settings, shutdown: CancellationToken) -> Result<AllInOne, StartError> {
    std::fs::create_dir_all(&settings.data_dir).map_err(|source| StartError::DataDir {
        path: settings.data_dir.clone(),
        source,
    })?;
    let secret = session_secret(&settings)?;
    let database_url = database_url(&settings);

    let mut service_settings = message_service::settings::Settings::defaults();
    service_settings.grpc_listen = SocketAddr::from(([127, 0, 0, 1], 0));
    service_settings.ops_listen = SocketAddr::from(([127, 0, 0, 1], 0));
    service_settings.database.url = database_url;
    service_settings.log = settings.log.clone();
    service_settings.telemetry = settings.telemetry.clone();
    // SQLite has one writer at a time: a second lane would only wait for its lock.
    service_settings.commit.lanes = 1;
    // One pool for both services: SQLite has one writer at a time anyway.
    let database = gateway::connect_database(&service_settings.database)
        .await
        .map_err(message_service::StartError::from)?;
    let bus = Arc::new(InProcessBus::new(settings.bus_capacity));
    let service = MessageService::start(
        &service_settings,
        database.messages.clone(),
        bus.clone(),
        shutdown.clone(),
    )
    .await?;

    let mut gateway_settings = gateway::settings::Settings::defaults();
    gateway_settings.listen = settings.listen;
    gateway_settings.ops_listen = settings.ops_listen;
    gateway_settings.static_dir = settings.static_dir.clone();
    gateway_settings.auth.secret = secret;
    gateway_settings.auth.guests = settings.guests;
    gateway_settings.auth.jwt_secret = settings.jwt_secret;
    gateway_settings.auth.admins = settings.admins;
    gateway_settings.uploads.max_bytes = settings.max_upload_bytes;
    gateway_settings.gateway.send_rate_per_sec = settings.send_rate_per_sec;
    gateway_settings.gateway.send_burst = settings.send_burst;
    gateway_settings.gateway.trusted_proxies = settings.trusted_proxies;
    gateway_settings.mail = settings.mail;
    if gateway_settings.mail.dir.as_os_str().is_empty() {
        gateway_settings.mail.dir = settings.data_dir.join("mail");
    }
    if gateway_settings.mail.link_base.is_empty() {
        gateway_settings.mail.link_base = format!("http://{}", settings.listen);
    }
    gateway_settings.database = service_settings.database.clone();
    gateway_settings.message_service.endpoints = vec![format!("http://{}", service.grpc_addr)];
    gateway_settings.log = settings.log;
    gateway_settings.telemetry = settings.telemetry;
    // One `/metrics` for the process: the gateway's, then the message service's.
    let service_metrics = vec![service.metrics.clone()];
    let gateway = Gateway::start(gateway_settings, database, bus, shutdown, service_metrics).await?;
    Ok(AllInOne {
        addr: gateway.addr,
        ops_addr: gateway.ops_addr,
        gateway,
        service,
    })
}

impl AllInOne {
    /// Waits until both services have stopped; the gateway first, so that its in-flight
    /// sends still reach the message service.
    pub async fn wait(self) {
        self.gateway.wait().await;
        self.service.wait().await;
    }
}
