//! The people connected to this gateway: which rooms each socket's user belongs to, so that
//! a new message in one of them becomes a `notify` frame on every socket that has not
//! joined it; and which sessions hold which sockets, so that ending a session (log-out,
//! revocation, a disabled account) closes its sockets on every gateway.
//!
//! Membership is read from the database once per socket, at connect, and then kept current
//! by control events on the bus (a member entered or left a room, on any gateway), so a
//! notification costs no database query.
//!
//! A notification needs the message, so each room watched here holds its partition on the
//! bus ([`Interest`]) as a room with members here does: a gateway reads the partitions of
//! the rooms its people belong to, not only of those they have open.

use crate::control::{Control, StandingChange};
use crate::fanout::ConnId;
use crate::outbox::{Outbox, Pushed, text};
use chat_bus::Interest;
use chat_domain::protocol::RemovedReason;
use chat_domain::protocol::ServerFrame;
use chat_domain::{CloseCode, RoomName, UserId};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Most rooms a socket is notified about: its user's first this many memberships.
pub const MAX_WATCHED_ROOMS: u32 = 1000;

#[derive(Clone)]
pub struct People {
    inner: Arc<Mutex<State>>,
    /// The bus reader's partitions: each watched room holds its partition.
    interest: Arc<Interest>,
}

#[derive(Default)]
struct State {
    /// Boxed: a table keeps twice the room its entries need just after it grows, and an
    /// entry is a pointer, not the whole record (docs/benchmarks.md, idle).
    conns: HashMap<ConnId, Box<Conn>>,
    by_user: HashMap<UserId, HashSet<ConnId>>,
    /// Sockets to notify per room: their user is a member and they have not joined it.
    watching: HashMap<RoomName, HashSet<ConnId>>,
}

struct Conn {
    user: UserId,
    session: Option<String>,
    outbox: Outbox,
    member_of: HashSet<RoomName>,
    joined: HashSet<RoomName>,
    restrictions: Arc<Restrictions>,
}

/// What moderation changed for one socket's rooms since it joined them: shared by the
/// socket's reader, which asks before each send, and [`People`], which applies the control
/// events. Costs one atomic load per send while nothing was ever restricted.
#[derive(Default)]
pub struct Restrictions {
    any: AtomicBool,
    rooms: Mutex<HashMap<RoomName, Restriction>>,
}

/// One room's restriction on a socket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Restriction {
    /// Taken out of the room: its sends and signals are refused until it joins again.
    pub removed: Option<RemovedReason>,
    /// Muted until then (Unix ms).
    pub muted_until_ms: Option<i64>,
}

impl Restrictions {
    pub fn get(&self, room: &RoomName) -> Option<Restriction> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        self.rooms.lock().expect("restrictions lock").get(room).copied()
    }

    /// What a (re)join read: not removed, muted until `muted_until_ms` if set.
    pub fn joined(&self, room: &RoomName, muted_until_ms: Option<i64>) {
        let mut rooms = self.rooms.lock().expect("restrictions lock");
        match muted_until_ms {
            Some(until) => {
                rooms.insert(
                    room.clone(),
                    Restriction {
                        removed: None,
                        muted_until_ms: Some(until),
                    },
                );
                self.any.store(true, Ordering::Release);
            }
            None => {
                rooms.remove(room);
            }
        }
    }

    fn change(&self, room: &RoomName, change: StandingChange) {
        let mut rooms = self.rooms.lock().expect("restrictions lock");
        let entry = rooms.entry(room.clone()).or_default();
        match change {
            StandingChange::Removed { reason } => entry.removed = Some(reason),
            StandingChange::Muted { until_ms } => entry.muted_until_ms = Some(until_ms),
            StandingChange::Unmuted => entry.muted_until_ms = None,
        }
        self.any.store(true, Ordering::Release);
    }
}

impl People {
    pub fn new(interest: Arc<Interest>) -> Self {
        Self {
            inner: Arc::default(),
            interest,
        }
    }

    /// Returns whether it is the user's first socket here (they arrive, for presence), and
    /// the socket's restrictions, which moderation keeps current.
    pub fn add(
        &self,
        conn: ConnId,
        user: UserId,
        session: Option<String>,
        outbox: Outbox,
        rooms: Vec<RoomName>,
    ) -> (bool, Arc<Restrictions>) {
        let restrictions = Arc::new(Restrictions::default());
        let mut state = self.inner.lock().expect("people lock");
        for room in &rooms {
            watch(&mut state.watching, &self.interest, room, conn);
        }
        let conns = state.by_user.entry(user.clone()).or_default();
        let first = conns.is_empty();
        conns.insert(conn);
        state.conns.insert(
            conn,
            Box::new(Conn {
                user,
                session,
                outbox,
                member_of: rooms.into_iter().collect(),
                joined: HashSet::new(),
                restrictions: restrictions.clone(),
            }),
        );
        (first, restrictions)
    }

    /// The sockets of `user` here.
    pub fn conns_of(&self, user: &UserId) -> Vec<ConnId> {
        let state = self.inner.lock().expect("people lock");
        state.by_user.get(user).into_iter().flatten().copied().collect()
    }

    /// Returns, when it was the user's last socket here, who they are and their rooms (they
    /// depart, for presence).
    pub fn remove(&self, conn: ConnId) -> Option<(UserId, Vec<RoomName>)> {
        let mut state = self.inner.lock().expect("people lock");
        let gone = state.conns.remove(&conn)?;
        for room in gone.member_of.iter().chain(&gone.joined) {
            unwatch(&mut state.watching, &self.interest, room, conn);
        }
        let conns = state.by_user.get_mut(&gone.user)?;
        conns.remove(&conn);
        if !conns.is_empty() {
            return None;
        }
        state.by_user.remove(&gone.user);
        Some((gone.user, gone.member_of.into_iter().collect()))
    }

    /// Everyone with a socket here.
    pub fn users(&self) -> Vec<UserId> {
        self.inner
            .lock()
            .expect("people lock")
            .by_user
            .keys()
            .cloned()
            .collect()
    }

    /// The rooms `user` belongs to, as their sockets here know them.
    pub fn rooms_of(&self, user: &UserId) -> Vec<RoomName> {
        let state = self.inner.lock().expect("people lock");
        let conn = state.by_user.get(user).and_then(|conns| conns.iter().next());
        conn.and_then(|c| state.conns.get(c))
            .map(|c| c.member_of.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The socket joined `room`: it gets the room's messages instead of notifications.
    /// (The membership itself arrives as a control event once it is recorded.)
    pub fn joined(&self, conn: ConnId, room: &RoomName) {
        let mut state = self.inner.lock().expect("people lock");
        if let Some(c) = state.conns.get_mut(&conn) {
            c.joined.insert(room.clone());
            unwatch(&mut state.watching, &self.interest, room, conn);
        }
    }

    /// The socket left `room` (the socket, not the membership): notifications resume.
    pub fn left(&self, conn: ConnId, room: &RoomName) {
        let mut state = self.inner.lock().expect("people lock");
        let member = state.conns.get_mut(&conn).is_some_and(|c| {
            c.joined.remove(room);
            c.member_of.contains(room)
        });
        if member {
            watch(&mut state.watching, &self.interest, room, conn);
        }
    }

    /// Applies a control event from the bus.
    pub fn apply(&self, control: Control) {
        let mut state = self.inner.lock().expect("people lock");
        match control {
            Control::Membership { user, room, member } => {
                let conns: Vec<ConnId> = state.by_user.get(&user).into_iter().flatten().copied().collect();
                for conn in conns {
                    let Some(c) = state.conns.get_mut(&conn) else { continue };
                    let notify = if member {
                        c.member_of.insert(room.clone());
                        !c.joined.contains(&room)
                    } else {
                        c.member_of.remove(&room);
                        false
                    };
                    if notify {
                        watch(&mut state.watching, &self.interest, &room, conn);
                    } else {
                        unwatch(&mut state.watching, &self.interest, &room, conn);
                    }
                }
            }
            Control::RoomDeleted { room } => {
                if state.watching.remove(&room).is_some() {
                    self.interest.release(&room);
                }
                for c in state.conns.values_mut() {
                    c.member_of.remove(&room);
                }
            }
            Control::Standing { user, room, change } => {
                let conns: Vec<ConnId> = state.by_user.get(&user).into_iter().flatten().copied().collect();
                for conn in conns {
                    let Some(c) = state.conns.get_mut(&conn) else { continue };
                    c.restrictions.change(&room, change);
                    if let StandingChange::Removed { reason } = change {
                        c.member_of.remove(&room);
                        if c.joined.remove(&room) {
                            c.outbox.push(text(
                                ServerFrame::Removed {
                                    room: room.clone(),
                                    reason,
                                }
                                .to_bytes(),
                            ));
                        }
                        unwatch(&mut state.watching, &self.interest, &room, conn);
                    }
                }
            }
            Control::EndSessions { user, session, keep } => {
                for conn in state.by_user.get(&user).into_iter().flatten() {
                    if let Some(c) = state.conns.get(conn)
                        && (session.is_none() || c.session == session)
                        && (keep.is_none() || c.session != keep)
                    {
                        c.outbox.close(CloseCode::SessionEnded);
                    }
                }
            }
        }
    }

    /// Closes every socket here with `code`; returns how many were not closing already.
    pub fn close_all(&self, code: CloseCode) -> usize {
        let state = self.inner.lock().expect("people lock");
        let open: Vec<&Conn> = state
            .conns
            .values()
            .map(|c| &**c)
            .filter(|c| !c.outbox.is_closing())
            .collect();
        for conn in &open {
            conn.outbox.close(code);
        }
        open.len()
    }

    /// Whether any socket here wants notifications for `room`.
    pub fn watches(&self, room: &RoomName) -> bool {
        self.inner.lock().expect("people lock").watching.contains_key(room)
    }

    /// Sends `notify` for a committed message (its `message` frame) to every watching
    /// socket except its author's, marked as a mention for the people it mentions. Changes
    /// (edits, reactions …) notify nobody. Returns how many were sent.
    pub fn notify(&self, room: &RoomName, seq: u64, frame: &[u8]) -> usize {
        let state = self.inner.lock().expect("people lock");
        let Some(watchers) = state.watching.get(room) else {
            return 0;
        };
        let message = match ServerFrame::parse(frame) {
            Ok(ServerFrame::Message(message)) => message,
            Ok(_) => return 0,
            Err(_) => {
                tracing::error!(%room, seq, "frame on the bus does not parse; no notification");
                return 0;
            }
        };
        let author = message.user.id.clone();
        let plain = text(ServerFrame::notify(&message, false).to_bytes());
        let mention = (!message.mentions.is_empty()).then(|| text(ServerFrame::notify(&message, true).to_bytes()));
        let mut sent = 0;
        for conn in watchers {
            let Some(c) = state.conns.get(conn) else { continue };
            if c.user == author {
                continue;
            }
            let frame = match &mention {
                Some(frame) if message.mentions.iter().any(|m| m.id == c.user) => frame,
                _ => &plain,
            };
            if c.outbox.push(frame.clone()) == Pushed::Queued {
                sent += 1;
            }
        }
        sent
    }
}

fn watch(watching: &mut HashMap<RoomName, HashSet<ConnId>>, interest: &Interest, room: &RoomName, conn: ConnId) {
    watching
        .entry(room.clone())
        .or_insert_with(|| {
            interest.hold(room);
            HashSet::new()
        })
        .insert(conn);
}

fn unwatch(watching: &mut HashMap<RoomName, HashSet<ConnId>>, interest: &Interest, room: &RoomName, conn: ConnId) {
    if let Some(conns) = watching.get_mut(room) {
        conns.remove(&conn);
        if conns.is_empty() {
            watching.remove(room);
            interest.release(room);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_bus::interest::LINGER;
    use std::time::Instant;

    fn message_frame(author: &str) -> bytes::Bytes {
        let message = chat_domain::testing::message();
        chat_domain::ChatMessage {
            room: RoomName::parse("b").unwrap(),
            seq: 7,
            author: chat_domain::Author {
                id: UserId::parse(author).unwrap(),
                ..message.author.clone()
            },
            text: "hello".into(),
            ..message
        }
        .to_frame()
    }

    #[tokio::test]
    async fn notifications_follow_membership_and_the_rooms_a_socket_has_open() {
        let interest = Arc::new(Interest::new(8));
        let people = People::new(interest.clone());
        let (outbox, mut frames, _closer) = Outbox::new(16);
        let room = RoomName::parse("b").unwrap();
        let partition = [interest.partition_of(&room)];
        let ann = UserId::parse("u:ann").unwrap();
        let _ = people.add(1, ann.clone(), None, outbox, vec![room.clone()]);
        // A watched room holds its partition, so that its messages reach this gateway.
        let plan = interest.plan(Instant::now());
        assert_eq!(plan.start, partition);
        interest.started(&plan.start);

        assert_eq!(people.notify(&room, 7, &message_frame("u:bob")), 1);
        let frame: serde_json::Value = serde_json::from_str(frames.try_recv().unwrap().as_str()).unwrap();
        assert_eq!(
            (frame["type"].as_str(), frame["preview"].as_str()),
            (Some("notify"), Some("hello"))
        );
        assert_eq!(
            people.notify(&room, 8, &message_frame("u:ann")),
            0,
            "not for one's own messages"
        );

        people.joined(1, &room);
        assert_eq!(
            people.notify(&room, 9, &message_frame("u:bob")),
            0,
            "the room is open: messages, not notices"
        );
        assert_eq!(
            interest.plan(Instant::now() + LINGER).stop,
            partition,
            "no longer watched (the fan-out holds an open room)"
        );
        people.left(1, &room);
        let plan = interest.plan(Instant::now());
        assert_eq!(plan.start, partition, "watched again");
        interest.started(&plan.start);
        assert_eq!(
            people.notify(&room, 10, &message_frame("u:bob")),
            1,
            "closed again: notified"
        );
        frames.try_recv().unwrap();

        people.apply(Control::Membership {
            user: ann.clone(),
            room: room.clone(),
            member: false,
        });
        assert_eq!(people.notify(&room, 11, &message_frame("u:bob")), 0, "left the room");
        people.apply(Control::Membership {
            user: ann.clone(),
            room: room.clone(),
            member: true,
        });
        assert_eq!(people.notify(&room, 12, &message_frame("u:bob")), 1, "member again");
        people.apply(Control::RoomDeleted { room: room.clone() });
        assert!(!people.watches(&room));
        people.remove(1);
        assert!(!people.watches(&room));
        assert_eq!(interest.plan(Instant::now() + LINGER).stop, partition, "released");
    }
}
