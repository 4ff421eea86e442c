use integration_tests::WsClient;
use serde_json::Value;

/// Reads until at least `messages` message frames and `acks` ack frames arrived, and
/// returns both, in arrival order. Any other frame fails the test.
pub async fn collect(client: &mut WsClient, messages: usize, acks: usize) -> (Vec<Value>, Vec<Value>) {
    let mut got_messages = Vec::with_capacity(messages);
    let mut got_acks = Vec::with_capacity(acks);
    while got_messages.len() < messages || got_acks.len() < acks {
        let frame = client.recv().await;
        match frame["type"].as_str() {
            Some("message") => got_messages.push(frame),
            Some("ack") => got_acks.push(frame),
            _ => panic!("unexpected frame: {frame}"),
        }
    }
    (got_messages, got_acks)
}

pub fn seqs(messages: &[Value]) -> Vec<u64> {
    messages.iter().map(|m| m["seq"].as_u64().expect("seq")).collect()
}

/// One value of a gateway's `/metrics`, summed over its labels.
pub async fn metric(ops: std::net::SocketAddr, name: &str) -> f64 {
    let text = reqwest::get(format!("http://{ops}/metrics"))
        .await
        .expect("the gateway answers /metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .filter(|line| line.split(['{', ' ']).next() == Some(name))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
