//! The gateway's settings. Defaults are in [`DEFAULTS`]; every key is documented in
//! `docs/configuration.md`.

use crate::client_addr::TrustedProxies;
use chat_bus::redis_streams::RedisStreamsConfig;
use chat_common::runtime::RuntimeSettings;
use chat_common::settings::{DatabaseSettings, SettingsError, rule};
use chat_common::telemetry::{LogSettings, TelemetrySettings};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub const DEFAULTS: &str = concat!(
    r#"
listen = "127.0.0.1:8080"
ops_listen = "127.0.0.1:9090"
static_dir = "static"
drain_timeout_secs = 10

[message_service]
endpoints = ["http://127.0.0.1:50051"]
timeout_ms = 5000
connect_timeout_ms = 1000

[database]
url = "sqlite://./data/chat.db"
max_connections = 8
acquire_timeout_ms = 3000

[auth]
# Required: keys the hashes of session tokens. Same value on every gateway.
secret = ""
session_ttl_secs = 604800
cookie_secure = false
# Sessions from a display name alone, without an account.
guests = true
# When set (32+ bytes), HS256 JWTs signed with it are accepted as sessions.
jwt_secret = ""
# Usernames that are administrators by configuration.
admins = []
# How long a password-reset link works.
reset_ttl_secs = 3600

[auth.throttle]
# Failed log-ins in a row an account may have before each next attempt must wait.
account_free_failures = 5
# Failed log-ins one client address may have (over all accounts) before it must wait.
address_free_failures = 20
# Password-reset requests one client address may make before it must wait.
address_free_resets = 5
# The first wait; it doubles with each further failure, up to max_wait_ms.
first_wait_ms = 1000
max_wait_ms = 900000
# Failures are forgotten this long after the last one.
forget_after_secs = 86400
# Password checks (log-in, sign-up, password change) from one address at once, per gateway.
checks_per_address = 2

[uploads]
max_bytes = 5242880

[mail]
# How password-reset mail leaves: "smtp", "file" (written into dir, for development: nothing
# leaves the machine) or "off" (no password reset by e-mail).
transport = "file"
dir = "./data/mail"
# smtp://host:port (plain), smtp://user:pass@host:587?tls=required (STARTTLS), smtps://host:465.
smtp_url = ""
from = "Super Channels <noreply@localhost>"
# The site's address as people open it: reset links are {link_base}/reset.html#token=….
link_base = "http://127.0.0.1:8080"

[gateway]
allowed_origins = []
# Proxies (addresses or networks) whose X-Forwarded-For names the client's address.
trusted_proxies = []
max_frame_bytes = 65536
max_rooms_per_connection = 100
outbound_queue = 1024
send_queue = 64
send_rate_per_sec = 20.0
send_burst = 40
max_connections = 100000
max_connections_per_user = 20
handshakes_per_sec = 2000.0
handshake_burst = 1000
handshake_timeout_ms = 10000
socket_send_buffer_bytes = 0
ping_interval_secs = 30
idle_timeout_secs = 90
history_on_join = 50
max_history = 500
gap_fill_after_ms = 200
repair_interval_ms = 5000
bus_cutoff_ms = 5000

[signals]
typing = true
typing_min_interval_ms = 2000
typing_ttl_ms = 6000
typing_names = 3

[presence]
enabled = true
ttl_ms = 20000
renew_ms = 5000
big_room_members = 100
summary_ms = 10000
max_counted_members = 10000

[redis]
url = "redis://127.0.0.1:6379"
key_prefix = "sc"
partitions = 64
max_len = 100000
block_ms = 2000
read_connections = 8
"#,
    chat_common::shared_defaults!()
);

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Public address: websocket, HTTP API and static files.
    pub listen: SocketAddr,
    /// Internal address: `/healthz`, `/readyz`, `/metrics`.
    pub ops_listen: SocketAddr,
    /// The browser client's files.
    pub static_dir: PathBuf,
    /// How long a shutdown may take to close sockets and finish in-flight sends.
    pub drain_timeout_secs: u64,
    pub message_service: UpstreamSettings,
    pub database: DatabaseSettings,
    pub auth: AuthSettings,
    pub uploads: UploadSettings,
    pub mail: MailSettings,
    pub gateway: Limits,
    pub signals: SignalSettings,
    pub presence: PresenceSettings,
    pub redis: RedisStreamsConfig,
    pub log: LogSettings,
    pub telemetry: TelemetrySettings,
    pub runtime: RuntimeSettings,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSettings {
    /// Every message-service instance (host names may resolve to several); each room's
    /// calls go to its home instance, and to the next when that one is down.
    pub endpoints: Vec<String>,
    pub timeout_ms: u64,
    pub connect_timeout_ms: u64,
}

#[derive(Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// Keys the stored hashes of session tokens, so the sessions table alone cannot be
    /// used to forge a token. At least 32 bytes. Never logged.
    #[serde(serialize_with = "chat_common::settings::serialize_secret")]
    pub secret: String,
    pub session_ttl_secs: u64,
    /// Mark the session cookie `Secure` (set when served over HTTPS).
    pub cookie_secure: bool,
    /// Allow sessions from a display name alone (no account).
    pub guests: bool,
    /// External-token mode: HS256 JWTs (`sub`, `name`, `exp`) signed with this key are
    /// sessions. Empty turns the mode off. Never logged.
    #[serde(serialize_with = "chat_common::settings::serialize_secret")]
    pub jwt_secret: String,
    /// Usernames that are administrators by configuration (case-insensitive).
    pub admins: Vec<String>,
    /// How long a password-reset link works.
    pub reset_ttl_secs: u64,
    pub throttle: ThrottleSettings,
}

/// The log-in throttle (the `throttle` module says how it works).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleSettings {
    pub account_free_failures: u32,
    pub address_free_failures: u32,
    pub address_free_resets: u32,
    pub first_wait_ms: u64,
    pub max_wait_ms: u64,
    pub forget_after_secs: u64,
    pub checks_per_address: u32,
}

impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSettings")
            .field("secret", &"[redacted]")
            .field("session_ttl_secs", &self.session_ttl_secs)
            .field("cookie_secure", &self.cookie_secure)
            .field("guests", &self.guests)
            .field("jwt_secret", &"[redacted]")
            .field("admins", &self.admins)
            .field("reset_ttl_secs", &self.reset_ttl_secs)
            .field("throttle", &self.throttle)
            .finish()
    }
}

/// Outgoing mail (the `mail` module sends it).
#[derive(Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct MailSettings {
    pub transport: MailTransport,
    /// Where the `file` transport writes each mail.
    pub dir: PathBuf,
    /// The SMTP server; may hold a password. Never logged.
    #[serde(serialize_with = "chat_common::settings::serialize_secret")]
    pub smtp_url: String,
    /// The sender, `Name <address>`.
    pub from: String,
    /// The site's address as people open it, for the links in mails. Never taken from a
    /// request's `Host`, which the requester chooses.
    pub link_base: String,
}

impl std::fmt::Debug for MailSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailSettings")
            .field("transport", &self.transport)
            .field("dir", &self.dir)
            .field("smtp_url", &"[redacted]")
            .field("from", &self.from)
            .field("link_base", &self.link_base)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MailTransport {
    Off,
    File,
    Smtp,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct UploadSettings {
    /// Largest upload accepted, in bytes.
    pub max_bytes: usize,
}

/// Ephemeral signals between members: typing indicators.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SignalSettings {
    /// Whether `typing` frames are passed on at all; off, they are accepted and dropped.
    pub typing: bool,
    /// A socket's `typing` frames closer together than this are dropped (clients send one
    /// every 3 s while the person types); a room's typing count goes out at most this often.
    pub typing_min_interval_ms: u64,
    /// How long a typist counts as typing without a refresh (what clients show, too).
    pub typing_ttl_ms: u64,
    /// Typists a room's members hear of by name; past it, how many are typing.
    pub typing_names: usize,
}

/// Who is online. `docs/protocol.md` says what members see of it.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PresenceSettings {
    /// Off: nobody is shown online, no presence frames, nothing held in Redis.
    pub enabled: bool,
    /// A gateway's hold on its people lasts this long unless renewed: a gateway that dies
    /// leaves its people online at most `ttl_ms + renew_ms`.
    pub ttl_ms: u64,
    /// How often a gateway renews its holds and sweeps expired ones.
    pub renew_ms: u64,
    /// Rooms with more members get an online count, not a frame per change per member.
    pub big_room_members: u32,
    /// How often a bigger room's count is recounted (when it may have changed) and sent.
    pub summary_ms: u64,
    /// Members a bigger room's count looks at, at most.
    pub max_counted_members: u32,
}

/// Per-connection bounds. `docs/protocol.md` documents each.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Origins (`scheme://host[:port]`) allowed to open `/ws` besides the gateway's own.
    pub allowed_origins: Vec<String>,
    /// Proxies (addresses or networks) trusted to name the client in `X-Forwarded-For`
    /// (see the `client_addr` module); from anyone else the header is ignored.
    pub trusted_proxies: Vec<String>,
    /// Largest websocket frame or message accepted; larger closes the socket with 1009.
    pub max_frame_bytes: usize,
    pub max_rooms_per_connection: usize,
    /// Frames waiting to be written to one socket; a full queue closes it with 4008.
    pub outbound_queue: usize,
    /// Sends waiting for their ack on one socket; past it sends get `rate_limited`.
    pub send_queue: usize,
    /// Sends per second one socket may make on average (a token bucket); faster sends get
    /// `rate_limited` and are not stored.
    pub send_rate_per_sec: f64,
    /// Sends one socket may make at once before the rate applies.
    pub send_burst: u32,
    /// Websocket connections this gateway holds at most; past it the handshake gets 503.
    pub max_connections: usize,
    /// Websocket connections one user may hold on this gateway; past it the handshake gets 429.
    pub max_connections_per_user: usize,
    /// Websocket handshakes this gateway starts per second on average (a token bucket);
    /// past it the handshake gets 503 with `Retry-After`, so a reconnect storm is spread
    /// over time instead of landing on the database at once.
    pub handshakes_per_sec: f64,
    /// Handshakes that may start at once before the pace applies.
    pub handshake_burst: u32,
    /// A connection must send its request headers (the websocket upgrade) within this
    /// long, or it is closed: half-open handshakes must not hold descriptors.
    pub handshake_timeout_ms: u64,
    /// The kernel send buffer of each socket (`SO_SNDBUF`); 0 leaves it to the kernel,
    /// which grows it to megabytes for a client that does not read.
    pub socket_send_buffer_bytes: usize,
    /// How often the gateway pings each socket.
    pub ping_interval_secs: u64,
    /// A socket the client has sent nothing on (not even a pong) for this long is closed
    /// with 4002: it is presumed dead, and would otherwise hold its memory forever.
    pub idle_timeout_secs: u64,
    /// Messages sent with `joined` when the join has no `since_seq`.
    pub history_on_join: u32,
    /// Most messages `joined` carries for a `since_seq` resume; beyond, `has_more` is set.
    pub max_history: u32,
    /// How long a gap in a room's sequence may wait for the bus before it is filled from
    /// the database.
    pub gap_fill_after_ms: u64,
    /// How often the gateway compares its rooms with the database's last seqs. A message
    /// whose publish was lost, with nothing after it to show the gap, reaches members
    /// within two of these.
    pub repair_interval_ms: u64,
    /// How long the bus reader may fail to read before this gateway gives up serving: it
    /// fails `/readyz` and closes its sockets with 1012, so that clients reconnect to a
    /// gateway that can deliver. Counted from the first failed read, which takes up to
    /// `redis.block_ms` + 5 s to show on a connection that went silent.
    pub bus_cutoff_ms: u64,
}

impl Settings {
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        let settings: Self = chat_common::settings::load(DEFAULTS, file)?;
        settings.validate()?;
        Ok(settings)
    }

    /// Defaults only; the caller must still provide `auth.secret`.
    pub fn defaults() -> Self {
        chat_common::settings::load_with_env(DEFAULTS, None, std::iter::empty()).expect("built-in defaults are valid")
    }

    pub fn validate(&self) -> Result<(), SettingsError> {
        self.telemetry.validate()?;
        self.runtime.validate()?;
        self.redis.validate().map_err(|problem| rule("redis", problem))?;
        if self.auth.secret.len() < 32 {
            return Err(rule("auth.secret", "must be set, at least 32 bytes (SC_AUTH__SECRET)"));
        }
        if !self.auth.jwt_secret.is_empty() && self.auth.jwt_secret.len() < 32 {
            return Err(rule("auth.jwt_secret", "must be empty (off) or at least 32 bytes"));
        }
        if self.auth.session_ttl_secs == 0 {
            return Err(rule("auth.session_ttl_secs", "must be at least 1"));
        }
        let t = &self.auth.throttle;
        if t.account_free_failures == 0
            || t.address_free_failures == 0
            || t.address_free_resets == 0
            || t.checks_per_address == 0
            || t.first_wait_ms == 0
            || t.max_wait_ms < t.first_wait_ms
            || t.forget_after_secs == 0
        {
            return Err(rule(
                "auth.throttle",
                "the free counts, checks_per_address, first_wait_ms and forget_after_secs must be at least 1, \
                 and max_wait_ms at least first_wait_ms",
            ));
        }
        if let Err(error) = TrustedProxies::parse(&self.gateway.trusted_proxies) {
            return Err(rule("gateway.trusted_proxies", error));
        }
        if self.auth.reset_ttl_secs == 0 {
            return Err(rule("auth.reset_ttl_secs", "must be at least 1"));
        }
        let m = &self.mail;
        if m.transport == MailTransport::Smtp && m.smtp_url.is_empty() {
            return Err(rule("mail.smtp_url", "must be set when mail.transport is \"smtp\""));
        }
        if !(m.link_base.starts_with("https://") || m.link_base.starts_with("http://")) {
            return Err(rule("mail.link_base", "must be the site's http:// or https:// address"));
        }
        if self.uploads.max_bytes == 0 {
            return Err(rule("uploads.max_bytes", "must be at least 1"));
        }
        self.database.validate()?;
        if self.message_service.endpoints.is_empty() {
            return Err(rule("message_service.endpoints", "must list at least one endpoint"));
        }
        let p = &self.presence;
        if p.renew_ms == 0 || p.ttl_ms <= p.renew_ms || p.summary_ms == 0 || p.max_counted_members < p.big_room_members
        {
            return Err(rule(
                "presence.ttl_ms",
                "renew_ms and summary_ms must be at least 1, ttl_ms longer than renew_ms, and max_counted_members at least big_room_members",
            ));
        }
        let s = &self.signals;
        if s.typing_min_interval_ms == 0 || s.typing_ttl_ms <= s.typing_min_interval_ms || s.typing_names == 0 {
            return Err(rule(
                "signals.typing_ttl_ms",
                "typing_min_interval_ms and typing_names must be at least 1, and typing_ttl_ms longer than the interval",
            ));
        }
        let g = &self.gateway;
        if g.max_frame_bytes < 1024 {
            return Err(rule("gateway.max_frame_bytes", "must be at least 1024"));
        }
        if g.max_rooms_per_connection == 0 || g.outbound_queue == 0 || g.send_queue == 0 {
            return Err(rule(
                "gateway",
                "max_rooms_per_connection, outbound_queue and send_queue must be at least 1",
            ));
        }
        if g.send_rate_per_sec.is_nan() || g.send_rate_per_sec <= 0.0 || g.send_burst == 0 {
            return Err(rule(
                "gateway.send_rate_per_sec",
                "send_rate_per_sec and send_burst must be above 0",
            ));
        }
        if g.max_connections == 0 || g.max_connections_per_user == 0 {
            return Err(rule(
                "gateway.max_connections",
                "max_connections and max_connections_per_user must be at least 1",
            ));
        }
        if g.ping_interval_secs == 0 || g.idle_timeout_secs <= g.ping_interval_secs {
            return Err(rule(
                "gateway.idle_timeout_secs",
                "ping_interval_secs must be at least 1 and idle_timeout_secs longer than it",
            ));
        }
        if g.handshakes_per_sec.is_nan() || g.handshakes_per_sec <= 0.0 || g.handshake_burst == 0 {
            return Err(rule(
                "gateway.handshakes_per_sec",
                "handshakes_per_sec and handshake_burst must be above 0",
            ));
        }
        if g.handshake_timeout_ms == 0 {
            return Err(rule("gateway.handshake_timeout_ms", "must be at least 1"));
        }
        if g.repair_interval_ms < 100 {
            return Err(rule("gateway.repair_interval_ms", "must be at least 100"));
        }
        if g.bus_cutoff_ms < 1000 {
            return Err(rule("gateway.bus_cutoff_ms", "must be at least 1000"));
        }
        if g.max_history == 0 {
            return Err(rule("gateway.max_history", "must be at least 1"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_switches_come_from_the_environment() {
        let env = [
            ("SC_AUTH__SECRET", "0123456789abcdef0123456789abcdef"),
            ("SC_AUTH__ADMINS", "root,Ann"),
            ("SC_AUTH__GUESTS", "false"),
            ("SC_UPLOADS__MAX_BYTES", "1024"),
            ("SC_GATEWAY__TRUSTED_PROXIES", "10.0.0.0/8,127.0.0.1"),
            ("SC_MAIL__TRANSPORT", "smtp"),
            ("SC_MAIL__SMTP_URL", "smtp://mail.example.com:25"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let settings: Settings = chat_common::settings::load_with_env(DEFAULTS, None, env).unwrap();
        settings.validate().unwrap();
        assert_eq!(settings.auth.admins, ["root", "Ann"]);
        assert!(!settings.auth.guests);
        assert_eq!(settings.uploads.max_bytes, 1024);
        assert_eq!(settings.gateway.trusted_proxies, ["10.0.0.0/8", "127.0.0.1"]);
        assert_eq!(settings.mail.transport, MailTransport::Smtp);
    }

    #[test]
    fn bad_proxies_and_mail_settings_are_refused_by_name() {
        let valid = || {
            let mut settings = Settings::defaults();
            settings.auth.secret = "0123456789abcdef0123456789abcdef".into();
            settings
        };
        let mut settings = valid();
        settings.gateway.trusted_proxies = vec!["10.0.0.0/40".into()];
        assert!(
            settings
                .validate()
                .unwrap_err()
                .to_string()
                .contains("gateway.trusted_proxies")
        );
        let mut settings = valid();
        settings.mail.transport = MailTransport::Smtp;
        assert!(settings.validate().unwrap_err().to_string().contains("mail.smtp_url"));
        let mut settings = valid();
        settings.mail.link_base = "chat.example.com".into();
        assert!(settings.validate().unwrap_err().to_string().contains("mail.link_base"));
        let mut settings = valid();
        settings.auth.throttle.max_wait_ms = 1;
        assert!(settings.validate().unwrap_err().to_string().contains("auth.throttle"));
    }

    #[test]
    fn a_short_jwt_secret_is_refused_by_name() {
        let mut settings = Settings::defaults();
        settings.auth.secret = "0123456789abcdef0123456789abcdef".into();
        settings.auth.jwt_secret = "short".into();
        let error = settings.validate().unwrap_err().to_string();
        assert!(error.contains("auth.jwt_secret"), "{error}");
    }
}
