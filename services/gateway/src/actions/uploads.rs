//! Who may attach an upload: only the person who uploaded it, whichever way they send.

use crate::error::GatewayError;
use crate::state::AppState;
use chat_domain::{ErrorCode, UploadId, UserId};

/// Checks that `id` is an upload of `user`'s: nobody attaches someone else's file.
pub async fn require_own_upload(app: &AppState, id: UploadId, user: &UserId) -> Result<(), GatewayError> {
    match app.blobs().owner(id).await? {
        Some(owner) if owner == *user => Ok(()),
        _ => Err(GatewayError::new(
            ErrorCode::InvalidArgument,
            "attachment is not an upload of yours",
        )),
    }
}
