//! The message service: the one place that writes messages.
//!
//! # Layout
//! * [`settings`]: typed configuration with its defaults.
//! * [`grpc`]: the `chat.v1.ChatService` handlers.
//! * [`committer`]: group commit; a send is acknowledged only after its transaction commits.
//! * [`publisher`]: publishes committed messages to the bus, in order, with retry.
//! * [`indexer`]: brings the search index up to date after commits.
//! * [`metrics`]: Prometheus metrics.
//!
//! [`MessageService::start`] is the one function that builds the running service; the
//! binary, the all-in-one and the tests all start it the same way.

pub mod committer;
pub mod grpc;
pub mod indexer;
pub mod metrics;
pub mod publisher;
pub mod settings;

use chat_bus::Bus;
use chat_common::ops::{self, Readiness};
use chat_proto::v1::chat_service_server::ChatServiceServer;
use chat_store::{ConnectOptions, Store};
use prometheus_client::registry::Registry;
use settings::Settings;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Bind(#[from] ops::ListenError),
    #[error("cannot open the database: {0}")]
    Store(#[from] chat_store::StoreError),
    #[error("cannot connect to the bus: {0}")]
    Bus(#[from] chat_bus::BusError),
}

pub async fn connect_store(settings: &settings::DatabaseSettings) -> Result<Arc<dyn Store>, StartError> {
    let mut options = ConnectOptions::new(settings.url.clone());
    options.max_connections = settings.max_connections;
    options.acquire_timeout = Duration::from_millis(settings.acquire_timeout_ms);
    Ok(chat_store::connect(&options).await?)
}

/// A running message service.
pub struct MessageService {
    pub grpc_addr: SocketAddr,
    pub ops_addr: SocketAddr,
    /// The service's metrics, for a process that serves them on another `/metrics` too.
    pub metrics: Arc<Registry>,
    task: JoinHandle<()>,
}

struct Ready {
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    shutdown: CancellationToken,
}

#[async_trait::async_trait]
impl Readiness for Ready {
    async fn ready(&self) -> Result<(), String> {
        if self.shutdown.is_cancelled() {
            return Err("shutting down".into());
        }
        self.store.ping().await.map_err(|e| format!("database: {e}"))?;
        self.bus.ping().await.map_err(|e| format!("bus: {e}"))?;
        Ok(())
    }
}

impl MessageService {
    /// Binds both listeners (port 0 picks a free port) and starts serving. Stops when
    /// `shutdown` is cancelled: no new calls, in-flight batches commit and publish, within
    /// `drain_timeout_secs`.
    pub async fn start(
        settings: &Settings,
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
        shutdown: CancellationToken,
    ) -> Result<Self, StartError> {
        let (grpc_listener, grpc_addr) = ops::listen(settings.grpc_listen).await?;
        let (ops_listener, ops_addr) = ops::listen(settings.ops_listen).await?;

        let mut registry = Registry::default();
        let metrics = metrics::Metrics::register(&mut registry);
        let give_up = CancellationToken::new();
        let (publish, publisher) = publisher::spawn(bus.clone(), metrics.clone(), give_up.clone());
        let indexer = indexer::spawn(store.clone(), &settings.search, metrics.clone(), shutdown.clone());
        let send_seconds = metrics.send_seconds.clone();
        let (commits, committer) = committer::spawn(store.clone(), publish, &settings.commit, metrics);
        let service = grpc::ChatGrpc::new(store.clone(), commits, settings.history.clone(), send_seconds);

        let registry = Arc::new(registry);
        let ops = ops::OpsServer::spawn(
            ops_listener,
            Arc::new(Ready {
                store,
                bus,
                shutdown: shutdown.clone(),
            }),
            vec![registry.clone()],
        );

        let drain = Duration::from_secs(settings.drain_timeout_secs);
        let task = tokio::spawn(async move {
            let grpc = tonic::transport::Server::builder()
                .add_service(ChatServiceServer::new(service))
                .serve_with_incoming_shutdown(
                    // TCP_NODELAY on every accepted socket: an ack must not wait for the
                    // gateway's delayed ACK of the previous response (up to 40 ms).
                    tonic::transport::server::TcpIncoming::from(grpc_listener).with_nodelay(Some(true)),
                    shutdown.clone().cancelled_owned(),
                );
            if let Err(error) = grpc.await {
                tracing::error!(%error, "grpc server failed");
            }
            // The server is gone, and with it every CommitHandle: the committer drains its
            // queue, then the publisher drains, bounded by the drain deadline.
            let deadline = tokio::spawn({
                let give_up = give_up.clone();
                async move {
                    tokio::time::sleep(drain).await;
                    give_up.cancel();
                }
            });
            let _ = committer.await;
            let _ = publisher.await;
            let _ = indexer.await;
            deadline.abort();
            ops.stop().await;
            tracing::info!("message service stopped");
        });
        tracing::info!(%grpc_addr, %ops_addr, "message service listening");
        Ok(Self {
            grpc_addr,
            ops_addr,
            metrics: registry,
            task,
        })
    }

    /// Waits until the service has stopped and drained.
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}
