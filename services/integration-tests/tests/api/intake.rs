//! What a gateway reads from the bus: the partitions of the rooms it serves and the control
//! stream, so that its intake follows its share of the traffic rather than the whole
//! system's; and a `notify` for a room served elsewhere, at the cost of reading that room's
//! partition too.

use crate::helpers::{collect, metric, seqs};
use chat_domain::RoomName;
use integration_tests::{TestCluster, WsClient};
use redis::Commands;
use reqwest::Method;
use serde_json::json;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const GATEWAYS: usize = 4;
const PARTITIONS: u32 = 16;
/// Messages sent in each room before the sentinel.
const PER_ROOM: usize = 24;

/// A room name on `partition`.
fn room_on(partition: u32) -> String {
    (0..)
        .map(|i| format!("r{partition}-{i}"))
        .find(|name| chat_bus::partition_of(&RoomName::parse(name).unwrap(), PARTITIONS) == partition)
        .unwrap()
}

/// Waits (bounded) until a gateway's metric satisfies `done`; returns its value. Counters
/// move after the batch they count is delivered, so a test that saw the delivery waits.
async fn metric_until(ops: SocketAddr, name: &str, done: impl Fn(f64) -> bool) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let value = metric(ops, name).await;
        if done(value) || Instant::now() > deadline {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_gateway_reads_the_partitions_it_serves_and_notify_still_crosses_gateways() {
    let cluster = TestCluster::start_partitioned(GATEWAYS, 2, PARTITIONS, |_| {}).await;
    let ops = |g: usize| cluster.gateways[g].ops_addr;
    // One room per partition; gateway g serves the rooms of partitions 4g … 4g+3.
    let rooms: Vec<String> = (0..PARTITIONS).map(room_on).collect();
    let served = |g: usize| (g as u32 * 4..g as u32 * 4 + 4).collect::<Vec<u32>>();

    // Nora, connected to gateway 0, belongs to a room gateway 2 serves: gateway 0 reads its
    // partition too, so that she hears of its messages. That is what notify costs.
    let nora_room = &rooms[8];
    let nora = cluster.sign_up(0, "nora").await;
    let (status, _) = cluster
        .call(
            0,
            Method::POST,
            "/api/v1/rooms",
            Some(&nora),
            Some(json!({"name": nora_room})),
        )
        .await;
    assert_eq!(status, 200);
    let mut nora_ws = cluster.client_with(0, &nora).await;
    let watched = metric_until(ops(0), "sc_gateway_bus_partitions", |v| v == 1.0).await;
    assert_eq!(
        watched, 1.0,
        "gateway 0 reads the partition of the room nora belongs to"
    );
    let reads = metric_until(ops(0), "sc_gateway_bus_reads", |v| v == 8.0).await;
    assert_eq!(reads, 8.0, "a quiet bus is read over eight connections");

    // A sender and a listener in each room, on the gateway that serves it.
    let mut pairs: Vec<(WsClient, WsClient)> = Vec::new();
    for (partition, room) in rooms.iter().enumerate() {
        let g = partition / 4;
        let mut sender = cluster.client(g, &format!("s{partition}")).await;
        let mut listener = cluster.client(g, &format!("l{partition}")).await;
        sender.join(room, None).await;
        listener.join(room, None).await;
        pairs.push((sender, listener));
    }
    for (room, (sender, _)) in rooms.iter().zip(&mut pairs) {
        for i in 0..PER_ROOM {
            sender
                .send_text(room, &format!("{room} #{i}"), &format!("{room}-{i}"))
                .await;
        }
    }
    // Every member gets every message of their room once, in order.
    let all: Vec<u64> = (1..=PER_ROOM as u64).collect();
    for (room, (sender, listener)) in rooms.iter().zip(&mut pairs) {
        let (messages, acks) = collect(sender, PER_ROOM, PER_ROOM).await;
        assert_eq!((seqs(&messages), acks.len()), (all.clone(), PER_ROOM), "{room}, sender");
        let (messages, _) = collect(listener, PER_ROOM, 0).await;
        assert_eq!(seqs(&messages), all, "{room}, listener");
        assert!(
            messages.iter().all(|m| m["room"] == room.as_str()),
            "{room}: only its own"
        );
    }
    // A sentinel in each room proves nothing more was queued behind them.
    for (room, (sender, _)) in rooms.iter().zip(&mut pairs) {
        sender.send_text(room, "sentinel", &format!("{room}-last")).await;
    }
    for (room, (sender, listener)) in rooms.iter().zip(&mut pairs) {
        let last = vec![PER_ROOM as u64 + 1];
        assert_eq!(seqs(&collect(sender, 1, 1).await.0), last, "{room}, sender");
        assert_eq!(seqs(&collect(listener, 1, 0).await.0), last, "{room}, listener");
    }
    // Nora, with no room open, hears of every message in hers, once, in order.
    let mut notified = Vec::new();
    while notified.len() <= PER_ROOM {
        let frame = nora_ws.recv().await;
        assert_eq!(frame["type"], "notify", "{frame}");
        assert_eq!(frame["room"], nora_room.as_str());
        notified.push(frame["seq"].as_u64().unwrap());
    }
    assert_eq!(notified, (1..=PER_ROOM as u64 + 1).collect::<Vec<_>>());
    assert_eq!(cluster.db.message_rows().await.len(), rooms.len() * (PER_ROOM + 1));

    // What each partition and the control stream hold, from Redis itself.
    let mut redis = redis::Client::open(integration_tests::cluster::redis_url())
        .unwrap()
        .get_connection()
        .unwrap();
    let prefix = &cluster.redis_prefix;
    let lengths: Vec<u64> = (0..PARTITIONS)
        .map(|p| {
            let tag = chat_bus::partition::hash_tag(p, PARTITIONS);
            redis.xlen(format!("{prefix}:events:{{{tag}}}")).unwrap()
        })
        .collect();
    assert!(
        lengths.iter().all(|&n| n > PER_ROOM as u64),
        "every partition carried its room: {lengths:?}"
    );
    let control: u64 = redis.xlen(format!("{prefix}:control")).unwrap();
    let total = lengths.iter().sum::<u64>() + control;
    let mut report = Vec::new();
    for g in 0..GATEWAYS {
        let mut partitions = served(g);
        if g == 0 {
            partitions.push(8);
        }
        // Every entry of its partitions and of the control stream (it read them all before
        // the first was published), and nothing else.
        let available = (partitions.iter().map(|&p| lengths[p as usize]).sum::<u64>() + control) as f64;
        let read = metric_until(ops(g), "sc_gateway_bus_entries_read_total", |v| v >= available).await;
        let reading = metric(ops(g), "sc_gateway_bus_partitions").await;
        report.push(format!("gateway {g}: read {read} of {total}, {reading} partitions"));
        assert_eq!(read, available, "gateway {g}, partitions {partitions:?}: {report:?}");
        assert!(
            read <= total as f64 / 2.0,
            "within twice its share, not the total: {report:?}"
        );
        assert_eq!(reading, partitions.len() as f64, "{report:?}");
    }
    eprintln!("intake of {total} entries ({control} on the control stream): {report:#?}");
}
