//! The bus on a real Redis Cluster (3 masters, 3 replicas, started here from the installed
//! binaries): partitions spread over the masters, every event reaches every reader in room
//! order, and a master SIGKILLed mid-stream is survived: the readers report a resync (the
//! gateway then catches up from the database) and read on from the promoted replica.

use bytes::Bytes;
use chat_bus::redis_streams::{RedisStreamsBus, RedisStreamsConfig};
use chat_bus::{Bus, BusEvent, BusItem, BusReader, EventKind, Signal, SignalKind};
use chat_domain::{RoomName, UserId};
use integration_tests::backends::RedisCluster;
use std::collections::HashMap;
use std::time::{Duration, Instant};

const PARTITIONS: u32 = 16;

fn config(cluster: &RedisCluster) -> RedisStreamsConfig {
    let seeds = cluster.seeds();
    let mut config = RedisStreamsConfig::new(seeds[0].clone(), format!("rc-{}", uuid::Uuid::new_v4().simple()));
    config.cluster_nodes = seeds;
    config.partitions = PARTITIONS;
    config.block_ms = 500;
    config
}

fn event(room: usize, seq: u64) -> BusEvent {
    let room = format!("room-{room}");
    BusEvent {
        kind: if seq.is_multiple_of(7) {
            EventKind::Broadcast
        } else {
            EventKind::Message
        },
        payload: Bytes::from(format!("{{\"room\":\"{room}\",\"seq\":{seq}}}")),
        room: RoomName::parse(&room).unwrap(),
        seq,
        traceparent: None,
        published_at_ms: None,
    }
}

async fn subscribe_all(bus: &RedisStreamsBus) -> Box<dyn BusReader> {
    let interest = bus.interest();
    interest.hold_everything();
    bus.subscribe(interest).await.unwrap()
}

/// Reads until `done` holds for what arrived (or a generous deadline passes, failing the
/// test); returns the events and how many resyncs came.
async fn read_until(
    reader: &mut Box<dyn BusReader>,
    events: &mut Vec<BusEvent>,
    done: impl Fn(&[BusEvent]) -> bool,
) -> usize {
    let mut resyncs = 0;
    tokio::time::timeout(Duration::from_secs(60), async {
        while !done(events) {
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
    resyncs
}

/// Each room's seqs as read, for order checks: its events on its partition, and those of
/// its broadcasts on the control stream (order holds within a stream, not across).
fn by_room(events: &[BusEvent]) -> HashMap<String, Vec<u64>> {
    let mut rooms: HashMap<String, Vec<u64>> = HashMap::new();
    for e in events {
        let stream = if e.kind == EventKind::Broadcast {
            "control"
        } else {
            "partition"
        };
        rooms
            .entry(format!("{} on its {stream}", e.room))
            .or_default()
            .push(e.seq);
    }
    rooms
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_spread_over_the_masters_and_survive_a_master_killed_mid_stream() {
    let mut cluster = tokio::task::block_in_place(RedisCluster::start);
    let config = config(&cluster);
    let bus = RedisStreamsBus::connect(config.clone())
        .await
        .expect("connect to the cluster");
    let mut readers = vec![subscribe_all(&bus).await, subscribe_all(&bus).await];

    // 40 rooms, 10 events each, published in batches that span many partitions.
    const ROOMS: usize = 40;
    for seq in 1..=10 {
        let batch: Vec<BusEvent> = (0..ROOMS).map(|room| event(room, seq)).collect();
        bus.publish(&batch).await.expect("publish");
    }
    for reader in &mut readers {
        let mut events = Vec::new();
        let resyncs = read_until(reader, &mut events, |e| e.len() >= ROOMS * 10).await;
        assert_eq!(resyncs, 0);
        assert_eq!(events.len(), ROOMS * 10, "no duplicate");
        for (room, seqs) in by_room(&events) {
            let expected: Vec<u64> = (1..=10)
                .filter(|&s| room.ends_with("control") == (s % 7 == 0))
                .collect();
            assert_eq!(seqs, expected, "{room}: every event once, in order");
        }
    }

    // The partitions spread over the three masters: the chosen tags give each a third.
    let masters = cluster.masters();
    assert_eq!(masters.len(), 3);
    let mut per_master = Vec::new();
    for &port in &masters {
        let mut conn = redis::Client::open(format!("redis://127.0.0.1:{port}"))
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:events:*", config.key_prefix))
            .query_async(&mut conn)
            .await
            .unwrap();
        per_master.push(keys.len());
    }
    assert_eq!(per_master.iter().sum::<usize>(), PARTITIONS as usize, "{per_master:?}");
    assert!(
        per_master.iter().all(|&n| (5..=6).contains(&n)),
        "16 partitions on 3 masters: {per_master:?}"
    );

    // SIGKILL a master while events flow; its replica takes over.
    let killed = masters[0];
    let publisher = {
        let bus = RedisStreamsBus::connect(config.clone()).await.unwrap();
        tokio::spawn(async move {
            // Publishes until told to stop; returns the highest seq whose publish succeeded.
            let mut seq = 10;
            let mut published = 10;
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                seq += 1;
                let batch: Vec<BusEvent> = (0..ROOMS).map(|room| event(room, seq)).collect();
                if bus.publish(&batch).await.is_ok() {
                    published = seq;
                }
                if seq >= 60 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            published
        })
    };
    let killed_at = Instant::now();
    tokio::task::block_in_place(|| cluster.kill(killed));
    tokio::task::block_in_place(|| cluster.wait_healthy(Duration::from_secs(30)));
    let failover = killed_at.elapsed();
    let published = publisher.await.unwrap();
    assert_eq!(published, 60, "the publisher's retries carried it across the failover");
    // After the failover, one more event per room: every reader gets each of them, and what
    // it got is in order per room with no duplicates. Entries the killed master took and
    // never passed on may be missing: that is what the resync is for.
    let last: Vec<BusEvent> = (0..ROOMS).map(|room| event(room, 61)).collect();
    bus.publish(&last).await.expect("publish after the failover");
    for reader in &mut readers {
        let mut events = Vec::new();
        let resyncs = read_until(reader, &mut events, |e| {
            e.iter().filter(|e| e.seq == 61).count() == ROOMS
        })
        .await;
        assert!(
            resyncs >= 1,
            "a reader of the killed master's streams reports the possible loss"
        );
        let (lost, _) = reader.link().counts();
        assert!(lost >= 1, "the lost connections are counted");
        assert_eq!(reader.link().down_for(), None, "the reader reaches the bus again");
        for (room, seqs) in by_room(&events) {
            assert!(
                seqs.windows(2).all(|w| w[0] < w[1]),
                "{room}: in order, no duplicate: {seqs:?}"
            );
        }
        let read = events.len();
        let lost = (51 * ROOMS).saturating_sub(read);
        eprintln!(
            "a reader read {read} of {} events across the failover ({lost} lost)",
            51 * ROOMS
        );
    }
    eprintln!("failover: master :{killed} killed, cluster healthy again after {failover:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_travel_on_sharded_channels_that_spread_over_the_masters() {
    let cluster = tokio::task::block_in_place(RedisCluster::start);
    let config = config(&cluster);
    let bus = RedisStreamsBus::connect(config.clone())
        .await
        .expect("connect to the cluster");
    let mut listeners = vec![bus.listen().await.unwrap(), bus.listen().await.unwrap()];
    let signals: Vec<Signal> = (0..40)
        .map(|room| Signal {
            kind: SignalKind::Typing,
            room: RoomName::parse(&format!("room-{room}")).unwrap(),
            user: UserId::parse("u:1").unwrap(),
            payload: Bytes::from(format!("typing in {room}")),
        })
        .collect();
    bus.signal(&signals).await.expect("signal");
    for listener in &mut listeners {
        let mut heard = Vec::new();
        tokio::time::timeout(Duration::from_secs(20), async {
            while heard.len() < signals.len() {
                heard.extend(listener.next().await);
            }
        })
        .await
        .expect("every signal heard");
        heard.sort_by_key(|s| s.room.as_str().to_owned());
        let mut sent = signals.clone();
        sent.sort_by_key(|s| s.room.as_str().to_owned());
        assert_eq!(heard, sent, "each signal once, intact");
    }
    // Sharded: each master holds the channels of its partitions, and only those.
    let mut per_master = Vec::new();
    for port in cluster.masters() {
        let mut conn = redis::Client::open(format!("redis://127.0.0.1:{port}"))
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let channels: Vec<String> = redis::cmd("PUBSUB")
            .arg("SHARDCHANNELS")
            .arg(format!("{}:signals:*", config.key_prefix))
            .query_async(&mut conn)
            .await
            .unwrap();
        per_master.push(channels.len());
    }
    assert_eq!(per_master.iter().sum::<usize>(), PARTITIONS as usize, "{per_master:?}");
    assert!(per_master.iter().all(|&n| (5..=6).contains(&n)), "{per_master:?}");
}
