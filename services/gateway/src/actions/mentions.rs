//! Who a message mentions: each `@username` in its text that names a registered member of
//! the room, resolved when it is sent so the message carries the list (and everyone sees
//! the same list, whoever joins or leaves later).

use crate::state::AppState;
use chat_domain::timeline::mentioned_usernames;
use chat_domain::{Author, RoomName};

/// The members `text` mentions, in the order first named. A name that is no member is
/// plain text; if the directory cannot be read the message goes out without mentions
/// (logged) rather than not at all.
pub async fn resolve(app: &AppState, room: &RoomName, text: &str) -> Vec<Author> {
    let usernames = mentioned_usernames(text);
    if usernames.is_empty() {
        return Vec::new();
    }
    match app.directory().members_by_username(room, &usernames).await {
        Ok(members) => members,
        Err(error) => {
            tracing::warn!(%room, %error, "cannot resolve mentions; sending without them");
            Vec::new()
        }
    }
}
