//! Invalid UTF-8 and NUL bytes: a closed socket or a clear error, wherever they arrive.

use super::{admin, assert_api_error, expect_error, post_bytes};
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
