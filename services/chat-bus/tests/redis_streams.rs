//! The Redis Streams bus against a real Redis (`REDIS_URL`, default 127.0.0.1:6379). Each
//! test uses its own key prefix.

use bytes::Bytes;
use chat_bus::redis_streams::{RedisStreamsBus, RedisStreamsConfig};
use chat_bus::{Bus, BusEvent, BusItem, BusReader, EventKind};
use chat_domain::RoomName;
use std::time::Duration;

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn config() -> RedisStreamsConfig {
    let mut config = RedisStreamsConfig::new(redis_url(), format!("test-{}", uuid::Uuid::new_v4().simple()));
    config.partitions = 4;
    config.block_ms = 200;
    config
}

fn event(room: &str, seq: u64) -> BusEvent {
    BusEvent {
        // Every kind travels: the reader must hand back exactly what was published.
        kind: match seq % 6 {
            3 => EventKind::Notice,
            4 => EventKind::Control,
            5 => EventKind::Broadcast,
            _ => EventKind::Message,
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

/// A reader of every partition, as the in-process bus's readers are.
async fn subscribe_all(bus: &RedisStreamsBus) -> Box<dyn BusReader> {
    let interest = bus.interest();
    interest.hold_everything();
    bus.subscribe(interest).await.unwrap()
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
    // One read of every stream, reads that share streams, and a read per partition.
    for read_connections in [1, 3, 8] {
        every_event_in_order_over(read_connections).await;
    }
}

async fn every_event_in_order_over(read_connections: u32) {
    let mut config = config();
    config.read_connections = read_connections;
    let bus = RedisStreamsBus::connect(config.clone()).await.unwrap();
    bus.publish(&[event("before", 1)]).await.unwrap();
    let mut a = subscribe_all(&bus).await;
    let mut b = subscribe_all(&bus).await;
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
        assert_eq!(resyncs, 0, "over {read_connections} connections");
        assert_eq!(
            events.len(),
            published.len(),
            "no event lost or repeated over {read_connections} connections"
        );
        assert!(
            events.iter().all(|e| e.room.as_str() != "before"),
            "subscribed at the end"
        );
        for room in ["alpha", "beta", "gamma", "delta", "epsilon"] {
            assert!(
                events.iter().all(|e| e.published_at_ms.is_some()),
                "readers see the XADD time"
            );
            // A room's partition keeps its order; broadcasts travel on the control stream,
            // in order among themselves.
            for broadcast in [false, true] {
                let of_room = |e: &&BusEvent| e.room.as_str() == room && (e.kind == EventKind::Broadcast) == broadcast;
                let mine: Vec<BusEvent> = events
                    .iter()
                    .filter(of_room)
                    .map(|e| BusEvent {
                        published_at_ms: None,
                        ..e.clone()
                    })
                    .collect();
                let expected: Vec<BusEvent> = published.iter().filter(of_room).cloned().collect();
                assert!(!expected.is_empty());
                assert_eq!(
                    mine, expected,
                    "room {room} in publish order with payload and traceparent"
                );
            }
        }
    }
    cleanup(&config).await;
}

#[tokio::test]
async fn a_reader_resumes_from_its_last_id_after_its_connection_is_killed() {
    let config = config();
    let bus = RedisStreamsBus::connect(config.clone()).await.unwrap();
    let mut reader = subscribe_all(&bus).await;
    bus.publish(&[event("room", 1)]).await.unwrap();
    let (first, _) = read_events(&mut reader, 1).await;
    assert_eq!(first[0].seq, 1);

    // Kill the reader's connections, by the name they gave themselves, then publish while
    // they are down.
    let client = redis::Client::open(redis_url()).unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();
    let ids = reader_client_ids(&mut admin, &format!("{}-reader", config.key_prefix)).await;
    let reads = config.read_connections.min(config.partitions) as usize;
    assert_eq!(ids.len(), reads, "one connection per read");
    for id in ids {
        let killed: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("USER")
            .arg("default")
            .arg("SKIPME")
            .arg("yes")
            .arg("ID")
            .arg(id)
            .query_async(&mut admin)
            .await
            .unwrap();
        assert_eq!(killed, 1);
    }
    bus.publish(&[event("room", 2), event("room", 3)]).await.unwrap();

    let (events, resyncs) = read_events(&mut reader, 2).await;
    assert_eq!(resyncs, 1, "a reconnect is reported so the gateway can catch up");
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2, 3]);
    cleanup(&config).await;
}

async fn reader_client_ids(admin: &mut redis::aio::MultiplexedConnection, name: &str) -> Vec<i64> {
    let list: String = redis::cmd("CLIENT").arg("LIST").query_async(admin).await.unwrap();
    list.lines()
        .filter(|line| line.split(' ').any(|f| f == format!("name={name}")))
        .filter_map(|line| line.split(' ').find_map(|f| f.strip_prefix("id=")))
        .map(|id| id.parse().unwrap())
        .collect()
}

#[tokio::test]
async fn streams_are_trimmed_to_about_max_len() {
    let mut config = config();
    config.partitions = 1;
    config.max_len = 100;
    let bus = RedisStreamsBus::connect(config.clone()).await.unwrap();
    for chunk in (1..=2000).collect::<Vec<u64>>().chunks(100) {
        let events: Vec<BusEvent> = chunk.iter().map(|&s| event("trim", s)).collect();
        bus.publish(&events).await.unwrap();
    }
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:events:*", config.key_prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "one partition: {keys:?}");
    let len: u64 = redis::cmd("XLEN").arg(&keys[0]).query_async(&mut conn).await.unwrap();
    assert!(len < 500, "stream of 2000 entries trimmed near 100, got {len}");
    cleanup(&config).await;
}

/// Runs a reader in a task of its own, as the gateway does, handing its events over.
fn run_reader(mut reader: Box<dyn BusReader>) -> tokio::sync::mpsc::UnboundedReceiver<BusEvent> {
    let (sender, events) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            for item in reader.next_batch().await {
                if let BusItem::Event(event) = item
                    && sender.send(event).is_err()
                {
                    return;
                }
            }
        }
    });
    events
}

async fn next_event(events: &mut tokio::sync::mpsc::UnboundedReceiver<BusEvent>) -> BusEvent {
    tokio::time::timeout(Duration::from_secs(20), events.recv())
        .await
        .expect("an event in time")
        .expect("the reader runs")
}

fn sequenced(kind: EventKind, room: &RoomName, seq: u64) -> BusEvent {
    BusEvent {
        kind,
        room: room.clone(),
        seq,
        payload: Bytes::from(format!("{{\"seq\":{seq}}}")),
        traceparent: None,
        published_at_ms: None,
    }
}

#[tokio::test]
async fn a_reader_reads_the_partitions_of_rooms_it_holds_and_every_broadcast() {
    let mut config = config();
    config.partitions = 8;
    // Far longer than the test may take: a partition held later must cut the wait short.
    config.block_ms = 120_000;
    let bus = RedisStreamsBus::connect(config.clone()).await.unwrap();
    let interest = bus.interest();
    let here = RoomName::parse("here").unwrap();
    let elsewhere = (0..)
        .map(|i| RoomName::parse(&format!("elsewhere-{i}")).unwrap())
        .find(|room| interest.partition_of(room) != interest.partition_of(&here))
        .unwrap();
    interest.hold(&here);
    let reader = bus.subscribe(interest.clone()).await.unwrap();
    assert!(interest.reads(&here), "held before subscribing: read from the start");
    assert!(!interest.reads(&elsewhere));
    let mut events = run_reader(reader);

    bus.publish(&[
        sequenced(EventKind::Message, &elsewhere, 1),
        sequenced(EventKind::Message, &here, 1),
        sequenced(EventKind::Broadcast, &elsewhere, 0),
        sequenced(EventKind::Control, &elsewhere, 0),
        sequenced(EventKind::Message, &here, 2),
    ])
    .await
    .unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        let event = next_event(&mut events).await;
        got.push((event.kind, event.room.as_str().to_string(), event.seq));
    }
    got.sort_by_key(|(kind, _, seq)| (*kind == EventKind::Broadcast, *seq));
    assert_eq!(
        got,
        [
            (EventKind::Message, "here".to_string(), 1),
            (EventKind::Message, "here".to_string(), 2),
            (EventKind::Broadcast, elsewhere.as_str().to_string(), 0),
        ],
        "the held room's events and the broadcast, nothing else of the other partition"
    );

    // Held now: the reader is woken out of its long block and starts the partition; what
    // is published once it is ready arrives, and nothing from before.
    interest.hold(&elsewhere);
    tokio::time::timeout(Duration::from_secs(20), interest.ready(&elsewhere))
        .await
        .expect("the reader starts a newly held partition at once");
    bus.publish(&[sequenced(EventKind::Message, &elsewhere, 2)])
        .await
        .unwrap();
    let event = next_event(&mut events).await;
    assert_eq!((event.room, event.seq), (elsewhere.clone(), 2));
    assert!(events.try_recv().is_err(), "nothing else arrived");
    cleanup(&config).await;
}

#[tokio::test]
async fn a_partition_joining_a_read_in_flight_is_read_at_once_and_its_neighbours_once() {
    let mut config = config();
    config.partitions = 8;
    config.read_connections = 2;
    // Far longer than the test may take: the read must be sent again at once.
    config.block_ms = 120_000;
    let bus = RedisStreamsBus::connect(config.clone()).await.unwrap();
    let interest = bus.interest();
    let here = RoomName::parse("here").unwrap();
    // On another partition read by the same connection.
    let neighbour = (0..)
        .map(|i| RoomName::parse(&format!("neighbour-{i}")).unwrap())
        .find(|room| {
            let (mine, theirs) = (interest.partition_of(&here), interest.partition_of(room));
            mine != theirs && mine % 2 == theirs % 2
        })
        .unwrap();
    interest.hold(&here);
    let mut events = run_reader(bus.subscribe(interest.clone()).await.unwrap());
    bus.publish(&[sequenced(EventKind::Message, &here, 1)]).await.unwrap();
    assert_eq!(next_event(&mut events).await.seq, 1);

    // The read of `here` is blocked again; the neighbour joins it.
    interest.hold(&neighbour);
    tokio::time::timeout(Duration::from_secs(20), interest.ready(&neighbour))
        .await
        .expect("the reader starts a newly held partition at once");
    bus.publish(&[sequenced(EventKind::Message, &neighbour, 1)])
        .await
        .unwrap();
    let event = next_event(&mut events).await;
    assert_eq!(
        (&event.room, event.seq),
        (&neighbour, 1),
        "read without waiting out the block"
    );

    // The read the neighbour's replaced is still blocked on `here`: what it gets is dropped.
    bus.publish(&[sequenced(EventKind::Message, &here, 2)]).await.unwrap();
    bus.publish(&[sequenced(EventKind::Message, &here, 3)]).await.unwrap();
    let mut got = Vec::new();
    while got.last() != Some(&3) {
        let event = next_event(&mut events).await;
        assert_eq!(event.room, here);
        got.push(event.seq);
    }
    assert_eq!(got, [2, 3], "each once, in order");
    cleanup(&config).await;
}

#[tokio::test]
async fn partitions_use_spread_hash_tags_and_broadcasts_one_control_stream() {
    let mut config = config();
    config.partitions = 16;
    let bus = RedisStreamsBus::connect(config.clone()).await.unwrap();
    let events: Vec<BusEvent> = (0..200)
        .map(|i| sequenced(EventKind::Message, &RoomName::parse(&format!("room-{i}")).unwrap(), 1))
        .chain([sequenced(EventKind::Broadcast, &RoomName::parse("room-0").unwrap(), 0)])
        .collect();
    bus.publish(&events).await.unwrap();
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*", config.key_prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    keys.sort();
    assert_eq!(keys.len(), 17, "16 partitions and the control stream: {keys:?}");
    assert!(keys.contains(&format!("{}:control", config.key_prefix)));
    let mut slots: Vec<u16> = keys
        .iter()
        .filter(|k| k.contains(":events:"))
        .map(|k| chat_bus::partition::key_slot(k))
        .collect();
    slots.sort();
    for (i, slot) in slots.iter().enumerate() {
        assert_eq!(
            usize::from(*slot) * 16 / 16_384,
            i,
            "partition {i}'s slot {slot} in its own sixteenth of the slots"
        );
    }
    let rejected = RedisStreamsBus::connect(RedisStreamsConfig {
        key_prefix: "a{b}".into(),
        ..config.clone()
    })
    .await;
    assert!(matches!(rejected, Err(chat_bus::BusError::Config(_))));
    cleanup(&config).await;
}

#[tokio::test]
async fn a_reader_that_holds_no_room_reads_each_broadcast_once() {
    // A gateway nobody has connected to yet holds no room: it reads the control stream
    // alone, and must move past what it read there rather than read it again.
    let config = config();
    let bus = RedisStreamsBus::connect(config.clone()).await.unwrap();
    let mut events = run_reader(bus.subscribe(bus.interest()).await.unwrap());
    let rooms: Vec<RoomName> = (0..3)
        .map(|i| RoomName::parse(&format!("someone-{i}")).unwrap())
        .collect();
    for room in &rooms {
        bus.publish(&[sequenced(EventKind::Broadcast, room, 0)]).await.unwrap();
        let event = next_event(&mut events).await;
        assert_eq!((event.kind, &event.room), (EventKind::Broadcast, room));
    }
    assert!(events.try_recv().is_err(), "a broadcast arrived twice");
    cleanup(&config).await;
}
