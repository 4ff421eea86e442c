//! A load run: set up every client (session, connection, join), send at a paced rate for
//! warm-up plus the measured window, drain, then account.
//!
//! Each client is one task that owns its socket and its own ledger; nothing is shared on
//! the hot path but relaxed counters and, every few hundred samples, a latency histogram.
//! The drain waits for facts, not for time: every sender's acks, then every member's
//! contiguous `seq` reaching the highest acked one, with a timeout as the only bound.

use crate::accounting::{SeqSet, Stamp, StreamCheck, Tally};
use crate::connect::{self, ConnectError, Ws};
use crate::monitor::{Counters, Monitor, Phase};
use crate::protocol::{self, Incoming};
use crate::report::{Correctness, Drain, LoadConfig, LoadReport, Setup, Throughput, Totals};
use crate::scenario::{LoadScenario, Placement, ScenarioError};
use crate::stats::{Latencies, per_second};
use futures::{SinkExt, StreamExt};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

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

/// Latency samples a client keeps before taking the shared histogram's lock.
const FLUSH_EVERY: usize = 256;
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

struct SendPlan {
    sender: u32,
    first_tick: Instant,
    period: Duration,
    end: Instant,
    max_in_flight: usize,
    text_bytes: usize,
}

/// One client's view of the run, handed back when its task ends.
struct Outcome {
    placement: Placement,
    sender: Option<u32>,
    first_seq: u64,
    by_seq: StreamCheck,
    by_sender: HashMap<u32, StreamCheck>,
    acked_seqs: SeqSet,
    acked_ns: SeqSet,
    sent: u64,
    acked: u64,
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
            by_sender: HashMap::new(),
            acked_seqs: SeqSet::new(),
            acked_ns: SeqSet::new(),
            sent: 0,
            acked: 0,
            duplicate_acks: 0,
            unacked: 0,
            skipped: 0,
            errors: BTreeMap::new(),
            disconnect: None,
        }
    }
}

struct Client {
    ws: Ws,
    room: Arc<str>,
    shared: Arc<Shared>,
    progress: Arc<Progress>,
    outcome: Outcome,
    /// Send time (unix nanos) of each unacked message, by counter.
    pending: HashMap<u64, u64>,
    delivery_buf: Vec<u64>,
    ack_buf: Vec<u64>,
}

async fn tick(ticker: &mut Option<tokio::time::Interval>) {
    match ticker {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

impl Client {
    async fn drive(mut self, plan: Option<SendPlan>, stop: CancellationToken) -> Outcome {
        let mut ticker = plan.as_ref().map(|p| {
            let mut t = tokio::time::interval_at(p.first_tick, p.period);
            // Catch up after a stall, so that the mean rate is the one asked for.
            t.set_missed_tick_behavior(MissedTickBehavior::Burst);
            t
        });
        let send_end = plan.as_ref().map_or_else(Instant::now, |p| p.end);
        let mut sending = plan.is_some();
        if !sending {
            self.progress.done_sending.store(true, Ordering::Release);
        }
        // One timer and one cancellation waiter for the whole run, not one per loop turn (a
        // turn per delivery): the token is shared by every client, and registering with it
        // takes its lock.
        let end_of_sending = tokio::time::sleep_until(send_end);
        let cancelled = stop.cancelled();
        tokio::pin!(end_of_sending, cancelled);
        let mut n = 0u64;
        loop {
            tokio::select! {
                biased;
                _ = &mut cancelled => break,
                _ = &mut end_of_sending, if sending => {
                    sending = false;
                    self.progress.done_sending.store(true, Ordering::Release);
                }
                _ = tick(&mut ticker), if sending => {
                    let plan = plan.as_ref().expect("only senders tick");
                    if self.pending.len() >= plan.max_in_flight {
                        self.outcome.skipped += 1;
                        continue;
                    }
                    if let Err(cause) = self.send(plan, n).await {
                        self.outcome.disconnect = Some(cause);
                        break;
                    }
                    n += 1;
                }
                message = self.ws.next() => match message {
                    Some(Ok(Message::Text(text))) => self.handle(&text),
                    Some(Ok(Message::Close(frame))) => {
                        self.outcome.disconnect =
                            Some(frame.map_or_else(|| "close".to_owned(), |f| format!("close {}", u16::from(f.code))));
                        break;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        self.outcome.disconnect = Some(format!("error: {e}"));
                        break;
                    }
                    None => {
                        self.outcome.disconnect = Some("eof".into());
                        break;
                    }
                },
            }
        }
        self.progress.ended.store(true, Ordering::Release);
        self.flush_latencies();
        self.outcome.unacked = self.pending.len() as u64;
        if stop.is_cancelled() {
            let _ = tokio::time::timeout(Duration::from_secs(1), self.ws.close(None)).await;
        }
        self.outcome
    }

    async fn send(&mut self, plan: &SendPlan, n: u64) -> Result<(), String> {
        let now = unix_nanos();
        let stamp = Stamp {
            sender: plan.sender,
            n,
            sent_at_nanos: now,
        };
        let frame = protocol::send(
            &self.room,
            &stamp.encode_padded(plan.text_bytes),
            &protocol::client_msg_id(n),
        );
        self.ws
            .send(Message::Text(frame.into()))
            .await
            .map_err(|e| format!("send failed: {e}"))?;
        self.pending.insert(n, now);
        self.outcome.sent += 1;
        self.progress
            .in_flight
            .store(self.pending.len() as u64, Ordering::Release);
        Counters::add(&self.shared.monitor.counters.sent, 1);
        if self.shared.in_window(now) {
            self.shared.window_sent.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn handle(&mut self, text: &str) {
        let Ok(frame) = Incoming::parse(text) else {
            *self.outcome.errors.entry("unparsable_frame".into()).or_default() += 1;
            return;
        };
        let now = unix_nanos();
        match frame.kind.as_ref() {
            "message" => {
                let Some(seq) = frame.seq else {
                    *self.outcome.errors.entry("message_without_seq".into()).or_default() += 1;
                    return;
                };
                if seq < self.outcome.first_seq {
                    return;
                }
                self.outcome.by_seq.observe(seq);
                let contiguous = self.outcome.by_seq.contiguous().map_or(0, |c| c + 1);
                self.progress.contiguous_plus_one.store(contiguous, Ordering::Release);
                Counters::add(&self.shared.monitor.counters.delivered, 1);
                if self.shared.in_window(now) {
                    self.shared.window_delivered.fetch_add(1, Ordering::Relaxed);
                }
                match frame.text.as_deref().and_then(Stamp::parse) {
                    Some(stamp) => {
                        self.outcome
                            .by_sender
                            .entry(stamp.sender)
                            .or_insert_with(|| StreamCheck::starting_at(0))
                            .observe(stamp.n);
                        if self.shared.in_window(stamp.sent_at_nanos) {
                            self.delivery_buf.push(now.saturating_sub(stamp.sent_at_nanos));
                            if self.delivery_buf.len() >= FLUSH_EVERY {
                                self.flush_latencies();
                            }
                        }
                    }
                    None => *self.outcome.errors.entry("foreign_message".into()).or_default() += 1,
                }
            }
            "ack" => {
                let Some(n) = frame.client_msg_id.as_deref().and_then(protocol::parse_client_msg_id) else {
                    return;
                };
                self.outcome.acked += 1;
                self.outcome.acked_ns.insert(n);
                if frame.duplicate == Some(true) {
                    self.outcome.duplicate_acks += 1;
                }
                if let Some(seq) = frame.seq {
                    self.outcome.acked_seqs.insert(seq);
                    self.progress.max_acked_seq.fetch_max(seq, Ordering::AcqRel);
                }
                if let Some(sent_at) = self.pending.remove(&n)
                    && self.shared.in_window(sent_at)
                {
                    self.ack_buf.push(now.saturating_sub(sent_at));
                }
                self.progress
                    .in_flight
                    .store(self.pending.len() as u64, Ordering::Release);
                Counters::add(&self.shared.monitor.counters.acked, 1);
                if self.shared.in_window(now) {
                    self.shared.window_acked.fetch_add(1, Ordering::Relaxed);
                }
            }
            "error" => {
                let code = frame.code.as_deref().unwrap_or("unknown");
                *self.outcome.errors.entry(code.to_owned()).or_default() += 1;
                Counters::add(&self.shared.monitor.counters.errors, 1);
                if let Some(n) = frame.reference.as_deref().and_then(protocol::parse_client_msg_id) {
                    self.pending.remove(&n);
                    self.progress
                        .in_flight
                        .store(self.pending.len() as u64, Ordering::Release);
                }
            }
            _ => {}
        }
    }

    fn flush_latencies(&mut self) {
        for (buf, histogram) in [
            (&mut self.delivery_buf, &self.shared.delivery),
            (&mut self.ack_buf, &self.shared.ack),
        ] {
            if buf.is_empty() {
                continue;
            }
            let mut h = histogram.lock().expect("not poisoned");
            for nanos in buf.drain(..) {
                h.record_nanos(nanos);
            }
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
    let stop = CancellationToken::new();
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
        let client_progress = Arc::new(Progress::default());
        client_progress
            .contiguous_plus_one
            .store(c.first_seq, Ordering::Release);
        progress.push((p, sender, client_progress.clone()));
        let client = Client {
            ws: c.ws,
            room: room_name(p.room).into(),
            shared: shared.clone(),
            progress: client_progress,
            outcome: Outcome::new(p, sender, c.first_seq),
            pending: HashMap::new(),
            delivery_buf: Vec::with_capacity(FLUSH_EVERY),
            ack_buf: Vec::with_capacity(FLUSH_EVERY),
        };
        tasks.push(tokio::spawn(client.drive(plan, stop.clone())));
    }

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
    stop.cancel();
    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        outcomes.push(task.await.expect("client tasks do not panic"));
    }
    monitor.set_phase(Phase::Done);

    let (by_seq, by_sender) = account(&mut outcomes, scenario.rooms);
    let mut totals = Totals::default();
    for o in &outcomes {
        totals.sent += o.sent;
        totals.acked += o.acked;
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
            warmup_seconds: scenario.warmup.as_secs_f64(),
            duration_seconds: scenario.duration.as_secs_f64(),
            drain_timeout_seconds: scenario.drain_timeout.as_secs_f64(),
            max_in_flight: scenario.max_in_flight,
            text_bytes: scenario.text_bytes,
            source_addrs: common.source_addrs,
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
    Ok(report)
}

/// Waits until every sender has its acks and every member has every acked message of
/// its room, or until `deadline`; true when everything arrived.
async fn drain(progress: &[(Placement, Option<u32>, Arc<Progress>)], rooms: usize, deadline: Instant) -> bool {
    let senders_settled = || {
        progress.iter().filter(|(_, s, _)| s.is_some()).all(|(_, _, p)| {
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

/// Loss is judged per member against what its room's senders had acked (by seq) and what
/// each sender had acked (by counter); returns the sums over all members.
fn account(outcomes: &mut [Outcome], rooms: usize) -> (Tally, Tally) {
    let mut room_acked = vec![SeqSet::new(); rooms];
    let mut sender_acked: HashMap<u32, (usize, SeqSet)> = HashMap::new();
    for o in outcomes.iter() {
        if let Some(s) = o.sender {
            room_acked[o.placement.room].extend(&o.acked_seqs);
            sender_acked.insert(s, (o.placement.room, o.acked_ns.clone()));
        }
    }
    let (mut by_seq, mut by_sender) = (Tally::default(), Tally::default());
    for o in outcomes.iter_mut() {
        o.by_seq.count_lost(&room_acked[o.placement.room], o.first_seq);
        by_seq += o.by_seq.tally;
        for (s, (room, acked)) in &sender_acked {
            if *room == o.placement.room {
                o.by_sender
                    .entry(*s)
                    .or_insert_with(|| StreamCheck::starting_at(0))
                    .count_lost(acked, 0);
            }
        }
        for check in o.by_sender.values() {
            by_sender += check.tally;
        }
    }
    (by_seq, by_sender)
}

fn warnings(report: &LoadReport) -> Vec<String> {
    let mut w = Vec::new();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    if let Some(me) = report.processes.first()
        && me.cpu_percent >= 50.0 * cores
    {
        w.push(format!(
            "the load generator used {:.0}% CPU (of {} cores): figures may be limited by the generator, not the server",
            me.cpu_percent, cores
        ));
    }
    let t = &report.throughput;
    if t.sends_per_second < 0.95 * t.target_sends_per_second {
        w.push(format!(
            "sent {:.1} msg/s of a target {:.1}: the pace was not kept",
            t.sends_per_second, t.target_sends_per_second
        ));
    }
    if report.totals.skipped_window_full > 0 {
        w.push(format!(
            "{} sends skipped with {} already unacked: acks are slower than the send rate",
            report.totals.skipped_window_full, report.config.max_in_flight
        ));
    }
    if !report.drain.completed {
        w.push("the drain timed out: acks or deliveries were still missing at the end".into());
    }
    if !report.totals.disconnects.is_empty() {
        w.push(format!("connections ended early: {:?}", report.totals.disconnects));
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placement(room: usize, member: usize, sends: bool) -> Placement {
        Placement {
            room,
            member,
            gateway: 0,
            sends,
        }
    }

    /// Room 0: sender 0 (seqs 1, 3, 5 as its n = 0, 1, 2) and sender 1 (seqs 2, 4 as n =
    /// 0, 1), plus a receiver. Room 1: one sender whose single message reached nobody else.
    fn room_outcomes() -> Vec<Outcome> {
        let mut s0 = Outcome::new(placement(0, 0, true), Some(0), 1);
        let mut s1 = Outcome::new(placement(0, 1, true), Some(1), 1);
        let receiver = Outcome::new(placement(0, 2, false), None, 1);
        for (n, seq) in [(0, 1), (1, 3), (2, 5)] {
            s0.acked_ns.insert(n);
            s0.acked_seqs.insert(seq);
        }
        for (n, seq) in [(0, 2), (1, 4)] {
            s1.acked_ns.insert(n);
            s1.acked_seqs.insert(seq);
        }
        let mut lonely = Outcome::new(placement(1, 0, true), Some(2), 1);
        let mut lonely_receiver = Outcome::new(placement(1, 1, false), None, 1);
        lonely.acked_ns.insert(0);
        lonely.acked_seqs.insert(1);
        deliver(&mut lonely, &[(1, 2, 0)]);
        deliver(&mut lonely_receiver, &[]);
        vec![s0, s1, receiver, lonely, lonely_receiver]
    }

    /// Feeds `(seq, sender, n)` deliveries into a member's checks, as `Client::handle` does.
    fn deliver(o: &mut Outcome, deliveries: &[(u64, u32, u64)]) {
        for (seq, sender, n) in deliveries {
            o.by_seq.observe(*seq);
            o.by_sender
                .entry(*sender)
                .or_insert_with(|| StreamCheck::starting_at(0))
                .observe(*n);
        }
    }

    const ALL: [(u64, u32, u64); 5] = [(1, 0, 0), (2, 1, 0), (3, 0, 1), (4, 1, 1), (5, 0, 2)];

    #[test]
    fn a_clean_run_accounts_every_acked_message_to_every_member() {
        let mut outcomes = room_outcomes();
        for o in outcomes.iter_mut().take(3) {
            deliver(o, &ALL);
        }
        // Only room 1's receiver missed its message.
        let (by_seq, by_sender) = account(&mut outcomes, 2);
        assert_eq!(
            by_seq,
            Tally {
                delivered: 16,
                duplicates: 0,
                out_of_order: 0,
                lost: 1
            }
        );
        assert_eq!(by_seq, by_sender);
    }

    #[test]
    fn loss_duplicates_and_reordering_show_by_seq_and_by_sender() {
        let mut outcomes = room_outcomes();
        deliver(&mut outcomes[0], &ALL);
        deliver(&mut outcomes[1], &ALL);
        // The receiver: seq 3 lost, seq 2 twice, seq 5 before seq 4.
        deliver(
            &mut outcomes[2],
            &[(1, 0, 0), (2, 1, 0), (2, 1, 0), (5, 0, 2), (4, 1, 1)],
        );
        let (by_seq, by_sender) = account(&mut outcomes, 2);
        let expected = Tally {
            delivered: 10 + 4 + 1,
            duplicates: 1,
            out_of_order: 1,
            lost: 1 + 1,
        };
        assert_eq!(by_seq, expected);
        // 5 before 4 crosses senders: each sender's own messages still came in order.
        assert_eq!(
            by_sender,
            Tally {
                out_of_order: 0,
                ..expected
            }
        );
    }

    #[test]
    fn a_renumbering_server_is_caught_by_the_sender_counter_only() {
        let mut outcomes = room_outcomes();
        deliver(&mut outcomes[0], &ALL);
        deliver(&mut outcomes[1], &ALL);
        // Seqs in order, but sender 0's messages 1 and 2 were swapped before numbering.
        deliver(
            &mut outcomes[2],
            &[(1, 0, 0), (2, 1, 0), (3, 0, 2), (4, 1, 1), (5, 0, 1)],
        );
        let (by_seq, by_sender) = account(&mut outcomes, 2);
        assert_eq!(by_seq.out_of_order, 0);
        assert_eq!(by_sender.out_of_order, 1);
    }
}
