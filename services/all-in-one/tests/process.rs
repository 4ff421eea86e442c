//! The all-in-one binary as a person runs it: a real process, SQLite in a data directory,
//! no Redis, no Postgres.

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Kills the server if the test fails half-way.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(data_dir: &std::path::Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_super-channels"))
            .env("SC_LISTEN", "127.0.0.1:0")
            .env("SC_OPS_LISTEN", "127.0.0.1:0")
            .env("SC_DATA_DIR", data_dir)
            .env("SC_STATIC_DIR", concat!(env!("CARGO_MANIFEST_DIR"), "/../../static"))
            .env("SC_LOG__LEVEL", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start super-channels");
        // The server prints its address once it is listening; reading blocks until then.
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("read stdout");
        let addr = line
            .trim()
            .strip_prefix("Super Channels is running on http://")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_owned();
        Self { child, addr }
    }

    /// SIGTERM, then wait for a clean exit.
    fn stop(mut self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        for _ in 0..200 {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "graceful shutdown exits 0, got {status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the server did not stop within 10 s of SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn next_of(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    ty: &str,
) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(15), ws.next())
            .await
            .expect("frame in time");
        if let Some(Ok(Message::Text(text))) = message {
            let frame: Value = serde_json::from_str(&text).unwrap();
            if frame["type"] == ty {
                return frame;
            }
            assert_ne!(frame["type"], "error", "{frame}");
        }
    }
}

#[tokio::test]
async fn chat_survives_a_restart_of_the_all_in_one_process() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let http = reqwest::Client::new();
    let session: Value = http
        .post(format!("http://{}/api/v1/sessions", server.addr))
        .json(&json!({"name": "Solo"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = session["token"].as_str().unwrap().to_owned();

    let mut request = format!("ws://{}/ws", server.addr).into_client_request().unwrap();
    request
        .headers_mut()
        .insert("cookie", format!("sc_session={token}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    ws.send(Message::Text(
        json!({"type": "join", "room": "brand-new"}).to_string().into(),
    ))
    .await
    .unwrap();
    let joined = next_of(&mut ws, "joined").await;
    assert_eq!(joined["last_seq"], 0);
    ws.send(Message::Text(
        json!({"type": "send", "room": "brand-new", "text": "hello, me", "client_msg_id": "solo-1"})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let message = next_of(&mut ws, "message").await;
    assert_eq!(
        (message["seq"].as_u64(), message["text"].as_str()),
        (Some(1), Some("hello, me"))
    );
    assert_eq!(message["user"]["name"], "Solo");

    // The index page is served too.
    let index = http.get(format!("http://{}/", server.addr)).send().await.unwrap();
    assert_eq!(index.status(), 200);
    assert!(
        index.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );

    // Graceful stop: the socket is told to reconnect elsewhere (1012).
    server.stop();
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(15), ws.next())
            .await
            .expect("close in time")
        {
            Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            _ => break None,
        }
    };
    assert_eq!(close, Some(1012));

    // After a restart on the same data directory the history is still there, and the
    // session still valid (its key is kept beside the database).
    let server = Server::start(data.path());
    let history: Value = http
        .get(format!("http://{}/api/v1/rooms/brand-new/messages", server.addr))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(history["messages"].as_array().unwrap().len(), 1, "{history}");
    assert_eq!(history["messages"][0]["text"], "hello, me");
    server.stop();
}
