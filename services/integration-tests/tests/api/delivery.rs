//! The delivery guarantees: exactly once, in seq order, across gateways and message
//! services; idempotent sends; resume with `since_seq`.

use crate::helpers::{collect, seqs};
use integration_tests::TestCluster;
use std::collections::HashSet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_deliver_every_message_to_both_members_once_in_order() {
    let cluster = TestCluster::start(2, 2).await;
    let mut ann = cluster.client(0, "Ann").await;
    let mut bob = cluster.client(1, "Bob").await;
    assert_eq!(ann.join("lobby", None).await["last_seq"], 0);
    bob.join("lobby", None).await;

    for i in 0..10 {
        ann.send_text("lobby", &format!("from ann {i}"), &format!("ann-{i}"))
            .await;
        bob.send_text("lobby", &format!("from bob {i}"), &format!("bob-{i}"))
            .await;
    }
    for client in [&mut ann, &mut bob] {
        let (messages, acks) = collect(client, 20, 10).await;
        assert_eq!(acks.len(), 10);
        assert_eq!(
            seqs(&messages),
            (1..=20).collect::<Vec<_>>(),
            "every seq once, in order"
        );
        for m in &messages {
            let text = m["text"].as_str().unwrap();
            let name = m["user"]["name"].as_str().unwrap();
            assert!(
                text.starts_with(&format!("from {}", name.to_lowercase())),
                "author from the session: {m}"
            );
        }
        // Ann's messages keep the order she sent them in.
        let anns: Vec<&str> = messages
            .iter()
            .filter(|m| m["user"]["name"] == "Ann")
            .map(|m| m["text"].as_str().unwrap())
            .collect();
        assert_eq!(anns, (0..10).map(|i| format!("from ann {i}")).collect::<Vec<_>>());
    }
    // A sentinel proves nothing more (no duplicate) was queued behind the 20.
    ann.send_text("lobby", "last", "ann-last").await;
    let (messages, _) = collect(&mut ann, 1, 1).await;
    assert_eq!(seqs(&messages), vec![21]);
    let (messages, _) = collect(&mut bob, 1, 0).await;
    assert_eq!(seqs(&messages), vec![21]);

    let rows = cluster.db.message_rows().await;
    assert_eq!(rows.len(), 21, "each message stored exactly once");
    assert_eq!(
        rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        (1..=21).collect::<Vec<i64>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_senders_through_both_services_give_one_gapless_sequence() {
    const SENDERS: usize = 20;
    const EACH: usize = 50;
    let cluster = TestCluster::start(2, 2).await;
    let mut clients = Vec::new();
    for i in 0..SENDERS {
        let mut client = cluster.client(i % 2, &format!("sender {i}")).await;
        client.join("busy", None).await;
        clients.push(client);
    }
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut client)| {
            tokio::spawn(async move {
                for j in 0..EACH {
                    client
                        .send_text("busy", &format!("{i}:{j}"), &format!("s{i}-m{j}"))
                        .await;
                }
                let (messages, acks) = collect(&mut client, SENDERS * EACH, EACH).await;
                (i, messages, acks)
            })
        })
        .collect();
    for task in tasks {
        let (i, messages, acks) = task.await.unwrap();
        assert_eq!(
            seqs(&messages),
            (1..=(SENDERS * EACH) as u64).collect::<Vec<_>>(),
            "client {i}"
        );
        let acked: HashSet<u64> = acks.iter().map(|a| a["seq"].as_u64().unwrap()).collect();
        assert_eq!(
            acked.len(),
            EACH,
            "client {i} got one ack per send, each with its own seq"
        );
        // Each sender's own messages appear in the order it sent them.
        let mine: Vec<String> = messages
            .iter()
            .filter(|m| m["user"]["name"] == format!("sender {i}"))
            .map(|m| m["text"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(mine, (0..EACH).map(|j| format!("{i}:{j}")).collect::<Vec<_>>());
    }
    let rows = cluster.db.message_rows().await;
    assert_eq!(rows.len(), SENDERS * EACH);
    assert_eq!(
        rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        (1..=(SENDERS * EACH) as i64).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_client_msg_id_is_stored_once_and_acked_with_the_same_seq() {
    let cluster = TestCluster::start(2, 2).await;
    let token = cluster.session(0, "Ann").await;
    let mut first = integration_tests::WsClient::connect(cluster.gateway(0), &token).await;
    first.join("dedupe", None).await;
    first.send_text("dedupe", "hello", "same-id").await;
    first.send_text("dedupe", "hello", "same-id").await;
    let (messages, acks) = collect(&mut first, 1, 2).await;
    assert_eq!(seqs(&messages), vec![1], "delivered once");
    assert_eq!(acks[0]["seq"], 1);
    assert_eq!(acks[1]["seq"], 1);
    assert_eq!(acks[0]["duplicate"], false);
    assert_eq!(acks[1]["duplicate"], true);

    // The same author retrying through the other gateway (so, likely, the other service).
    let mut second = integration_tests::WsClient::connect(cluster.gateway(1), &token).await;
    second.join("dedupe", None).await;
    second.send_text("dedupe", "hello", "same-id").await;
    let (_, mut acks) = collect(&mut second, 0, 1).await;
    let ack = acks.remove(0);
    assert_eq!((ack["seq"].as_u64(), ack["duplicate"].as_bool()), (Some(1), Some(true)));

    // Members saw the message once: the next one is seq 2.
    first.send_text("dedupe", "next", "next-id").await;
    let (messages, _) = collect(&mut first, 1, 1).await;
    assert_eq!(seqs(&messages), vec![2]);
    assert_eq!(cluster.db.message_rows().await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejoining_with_since_seq_returns_exactly_the_missed_messages_then_live_ones() {
    let cluster = TestCluster::start(2, 2).await;
    let mut away = cluster.client(0, "Away").await;
    let mut talker = cluster.client(1, "Talker").await;
    away.join("resume", None).await;
    talker.join("resume", None).await;
    talker.send_text("resume", "one", "t-1").await;
    let (seen, _) = collect(&mut away, 1, 0).await;
    assert_eq!(seqs(&seen), vec![1]);

    // Leave on the same socket, miss three messages, come back.
    away.send_json(serde_json::json!({"type": "leave", "room": "resume"}))
        .await;
    assert_eq!(away.recv_until("left").await.0["room"], "resume");
    for i in 2..=4 {
        talker
            .send_text("resume", &format!("missed {i}"), &format!("t-{i}"))
            .await;
    }
    collect(&mut talker, 4, 4).await;
    let joined = away.join("resume", Some(1)).await;
    assert_eq!(seqs(joined["history"].as_array().unwrap()), vec![2, 3, 4]);
    assert_eq!(joined["last_seq"], 4);
    assert_eq!(joined["has_more"], false);
    talker.send_text("resume", "live", "t-5").await;
    let (live, _) = collect(&mut away, 1, 0).await;
    assert_eq!(seqs(&live), vec![5]);

    // A new socket on the other gateway resumes the same way.
    away.close().await;
    for i in 6..=7 {
        talker
            .send_text("resume", &format!("missed {i}"), &format!("t-{i}"))
            .await;
    }
    collect(&mut talker, 3, 3).await;
    let mut back = cluster.client(1, "Away again").await;
    let joined = back.join("resume", Some(5)).await;
    assert_eq!(seqs(joined["history"].as_array().unwrap()), vec![6, 7]);
    talker.send_text("resume", "live again", "t-8").await;
    let (live, _) = collect(&mut back, 1, 0).await;
    assert_eq!(seqs(&live), vec![8]);

    // Without since_seq, a join gets the recent history.
    let mut fresh = cluster.client(0, "Fresh").await;
    let joined = fresh.join("resume", None).await;
    assert_eq!(seqs(joined["history"].as_array().unwrap()), (1..=8).collect::<Vec<_>>());
}

/// Commits messages straight into the database, bypassing the bus, as if their publish
/// had been lost.
async fn commit_unpublished(cluster: &TestCluster, room: &str, texts: &[&str]) -> Vec<chat_domain::ChatMessage> {
    use chat_domain::{Author, ClientMsgId, DisplayName, MessageKind, MessageText, RoomName, UserId};
    let store = chat_store::connect(&chat_store::ConnectOptions::new(cluster.db.url.clone()))
        .await
        .unwrap();
    let batch: Vec<chat_store::NewEvent> = texts
        .iter()
        .map(|text| {
            chat_store::NewEvent::Message(chat_store::NewMessage {
                room: RoomName::parse(room).unwrap(),
                author: Author {
                    id: UserId::parse("guest:ghost").unwrap(),
                    name: DisplayName::parse("Ghost").unwrap(),
                },
                text: MessageText::parse(text.to_string()).unwrap(),
                client_msg_id: ClientMsgId::parse(&uuid::Uuid::new_v4().to_string()).unwrap(),
                kind: MessageKind::Text,
                attachment: None,
                attachment_size: None,
                reply_to: None,
                mentions: Vec::new(),
            })
        })
        .collect();
    store
        .append_batch(&batch)
        .await
        .unwrap()
        .into_iter()
        .map(|outcome| match outcome {
            chat_store::AppendOutcome::Stored(chat_domain::TimelineEvent::Message(m)) => m,
            other => panic!("expected a stored message, got {other:?}"),
        })
        .collect()
}

async fn raw_bus(cluster: &TestCluster) -> chat_bus::redis_streams::RedisStreamsBus {
    let mut config = chat_bus::redis_streams::RedisStreamsConfig::new(
        integration_tests::cluster::redis_url(),
        cluster.redis_prefix.clone(),
    );
    config.partitions = 4;
    chat_bus::redis_streams::RedisStreamsBus::connect(config).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_published_out_of_order_are_delivered_in_seq_order() {
    use chat_bus::Bus;
    let cluster = TestCluster::start(1, 1).await;
    let mut member = cluster.client(0, "Member").await;
    member.join("order", None).await;
    let committed = commit_unpublished(&cluster, "order", &["first", "second", "third"]).await;
    let event = |m: &chat_domain::ChatMessage| chat_bus::BusEvent {
        kind: chat_bus::EventKind::Message,
        room: m.room.clone(),
        seq: m.seq,
        payload: m.to_frame(),
        traceparent: None,
        published_at_ms: None,
    };
    // As two message services racing to publish would: 3, then 1, then 2, then 1 again.
    let bus = raw_bus(&cluster).await;
    bus.publish(&[event(&committed[2]), event(&committed[0])])
        .await
        .unwrap();
    bus.publish(&[event(&committed[1]), event(&committed[0])])
        .await
        .unwrap();
    let (messages, _) = collect(&mut member, 3, 0).await;
    assert_eq!(seqs(&messages), vec![1, 2, 3]);
    assert_eq!(messages[0]["text"], "first");
    // Nothing more is queued: the next message is seq 4.
    member.send_text("order", "fourth", "m-4").await;
    let (messages, _) = collect(&mut member, 1, 1).await;
    assert_eq!(seqs(&messages), vec![4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_the_bus_never_fills_is_filled_from_the_database() {
    let cluster = TestCluster::start(2, 1).await;
    let mut near = cluster.client(0, "Near").await;
    let mut far = cluster.client(1, "Far").await;
    near.join("gappy", None).await;
    far.join("gappy", None).await;
    // Seqs 1 and 2 are committed but never published; seq 3 comes through the bus.
    commit_unpublished(&cluster, "gappy", &["lost one", "lost two"]).await;
    near.send_text("gappy", "three", "n-3").await;
    for client in [&mut near, &mut far] {
        let (messages, _) = collect(client, 3, 0).await;
        assert_eq!(seqs(&messages), vec![1, 2, 3]);
        assert_eq!(messages[0]["text"], "lost one");
        assert_eq!(messages[2]["text"], "three");
    }
    let metrics = integration_tests::cluster::scrape_metrics(cluster.gateways[0].ops_addr).await;
    let fills: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("sc_gateway_gap_fills_total "))
        .expect("gap fill counter")
        .parse()
        .unwrap();
    assert!(fills >= 1.0, "the gap was filled from history: {fills}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_is_answered_with_a_pong_whether_or_not_a_room_is_joined() {
    let cluster = TestCluster::start(1, 1).await;
    let mut client = cluster.client(0, "Ann").await;
    client.send_json(serde_json::json!({"type": "ping"})).await;
    assert_eq!(client.recv().await, serde_json::json!({"type": "pong"}));
    client.join("lobby", None).await;
    client
        .send_json(serde_json::json!({"type": "ping", "room": "ignored"}))
        .await;
    assert_eq!(client.recv().await, serde_json::json!({"type": "pong"}));
    // Nothing was stored, and the socket goes on as before.
    client.send_text("lobby", "after the pings", "p-1").await;
    let (ack, _) = client.recv_until("ack").await;
    assert_eq!(ack["seq"], 1, "a ping takes no seq");
}
