//! One member of the steady load: its reconnects, its retried sends, and what it saw.
//!
//! A sender cycles through the kinds of event a room's timeline holds: a message, an edit
//! of it, a reaction to it, and the reaction taken back, each retried alike.

use super::{ClientReport, Shared};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, http::HeaderValue};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Error codes a client retries with the same `client_msg_id`.
const TRANSIENT: &[&str] = &["unavailable", "internal", "overloaded", "rate_limited"];

/// How long a sender waits before retrying a refused send.
const BACKOFF: Duration = Duration::from_millis(150);

/// How long a connect, and each frame before `joined`, may take before the member gives up
/// and reconnects. A bound on liveness: when thousands join one debug gateway at once a
/// join can take longer than ten seconds on a slow machine, and members that gave up then
/// came back as new arrivals, more work for the gateway, until setup took minutes
/// (2026-12-07).
const JOIN_TIMEOUT: Duration = Duration::from_secs(60);

/// The reconnect backoff: full jitter over an exponential bound.
const RECONNECT_BASE: Duration = Duration::from_millis(100);
const RECONNECT_CAP: Duration = Duration::from_secs(2);

/// Small socket buffers: a storm test holds thousands of clients in one process.
const CLIENT_BUFFER_BYTES: usize = 4096;

pub(super) struct Client {
    pub(super) index: usize,
    /// The balancer.
    pub(super) addr: SocketAddr,
    /// Taken by the first connection only.
    pub(super) first_addr: Option<SocketAddr>,
    pub(super) token: String,
    pub(super) name: String,
    pub(super) room: String,
    pub(super) sender: bool,
    pub(super) interval: Duration,
    pub(super) shared: Arc<Shared>,
    pub(super) report: ClientReport,
    /// The seq of this sender's last acked message: what its changes change.
    pub(super) own_last: Option<u64>,
}

/// A send or change waiting for its ack: retried as the same frame.
#[derive(Clone)]
pub(super) struct InFlight {
    id: String,
    frame: String,
    /// A message (not a change): its ack names the seq later changes target.
    message: bool,
}

/// Why a connection ended.
enum Ended {
    Stopped,
    Dropped,
}

impl Client {
    pub(super) async fn run(mut self, started: Arc<tokio::sync::Barrier>) -> ClientReport {
        let mut started = Some(started);
        let mut next = 0u64;
        let mut in_flight: Option<InFlight> = None;
        let mut attempt = 0u32;
        loop {
            if self.shared.stop_all.is_cancelled() {
                break;
            }
            let socket = match self.connect_and_join().await {
                Some(socket) => {
                    attempt = 0;
                    socket
                }
                None => {
                    let bound = RECONNECT_CAP.min(RECONNECT_BASE * 2u32.saturating_pow(attempt.min(16)));
                    attempt = attempt.saturating_add(1);
                    let delay = bound.mul_f64(rand::random::<f64>());
                    tokio::select! {
                        _ = self.shared.stop_all.cancelled() => break,
                        _ = tokio::time::sleep(delay) => continue,
                    }
                }
            };
            if let Some(barrier) = started.take() {
                barrier.wait().await;
            }
            match self.converse(socket, &mut next, &mut in_flight).await {
                Ended::Stopped => break,
                Ended::Dropped => self.report.reconnects += 1,
            }
        }
        self.report
    }

    /// Connects (through the balancer) and joins from the last seq seen; `None` when
    /// either is refused, to be tried again.
    async fn connect_and_join(&mut self) -> Option<Socket> {
        let addr = self.first_addr.unwrap_or(self.addr);
        let mut request = format!("ws://{addr}/ws").into_client_request().ok()?;
        request.headers_mut().insert(
            "cookie",
            HeaderValue::from_str(&format!("sc_session={}", self.token)).ok()?,
        );
        let config = WebSocketConfig::default()
            .read_buffer_size(CLIENT_BUFFER_BYTES)
            .write_buffer_size(CLIENT_BUFFER_BYTES);
        let connect = tokio_tungstenite::connect_async_with_config(request, Some(config), true);
        let mut socket = match tokio::time::timeout(JOIN_TIMEOUT, connect).await {
            Ok(Ok((socket, _))) => socket,
            Ok(Err(tokio_tungstenite::tungstenite::Error::Http(_))) => {
                self.report.refused += 1;
                return None;
            }
            _ => return None,
        };
        let join = json!({"type": "join", "room": self.room, "since_seq": self.report.last_seq});
        socket.send(Message::Text(join.to_string().into())).await.ok()?;
        loop {
            let message = tokio::time::timeout(JOIN_TIMEOUT, socket.next()).await.ok()??;
            let Ok(Message::Text(text)) = message else {
                if matches!(message, Ok(Message::Ping(_) | Message::Pong(_))) {
                    continue;
                }
                return None;
            };
            let frame: Value = serde_json::from_str(&text).ok()?;
            match frame["type"].as_str() {
                Some("joined") => {
                    if frame["has_more"] == true {
                        self.report
                            .unexpected
                            .push("joined with has_more: the resume did not cover the gap".into());
                    }
                    for message in frame["history"].as_array().into_iter().flatten() {
                        self.delivered(message);
                    }
                    // The first gateway only once: every later connection is a reconnect.
                    self.first_addr = None;
                    return Some(socket);
                }
                Some("error") => {
                    self.count_error(&frame);
                    return None;
                }
                // Notifications of other rooms are not this test's concern.
                Some("notify") => {}
                _ => self.report.unexpected.push(format!("before joined: {frame}")),
            }
        }
    }

    async fn converse(&mut self, mut socket: Socket, next: &mut u64, in_flight: &mut Option<InFlight>) -> Ended {
        let far = Instant::now() + Duration::from_secs(3600);
        // A send in flight when the last socket dropped goes again at once, same id.
        let mut resend_at = if in_flight.is_some() { Instant::now() } else { far };
        let mut send_at = if self.sender { Instant::now() } else { far };
        loop {
            let may_send = self.sender && in_flight.is_none() && !self.shared.sending_stopped.load(Ordering::SeqCst);
            tokio::select! {
                _ = self.shared.stop_all.cancelled() => {
                    let _ = socket.close(None).await;
                    return Ended::Stopped;
                }
                _ = tokio::time::sleep_until(send_at), if may_send => {
                    self.shared.in_flight.fetch_add(1, Ordering::SeqCst);
                    if self.shared.sending_stopped.load(Ordering::SeqCst) {
                        self.shared.in_flight.fetch_sub(1, Ordering::SeqCst);
                        self.shared.changed.notify_waiters();
                        send_at = far;
                        continue;
                    }
                    *next += 1;
                    let pending = self.next_event(*next);
                    self.report.sent += 1;
                    let sent = self.send(&mut socket, &pending.frame).await;
                    *in_flight = Some(pending);
                    if !sent {
                        return Ended::Dropped;
                    }
                }
                _ = tokio::time::sleep_until(resend_at), if in_flight.is_some() => {
                    resend_at = far;
                    let frame = in_flight.as_ref().expect("checked").frame.clone();
                    if !self.send(&mut socket, &frame).await {
                        return Ended::Dropped;
                    }
                }
                message = socket.next() => {
                    let text = match message {
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                        Some(Ok(Message::Binary(_))) => {
                            self.report.unexpected.push("a binary frame".into());
                            continue;
                        }
                        Some(Ok(Message::Close(_) | Message::Frame(_))) | Some(Err(_)) | None => return Ended::Dropped,
                    };
                    let Ok(frame) = serde_json::from_str::<Value>(&text) else {
                        self.report.unexpected.push(format!("not JSON: {text}"));
                        continue;
                    };
                    match frame["type"].as_str() {
                        Some("message" | "edited" | "reacted" | "unreacted" | "deleted") => self.delivered(&frame),
                        Some("ack") => {
                            let id = frame["client_msg_id"].as_str().unwrap_or_default();
                            if let Some(acked) = in_flight.as_ref().filter(|f| f.id == id) {
                                let seq = frame["seq"].as_u64().unwrap_or(0);
                                if acked.message {
                                    self.own_last = Some(seq);
                                }
                                self.report.acked.push((id.to_owned(), seq));
                                *in_flight = None;
                                self.shared.in_flight.fetch_sub(1, Ordering::SeqCst);
                                self.shared.acks.fetch_add(1, Ordering::SeqCst);
                                self.shared.changed.notify_waiters();
                                send_at = Instant::now() + self.interval;
                            } else {
                                self.report.unexpected.push(format!("an ack for a send not in flight: {frame}"));
                            }
                        }
                        Some("error") => {
                            let code = self.count_error(&frame);
                            let for_in_flight = in_flight.as_ref().is_some_and(|f| frame["ref"].as_str() == Some(f.id.as_str()));
                            if for_in_flight && TRANSIENT.contains(&code.as_str()) {
                                resend_at = Instant::now() + BACKOFF;
                            } else {
                                self.report.unexpected.push(format!("error frame: {frame}"));
                            }
                        }
                        // Ephemeral signals come when they come; this load checks the timeline.
                        Some("notify" | "presence" | "typing" | "read") => {}
                        _ => self.report.unexpected.push(format!("unexpected frame: {frame}")),
                    }
                }
            }
        }
    }

    /// The sender's `n`th event: a message, then an edit of it, a reaction to it and the
    /// reaction taken back, over and over (a message whenever there is none to change yet).
    fn next_event(&self, n: u64) -> InFlight {
        let id = format!("{}-{}", self.name, n);
        let (room, target) = (&self.room, self.own_last);
        let frame = match (n % 4, target) {
            (2, Some(seq)) => {
                json!({"type": "edit", "room": room, "seq": seq, "text": format!("edit {id}"), "client_msg_id": id})
            }
            (3, Some(seq)) => json!({"type": "react", "room": room, "seq": seq, "emoji": "👍", "client_msg_id": id}),
            (0, Some(seq)) => json!({"type": "unreact", "room": room, "seq": seq, "emoji": "👍", "client_msg_id": id}),
            _ => json!({"type": "send", "room": room, "text": format!("message {id}"), "client_msg_id": id}),
        };
        InFlight {
            message: frame["type"] == "send",
            frame: frame.to_string(),
            id,
        }
    }

    async fn send(&self, socket: &mut Socket, frame: &str) -> bool {
        socket.send(Message::Text(frame.to_owned().into())).await.is_ok()
    }

    fn count_error(&mut self, frame: &Value) -> String {
        let code = frame["code"].as_str().unwrap_or("?").to_owned();
        *self.report.errors.entry(code.clone()).or_default() += 1;
        if !self.report.error_messages.contains_key(&code) {
            let message = frame["message"].as_str().unwrap_or_default().to_owned();
            self.report.error_messages.insert(code.clone(), message);
        }
        if code == "unavailable" {
            self.shared.unavailable.fetch_add(1, Ordering::SeqCst);
            self.shared.changed.notify_waiters();
        }
        code
    }

    /// An event frame (live, or from `joined`'s history): in order, once?
    fn delivered(&mut self, message: &Value) {
        let Some(seq) = message["seq"].as_u64() else {
            self.report.unexpected.push(format!("a message without seq: {message}"));
            return;
        };
        let report = &mut self.report;
        if seq <= report.last_seq {
            report.duplicates += 1;
            return;
        }
        report.gaps += seq - report.last_seq - 1;
        report.last_seq = seq;
        report.delivered += 1;
        self.shared.positions[self.index].store(seq, Ordering::SeqCst);
        self.shared.changed.notify_waiters();
    }
}
