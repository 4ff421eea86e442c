//! Readying what a person sends before it goes upstream, the same way from the websocket
//! and the HTTP API.

use crate::actions::{mentions, uploads::require_own_upload};
use crate::error::GatewayError;
use crate::state::AppState;
use crate::upstream::Proposal;
use chat_domain::{Author, RoomName};

/// An image must be an upload of the sender's; a message's `@username`s become its
/// mentions. A change needs neither: the store decides it.
pub async fn prepare(
    app: &AppState,
    author: &Author,
    room: &RoomName,
    proposal: &mut Proposal,
) -> Result<(), GatewayError> {
    if let Proposal::Message { body, mentions, .. } = proposal {
        if let Some(id) = body.attachment {
            require_own_upload(app, id, &author.id).await?;
        }
        if body.text.as_str().contains('@') {
            *mentions = mentions::resolve(app, room, body.text.as_str()).await;
        }
    }
    Ok(())
}
