//! A load run: set up every client (session, connection, join), send at a paced rate for
//! warm-up plus the measured window, drain, then account.
//!
//! Each client that sends, reacts or types is one task that owns its socket and its own
//! ledger; the clients that only read are read by one io_uring on a thread of its own
//! ([`ring`]), each with the same ledger. Nothing is shared on the hot path but relaxed
//! counters and, every few hundred samples, a latency histogram.
//! The drain waits for facts, not for time: every sender's acks, then every member's
//! contiguous `seq` reaching the highest acked one, with a timeout as the only bound.

use crate::accounting::{SeqSet, StreamCheck};
use crate::connect::{self, ConnectError, Ws};
use crate::monitor::{Counters, Monitor, Phase};
use crate::report::{Correctness, Drain, LoadConfig, LoadReport, Setup, Throughput, Totals};
use crate::scenario::{LoadScenario, Placement, ScenarioError};
use crate::stats::{Latencies, per_second};
use client::{Client, FLUSH_EVERY, ReactPlan, SendPlan, TypePlan};
use futures::StreamExt;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use verdict::{account, warnings};

mod client;
mod ring;
#[cfg(test)]
mod tests;
mod verdict;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    #[error("{failed} of {total} clients could not be set up (the first error follows)")]
    Setup {
        failed: usize,
        total: usize,
        #[source]
        first: ConnectError,
    },
}

/// How often the drain looks at the clients' progress.
const DRAIN_POLL: Duration = Duration::from_millis(10);

pub fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A short id that keeps this run's rooms and users apart from every other run's.
pub fn run_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
}

/// What every client task shares.
struct Shared {
    monitor: Arc<Monitor>,
    /// The measured window, in unix nanoseconds (the clock the stamps use).
    window: (u64, u64),
    delivery: Mutex<Latencies>,
    ack: Mutex<Latencies>,
    window_sent: AtomicU64,
    window_acked: AtomicU64,
    window_delivered: AtomicU64,
}

impl Shared {
    fn in_window(&self, nanos: u64) -> bool {
        (self.window.0..self.window.1).contains(&nanos)
    }
}

/// What the drain reads from each client while it runs.
#[derive(Debug, Default)]
struct Progress {
    /// 1 + the highest seq up to which everything arrived (0: nothing yet).
    contiguous_plus_one: AtomicU64,
    in_flight: AtomicU64,
    max_acked_seq: AtomicU64,
    done_sending: AtomicBool,
    ended: AtomicBool,
}

/// One client's view of the run, handed back when its task ends.
struct Outcome {
    placement: Placement,
    sender: Option<u32>,
    first_seq: u64,
    by_seq: StreamCheck,
    /// By sender: a room has a few, and a B-tree finds one of a few faster than a hash.
    by_sender: BTreeMap<u32, StreamCheck>,
    acked_seqs: SeqSet,
    acked_ns: SeqSet,
    sent: u64,
    acked: u64,
    /// Reactions sent and acked (a room's reactor only).
    reactions_sent: u64,
    reactions_acked: u64,
    typing_sent: u64,
    typing_received: u64,
    presence_received: u64,
    duplicate_acks: u64,
    unacked: u64,
    skipped: u64,
    errors: BTreeMap<String, u64>,
    disconnect: Option<String>,
}

impl Outcome {
    fn new(placement: Placement, sender: Option<u32>, first_seq: u64) -> Self {
        Self {
            placement,
            sender,
            first_seq,
            by_seq: StreamCheck::starting_at(first_seq),
            by_sender: BTreeMap::new(),
            acked_seqs: SeqSet::new(),
            acked_ns: SeqSet::new(),
            sent: 0,
            acked: 0,
            reactions_sent: 0,
            reactions_acked: 0,
            typing_sent: 0,
            typing_received: 0,
            presence_received: 0,
            duplicate_acks: 0,
            unacked: 0,
            skipped: 0,
            errors: BTreeMap::new(),
            disconnect: None,
        }
    }
}

/// A client between setup and its task.
struct Ready {
    index: usize,
    placement: Placement,
    ws: Ws,
    first_seq: u64,
}

/// Runs the scenario; the report is complete even when the system under test misbehaved
/// (that is what it reports). Errors are for runs that could not start.
pub async fn run_load(scenario: &LoadScenario) -> Result<LoadReport, RunError> {
    scenario.validate()?;
    let common = &scenario.common;
    let id = run_id();
    let monitor = Monitor::new(&common.watch, scenario.clients);
    let monitor_stop = CancellationToken::new();
    let monitor_task = monitor.spawn(common.progress, monitor_stop.clone());
    let result = run_with_monitor(scenario, &id, &monitor).await;
    monitor_stop.cancel();
    let _ = monitor_task.await;
    result
}

async fn run_with_monitor(scenario: &LoadScenario, id: &str, monitor: &Arc<Monitor>) -> Result<LoadReport, RunError> {
    let common = &scenario.common;
    let room_name = |r: usize| format!("lg-{id}-{r}");

    // Sessions, then connections and joins, each with bounded concurrency.
    let setup_started = Instant::now();
    let http = reqwest::Client::new();
    let tokens: Vec<Result<String, ConnectError>> = futures::stream::iter(0..scenario.clients)
        .map(|i| {
            let gateway = &common.gateways[scenario.placement(i).gateway];
            let (http, auth) = (&http, &common.auth);
            async move {
                auth.token(http, gateway, &format!("lg:{id}:{i}"), &format!("lg-{i}"))
                    .await
            }
        })
        .buffered(common.connect_concurrency)
        .collect()
        .await;
    let sessions_seconds = setup_started.elapsed().as_secs_f64();
    let connect_started = Instant::now();
    let results: Vec<Result<Ready, ConnectError>> = futures::stream::iter(tokens.into_iter().enumerate())
        .map(|(i, token)| {
            let placement = scenario.placement(i);
            let gateway = &common.gateways[placement.gateway];
            let room = room_name(placement.room);
            let counters = &monitor.counters;
            async move {
                let attempt = async {
                    let token = token?;
                    let source = connect::source_address(i, common.source_addrs);
                    let mut ws = connect::open(gateway, source, &token, scenario.read_buffer_bytes).await?;
                    let last_seq = connect::join(&mut ws, &room, common.connect_timeout).await?;
                    Ok(Ready {
                        index: i,
                        placement,
                        ws,
                        first_seq: last_seq + 1,
                    })
                };
                let result = attempt.await;
                Counters::add(
                    if result.is_ok() {
                        &counters.connected
                    } else {
                        &counters.failed
                    },
                    1,
                );
                result
            }
        })
        .buffer_unordered(common.connect_concurrency)
        .collect()
        .await;
    let connect_seconds = connect_started.elapsed().as_secs_f64();
    let total = results.len();
    let mut setup_errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut first_error = None;
    let mut ready = Vec::with_capacity(total);
    for r in results {
        match r {
            Ok(c) => ready.push(c),
            Err(e) => {
                *setup_errors.entry(e.kind().into()).or_default() += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(first) = first_error {
        return Err(RunError::Setup {
            failed: total - ready.len(),
            total,
            first,
        });
    }
    ready.sort_by_key(|c| c.index);

    // The schedule, in both clocks: tokio's for timers, unix nanos for the stamps.
    let lead = Duration::from_millis(50);
    let start = Instant::now() + lead;
    let start_unix = unix_nanos() + lead.as_nanos() as u64;
    let window = (
        start_unix + scenario.warmup.as_nanos() as u64,
        start_unix + (scenario.warmup + scenario.duration).as_nanos() as u64,
    );
    let send_end = start + scenario.warmup + scenario.duration;
    let shared = Arc::new(Shared {
        monitor: monitor.clone(),
        window,
        delivery: Mutex::new(Latencies::new()),
        ack: Mutex::new(Latencies::new()),
        window_sent: AtomicU64::new(0),
        window_acked: AtomicU64::new(0),
        window_delivered: AtomicU64::new(0),
    });
    let period = Duration::from_secs_f64(1.0 / scenario.rate_per_sender);
    let total_senders = (scenario.rooms * scenario.senders_per_room) as u32;
    // Clients that only read, for the io_uring (or for tokio, after all, without one).
    let mut receive_only: Vec<(Client, Ws)> = Vec::new();
    let mut stops = Vec::with_capacity(ready.len());
    let mut tasks = Vec::with_capacity(ready.len());
    let mut progress = Vec::with_capacity(ready.len());
    for c in ready {
        let p = c.placement;
        let sender = p.sends.then(|| (p.room * scenario.senders_per_room + p.member) as u32);
        // Senders are spread over one period so that they do not all fire at once.
        let plan = sender.map(|s| SendPlan {
            sender: s,
            first_tick: start + period.mul_f64(f64::from(s) / f64::from(total_senders)),
            period,
            end: send_end,
            max_in_flight: scenario.max_in_flight,
            text_bytes: scenario.text_bytes,
        });
        // The first member of a room that does not send reacts, at its own pace.
        let reactions = (scenario.reactions_per_room > 0.0 && p.member == scenario.senders_per_room).then(|| {
            let period = Duration::from_secs_f64(1.0 / scenario.reactions_per_room);
            ReactPlan {
                room: p.room,
                first_tick: start + period / 2,
                period,
                end: send_end,
            }
        });
        // The members after the senders and the reactor type, spread over one interval.
        let first_typist = scenario.senders_per_room + 1;
        let typing = (p.member >= first_typist && p.member < first_typist + scenario.typists_per_room).then(|| {
            let every = crate::scenario::TYPING_EVERY;
            let slot = (p.room * scenario.typists_per_room + p.member - first_typist) as f64;
            let of = (scenario.rooms * scenario.typists_per_room) as f64;
            TypePlan {
                first_tick: start + every.mul_f64(slot / of),
                every,
                end: send_end,
            }
        });
        let client_progress = Arc::new(Progress::default());
        client_progress
            .contiguous_plus_one
            .store(c.first_seq, Ordering::Release);
        progress.push((p, sender, client_progress.clone()));
        let client = Client {
            room: room_name(p.room).into(),
            shared: shared.clone(),
            progress: client_progress,
            outcome: Outcome::new(p, sender, c.first_seq),
            pending: HashMap::new(),
            delivery_buf: Vec::with_capacity(FLUSH_EVERY),
            ack_buf: Vec::with_capacity(FLUSH_EVERY),
            newest_message: None,
            reacted_on: None,
            reactions_in_flight: 0,
        };
        if scenario.receive_ring && plan.is_none() && reactions.is_none() && typing.is_none() {
            receive_only.push((client, c.ws));
            continue;
        }
        let (stop, stopped) = tokio::sync::oneshot::channel();
        stops.push(stop);
        tasks.push(tokio::spawn(client.drive(c.ws, plan, (reactions, typing), stopped)));
    }
    let (ring, ring_unavailable) = match receive_only.is_empty() {
        true => (None, None),
        false => match ring::Ring::new(receive_only.len()) {
            Ok(ring) => (Some(ring), None),
            Err(e) => (None, Some(e)),
        },
    };
    let receivers_on_ring = if ring.is_some() { receive_only.len() } else { 0 };
    let ring_stop = Arc::new(AtomicBool::new(false));
    let ring_task = match ring {
        Some(ring) => {
            let receivers: Vec<_> = receive_only
                .into_iter()
                .map(|(client, ws)| ring::Receiver::new(client, ws).expect("a connected socket leaves tokio's reactor"))
                .collect();
            let stop = ring_stop.clone();
            Some(tokio::task::spawn_blocking(move || ring.run(receivers, stop)))
        }
        None => {
            for (client, ws) in receive_only {
                let (stop, stopped) = tokio::sync::oneshot::channel();
                stops.push(stop);
                tasks.push(tokio::spawn(client.drive(ws, None, (None, None), stopped)));
            }
            None
        }
    };

    monitor.set_phase(if scenario.warmup.is_zero() {
        Phase::Measure
    } else {
        Phase::Warmup
    });
    tokio::time::sleep_until(start + scenario.warmup).await;
    monitor.set_phase(Phase::Measure);
    monitor.open_window();
    let started_at = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    tokio::time::sleep_until(send_end).await;
    monitor.close_window();
    monitor.set_phase(Phase::Drain);

    let drain_started = Instant::now();
    let drain_completed = drain(&progress, scenario.rooms, drain_started + scenario.drain_timeout).await;
    let drain_seconds = drain_started.elapsed().as_secs_f64();
    for stop in stops {
        let _ = stop.send(());
    }
    ring_stop.store(true, Ordering::Release);
    let mut outcomes = Vec::with_capacity(tasks.len() + receivers_on_ring);
    for task in tasks {
        outcomes.push(task.await.expect("client tasks do not panic"));
    }
    if let Some(task) = ring_task {
        outcomes.extend(task.await.expect("the ring's thread does not panic"));
    }
    monitor.set_phase(Phase::Done);

    let (by_seq, by_sender) = account(&mut outcomes, scenario.rooms);
    let mut totals = Totals::default();
    for o in &outcomes {
        totals.sent += o.sent;
        totals.acked += o.acked;
        totals.reactions_sent += o.reactions_sent;
        totals.reactions_acked += o.reactions_acked;
        totals.typing_sent += o.typing_sent;
        totals.typing_received += o.typing_received;
        totals.presence_received += o.presence_received;
        totals.duplicate_acks += o.duplicate_acks;
        totals.unacked += o.unacked;
        totals.skipped_window_full += o.skipped;
        for (code, n) in &o.errors {
            *totals.errors.entry(code.clone()).or_default() += n;
        }
        if let Some(d) = &o.disconnect {
            *totals.disconnects.entry(d.clone()).or_default() += 1;
        }
    }

    let window_seconds = scenario.duration.as_secs_f64();
    let delivered = shared.window_delivered.load(Ordering::Relaxed);
    let throughput = Throughput {
        target_sends_per_second: scenario.target_sends_per_second(),
        sends_per_second: per_second(shared.window_sent.load(Ordering::Relaxed), window_seconds),
        acks_per_second: per_second(shared.window_acked.load(Ordering::Relaxed), window_seconds),
        expected_deliveries_per_second: scenario.expected_deliveries_per_second(),
        deliveries_per_second: per_second(delivered, window_seconds),
        sent: shared.window_sent.load(Ordering::Relaxed),
        acked: shared.window_acked.load(Ordering::Relaxed),
        delivered,
    };
    let processes: Vec<_> = monitor
        .trackers
        .lock()
        .expect("not poisoned")
        .iter()
        .map(|t| t.report(window_seconds, delivered))
        .collect();
    let delivery = shared.delivery.lock().expect("not poisoned").clone();
    let ack = shared.ack.lock().expect("not poisoned").clone();
    let latency = crate::report::Latency {
        delivery: delivery.summary(),
        ack: ack.summary(),
        delivery_distribution: delivery.distribution(),
        ack_distribution: ack.distribution(),
    };
    let mut report = LoadReport {
        kind: "load",
        name: common.name.clone(),
        started_at,
        config: LoadConfig {
            gateways: common.gateways.iter().map(|g| g.url.clone()).collect(),
            auth: common.auth.label(),
            clients: scenario.clients,
            rooms: scenario.rooms,
            senders_per_room: scenario.senders_per_room,
            rate_per_sender: scenario.rate_per_sender,
            reactions_per_room: scenario.reactions_per_room,
            typists_per_room: scenario.typists_per_room,
            warmup_seconds: scenario.warmup.as_secs_f64(),
            duration_seconds: scenario.duration.as_secs_f64(),
            drain_timeout_seconds: scenario.drain_timeout.as_secs_f64(),
            max_in_flight: scenario.max_in_flight,
            text_bytes: scenario.text_bytes,
            source_addrs: common.source_addrs,
            receivers_on_ring,
        },
        setup: Setup {
            sessions_seconds,
            connect_seconds,
            connected: total,
            failed: 0,
            errors: setup_errors,
        },
        window_seconds,
        throughput,
        totals,
        correctness: Correctness::new(by_seq, by_sender),
        latency,
        drain: Drain {
            completed: drain_completed,
            seconds: drain_seconds,
        },
        processes,
        warnings: Vec::new(),
    };
    report.warnings = warnings(&report);
    if let Some(e) = ring_unavailable {
        report.warnings.push(format!(
            "no io_uring here ({e}): the receive-only clients read through tokio"
        ));
    }
    Ok(report)
}

/// Waits until every sender (and reactor) has its acks and every member has every acked
/// event of its room, or until `deadline`; true when everything arrived.
async fn drain(progress: &[(Placement, Option<u32>, Arc<Progress>)], rooms: usize, deadline: Instant) -> bool {
    // A member that neither sends nor reacts is done sending from the start, with nothing
    // in flight.
    let senders_settled = || {
        progress.iter().all(|(_, _, p)| {
            p.ended.load(Ordering::Acquire)
                || (p.done_sending.load(Ordering::Acquire) && p.in_flight.load(Ordering::Acquire) == 0)
        })
    };
    while !senders_settled() {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
    let mut targets = vec![0u64; rooms];
    for (placement, _, p) in progress.iter().filter(|(_, s, _)| s.is_some()) {
        let t = &mut targets[placement.room];
        *t = (*t).max(p.max_acked_seq.load(Ordering::Acquire));
    }
    let members_caught_up = || {
        progress.iter().all(|(placement, _, p)| {
            p.ended.load(Ordering::Acquire) || p.contiguous_plus_one.load(Ordering::Acquire) > targets[placement.room]
        })
    };
    while !members_caught_up() {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
    true
}
