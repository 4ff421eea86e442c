//! What a gateway's bus reader reads: the partitions that hold rooms it serves.
//!
//! A gateway holds a room while it has a member there (the fan-out) or a socket to notify
//! about it (the people connected here). Holding a room wants its partition; the reader
//! starts reading a wanted partition at once, from its current end, and stops reading a
//! partition [`LINGER`] after its last room was released, so that rooms coming and going
//! do not make it start and stop over and over. Every reader also reads the control
//! stream, which carries what every gateway needs.
//!
//! Starting to read a partition from its end loses nothing a join needs, because a join
//! waits for [`Interest::ready`] before it reads the room's last seq from the database:
//! a message committed before that read is in the join's history, and one committed after
//! it is published after the reader's start, so it is read.

use crate::partition::partition_of;
use chat_domain::RoomName;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How long a partition stays read after the last room on it was released.
pub const LINGER: Duration = Duration::from_secs(30);

pub struct Interest {
    partitions: u32,
    state: Mutex<State>,
    /// Woken when a partition is wanted that is not read yet (the reader's wake-up).
    wanted: Notify,
    /// Woken when the reader has started reading partitions (joins waiting for them).
    started: Notify,
}

struct State {
    /// The reader reads every partition, whatever is held (the in-process bus, tools).
    everything: bool,
    partitions: Vec<Partition>,
}

#[derive(Default, Clone, Copy)]
struct Partition {
    /// Holds of rooms on this partition: one per room and holder.
    holds: u32,
    /// The reader reads it, positioned so that nothing published since it started is missed.
    read: bool,
    /// When its holds last fell to zero.
    idle_since: Option<Instant>,
}

/// What the reader is to change.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Wanted and not read: start reading from the current end, then [`Interest::started`].
    pub start: Vec<u32>,
    /// Read, and idle longer than [`LINGER`]: no longer read (already marked so).
    pub stop: Vec<u32>,
}

impl Interest {
    /// Nothing held yet, on a bus of `partitions` partitions.
    pub fn new(partitions: u32) -> Self {
        let partitions = partitions.max(1);
        Self {
            partitions,
            state: Mutex::new(State {
                everything: false,
                partitions: vec![Partition::default(); partitions as usize],
            }),
            wanted: Notify::new(),
            started: Notify::new(),
        }
    }

    /// A reader of every partition, read from the start (the in-process bus: one log).
    pub fn everything(partitions: u32) -> Self {
        let interest = Self::new(partitions);
        interest.hold_everything();
        interest
    }

    /// From now on every partition is wanted.
    pub fn hold_everything(&self) {
        self.state.lock().expect("interest lock").everything = true;
        self.wanted.notify_one();
    }

    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    pub fn partition_of(&self, room: &RoomName) -> u32 {
        partition_of(room, self.partitions)
    }

    /// One more holder of `room`; every call is matched by one [`Interest::release`].
    pub fn hold(&self, room: &RoomName) {
        let index = self.partition_of(room) as usize;
        let mut state = self.state.lock().expect("interest lock");
        let partition = &mut state.partitions[index];
        partition.holds += 1;
        partition.idle_since = None;
        if !partition.read && !state.everything {
            self.wanted.notify_one();
        }
    }

    pub fn release(&self, room: &RoomName) {
        let index = self.partition_of(room) as usize;
        let mut state = self.state.lock().expect("interest lock");
        let partition = &mut state.partitions[index];
        partition.holds = partition.holds.saturating_sub(1);
        if partition.holds == 0 {
            partition.idle_since = Some(Instant::now());
        }
    }

    /// Whether the reader reads `room`'s partition now.
    pub fn reads(&self, room: &RoomName) -> bool {
        let index = self.partition_of(room) as usize;
        self.state.lock().expect("interest lock").partitions[index].read
    }

    /// Waits until the reader reads `room`'s partition: from then on, whatever is published
    /// there reaches this gateway. Callers bound the wait (the reader may be cut off).
    pub async fn ready(&self, room: &RoomName) {
        loop {
            let started = self.started.notified();
            tokio::pin!(started);
            // Registered before the check, so a start in between is not missed.
            started.as_mut().enable();
            if self.reads(room) {
                return;
            }
            started.await;
        }
    }

    /// How many partitions the reader reads now.
    pub fn read_count(&self) -> usize {
        let state = self.state.lock().expect("interest lock");
        state.partitions.iter().filter(|p| p.read).count()
    }

    /// Waits until a partition may be wanted that is not read (perhaps spuriously: check
    /// [`Interest::plan`]).
    pub async fn changed(&self) {
        self.wanted.notified().await;
    }

    /// Whether a partition is wanted that is not read.
    pub fn behind(&self) -> bool {
        let state = self.state.lock().expect("interest lock");
        state
            .partitions
            .iter()
            .any(|p| !p.read && (state.everything || p.holds > 0))
    }

    /// What the reader should change now: partitions to start, and partitions it stops
    /// reading (marked unread here).
    pub fn plan(&self, now: Instant) -> Plan {
        let mut state = self.state.lock().expect("interest lock");
        let everything = state.everything;
        let mut plan = Plan::default();
        for (index, partition) in state.partitions.iter_mut().enumerate() {
            let wanted = everything
                || partition.holds > 0
                || partition
                    .idle_since
                    .is_some_and(|idle| now.duration_since(idle) < LINGER);
            if wanted && !partition.read {
                plan.start.push(index as u32);
            } else if !wanted && partition.read {
                partition.read = false;
                partition.idle_since = None;
                plan.stop.push(index as u32);
            }
        }
        plan
    }

    /// The reader now reads `partitions` from where they ended when it looked.
    pub fn started(&self, partitions: &[u32]) {
        {
            let mut state = self.state.lock().expect("interest lock");
            for &index in partitions {
                state.partitions[index as usize].read = true;
            }
        }
        self.started.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(name: &str) -> RoomName {
        RoomName::parse(name).unwrap()
    }

    /// Two rooms on different partitions of 8.
    fn two_rooms(interest: &Interest) -> (RoomName, RoomName) {
        let a = room("a");
        let b = (0..)
            .map(|i| room(&format!("b{i}")))
            .find(|b| interest.partition_of(b) != interest.partition_of(&a))
            .unwrap();
        (a, b)
    }

    #[test]
    fn held_rooms_start_their_partitions_and_released_ones_stop_after_lingering() {
        let interest = Interest::new(8);
        let (a, b) = two_rooms(&interest);
        let now = Instant::now();
        assert_eq!(interest.plan(now), Plan::default(), "nothing held, nothing read");
        interest.hold(&a);
        interest.hold(&a);
        interest.hold(&b);
        assert!(interest.behind());
        let mut expected = vec![interest.partition_of(&a), interest.partition_of(&b)];
        expected.sort();
        let plan = interest.plan(now);
        assert_eq!(plan.start, expected);
        assert!(!interest.reads(&a), "not read until the reader says it started");
        interest.started(&plan.start);
        assert!(interest.reads(&a) && interest.reads(&b) && !interest.behind());
        assert_eq!(interest.read_count(), 2);
        assert_eq!(interest.plan(now), Plan::default(), "nothing to change");

        interest.release(&a);
        interest.release(&b);
        let later = Instant::now();
        assert_eq!(interest.plan(later), Plan::default(), "b lingers; a is still held once");
        assert_eq!(
            interest.plan(later + LINGER),
            Plan {
                start: vec![],
                stop: vec![interest.partition_of(&b)]
            }
        );
        assert!(interest.reads(&a) && !interest.reads(&b));

        // Held again while lingering: read all along, nothing to start.
        interest.release(&a);
        interest.hold(&a);
        assert_eq!(interest.plan(Instant::now() + LINGER * 2), Plan::default());
    }

    #[test]
    fn everything_is_wanted_when_held_whole() {
        let interest = Interest::everything(4);
        assert_eq!(interest.plan(Instant::now()).start, vec![0, 1, 2, 3]);
    }

    #[tokio::test]
    async fn a_join_waits_until_its_partition_is_read() {
        let interest = std::sync::Arc::new(Interest::new(8));
        let a = room("a");
        interest.hold(&a);
        let waiting = tokio::spawn({
            let interest = interest.clone();
            let a = a.clone();
            async move { interest.ready(&a).await }
        });
        // The reader is woken, plans and starts.
        tokio::time::timeout(Duration::from_secs(10), interest.changed())
            .await
            .expect("the hold wakes the reader");
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "not ready before the reader started");
        let plan = interest.plan(Instant::now());
        interest.started(&plan.start);
        tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("ready once started")
            .unwrap();
    }
}
