//! A corpus of hostile inputs, over the websocket and the HTTP API, against real Postgres:
//! invalid UTF-8, control and bidirectional characters, NUL bytes, huge and deeply nested
//! values, SQL metacharacters and path traversal. Each gets its documented error (an
//! `error` frame with a code, a close code, or a 4xx with a JSON `error` body), or, when it
//! is legitimate text, is stored and returned exactly. Nothing gets a 5xx, and one hostile
//! client never takes the gateway down for the others. `bad_input.rs` covers the ordinary
//! malformed frames; this file covers what an attacker would try. `payloads` holds the
//! invalid UTF-8, NUL, SQL and path traversal cases.

use super::helpers::collect;
use gateway::admin_cli::AdminCommand;
use integration_tests::TestCluster;
use reqwest::Method;
use serde_json::{Value, json};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

mod accounts;
mod payloads;
mod rooms;

async fn expect_error(client: &mut integration_tests::WsClient, code: &str) -> Value {
    let frame = client.recv().await;
    assert_eq!(frame["type"], "error", "expected an error frame, got {frame}");
    assert_eq!(frame["code"], code, "{frame}");
    assert!(!frame["message"].as_str().unwrap_or_default().is_empty());
    frame
}

/// An HTTP refusal: this status, a JSON body `{"error": {"code", "message"}}` with this code.
#[track_caller]
pub(crate) fn assert_api_error((status, body): &(u16, Value), expected_status: u16, code: &str) {
    assert_eq!(*status, expected_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        !body["error"]["message"].as_str().unwrap_or_default().is_empty(),
        "{body}"
    );
}

/// One HTTP/1.1 request written byte for byte, so that nothing (no URL parser) normalises
/// `..` or re-encodes the path on the way. Returns the status and the body.
async fn raw_request(addr: SocketAddr, method: &str, target: &str, token: Option<&str>) -> (u16, Vec<u8>) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let auth = token.map_or_else(String::new, |t| format!("authorization: Bearer {t}\r\n"));
    let request = format!("{method} {target} HTTP/1.1\r\nhost: {addr}\r\n{auth}connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    tokio::time::timeout(integration_tests::ws::FRAME_TIMEOUT, stream.read_to_end(&mut response))
        .await
        .expect("timed out waiting for the response")
        .expect("read");
    let head_end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = String::from_utf8_lossy(&response[..head_end]).to_string();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head}"));
    (status, response[head_end + 4..].to_vec())
}

/// A request with a body of raw bytes and the JSON content type, as a hostile client sends it.
async fn post_bytes(cluster: &TestCluster, path: &str, token: Option<&str>, body: Vec<u8>) -> (u16, Value) {
    // A client of its own: a body refused unread ends its connection, which must not go
    // back to the shared pool for the next request to trip over.
    let mut request = reqwest::Client::new()
        .post(format!("http://{}{path}", cluster.gateway(0)))
        .header("content-type", "application/json")
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, body)
}

/// Signs up `username` and makes it an administrator, as an operator would.
async fn admin(cluster: &TestCluster, username: &str) -> String {
    let token = cluster.sign_up(0, username).await;
    let database = cluster.database().await;
    AdminCommand::GrantAdmin {
        username: username.into(),
    }
    .run(database.directory.as_ref())
    .await
    .expect("grant admin");
    token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_and_bidi_characters_are_kept_in_text_and_refused_in_names() {
    let cluster = TestCluster::start(1, 1).await;
    let token = cluster.sign_up(0, "ann").await;
    let mut ann = cluster.client_with(0, &token).await;
    ann.join("unicode", None).await;

    // Bidi overrides and isolates, zero-width characters, a BOM, line and paragraph
    // separators, tab, CR and LF: legitimate in message text, stored exactly.
    let texts = [
        "abc \u{202E}gnp.exe\u{202C} done",
        "\u{2066}isolate\u{2069} \u{200B}zero\u{200D}width \u{FEFF}bom",
        "line\u{2028}sep\u{2029}para\ttab\r\ncrlf",
        "\u{200E}\u{200F}\u{061C}marks 😀",
    ];
    for (i, text) in texts.iter().enumerate() {
        ann.send_text("unicode", text, &format!("t-{i}")).await;
        let (messages, _) = collect(&mut ann, 1, 1).await;
        assert_eq!(messages[0]["text"], *text);
    }
    let (status, page) = cluster
        .call(0, Method::GET, "/api/v1/rooms/unicode/messages", Some(&token), None)
        .await;
    assert_eq!(status, 200, "{page}");
    let stored: Vec<&str> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(stored, texts);
    let rows: Vec<String> = cluster.db.message_rows().await.into_iter().map(|r| r.3).collect();
    assert_eq!(rows, texts, "stored byte for byte");

    // C0 and C1 controls and DEL are not text.
    for (i, bad) in [
        "esc \u{1b}[31mred",
        "del\u{7f}",
        "c1 \u{85} nel",
        "c1 \u{9b}csi",
        "bs\u{8}",
    ]
    .iter()
    .enumerate()
    {
        ann.send_text("unicode", bad, &format!("bad-{i}")).await;
        assert_eq!(expect_error(&mut ann, "invalid_text").await["ref"], format!("bad-{i}"));
    }
    // Room names hold only `a-z 0-9 _ . -`: over the socket and over HTTP alike.
    for room in ["evil\u{202E}moor", "tab\there", "\u{200B}lobby", "lobby\u{0}", "é"] {
        ann.send_json(json!({"type": "join", "room": room})).await;
        assert_eq!(expect_error(&mut ann, "invalid_room").await["ref"], room);
        let reply = cluster
            .call(
                0,
                Method::POST,
                "/api/v1/rooms",
                Some(&token),
                Some(json!({"name": room})),
            )
            .await;
        assert_api_error(&reply, 400, "invalid_room");
    }

    // Display names (guests) refuse controls, and a name chosen now also refuses bidi and
    // other formatting characters, which could make it display as someone else's (§7).
    for bad in ["\u{1b}[2Jclear", "new\nline", "nul\u{0}", "\u{7f}"] {
        let reply = cluster
            .call(0, Method::POST, "/api/v1/sessions", None, Some(json!({"name": bad})))
            .await;
        assert_api_error(&reply, 400, "invalid_name");
    }
    for bad in ["Ann\u{202E}", "\u{2066}Ann", "A\u{200F}nn"] {
        let reply = cluster
            .call(0, Method::POST, "/api/v1/sessions", None, Some(json!({"name": bad})))
            .await;
        assert_api_error(&reply, 400, "invalid_name");
    }

    // Usernames are ASCII only; names and bios refuse controls and bidi overrides.
    for bad in ["bob\u{202E}", "bob\u{0}", "bob\u{200B}", "b\u{1b}b"] {
        let body = json!({"username": bad, "email": "bob@example.com", "first_name": "Bob",
                          "last_name": "B", "password": "correct horse battery"});
        let reply = cluster
            .call(0, Method::POST, "/api/v1/accounts", None, Some(body))
            .await;
        assert_api_error(&reply, 400, "invalid_username");
    }
    for (field, bad) in [
        ("first_name", "Ann\u{202E}nimda"),
        ("last_name", "\u{2066}x\u{2069}"),
        ("first_name", "nul\u{0}"),
        ("bio", "hi\u{202D}"),
        ("bio", "bell\u{7}"),
        ("bio", "tab\tbio"),
    ] {
        let reply = cluster
            .call(
                0,
                Method::PATCH,
                "/api/v1/me",
                Some(&token),
                Some(json!({ field: bad })),
            )
            .await;
        assert_api_error(&reply, 400, "invalid_profile");
    }
    for bad in [
        "ann\u{0}@example.com",
        "ann@exa\u{202E}mple.com\u{1b}",
        "a\u{85}@example.com",
    ] {
        let reply = cluster
            .call(
                0,
                Method::PATCH,
                "/api/v1/me",
                Some(&token),
                Some(json!({"email": bad})),
            )
            .await;
        assert_api_error(&reply, 400, "invalid_email");
    }
    // Nothing refused was written.
    let (status, me) = cluster.call(0, Method::GET, "/api/v1/me", Some(&token), None).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(
        (me["first_name"].as_str(), me["bio"].as_str()),
        (Some("Test"), Some(""))
    );
    assert_eq!(me["email"], "ann@example.com");
    // A bio may hold line breaks and any other text, kept as sent.
    let bio = "line one\nline two: 'quotes' \"and\" <b>tags</b> 😀";
    let (status, me) = cluster
        .call(
            0,
            Method::PATCH,
            "/api/v1/me",
            Some(&token),
            Some(json!({ "bio": bio })),
        )
        .await;
    assert_eq!((status, me["bio"].as_str()), (200, Some(bio)), "{me}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_megabyte_room_name_is_refused_over_both_transports() {
    let cluster = TestCluster::start(1, 1).await;
    let token = cluster.session(0, "Big").await;
    let huge = "a".repeat(1 << 20);

    // Over the socket, the frame is past `max_frame_bytes` (64 KiB) and refused from its
    // header: close 1009 (§8). The gateway reads no further, so while the client is still
    // writing the megabyte the kernel may answer with a reset, which destroys the close
    // code. The 1009 itself is asserted with an oversized frame that fits the socket
    // buffers (`bad_input::a_frame_over_the_size_limit_closes_with_1009`).
    let mut client = cluster.client_with(0, &token).await;
    if client
        .try_send_json(json!({"type": "join", "room": huge}))
        .await
        .is_ok()
    {
        let code = client.expect_close().await;
        assert!(matches!(code, Some(1009) | None), "closed with {code:?}");
    }
    // Refused, not half-read: the gateway serves the next socket as before.
    let mut next = cluster.client_with(0, &token).await;
    next.send_json(json!({"type": "leave", "room": "nowhere"})).await;
    assert_eq!(next.recv().await["code"], "not_joined");

    // Over HTTP, a 1 MiB body is read and the name refused.
    let reply = cluster
        .call(
            0,
            Method::POST,
            "/api/v1/rooms",
            Some(&token),
            Some(json!({"name": huge})),
        )
        .await;
    assert_api_error(&reply, 400, "invalid_room");
    // Past the JSON body limit (2 MiB), the body is not even read.
    let body = serde_json::to_vec(&json!({"name": "a".repeat(3 << 20)})).unwrap();
    let reply = post_bytes(&cluster, "/api/v1/rooms", Some(&token), body).await;
    assert_api_error(&reply, 413, "payload_too_large");
    // A huge name in a path gets the same answer as a short bad one (60 000 bytes: the
    // most a client's `http::Uri` holds).
    let path = format!("/api/v1/rooms/{}/messages", "b".repeat(60_000));
    let reply = cluster.call(0, Method::GET, &path, Some(&token), None).await;
    assert_api_error(&reply, 400, "invalid_room");
    // A megabyte, written raw: the HTTP layer refuses the request head itself (hyper's
    // 431, before any handler runs).
    let path = format!("/api/v1/rooms/{}/messages", "b".repeat(1 << 20));
    let (status, _) = raw_request(cluster.gateway(0), "GET", &path, Some(&token)).await;
    assert_eq!(status, 431);

    let (status, rooms) = cluster.call(0, Method::GET, "/api/v1/rooms", Some(&token), None).await;
    assert_eq!(
        (status, rooms["rooms"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{rooms}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_json_is_refused_without_harm() {
    let cluster = TestCluster::start(1, 1).await;
    let token = cluster.session(0, "Nester").await;
    let mut client = cluster.client_with(0, &token).await;
    let arrays = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let objects = format!("{}1{}", r#"{"a":"#.repeat(10_000), "}".repeat(10_000));

    client.send_raw(Message::Text(arrays.clone().into())).await;
    expect_error(&mut client, "invalid_json").await;
    // An object whose only field is unknown: `type` is missing.
    client.send_raw(Message::Text(objects.clone().into())).await;
    expect_error(&mut client, "missing_field").await;
    // As the value of a known field: the wrong type.
    client
        .send_raw(Message::Text(format!(r#"{{"type":"join","room":{arrays}}}"#).into()))
        .await;
    expect_error(&mut client, "invalid_json").await;
    // Unknown fields are ignored (§2), however deep: skipped without recursion.
    client
        .send_raw(Message::Text(
            format!(r#"{{"type":"join","room":"deep","x":{arrays}}}"#).into(),
        ))
        .await;
    let (joined, _) = client.recv_until("joined").await;
    assert_eq!(joined["room"], "deep");

    // Over HTTP: not an object, the wrong type, or an unknown field that is skipped.
    for body in [arrays.clone(), objects.clone(), format!(r#"{{"name":{arrays}}}"#)] {
        let reply = post_bytes(&cluster, "/api/v1/rooms", Some(&token), body.into_bytes()).await;
        assert_api_error(&reply, 400, "invalid_json");
    }
    let body = format!(r#"{{"name":{objects}}}"#);
    let reply = post_bytes(&cluster, "/api/v1/sessions", None, body.into_bytes()).await;
    assert_api_error(&reply, 400, "invalid_json");
    let body = format!(r#"{{"name":"nested","x":{objects}}}"#);
    let (status, entered) = post_bytes(&cluster, "/api/v1/rooms", Some(&token), body.into_bytes()).await;
    assert_eq!(
        (status, entered["room"]["name"].as_str()),
        (200, Some("nested")),
        "{entered}"
    );

    // The socket is still usable after all that.
    client.send_text("deep", "surfaced", "d-1").await;
    let (messages, _) = collect(&mut client, 1, 1).await;
    assert_eq!(messages[0]["text"], "surfaced");
}
