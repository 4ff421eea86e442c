//! What to run, checked once before anything connects.

use crate::connect::{Auth, Gateway};
use crate::procstat::Watch;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid scenario: {0}")]
pub struct ScenarioError(pub String);

fn invalid(reason: impl Into<String>) -> ScenarioError {
    ScenarioError(reason.into())
}

/// Settings shared by every kind of run.
#[derive(Debug, Clone)]
pub struct Common {
    /// Names the output files and appears in the report.
    pub name: String,
    /// Connections are spread over these round-robin.
    pub gateways: Vec<Gateway>,
    pub auth: Auth,
    /// Loopback source addresses to connect from (127.0.0.1 …); see [`crate::connect`].
    pub source_addrs: u8,
    /// Sessions and handshakes in flight at once while connecting.
    pub connect_concurrency: usize,
    pub connect_timeout: Duration,
    /// Other processes to report CPU and memory for (the servers).
    pub watch: Vec<Watch>,
    /// One progress line per second on stderr.
    pub progress: bool,
}

impl Common {
    fn validate(&self) -> Result<(), ScenarioError> {
        if self.gateways.is_empty() {
            return Err(invalid("at least one gateway is needed"));
        }
        if self.source_addrs == 0 || self.source_addrs == 255 {
            return Err(invalid("source addresses must be 1–254"));
        }
        if self.connect_concurrency == 0 {
            return Err(invalid("connect concurrency must be at least 1"));
        }
        if !self
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            || self.name.is_empty()
        {
            return Err(invalid("the name must be 1+ of A-Z a-z 0-9 - _ . (it names files)"));
        }
        Ok(())
    }
}

/// Clients in rooms, some of them sending at a paced rate.
#[derive(Debug, Clone)]
pub struct LoadScenario {
    pub common: Common,
    pub clients: usize,
    pub rooms: usize,
    pub senders_per_room: usize,
    /// Messages per second per sender.
    pub rate_per_sender: f64,
    /// Reactions per second per room (0: none), from the first member that does not send:
    /// it reacts to the newest message it has seen, and takes the reaction back at the next
    /// tick, so that every reaction is allowed.
    pub reactions_per_room: f64,
    /// Members per room that send `typing` every [`TYPING_EVERY`] and nothing else: the
    /// members after the senders and the reactor.
    pub typists_per_room: usize,
    /// Sending before the measured window; its messages are checked for loss but not timed.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    /// After the last send, how long to wait for acks and deliveries before counting
    /// what is missing as lost.
    pub drain_timeout: Duration,
    /// Unacked sends per sender; at the limit a tick is skipped and counted. The gateway
    /// refuses more than its `send_queue` (64) with `rate_limited`.
    pub max_in_flight: usize,
    /// Message text length; the stamp is padded up to it.
    pub text_bytes: usize,
    /// Per-connection read buffer.
    pub read_buffer_bytes: usize,
    /// The clients that only read do so through one io_uring, where the kernel has it.
    pub receive_ring: bool,
}

/// How often a typist says it is typing: what the web client does while a person types.
pub const TYPING_EVERY: std::time::Duration = std::time::Duration::from_secs(3);

impl LoadScenario {
    pub fn validate(&self) -> Result<(), ScenarioError> {
        self.common.validate()?;
        if self.rooms == 0 || self.clients < self.rooms {
            return Err(invalid("need at least one room and one client per room"));
        }
        if self.senders_per_room == 0 || self.senders_per_room > self.clients / self.rooms {
            return Err(invalid(format!(
                "senders per room must be 1..={} (the smallest room's size)",
                self.clients / self.rooms
            )));
        }
        if !(self.rate_per_sender > 0.0 && self.rate_per_sender <= 100_000.0) {
            return Err(invalid("the rate per sender must be in (0, 100000] msg/s"));
        }
        if self.duration.is_zero() {
            return Err(invalid("the duration must be positive"));
        }
        if !(self.reactions_per_room >= 0.0 && self.reactions_per_room <= 10_000.0) {
            return Err(invalid("reactions per room must be in [0, 10000] per second"));
        }
        if self.reactions_per_room > 0.0 && self.clients / self.rooms <= self.senders_per_room {
            return Err(invalid("reactions need a member in each room that does not send"));
        }
        if self.typists_per_room > 0 && self.senders_per_room + 1 + self.typists_per_room > self.clients / self.rooms {
            return Err(invalid(
                "typists need members in each room besides the senders and the reactor",
            ));
        }
        if self.max_in_flight == 0 {
            return Err(invalid("max in flight must be at least 1"));
        }
        if !(crate::accounting::STAMP_MAX_BYTES..=4000).contains(&self.text_bytes) {
            return Err(invalid(format!(
                "text bytes must be {}..=4000",
                crate::accounting::STAMP_MAX_BYTES
            )));
        }
        Ok(())
    }

    /// Members of room `room` (rooms differ by one when clients do not divide evenly).
    pub fn room_size(&self, room: usize) -> usize {
        self.clients / self.rooms + usize::from(room < self.clients % self.rooms)
    }

    /// Where client `i` sits: its room, its position in the room, its gateway. Members of
    /// a room alternate over the gateways, starting one further for each room, so that
    /// a room's sender and most of its receivers are on different gateways.
    pub fn placement(&self, i: usize) -> Placement {
        let room = i % self.rooms;
        let member = i / self.rooms;
        Placement {
            room,
            member,
            gateway: (member + room) % self.common.gateways.len(),
            sends: member < self.senders_per_room,
        }
    }

    /// Deliveries per second if every message reached every member (senders included:
    /// they receive their own messages).
    /// Messages and reactions, each to every member of its room.
    pub fn expected_deliveries_per_second(&self) -> f64 {
        (0..self.rooms)
            .map(|r| {
                (self.senders_per_room as f64 * self.rate_per_sender + self.reactions_per_room)
                    * self.room_size(r) as f64
            })
            .sum()
    }

    pub fn target_sends_per_second(&self) -> f64 {
        (self.rooms * self.senders_per_room) as f64 * self.rate_per_sender
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub room: usize,
    pub member: usize,
    pub gateway: usize,
    pub sends: bool,
}

/// Many connections that do nothing: what one gateway holds and what each costs it.
#[derive(Debug, Clone)]
pub struct IdleScenario {
    pub common: Common,
    pub connections: usize,
    /// 0: connections join nothing; otherwise each joins one of this many rooms, so the
    /// gateway's room registry is part of the cost.
    pub rooms: usize,
    /// How long to hold the connections once all attempts are done.
    pub hold: Duration,
    pub read_buffer_bytes: usize,
}

impl IdleScenario {
    pub fn validate(&self) -> Result<(), ScenarioError> {
        self.common.validate()?;
        if self.connections == 0 {
            return Err(invalid("need at least one connection"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connect::Auth;

    async fn common(gateways: usize) -> Common {
        let mut list = Vec::new();
        for i in 0..gateways {
            list.push(Gateway::resolve(&format!("ws://127.0.0.1:{}", 8081 + i)).await.unwrap());
        }
        Common {
            name: "t".into(),
            gateways: list,
            auth: Auth::Guest,
            source_addrs: 1,
            connect_concurrency: 8,
            connect_timeout: Duration::from_secs(5),
            watch: Vec::new(),
            progress: false,
        }
    }

    async fn load(clients: usize, rooms: usize, senders: usize) -> LoadScenario {
        LoadScenario {
            common: common(2).await,
            clients,
            rooms,
            senders_per_room: senders,
            rate_per_sender: 10.0,
            reactions_per_room: 0.0,
            typists_per_room: 0,
            warmup: Duration::ZERO,
            duration: Duration::from_secs(1),
            drain_timeout: Duration::from_secs(1),
            max_in_flight: 64,
            text_bytes: 64,
            read_buffer_bytes: 4096,
            receive_ring: true,
        }
    }

    #[tokio::test]
    async fn senders_and_receivers_of_a_room_sit_on_different_gateways() {
        let s = load(20, 10, 1).await;
        for room in 0..10 {
            let members: Vec<Placement> = (0..20).map(|i| s.placement(i)).filter(|p| p.room == room).collect();
            assert_eq!(members.len(), 2);
            assert_eq!(members.iter().filter(|p| p.sends).count(), 1);
            assert_ne!(members[0].gateway, members[1].gateway);
        }
        // Both gateways carry senders.
        let sender_gateways: std::collections::HashSet<usize> = (0..20)
            .map(|i| s.placement(i))
            .filter(|p| p.sends)
            .map(|p| p.gateway)
            .collect();
        assert_eq!(sender_gateways.len(), 2);
    }

    #[tokio::test]
    async fn uneven_rooms_and_expected_rates() {
        let s = load(7, 3, 1).await;
        assert_eq!((s.room_size(0), s.room_size(1), s.room_size(2)), (3, 2, 2));
        assert_eq!(s.target_sends_per_second(), 30.0);
        assert_eq!(s.expected_deliveries_per_second(), 70.0);
    }

    #[tokio::test]
    async fn impossible_scenarios_are_refused() {
        assert!(load(10, 10, 1).await.validate().is_ok());
        assert!(load(5, 10, 1).await.validate().is_err());
        assert!(load(10, 5, 3).await.validate().is_err(), "3 senders in rooms of 2");
        let mut s = load(10, 5, 1).await;
        s.rate_per_sender = 0.0;
        assert!(s.validate().is_err());
        let mut s = load(10, 5, 1).await;
        s.text_bytes = 5000;
        assert!(s.validate().is_err());
        let mut s = load(10, 5, 1).await;
        s.common.gateways.clear();
        assert!(s.validate().is_err());
        let mut s = load(10, 5, 1).await;
        s.common.name = "a/b".into();
        assert!(s.validate().is_err());
    }
}
