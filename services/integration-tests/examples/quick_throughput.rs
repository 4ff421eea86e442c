//! A quick throughput probe of the whole scaled path (2 gateways, 2 message services,
//! Postgres, Redis Streams), all in this process on loopback. Not the benchmark (that is
//! the load generator's job); a sanity figure.
//!
//! `cargo run --release -p integration-tests --example quick_throughput -- [rooms] [messages_per_sender] [--traced]`
//!
//! With `--traced`, every span of the message path is exported (sampling ratio 1.0) to an
//! OTLP receiver in this process, to compare against a run without tracing.
//!
//! Each room has two members, one on each gateway; both send, keeping up to `WINDOW`
//! sends in flight, and both receive everything. Prints sends acked per second and
//! deliveries per second, and checks that every member got every seq of its room once.

use futures::{SinkExt, StreamExt};
use integration_tests::TestCluster;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const WINDOW: usize = 32;

#[tokio::main]
async fn main() {
    let traced = std::env::args().any(|a| a == "--traced");
    let mut args = std::env::args().skip(1).filter(|a| a != "--traced");
    let receiver = if traced {
        Some(integration_tests::otlp::OtlpReceiver::start().await)
    } else {
        None
    };
    let telemetry = chat_common::telemetry::TelemetrySettings {
        otlp_endpoint: receiver.as_ref().map(|r| r.endpoint()).unwrap_or_default(),
        otlp_protocol: chat_common::telemetry::OtlpProtocol::Grpc,
        sampling_ratio: 1.0,
        environment: "development".into(),
        instance_id: String::new(),
    };
    let _telemetry = chat_common::telemetry::init(
        &chat_common::telemetry::Identity::new("quick-throughput", env!("CARGO_PKG_VERSION"), "in-process", &telemetry),
        &chat_common::telemetry::LogSettings {
            format: chat_common::telemetry::LogFormat::Text,
            level: "warn".into(),
        },
        &telemetry,
    )
    .expect("telemetry");
    let rooms: usize = args.next().map_or(20, |a| a.parse().expect("rooms"));
    let per_sender: usize = args.next().map_or(500, |a| a.parse().expect("messages per sender"));
    let cluster = TestCluster::start(2, 2).await;

    let mut clients = Vec::new();
    for room in 0..rooms {
        for gateway in 0..2 {
            let token = cluster.session(gateway, &format!("c{room}-{gateway}")).await;
            let mut request = format!("ws://{}/ws", cluster.gateway(gateway))
                .into_client_request()
                .unwrap();
            request
                .headers_mut()
                .insert("cookie", format!("sc_session={token}").parse().unwrap());
            let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
            ws.send(Message::Text(
                json!({"type": "join", "room": format!("room-{room}")})
                    .to_string()
                    .into(),
            ))
            .await
            .unwrap();
            loop {
                if let Some(Ok(Message::Text(t))) = ws.next().await
                    && serde_json::from_str::<Value>(&t).unwrap()["type"] == "joined"
                {
                    break;
                }
            }
            clients.push((room, gateway, ws));
        }
    }

    let expected_per_member = 2 * per_sender;
    let started = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|(room, gateway, ws)| {
            tokio::spawn(async move {
                let (mut sink, mut stream) = ws.split();
                let (mut sent, mut acked, mut next_seq, mut received) = (0usize, 0usize, 1u64, 0usize);
                while acked < per_sender || received < expected_per_member {
                    while sent < per_sender && sent - acked < WINDOW {
                        let frame = json!({"type": "send", "room": format!("room-{room}"),
                            "text": format!("message {sent} from {gateway}"), "client_msg_id": format!("{gateway}-{sent}")});
                        sink.send(Message::Text(frame.to_string().into())).await.unwrap();
                        sent += 1;
                    }
                    let frame = tokio::time::timeout(Duration::from_secs(30), stream.next()).await.expect("stalled");
                    let Some(Ok(Message::Text(text))) = frame else { panic!("connection ended: {frame:?}") };
                    let frame: Value = serde_json::from_str(&text).unwrap();
                    match frame["type"].as_str() {
                        Some("ack") => acked += 1,
                        Some("message") => {
                            assert_eq!(frame["seq"].as_u64(), Some(next_seq), "in order, exactly once");
                            next_seq += 1;
                            received += 1;
                        }
                        _ => panic!("unexpected frame {frame}"),
                    }
                }
                (acked, received)
            })
        })
        .collect();
    let (mut acks, mut deliveries) = (0, 0);
    for task in tasks {
        let (a, d) = task.await.unwrap();
        acks += a;
        deliveries += d;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let rows = cluster.db.message_rows().await.len();
    assert_eq!(rows, acks, "every acked message stored once");
    println!(
        "tracing {}: {rooms} rooms x 2 senders x {per_sender} messages: {acks} acked in {elapsed:.2} s = {:.0} msg/s acked, {:.0} deliveries/s; {rows} rows in Postgres",
        if traced { "on (ratio 1.0)" } else { "off" },
        acks as f64 / elapsed,
        deliveries as f64 / elapsed
    );
}
