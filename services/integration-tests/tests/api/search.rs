//! Message search through the API, on two gateways against real Postgres: a person finds
//! what they may read and nothing else (a private room only once they are in it, never a
//! room they are banned from), results carry marked snippets as text, and every bad input
//! gets its 400 with a stable code.

use super::hostile::assert_api_error;
use integration_tests::TestCluster;
use reqwest::Method;
use serde_json::{Value, json};

/// `/api/v1/search` with these parameters, encoded as a browser would.
fn search_path(params: &[(&str, &str)]) -> String {
    let mut url = reqwest::Url::parse("http://x/api/v1/search").unwrap();
    url.query_pairs_mut().extend_pairs(params);
    format!("{}?{}", url.path(), url.query().unwrap_or_default())
}

async fn search(cluster: &TestCluster, gateway: usize, token: &str, params: &[(&str, &str)]) -> (u16, Value) {
    cluster
        .call(gateway, Method::GET, &search_path(params), Some(token), None)
        .await
}

/// The rooms of the results, in result order (newest first), and the texts.
async fn found(cluster: &TestCluster, gateway: usize, token: &str, params: &[(&str, &str)]) -> Vec<(String, String)> {
    let (status, body) = search(cluster, gateway, token, params).await;
    assert_eq!(status, 200, "{params:?}: {body}");
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["message"]["room"].as_str().unwrap().to_owned(),
                r["message"]["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn post(cluster: &TestCluster, token: &str, room: &str, text: &str, id: &str) {
    let (status, body) = cluster
        .call(
            0,
            Method::POST,
            &format!("/api/v1/rooms/{room}/messages"),
            Some(token),
            Some(json!({"text": text, "client_msg_id": id})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

async fn enter(cluster: &TestCluster, token: &str, room: &str) -> String {
    let (status, body) = cluster
        .call(
            0,
            Method::POST,
            "/api/v1/rooms",
            Some(token),
            Some(json!({"name": room})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["room"]["name"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_finds_what_you_may_read_and_nothing_else() {
    let cluster = TestCluster::start(2, 1).await;
    let ann = cluster.sign_up(0, "ann").await;
    let bob = cluster.sign_up(1, "bob").await;
    let cat = cluster.sign_up(1, "cat").await;
    let (status, made) = cluster
        .call(
            0,
            Method::POST,
            "/api/v1/rooms",
            Some(&ann),
            Some(json!({"name": "Plans", "visibility": "private"})),
        )
        .await;
    assert_eq!(status, 200, "{made}");
    let private = made["room"]["name"].as_str().unwrap().to_owned();
    post(&cluster, &ann, &private, "the secret launch date", "p1").await;
    enter(&cluster, &bob, "lobby").await;
    enter(&cluster, &cat, "lobby").await;
    post(&cluster, &bob, "lobby", "no secret here <b>launch</b> party", "l1").await;
    enter(&cluster, &bob, "other").await;
    post(&cluster, &bob, "other", "another secret launch", "o1").await;
    cluster.search_indexed().await;

    // Ann finds her private room's message; the shape is a message frame plus a snippet.
    let (status, body) = search(&cluster, 1, &ann, &[("q", "secret launch")]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"].as_array().unwrap().len(), 1, "{body}");
    let hit = &body["results"][0];
    assert_eq!(
        (
            hit["message"]["room"].as_str(),
            hit["message"]["seq"].as_u64(),
            hit["message"]["user"]["name"].as_str()
        ),
        (Some(private.as_str()), Some(1), Some("ann"))
    );
    assert!(hit["message"]["sent_at"].is_string() && hit["message"]["id"].is_i64());
    assert_eq!(
        hit["snippet"],
        json!([{"text": "the "}, {"text": "secret", "hit": true}, {"text": " "}, {"text": "launch", "hit": true}, {"text": " date"}])
    );
    assert_eq!(body["next_before"], Value::Null);

    // Cat, an outsider, never sees it: not in her rooms, not among public ones, not by name.
    assert_eq!(
        found(&cluster, 1, &cat, &[("q", "secret")]).await,
        [("lobby".to_owned(), "no secret here <b>launch</b> party".to_owned())],
        "markup is only text"
    );
    let everywhere = found(&cluster, 1, &cat, &[("q", "secret"), ("scope", "public")]).await;
    assert_eq!(
        everywhere.iter().map(|(room, _)| room.as_str()).collect::<Vec<_>>(),
        ["other", "lobby"],
        "public rooms, newest first"
    );
    let by_name = search(&cluster, 1, &cat, &[("q", "secret"), ("room", &private)]).await;
    let missing = search(&cluster, 1, &cat, &[("q", "secret"), ("room", "p.doesnotexist000")]).await;
    assert_api_error(&by_name, 404, "not_found");
    assert_eq!(by_name, missing, "refused word for word as a room that does not exist");

    // Invited, Bob still finds nothing there until he is in; then he does.
    let actions = format!("/api/v1/rooms/{private}/actions");
    let (status, _) = cluster
        .call(
            0,
            Method::POST,
            &actions,
            Some(&ann),
            Some(json!({"action": "invite", "username": "bob"})),
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        !found(&cluster, 1, &bob, &[("q", "date"), ("scope", "public")])
            .await
            .iter()
            .any(|(r, _)| *r == private)
    );
    enter(&cluster, &bob, &private).await;
    assert_eq!(
        found(&cluster, 1, &bob, &[("q", "date")]).await,
        [(private.clone(), "the secret launch date".to_owned())]
    );

    // Banned from the lobby, Cat finds nothing there, by scope or by name.
    let (status, _) = cluster
        .call(
            0,
            Method::POST,
            "/api/v1/rooms/lobby/actions",
            Some(&bob),
            Some(json!({"action": "ban", "username": "cat"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        found(&cluster, 0, &cat, &[("q", "secret"), ("scope", "public")]).await,
        [("other".to_owned(), "another secret launch".to_owned())]
    );
    assert_api_error(
        &search(&cluster, 0, &cat, &[("q", "secret"), ("room", "lobby")]).await,
        403,
        "banned",
    );

    // Filters: author, image, time; paging by cursor.
    let bob_id = {
        let (_, me) = cluster.call(0, Method::GET, "/api/v1/me", Some(&bob), None).await;
        me["id"].as_str().unwrap().to_owned()
    };
    let by_bob = found(
        &cluster,
        0,
        &ann,
        &[("q", "secret"), ("scope", "public"), ("author", &bob_id)],
    )
    .await;
    assert_eq!(by_bob.len(), 2, "{by_bob:?}");
    assert!(
        found(&cluster, 0, &ann, &[("q", "secret"), ("has", "image")])
            .await
            .is_empty()
    );
    assert!(
        found(&cluster, 0, &ann, &[("q", "secret"), ("until", "2000-01-01")])
            .await
            .is_empty()
    );
    assert_eq!(
        found(&cluster, 0, &ann, &[("q", "secret"), ("since", "2000-01-01T00:00:00Z")])
            .await
            .len(),
        1
    );
    let (_, first) = search(
        &cluster,
        0,
        &ann,
        &[("q", "secret"), ("scope", "public"), ("limit", "2")],
    )
    .await;
    let next = first["next_before"].as_i64().expect("a full page has a cursor");
    let (_, second) = search(
        &cluster,
        0,
        &ann,
        &[
            ("q", "secret"),
            ("scope", "public"),
            ("limit", "2"),
            ("before", &next.to_string()),
        ],
    )
    .await;
    let texts = |page: &Value| -> Vec<String> {
        page["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["message"]["text"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        [texts(&first), texts(&second)].concat(),
        [
            "another secret launch",
            "no secret here <b>launch</b> party",
            "the secret launch date"
        ]
    );
    assert_eq!(second["next_before"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_search_input_gets_a_400_with_a_stable_code() {
    let cluster = TestCluster::start(1, 1).await;
    let ann = cluster.sign_up(0, "ann").await;
    enter(&cluster, &ann, "lobby").await;
    post(&cluster, &ann, "lobby", "select drop table messages", "m1").await;
    cluster.search_indexed().await;
    let long = "a".repeat(201);
    let many = (0..13).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ");
    for (params, code) in [
        (vec![], "invalid_query"),
        (vec![("q", "")], "invalid_query"),
        (vec![("q", "   ")], "invalid_query"),
        (vec![("q", long.as_str())], "invalid_query"),
        (vec![("q", many.as_str())], "invalid_query"),
        (vec![("q", "a\u{0}b")], "invalid_query"),
        (vec![("q", "a\u{1b}[31mb")], "invalid_query"),
        (vec![("q", "-only -excluded")], "invalid_query"),
        (vec![("q", "& | ! :* ( ) <->")], "invalid_query"),
        (vec![("q", "x"), ("sort", "rank")], "invalid_argument"),
        (vec![("q", "x"), ("scope", "everything")], "invalid_argument"),
        (vec![("q", "x"), ("has", "video")], "invalid_argument"),
        (vec![("q", "x"), ("since", "yesterday")], "invalid_argument"),
        (vec![("q", "x"), ("until", "2026-02-30")], "invalid_argument"),
        (vec![("q", "x"), ("before", "abc")], "invalid_argument"),
        (vec![("q", "x"), ("limit", "0")], "invalid_argument"),
        (vec![("q", "x"), ("limit", "100000")], "invalid_argument"),
        (vec![("q", "x"), ("room", "no spaces allowed")], "invalid_room"),
        (vec![("q", "x"), ("author", "a\u{0}b")], "invalid_argument"),
    ] {
        let answer = search(&cluster, 0, &ann, &params).await;
        assert_api_error(&answer, 400, code);
    }
    // Metacharacters of SQL, tsquery and FTS5 around a word are only text.
    for q in [
        "'; DROP TABLE messages; --",
        "drop & table",
        "!select | (drop)",
        "drop:*",
        r#""drop table"#,
    ] {
        let hits = found(&cluster, 0, &ann, &[("q", q)]).await;
        assert_eq!(hits.len(), 1, "{q}: {hits:?}");
    }
    assert_eq!(found(&cluster, 0, &ann, &[("q", "table -select")]).await.len(), 0);
    let (status, _) = cluster
        .call(0, Method::GET, &search_path(&[("q", "x")]), None, None)
        .await;
    assert_eq!(status, 401);
}
