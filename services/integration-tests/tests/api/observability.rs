//! Observability: one trace per message across every process, logs that carry its id, and
//! metrics that match the traffic.

use integration_tests::cluster::create_session as session;
use integration_tests::otlp::{OtlpReceiver, ReceivedSpan};
use integration_tests::processes::ScriptCluster;
use integration_tests::{TestCluster, WsClient};
use serde_json::Value;
use std::time::Duration;

fn in_trace<'a>(spans: &'a [ReceivedSpan], trace: &str, name: &str) -> Vec<&'a ReceivedSpan> {
    spans.iter().filter(|s| s.trace_id == trace && s.name == name).collect()
}

fn the_one<'a>(spans: &'a [ReceivedSpan], trace: &str, name: &str) -> &'a ReceivedSpan {
    let found = in_trace(spans, trace, name);
    assert_eq!(found.len(), 1, "exactly one `{name}` span in the trace: {found:#?}");
    found[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_message_is_one_trace_across_both_gateways_and_services_and_its_logs_carry_the_id() {
    let receiver = OtlpReceiver::start().await;
    let endpoint = receiver.endpoint();
    let cluster = ScriptCluster::up_with_env(
        2,
        2,
        &[
            ("SC_TELEMETRY__OTLP_ENDPOINT", &endpoint),
            ("SC_TELEMETRY__SAMPLING_RATIO", "1.0"),
            ("SC_TELEMETRY__ENVIRONMENT", "observability-test"),
            ("SC_LOG__FORMAT", "json"),
            ("SC_LOG__LEVEL", "info,gateway=debug,message_service=debug"),
        ],
    )
    .await;
    let mut sender = WsClient::connect(cluster.gateway(1), &session(cluster.gateway(1), "Sender").await).await;
    let mut other = WsClient::connect(cluster.gateway(2), &session(cluster.gateway(2), "Other").await).await;
    sender.join("traced", None).await;
    other.join("traced", None).await;
    sender.send_text("traced", "follow me", "traced-1").await;
    for client in [&mut sender, &mut other] {
        client.recv_until("message").await;
    }

    let spans = receiver
        .wait_for(Duration::from_secs(40), |spans| {
            let Some(root) = spans.iter().find(|s| s.name == "ws receive") else {
                return false;
            };
            in_trace(spans, &root.trace_id, "deliver").len() == 2
                && in_trace(spans, &root.trace_id, "fan-out").len() == 2
                && ["grpc client", "grpc server", "db.write", "xadd"]
                    .iter()
                    .all(|name| !in_trace(spans, &root.trace_id, name).is_empty())
                && spans.iter().any(|s| s.name == "group commit")
        })
        .await;

    let receive = spans.iter().find(|s| s.name == "ws receive").unwrap();
    let trace = receive.trace_id.as_str();
    assert_eq!(receive.service, "gateway");
    assert_eq!(
        receive.attributes.get("client_msg_id").map(String::as_str),
        Some("traced-1")
    );
    assert_eq!(receive.parent_span_id, "", "the receive starts the trace");

    let client = the_one(&spans, trace, "grpc client");
    assert_eq!(client.parent_span_id, receive.span_id);
    let server = the_one(&spans, trace, "grpc server");
    assert_eq!(server.service, "message-service");
    assert_eq!(server.parent_span_id, client.span_id, "context crossed gRPC metadata");
    let write = the_one(&spans, trace, "db.write");
    assert_eq!(write.parent_span_id, server.span_id);
    let xadd = the_one(&spans, trace, "xadd");
    assert_eq!(xadd.parent_span_id, server.span_id);

    let batch = spans
        .iter()
        .find(|s| s.name == "group commit" && s.links.contains(&(trace.to_owned(), server.span_id.clone())))
        .expect("the group-commit span links to the message");
    assert_eq!(batch.service, "message-service");

    let fan_outs = in_trace(&spans, trace, "fan-out");
    for i in 1..=2 {
        let addr = format!("@{}", cluster.gateway(i));
        let on_gateway = fan_outs
            .iter()
            .filter(|s| s.attributes["gateway"].ends_with(&addr))
            .count();
        assert_eq!(on_gateway, 1, "one fan-out on gateway {i}: {fan_outs:#?}");
    }
    for fan_out in &fan_outs {
        assert_eq!(fan_out.parent_span_id, xadd.span_id, "context crossed the stream entry");
        let delivers: Vec<_> = in_trace(&spans, trace, "deliver")
            .into_iter()
            .filter(|d| d.parent_span_id == fan_out.span_id)
            .collect();
        assert_eq!(delivers.len(), 1, "one delivery span per room per gateway");
    }

    // Every span names the process that made it: the build, the environment from
    // configuration, and the replica (host and address, so each of two on one host).
    for span in &spans {
        assert_eq!(span.resource["service.version"], env!("CARGO_PKG_VERSION"), "{span:?}");
        assert_eq!(span.resource["deployment.environment"], "observability-test");
        assert_eq!(span.resource["deployment.environment.name"], "observability-test");
    }
    let instance = |span: &ReceivedSpan| span.resource["service.instance.id"].clone();
    let mut gateways: Vec<String> = fan_outs.iter().map(|s| instance(s)).collect();
    gateways.sort();
    let mut expected: Vec<String> = (1..=2)
        .map(|i| format!("{}@{}", chat_common::telemetry::host_name(), cluster.gateway(i)))
        .collect();
    expected.sort();
    assert_eq!(gateways, expected, "each fan-out names its gateway");
    for fan_out in &fan_outs {
        assert_eq!(
            instance(fan_out),
            fan_out.attributes["gateway"],
            "the span attribute agrees"
        );
    }
    assert!(
        [1, 2]
            .iter()
            .any(|&i| instance(server).ends_with(&format!("@{}", cluster.service_grpc(i)))),
        "the grpc server span names its message service: {}",
        instance(server)
    );

    // Log lines written during the send carry the same trace id, on both sides of gRPC.
    let lines = |name: &str| -> Vec<Value> {
        cluster
            .log(name)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    let acked = lines("gateway-1")
        .into_iter()
        .find(|l| l["message"] == "send acknowledged")
        .expect("the gateway logged the ack");
    assert_eq!(acked["trace_id"], trace);
    let committed: Vec<Value> = [lines("message-service-1"), lines("message-service-2")]
        .concat()
        .into_iter()
        .filter(|l| l["message"] == "event committed")
        .collect();
    assert_eq!(committed.len(), 1, "{committed:?}");
    assert_eq!(committed[0]["trace_id"], trace);
    assert_eq!(committed[0]["span_id"], server.span_id);
}

/// A trace the gateway's sampler leaves out stays out everywhere after it, though the
/// services behind it record every trace they start: the decision travels with the send
/// (over a websocket or HTTP, which take different calls) and with the stream entry, and no
/// process makes spans of its own for such a message (a process that did would start a
/// trace of its own, and its spans would be exported). Nor does the gateway record a trace
/// of its own for any call it makes (joins, history, sends), as its sampler says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_left_out_at_the_gateway_makes_no_spans_downstream() {
    let receiver = OtlpReceiver::start().await;
    let endpoint = receiver.endpoint();
    let cluster = ScriptCluster::up_with_env(
        2,
        2,
        &[
            ("SC_TELEMETRY__OTLP_ENDPOINT", &endpoint),
            ("GATEWAY_SC_TELEMETRY__SAMPLING_RATIO", "0.0"),
            ("SERVICE_SC_TELEMETRY__SAMPLING_RATIO", "1.0"),
        ],
    )
    .await;
    let mut sender = WsClient::connect(cluster.gateway(1), &session(cluster.gateway(1), "Sender").await).await;
    let mut other = WsClient::connect(cluster.gateway(2), &session(cluster.gateway(2), "Other").await).await;
    sender.join("untraced", None).await;
    other.join("untraced", None).await;
    sender.send_text("untraced", "left out", "left-out-1").await;
    let response = reqwest::Client::new()
        .post(format!("http://{}/api/v1/rooms/untraced/messages", cluster.gateway(1)))
        .bearer_auth(session(cluster.gateway(1), "Poster").await)
        .json(&serde_json::json!({"text": "left out too", "client_msg_id": "left-out-2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    for client in [&mut sender, &mut other] {
        client.recv_until("message").await;
        client.recv_until("message").await;
    }
    // Then one the browser asks to record: once its whole trace has arrived, every span
    // the first message could have made has been exported before it.
    let recorded = "4bf92f3577b34da6a3ce929d0e0e4736";
    sender
        .send_json(serde_json::json!({
            "type": "send", "room": "untraced", "text": "recorded", "client_msg_id": "recorded-1",
            "traceparent": format!("00-{recorded}-00f067aa0ba902b7-01"),
        }))
        .await;
    for client in [&mut sender, &mut other] {
        client.recv_until("message").await;
    }
    let spans = receiver
        .wait_for(Duration::from_secs(40), |spans| {
            in_trace(spans, recorded, "deliver").len() == 2 && !in_trace(spans, recorded, "xadd").is_empty()
        })
        .await;
    // Only the recorded message's spans, and the group commit that carried it (a trace of
    // its own, linked to the message's).
    let strays: Vec<_> = spans
        .iter()
        .filter(|s| s.trace_id != recorded)
        .filter(|s| !(s.name == "group commit" && s.links.iter().any(|(trace, _)| trace == recorded)))
        .collect();
    assert!(strays.is_empty(), "spans of traces left out: {strays:#?}");
    for name in ["grpc server", "db.write", "xadd"] {
        the_one(&spans, recorded, name);
    }
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no metric {name} in:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_match_the_traffic() {
    const SENDS: usize = 10;
    let cluster = TestCluster::start(2, 1).await;
    let mut members = vec![
        cluster.client(0, "a").await,
        cluster.client(0, "b").await,
        cluster.client(1, "c").await,
    ];
    for member in &mut members {
        member.join("counted", None).await;
    }
    for i in 0..SENDS {
        members[0]
            .send_text("counted", &format!("m{i}"), &format!("m-{i}"))
            .await;
    }
    for (i, member) in members.iter_mut().enumerate() {
        let acks = if i == 0 { SENDS } else { 0 };
        crate::helpers::collect(member, SENDS, acks).await;
    }

    let scrape = integration_tests::cluster::scrape_metrics;
    let gw0 = scrape(cluster.gateways[0].ops_addr).await;
    let gw1 = scrape(cluster.gateways[1].ops_addr).await;
    let service = scrape(cluster.services[0].ops_addr).await;
    let total = |name: &str| metric(&gw0, name) + metric(&gw1, name);
    assert_eq!(total("sc_gateway_acks_total"), SENDS as f64, "N sends, N acks");
    assert_eq!(
        total("sc_gateway_deliveries_total"),
        (SENDS * members.len()) as f64,
        "N x members deliveries"
    );
    assert_eq!(metric(&gw0, "sc_gateway_deliveries_total"), (SENDS * 2) as f64);
    assert_eq!(metric(&gw0, "sc_gateway_connections"), 2.0);
    assert_eq!(metric(&gw1, "sc_gateway_rooms"), 1.0);
    assert_eq!(metric(&gw0, "sc_gateway_send_seconds_count"), SENDS as f64);
    // Each SendMessages call (one or more sends) timed on both of its ends, once each.
    let calls = metric(&gw0, "sc_gateway_send_call_seconds_count");
    assert!((1.0..=SENDS as f64).contains(&calls), "{calls} calls for {SENDS} sends");
    assert_eq!(metric(&gw1, "sc_gateway_send_call_seconds_count"), 0.0);
    assert_eq!(metric(&service, "sc_message_service_send_seconds_count"), calls);
    // A call takes at least what the service spent on it.
    assert!(
        metric(&gw0, "sc_gateway_send_call_seconds_sum") >= metric(&service, "sc_message_service_send_seconds_sum"),
        "the calls took less time than the service spent answering them"
    );
    assert_eq!(
        total("sc_gateway_fanout_lag_seconds_count"),
        (SENDS * 2) as f64,
        "each gateway saw each entry"
    );
    assert_eq!(
        metric(&service, "sc_message_service_messages_committed_total"),
        SENDS as f64
    );
    assert!(metric(&service, "sc_message_service_commit_batch_size_count") >= 1.0);
    // The indexer counts what it took into the search index, after its commit: each text
    // message once (it is counted moments after the queue empties, so wait for the count).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let indexed = metric(
            &scrape(cluster.services[0].ops_addr).await,
            "sc_message_service_search_indexed_total",
        );
        assert!(indexed <= SENDS as f64, "{indexed} indexed");
        if indexed == SENDS as f64 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{indexed} of {SENDS} indexed after 20 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(metric(&service, "sc_message_service_search_index_errors_total"), 0.0);
    assert!(metric(&gw0, "sc_gateway_frames_out_total") >= (SENDS * 2 + SENDS) as f64);
}
