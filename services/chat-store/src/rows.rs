//! Rows as both backends return them, and their one conversion into domain values.
//!
//! Both backends select the same columns under the same names, so one `FromRow` struct per
//! table serves both, and a row that breaks a domain rule is reported as
//! [`StoreError::Corrupt`] in one place rather than trusted.

use crate::error::StoreError;
use crate::store::RoomInfo;
use chat_domain::{Author, ChatMessage, ClientMsgId, DisplayName, MessageId, MessageKind, RoomName, UploadId, UserId};

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
         m.attachment_id, m.deleted_at_ms"
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
}

impl MessageRow {
    /// `room` is passed in rather than joined for: every caller already holds the name.
    pub fn into_message(self, room: RoomName) -> Result<ChatMessage, StoreError> {
        let id = self.id;
        let bad = |column: &str, value: &dyn std::fmt::Display| corrupt("messages", id, column, value);
        Ok(ChatMessage {
            id: MessageId::new(id).map_err(|_| bad("id", &id))?,
            room,
            seq: seq_from_db(self.seq)
                .filter(|s| *s > 0)
                .ok_or_else(|| bad("seq", &self.seq))?,
            author: Author {
                id: UserId::parse(&self.author_id).map_err(|_| bad("author_id", &self.author_id))?,
                name: DisplayName::parse(&self.author_name).map_err(|_| bad("author_name", &self.author_name))?,
            },
            client_msg_id: ClientMsgId::parse(&self.client_msg_id)
                .map_err(|_| bad("client_msg_id", &self.client_msg_id))?,
            kind: MessageKind::parse(&self.kind).map_err(|_| bad("kind", &self.kind))?,
            text: self.body,
            sent_at_ms: self.created_at_ms,
            attachment: self
                .attachment_id
                .map(UploadId::new)
                .transpose()
                .map_err(|_| bad("attachment_id", &format!("{:?}", self.attachment_id)))?,
            deleted: self.deleted_at_ms.is_some(),
        })
    }
}

/// Converts one room's history rows.
pub(crate) fn into_messages(room: &RoomName, rows: Vec<MessageRow>) -> Result<Vec<ChatMessage>, StoreError> {
    rows.into_iter().map(|r| r.into_message(room.clone())).collect()
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

pub(crate) fn corrupt(table: &str, id: i64, column: &str, value: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!(
        "{table} row {id}: invalid {column} {value:?}",
        value = value.to_string()
    ))
}
