//! The gateway's shared state: what every handler, socket and background task of one
//! gateway reaches through a cheap clone of [`AppState`]. It holds the parts and nothing
//! of the layers that use them: the HTTP API, the websocket and the domain actions import
//! it, and it imports none of them.

use crate::auth::Auth;
use crate::client_addr::TrustedProxies;
use crate::fanout::{ConnId, Fanout};
use crate::limits::{Admission, TokenBucket};
use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::people::People;
use crate::presence::PresenceService;
use crate::settings::Settings;
use crate::throttle::LoginThrottle;
use crate::upstream::Upstream;
use chat_bus::Bus;
use chat_store::{Blobs, Database, Directory};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    auth: Auth,
    throttle: LoginThrottle,
    trusted_proxies: TrustedProxies,
    database: Database,
    bus: Arc<dyn Bus>,
    people: People,
    presence: PresenceService,
    admission: Arc<Admission>,
    upstream: Upstream,
    mailer: Mailer,
    fanout: Fanout,
    metrics: Metrics,
    shutdown: CancellationToken,
    next_conn: AtomicU64,
    /// Every websocket task, so that a drain can wait for them to close.
    connections: TaskTracker,
    instance: String,
}

impl AppState {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        settings: Settings,
        instance: String,
        database: Database,
        bus: Arc<dyn Bus>,
        upstream: Upstream,
        mailer: Mailer,
        fanout: Fanout,
        people: People,
        metrics: Metrics,
        shutdown: CancellationToken,
    ) -> Self {
        let auth = Auth::new(&settings.auth, database.directory.clone());
        let throttle = LoginThrottle::new(&settings.auth.throttle, database.directory.clone(), metrics.clone());
        let trusted_proxies =
            TrustedProxies::parse(&settings.gateway.trusted_proxies).expect("validated with the settings");
        let admission = Admission::new(
            settings.gateway.max_connections,
            settings.gateway.max_connections_per_user,
            TokenBucket::new(
                settings.gateway.handshakes_per_sec,
                settings.gateway.handshake_burst,
                std::time::Instant::now(),
            ),
        );
        let presence = PresenceService::new(
            bus.clone(),
            database.directory.clone(),
            &instance,
            settings.presence.clone(),
            metrics.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                settings,
                auth,
                throttle,
                trusted_proxies,
                database,
                bus,
                people,
                presence,
                admission,
                upstream,
                mailer,
                fanout,
                metrics,
                shutdown,
                next_conn: AtomicU64::new(1),
                connections: TaskTracker::new(),
                instance,
            }),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }
    pub fn auth(&self) -> &Auth {
        &self.inner.auth
    }
    pub fn throttle(&self) -> &LoginThrottle {
        &self.inner.throttle
    }
    pub fn trusted_proxies(&self) -> &TrustedProxies {
        &self.inner.trusted_proxies
    }
    pub fn directory(&self) -> &Arc<dyn Directory> {
        &self.inner.database.directory
    }
    pub fn blobs(&self) -> &Arc<dyn Blobs> {
        &self.inner.database.blobs
    }
    pub fn people(&self) -> &People {
        &self.inner.people
    }
    pub fn presence(&self) -> &PresenceService {
        &self.inner.presence
    }
    pub fn admission(&self) -> &Arc<Admission> {
        &self.inner.admission
    }

    pub fn upstream(&self) -> &Upstream {
        &self.inner.upstream
    }
    pub fn mailer(&self) -> &Mailer {
        &self.inner.mailer
    }
    pub fn fanout(&self) -> &Fanout {
        &self.inner.fanout
    }
    pub fn bus(&self) -> &Arc<dyn Bus> {
        &self.inner.bus
    }
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }
    pub fn shutdown(&self) -> &CancellationToken {
        &self.inner.shutdown
    }
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_secs(self.inner.settings.drain_timeout_secs)
    }
    pub fn connections(&self) -> &TaskTracker {
        &self.inner.connections
    }
    /// This gateway's public address, naming it in spans and logs.
    pub fn instance(&self) -> &str {
        &self.inner.instance
    }
    pub fn next_conn_id(&self) -> ConnId {
        self.inner.next_conn.fetch_add(1, Ordering::Relaxed)
    }
}
