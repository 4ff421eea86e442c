//! The once-a-second side of a run: the progress line on stderr and the periodic process
//! samples (peak RSS is only visible by sampling).

use crate::procstat::{Pid, Tracker, Watch};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Where a run is; shown in the progress line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    Setup = 0,
    Warmup = 1,
    Measure = 2,
    Drain = 3,
    Hold = 4,
    Done = 5,
}

impl Phase {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Phase::Setup,
            1 => Phase::Warmup,
            2 => Phase::Measure,
            3 => Phase::Drain,
            4 => Phase::Hold,
            _ => Phase::Done,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Phase::Setup => "setup",
            Phase::Warmup => "warm-up",
            Phase::Measure => "measure",
            Phase::Drain => "drain",
            Phase::Hold => "hold",
            Phase::Done => "done",
        }
    }
}

/// Counters every client task bumps; relaxed atomics, read once a second.
#[derive(Debug, Default)]
pub struct Counters {
    pub connected: AtomicU64,
    pub failed: AtomicU64,
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    pub delivered: AtomicU64,
    pub errors: AtomicU64,
    /// Connections open now (idle runs).
    pub open: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Shared between the run and its monitor task.
pub struct Monitor {
    pub counters: Counters,
    phase: AtomicU8,
    /// The load generator first, then the watched processes.
    pub trackers: Mutex<Vec<Tracker>>,
    started: Instant,
    /// Shown as `x/total` while connecting.
    total_clients: u64,
}

impl Monitor {
    pub fn new(watch: &[Watch], total_clients: usize) -> Arc<Self> {
        let trackers = std::iter::once(Watch::me())
            .chain(watch.iter().cloned())
            .map(Tracker::new)
            .collect();
        Arc::new(Self {
            counters: Counters::default(),
            phase: AtomicU8::new(Phase::Setup as u8),
            trackers: Mutex::new(trackers),
            started: Instant::now(),
            total_clients: total_clients as u64,
        })
    }

    pub fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Relaxed);
    }

    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Relaxed))
    }

    pub fn open_window(&self) {
        self.trackers
            .lock()
            .expect("not poisoned")
            .iter_mut()
            .for_each(Tracker::open);
    }

    pub fn close_window(&self) {
        self.trackers
            .lock()
            .expect("not poisoned")
            .iter_mut()
            .for_each(Tracker::close);
    }

    /// Samples and prints once a second until `stop`.
    pub fn spawn(self: &Arc<Self>, print: bool, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        let monitor = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_secs(1));
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            let mut previous = Snapshot::take(&monitor);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = ticker.tick() => {}
                }
                monitor
                    .trackers
                    .lock()
                    .expect("not poisoned")
                    .iter_mut()
                    .for_each(Tracker::sample_if_open);
                let now = Snapshot::take(&monitor);
                if print {
                    eprintln!("{}", monitor.line(&previous, &now));
                }
                previous = now;
            }
        })
    }

    fn line(&self, a: &Snapshot, b: &Snapshot) -> String {
        let seconds = (b.at - a.at).as_secs_f64().max(1e-3);
        let rate = |x: u64, y: u64| (y.saturating_sub(x)) as f64 / seconds;
        let cpu = (b.cpu_seconds - a.cpu_seconds) / seconds * 100.0;
        let c = &b.counters;
        let phase = self.phase();
        let head = format!(
            "[loadgen {:>5.0}s {:<7}]",
            self.started.elapsed().as_secs_f64(),
            phase.label()
        );
        let tail = format!("errors {} | loadgen cpu {cpu:.0}%", c[5]);
        match phase {
            Phase::Setup | Phase::Hold => format!(
                "{head} connected {}/{} failed {} open {} | {tail}",
                c[0], self.total_clients, c[1], c[6]
            ),
            _ => format!(
                "{head} sent {:.0}/s acked {:.0}/s delivered {:.0}/s | {tail}",
                rate(a.counters[2], c[2]),
                rate(a.counters[3], c[3]),
                rate(a.counters[4], c[4])
            ),
        }
    }
}

struct Snapshot {
    at: Instant,
    counters: [u64; 7],
    cpu_seconds: f64,
}

impl Snapshot {
    fn take(monitor: &Monitor) -> Self {
        let c = &monitor.counters;
        Self {
            at: Instant::now(),
            counters: [
                Counters::get(&c.connected),
                Counters::get(&c.failed),
                Counters::get(&c.sent),
                Counters::get(&c.acked),
                Counters::get(&c.delivered),
                Counters::get(&c.errors),
                Counters::get(&c.open),
            ],
            cpu_seconds: crate::procstat::sample(Pid::SelfProcess).map_or(0.0, |s| s.cpu_seconds),
        }
    }
}
