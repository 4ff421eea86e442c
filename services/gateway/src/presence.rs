//! Who is online, as this gateway takes part in it: it holds its own people in the shared
//! registry ([`chat_bus::Presence`]), announces who comes and goes to the rooms they share,
//! and tells each joining socket who of the room is online.
//!
//! **What it costs.** A change (someone's first socket anywhere, or their last one closing)
//! is one signal per room of theirs. In a room up to `big_room_members`, every member who
//! has the room open gets a `presence` frame for it. Above that (or open on more sockets
//! than that on one gateway, before its count is known), no frame per change: a
//! gateway marks the room changed, and at most every `summary_ms` recounts it and sends its
//! members one count. So a join storm of 5,000 into one room costs each member a few counts,
//! not 5,000 frames, and the gateway's work grows with the room, not with its square. A
//! joining socket gets the room's online members in a small room (a bounded lookup), and a
//! count no older than `summary_ms` in a big one.
//!
//! **A gateway that dies** stops renewing its holds; they expire after `ttl_ms`, and the
//! next sweep (any gateway's, every `renew_ms`) takes them away and announces who went
//! offline. Presence is best effort: a registry that cannot be reached is logged, and the
//! next renewal puts things right.

use crate::fanout::Fanout;
use crate::metrics::Metrics;
use crate::people::{MAX_WATCHED_ROOMS, People};
use crate::settings::PresenceSettings;
use chat_bus::{Bus, Presence, Signal, SignalKind};
use chat_domain::protocol::{PresenceFrame, RoomPresence, ServerFrame};
use chat_domain::{RoomName, UserId};
use chat_store::Directory;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Expired holds one sweep takes away at most.
const SWEEP_LIMIT: usize = 1000;

/// How long a socket's connect or join waits on presence (Redis) at most. Presence is an
/// extra: with Redis slow or down, a person still gets in, shown late (the next renewal
/// puts it right) rather than kept waiting for the connection's retries.
pub const WAIT: Duration = Duration::from_secs(1);

/// `work` within [`WAIT`], or nothing (logged).
pub async fn within<T>(what: &str, work: impl std::future::Future<Output = T>) -> Option<T> {
    let done = tokio::time::timeout(WAIT, work).await;
    if done.is_err() {
        tracing::warn!(what, "presence: gave up waiting on the registry");
    }
    done.ok()
}

#[derive(Clone)]
pub struct PresenceService {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Arc<dyn Presence>,
    bus: Arc<dyn Bus>,
    directory: Arc<dyn Directory>,
    /// This gateway's name in the registry: new at every start, so that a restarted
    /// gateway's holds are its own and its predecessor's expire.
    gateway: String,
    settings: PresenceSettings,
    metrics: Metrics,
    rooms: Mutex<HashMap<RoomName, RoomState>>,
}

/// What this gateway knows of a room's presence, for the rooms joined here.
struct RoomState {
    big: bool,
    /// A big room's last count, and when it was taken.
    count: Option<(Instant, usize)>,
    /// A change was heard since the count.
    changed: bool,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl PresenceService {
    pub fn new(
        bus: Arc<dyn Bus>,
        directory: Arc<dyn Directory>,
        instance: &str,
        settings: PresenceSettings,
        metrics: Metrics,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                registry: bus.presence(),
                bus,
                directory,
                gateway: format!("{instance}/{}", uuid::Uuid::new_v4().simple()),
                settings,
                metrics,
                rooms: Mutex::default(),
            }),
        }
    }

    pub fn enabled(&self) -> bool {
        self.inner.settings.enabled
    }

    /// `user`'s first socket on this gateway opened: they are online, and if they were not
    /// before, the rooms they belong to hear so.
    pub async fn arrived(&self, user: &UserId, rooms: &[RoomName]) {
        if !self.enabled() {
            return;
        }
        let ttl = self.inner.settings.ttl_ms;
        match self
            .inner
            .registry
            .renew(&self.inner.gateway, std::slice::from_ref(user), now_ms(), ttl)
            .await
        {
            Ok(arrived) if !arrived.is_empty() => self.announce(user, rooms, true).await,
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "presence: cannot record an arrival"),
        }
    }

    /// `user`'s last socket on this gateway closed: if no gateway holds them now, they are
    /// offline, and their rooms hear so.
    pub async fn departed(&self, user: &UserId, rooms: &[RoomName]) {
        if !self.enabled() {
            return;
        }
        match self.inner.registry.release(&self.inner.gateway, user, now_ms()).await {
            Ok(true) => self.announce(user, rooms, false).await,
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "presence: cannot record a departure"),
        }
    }

    /// `user` joined `room` on a socket: its members hear that they are online (a new
    /// member was in no announcement of theirs yet). Repeats are harmless: a client sets
    /// the same state again.
    pub async fn entered(&self, user: &UserId, room: &RoomName) {
        if self.enabled() {
            self.announce(user, std::slice::from_ref(room), true).await;
        }
    }

    /// `user` is no longer a member of `room`: its members count them out, as if they had
    /// gone offline there.
    pub async fn left(&self, user: &UserId, room: &RoomName) {
        if self.enabled() {
            self.announce(user, std::slice::from_ref(room), false).await;
        }
    }

    /// Who of `room` is online, for a socket joining it, with `open_here` sockets here
    /// having it open; `None` when presence is off or cannot be read.
    pub async fn of_room(&self, room: &RoomName, open_here: usize) -> Option<RoomPresence> {
        if !self.enabled() {
            return None;
        }
        let small = self.inner.settings.big_room_members;
        let result = async {
            // A room known to be big is not looked at member by member again.
            if !self.is_big(room, open_here) {
                let (members, online) = self.members_online(room, small + 1).await?;
                if members <= small as usize {
                    self.remember(room, false, None);
                    return Ok::<_, String>(RoomPresence {
                        online_count: online.len(),
                        online: Some(online),
                    });
                }
            }
            let fresh = Duration::from_millis(self.inner.settings.summary_ms);
            let cached = self.state(room, |s| s.count.filter(|(at, _)| at.elapsed() < fresh).map(|(_, n)| n));
            let online_count = match cached.flatten() {
                Some(count) => count,
                None => self.recount(room).await?,
            };
            Ok(RoomPresence {
                online_count,
                online: None,
            })
        }
        .await;
        result
            .inspect_err(|error| tracing::warn!(%room, %error, "presence: cannot read the room's"))
            .ok()
    }

    /// Whether each of `users` is online; `None` when presence is off or cannot be read.
    pub async fn online(&self, users: &[UserId]) -> Option<Vec<bool>> {
        if !self.enabled() {
            return None;
        }
        self.inner
            .registry
            .online(users, now_ms())
            .await
            .inspect_err(|error| tracing::warn!(%error, "presence: cannot read who is online"))
            .ok()
    }

    /// Whether `user` is online, and when they were last seen going offline (ms); `None`
    /// when presence is off or cannot be read.
    pub async fn seen(&self, user: &UserId) -> Option<(bool, Option<u64>)> {
        let online = self.online(std::slice::from_ref(user)).await?.first().copied()?;
        let last_seen = self.inner.registry.last_seen(user).await.ok()?;
        Some((online, last_seen))
    }

    /// A presence signal for `room` arrived, which `open_here` sockets of this gateway have
    /// open: whether to pass it on to them (a small room, or one nobody here has joined,
    /// where it reaches nobody). A big room's is only noted, for its next count.
    pub fn pass_on(&self, room: &RoomName, open_here: usize) -> bool {
        self.known(room, open_here, |s| {
            s.changed = true;
            !s.big
        })
        .unwrap_or(true)
    }

    /// Whether `room`, which `open_here` sockets of this gateway have open, is known here
    /// as one with more than `big_room_members` members: its read receipts are not passed
    /// on, and its presence comes as counts.
    pub fn is_big(&self, room: &RoomName, open_here: usize) -> bool {
        self.known(room, open_here, |s| s.big).unwrap_or(false)
    }

    /// `f` on what is known of `room`. Open here on more sockets than `big_room_members`,
    /// it is big whatever its last count said: during a join storm that count is read late
    /// or not at all (the registry and the database are busy), and until then every change
    /// would be a frame to every socket, work that grows with the square of the room.
    fn known<T>(&self, room: &RoomName, open_here: usize, f: impl FnOnce(&mut RoomState) -> T) -> Option<T> {
        let crowded = open_here > self.inner.settings.big_room_members as usize;
        let mut rooms = self.inner.rooms.lock().expect("presence lock");
        let state = match rooms.get_mut(room) {
            Some(state) => state,
            None if crowded => rooms.entry(room.clone()).or_insert(RoomState {
                big: true,
                count: None,
                changed: false,
            }),
            None => return None,
        };
        state.big |= crowded;
        Some(f(state))
    }

    fn state<T>(&self, room: &RoomName, f: impl FnOnce(&mut RoomState) -> T) -> Option<T> {
        self.inner.rooms.lock().expect("presence lock").get_mut(room).map(f)
    }

    fn remember(&self, room: &RoomName, big: bool, count: Option<usize>) {
        let mut rooms = self.inner.rooms.lock().expect("presence lock");
        let state = rooms.entry(room.clone()).or_insert(RoomState {
            big,
            count: None,
            changed: false,
        });
        state.big = big;
        if let Some(count) = count {
            state.count = Some((Instant::now(), count));
            state.changed = false;
        }
    }

    /// Counts a big room's online members (the first `max_counted_members`).
    async fn recount(&self, room: &RoomName) -> Result<usize, String> {
        self.inner.metrics.presence_counts.inc();
        let (_, online) = self
            .members_online(room, self.inner.settings.max_counted_members)
            .await?;
        self.remember(room, true, Some(online.len()));
        Ok(online.len())
    }

    /// How many members `room` has (at most `limit` looked at), and who of them is online.
    async fn members_online(&self, room: &RoomName, limit: u32) -> Result<(usize, Vec<UserId>), String> {
        let ids = self
            .inner
            .directory
            .member_ids(room, limit)
            .await
            .map_err(|e| e.to_string())?;
        let online = self
            .inner
            .registry
            .online(&ids, now_ms())
            .await
            .map_err(|e| e.to_string())?;
        let members = ids.len();
        let online = ids
            .into_iter()
            .zip(online)
            .filter(|(_, on)| *on)
            .map(|(id, _)| id)
            .collect();
        Ok((members, online))
    }

    async fn announce(&self, user: &UserId, rooms: &[RoomName], online: bool) {
        let signals: Vec<Signal> = rooms
            .iter()
            .map(|room| Signal {
                kind: SignalKind::Presence,
                room: room.clone(),
                user: user.clone(),
                payload: ServerFrame::Presence(PresenceFrame {
                    room: room.clone(),
                    user_id: Some(user.clone()),
                    online: Some(online),
                    online_count: None,
                })
                .to_bytes(),
            })
            .collect();
        if let Err(error) = self.inner.bus.signal(&signals).await {
            tracing::warn!(%error, %user, online, "presence: a change was not announced");
        }
    }

    /// One round of the background work: renew this gateway's holds, sweep expired ones,
    /// and send the big rooms' counts that are due.
    async fn tick(&self, people: &People, fanout: &Fanout) {
        let inner = &self.inner;
        let users = people.users();
        match inner
            .registry
            .renew(&inner.gateway, &users, now_ms(), inner.settings.ttl_ms)
            .await
        {
            // Online again after a lapse (a renewal that came late, a registry restarted).
            Ok(arrived) => {
                for user in arrived {
                    self.announce(&user, &people.rooms_of(&user), true).await;
                }
            }
            Err(error) => tracing::warn!(%error, "presence: cannot renew"),
        }
        match inner.registry.sweep(now_ms(), SWEEP_LIMIT).await {
            Ok(gone) => {
                inner.metrics.presence_expired.inc_by(gone.len() as u64);
                for user in gone {
                    match inner.directory.member_room_names(&user, MAX_WATCHED_ROOMS).await {
                        Ok(rooms) => self.announce(&user, &rooms, false).await,
                        Err(error) => {
                            tracing::warn!(%error, %user, "presence: cannot read the rooms of one who went offline")
                        }
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "presence: cannot sweep"),
        }
        if let Ok(holds) = inner.registry.holds().await {
            inner.metrics.presence_holds.set(holds as i64);
        }
        self.send_counts(fanout).await;
    }

    /// Recounts the big rooms joined here that changed since their count, at most once per
    /// `summary_ms`, and sends each count to the room's members here; forgets the rooms
    /// nobody here has joined any more.
    async fn send_counts(&self, fanout: &Fanout) {
        let due: Vec<RoomName> = {
            let mut rooms = self.inner.rooms.lock().expect("presence lock");
            rooms.retain(|room, _| fanout.position(room).is_some());
            let every = Duration::from_millis(self.inner.settings.summary_ms);
            rooms
                .iter()
                .filter(|(_, s)| s.big && s.changed && s.count.is_none_or(|(at, _)| at.elapsed() >= every))
                .map(|(room, _)| room.clone())
                .collect()
        };
        for room in due {
            let Ok(count) = self.recount(&room).await else { continue };
            let frame = ServerFrame::Presence(PresenceFrame {
                room: room.clone(),
                user_id: None,
                online: None,
                online_count: Some(count),
            });
            let sent = fanout.signal(&room, frame.to_bytes());
            self.inner.metrics.signal_out(SignalKind::Presence, sent);
        }
    }
}

/// Renews, sweeps and counts every `renew_ms` until shutdown. (A draining gateway's holds
/// go as its sockets close: each last socket of someone releases theirs.)
pub async fn run(service: PresenceService, people: People, fanout: Fanout, shutdown: CancellationToken) {
    if !service.enabled() {
        return;
    }
    let mut every = tokio::time::interval(Duration::from_millis(service.inner.settings.renew_ms));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = every.tick() => service.tick(&people, &fanout).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_bus::in_process::InProcessBus;

    /// A service over the in-process bus and a fresh SQLite directory at `path`, with
    /// rooms big past 3 members.
    async fn service(path: &std::path::Path) -> PresenceService {
        let database = chat_store::open(&chat_store::ConnectOptions::new(format!("sqlite:{}", path.display())))
            .await
            .unwrap();
        let mut settings = crate::settings::Settings::defaults().presence;
        settings.big_room_members = 3;
        let metrics = Metrics::register(&mut prometheus_client::registry::Registry::default());
        PresenceService::new(
            Arc::new(InProcessBus::new(16)),
            database.directory,
            "test",
            settings,
            metrics,
        )
    }

    #[tokio::test]
    async fn a_room_open_on_more_sockets_here_than_a_small_room_holds_is_big() {
        let path = std::env::temp_dir().join(format!("sc-presence-{}.db", uuid::Uuid::new_v4().simple()));
        let presence = service(&path).await;
        let room = RoomName::parse("hall").unwrap();
        // Counted small (its few members are in the directory), then crowded here before
        // anyone counted it again: a join storm, with the registry too busy to answer.
        let counted = presence.of_room(&room, 1).await.unwrap();
        assert_eq!(counted.online_count, 0);
        assert!(presence.pass_on(&room, 3), "small: every change is a frame");
        assert!(!presence.is_big(&room, 3));
        assert!(!presence.pass_on(&room, 4), "crowded: changes wait for the count");
        assert!(presence.is_big(&room, 0), "big until counted again");
        // One nobody here has counted yet is big as soon as it is crowded.
        let other = RoomName::parse("other").unwrap();
        assert!(presence.pass_on(&other, 3), "unknown and not crowded: passed on");
        assert!(presence.is_big(&other, 4) && !presence.pass_on(&other, 0));
        // A big room joined is not read member by member: it comes as a count.
        assert!(presence.of_room(&room, 4).await.unwrap().online.is_none());
        drop(presence);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
}
