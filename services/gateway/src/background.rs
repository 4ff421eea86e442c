//! The gateway's background tasks besides its sockets, each a named function that runs
//! until the shutdown token is cancelled. [`crate::Gateway::start`] spawns them on one
//! `TaskTracker` and waits for them when it stops.
//!
//! * [`bus_reader`]: every event from the bus, to whoever on this gateway it concerns.
//! * [`crate::signals::listen`]: every ephemeral signal, to the rooms' members here.
//! * [`crate::presence::run`]: renews this gateway's presence holds, sweeps expired ones.
//! * [`repair_sweep`]: catches rooms up whose tail was never published.
//! * [`bus_watch`]: sends the clients elsewhere while the bus is out of reach.
//! * [`purge_sessions`]: deletes expired sessions.

use crate::auth;
use crate::control::{Control, StandingChange};
use crate::fanout::Fanout;
use crate::metrics::Metrics;
use crate::people::People;
use crate::presence::PresenceService;
use crate::signals::TypingSettings;
use chat_bus::{BusEvent, BusItem, BusReader, EventKind, Interest, Link, SignalReader};
use chat_domain::CloseCode;
use chat_store::Directory;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What the background tasks work with.
pub struct Parts {
    pub bus: Box<dyn BusReader>,
    /// What `bus` reads: shown on `/metrics`.
    pub interest: Arc<Interest>,
    pub signals: Box<dyn SignalReader>,
    pub typing: TypingSettings,
    pub presence: PresenceService,
    pub fanout: Fanout,
    pub people: People,
    pub directory: Arc<dyn Directory>,
    pub metrics: Metrics,
    pub repair_every: Duration,
    /// Whether `bus` reads, and how long it may not before the clients are sent away.
    pub link: Arc<Link>,
    pub bus_cutoff: Duration,
    /// Failed log-ins older than this are no longer counted (`auth.throttle.forget_after_secs`).
    pub forget_failures_after: Duration,
}

/// Starts the five tasks on one tracker, closed: waiting on it waits for all of them to
/// have stopped after `shutdown`.
pub fn spawn(parts: Parts, shutdown: &CancellationToken) -> TaskTracker {
    let Parts {
        bus,
        interest,
        signals,
        typing,
        presence,
        fanout,
        people,
        directory,
        metrics,
        repair_every,
        link,
        bus_cutoff,
        forget_failures_after,
    } = parts;
    let tasks = TaskTracker::new();
    tasks.spawn(crate::signals::listen(
        signals,
        fanout.clone(),
        (typing, presence.clone()),
        metrics.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(crate::presence::run(
        presence,
        people.clone(),
        fanout.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(bus_watch(
        link,
        interest.clone(),
        people.clone(),
        bus_cutoff,
        metrics.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(bus_reader(
        bus,
        interest,
        fanout.clone(),
        people,
        metrics.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(repair_sweep(
        fanout,
        directory.clone(),
        metrics,
        repair_every,
        shutdown.clone(),
    ));
    tasks.spawn(purge_sessions(directory, forget_failures_after, shutdown.clone()));
    tasks.close();
    tasks
}

/// A gateway cut off from the bus (Redis down, or out of its reach) delivers nothing, yet
/// its clients would wait on it, each believing itself connected. Once the reader has
/// failed for `cutoff`, this closes every socket with 1012 (a restart: reconnect), once a
/// second while the bus stays out of reach, and `/readyz` fails meanwhile, so that the
/// balancer sends the reconnections to a gateway that reads the bus. A client that comes
/// back here resumes from its last seq as after any reconnect; nothing is lost, since every
/// message is in the database. It also carries the reader's counts to the metrics, and
/// the partitions it reads: a reader that started one has nothing to hand over until an
/// entry comes, so the gauge cannot wait for its next batch.
pub async fn bus_watch(
    link: Arc<Link>,
    interest: Arc<Interest>,
    people: People,
    cutoff: Duration,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut counted = (0, 0);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let (lost, redirects) = link.counts();
        metrics.bus_connections_lost.inc_by(lost - counted.0);
        metrics.bus_redirects.inc_by(redirects - counted.1);
        counted = (lost, redirects);
        metrics.bus_partitions.set(interest.read_count() as i64);
        metrics.bus_reads.set(link.reads() as i64);
        if let Some(down) = link.down_for().filter(|&down| down >= cutoff) {
            let closed = people.close_all(CloseCode::ServiceRestart);
            if closed > 0 {
                tracing::warn!(
                    closed,
                    down_secs = down.as_secs(),
                    "bus out of reach: sockets closed so that they reconnect elsewhere"
                );
                metrics.bus_cutoff_closes.inc_by(closed as u64);
            }
        }
    }
}

/// Reads the bus until shutdown: events go to the fan-out and the people here; a resync
/// (the bus may have lost events) catches every local room up from the database.
pub async fn bus_reader(
    mut reader: Box<dyn BusReader>,
    interest: Arc<Interest>,
    fanout: Fanout,
    people: People,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    loop {
        let items = tokio::select! {
            _ = shutdown.cancelled() => break,
            items = reader.next_batch() => items,
        };
        let (mut read, mut delivered) = (0, 0);
        for item in items {
            match item {
                BusItem::Event(event) => {
                    read += 1;
                    delivered += u64::from(dispatch(&fanout, &people, event));
                }
                BusItem::Resync => {
                    metrics.bus_resyncs.inc();
                    fanout.resync_all();
                }
            }
        }
        metrics.bus_entries_read.inc_by(read);
        metrics.bus_entries_delivered.inc_by(delivered);
        metrics.bus_partitions.set(interest.read_count() as i64);
    }
}

/// One event from the bus, to whoever on this gateway it concerns. Returns whether it
/// concerned anyone here (a control event concerns every gateway).
fn dispatch(fanout: &Fanout, people: &People, event: BusEvent) -> bool {
    match event.kind {
        EventKind::Message => {
            // Rooms nobody here watches cost one map lookup: the frame is parsed only for
            // watchers.
            let notified = people.notify(&event.room, event.seq, &event.payload);
            fanout.deliver(event) || notified > 0
        }
        EventKind::Notice => fanout.notice(&event.room, event.payload),
        EventKind::Control | EventKind::Broadcast => match Control::parse(&event.payload) {
            Some(control) => {
                // Taken out of a room: their sockets here stop getting its events now (the
                // room event that says so went before, on the same stream).
                if let Control::Standing {
                    user,
                    room,
                    change: StandingChange::Removed { .. },
                } = &control
                {
                    for conn in people.conns_of(user) {
                        fanout.leave(room, conn);
                    }
                }
                people.apply(control);
                true
            }
            None => {
                tracing::warn!(room = %event.room, "unknown control event on the bus; ignored");
                false
            }
        },
    }
}

/// The repair sweep: a message whose publish was lost (its message service died before
/// publishing, or Redis refused the write) reaches members even when nothing after it in
/// the room would show the gap. Every `every`, rooms still short of what the database held
/// a sweep ago are caught up ([`Fanout::repair`]).
pub async fn repair_sweep(
    fanout: Fanout,
    directory: Arc<dyn Directory>,
    metrics: Metrics,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut stored_before = HashMap::new();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let repaired = fanout.repair(&stored_before);
        metrics.repairs.inc_by(repaired as u64);
        let names = fanout.names();
        stored_before = if names.is_empty() {
            HashMap::new()
        } else {
            match directory.last_seqs(&names).await {
                Ok(seqs) => seqs.into_iter().collect(),
                Err(error) => {
                    tracing::warn!(%error, "repair sweep: cannot read the rooms' last seqs");
                    HashMap::new()
                }
            }
        };
    }
}

/// How often a gateway deletes expired sessions.
const SESSION_PURGE_EVERY: Duration = Duration::from_secs(3600);

/// Expired sessions are refused anyway, and so are expired reset links, and failed log-ins
/// older than the throttle's window are not counted: this only keeps the tables from growing.
pub async fn purge_sessions(
    directory: Arc<dyn Directory>,
    forget_failures_after: Duration,
    shutdown: CancellationToken,
) {
    let mut every = tokio::time::interval(SESSION_PURGE_EVERY);
    let forget_ms = i64::try_from(forget_failures_after.as_millis()).unwrap_or(i64::MAX);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = every.tick() => {}
        }
        let now = auth::now_ms();
        match directory.purge_expired_sessions(now).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "expired sessions removed"),
            Err(error) => tracing::warn!(%error, "could not remove expired sessions"),
        }
        match directory.purge_credentials(now.saturating_sub(forget_ms), now).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "old failed log-ins and expired reset links removed"),
            Err(error) => tracing::warn!(%error, "could not remove old failed log-ins and reset links"),
        }
    }
}
