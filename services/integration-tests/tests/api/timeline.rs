//! The room timeline across the scaled topology (two gateways, two message services, real
//! Postgres and Redis): edits, deletions, reactions, replies and mentions reach every member
//! exactly once and in seq order, a resume replays exactly what was missed, a retried change
//! is one event, each bad change gets its error and stores nothing, and history shows the
//! result.

use integration_tests::{TestCluster, WsClient};
use reqwest::Method;
use serde_json::{Value, json};

/// The frames that carry an event of the timeline.
const EVENT_TYPES: [&str; 5] = ["message", "edited", "deleted", "reacted", "unreacted"];

/// A socket that keeps every event frame it reads, while it waits for answers too.
struct Member {
    ws: WsClient,
    events: Vec<Value>,
}

impl Member {
    fn new(ws: WsClient) -> Self {
        Self { ws, events: Vec::new() }
    }

    async fn send(&mut self, frame: Value) {
        self.ws.send_json(frame).await;
    }

    /// Sends a change (`edit`, `delete`, `react`, `unreact`) of the message at `seq`.
    async fn change(&mut self, ty: &str, room: &str, seq: u64, extra: Value, client_msg_id: &str) {
        let mut frame = json!({"type": ty, "room": room, "seq": seq, "client_msg_id": client_msg_id});
        if let (Some(frame), Some(extra)) = (frame.as_object_mut(), extra.as_object()) {
            frame.extend(extra.clone());
        }
        self.send(frame).await;
    }

    /// Reads the next frame, keeping it if it carries an event.
    async fn read(&mut self) -> Value {
        let frame = self.ws.recv().await;
        if EVENT_TYPES.contains(&frame["type"].as_str().unwrap_or("")) {
            self.events.push(frame.clone());
        }
        frame
    }

    /// The answer to `client_msg_id`: its ack, or the error frame's code.
    async fn answer(&mut self, client_msg_id: &str) -> Result<Value, String> {
        loop {
            let frame = self.read().await;
            match frame["type"].as_str() {
                Some("ack") if frame["client_msg_id"] == client_msg_id => return Ok(frame),
                Some("error") if frame["ref"] == client_msg_id => {
                    return Err(frame["code"].as_str().unwrap().to_owned());
                }
                _ => {}
            }
        }
    }

    /// Reads until a frame of type `ty`, keeping events on the way.
    async fn until(&mut self, ty: &str) -> Value {
        loop {
            let frame = self.read().await;
            if frame["type"] == ty {
                return frame;
            }
        }
    }

    async fn join(&mut self, room: &str, since_seq: Option<u64>) -> Value {
        let mut frame = json!({"type": "join", "room": room});
        if let Some(since) = since_seq {
            frame["since_seq"] = json!(since);
        }
        self.send(frame).await;
        self.until("joined").await
    }

    async fn send_text(&mut self, room: &str, text: &str, client_msg_id: &str) {
        self.send(json!({"type": "send", "room": room, "text": text, "client_msg_id": client_msg_id}))
            .await;
    }

    /// Every event read so far and until the one with seq `last`; fails on a repeat or a
    /// seq out of order.
    async fn events_through(&mut self, last: u64) -> Vec<Value> {
        while self.events.last().is_none_or(|e| e["seq"].as_u64() != Some(last)) {
            self.read().await;
        }
        for pair in self.events.windows(2) {
            assert_eq!(
                pair[1]["seq"].as_u64().unwrap(),
                pair[0]["seq"].as_u64().unwrap() + 1,
                "in order, once: {} after {}",
                pair[1],
                pair[0]
            );
        }
        std::mem::take(&mut self.events)
    }
}

async fn get(cluster: &TestCluster, gateway: usize, token: &str, path: &str) -> Value {
    let (status, body) = cluster.call(gateway, Method::GET, path, Some(token), None).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn kinds(events: &[Value]) -> Vec<(u64, &str)> {
    events
        .iter()
        .map(|e| (e["seq"].as_u64().unwrap(), e["type"].as_str().unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_reach_every_member_on_both_gateways_once_in_order_and_history_folds_them() {
    let cluster = TestCluster::start(2, 2).await;
    let ann = cluster.sign_up(0, "ann").await;
    let bob = cluster.sign_up(1, "bob").await;
    let carl = cluster.sign_up(1, "carl").await;
    let mut ann_ws = Member::new(cluster.client_with(0, &ann).await);
    let mut bob_ws = Member::new(cluster.client_with(1, &bob).await);
    // Carl is a member of the room without it open: he is notified, and of a mention as one.
    // He made it, so he owns it: Ann and Bob are plain members.
    let (status, _) = cluster
        .call(
            1,
            Method::POST,
            "/api/v1/rooms",
            Some(&carl),
            Some(json!({"name": "lobby"})),
        )
        .await;
    assert_eq!(status, 200);
    ann_ws.join("lobby", None).await;
    bob_ws.join("lobby", None).await;
    let mut carl_ws = Member::new(cluster.client_with(1, &carl).await);
    // The socket answers frames only once it is registered for notifications.
    carl_ws.join("elsewhere", None).await;

    ann_ws
        .send_text("lobby", "helo @Bob and @carl, not @nobody", "m1")
        .await;
    let m1 = ann_ws.answer("m1").await.unwrap();
    assert_eq!(m1["seq"], 1);
    let notify = carl_ws.until("notify").await;
    assert_eq!(
        (notify["seq"].as_u64(), notify["mention"].as_bool()),
        (Some(1), Some(true))
    );

    bob_ws
        .send(json!({"type": "send", "room": "lobby", "text": "yes?", "client_msg_id": "r1", "reply_to": 1}))
        .await;
    assert_eq!(bob_ws.answer("r1").await.unwrap()["seq"], 2);
    let notify = carl_ws.until("notify").await;
    assert_eq!(
        (notify["seq"].as_u64(), notify["mention"].as_bool()),
        (Some(2), Some(false))
    );
    ann_ws
        .change("edit", "lobby", 1, json!({"text": "hello @bob"}), "e1")
        .await;
    assert_eq!(ann_ws.answer("e1").await.unwrap()["seq"], 3);
    bob_ws.change("react", "lobby", 1, json!({"emoji": "👍"}), "x1").await;
    assert_eq!(bob_ws.answer("x1").await.unwrap()["seq"], 4);

    // Bob steps out after seq 4; what happens meanwhile comes back to him on resume.
    bob_ws.send(json!({"type": "leave", "room": "lobby"})).await;
    bob_ws.until("left").await;
    let before_leaving = bob_ws.events_through(4).await;
    assert_eq!(before_leaving.len(), 4);
    ann_ws
        .change("react", "lobby", 1, json!({"emoji": ":tada:"}), "x2")
        .await;
    assert_eq!(ann_ws.answer("x2").await.unwrap()["seq"], 5);
    ann_ws.change("delete", "lobby", 2, json!({}), "d1").await;
    assert_eq!(
        ann_ws.answer("d1").await.unwrap_err(),
        "forbidden",
        "not Ann's to delete"
    );
    let before = get(&cluster, 1, &bob, "/api/v1/rooms/lobby/messages?after_seq=4").await;
    assert_eq!(
        before["messages"].as_array().unwrap().len(),
        1,
        "a refusal stores nothing"
    );

    let joined = bob_ws.join("lobby", Some(4)).await;
    assert_eq!(
        kinds(joined["history"].as_array().unwrap()),
        [(5, "reacted")],
        "exactly what was missed"
    );
    bob_ws.change("unreact", "lobby", 1, json!({"emoji": "👍"}), "x3").await;
    assert_eq!(bob_ws.answer("x3").await.unwrap()["seq"], 6);
    bob_ws.change("delete", "lobby", 2, json!({}), "d2").await;
    assert_eq!(bob_ws.answer("d2").await.unwrap()["seq"], 7);

    // A retried change is the original: its ack again, nothing new stored or sent.
    bob_ws.change("delete", "lobby", 2, json!({}), "d2").await;
    let retried = bob_ws.answer("d2").await.unwrap();
    assert_eq!(
        (retried["seq"].as_u64(), retried["duplicate"].as_bool()),
        (Some(7), Some(true))
    );
    ann_ws.send_text("lobby", "last", "m2").await;
    assert_eq!(ann_ws.answer("m2").await.unwrap()["seq"], 8, "the retry took no seq");

    // Ann, live all along on the other gateway, saw every event once, in order.
    let seen = ann_ws.events_through(8).await;
    assert_eq!(
        kinds(&seen),
        [
            (1, "message"),
            (2, "message"),
            (3, "edited"),
            (4, "reacted"),
            (5, "reacted"),
            (6, "unreacted"),
            (7, "deleted"),
            (8, "message")
        ]
    );
    let mentions: Vec<&str> = seen[0]["mentions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(mentions, ["bob", "carl"], "members named with @, not others");
    assert_eq!(seen[1]["reply_to"], 1);
    assert_eq!(
        (seen[2]["target_seq"].as_u64(), seen[2]["text"].as_str()),
        (Some(1), Some("hello @bob"))
    );
    assert_eq!(
        seen[2]["mentions"]
            .as_array()
            .map(|m| m.iter().map(|m| m["name"].clone()).collect::<Vec<_>>()),
        Some(vec![json!("bob")]),
        "an edit's mentions replace the message's"
    );
    assert_eq!(
        (seen[4]["emoji"].as_str(), seen[4]["user"]["name"].as_str()),
        (Some("🎉"), Some("ann"))
    );
    assert_eq!(seen[6]["target_seq"], 2);
    let bob_seen = bob_ws.events_through(8).await;
    assert_eq!(kinds(&bob_seen), [(6, "unreacted"), (7, "deleted"), (8, "message")]);

    // History is the result: the edit, the standing reaction, the tombstone in its place.
    let page = get(&cluster, 1, &bob, "/api/v1/rooms/lobby/messages").await;
    let messages = page["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3, "{page}");
    assert_eq!(messages[0]["text"], "hello @bob");
    assert_eq!(
        messages[0]["mentions"].as_array().map(Vec::len),
        Some(1),
        "Carl is no longer named"
    );
    assert!(messages[0]["edited_at"].is_string());
    assert_eq!(
        messages[0]["reactions"],
        json!([{"emoji": "🎉", "count": 1, "users": [messages[0]["user"].clone()]}])
    );
    assert_eq!(
        (messages[1]["deleted"].as_bool(), messages[1]["text"].as_str()),
        (Some(true), Some(""))
    );
    assert!(
        messages[1].get("reply_to").is_none(),
        "a tombstone shows nothing of what it was"
    );
    let joined = Member::new(cluster.client_with(0, &carl).await)
        .join("lobby", None)
        .await;
    assert_eq!(joined["history"].as_array().unwrap(), messages, "a join shows the same");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_change_gets_its_error_and_stores_nothing() {
    let cluster = TestCluster::start(2, 1).await;
    let ann = cluster.session(0, "Ann").await;
    let bob = cluster.session(1, "Bob").await;
    let mut members = [
        Member::new(cluster.client_with(0, &ann).await),
        Member::new(cluster.client_with(1, &bob).await),
    ];
    let [ann_ws, bob_ws] = &mut members;
    ann_ws.join("lobby", None).await;
    bob_ws.join("lobby", None).await;
    ann_ws.join("other", None).await;
    ann_ws.send_text("lobby", "ann's", "a1").await;
    ann_ws.answer("a1").await.unwrap();
    ann_ws.send_text("lobby", "to be deleted", "a2").await;
    ann_ws.answer("a2").await.unwrap();
    ann_ws.change("delete", "lobby", 2, json!({}), "a3").await;
    ann_ws.answer("a3").await.unwrap();
    let emoji: Vec<String> = ["👍", "🎉", "❤️", "😂", "😮", "😢", "🔥", "👀", "✅", "🙏"]
        .iter()
        .chain(&["🚀", "💯", "🤔", "👏", "🙌", "😍", "😎", "🥳", "🤝", "⭐"])
        .map(|e| e.to_string())
        .collect();
    for (i, e) in emoji.iter().enumerate() {
        let id = format!("r{i}");
        ann_ws.change("react", "lobby", 1, json!({"emoji": e}), &id).await;
        ann_ws.answer(&id).await.unwrap();
    }
    let last_seq = 3 + emoji.len() as u64;

    let long = "x".repeat(4001);
    const ANN: usize = 0;
    const BOB: usize = 1;
    let cases = [
        (BOB, json!({"type": "edit", "seq": 1, "text": "mine now"}), "forbidden"),
        (BOB, json!({"type": "delete", "seq": 1}), "forbidden"),
        (
            ANN,
            json!({"type": "edit", "seq": 2, "text": "back"}),
            "message_deleted",
        ),
        (
            ANN,
            json!({"type": "react", "seq": 2, "emoji": "👍"}),
            "message_deleted",
        ),
        (ANN, json!({"type": "edit", "seq": 999, "text": "nothing"}), "not_found"),
        (
            ANN,
            json!({"type": "edit", "seq": 3, "text": "a change is no message"}),
            "not_found",
        ),
        (ANN, json!({"type": "edit", "seq": 1, "text": "   "}), "invalid_text"),
        (ANN, json!({"type": "edit", "seq": 1, "text": long}), "invalid_text"),
        (
            BOB,
            json!({"type": "react", "seq": 1, "emoji": "<b>x</b>"}),
            "invalid_emoji",
        ),
        (
            BOB,
            json!({"type": "react", "seq": 1, "emoji": "👍👍"}),
            "invalid_emoji",
        ),
        (
            BOB,
            json!({"type": "react", "seq": 1, "emoji": "🍕"}),
            "too_many_reactions",
        ),
        (
            ANN,
            json!({"type": "react", "seq": 1, "emoji": "👍"}),
            "already_reacted",
        ),
        (BOB, json!({"type": "unreact", "seq": 1, "emoji": "👍"}), "not_reacted"),
        (ANN, json!({"type": "send", "text": "re", "reply_to": 999}), "not_found"),
        (
            ANN,
            json!({"type": "send", "text": "re", "reply_to": 2}),
            "message_deleted",
        ),
        (ANN, json!({"type": "edit", "text": "no seq"}), "missing_field"),
    ];
    for (i, (who, mut frame, code)) in cases.into_iter().enumerate() {
        let id = format!("bad{i}");
        frame["room"] = json!("lobby");
        frame["client_msg_id"] = json!(id);
        members[who].send(frame.clone()).await;
        assert_eq!(members[who].answer(&id).await, Err(code.to_owned()), "{frame}");
    }
    // A reply names a message of its own room: `other` has no seq 1.
    let ann_ws = &mut members[ANN];
    ann_ws
        .send(json!({"type": "send", "room": "other", "text": "re", "client_msg_id": "o1", "reply_to": 1}))
        .await;
    assert_eq!(ann_ws.answer("o1").await, Err("not_found".to_owned()));

    // The HTTP publish keeps the same rules for a reply.
    for (reply_to, status, code) in [(999, 404, "not_found"), (2, 409, "message_deleted")] {
        let body = json!({"text": "re", "client_msg_id": format!("h{reply_to}"), "reply_to": reply_to});
        let (got, reply) = cluster
            .call(1, Method::POST, "/api/v1/rooms/lobby/messages", Some(&bob), Some(body))
            .await;
        assert_eq!((got, reply["error"]["code"].as_str()), (status, Some(code)), "{reply}");
    }

    let events = get(&cluster, 0, &ann, "/api/v1/rooms/lobby/messages?after_seq=0").await;
    assert_eq!(events["last_seq"], last_seq, "nothing stored for any refusal");
    assert_eq!(events["messages"].as_array().unwrap().len() as u64, last_seq);
    let other = get(&cluster, 0, &ann, "/api/v1/rooms/other/messages").await;
    assert_eq!(other["last_seq"], 0);
}
