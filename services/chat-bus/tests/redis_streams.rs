//! The Redis Streams bus against a real Redis (`REDIS_URL`, default 127.0.0.1:6379). Each
//! test uses its own key prefix.

use bytes::Bytes;
use chat_bus::redis_streams::{RedisStreamsBus, RedisStreamsConfig};
use chat_bus::{Bus, BusEvent, BusItem, BusReader};
use chat_domain::RoomName;
use std::time::Duration;

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn config() -> RedisStreamsConfig {
    let mut config = RedisStreamsConfig::new(redis_url(), format!("test-{}", uuid::Uuid::new_v4().simple()));
    config.shards = 4;
    config.block_ms = 200;
    config
}

fn event(room: &str, seq: u64) -> BusEvent {
    BusEvent {
        // Every kind travels: the reader must hand back exactly what was published.
        kind: match seq % 5 {
            3 => chat_bus::EventKind::Notice,
            4 => chat_bus::EventKind::Control,
            _ => chat_bus::EventKind::Message,
        },
        room: RoomName::parse(room).unwrap(),
        seq,
        payload: Bytes::from(format!("{{\"room\":\"{room}\",\"seq\":{seq}}}")),
        traceparent: seq
            .is_multiple_of(2)
            .then(|| format!("00-{:032x}-{:016x}-01", seq, seq)),
        published_at_ms: None,
    }
}

/// Deletes the test's streams so that repeated runs leave a shared Redis clean.
async fn cleanup(config: &RedisStreamsConfig) {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*", config.key_prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL").arg(keys).query_async(&mut conn).await.unwrap();
    }
}

/// Reads until `n` events arrived (or a generous deadline passes, failing the test).
async fn read_events(reader: &mut Box<dyn BusReader>, n: usize) -> (Vec<BusEvent>, usize) {
    let mut events = Vec::new();
    let mut resyncs = 0;
    tokio::time::timeout(Duration::from_secs(20), async {
        while events.len() < n {
            for item in reader.next_batch().await {
                match item {
                    BusItem::Event(e) => events.push(e),
                    BusItem::Resync => resyncs += 1,
                }
            }
        }
    })
    .await
    .expect("events did not arrive in time");
    (events, resyncs)
}

#[tokio::test]
async fn every_reader_gets_every_event_with_per_room_order_and_intact_fields() {
    let config = config();
    let bus = RedisStreamsBus::connect(config.clone()).await.unwrap();
    bus.publish(&[event("before", 1)]).await.unwrap();
    let mut a = bus.subscribe().await.unwrap();
    let mut b = bus.subscribe().await.unwrap();
    let mut published = Vec::new();
    for seq in 1..=50 {
        for room in ["alpha", "beta", "gamma", "delta", "epsilon"] {
            published.push(event(room, seq));
        }
    }
    for chunk in published.chunks(37) {
        bus.publish(chunk).await.unwrap();
    }
    for reader in [&mut a, &mut b] {
        let (events, resyncs) = read_events(reader, published.len()).await;
        assert_eq!(resyncs, 0);
        assert_eq!(events.len(), published.len(), "no event lost or repeated");
        assert!(
            events.iter().all(|e| e.room.as_str() != "before"),
            "subscribed at the end"
        );
        for room in ["alpha", "beta", "gamma", "delta", "epsilon"] {
            assert!(
                events.iter().all(|e| e.published_at_ms.is_some()),
                "readers see the XADD time"
            );
            let mine: Vec<BusEvent> = events
                .iter()
                .filter(|e| e.room.as_str() == room)
                .map(|e| BusEvent {
                    published_at_ms: None,
                    ..e.clone()
                })
                .collect();
            let expected: Vec<BusEvent> = published.iter().filter(|e| e.room.as_str() == room).cloned().collect();
            assert_eq!(
                mine, expected,
                "room {room} in publish order with payload and traceparent"
            );
        }
    }
    cleanup(&config).await;
}

#[tokio::test]
async fn a_reader_resumes_from_its_last_id_after_its_connection_is_killed() {
    let config = config();
    let bus = RedisStreamsBus::connect(config.clone()).await.unwrap();
    let mut reader = bus.subscribe().await.unwrap();
    bus.publish(&[event("room", 1)]).await.unwrap();
    let (first, _) = read_events(&mut reader, 1).await;
    assert_eq!(first[0].seq, 1);

    // Kill the reader's connection, by the name it gave itself, then publish while it is down.
    let client = redis::Client::open(redis_url()).unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("USER")
        .arg("default")
        .arg("SKIPME")
        .arg("yes")
        .arg("ID")
        .arg(reader_client_id(&mut admin, &format!("{}-reader", config.key_prefix)).await)
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(killed, 1);
    bus.publish(&[event("room", 2), event("room", 3)]).await.unwrap();

    let (events, resyncs) = read_events(&mut reader, 2).await;
    assert_eq!(resyncs, 1, "a reconnect is reported so the gateway can catch up");
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2, 3]);
    cleanup(&config).await;
}

async fn reader_client_id(admin: &mut redis::aio::MultiplexedConnection, name: &str) -> i64 {
    let list: String = redis::cmd("CLIENT").arg("LIST").query_async(admin).await.unwrap();
    list.lines()
        .find(|line| line.split(' ').any(|f| f == format!("name={name}")))
        .and_then(|line| line.split(' ').find_map(|f| f.strip_prefix("id=")))
        .expect("the reader's named connection is listed")
        .parse()
        .unwrap()
}

#[tokio::test]
async fn streams_are_trimmed_to_about_max_len() {
    let mut config = config();
    config.shards = 1;
    config.max_len = 100;
    let bus = RedisStreamsBus::connect(config.clone()).await.unwrap();
    for chunk in (1..=2000).collect::<Vec<u64>>().chunks(100) {
        let events: Vec<BusEvent> = chunk.iter().map(|&s| event("trim", s)).collect();
        bus.publish(&events).await.unwrap();
    }
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let len: u64 = redis::cmd("XLEN")
        .arg(format!("{}:events:0", config.key_prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(len < 500, "stream of 2000 entries trimmed near 100, got {len}");
    cleanup(&config).await;
}
