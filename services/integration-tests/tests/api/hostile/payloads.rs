//! Hostile payloads: invalid UTF-8 and NUL bytes get a closed socket or a clear error
//! wherever they arrive; SQL metacharacters are stored and searched literally; path
//! traversal reaches no file.

use super::{admin, assert_api_error, expect_error, post_bytes, raw_request};
use crate::helpers::collect;
use integration_tests::TestCluster;
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

async fn get(cluster: &TestCluster, path: &str, token: &str) -> (u16, Value) {
    cluster.call(0, Method::GET, path, Some(token), None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_in_a_text_frame_ends_only_that_socket() {
    let cluster = TestCluster::start(1, 1).await;
    let mut bystander = cluster.client(0, "Bystander").await;
    bystander.join("calm", None).await;
    let token = cluster.session(0, "Mallory").await;
    let mut mallory = cluster.client_with(0, &token).await;
    mallory.join("calm", None).await;

    // tungstenite will not build a `Message::Text` from invalid UTF-8, but it sends a raw
    // text frame as given: an overlong encoding, a lone continuation byte and 0xFF.
    let payload =
        b"{\"type\":\"send\",\"room\":\"calm\",\"text\":\"\xc0\xaf\x80\xff\",\"client_msg_id\":\"u-1\"}".to_vec();
    mallory
        .send_raw(Message::Frame(Frame::message(payload, OpCode::Data(Data::Text), true)))
        .await;
    // RFC 6455 §8.1: a text frame that is not UTF-8 fails the connection. The gateway
    // ends the socket with 1007 rather than guessing at the text.
    assert_eq!(mallory.expect_close().await, Some(1007));

    // Nothing was stored, and everyone else carries on, on the same gateway.
    assert!(cluster.db.message_rows().await.is_empty());
    bystander.send_text("calm", "still here", "b-1").await;
    let (messages, acks) = collect(&mut bystander, 1, 1).await;
    assert_eq!(
        (messages[0]["text"].as_str(), acks[0]["seq"].as_u64()),
        (Some("still here"), Some(1))
    );
    // Mallory's session is not harmed either: a new socket works.
    let mut again = cluster.client_with(0, &token).await;
    let joined = again.join("calm", Some(0)).await;
    assert_eq!(joined["history"][0]["text"], "still here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_bytes_and_invalid_utf8_get_clear_errors_everywhere() {
    let cluster = TestCluster::start(1, 1).await;
    let root = admin(&cluster, "root").await;
    let token = cluster.sign_up(0, "ann").await;
    let mut client = cluster.client_with(0, &token).await;

    // Over the socket (NUL in message text is in bad_input.rs).
    client.send_json(json!({"type": "join", "room": "lob\u{0}by"})).await;
    assert_eq!(expect_error(&mut client, "invalid_room").await["ref"], "lob\u{0}by");
    client.join("lobby", None).await;
    client.send_text("lobby", "hi", "id\u{0}").await;
    assert_eq!(
        expect_error(&mut client, "invalid_client_msg_id").await["ref"],
        "id\u{0}"
    );
    client
        .send_raw(Message::Text(r#"{"type\u0000":"join","room":"lobby"}"#.into()))
        .await;
    expect_error(&mut client, "missing_field").await;
    client
        .send_raw(Message::Text(r#"{"type":"join\u0000","room":"lobby"}"#.into()))
        .await;
    expect_error(&mut client, "unknown_type").await;

    // Sign-up and log-in.
    let sign_up = |username: &str, email: &str, first: &str, password: &str| json!({"username": username, "email": email, "first_name": first, "last_name": "X", "password": password});
    for (body, code) in [
        (
            sign_up("bob\u{0}", "bob@example.com", "Bob", "correct horse battery"),
            "invalid_username",
        ),
        (
            sign_up("bob", "bob\u{0}@example.com", "Bob", "correct horse battery"),
            "invalid_email",
        ),
        (
            sign_up("bob", "bob@example.com", "Bo\u{0}b", "correct horse battery"),
            "invalid_profile",
        ),
    ] {
        let reply = cluster
            .call(0, Method::POST, "/api/v1/accounts", None, Some(body))
            .await;
        assert_api_error(&reply, 400, code);
    }
    // A password is hashed, never stored as text: a NUL in it is just another character.
    let password = "nul\u{0}inside the password";
    let reply = cluster
        .call(
            0,
            Method::POST,
            "/api/v1/accounts",
            None,
            Some(sign_up("carol", "c@example.com", "C", password)),
        )
        .await;
    assert_eq!(reply.0, 201, "{}", reply.1);
    let log_in = |username: &str, password: &str| json!({"username": username, "password": password});
    let reply = cluster
        .call(
            0,
            Method::POST,
            "/api/v1/sessions",
            None,
            Some(log_in("carol", password)),
        )
        .await;
    assert_eq!(reply.0, 201, "{}", reply.1);
    let reply = cluster
        .call(0, Method::POST, "/api/v1/sessions", None, Some(log_in("carol", "nul")))
        .await;
    assert_api_error(&reply, 401, "invalid_credentials");
    // A NUL in a username offered at log-in cannot match anyone: the same answer as any
    // wrong username, and no database error.
    for username in ["ann\u{0}", "\u{0}", "ann\u{0}' OR '1'='1"] {
        let reply = cluster
            .call(
                0,
                Method::POST,
                "/api/v1/sessions",
                None,
                Some(log_in(username, "correct horse battery staple")),
            )
            .await;
        assert_api_error(&reply, 401, "invalid_credentials");
    }
    let reply = cluster
        .call(
            0,
            Method::POST,
            "/api/v1/sessions",
            None,
            Some(json!({"name": "\u{0}"})),
        )
        .await;
    assert_api_error(&reply, 400, "invalid_name");

    // NUL in path and query parameters that name things: not found, or nothing found.
    assert_api_error(&get(&cluster, "/api/v1/users/ann%00", &token).await, 404, "not_found");
    assert_api_error(
        &get(&cluster, "/api/v1/rooms/lobby%00/messages", &token).await,
        400,
        "invalid_room",
    );
    assert_api_error(
        &cluster
            .call(0, Method::DELETE, "/api/v1/me/sessions/x%00y", Some(&token), None)
            .await,
        404,
        "not_found",
    );
    // A NUL in a search or a cursor cannot match anything stored: a bad argument.
    for path in [
        "/api/v1/admin/messages?q=%00",
        "/api/v1/admin/rooms?q=lob%00",
        "/api/v1/admin/rooms?after=%00",
        "/api/v1/admin/users?q=%00",
        "/api/v1/admin/users?after=a%00",
    ] {
        assert_api_error(&get(&cluster, path, &root).await, 400, "invalid_argument");
    }
    // Found by schemathesis: a member-list cursor with a NUL (and any other text parameter
    // the handlers do not check themselves) is refused by the store's one mapping.
    let (status, _) = cluster
        .call(
            0,
            Method::POST,
            "/api/v1/rooms",
            Some(&token),
            Some(json!({"name": "lobby"})),
        )
        .await;
    assert!(status == 200 || status == 201, "{status}");
    assert_api_error(
        &get(&cluster, "/api/v1/rooms/lobby/members?after=%F2%9C%A9%84%00", &token).await,
        400,
        "invalid_argument",
    );
    let reply = cluster
        .call(
            0,
            Method::PUT,
            "/api/v1/admin/users/ann%00/disabled",
            Some(&root),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_api_error(&reply, 404, "not_found");

    // Invalid UTF-8: in a JSON body, a percent-decoded path segment and a query value.
    let reply = post_bytes(&cluster, "/api/v1/sessions", None, b"{\"name\":\"\xff\xfe\"}".to_vec()).await;
    assert_api_error(&reply, 400, "invalid_json");
    assert_api_error(
        &get(&cluster, "/api/v1/users/%ff%fe", &token).await,
        400,
        "invalid_argument",
    );
    // A query string is decoded leniently (form encoding): the bad byte becomes U+FFFD,
    // which no stored text is searched for here, so nothing is found.
    let (status, found) = get(&cluster, "/api/v1/admin/messages?q=%ff", &root).await;
    assert_eq!((status, &found["messages"]), (200, &json!([])), "{found}");

    // Ann's account is untouched by all this.
    let (status, me) = get(&cluster, "/api/v1/me", &token).await;
    assert_eq!((status, me["disabled"].as_bool()), (200, Some(false)), "{me}");
}

/// A real 1×1 PNG.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\0\x05\0\x01\xff\x89\x99=\x1d\0\0\0\0IEND\xaeB`\x82";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_metacharacters_are_stored_intact_and_searched_literally() {
    let cluster = TestCluster::start(1, 1).await;
    let root = admin(&cluster, "root").await;
    let token = cluster.sign_up(0, "o_brien").await;
    let mut client = cluster.client_with(0, &token).await;
    client.join("sql_room", None).await;

    let texts = [
        "'; DROP TABLE messages; --",
        "100% sure",
        "snake_case",
        r"back\slash \\ \'",
        "plain words",
        "\" OR 1=1 -- ",
        "$1 $$ ; SELECT pg_sleep(10);",
    ];
    for (i, text) in texts.iter().enumerate() {
        client.send_text("sql_room", text, &format!("q-{i}")).await;
        let (messages, _) = collect(&mut client, 1, 1).await;
        assert_eq!(messages[0]["text"], *text);
    }
    // Over HTTP publishing too.
    let reply = cluster
        .call(
            0,
            Method::POST,
            "/api/v1/rooms/sql_room/messages",
            Some(&token),
            Some(json!({"text": "'); DELETE FROM users; --", "client_msg_id": "h-1"})),
        )
        .await;
    assert_eq!(reply.0, 201, "{}", reply.1);
    let rows: Vec<String> = cluster.db.message_rows().await.into_iter().map(|r| r.3).collect();
    let mut expected: Vec<&str> = texts.to_vec();
    expected.push("'); DELETE FROM users; --");
    assert_eq!(rows, expected, "stored byte for byte, and the table is still there");
    let (status, page) = cluster
        .call(0, Method::GET, "/api/v1/rooms/sql_room/messages", Some(&token), None)
        .await;
    assert_eq!(status, 200);
    let history: Vec<&str> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(history, expected);

    // Room names with SQL metacharacters are refused (the alphabet has `_` and `.` only).
    for room in ["x'; DROP TABLE rooms; --", "a%", "a\\b", "a'b", "a;b"] {
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
    let reply = cluster
        .call(
            0,
            Method::POST,
            "/api/v1/rooms",
            Some(&token),
            Some(json!({"name": "a_b"})),
        )
        .await;
    assert_eq!(
        (reply.0, reply.1["room"]["name"].as_str()),
        (200, Some("a_b")),
        "{}",
        reply.1
    );
    let reply = cluster
        .call(
            0,
            Method::POST,
            "/api/v1/rooms",
            Some(&token),
            Some(json!({"name": "axb"})),
        )
        .await;
    assert_eq!(reply.0, 200, "{}", reply.1);

    // Searches take `%`, `_` and `\` literally, never as patterns.
    let search = |path: String| {
        let cluster = &cluster;
        let root = root.clone();
        async move {
            let (status, body) = cluster.call(0, Method::GET, &path, Some(&root), None).await;
            assert_eq!(status, 200, "{path}: {body}");
            body
        }
    };
    let found = |body: &Value| -> Vec<String> {
        let mut texts: Vec<String> = body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["text"].as_str().unwrap().to_owned())
            .collect();
        texts.sort();
        texts
    };
    assert_eq!(
        found(&search("/api/v1/admin/messages?q=%25".into()).await),
        ["100% sure"]
    );
    assert_eq!(
        found(&search("/api/v1/admin/messages?q=_".into()).await),
        ["$1 $$ ; SELECT pg_sleep(10);", "snake_case"]
    );
    assert_eq!(
        found(&search("/api/v1/admin/messages?q=%5C".into()).await),
        [r"back\slash \\ \'"]
    );
    assert_eq!(
        found(&search("/api/v1/admin/messages?q=%27%3B%20DROP%20TABLE%20messages%3B%20--".into()).await),
        ["'; DROP TABLE messages; --"]
    );
    let rooms = search("/api/v1/admin/rooms?q=_".into()).await;
    let names: Vec<&str> = rooms["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a_b", "sql_room"]);
    let rooms = search("/api/v1/admin/rooms?q=%25".into()).await;
    assert_eq!(rooms["rooms"], json!([]));
    let users = search("/api/v1/admin/users?q=_".into()).await;
    let names: Vec<&str> = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["o_brien"]);
    let users = search("/api/v1/admin/users?q=%27%20OR%20%271%27%3D%271".into()).await;
    assert_eq!(users["users"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_traversal_reaches_no_file() {
    let cluster = TestCluster::start(1, 1).await;
    let token = cluster.sign_up(0, "ann").await;
    let addr = cluster.gateway(0);

    // Under /api: a JSON 404 for paths no route has, a 400 where an id was expected.
    let not_found = (404, "not_found");
    let bad_id = (400, "invalid_argument");
    for (target, (expected_status, code)) in [
        ("/api/v1/uploads/../../etc/passwd", not_found),
        ("/api/v1/uploads/../../../Cargo.toml", not_found),
        ("/api/v1/../../etc/passwd", not_found),
        ("/api/v1/uploads/%2e%2e%2f%2e%2e%2fetc%2fpasswd", bad_id),
        ("/api/v1/uploads/..%2f..%2fetc%2fpasswd", bad_id),
        ("/api/v1/uploads/%2e%2e", bad_id),
        ("/api/v1/uploads/1%00", bad_id),
    ] {
        let (status, body) = raw_request(addr, "GET", target, Some(&token)).await;
        let body: Value = serde_json::from_slice(&body).unwrap_or_else(|_| panic!("{target}: JSON body"));
        assert_api_error(&(status, body), expected_status, code);
    }

    // The static site: nothing outside `static/` is ever served.
    for target in [
        "/..%2f..%2fetc/passwd",
        "/../Cargo.toml",
        "/static/../Cargo.toml",
        "/%2e%2e/%2e%2e/Cargo.toml",
        "/%2e%2e%2f%2e%2e%2fCargo.toml",
        "/..%5c..%5cCargo.toml",
        "/index.html/../../Cargo.toml",
        "//etc/passwd",
        "/%2fetc%2fpasswd",
        "/....//....//Cargo.toml",
        "/%00/../Cargo.toml",
    ] {
        let (status, body) = raw_request(addr, "GET", target, None).await;
        let text = String::from_utf8_lossy(&body);
        assert!((400..500).contains(&status), "{target}: {status} {text}");
        assert!(
            !text.contains("[workspace]") && !text.contains("root:"),
            "{target} leaked: {text}"
        );
    }
    // The page itself is still served.
    let (status, body) = raw_request(addr, "GET", "/", None).await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("<html"));

    // A file name from the client is never used: the upload is stored under its id alone.
    let upload = |disposition: &'static str, bytes: &'static [u8]| {
        cluster
            .http()
            .post(format!(
                "http://{addr}/api/v1/uploads?name=../../etc/passwd&filename=..%2f..%2fx"
            ))
            .bearer_auth(&token)
            .header("content-type", "image/png")
            .header("content-disposition", disposition)
            .body(bytes)
            .send()
    };
    let response = upload(r#"attachment; filename="../../../../tmp/evil.png""#, PNG)
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let uploaded: Value = response.json().await.unwrap();
    let url = uploaded["url"].as_str().unwrap().to_owned();
    assert_eq!(url, format!("/api/v1/uploads/{}", uploaded["id"]));
    let response = cluster
        .http()
        .get(format!("http://{addr}{url}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("content-disposition").is_none());
    assert_eq!(response.bytes().await.unwrap().as_ref(), PNG);
    let response = upload(r#"attachment; filename="..\..\evil.html""#, b"<html><script>x</script>")
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unsupported_media_type");
    assert!(!std::path::Path::new("/tmp/evil.png").exists());
}
