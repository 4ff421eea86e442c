//! The all-in-one runs two services in one process, and an operator scrapes one
//! `/metrics`: it must show both, the message service's commits beside the gateway's acks.

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn one_metrics_endpoint_shows_the_gateway_and_the_message_service() {
    let data = tempfile::tempdir().unwrap();
    let mut settings = all_in_one::Settings::load(None).unwrap();
    settings.listen = "127.0.0.1:0".parse().unwrap();
    settings.ops_listen = "127.0.0.1:0".parse().unwrap();
    settings.data_dir = data.path().to_owned();
    settings.static_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../static").into();
    let shutdown = CancellationToken::new();
    let server = all_in_one::start(settings, shutdown.clone()).await.unwrap();

    let http = reqwest::Client::new();
    let session: Value = http
        .post(format!("http://{}/api/v1/sessions", server.addr))
        .json(&json!({"name": "Counter"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut request = format!("ws://{}/ws", server.addr).into_client_request().unwrap();
    let cookie = format!("sc_session={}", session["token"].as_str().unwrap());
    request.headers_mut().insert("cookie", cookie.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    for frame in [
        json!({"type": "join", "room": "counted"}),
        json!({"type": "send", "room": "counted", "text": "one", "client_msg_id": "m-1"}),
    ] {
        ws.send(Message::Text(frame.to_string().into())).await.unwrap();
    }
    // Both the ack and the message: by then the commit and the ack are counted.
    let mut seen = Vec::new();
    while !(seen.contains(&"ack".to_owned()) && seen.contains(&"message".to_owned())) {
        let next = tokio::time::timeout(Duration::from_secs(15), ws.next())
            .await
            .expect("a frame in time");
        if let Some(Ok(Message::Text(text))) = next {
            let frame: Value = serde_json::from_str(&text).unwrap();
            assert_ne!(frame["type"], "error", "{frame}");
            seen.push(frame["type"].as_str().unwrap().to_owned());
        }
    }

    let metrics = http
        .get(format!("http://{}/metrics", server.ops_addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines: Vec<&str> = metrics.lines().collect();
    assert!(lines.contains(&"sc_gateway_acks_total 1"), "{metrics}");
    assert!(
        lines.contains(&"sc_message_service_messages_committed_total 1"),
        "{metrics}"
    );
    assert_eq!(
        lines.iter().filter(|l| **l == "# EOF").count(),
        1,
        "one exposition, one end marker"
    );
    assert_eq!(lines.last(), Some(&"# EOF"));

    shutdown.cancel();
    server.wait().await;
}
