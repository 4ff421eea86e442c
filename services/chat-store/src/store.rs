//! The backend-neutral contract: what a store promises, whichever database is behind it.

use crate::error::StoreError;
use chat_domain::{Author, ChatMessage, ClientMsgId, MessageId, MessageKind, MessageText, RoomName, UploadId};

/// A room as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomInfo {
    pub name: RoomName,
    /// The `seq` of the room's newest message, 0 while it has none. A client that has seen
    /// this seq has seen everything committed when the value was read.
    pub last_seq: u64,
    /// Milliseconds since the Unix epoch, by the database's clock.
    pub created_at_ms: i64,
}

/// A message to append. Every field is already validated; the store assigns `seq`, `id`
/// and the commit time.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub room: RoomName,
    /// From the server-side session, never from the client.
    pub author: Author,
    pub text: MessageText,
    /// Scoped by room and author: the same id from two authors is two messages.
    pub client_msg_id: ClientMsgId,
    pub kind: MessageKind,
    /// The upload an image message shows; checked to be the author's before it gets here.
    pub attachment: Option<UploadId>,
}

impl NewMessage {
    /// The message once committed with this id, seq and time: what the sender sent, as
    /// history and the fan-out show it.
    pub fn committed(&self, id: MessageId, seq: u64, sent_at_ms: i64) -> ChatMessage {
        ChatMessage {
            id,
            room: self.room.clone(),
            seq,
            author: self.author.clone(),
            text: self.text.as_str().to_owned(),
            client_msg_id: self.client_msg_id.clone(),
            kind: self.kind,
            sent_at_ms,
            attachment: self.attachment,
            deleted: false,
        }
    }
}

/// What became of one message of a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum AppendOutcome {
    /// Committed now, with its new `seq`.
    Stored(ChatMessage),
    /// The author already sent this `client_msg_id` to this room, earlier or earlier in the
    /// same batch: nothing new was stored, and this is the original, so a retried send gets
    /// the same ack as the first try.
    Duplicate(ChatMessage),
    /// The room does not exist. Appending never creates rooms: entering does.
    RoomNotFound,
}

/// Rooms and their messages. Implemented for PostgreSQL (several service processes sharing
/// one database) and SQLite (one process, one file); [`crate::connect`] picks by URL.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Get-or-create, so that entering a room by name is one call however many people race
    /// to create it. The `bool` is true when this call created the room.
    async fn enter_room(&self, name: &RoomName) -> Result<(RoomInfo, bool), StoreError>;

    async fn room(&self, name: &RoomName) -> Result<Option<RoomInfo>, StoreError>;

    /// Rooms whose name sorts after `after`, in byte order of the name, at most `limit`.
    /// Paging by name rather than offset keeps pages stable while rooms are created.
    async fn list_rooms(&self, after: Option<&RoomName>, limit: u32) -> Result<Vec<RoomInfo>, StoreError>;

    /// Appends a batch in one transaction, the unit of group commit: one outcome per input,
    /// in input order. Each room's new messages get the next seqs in input order, without
    /// gaps, even with other processes appending to the same room.
    ///
    /// On `Err` nothing of the batch is committed. (When the connection breaks during the
    /// commit itself the outcome is unknowable; a retry then reports `Duplicate` for what
    /// did commit.)
    async fn append_batch(&self, batch: &[NewMessage]) -> Result<Vec<AppendOutcome>, StoreError>;

    /// Messages with `seq > after_seq`, ascending, at most `limit`: catching up after a
    /// reconnect, and filling gaps in live delivery. Empty for an unknown room. Deleted
    /// messages come back as tombstones (`deleted`, text erased) so that readers still see
    /// every seq; it is for them to leave tombstones out of what people see.
    async fn history_after(&self, room: &RoomName, after_seq: u64, limit: u32) -> Result<Vec<ChatMessage>, StoreError>;

    /// The newest `limit` messages with `seq < before_seq`, ascending: paging back through
    /// history (`u64::MAX` for the newest page). Empty for an unknown room.
    async fn history_before(
        &self,
        room: &RoomName,
        before_seq: u64,
        limit: u32,
    ) -> Result<Vec<ChatMessage>, StoreError>;

    /// A round trip to the database, for readiness checks.
    async fn ping(&self) -> Result<(), StoreError>;
}
