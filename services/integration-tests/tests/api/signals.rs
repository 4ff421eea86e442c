//! Ephemeral signals across two gateways (real Redis Pub/Sub and Postgres): typing reaches
//! the room's members on the other gateway, stores nothing, is dropped past its rate, and
//! past the names a room shows becomes a count.

use crate::helpers::series;
use integration_tests::cluster::scrape_metrics;
use integration_tests::{TestCluster, WsClient};
use serde_json::{Value, json};

/// Reads until a `typing` frame, and fails on anything of the timeline on the way: typing
/// takes no seq.
async fn next_typing(ws: &mut WsClient) -> Value {
    let (typing, skipped) = ws.recv_until("typing").await;
    assert!(skipped.iter().all(|f| f.get("seq").is_none()), "{skipped:?}");
    typing
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_reaches_the_other_gateway_stores_nothing_and_is_dropped_past_its_rate() {
    let cluster = TestCluster::start(2, 1).await;
    let mut ann = cluster.client(0, "Ann").await;
    let mut bob = cluster.client(1, "Bob").await;
    ann.join("lobby", None).await;
    bob.join("lobby", None).await;

    ann.send_json(json!({"type": "typing", "room": "lobby"})).await;
    let typing = next_typing(&mut bob).await;
    assert_eq!(
        (
            typing["room"].as_str(),
            typing["user"]["name"].as_str(),
            typing.get("count")
        ),
        (Some("lobby"), Some("Ann"), None)
    );

    // Again at once: dropped, unanswered. The join after it shows the socket handled both.
    ann.send_json(json!({"type": "typing", "room": "lobby"})).await;
    ann.join("elsewhere", None).await;
    let gw0 = scrape_metrics(cluster.gateways[0].ops_addr).await;
    assert_eq!(series(&gw0, "sc_gateway_typing_dropped_total"), 1.0);

    // Only in a room the socket has joined.
    ann.send_json(json!({"type": "typing", "room": "nowhere"})).await;
    let (error, _) = ann.recv_until("error").await;
    assert_eq!(
        (error["code"].as_str(), error["ref"].as_str()),
        (Some("not_joined"), Some("nowhere"))
    );

    // Nothing was stored: the room's sequence has not moved.
    let database = cluster.database().await;
    let lobby = chat_domain::RoomName::parse("lobby").unwrap();
    assert_eq!(database.messages.room(&lobby).await.unwrap().unwrap().last_seq, 0);

    // The other gateway passed it on to its member: once in, once out.
    let gw1 = scrape_metrics(cluster.gateways[1].ops_addr).await;
    assert_eq!(series(&gw1, r#"sc_gateway_signals_in_total{kind="typing"}"#), 1.0);
    assert_eq!(series(&gw1, r#"sc_gateway_signals_out_total{kind="typing"}"#), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_names_a_room_shows_typing_is_a_count() {
    let cluster = TestCluster::start_with(2, 1, |s| s.signals.typing_names = 1).await;
    let mut ann = cluster.client(0, "Ann").await;
    let mut carl = cluster.client(0, "Carl").await;
    let mut bob = cluster.client(1, "Bob").await;
    for ws in [&mut ann, &mut carl, &mut bob] {
        ws.join("lobby", None).await;
    }
    ann.send_json(json!({"type": "typing", "room": "lobby"})).await;
    assert_eq!(next_typing(&mut bob).await["user"]["name"], "Ann");
    carl.send_json(json!({"type": "typing", "room": "lobby"})).await;
    let summary = next_typing(&mut bob).await;
    assert_eq!(
        (summary.get("user"), summary["count"].as_u64()),
        (None, Some(2)),
        "{summary}"
    );
}
