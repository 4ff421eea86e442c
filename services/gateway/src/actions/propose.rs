//! Readying what a person sends before it goes upstream, the same way from the websocket
//! and the HTTP API.

use crate::actions::{access, mentions, uploads::require_own_upload};
use crate::auth::Principal;
use crate::error::GatewayError;
use crate::state::AppState;
use crate::upstream::Proposal;
use chat_domain::{Change, RoomName};

/// An image must be an upload of the sender's; the `@username`s of a message, or of an
/// edit's new text, become its mentions; a deletion by the room's moderators or owner may
/// take anyone's message. Whether a change may be made is the store's to decide, under the
/// room's lock.
pub async fn prepare(
    app: &AppState,
    principal: &Principal,
    room: &RoomName,
    proposal: &mut Proposal,
) -> Result<(), GatewayError> {
    let author = &principal.author;
    match proposal {
        Proposal::Message {
            body,
            mentions,
            attachment_size,
            ..
        } => {
            if let Some(id) = body.attachment {
                *attachment_size = require_own_upload(app, id, &author.id).await?;
            }
            *mentions = mentions::resolve(app, room, body.text.as_str()).await;
        }
        Proposal::Change {
            change: Change::Edit { text, mentions },
            ..
        } => *mentions = mentions::resolve(app, room, text).await,
        Proposal::Change {
            change: Change::Delete,
            admin,
            ..
        } if !*admin => {
            // One read per deletion, which is rare: who moderates changes as owners decide.
            *admin = access::standing(app, principal, room)
                .await?
                .is_some_and(|access| access.moderates());
        }
        Proposal::Change { .. } => {}
    }
    Ok(())
}
