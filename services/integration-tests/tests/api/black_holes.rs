//! Network partitions that drop packets rather than refuse them, between our processes,
//! under steady load: a gateway cut off from Redis, a gateway cut off from the message
//! services, a message service cut off from Redis. A relay ([`Relay`]) stands on the one
//! path and goes silent for 30 s, holding its connections open; each test prints how long
//! the cut took to be noticed and ends with [`Report::assert_exactly_once`].

use crate::helpers::metric;
use integration_tests::TestDb;
use integration_tests::backends::{Postgres, Redis};
use integration_tests::processes::{ScriptCluster, reserve_ports};
use integration_tests::relay::Relay;
use integration_tests::steady_load::{LoadSpec, Report, SteadyLoad, stored_rows};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const PROGRESS: Duration = Duration::from_secs(60);
/// How long each path stays cut.
const CUT: Duration = Duration::from_secs(30);

/// Which path the relay stands on.
#[derive(Clone, Copy, Debug)]
enum Path {
    GatewayToRedis,
    GatewayToServices,
    ServiceToRedis,
}

struct Run {
    report: Report,
    cluster: ScriptCluster,
}

/// Starts two gateways and two message services on servers of the test's own, with relays
/// on `path` for gateway 1 or message service 1, runs `spec`'s load, cuts the path for
/// [`CUT`], heals it, and checks the run. `noticed` says when the cut shows.
async fn cut(path: Path, spec: LoadSpec, noticed: impl AsyncFn(&ScriptCluster, &SteadyLoad) -> bool) -> Run {
    let postgres = tokio::task::block_in_place(Postgres::start);
    let redis = tokio::task::block_in_place(Redis::start);
    let db = TestDb::create_on(&postgres.url()).await;
    let ports = reserve_ports(2, 2);
    let local = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let relays = match path {
        Path::GatewayToServices => vec![
            Relay::start(local(ports.base + 201)).await,
            Relay::start(local(ports.base + 202)).await,
        ],
        Path::GatewayToRedis | Path::ServiceToRedis => vec![Relay::start(local(redis.port)).await],
    };
    let through = |scheme: &str| {
        relays
            .iter()
            .map(|r| format!("{scheme}://{}", r.addr))
            .collect::<Vec<_>>()
            .join(",")
    };
    let (key, value) = match path {
        Path::GatewayToRedis => ("GATEWAY_1_SC_REDIS__URL", through("redis")),
        Path::GatewayToServices => ("GATEWAY_1_SC_MESSAGE_SERVICE__ENDPOINTS", through("http")),
        Path::ServiceToRedis => ("SERVICE_1_SC_REDIS__URL", through("redis")),
    };
    let mut env = crate::faults::LOAD_SETTINGS.to_vec();
    env.push((key, value.as_str()));
    let cluster = tokio::task::block_in_place(|| ScriptCluster::up_in(ports, db, redis.url(), 2, 2, &env));
    let load = SteadyLoad::start(cluster.balancer(), &spec).await;
    load.wait_for_more_acks(40, PROGRESS).await;
    if let Path::ServiceToRedis = path {
        // Only its own commits make the cut service publish: some room must be at home there.
        let committed = metric(cluster.service_ops(1), "sc_message_service_messages_committed_total").await;
        assert!(committed > 0.0, "no room of the load is at home on message service 1");
    }

    let cut_at = Instant::now();
    relays.iter().for_each(Relay::cut);
    let mut seen = None;
    // The cut lasts CUT whatever happens; meanwhile, when it shows is watched for.
    while cut_at.elapsed() < CUT {
        if seen.is_none() && noticed(&cluster, &load).await {
            seen = Some(cut_at.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let noticed = seen.unwrap_or_else(|| panic!("{path:?}: the cut went unnoticed for {CUT:?}"));
    relays.iter().for_each(Relay::heal);
    load.wait_for_more_acks(40, PROGRESS).await;
    load.stop_sending(PROGRESS).await;
    let stored = stored_rows(&cluster.db).await;
    let report = load.finish_at(stored, PROGRESS).await;
    println!(
        "{path:?} cut for {CUT:?}: noticed after {noticed:?}; {}",
        report.summary()
    );
    report.assert_exactly_once();
    drop((redis, postgres));
    Run { report, cluster }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_cut_off_from_redis_sends_its_clients_elsewhere_and_loses_nothing() {
    // Noticed when the gateway gives up on the bus: its clients are closed with 1012.
    let run = cut(Path::GatewayToRedis, LoadSpec::default(), async |cluster, _| {
        metric(cluster.ops(1), "sc_gateway_bus_cutoff_closes_total").await > 0.0
    })
    .await;
    // The reader's silent connection shows within redis.block_ms + 5 s, and the clients go
    // gateway.bus_cutoff_ms later (checked once a second): about 12 s by default.
    assert!(run.report.reconnects() > 0, "the cut gateway's clients moved");
    drop(run.cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_cut_off_from_the_message_services_refuses_sends_clearly_and_loses_nothing() {
    // Noticed when a send through the cut gateway times out: `unavailable`, to retry.
    let run = cut(Path::GatewayToServices, LoadSpec::default(), async |_, load| {
        load.unavailable_errors() > 0
    })
    .await;
    let errors = run.report.errors();
    assert!(
        errors.keys().all(|code| code == "unavailable"),
        "sends failed other than as unavailable: {errors:?}, first messages {:?}",
        run.report.error_messages()
    );
    drop(run.cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_service_cut_off_from_redis_retries_its_publishes_and_loses_nothing() {
    // Noticed when the cut service's publish fails (it retries until the path is back;
    // meanwhile gap fill and the repair sweep deliver what it committed). Each room is at
    // home on one of the two services, by the hash of its name: with the default's 4
    // rooms, none was on the cut one in 1 run of 16, and nothing was published there to
    // fail. With 16 rooms, 1 in 65,536.
    let spec = LoadSpec {
        rooms: 16,
        members_per_room: 2,
        senders_per_room: 1,
        ..LoadSpec::default()
    };
    let run = cut(Path::ServiceToRedis, spec, async |cluster, _| {
        metric(cluster.service_ops(1), "sc_message_service_publish_errors_total").await > 0.0
    })
    .await;
    drop(run.cluster);
}
