//! Private rooms, direct messages, roles and moderation across the scaled topology (two
//! gateways, real Postgres and Redis): an outsider is refused a private room on every path,
//! word for word as a room that does not exist; owners and moderators act and plain members
//! cannot; each action is a room event every gateway delivers in its place and a replay
//! shows; removed sockets leave at once; a muted member's send stores nothing.

use super::uploads::{upload, wide_png};
use integration_tests::{TestCluster, WsClient};
use reqwest::Method;
use serde_json::{Value, json};

/// Creates a private room titled `title` as `token`; returns its server-given name.
async fn private_room(cluster: &TestCluster, token: &str, title: &str) -> String {
    let (status, body) = cluster
        .call(
            0,
            Method::POST,
            "/api/v1/rooms",
            Some(token),
            Some(json!({"name": title, "visibility": "private"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["room"]["visibility"].as_str(), body["room"]["title"].as_str()),
        (Some("private"), Some(title))
    );
    body["room"]["name"].as_str().unwrap().to_owned()
}

async fn act(cluster: &TestCluster, gateway: usize, token: &str, room: &str, body: Value) -> (u16, Value) {
    cluster
        .call(
            gateway,
            Method::POST,
            &format!("/api/v1/rooms/{room}/actions"),
            Some(token),
            Some(body),
        )
        .await
}

/// The next `room_event` with this action on a socket (other frames before it are passed
/// over).
async fn room_event(ws: &mut WsClient, action: &str) -> Value {
    loop {
        let (event, _) = ws.recv_until("room_event").await;
        if event["action"] == action {
            return event;
        }
    }
}

/// Sends `text` and returns the answer: the ack, or the error's code.
async fn send(ws: &mut WsClient, room: &str, text: &str, id: &str) -> Result<Value, String> {
    ws.send_text(room, text, id).await;
    loop {
        let frame = ws.recv().await;
        match frame["type"].as_str() {
            Some("ack") if frame["client_msg_id"] == id => return Ok(frame),
            Some("error") if frame["ref"] == id => return Err(frame["code"].as_str().unwrap().to_owned()),
            _ => {}
        }
    }
}

/// The error a join gets.
async fn join_error(ws: &mut WsClient, room: &str) -> Value {
    ws.send_json(json!({"type": "join", "room": room})).await;
    ws.recv_until("error").await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outsider_is_refused_a_private_room_on_every_path_as_if_it_did_not_exist() {
    let cluster = TestCluster::start(2, 1).await;
    let ann = cluster.sign_up(0, "ann").await;
    let bob = cluster.sign_up(1, "bob").await;
    let cat = cluster.sign_up(1, "cat").await;
    let room = private_room(&cluster, &ann, "Plans").await;
    assert!(room.starts_with("p."), "{room}");
    let (_, uploaded) = upload(&cluster, &ann, wide_png()).await;
    let image = uploaded["id"].as_i64().unwrap();
    // The image and its thumbnails: one rule for all three.
    let image_paths = [
        format!("/api/v1/uploads/{image}"),
        format!("/api/v1/uploads/{image}/thumbnails/360"),
        format!("/api/v1/uploads/{image}/thumbnails/720"),
    ];
    let mut ann_ws = cluster.client_with(0, &ann).await;
    ann_ws.join(&room, None).await;
    ann_ws
        .send_json(
            json!({"type": "send", "room": room, "text": "secret", "attachment_id": image, "client_msg_id": "i1"}),
        )
        .await;
    ann_ws.recv_until("ack").await;

    // Every path answers Cat exactly as it answers for a name nobody holds.
    let nowhere = "p.doesnotexist000";
    let paths = |name: &str| {
        vec![
            (Method::GET, format!("/api/v1/rooms/{name}"), None),
            (Method::GET, format!("/api/v1/rooms/{name}/messages"), None),
            (Method::GET, format!("/api/v1/rooms/{name}/messages?after_seq=0"), None),
            (Method::GET, format!("/api/v1/rooms/{name}/members"), None),
            (Method::GET, format!("/api/v1/search?q=secret&room={name}"), None),
            (
                Method::POST,
                format!("/api/v1/rooms/{name}/messages"),
                Some(json!({"text": "hi", "client_msg_id": "x"})),
            ),
            (
                Method::POST,
                format!("/api/v1/rooms/{name}/actions"),
                Some(json!({"action": "kick", "username": "ann"})),
            ),
            (
                Method::POST,
                format!("/api/v1/rooms/{name}/invite-links"),
                Some(json!({})),
            ),
            (Method::POST, "/api/v1/rooms".to_owned(), Some(json!({"name": name}))),
        ]
    };
    for ((method, path, body), (_, missing_path, _)) in paths(&room).into_iter().zip(paths(nowhere)) {
        let refused = cluster.call(1, method.clone(), &path, Some(&cat), body.clone()).await;
        let missing = cluster.call(1, method, &missing_path, Some(&cat), body).await;
        assert_eq!(refused.0, 404, "{path}: {}", refused.1);
        assert_eq!(refused, missing, "{path} tells the two apart");
    }
    let mut cat_ws = cluster.client_with(1, &cat).await;
    let refused = join_error(&mut cat_ws, &room).await;
    let missing = join_error(&mut cat_ws, nowhere).await;
    assert_eq!(
        (refused["code"].as_str(), refused["message"].clone()),
        (Some("not_found"), missing["message"].clone())
    );
    for path in &image_paths {
        let (status, _) = cluster.call(1, Method::GET, path, Some(&cat), None).await;
        assert_eq!(status, 404, "an image from a private room: {path}");
    }
    let (_, listed) = cluster
        .call(1, Method::GET, "/api/v1/rooms?limit=200", Some(&cat), None)
        .await;
    assert!(
        !listed.to_string().contains(&room),
        "the directory lists public rooms only: {listed}"
    );
    let (_, panel) = cluster.call(1, Method::GET, "/api/v1/me/panel", Some(&cat), None).await;
    assert_eq!(panel["rooms"], json!([]));

    // Invited by username, Bob sees it, joins it on the other gateway, and reads it all.
    let (status, invited) = act(&cluster, 0, &ann, &room, json!({"action": "invite", "username": "bob"})).await;
    assert_eq!(
        (status, invited["type"].as_str(), invited["action"].as_str()),
        (200, Some("room_event"), Some("invited"))
    );
    let (_, panel) = cluster.call(1, Method::GET, "/api/v1/me/panel", Some(&bob), None).await;
    assert_eq!(
        panel["invitations"],
        json!([{"room": room, "title": "Plans", "by": "ann", "at": panel["invitations"][0]["at"]}]),
        "an invitation waits on the panel"
    );
    let (status, details) = cluster
        .call(1, Method::GET, &format!("/api/v1/rooms/{room}"), Some(&bob), None)
        .await;
    assert_eq!(
        (status, details["invited"].as_bool(), details["title"].as_str()),
        (200, Some(true), Some("Plans"))
    );
    let mut bob_ws = cluster.client_with(1, &bob).await;
    let joined = bob_ws.join(&room, None).await;
    assert_eq!(joined["history"][0]["text"], "secret", "{joined}");
    for path in &image_paths {
        let (status, _) = cluster.call(1, Method::GET, path, Some(&bob), None).await;
        assert_eq!(status, 200, "a member fetches what was posted there: {path}");
    }
    let (status, members) = cluster
        .call(
            1,
            Method::GET,
            &format!("/api/v1/rooms/{room}/members"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!((status, members["count"].as_u64()), (200, Some(2)));
    let roles: Vec<&str> = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert!(roles.contains(&"owner") && roles.contains(&"member"), "{members}");

    // Deleting the message takes its image with it, for everyone.
    ann_ws
        .send_json(json!({"type": "delete", "room": room, "seq": 1, "client_msg_id": "d1"}))
        .await;
    ann_ws.recv_until("ack").await;
    for token in [&ann, &bob] {
        for path in &image_paths {
            let (status, _) = cluster.call(0, Method::GET, path, Some(token), None).await;
            assert_eq!(status, 404, "a deleted message's image is not served: {path}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_and_moderators_act_members_cannot_and_every_gateway_sees_each_event() {
    let cluster = TestCluster::start(2, 1).await;
    let [ann, bob, cat, dan] = [
        cluster.sign_up(0, "ann").await,
        cluster.sign_up(0, "bob").await,
        cluster.sign_up(1, "cat").await,
        cluster.sign_up(1, "dan").await,
    ];
    let room = "guild";
    // Ann creates it by entering it first: she owns it.
    let mut ann_ws = cluster.client_with(0, &ann).await;
    ann_ws.join(room, None).await;
    let mut cat_ws = cluster.client_with(1, &cat).await;
    let mut dan_ws = cluster.client_with(1, &dan).await;
    for ws in [&mut cat_ws, &mut dan_ws] {
        ws.join(room, None).await;
    }
    // Dan's second socket has the room closed: it is notified while he is a member.
    let mut dan_watch = cluster.client_with(1, &dan).await;
    dan_watch.join("elsewhere", None).await;
    cluster
        .call(
            0,
            Method::POST,
            "/api/v1/rooms",
            Some(&bob),
            Some(json!({"name": room})),
        )
        .await;
    let (_, details) = cluster
        .call(0, Method::GET, "/api/v1/rooms/guild", Some(&ann), None)
        .await;
    assert_eq!(
        (details["your_role"].as_str(), details["owner"]["name"].as_str()),
        (Some("owner"), Some("ann"))
    );

    // A plain member may do none of it; nothing is stored.
    for body in [
        json!({"action": "kick", "username": "cat"}),
        json!({"action": "mute", "username": "cat", "minutes": 5}),
        json!({"action": "ban", "username": "cat"}),
        json!({"action": "invite", "username": "cat"}),
        json!({"action": "set_role", "username": "cat", "role": "moderator"}),
        json!({"action": "update", "topic": "mine now"}),
    ] {
        let (status, reply) = act(&cluster, 1, &dan, room, body.clone()).await;
        assert_eq!(
            (status, reply["error"]["code"].as_str()),
            (403, Some("forbidden")),
            "{body}"
        );
    }
    // The owner names a moderator; the moderator cannot name another.
    let (status, promoted) = act(
        &cluster,
        0,
        &ann,
        room,
        json!({"action": "set_role", "username": "bob", "role": "moderator"}),
    )
    .await;
    assert_eq!(
        (status, promoted["role"].as_str()),
        (200, Some("moderator")),
        "{promoted}"
    );
    let (status, _) = act(
        &cluster,
        0,
        &bob,
        room,
        json!({"action": "set_role", "username": "cat", "role": "moderator"}),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = act(&cluster, 0, &bob, room, json!({"action": "update", "topic": "x"})).await;
    assert_eq!(status, 403, "the topic is the owner's");

    // A moderator mutes Cat: both gateways show it in its place; Cat's sends store nothing.
    let (status, muted) = act(
        &cluster,
        0,
        &bob,
        room,
        json!({"action": "mute", "username": "cat", "minutes": 10}),
    )
    .await;
    assert_eq!(
        (status, muted["action"].as_str(), muted["target"]["name"].as_str()),
        (200, Some("muted"), Some("cat"))
    );
    for ws in [&mut ann_ws, &mut cat_ws, &mut dan_ws] {
        let seen = room_event(ws, "muted").await;
        assert_eq!(
            (seen["seq"].clone(), seen["action"].clone()),
            (muted["seq"].clone(), json!("muted"))
        );
    }
    assert_eq!(send(&mut cat_ws, room, "can I?", "c1").await, Err("muted".into()));
    let (status, reply) = cluster
        .call(
            1,
            Method::POST,
            "/api/v1/rooms/guild/messages",
            Some(&cat),
            Some(json!({"text": "http", "client_msg_id": "c2"})),
        )
        .await;
    assert_eq!((status, reply["error"]["code"].as_str()), (403, Some("muted")));
    let (status, _) = act(&cluster, 0, &bob, room, json!({"action": "unmute", "username": "cat"})).await;
    assert_eq!(status, 200);
    room_event(&mut cat_ws, "unmuted").await;
    let sent = send(&mut cat_ws, room, "free again", "c3").await.unwrap();
    let (_, history) = cluster
        .call(0, Method::GET, "/api/v1/rooms/guild/messages", Some(&ann), None)
        .await;
    let texts: Vec<&str> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["free again"], "nothing of the muted sends was stored");

    // A moderator deletes anyone's message.
    let mut bob_ws = cluster.client_with(0, &bob).await;
    bob_ws.join(room, Some(sent["seq"].as_u64().unwrap())).await;
    bob_ws
        .send_json(json!({"type": "delete", "room": room, "seq": sent["seq"], "client_msg_id": "bd"}))
        .await;
    let (answer, _) = bob_ws.recv_until("ack").await;
    assert_eq!(answer["client_msg_id"], "bd");

    // Kicked, Dan's socket on the other gateway leaves at once; he may come back.
    let (status, kicked) = act(&cluster, 0, &bob, room, json!({"action": "kick", "username": "dan"})).await;
    assert_eq!(status, 200, "{kicked}");
    let (removed, _) = dan_ws.recv_until("removed").await;
    assert_eq!(removed, json!({"type": "removed", "room": room, "reason": "kicked"}));
    assert_eq!(
        send(&mut dan_ws, room, "still here?", "d1").await,
        Err("not_joined".into())
    );
    // No longer a member, he is not notified: of what comes between his removal and his
    // return (the same room's stream orders the two), he hears nothing.
    let unheard = send(&mut ann_ws, room, "about dan", "a1").await.unwrap();
    cluster
        .call(
            1,
            Method::POST,
            "/api/v1/rooms",
            Some(&dan),
            Some(json!({"name": room})),
        )
        .await;
    let heard = send(&mut ann_ws, room, "welcome back", "a2").await.unwrap();
    loop {
        let (notify, _) = dan_watch.recv_until("notify").await;
        assert_ne!(notify["seq"], unheard["seq"], "notified while not a member");
        if notify["seq"] == heard["seq"] {
            break;
        }
    }
    dan_ws.join(room, None).await;
    // Banned, he may neither come back nor read.
    let (status, _) = act(&cluster, 0, &bob, room, json!({"action": "ban", "username": "dan"})).await;
    assert_eq!(status, 200);
    let (removed, _) = dan_ws.recv_until("removed").await;
    assert_eq!(removed["reason"], "banned");
    assert_eq!(join_error(&mut dan_ws, room).await["code"], "banned");
    let (status, reply) = cluster
        .call(1, Method::GET, "/api/v1/rooms/guild/messages", Some(&dan), None)
        .await;
    assert_eq!((status, reply["error"]["code"].as_str()), (403, Some("banned")));
    let (status, _) = act(&cluster, 0, &bob, room, json!({"action": "ban", "username": "dan"})).await;
    assert_eq!(status, 409, "banned already: nothing to change");
    let (status, _) = act(&cluster, 0, &bob, room, json!({"action": "unban", "username": "dan"})).await;
    assert_eq!(status, 200);
    dan_ws.join(room, None).await;

    // The owner makes the room private: an outsider no longer sees it; then public again.
    let guest = cluster.session(1, "passer-by").await;
    let private = json!({"action": "set_visibility", "visibility": "private"});
    assert_eq!(act(&cluster, 0, &ann, room, private).await.0, 200);
    let (status, _) = cluster
        .call(1, Method::GET, "/api/v1/rooms/guild/messages", Some(&guest), None)
        .await;
    assert_eq!(status, 404, "private now");
    let (status, _) = cluster
        .call(1, Method::GET, "/api/v1/rooms/guild/messages", Some(&dan), None)
        .await;
    assert_eq!(status, 200, "members still read it");
    let public = json!({"action": "set_visibility", "visibility": "public"});
    assert_eq!(act(&cluster, 0, &ann, room, public).await.0, 200);

    // Owner-only: the topic, the visibility, the room itself.
    let (status, updated) = act(
        &cluster,
        0,
        &ann,
        room,
        json!({"action": "update", "topic": "Guild business", "description": "Rules"}),
    )
    .await;
    assert_eq!((status, updated["topic"].as_str()), (200, Some("Guild business")));
    let (status, handed) = act(
        &cluster,
        0,
        &ann,
        room,
        json!({"action": "transfer", "username": "bob"}),
    )
    .await;
    assert_eq!((status, handed["action"].as_str()), (200, Some("owner_changed")));
    let (_, details) = cluster
        .call(0, Method::GET, "/api/v1/rooms/guild", Some(&ann), None)
        .await;
    assert_eq!(
        (details["your_role"].as_str(), details["owner"]["name"].as_str()),
        (Some("moderator"), Some("bob"))
    );

    // A replay from the start holds every room event in its place, as the live stream did.
    let mut late = cluster.client_with(1, &cat).await;
    let replay = late.join(room, Some(0)).await;
    let actions: Vec<&str> = replay["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "room_event")
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "role_changed",
            "muted",
            "unmuted",
            "kicked",
            "banned",
            "unbanned",
            "visibility_changed",
            "visibility_changed",
            "updated",
            "owner_changed"
        ]
    );
    let seqs: Vec<u64> = replay["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "one gapless sequence"
    );

    // Each is in the audit log.
    let audit = cluster.database().await.directory.audit_log(None, 50).await.unwrap();
    let logged: Vec<&str> = audit.iter().rev().map(|a| a.action.as_str()).collect();
    assert_eq!(
        logged,
        [
            "room_role_changed",
            "room_muted",
            "room_unmuted",
            "room_kicked",
            "room_banned",
            "room_unbanned",
            "room_visibility_changed",
            "room_visibility_changed",
            "room_updated",
            "room_owner_changed"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invite_links_direct_messages_and_the_directory() {
    let cluster = TestCluster::start(1, 1).await;
    let [ann, bob, cat] = [
        cluster.sign_up(0, "ann").await,
        cluster.sign_up(0, "bob").await,
        cluster.sign_up(0, "cat").await,
    ];
    let room = private_room(&cluster, &ann, "Book club").await;
    let links = format!("/api/v1/rooms/{room}/invite-links");
    let (status, link) = cluster
        .call(0, Method::POST, &links, Some(&ann), Some(json!({"max_uses": 1})))
        .await;
    assert_eq!(status, 201, "{link}");
    let token = link["token"].as_str().unwrap();
    assert_eq!(link["url"], format!("/invite.html#{token}"));
    let (status, preview) = cluster
        .call(0, Method::GET, &format!("/api/v1/invites/{token}"), Some(&bob), None)
        .await;
    assert_eq!(
        (status, preview["title"].as_str(), preview["member_count"].as_u64()),
        (200, Some("Book club"), Some(1))
    );
    let (status, entered) = cluster
        .call(0, Method::POST, &format!("/api/v1/invites/{token}"), Some(&bob), None)
        .await;
    assert_eq!(
        (status, entered["room"]["name"].as_str(), entered["joined"].as_bool()),
        (200, Some(room.as_str()), Some(true))
    );
    let (status, used) = cluster
        .call(0, Method::POST, &format!("/api/v1/invites/{token}"), Some(&cat), None)
        .await;
    assert_eq!(
        (status, used["error"]["code"].as_str()),
        (404, Some("invite_invalid")),
        "used up"
    );
    let (status, _) = cluster
        .call(0, Method::GET, "/api/v1/invites/not-a-token", Some(&cat), None)
        .await;
    assert_eq!(status, 404);
    // A plain member makes no links; bad bounds are refused.
    let (status, _) = cluster.call(0, Method::POST, &links, Some(&bob), Some(json!({}))).await;
    assert_eq!(status, 403);
    let (status, _) = cluster
        .call(
            0,
            Method::POST,
            &links,
            Some(&ann),
            Some(json!({"expires_in_minutes": 0})),
        )
        .await;
    assert_eq!(status, 400);
    // A banned person gets nothing from a link.
    act(&cluster, 0, &ann, &room, json!({"action": "ban", "username": "cat"})).await;
    let (_, open) = cluster.call(0, Method::POST, &links, Some(&ann), Some(json!({}))).await;
    let open = open["token"].as_str().unwrap();
    let (status, reply) = cluster
        .call(0, Method::POST, &format!("/api/v1/invites/{open}"), Some(&cat), None)
        .await;
    assert_eq!((status, reply["error"]["code"].as_str()), (403, Some("banned")));

    // A direct message: one room per pair, listed under the other person's name.
    let (status, dm) = cluster
        .call(
            0,
            Method::POST,
            "/api/v1/dms",
            Some(&bob),
            Some(json!({"username": "Ann"})),
        )
        .await;
    assert_eq!((status, dm["dm_with"]["name"].as_str()), (200, Some("ann")), "{dm}");
    let dm_room = dm["room"]["name"].as_str().unwrap();
    assert!(dm_room.starts_with("dm."));
    let (_, again) = cluster
        .call(
            0,
            Method::POST,
            "/api/v1/dms",
            Some(&ann),
            Some(json!({"username": "bob"})),
        )
        .await;
    assert_eq!(again["room"]["name"], dm_room);
    let (_, panel) = cluster.call(0, Method::GET, "/api/v1/me/panel", Some(&ann), None).await;
    let listed = panel["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == dm_room)
        .unwrap();
    assert_eq!(listed["dm_with"]["name"], "bob");
    let (status, _) = cluster
        .call(
            0,
            Method::GET,
            &format!("/api/v1/rooms/{dm_room}/messages"),
            Some(&cat),
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = act(
        &cluster,
        0,
        &ann,
        dm_room,
        json!({"action": "invite", "username": "cat"}),
    )
    .await;
    assert_eq!(status, 403, "nobody moderates a direct message");
    let (status, _) = cluster
        .call(
            0,
            Method::POST,
            "/api/v1/dms",
            Some(&ann),
            Some(json!({"username": "ann"})),
        )
        .await;
    assert_eq!(status, 400);
    let guest = cluster.session(0, "visitor").await;
    let (status, _) = cluster
        .call(
            0,
            Method::POST,
            "/api/v1/dms",
            Some(&guest),
            Some(json!({"username": "ann"})),
        )
        .await;
    assert_eq!(status, 403, "guests do not send direct messages");

    // The directory: public rooms, filtered by name, with member counts.
    for name in ["tea-room", "coffee-room", "tea-garden"] {
        cluster
            .call(
                0,
                Method::POST,
                "/api/v1/rooms",
                Some(&ann),
                Some(json!({"name": name})),
            )
            .await;
    }
    let (status, found) = cluster
        .call(0, Method::GET, "/api/v1/rooms?q=TEA&limit=1", Some(&cat), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            found["rooms"][0]["name"].as_str(),
            found["rooms"][0]["member_count"].as_u64()
        ),
        (Some("tea-garden"), Some(1))
    );
    let next = found["next_after"].as_str().unwrap();
    let (_, rest) = cluster
        .call(
            0,
            Method::GET,
            &format!("/api/v1/rooms?q=tea&after={next}"),
            Some(&cat),
            None,
        )
        .await;
    let names: Vec<&str> = rest["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["tea-room"]);
}
