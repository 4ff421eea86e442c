//! The backend-neutral half of `append_batch`: deciding, from the locked rooms and the
//! already stored idempotency keys, which messages are new, which are duplicates and which
//! seq each new one gets. The backends only run the SQL around it:
//!
//! 1. lock the batch's rooms ([`room_names`] → `RoomRow`s), in id order;
//! 2. look up stored events with the batch's keys ([`Plan::keys`] → `MessageRow`s), and
//!    the messages that changes and replies name ([`Plan::targets`], [`Plan::reactors`]
//!    → [`Targets`]);
//! 3. insert [`Assigned::rows`], set each room's `last_seq` from [`Assigned::room_updates`]
//!    and apply the changes to their messages ([`Assigned::effects`]);
//! 4. turn the inserted rows into outcomes ([`Assigned::finish`]), then commit.
//!
//! Keeping this in one place means both backends dedupe, decide changes and number in
//! exactly the same way.

use crate::error::StoreError;
use crate::rows::{InsertedRow, MessageRow, RoomRow};
use crate::store::{AppendOutcome, NewEvent};
use chat_domain::timeline::MessageState;
use chat_domain::{Change, ChangeError, Emoji, MessageId, RoomName, TimelineEvent, UserId};
use std::collections::{HashMap, HashSet};

/// The distinct room names of a batch, sorted so the lock query's input is deterministic.
pub(crate) fn room_names(batch: &[NewEvent]) -> Vec<&str> {
    let mut names: Vec<&str> = batch.iter().map(|m| m.room().as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// Whether two messages of the batch share an idempotency key (room, author, client
/// message id): such a batch must be numbered by [`Plan`], which stores the key once.
pub(crate) fn repeats_a_key(batch: &[NewEvent]) -> bool {
    let mut seen = HashSet::with_capacity(batch.len());
    !batch
        .iter()
        .all(|m| seen.insert((m.room().as_str(), m.author().id.as_str(), m.client_msg_id().as_str())))
}

/// The event as stored: what the sender sent, with the id, seq and time the database gave it.
/// An id that is not positive was not the database's: corrupt.
pub(crate) fn stored_event(m: &NewEvent, id: i64, seq: u64, at_ms: i64) -> Result<TimelineEvent, StoreError> {
    let id = MessageId::new(id).map_err(|_| StoreError::Corrupt(format!("insert returned message id {id}")))?;
    Ok(m.committed(id, seq, at_ms))
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
    batch: &[NewEvent],
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
        let Some((room_id, last_seq)) = rooms.get_mut(message.room().as_str()) else {
            outcomes.push(AppendOutcome::RoomNotFound);
            continue;
        };
        *last_seq += 1;
        let seq = *last_seq;
        let (id, created_at_ms) = inserted
            .remove(&(*room_id, seq))
            .ok_or_else(|| StoreError::Corrupt(format!("insert returned no row for room {room_id} seq {seq}")))?;
        let seq = u64::try_from(seq).map_err(|_| StoreError::Corrupt(format!("room {room_id} seq {seq}")))?;
        outcomes.push(AppendOutcome::Stored(stored_event(message, id, seq, created_at_ms)?));
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

/// A message by place: room id, seq.
pub(crate) type Place = (i64, i64);

struct LockedRoom {
    id: i64,
    name: RoomName,
    last_seq: u64,
    /// Whether this batch adds events to the room, so its `last_seq` must be written.
    grows: bool,
}

/// A stored event that a change or a reply names, read under the room's lock.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct TargetRow {
    pub room_id: i64,
    pub seq: i64,
    pub author_id: String,
    pub kind: String,
    pub deleted_at_ms: Option<i64>,
}

/// How many people reacted to a target with one emoji.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ReactionCountRow {
    pub room_id: i64,
    pub seq: i64,
    pub emoji: String,
    pub count: i64,
}

/// A reaction of someone whose change the batch holds.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct OwnReactionRow {
    pub room_id: i64,
    pub seq: i64,
    pub emoji: String,
    pub user_id: String,
}

/// What the store read of the messages the batch's changes and replies name.
#[derive(Debug, Default)]
pub(crate) struct Targets {
    pub messages: Vec<TargetRow>,
    pub counts: Vec<ReactionCountRow>,
    pub own: Vec<OwnReactionRow>,
}

impl Targets {
    /// Each target message's state, by place. Changes (not messages) are left out: a
    /// change cannot be the target of another.
    fn into_states(self) -> Result<HashMap<Place, MessageState>, StoreError> {
        let mut states = HashMap::with_capacity(self.messages.len());
        for row in self.messages {
            if !matches!(row.kind.as_str(), "text" | "image") {
                continue;
            }
            let author = UserId::parse(&row.author_id)
                .map_err(|_| crate::rows::corrupt("messages", row.seq, "author_id", &row.author_id))?;
            let mut state = MessageState::new(author);
            state.deleted = row.deleted_at_ms.is_some();
            states.insert((row.room_id, row.seq), state);
        }
        let emoji = |e: &str| Emoji::parse(e).map_err(|_| crate::rows::corrupt("reactions", 0, "emoji", e));
        for row in self.counts {
            if let Some(state) = states.get_mut(&(row.room_id, row.seq)) {
                state.reactions.entry(emoji(&row.emoji)?).or_default().count = row.count.max(0) as u64;
            }
        }
        for row in self.own {
            if let (Some(state), Ok(user)) = (states.get_mut(&(row.room_id, row.seq)), UserId::parse(&row.user_id)) {
                state
                    .reactions
                    .entry(emoji(&row.emoji)?)
                    .or_default()
                    .users
                    .insert(user);
            }
        }
        Ok(states)
    }
}

/// A batch whose rooms are locked.
pub(crate) struct Plan<'a> {
    batch: &'a [NewEvent],
    rooms: HashMap<&'a RoomName, LockedRoom>,
}

impl<'a> Plan<'a> {
    /// `locked` holds the rows of the batch's rooms that exist, read under lock.
    pub fn new(batch: &'a [NewEvent], locked: Vec<RoomRow>) -> Result<Self, StoreError> {
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
        for event in batch {
            if let Some(room) = by_name.remove(event.room()) {
                rooms.insert(event.room(), room);
            }
        }
        Ok(Self { batch, rooms })
    }

    /// The distinct keys of the events whose room exists: what to look up.
    pub fn keys(&self) -> Vec<Key<'a>> {
        let mut seen = HashSet::with_capacity(self.batch.len());
        self.batch
            .iter()
            .filter_map(|m| self.key(m))
            .filter(|k| seen.insert(*k))
            .collect()
    }

    fn key(&self, m: &'a NewEvent) -> Option<Key<'a>> {
        let room = self.rooms.get(m.room())?;
        Some((room.id, m.author().id.as_str(), m.client_msg_id().as_str()))
    }

    fn room_id(&self, event: &NewEvent) -> Option<i64> {
        self.rooms.get(event.room()).map(|r| r.id)
    }

    /// The distinct places that changes and replies name: what to read as [`TargetRow`]s.
    pub fn targets(&self) -> Vec<Place> {
        let mut seen = HashSet::new();
        self.batch
            .iter()
            .filter_map(|event| Some((self.room_id(event)?, crate::rows::to_db(target_of(event)?))))
            .filter(|place| seen.insert(*place))
            .collect()
    }

    /// (room id, message seq, person) of every reaction change: whose reactions to read.
    pub fn reactors(&self) -> Vec<(i64, i64, &'a str)> {
        let mut seen = HashSet::new();
        self.batch
            .iter()
            .filter_map(|event| match event {
                NewEvent::Change(c) if matches!(c.change, Change::React { .. } | Change::Unreact { .. }) => Some((
                    self.room_id(event)?,
                    crate::rows::to_db(c.target_seq),
                    c.author.id.as_str(),
                )),
                _ => None,
            })
            .filter(|r| seen.insert(*r))
            .collect()
    }

    /// Numbers the new events and decides each change, given the stored events that match
    /// [`Plan::keys`] and what was read of the targets.
    pub fn assign(mut self, stored: Vec<MessageRow>, targets: Targets) -> Result<Assigned<'a>, StoreError> {
        let names_by_id: HashMap<i64, &RoomName> = self.rooms.iter().map(|(n, r)| (r.id, *n)).collect();
        let mut known: HashMap<(i64, String, String), Known> = HashMap::with_capacity(stored.len());
        for row in stored {
            let room = names_by_id
                .get(&row.room_id)
                .ok_or_else(|| StoreError::Corrupt(format!("messages row {} matched no locked room", row.id)))?;
            let key = (row.room_id, row.author_id.clone(), row.client_msg_id.clone());
            known.insert(key, Known::Stored(Box::new(row.into_event((*room).clone())?)));
        }
        let mut states = targets.into_states()?;
        let mut effects = EffectsBuilder::default();

        let mut slots = Vec::with_capacity(self.batch.len());
        let mut rows = Vec::new();
        for event in self.batch {
            let Some(room) = self.rooms.get_mut(event.room()) else {
                slots.push(Slot::RoomNotFound);
                continue;
            };
            let key = (
                room.id,
                event.author().id.as_str().to_owned(),
                event.client_msg_id().as_str().to_owned(),
            );
            match known.get(&key) {
                Some(Known::Stored(original)) => {
                    slots.push(Slot::Stored(original.clone()));
                    continue;
                }
                Some(Known::New(index)) => {
                    slots.push(Slot::DuplicateOfNew(*index));
                    continue;
                }
                None => {}
            }
            let seq = i64::try_from(room.last_seq + 1)
                .map_err(|_| StoreError::Corrupt(format!("room {} ran out of seqs", room.name)))?;
            let decided = match event {
                NewEvent::Message(m) => match m.reply_to {
                    Some(reply_to) => states
                        .get(&(room.id, crate::rows::to_db(reply_to)))
                        .ok_or(ChangeError::NoSuchMessage)
                        .and_then(MessageState::check_reply),
                    None => Ok(()),
                },
                NewEvent::Change(c) => {
                    let place = (room.id, crate::rows::to_db(c.target_seq));
                    match states.get_mut(&place) {
                        None => Err(ChangeError::NoSuchMessage),
                        Some(state) => {
                            let before = state.clone();
                            state
                                .apply(&c.author.id, c.admin, &c.change)
                                .map(|()| effects.record(place, seq, c, &before))
                        }
                    }
                }
            };
            if let Err(refusal) = decided {
                slots.push(Slot::Refused(refusal));
                continue;
            }
            if let NewEvent::Message(m) = event {
                // A message of this batch can be changed later in the same batch.
                states.insert((room.id, seq), MessageState::new(m.author.id.clone()));
            }
            room.last_seq += 1;
            room.grows = true;
            let index = rows.len();
            rows.push(PendingRow {
                room_id: room.id,
                seq,
                event,
            });
            known.insert(key, Known::New(index));
            slots.push(Slot::New(index));
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
            effects: effects.build(),
        })
    }
}

/// The message a change or a reply names.
fn target_of(event: &NewEvent) -> Option<u64> {
    match event {
        NewEvent::Message(m) => m.reply_to,
        NewEvent::Change(c) => Some(c.target_seq),
    }
}

/// Boxed: a stored event is large and rare (a retry), a new one is an index.
enum Known {
    Stored(Box<TimelineEvent>),
    New(usize),
}

/// What each input becomes; indexes point into [`Assigned::rows`].
enum Slot {
    RoomNotFound,
    Refused(ChangeError),
    /// A duplicate of an event stored before this batch.
    Stored(Box<TimelineEvent>),
    New(usize),
    /// A duplicate of an event stored earlier in this batch.
    DuplicateOfNew(usize),
}

/// A row to insert; the commit time is the database's.
pub(crate) struct PendingRow<'a> {
    pub room_id: i64,
    pub seq: i64,
    pub event: &'a NewEvent,
}

/// A reaction to insert.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct NewReaction {
    pub room_id: i64,
    pub seq: i64,
    pub emoji: String,
    pub user_id: String,
    pub user_name: String,
    /// The seq of the `react` event.
    pub reacted_seq: i64,
}

/// What the batch's changes do to their messages, as the SQL applies it: edits and
/// reactions first, deletions last (a deletion wipes what came before it).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Effects {
    /// (room id, message seq, seq of its last edit): the text and time come from that row.
    pub edits: Vec<(i64, i64, i64)>,
    /// (room id, message seq, seq of the deletion): the message and its edits are erased,
    /// its reactions removed.
    pub deletions: Vec<(i64, i64, i64)>,
    /// (room id, message seq, emoji, person): reactions taken back.
    pub unreactions: Vec<(i64, i64, String, String)>,
    pub reactions: Vec<NewReaction>,
}

/// One person's reaction with one emoji to one message, through the batch.
struct ReactionTrack {
    /// Stood before the batch.
    initially: bool,
    /// Stands after the batch so far.
    now: bool,
    /// The latest `react` of the batch: (its seq, the person's name).
    added: Option<(i64, String)>,
}

#[derive(Default)]
struct EffectsBuilder {
    edits: HashMap<Place, i64>,
    deletions: HashMap<Place, i64>,
    reactions: HashMap<(Place, Emoji, UserId), ReactionTrack>,
}

impl EffectsBuilder {
    /// Records an allowed change at `seq` to the message at `place`, whose state was
    /// `before` it.
    fn record(&mut self, place: Place, seq: i64, change: &crate::store::NewChange, before: &MessageState) {
        let person = &change.author.id;
        match &change.change {
            Change::Edit { .. } => {
                self.edits.insert(place, seq);
            }
            Change::Delete => {
                self.deletions.insert(place, seq);
            }
            Change::React { emoji } | Change::Unreact { emoji } => {
                let adds = matches!(change.change, Change::React { .. });
                let track = self
                    .reactions
                    .entry((place, emoji.clone(), person.clone()))
                    .or_insert_with(|| {
                        let initially = before.reactions.get(emoji).is_some_and(|r| r.users.contains(person));
                        ReactionTrack {
                            initially,
                            now: initially,
                            added: None,
                        }
                    });
                track.now = adds;
                if adds {
                    track.added = Some((seq, change.author.name.as_str().to_owned()));
                }
            }
        }
    }

    fn build(self) -> Effects {
        let deleted = |place: &Place| self.deletions.contains_key(place);
        let mut effects = Effects::default();
        for (&(room_id, seq), &edit) in &self.edits {
            if !deleted(&(room_id, seq)) {
                effects.edits.push((room_id, seq, edit));
            }
        }
        for (&(room_id, seq), &deletion) in &self.deletions {
            effects.deletions.push((room_id, seq, deletion));
        }
        for (((room_id, seq), emoji, person), track) in self.reactions {
            if deleted(&(room_id, seq)) {
                continue;
            }
            // Taken back, or taken back and given again (a new reaction, with a new seq).
            if track.initially && (!track.now || track.added.is_some()) {
                effects
                    .unreactions
                    .push((room_id, seq, emoji.as_str().to_owned(), person.as_str().to_owned()));
            }
            if let (true, Some((reacted_seq, user_name))) = (track.now, track.added) {
                effects.reactions.push(NewReaction {
                    room_id,
                    seq,
                    emoji: emoji.into_string(),
                    user_id: person.into_string(),
                    user_name,
                    reacted_seq,
                });
            }
        }
        // A fixed order: the same batch always writes rows in the same order.
        effects.edits.sort_unstable();
        effects.deletions.sort_unstable();
        effects.unreactions.sort_unstable();
        effects.reactions.sort_unstable();
        effects
    }
}

impl Effects {
    pub fn is_empty(&self) -> bool {
        self.edits.is_empty() && self.deletions.is_empty() && self.unreactions.is_empty() && self.reactions.is_empty()
    }
}

/// A batch with its seqs assigned, ready to insert.
pub(crate) struct Assigned<'a> {
    slots: Vec<Slot>,
    pub rows: Vec<PendingRow<'a>>,
    /// `(room id, new last_seq)` for every room that grows.
    pub room_updates: Vec<(i64, i64)>,
    pub effects: Effects,
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
            stored.push(stored_event(row.event, ins.id, row.seq as u64, ins.created_at_ms)?);
        }
        Ok(self
            .slots
            .into_iter()
            .map(|slot| match slot {
                Slot::RoomNotFound => AppendOutcome::RoomNotFound,
                Slot::Refused(refusal) => AppendOutcome::Refused(refusal),
                Slot::Stored(original) => AppendOutcome::Duplicate(*original),
                Slot::New(i) => AppendOutcome::Stored(stored[i].clone()),
                Slot::DuplicateOfNew(i) => AppendOutcome::Duplicate(stored[i].clone()),
            })
            .collect())
    }
}
