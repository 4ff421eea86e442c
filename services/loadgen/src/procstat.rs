//! CPU time and memory of processes, from the kernel's own accounting in `/proc`.
//!
//! The load generator shares two cores with the servers it measures. Its own CPU use is in
//! every report so that a saturated generator is not mistaken for a saturated server, and
//! the servers' CPU-seconds over the run give a cost per delivery that does not depend on
//! how busy the machine was.

use serde::Serialize;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot parse {path}")]
    Parse { path: PathBuf },
    #[error("a watched process is NAME=PID, got {0:?}")]
    WatchSpec(String),
}

/// Which process: ourselves, or another by pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pid {
    SelfProcess,
    Other(u32),
}

impl Pid {
    fn dir(self) -> PathBuf {
        match self {
            Pid::SelfProcess => PathBuf::from("/proc/self"),
            Pid::Other(pid) => PathBuf::from(format!("/proc/{pid}")),
        }
    }
}

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sample {
    /// User plus system CPU time since the process started.
    pub cpu_seconds: f64,
    /// Resident set size now.
    pub rss_bytes: u64,
    /// Peak resident set size since the process started (`VmHWM`).
    pub rss_peak_bytes: u64,
}

#[allow(unsafe_code)]
fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions; it returns -1 for an unknown name.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// The fields of `/proc/PID/stat` we use. The command name (field 2) is in parentheses
/// and may hold spaces or parentheses itself, so fields are counted after the last `)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub ppid: u32,
    /// `utime + stime`, in clock ticks.
    pub ticks: u64,
    /// `cutime + cstime`: children that exited and were waited for.
    pub reaped_children_ticks: u64,
}

pub fn parse_stat(stat: &str) -> Option<Stat> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // After the name: state is field 3, ppid 4, utime 14, stime 15, cutime 16, cstime 17.
    let fields: Vec<&str> = after_name.split_whitespace().take(15).collect();
    let number = |i: usize| fields.get(i)?.parse::<u64>().ok();
    Some(Stat {
        ppid: fields.get(1)?.parse().ok()?,
        ticks: number(11)? + number(12)?,
        reaped_children_ticks: number(13)? + number(14)?,
    })
}

/// A `kB` line of `/proc/PID/status` (`VmRSS:   1234 kB`), in bytes.
pub fn parse_status_kb(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix(':')?;
        let kb: u64 = value.trim().strip_suffix("kB")?.trim().parse().ok()?;
        Some(kb * 1024)
    })
}

pub fn sample(pid: Pid) -> Result<Sample, ProcError> {
    let dir = pid.dir();
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).map_err(|source| ProcError::Read { path, source })
    };
    let stat = read("stat")?;
    let ticks = parse_stat(&stat)
        .ok_or_else(|| ProcError::Parse { path: dir.join("stat") })?
        .ticks;
    let status = read("status")?;
    let rss = parse_status_kb(&status, "VmRSS").ok_or_else(|| ProcError::Parse {
        path: dir.join("status"),
    })?;
    Ok(Sample {
        cpu_seconds: ticks as f64 / clock_ticks_per_second(),
        rss_bytes: rss,
        rss_peak_bytes: parse_status_kb(&status, "VmHWM").unwrap_or(rss),
    })
}

/// A process and its live children, summed: PostgreSQL serves each connection from a
/// child of the postmaster, so the postmaster alone shows almost none of the work. Children
/// that already exited count through the parent's `cutime`/`cstime`.
pub fn sample_with_children(pid: u32) -> Result<Sample, ProcError> {
    let own = sample(Pid::Other(pid))?;
    let path = PathBuf::from(format!("/proc/{pid}/stat"));
    let stat = std::fs::read_to_string(&path).map_err(|source| ProcError::Read {
        path: path.clone(),
        source,
    })?;
    let reaped = parse_stat(&stat)
        .ok_or(ProcError::Parse { path })?
        .reaped_children_ticks;
    let mut total = Sample {
        cpu_seconds: own.cpu_seconds + reaped as f64 / clock_ticks_per_second(),
        ..own
    };
    let entries = std::fs::read_dir("/proc").map_err(|source| ProcError::Read {
        path: "/proc".into(),
        source,
    })?;
    for entry in entries.flatten() {
        let Some(child) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let is_child = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|s| parse_stat(&s))
            .is_some_and(|s| s.ppid == pid);
        // A child that exits between the two reads is skipped, not an error.
        if let (true, Ok(s)) = (is_child, sample(Pid::Other(child))) {
            total.cpu_seconds += s.cpu_seconds;
            total.rss_bytes += s.rss_bytes;
            total.rss_peak_bytes += s.rss_peak_bytes;
        }
    }
    Ok(total)
}

/// A process to report on, named for the report (`gateway-1=12345`; `postgres=678+` to
/// include its children).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watch {
    pub name: String,
    pub pid: Pid,
    pub children: bool,
}

impl Watch {
    pub fn parse(spec: &str) -> Result<Self, ProcError> {
        let (name, pid) = spec
            .split_once('=')
            .filter(|(name, _)| !name.is_empty())
            .ok_or_else(|| ProcError::WatchSpec(spec.into()))?;
        let (pid, children) = match pid.trim().strip_suffix('+') {
            Some(pid) => (pid, true),
            None => (pid.trim(), false),
        };
        let pid = pid.parse().map_err(|_| ProcError::WatchSpec(spec.into()))?;
        Ok(Self {
            name: name.into(),
            pid: Pid::Other(pid),
            children,
        })
    }

    pub fn me() -> Self {
        Self {
            name: "loadgen".into(),
            pid: Pid::SelfProcess,
            children: false,
        }
    }
}

/// Follows one process over a window: a first sample, periodic samples for the peak RSS,
/// and a last one.
#[derive(Debug, Clone)]
pub struct Tracker {
    pub watch: Watch,
    first: Option<Sample>,
    last: Option<Sample>,
    max_rss: u64,
    /// Set by [`Tracker::close`]: later samples no longer count.
    closed: bool,
    /// The last read error, if the process went away mid-run.
    error: Option<String>,
}

impl Tracker {
    pub fn new(watch: Watch) -> Self {
        Self {
            watch,
            first: None,
            last: None,
            max_rss: 0,
            closed: false,
            error: None,
        }
    }

    fn take(&mut self) -> Option<Sample> {
        let result = match (self.watch.children, self.watch.pid) {
            (true, Pid::Other(pid)) => sample_with_children(pid),
            (_, pid) => sample(pid),
        };
        match result {
            Ok(s) => {
                self.first.get_or_insert(s);
                self.last = Some(s);
                self.max_rss = self.max_rss.max(s.rss_bytes);
                Some(s)
            }
            Err(e) => {
                self.error = Some(e.to_string());
                None
            }
        }
    }

    /// Opens the window now (after warm-up, or before idle connections open), keeping
    /// nothing from before.
    pub fn open(&mut self) {
        self.first = None;
        self.last = None;
        self.max_rss = 0;
        self.closed = false;
        self.take();
    }

    /// A periodic sample for the peak RSS; does nothing outside the window.
    pub fn sample_if_open(&mut self) {
        if self.first.is_some() && !self.closed {
            self.take();
        }
    }

    /// Takes the last sample and closes the window.
    pub fn close(&mut self) {
        if !self.closed {
            self.take();
            self.closed = true;
        }
    }

    pub fn first(&self) -> Option<Sample> {
        self.first
    }

    pub fn report(&self, wall_seconds: f64, deliveries: u64) -> ProcessReport {
        let (first, last) = (self.first, self.last);
        let cpu_seconds = match (first, last) {
            (Some(a), Some(b)) => b.cpu_seconds - a.cpu_seconds,
            _ => 0.0,
        };
        ProcessReport {
            name: self.watch.name.clone(),
            pid: match self.watch.pid {
                Pid::SelfProcess => std::process::id(),
                Pid::Other(pid) => pid,
            },
            cpu_seconds: round3(cpu_seconds),
            cpu_percent: if wall_seconds > 0.0 {
                round3(cpu_seconds / wall_seconds * 100.0)
            } else {
                0.0
            },
            cpu_seconds_per_million_deliveries: (deliveries > 0).then(|| round3(cpu_seconds / deliveries as f64 * 1e6)),
            rss_start_bytes: first.map_or(0, |s| s.rss_bytes),
            rss_end_bytes: last.map_or(0, |s| s.rss_bytes),
            rss_max_bytes: self.max_rss,
            rss_peak_lifetime_bytes: last.map_or(0, |s| s.rss_peak_bytes),
            error: self.error.clone(),
        }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1_000.0).round() / 1_000.0
}

/// One process over the measured window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessReport {
    pub name: String,
    pub pid: u32,
    pub cpu_seconds: f64,
    /// 100 = one core busy for the whole window.
    pub cpu_percent: f64,
    pub cpu_seconds_per_million_deliveries: Option<f64>,
    pub rss_start_bytes: u64,
    pub rss_end_bytes: u64,
    /// Highest of the once-a-second samples in the window.
    pub rss_max_bytes: u64,
    pub rss_peak_lifetime_bytes: u64,
    pub error: Option<String>,
}

/// Raises this process's open-file limit to its hard limit: an idle run holds one
/// descriptor per connection. Returns the limit now in force.
#[allow(unsafe_code)]
pub fn raise_open_files_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write/read the struct we pass and nothing else.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    limit.rlim_cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_read_after_the_command_name() {
        let stat = "4242 (my (odd) proc) S 17 4242 4242 0 -1 4194560 1000 0 0 0 150 25 7 3 20 0 8 0 100 1000000 500";
        assert_eq!(
            parse_stat(stat),
            Some(Stat {
                ppid: 17,
                ticks: 175,
                reaped_children_ticks: 10
            })
        );
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 1 2"), None);
    }

    #[test]
    fn a_process_with_children_sums_them() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        // Until the child has become `sleep` and sleeps, its RSS still grows (exec, loading):
        // read after the tree, it could count more than the tree saw.
        let stat = format!("/proc/{}/stat", child.id());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !std::fs::read_to_string(&stat).is_ok_and(|s| s.contains("(sleep) S ")) {
            assert!(
                std::time::Instant::now() < deadline,
                "the child never settled into sleep"
            );
            std::thread::yield_now();
        }
        let me = std::process::id();
        let child_rss = sample(Pid::Other(child.id())).unwrap().rss_bytes;
        let alone = sample(Pid::Other(me)).unwrap();
        let tree = sample_with_children(me).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(child_rss > 0);
        // This process's RSS may move a little between the reads; the child's share must be there.
        assert!(
            tree.rss_bytes >= alone.rss_bytes * 9 / 10 + child_rss,
            "{tree:?} {alone:?}"
        );
        assert!(tree.cpu_seconds >= alone.cpu_seconds);
    }

    #[test]
    fn status_lines_are_read_in_bytes() {
        let status = "Name:\tgateway\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\nThreads:\t4\n";
        assert_eq!(parse_status_kb(status, "VmRSS"), Some(10240 * 1024));
        assert_eq!(parse_status_kb(status, "VmHWM"), Some(20480 * 1024));
        assert_eq!(parse_status_kb(status, "VmSwap"), None);
    }

    #[test]
    fn watch_specs_are_name_equals_pid() {
        assert_eq!(
            Watch::parse("gateway-1=123").unwrap(),
            Watch {
                name: "gateway-1".into(),
                pid: Pid::Other(123),
                children: false
            }
        );
        assert!(Watch::parse("postgres=77+").unwrap().children);
        assert!(Watch::parse("gateway").is_err());
        assert!(Watch::parse("=12").is_err());
        assert!(Watch::parse("g=abc").is_err());
    }

    #[test]
    fn this_process_can_be_sampled_and_reported() {
        let mut tracker = Tracker::new(Watch::me());
        tracker.sample_if_open();
        assert!(tracker.first().is_none(), "no sample before the window opens");
        tracker.open();
        let first = tracker.first().expect("own /proc entry");
        assert!(first.rss_bytes > 0);
        tracker.sample_if_open();
        tracker.close();
        let last = tracker.last;
        tracker.sample_if_open();
        assert_eq!(tracker.last, last, "no sample after the window closes");
        let report = tracker.report(1.0, 2_000_000);
        assert_eq!(report.pid, std::process::id());
        assert!(report.cpu_seconds >= 0.0);
        assert!(report.cpu_seconds_per_million_deliveries.is_some());
        assert!(report.rss_max_bytes > 0 && report.error.is_none());
    }

    #[test]
    fn a_vanished_process_is_reported_not_fatal() {
        let mut tracker = Tracker::new(Watch {
            name: "gone".into(),
            pid: Pid::Other(u32::MAX - 1),
            children: true,
        });
        tracker.open();
        tracker.close();
        let report = tracker.report(1.0, 0);
        assert!(report.error.is_some());
        assert_eq!(report.cpu_seconds, 0.0);
        assert_eq!(report.cpu_seconds_per_million_deliveries, None);
    }
}
