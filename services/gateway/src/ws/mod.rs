//! `GET /ws`: one websocket connection speaking protocol v1.
//!
//! Up to three tasks per connection: the reader (this module's loop: parses frames, handles
//! joins and leaves, queues sends), the sender ([`send`]: sends in order, one group at a
//! time, so a person's messages keep their order; started by the socket's first send), and
//! the writer ([`write`]: writes queued frames in batches, pings, closes a silent socket,
//! and writes the close frame). They share the connection's [`Outbox`]. [`handshake`]
//! admits a connection before it is upgraded.
//!
//! Most sockets sit idle for hours, so what one holds while idle is kept small: the
//! measured figures and what each change saved are in docs/benchmarks.md (idle).

pub mod handshake;
mod send;
mod write;

use crate::actions::{access, membership};
use crate::auth::{Principal, now_ms};
use crate::error::GatewayError;
use crate::fanout::{ConnId, Hub};
use crate::limits::{Admitted, TokenBucket};
use crate::outbox::{Closer, Outbox, text};
use crate::people::{MAX_WATCHED_ROOMS, Restrictions};
use crate::presence;
use crate::queue;
use crate::state::AppState;
use crate::upstream::Proposal;
use axum::extract::ws::{Message, WebSocket};
use chat_bus::{Signal, SignalKind};
use chat_common::telemetry::{MessageTrace, TRACE_TARGET};
use chat_domain::protocol::{ClientFrame, HistoryItem, ReadMarker, RemovedReason, ServerFrame, TypingFrame};
use chat_domain::{AccessError, ClientMsgId, CloseCode, ErrorCode, RoomName, TimelineEvent, UserId};
use futures::stream::{SplitStream, StreamExt};
use send::{SendRequest, send_loop};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;
use write::write_loop;

struct Connection {
    app: AppState,
    id: ConnId,
    outbox: Outbox,
    joined: HashSet<RoomName>,
    /// Started by the first send: most sockets never send, and an idle one then holds
    /// neither the task nor its queue (docs/benchmarks.md, idle).
    sender: Option<Sender>,
    principal: Principal,
    send_rate: TokenBucket,
    /// When this socket's last `typing` was passed on.
    last_typing: Option<Instant>,
    /// Rooms moderation took it out of, and mutes, kept current by the bus.
    restrictions: Arc<Restrictions>,
}

/// The connection's sender task and the queue it takes sends from.
struct Sender {
    /// Boxed: the queue keeps the room it grew to, and a few unboxed requests would be
    /// most of a kilobyte on a connection that once sent a burst.
    queue: queue::Sender<Box<SendRequest>>,
    task: JoinHandle<()>,
}

/// What a connection starts from: the upgraded socket, its user, and its place among the
/// gateway's connections (held for as long as the socket lives).
struct Start {
    app: AppState,
    principal: Principal,
    admitted: Admitted,
    socket: WebSocket,
}

/// A connection once open: what its reader keeps while it reads.
struct Opened {
    conn: Connection,
    stream: SplitStream<WebSocket>,
    writer: JoinHandle<()>,
    closer: Arc<Closer>,
    /// The connection's place, freed when the task ends.
    admitted: Admitted,
}

/// Runs one upgraded connection until either side closes it or the gateway shuts down.
///
/// A task keeps room for the largest state its future can be in, for as long as it lives,
/// and most sockets sit idle in the read loop for hours. So opening and closing are
/// boxed: their state is on the heap only while they run, and the task holds the loop's
/// (docs/benchmarks.md, idle).
async fn run(start: Box<Start>) {
    let Opened {
        mut conn,
        mut stream,
        writer,
        closer,
        admitted,
    } = Box::pin(open(start)).await;
    let app = conn.app.clone();
    let metrics = app.metrics().clone();
    let shutdown = app.shutdown().clone();
    let session_end = tokio::time::sleep(until(conn.principal.expires_at));
    tokio::pin!(session_end);
    let closed = closer.cancelled();
    tokio::pin!(closed);
    loop {
        tokio::select! {
            biased;
            _ = &mut closed => break,
            _ = &mut session_end => {
                conn.outbox.close_after_queue(CloseCode::SessionEnded);
                break;
            }
            _ = shutdown.cancelled() => {
                conn.outbox.close_after_queue(CloseCode::ServiceRestart);
                break;
            }
            message = stream.next() => {
                if let Some(Ok(_)) = &message {
                    // Anything the client sends, a pong included, shows it is alive (the
                    // writer closes a socket that stays silent).
                    closer.heard();
                }
                match message {
                    Some(Ok(Message::Text(frame))) => {
                        metrics.frames_in.inc();
                        // Boxed: a join awaits database and gRPC calls whose futures are
                        // large, and the connection's task would otherwise hold room for
                        // them all its life, idle or not.
                        Box::pin(conn.on_text(&frame)).await;
                    }
                    Some(Ok(Message::Binary(_))) => {
                        metrics.frames_in.inc();
                        let error = GatewayError::new(ErrorCode::BinaryFrame, "binary frames are not supported; send JSON text frames");
                        conn.error(&error, None);
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_))) | None => break,
                    Some(Err(error)) => {
                        if is_too_big(&error) {
                            conn.outbox.close(CloseCode::MessageTooBig);
                        } else if is_invalid_utf8(&error) {
                            conn.outbox.close(CloseCode::InvalidPayload);
                        } else {
                            tracing::debug!(%error, "websocket read failed");
                        }
                        break;
                    }
                }
            }
        }
    }

    Box::pin(close(app, conn, stream, writer)).await;
    drop(admitted);
    metrics.connections.dec();
}

/// Up to the first read: starts the writer, reads the user's rooms, registers the socket
/// and announces the user's arrival.
async fn open(start: Box<Start>) -> Opened {
    let Start {
        app,
        principal,
        admitted,
        socket,
    } = *start;
    let limits = &app.settings().gateway;
    let (outbox, outbound, closer) = Outbox::new(limits.outbound_queue);
    let (sink, stream) = socket.split();
    let writer = tokio::spawn(write_loop(
        sink,
        outbound,
        closer.clone(),
        app.metrics().frames_out.clone(),
        std::time::Duration::from_secs(limits.ping_interval_secs),
        std::time::Duration::from_secs(limits.idle_timeout_secs),
    ));
    app.metrics().connections.inc();

    let id = app.next_conn_id();
    // The user's rooms, for notifications: read once here, then kept current by the bus.
    let member_rooms = match app
        .directory()
        .member_room_names(&principal.author.id, MAX_WATCHED_ROOMS)
        .await
    {
        Ok(rooms) => rooms,
        Err(error) => {
            tracing::warn!(%error, "cannot read the user's rooms; no notifications on this socket");
            Vec::new()
        }
    };
    let rooms_for_presence = member_rooms.clone();
    let (first_here, restrictions) = app.people().add(
        id,
        principal.author.id.clone(),
        principal.session_id.clone(),
        outbox.clone(),
        member_rooms,
    );
    if first_here {
        let arrival = app.presence().arrived(&principal.author.id, &rooms_for_presence);
        presence::within("arrival", arrival).await;
    }
    let conn = Connection {
        id,
        app: app.clone(),
        outbox,
        joined: HashSet::new(),
        sender: None,
        principal,
        send_rate: TokenBucket::new(limits.send_rate_per_sec, limits.send_burst, Instant::now()),
        last_typing: None,
        restrictions,
    };
    Opened {
        conn,
        stream,
        writer,
        closer,
        admitted,
    }
}

/// After the reading stops: leaves the rooms, lets queued sends get their answers, then the
/// writer flush and close, and reads what the client still sends until its Close.
async fn close(app: AppState, mut conn: Connection, mut stream: SplitStream<WebSocket>, writer: JoinHandle<()>) {
    if let Some((user, rooms)) = app.people().remove(conn.id) {
        // Off the socket's path: the close must not wait on Redis.
        let presence = app.presence().clone();
        tokio::spawn(async move { presence.departed(&user, &rooms).await });
    }
    let read_markers: Vec<(RoomName, Option<u64>)> = conn
        .joined
        .drain()
        .map(|room| {
            let position = app.fanout().position(&room);
            app.fanout().leave(&room, conn.id);
            (room, position)
        })
        .collect();
    // What this socket was shown counts as read; written off the socket's path.
    let (reader_app, user) = (app.clone(), conn.principal.author.id.clone());
    tokio::spawn(async move {
        for (room, position) in read_markers {
            if let Some(seq) = position {
                mark_read(&reader_app, &user, &room, seq).await;
            }
        }
    });
    // Sends already queued still get their ack (or error) before the socket closes, within
    // the drain bound; then the writer sees its queue end and closes the socket.
    let Connection { outbox, sender, .. } = conn;
    if let Some(Sender { queue, task }) = sender {
        drop(queue);
        let _ = tokio::time::timeout(app.drain_timeout(), task).await;
    }
    drop(outbox);
    // A client that stopped reading must not hold the socket open past the bound.
    let abort = writer.abort_handle();
    if tokio::time::timeout(app.drain_timeout(), writer).await.is_err() {
        abort.abort();
    }
    // The closing handshake: read (and drop) what the client still sends until its Close
    // or EOF. Closing a socket with unread data makes the kernel send RST, and an RST can
    // destroy our Close frame before the client reads it, losing the close code.
    let _ = tokio::time::timeout(CLOSE_HANDSHAKE, async {
        while let Some(Ok(message)) = stream.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// After the HTTP server has stopped: upgraded sockets outlive it, and each one finishes its
/// in-flight sends, flushes and closes with 1012 on the same signal. Waits for them, within
/// the drain bound (and a second for the close frames).
pub async fn drain(connections: &TaskTracker, bound: std::time::Duration) {
    connections.close();
    let open = connections.len();
    if open > 0 {
        tracing::info!(connections = open, "draining websocket connections");
    }
    let deadline = bound + std::time::Duration::from_secs(1);
    if tokio::time::timeout(deadline, connections.wait()).await.is_err() {
        tracing::warn!(
            connections = connections.len(),
            "drain deadline passed with sockets still open"
        );
    }
}

/// How long the server waits for the client's answer to its Close frame.
const CLOSE_HANDSHAKE: std::time::Duration = std::time::Duration::from_secs(2);

/// How long from now until a Unix time in seconds; zero if it has passed.
fn until(unix_secs: u64) -> std::time::Duration {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    std::time::Duration::from_secs(unix_secs).saturating_sub(now)
}

fn is_too_big(error: &axum::Error) -> bool {
    // axum hides tungstenite's error type; its capacity errors read "Space limit exceeded"
    // or "Message too long".
    let text = error_text(error);
    text.contains("Space limit exceeded") || text.contains("too long") || text.contains("Message too big")
}

fn is_invalid_utf8(error: &axum::Error) -> bool {
    // tungstenite's `Error::Utf8` reads "UTF-8 encoding error".
    error_text(error).contains("UTF-8")
}

fn error_text(error: &axum::Error) -> String {
    std::error::Error::source(error).map_or_else(|| error.to_string(), |e| e.to_string())
}

impl Connection {
    fn push(&self, frame: ServerFrame) {
        self.outbox.push(text(frame.to_bytes()));
    }

    /// Answers a frame with an `error` frame; `reference` names what it answers (a
    /// send's `client_msg_id`, a join's room).
    fn error(&self, error: &GatewayError, reference: Option<&str>) {
        self.app.metrics().error(error.code);
        self.push(error.to_frame(reference));
    }

    async fn on_text(&mut self, frame: &str) {
        let frame = match ClientFrame::parse(frame) {
            Ok(frame) => frame,
            Err(error) => return self.error(&error.clone().into(), error.reference.as_deref()),
        };
        match frame {
            ClientFrame::Join { room, since_seq } => self.join(room, since_seq).await,
            ClientFrame::Leave { room } => {
                let _ = self.restricted(&room);
                if self.joined.remove(&room) {
                    if let Some(seq) = self.app.fanout().position(&room) {
                        mark_read(&self.app, &self.principal.author.id, &room, seq).await;
                    }
                    self.app.fanout().leave(&room, self.id);
                    self.app.people().left(self.id, &room);
                    self.push(ServerFrame::left(&room));
                } else {
                    self.error(&not_joined(), Some(room.as_str()));
                }
            }
            ClientFrame::Send {
                room,
                body,
                client_msg_id,
                reply_to,
                traceparent,
            } => {
                let proposal = Proposal::Message {
                    body,
                    reply_to,
                    mentions: Vec::new(),
                    attachment_size: None,
                };
                // Their message ends their typing (clients drop the indicator on it): what
                // they type next is news at once.
                self.last_typing = None;
                self.queue_send(room, proposal, client_msg_id, traceparent);
            }
            ClientFrame::Change {
                room,
                target_seq,
                change,
                client_msg_id,
                traceparent,
            } => {
                let proposal = Proposal::Change {
                    target_seq,
                    change,
                    // Whether a deletion may take someone else's message (the room's
                    // moderators and owner, a site administrator) is read when it is
                    // prepared (`actions::propose`).
                    admin: false,
                };
                self.queue_send(room, proposal, client_msg_id, traceparent);
            }
            ClientFrame::Typing { room } => self.typing(room),
            ClientFrame::Read { room, seq } => self.read(room, seq).await,
            ClientFrame::Ping => self.push(ServerFrame::Pong),
        }
    }

    /// Passes `typing` on to the room's members on every gateway, at most once per
    /// `typing_min_interval_ms` per socket (faster ones are dropped, unanswered: the
    /// indicator is already showing). Never stored, never acknowledged.
    fn typing(&mut self, room: RoomName) {
        if let Err(error) = self.restricted(&room) {
            return self.error(&error, Some(room.as_str()));
        }
        if !self.joined.contains(&room) {
            return self.error(&not_joined(), Some(room.as_str()));
        }
        let settings = &self.app.settings().signals;
        if !settings.typing {
            return;
        }
        let now = Instant::now();
        let interval = std::time::Duration::from_millis(settings.typing_min_interval_ms);
        if self.last_typing.is_some_and(|at| now.duration_since(at) < interval) {
            self.app.metrics().typing_dropped.inc();
            return;
        }
        self.last_typing = Some(now);
        let frame = ServerFrame::Typing(TypingFrame {
            room: room.clone(),
            user: Some(self.principal.author.clone()),
            count: None,
        });
        let signal = Signal {
            kind: SignalKind::Typing,
            room,
            user: self.principal.author.id.clone(),
            payload: frame.to_bytes(),
        };
        let bus = self.app.bus().clone();
        tokio::spawn(async move {
            if let Err(error) = bus.signal(&[signal]).await {
                tracing::debug!(%error, "typing signal lost");
            }
        });
    }

    /// Queues a send or change for the sender, which commits them in order; the rate
    /// limit and the bound on waiting sends cover both alike.
    fn queue_send(
        &mut self,
        room: RoomName,
        proposal: Proposal,
        client_msg_id: ClientMsgId,
        traceparent: Option<String>,
    ) {
        if let Err(error) = self.restricted(&room) {
            return self.error(&error, Some(client_msg_id.as_str()));
        }
        if !self.joined.contains(&room) {
            return self.error(&not_joined(), Some(client_msg_id.as_str()));
        }
        if !self.send_rate.try_take(Instant::now()) {
            let rate = self.app.settings().gateway.send_rate_per_sec;
            let error = GatewayError::new(
                ErrorCode::RateLimited,
                format!("sending too fast: at most {rate} messages per second; this one was not sent"),
            );
            return self.error(&error, Some(client_msg_id.as_str()));
        }
        let trace = MessageTrace::continue_or_start(traceparent, || {
            tracing::info_span!(
                target: TRACE_TARGET,
                parent: None,
                "ws receive",
                room = %room,
                client_msg_id = %client_msg_id,
                gateway = %self.app.instance(),
            )
        });
        let request = Box::new(SendRequest {
            room,
            proposal,
            client_msg_id,
            received: Instant::now(),
            trace,
        });
        let sender = self.sender.get_or_insert_with(|| {
            let (queue, pending) = queue::bounded(self.app.settings().gateway.send_queue);
            let task = tokio::spawn(send_loop(
                self.app.clone(),
                self.principal.clone(),
                self.outbox.clone(),
                pending,
            ));
            Sender { queue, task }
        });
        if let Err(queue::TrySendError::Full(request)) = sender.queue.try_send(request) {
            let error = GatewayError::new(
                ErrorCode::RateLimited,
                "too many sends waiting for their ack; wait for acks",
            );
            self.error(&error, Some(request.client_msg_id.as_str()));
        }
    }

    async fn join(&mut self, room: RoomName, since_seq: Option<u64>) {
        let reference = Some(room.as_str());
        // Taken out of it since: this is a new join, which reads the standing again.
        let _ = self.restricted(&room);
        if self.joined.contains(&room) {
            let error = GatewayError::new(ErrorCode::AlreadyJoined, "already joined this room");
            return self.error(&error, reference);
        }
        let max = self.app.settings().gateway.max_rooms_per_connection;
        if self.joined.len() >= max {
            let error = GatewayError::new(
                ErrorCode::TooManyRooms,
                format!("a connection may join at most {max} rooms"),
            );
            return self.error(&error, reference);
        }
        // Messages from here on, not notifications about them.
        self.app.people().joined(self.id, &room);
        let hub = self.app.fanout().begin_join(&room, self.id, self.outbox.clone());
        self.joined.insert(room.clone());
        if let Err(error) = self.complete_join(&hub, &room, since_seq).await {
            self.joined.remove(&room);
            self.app.fanout().leave(&room, self.id);
            self.app.people().left(self.id, &room);
            self.error(&error, reference);
        }
    }

    async fn complete_join(&self, hub: &Arc<Hub>, room: &RoomName, since_seq: Option<u64>) -> Result<(), GatewayError> {
        let upstream = self.app.upstream();
        let limits = &self.app.settings().gateway;
        // The room's partition read before its last seq is (`chat_bus::interest`).
        self.app.fanout().ready(room).await;
        // Who may enter is decided here (a private room only for its members and invitees,
        // a ban shuts any room); entering makes you a member. Recorded before `joined`
        // goes out, so the panel agrees once the client sees it.
        let (info, access, _) = access::enter(&self.app, &self.principal, room).await?;
        self.restrictions.joined(room, access.standing.muted_at(now_ms()));
        let cut = self.app.fanout().fix_cut(hub, self.id, info.last_seq, since_seq);
        // History is everything below the cut; live delivery starts at it.
        let below = cut - 1;
        // A resume gets exactly the events it missed; a first join (or a resume too far
        // behind) the newest messages in their current state.
        let (history, has_more) = match since_seq {
            Some(seen) if seen >= below => (Vec::new(), false),
            Some(seen) if below - seen > u64::from(limits.max_history) => (
                HistoryItem::messages(&upstream.history_before(room, cut, limits.max_history).await?.messages),
                true,
            ),
            Some(seen) => {
                let missed = missed_events(upstream, room, seen, below).await?;
                let missed: Vec<_> = missed.into_iter().filter(|e| e.seq() < cut).collect();
                (HistoryItem::events(&missed), false)
            }
            None if below == 0 || limits.history_on_join == 0 => (Vec::new(), below > 0),
            None => {
                let page = upstream.history_before(room, cut, limits.history_on_join).await?;
                let has_more = page.messages.first().is_some_and(|m| m.seq > 1);
                (HistoryItem::messages(&page.messages), has_more)
            }
        };
        let last_seq = info.last_seq.max(below);
        // What `joined` shows counts as read.
        mark_read(&self.app, &self.principal.author.id, room, last_seq).await;
        let mut joined = ServerFrame::joined(room, last_seq, history, has_more);
        if let ServerFrame::Joined { presence, reads, .. } = &mut joined {
            *presence = presence::within("room", self.app.presence().of_room(room, self.app.fanout().open(room)))
                .await
                .flatten();
            *reads = self.read_markers(room).await;
        }
        presence::within("entry", self.app.presence().entered(&self.principal.author.id, room)).await;
        let joined = joined.to_bytes();
        self.app.fanout().activate(hub, self.id, joined);
        Ok(())
    }
}

impl Connection {
    /// Refuses what moderation forbids since the socket joined `room`: taken out of it (the
    /// socket leaves it here too), or muted.
    fn restricted(&mut self, room: &RoomName) -> Result<(), GatewayError> {
        let Some(restriction) = self.restrictions.get(room) else {
            return Ok(());
        };
        if let Some(reason) = restriction.removed {
            if self.joined.remove(room) {
                self.app.fanout().leave(room, self.id);
                self.app.people().left(self.id, room);
            }
            self.restrictions.joined(room, None);
            return Err(match reason {
                RemovedReason::Banned => AccessError::Banned.into(),
                RemovedReason::Kicked => GatewayError::new(
                    ErrorCode::NotJoined,
                    "you were removed from this room; join it again to take part",
                ),
            });
        }
        match restriction.muted_until_ms {
            Some(until_ms) if until_ms > now_ms() => Err(AccessError::Muted { until_ms }.into()),
            _ => Ok(()),
        }
    }

    /// How far the room's members have read, for a room small enough to show it person by
    /// person; `None` in a big one, or if it cannot be read (the receipts are extras).
    async fn read_markers(&self, room: &RoomName) -> Option<Vec<ReadMarker>> {
        if self.app.presence().is_big(room, self.app.fanout().open(room)) {
            return None;
        }
        let limit = self.app.settings().presence.big_room_members;
        match self.app.directory().read_markers(room, limit).await {
            Ok(markers) => Some(
                markers
                    .into_iter()
                    .map(|(user_id, seq)| ReadMarker { user_id, seq })
                    .collect(),
            ),
            Err(error) => {
                tracing::warn!(%room, %error, "cannot read the room's read markers");
                None
            }
        }
    }

    /// The client read `room` up to `seq` (it was on screen): the marker moves, and the
    /// room hears it if they send receipts. Each takes a token of the socket's send rate
    /// (a database write, like a send); past it the frame is dropped unanswered, and the
    /// next one, or leaving, or closing, carries the position.
    async fn read(&mut self, room: RoomName, seq: u64) {
        if !self.joined.contains(&room) {
            return self.error(&not_joined(), Some(room.as_str()));
        }
        if self.send_rate.try_take(Instant::now()) {
            mark_read(&self.app, &self.principal.author.id, &room, seq).await;
        }
    }
}

/// Every event with `seen < seq <= below`, paging as the message service's page size
/// requires: a resume must not come back short.
async fn missed_events(
    upstream: &crate::upstream::Upstream,
    room: &RoomName,
    seen: u64,
    below: u64,
) -> Result<Vec<TimelineEvent>, GatewayError> {
    let mut events = Vec::new();
    let mut after = seen;
    while after < below {
        let page = upstream.history_after(room, after, (below - after) as u32).await?;
        let Some(last) = page.messages.last() else {
            break;
        };
        after = last.seq();
        events.extend(page.messages);
    }
    Ok(events)
}

fn not_joined() -> GatewayError {
    GatewayError::new(ErrorCode::NotJoined, "join the room before sending to or leaving it")
}

/// Raises the user's read marker; a failure only costs an unread count, so it is logged.
async fn mark_read(app: &AppState, user: &UserId, room: &RoomName, seq: u64) {
    if let Err(error) = membership::mark_read(app, user, room, seq).await {
        tracing::debug!(%room, %error, "could not record what was read");
    }
}
