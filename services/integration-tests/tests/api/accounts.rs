//! Accounts and sessions end to end: sign-up, log-in, log-out, revocation and expiry over
//! HTTP and `/ws`; guests and external tokens; and that no field of a request can change
//! who a message is from.

use integration_tests::cluster::PASSWORD;
use integration_tests::{TestCluster, WsClient};
use reqwest::Method;
use serde_json::{Value, json};

fn sign_up_body(username: &str, password: &str) -> Value {
    json!({
        "username": username, "email": format!("{username}@example.com"),
        "first_name": "Ann", "last_name": "Lee", "password": password,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_log_in_and_log_out_round_trip() {
    let cluster = TestCluster::start(1, 1).await;
    let (status, created) = cluster
        .call(
            0,
            Method::POST,
            "/api/v1/accounts",
            None,
            Some(sign_up_body("Ann_Lee", PASSWORD)),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["user"]["name"], "Ann_Lee");
    assert_eq!(created["user"]["kind"], "account");
    let token = created["token"].as_str().unwrap();
    let (status, me) = cluster.call(0, Method::GET, "/api/v1/me", Some(token), None).await;
    assert_eq!(
        (status, me["username"].as_str(), me["email"].as_str()),
        (200, Some("Ann_Lee"), Some("Ann_Lee@example.com"))
    );

    // Log in again, in another case: usernames are case-insensitive.
    let login = json!({"username": "ann_lee", "password": PASSWORD});
    let (status, second) = cluster
        .call(0, Method::POST, "/api/v1/sessions", None, Some(login))
        .await;
    assert_eq!(status, 201, "{second}");
    assert_eq!(second["user"]["id"], created["user"]["id"]);
    let second_token = second["token"].as_str().unwrap();
    let (_, sessions) = cluster
        .call(0, Method::GET, "/api/v1/me/sessions", Some(second_token), None)
        .await;
    assert_eq!(sessions["sessions"].as_array().unwrap().len(), 2, "{sessions}");

    // Log out ends that session only.
    let (status, _) = cluster
        .call(0, Method::DELETE, "/api/v1/session", Some(second_token), None)
        .await;
    assert_eq!(status, 204);
    let (status, body) = cluster
        .call(0, Method::GET, "/api/v1/session", Some(second_token), None)
        .await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthorized")));
    let (status, _) = cluster.call(0, Method::GET, "/api/v1/session", Some(token), None).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_taken_names_and_weak_passwords_each_have_their_code() {
    let cluster = TestCluster::start(1, 1).await;
    cluster.sign_up(0, "ann").await;
    let cases = [
        (
            "/api/v1/sessions",
            json!({"username": "ann", "password": "wrong password!"}),
            401,
            "invalid_credentials",
        ),
        (
            "/api/v1/sessions",
            json!({"username": "nobody", "password": PASSWORD}),
            401,
            "invalid_credentials",
        ),
        ("/api/v1/accounts", sign_up_body("ANN", PASSWORD), 409, "username_taken"),
        ("/api/v1/accounts", sign_up_body("bob", "short"), 400, "weak_password"),
        (
            "/api/v1/accounts",
            sign_up_body("bob", "bob-bob-bob-bob"),
            400,
            "weak_password",
        ),
        (
            "/api/v1/accounts",
            sign_up_body("no spaces", PASSWORD),
            400,
            "invalid_username",
        ),
        (
            "/api/v1/accounts",
            json!({"username": "bob", "email": "not-an-email", "first_name": "B",
            "last_name": "C", "password": PASSWORD}),
            400,
            "invalid_email",
        ),
    ];
    for (path, body, want_status, want_code) in cases {
        let (status, reply) = cluster.call(0, Method::POST, path, None, Some(body.clone())).await;
        assert_eq!(
            (status, reply["error"]["code"].as_str()),
            (want_status, Some(want_code)),
            "{body} → {reply}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_and_expired_sessions_are_refused_by_http_and_the_websocket() {
    let cluster = TestCluster::start(1, 1).await;
    let token = cluster.sign_up(0, "ann").await;
    let login = json!({"username": "ann", "password": PASSWORD});
    let (_, other) = cluster
        .call(0, Method::POST, "/api/v1/sessions", None, Some(login.clone()))
        .await;
    let other_token = other["token"].as_str().unwrap().to_owned();

    // A socket on the session that is about to be revoked is closed with 4001.
    let mut doomed = cluster.client_with(0, &other_token).await;
    doomed.join("lobby", None).await;
    let (_, sessions) = cluster
        .call(0, Method::GET, "/api/v1/me/sessions", Some(&token), None)
        .await;
    let other_id = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == false)
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .expect("the other session");
    let path = format!("/api/v1/me/sessions/{other_id}");
    let (status, _) = cluster.call(0, Method::DELETE, &path, Some(&token), None).await;
    assert_eq!(status, 204);
    assert_eq!(doomed.expect_close().await, Some(4001));
    let (status, _) = cluster
        .call(0, Method::GET, "/api/v1/session", Some(&other_token), None)
        .await;
    assert_eq!(status, 401);
    assert!(
        WsClient::try_connect(cluster.gateway(0), Some(&other_token), None)
            .await
            .is_err()
    );

    // Expiry, set behind the server's back: refused the same way.
    let (_, third) = cluster
        .call(0, Method::POST, "/api/v1/sessions", None, Some(login))
        .await;
    let third_token = third["token"].as_str().unwrap().to_owned();
    cluster
        .db
        .execute("UPDATE sessions SET expires_at_ms = 0 WHERE user_name = 'ann'")
        .await;
    let (status, _) = cluster
        .call(0, Method::GET, "/api/v1/session", Some(&third_token), None)
        .await;
    assert_eq!(status, 401);
    assert!(
        WsClient::try_connect(cluster.gateway(0), Some(&third_token), None)
            .await
            .is_err()
    );
    let (status, _) = cluster
        .call(0, Method::GET, "/api/v1/session", Some(&token), None)
        .await;
    assert_eq!(status, 401, "every session of ann was expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_cannot_borrow_or_register_a_taken_username_and_guests_can_be_turned_off() {
    let cluster = TestCluster::start(1, 1).await;
    cluster.sign_up(0, "Ann").await;
    let (status, reply) = cluster
        .call(0, Method::POST, "/api/v1/sessions", None, Some(json!({"name": "ann"})))
        .await;
    assert_eq!((status, reply["error"]["code"].as_str()), (409, Some("username_taken")));
    let guest = cluster.session(0, "Visitor").await;
    let (status, reply) = cluster
        .call(
            0,
            Method::POST,
            "/api/v1/accounts",
            Some(&guest),
            Some(sign_up_body("ANN", PASSWORD)),
        )
        .await;
    assert_eq!((status, reply["error"]["code"].as_str()), (409, Some("username_taken")));
    let (status, _) = cluster.call(0, Method::GET, "/api/v1/me", Some(&guest), None).await;
    assert_eq!(status, 403, "guests have no profile");

    let closed = TestCluster::start_with(1, 1, |s| s.auth.guests = false).await;
    let (status, reply) = closed
        .call(
            0,
            Method::POST,
            "/api/v1/sessions",
            None,
            Some(json!({"name": "Visitor"})),
        )
        .await;
    assert_eq!((status, reply["error"]["code"].as_str()), (403, Some("forbidden")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_is_stored_and_delivered_with_the_sessions_author_whatever_it_claims() {
    let cluster = TestCluster::start(2, 1).await;
    let ann = cluster.sign_up(0, "ann").await;
    let bob = cluster.sign_up(1, "bob").await;
    let mut ann_ws = cluster.client_with(0, &ann).await;
    let mut bob_ws = cluster.client_with(1, &bob).await;
    ann_ws.join("lobby", None).await;
    bob_ws.join("lobby", None).await;
    // Every field a client might use to claim another identity.
    ann_ws
        .send_json(json!({
            "type": "send", "room": "lobby", "text": "hi", "client_msg_id": "c1",
            "user": {"id": "u:bob", "name": "bob"}, "author": "bob", "author_id": "u:bob",
            "name": "bob", "author_name": "bob", "user_id": "u:bob",
        }))
        .await;
    let (message, _) = bob_ws.recv_until("message").await;
    assert_eq!(message["user"]["name"], "ann");
    assert!(message["user"]["id"].as_str().unwrap().starts_with("u:"));
    let (status, _) = cluster
        .call(
            1,
            Method::POST,
            "/api/v1/rooms/lobby/messages",
            Some(&bob),
            Some(json!({"text": "hey", "client_msg_id": "c2", "user": {"name": "ann"}, "author_name": "ann"})),
        )
        .await;
    assert_eq!(status, 201);
    let rows = cluster.db.message_rows().await;
    let authors: Vec<(&str, &str)> = rows.iter().map(|r| (r.3.as_str(), r.2.as_str())).collect();
    let (_, ann_profile) = cluster.call(0, Method::GET, "/api/v1/me", Some(&ann), None).await;
    let (_, bob_profile) = cluster.call(0, Method::GET, "/api/v1/me", Some(&bob), None).await;
    assert_eq!(
        authors,
        [
            ("hi", ann_profile["id"].as_str().unwrap()),
            ("hey", bob_profile["id"].as_str().unwrap())
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_tokens_are_accepted_only_when_signed_and_unexpired() {
    const JWT_SECRET: &str = "operator-jwt-secret-0123456789abcdef";
    let cluster = TestCluster::start_with(1, 1, |s| s.auth.jwt_secret = JWT_SECRET.into()).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let good = gateway::auth::mint_jwt(JWT_SECRET.as_bytes(), "42", "Integrator", now + 60);
    let (status, session) = cluster.call(0, Method::GET, "/api/v1/session", Some(&good), None).await;
    assert_eq!(status, 200, "{session}");
    assert_eq!(
        (session["user"]["id"].as_str(), session["user"]["kind"].as_str()),
        (Some("ext:42"), Some("external"))
    );
    let mut ws = cluster.client_with(0, &good).await;
    ws.join("lobby", None).await;

    let forged = gateway::auth::mint_jwt(b"not-the-operators-secret-0123456789", "42", "Integrator", now + 60);
    let expired = gateway::auth::mint_jwt(JWT_SECRET.as_bytes(), "42", "Integrator", now - 1);
    for token in [forged, expired] {
        let (status, reply) = cluster
            .call(0, Method::GET, "/api/v1/session", Some(&token), None)
            .await;
        assert_eq!((status, reply["error"]["code"].as_str()), (401, Some("unauthorized")));
        assert!(
            WsClient::try_connect(cluster.gateway(0), Some(&token), None)
                .await
                .is_err()
        );
    }
}

/// A request with side effects that authenticates by the session cookie must come from the
/// site's own pages: another site's (by `Origin`, or by `Sec-Fetch-Site` when there is no
/// `Origin`) is refused with a JSON error, and nothing happens. Reads, bearer tokens and
/// clients that are not browsers are not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_site_request_cannot_use_the_session_cookie() {
    let cluster = TestCluster::start(1, 1).await;
    let token = cluster.sign_up(0, "ann").await;
    let own = format!("http://{}", cluster.gateway(0));
    let send = async |method: Method, path: &str, headers: &[(&str, &str)], bearer: bool| {
        let method_has_body = method == Method::POST;
        let mut request = cluster.http().request(method, format!("{own}{path}"));
        request = if bearer {
            request.bearer_auth(&token)
        } else {
            request.header("cookie", format!("sc_session={token}"))
        };
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if method_has_body {
            request = request.json(&json!({"name": "lobby"}));
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.unwrap_or(Value::Null))
    };
    let entered = |(status, body): &(u16, Value)| *status == 200 && body["room"]["name"] == "lobby";

    for cross in [
        &[("origin", "https://evil.example")][..],
        &[("origin", "null")],
        &[("sec-fetch-site", "cross-site")],
        &[("sec-fetch-site", "same-site")],
    ] {
        let refused = send(Method::POST, "/api/v1/rooms", cross, false).await;
        super::hostile::assert_api_error(&refused, 403, "forbidden");
    }
    let (_, panel) = cluster
        .call(0, Method::GET, "/api/v1/me/panel", Some(&token), None)
        .await;
    assert!(!panel.to_string().contains("lobby"), "nothing happened: {panel}");

    // The page's own origin, a browser's same-origin fetch, a bearer token from anywhere,
    // and a client that is not a browser all pass.
    for (headers, bearer) in [
        (&[("origin", own.as_str())][..], false),
        (&[("sec-fetch-site", "same-origin")], false),
        (&[("origin", "https://evil.example")], true),
        (&[], false),
    ] {
        let reply = send(Method::POST, "/api/v1/rooms", headers, bearer).await;
        assert!(entered(&reply), "{headers:?}, bearer {bearer}: {reply:?}");
    }
    // A read has no side effects to forge.
    let read = send(Method::GET, "/api/v1/me", &[("origin", "https://evil.example")], false).await;
    assert_eq!(read.0, 200, "{read:?}");
}
