//! SQL metacharacters and path traversal: stored and searched literally, and no file reached.

use super::{admin, assert_api_error, raw_request};
use crate::helpers::collect;
use integration_tests::TestCluster;
use reqwest::Method;
use serde_json::{Value, json};

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
