//! Slow consumers: 1,000 members of a busy room stop reading. Each is closed with 4008
//! once its outbound queue is full, the gateway's memory stays bounded meanwhile, and the
//! members who do read get every message, once and in order, and stay connected.

use crate::helpers::metric;
use futures::{SinkExt, StreamExt};
use integration_tests::WsClient;
use integration_tests::processes::ScriptCluster;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

const SLOW: usize = 1000;
const READERS: usize = 4;
const MESSAGES: u64 = 300;
/// Frames queued per socket before it counts as slow (the default is 1024; lower here so
/// that a few hundred messages overflow it).
const QUEUE: usize = 64;

type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// A member whose receive buffer is a few KiB, so that the kernel holds little for it and
/// the gateway's queue is what fills.
async fn small_window_member(addr: SocketAddr, token: &str, room: &str) -> Socket {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.expect("connect");
    let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("cookie", HeaderValue::from_str(&format!("sc_session={token}")).unwrap());
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(4096);
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(request, stream, Some(config))
        .await
        .expect("handshake");
    ws.send(Message::Text(json!({"type": "join", "room": room}).to_string().into()))
        .await
        .unwrap();
    loop {
        let Some(Ok(Message::Text(text))) = ws.next().await else {
            panic!("no joined frame");
        };
        let frame: Value = serde_json::from_str(&text).unwrap();
        if frame["type"] == "joined" {
            return ws;
        }
    }
}

/// `VmRSS` or `VmHWM` (the peak) of a process, in KiB.
fn memory_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_members_that_stop_reading_are_closed_and_memory_stays_bounded() {
    let queue = QUEUE.to_string();
    let cluster = ScriptCluster::up_with_env(
        2,
        1,
        &[
            ("GATEWAY_SC_GATEWAY__OUTBOUND_QUEUE", queue.as_str()),
            // Kernel buffers of a few frames: the gateway's own queue is what fills.
            ("GATEWAY_SC_GATEWAY__SOCKET_SEND_BUFFER_BYTES", "16384"),
            ("GATEWAY_SC_GATEWAY__SEND_RATE_PER_SEC", "10000"),
            ("GATEWAY_SC_GATEWAY__SEND_BURST", "10000"),
        ],
    )
    .await;
    let (slow_gateway, other) = (cluster.gateway(1), cluster.gateway(2));
    let pid = cluster.pid("gateway-1");
    let room = "busy";

    let tokens: Vec<String> = futures::stream::iter(0..SLOW + READERS)
        .map(|i| async move { integration_tests::cluster::create_session(slow_gateway, &format!("m{i}")).await })
        .buffered(16)
        .collect()
        .await;
    let before = memory_kib(pid, "VmRSS");
    let slow: Vec<Socket> = futures::stream::iter(&tokens[..SLOW])
        .map(|token| small_window_member(slow_gateway, token, room))
        .buffered(32)
        .collect()
        .await;
    // Readers on both gateways (the one the slow members crowd, and the other), reading
    // all along.
    let mut readers = Vec::new();
    for (i, token) in tokens[SLOW..].iter().enumerate() {
        let addr = if i % 2 == 0 { slow_gateway } else { other };
        let mut reader = WsClient::connect(addr, token).await;
        reader.join(room, None).await;
        readers.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            while seqs.len() < MESSAGES as usize {
                let frame = reader.recv().await;
                if frame["type"] == "message" {
                    seqs.push(frame["seq"].as_u64().unwrap());
                }
            }
            (reader, seqs)
        }));
    }
    let idle = memory_kib(pid, "VmRSS");
    // Peak memory from here on: writing 5 to clear_refs resets VmHWM to the current RSS.
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("reset the peak RSS");

    // The sender, on the other gateway, sends large messages one after another.
    let token = integration_tests::cluster::create_session(other, "Sender").await;
    let mut sender = WsClient::connect(other, &token).await;
    sender.join(room, None).await;
    let text = "x".repeat(3900);
    for i in 1..=MESSAGES {
        sender.send_text(room, &text, &format!("s{i}")).await;
        let (ack, _) = sender.recv_until("ack").await;
        assert_eq!(ack["seq"], i, "{ack}");
    }
    // Every reader gets every message once and in order, however slow the others are.
    let mut live = Vec::new();
    for reader in readers {
        let (reader, seqs) = reader.await.expect("reader");
        assert_eq!(seqs, (1..=MESSAGES).collect::<Vec<_>>());
        live.push(reader);
    }
    let peak = memory_kib(pid, "VmHWM");
    let slow_closes = metric(cluster.ops(1), "sc_gateway_slow_consumer_closes_total").await;

    // Now the slow members read what the kernel held for them, then the end of the
    // socket: the 4008 close frame if the gateway could still write it, otherwise (its
    // writer gave up after the drain bound) the bare end of the connection.
    let ends: Vec<&str> = futures::stream::iter(slow)
        .map(|mut ws| async move {
            loop {
                match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
                    Ok(Some(Ok(Message::Close(Some(frame))))) if u16::from(frame.code) == 4008 => return "4008",
                    Ok(Some(Ok(Message::Close(_)))) => return "other close",
                    Ok(Some(Ok(_))) => continue,
                    Ok(Some(Err(_)) | None) => return "ended",
                    Err(_) => return "still open",
                }
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let count = |what: &str| ends.iter().filter(|e| **e == what).count();
    let after = memory_kib(pid, "VmRSS");
    println!(
        "slow consumers: {SLOW} members stopped reading; the gateway closed {slow_closes} as slow \
         ({} saw 4008, {} the bare end); gateway RSS {before} KiB before they joined, {idle} KiB \
         with them idle, peak {peak} KiB while {MESSAGES} messages of 3.9 KB went out, {after} KiB \
         after; peak - idle = {} KiB ({} KiB per slow member)",
        count("4008"),
        count("ended"),
        peak.saturating_sub(idle),
        peak.saturating_sub(idle) / SLOW as u64
    );
    assert_eq!(slow_closes, SLOW as f64, "slow-consumer closes");
    assert_eq!(count("4008") + count("ended"), SLOW, "ends: {ends:?}");
    // Bounded: a slow member costs its queue of shared frames and its socket buffers, far
    // from what it was sent (300 messages of 3.9 KB = 1.2 MB each, 1.2 GB for them all).
    let per_member = peak.saturating_sub(idle) / SLOW as u64;
    assert!(per_member < 128, "{per_member} KiB of gateway memory per slow member");
    // The readers are still connected and served.
    for reader in &mut live {
        reader.send_json(json!({"type": "leave", "room": room})).await;
        let (left, _) = reader.recv_until("left").await;
        assert_eq!(left["room"], room);
    }
}
