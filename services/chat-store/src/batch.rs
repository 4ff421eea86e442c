//! The backend-neutral half of `append_batch`: deciding, from the locked rooms and the
//! already stored idempotency keys, which messages are new, which are duplicates and which
//! seq each new one gets. The backends only run the SQL around it:
//!
//! 1. lock the batch's rooms ([`room_names`] → `RoomRow`s), in id order;
//! 2. look up stored messages with the batch's keys ([`Plan::keys`] → `MessageRow`s);
//! 3. insert [`Assigned::rows`] and set each room's `last_seq` from [`Assigned::room_updates`];
//! 4. turn the inserted rows into outcomes ([`Assigned::finish`]), then commit.
//!
//! Keeping this in one place means both backends dedupe and number in exactly the same way.

use crate::error::StoreError;
use crate::rows::{InsertedRow, MessageRow, RoomRow};
use crate::store::{AppendOutcome, NewMessage};
use chat_domain::{ChatMessage, MessageId, RoomName};
use std::collections::{HashMap, HashSet};

/// The distinct room names of a batch, sorted so the lock query's input is deterministic.
pub(crate) fn room_names(batch: &[NewMessage]) -> Vec<&str> {
    let mut names: Vec<&str> = batch.iter().map(|m| m.room.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// Whether two messages of the batch share an idempotency key (room, author, client
/// message id): such a batch must be numbered by [`Plan`], which stores the key once.
pub(crate) fn repeats_a_key(batch: &[NewMessage]) -> bool {
    let mut seen = HashSet::with_capacity(batch.len());
    !batch
        .iter()
        .all(|m| seen.insert((m.room.as_str(), m.author.id.as_str(), m.client_msg_id.as_str())))
}

/// The message as stored: what the sender sent, with the id, seq and time the database gave it.
/// An id that is not positive was not the database's: corrupt.
pub(crate) fn stored_message(m: &NewMessage, id: i64, seq: u64, sent_at_ms: i64) -> Result<ChatMessage, StoreError> {
    let id = MessageId::new(id).map_err(|_| StoreError::Corrupt(format!("insert returned message id {id}")))?;
    Ok(m.committed(id, seq, sent_at_ms))
}

/// What the one-round-trip append of new messages hands back, one row per locked room
/// (`name` set; `seq` is its `last_seq` before the batch) and one per inserted message
/// (`id` and `created_at_ms` set). Not the inserted rows joined to their batch positions:
/// PostgreSQL soon plans the statement generically and then joined the two sides by nested
/// loop. The numbering is plain to repeat in [`outcomes_of_new`].
#[derive(sqlx::FromRow)]
pub(crate) struct NewBatchRow {
    room_id: i64,
    name: Option<String>,
    seq: i64,
    id: Option<i64>,
    created_at_ms: Option<i64>,
}

/// The outcome of each message of a batch of new messages from what the append returned:
/// each room's messages numbered in batch order after its `last_seq`, each number matched
/// to its inserted row. A disagreement between the two is reported, never guessed.
pub(crate) fn outcomes_of_new(
    batch: &[NewMessage],
    returned: Vec<NewBatchRow>,
) -> Result<Vec<AppendOutcome>, StoreError> {
    // Each locked room's id and last seq so far, by name; each new row by (room, seq).
    let mut rooms: HashMap<String, (i64, i64)> = HashMap::new();
    let mut inserted: HashMap<(i64, i64), (i64, i64)> = HashMap::with_capacity(batch.len());
    for row in returned {
        match (row.name, row.id, row.created_at_ms) {
            (Some(name), None, None) => {
                rooms.insert(name, (row.room_id, row.seq));
            }
            (None, Some(id), Some(created_at_ms)) => {
                inserted.insert((row.room_id, row.seq), (id, created_at_ms));
            }
            _ => {
                return Err(StoreError::Corrupt(format!(
                    "append returned a malformed row for room {}",
                    row.room_id
                )));
            }
        }
    }
    let mut outcomes = Vec::with_capacity(batch.len());
    for message in batch {
        let Some((room_id, last_seq)) = rooms.get_mut(message.room.as_str()) else {
            outcomes.push(AppendOutcome::RoomNotFound);
            continue;
        };
        *last_seq += 1;
        let seq = *last_seq;
        let (id, created_at_ms) = inserted
            .remove(&(*room_id, seq))
            .ok_or_else(|| StoreError::Corrupt(format!("insert returned no row for room {room_id} seq {seq}")))?;
        let seq = u64::try_from(seq).map_err(|_| StoreError::Corrupt(format!("room {room_id} seq {seq}")))?;
        outcomes.push(AppendOutcome::Stored(stored_message(message, id, seq, created_at_ms)?));
    }
    if !inserted.is_empty() {
        return Err(StoreError::Corrupt(format!(
            "append inserted {} rows the batch does not account for",
            inserted.len()
        )));
    }
    Ok(outcomes)
}

/// An idempotency key: room id, author id, client message id.
pub(crate) type Key<'a> = (i64, &'a str, &'a str);

struct LockedRoom {
    id: i64,
    name: RoomName,
    last_seq: u64,
    /// Whether this batch adds messages to the room, so its `last_seq` must be written.
    grows: bool,
}

/// A batch whose rooms are locked.
pub(crate) struct Plan<'a> {
    batch: &'a [NewMessage],
    rooms: HashMap<&'a RoomName, LockedRoom>,
}

impl<'a> Plan<'a> {
    /// `locked` holds the rows of the batch's rooms that exist, read under lock.
    pub fn new(batch: &'a [NewMessage], locked: Vec<RoomRow>) -> Result<Self, StoreError> {
        let mut by_name: HashMap<RoomName, LockedRoom> = HashMap::with_capacity(locked.len());
        for row in locked {
            let room = LockedRoom {
                id: row.id,
                name: row.room_name()?,
                last_seq: row.last_seq()?,
                grows: false,
            };
            by_name.insert(room.name.clone(), room);
        }
        // Re-key by the batch's own names so later lookups borrow from the batch.
        let mut rooms = HashMap::with_capacity(by_name.len());
        for message in batch {
            if let Some(room) = by_name.remove(&message.room) {
                rooms.insert(&message.room, room);
            }
        }
        Ok(Self { batch, rooms })
    }

    /// The distinct keys of the messages whose room exists: what to look up.
    pub fn keys(&self) -> Vec<Key<'a>> {
        let mut seen = HashSet::with_capacity(self.batch.len());
        self.batch
            .iter()
            .filter_map(|m| self.key(m))
            .filter(|k| seen.insert(*k))
            .collect()
    }

    fn key(&self, m: &'a NewMessage) -> Option<Key<'a>> {
        let room = self.rooms.get(&m.room)?;
        Some((room.id, m.author.id.as_str(), m.client_msg_id.as_str()))
    }

    /// Numbers the new messages, given the stored messages that match [`Plan::keys`].
    pub fn assign(mut self, stored: Vec<MessageRow>) -> Result<Assigned<'a>, StoreError> {
        let names_by_id: HashMap<i64, &RoomName> = self.rooms.iter().map(|(n, r)| (r.id, *n)).collect();
        let mut known: HashMap<(i64, String, String), Known> = HashMap::with_capacity(stored.len());
        for row in stored {
            let room = names_by_id
                .get(&row.room_id)
                .ok_or_else(|| StoreError::Corrupt(format!("messages row {} matched no locked room", row.id)))?;
            let key = (row.room_id, row.author_id.clone(), row.client_msg_id.clone());
            known.insert(key, Known::Stored(row.into_message((*room).clone())?));
        }

        let mut slots = Vec::with_capacity(self.batch.len());
        let mut rows = Vec::new();
        for message in self.batch {
            let Some(room) = self.rooms.get_mut(&message.room) else {
                slots.push(Slot::RoomNotFound);
                continue;
            };
            let key = (
                room.id,
                message.author.id.as_str().to_owned(),
                message.client_msg_id.as_str().to_owned(),
            );
            match known.get(&key) {
                Some(Known::Stored(original)) => slots.push(Slot::Stored(original.clone())),
                Some(Known::New(index)) => slots.push(Slot::DuplicateOfNew(*index)),
                None => {
                    room.last_seq += 1;
                    room.grows = true;
                    let index = rows.len();
                    rows.push(PendingRow {
                        room_id: room.id,
                        seq: i64::try_from(room.last_seq)
                            .map_err(|_| StoreError::Corrupt(format!("room {} ran out of seqs", room.name)))?,
                        message,
                    });
                    known.insert(key, Known::New(index));
                    slots.push(Slot::New(index));
                }
            }
        }
        let room_updates = self
            .rooms
            .values()
            .filter(|r| r.grows)
            .map(|r| (r.id, r.last_seq as i64))
            .collect();
        Ok(Assigned {
            slots,
            rows,
            room_updates,
        })
    }
}

enum Known {
    Stored(ChatMessage),
    New(usize),
}

/// What each input becomes; indexes point into [`Assigned::rows`].
enum Slot {
    RoomNotFound,
    /// A duplicate of a message stored before this batch.
    Stored(ChatMessage),
    New(usize),
    /// A duplicate of a message stored earlier in this batch.
    DuplicateOfNew(usize),
}

/// A row to insert; the commit time is the database's.
pub(crate) struct PendingRow<'a> {
    pub room_id: i64,
    pub seq: i64,
    pub message: &'a NewMessage,
}

/// A batch with its seqs assigned, ready to insert.
pub(crate) struct Assigned<'a> {
    slots: Vec<Slot>,
    pub rows: Vec<PendingRow<'a>>,
    /// `(room id, new last_seq)` for every room that grows.
    pub room_updates: Vec<(i64, i64)>,
}

impl Assigned<'_> {
    /// Builds the outcomes from what the insert returned. Runs before the commit, so that a
    /// failure here leaves nothing committed, as `append_batch` promises.
    pub fn finish(self, inserted: Vec<InsertedRow>) -> Result<Vec<AppendOutcome>, StoreError> {
        // RETURNING order is not guaranteed to be input order: match on (room_id, seq).
        let mut by_key: HashMap<(i64, i64), InsertedRow> =
            inserted.into_iter().map(|r| ((r.room_id, r.seq), r)).collect();
        let mut stored = Vec::with_capacity(self.rows.len());
        for row in &self.rows {
            let ins = by_key.remove(&(row.room_id, row.seq)).ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "insert returned no row for room {} seq {}",
                    row.room_id, row.seq
                ))
            })?;
            stored.push(stored_message(row.message, ins.id, row.seq as u64, ins.created_at_ms)?);
        }
        Ok(self
            .slots
            .into_iter()
            .map(|slot| match slot {
                Slot::RoomNotFound => AppendOutcome::RoomNotFound,
                Slot::Stored(original) => AppendOutcome::Duplicate(original),
                Slot::New(i) => AppendOutcome::Stored(stored[i].clone()),
                Slot::DuplicateOfNew(i) => AppendOutcome::Duplicate(stored[i].clone()),
            })
            .collect())
    }
}
