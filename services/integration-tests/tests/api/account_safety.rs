//! What keeps accounts safe, end to end on real gateways: the log-in throttle (across
//! gateways, per address, the hasher's capacity), names that cannot pass for a registered
//! user's, password changes that end the other sessions, password reset by e-mail through
//! a real SMTP server, and a guest who signs up keeping their rooms.

use integration_tests::TestCluster;
use integration_tests::cluster::PASSWORD;
use integration_tests::cluster::scrape_metrics;
use integration_tests::smtp::{SmtpSink, reset_token};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

/// A log-in on gateway `i` as if from `address` (the gateways trust 127.0.0.1 as a proxy):
/// the status, the `Retry-After` header and the body.
async fn log_in_from(
    cluster: &TestCluster,
    i: usize,
    address: &str,
    username: &str,
    password: &str,
) -> (u16, Option<u64>, Value) {
    let response = cluster
        .http()
        .post(format!("http://{}/api/v1/sessions", cluster.gateway(i)))
        .header("x-forwarded-for", address)
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .expect("log-in request");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().expect("whole seconds"));
    (status, retry_after, response.json().await.expect("a JSON body"))
}

/// A metric's value summed over every gateway of the cluster (0 when absent).
async fn total(cluster: &TestCluster, series: &str) -> f64 {
    let mut sum = 0.0;
    for gateway in &cluster.gateways {
        let text = scrape_metrics(gateway.ops_addr).await;
        sum += text
            .lines()
            .filter_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .map(|value| value.trim().parse::<f64>().expect("a number"))
            .sum::<f64>();
    }
    sum
}

fn behind_a_proxy(settings: &mut gateway::settings::Settings) {
    settings.gateway.trusted_proxies = vec!["127.0.0.1".into()];
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_log_ins_wait_longer_and_longer_on_every_gateway() {
    let cluster = TestCluster::start_with(2, 1, |s| {
        behind_a_proxy(s);
        s.auth.throttle.account_free_failures = 3;
    })
    .await;
    cluster.sign_up(0, "ann").await;
    let from = "203.0.113.1";
    for i in [0, 1, 0] {
        let (status, retry, body) = log_in_from(&cluster, i, from, "ann", "wrong password").await;
        assert_eq!((status, retry), (401, None), "{body}");
    }
    // The fourth attempt in a row, on the other gateway, and with the right password: it
    // must wait, and is not even checked.
    let (status, retry, body) = log_in_from(&cluster, 1, from, "ANN", PASSWORD).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("too_many_attempts"))
    );
    assert_eq!(retry, Some(1), "the first wait is a second");
    // From another address too: the account is what is being guessed.
    let (status, _, _) = log_in_from(&cluster, 0, "198.51.100.2", "ann", PASSWORD).await;
    assert_eq!(status, 429);

    // Waiting as told, the right password works, and forgives the failures.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (status, _, body) = log_in_from(&cluster, 0, from, "ann", PASSWORD).await;
    assert_eq!(status, 201, "{body}");
    for i in [1, 0, 1] {
        let (status, _, _) = log_in_from(&cluster, i, from, "ann", "wrong again").await;
        assert_eq!(status, 401, "forgiven: counted from zero");
    }
    let (_, retry, _) = log_in_from(&cluster, 0, from, "ann", "wrong again").await;
    assert_eq!(retry, Some(1));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (status, _, _) = log_in_from(&cluster, 1, from, "ann", "and again").await;
    assert_eq!(status, 401);
    // Each failure beyond the free ones doubles the wait.
    let (status, retry, _) = log_in_from(&cluster, 0, from, "ann", PASSWORD).await;
    assert_eq!((status, retry), (429, Some(2)));
    // What an operator sees: seven wrong passwords, four attempts held off.
    assert_eq!(total(&cluster, "sc_gateway_login_failures_total").await, 7.0);
    assert_eq!(total(&cluster, "sc_gateway_throttled_total").await, 4.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_address_leaves_other_addresses_able_to_log_in() {
    let cluster = TestCluster::start_with(1, 1, |s| {
        behind_a_proxy(s);
        s.auth.throttle.checks_per_address = 2;
        s.auth.throttle.address_free_failures = 20;
    })
    .await;
    cluster.sign_up(0, "ann").await;
    cluster.sign_up(0, "bob").await;
    let flooder = "203.0.113.66";
    let flood = futures::future::join_all((0..80).map(|n| {
        let cluster = &cluster;
        async move { log_in_from(cluster, 0, flooder, &format!("victim{n}"), "guess").await }
    }));
    let (flood, ann) = tokio::join!(flood, log_in_from(&cluster, 0, "198.51.100.7", "ann", PASSWORD));
    assert_eq!(ann.0, 201, "another address logs in during the flood: {}", ann.2);

    let checked = flood.iter().filter(|(status, ..)| *status == 401).count();
    let refused: Vec<_> = flood.iter().filter(|(status, ..)| *status == 429).collect();
    assert_eq!(checked + refused.len(), 80, "only 401 and 429: {flood:?}");
    assert!(
        refused
            .iter()
            .all(|(_, retry, body)| retry.is_some() && body["error"]["code"] == "too_many_attempts"),
        "{refused:?}"
    );
    // Beyond the checks running at once, a flood is refused without reaching the hasher.
    assert!(checked <= 20 + 2, "{checked} password checks for one address");
    // Guessing on, one at a time, the address runs out of free failures: at most the free
    // ones (and the checks that were running when the last was counted) were checked.
    let mut more = 0;
    while log_in_from(&cluster, 0, flooder, &format!("other{more}"), "guess")
        .await
        .0
        == 401
    {
        more += 1;
        assert!(
            checked + more <= 20 + 2,
            "{} password checks for one address",
            checked + more
        );
    }
    assert!(checked + more >= 20, "refused after {} failures", checked + more);
    // The address now waits, even with a right password; another address does not.
    let (status, _, _) = log_in_from(&cluster, 0, flooder, "bob", PASSWORD).await;
    assert_eq!(status, 429);
    let (status, _, _) = log_in_from(&cluster, 0, "198.51.100.8", "bob", PASSWORD).await;
    assert_eq!(status, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_is_ignored_from_a_client_that_is_no_trusted_proxy() {
    let cluster = TestCluster::start_with(1, 1, |s| {
        s.auth.throttle.address_free_failures = 2;
    })
    .await;
    // Each guess claims a fresh address; the gateway counts the connection's.
    for n in 0..2 {
        let (status, ..) = log_in_from(&cluster, 0, &format!("203.0.113.{n}"), &format!("x{n}"), "guess").await;
        assert_eq!(status, 401);
    }
    let (status, ..) = log_in_from(&cluster, 0, "203.0.113.99", "x9", "guess").await;
    assert_eq!(status, 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_that_pass_for_a_registered_user_are_refused() {
    let cluster = TestCluster::start(1, 1).await;
    cluster.sign_up(0, "bob_smith").await;
    let guest = |name: &str| {
        let body = json!({ "name": name });
        let cluster = &cluster;
        async move {
            cluster
                .call(0, Method::POST, "/api/v1/sessions", None, Some(body))
                .await
        }
    };
    for (name, status, code) in [
        ("bob_smith\u{200B}", 400, "invalid_name"),
        ("b\u{200D}ob", 400, "invalid_name"),
        ("b\u{2060}ob", 400, "invalid_name"),
        ("bob\u{FEFF}", 400, "invalid_name"),
        ("bo\u{00AD}b", 400, "invalid_name"),
        ("\u{202E}htims_bob", 400, "invalid_name"),
        ("bob\u{00A0}smith", 400, "invalid_name"),
        // A Cyrillic о; a Greek ο.
        ("b\u{043E}b_smith", 400, "invalid_name"),
        ("b\u{03BF}b_smith", 400, "invalid_name"),
        // Digit and letter look-alikes, and case.
        ("b0b_smith", 409, "username_taken"),
        ("B0B_SMITH", 409, "username_taken"),
        ("bob_srnith", 409, "username_taken"),
        ("BOB_SMITH", 409, "username_taken"),
    ] {
        let (got, body) = guest(name).await;
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{name:?}: {body}"
        );
    }
    for name in ["Дмитрий", "山田太郎", "José Álvarez", "محمد", "bob smith", "Bob ❤️"] {
        let (status, body) = guest(name).await;
        assert_eq!(status, 201, "{name:?}: {body}");
        assert_eq!(body["user"]["name"], name);
        assert_eq!(body["user"]["kind"], "guest");
    }
    // A new username that looks like a registered one.
    for username in ["b0b_smith", "BOB_SRNITH"] {
        let body = json!({
            "username": username, "email": "b@example.com", "first_name": "B", "last_name": "S",
            "password": PASSWORD,
        });
        let (status, reply) = cluster
            .call(0, Method::POST, "/api/v1/accounts", None, Some(body))
            .await;
        assert_eq!(
            (status, reply["error"]["code"].as_str()),
            (409, Some("username_taken")),
            "{username}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_password_ends_the_other_sessions_and_their_sockets() {
    let cluster = TestCluster::start(2, 1).await;
    let here = cluster.sign_up(0, "ann").await;
    let login = json!({"username": "ann", "password": PASSWORD});
    let (_, other) = cluster
        .call(1, Method::POST, "/api/v1/sessions", None, Some(login))
        .await;
    let other = other["token"].as_str().unwrap().to_owned();
    let mut kept = cluster.client_with(0, &here).await;
    kept.join("lobby", None).await;
    let mut ended = cluster.client_with(1, &other).await;
    ended.join("lobby", None).await;

    let change = |current: &str, new: &str| json!({"current_password": current, "new_password": new});
    let (status, body) = cluster
        .call(
            0,
            Method::PUT,
            "/api/v1/me/password",
            Some(&here),
            Some(change("wrong", "a brand new password")),
        )
        .await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("wrong_password")));
    let (status, body) = cluster
        .call(
            0,
            Method::PUT,
            "/api/v1/me/password",
            Some(&here),
            Some(change(PASSWORD, "short")),
        )
        .await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("weak_password")));
    let new = "a brand new password";
    let (status, body) = cluster
        .call(
            0,
            Method::PUT,
            "/api/v1/me/password",
            Some(&here),
            Some(change(PASSWORD, new)),
        )
        .await;
    assert_eq!(status, 204, "{body}");

    // The other session's socket, on the other gateway, closes; this one's goes on.
    assert_eq!(ended.expect_close().await, Some(4001));
    let (status, _) = cluster
        .call(1, Method::GET, "/api/v1/session", Some(&other), None)
        .await;
    assert_eq!(status, 401);
    kept.send_text("lobby", "still here", "c1").await;
    let (ack, _) = kept.recv_until("ack").await;
    assert_eq!(ack["client_msg_id"], "c1");
    let (status, _) = cluster.call(0, Method::GET, "/api/v1/session", Some(&here), None).await;
    assert_eq!(status, 200);

    let old = json!({"username": "ann", "password": PASSWORD});
    let (status, _) = cluster.call(0, Method::POST, "/api/v1/sessions", None, Some(old)).await;
    assert_eq!(status, 401, "the old password is gone");
    let fresh = json!({"username": "ann", "password": new});
    let (status, logged_in) = cluster
        .call(0, Method::POST, "/api/v1/sessions", None, Some(fresh))
        .await;
    assert_eq!(status, 201);
    // The panel's last log-in is the one before this session's: a time, not this session.
    let token = logged_in["token"].as_str().unwrap();
    let (_, panel) = cluster
        .call(0, Method::GET, "/api/v1/me/panel", Some(token), None)
        .await;
    let (_, sessions) = cluster
        .call(0, Method::GET, "/api/v1/me/sessions", Some(token), None)
        .await;
    let this_one = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true)
        .unwrap();
    assert!(panel["last_login"].is_string(), "{panel}");
    assert!(
        panel["last_login"].as_str() < this_one["created_at"].as_str(),
        "{panel} {this_one}"
    );

    // Guests have no password to change.
    let guest = cluster.session(0, "Gus").await;
    let (status, _) = cluster
        .call(
            0,
            Method::PUT,
            "/api/v1/me/password",
            Some(&guest),
            Some(change("x", new)),
        )
        .await;
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_who_signs_up_keeps_their_rooms() {
    let cluster = TestCluster::start(1, 1).await;
    let guest = cluster.session(0, "Gus").await;
    let enter = |body: Value| cluster.call(0, Method::POST, "/api/v1/rooms", Some(&guest), Some(body));
    let (status, _) = enter(json!({"name": "lobby"})).await;
    assert_eq!(status, 200);
    let (status, private) = enter(json!({"name": "Gus's plans", "visibility": "private"})).await;
    assert_eq!(status, 200);
    let private = private["room"]["name"].as_str().unwrap().to_owned();
    let (status, _) = cluster
        .call(
            0,
            Method::POST,
            "/api/v1/rooms/lobby/messages",
            Some(&guest),
            Some(json!({"text": "hi as a guest", "client_msg_id": "g1"})),
        )
        .await;
    assert_eq!(status, 201);
    let mut socket = cluster.client_with(0, &guest).await;
    socket.join("lobby", None).await;

    let sign_up = json!({
        "username": "gus", "email": "gus@example.com", "first_name": "Gus", "last_name": "G",
        "password": PASSWORD,
    });
    let (status, created) = cluster
        .call(0, Method::POST, "/api/v1/accounts", Some(&guest), Some(sign_up))
        .await;
    assert_eq!(status, 201, "{created}");
    let account = created["token"].as_str().unwrap();

    let (_, panel) = cluster
        .call(0, Method::GET, "/api/v1/me/panel", Some(account), None)
        .await;
    let mut rooms: Vec<&str> = panel["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    rooms.sort();
    let mut expected = vec!["lobby", private.as_str()];
    expected.sort();
    assert_eq!(rooms, expected, "{panel}");
    let (_, details) = cluster
        .call(0, Method::GET, &format!("/api/v1/rooms/{private}"), Some(account), None)
        .await;
    assert_eq!(
        details["owner"]["name"], "gus",
        "the owner is the account now: {details}"
    );

    // The guest session is over, its socket closed; its message stays the guest's.
    assert_eq!(socket.expect_close().await, Some(4001));
    let (status, _) = cluster
        .call(0, Method::GET, "/api/v1/session", Some(&guest), None)
        .await;
    assert_eq!(status, 401);
    let (_, history) = cluster
        .call(0, Method::GET, "/api/v1/rooms/lobby/messages", Some(account), None)
        .await;
    let first = &history["messages"][0];
    assert_eq!(
        (first["text"].as_str(), first["user"]["name"].as_str()),
        (Some("hi as a guest"), Some("Gus"))
    );
    assert!(first["user"]["id"].as_str().unwrap().starts_with("guest:"), "{first}");

    // Without a guest session, a sign-up starts with no rooms.
    let fresh = cluster.sign_up(0, "newcomer").await;
    let (_, panel) = cluster
        .call(0, Method::GET, "/api/v1/me/panel", Some(&fresh), None)
        .await;
    assert_eq!(panel["rooms"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_sites_sign_up_cannot_take_a_guests_rooms() {
    let cluster = TestCluster::start(1, 1).await;
    let guest = cluster.session(0, "Gus").await;
    let (status, _) = cluster
        .call(
            0,
            Method::POST,
            "/api/v1/rooms",
            Some(&guest),
            Some(json!({"name": "lobby"})),
        )
        .await;
    assert_eq!(status, 200);
    let sign_up = json!({
        "username": "mallory", "email": "m@example.com", "first_name": "M", "last_name": "M",
        "password": PASSWORD,
    });
    let request = || {
        cluster
            .http()
            .post(format!("http://{}/api/v1/accounts", cluster.gateway(0)))
            .header("cookie", format!("sc_session={guest}"))
            .json(&sign_up)
    };
    let refused = request().header("origin", "https://evil.example").send().await.unwrap();
    assert_eq!(refused.status().as_u16(), 403);
    let (status, _) = cluster
        .call(0, Method::GET, "/api/v1/session", Some(&guest), None)
        .await;
    assert_eq!(status, 200, "the guest session is untouched");
    let own = request()
        .header("origin", format!("http://{}", cluster.gateway(0)))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status().as_u16(), 201);
}

async fn ask_for_reset(cluster: &TestCluster, i: usize, email: &str) -> (u16, Value) {
    cluster
        .call(
            i,
            Method::POST,
            "/api/v1/password-resets",
            None,
            Some(json!({ "email": email })),
        )
        .await
}

async fn use_reset(cluster: &TestCluster, i: usize, token: &str, password: &str) -> (u16, Value) {
    let body = json!({"token": token, "new_password": password});
    cluster
        .call(i, Method::POST, "/api/v1/password-resets/confirm", None, Some(body))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_link_arrives_by_smtp_works_once_and_not_after_it_expires() {
    let sink = SmtpSink::start().await;
    let cluster = TestCluster::start_with(2, 1, |s| {
        s.mail.transport = gateway::settings::MailTransport::Smtp;
        s.mail.smtp_url = sink.url();
        s.mail.link_base = "https://chat.example.com".into();
    })
    .await;
    let before = cluster.sign_up(0, "ann").await;
    let mut socket = cluster.client_with(1, &before).await;
    socket.join("lobby", None).await;

    // Known or not, the same answer.
    let unknown = ask_for_reset(&cluster, 0, "nobody@example.com").await;
    let known = ask_for_reset(&cluster, 0, "ANN@example.com").await;
    assert_eq!(known, (202, json!({"status": "sent"})));
    assert_eq!(unknown, known);

    let mail = sink.wait_for("ann@example.com", 1).await.remove(0);
    assert!(mail.contains("https://chat.example.com/reset.html#token="), "{mail}");
    assert!(mail.contains("Subject: Reset your Super Channels password"), "{mail}");
    let token = reset_token(&mail);
    assert_eq!(token.len(), 43, "32 random bytes: {token}");
    assert!(sink.mails_to("nobody@example.com").is_empty());

    let (status, body) = use_reset(&cluster, 1, &token, "short").await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("weak_password")));
    let new = "a new passphrase from the mail";
    let (status, body) = use_reset(&cluster, 1, &token, new).await;
    assert_eq!(status, 204, "{body}");
    // Every session of the account ended, on every gateway.
    assert_eq!(socket.expect_close().await, Some(4001));
    let (status, _) = cluster
        .call(0, Method::GET, "/api/v1/session", Some(&before), None)
        .await;
    assert_eq!(status, 401);
    let (status, _) = cluster
        .call(
            0,
            Method::POST,
            "/api/v1/sessions",
            None,
            Some(json!({"username": "ann", "password": new})),
        )
        .await;
    assert_eq!(status, 201);

    // Once only.
    let (status, body) = use_reset(&cluster, 0, &token, "yet another passphrase").await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("reset_invalid")));

    // A second link, expired before it is used.
    ask_for_reset(&cluster, 1, "ann@example.com").await;
    let second = reset_token(&sink.wait_for("ann@example.com", 2).await[1]);
    assert_ne!(second, token);
    cluster.db.execute("UPDATE password_resets SET expires_at_ms = 1").await;
    let (status, body) = use_reset(&cluster, 0, &second, "yet another passphrase").await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("reset_invalid")));

    // Tokens that are not ours.
    for bad in ["", "x", "nul\0token", &"a".repeat(200), &token.to_uppercase()] {
        let (status, body) = use_reset(&cluster, 0, bad, "yet another passphrase").await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (404, Some("reset_invalid")),
            "{bad:?}"
        );
    }
    let (status, _) = cluster
        .call(
            0,
            Method::POST,
            "/api/v1/sessions",
            None,
            Some(json!({"username": "ann", "password": new})),
        )
        .await;
    assert_eq!(status, 201, "none of that changed the password");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_requests_are_limited_per_address_and_checked() {
    let cluster = TestCluster::start_with(1, 1, |s| {
        s.auth.throttle.address_free_resets = 3;
        s.mail.transport = gateway::settings::MailTransport::Off;
    })
    .await;
    let (status, body) = ask_for_reset(&cluster, 0, "ann@example.com").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "mail is off"
    );

    let dir = tempfile::tempdir().unwrap();
    let cluster = TestCluster::start_with(1, 1, |s| {
        s.auth.throttle.address_free_resets = 3;
        s.mail.transport = gateway::settings::MailTransport::File;
        s.mail.dir = dir.path().to_owned();
    })
    .await;
    cluster.sign_up(0, "ann").await;
    for bad in ["", "not an address", "a@b", "nul\0@example.com"] {
        let (status, body) = ask_for_reset(&cluster, 0, bad).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("invalid_email")),
            "{bad:?}"
        );
    }
    for _ in 0..3 {
        assert_eq!(ask_for_reset(&cluster, 0, "ann@example.com").await.0, 202);
    }
    let (status, body) = ask_for_reset(&cluster, 0, "someone@example.com").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("too_many_attempts"))
    );

    // The development transport wrote each mail to ann into the directory.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mails: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap())
            .collect();
        if mails.len() == 3 {
            assert!(mails.iter().all(|m| m.contains("To: ann@example.com")), "{mails:?}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{} mails written", mails.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
