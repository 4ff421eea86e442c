//! The topology as processes, through `scripts/cluster.sh` and its balancer: delivery
//! through the balancer, a gateway drained under traffic, and services starting together.

use integration_tests::cluster::create_session as session;
use integration_tests::processes::{ScriptCluster, bin_dir, process_alive, send_signal};
use integration_tests::ws::Event;
use integration_tests::{TestDb, WsClient};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Connects through the balancer, retrying while a gateway is going away.
async fn connect_retrying(addr: SocketAddr, token: &str) -> WsClient {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut backoff = Duration::from_millis(20);
    loop {
        match WsClient::try_connect(addr, Some(token), None).await {
            Ok(client) => return client,
            Err(error) if Instant::now() < deadline => {
                eprintln!("reconnect failed ({error}); retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(500));
            }
            Err(error) => panic!("could not reconnect through the balancer: {error}"),
        }
    }
}

/// Waits (bounded) for an external process to exit.
async fn wait_exit(pid: u32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while process_alive(pid) {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_script_serves_every_gateway_through_the_balancer_and_down_leaves_nothing() {
    let mut cluster = ScriptCluster::up(2, 2).await;
    let http = reqwest::Client::new();
    let mut members = Vec::new();
    for gateway in 1..=2 {
        let token = session(cluster.gateway(gateway), &format!("on gateway {gateway}")).await;
        let mut member = WsClient::connect(cluster.gateway(gateway), &token).await;
        member.join("through", None).await;
        members.push(member);
    }
    // Send through the balancer, over HTTP and over a websocket.
    let token = session(cluster.balancer(), "sender").await;
    let mut sender = WsClient::connect(cluster.balancer(), &token).await;
    sender.join("through", None).await;
    sender.send_text("through", "via the balancer", "b-1").await;
    let response = http
        .post(format!("http://{}/api/v1/rooms/through/messages", cluster.balancer()))
        .bearer_auth(&token)
        .json(&json!({"text": "via http", "client_msg_id": "b-2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    for member in &mut members {
        let (first, _) = member.recv_until("message").await;
        let (second, _) = member.recv_until("message").await;
        assert_eq!((first["seq"].as_u64(), second["seq"].as_u64()), (Some(1), Some(2)));
        let texts = [first["text"].as_str().unwrap(), second["text"].as_str().unwrap()];
        assert!(
            texts.contains(&"via the balancer") && texts.contains(&"via http"),
            "{texts:?}"
        );
    }

    let pids = cluster.pids();
    assert!(pids.len() >= 5, "balancer, gateways and services recorded: {pids:?}");
    cluster.down();
    for (name, pid) in pids {
        assert!(!process_alive(pid), "{name} (pid {pid}) still running after down");
    }
}

/// `cluster.sh up --redis-cluster`: the bus on a Redis Cluster of 3 masters and 3 replicas
/// that the script starts from the installed `redis-server`, and `down` stops with the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_script_runs_the_bus_on_a_redis_cluster_of_its_own() {
    let mut cluster = ScriptCluster::up_with_redis_cluster(2, 1).await;
    let mut members = Vec::new();
    for gateway in 1..=2 {
        let token = session(cluster.gateway(gateway), &format!("on gateway {gateway}")).await;
        let mut member = WsClient::connect(cluster.gateway(gateway), &token).await;
        member.join("clustered", None).await;
        members.push(member);
    }
    members[0].send_text("clustered", "over the cluster", "c-1").await;
    for member in &mut members {
        let (message, _) = member.recv_until("message").await;
        assert_eq!(
            (message["seq"].as_u64(), message["text"].as_str()),
            (Some(1), Some("over the cluster"))
        );
    }
    // The stream entry is on one of the cluster's masters, the script's own nodes.
    let nodes: Vec<u16> = (410..416).map(|offset| cluster.port + offset).collect();
    let mut entries = 0;
    for &port in &nodes {
        let mut conn = redis::Client::open(format!("redis://127.0.0.1:{port}"))
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .expect("a node of the script's cluster");
        let info: String = redis::cmd("CLUSTER").arg("INFO").query_async(&mut conn).await.unwrap();
        assert!(info.contains("cluster_state:ok"), "node {port}: {info}");
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:events:*", cluster.redis_prefix))
            .query_async(&mut conn)
            .await
            .unwrap();
        entries += keys.len();
    }
    assert!(entries >= 1, "no stream on the cluster's nodes");

    let pids = cluster.pids();
    assert!(
        pids.iter()
            .filter(|(name, _)| name.starts_with("redis-cluster-"))
            .count()
            == 6,
        "six cluster nodes recorded: {pids:?}"
    );
    cluster.down();
    for (name, pid) in pids {
        assert!(!process_alive(pid), "{name} (pid {pid}) still running after down");
    }
}

/// A member that sends at a steady pace, checks it sees every seq once and in order, and
/// on a close reconnects through the balancer, resumes with `since_seq` and resends what
/// was not acked, with the same `client_msg_id`.
struct Peer {
    name: String,
    token: String,
    balancer: SocketAddr,
    seen: Vec<u64>,
    unacked: BTreeMap<String, String>,
    /// Sends refused as `unavailable`, to be sent again with the same id.
    retry: Vec<String>,
    closes: Vec<Option<u16>>,
}

impl Peer {
    fn record(&mut self, frame: &Value) {
        let seq = frame["seq"].as_u64().expect("seq");
        let expected = self.seen.last().map_or(1, |s| s + 1);
        assert_eq!(
            seq,
            expected,
            "{}: seq {seq} after {:?}: a gap or a repeat",
            self.name,
            self.seen.last()
        );
        self.seen.push(seq);
    }

    async fn run(mut self, quota: usize, total: u64, progress: tokio::sync::watch::Sender<u64>) -> Self {
        let mut ws = connect_retrying(self.balancer, &self.token).await;
        let joined = ws.join("drain", Some(0)).await;
        for message in joined["history"].as_array().unwrap() {
            self.record(message);
        }
        let mut ticker = tokio::time::interval(Duration::from_millis(15));
        let mut sent = 0;
        while sent < quota || !self.unacked.is_empty() || self.seen.last().copied().unwrap_or(0) < total {
            tokio::select! {
                _ = ticker.tick(), if sent < quota || !self.retry.is_empty() => {
                    if let Some(id) = self.retry.pop() {
                        if let Some(text) = self.unacked.get(&id) {
                            ws.send_text("drain", text, &id).await;
                        }
                    } else {
                        let (id, text) = (format!("{}-{sent}", self.name), format!("{} says {sent}", self.name));
                        ws.send_text("drain", &text, &id).await;
                        self.unacked.insert(id, text);
                        sent += 1;
                    }
                }
                event = ws.next_event() => match event {
                    Event::Frame(frame) => match frame["type"].as_str() {
                        Some("message") => {
                            self.record(&frame);
                            progress.send_modify(|n| *n += 1);
                        }
                        Some("ack") => {
                            self.unacked.remove(frame["client_msg_id"].as_str().unwrap());
                        }
                        Some("error") if frame["code"] == "unavailable" => {
                            self.retry.push(frame["ref"].as_str().unwrap().to_owned());
                        }
                        // Ephemeral signals come when they come; this test is about messages.
                        Some("presence" | "typing" | "read") => {}
                        _ => panic!("{}: unexpected frame {frame}", self.name),
                    },
                    Event::Closed(close) => {
                        self.closes.push(close.map(|c| c.code.into()));
                        ws = connect_retrying(self.balancer, &self.token).await;
                        let since = self.seen.last().copied().unwrap_or(0);
                        let joined = ws.join("drain", Some(since)).await;
                        assert_eq!(joined["has_more"], false);
                        for message in joined["history"].as_array().unwrap() {
                            self.record(message);
                        }
                        self.retry.clear();
                        for (id, text) in self.unacked.clone() {
                            ws.send_text("drain", &text, &id).await;
                        }
                    }
                },
            }
        }
        self
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_and_a_message_service_drained_under_traffic_lose_and_repeat_nothing() {
    const PEERS: usize = 6;
    const QUOTA: usize = 40;
    let total = (PEERS * QUOTA) as u64;
    let cluster = ScriptCluster::up(2, 2).await;
    let mut peers = Vec::new();
    for i in 0..PEERS {
        peers.push(Peer {
            name: format!("peer{i}"),
            // Sessions straight from a gateway, so the balancer alternates the sockets.
            token: session(cluster.gateway(2), &format!("peer{i}")).await,
            balancer: cluster.balancer(),
            seen: Vec::new(),
            unacked: BTreeMap::new(),
            retry: Vec::new(),
            closes: Vec::new(),
        });
    }
    let (progress, mut watch) = tokio::sync::watch::channel(0u64);
    let tasks: Vec<_> = peers
        .into_iter()
        .map(|peer| tokio::spawn(peer.run(QUOTA, total, progress.clone())))
        .collect();

    // A third of the way in, drain gateway 1.
    watch
        .wait_for(|&delivered| delivered >= total * PEERS as u64 / 3)
        .await
        .unwrap();
    let pid = cluster.pid("gateway-1");
    send_signal(pid, "TERM");
    assert!(
        wait_exit(pid, Duration::from_secs(15)).await,
        "gateway 1 exits within its drain bound"
    );

    let mut closes = Vec::new();
    for task in tasks {
        let peer = task.await.unwrap();
        assert_eq!(
            peer.seen,
            (1..=total).collect::<Vec<_>>(),
            "{} saw every message once, in order",
            peer.name
        );
        assert!(peer.unacked.is_empty());
        closes.extend(peer.closes);
    }
    assert!(!closes.is_empty(), "some peers were on the drained gateway");
    assert!(
        closes.iter().all(|c| *c == Some(1012)),
        "drained sockets get 1012: {closes:?}"
    );
    let rows = cluster.db.message_rows().await;
    assert_eq!(rows.len() as u64, total, "every message stored once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_message_services_starting_together_on_an_empty_database_share_one_schema() {
    let db = TestDb::create().await;
    let ports = integration_tests::processes::reserve_ports(0, 2);
    let base = ports.base;
    let spawn = |i: u16| {
        std::process::Command::new(bin_dir().join("message-service"))
            .env("SC_DATABASE__URL", &db.url)
            .env("SC_REDIS__URL", integration_tests::cluster::redis_url())
            .env("SC_GRPC_LISTEN", format!("127.0.0.1:{}", base + 200 + i))
            .env("SC_OPS_LISTEN", format!("127.0.0.1:{}", base + 300 + i))
            .env("SC_LOG__LEVEL", "warn")
            .spawn()
            .expect("start message-service")
    };
    let mut children = [spawn(1), spawn(2)];
    for i in 1..=2u16 {
        let ops = SocketAddr::from(([127, 0, 0, 1], base + 300 + i));
        let deadline = Instant::now() + Duration::from_secs(30);
        while chat_common::ops::probe(ops, "/readyz").await.is_err() {
            assert!(Instant::now() < deadline, "message service {i} did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
        .await
        .unwrap();
    let migrations: Vec<(i64, bool)> = sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert!(
        !migrations.is_empty() && migrations.iter().all(|(_, ok)| *ok),
        "{migrations:?}"
    );
    let versions: std::collections::HashSet<i64> = migrations.iter().map(|(v, _)| *v).collect();
    assert_eq!(versions.len(), migrations.len(), "each migration applied once");
    let tables: Vec<(String,)> = sqlx::query_as(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' AND table_name IN ('rooms', 'messages') ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(tables, vec![("messages".to_string(),), ("rooms".to_string(),)]);
    for child in &mut children {
        send_signal(child.id(), "TERM");
        assert!(child.wait().unwrap().success(), "clean exit on SIGTERM");
    }
}
