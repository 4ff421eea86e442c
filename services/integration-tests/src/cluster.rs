//! A cluster of real gateways and message services in this process, each on its own
//! loopback port, sharing a fresh Postgres database and a fresh Redis key prefix.

use chat_bus::redis_streams::{RedisStreamsBus, RedisStreamsConfig};
use gateway::Gateway;
use message_service::MessageService;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// A database of its own for one test, shared with the store suite.
pub use test_database::{TestDb, database_admin_url};

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A guest session from the gateway at `addr`; returns its token.
pub async fn create_session(addr: SocketAddr, name: &str) -> String {
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/api/v1/sessions"))
        .json(&serde_json::json!({"name": name}))
        .send()
        .await
        .expect("create session");
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.unwrap();
    body["token"].as_str().unwrap().to_owned()
}

/// The text of a service's `/metrics`, from its ops address.
pub async fn scrape_metrics(ops: SocketAddr) -> String {
    reqwest::get(format!("http://{ops}/metrics"))
        .await
        .expect("the service answers /metrics")
        .text()
        .await
        .expect("metrics text")
}

pub struct TestCluster {
    pub db: TestDb,
    pub redis_prefix: String,
    pub gateways: Vec<Gateway>,
    pub services: Vec<MessageService>,
    pub shutdown: CancellationToken,
    http: reqwest::Client,
}

pub const SECRET: &str = "integration-test-secret-0123456789abcdef";
/// The password [`TestCluster::sign_up`] gives every account.
pub const PASSWORD: &str = "correct horse battery staple";

impl TestCluster {
    /// `services` message services and `gateways` gateways, every gateway a client of
    /// every message service.
    pub async fn start(gateways: usize, services: usize) -> Self {
        Self::start_with(gateways, services, |_| {}).await
    }

    pub async fn start_with(
        gateways: usize,
        services: usize,
        tweak: impl Fn(&mut gateway::settings::Settings),
    ) -> Self {
        Self::start_partitioned(gateways, services, Self::PARTITIONS, tweak).await
    }

    /// Stream partitions of a cluster from [`TestCluster::start`]: few, so that tests can
    /// find rooms that share one.
    pub const PARTITIONS: u32 = 4;

    /// As [`TestCluster::start_with`], on a bus of `partitions` stream partitions.
    pub async fn start_partitioned(
        gateways: usize,
        services: usize,
        partitions: u32,
        tweak: impl Fn(&mut gateway::settings::Settings),
    ) -> Self {
        let db = TestDb::create().await;
        let redis_prefix = format!("it-{}", uuid::Uuid::new_v4().simple());
        let shutdown = CancellationToken::new();
        let mut redis = RedisStreamsConfig::new(redis_url(), redis_prefix.clone());
        redis.partitions = partitions;
        redis.block_ms = 500;

        let mut running_services = Vec::new();
        for _ in 0..services {
            let mut settings = message_service::settings::Settings::defaults();
            settings.grpc_listen = "127.0.0.1:0".parse().unwrap();
            settings.ops_listen = "127.0.0.1:0".parse().unwrap();
            settings.database.url = db.url.clone();
            settings.database.max_connections = 4;
            settings.redis = redis.clone();
            let store = message_service::connect_store(&settings.database).await.expect("store");
            let bus = Arc::new(RedisStreamsBus::connect(redis.clone()).await.expect("redis"));
            running_services.push(
                MessageService::start(&settings, store, bus, shutdown.clone())
                    .await
                    .expect("message service"),
            );
        }
        let endpoints: Vec<String> = running_services
            .iter()
            .map(|s| format!("http://{}", s.grpc_addr))
            .collect();

        let mut running_gateways = Vec::new();
        for _ in 0..gateways {
            let mut settings = gateway::settings::Settings::defaults();
            settings.listen = "127.0.0.1:0".parse().unwrap();
            settings.ops_listen = "127.0.0.1:0".parse().unwrap();
            settings.auth.secret = SECRET.into();
            settings.message_service.endpoints = endpoints.clone();
            settings.redis = redis.clone();
            settings.static_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../static").into();
            settings.database.url = db.url.clone();
            settings.database.max_connections = 4;
            // Tests send and connect as fast as they can; the limits have tests of their own.
            settings.gateway.send_rate_per_sec = 1e6;
            settings.gateway.send_burst = 1_000_000;
            settings.gateway.max_connections_per_user = 1_000_000;
            // Every test client is 127.0.0.1: one address for the log-in throttle.
            settings.auth.throttle.address_free_failures = 1_000_000;
            settings.auth.throttle.checks_per_address = 1_000_000;
            // No mail unless a test sets it up (the default writes files under ./data).
            settings.mail.transport = gateway::settings::MailTransport::Off;
            tweak(&mut settings);
            let database = gateway::connect_database(&settings.database).await.expect("database");
            let bus = Arc::new(RedisStreamsBus::connect(redis.clone()).await.expect("redis"));
            running_gateways.push(
                Gateway::start(settings, database, bus, shutdown.clone(), Vec::new())
                    .await
                    .expect("gateway"),
            );
        }
        Self {
            db,
            redis_prefix,
            gateways: running_gateways,
            services: running_services,
            shutdown,
            http: reqwest::Client::new(),
        }
    }

    pub fn gateway(&self, i: usize) -> SocketAddr {
        self.gateways[i].addr
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// A guest session on gateway `i`; returns its token.
    pub async fn session(&self, i: usize, name: &str) -> String {
        create_session(self.gateway(i), name).await
    }

    /// Waits until everything committed so far is in the search index: the message
    /// services index after the commit, every `search.index_interval_ms`, and a queue
    /// entry is gone only with the transaction that indexed it.
    pub async fn search_indexed(&self) {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&self.db.url).await.expect("connect");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM search_queue)")
            .fetch_one(&mut conn)
            .await
            .expect("read the search queue")
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the message services did not index within 20 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Signs up `username` (password [`PASSWORD`]) on gateway `i`; returns the session token.
    pub async fn sign_up(&self, i: usize, username: &str) -> String {
        let body = serde_json::json!({
            "username": username, "email": format!("{username}@example.com"),
            "first_name": "Test", "last_name": "User", "password": PASSWORD,
        });
        let (status, body) = self
            .call(i, reqwest::Method::POST, "/api/v1/accounts", None, Some(body))
            .await;
        assert_eq!(status, 201, "{body}");
        body["token"].as_str().expect("token").to_owned()
    }

    /// One API call on gateway `i`: the status and the JSON body (`null` when empty).
    pub async fn call(
        &self,
        i: usize,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut request = self.http.request(method, format!("http://{}{path}", self.gateway(i)));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let bytes = response.bytes().await.expect("body");
        let json = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        (status, json)
    }

    /// The cluster's database as the services see it (accounts, messages, uploads).
    pub async fn database(&self) -> chat_store::Database {
        chat_store::open(&chat_store::ConnectOptions::new(self.db.url.clone()))
            .await
            .expect("open database")
    }

    /// A websocket client on gateway `i` with this session token.
    pub async fn client_with(&self, i: usize, token: &str) -> crate::WsClient {
        crate::WsClient::connect(self.gateway(i), token).await
    }

    /// A websocket client with a fresh guest session, on gateway `i`.
    pub async fn client(&self, i: usize, name: &str) -> crate::WsClient {
        let token = self.session(i, name).await;
        crate::WsClient::connect(self.gateway(i), &token).await
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        self.shutdown.cancel();
        delete_redis_keys(&redis_url(), &self.redis_prefix);
    }
}

/// Deletes every key under `prefix`, so that repeated runs leave a shared Redis clean.
pub fn delete_redis_keys(url: &str, prefix: &str) {
    let pattern = format!("{prefix}:*");
    let url = url.to_owned();
    let _ = std::thread::spawn(move || -> redis::RedisResult<()> {
        let mut conn = redis::Client::open(url)?.get_connection()?;
        let keys: Vec<String> = redis::cmd("KEYS").arg(&pattern).query(&mut conn)?;
        if !keys.is_empty() {
            redis::cmd("DEL").arg(keys).query::<()>(&mut conn)?;
        }
        Ok(())
    })
    .join();
}
