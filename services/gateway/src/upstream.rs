//! The gateway's client of the message services: one gRPC channel balanced over every
//! configured endpoint, answers converted to domain types, failures to [`UpstreamError`].

use crate::settings::UpstreamSettings;
use chat_common::telemetry::TRACE_TARGET;
use chat_domain::{Author, ChatMessage, ClientMsgId, ErrorCode, MessageKind, MessageText, RoomName};
use chat_proto::v1::chat_service_client::ChatServiceClient;
use chat_proto::v1::{self, read_history_request::Position};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::channel::Change;
use tonic::transport::{Channel, Endpoint};
use tracing::Instrument;

/// A failed call, with the code to show the client. The message is safe to show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct UpstreamError {
    pub code: ErrorCode,
    pub message: String,
}

impl From<tonic::Status> for UpstreamError {
    fn from(status: tonic::Status) -> Self {
        let code = chat_proto::error_code(&status);
        let message = match code {
            // Transport failures carry low-level text; clients get a stable sentence.
            ErrorCode::Unavailable => "message service unavailable, retry later".to_owned(),
            ErrorCode::Internal => "internal error".to_owned(),
            _ => status.message().to_owned(),
        };
        if matches!(code, ErrorCode::Unavailable | ErrorCode::Internal) {
            tracing::warn!(grpc_code = ?status.code(), status = %status.message(), "message service call failed");
        }
        Self { code, message }
    }
}

fn unavailable() -> UpstreamError {
    UpstreamError {
        code: ErrorCode::Unavailable,
        message: "message service unavailable, retry later".into(),
    }
}

fn corrupt(e: chat_proto::ConversionError) -> UpstreamError {
    tracing::error!(error = %e, "message service sent an invalid message");
    internal()
}

/// Rooms as the message service reports them: the store's own type, read over gRPC.
pub use chat_store::RoomInfo;

/// A page of history, oldest first, with the room's last seq when it was read.
#[derive(Debug, Clone)]
pub struct HistoryPage {
    pub messages: Vec<ChatMessage>,
    pub last_seq: u64,
}

type Client =
    ChatServiceClient<InterceptedService<Channel, fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status>>>;

/// Puts the current span's trace context into each call's metadata.
fn inject_trace_context(mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    chat_common::telemetry::inject_into_metadata(request.metadata_mut());
    Ok(request)
}

#[derive(Clone)]
pub struct Upstream {
    rpc: Rpc,
    /// The batcher's queue: every socket's sends travel in shared `SendMessages` calls.
    groups: mpsc::Sender<Group>,
}

/// The balanced channel and the per-call deadline: what every call needs.
#[derive(Clone)]
struct Rpc {
    client: Client,
    timeout: Duration,
}

/// One send of a socket's group, as [`Upstream::send_group`] takes it.
pub struct GroupSend<'a> {
    pub room: &'a RoomName,
    pub text: &'a MessageText,
    pub client_msg_id: &'a ClientMsgId,
    pub attachment: Option<i64>,
    /// The send's own trace, which the message service continues.
    pub traceparent: Option<String>,
}

/// What a send comes back as: the stored message, and whether it was stored before.
pub type SendOutcome = Result<(ChatMessage, bool), UpstreamError>;

/// A socket's sends, in order, and where their answers go.
struct Group {
    sends: Vec<v1::BatchedSend>,
    reply: oneshot::Sender<Vec<SendOutcome>>,
}

/// `SendMessages` calls in flight at once per gateway. While they are out, groups queue
/// and ride in the next call together: under load a call carries more sends instead of
/// more calls being made, so the cost of a call per send falls as load grows.
const SEND_CALLS_IN_FLIGHT: usize = 4;

/// Groups per call. With at most [`MAX_GROUP`] sends each, a call stays well under the
/// message service's limit of 1,000 sends.
const GROUPS_PER_CALL: usize = 32;

/// Most sends of one socket in one group.
pub const MAX_GROUP: usize = 16;

/// Groups waiting for a call. A socket whose group cannot queue waits, its own send queue
/// fills, and its client is told to wait for acks.
const GROUP_QUEUE: usize = 4096;

/// Transport-level failures are retried this many times: every call is idempotent (sends
/// through their `client_msg_id`), and a retry may reach another instance.
const RETRIES: usize = 2;

/// How often endpoint host names are resolved again, so that instances added behind one
/// name (a compose service with replicas, a Kubernetes headless service) are found.
const RESOLVE_EVERY: Duration = Duration::from_secs(10);

/// A configured endpoint, split so that each address its host resolves to becomes an
/// endpoint of its own.
struct Target {
    scheme: String,
    host_port: String,
}

impl Upstream {
    /// Builds a channel balanced over every address the configured endpoints resolve to,
    /// re-resolved every few seconds. Connects lazily: calls wait (up to the timeout) for a
    /// first endpoint, and a message service that is down is tried again on each call.
    pub fn new(settings: &UpstreamSettings) -> Result<Self, String> {
        let targets = settings
            .endpoints
            .iter()
            .map(|url| {
                let uri: http::Uri = url
                    .parse()
                    .map_err(|e| format!("invalid message_service endpoint `{url}`: {e}"))?;
                let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
                    return Err(format!("message_service endpoint `{url}` needs a scheme and a host"));
                };
                let port = authority.port_u16().unwrap_or(if scheme == "https" { 443 } else { 80 });
                Ok(Target {
                    scheme: scheme.to_owned(),
                    host_port: format!("{}:{port}", authority.host()),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (channel, changes) = Channel::balance_channel::<SocketAddr>(64);
        let connect_timeout = Duration::from_millis(settings.connect_timeout_ms);
        let timeout = Duration::from_millis(settings.timeout_ms);
        tokio::spawn(discover(targets, changes, connect_timeout, timeout));
        let rpc = Rpc {
            client: ChatServiceClient::with_interceptor(channel, inject_trace_context as fn(_) -> _),
            timeout,
        };
        let (groups, queue) = mpsc::channel(GROUP_QUEUE);
        tokio::spawn(batch_sends(rpc.clone(), queue));
        Ok(Self { rpc, groups })
    }

    async fn call<T, F, Fut>(&self, method: &'static str, f: F) -> Result<T, UpstreamError>
    where
        F: FnMut(Client) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.rpc.call(method, f).await
    }

    pub async fn enter_room(&self, room: &RoomName) -> Result<RoomInfo, UpstreamError> {
        let request = v1::EnterRoomRequest {
            room: room.as_str().to_owned(),
        };
        let response = self
            .call("enter_room", |mut c| {
                let request = request.clone();
                async move { c.enter_room(request).await }
            })
            .await?;
        room_info(response.room.unwrap_or_default())
    }

    /// One send in a call of its own (the HTTP API's path).
    pub async fn send(
        &self,
        room: &RoomName,
        author: &Author,
        text: &MessageText,
        client_msg_id: &ClientMsgId,
        attachment: Option<i64>,
    ) -> SendOutcome {
        let request = send_request(room, author, text, client_msg_id, attachment);
        let response = self
            .call("send_message", |mut c| {
                let request = request.clone();
                async move { c.send_message(request).await }
            })
            .await?;
        let message = response.message.ok_or_else(internal)?;
        Ok((message.try_into().map_err(corrupt)?, response.duplicate))
    }

    /// A socket's sends, committed in the order given, in a call shared with other
    /// sockets' sends. One outcome per send, in the same order.
    pub async fn send_group(
        &self,
        author: &Author,
        sends: impl IntoIterator<Item = GroupSend<'_>>,
    ) -> Vec<SendOutcome> {
        let sends: Vec<v1::BatchedSend> = sends
            .into_iter()
            .map(|send| v1::BatchedSend {
                send: Some(send_request(
                    send.room,
                    author,
                    send.text,
                    send.client_msg_id,
                    send.attachment,
                )),
                traceparent: send.traceparent.unwrap_or_default(),
            })
            .collect();
        let count = sends.len();
        if count == 0 {
            return Vec::new();
        }
        let (reply, answer) = oneshot::channel();
        if self.groups.send(Group { sends, reply }).await.is_err() {
            return vec![Err(unavailable()); count];
        }
        answer.await.unwrap_or_else(|_| vec![Err(unavailable()); count])
    }

    async fn history(
        &self,
        room: &RoomName,
        position: Option<Position>,
        limit: u32,
    ) -> Result<HistoryPage, UpstreamError> {
        let request = v1::ReadHistoryRequest {
            room: room.as_str().to_owned(),
            position,
            limit,
        };
        let response = self
            .call("read_history", |mut c| {
                let request = request.clone();
                async move { c.read_history(request).await }
            })
            .await?;
        Ok(HistoryPage {
            messages: response
                .messages
                .into_iter()
                .map(ChatMessage::try_from)
                .collect::<Result<_, _>>()
                .map_err(corrupt)?,
            last_seq: response.last_seq,
        })
    }

    /// Messages with seq > `after_seq`, oldest first.
    pub async fn history_after(
        &self,
        room: &RoomName,
        after_seq: u64,
        limit: u32,
    ) -> Result<HistoryPage, UpstreamError> {
        self.history(room, Some(Position::AfterSeq(after_seq)), limit).await
    }

    /// The newest messages with seq < `before_seq`, oldest first.
    pub async fn history_before(
        &self,
        room: &RoomName,
        before_seq: u64,
        limit: u32,
    ) -> Result<HistoryPage, UpstreamError> {
        self.history(room, Some(Position::BeforeSeq(before_seq)), limit).await
    }

    pub async fn list_rooms(
        &self,
        after: Option<&RoomName>,
        limit: u32,
    ) -> Result<(Vec<RoomInfo>, Option<String>), UpstreamError> {
        let request = v1::ListRoomsRequest {
            after: after.map(|r| r.as_str().to_owned()).unwrap_or_default(),
            limit,
        };
        let response = self
            .call("list_rooms", |mut c| {
                let request = request.clone();
                async move { c.list_rooms(request).await }
            })
            .await?;
        let rooms = response.rooms.into_iter().map(room_info).collect::<Result<_, _>>()?;
        Ok((rooms, Some(response.next_after).filter(|n| !n.is_empty())))
    }
}

impl Rpc {
    async fn call<T, F, Fut>(&self, method: &'static str, mut f: F) -> Result<T, UpstreamError>
    where
        F: FnMut(Client) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let mut attempt = 0;
        loop {
            // The deadline also covers waiting for a first endpoint to be discovered.
            let span = tracing::info_span!(target: TRACE_TARGET, "grpc client", rpc.method = method, attempt);
            let result = tokio::time::timeout(self.timeout, f(self.client.clone()).instrument(span))
                .await
                .unwrap_or_else(|_| Err(tonic::Status::unavailable("no message service answered in time")));
            match result {
                Ok(response) => return Ok(response.into_inner()),
                Err(status) if attempt < RETRIES && retryable(&status) => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(25 * attempt as u64)).await;
                }
                Err(status) => return Err(status.into()),
            }
        }
    }
}

/// The batcher: takes whatever groups are waiting, up to [`GROUPS_PER_CALL`], into one
/// `SendMessages` call, with at most [`SEND_CALLS_IN_FLIGHT`] calls out. A socket has at
/// most one group out at a time and a call keeps its sends' order, so each person's
/// messages keep theirs.
async fn batch_sends(rpc: Rpc, mut queue: mpsc::Receiver<Group>) {
    let in_flight = Arc::new(Semaphore::new(SEND_CALLS_IN_FLIGHT));
    let mut ready = Vec::with_capacity(GROUPS_PER_CALL);
    loop {
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        if queue.recv_many(&mut ready, GROUPS_PER_CALL).await == 0 {
            return; // the gateway is gone
        }
        let groups = std::mem::take(&mut ready);
        let rpc = rpc.clone();
        tokio::spawn(async move {
            send_groups(&rpc, groups).await;
            drop(permit);
        });
    }
}

async fn send_groups(rpc: &Rpc, groups: Vec<Group>) {
    let sizes: Vec<usize> = groups.iter().map(|g| g.sends.len()).collect();
    let mut replies = Vec::with_capacity(groups.len());
    let mut sends = Vec::with_capacity(sizes.iter().sum());
    for group in groups {
        sends.extend(group.sends);
        replies.push(group.reply);
    }
    let count = sends.len();
    let request = v1::SendMessagesRequest { sends };
    let answer = rpc
        .call("send_messages", |mut c| {
            let request = request.clone();
            async move { c.send_messages(request).await }
        })
        .await;
    let mut outcomes: Box<dyn Iterator<Item = SendOutcome> + Send> = match answer {
        Ok(response) if response.results.len() == count => Box::new(response.results.into_iter().map(send_outcome)),
        Ok(response) => {
            tracing::error!(
                sent = count,
                answered = response.results.len(),
                "message service answered a batch short"
            );
            Box::new(std::iter::repeat_with(|| Err(internal())))
        }
        Err(error) => Box::new(std::iter::repeat(Err(error))),
    };
    for (reply, size) in replies.into_iter().zip(sizes) {
        // A socket that closed meanwhile no longer waits; its sends stand regardless.
        let _ = reply.send(outcomes.by_ref().take(size).collect());
    }
}

fn send_outcome(result: v1::SendResult) -> SendOutcome {
    use v1::send_result::Result as Outcome;
    match result.result {
        Some(Outcome::Sent(sent)) => {
            let message = sent.message.ok_or_else(internal)?;
            Ok((message.try_into().map_err(corrupt)?, sent.duplicate))
        }
        Some(Outcome::Error(error)) => Err(UpstreamError {
            code: ErrorCode::from_wire(&error.code).unwrap_or(ErrorCode::Internal),
            message: error.message,
        }),
        None => Err(internal()),
    }
}

/// The answer when the message service misbehaved: nothing about it is safe to show.
pub fn internal() -> UpstreamError {
    UpstreamError {
        code: ErrorCode::Internal,
        message: "internal error".into(),
    }
}

fn send_request(
    room: &RoomName,
    author: &Author,
    text: &MessageText,
    client_msg_id: &ClientMsgId,
    attachment: Option<i64>,
) -> v1::SendMessageRequest {
    let kind = if attachment.is_some() {
        MessageKind::Image
    } else {
        MessageKind::Text
    };
    v1::SendMessageRequest {
        room: room.as_str().to_owned(),
        author: Some(author.into()),
        text: text.as_str().to_owned(),
        client_msg_id: client_msg_id.as_str().to_owned(),
        kind: chat_proto::kind_to_wire(kind) as i32,
        attachment_id: attachment,
    }
}

/// Keeps the channel's endpoints equal to what the targets resolve to. Ends when the
/// channel is dropped.
async fn discover(
    targets: Vec<Target>,
    changes: tokio::sync::mpsc::Sender<Change<SocketAddr, Endpoint>>,
    connect_timeout: Duration,
    timeout: Duration,
) {
    let mut current: HashSet<SocketAddr> = HashSet::new();
    let mut schemes: HashMap<SocketAddr, &str> = HashMap::new();
    while !changes.is_closed() {
        let mut found = HashSet::new();
        for target in &targets {
            match tokio::net::lookup_host(&target.host_port).await {
                Ok(addrs) => {
                    for addr in addrs {
                        schemes.insert(addr, &target.scheme);
                        found.insert(addr);
                    }
                }
                Err(error) => {
                    tracing::warn!(endpoint = %target.host_port, %error, "cannot resolve message service");
                    // Keep what this name resolved to before rather than drop live instances.
                    found.extend(
                        current
                            .iter()
                            .filter(|a| schemes.get(a) == Some(&target.scheme.as_str())),
                    );
                }
            }
        }
        for addr in current.difference(&found) {
            tracing::info!(%addr, "message service endpoint removed");
            let _ = changes.send(Change::Remove(*addr)).await;
        }
        for addr in found.difference(&current) {
            let uri = format!("{}://{addr}", schemes[addr]);
            match Endpoint::from_shared(uri) {
                Ok(endpoint) => {
                    let endpoint = endpoint
                        .connect_timeout(connect_timeout)
                        .timeout(timeout)
                        .tcp_nodelay(true)
                        .http2_keep_alive_interval(Duration::from_secs(20));
                    tracing::info!(%addr, "message service endpoint added");
                    let _ = changes.send(Change::Insert(*addr, endpoint)).await;
                }
                Err(error) => tracing::error!(%addr, %error, "invalid endpoint"),
            }
        }
        current = found;
        tokio::time::sleep(RESOLVE_EVERY).await;
    }
}

fn retryable(status: &tonic::Status) -> bool {
    // Only transport failures (the service's own answers carry our error code): a refused
    // connection, or one that broke mid-call. A call that may have acted is safe to repeat:
    // every call is a read, an idempotent room entry, or a send keyed by its client_msg_id.
    matches!(status.code(), tonic::Code::Unavailable | tonic::Code::Unknown)
        && status.metadata().get(chat_proto::ERROR_CODE_KEY).is_none()
}

fn room_info(room: v1::Room) -> Result<RoomInfo, UpstreamError> {
    Ok(RoomInfo {
        name: RoomName::parse(&room.name).map_err(|e| {
            corrupt(chat_proto::ConversionError {
                field: "room",
                reason: e.to_string(),
            })
        })?,
        last_seq: room.last_seq,
        created_at_ms: room.created_at_ms,
    })
}
