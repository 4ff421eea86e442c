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
    let mut mentioned = Vec::new();
    for username in mentioned_usernames(text) {
        match app.directory().member_by_username(room, &username).await {
            Ok(Some(member)) if !mentioned.contains(&member) => mentioned.push(member),
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%room, %error, "cannot resolve mentions; sending without them");
                return Vec::new();
            }
        }
    }
    mentioned
}
