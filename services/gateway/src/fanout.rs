//! The fan-out core: the registry of rooms with local members, and the ordering layer
//! between the bus and the sockets.
//!
//! Each room with at least one member on this gateway has a [`Hub`]. Events from the bus
//! enter through [`Fanout::deliver`]; the hub delivers them to its members strictly in `seq`
//! order, exactly once: anything below the next expected seq is a repeat and is dropped,
//! anything above waits in `pending`. A gap that the bus does not fill within
//! `gap_fill_after` is filled from history over gRPC, through the same path.
//!
//! Joining is a handshake that makes history and live messages meet without a gap or an
//! overlap: the member is registered first (so nothing published meanwhile is missed),
//! the hub's position fixes the cut (`from`), history is read up to the cut, and then the
//! `joined` frame and whatever arrived meanwhile are queued together under the hub's lock.
//!
//! It reads history through the small [`History`] trait, not the gRPC client, so its rules
//! are unit-tested with an in-memory history (this module's tests).

use crate::error::GatewayError;
use crate::metrics::Metrics;
use crate::outbox::{Outbox, Pushed, text};
use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use chat_bus::{BusEvent, Interest};
use chat_common::telemetry::{MessageTrace, TRACE_TARGET, is_sampled};
use chat_domain::{RoomName, TimelineEvent};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub type ConnId = u64;

/// Most messages fetched per history call while filling a gap.
const FILL_PAGE: u32 = 500;

/// Longest a join waits for the bus reader to start reading its room's partition. Past it
/// (the reader cut off from Redis) the join goes on: what the reader then misses, the gap
/// fill and the repair sweep bring.
const READY_WAIT: Duration = Duration::from_secs(5);

/// Where a gap is filled from: the room's committed messages, as the database holds them
/// (the message services, over gRPC, in a running gateway).
#[async_trait::async_trait]
pub trait History: Send + Sync + 'static {
    /// Events of `room` with seq > `after_seq`, oldest first, at most `limit`: messages
    /// (deleted ones as tombstones) and changes, so the sequence has no holes. (A deleted
    /// room's events are erased; its members hear of that through a notice.)
    async fn after(&self, room: &RoomName, after_seq: u64, limit: u32) -> Result<Vec<TimelineEvent>, GatewayError>;
}

/// The rooms with members on this gateway, each delivering in order, exactly once.
#[derive(Clone)]
pub struct Fanout {
    inner: Arc<Inner>,
}

struct Inner {
    /// This gateway's address, naming it in spans.
    instance: String,
    hubs: Mutex<HashMap<RoomName, Arc<Hub>>>,
    /// The bus reader's partitions: each room with a hub holds its partition.
    interest: Arc<Interest>,
    history: Arc<dyn History>,
    gap_fill_after: Duration,
    /// Frames a joining member may collect before its `joined` frame is sent.
    join_buffer: usize,
    metrics: Metrics,
}

pub struct Hub {
    room: RoomName,
    state: Mutex<HubState>,
}

#[derive(Default)]
struct HubState {
    /// The seq to deliver next; `None` until the first join learned the room's last seq.
    next_seq: Option<u64>,
    /// Events that arrived ahead of `next_seq`.
    pending: BTreeMap<u64, Utf8Bytes>,
    members: HashMap<ConnId, Member>,
    /// A gap fill or catch-up is scheduled or running.
    filling: bool,
}

struct Member {
    outbox: Outbox,
    /// Deliver only seqs at or above this; set when the join fixes its cut.
    from: u64,
    /// `Some` while joining: frames collected until `joined` is sent.
    joining: Option<Vec<Utf8Bytes>>,
}

impl Fanout {
    pub fn new(
        instance: String,
        interest: Arc<Interest>,
        history: Arc<dyn History>,
        gap_fill_after: Duration,
        join_buffer: usize,
        metrics: Metrics,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                instance,
                hubs: Mutex::new(HashMap::new()),
                interest,
                history,
                gap_fill_after,
                join_buffer,
                metrics,
            }),
        }
    }

    /// Rooms with at least one local member (or a join in progress).
    pub fn len(&self) -> usize {
        self.inner.hubs.lock().expect("rooms lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Step 1 of a join: registers `conn` as a joining member, so that from now on every
    /// event of the room is kept for it.
    pub fn begin_join(&self, room: &RoomName, conn: ConnId, outbox: Outbox) -> Arc<Hub> {
        let mut hubs = self.inner.hubs.lock().expect("rooms lock");
        let hub = hubs
            .entry(room.clone())
            .or_insert_with(|| {
                self.inner.interest.hold(room);
                Arc::new(Hub {
                    room: room.clone(),
                    state: Mutex::new(HubState::default()),
                })
            })
            .clone();
        hub.state.lock().expect("hub lock").members.insert(
            conn,
            Member {
                outbox,
                from: u64::MAX,
                joining: Some(Vec::new()),
            },
        );
        self.inner.metrics.rooms.set(hubs.len() as i64);
        hub
    }

    /// Between steps 1 and 2: waits until the bus reader reads the room's partition, so
    /// that the last seq read next and the events read from the bus meet without a gap.
    /// Immediate unless the room is the first on its partition here.
    pub async fn ready(&self, room: &RoomName) {
        if tokio::time::timeout(READY_WAIT, self.inner.interest.ready(room))
            .await
            .is_err()
        {
            tracing::warn!(%room, "the bus reader did not start the room's partition in time; joining anyway");
        }
    }

    /// Step 2: fixes the cut between history and live delivery. `last_seq` is the room's
    /// last seq as the database reported it after step 1. Returns the cut: the seq this
    /// gateway delivers next. History must cover everything below it (and above
    /// `since_seq`); live delivery covers the cut and everything after it, except what the
    /// client has already seen (`since_seq`).
    pub fn fix_cut(&self, hub: &Arc<Hub>, conn: ConnId, last_seq: u64, since_seq: Option<u64>) -> u64 {
        let mut state = hub.state.lock().expect("hub lock");
        if state.next_seq.is_none() {
            state.next_seq = Some(last_seq + 1);
            state.pending = state.pending.split_off(&(last_seq + 1));
            self.drain(hub, &mut state);
        }
        let cut = state.next_seq.expect("set above");
        // A client that has already seen further (through another gateway) must not get
        // those messages again.
        if let Some(member) = state.members.get_mut(&conn) {
            member.from = since_seq.map_or(cut, |s| cut.max(s + 1));
        }
        cut
    }

    /// Step 3: queues `joined`, then what arrived since the cut, and makes the member live.
    /// Returns false if the member is gone (it left, or was closed meanwhile).
    pub fn activate(&self, hub: &Arc<Hub>, conn: ConnId, joined: Bytes) -> bool {
        let mut state = hub.state.lock().expect("hub lock");
        let Some(member) = state.members.get_mut(&conn) else {
            return false;
        };
        let buffered = member.joining.take().unwrap_or_default();
        if member.outbox.push(text(joined)) != Pushed::Queued {
            return false;
        }
        for frame in buffered {
            if member.outbox.push(frame) != Pushed::Queued {
                self.inner.metrics.slow_consumer_closes.inc();
                return false;
            }
        }
        true
    }

    /// Removes a member; a room left without members is forgotten.
    pub fn leave(&self, room: &RoomName, conn: ConnId) {
        let mut hubs = self.inner.hubs.lock().expect("rooms lock");
        if let Some(hub) = hubs.get(room) {
            let mut state = hub.state.lock().expect("hub lock");
            state.members.remove(&conn);
            if state.members.is_empty() {
                drop(state);
                hubs.remove(room);
                self.inner.interest.release(room);
            }
        }
        self.inner.metrics.rooms.set(hubs.len() as i64);
    }

    /// An event from the bus. Rooms without local members are skipped at once. Returns
    /// whether the room has members here.
    pub fn deliver(&self, mut event: BusEvent) -> bool {
        let Some(hub) = self.hub(&event.room) else {
            return false;
        };
        // The fan-out of this entry on this gateway, a child of the publish that the entry's
        // traceparent names: one trace from the sender to every receiver. None for a trace
        // the sampler left out.
        let trace = MessageTrace::continue_or_start(event.traceparent.take(), || {
            tracing::info_span!(
                target: TRACE_TARGET,
                parent: None,
                "fan-out",
                room = %event.room,
                seq = event.seq,
                gateway = %self.inner.instance,
            )
        });
        let _entered = trace.span().enter();
        if let Some(published) = event.published_at_ms {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            let lag = now.saturating_sub(published) as f64 / 1000.0;
            self.inner.metrics.fanout_lag_seconds.observe(lag);
            self.inner.metrics.bus_reader_lag_seconds.set(lag);
        }
        let frame = match Utf8Bytes::try_from(event.payload) {
            Ok(frame) => frame,
            Err(_) => {
                tracing::error!(room = %event.room, seq = event.seq, "bus event is not UTF-8; dropped");
                return true;
            }
        };
        self.accept(&hub, event.seq, frame);
        true
    }

    /// A notice (a deleted room): to every live member of the room now, outside the seq
    /// order. A deleted message is no notice but an event of the timeline, in order.
    /// Returns whether the room has members here.
    pub fn notice(&self, room: &RoomName, payload: Bytes) -> bool {
        let Some(hub) = self.hub(room) else {
            return false;
        };
        let Ok(frame) = Utf8Bytes::try_from(payload) else {
            tracing::error!(%room, "notice is not UTF-8; dropped");
            return true;
        };
        let mut state = hub.state.lock().expect("hub lock");
        for member in state.members.values_mut() {
            match &mut member.joining {
                Some(buffer) => buffer.push(frame.clone()),
                None => {
                    member.outbox.push(frame.clone());
                }
            }
        }
        true
    }

    /// An ephemeral frame (typing, presence, a read receipt) to the room's members here who
    /// have joined it, if their queues have room; not to one still joining, whose `joined`
    /// carries the state instead. Returns how many it reached.
    pub fn signal(&self, room: &RoomName, payload: Bytes) -> usize {
        let Some(hub) = self.hub(room) else {
            return 0;
        };
        let Ok(frame) = Utf8Bytes::try_from(payload) else {
            tracing::error!(%room, "signal is not UTF-8; dropped");
            return 0;
        };
        let state = hub.state.lock().expect("hub lock");
        state
            .members
            .values()
            .filter(|member| member.joining.is_none() && member.outbox.offer(frame.clone()))
            .count()
    }

    /// How many sockets here have `room` open, joined or joining.
    pub fn open(&self, room: &RoomName) -> usize {
        self.hub(room)
            .map_or(0, |hub| hub.state.lock().expect("hub lock").members.len())
    }

    /// The last seq this gateway delivered in `room`, if it has members there.
    pub fn position(&self, room: &RoomName) -> Option<u64> {
        let hub = self.hub(room)?;
        let next = hub.state.lock().expect("hub lock").next_seq?;
        Some(next - 1)
    }

    /// After the bus may have lost events: catch every local room up from the database.
    pub fn resync_all(&self) {
        let hubs: Vec<Arc<Hub>> = self.inner.hubs.lock().expect("rooms lock").values().cloned().collect();
        tracing::info!(rooms = hubs.len(), "resyncing rooms from the database");
        for hub in hubs {
            self.schedule_fill(hub, Duration::ZERO, true);
        }
    }

    /// Rooms with local members: what the repair sweep asks the database about.
    pub fn names(&self) -> Vec<RoomName> {
        self.inner.hubs.lock().expect("rooms lock").keys().cloned().collect()
    }

    /// One step of the repair sweep. `stored_before` holds rooms' last seqs as the database
    /// reported them at the previous sweep: those messages were committed a sweep ago, so a
    /// room still short of them lost a publish (its message service died holding it, or
    /// Redis refused the write) rather than having it in flight. Nothing later in the room
    /// would reveal such a lost tail as a gap; this catches the room up from history.
    /// Returns how many rooms it started catching up.
    pub fn repair(&self, stored_before: &HashMap<RoomName, u64>) -> usize {
        let hubs: Vec<Arc<Hub>> = self.inner.hubs.lock().expect("rooms lock").values().cloned().collect();
        let mut repaired = 0;
        for hub in hubs {
            let Some(&stored) = stored_before.get(&hub.room) else {
                continue;
            };
            let mut state = hub.state.lock().expect("hub lock");
            let behind = state.next_seq.is_some_and(|next| next - 1 < stored);
            if behind && !state.filling {
                state.filling = true;
                drop(state);
                tracing::warn!(room = %hub.room, stored, "room behind the database: a publish was lost; catching up");
                self.schedule_fill(hub, Duration::ZERO, true);
                repaired += 1;
            }
        }
        repaired
    }

    fn hub(&self, room: &RoomName) -> Option<Arc<Hub>> {
        self.inner.hubs.lock().expect("rooms lock").get(room).cloned()
    }

    fn accept(&self, hub: &Arc<Hub>, seq: u64, frame: Utf8Bytes) {
        let mut state = hub.state.lock().expect("hub lock");
        if state.next_seq.is_some_and(|next| seq < next) {
            return; // already delivered: a repeat from a retry, a resync or a gap fill
        }
        state.pending.insert(seq, frame);
        self.drain(hub, &mut state);
    }

    /// Delivers every pending event that is next in line; schedules a fill if a gap remains.
    fn drain(&self, hub: &Arc<Hub>, state: &mut HubState) {
        let Some(mut next) = state.next_seq else {
            return; // not initialised yet: keep everything until the first join fixes the cut
        };
        while let Some(frame) = state.pending.remove(&next) {
            self.fan_out(state, next, &frame);
            next += 1;
        }
        state.next_seq = Some(next);
        if !state.pending.is_empty() && !state.filling {
            state.filling = true;
            self.schedule_fill(hub.clone(), self.inner.gap_fill_after, false);
        }
    }

    fn fan_out(&self, state: &mut HubState, seq: u64, frame: &Utf8Bytes) {
        // One span per room per gateway, not per socket, in the event's trace if that is
        // recorded (a span made outside one would start a trace of its own).
        let _span = if is_sampled(&tracing::Span::current()) {
            tracing::info_span!(target: TRACE_TARGET, "deliver", seq, members = state.members.len())
        } else {
            tracing::Span::none()
        }
        .entered();
        let mut delivered = 0u64;
        for member in state.members.values_mut() {
            if seq < member.from {
                continue;
            }
            match &mut member.joining {
                Some(buffer) if buffer.len() < self.inner.join_buffer => buffer.push(frame.clone()),
                Some(_) => {
                    if !member.outbox.is_closing() {
                        member.outbox.close(chat_domain::CloseCode::SlowConsumer);
                        self.inner.metrics.slow_consumer_closes.inc();
                    }
                }
                None => match member.outbox.push(frame.clone()) {
                    Pushed::Queued => delivered += 1,
                    Pushed::SlowConsumer => {
                        self.inner.metrics.slow_consumer_closes.inc();
                    }
                    Pushed::Gone => {}
                },
            }
        }
        self.inner.metrics.deliveries.inc_by(delivered);
    }

    /// Fills the room's gap (or, with `always`, catches it up) from history after `delay`.
    fn schedule_fill(&self, hub: Arc<Hub>, delay: Duration, always: bool) {
        let rooms = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            rooms.fill(&hub, always).await;
        });
    }

    async fn fill(&self, hub: &Arc<Hub>, always: bool) {
        loop {
            if self.hub(&hub.room).is_none_or(|current| !Arc::ptr_eq(&current, hub)) {
                return; // the room has no local members any more
            }
            let after = {
                let mut state = hub.state.lock().expect("hub lock");
                let Some(next) = state.next_seq else {
                    state.filling = false;
                    return;
                };
                if !always && state.pending.is_empty() {
                    state.filling = false;
                    return; // the bus filled the gap in time
                }
                next - 1
            };
            let events = match self.inner.history.after(&hub.room, after, FILL_PAGE).await {
                Ok(events) => events,
                Err(error) => {
                    tracing::warn!(room = %hub.room, %error, "gap fill failed; retrying");
                    tokio::time::sleep(self.inner.gap_fill_after.max(Duration::from_millis(100))).await;
                    continue;
                }
            };
            self.inner.metrics.gap_fills.inc();
            let full_page = events.len() == FILL_PAGE as usize;
            for event in events {
                // Every event as its live frame: a tombstone too, so that a client that
                // never saw the message keeps its place.
                self.accept(hub, event.seq(), text(event.to_frame()));
            }
            if full_page {
                continue; // more to catch up
            }
            let mut state = hub.state.lock().expect("hub lock");
            state.filling = false;
            if !state.pending.is_empty() {
                // What is still missing was not in the database a moment ago: look again
                // after the usual delay.
                state.filling = true;
                drop(state);
                self.schedule_fill(hub.clone(), self.inner.gap_fill_after, false);
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests;
