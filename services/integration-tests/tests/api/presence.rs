//! Who is online, across two gateways and a real Redis registry: online on connect, still
//! online while a second tab stays open, offline when the last closes, back when they
//! return; a big room gets counts, not a frame per change per member; a SIGKILLed gateway's
//! people go offline within the bound (real processes).

use crate::helpers::series;
use integration_tests::cluster::{create_session, scrape_metrics};
use integration_tests::processes::ScriptCluster;
use integration_tests::{TestCluster, WsClient};
use reqwest::Method;
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;

/// The user id behind a session token.
async fn user_id(gateway: SocketAddr, token: &str) -> String {
    let session: Value = reqwest::Client::new()
        .get(format!("http://{gateway}/api/v1/session"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    session["user"]["id"].as_str().unwrap().to_owned()
}

/// The next `presence` frame; anything of the timeline on the way fails (presence takes
/// no seq).
async fn next_presence(ws: &mut WsClient) -> Value {
    let (presence, skipped) = ws.recv_until("presence").await;
    assert!(skipped.iter().all(|f| f.get("seq").is_none()), "{skipped:?}");
    presence
}

/// Whether the next `presence` frame about `user` says they are online (frames about
/// others, the reader's own arrival among them, are passed over).
async fn presence_of(ws: &mut WsClient, user: &str) -> bool {
    loop {
        let frame = next_presence(ws).await;
        if frame["user_id"] == user {
            return frame["online"].as_bool().expect("a change says online or not");
        }
    }
}

/// Waits (polling the state, not for a set time) until `check` holds.
async fn until<F: std::future::Future<Output = bool>>(mut check: impl FnMut() -> F) {
    tokio::time::timeout(Duration::from_secs(30), async {
        while !check().await {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the state was reached");
}

async fn online_in_members(cluster: &TestCluster, token: &str, user: &str) -> Option<bool> {
    let (status, page) = cluster
        .call(0, Method::GET, "/api/v1/rooms/lobby/members", Some(token), None)
        .await;
    assert_eq!(status, 200, "{page}");
    page["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user_id"] == user)
        .and_then(|m| m["online"].as_bool())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_follows_the_sockets_of_a_person_across_gateways() {
    let cluster = TestCluster::start(2, 1).await;
    let ann_token = cluster.session(0, "Ann").await;
    let bob_token = cluster.sign_up(1, "bob").await;
    let (ann_id, bob_id) = (
        user_id(cluster.gateway(0), &ann_token).await,
        user_id(cluster.gateway(1), &bob_token).await,
    );

    let mut ann = cluster.client_with(0, &ann_token).await;
    let joined = ann.join("lobby", None).await;
    assert_eq!(joined["presence"]["online"], serde_json::json!([ann_id]), "{joined}");

    // Bob comes online on the other gateway and enters: Ann hears it.
    let mut bob_first = cluster.client_with(1, &bob_token).await;
    let joined = bob_first.join("lobby", None).await;
    assert_eq!(joined["presence"]["online_count"], 2, "{joined}");
    assert!(presence_of(&mut ann, &bob_id).await);

    // A second tab, then the first closes: still online.
    let mut bob_second = cluster.client_with(0, &bob_token).await;
    bob_second.join("lobby", None).await;
    assert!(presence_of(&mut ann, &bob_id).await);
    bob_first.close().await;
    let gw1 = cluster.gateways[1].ops_addr;
    until(|| async move { series(&scrape_metrics(gw1).await, "sc_gateway_connections") == 0.0 }).await;
    assert_eq!(online_in_members(&cluster, &ann_token, &bob_id).await, Some(true));

    // The last one closes: offline, with a last-seen time on his profile.
    bob_second.close().await;
    assert!(!presence_of(&mut ann, &bob_id).await);
    assert_eq!(online_in_members(&cluster, &ann_token, &bob_id).await, Some(false));
    let (_, profile) = cluster
        .call(0, Method::GET, "/api/v1/users/bob", Some(&ann_token), None)
        .await;
    assert_eq!(profile["online"], false, "{profile}");
    assert!(profile["last_seen"].is_string(), "{profile}");

    // Back, on any gateway: online again.
    let mut bob_back = cluster.client_with(0, &bob_token).await;
    bob_back.join("elsewhere", None).await;
    assert!(presence_of(&mut ann, &bob_id).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_switched_off_shows_nobody_and_sends_nothing() {
    let cluster = TestCluster::start_with(1, 1, |s| s.presence.enabled = false).await;
    let token = cluster.session(0, "Ann").await;
    let mut ann = cluster.client_with(0, &token).await;
    let joined = ann.join("lobby", None).await;
    assert!(joined.get("presence").is_none(), "{joined}");
    let me = user_id(cluster.gateway(0), &token).await;
    assert_eq!(online_in_members(&cluster, &token, &me).await, None);
}

/// 2,000 members join one room on two gateways. Past `big_room_members` (10) nobody gets
/// a frame per arrival: each joins with the room's count, the gateways count the room
/// about once each (not once per join), and no summary is due within the test. The frames
/// that do go out are those of the room's first members, while it was small: at most
/// (10 + 2)², whatever the number who join after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_storm_into_a_big_room_costs_counts_not_a_frame_per_change_per_member() {
    const MEMBERS: usize = 2000;
    let cluster = TestCluster::start_with(2, 1, |s| {
        s.presence.big_room_members = 10;
        s.presence.summary_ms = 3_600_000;
    })
    .await;
    let mut members = Vec::with_capacity(MEMBERS);
    for i in 0..MEMBERS {
        let gateway = i % 2;
        let token = create_session(cluster.gateway(gateway), &format!("m{i}")).await;
        let mut ws = cluster.client_with(gateway, &token).await;
        let joined = ws.join("hall", None).await;
        let presence = &joined["presence"];
        if i > 10 {
            assert!(presence.get("online").is_none(), "a big room lists nobody: {joined}");
            assert!(presence["online_count"].as_u64().unwrap() >= 1, "{joined}");
        }
        members.push(ws);
    }
    let (mut frames, mut counts) = (0.0, 0.0);
    for gateway in &cluster.gateways {
        // Every gateway has heard every arrival (one signal per join) before it is read.
        let ops = gateway.ops_addr;
        let heard = |text: &str| series(text, r#"sc_gateway_signals_in_total{kind="presence"}"#);
        until(|| async move { heard(&scrape_metrics(ops).await) >= MEMBERS as f64 }).await;
        let text = scrape_metrics(ops).await;
        frames += series(&text, r#"sc_gateway_signals_out_total{kind="presence"}"#);
        counts += series(&text, "sc_gateway_presence_counts_total");
    }
    println!(
        "join storm of {MEMBERS}: {frames} presence frames out ({:.3} per member), {counts} counts",
        frames / MEMBERS as f64
    );
    assert!(frames <= 144.0, "frames stop growing once the room is big: {frames}");
    assert!(
        counts <= 4.0,
        "the room is counted about once per gateway, not per join: {counts}"
    );
    drop(members);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_room_hears_changes_as_a_count() {
    let cluster = TestCluster::start_with(1, 1, |s| {
        s.presence.big_room_members = 1;
        s.presence.renew_ms = 100;
        s.presence.ttl_ms = 5000;
        s.presence.summary_ms = 100;
    })
    .await;
    let ann_token = cluster.session(0, "Ann").await;
    let ann_id = user_id(cluster.gateway(0), &ann_token).await;
    let mut ann = cluster.client_with(0, &ann_token).await;
    ann.join("hall", None).await;
    let mut bob = cluster.client(0, "Bob").await;
    let joined = bob.join("hall", None).await;
    assert_eq!(joined["presence"]["online_count"], 2, "{joined}");
    // The room is big now: Bob's arrival and departure reach Ann as counts (one may go
    // out between the two), never by name. (Her own arrival, while the room was small,
    // came by name.)
    bob.close().await;
    loop {
        let frame = next_presence(&mut ann).await;
        if frame["user_id"] == ann_id.as_str() {
            continue;
        }
        assert!(frame.get("user_id").is_none(), "{frame}");
        if frame["online_count"] == 1 {
            break;
        }
    }
}

/// Real processes: Bob's gateway is SIGKILLed. Nobody releases his hold; it expires, a
/// sweep on Ann's gateway takes it away, and she hears he is offline, within the bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_gateways_people_go_offline_within_the_bound() {
    let env = [
        ("GATEWAY_SC_PRESENCE__TTL_MS", "1000"),
        ("GATEWAY_SC_PRESENCE__RENEW_MS", "250"),
    ];
    let cluster = ScriptCluster::up_with_env(2, 1, &env).await;
    let ann_token = create_session(cluster.gateway(1), "Ann").await;
    let bob_token = create_session(cluster.gateway(2), "Bob").await;
    let bob_id = user_id(cluster.gateway(2), &bob_token).await;
    let mut ann = WsClient::connect(cluster.gateway(1), &ann_token).await;
    ann.join("lobby", None).await;
    let mut bob = WsClient::connect(cluster.gateway(2), &bob_token).await;
    bob.join("lobby", None).await;
    assert!(presence_of(&mut ann, &bob_id).await);

    tokio::task::block_in_place(|| cluster.kill("gateway-2"));
    // The bound: the hold's expiry after its last renewal, plus one sweep (1.25 s here),
    // with room for a loaded machine; without the expiry he would stay online for good.
    let online = tokio::time::timeout(Duration::from_secs(10), presence_of(&mut ann, &bob_id))
        .await
        .expect("offline within ttl_ms + renew_ms");
    assert!(!online);

    // Back on the surviving gateway: online again.
    let mut bob = WsClient::connect(cluster.gateway(1), &bob_token).await;
    bob.join("lobby", None).await;
    assert!(presence_of(&mut ann, &bob_id).await);
}

/// The next `read` frame.
async fn next_read(ws: &mut WsClient) -> Value {
    ws.recv_until("read").await.0
}

/// Read receipts: a member's `read` moves their marker and reaches the author on the other
/// gateway; a joining socket is shown how far each member has read; someone who turned
/// receipts off sends none, and their unread count still follows their marker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_receipts_reach_the_other_gateway_unless_turned_off() {
    let cluster = TestCluster::start(2, 1).await;
    let ann_token = cluster.sign_up(0, "ann").await;
    let bob_token = cluster.sign_up(1, "bob").await;
    let carl_token = cluster.sign_up(1, "carl").await;
    let bob_id = user_id(cluster.gateway(1), &bob_token).await;
    let carl_id = user_id(cluster.gateway(1), &carl_token).await;
    let mut ann = cluster.client_with(0, &ann_token).await;
    ann.join("lobby", None).await;
    let mut bob = cluster.client_with(1, &bob_token).await;
    bob.join("lobby", None).await;
    let mut carl = cluster.client_with(1, &carl_token).await;
    carl.join("lobby", None).await;
    ann.send_text("lobby", "hello", "m1").await;
    ann.recv_until("ack").await;
    for ws in [&mut bob, &mut carl] {
        ws.recv_until("message").await;
    }

    bob.send_json(serde_json::json!({"type": "read", "room": "lobby", "seq": 1}))
        .await;
    let read = next_read(&mut ann).await;
    assert_eq!(
        (read["user_id"].as_str(), read["seq"].as_u64()),
        (Some(bob_id.as_str()), Some(1))
    );
    // A socket joining now is shown how far each member has read.
    let mut ann_again = cluster.client_with(0, &ann_token).await;
    let joined = ann_again.join("lobby", None).await;
    let reads = joined["reads"].as_array().expect("reads in a small room");
    assert!(
        reads.iter().any(|r| r["user_id"] == bob_id.as_str() && r["seq"] == 1),
        "{joined}"
    );

    // Carl turns receipts off: his marker moves (his unread count follows), and nobody is
    // told. Bob's receipt after it, from the same gateway, shows none was sent before.
    let (status, profile) = cluster
        .call(
            1,
            Method::PATCH,
            "/api/v1/me",
            Some(&carl_token),
            Some(serde_json::json!({"read_receipts": false})),
        )
        .await;
    assert_eq!(
        (status, profile["read_receipts"].as_bool()),
        (200, Some(false)),
        "{profile}"
    );
    ann.send_text("lobby", "again", "m2").await;
    ann.recv_until("ack").await;
    for ws in [&mut bob, &mut carl] {
        ws.recv_until("message").await;
    }
    carl.send_json(serde_json::json!({"type": "read", "room": "lobby", "seq": 2}))
        .await;
    carl.join("elsewhere", None).await; // his read is handled once this is answered
    let (_, panel) = cluster
        .call(1, Method::GET, "/api/v1/me/panel", Some(&carl_token), None)
        .await;
    let lobby = panel["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "lobby")
        .cloned()
        .unwrap();
    assert_eq!(lobby["unread"], 0, "{panel}");
    bob.send_json(serde_json::json!({"type": "read", "room": "lobby", "seq": 2}))
        .await;
    let read = next_read(&mut ann).await;
    assert_eq!(read["user_id"], bob_id.as_str(), "Carl's came first: {read}");
    let joined = cluster.client_with(0, &ann_token).await.join("lobby", None).await;
    assert!(
        joined["reads"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["user_id"] != carl_id.as_str()),
        "{joined}"
    );
}
