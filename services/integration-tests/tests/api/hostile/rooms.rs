//! Hostile input in what rooms gained: titles, topics, descriptions, actions, roles,
//! durations, invite tokens and direct-message names. Each gets a clear 4xx with its code,
//! nothing is stored for it, and text that is allowed is kept as text.

use super::assert_api_error;
use integration_tests::TestCluster;
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_room_fields_get_clear_errors_and_store_nothing() {
    let cluster = TestCluster::start(1, 1).await;
    let ann = cluster.sign_up(0, "ann").await;
    let call = |method: Method, path: String, body: Option<Value>| {
        let (cluster, ann) = (&cluster, ann.clone());
        async move { cluster.call(0, method, &path, Some(&ann), body).await }
    };
    let create = |title: Value| {
        call(
            Method::POST,
            "/api/v1/rooms".into(),
            Some(json!({"name": title, "visibility": "private"})),
        )
    };

    // Titles: empty, control and bidi characters, NUL, a megabyte; a wrong visibility.
    for title in [
        json!(""),
        json!("  "),
        json!("a\u{202E}b"),
        json!("a\u{0}b"),
        json!("a\nb"),
        json!("x".repeat(1 << 20)),
    ] {
        let refused = create(title.clone()).await;
        assert!(matches!(refused.0, 400 | 413), "{title:.40}: {}", refused.1);
    }
    let refused = call(
        Method::POST,
        "/api/v1/rooms".into(),
        Some(json!({"name": "x", "visibility": "secret"})),
    )
    .await;
    assert_api_error(&refused, 400, "invalid_json");
    // SQL and markup in a title are only text.
    let (status, made) = create(json!("'); DROP TABLE rooms; -- <b>x</b>")).await;
    assert_eq!(
        (status, made["room"]["title"].as_str()),
        (200, Some("'); DROP TABLE rooms; -- <b>x</b>"))
    );
    let room = made["room"]["name"].as_str().unwrap().to_owned();
    let actions = format!("/api/v1/rooms/{room}/actions");

    for (body, status, code) in [
        (
            json!({"action": "update", "topic": "a\u{202E}b"}),
            400,
            "invalid_argument",
        ),
        (
            json!({"action": "update", "topic": "line\nbreak"}),
            400,
            "invalid_argument",
        ),
        (json!({"action": "update", "topic": "a\u{0}b"}), 400, "invalid_argument"),
        (
            json!({"action": "update", "description": "d".repeat(1001)}),
            400,
            "invalid_argument",
        ),
        (json!({"action": "explode"}), 400, "invalid_argument"),
        (json!({"action": "kick"}), 400, "missing_field"),
        (
            json!({"action": "kick", "user_id": "not an id"}),
            400,
            "invalid_argument",
        ),
        (json!({"action": "kick", "username": "x' OR '1'='1"}), 404, "not_found"),
        (json!({"action": "kick", "username": "a\u{0}b"}), 404, "not_found"),
        (json!({"action": "mute", "username": "ann"}), 400, "missing_field"),
        (
            json!({"action": "mute", "username": "ann", "minutes": 0}),
            400,
            "invalid_argument",
        ),
        (
            json!({"action": "mute", "username": "ann", "minutes": 525_601}),
            400,
            "invalid_argument",
        ),
        (
            json!({"action": "mute", "username": "ann", "minutes": -5}),
            400,
            "invalid_json",
        ),
        (
            json!({"action": "set_role", "username": "ann", "role": "owner"}),
            400,
            "invalid_argument",
        ),
        (
            json!({"action": "set_role", "username": "ann", "role": "god"}),
            400,
            "invalid_json",
        ),
        (json!({"action": "set_visibility"}), 400, "missing_field"),
        (json!({"action": ["kick"]}), 400, "invalid_json"),
    ] {
        let refused = call(Method::POST, actions.clone(), Some(body.clone())).await;
        assert_api_error(&refused, status, code);
    }
    // A description may hold lines; whatever passes is kept as text.
    let (status, updated) = call(
        Method::POST,
        actions.clone(),
        Some(json!({"action": "update", "description": "<script>1</script>\nok"})),
    )
    .await;
    assert_eq!(
        (status, updated["description"].as_str()),
        (200, Some("<script>1</script>\nok"))
    );

    // Invite tokens: NUL, traversal, a long one, and bad link bounds.
    for token in ["%00", "..%2F..%2Fetc%2Fpasswd", &"t".repeat(500), "'%20OR%201=1"] {
        let refused = call(Method::POST, format!("/api/v1/invites/{token}"), None).await;
        assert_api_error(&refused, 404, "invite_invalid");
        let refused = call(Method::GET, format!("/api/v1/invites/{token}"), None).await;
        assert_api_error(&refused, 404, "invite_invalid");
    }
    let links = format!("/api/v1/rooms/{room}/invite-links");
    for body in [
        json!({"max_uses": 0}),
        json!({"max_uses": 1001}),
        json!({"expires_in_minutes": 43_201}),
    ] {
        assert_api_error(
            &call(Method::POST, links.clone(), Some(body)).await,
            400,
            "invalid_argument",
        );
    }
    assert_api_error(
        &call(Method::POST, links.clone(), Some(json!({"max_uses": -1}))).await,
        400,
        "invalid_json",
    );

    // Direct messages: nobody, NUL, yourself.
    for username in ["nobody", "a\u{0}b", "'; --"] {
        assert_api_error(
            &call(Method::POST, "/api/v1/dms".into(), Some(json!({"username": username}))).await,
            404,
            "not_found",
        );
    }
    // The directory's filter is literal.
    let (status, found) = call(Method::GET, "/api/v1/rooms?q=%25".into(), None).await;
    assert_eq!((status, found["rooms"].as_array().map(Vec::len)), (200, Some(0)));
    assert_api_error(
        &call(Method::GET, "/api/v1/rooms?q=%00".into(), None).await,
        400,
        "invalid_argument",
    );

    // Of all that, only the title's room, its owner and the one update were stored.
    let (_, panel) = call(Method::GET, "/api/v1/me/panel".into(), None).await;
    assert_eq!(panel["rooms"].as_array().unwrap().len(), 1, "{panel}");
    let (_, history) = call(Method::GET, format!("/api/v1/rooms/{room}/messages?after_seq=0"), None).await;
    assert_eq!(history["messages"].as_array().unwrap().len(), 1, "{history}");
}
