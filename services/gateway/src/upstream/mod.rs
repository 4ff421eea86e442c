//! The gateway's client of the message services: a gRPC channel to every instance the
//! configured endpoints resolve to, calls about a room sent to the room's home instance
//! ([`endpoints`]), answers converted to domain types, failures to [`GatewayError`].

mod endpoints;

use crate::error::GatewayError;
use crate::fanout::History;
use crate::settings::UpstreamSettings;
use chat_common::telemetry::{MessageTrace, TRACE_TARGET};
use chat_domain::{
    Author, Change, ChatMessage, ClientMsgId, ErrorCode, ImageSize, MessageBody, RoomName, TimelineEvent, UploadId,
};
use chat_proto::v1::chat_service_client::ChatServiceClient;
use chat_proto::v1::{self, read_history_request::Position};
use endpoints::{Connect, Endpoints, Route, Target};
use prometheus_client::metrics::histogram::Histogram;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tracing::Instrument;

/// A failed call, with the code to show the client: the message service's own answers keep
/// theirs; transport failures get a stable sentence, and their cause is logged here.
impl From<tonic::Status> for GatewayError {
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
        Self::new(code, message)
    }
}

fn unavailable() -> GatewayError {
    GatewayError::new(ErrorCode::Unavailable, "message service unavailable, retry later")
}

fn corrupt(e: chat_proto::ConversionError) -> GatewayError {
    tracing::error!(error = %e, "message service sent an invalid message");
    GatewayError::internal()
}

/// Rooms as the message service reports them: the store's own type, read over gRPC.
pub use chat_store::RoomInfo;

/// A page of history, oldest first, with the room's last seq when it was read.
#[derive(Debug, Clone)]
pub struct HistoryPage<T> {
    /// Messages in their current state ([`Upstream::history_before`]), or every event
    /// ([`Upstream::history_after`]).
    pub messages: Vec<T>,
    pub last_seq: u64,
}

/// What a socket or the HTTP API asks to commit: a message, or a change to one.
#[derive(Debug, Clone)]
pub enum Proposal {
    Message {
        body: MessageBody,
        reply_to: Option<u64>,
        /// Resolved from the text by the gateway before the message goes upstream.
        mentions: Vec<Author>,
        /// The attachment's size, read by the gateway with the upload's owner.
        attachment_size: Option<ImageSize>,
    },
    Change {
        target_seq: u64,
        change: Change,
        /// From the session: an administrator may delete anyone's message.
        admin: bool,
    },
}

type Client =
    ChatServiceClient<InterceptedService<Channel, fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status>>>;

fn client(channel: Channel) -> Client {
    ChatServiceClient::with_interceptor(channel, inject_trace_context as fn(_) -> _)
}

tokio::task_local! {
    /// The `traceparent` of the call being made, which [`Rpc::call`] sets around it.
    static CALL_TRACEPARENT: Option<String>;
}

/// Puts the call's `traceparent` into its metadata: the message service continues the
/// trace, or leaves it out as the gateway did.
fn inject_trace_context(mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    let value = CALL_TRACEPARENT
        .try_with(|traceparent| {
            traceparent
                .as_deref()
                .and_then(|t| tonic::metadata::MetadataValue::try_from(t).ok())
        })
        .ok()
        .flatten();
    if let Some(value) = value {
        request.metadata_mut().insert("traceparent", value);
    }
    Ok(request)
}

#[derive(Clone)]
pub struct Upstream {
    rpc: Rpc,
    /// The batcher's queue: every socket's sends travel in shared `SendMessages` calls.
    groups: mpsc::Sender<Group>,
}

/// The message services and the per-call deadline: what every call needs.
#[derive(Clone)]
struct Rpc {
    endpoints: Endpoints,
    timeout: Duration,
    /// How long each `SendMessages` call takes (`sc_gateway_send_call_seconds`).
    send_calls: Histogram,
}

/// One send of a socket's group, as [`Upstream::send_group`] takes it.
pub struct GroupSend<'a> {
    pub room: &'a RoomName,
    pub proposal: &'a Proposal,
    pub client_msg_id: &'a ClientMsgId,
    /// The send's own trace, which the message service continues.
    pub traceparent: Option<String>,
}

/// What a send comes back as: the stored event, and whether it was stored before.
pub type SendOutcome = Result<(TimelineEvent, bool), GatewayError>;

/// A socket's sends, in order, and where their answers go.
struct Group {
    sends: Vec<v1::BatchedSend>,
    reply: oneshot::Sender<Vec<SendOutcome>>,
}

/// `SendMessages` calls in flight at once per gateway, a bound and not a pace: groups that
/// queue while the batcher is busy still ride one call together, and the message service's
/// group commit gathers calls into one transaction anyway. At 4, the calls out waited on
/// each other from 2,000 msg/s up, and a send waited for a call to come back before its
/// own could leave: frame → ack 6.6–8.5 ms at 2,000 msg/s against 4.7 at 64 (two
/// gateways, docs/benchmarks.md).
const SEND_CALLS_IN_FLIGHT: usize = 64;

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

impl Upstream {
    /// Connects to every address the configured endpoints resolve to, re-resolved every
    /// few seconds. Connects lazily: calls wait (up to the timeout) for a first endpoint,
    /// and a message service that is down is tried again after a moment.
    pub fn new(settings: &UpstreamSettings, send_calls: Histogram) -> Result<Self, String> {
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
        let timeout = Duration::from_millis(settings.timeout_ms);
        let endpoints = endpoints::spawn(
            targets,
            Connect {
                connect_timeout: Duration::from_millis(settings.connect_timeout_ms),
                timeout,
                client,
            },
        );
        let rpc = Rpc {
            endpoints,
            timeout,
            send_calls,
        };
        let (groups, queue) = mpsc::channel(GROUP_QUEUE);
        tokio::spawn(batch_sends(rpc.clone(), queue));
        Ok(Self { rpc, groups })
    }

    async fn call<T, F, Fut>(&self, method: &'static str, route: Route<'_>, f: F) -> Result<T, GatewayError>
    where
        F: FnMut(Client) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.rpc.call(method, route, f).await
    }

    /// Gets or creates the room; the `bool` says this call created it.
    pub async fn enter_room(&self, room: &RoomName) -> Result<(RoomInfo, bool), GatewayError> {
        let request = v1::EnterRoomRequest {
            room: room.as_str().to_owned(),
        };
        let response = self
            .call("enter_room", Route::Room(room.as_str()), |mut c| {
                let request = request.clone();
                async move { c.enter_room(request).await }
            })
            .await?;
        Ok((room_info(response.room.unwrap_or_default())?, response.created))
    }

    /// One send in a call of its own (the HTTP API's path).
    pub async fn send(
        &self,
        room: &RoomName,
        author: &Author,
        proposal: &Proposal,
        client_msg_id: &ClientMsgId,
    ) -> SendOutcome {
        let request = send_request(room, author, proposal, client_msg_id);
        let response = self
            .call("send_message", Route::Room(room.as_str()), |mut c| {
                let request = request.clone();
                async move { c.send_message(request).await }
            })
            .await?;
        let message = response.message.ok_or_else(GatewayError::internal)?;
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
                send: Some(send_request(send.room, author, send.proposal, send.client_msg_id)),
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

    async fn history<T: TryFrom<v1::ChatMessage, Error = chat_proto::ConversionError>>(
        &self,
        room: &RoomName,
        position: Option<Position>,
        limit: u32,
    ) -> Result<HistoryPage<T>, GatewayError> {
        let request = v1::ReadHistoryRequest {
            room: room.as_str().to_owned(),
            position,
            limit,
        };
        let response = self
            .call("read_history", Route::Room(room.as_str()), |mut c| {
                let request = request.clone();
                async move { c.read_history(request).await }
            })
            .await?;
        Ok(HistoryPage {
            messages: response
                .messages
                .into_iter()
                .map(T::try_from)
                .collect::<Result<_, _>>()
                .map_err(corrupt)?,
            last_seq: response.last_seq,
        })
    }

    /// Every event with seq > `after_seq`, oldest first.
    pub async fn history_after(
        &self,
        room: &RoomName,
        after_seq: u64,
        limit: u32,
    ) -> Result<HistoryPage<TimelineEvent>, GatewayError> {
        self.history(room, Some(Position::AfterSeq(after_seq)), limit).await
    }

    /// The newest messages with seq < `before_seq`, oldest first, in their current state.
    pub async fn history_before(
        &self,
        room: &RoomName,
        before_seq: u64,
        limit: u32,
    ) -> Result<HistoryPage<ChatMessage>, GatewayError> {
        self.history(room, Some(Position::BeforeSeq(before_seq)), limit).await
    }

    pub async fn list_rooms(
        &self,
        after: Option<&RoomName>,
        limit: u32,
    ) -> Result<(Vec<RoomInfo>, Option<String>), GatewayError> {
        let request = v1::ListRoomsRequest {
            after: after.map(|r| r.as_str().to_owned()).unwrap_or_default(),
            limit,
        };
        let response = self
            .call("list_rooms", Route::Any, |mut c| {
                let request = request.clone();
                async move { c.list_rooms(request).await }
            })
            .await?;
        let rooms = response.rooms.into_iter().map(room_info).collect::<Result<_, _>>()?;
        Ok((rooms, Some(response.next_after).filter(|n| !n.is_empty())))
    }
}

impl Rpc {
    async fn call<T, F, Fut>(&self, method: &'static str, route: Route<'_>, mut f: F) -> Result<T, GatewayError>
    where
        F: FnMut(Client) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        // The deadline covers each attempt, and waiting for a first endpoint to be found.
        if !self.endpoints.ready(self.timeout).await {
            return Err(unavailable());
        }
        let mut attempt = 0;
        loop {
            let Some(member) = self.endpoints.pick(route, attempt) else {
                return Err(unavailable());
            };
            // In the caller's trace if that is recorded, else a trace of its own.
            let trace = MessageTrace::within(&tracing::Span::current(), |parent| {
                tracing::info_span!(
                    target: TRACE_TARGET,
                    parent: parent.and_then(tracing::Span::id),
                    "grpc client",
                    rpc.method = method,
                    attempt,
                    peer = %member.addr,
                )
            });
            let call = f(member.client.clone()).instrument(trace.span().clone());
            let call = CALL_TRACEPARENT.scope(trace.traceparent(), call);
            let result = tokio::time::timeout(self.timeout, call)
                .await
                .unwrap_or_else(|_| Err(tonic::Status::unavailable("no message service answered in time")));
            match result {
                Ok(response) => return Ok(response.into_inner()),
                Err(status) if retryable(&status) => {
                    // The next attempt, and other calls for a moment, go elsewhere.
                    self.endpoints.mark_down(&member);
                    if attempt == RETRIES {
                        return Err(status.into());
                    }
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

/// Sends the groups' sends, each to its room's home service: one call per service, all at
/// once, and each group answered in its own order once every call is back. A group's sends
/// to one room ride the same call in order, so a person's messages keep their order.
async fn send_groups(rpc: &Rpc, groups: Vec<Group>) {
    let mut replies = Vec::with_capacity(groups.len());
    // Per destination: its sends, and where each one's outcome goes.
    let mut calls: Vec<(Option<std::net::SocketAddr>, Vec<v1::BatchedSend>, Vec<usize>)> = Vec::new();
    let mut count = 0;
    for group in groups {
        replies.push((group.reply, count..count + group.sends.len()));
        for send in group.sends {
            let room = send.send.as_ref().map_or("", |s| s.room.as_str());
            let home = rpc.endpoints.pick(Route::Room(room), 0).map(|m| m.addr);
            let at = calls.iter().position(|(a, ..)| *a == home).unwrap_or_else(|| {
                calls.push((home, Vec::new(), Vec::new()));
                calls.len() - 1
            });
            calls[at].1.push(send);
            calls[at].2.push(count);
            count += 1;
        }
    }
    let answers = futures::future::join_all(
        calls
            .into_iter()
            .map(|(_, sends, slots)| async move { (send_call(rpc, sends).await, slots) }),
    )
    .await;
    let mut outcomes: Vec<Option<SendOutcome>> = (0..count).map(|_| None).collect();
    for (answer, slots) in answers {
        for (outcome, slot) in answer.into_iter().zip(slots) {
            outcomes[slot] = Some(outcome);
        }
    }
    let mut outcomes = outcomes.into_iter();
    for (reply, range) in replies {
        let answer = outcomes
            .by_ref()
            .take(range.len())
            .map(|o| o.unwrap_or_else(|| Err(GatewayError::internal())))
            .collect();
        // A socket that closed meanwhile no longer waits; its sends stand regardless.
        let _ = reply.send(answer);
    }
}

/// One `SendMessages` call to the home of its sends' rooms: one outcome per send, in order.
async fn send_call(rpc: &Rpc, sends: Vec<v1::BatchedSend>) -> Vec<SendOutcome> {
    let count = sends.len();
    let room = sends
        .first()
        .and_then(|s| s.send.as_ref())
        .map(|s| s.room.clone())
        .unwrap_or_default();
    let request = v1::SendMessagesRequest { sends };
    let started = std::time::Instant::now();
    let answer = rpc
        .call("send_messages", Route::Room(&room), |mut c| {
            let request = request.clone();
            async move { c.send_messages(request).await }
        })
        .await;
    rpc.send_calls.observe(started.elapsed().as_secs_f64());
    match answer {
        Ok(response) if response.results.len() == count => response.results.into_iter().map(send_outcome).collect(),
        Ok(response) => {
            tracing::error!(
                sent = count,
                answered = response.results.len(),
                "message service answered a batch short"
            );
            vec![Err(GatewayError::internal()); count]
        }
        Err(error) => vec![Err(error); count],
    }
}

fn send_outcome(result: v1::SendResult) -> SendOutcome {
    use v1::send_result::Result as Outcome;
    match result.result {
        Some(Outcome::Sent(sent)) => {
            let message = sent.message.ok_or_else(GatewayError::internal)?;
            Ok((message.try_into().map_err(corrupt)?, sent.duplicate))
        }
        Some(Outcome::Error(error)) => Err(GatewayError::new(
            ErrorCode::from_wire(&error.code).unwrap_or(ErrorCode::Internal),
            error.message,
        )),
        None => Err(GatewayError::internal()),
    }
}

fn send_request(
    room: &RoomName,
    author: &Author,
    proposal: &Proposal,
    client_msg_id: &ClientMsgId,
) -> v1::SendMessageRequest {
    let request = v1::SendMessageRequest {
        room: room.as_str().to_owned(),
        author: Some(author.into()),
        client_msg_id: client_msg_id.as_str().to_owned(),
        ..Default::default()
    };
    match proposal {
        Proposal::Message {
            body,
            reply_to,
            mentions,
            attachment_size,
        } => v1::SendMessageRequest {
            text: body.text.as_str().to_owned(),
            kind: chat_proto::kind_to_wire(body.kind()) as i32,
            attachment_id: body.attachment.map(UploadId::get),
            attachment_size: attachment_size.map(Into::into),
            reply_to: *reply_to,
            mentions: mentions.iter().map(Into::into).collect(),
            ..request
        },
        Proposal::Change {
            target_seq,
            change,
            admin,
        } => v1::SendMessageRequest {
            text: change.body().to_owned(),
            kind: chat_proto::change_to_wire(change) as i32,
            mentions: match change {
                Change::Edit { mentions, .. } => mentions.iter().map(Into::into).collect(),
                _ => Vec::new(),
            },
            target_seq: *target_seq,
            admin: *admin,
            ..request
        },
    }
}

fn retryable(status: &tonic::Status) -> bool {
    // Only transport failures (the service's own answers carry our error code): a refused
    // connection, one that broke mid-call, or one the service shut with ENHANCE_YOUR_CALM.
    // A call that may have acted is safe to repeat: every call is a read, an idempotent
    // room entry, or a send keyed by its client_msg_id.
    matches!(
        status.code(),
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::ResourceExhausted
    ) && status.metadata().get(chat_proto::ERROR_CODE_KEY).is_none()
}

fn room_info(room: v1::Room) -> Result<RoomInfo, GatewayError> {
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

/// Gaps in a room's fan-out are filled from the message services' history.
#[async_trait::async_trait]
impl History for Upstream {
    async fn after(&self, room: &RoomName, after_seq: u64, limit: u32) -> Result<Vec<TimelineEvent>, GatewayError> {
        Ok(self.history_after(room, after_seq, limit).await?.messages)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_failures_are_retried_and_the_services_own_answers_are_not() {
        assert!(retryable(&tonic::Status::unavailable("connection refused")));
        assert!(retryable(&tonic::Status::unknown("transport error")));
        // An HTTP/2 GOAWAY with ENHANCE_YOUR_CALM, as tonic reports it.
        assert!(retryable(&tonic::Status::resource_exhausted(
            "h2 protocol error: http2 error"
        )));
        assert!(!retryable(&chat_proto::status(ErrorCode::Unavailable, "database down")));
        assert!(!retryable(&chat_proto::status(ErrorCode::RateLimited, "slow down")));
        assert!(!retryable(&tonic::Status::invalid_argument("bad")));
    }
}
