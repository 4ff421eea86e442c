//! Ephemeral signals (typing, presence, read receipts): what every gateway hears on the
//! bus's signal channel, and what it passes on to its sockets. Presence and receipts are
//! passed on person by person only in rooms of at most `big_room_members`.
//!
//! Typing is bounded per room, whatever the number of typists: each gateway passes on by
//! name only the first [`TypingSettings::names`] people typing in a room, and the rest as
//! one `typing {room, count}` at most once per `min_interval`. So a member hears of at
//! most `names + 1` typing frames per interval, and 500 people typing in a room of 2,000
//! cost its members what 4 do.

use crate::fanout::Fanout;
use crate::metrics::Metrics;
use crate::presence::PresenceService;
use crate::settings::SignalSettings;
use chat_bus::{SignalKind, SignalReader};
use chat_domain::protocol::{ServerFrame, TypingFrame};
use chat_domain::{RoomName, UserId};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How typing is passed on; from `[signals]` in the settings.
#[derive(Debug, Clone, Copy)]
pub struct TypingSettings {
    /// A typist counts as typing this long after their last `typing`.
    pub ttl: Duration,
    /// A socket's `typing` frames closer together than this are dropped; summaries are sent
    /// at most this often.
    pub min_interval: Duration,
    /// Typists passed on by name in one room.
    pub names: usize,
}

impl From<&SignalSettings> for TypingSettings {
    fn from(s: &SignalSettings) -> Self {
        Self {
            ttl: Duration::from_millis(s.typing_ttl_ms),
            min_interval: Duration::from_millis(s.typing_min_interval_ms),
            names: s.typing_names,
        }
    }
}

/// What to do with one typing signal.
#[derive(Debug, PartialEq, Eq)]
pub enum Typed {
    /// Pass it on as it is: one of the first typists.
    Named,
    /// Pass on how many are typing instead.
    Count(usize),
    /// Nothing: a summary went out less than `min_interval` ago.
    Quiet,
}

/// Who is typing where, as this gateway has heard. A plain state machine over explicit
/// times, so that its rules are unit-tested without a clock.
#[derive(Default)]
pub struct TypingRooms {
    rooms: HashMap<RoomName, RoomTyping>,
}

#[derive(Default)]
struct RoomTyping {
    /// Typists in the order they started, with their last refresh.
    typists: Vec<(UserId, Instant)>,
    last_count: Option<Instant>,
}

impl TypingRooms {
    /// `user` is typing in `room` at `now`.
    pub fn typed(&mut self, settings: &TypingSettings, room: &RoomName, user: &UserId, now: Instant) -> Typed {
        let typing = self.rooms.entry(room.clone()).or_default();
        typing.typists.retain(|(_, at)| now.duration_since(*at) < settings.ttl);
        let position = match typing.typists.iter().position(|(u, _)| u == user) {
            Some(i) => {
                typing.typists[i].1 = now;
                i
            }
            None => {
                typing.typists.push((user.clone(), now));
                typing.typists.len() - 1
            }
        };
        if position < settings.names {
            return Typed::Named;
        }
        match typing.last_count {
            Some(at) if now.duration_since(at) < settings.min_interval => Typed::Quiet,
            _ => {
                typing.last_count = Some(now);
                Typed::Count(typing.typists.len())
            }
        }
    }

    /// Forgets rooms where nobody has typed for `ttl`: the map holds only rooms in use.
    pub fn prune(&mut self, settings: &TypingSettings, now: Instant) {
        self.rooms.retain(|_, typing| {
            typing.typists.retain(|(_, at)| now.duration_since(*at) < settings.ttl);
            !typing.typists.is_empty()
        });
    }

    pub fn rooms(&self) -> usize {
        self.rooms.len()
    }
}

/// Hears the signals of every gateway until shutdown and passes each to the local members
/// of its room.
pub async fn listen(
    mut reader: Box<dyn SignalReader>,
    fanout: Fanout,
    (settings, presence): (TypingSettings, PresenceService),
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    let mut typing = TypingRooms::default();
    let mut prune = tokio::time::interval(settings.ttl);
    loop {
        let signals = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = prune.tick() => {
                typing.prune(&settings, Instant::now());
                continue;
            }
            signals = reader.next() => signals,
        };
        for signal in signals {
            metrics.signal_in(signal.kind);
            let frame = match signal.kind {
                SignalKind::Typing => match typing.typed(&settings, &signal.room, &signal.user, Instant::now()) {
                    Typed::Named => signal.payload,
                    Typed::Count(count) => ServerFrame::Typing(TypingFrame {
                        room: signal.room.clone(),
                        user: None,
                        count: Some(count),
                    })
                    .to_bytes(),
                    Typed::Quiet => continue,
                },
                // A big room's members get a count now and then, not every change.
                SignalKind::Presence if !presence.pass_on(&signal.room, fanout.open(&signal.room)) => continue,
                // Receipts are shown person by person, so only in rooms small enough.
                SignalKind::Read if presence.is_big(&signal.room, fanout.open(&signal.room)) => continue,
                SignalKind::Presence | SignalKind::Read => signal.payload,
            };
            let delivered = fanout.signal(&signal.room, frame);
            metrics.signal_out(signal.kind, delivered);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> TypingSettings {
        TypingSettings {
            ttl: Duration::from_secs(6),
            min_interval: Duration::from_secs(2),
            names: 2,
        }
    }

    fn user(n: usize) -> UserId {
        UserId::parse(&format!("u:{n}")).unwrap()
    }

    #[test]
    fn the_first_typists_are_named_and_the_rest_are_counted_at_most_once_an_interval() {
        let (s, room, t0) = (settings(), RoomName::parse("lobby").unwrap(), Instant::now());
        let mut rooms = TypingRooms::default();
        assert_eq!(rooms.typed(&s, &room, &user(1), t0), Typed::Named);
        assert_eq!(rooms.typed(&s, &room, &user(2), t0), Typed::Named);
        assert_eq!(rooms.typed(&s, &room, &user(3), t0), Typed::Count(3));
        // However many more type, the members hear one count per interval.
        for n in 4..500 {
            assert_eq!(rooms.typed(&s, &room, &user(n), t0), Typed::Quiet);
        }
        assert_eq!(
            rooms.typed(&s, &room, &user(1), t0 + Duration::from_secs(1)),
            Typed::Named,
            "a refresh"
        );
        let later = t0 + Duration::from_secs(2);
        assert_eq!(rooms.typed(&s, &room, &user(600), later), Typed::Count(500));
    }

    #[test]
    fn typists_expire_and_idle_rooms_are_forgotten() {
        let (s, room, t0) = (settings(), RoomName::parse("lobby").unwrap(), Instant::now());
        let mut rooms = TypingRooms::default();
        rooms.typed(&s, &room, &user(1), t0);
        rooms.typed(&s, &room, &user(2), t0);
        assert_eq!(rooms.typed(&s, &room, &user(3), t0), Typed::Count(3));
        let expired = t0 + Duration::from_secs(6);
        assert_eq!(
            rooms.typed(&s, &room, &user(4), expired),
            Typed::Named,
            "the others expired"
        );
        rooms.prune(&s, expired);
        assert_eq!(rooms.rooms(), 1, "user 4 still types");
        rooms.prune(&s, expired + Duration::from_secs(6));
        assert_eq!(rooms.rooms(), 0);
    }
}
