//! The `chat.v1.ChatService` handlers: parse each request into domain types once, then hand
//! it to the store or the committer.

use crate::committer::{CommitError, CommitHandle};
use crate::settings::HistorySettings;
use chat_common::telemetry::{TRACE_TARGET, set_parent_from_metadata};
use chat_domain::{Author, ClientMsgId, ErrorCode, MessageKind, MessageText, RoomName};
use chat_proto::v1::chat_service_server::ChatService;
use chat_proto::v1::{self, read_history_request::Position};
use chat_proto::{kind_from_wire, status};
use chat_store::{NewMessage, Store, StoreError};
use std::sync::Arc;
use tonic::{Request, Response, Status};
use tracing::Instrument;

pub struct ChatGrpc {
    store: Arc<dyn Store>,
    commits: CommitHandle,
    history: HistorySettings,
}

impl ChatGrpc {
    pub fn new(store: Arc<dyn Store>, commits: CommitHandle, history: HistorySettings) -> Self {
        Self {
            store,
            commits,
            history,
        }
    }

    /// Commits one send; runs inside the `grpc server` span.
    async fn send(&self, request: v1::SendMessageRequest) -> Result<Response<v1::SendMessageResponse>, Status> {
        let author: Author = request
            .author
            .ok_or_else(|| status(ErrorCode::MissingField, "missing author"))?
            .try_into()
            .map_err(|e: chat_proto::ConversionError| status(ErrorCode::InvalidName, e.to_string()))?;
        let kind = kind_from_wire(request.kind).map_err(|e| status(ErrorCode::InvalidArgument, e.to_string()))?;
        // An image is an upload with an optional caption; text is text. Anything else is a
        // client of this service that got the contract wrong.
        let text = match (kind, request.attachment_id) {
            (MessageKind::Text, None) => MessageText::parse(request.text),
            (MessageKind::Image, Some(id)) if id > 0 => MessageText::caption(request.text),
            _ => {
                return Err(status(
                    ErrorCode::InvalidArgument,
                    "an image message needs an attachment_id, and only an image message may have one",
                ));
            }
        }
        .map_err(|e| status(ErrorCode::InvalidText, e.0))?;
        let message = NewMessage {
            room: room(&request.room)?,
            author,
            text,
            client_msg_id: ClientMsgId::parse(&request.client_msg_id)
                .map_err(|e| status(ErrorCode::InvalidClientMsgId, e.0))?,
            kind,
            attachment: request.attachment_id,
        };
        match self.commits.commit(message).await {
            Ok(committed) => {
                tracing::debug!(room = %committed.message.room, seq = committed.message.seq, duplicate = committed.duplicate, "message committed");
                Ok(Response::new(v1::SendMessageResponse {
                    message: Some((&committed.message).into()),
                    duplicate: committed.duplicate,
                }))
            }
            Err(CommitError::RoomNotFound) => Err(status(ErrorCode::NotFound, "room does not exist")),
            Err(CommitError::Internal) => Err(status(ErrorCode::Internal, "internal error")),
            Err(e @ (CommitError::Overloaded | CommitError::Unavailable | CommitError::ShuttingDown)) => {
                Err(status(ErrorCode::Unavailable, format!("{e}, retry later")))
            }
        }
    }

    fn limit(&self, requested: u32) -> u32 {
        match requested {
            0 => self.history.default_limit,
            n => n.min(self.history.max_limit),
        }
    }
}

fn room(name: &str) -> Result<RoomName, Status> {
    RoomName::parse(name).map_err(|e| status(ErrorCode::InvalidRoom, e.0))
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
        let span = tracing::info_span!(target: TRACE_TARGET, "grpc server", rpc.method = "SendMessage");
        set_parent_from_metadata(&span, request.metadata());
        self.send(request.into_inner()).instrument(span).await
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
        let messages = match request.position {
            Some(Position::AfterSeq(after)) => self.store.history_after(&name, after, limit).await,
            Some(Position::BeforeSeq(before)) => self.store.history_before(&name, before, limit).await,
            None => self.store.history_before(&name, info.last_seq + 1, limit).await,
        }
        .map_err(store_status)?;
        Ok(Response::new(v1::ReadHistoryResponse {
            messages: messages.iter().map(Into::into).collect(),
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
