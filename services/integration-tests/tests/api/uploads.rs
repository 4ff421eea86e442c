//! Uploads: what goes in is sniffed and bounded, what comes out is typed and inert, and an
//! image message takes the same path as any message.

use integration_tests::TestCluster;
use reqwest::Method;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A real 1×1 PNG.
pub(crate) const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\0\x05\0\x01\xff\x89\x99=\x1d\0\0\0\0IEND\xaeB`\x82";

/// A PNG `width` × `height` of a gradient (so it compresses and resizes like a picture).
pub(crate) fn png_of(width: u32, height: u32) -> Vec<u8> {
    let picture = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, (x ^ y) as u8]));
    let mut out = Vec::new();
    picture
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

/// A real PNG wider than every thumbnail width: it gets one of each.
pub(crate) fn wide_png() -> Vec<u8> {
    png_of(800, 8)
}

pub(crate) async fn upload(cluster: &TestCluster, token: &str, bytes: Vec<u8>) -> (u16, serde_json::Value) {
    let response = cluster
        .http()
        .post(format!("http://{}/api/v1/uploads?name=cat.png", cluster.gateway(0)))
        .bearer_auth(token)
        .header("content-type", "image/png")
        .body(bytes)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_png_round_trips_with_safe_headers_and_html_posing_as_png_is_refused() {
    let cluster = TestCluster::start(1, 1).await;
    let token = cluster.sign_up(0, "ann").await;
    let (status, uploaded) = upload(&cluster, &token, PNG.to_vec()).await;
    assert_eq!(status, 201, "{uploaded}");
    assert_eq!(
        (uploaded["content_type"].as_str(), uploaded["size"].as_u64()),
        (Some("image/png"), Some(PNG.len() as u64))
    );
    let response = cluster
        .http()
        .get(format!(
            "http://{}{}",
            cluster.gateway(0),
            uploaded["url"].as_str().unwrap()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let header = |name: &str| response.headers()[name].to_str().unwrap().to_owned();
    assert_eq!(header("content-type"), "image/png");
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert!(header("cache-control").contains("max-age"));
    assert!(header("content-security-policy").contains("sandbox"));
    assert_eq!(response.bytes().await.unwrap().as_ref(), PNG);
    // No wider than a thumbnail width, it is its own thumbnail (an avatar's URL names the
    // 160); any other width is none.
    let thumbnail = |width: u32| {
        cluster
            .http()
            .get(format!(
                "http://{}{}/thumbnails/{width}",
                cluster.gateway(0),
                uploaded["url"].as_str().unwrap()
            ))
            .bearer_auth(&token)
            .send()
    };
    let response = thumbnail(160).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().as_ref(), PNG);
    assert_eq!(thumbnail(100).await.unwrap().status(), 404);

    let (status, reply) = upload(&cluster, &token, b"<!doctype html><script>alert(1)</script>".to_vec()).await;
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (415, Some("unsupported_media_type"))
    );
    let (status, _) = cluster
        .call(0, Method::GET, "/api/v1/uploads/999999", Some(&token), None)
        .await;
    assert_eq!(status, 404);
    let anonymous = cluster.http().get(format!(
        "http://{}{}",
        cluster.gateway(0),
        uploaded["url"].as_str().unwrap()
    ));
    assert_eq!(anonymous.send().await.unwrap().status(), 401, "uploads need a session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_upload_is_refused_without_being_read_whole() {
    const LIMIT: usize = 64 * 1024;
    let cluster = TestCluster::start_with(1, 1, |s| s.uploads.max_bytes = LIMIT).await;
    let token = cluster.sign_up(0, "ann").await;

    // Declared too big: refused from the header alone.
    let (status, reply) = upload(&cluster, &token, vec![0x89; LIMIT + 1]).await;
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (413, Some("payload_too_large"))
    );

    // Undeclared (chunked) and endless: cut off soon after the limit. The stream counts
    // what the server pulled; a server that read it whole would pull all 512 MiB.
    let produced = Arc::new(AtomicUsize::new(0));
    let counter = produced.clone();
    let chunks = futures::stream::iter((0..8192).map(move |_| {
        counter.fetch_add(64 * 1024, Ordering::Relaxed);
        Ok::<_, std::io::Error>(bytes::Bytes::from(vec![0x89u8; 64 * 1024]))
    }));
    let result = cluster
        .http()
        .post(format!("http://{}/api/v1/uploads", cluster.gateway(0)))
        .bearer_auth(&token)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await;
    match result {
        Ok(response) => assert_eq!(response.status(), 413),
        // The server may close while the client is still writing; the count below is what
        // matters.
        Err(error) => eprintln!("the upload ended with {error}"),
    }
    let pulled = produced.load(Ordering::Relaxed);
    assert!(
        pulled < 64 * 1024 * 1024,
        "the server pulled {pulled} bytes of an endless upload"
    );
    let database = cluster.database().await;
    let first = chat_domain::UploadId::new(1).unwrap();
    assert!(database.blobs.get(first).await.unwrap().is_none(), "nothing was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_message_reaches_both_gateways_and_only_your_own_uploads_attach() {
    let cluster = TestCluster::start(2, 1).await;
    let ann = cluster.sign_up(0, "ann").await;
    let bob = cluster.sign_up(1, "bob").await;
    let (_, uploaded) = upload(&cluster, &ann, PNG.to_vec()).await;
    let id = uploaded["id"].as_i64().unwrap();
    let mut ann_ws = cluster.client_with(0, &ann).await;
    let mut bob_ws = cluster.client_with(1, &bob).await;
    ann_ws.join("pics", None).await;
    bob_ws.join("pics", None).await;
    ann_ws
        .send_json(json!({"type": "send", "room": "pics", "client_msg_id": "img-1", "attachment_id": id}))
        .await;
    for ws in [&mut ann_ws, &mut bob_ws] {
        let (message, _) = ws.recv_until("message").await;
        assert_eq!(message["kind"], "image");
        assert_eq!(
            message["attachment"],
            json!({"id": id, "url": format!("/api/v1/uploads/{id}"), "width": 1, "height": 1}),
            "1 × 1: no thumbnails"
        );
        assert_eq!(message["text"], "");
    }
    // Bob cannot attach Ann's upload, over the socket or over HTTP.
    bob_ws
        .send_json(json!({"type": "send", "room": "pics", "client_msg_id": "img-2", "attachment_id": id}))
        .await;
    let (error, _) = bob_ws.recv_until("error").await;
    assert_eq!(
        (error["code"].as_str(), error["ref"].as_str()),
        (Some("invalid_argument"), Some("img-2"))
    );
    let body = json!({"client_msg_id": "img-3", "attachment_id": id, "text": "mine now"});
    let (status, _) = cluster
        .call(1, Method::POST, "/api/v1/rooms/pics/messages", Some(&bob), Some(body))
        .await;
    assert_eq!(status, 400);
    // As an avatar: only your own.
    let patch = json!({"avatar_id": id, "bio": "hello"});
    let (status, _) = cluster
        .call(1, Method::PATCH, "/api/v1/me", Some(&bob), Some(patch.clone()))
        .await;
    assert_eq!(status, 400);
    let (status, me) = cluster
        .call(0, Method::PATCH, "/api/v1/me", Some(&ann), Some(patch))
        .await;
    assert_eq!(
        (status, me["avatar_url"].as_str(), me["bio"].as_str()),
        (
            200,
            Some(&*format!("/api/v1/uploads/{id}/thumbnails/160")),
            Some("hello")
        )
    );
    let (status, profile) = cluster
        .call(1, Method::GET, "/api/v1/users/ANN", Some(&bob), None)
        .await;
    assert_eq!((status, profile["bio"].as_str()), (200, Some("hello")));
    assert!(profile.get("email").is_none(), "e-mail is private: {profile}");
    // The room's member list carries each avatar: no profile request per person.
    let (_, members) = cluster
        .call(1, Method::GET, "/api/v1/rooms/pics/members", Some(&bob), None)
        .await;
    let avatars: Vec<(&str, Option<&str>)> = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap(), m["avatar_url"].as_str()))
        .collect();
    let ann_avatar = format!("/api/v1/uploads/{id}/thumbnails/160");
    assert!(avatars.contains(&("ann", Some(ann_avatar.as_str()))), "{members}");
    assert!(avatars.contains(&("bob", None)), "{members}");
}

/// A JPEG as a phone takes it: an EXIF segment with where it was taken.
fn photo_with_position(width: u32, height: u32) -> (Vec<u8>, &'static [u8]) {
    const POSITION: &[u8] = b"GPSLatitude 51.5007N GPSLongitude 0.1246W";
    let picture = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 90]));
    let mut plain = Vec::new();
    picture
        .write_to(&mut std::io::Cursor::new(&mut plain), image::ImageFormat::Jpeg)
        .unwrap();
    let exif = [b"Exif\0\0MM\0*\0\0\0\x08\0\0\0\0\0\0".as_slice(), POSITION].concat();
    let mut segment = vec![0xFF, 0xE1];
    segment.extend_from_slice(&((exif.len() + 2) as u16).to_be_bytes());
    segment.extend(exif);
    ([&plain[..2], &segment, &plain[2..]].concat(), POSITION)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_gets_its_size_and_thumbnails_and_loses_its_position() {
    let cluster = TestCluster::start(2, 1).await;
    let ann = cluster.sign_up(0, "ann").await;
    let bob = cluster.sign_up(1, "bob").await;
    let (photo, position) = photo_with_position(1000, 600);
    let response = cluster
        .http()
        .post(format!("http://{}/api/v1/uploads", cluster.gateway(0)))
        .bearer_auth(&ann)
        .body(photo)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let uploaded: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        (
            uploaded["content_type"].as_str(),
            uploaded["width"].as_u64(),
            uploaded["height"].as_u64()
        ),
        (Some("image/jpeg"), Some(1000), Some(600))
    );
    let id = uploaded["id"].as_i64().unwrap();
    let fetch = |token: String, path: String| {
        let request = cluster
            .http()
            .get(format!("http://{}{path}", cluster.gateway(1)))
            .bearer_auth(token);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let kind = response
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned());
            (status, kind, response.bytes().await.unwrap().to_vec())
        }
    };
    // Not posted anywhere yet: only Ann's.
    let (status, _, _) = fetch(bob.clone(), format!("/api/v1/uploads/{id}/thumbnails/360")).await;
    assert_eq!(status, 404);

    let mut ann_ws = cluster.client_with(0, &ann).await;
    let mut bob_ws = cluster.client_with(1, &bob).await;
    ann_ws.join("photos", None).await;
    bob_ws.join("photos", None).await;
    ann_ws
        .send_json(
            json!({"type": "send", "room": "photos", "client_msg_id": "p1", "text": "view", "attachment_id": id}),
        )
        .await;
    let expected = json!({
        "id": id, "url": format!("/api/v1/uploads/{id}"), "width": 1000, "height": 600,
        "thumbnails": [
            {"width": 160, "height": 96, "url": format!("/api/v1/uploads/{id}/thumbnails/160")},
            {"width": 360, "height": 216, "url": format!("/api/v1/uploads/{id}/thumbnails/360")},
            {"width": 720, "height": 432, "url": format!("/api/v1/uploads/{id}/thumbnails/720")},
        ]
    });
    for ws in [&mut ann_ws, &mut bob_ws] {
        let (message, _) = ws.recv_until("message").await;
        assert_eq!(message["attachment"], expected);
    }
    let (_, page) = cluster
        .call(1, Method::GET, "/api/v1/rooms/photos/messages", Some(&bob), None)
        .await;
    assert_eq!(
        page["messages"][0]["attachment"], expected,
        "history says the same: {page}"
    );

    // Each file is what the frame says, and none of them knows where the photo was taken.
    let (status, kind, whole) = fetch(bob.clone(), format!("/api/v1/uploads/{id}")).await;
    assert_eq!((status, kind.as_deref()), (200, Some("image/jpeg")));
    assert!(!contains(&whole, position) && !contains(&whole, b"Exif"));
    let decoded = image::load_from_memory(&whole).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (1000, 600));
    for thumbnail in expected["thumbnails"].as_array().unwrap() {
        let (status, kind, bytes) = fetch(bob.clone(), thumbnail["url"].as_str().unwrap().to_owned()).await;
        assert_eq!((status, kind.as_deref()), (200, Some("image/jpeg")));
        assert!(!contains(&bytes, position));
        let decoded = image::load_from_memory(&bytes).unwrap();
        assert_eq!(
            (u64::from(decoded.width()), u64::from(decoded.height())),
            (
                thumbnail["width"].as_u64().unwrap(),
                thumbnail["height"].as_u64().unwrap()
            )
        );
        assert!(bytes.len() < whole.len());
    }
    for width in [100, 361, 1000] {
        let (status, _, _) = fetch(bob.clone(), format!("/api/v1/uploads/{id}/thumbnails/{width}")).await;
        assert_eq!(status, 404, "no thumbnail {width} wide");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decompression_bomb_and_a_broken_image_are_refused_and_nothing_is_stored() {
    let cluster = TestCluster::start(1, 1).await;
    let token = cluster.sign_up(0, "ann").await;
    // 100,000 × 100,000 pixels claimed by a few bytes: 30 GB once decoded.
    let mut bomb = png_of(16, 16);
    bomb[16..24].copy_from_slice(&[0, 1, 0x86, 0xA0, 0, 1, 0x86, 0xA0]);
    let crc = {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in &bomb[12..29] {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    };
    bomb[29..33].copy_from_slice(&crc.to_be_bytes());
    let (status, reply) = upload(&cluster, &token, bomb).await;
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (413, Some("payload_too_large")),
        "{reply}"
    );
    assert!(
        reply["error"]["message"].as_str().unwrap().contains("pixels"),
        "{reply}"
    );

    // The right signature, then nothing a decoder can read.
    let mut broken = png_of(16, 16);
    broken.truncate(40);
    let (status, reply) = upload(&cluster, &token, broken).await;
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (415, Some("unsupported_media_type")),
        "{reply}"
    );
    let database = cluster.database().await;
    let first = chat_domain::UploadId::new(1).unwrap();
    assert!(database.blobs.get(first).await.unwrap().is_none(), "nothing was stored");
}
