//! The gateway's one error type. Whatever fails, on whichever path (an HTTP handler, a
//! websocket frame, a call to the message services, the database, a session check), ends
//! as a [`GatewayError`]: a stable [`ErrorCode`] and a message safe to show. The HTTP
//! response and the websocket `error` frame are both made from it, so a failure reads the
//! same whichever way the client asked.

use crate::auth::AuthError;
use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chat_domain::protocol::{FrameError, ServerFrame};
use chat_domain::{ErrorCode, NameError};
use chat_store::StoreError;
use serde_json::json;

/// A failure with the code to show the client. The message is safe to show: causes that
/// are not (a database's own text, a transport error) are logged where they are turned
/// into one of these, and the client gets a stable sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct GatewayError {
    pub code: ErrorCode,
    pub message: String,
    /// Seconds to wait before trying again, sent as `Retry-After` (HTTP only).
    pub retry_after_secs: Option<u64>,
}

impl GatewayError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    /// The same failure, telling the client how long to wait.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("no such {what}"))
    }

    /// The answer when something misbehaved inside: nothing about it is safe to show.
    pub fn internal() -> Self {
        Self::new(ErrorCode::Internal, "internal error")
    }

    /// The websocket `error` frame for this failure; `reference` names the request it
    /// answers (a send's `client_msg_id`, a join's room).
    pub fn to_frame(&self, reference: Option<&str>) -> ServerFrame {
        ServerFrame::error(self.code, &self.message, reference)
    }
}

/// A name or text that failed validation already carries its code.
impl From<NameError> for GatewayError {
    fn from(e: NameError) -> Self {
        Self::new(e.code(), e.to_string())
    }
}

impl From<FrameError> for GatewayError {
    fn from(e: FrameError) -> Self {
        Self::new(e.code, e.message)
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (
            status,
            Json(json!({"error": {"code": self.code, "message": self.message}})),
        )
            .into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<AuthError> for GatewayError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Disabled => Self::new(ErrorCode::AccountDisabled, e.to_string()),
            AuthError::Unavailable(store) => store.into(),
            other => Self::new(ErrorCode::Unauthorized, other.to_string()),
        }
    }
}

impl From<StoreError> for GatewayError {
    fn from(e: StoreError) -> Self {
        if e.is_unavailable() {
            Self::new(ErrorCode::Unavailable, "the database is unavailable; retry later")
        } else if matches!(e, StoreError::InvalidText(_)) {
            Self::new(
                ErrorCode::InvalidArgument,
                "text parameters must not contain NUL characters",
            )
        } else {
            tracing::error!(error = %e, "database error");
            Self::internal()
        }
    }
}

impl From<JsonRejection> for GatewayError {
    fn from(e: JsonRejection) -> Self {
        // A body past the JSON body limit was never parsed: it is too large, not malformed.
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return Self::new(ErrorCode::PayloadTooLarge, "the request body is too large");
        }
        Self::new(ErrorCode::InvalidJson, e.body_text())
    }
}

impl From<QueryRejection> for GatewayError {
    fn from(e: QueryRejection) -> Self {
        Self::new(ErrorCode::InvalidArgument, e.body_text())
    }
}

impl From<PathRejection> for GatewayError {
    fn from(e: PathRejection) -> Self {
        Self::new(ErrorCode::InvalidArgument, e.body_text())
    }
}
