//! Hostile input to the account-safety routes: password changes, password resets and the
//! client address a proxy names. Each gets its documented 4xx with a JSON error, nothing is
//! changed, and nothing gets a 5xx.

use super::{assert_api_error, post_bytes};
use integration_tests::TestCluster;
use integration_tests::cluster::PASSWORD;
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_password_and_reset_fields_get_clear_errors() {
    let mail = tempfile::tempdir().unwrap();
    let cluster = TestCluster::start_with(1, 1, |s| {
        s.mail.transport = gateway::settings::MailTransport::File;
        s.mail.dir = mail.path().to_owned();
        s.gateway.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    let token = cluster.sign_up(0, "ann").await;
    let huge = "p".repeat(1 << 20);
    let change = |current: &str, new: &str| json!({"current_password": current, "new_password": new});
    let put = |body| cluster.call(0, Method::PUT, "/api/v1/me/password", Some(&token), Some(body));

    // The current password: NUL, control and bidi characters, SQL, a megabyte.
    for current in ["nul\0", "\u{202E}drowssap", "' OR 1=1 --", huge.as_str(), ""] {
        assert_api_error(
            &put(change(current, "a perfectly good passphrase")).await,
            403,
            "wrong_password",
        );
    }
    // The new password: too long, too short, the username in it.
    for new in [huge.as_str(), "short", "my ANN password!"] {
        assert_api_error(&put(change(PASSWORD, new)).await, 400, "weak_password");
    }
    // Wrong types, missing fields, nesting, invalid UTF-8.
    for body in [
        json!({"current_password": 1, "new_password": "a perfectly good passphrase"}),
        json!({"current_password": PASSWORD}),
        json!([[[[[[[[[[]]]]]]]]]]),
    ] {
        assert_api_error(&put(body).await, 400, "invalid_json");
    }
    let raw = b"{\"current_password\":\"\xff\xfe\",\"new_password\":\"x\"}".to_vec();
    let reply = reqwest::Client::new()
        .put(format!("http://{}/api/v1/me/password", cluster.gateway(0)))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status().as_u16(), 400);

    // Reset requests: addresses that are not addresses, of every kind.
    for email in [
        "",
        "nul\0@example.com",
        "a@b",
        huge.as_str(),
        "a b@example.com",
        "ann@\u{202E}x.com",
    ] {
        let reply = cluster
            .call(
                0,
                Method::POST,
                "/api/v1/password-resets",
                None,
                Some(json!({ "email": email })),
            )
            .await;
        assert_api_error(&reply, 400, "invalid_email");
    }
    // SQL or markup in a well-shaped address is only an address nobody has.
    for email in ["x'or'1'='1@example.com", "<script>@x.y"] {
        let reply = cluster
            .call(
                0,
                Method::POST,
                "/api/v1/password-resets",
                None,
                Some(json!({ "email": email })),
            )
            .await;
        assert_eq!(reply, (202, json!({"status": "sent"})), "{email}");
    }
    assert_api_error(
        &post_bytes(
            &cluster,
            "/api/v1/password-resets",
            None,
            b"{\"email\":\"\xff@x.y\"}".to_vec(),
        )
        .await,
        400,
        "invalid_json",
    );

    // Reset tokens: none of them a token of ours.
    for token in [
        "",
        "nul\0",
        "' OR 1=1 --",
        "../../etc/passwd",
        huge.as_str(),
        "\u{202E}abc",
    ] {
        let body = json!({"token": token, "new_password": "a perfectly good passphrase"});
        let reply = cluster
            .call(0, Method::POST, "/api/v1/password-resets/confirm", None, Some(body))
            .await;
        assert_api_error(&reply, 404, "reset_invalid");
    }

    // A proxy's X-Forwarded-For full of garbage: the log-in is still just a log-in.
    for forwarded in ["garbage", "999.1.1.1", "1.2.3.4, ::ffff:zz", &"1.2.3.4,".repeat(1000)] {
        let reply = cluster
            .http()
            .post(format!("http://{}/api/v1/sessions", cluster.gateway(0)))
            .header("x-forwarded-for", forwarded)
            .json(&json!({"username": "ann", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status().as_u16(), 201, "{forwarded}");
    }

    // None of it changed the password.
    let (status, _) = cluster
        .call(
            0,
            Method::POST,
            "/api/v1/sessions",
            None,
            Some(json!({"username": "ann", "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, 201);
}
