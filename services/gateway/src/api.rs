//! The JSON HTTP API under `/api/v1`. Errors are `{"error": {"code", "message"}}` with the
//! status that fits the code; `docs/protocol.md` (section 10) documents every endpoint.

use crate::app::AppState;
use crate::auth::{AuthError, Principal};
use crate::upstream::{RoomInfo, UpstreamError};
use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chat_domain::message::format_millis;
use chat_domain::{ChatMessage, ClientMsgId, DisplayName, ErrorCode, MessageKind, MessageText, RoomName};
use serde::Deserialize;
use serde_json::{Value, json};

/// An API failure: a stable code and a message safe to show.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (
            status,
            Json(json!({"error": {"code": self.code, "message": self.message}})),
        )
            .into_response()
    }
}

impl From<UpstreamError> for ApiError {
    fn from(e: UpstreamError) -> Self {
        Self::new(e.code, e.message)
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        Self::new(ErrorCode::Unauthorized, e.to_string())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        Self::new(ErrorCode::InvalidJson, e.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        Self::new(ErrorCode::InvalidArgument, e.body_text())
    }
}

type ApiResult = Result<Response, ApiError>;

fn authenticate(app: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    Ok(app.sessions().authenticate(headers)?)
}

fn room_param(room: &str) -> Result<RoomName, ApiError> {
    RoomName::parse(room).map_err(|e| ApiError::new(ErrorCode::InvalidRoom, e.0))
}

fn room_json(room: &RoomInfo) -> Value {
    json!({"name": room.name, "last_seq": room.last_seq, "created_at": format_millis(room.created_at_ms)})
}

fn messages_json(messages: &[ChatMessage]) -> Value {
    Value::Array(
        messages
            .iter()
            .map(|m| serde_json::from_slice(&m.to_frame()).expect("message frames are JSON"))
            .collect(),
    )
}

#[derive(Deserialize)]
pub struct CreateSession {
    name: String,
}

/// `POST /api/v1/sessions {"name"}`: a guest session. The token comes back in the body and
/// as an HttpOnly cookie.
pub async fn create_session(
    State(app): State<AppState>,
    body: Result<Json<CreateSession>, JsonRejection>,
) -> ApiResult {
    let Json(body) = body?;
    let name = DisplayName::parse(&body.name).map_err(|e| ApiError::new(ErrorCode::InvalidName, e.0))?;
    let (token, principal) = app.sessions().create_guest(name);
    let cookie = app.sessions().cookie_header(&token, app.settings().auth.cookie_secure);
    let mut response = (
        StatusCode::CREATED,
        Json(json!({
            "token": token,
            "user": principal.author,
            "expires_at": format_millis(principal.expires_at as i64 * 1000),
        })),
    )
        .into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|_| ApiError::new(ErrorCode::Internal, "internal error"))?,
    );
    Ok(response)
}

/// `GET /api/v1/session`: who the caller is.
pub async fn current_session(State(app): State<AppState>, headers: HeaderMap) -> ApiResult {
    let principal = authenticate(&app, &headers)?;
    Ok(Json(json!({
        "user": principal.author,
        "expires_at": format_millis(principal.expires_at as i64 * 1000),
    }))
    .into_response())
}

#[derive(Deserialize)]
pub struct Page {
    after: Option<String>,
    limit: Option<u32>,
}

/// `GET /api/v1/rooms?after=&limit=`: rooms in name order, paged by cursor.
pub async fn list_rooms(
    State(app): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<Page>, QueryRejection>,
) -> ApiResult {
    authenticate(&app, &headers)?;
    let Query(page) = query?;
    let after = page.after.as_deref().map(room_param).transpose()?;
    let (rooms, next_after) = app
        .upstream()
        .list_rooms(after.as_ref(), page.limit.unwrap_or(0))
        .await?;
    Ok(Json(json!({
        "rooms": rooms.iter().map(room_json).collect::<Vec<_>>(),
        "next_after": next_after,
    }))
    .into_response())
}

#[derive(Deserialize)]
pub struct EnterRoom {
    name: String,
}

/// `POST /api/v1/rooms {"name"}`: get or create a room.
pub async fn enter_room(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<EnterRoom>, JsonRejection>,
) -> ApiResult {
    authenticate(&app, &headers)?;
    let Json(body) = body?;
    let room = app.upstream().enter_room(&room_param(&body.name)?).await?;
    Ok(Json(json!({"room": room_json(&room)})).into_response())
}

#[derive(Deserialize)]
pub struct HistoryQuery {
    after_seq: Option<u64>,
    before_seq: Option<u64>,
    limit: Option<u32>,
}

/// `GET /api/v1/rooms/{room}/messages?after_seq=|before_seq=&limit=`: a page of history,
/// oldest first. Without a position, the newest page.
pub async fn history(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(room): Path<String>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> ApiResult {
    authenticate(&app, &headers)?;
    let Query(query) = query?;
    let room = room_param(&room)?;
    let limit = query.limit.unwrap_or(0);
    let page = match (query.after_seq, query.before_seq) {
        (Some(_), Some(_)) => {
            return Err(ApiError::new(
                ErrorCode::InvalidArgument,
                "give after_seq or before_seq, not both",
            ));
        }
        (Some(after), None) => app.upstream().history_after(&room, after, limit).await?,
        (None, Some(before)) => app.upstream().history_before(&room, before, limit).await?,
        (None, None) => app.upstream().history_before(&room, u64::MAX, limit).await?,
    };
    Ok(
        Json(json!({"room": room, "last_seq": page.last_seq, "messages": messages_json(&page.messages)}))
            .into_response(),
    )
}

#[derive(Deserialize)]
pub struct Publish {
    text: String,
    client_msg_id: String,
}

/// `POST /api/v1/rooms/{room}/messages {"text", "client_msg_id"}`: publish as the session's
/// user, exactly like a websocket `send`. The room must exist.
pub async fn publish(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(room): Path<String>,
    body: Result<Json<Publish>, JsonRejection>,
) -> ApiResult {
    let principal = authenticate(&app, &headers)?;
    let Json(body) = body?;
    let room = room_param(&room)?;
    let text = MessageText::parse(body.text).map_err(|e| ApiError::new(ErrorCode::InvalidText, e.0))?;
    let client_msg_id =
        ClientMsgId::parse(&body.client_msg_id).map_err(|e| ApiError::new(ErrorCode::InvalidClientMsgId, e.0))?;
    let (message, duplicate) = app
        .upstream()
        .send(&room, &principal.author, &text, &client_msg_id, MessageKind::Text)
        .await?;
    let status = if duplicate { StatusCode::OK } else { StatusCode::CREATED };
    let ack: Value =
        serde_json::from_slice(&chat_domain::protocol::ack_frame(&message, duplicate)).expect("ack frames are JSON");
    Ok((status, Json(ack)).into_response())
}

/// Any other path under `/api`: a JSON 404, not the static site's.
pub async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such endpoint")
}
