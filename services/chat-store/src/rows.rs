//! Rows as both backends return them, and their one conversion into domain values.
//!
//! Both backends select the same columns under the same names, so one `FromRow` struct per
//! table serves both, and a row that breaks a domain rule is reported as
//! [`StoreError::Corrupt`] in one place rather than trusted.

use crate::error::StoreError;
use crate::store::{NewChange, NewEvent, RoomInfo};
use chat_domain::{
    Author, Change, ChangeEvent, ChatMessage, ClientMsgId, DisplayName, Emoji, ImageSize, MessageId, MessageKind,
    RoomName, TimelineEvent, UploadId, UserId,
};
use chat_domain::{Reaction, RoomAction, RoomEvent};

/// The stored kind of a room event (its body is the [`RoomAction`] as JSON).
pub(crate) const ROOM_EVENT_KIND: &str = "room";

/// The columns of [`RoomRow`], for `SELECT` lists and `RETURNING` clauses. Macros rather
/// than consts so that queries are assembled with `concat!` at compile time.
macro_rules! room_columns {
    () => {
        "id, name, last_seq, created_at_ms"
    };
}
pub(crate) use room_columns;

/// The columns of [`MessageRow`], qualified with the table alias `m`.
macro_rules! message_columns {
    () => {
        "m.id, m.room_id, m.seq, m.author_id, m.author_name, m.body, m.kind, m.client_msg_id, m.created_at_ms, \
         m.attachment_id, m.deleted_at_ms, m.target_seq, m.reply_to, m.mentions, m.edited_at_ms, \
         (SELECT u.width FROM uploads u WHERE u.id = m.attachment_id) AS attachment_width, \
         (SELECT u.height FROM uploads u WHERE u.id = m.attachment_id) AS attachment_height"
    };
}
pub(crate) use message_columns;

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct RoomRow {
    pub id: i64,
    pub name: String,
    pub last_seq: i64,
    pub created_at_ms: i64,
}

impl RoomRow {
    pub fn room_name(&self) -> Result<RoomName, StoreError> {
        RoomName::parse(&self.name)
            .ok()
            // A name that parses only after lowercasing was not written by this store.
            .filter(|name| name.as_str() == self.name)
            .ok_or_else(|| corrupt("rooms", self.id, "name", &self.name))
    }

    pub fn last_seq(&self) -> Result<u64, StoreError> {
        seq_from_db(self.last_seq).ok_or_else(|| corrupt("rooms", self.id, "last_seq", self.last_seq))
    }

    pub fn into_info(self) -> Result<RoomInfo, StoreError> {
        Ok(RoomInfo {
            name: self.room_name()?,
            last_seq: self.last_seq()?,
            created_at_ms: self.created_at_ms,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct MessageRow {
    pub id: i64,
    pub room_id: i64,
    pub seq: i64,
    pub author_id: String,
    pub author_name: String,
    pub body: String,
    pub kind: String,
    pub client_msg_id: String,
    pub created_at_ms: i64,
    pub attachment_id: Option<i64>,
    pub deleted_at_ms: Option<i64>,
    pub target_seq: Option<i64>,
    pub reply_to: Option<i64>,
    pub mentions: String,
    pub edited_at_ms: Option<i64>,
    /// The attached upload's size, read with the row (uploads keep it).
    pub attachment_width: Option<i64>,
    pub attachment_height: Option<i64>,
}

impl MessageRow {
    /// The row as the event it is: a message, or a change to one. `room` is passed in
    /// rather than joined for: every caller already holds the name.
    pub fn into_event(self, room: RoomName) -> Result<TimelineEvent, StoreError> {
        let id = self.id;
        let bad = |column: &str, value: &dyn std::fmt::Display| corrupt("messages", id, column, value);
        let seq = |value: i64, column: &str| seq_from_db(value).filter(|s| *s > 0).ok_or_else(|| bad(column, &value));
        let author = Author {
            id: UserId::parse(&self.author_id).map_err(|_| bad("author_id", &self.author_id))?,
            name: DisplayName::parse(&self.author_name).map_err(|_| bad("author_name", &self.author_name))?,
        };
        let client_msg_id =
            ClientMsgId::parse(&self.client_msg_id).map_err(|_| bad("client_msg_id", &self.client_msg_id))?;
        let message_id = MessageId::new(id).map_err(|_| bad("id", &id))?;
        let mentions = match self.mentions.as_str() {
            "" => Vec::new(),
            json => serde_json::from_str(json).map_err(|_| bad("mentions", &json))?,
        };
        if self.kind == ROOM_EVENT_KIND {
            return Ok(TimelineEvent::Room(RoomEvent {
                id: message_id,
                room,
                seq: seq(self.seq, "seq")?,
                author,
                client_msg_id,
                at_ms: self.created_at_ms,
                action: RoomAction::from_json(&self.body).map_err(|_| bad("body", &self.body))?,
            }));
        }
        if let Some(change) = Change::from_stored(&self.kind, self.body.clone(), mentions.clone()) {
            return Ok(TimelineEvent::Change(ChangeEvent {
                id: message_id,
                room,
                seq: seq(self.seq, "seq")?,
                author,
                client_msg_id,
                at_ms: self.created_at_ms,
                target_seq: seq(self.target_seq.unwrap_or(0), "target_seq")?,
                change: change.map_err(|_| bad("body", &self.body))?,
            }));
        }
        Ok(TimelineEvent::Message(ChatMessage {
            id: message_id,
            room,
            seq: seq(self.seq, "seq")?,
            author,
            client_msg_id,
            kind: MessageKind::parse(&self.kind).map_err(|_| bad("kind", &self.kind))?,
            text: self.body,
            sent_at_ms: self.created_at_ms,
            attachment: self
                .attachment_id
                .map(UploadId::new)
                .transpose()
                .map_err(|_| bad("attachment_id", &format!("{:?}", self.attachment_id)))?,
            attachment_size: image_size("messages", id, self.attachment_width, self.attachment_height)?,
            deleted: self.deleted_at_ms.is_some(),
            reply_to: self.reply_to.map(|s| seq(s, "reply_to")).transpose()?,
            mentions,
            edited_at_ms: self.edited_at_ms,
            reactions: Vec::new(),
        }))
    }

    /// The row of a message (not a change).
    pub fn into_message(self, room: RoomName) -> Result<ChatMessage, StoreError> {
        let id = self.id;
        match self.into_event(room)? {
            TimelineEvent::Message(message) => Ok(message),
            TimelineEvent::Change(_) | TimelineEvent::Room(_) => {
                Err(corrupt("messages", id, "kind", "an event where a message belongs"))
            }
        }
    }
}

/// The columns of an event to insert beside those every event has.
impl NewEvent {
    /// The columns a change or a reply fills.
    pub(crate) fn target_seq(&self) -> Option<i64> {
        match self {
            Self::Message(_) => None,
            Self::Change(c) => Some(to_db(c.target_seq)),
        }
    }

    pub(crate) fn reply_to(&self) -> Option<i64> {
        match self {
            Self::Message(m) => m.reply_to.map(to_db),
            Self::Change(_) => None,
        }
    }

    pub(crate) fn mentions(&self) -> String {
        match self {
            Self::Message(m) => mentions_to_db(&m.mentions),
            Self::Change(NewChange {
                change: Change::Edit { mentions, .. },
                ..
            }) => mentions_to_db(mentions),
            Self::Change(_) => String::new(),
        }
    }

    pub(crate) fn attachment(&self) -> Option<i64> {
        match self {
            Self::Message(m) => m.attachment.map(UploadId::get),
            Self::Change(_) => None,
        }
    }
}

/// How a message's mentions are stored: JSON, or empty for none.
pub(crate) fn mentions_to_db(mentions: &[Author]) -> String {
    if mentions.is_empty() {
        String::new()
    } else {
        serde_json::to_string(mentions).expect("authors always serialize")
    }
}

/// A standing reaction, as read with a page of history.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ReactionRow {
    pub seq: i64,
    pub emoji: String,
    pub user_id: String,
    pub user_name: String,
    pub reacted_seq: i64,
}

/// The columns of [`ReactionRow`].
macro_rules! reaction_columns {
    () => {
        "seq, emoji, user_id, user_name, reacted_seq"
    };
}
pub(crate) use reaction_columns;

/// Converts one room's history rows, with the reactions standing on its messages.
pub(crate) fn into_events(
    room: &RoomName,
    rows: Vec<MessageRow>,
    reactions: Vec<ReactionRow>,
) -> Result<Vec<TimelineEvent>, StoreError> {
    let mut by_seq: std::collections::HashMap<i64, Vec<(u64, Emoji, Author)>> = std::collections::HashMap::new();
    for r in reactions {
        let bad = |column: &str, value: &dyn std::fmt::Display| corrupt("reactions", r.seq, column, value);
        let author = Author {
            id: UserId::parse(&r.user_id).map_err(|_| bad("user_id", &r.user_id))?,
            name: DisplayName::parse(&r.user_name).map_err(|_| bad("user_name", &r.user_name))?,
        };
        let emoji = Emoji::parse(&r.emoji).map_err(|_| bad("emoji", &r.emoji))?;
        let reacted = seq_from_db(r.reacted_seq).ok_or_else(|| bad("reacted_seq", &r.reacted_seq))?;
        by_seq.entry(r.seq).or_default().push((reacted, emoji, author));
    }
    rows.into_iter()
        .map(|row| {
            let standing = by_seq.remove(&row.seq);
            let mut event = row.into_event(room.clone())?;
            if let (TimelineEvent::Message(message), Some(standing)) = (&mut event, standing) {
                message.reactions = Reaction::group(standing);
            }
            Ok(event)
        })
        .collect()
}

/// Like [`into_events`], for rows of messages only.
pub(crate) fn into_messages(
    room: &RoomName,
    rows: Vec<MessageRow>,
    reactions: Vec<ReactionRow>,
) -> Result<Vec<ChatMessage>, StoreError> {
    into_events(room, rows, reactions)?
        .into_iter()
        .map(|event| match event {
            TimelineEvent::Message(message) => Ok(message),
            other => Err(corrupt(
                "messages",
                other.id().get(),
                "kind",
                "an event in a page of messages",
            )),
        })
        .collect()
}

/// The seq range of a page of rows, for reading the reactions on it.
pub(crate) fn seq_span(rows: &[MessageRow]) -> Option<(i64, i64)> {
    Some((
        rows.first()?.seq.min(rows.last()?.seq),
        rows.first()?.seq.max(rows.last()?.seq),
    ))
}

/// What an insert hands back for each new message: enough to complete the outcome.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct InsertedRow {
    pub id: i64,
    pub room_id: i64,
    pub seq: i64,
    pub created_at_ms: i64,
}

/// Sequences are `u64` in the domain and `bigint` in the database.
fn seq_from_db(value: i64) -> Option<u64> {
    u64::try_from(value).ok()
}

/// Converts a sequence or limit for binding. Values past `i64::MAX` cannot be stored, so
/// clamping them keeps comparisons meaning the same thing ("beyond every stored seq").
pub(crate) fn to_db(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A stored image size, which must be positive on both sides, or absent on both (uploads
/// from before sizes were recorded).
pub(crate) fn image_size(
    table: &str,
    id: i64,
    width: Option<i64>,
    height: Option<i64>,
) -> Result<Option<ImageSize>, StoreError> {
    match (width, height) {
        (None, None) => Ok(None),
        (Some(w), Some(h)) => match (u32::try_from(w), u32::try_from(h)) {
            (Ok(width @ 1..), Ok(height @ 1..)) => Ok(Some(ImageSize { width, height })),
            _ => Err(corrupt(table, id, "width", format!("{w}x{h}"))),
        },
        (w, h) => Err(corrupt(table, id, "width", format!("{w:?}x{h:?}"))),
    }
}

pub(crate) fn corrupt(table: &str, id: i64, column: &str, value: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!(
        "{table} row {id}: invalid {column} {value:?}",
        value = value.to_string()
    ))
}
