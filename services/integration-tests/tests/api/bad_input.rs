//! Every kind of bad input gets its documented error frame or close code, the connection
//! stays usable where the protocol says it does, and nothing is stored.

use integration_tests::TestCluster;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

async fn expect_error(client: &mut integration_tests::WsClient, code: &str) -> serde_json::Value {
    let frame = client.recv().await;
    assert_eq!(frame["type"], "error", "expected an error frame, got {frame}");
    assert_eq!(frame["code"], code, "{frame}");
    assert!(!frame["message"].as_str().unwrap_or_default().is_empty());
    frame
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_get_error_frames_and_the_connection_stays_usable() {
    let cluster = TestCluster::start_with(1, 1, |s| s.gateway.max_rooms_per_connection = 2).await;
    let mut client = cluster.client(0, "Mallory").await;

    client.send_raw(Message::Text("{not json".into())).await;
    expect_error(&mut client, "invalid_json").await;
    client.send_raw(Message::Text("[1,2,3]".into())).await;
    expect_error(&mut client, "invalid_json").await;
    client
        .send_json(json!({"type": "join", "room": "x", "since_seq": "soon"}))
        .await;
    expect_error(&mut client, "invalid_json").await;
    client.send_json(json!({"type": "teleport", "room": "x"})).await;
    expect_error(&mut client, "unknown_type").await;
    client.send_json(json!({"room": "x"})).await;
    expect_error(&mut client, "missing_field").await;
    client.send_json(json!({"type": "join"})).await;
    expect_error(&mut client, "missing_field").await;
    client
        .send_json(json!({"type": "join", "room": "no spaces please"}))
        .await;
    expect_error(&mut client, "invalid_room").await;
    client
        .send_json(json!({"type": "join", "room": "x".repeat(1_000)}))
        .await;
    expect_error(&mut client, "invalid_room").await;
    client.send_raw(Message::Binary(vec![1, 2, 3].into())).await;
    expect_error(&mut client, "binary_frame").await;

    // Sending to a room not joined.
    client.send_text("elsewhere", "hi", "c-1").await;
    let frame = expect_error(&mut client, "not_joined").await;
    assert_eq!(frame["ref"], "c-1");

    client.join("room-a", None).await;
    client
        .send_json(json!({"type": "send", "room": "room-a", "client_msg_id": "c-2"}))
        .await;
    expect_error(&mut client, "missing_field").await;
    client.send_text("room-a", "   ", "c-3").await;
    assert_eq!(expect_error(&mut client, "invalid_text").await["ref"], "c-3");
    client.send_text("room-a", &"x".repeat(4001), "c-4").await;
    expect_error(&mut client, "invalid_text").await;
    client.send_text("room-a", "nul\u{0}byte", "c-5").await;
    expect_error(&mut client, "invalid_text").await;
    client.send_text("room-a", "fine", "bad id with spaces").await;
    expect_error(&mut client, "invalid_client_msg_id").await;

    // Joining twice, and past the per-connection room limit.
    client.send_json(json!({"type": "join", "room": "room-a"})).await;
    expect_error(&mut client, "already_joined").await;
    client.join("room-b", None).await;
    client.send_json(json!({"type": "join", "room": "room-c"})).await;
    assert_eq!(expect_error(&mut client, "too_many_rooms").await["ref"], "room-c");

    assert!(
        cluster.db.message_rows().await.is_empty(),
        "nothing stored from bad input"
    );

    // Still usable: a good send is acked and delivered.
    client.send_text("room-a", "finally", "c-ok").await;
    let (ack, _) = client.recv_until("ack").await;
    assert_eq!(ack["client_msg_id"], "c-ok");
    assert_eq!(cluster.db.message_rows().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_over_the_size_limit_closes_with_1009() {
    let cluster = TestCluster::start_with(1, 1, |s| s.gateway.max_frame_bytes = 4096).await;
    let mut client = cluster.client(0, "Big").await;
    client.join("big", None).await;
    let text = "y".repeat(5000);
    client
        .send_json(json!({"type": "send", "room": "big", "text": text, "client_msg_id": "big-1"}))
        .await;
    assert_eq!(client.expect_close().await, Some(1009));
    assert!(cluster.db.message_rows().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handshake_needs_a_valid_session_and_an_allowed_origin() {
    use tokio_tungstenite::tungstenite::Error;
    let cluster = TestCluster::start(1, 1).await;
    let addr = cluster.gateway(0);
    let status = |r: Result<integration_tests::WsClient, Error>| match r {
        Err(Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("the handshake should have been refused"),
    };
    assert_eq!(
        status(integration_tests::WsClient::try_connect(addr, None, None).await),
        401
    );
    assert_eq!(
        status(integration_tests::WsClient::try_connect(addr, Some("forged.token"), None).await),
        401
    );
    let token = cluster.session(0, "Ann").await;
    assert_eq!(
        status(integration_tests::WsClient::try_connect(addr, Some(&token), Some("https://evil.example")).await),
        403
    );
    let same_origin = format!("http://{addr}");
    assert!(
        integration_tests::WsClient::try_connect(addr, Some(&token), Some(&same_origin))
            .await
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_author_is_the_session_whatever_the_frame_claims() {
    let cluster = TestCluster::start(1, 1).await;
    let mut client = cluster.client(0, "Real Name").await;
    client.join("spoof", None).await;
    client
        .send_json(json!({
            "type": "send", "room": "spoof", "text": "hi", "client_msg_id": "s-1",
            "user": {"id": "admin", "name": "Admin"}, "author": "Admin", "author_id": "admin"
        }))
        .await;
    let (message, _) = client.recv_until("message").await;
    assert_eq!(message["user"]["name"], "Real Name");
    assert!(message["user"]["id"].as_str().unwrap().starts_with("guest:"));
    let rows = cluster.db.message_rows().await;
    assert_eq!(rows.len(), 1);
    assert!(
        rows[0].2.starts_with("guest:"),
        "stored author is the session's: {rows:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_is_closed_with_4001_when_its_session_expires() {
    let cluster = TestCluster::start_with(1, 1, |s| s.auth.session_ttl_secs = 2).await;
    let mut client = cluster.client(0, "Brief").await;
    client.join("short", None).await;
    assert_eq!(client.expect_close().await, Some(4001));
}
