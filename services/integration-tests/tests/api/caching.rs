//! What each kind of response says about compression and caching (see the gateway's
//! `router` module): static files compressed and revalidated, API data compressed and never
//! stored, uploads kept privately and left as they are, the websocket untouched, and the
//! policy headers on all of them.

use crate::uploads::{PNG, upload};
use integration_tests::TestCluster;
use reqwest::header::HeaderMap;
use std::io::Read;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The static files as the gateways serve them.
const STATIC_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../static");

/// GETs `path` from gateway 0 with these request headers; the status, the response's
/// headers and its body exactly as sent (the test client decompresses nothing).
async fn get(cluster: &TestCluster, path: &str, headers: &[(&str, &str)]) -> (u16, HeaderMap, Vec<u8>) {
    let mut request = cluster.http().get(format!("http://{}{path}", cluster.gateway(0)));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.bytes().await.unwrap().to_vec())
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().unwrap())
}

/// The body as it was before its `Content-Encoding`.
fn decoded(headers: &HeaderMap, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match header(headers, "content-encoding") {
        None => out.extend_from_slice(body),
        Some("gzip") => {
            flate2::read::GzDecoder::new(body).read_to_end(&mut out).unwrap();
        }
        Some("br") => {
            brotli::Decompressor::new(body, 4096).read_to_end(&mut out).unwrap();
        }
        Some(other) => panic!("unexpected content-encoding {other}"),
    }
    out
}

/// Headers every response carries, whatever its kind.
fn assert_policies(headers: &HeaderMap, what: &str) {
    let policy = header(headers, "permissions-policy").unwrap_or_else(|| panic!("{what}: no Permissions-Policy"));
    for feature in ["camera=()", "microphone=()", "geolocation=()"] {
        assert!(policy.contains(feature), "{what}: {policy}");
    }
    assert_eq!(
        header(headers, "cross-origin-opener-policy"),
        Some("same-origin"),
        "{what}"
    );
    assert_eq!(header(headers, "x-content-type-options"), Some("nosniff"), "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_files_are_compressed_as_accepted_and_revalidated_before_each_use() {
    let cluster = TestCluster::start(1, 1).await;
    for (path, file) in [
        ("/", "index.html"),
        ("/js/room.js", "js/room.js"),
        ("/style.css", "style.css"),
    ] {
        let original = std::fs::read(format!("{STATIC_DIR}/{file}")).unwrap();
        for (accept, expected) in [("br, gzip", Some("br")), ("gzip", Some("gzip")), ("identity", None)] {
            let (status, headers, body) = get(&cluster, path, &[("accept-encoding", accept)]).await;
            assert_eq!(status, 200, "{path}");
            assert_eq!(
                header(&headers, "content-encoding"),
                expected,
                "{path} accepting {accept}"
            );
            if expected.is_some() {
                assert!(
                    body.len() * 2 < original.len(),
                    "{path} as {accept}: {} bytes of {}",
                    body.len(),
                    original.len()
                );
            }
            assert_eq!(decoded(&headers, &body), original, "{path} as {accept}");
            assert_eq!(header(&headers, "cache-control"), Some("no-cache"), "{path}");
            assert_policies(&headers, path);
        }
        // The validator answers a browser that has the file: 304, no body.
        let (_, headers, _) = get(&cluster, path, &[]).await;
        let modified = header(&headers, "last-modified").unwrap_or_else(|| panic!("{path}: no Last-Modified"));
        let (status, _, body) = get(
            &cluster,
            path,
            &[("if-modified-since", modified), ("accept-encoding", "br")],
        )
        .await;
        assert_eq!((status, body.len()), (304, 0), "{path}");
    }

    // Our own 404 page is a static file too: compressed, revalidated, still a 404.
    let (status, headers, body) = get(&cluster, "/no/such/page", &[("accept-encoding", "gzip")]).await;
    assert_eq!(status, 404);
    assert_eq!(header(&headers, "content-encoding"), Some("gzip"));
    assert_eq!(header(&headers, "cache-control"), Some("no-cache"));
    assert_eq!(
        decoded(&headers, &body),
        std::fs::read(format!("{STATIC_DIR}/404.html")).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_data_is_compressed_and_never_stored_and_uploads_are_kept_privately_as_they_are() {
    let cluster = TestCluster::start(1, 1).await;
    let token = cluster.sign_up(0, "ann").await;
    let cookie = format!("sc_session={token}");

    // JSON: compressed when accepted, and no-store whatever the outcome.
    let (status, headers, body) = get(&cluster, "/api/v1/openapi.json", &[("accept-encoding", "br")]).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-encoding"), Some("br"));
    let document: serde_json::Value = serde_json::from_slice(&decoded(&headers, &body)).unwrap();
    assert!(document["paths"].is_object());
    for (path, expected_status) in [
        ("/api/v1/me", 200),
        ("/api/v1/me/panel", 200),
        ("/api/v1/rooms", 200),
        ("/api/v1/no-such-route", 404),
    ] {
        let (status, headers, body) = get(&cluster, path, &[("accept-encoding", "gzip"), ("cookie", &cookie)]).await;
        assert_eq!(status, expected_status, "{path}");
        assert_eq!(header(&headers, "cache-control"), Some("no-store"), "{path}");
        serde_json::from_slice::<serde_json::Value>(&decoded(&headers, &body)).unwrap();
        assert_policies(&headers, path);
    }
    let (status, headers, _) = get(&cluster, "/api/v1/me", &[]).await;
    assert_eq!((status, header(&headers, "cache-control")), (401, Some("no-store")));

    // An upload: its own long private caching, and an image is not compressed again.
    let (_, uploaded) = upload(&cluster, &token, PNG.to_vec()).await;
    let url = uploaded["url"].as_str().unwrap();
    let (status, headers, body) = get(&cluster, url, &[("accept-encoding", "br, gzip"), ("cookie", &cookie)]).await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "cache-control"),
        Some("private, max-age=31536000, immutable")
    );
    assert_eq!(header(&headers, "content-encoding"), None);
    assert_eq!(body, PNG);
    assert_policies(&headers, url);
}

/// A browser sends `Accept-Encoding` on the websocket handshake too; the upgrade must come
/// back as a bare 101 that no compression layer has touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_websocket_handshake_is_not_compressed() {
    let cluster = TestCluster::start(1, 1).await;
    let token = cluster.session(0, "ann").await;
    let mut stream = tokio::net::TcpStream::connect(cluster.gateway(0)).await.unwrap();
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Accept-Encoding: gzip, deflate, br\r\nCookie: sc_session={token}\r\n\r\n",
        cluster.gateway(0)
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        assert_eq!(
            stream.read(&mut byte).await.unwrap(),
            1,
            "the gateway closed during the handshake"
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(!head.contains("content-encoding"), "{head}");
    assert!(
        head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
}
