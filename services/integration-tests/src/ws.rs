//! A websocket client speaking protocol v1, as a browser would.

use chat_domain::protocol::ServerFrame;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Message, http::HeaderValue};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for an expected frame before failing. Not a sleep: frames that
/// arrive sooner return at once.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(15);

pub struct WsClient {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// What ended a read.
#[derive(Debug)]
pub enum Event {
    Frame(Value),
    Closed(Option<CloseFrame>),
}

impl WsClient {
    pub async fn connect(addr: SocketAddr, token: &str) -> Self {
        Self::try_connect(addr, Some(token), None)
            .await
            .expect("websocket handshake")
    }

    /// The raw handshake, for tests that expect it to be refused.
    pub async fn try_connect(
        addr: SocketAddr,
        token: Option<&str>,
        origin: Option<&str>,
    ) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        let mut request = format!("ws://{addr}/ws").into_client_request()?;
        if let Some(token) = token {
            request
                .headers_mut()
                .insert("cookie", HeaderValue::from_str(&format!("sc_session={token}")).unwrap());
        }
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", HeaderValue::from_str(origin).unwrap());
        }
        let (stream, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(Self { stream })
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.stream.send(message).await.expect("websocket send");
    }

    /// As [`WsClient::send_json`], for a frame the server may cut off while it is being
    /// written (one far past the frame limit).
    pub async fn try_send_json(&mut self, frame: Value) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        self.stream.send(Message::Text(frame.to_string().into())).await
    }

    pub async fn send_json(&mut self, frame: Value) {
        self.send_raw(Message::Text(frame.to_string().into())).await;
    }

    /// The next frame or the close; fails the test after [`FRAME_TIMEOUT`].
    pub async fn next_event(&mut self) -> Event {
        loop {
            let message = tokio::time::timeout(FRAME_TIMEOUT, self.stream.next())
                .await
                .expect("timed out waiting for a frame");
            match message {
                Some(Ok(Message::Text(text))) => {
                    // Every frame the server sends is one of the protocol's: tests read it
                    // as JSON, but it must also read back as the typed `ServerFrame`.
                    if let Err(error) = ServerFrame::parse(text.as_bytes()) {
                        panic!("the server sent a frame that is not a ServerFrame ({error}): {text}");
                    }
                    return Event::Frame(serde_json::from_str(&text).expect("server frames are JSON"));
                }
                Some(Ok(Message::Close(frame))) => return Event::Closed(frame),
                Some(Ok(_)) => continue,
                Some(Err(error)) => {
                    eprintln!("websocket ended with an error: {error}");
                    return Event::Closed(None);
                }
                None => return Event::Closed(None),
            }
        }
    }

    /// The next frame, passing over ephemeral signals (presence, typing, read receipts):
    /// they come when they come, and a test about something else must not trip on them.
    /// [`Self::recv_until`] and [`Self::recv_any`] see them.
    pub async fn recv(&mut self) -> Value {
        loop {
            let frame = self.recv_any().await;
            if !is_ephemeral(&frame) {
                return frame;
            }
        }
    }

    /// The next frame, whatever it is.
    pub async fn recv_any(&mut self) -> Value {
        match self.next_event().await {
            Event::Frame(frame) => frame,
            Event::Closed(close) => {
                panic!("connection closed while a frame was expected: {close:?}")
            }
        }
    }

    /// The next frame of type `ty`; frames of other types are returned too, in order
    /// (ephemeral signals of other types excepted).
    pub async fn recv_until(&mut self, ty: &str) -> (Value, Vec<Value>) {
        let mut skipped = Vec::new();
        loop {
            let frame = self.recv_any().await;
            if frame["type"] == ty {
                return (frame, skipped);
            }
            if !is_ephemeral(&frame) {
                skipped.push(frame);
            }
        }
    }

    /// The close code the server ends the connection with.
    pub async fn expect_close(&mut self) -> Option<u16> {
        loop {
            if let Event::Closed(close) = self.next_event().await {
                return close.map(|c| c.code.into());
            }
        }
    }

    pub async fn join(&mut self, room: &str, since_seq: Option<u64>) -> Value {
        let mut frame = json!({"type": "join", "room": room});
        if let Some(since) = since_seq {
            frame["since_seq"] = json!(since);
        }
        self.send_json(frame).await;
        let (joined, _) = self.recv_until("joined").await;
        joined
    }

    pub async fn send_text(&mut self, room: &str, text: &str, client_msg_id: &str) {
        self.send_json(json!({"type": "send", "room": room, "text": text, "client_msg_id": client_msg_id}))
            .await;
    }

    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}

/// Presence, typing and read receipts: never stored, never sequenced, sent as things happen.
fn is_ephemeral(frame: &Value) -> bool {
    matches!(frame["type"].as_str(), Some("presence" | "typing" | "read"))
}

/// Reads until at least `messages` message frames and `acks` ack frames arrived, and
/// returns both, in arrival order. Any other frame fails the test.
pub async fn collect(client: &mut WsClient, messages: usize, acks: usize) -> (Vec<Value>, Vec<Value>) {
    let mut got_messages = Vec::with_capacity(messages);
    let mut got_acks = Vec::with_capacity(acks);
    while got_messages.len() < messages || got_acks.len() < acks {
        let frame = client.recv().await;
        match frame["type"].as_str() {
            Some("message") => got_messages.push(frame),
            Some("ack") => got_acks.push(frame),
            _ => panic!("unexpected frame: {frame}"),
        }
    }
    (got_messages, got_acks)
}
