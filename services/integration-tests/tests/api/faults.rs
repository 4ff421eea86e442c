//! Faults injected under steady load: Redis restarted (with and without its data), a
//! gateway and a message service SIGKILLed, Postgres stopped for ten seconds, Redis
//! unreachable while messages are committed. Each test runs the real processes
//! (`scripts/cluster.sh`: haproxy, two gateways, two message services) on a Postgres and a
//! Redis of its own, so that stopping them harms nothing else, and ends with the same
//! checks ([`Report::assert_exactly_once`]): every acked message stored exactly once, no
//! hole in any room's seqs, and every member (reconnected or not) holding every message of
//! its room exactly once and in order. Each prints its counts.

use integration_tests::TestDb;
use integration_tests::backends::{Postgres, Redis};
use integration_tests::processes::ScriptCluster;
use integration_tests::steady_load::{LoadSpec, Report, SteadyLoad, stored_rows};
use std::time::Duration;

/// How long a test waits for the load to make the progress it expects.
const PROGRESS: Duration = Duration::from_secs(60);

struct Rig {
    load: SteadyLoad,
    cluster: ScriptCluster,
    redis: Redis,
    postgres: Postgres,
}

/// Servers of the test's own, the cluster on them, and the load through its balancer,
/// already acked `warm_up` messages.
async fn rig(warm_up: u64) -> Rig {
    let postgres = tokio::task::block_in_place(Postgres::start);
    let redis = tokio::task::block_in_place(Redis::start);
    let db = TestDb::create_on(&postgres.url()).await;
    let cluster = tokio::task::block_in_place(|| {
        ScriptCluster::up_on(
            db,
            redis.url(),
            2,
            2,
            &[
                // The load sends faster than a person; the rate limit has tests of its own.
                ("GATEWAY_SC_GATEWAY__SEND_RATE_PER_SEC", "1000"),
                ("GATEWAY_SC_GATEWAY__SEND_BURST", "1000"),
                ("GATEWAY_SC_GATEWAY__MAX_CONNECTIONS_PER_USER", "1000"),
            ],
        )
    });
    let load = SteadyLoad::start(cluster.balancer(), &LoadSpec::default()).await;
    load.wait_for_more_acks(warm_up, PROGRESS).await;
    Rig {
        load,
        cluster,
        redis,
        postgres,
    }
}

impl Rig {
    /// Stops the senders, lets every member catch up, prints the counts and checks them.
    async fn finish(self, name: &str) -> Report {
        self.load.stop_sending(PROGRESS).await;
        let stored = stored_rows(&self.cluster.db).await;
        let report = self.load.finish_at(stored, PROGRESS).await;
        println!("{name}: {}", report.summary());
        report.assert_exactly_once();
        drop((self.cluster, self.redis, self.postgres));
        report
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarts_with_and_without_its_data_lose_nothing() {
    let mut rig = rig(40).await;
    // A clean restart: the streams and their ids survive.
    tokio::task::block_in_place(|| rig.redis.restart(true, Duration::from_millis(500)));
    rig.load.wait_for_more_acks(40, PROGRESS).await;
    // A crash of an in-memory Redis: every stream entry is gone.
    tokio::task::block_in_place(|| rig.redis.restart(false, Duration::from_millis(500)));
    rig.load.wait_for_more_acks(40, PROGRESS).await;
    let report = rig.finish("redis restarts").await;
    assert!(report.acked() >= 120);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_loses_nothing_its_clients_resume_elsewhere() {
    let rig = rig(40).await;
    tokio::task::block_in_place(|| rig.cluster.kill("gateway-1"));
    rig.load.wait_for_more_acks(80, PROGRESS).await;
    let report = rig.finish("gateway killed").await;
    // Round-robin put half the members on the killed gateway: they came back.
    assert!(
        report.reconnects() > 0,
        "nobody was on the killed gateway: {}",
        report.summary()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_service_killed_mid_batch_gives_no_duplicate_and_no_false_ack() {
    let rig = rig(40).await;
    tokio::task::block_in_place(|| rig.cluster.kill("message-service-1"));
    rig.load.wait_for_more_acks(80, PROGRESS).await;
    let report = rig.finish("message service killed").await;
    // A send the gateway could not retry in time fails clearly, as one to send again.
    let errors = report.errors();
    assert!(
        errors.keys().all(|code| code == "unavailable"),
        "sends failed other than as unavailable: {errors:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_for_ten_seconds_gives_unavailable_then_recovers_by_itself() {
    let mut rig = rig(40).await;
    tokio::task::block_in_place(|| rig.postgres.stop());
    let acked_at_stop = rig.load.acks();
    rig.load
        .wait_for("an unavailable error frame", PROGRESS, |load| {
            load.unavailable_errors() > 0
        })
        .await;
    // The outage itself: its length is the fault, not a wait for something to happen.
    tokio::time::sleep(Duration::from_secs(10)).await;
    // Nothing can be committed without the database, so nothing may be acked (sends that
    // were committed just before the stop may still be answered: at most one per sender).
    let during = rig.load.acks() - acked_at_stop;
    assert!(during <= 8, "{during} acks while the database was down");
    tokio::task::block_in_place(|| rig.postgres.resume());
    // No restart: the services reconnect by themselves.
    rig.load.wait_for_more_acks(80, PROGRESS).await;
    let report = rig.finish("postgres stopped").await;
    assert!(report.errors().get("unavailable").copied().unwrap_or(0) > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_unreachable_at_publish_time_still_delivers_what_was_committed() {
    let mut rig = rig(40).await;
    tokio::task::block_in_place(|| rig.redis.stop());
    // Commits go on without Redis: these messages are acked and cannot be published yet.
    rig.load.wait_for_more_acks(40, PROGRESS).await;
    // One message service dies holding its unpublished messages; the other keeps retrying.
    tokio::task::block_in_place(|| rig.cluster.kill("message-service-1"));
    rig.load.wait_for_more_acks(20, PROGRESS).await;
    tokio::task::block_in_place(|| rig.redis.start_again());
    rig.load.wait_for_more_acks(40, PROGRESS).await;
    rig.finish("redis unreachable at publish").await;
}
