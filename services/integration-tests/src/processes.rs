//! The topology as real processes: the binaries built from this workspace, and the
//! `scripts/cluster.sh` that operators use.

use crate::TestDb;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::Command;

/// Where the workspace's binaries are: `CLUSTER_BIN_DIR`, or beside this test executable
/// (`target/<profile>/deps/..`).
pub fn bin_dir() -> PathBuf {
    let dir = std::env::var_os("CLUSTER_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let exe = std::env::current_exe().expect("test executable path");
            exe.parent()
                .and_then(|deps| deps.parent())
                .expect("target dir")
                .to_path_buf()
        });
    for bin in ["gateway", "message-service"] {
        assert!(
            dir.join(bin).is_file(),
            "{} is missing: build the binaries first (cargo build --workspace --bins)",
            dir.join(bin).display()
        );
    }
    dir
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The ports of one test cluster: `base` (the balancer), gateways `base+1…` and their ops
/// `base+101…`, message services `base+201…` and their ops `base+301…`. The block is
/// reserved for as long as this value lives.
pub struct PortBlock {
    pub base: u16,
    /// Held locked: tests run in parallel (as processes under nextest, as threads under
    /// `cargo test`), and a block that another test checked free a moment ago is not free.
    /// Two clusters sharing ports once sent a gateway's HTTP to another's gRPC port.
    _reserved: std::fs::File,
}

/// Blocks lie below the kernel's ephemeral range (32768 and up on Linux), so that no
/// outgoing connection's source port can take a port between the check and the bind.
const BLOCKS_FROM: u16 = 10_000;
const BLOCK_SIZE: u16 = 500;
const BLOCKS: u16 = 45;

/// Reserves a block of ports whose cluster ports, for `gateways` gateways and `services`
/// message services, are free now.
pub fn reserve_ports(gateways: u16, services: u16) -> PortBlock {
    let locks = std::env::temp_dir().join("super-channels-test-ports");
    std::fs::create_dir_all(&locks).expect("create the port-lock directory");
    // Start anywhere, so that parallel tests do not all queue for the first block.
    let start = rand_u16() % BLOCKS;
    for k in (0..BLOCKS).map(|i| (start + i) % BLOCKS) {
        let file = std::fs::File::create(locks.join(format!("{k}.lock"))).expect("create a port-lock file");
        if file.try_lock().is_err() {
            continue; // another test holds it
        }
        let base = BLOCKS_FROM + k * BLOCK_SIZE;
        let mut ports = vec![base];
        ports.extend((1..=gateways).flat_map(|i| [base + i, base + 100 + i]));
        ports.extend((1..=services).flat_map(|i| [base + 200 + i, base + 300 + i]));
        // Something outside the tests may listen there (a server of the machine's own).
        if ports.iter().all(|&p| TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            return PortBlock { base, _reserved: file };
        }
    }
    panic!(
        "no free block of ports between {BLOCKS_FROM} and {}",
        BLOCKS_FROM + BLOCKS * BLOCK_SIZE
    );
}

fn rand_u16() -> u16 {
    (uuid::Uuid::new_v4().as_u128() & 0xffff) as u16
}

/// A cluster started with `scripts/cluster.sh up`, stopped with `down` when dropped.
pub struct ScriptCluster {
    pub port: u16,
    _ports: PortBlock,
    pub dir: PathBuf,
    pub db: TestDb,
    pub redis_prefix: String,
    redis_url: String,
    /// `cluster.sh up --redis-cluster`: the script starts a Redis Cluster of its own for
    /// the bus, and `redis_url` is unused.
    redis_cluster: bool,
    env: Vec<(String, String)>,
    down: bool,
}

impl ScriptCluster {
    pub async fn up(gateways: u16, services: u16) -> Self {
        Self::up_with_env(gateways, services, &[]).await
    }

    /// As [`ScriptCluster::up`], with extra environment (settings) for every service.
    pub async fn up_with_env(gateways: u16, services: u16, env: &[(&str, &str)]) -> Self {
        Self::up_on(
            TestDb::create().await,
            crate::cluster::redis_url(),
            gateways,
            services,
            env,
        )
    }

    /// As [`ScriptCluster::up_with_env`], on a given database and Redis (a fault test's
    /// own throwaway servers).
    pub fn up_on(db: TestDb, redis_url: String, gateways: u16, services: u16, env: &[(&str, &str)]) -> Self {
        Self::up_in(
            reserve_ports(gateways, services),
            db,
            redis_url,
            gateways,
            services,
            env,
        )
    }

    /// As [`ScriptCluster::up_on`], on a block of ports reserved beforehand: a test that
    /// puts relays between the processes knows where they will listen.
    pub fn up_in(
        ports: PortBlock,
        db: TestDb,
        redis_url: String,
        gateways: u16,
        services: u16,
        env: &[(&str, &str)],
    ) -> Self {
        let redis_prefix = format!("it-{}", uuid::Uuid::new_v4().simple());
        let port = ports.base;
        let dir = std::env::temp_dir().join(format!("sc-cluster-{}", uuid::Uuid::new_v4().simple()));
        let mut cluster = Self {
            port,
            _ports: ports,
            dir,
            db,
            redis_prefix,
            redis_url,
            redis_cluster: false,
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            down: false,
        };
        cluster.start(gateways, services);
        cluster
    }

    /// As [`ScriptCluster::up`], with the bus on a Redis Cluster (3 masters, 3 replicas)
    /// that `cluster.sh up --redis-cluster` starts itself.
    pub async fn up_with_redis_cluster(gateways: u16, services: u16) -> Self {
        let ports = reserve_ports(gateways, services);
        let mut cluster = Self {
            port: ports.base,
            _ports: ports,
            dir: std::env::temp_dir().join(format!("sc-cluster-{}", uuid::Uuid::new_v4().simple())),
            db: TestDb::create().await,
            redis_prefix: format!("it-{}", uuid::Uuid::new_v4().simple()),
            redis_url: String::new(),
            redis_cluster: true,
            env: Vec::new(),
            down: false,
        };
        tokio::task::block_in_place(|| cluster.start(gateways, services));
        cluster
    }

    fn start(&mut self, gateways: u16, services: u16) {
        let mut args = vec![
            "up".to_owned(),
            "--gateways".into(),
            gateways.to_string(),
            "--services".into(),
            services.to_string(),
            "--port".into(),
            self.port.to_string(),
        ];
        if self.redis_cluster {
            args.push("--redis-cluster".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let status = self.script(&args).status().expect("run scripts/cluster.sh");
        if !status.success() {
            self.down = true;
            let _ = self.script(&["down"]).status();
            panic!("cluster.sh up failed: {status}");
        }
    }

    fn script(&self, args: &[&str]) -> Command {
        let mut command = Command::new("bash");
        command
            .arg(repo_root().join("scripts/cluster.sh"))
            .args(args)
            .env("CLUSTER_DIR", &self.dir)
            .env("CLUSTER_BIN_DIR", bin_dir())
            .env("DATABASE_URL", &self.db.url)
            .env("SC_REDIS__KEY_PREFIX", &self.redis_prefix)
            .env("SC_LOG__LEVEL", "warn")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if self.redis_cluster {
            command.env_remove("REDIS_URL");
        } else {
            command.env("REDIS_URL", &self.redis_url);
        }
        command
    }

    pub fn balancer(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn gateway(&self, i: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port + i))
    }

    /// The ops address (`/healthz`, `/readyz`, `/metrics`) of gateway `i`.
    pub fn ops(&self, i: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port + 100 + i))
    }

    /// The gRPC address of message service `i`.
    pub fn service_grpc(&self, i: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port + 200 + i))
    }

    /// The ops address of message service `i`.
    pub fn service_ops(&self, i: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port + 300 + i))
    }

    /// The log file of one process (`gateway-1`, `message-service-2` …).
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join("logs").join(format!("{name}.log"))).unwrap_or_default()
    }

    /// The pid `cluster.sh` recorded for a process (`gateway-1`, `message-service-2` …).
    pub fn pid(&self, name: &str) -> u32 {
        std::fs::read_to_string(self.dir.join("pids").join(format!("{name}.pid")))
            .unwrap_or_else(|_| panic!("no pid file for {name}"))
            .trim()
            .parse()
            .unwrap()
    }

    /// Every pid the script recorded, by name.
    pub fn pids(&self) -> Vec<(String, u32)> {
        std::fs::read_dir(self.dir.join("pids"))
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter_map(|e| {
                        let name = e.file_name().to_string_lossy().strip_suffix(".pid")?.to_owned();
                        let pid = std::fs::read_to_string(e.path()).ok()?.trim().parse().ok()?;
                        Some((name, pid))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// SIGKILLs one process (`gateway-1`, `message-service-2` …): a crash, with no drain.
    /// Returns once it is gone, and forgets its pid file: a zombie nobody reaps would
    /// otherwise make `down` wait out its grace period.
    pub fn kill(&self, name: &str) {
        let pid = self.pid(name);
        send_signal(pid, "KILL");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while process_alive(pid) {
            assert!(
                std::time::Instant::now() < deadline,
                "{name} (pid {pid}) outlived SIGKILL"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = std::fs::remove_file(self.dir.join("pids").join(format!("{name}.pid")));
    }

    /// Starts message service `i` again after [`ScriptCluster::kill`], on its old ports and
    /// settings, as `cluster.sh` starts it (in a session of its own, recorded in its pid
    /// file so that `down` stops it), and waits until it is ready.
    pub fn restart_service(&self, i: u16) {
        let name = format!("message-service-{i}");
        let (grpc, ops) = (self.port + 200 + i, self.port + 300 + i);
        let bin = bin_dir().join("message-service");
        let status = Command::new("bash")
            .arg("-c")
            .arg(r#"setsid "$0" >>"$1" 2>&1 </dev/null & echo $! >"$2""#)
            .arg(&bin)
            .arg(self.dir.join("logs").join(format!("{name}.log")))
            .arg(self.dir.join("pids").join(format!("{name}.pid")))
            // cluster.sh's default, which the test's own settings may override.
            .env("SC_RUNTIME__WORKER_THREADS", "1")
            .envs(
                self.env
                    .iter()
                    .filter(|(k, _)| !k.starts_with("GATEWAY_"))
                    .map(|(k, v)| (k, v)),
            )
            .env("SC_DATABASE__URL", &self.db.url)
            .env("SC_REDIS__URL", &self.redis_url)
            .env("SC_REDIS__KEY_PREFIX", &self.redis_prefix)
            .env("SC_LOG__LEVEL", "warn")
            .env("SC_GRPC_LISTEN", format!("127.0.0.1:{grpc}"))
            .env("SC_OPS_LISTEN", format!("127.0.0.1:{ops}"))
            .status()
            .expect("start the message service");
        assert!(status.success(), "could not start {name}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let ready = Command::new(&bin)
                .arg("--probe-ready")
                .env("SC_DATABASE__URL", &self.db.url)
                .env("SC_REDIS__URL", &self.redis_url)
                .env("SC_OPS_LISTEN", format!("127.0.0.1:{ops}"))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "{name} did not become ready");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    pub fn down(&mut self) {
        self.down = true;
        let status = self.script(&["down"]).status().expect("run scripts/cluster.sh down");
        assert!(status.success(), "cluster.sh down failed: {status}");
    }
}

impl Drop for ScriptCluster {
    fn drop(&mut self) {
        if !self.down {
            let _ = self.script(&["down"]).status();
        }
        if !self.redis_cluster {
            crate::cluster::delete_redis_keys(&self.redis_url, &self.redis_prefix);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether a process is still running (a zombie counts as gone).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or_default()
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

pub fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}
