//! The JSON HTTP API: sessions, rooms, history, publish, and JSON errors.

use integration_tests::TestCluster;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_api_round_trips_and_errors_are_json() {
    let cluster = TestCluster::start(2, 2).await;
    let base = format!("http://{}/api/v1", cluster.gateway(0));
    let http = cluster.http();
    let token = cluster.session(0, "Ann").await;
    let auth = format!("Bearer {token}");

    // Without a session: 401 with a JSON error.
    let response = http.get(format!("{base}/rooms")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");

    // The session cookie is HttpOnly.
    let response = http
        .post(format!("{base}/sessions"))
        .json(&json!({"name": "Bob"}))
        .send()
        .await
        .unwrap();
    let cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let response = http
        .post(format!("{base}/sessions"))
        .json(&json!({"name": "  "}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let response = http
        .post(format!("{base}/sessions"))
        .body("not json")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "invalid_json");

    for name in ["beta", "alpha", "gamma"] {
        let response = http
            .post(format!("{base}/rooms"))
            .header("authorization", &auth)
            .json(&json!({"name": name}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let rooms: Value = http
        .get(format!("{base}/rooms?limit=2"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        rooms["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["alpha", "beta"]
    );
    assert_eq!(rooms["next_after"], "beta");
    let rooms: Value = http
        .get(format!("{base}/rooms?limit=2&after=beta"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rooms["rooms"][0]["name"], "gamma");
    assert_eq!(rooms["next_after"], Value::Null);

    // Publish over HTTP, idempotently; it reaches a websocket member on the other gateway.
    let mut member = cluster.client(1, "Member").await;
    member.join("alpha", None).await;
    for i in 1..=5 {
        let response = http
            .post(format!("{base}/rooms/alpha/messages"))
            .header("authorization", &auth)
            .json(&json!({"text": format!("m{i}"), "client_msg_id": format!("h-{i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        assert_eq!(response.json::<Value>().await.unwrap()["seq"], i);
    }
    let again = http
        .post(format!("{base}/rooms/alpha/messages"))
        .header("authorization", &auth)
        .json(&json!({"text": "m1", "client_msg_id": "h-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap()["duplicate"], true);
    let (live, _) = crate::helpers::collect(&mut member, 5, 0).await;
    assert_eq!(crate::helpers::seqs(&live), vec![1, 2, 3, 4, 5]);

    // History pages forward and back.
    let page: Value = http
        .get(format!("{base}/rooms/alpha/messages?before_seq=5&limit=2"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(crate::helpers::seqs(page["messages"].as_array().unwrap()), vec![3, 4]);
    assert_eq!(page["last_seq"], 5);
    let page: Value = http
        .get(format!("{base}/rooms/alpha/messages?after_seq=3"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(crate::helpers::seqs(page["messages"].as_array().unwrap()), vec![4, 5]);
    assert_eq!(page["messages"][0]["user"]["name"], "Ann");

    // Errors: unknown room, invalid room, bad query, unknown endpoint, publish to a missing room.
    let get = |path: String| http.get(format!("{base}{path}")).header("authorization", &auth).send();
    let response = get("/rooms/nowhere/messages".into()).await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "not_found");
    let response = get("/rooms/Bad%20Name/messages".into()).await.unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "invalid_room");
    let response = get("/rooms/alpha/messages?limit=lots".into()).await.unwrap();
    assert_eq!(response.status(), 400);
    let response = get("/no/such/thing".into()).await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "not_found");
    let response = http
        .post(format!("{base}/rooms/nowhere/messages"))
        .header("authorization", &auth)
        .json(&json!({"text": "x", "client_msg_id": "n-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(cluster.db.message_rows().await.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_serves_health_readiness_and_metrics() {
    let cluster = TestCluster::start(1, 1).await;
    let http = cluster.http();
    for addr in [cluster.gateways[0].ops_addr, cluster.services[0].ops_addr] {
        assert_eq!(
            http.get(format!("http://{addr}/healthz"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        assert_eq!(
            http.get(format!("http://{addr}/readyz")).send().await.unwrap().status(),
            200
        );
        let metrics = integration_tests::cluster::scrape_metrics(addr).await;
        assert!(metrics.contains("sc_"), "{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_that_is_no_page_gets_our_not_found_page_with_404() {
    let cluster = TestCluster::start(1, 1).await;
    let base = format!("http://{}", cluster.gateway(0));
    for path in ["/no-such-page", "/nested/missing/app.js", "/room.html.bak"] {
        let response = cluster.http().get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
        let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(content_type.starts_with("text/html"), "{path}: {content_type}");
        assert!(
            response.text().await.unwrap().contains("There is no page here"),
            "{path}"
        );
    }
    // Pages that exist are unchanged, and the API keeps its JSON 404.
    let index = cluster.http().get(format!("{base}/")).send().await.unwrap();
    assert_eq!(index.status(), 200);
    let api = cluster
        .http()
        .get(format!("{base}/api/v1/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 404);
    assert_eq!(api.json::<Value>().await.unwrap()["error"]["code"], "not_found");
}
