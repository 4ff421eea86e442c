//! The per-connection send rate and the connection limits.

use integration_tests::{TestCluster, WsClient};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Error as WsError;

fn refused_status(result: Result<WsClient, WsError>) -> u16 {
    match result {
        Err(WsError::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("refused, but not with an HTTP status: {other}"),
        Ok(_) => panic!("the handshake was accepted"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_past_the_rate_are_refused_and_not_stored() {
    // A burst of 2 and a rate so slow that no token comes back during the test.
    let cluster = TestCluster::start_with(1, 1, |s| {
        s.gateway.send_burst = 2;
        s.gateway.send_rate_per_sec = 0.001;
    })
    .await;
    let mut ws = cluster.client(0, "Ann").await;
    ws.join("lobby", None).await;
    for i in 0..4 {
        ws.send_text("lobby", &format!("m{i}"), &format!("c{i}")).await;
    }
    let (mut acks, mut refused) = (Vec::new(), Vec::new());
    while acks.len() + refused.len() < 4 {
        let frame: Value = ws.recv().await;
        match frame["type"].as_str() {
            Some("ack") => acks.push(frame["client_msg_id"].as_str().unwrap().to_owned()),
            Some("error") => {
                assert_eq!(frame["code"], "rate_limited", "{frame}");
                refused.push(frame["ref"].as_str().unwrap().to_owned());
            }
            _ => {} // the sender's own messages
        }
    }
    assert_eq!(acks, ["c0", "c1"]);
    assert_eq!(refused, ["c2", "c3"]);
    let stored: Vec<String> = cluster.db.message_rows().await.into_iter().map(|r| r.3).collect();
    assert_eq!(stored, ["m0", "m1"], "refused sends are not stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_bounded_per_user_and_per_gateway() {
    let cluster = TestCluster::start_with(1, 1, |s| {
        s.gateway.max_connections_per_user = 2;
        s.gateway.max_connections = 3;
    })
    .await;
    let ann = cluster.session(0, "Ann").await;
    let _first = cluster.client_with(0, &ann).await;
    let _second = cluster.client_with(0, &ann).await;
    assert_eq!(
        refused_status(WsClient::try_connect(cluster.gateway(0), Some(&ann), None).await),
        429
    );
    let _bob = cluster.client(0, "Bob").await;
    let carol = cluster.session(0, "Carol").await;
    assert_eq!(
        refused_status(WsClient::try_connect(cluster.gateway(0), Some(&carol), None).await),
        503
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_answers_nothing_is_closed_after_the_idle_timeout() {
    let cluster = TestCluster::start_with(1, 1, |s| {
        s.gateway.ping_interval_secs = 1;
        s.gateway.idle_timeout_secs = 2;
    })
    .await;
    let mut silent = cluster.client(0, "Ann").await;
    // Being silent is the behaviour under test: not reading means not answering the
    // gateway's pings either, for longer than the idle timeout.
    tokio::time::sleep(std::time::Duration::from_millis(3500)).await;
    assert_eq!(silent.expect_close().await, Some(4002));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_that_never_completes_is_closed_and_others_still_connect() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let cluster = TestCluster::start_with(1, 1, |s| s.gateway.handshake_timeout_ms = 300).await;
    let addr = cluster.gateway(0);
    // One connection that sends nothing, one that stops in the middle of its headers.
    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut trickle = tokio::net::TcpStream::connect(addr).await.unwrap();
    trickle
        .write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
        .await
        .unwrap();
    // Meanwhile a well-behaved client is not held up by them.
    let mut ws = cluster.client(0, "Ann").await;
    ws.join("lobby", None).await;
    for stream in [&mut silent, &mut trickle] {
        // The server ends the connection (EOF, perhaps after a 408, or a reset), never
        // upgrades it. The outer bound only turns a hang into a failure.
        let mut answer = Vec::new();
        let read = tokio::time::timeout(std::time::Duration::from_secs(20), stream.read_to_end(&mut answer))
            .await
            .expect("the half-open handshake was never closed");
        let answer = String::from_utf8_lossy(&answer);
        assert!(read.is_err() || !answer.contains(" 101 "), "upgraded anyway: {answer}");
    }
    // The websocket that completed its handshake lives on past the timeout.
    ws.send_text("lobby", "still here", "c1").await;
    let (ack, _) = ws.recv_until("ack").await;
    assert_eq!(ack["client_msg_id"], "c1");
}
