//! Who may attach an upload: only the person who uploaded it, whichever way they send.

use crate::error::GatewayError;
use crate::state::AppState;
use chat_domain::{ErrorCode, ImageSize, UploadId, UserId};

/// Checks that `id` is an upload of `user`'s: nobody attaches someone else's file. Returns
/// its size (read in the same query), which the message carries to its receivers.
pub async fn require_own_upload(
    app: &AppState,
    id: UploadId,
    user: &UserId,
) -> Result<Option<ImageSize>, GatewayError> {
    match app.blobs().info(id).await? {
        Some(info) if info.owner_id == *user => Ok(info.size),
        _ => Err(GatewayError::new(
            ErrorCode::InvalidArgument,
            "attachment is not an upload of yours",
        )),
    }
}
