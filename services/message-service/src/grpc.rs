//! The `chat.v1.ChatService` handlers: parse each request into domain types once, then hand
//! it to the store or the committer.

use crate::committer::{CommitError, CommitHandle, Committed};
use crate::settings::HistorySettings;
use chat_common::telemetry::{MessageTrace, TRACE_TARGET};
use chat_domain::{
    Author, ClientMsgId, ErrorCode, ImageSize, MessageBody, MessageKind, MessageText, NameError, RoomName, UploadId,
};
use chat_proto::v1::chat_service_server::ChatService;
use chat_proto::v1::{self, read_history_request::Position};
use chat_proto::{WireKind, kind_from_wire, status};
use chat_store::{NewChange, NewEvent, NewMessage, Store, StoreError};
use prometheus_client::metrics::histogram::Histogram;
use std::sync::Arc;
use tonic::{Request, Response, Status};
use tracing::Instrument;

pub struct ChatGrpc {
    store: Arc<dyn Store>,
    commits: CommitHandle,
    history: HistorySettings,
    /// How long each `SendMessages` call takes here (`sc_message_service_send_seconds`).
    send_seconds: Histogram,
}

impl ChatGrpc {
    pub fn new(
        store: Arc<dyn Store>,
        commits: CommitHandle,
        history: HistorySettings,
        send_seconds: Histogram,
    ) -> Self {
        Self {
            store,
            commits,
            history,
            send_seconds,
        }
    }

    /// Commits one send in its trace; runs inside the `grpc server` span.
    async fn send(
        &self,
        request: v1::SendMessageRequest,
        trace: MessageTrace,
    ) -> Result<Response<v1::SendMessageResponse>, Status> {
        let event = new_event(request)?;
        sent(self.commits.commit(event, trace).await).map(Response::new)
    }

    /// Commits a batch. Every valid send is queued for the committer first, in the
    /// batch's order, and only then are the answers awaited: the sends share group commits
    /// and keep their order. Each send runs in a `grpc server` span of its own trace.
    async fn send_batch(&self, request: v1::SendMessagesRequest) -> Result<v1::SendMessagesResponse, Status> {
        if request.sends.len() > MAX_BATCH {
            return Err(status(
                ErrorCode::InvalidArgument,
                format!("at most {MAX_BATCH} sends per batch"),
            ));
        }
        let mut pending = Vec::with_capacity(request.sends.len());
        for item in request.sends {
            let incoming = Some(item.traceparent).filter(|t| !t.is_empty());
            let trace = MessageTrace::continue_or_start(
                incoming,
                || tracing::info_span!(target: TRACE_TARGET, parent: None, "grpc server", rpc.method = "SendMessages"),
            );
            let span = trace.span().clone();
            let submitted = item
                .send
                .ok_or_else(|| status(ErrorCode::MissingField, "missing send"))
                .and_then(new_event)
                .and_then(|event| self.commits.submit(event, trace).map_err(commit_status));
            pending.push((submitted, span));
        }
        let mut results = Vec::with_capacity(pending.len());
        for (submitted, span) in pending {
            let result = match submitted {
                Ok(answer) => {
                    let answer = answer.await;
                    span.in_scope(|| sent(answer))
                }
                Err(status) => Err(status),
            };
            results.push(send_result(result));
        }
        Ok(v1::SendMessagesResponse { results })
    }

    fn limit(&self, requested: u32) -> u32 {
        match requested {
            0 => self.history.default_limit,
            n => n.min(self.history.max_limit),
        }
    }
}

/// Most sends one `SendMessages` call may carry; gateways send far fewer.
const MAX_BATCH: usize = 1000;

/// A send as the store takes it, validated once here.
fn new_event(request: v1::SendMessageRequest) -> Result<NewEvent, Status> {
    let author: Author = request
        .author
        .clone()
        .ok_or_else(|| status(ErrorCode::MissingField, "missing author"))?
        .try_into()
        .map_err(|e: chat_proto::ConversionError| status(ErrorCode::InvalidName, e.to_string()))?;
    let kind = match kind_from_wire(request.kind, &request.text, &request.mentions)
        .map_err(|e| status(ErrorCode::InvalidArgument, e.to_string()))?
    {
        WireKind::Message(kind) => kind,
        // Room events are committed by the gateway's directory, with the decision they
        // need; a send cannot carry one.
        WireKind::Room => {
            return Err(status(
                ErrorCode::InvalidArgument,
                "a room event is not something to send",
            ));
        }
        WireKind::Change(change) => {
            let mut change = change.map_err(name_status)?;
            if let chat_domain::Change::Edit { text, .. } = &mut change {
                *text = MessageText::parse(std::mem::take(text))
                    .map_err(name_status)?
                    .into_string();
            }
            if request.target_seq == 0 {
                return Err(status(
                    ErrorCode::MissingField,
                    "a change needs the target_seq it changes",
                ));
            }
            return Ok(NewEvent::Change(NewChange {
                room: room(&request.room)?,
                author,
                client_msg_id: ClientMsgId::parse(&request.client_msg_id).map_err(name_status)?,
                target_seq: request.target_seq,
                change,
                admin: request.admin,
            }));
        }
    };
    // The kind must say what the body is. Anything else is a client of this service that
    // got the contract wrong.
    if (kind == MessageKind::Image) != request.attachment_id.is_some() {
        return Err(status(
            ErrorCode::InvalidArgument,
            "an image message needs an attachment_id, and only an image message may have one",
        ));
    }
    let attachment = request
        .attachment_id
        .map(UploadId::new)
        .transpose()
        .map_err(name_status)?;
    let body = MessageBody::new(Some(request.text), attachment).map_err(name_status)?;
    // Sent only with an attachment, and sane when sent.
    let attachment_size = match (body.attachment, request.attachment_size) {
        (Some(_), Some(size)) => {
            Some(ImageSize::try_from(size).map_err(|e| status(ErrorCode::InvalidArgument, e.to_string()))?)
        }
        (None, Some(_)) => {
            return Err(status(
                ErrorCode::InvalidArgument,
                "attachment_size without an attachment",
            ));
        }
        (_, None) => None,
    };
    let mentions = request
        .mentions
        .into_iter()
        .map(Author::try_from)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| status(ErrorCode::InvalidName, e.to_string()))?;
    Ok(NewEvent::Message(NewMessage {
        room: room(&request.room)?,
        author,
        kind,
        text: body.text,
        client_msg_id: ClientMsgId::parse(&request.client_msg_id).map_err(name_status)?,
        attachment: body.attachment,
        attachment_size,
        reply_to: request.reply_to,
        mentions,
    }))
}

/// A value that broke its rules, refused with the code its type gives.
fn name_status(e: NameError) -> Status {
    status(e.code(), e.message())
}

/// The answer to a send once the committer has decided it.
fn sent(result: Result<Committed, CommitError>) -> Result<v1::SendMessageResponse, Status> {
    let committed = result.map_err(commit_status)?;
    tracing::debug!(room = %committed.event.room(), seq = committed.event.seq(), duplicate = committed.duplicate, "event committed");
    Ok(v1::SendMessageResponse {
        message: Some((&committed.event).into()),
        duplicate: committed.duplicate,
    })
}

fn commit_status(error: CommitError) -> Status {
    match error {
        CommitError::RoomNotFound => status(ErrorCode::NotFound, "room does not exist"),
        CommitError::Refused(refusal) => status(refusal.code(), refusal.to_string()),
        CommitError::Internal => status(ErrorCode::Internal, "internal error"),
        e @ (CommitError::Overloaded | CommitError::Unavailable | CommitError::ShuttingDown) => {
            status(ErrorCode::Unavailable, format!("{e}, retry later"))
        }
    }
}

/// One send's place in a batch answer: its message, or its error with our code.
fn send_result(result: Result<v1::SendMessageResponse, Status>) -> v1::SendResult {
    use v1::send_result::Result as Outcome;
    let outcome = match result {
        Ok(sent) => Outcome::Sent(sent),
        Err(status) => Outcome::Error(v1::SendError {
            code: chat_proto::error_code(&status).as_str().to_owned(),
            message: status.message().to_owned(),
        }),
    };
    v1::SendResult { result: Some(outcome) }
}

fn room(name: &str) -> Result<RoomName, Status> {
    RoomName::parse(name).map_err(name_status)
}

/// Logs the cause once, here, and gives the caller only the code.
fn store_status(error: StoreError) -> Status {
    if error.is_unavailable() {
        tracing::warn!(%error, "database unavailable");
        status(ErrorCode::Unavailable, "database unavailable, retry later")
    } else {
        tracing::error!(error = ?error, "store error");
        status(ErrorCode::Internal, "internal error")
    }
}

fn room_info(info: chat_store::RoomInfo) -> v1::Room {
    v1::Room {
        name: info.name.into_string(),
        last_seq: info.last_seq,
        created_at_ms: info.created_at_ms,
    }
}

#[tonic::async_trait]
impl ChatService for ChatGrpc {
    async fn enter_room(
        &self,
        request: Request<v1::EnterRoomRequest>,
    ) -> Result<Response<v1::EnterRoomResponse>, Status> {
        let name = room(&request.get_ref().room)?;
        let (info, created) = self.store.enter_room(&name).await.map_err(store_status)?;
        if created {
            tracing::info!(room = %name, "room created");
        }
        Ok(Response::new(v1::EnterRoomResponse {
            room: Some(room_info(info)),
            created,
        }))
    }

    async fn send_message(
        &self,
        request: Request<v1::SendMessageRequest>,
    ) -> Result<Response<v1::SendMessageResponse>, Status> {
        let incoming = request.metadata().get("traceparent").and_then(|t| t.to_str().ok());
        let trace = MessageTrace::continue_or_start(
            incoming.map(str::to_owned),
            || tracing::info_span!(target: TRACE_TARGET, parent: None, "grpc server", rpc.method = "SendMessage"),
        );
        let span = trace.span().clone();
        self.send(request.into_inner(), trace).instrument(span).await
    }

    async fn send_messages(
        &self,
        request: Request<v1::SendMessagesRequest>,
    ) -> Result<Response<v1::SendMessagesResponse>, Status> {
        let started = std::time::Instant::now();
        let answer = self.send_batch(request.into_inner()).await;
        self.send_seconds.observe(started.elapsed().as_secs_f64());
        answer.map(Response::new)
    }

    async fn read_history(
        &self,
        request: Request<v1::ReadHistoryRequest>,
    ) -> Result<Response<v1::ReadHistoryResponse>, Status> {
        let request = request.into_inner();
        let name = room(&request.room)?;
        let limit = self.limit(request.limit);
        let info = self
            .store
            .room(&name)
            .await
            .map_err(store_status)?
            .ok_or_else(|| status(ErrorCode::NotFound, "room does not exist"))?;
        let page = |messages: Vec<chat_domain::ChatMessage>| messages.iter().map(Into::into).collect();
        let messages = match request.position {
            Some(Position::AfterSeq(after)) => self
                .store
                .history_after(&name, after, limit)
                .await
                .map(|events| events.iter().map(Into::into).collect()),
            Some(Position::BeforeSeq(before)) => self.store.history_before(&name, before, limit).await.map(page),
            None => self
                .store
                .history_before(&name, info.last_seq + 1, limit)
                .await
                .map(page),
        }
        .map_err(store_status)?;
        Ok(Response::new(v1::ReadHistoryResponse {
            messages,
            last_seq: info.last_seq,
        }))
    }

    async fn list_rooms(
        &self,
        request: Request<v1::ListRoomsRequest>,
    ) -> Result<Response<v1::ListRoomsResponse>, Status> {
        let request = request.into_inner();
        let after = match request.after.as_str() {
            "" => None,
            name => Some(room(name)?),
        };
        let limit = self.limit(request.limit);
        let rooms = self
            .store
            .list_rooms(after.as_ref(), limit)
            .await
            .map_err(store_status)?;
        let next_after = if rooms.len() == limit as usize {
            rooms.last().map(|r| r.name.as_str().to_owned()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(v1::ListRoomsResponse {
            rooms: rooms.into_iter().map(room_info).collect(),
            next_after,
        }))
    }
}
