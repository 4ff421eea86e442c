//! The backend-neutral contract: what a store promises, whichever database is behind it.

use crate::error::StoreError;
use crate::search::IndexRound;
use chat_domain::{
    Author, Change, ChangeError, ChangeEvent, ChatMessage, ClientMsgId, ImageSize, MessageId, MessageKind, MessageText,
    RoomName, TimelineEvent, UploadId,
};

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
    /// Its size as the upload recorded it, read where the upload was checked: carried into
    /// the committed message's frame, not stored again (history reads it from the upload).
    pub attachment_size: Option<ImageSize>,
    /// The message (same room) it replies to; the store checks that it exists.
    pub reply_to: Option<u64>,
    /// The members the text mentions, resolved by the gateway from the room's members.
    pub mentions: Vec<Author>,
}

/// A change to append: `author` edits, deletes or reacts to the message at `target_seq`.
/// The store decides it under the room's lock ([`chat_domain::timeline::MessageState`]).
#[derive(Debug, Clone)]
pub struct NewChange {
    pub room: RoomName,
    /// From the server-side session, never from the client.
    pub author: Author,
    pub client_msg_id: ClientMsgId,
    pub target_seq: u64,
    pub change: Change,
    /// The author is an administrator (from the session): may delete anyone's message.
    pub admin: bool,
}

impl NewChange {
    pub fn committed(&self, id: MessageId, seq: u64, at_ms: i64) -> ChangeEvent {
        ChangeEvent {
            id,
            room: self.room.clone(),
            seq,
            author: self.author.clone(),
            client_msg_id: self.client_msg_id.clone(),
            at_ms,
            target_seq: self.target_seq,
            change: self.change.clone(),
        }
    }
}

/// One event of a batch to append: a message or a change to one.
#[derive(Debug, Clone)]
pub enum NewEvent {
    Message(NewMessage),
    Change(NewChange),
}

impl NewEvent {
    pub fn room(&self) -> &RoomName {
        match self {
            Self::Message(m) => &m.room,
            Self::Change(c) => &c.room,
        }
    }

    pub fn author(&self) -> &Author {
        match self {
            Self::Message(m) => &m.author,
            Self::Change(c) => &c.author,
        }
    }

    pub fn client_msg_id(&self) -> &ClientMsgId {
        match self {
            Self::Message(m) => &m.client_msg_id,
            Self::Change(c) => &c.client_msg_id,
        }
    }

    /// The stored kind and body.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Message(m) => m.kind.as_str(),
            Self::Change(c) => c.change.kind(),
        }
    }

    pub(crate) fn body(&self) -> &str {
        match self {
            Self::Message(m) => m.text.as_str(),
            Self::Change(c) => c.change.body(),
        }
    }

    /// The event once committed with this id, seq and time.
    pub fn committed(&self, id: MessageId, seq: u64, at_ms: i64) -> TimelineEvent {
        match self {
            Self::Message(m) => TimelineEvent::Message(m.committed(id, seq, at_ms)),
            Self::Change(c) => TimelineEvent::Change(c.committed(id, seq, at_ms)),
        }
    }

    /// A plain new message needs nothing checked against what is stored.
    pub(crate) fn needs_no_check(&self) -> bool {
        matches!(self, Self::Message(m) if m.reply_to.is_none())
    }
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
            attachment_size: self.attachment_size,
            deleted: false,
            reply_to: self.reply_to,
            mentions: self.mentions.clone(),
            edited_at_ms: None,
            reactions: Vec::new(),
        }
    }
}

/// What became of one event of a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum AppendOutcome {
    /// Committed now, with its new `seq`.
    Stored(TimelineEvent),
    /// The author already sent this `client_msg_id` to this room, earlier or earlier in the
    /// same batch: nothing new was stored, and this is the original, so a retried send gets
    /// the same ack as the first try.
    Duplicate(TimelineEvent),
    /// The room does not exist. Appending never creates rooms: entering does.
    RoomNotFound,
    /// The change (or the reply) breaks a rule; nothing was stored for it.
    Refused(ChangeError),
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
    /// in input order. Each room's new events get the next seqs in input order, without
    /// gaps, even with other processes appending to the same room. A change is decided
    /// against the state its message has after the events before it, and applied to the
    /// message in the same transaction.
    ///
    /// On `Err` nothing of the batch is committed. (When the connection breaks during the
    /// commit itself the outcome is unknowable; a retry then reports `Duplicate` for what
    /// did commit.)
    async fn append_batch(&self, batch: &[NewEvent]) -> Result<Vec<AppendOutcome>, StoreError>;

    /// Events with `seq > after_seq`, ascending, at most `limit`: catching up after a
    /// reconnect, and filling gaps in live delivery, so every seq is there (while the room
    /// stands: deleting a room erases its events). Messages come
    /// in their current state (deleted ones as tombstones); replaying the changes after
    /// them leaves that state as it is.
    async fn history_after(
        &self,
        room: &RoomName,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<TimelineEvent>, StoreError>;

    /// The newest `limit` messages with `seq < before_seq`, ascending, in their current
    /// state (tombstones included), changes left out: paging back through history
    /// (`u64::MAX` for the newest page). Empty for an unknown room.
    async fn history_before(
        &self,
        room: &RoomName,
        before_seq: u64,
        limit: u32,
    ) -> Result<Vec<ChatMessage>, StoreError>;

    /// A round trip to the database, for readiness checks.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Brings the search index up to date with at most `max` queue entries: the commits,
    /// edits and deletions since it last ran. Both backends index after the commit, off
    /// the send path, and a message service calls this in the background. One caller at
    /// a time indexes; another finds it [`IndexRound::Busy`].
    async fn index_for_search(&self, max: u32) -> Result<IndexRound, StoreError>;
}
