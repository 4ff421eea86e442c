//! Membership, the panel, notifications across gateways, and the admin's powers.

use gateway::admin_cli::AdminCommand;
use integration_tests::TestCluster;
use reqwest::Method;
use serde_json::{Value, json};

fn room_names(panel: &Value) -> Vec<(String, u64)> {
    panel["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap().to_owned(), r["unread"].as_u64().unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_and_the_panel_follow_enter_send_and_leave() {
    let cluster = TestCluster::start(1, 1).await;
    let ann = cluster.sign_up(0, "ann").await;
    let bob = cluster.sign_up(0, "bob").await;
    for (token, room) in [(&ann, "alpha"), (&ann, "beta"), (&bob, "alpha")] {
        let (status, body) = cluster
            .call(
                0,
                Method::POST,
                "/api/v1/rooms",
                Some(token),
                Some(json!({"name": room})),
            )
            .await;
        assert_eq!((status, body["joined"].as_bool()), (200, Some(true)), "{body}");
    }
    let (_, again) = cluster
        .call(
            0,
            Method::POST,
            "/api/v1/rooms",
            Some(&ann),
            Some(json!({"name": "ALPHA"})),
        )
        .await;
    assert_eq!(again["joined"], false, "entering twice is one membership");
    for (token, id, text) in [(&ann, "a1", "one"), (&bob, "b1", "two"), (&bob, "b2", "three")] {
        let body = json!({"text": text, "client_msg_id": id});
        let (status, _) = cluster
            .call(0, Method::POST, "/api/v1/rooms/alpha/messages", Some(token), Some(body))
            .await;
        assert_eq!(status, 201);
    }

    let (status, panel) = cluster.call(0, Method::GET, "/api/v1/me/panel", Some(&ann), None).await;
    assert_eq!(status, 200, "{panel}");
    assert_eq!(
        (panel["message_count"].as_u64(), panel["room_count"].as_u64()),
        (Some(1), Some(2))
    );
    // Signed up just now: there is no log-in before this session's.
    assert!(
        panel["last_login"].is_null() && panel["joined_at"].is_string(),
        "{panel}"
    );
    // Nothing read yet over HTTP, but Ann's own message counts as read up to it: Bob's two
    // after it are unread.
    assert_eq!(room_names(&panel), [("alpha".into(), 2), ("beta".into(), 0)]);
    assert!(panel["rooms"][0]["last_activity"].is_string());
    assert!(panel["rooms"][1]["last_activity"].is_null(), "beta is empty");

    let (status, _) = cluster
        .call(
            0,
            Method::PUT,
            "/api/v1/rooms/alpha/read",
            Some(&ann),
            Some(json!({"seq": 2})),
        )
        .await;
    assert_eq!(status, 204);
    let (_, members) = cluster
        .call(0, Method::GET, "/api/v1/rooms/alpha/members", Some(&ann), None)
        .await;
    assert_eq!(members["count"], 2);
    let names: Vec<&str> = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&"ann") && names.contains(&"bob"));

    let (status, _) = cluster
        .call(0, Method::DELETE, "/api/v1/rooms/beta/membership", Some(&ann), None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = cluster
        .call(0, Method::DELETE, "/api/v1/rooms/beta/membership", Some(&ann), None)
        .await;
    assert_eq!(status, 404, "not a member any more");
    let (_, panel) = cluster.call(0, Method::GET, "/api/v1/me/panel", Some(&ann), None).await;
    assert_eq!(room_names(&panel), [("alpha".into(), 1)]);
    assert_eq!(panel["room_count"], 1);

    // Joining on a socket also makes a member, and what `joined` showed counts as read.
    let mut ws = cluster.client_with(0, &ann).await;
    ws.join("beta", None).await;
    ws.join("alpha", None).await;
    let (_, panel) = cluster.call(0, Method::GET, "/api/v1/me/panel", Some(&ann), None).await;
    assert_eq!(room_names(&panel), [("alpha".into(), 0), ("beta".into(), 0)]);
    let (status, _) = cluster
        .call(0, Method::GET, "/api/v1/me/panel?limit=0", Some(&ann), None)
        .await;
    assert_eq!(status, 400, "limits are enforced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_is_notified_across_gateways_until_they_leave() {
    let cluster = TestCluster::start(2, 1).await;
    let ann = cluster.sign_up(0, "ann").await;
    let bob = cluster.sign_up(1, "bob").await;
    // Ann belongs to `b` but has only another room open, on gateway 0.
    let (status, _) = cluster
        .call(0, Method::POST, "/api/v1/rooms", Some(&ann), Some(json!({"name": "b"})))
        .await;
    assert_eq!(status, 200);
    // The room ann keeps open shares `b`'s bus partition, so that its messages and `b`'s
    // events reach her gateway in publish order (TestCluster uses 4 partitions).
    let partition = |name: &str| chat_bus::partition_of(&chat_domain::RoomName::parse(name).unwrap(), 4);
    let open = (0..100)
        .map(|i| format!("a{i}"))
        .find(|n| partition(n) == partition("b"))
        .unwrap();
    let mut ann_ws = cluster.client_with(0, &ann).await;
    ann_ws.join(&open, None).await;
    // Bob, on gateway 1, writes in `b`.
    let mut bob_ws = cluster.client_with(1, &bob).await;
    bob_ws.join("b", None).await;
    bob_ws.send_text("b", "are you there?", "q1").await;
    bob_ws.recv_until("ack").await;
    let (notify, skipped) = ann_ws.recv_until("notify").await;
    assert!(skipped.is_empty(), "{skipped:?}");
    assert_eq!(notify["room"], "b");
    assert_eq!(notify["seq"], 1);
    assert_eq!(notify["user"]["name"], "bob");
    assert_eq!(notify["preview"], "are you there?");

    // Ann leaves `b` (over HTTP, on the other gateway): no more notifications for it. A
    // later message in her open room, on the same partition, proves the silence is not slowness.
    let (status, _) = cluster
        .call(1, Method::DELETE, "/api/v1/rooms/b/membership", Some(&ann), None)
        .await;
    assert_eq!(status, 204);
    bob_ws.send_text("b", "hello?", "q2").await;
    bob_ws.recv_until("ack").await;
    bob_ws.join(&open, None).await;
    bob_ws.send_text(&open, "over here", "q3").await;
    let (message, skipped) = ann_ws.recv_until("message").await;
    assert_eq!(message["text"], "over here");
    assert!(
        skipped.iter().all(|f| f["type"] != "notify"),
        "no notify after leaving: {skipped:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_deletes_a_message_everywhere_and_the_audit_log_records_it() {
    let cluster = TestCluster::start(2, 1).await;
    let root = cluster.sign_up(0, "root").await;
    let ann = cluster.sign_up(0, "ann").await;
    let bob = cluster.sign_up(1, "bob").await;
    let database = cluster.database().await;
    let granted = AdminCommand::GrantAdmin {
        username: "ROOT".into(),
    }
    .run(database.directory.as_ref())
    .await
    .unwrap();
    assert_eq!(granted, "ROOT is now admin");

    let mut ann_ws = cluster.client_with(0, &ann).await;
    let mut bob_ws = cluster.client_with(1, &bob).await;
    ann_ws.join("lobby", None).await;
    bob_ws.join("lobby", None).await;
    ann_ws.send_text("lobby", "keep me", "k").await;
    ann_ws.send_text("lobby", "spam spam", "s").await;
    let (spam, _) = bob_ws.recv_until("message").await;
    let (spam, _) = if spam["text"] == "keep me" {
        bob_ws.recv_until("message").await
    } else {
        (spam, vec![])
    };
    let spam_id = spam["id"].as_i64().unwrap();

    // Not for ordinary users.
    let path = format!("/api/v1/admin/messages/{spam_id}");
    let (status, reply) = cluster.call(0, Method::DELETE, &path, Some(&ann), None).await;
    assert_eq!((status, reply["error"]["code"].as_str()), (403, Some("forbidden")));
    let (status, _) = cluster
        .call(0, Method::GET, "/api/v1/admin/audit", Some(&bob), None)
        .await;
    assert_eq!(status, 403);

    let (status, found) = cluster
        .call(0, Method::GET, "/api/v1/admin/messages?q=SPAM", Some(&root), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(found["messages"][0]["id"], spam_id);
    let (status, _) = cluster.call(0, Method::DELETE, &path, Some(&root), None).await;
    assert_eq!(status, 204);
    // The deletion is an event of the room's timeline: its own seq, the message's seq.
    for ws in [&mut ann_ws, &mut bob_ws] {
        let (deleted, _) = ws.recv_until("deleted").await;
        assert_eq!(
            (
                deleted["room"].as_str(),
                deleted["seq"].as_u64(),
                deleted["target_seq"].as_u64()
            ),
            (Some("lobby"), Some(3), spam["seq"].as_u64())
        );
        assert_eq!(deleted["user"]["name"], "root");
    }
    let (status, again) = cluster.call(0, Method::DELETE, &path, Some(&root), None).await;
    assert_eq!(
        (status, again["error"]["code"].as_str()),
        (204, None),
        "a retried deletion is the same event"
    );
    let (_, history) = cluster
        .call(1, Method::GET, "/api/v1/rooms/lobby/messages", Some(&bob), None)
        .await;
    let shown: Vec<(&str, bool)> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["text"].as_str().unwrap(), m["deleted"] == true))
        .collect();
    assert_eq!(
        shown,
        [("keep me", false), ("", true)],
        "a tombstone keeps its place, without its text"
    );
    // A fresh join shows the tombstone too, and the room's sequence goes on unbroken.
    let mut late = cluster.client_with(1, &bob).await;
    let joined = late.join("lobby", None).await;
    assert_eq!(joined["history"].as_array().unwrap().len(), 2);
    assert_eq!(joined["history"][1]["deleted"], true);
    ann_ws.send_text("lobby", "after", "a").await;
    let (after, _) = late.recv_until("message").await;
    assert_eq!(after["seq"], 4);

    let (_, audit) = cluster
        .call(0, Method::GET, "/api/v1/admin/audit", Some(&root), None)
        .await;
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries[0]["action"], "delete_message");
    assert_eq!(entries[0]["actor_name"], "root");
    assert_eq!(entries[0]["target"], spam_id.to_string());
    assert_eq!(entries[1]["action"], "grant_admin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_an_account_ends_its_sessions_and_closes_its_sockets() {
    let cluster = TestCluster::start_with(2, 1, |s| s.auth.admins = vec!["Root".into()]).await;
    let root = cluster.sign_up(0, "root").await;
    let (_, me) = cluster.call(0, Method::GET, "/api/v1/me", Some(&root), None).await;
    assert_eq!(me["role"], "admin", "the role in effect, from configuration");
    let ann = cluster.sign_up(1, "ann").await;
    let mut ann_ws = cluster.client_with(1, &ann).await;
    ann_ws.join("lobby", None).await;
    let (status, _) = cluster
        .call(
            0,
            Method::PUT,
            "/api/v1/admin/users/ann/disabled",
            Some(&root),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(status, 204, "an admin by configuration");
    assert_eq!(ann_ws.expect_close().await, Some(4001));
    let (status, _) = cluster.call(1, Method::GET, "/api/v1/session", Some(&ann), None).await;
    assert_eq!(status, 401);
    let login = json!({"username": "ann", "password": integration_tests::cluster::PASSWORD});
    let (status, reply) = cluster
        .call(1, Method::POST, "/api/v1/sessions", None, Some(login))
        .await;
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (403, Some("account_disabled"))
    );
    let (_, audit) = cluster
        .call(0, Method::GET, "/api/v1/admin/audit", Some(&root), None)
        .await;
    assert_eq!(audit["entries"][0]["action"], "disable_user");

    // Deleting a room tells its members and empties it.
    let (status, _) = cluster
        .call(0, Method::DELETE, "/api/v1/admin/rooms/lobby", Some(&root), None)
        .await;
    assert_eq!(status, 204);
    let (_, rooms) = cluster
        .call(0, Method::GET, "/api/v1/admin/rooms?q=lob", Some(&root), None)
        .await;
    assert!(rooms["rooms"].as_array().unwrap().is_empty(), "{rooms}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_mutes_a_room_and_every_device_of_theirs_reads_it_from_the_panel() {
    let cluster = TestCluster::start(2, 1).await;
    let ann = cluster.sign_up(0, "ann").await;
    let bob = cluster.sign_up(1, "bob").await;
    for token in [&ann, &bob] {
        let (status, _) = cluster
            .call(
                0,
                Method::POST,
                "/api/v1/rooms",
                Some(token),
                Some(json!({"name": "loud"})),
            )
            .await;
        assert_eq!(status, 200);
    }
    let muted = |panel: &Value| {
        panel["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["name"].as_str().unwrap().to_owned(), r["muted"].as_bool().unwrap()))
            .collect::<Vec<_>>()
    };
    let (_, panel) = cluster.call(1, Method::GET, "/api/v1/me/panel", Some(&ann), None).await;
    assert_eq!(muted(&panel), [("loud".to_owned(), false)]);

    let (status, body) = cluster
        .call(
            0,
            Method::PATCH,
            "/api/v1/rooms/LOUD/membership",
            Some(&ann),
            Some(json!({"muted": true})),
        )
        .await;
    assert_eq!((status, body), (200, json!({"room": "loud", "muted": true})));
    // Her other device (on the other gateway) reads it; Bob's membership is his own.
    let (_, panel) = cluster.call(1, Method::GET, "/api/v1/me/panel", Some(&ann), None).await;
    assert_eq!(muted(&panel), [("loud".to_owned(), true)]);
    let (_, panel) = cluster.call(1, Method::GET, "/api/v1/me/panel", Some(&bob), None).await;
    assert_eq!(muted(&panel), [("loud".to_owned(), false)]);

    // Refused clearly: not a member, no such room, a bad name, a bad body.
    let cat = cluster.sign_up(0, "cat").await;
    for (token, path, body, expected) in [
        (
            &cat,
            "/api/v1/rooms/loud/membership",
            json!({"muted": true}),
            (404, "not_found"),
        ),
        (
            &ann,
            "/api/v1/rooms/nowhere/membership",
            json!({"muted": true}),
            (404, "not_found"),
        ),
        (
            &ann,
            "/api/v1/rooms/no%20spaces/membership",
            json!({"muted": true}),
            (400, "invalid_room"),
        ),
        (
            &ann,
            "/api/v1/rooms/loud/membership",
            json!({"muted": "yes"}),
            (400, "invalid_json"),
        ),
        (
            &ann,
            "/api/v1/rooms/loud/membership",
            json!({"muted": false, "role": "owner"}),
            (400, "invalid_json"),
        ),
        (&ann, "/api/v1/rooms/loud/membership", json!({}), (400, "invalid_json")),
    ] {
        let (status, reply) = cluster
            .call(0, Method::PATCH, path, Some(token), Some(body.clone()))
            .await;
        assert_eq!(
            (status, reply["error"]["code"].as_str()),
            (expected.0, Some(expected.1)),
            "{path} {body}: {reply}"
        );
    }
    let (_, panel) = cluster.call(0, Method::GET, "/api/v1/me/panel", Some(&ann), None).await;
    assert_eq!(
        muted(&panel),
        [("loud".to_owned(), true)],
        "no refused request changed it"
    );
}
