//! Two gateways and a message service in one process, on loopback ports, against a fresh
//! Postgres database and Redis key prefix (the smoke test's cluster), for trying the load
//! generator by hand without release binaries:
//!
//! `cargo run -p loadgen --example test_cluster -- [seconds]` prints one `--gateway` flag
//! per gateway, then serves for `seconds` (default 60) or until ctrl-c.

use std::time::Duration;

#[tokio::main]
async fn main() {
    let seconds: u64 = std::env::args().nth(1).map_or(60, |s| s.parse().expect("seconds"));
    let cluster = integration_tests::TestCluster::start(2, 1).await;
    let flags: Vec<String> = (0..2)
        .map(|i| format!("--gateway ws://{}", cluster.gateway(i)))
        .collect();
    println!("{} --watch-pid cluster={}", flags.join(" "), std::process::id());
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_secs(seconds)) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
