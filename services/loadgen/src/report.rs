//! What a run produces: a JSON report (the record, read by `scripts/bench.sh`), a
//! one-screen summary for a person, and the latency plot. Every field is always present,
//! with zeros rather than absences, so that scripts need no special cases.

use crate::accounting::Tally;
use crate::procstat::ProcessReport;
use crate::stats::LatencySummary;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub kind: &'static str,
    pub name: String,
    /// Unix seconds at the start of the measured window.
    pub started_at: u64,
    pub config: LoadConfig,
    pub setup: Setup,
    /// Seconds of the measured window (after warm-up).
    pub window_seconds: f64,
    pub throughput: Throughput,
    pub totals: Totals,
    pub correctness: Correctness,
    pub latency: Latency,
    pub drain: Drain,
    /// The load generator first, then the watched processes.
    pub processes: Vec<ProcessReport>,
    /// Hints for whoever reads the figures (a saturated generator, a missed pace).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadConfig {
    pub gateways: Vec<String>,
    pub auth: &'static str,
    pub clients: usize,
    pub rooms: usize,
    pub senders_per_room: usize,
    pub rate_per_sender: f64,
    /// Reactions per second per room (a `react` or `unreact`, each a timeline event).
    pub reactions_per_room: f64,
    /// Members per room sending `typing` every 3 s.
    pub typists_per_room: usize,
    pub warmup_seconds: f64,
    pub duration_seconds: f64,
    pub drain_timeout_seconds: f64,
    pub max_in_flight: usize,
    pub text_bytes: usize,
    pub source_addrs: u8,
    /// Clients that only read and read through the io_uring (`--receive-ring`); the
    /// others run as tokio tasks.
    pub receivers_on_ring: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Setup {
    pub sessions_seconds: f64,
    pub connect_seconds: f64,
    pub connected: usize,
    pub failed: usize,
    /// Failures by kind (`tcp_refused`, `handshake`, …).
    pub errors: BTreeMap<String, u64>,
}

/// Rates over the measured window.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Throughput {
    pub target_sends_per_second: f64,
    pub sends_per_second: f64,
    pub acks_per_second: f64,
    pub expected_deliveries_per_second: f64,
    pub deliveries_per_second: f64,
    pub sent: u64,
    pub acked: u64,
    pub delivered: u64,
}

/// Counts over the whole run, warm-up and drain included.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    pub sent: u64,
    pub acked: u64,
    /// Reactions (and reactions taken back) sent and acked; their deliveries count with
    /// the messages'.
    pub reactions_sent: u64,
    pub reactions_acked: u64,
    /// `typing` frames sent, and received (every member's, summed): typing travels apart
    /// from the timeline and is never acknowledged.
    pub typing_sent: u64,
    pub typing_received: u64,
    /// `presence` frames received, every member's summed.
    pub presence_received: u64,
    /// Acks with `duplicate: true`: the server saw a `client_msg_id` twice.
    pub duplicate_acks: u64,
    /// Sends still without an ack or error when the run ended.
    pub unacked: u64,
    /// Ticks skipped because `max_in_flight` sends were already waiting.
    pub skipped_window_full: u64,
    /// `error` frames by code.
    pub errors: BTreeMap<String, u64>,
    /// Connections that ended before the run did, by close code or cause.
    pub disconnects: BTreeMap<String, u64>,
}

/// Loss, duplicates and order, summed over every member of every room: once by the
/// room's `seq`, once by each sender's own counter.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Correctness {
    pub by_seq: Tally,
    pub by_sender: Tally,
    /// Nothing lost, duplicated or reordered by either measure.
    pub clean: bool,
}

impl Correctness {
    pub fn new(by_seq: Tally, by_sender: Tally) -> Self {
        let zero = |t: &Tally| t.lost == 0 && t.duplicates == 0 && t.out_of_order == 0;
        Self {
            clean: zero(&by_seq) && zero(&by_sender),
            by_seq,
            by_sender,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    /// Send (the timestamp in the text) to receipt by each member, for messages sent in
    /// the measured window.
    pub delivery: LatencySummary,
    /// Send to ack, at the sender.
    pub ack: LatencySummary,
    /// `[percentile, ms]` points of the delivery distribution (what the plot draws).
    pub delivery_distribution: Vec<(f64, f64)>,
    pub ack_distribution: Vec<(f64, f64)>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Drain {
    /// Every ack and every acked message's delivery arrived within the drain timeout.
    pub completed: bool,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct IdleReport {
    pub kind: &'static str,
    pub name: String,
    pub started_at: u64,
    pub config: IdleConfig,
    pub requested: usize,
    /// Connections that completed the handshake (and the join, with rooms).
    pub opened: usize,
    pub failed: usize,
    /// Failures by kind; `tcp_too_many_open_files` means raise `ulimit -n`.
    pub errors: BTreeMap<String, u64>,
    /// Still open at the end of the hold: the figure that counts.
    pub open_at_end: usize,
    pub connect_seconds: f64,
    pub connects_per_second: f64,
    pub hold_seconds: f64,
    /// The window runs from before the first connection to the end of the hold, so the
    /// RSS growth of a watched server is what the connections cost it.
    pub processes: Vec<IdleProcess>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct IdleConfig {
    pub gateways: Vec<String>,
    pub auth: &'static str,
    pub connections: usize,
    pub rooms: usize,
    pub hold_seconds: f64,
    pub source_addrs: u8,
    pub read_buffer_bytes: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct IdleProcess {
    #[serde(flatten)]
    pub process: ProcessReport,
    /// `(rss at the end of the hold − rss before connecting) / open_at_end`.
    pub rss_per_connection_bytes: Option<f64>,
    /// With several gateways: the same growth divided by one gateway's share of the
    /// connections (`open_at_end / gateways`), what each connection costs a gateway that
    /// holds it. Meaningless for a process that holds none, such as the load generator.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_per_gateway_share_bytes: Option<f64>,
}

/// Where the files of a run go: `--out report.json` names the JSON (the summary and the
/// plot sit beside it); anything else is a directory to hold `<name>.json`,
/// `<name>.txt` and `<name>-latency.svg`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputPaths {
    pub json: PathBuf,
    pub summary: PathBuf,
    pub svg: PathBuf,
}

impl OutputPaths {
    pub fn new(out: &Path, name: &str) -> Self {
        if out.extension().is_some_and(|e| e == "json") {
            Self {
                json: out.to_path_buf(),
                summary: out.with_extension("txt"),
                svg: out.with_extension("svg"),
            }
        } else {
            Self {
                json: out.join(format!("{name}.json")),
                summary: out.join(format!("{name}.txt")),
                svg: out.join(format!("{name}-latency.svg")),
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {source}")]
pub struct WriteError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

fn write(path: &Path, contents: &[u8]) -> Result<(), WriteError> {
    let io = |source| WriteError {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    std::fs::write(path, contents).map_err(io)
}

impl LoadReport {
    pub fn write(&self, paths: &OutputPaths) -> Result<(), WriteError> {
        write(
            &paths.json,
            &serde_json::to_vec_pretty(self).expect("reports serialize"),
        )?;
        write(&paths.summary, self.summary().as_bytes())?;
        let title = format!(
            "{}: {} clients, {} rooms, {}×{} msg/s — send→receive latency",
            self.name,
            self.config.clients,
            self.config.rooms,
            self.config.senders_per_room,
            self.config.rate_per_sender
        );
        let svg = crate::plot::latency_svg(
            &title,
            &[
                crate::plot::Series {
                    label: "send → delivery",
                    colour: "#1f77b4",
                    points: &self.latency.delivery_distribution,
                },
                crate::plot::Series {
                    label: "send → ack",
                    colour: "#ff7f0e",
                    points: &self.latency.ack_distribution,
                },
            ],
        );
        write(&paths.svg, svg.as_bytes())
    }

    pub fn summary(&self) -> String {
        let c = &self.config;
        let t = &self.throughput;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} — load: {} clients, {} rooms, {} senders/room at {} msg/s, {}s (+{}s warm-up), {} gateway(s), {} auth",
            self.name,
            c.clients,
            c.rooms,
            c.senders_per_room,
            c.rate_per_sender,
            c.duration_seconds,
            c.warmup_seconds,
            c.gateways.len(),
            c.auth
        );
        let _ = writeln!(
            s,
            "  setup       {} connected, {} failed (sessions {:.1}s, connect+join {:.1}s)",
            self.setup.connected, self.setup.failed, self.setup.sessions_seconds, self.setup.connect_seconds
        );
        let _ = writeln!(
            s,
            "  sends       {:>10.1}/s acked (sent {:.1}/s, target {:.1}/s)",
            t.acks_per_second, t.sends_per_second, t.target_sends_per_second
        );
        let _ = writeln!(
            s,
            "  deliveries  {:>10.1}/s (expected {:.1}/s)",
            t.deliveries_per_second, t.expected_deliveries_per_second
        );
        for (label, l) in [("delivery", &self.latency.delivery), ("ack", &self.latency.ack)] {
            let _ = writeln!(
                s,
                "  {label:<11} p50 {:.2} ms  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}  (n={})",
                l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms, l.count
            );
        }
        let (q, r) = (&self.correctness.by_seq, &self.correctness.by_sender);
        let _ = writeln!(
            s,
            "  correctness {} — by seq: lost {} dup {} reordered {}; by sender: lost {} dup {} reordered {}",
            if self.correctness.clean { "CLEAN" } else { "NOT CLEAN" },
            q.lost,
            q.duplicates,
            q.out_of_order,
            r.lost,
            r.duplicates,
            r.out_of_order
        );
        let to = &self.totals;
        let _ = writeln!(
            s,
            "  totals      sent {} acked {} (dup acks {}, unacked {}, window full {}); errors {:?}; disconnects {:?}",
            to.sent, to.acked, to.duplicate_acks, to.unacked, to.skipped_window_full, to.errors, to.disconnects
        );
        if to.typing_sent + to.typing_received + to.presence_received > 0 {
            let _ = writeln!(
                s,
                "  signals     typing sent {} received {}; presence received {}",
                to.typing_sent, to.typing_received, to.presence_received
            );
        }
        let _ = writeln!(
            s,
            "  drain       {} in {:.2}s",
            if self.drain.completed { "complete" } else { "TIMED OUT" },
            self.drain.seconds
        );
        write_processes(&mut s, self.processes.iter().map(|p| (p, None, None)));
        for w in &self.warnings {
            let _ = writeln!(s, "  warning     {w}");
        }
        s
    }
}

fn write_processes<'a>(s: &mut String, processes: impl Iterator<Item = (&'a ProcessReport, Option<f64>, Option<f64>)>) {
    for (p, per_connection, per_share) in processes {
        let _ = write!(
            s,
            "  cpu/mem     {:<18} {:>7.2} cpu-s ({:>5.1}% of a core)  rss {:.1} MiB (max {:.1})",
            p.name,
            p.cpu_seconds,
            p.cpu_percent,
            p.rss_end_bytes as f64 / 1048576.0,
            p.rss_max_bytes as f64 / 1048576.0
        );
        if let Some(x) = p.cpu_seconds_per_million_deliveries {
            let _ = write!(s, "  {x:.2} cpu-s/M deliveries");
        }
        if let Some(b) = per_connection {
            let _ = write!(s, "  {:.2} KiB/connection", b / 1024.0);
        }
        if let Some(b) = per_share {
            let _ = write!(s, " ({:.2} KiB per connection of one gateway's share)", b / 1024.0);
        }
        if let Some(e) = &p.error {
            let _ = write!(s, "  [{e}]");
        }
        s.push('\n');
    }
}

impl IdleReport {
    pub fn write(&self, paths: &OutputPaths) -> Result<(), WriteError> {
        write(
            &paths.json,
            &serde_json::to_vec_pretty(self).expect("reports serialize"),
        )?;
        write(&paths.summary, self.summary().as_bytes())
    }

    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} — idle: {} connections requested over {} gateway(s) from {} source address(es), {} rooms",
            self.name,
            self.requested,
            self.config.gateways.len(),
            self.config.source_addrs,
            self.config.rooms
        );
        let _ = writeln!(
            s,
            "  opened      {} ({} failed) in {:.1}s = {:.0}/s; open after {:.0}s hold: {}",
            self.opened,
            self.failed,
            self.connect_seconds,
            self.connects_per_second,
            self.hold_seconds,
            self.open_at_end
        );
        if !self.errors.is_empty() {
            let _ = writeln!(s, "  errors      {:?}", self.errors);
        }
        write_processes(
            &mut s,
            self.processes
                .iter()
                .map(|p| (&p.process, p.rss_per_connection_bytes, p.rss_per_gateway_share_bytes)),
        );
        for w in &self.warnings {
            let _ = writeln!(s, "  warning     {w}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_paths_from_a_file_or_a_directory() {
        let p = OutputPaths::new(Path::new("out/run.json"), "light");
        assert_eq!(p.summary, PathBuf::from("out/run.txt"));
        assert_eq!(p.svg, PathBuf::from("out/run.svg"));
        let p = OutputPaths::new(Path::new("bench-results/x"), "light");
        assert_eq!(p.json, PathBuf::from("bench-results/x/light.json"));
        assert_eq!(p.svg, PathBuf::from("bench-results/x/light-latency.svg"));
    }

    #[test]
    fn correctness_is_clean_only_without_loss_duplicates_or_reordering() {
        let ok = Tally {
            delivered: 10,
            ..Tally::default()
        };
        assert!(Correctness::new(ok, ok).clean);
        let lost = Tally { lost: 1, ..ok };
        assert!(!Correctness::new(ok, lost).clean);
        let reordered = Tally { out_of_order: 1, ..ok };
        assert!(!Correctness::new(reordered, ok).clean);
    }
}
