//! Each kind of run, for about a second, through the real binary against a real cluster
//! (two gateways and a message service in this process, real Postgres and Redis): the run
//! succeeds and its JSON report is complete. No figure is asserted but counts, which do
//! not depend on how fast the machine is.

use integration_tests::TestCluster;
use serde_json::Value;
use std::path::Path;

async fn loadgen(args: &[String]) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .output()
        .await
        .expect("run loadgen");
    assert!(
        output.status.success(),
        "loadgen failed: {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display())))
        .expect("the report is JSON")
}

/// Fails with the missing path, so that an incomplete report says what it lacks.
fn field<'a>(report: &'a Value, path: &str) -> &'a Value {
    let value = path.split('.').fold(report, |v, key| {
        v.get(key).unwrap_or_else(|| panic!("report lacks {path}"))
    });
    assert!(!value.is_null(), "{path} is null");
    value
}

fn number(report: &Value, path: &str) -> f64 {
    field(report, path)
        .as_f64()
        .unwrap_or_else(|| panic!("{path} is not a number"))
}

fn gateway_args(cluster: &TestCluster, count: usize) -> Vec<String> {
    (0..count)
        .flat_map(|i| ["--gateway".to_owned(), format!("ws://{}", cluster.gateway(i))])
        .collect()
}

/// A room whose timeline changes: reactions are delivered and checked with the messages;
/// and members who type, whose `typing` frames travel apart from the timeline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_run_with_reactions_delivers_them_to_every_member() {
    let cluster = TestCluster::start(2, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("reactions.json");
    let mut args: Vec<String> = ["load", "--name", "smoke-reactions", "--quiet"]
        .map(String::from)
        .to_vec();
    args.extend(gateway_args(&cluster, 2));
    args.extend(
        [
            "--clients",
            "8",
            "--rooms",
            "2",
            "--senders-per-room",
            "1",
            "--rate",
            "20",
            "--reactions-per-room",
            "20",
            "--typists-per-room",
            "2",
            "--duration",
            "1s",
            "--warmup",
            "0s",
            "--drain-timeout",
            "30s",
            "--source-addrs",
            "2",
        ]
        .map(String::from),
    );
    args.extend(["--out".into(), json.display().to_string()]);
    loadgen(&args).await;

    let report = read_json(&json);
    assert_eq!(field(&report, "correctness.clean"), true, "{report:#}");
    assert_eq!(field(&report, "drain.completed"), true);
    let (messages, reactions) = (
        number(&report, "totals.acked"),
        number(&report, "totals.reactions_acked"),
    );
    assert!(messages > 0.0 && reactions > 0.0, "{report:#}");
    assert_eq!(number(&report, "totals.reactions_sent"), reactions);
    assert_eq!(
        field(&report, "totals.errors"),
        &serde_json::json!({}),
        "every reaction was allowed"
    );
    // Typing sent at the start reached the rooms long before their last message did.
    assert!(number(&report, "totals.typing_sent") > 0.0, "{report:#}");
    assert!(number(&report, "totals.typing_received") > 0.0, "{report:#}");
    // Each room's four members got every message and every reaction.
    assert_eq!(
        number(&report, "correctness.by_seq.delivered"),
        (messages + reactions) * 4.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_run_over_two_gateways_reports_everything() {
    let cluster = TestCluster::start(2, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("load.json");
    let mut args: Vec<String> = ["load", "--name", "smoke-load", "--quiet"].map(String::from).to_vec();
    args.extend(gateway_args(&cluster, 2));
    args.extend(
        [
            "--clients",
            "8",
            "--rooms",
            "2",
            "--senders-per-room",
            "2",
            "--rate",
            "20",
            "--duration",
            "1s",
            "--warmup",
            "0s",
            "--drain-timeout",
            "30s",
            "--source-addrs",
            "2",
        ]
        .map(String::from),
    );
    args.extend(["--watch-pid".into(), format!("cluster={}", std::process::id())]);
    args.extend(["--out".into(), json.display().to_string()]);
    loadgen(&args).await;

    let report = read_json(&json);
    assert_eq!(field(&report, "kind"), "load");
    for path in [
        "name",
        "started_at",
        "config.gateways",
        "config.clients",
        "setup.connected",
        "window_seconds",
        "throughput.sends_per_second",
        "throughput.acks_per_second",
        "throughput.deliveries_per_second",
        "throughput.expected_deliveries_per_second",
        "totals.errors",
        "totals.disconnects",
        "correctness.by_seq.lost",
        "correctness.by_seq.duplicates",
        "correctness.by_seq.out_of_order",
        "correctness.by_sender.lost",
        "correctness.by_sender.duplicates",
        "correctness.by_sender.out_of_order",
        "latency.delivery.p50_ms",
        "latency.delivery.p90_ms",
        "latency.delivery.p99_ms",
        "latency.delivery.p999_ms",
        "latency.delivery.max_ms",
        "latency.ack.p99_ms",
        "latency.delivery_distribution",
        "drain.seconds",
        "warnings",
    ] {
        field(&report, path);
    }
    assert_eq!(field(&report, "config.gateways").as_array().unwrap().len(), 2);
    assert_eq!(number(&report, "setup.connected"), 8.0);
    // The four members that only read did so through the io_uring.
    assert_eq!(number(&report, "config.receivers_on_ring"), 4.0, "{report:#}");
    // Every send was acked and every acked message reached all four members of its room.
    let acked = number(&report, "totals.acked");
    assert!(acked > 0.0);
    assert_eq!(number(&report, "totals.sent"), acked);
    assert_eq!(field(&report, "drain.completed"), true);
    assert_eq!(field(&report, "correctness.clean"), true, "{report:#}");
    assert_eq!(number(&report, "correctness.by_seq.delivered"), acked * 4.0);
    assert_eq!(number(&report, "correctness.by_sender.delivered"), acked * 4.0);
    assert!(number(&report, "latency.delivery.count") > 0.0);
    assert!(
        !field(&report, "latency.delivery_distribution")
            .as_array()
            .unwrap()
            .is_empty()
    );

    let processes = field(&report, "processes").as_array().unwrap();
    let names: Vec<&str> = processes.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["loadgen", "cluster"]);
    for p in processes {
        assert!(p["error"].is_null(), "{p}");
        assert!(p["rss_max_bytes"].as_u64().unwrap() > 0);
        assert!(p["cpu_seconds"].as_f64().unwrap() >= 0.0);
        assert!(p["cpu_seconds_per_million_deliveries"].is_number());
    }

    let svg = std::fs::read_to_string(dir.path().join("load.svg")).expect("the plot is written");
    assert!(svg.starts_with("<svg") && svg.contains("<polyline"));
    let summary = std::fs::read_to_string(dir.path().join("load.txt")).expect("the summary is written");
    assert!(summary.contains("CLEAN"));

    // The same run with every client a tokio task accounts the same way.
    let tokio_json = dir.path().join("tokio.json");
    let at = args.iter().position(|a| a == "--out").unwrap();
    args.truncate(at);
    args.extend(["--receive-ring", "false", "--out"].map(String::from));
    args.push(tokio_json.display().to_string());
    loadgen(&args).await;
    let report = read_json(&tokio_json);
    assert_eq!(number(&report, "config.receivers_on_ring"), 0.0);
    assert_eq!(field(&report, "correctness.clean"), true, "{report:#}");
    let acked = number(&report, "totals.acked");
    assert!(acked > 0.0);
    assert_eq!(number(&report, "correctness.by_seq.delivered"), acked * 4.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_run_holds_its_connections_and_reports_their_cost() {
    let cluster = TestCluster::start(2, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let mut args: Vec<String> = ["idle", "--name", "smoke-idle", "--quiet"].map(String::from).to_vec();
    args.extend(gateway_args(&cluster, 1));
    args.extend(
        [
            "--connections",
            "60",
            "--rooms",
            "3",
            "--hold",
            "1s",
            "--source-addrs",
            "3",
        ]
        .map(String::from),
    );
    args.extend(["--watch-pid".into(), format!("gateway={}", std::process::id())]);
    args.extend(["--out".into(), dir.path().display().to_string()]);
    loadgen(&args).await;

    let report = read_json(&dir.path().join("smoke-idle.json"));
    assert_eq!(field(&report, "kind"), "idle");
    for path in [
        "config.connections",
        "config.source_addrs",
        "connect_seconds",
        "connects_per_second",
        "hold_seconds",
        "errors",
        "warnings",
    ] {
        field(&report, path);
    }
    assert_eq!(number(&report, "requested"), 60.0);
    assert_eq!(number(&report, "opened"), 60.0);
    assert_eq!(number(&report, "failed"), 0.0);
    assert_eq!(number(&report, "open_at_end"), 60.0);
    let processes = field(&report, "processes").as_array().unwrap();
    assert_eq!(processes.len(), 2);
    let gateway = &processes[1];
    assert_eq!(gateway["name"], "gateway");
    assert!(gateway["rss_per_connection_bytes"].is_number(), "{gateway}");
    // One gateway holds them all: no share to divide by.
    assert!(gateway.get("rss_per_gateway_share_bytes").is_none(), "{gateway}");
    assert!(dir.path().join("smoke-idle.txt").exists());
}
