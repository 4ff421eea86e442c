//! The bus: how a committed message gets from the message service that stored it to every
//! gateway, which then fans it out to its local members of the room.
//!
//! # Layout
//! * [`Bus`] and [`BusReader`]: the one interface, with the semantics both backends keep.
//! * [`redis_streams`]: partitioned Redis Streams, for the scaled topology.
//! * [`partition`]: which partition a room travels on, and each partition's hash tag.
//! * [`interest`]: which partitions a gateway reads (those holding rooms it serves).
//! * [`link`]: whether a reader reaches the bus, and since when not.
//! * [`in_process`]: a bounded in-memory log, for the all-in-one binary.
//! * [`signals`]: ephemeral signals (typing, presence, read receipts) beside the streams:
//!   Redis Pub/Sub, or an in-process broadcast. Never stored, never replayed.
//! * [`presence`]: who is online on some gateway, as holds that expire unless renewed.
//!
//! # Semantics
//! * A reader sees every event published after it subscribed on the partitions its
//!   [`Interest`] wants (a room's events all travel on one partition), and every
//!   [`EventKind::Broadcast`], in publish order per partition. There are no consumer
//!   groups: each gateway needs every entry of its rooms.
//! * Delivery is at-least-once *towards the gateway's ordering layer*, which drops anything
//!   it has already delivered by `seq`. The bus never needs to be perfect: when a reader
//!   may have missed entries (a reconnect, a position trimmed away), it yields
//!   [`BusItem::Resync`], and the gateway catches its rooms up from the database.

pub mod in_process;
pub mod interest;
pub mod link;
pub mod partition;
pub mod presence;
pub mod redis_streams;
pub mod signals;

pub use interest::Interest;
pub use link::Link;
pub use partition::partition_of;
pub use presence::Presence;

pub use signals::{Signal, SignalKind, SignalReader};

use bytes::Bytes;
use chat_domain::RoomName;

/// What an event is, and so how a gateway handles it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EventKind {
    /// A committed message: part of the room's sequence, delivered in `seq` order exactly
    /// once, and gap-filled from the database.
    #[default]
    Message,
    /// A frame for the room's members now, outside the sequence (`seq` is 0): a message
    /// deleted, the room deleted. Not replayed; the database already reflects it, so a
    /// client that missed it sees the same state on its next history read.
    Notice,
    /// For the gateways that serve the room, not clients (`seq` is 0): a JSON instruction
    /// about the room ("this member was removed"), on the room's partition, so it arrives
    /// after the room's events published before it.
    Control,
    /// For every gateway, not clients (`seq` is 0): a JSON instruction about people rather
    /// than a room they are in ("this user's sessions ended", "this user joined that room"),
    /// on the control stream every reader reads. `room` is carried, not used for routing.
    Broadcast,
}

impl EventKind {
    /// The stream entry's `k` field; messages, the bulk of the traffic, carry none.
    fn wire(self) -> Option<&'static str> {
        match self {
            Self::Message => None,
            Self::Notice => Some("n"),
            Self::Control => Some("c"),
            Self::Broadcast => Some("b"),
        }
    }

    fn from_wire(value: Option<&[u8]>) -> Option<Self> {
        match value {
            None => Some(Self::Message),
            Some(b"n") => Some(Self::Notice),
            Some(b"c") => Some(Self::Control),
            Some(b"b") => Some(Self::Broadcast),
            Some(_) => None,
        }
    }
}

/// One event on its way to the gateways: most often a committed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusEvent {
    pub kind: EventKind,
    pub room: RoomName,
    pub seq: u64,
    /// The frame exactly as clients receive it, serialized once by the publisher.
    pub payload: Bytes,
    /// W3C `traceparent` of the publish, so each gateway's fan-out span links to it.
    pub traceparent: Option<String>,
    /// When the bus took the event, in Unix milliseconds (a Redis stream id's time), as
    /// readers see it; publishers leave it `None`. Measures fan-out lag.
    pub published_at_ms: Option<u64>,
}

/// What a reader yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusItem {
    Event(BusEvent),
    /// Entries may have been missed; the consumer must catch up from the database.
    Resync,
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("redis error: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("invalid bus configuration: {0}")]
    Config(String),
}

#[async_trait::async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Appends events in order. On error none, some or all may have been appended; the
    /// caller retries, and readers drop repeats by `seq`.
    async fn publish(&self, events: &[BusEvent]) -> Result<(), BusError>;

    /// A new interest, holding nothing yet, sized for this bus's partitions.
    fn interest(&self) -> std::sync::Arc<Interest>;

    /// A reader of what `interest` wants, positioned at the current end of each partition
    /// it wants now and of the control stream; partitions wanted later are started as they
    /// come (see [`interest`]).
    async fn subscribe(&self, interest: std::sync::Arc<Interest>) -> Result<Box<dyn BusReader>, BusError>;

    /// Cheap health check for `/readyz`.
    async fn ping(&self) -> Result<(), BusError>;

    /// Sends ephemeral signals to every gateway listening now (this one included), in
    /// order. At most once: a failure loses them, and the caller only logs that.
    async fn signal(&self, signals: &[Signal]) -> Result<(), BusError>;

    /// A listener for the signals sent from now on.
    async fn listen(&self) -> Result<Box<dyn SignalReader>, BusError>;

    /// Who is online, in the same backend: what every gateway renews and reads.
    fn presence(&self) -> std::sync::Arc<dyn Presence>;
}

#[async_trait::async_trait]
pub trait BusReader: Send {
    /// Waits for the next items. Never fails: a broken backend connection is retried
    /// inside, and yields [`BusItem::Resync`] once it is back. Cancel-safe: dropping the
    /// future loses nothing that was not yet returned.
    async fn next_batch(&mut self) -> Vec<BusItem>;

    /// Whether this reader reaches the bus, shared with whoever watches: down from a
    /// failed read until one succeeds. A reader that cannot fail is always up.
    fn link(&self) -> std::sync::Arc<Link> {
        std::sync::Arc::new(Link::default())
    }
}

impl BusEvent {
    /// A notice or control event: outside every room's sequence.
    pub fn unsequenced(kind: EventKind, room: RoomName, payload: Bytes) -> Self {
        Self {
            kind,
            room,
            seq: 0,
            payload,
            traceparent: None,
            published_at_ms: None,
        }
    }
}
