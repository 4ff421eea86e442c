//! The websocket gateway.
//!
//! # Layout
//! The layers, each importing only those below it:
//! * [`router`]: assembles the application: websocket, API, static files, security headers.
//! * [`ws`]: the websocket layer: [`ws::handshake`] admits a connection; one connection's
//!   reader, in-order sender and batching writer.
//! * [`api`]: the JSON HTTP API and its OpenAPI document.
//! * [`actions`]: domain actions both layers take: membership, upload ownership,
//!   announcements to other gateways.
//! * [`state`]: the shared state every handler and socket reaches.
//! * [`error`]: the one error type; an HTTP response and a websocket `error` frame are
//!   both made from it.
//!
//! The parts the state holds:
//! * [`fanout`]: which local connections are in which room, and in-order, exactly-once
//!   delivery with gap fill. It reads history through a small trait, so its rules are
//!   unit-tested without a database.
//! * [`background`]: the bus reader, the repair sweep and the session purge.
//! * [`signals`]: ephemeral signals between gateways (typing, presence), bounded per room.
//! * [`presence`]: who is online: this gateway's holds in the shared registry, what joining
//!   sockets are told, and the announcements of who comes and goes.
//! * [`people`]: who is connected here, their rooms (for `notify`) and their sessions;
//!   [`control`]: the typed events between gateways that keep it current.
//! * [`outbox`]: a connection's bounded outbound queue and its close codes.
//! * [`queue`]: the bounded queue behind the outbox and a socket's sends; it allocates
//!   only when used.
//! * [`limits`]: the per-connection send rate (a token bucket) and admission.
//! * [`upstream`]: the gRPC client of the message services; each room's calls go to its home.
//! * [`auth`]: sessions, tokens and passwords: the only source of a message's author.
//! * [`throttle`]: the log-in throttle (failures per account and per address, and each
//!   address's share of the password hasher); [`client_addr`]: which address a request is
//!   from, behind the proxies the operator trusts.
//! * [`images`]: what an uploaded image becomes: its size, thumbnails, no metadata, and a
//!   bound against decompression bombs.
//! * [`mail`]: outgoing mail (password-reset links) by SMTP, or into files for development.
//! * [`server`]: the accept loop (handshake timeout, `TCP_NODELAY`).
//! * [`settings`]: typed configuration with its defaults.
//! * [`metrics`]: Prometheus metrics.
//! * [`admin_cli`]: the operator's `grant-admin` / `revoke-admin` commands.
//!
//! [`Gateway::start`] is the one function that builds the running gateway.

pub mod actions;
pub mod admin_cli;
pub mod api;
pub mod auth;
pub mod background;
pub mod client_addr;
pub mod control;
pub mod error;
pub mod fanout;
pub mod images;
pub mod limits;
pub mod mail;
pub mod metrics;
pub mod outbox;
pub mod people;
pub mod presence;
pub mod queue;
pub mod router;
pub mod server;
pub mod settings;
pub mod signals;
pub mod state;
pub mod throttle;
pub mod upstream;
pub mod ws;

use chat_bus::Bus;
use chat_common::ops::{self, Readiness};
use prometheus_client::registry::Registry;
use settings::Settings;
use state::AppState;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Bind(#[from] ops::ListenError),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot subscribe to the bus: {0}")]
    Bus(#[from] chat_bus::BusError),
}

/// Opens the gateway's view of the database (accounts, sessions, membership, uploads).
pub async fn connect_database(
    settings: &chat_common::settings::DatabaseSettings,
) -> Result<chat_store::Database, chat_store::StoreError> {
    let mut options = chat_store::ConnectOptions::new(settings.url.clone());
    options.max_connections = settings.max_connections;
    options.acquire_timeout = Duration::from_millis(settings.acquire_timeout_ms);
    chat_store::open(&options).await
}

/// A running gateway.
pub struct Gateway {
    /// The public address: websocket, API, static files.
    pub addr: SocketAddr,
    /// `/healthz`, `/readyz`, `/metrics`.
    pub ops_addr: SocketAddr,
    task: JoinHandle<()>,
}

struct Ready {
    bus: Arc<dyn Bus>,
    /// The bus reader's: a gateway that cannot read the bus serves nobody.
    link: Arc<chat_bus::Link>,
    bus_cutoff: Duration,
    database: chat_store::Database,
    shutdown: CancellationToken,
}

#[async_trait::async_trait]
impl Readiness for Ready {
    async fn ready(&self) -> Result<(), String> {
        if self.shutdown.is_cancelled() {
            return Err("draining".into());
        }
        if let Some(down) = self.link.down_for().filter(|&down| down >= self.bus_cutoff) {
            return Err(format!("bus: no read for {} s", down.as_secs()));
        }
        self.bus.ping().await.map_err(|e| format!("bus: {e}"))?;
        self.database
            .messages
            .ping()
            .await
            .map_err(|e| format!("database: {e}"))
    }
}

impl Gateway {
    /// Binds both listeners (port 0 picks a free port), subscribes to the bus and serves
    /// until `shutdown` is cancelled; then every socket gets close code 1012 after its
    /// queued frames, within `drain_timeout_secs`.
    ///
    /// `also_metrics`: registries of other services in this process, shown on this
    /// gateway's `/metrics` after its own (the all-in-one's message service).
    pub async fn start(
        settings: Settings,
        database: chat_store::Database,
        bus: Arc<dyn Bus>,
        shutdown: CancellationToken,
        also_metrics: Vec<Arc<Registry>>,
    ) -> Result<Self, StartError> {
        settings.validate().map_err(|e| StartError::Config(e.to_string()))?;
        let (listener, addr) = ops::listen(settings.listen).await?;
        let (ops_listener, ops_addr) = ops::listen(settings.ops_listen).await?;

        let mut registry = Registry::default();
        let metrics = metrics::Metrics::register(&mut registry);
        let upstream = upstream::Upstream::new(&settings.message_service, metrics.send_call_seconds.clone())
            .map_err(StartError::Config)?;
        let mailer = mail::Mailer::new(&settings.mail).map_err(|e| StartError::Config(e.to_string()))?;
        let instance = instance_name(addr);
        // What the bus reader reads: the partitions of rooms served here.
        let interest = bus.interest();
        let fanout = fanout::Fanout::new(
            instance.clone(),
            interest.clone(),
            Arc::new(upstream.clone()),
            Duration::from_millis(settings.gateway.gap_fill_after_ms),
            settings.gateway.outbound_queue,
            metrics.clone(),
        );
        let reader = bus.subscribe(interest.clone()).await?;
        let signals = bus.listen().await?;
        let typing = signals::TypingSettings::from(&settings.signals);
        let repair_every = Duration::from_millis(settings.gateway.repair_interval_ms);
        let bus_cutoff = Duration::from_millis(settings.gateway.bus_cutoff_ms);
        let link = reader.link();
        let forget_failures_after_secs = settings.auth.throttle.forget_after_secs;
        let drain = Duration::from_secs(settings.drain_timeout_secs);
        let people = people::People::new(interest.clone());
        let limits = server::ConnectionLimits {
            handshake_timeout: Duration::from_millis(settings.gateway.handshake_timeout_ms),
            send_buffer_bytes: Some(settings.gateway.socket_send_buffer_bytes).filter(|&b| b > 0),
        };
        let directory = database.directory.clone();
        let state = AppState::new(
            settings,
            instance,
            database.clone(),
            bus.clone(),
            upstream,
            mailer,
            fanout.clone(),
            people.clone(),
            metrics.clone(),
            shutdown.clone(),
        );

        let parts = background::Parts {
            bus: reader,
            interest,
            signals,
            typing,
            presence: state.presence().clone(),
            fanout,
            people,
            directory,
            metrics,
            repair_every,
            link: link.clone(),
            bus_cutoff,
            forget_failures_after: Duration::from_secs(forget_failures_after_secs),
        };
        let tasks = background::spawn(parts, &shutdown);

        let ops = ops::OpsServer::spawn(
            ops_listener,
            Arc::new(Ready {
                bus,
                link,
                bus_cutoff,
                database,
                shutdown: shutdown.clone(),
            }),
            std::iter::once(Arc::new(registry)).chain(also_metrics).collect(),
        );

        let connections = state.connections().clone();
        let app = router::router(state);
        let task = tokio::spawn(async move {
            server::serve(listener, app, limits, shutdown.clone()).await;
            ws::drain(&connections, drain).await;
            tasks.wait().await;
            ops.stop().await;
            tracing::info!("gateway stopped");
        });
        tracing::info!(%addr, %ops_addr, "gateway listening");
        Ok(Self { addr, ops_addr, task })
    }

    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Names this gateway in spans: the host (a container or pod name) and the address, since
/// every container listens on the same 0.0.0.0:8080.
fn instance_name(addr: SocketAddr) -> String {
    format!("{}@{addr}", chat_common::telemetry::host_name())
}
