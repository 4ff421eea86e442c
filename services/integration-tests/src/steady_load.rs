//! Steady load for the fault tests: several rooms, every member a socket, some members
//! senders, all of them behaving as the protocol asks a client to behave under faults.
//!
//! * A sender has one send in flight. An `error` frame for it with a transient code
//!   (`unavailable`, `internal`, `overloaded`, `rate_limited`) is retried with the same
//!   `client_msg_id`; so is a send in flight when the socket drops, once the client is back.
//! * A member whose socket ends reconnects (through the balancer) and re-joins with
//!   `since_seq` = the last seq it saw. A refused handshake or a failed connect waits a
//!   random delay first, with full jitter as the browser client does:
//!   `random(0, min(2 s, 100 ms · 2^attempt))`, so thousands of clients dropped together
//!   do not come back in lockstep.
//!
//! At the end [`SteadyLoad::finish`] stops the senders, waits until every member has caught
//! up with what the database holds, and returns a [`Report`]: what each member received
//! (in order? repeated? missing?) against what the senders were acked and what was stored.

use client::Client;
use futures::StreamExt;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

mod client;

#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub rooms: usize,
    pub members_per_room: usize,
    /// The first members of each room also send.
    pub senders_per_room: usize,
    /// Pause between an ack and the sender's next message.
    pub send_interval: Duration,
    /// Where each member connects first (one gateway, to be killed); reconnects go
    /// through the balancer. `None`: the balancer from the start.
    pub first_addr: Option<SocketAddr>,
}

impl Default for LoadSpec {
    fn default() -> Self {
        Self {
            rooms: 4,
            members_per_room: 4,
            senders_per_room: 2,
            send_interval: Duration::from_millis(40),
            first_addr: None,
        }
    }
}

/// What the clients share with the test while they run.
struct Shared {
    /// Set by [`SteadyLoad::stop_sending`]. An atomic rather than a token: a sender counts
    /// itself in `in_flight` before it looks at this, and the stopper sets this before it
    /// reads `in_flight`, so no send can start unseen after the stopper's last look.
    sending_stopped: AtomicBool,
    stop_all: CancellationToken,
    /// Senders with a send not acked yet.
    in_flight: AtomicUsize,
    /// Every ack so far, and every `unavailable` error: what a test waits on.
    acks: AtomicU64,
    unavailable: AtomicU64,
    /// Each member's last seq, by client index.
    positions: Vec<AtomicU64>,
    changed: Notify,
}

pub struct SteadyLoad {
    rooms: Vec<String>,
    /// The room of each client, by index.
    client_rooms: Vec<usize>,
    shared: Arc<Shared>,
    clients: Vec<JoinHandle<ClientReport>>,
}

/// One client's view of the run.
#[derive(Debug, Default, Clone)]
pub struct ClientReport {
    pub room: String,
    /// The `client_msg_id` and seq of every ack (messages and changes alike).
    pub acked: Vec<(String, u64)>,
    /// Distinct events this sender sent: messages, edits, reactions (retries not counted).
    pub sent: u64,
    pub delivered: u64,
    pub duplicates: u64,
    /// Seqs skipped over (missing between two deliveries).
    pub gaps: u64,
    pub last_seq: u64,
    pub reconnects: u64,
    /// Handshakes refused with an HTTP status (503 when paced or full, 429).
    pub refused: u64,
    /// Error frames by code (for sends: each try that failed).
    pub errors: BTreeMap<String, u64>,
    /// The first error frame's message for each code: what a failing assertion about the
    /// codes shows, so a rare one says where it came from.
    pub error_messages: BTreeMap<String, String>,
    /// Anything a correct server never sends this client: the test fails on it.
    pub unexpected: Vec<String>,
}

impl SteadyLoad {
    /// Creates a guest session per member through `addr` (the balancer), connects each,
    /// joins, and returns once every member is in its room; then the senders start.
    pub async fn start(addr: SocketAddr, spec: &LoadSpec) -> Self {
        Self::start_within(addr, spec, Duration::from_secs(60)).await
    }

    /// As [`SteadyLoad::start`], allowing `setup` for every member to join (many members
    /// take longer).
    pub async fn start_within(addr: SocketAddr, spec: &LoadSpec, setup: Duration) -> Self {
        let run = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let rooms: Vec<String> = (0..spec.rooms).map(|r| format!("fault-{run}-{r}")).collect();
        let members = spec.rooms * spec.members_per_room;
        let shared = Arc::new(Shared {
            sending_stopped: AtomicBool::new(false),
            stop_all: CancellationToken::new(),
            in_flight: AtomicUsize::new(0),
            acks: AtomicU64::new(0),
            unavailable: AtomicU64::new(0),
            positions: (0..members).map(|_| AtomicU64::new(0)).collect(),
            changed: Notify::new(),
        });
        let started = Arc::new(tokio::sync::Barrier::new(members + 1));
        let names: Vec<(usize, usize)> = (0..spec.rooms)
            .flat_map(|r| (0..spec.members_per_room).map(move |m| (r, m)))
            .collect();
        // Sessions a few at a time: thousands one after another would take long.
        let tokens: Vec<String> = futures::stream::iter(&names)
            .map(|&(r, m)| async move { crate::cluster::create_session(addr, &format!("m{r}x{m}")).await })
            .buffered(16)
            .collect()
            .await;
        let mut clients = Vec::new();
        let mut client_rooms = Vec::new();
        for (index, (&(r, m), token)) in names.iter().zip(tokens).enumerate() {
            let room = &rooms[r];
            client_rooms.push(r);
            let client = Client {
                index,
                addr,
                first_addr: spec.first_addr,
                token,
                name: format!("{run}-m{r}x{m}"),
                room: room.clone(),
                sender: m < spec.senders_per_room,
                interval: spec.send_interval,
                shared: shared.clone(),
                report: ClientReport {
                    room: room.clone(),
                    ..ClientReport::default()
                },
                own_last: None,
            };
            clients.push(tokio::spawn(client.run(started.clone())));
        }
        // Every member has joined before anyone sends: each one's history starts at seq 1.
        tokio::time::timeout(setup, started.wait())
            .await
            .unwrap_or_else(|_| panic!("the load clients did not all join within {setup:?}"));
        Self {
            rooms,
            client_rooms,
            shared,
            clients,
        }
    }

    /// Acks so far, over all senders.
    pub fn acks(&self) -> u64 {
        self.shared.acks.load(Ordering::SeqCst)
    }

    /// The rooms of the load, by index.
    pub fn rooms(&self) -> &[String] {
        &self.rooms
    }

    /// Each member's last delivered seq now: a test watches them advance (or stall).
    pub fn positions(&self) -> Vec<u64> {
        self.shared.positions.iter().map(|p| p.load(Ordering::SeqCst)).collect()
    }

    /// `unavailable` errors so far, over all senders.
    pub fn unavailable_errors(&self) -> u64 {
        self.shared.unavailable.load(Ordering::SeqCst)
    }

    /// Waits until `done` holds, checked whenever a client makes progress; fails the test
    /// after `timeout`, naming `what`.
    pub async fn wait_for(&self, what: &str, timeout: Duration, done: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            let changed = self.shared.changed.notified();
            if done(self) {
                return;
            }
            // A bounded wait: some conditions change without a client's notice.
            let wake = (Instant::now() + Duration::from_millis(200)).min(deadline);
            tokio::select! {
                _ = changed => {}
                _ = tokio::time::sleep_until(wake) => {}
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}"
            );
        }
    }

    /// Waits until `n` more messages are acked than now.
    pub async fn wait_for_more_acks(&self, n: u64, timeout: Duration) {
        let target = self.acks() + n;
        self.wait_for(&format!("{n} more acks"), timeout, |load| load.acks() >= target)
            .await;
    }

    /// Stops the senders and waits until none has a send in flight.
    pub async fn stop_sending(&self, timeout: Duration) {
        self.shared.sending_stopped.store(true, Ordering::SeqCst);
        self.wait_for("the senders' last sends to be acked", timeout, |load| {
            load.shared.in_flight.load(Ordering::SeqCst) == 0
        })
        .await;
    }

    /// After [`SteadyLoad::stop_sending`]: waits until each member has seen its room's last
    /// stored seq (`last_seqs`), then stops every client and gathers the report.
    pub async fn finish_at(self, stored: Vec<StoredRow>, timeout: Duration) -> Report {
        let mut last_seqs: HashMap<&str, u64> = HashMap::new();
        for row in &stored {
            let last = last_seqs.entry(row.room.as_str()).or_default();
            *last = (*last).max(row.seq);
        }
        let targets: Vec<u64> = self
            .client_rooms
            .iter()
            .map(|&r| last_seqs.get(self.rooms[r].as_str()).copied().unwrap_or(0))
            .collect();
        self.wait_for("every member to catch up with the database", timeout, |load| {
            targets
                .iter()
                .enumerate()
                .all(|(i, &target)| load.shared.positions[i].load(Ordering::SeqCst) >= target)
        })
        .await;
        self.shared.stop_all.cancel();
        let mut clients = Vec::new();
        for client in self.clients {
            clients.push(client.await.expect("a load client panicked"));
        }
        Report { clients, stored }
    }
}

/// One row of `messages`: a message, or a change to one.
#[derive(Debug, Clone)]
pub struct StoredRow {
    pub room: String,
    pub seq: u64,
    pub author: String,
    pub client_msg_id: String,
    /// `text`, or the change: `edit`, `react`, `unreact`.
    pub kind: String,
}

/// Reads every message row of the cluster's database.
pub async fn stored_rows(db: &crate::TestDb) -> Vec<StoredRow> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&db.url)
        .await
        .expect("connect to the test database");
    let rows: Vec<(String, i64, String, String, String)> = sqlx::query_as(
        "SELECT r.name, m.seq, m.author_id, m.client_msg_id, m.kind FROM messages m JOIN rooms r ON r.id = m.room_id
         ORDER BY r.name, m.seq",
    )
    .fetch_all(&mut conn)
    .await
    .expect("read messages");
    rows.into_iter()
        .map(|(room, seq, author, client_msg_id, kind)| StoredRow {
            room,
            seq: seq as u64,
            author,
            client_msg_id,
            kind,
        })
        .collect()
}

/// The run's outcome, and the checks every fault test makes of it.
pub struct Report {
    pub clients: Vec<ClientReport>,
    pub stored: Vec<StoredRow>,
}

impl Report {
    pub fn sent(&self) -> u64 {
        self.clients.iter().map(|c| c.sent).sum()
    }

    pub fn acked(&self) -> usize {
        self.clients.iter().map(|c| c.acked.len()).sum()
    }

    pub fn delivered(&self) -> u64 {
        self.clients.iter().map(|c| c.delivered).sum()
    }

    pub fn duplicates(&self) -> u64 {
        self.clients.iter().map(|c| c.duplicates).sum()
    }

    pub fn gaps(&self) -> u64 {
        self.clients.iter().map(|c| c.gaps).sum()
    }

    pub fn reconnects(&self) -> u64 {
        self.clients.iter().map(|c| c.reconnects).sum()
    }

    pub fn refused(&self) -> u64 {
        self.clients.iter().map(|c| c.refused).sum()
    }

    pub fn errors(&self) -> BTreeMap<String, u64> {
        let mut all = BTreeMap::new();
        for client in &self.clients {
            for (code, n) in &client.errors {
                *all.entry(code.clone()).or_default() += n;
            }
        }
        all
    }

    /// For each error code seen, the first message that came with it.
    pub fn error_messages(&self) -> BTreeMap<String, String> {
        let mut all = BTreeMap::new();
        for client in &self.clients {
            for (code, message) in &client.error_messages {
                all.entry(code.clone()).or_insert_with(|| message.clone());
            }
        }
        all
    }

    /// The counts a fault test prints, one line.
    pub fn summary(&self) -> String {
        format!(
            "sent {} acked {} stored {} delivered {} duplicates {} gaps {} reconnects {} refused handshakes {} errors {:?}",
            self.sent(),
            self.acked(),
            self.stored.len(),
            self.delivered(),
            self.duplicates(),
            self.gaps(),
            self.reconnects(),
            self.refused(),
            self.errors()
        )
    }

    /// The guarantees under faults:
    /// * every acked message is stored exactly once, with the seq its ack named, and
    ///   nothing is stored that was not acked (every client retried until acked);
    /// * every room's seqs are 1..n without a hole;
    /// * every member received every stored event of its room (messages, edits, reactions
    ///   added and taken back) exactly once, in order.
    pub fn assert_exactly_once(&self) {
        assert!(
            self.clients.iter().all(|c| c.unexpected.is_empty()),
            "clients saw what a correct server never sends: {:?}",
            self.clients.iter().flat_map(|c| &c.unexpected).collect::<Vec<_>>()
        );
        let mut by_id: HashMap<(&str, &str), Vec<u64>> = HashMap::new();
        let mut seqs: HashMap<&str, Vec<u64>> = HashMap::new();
        for row in &self.stored {
            by_id.entry((&row.room, &row.client_msg_id)).or_default().push(row.seq);
            seqs.entry(&row.room).or_default().push(row.seq);
        }
        // The load holds every kind of event a sender makes, not only messages.
        if self.stored.len() >= 16 {
            for kind in ["text", "edit", "react", "unreact"] {
                assert!(
                    self.stored.iter().any(|r| r.kind == kind),
                    "no {kind} event in the load"
                );
            }
        }
        for (room, seqs) in &seqs {
            let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
            assert_eq!(seqs, &expected, "room {room}: the stored seqs have a hole");
        }
        for (key, rows) in &by_id {
            assert_eq!(rows.len(), 1, "{key:?} is stored {} times", rows.len());
        }
        for client in &self.clients {
            for (id, seq) in &client.acked {
                let rows = by_id.get(&(client.room.as_str(), id.as_str()));
                assert_eq!(
                    rows,
                    Some(&vec![*seq]),
                    "acked {id} (seq {seq}) in {} is not stored once with that seq",
                    client.room
                );
            }
        }
        assert_eq!(
            self.acked(),
            self.stored.len(),
            "stored messages that no sender was acked for (a false negative, or a stray row)"
        );
        for client in &self.clients {
            let last = seqs.get(client.room.as_str()).map_or(0, |s| s.len() as u64);
            assert_eq!(
                (client.delivered, client.duplicates, client.gaps, client.last_seq),
                (last, 0, 0, last),
                "a member of {} got (delivered, duplicates, gaps, last seq) against {last} stored",
                client.room
            );
        }
    }
}
