//! The OpenAPI document: served, parseable, and in step with the routes.
//!
//! Routes and their documentation are registered together (utoipa-axum), so a mounted
//! route cannot be missing from the document; this test checks the other direction (every
//! documented operation is mounted) and that the routes the browser client relies on are
//! all there.

use integration_tests::TestCluster;
use reqwest::Method;
use std::collections::BTreeSet;

const EXPECTED: &[(&str, &str)] = &[
    ("get", "/api/v1/openapi.json"),
    ("post", "/api/v1/accounts"),
    ("post", "/api/v1/sessions"),
    ("get", "/api/v1/session"),
    ("delete", "/api/v1/session"),
    ("get", "/api/v1/me/sessions"),
    ("delete", "/api/v1/me/sessions/{id}"),
    ("get", "/api/v1/me"),
    ("patch", "/api/v1/me"),
    ("get", "/api/v1/users/{username}"),
    ("get", "/api/v1/me/panel"),
    ("get", "/api/v1/rooms"),
    ("post", "/api/v1/rooms"),
    ("get", "/api/v1/rooms/{room}/messages"),
    ("post", "/api/v1/rooms/{room}/messages"),
    ("get", "/api/v1/rooms/{room}/members"),
    ("get", "/api/v1/rooms/{room}"),
    ("post", "/api/v1/rooms/{room}/actions"),
    ("post", "/api/v1/rooms/{room}/invite-links"),
    ("get", "/api/v1/invites/{token}"),
    ("post", "/api/v1/invites/{token}"),
    ("post", "/api/v1/dms"),
    ("delete", "/api/v1/rooms/{room}/membership"),
    ("patch", "/api/v1/rooms/{room}/membership"),
    ("put", "/api/v1/rooms/{room}/read"),
    ("get", "/api/v1/search"),
    ("post", "/api/v1/uploads"),
    ("get", "/api/v1/uploads/{id}"),
    ("get", "/api/v1/uploads/{id}/thumbnails/{width}"),
    ("get", "/api/v1/admin/rooms"),
    ("delete", "/api/v1/admin/rooms/{room}"),
    ("get", "/api/v1/admin/users"),
    ("put", "/api/v1/admin/users/{username}/disabled"),
    ("get", "/api/v1/admin/messages"),
    ("delete", "/api/v1/admin/messages/{id}"),
    ("get", "/api/v1/admin/audit"),
    ("put", "/api/v1/me/password"),
    ("post", "/api/v1/password-resets"),
    ("post", "/api/v1/password-resets/confirm"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_parses_and_matches_the_mounted_routes() {
    let cluster = TestCluster::start(1, 1).await;
    let (status, doc) = cluster.call(0, Method::GET, "/api/v1/openapi.json", None, None).await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{}", doc["openapi"]);
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().unwrap() {
            assert!(
                operation["responses"].is_object(),
                "{method} {path} documents its responses"
            );
            documented.insert((method.clone(), path.clone()));
        }
    }
    let expected: BTreeSet<(String, String)> = EXPECTED.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(documented, expected, "the document lists exactly the API's routes");
    for schema in ["ErrorBody", "MessageDoc", "Panel", "SessionCreated"] {
        assert!(doc["components"]["schemas"][schema].is_object(), "schema {schema}");
    }

    // Every documented operation is mounted: without a session it is refused (or served),
    // never the fallback's "no such endpoint" or a 405.
    for (method, path) in &documented {
        let concrete = path
            .replace("{id}", "1")
            .replace("{room}", "lobby")
            .replace("{username}", "ann");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let (status, body) = cluster.call(0, method.clone(), &concrete, None, None).await;
        assert_ne!(status, 405, "{method} {concrete}");
        assert_ne!(
            body["error"]["message"], "no such endpoint",
            "{method} {concrete} is not mounted"
        );
    }
}
