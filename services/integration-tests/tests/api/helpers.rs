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
