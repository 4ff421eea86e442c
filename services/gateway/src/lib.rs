//! The websocket gateway.
//!
//! # Layout
//! * [`settings`]: typed configuration with its defaults.
//! * [`app`]: shared state and the router (websocket, API, static files, security headers).
//! * [`server`]: the accept loop (handshake timeout, `TCP_NODELAY`).
//! * [`ws`]: one websocket connection: reader, in-order sender, batching writer.
//! * [`rooms`]: which local connections are in which room, and in-order, exactly-once
//!   delivery with gap fill.
//! * [`outbox`]: a connection's bounded outbound queue and its close codes.
//! * [`queue`]: the bounded queue behind the outbox and a socket's sends; it allocates
//!   only when used.
//! * [`limits`]: the per-connection send rate (a token bucket).
//! * [`upstream`]: the gRPC client of the message services; each room's calls go to its home.
//! * [`api`]: the JSON HTTP API and its OpenAPI document.
//! * [`auth`]: sessions, tokens and passwords: the only source of a message's author.
//! * [`people`]: who is connected here, their rooms (for `notify`) and their sessions.
//! * [`metrics`]: Prometheus metrics.
//!
//! * [`admin_cli`]: the operator's `grant-admin` / `revoke-admin` commands.
//!
//! [`Gateway::start`] is the one function that builds the running gateway.

pub mod admin_cli;
pub mod api;
pub mod app;
pub mod auth;
pub mod limits;
pub mod metrics;
pub mod outbox;
pub mod people;
pub mod queue;
pub mod rooms;
pub mod server;
pub mod settings;
pub mod upstream;
pub mod ws;

use app::AppState;
use chat_bus::{Bus, BusEvent, BusItem, EventKind};
use chat_common::ops::{self, Readiness};
use prometheus_client::registry::Registry;
use settings::Settings;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot subscribe to the bus: {0}")]
    Bus(#[from] chat_bus::BusError),
}

/// A running gateway.
/// Opens the gateway's view of the database (accounts, sessions, membership, uploads).
pub async fn connect_database(
    settings: &chat_common::settings::DatabaseSettings,
) -> Result<chat_store::Database, chat_store::StoreError> {
    let mut options = chat_store::ConnectOptions::new(settings.url.clone());
    options.max_connections = settings.max_connections;
    options.acquire_timeout = Duration::from_millis(settings.acquire_timeout_ms);
    chat_store::open(&options).await
}

/// How often a gateway deletes expired sessions.
const SESSION_PURGE_EVERY: Duration = Duration::from_secs(3600);

pub struct Gateway {
    /// The public address: websocket, API, static files.
    pub addr: SocketAddr,
    /// `/healthz`, `/readyz`, `/metrics`.
    pub ops_addr: SocketAddr,
    task: JoinHandle<()>,
}

struct Ready {
    bus: Arc<dyn Bus>,
    database: chat_store::Database,
    shutdown: CancellationToken,
}

#[async_trait::async_trait]
impl Readiness for Ready {
    async fn ready(&self) -> Result<(), String> {
        if self.shutdown.is_cancelled() {
            return Err("draining".into());
        }
        self.bus.ping().await.map_err(|e| format!("bus: {e}"))?;
        self.database
            .messages
            .ping()
            .await
            .map_err(|e| format!("database: {e}"))
    }
}

/// One event from the bus, to whoever on this gateway it concerns.
fn dispatch(rooms: &rooms::Rooms, people: &people::People, event: BusEvent) {
    match event.kind {
        EventKind::Message => {
            // Rooms nobody here watches cost one map lookup: the frame is parsed only for
            // watchers.
            people.notify(&event.room, event.seq, &event.payload);
            rooms.deliver(event);
        }
        EventKind::Notice => rooms.notice(&event.room, event.payload),
        EventKind::Control => match people::Control::parse(&event.payload) {
            Some(control) => people.apply(control),
            None => tracing::warn!(room = %event.room, "unknown control event on the bus; ignored"),
        },
    }
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), StartError> {
    ops::listen(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
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
        let (listener, addr) = bind(settings.listen).await?;
        let (ops_listener, ops_addr) = bind(settings.ops_listen).await?;

        let mut registry = Registry::default();
        let metrics = metrics::Metrics::register(&mut registry);
        let upstream = upstream::Upstream::new(&settings.message_service).map_err(StartError::Config)?;
        // Names this gateway in spans: the host (a container or pod name) and the address,
        // since every container listens on the same 0.0.0.0:8080.
        let host = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
            .map(|h| h.trim().to_owned())
            .unwrap_or_default();
        let instance = format!("{host}@{addr}");
        let rooms = rooms::Rooms::new(
            instance.clone(),
            upstream.clone(),
            Duration::from_millis(settings.gateway.gap_fill_after_ms),
            settings.gateway.outbound_queue,
            metrics.clone(),
        );
        let mut reader = bus.subscribe().await?;
        let settings_repair_ms = settings.gateway.repair_interval_ms;
        let drain = Duration::from_secs(settings.drain_timeout_secs);
        let people = people::People::default();
        let state = AppState::new(
            settings,
            instance,
            database.clone(),
            bus.clone(),
            upstream,
            rooms.clone(),
            people.clone(),
            metrics.clone(),
            shutdown.clone(),
        );

        // The repair sweep: a message whose publish was lost (its message service died
        // before publishing, or Redis refused the write) reaches members even when nothing
        // after it in the room would show the gap.
        tokio::spawn({
            let (rooms, directory, shutdown) = (rooms.clone(), database.directory.clone(), shutdown.clone());
            let metrics = metrics.clone();
            let every = Duration::from_millis(settings_repair_ms);
            async move {
                let mut stored_before = HashMap::new();
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tick.tick() => {}
                    }
                    let repaired = rooms.repair(&stored_before);
                    metrics.repairs.inc_by(repaired as u64);
                    let names = rooms.names();
                    stored_before = if names.is_empty() {
                        HashMap::new()
                    } else {
                        match directory.last_seqs(&names).await {
                            Ok(seqs) => seqs.into_iter().collect(),
                            Err(error) => {
                                tracing::warn!(%error, "repair sweep: cannot read the rooms' last seqs");
                                HashMap::new()
                            }
                        }
                    };
                }
            }
        });

        let fan_out = tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                loop {
                    let items = tokio::select! {
                        _ = shutdown.cancelled() => break,
                        items = reader.next_batch() => items,
                    };
                    for item in items {
                        match item {
                            BusItem::Event(event) => dispatch(&rooms, &people, event),
                            BusItem::Resync => {
                                metrics.bus_resyncs.inc();
                                rooms.resync_all();
                            }
                        }
                    }
                }
            }
        });

        // Expired sessions are refused anyway; this only keeps the table from growing.
        tokio::spawn({
            let (directory, shutdown) = (database.directory.clone(), shutdown.clone());
            async move {
                let mut every = tokio::time::interval(SESSION_PURGE_EVERY);
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = every.tick() => {}
                    }
                    match directory.purge_expired_sessions(auth::now_ms()).await {
                        Ok(0) => {}
                        Ok(purged) => tracing::info!(purged, "expired sessions removed"),
                        Err(error) => tracing::warn!(%error, "could not remove expired sessions"),
                    }
                }
            }
        });

        let ops = ops::OpsServer::spawn(
            ops_listener,
            Arc::new(Ready {
                bus,
                database,
                shutdown: shutdown.clone(),
            }),
            std::iter::once(Arc::new(registry)).chain(also_metrics).collect(),
        );

        let connections = state.connections().clone();
        let limits = server::ConnectionLimits {
            handshake_timeout: Duration::from_millis(state.settings().gateway.handshake_timeout_ms),
            send_buffer_bytes: Some(state.settings().gateway.socket_send_buffer_bytes).filter(|&b| b > 0),
        };
        let app = app::router(state);
        let task = tokio::spawn(async move {
            server::serve(listener, app, limits, shutdown.clone()).await;
            // Upgraded sockets outlive the HTTP server: each one finishes its in-flight sends,
            // flushes and closes with 1012 on the same signal, within the drain bound.
            connections.close();
            let open = connections.len();
            if open > 0 {
                tracing::info!(connections = open, "draining websocket connections");
            }
            if tokio::time::timeout(drain + Duration::from_secs(1), connections.wait())
                .await
                .is_err()
            {
                tracing::warn!(
                    connections = connections.len(),
                    "drain deadline passed with sockets still open"
                );
            }
            let _ = fan_out.await;
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
