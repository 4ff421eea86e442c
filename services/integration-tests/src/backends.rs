//! Throwaway Redis and PostgreSQL servers of a test's own, started from the installed
//! binaries on free ports: a fault test stops, kills and restarts them, which must harm
//! nothing else on the machine (the shared servers other tests use).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port free now, from the kernel (bound and released at once).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// Waits for a condition that settles on the server's time (a port opening), failing the
/// test with `what` after `timeout`.
fn wait_until(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn scratch_dir(kind: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sc-{kind}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("create a scratch directory");
    dir
}

/// A Redis server of this test's own. Nothing is saved on its own; [`Redis::restart`]
/// chooses whether the data survives.
pub struct Redis {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Redis {
    pub fn start() -> Self {
        assert!(
            Command::new("redis-server").arg("--version").output().is_ok(),
            "redis-server is needed for the fault tests (Debian: apt-get install redis-server)"
        );
        let mut redis = Self {
            port: free_port(),
            dir: scratch_dir("redis"),
            child: None,
        };
        redis.spawn();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(self.dir.join("redis.log"))
            .stdout(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        // Its answer, not an open port: another test's server may listen there.
        let port = self.port;
        wait_until("redis-server to answer", Duration::from_secs(10), || pong(port));
    }

    /// Stops the server and starts it again on the same port after `down_for`. With
    /// `keep_data` it is shut down cleanly and saves a snapshot that the new server loads
    /// (streams and ids survive); without, it is SIGKILLed and comes back empty, as a
    /// crashed in-memory Redis does.
    pub fn restart(&mut self, keep_data: bool, down_for: Duration) {
        if keep_data {
            // redis-cli reports the connection a successful SHUTDOWN drops as an error.
            let _ = Command::new("redis-cli")
                .args(["-p", &self.port.to_string(), "SHUTDOWN", "SAVE"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("run redis-cli");
            if let Some(mut child) = self.child.take() {
                let _ = child.wait();
            }
            assert!(self.dir.join("dump.rdb").is_file(), "SHUTDOWN SAVE wrote no snapshot");
        } else {
            self.stop();
        }
        std::thread::sleep(down_for);
        self.start_again();
    }

    /// Makes the server refuse every write as out of memory (`maxmemory 1`, no eviction)
    /// while reads go on: publishing fails, yet readers see nothing wrong. `false` lifts it.
    pub fn refuse_writes(&self, refuse: bool) {
        let limit = if refuse { "1" } else { "0" };
        for args in [["maxmemory-policy", "noeviction"], ["maxmemory", limit]] {
            let output = Command::new("redis-cli")
                .args(["-p", &self.port.to_string(), "CONFIG", "SET"])
                .args(args)
                .output()
                .expect("run redis-cli");
            assert_eq!(
                String::from_utf8_lossy(&output.stdout).trim(),
                "OK",
                "CONFIG SET {args:?} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }

    /// SIGKILLs the server: its port refuses connections and its data is gone.
    pub fn stop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(self.dir.join("dump.rdb"));
    }

    /// Starts the server again on its port after [`Redis::stop`].
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "redis-server is still running");
        self.spawn();
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis Cluster of this test's own: 3 masters and 3 replicas from the installed
/// `redis-server`, made one with `redis-cli --cluster create`. Nothing is saved; the node
/// timeout is 2 s, so a replica takes over a killed master within a few seconds.
pub struct RedisCluster {
    nodes: Vec<ClusterNode>,
}

struct ClusterNode {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

/// Milliseconds a master may be unreachable before its replica is promoted.
pub const CLUSTER_NODE_TIMEOUT_MS: u64 = 2000;

impl RedisCluster {
    pub fn start() -> Self {
        assert!(
            Command::new("redis-cli").arg("--version").output().is_ok(),
            "redis-server and redis-cli are needed for the cluster tests (Debian: apt-get install redis-server)"
        );
        let nodes: Vec<ClusterNode> = (0..6).map(|_| ClusterNode::start()).collect();
        let output = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)))
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let cluster = Self { nodes };
        cluster.wait_healthy(Duration::from_secs(30));
        cluster
    }

    /// Every node's URL: the seeds a service is configured with.
    pub fn seeds(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect()
    }

    fn cli(port: u16, args: &[&str]) -> Option<String> {
        let output = Command::new("redis-cli")
            .args(["-p", &port.to_string()])
            .args(args)
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }

    fn live_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.port)
            .collect()
    }

    /// Ports of the masters serving slots, as a live node sees them.
    pub fn masters(&self) -> Vec<u16> {
        let port = self.live_ports()[0];
        let nodes = Self::cli(port, &["CLUSTER", "NODES"]).unwrap_or_default();
        nodes
            .lines()
            .filter(|line| {
                let fields: Vec<&str> = line.split(' ').collect();
                fields.len() > 8 && fields[2].contains("master") && !fields[2].contains("fail")
            })
            .filter_map(|line| {
                let addr = line.split(' ').nth(1)?;
                addr.split(['@', ',']).next()?.rsplit(':').next()?.parse().ok()
            })
            .collect()
    }

    /// The port of the master serving `slot`, as a live node sees it.
    pub fn master_of(&self, slot: u16) -> u16 {
        let nodes = Self::cli(self.live_ports()[0], &["CLUSTER", "NODES"]).unwrap_or_default();
        nodes
            .lines()
            .find_map(|line| {
                let fields: Vec<&str> = line.split(' ').collect();
                if !fields.get(2)?.contains("master") {
                    return None;
                }
                let serves = fields.iter().skip(8).any(|range| {
                    let (low, high) = range.split_once('-').unwrap_or((range, range));
                    matches!((low.parse::<u16>(), high.parse::<u16>()), (Ok(l), Ok(h)) if (l..=h).contains(&slot))
                });
                serves.then(|| fields[1].split(['@', ',']).next()?.rsplit(':').next()?.parse().ok())?
            })
            .expect("a master serves every slot")
    }

    /// Waits until every live node reports `cluster_state:ok`, every replica has synced
    /// with its master, and three live masters serve the slots.
    pub fn wait_healthy(&self, timeout: Duration) {
        let live = self.live_ports();
        wait_until("the Redis Cluster to be healthy", timeout, || {
            live.iter().all(|&port| {
                let info = Self::cli(port, &["CLUSTER", "INFO"]).unwrap_or_default();
                // A replica that never synced may not take over: its data is too old.
                let replication = Self::cli(port, &["INFO", "replication"]).unwrap_or_default();
                info.contains("cluster_state:ok")
                    && (replication.contains("role:master") || replication.contains("master_link_status:up"))
            }) && {
                let masters = self.masters();
                masters.len() == 3 && masters.iter().all(|m| live.contains(m))
            }
        });
    }

    /// SIGKILLs the node on `port` (a master, for a failover).
    pub fn kill(&mut self, port: u16) {
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.port == port)
            .expect("a node of this cluster");
        node.kill();
    }
}

impl ClusterNode {
    /// Starts one node on ports just found free, and waits until it answers. Tests run side
    /// by side, and another one may take a port between our finding it and the node
    /// binding it: the node then exits (or another server answers there), and it is
    /// started again on other ports.
    fn start() -> Self {
        for _ in 0..5 {
            let mut node = Self::spawn();
            if node.answers(Duration::from_secs(10)) {
                return node;
            }
        }
        panic!("no Redis Cluster node would start on a free port in five tries");
    }

    fn spawn() -> Self {
        let port = free_port();
        let dir = scratch_dir("redis-cluster");
        // The cluster bus port is given: the default, port + 10000, may be taken or past
        // 65535 for an ephemeral port.
        let bus_port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--cluster-port", &bus_port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            // Replicas sync at once rather than after the default 5 s.
            .args(["--repl-diskless-sync-delay", "0"])
            .args(["--cluster-enabled", "yes", "--cluster-node-timeout"])
            .arg(CLUSTER_NODE_TIMEOUT_MS.to_string())
            .arg("--cluster-config-file")
            .arg(dir.join("nodes.conf"))
            .arg("--dir")
            .arg(&dir)
            .arg("--logfile")
            .arg(dir.join("redis.log"))
            .stdout(Stdio::null())
            .spawn()
            .expect("start redis-server");
        Self {
            port,
            dir,
            child: Some(child),
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether this node (not whatever else may listen on its port) answers `PING` within
    /// `timeout`; false as soon as it has exited.
    fn answers(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self
                .child
                .as_mut()
                .is_none_or(|c| c.try_wait().ok().flatten().is_some())
            {
                return false;
            }
            if pong(self.port) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Whether a Redis server answers `PING` on `port`.
fn pong(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) =
        std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
    else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut answer = [0u8; 5];
    stream.write_all(b"PING\r\n").is_ok() && stream.read_exact(&mut answer).is_ok() && &answer == b"+PONG"
}

/// Each node is stopped and its directory removed with it, the cluster's or one that
/// failed to start.
impl Drop for ClusterNode {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A PostgreSQL server of this test's own (initdb in a scratch directory, `fsync=off`).
/// As root, the server binaries must run as the `postgres` user, as `scripts/lib.sh` does.
pub struct Postgres {
    pub port: u16,
    dir: PathBuf,
    pg_ctl: PathBuf,
    running: bool,
}

impl Postgres {
    pub fn start() -> Self {
        let initdb = pg_bin("initdb");
        let pg_ctl = pg_bin("pg_ctl");
        let dir = scratch_dir("pg");
        let data = dir.join("data");
        std::fs::create_dir_all(&data).expect("create the data directory");
        if is_root() {
            chown_postgres(&dir);
        }
        let output = as_pg_user(&initdb)
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "--no-sync"])
            .output()
            .expect("run initdb");
        assert!(
            output.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let mut postgres = Self {
            port: free_port(),
            dir,
            pg_ctl,
            running: false,
        };
        postgres.resume();
        postgres
    }

    /// The `postgres` database: the admin URL a [`crate::TestDb`] is created from.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Stops the server (fast shutdown: open connections are cut, as in an outage).
    pub fn stop(&mut self) {
        let status = as_pg_user(&self.pg_ctl)
            .arg("-D")
            .arg(self.data())
            .args(["-m", "fast", "-w", "stop"])
            .stdout(Stdio::null())
            .status()
            .expect("run pg_ctl stop");
        assert!(status.success(), "pg_ctl stop failed");
        self.running = false;
    }

    /// Starts the server (again) on its port.
    pub fn resume(&mut self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off",
            self.port,
            self.dir.display()
        );
        let status = as_pg_user(&self.pg_ctl)
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .args(["-w", "-o", &options, "start"])
            .stdout(Stdio::null())
            .status()
            .expect("run pg_ctl start");
        assert!(
            status.success(),
            "pg_ctl start failed: {}",
            std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
        );
        self.running = true;
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.running {
            let _ = as_pg_user(&self.pg_ctl)
                .arg("-D")
                .arg(self.data())
                .args(["-m", "immediate", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A PostgreSQL server binary, on PATH or in Debian's versioned directory.
fn pg_bin(name: &str) -> PathBuf {
    if let Ok(output) = Command::new("sh").args(["-c", &format!("command -v {name}")]).output()
        && output.status.success()
    {
        return PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|version| version.path().join("bin").join(name))
        .filter(|path| path.is_file())
        .collect();
    found.sort_by_key(|path| {
        path.components()
            .nth(4)
            .and_then(|c| c.as_os_str().to_str()?.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found
        .pop()
        .unwrap_or_else(|| panic!("{name} is needed for the fault tests (Debian: apt-get install postgresql)"))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn as_pg_user(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn chown_postgres(dir: &Path) {
    let status = Command::new("chown")
        .args(["-R", "postgres"])
        .arg(dir)
        .status()
        .expect("run chown");
    assert!(status.success(), "chown postgres {} failed", dir.display());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_redis_that_answers_counts_as_a_started_node() {
        // Something else listening on the port (another test's server) is not our node.
        let other = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = other.local_addr().unwrap().port();
        let answer = std::thread::spawn(move || {
            let (mut conn, _) = other.accept().unwrap();
            std::io::Write::write_all(&mut conn, b"HTTP/1.1 400 Bad Request\r\n\r\n").unwrap();
        });
        assert!(!pong(port));
        answer.join().unwrap();

        // A node that has exited (as one does when its port was taken) is seen to have,
        // whatever listens on its port.
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut node = ClusterNode::spawn();
        node.port = taken.local_addr().unwrap().port();
        node.child.as_mut().unwrap().kill().unwrap();
        assert!(!node.answers(Duration::from_secs(10)));

        // And a node that starts answers.
        let mut node = ClusterNode::start();
        assert!(node.answers(Duration::from_secs(1)));
    }
}
