//! The suite's tests of what keeps accounts safe: look-alike usernames, the log-in
//! throttle's counts, password changes and resets, and a guest who signs up.

use super::directory::new_user;
use super::*;
use chat_domain::lookalike::skeleton_keys;
use chat_domain::{AccessError, RoomRole, Visibility};
use chat_store::{NewPasswordReset, NewRoom};

fn uid(id: &str) -> UserId {
    UserId::parse(id).unwrap()
}

fn session(id: &str, user_id: &str) -> chat_store::SessionRecord {
    chat_store::SessionRecord {
        id: id.into(),
        token_hash: format!("hash-of-{id}"),
        user_id: user_id.into(),
        user_name: "someone".into(),
        guest: user_id.starts_with("guest:"),
        created_at_ms: now_ms(),
        expires_at_ms: now_ms() + 60_000,
        user_agent: "test".into(),
    }
}

pub(crate) async fn look_alike_usernames_are_refused(db: &TestDb) {
    let dir = db.database().await.directory;
    dir.create_user(&new_user("u:1", "bob_smith")).await.unwrap();
    for look_alike in ["B0B_SMITH", "bob_srnith", "b0b_smith"] {
        let err = dir.create_user(&new_user("u:2", look_alike)).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{look_alike}: {err:?}");
    }
    dir.create_user(&new_user("u:3", "rob_smith")).await.unwrap();
    for name in [
        "bob_smith",
        "BOB_SMITH",
        "b0b_srnith",
        "b\u{043E}b_smith",
        "bob_smith\u{200B}",
    ] {
        assert!(dir.looks_like_username(name).await.unwrap(), "{name:?}");
    }
    for name in ["bob", "bob smith", "Bob Smith 2", "Дмитрий"] {
        assert!(!dir.looks_like_username(name).await.unwrap(), "{name:?}");
    }
}

/// The migration fills the keys of accounts made before it with one SQL statement; it must
/// agree with the domain's keys on every character a username may hold.
pub(crate) async fn the_migrations_keys_are_the_domains(db: &TestDb) {
    let migration = include_str!("../../migrations/postgres/20261209000000_accounts_hardened.sql");
    let start = migration.find("UPDATE users SET").expect("the backfill");
    let backfill = &migration[start..start + migration[start..].find(';').unwrap()];
    let dir = db.database().await.directory;
    let alphabet: String = ('A'..='Z').chain('a'..='z').chain('0'..='9').chain(['_']).collect();
    for (i, chunk) in alphabet.as_bytes().chunks(8).enumerate() {
        let username = format!("X{}", std::str::from_utf8(chunk).unwrap());
        dir.create_user(&new_user(&format!("u:{i}"), &username)).await.unwrap();
    }
    db.execute("UPDATE users SET name_key = '', name_key_folded = ''").await;
    db.execute(backfill).await;
    let sql = "SELECT username, name_key, name_key_folded FROM users";
    let rows: Vec<(String, String, String)> = if db.url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        sqlx::query_as(sql).fetch_all(&pool).await.unwrap()
    } else {
        let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
        sqlx::query_as(sql).fetch_all(&pool).await.unwrap()
    };
    assert_eq!(rows.len(), 8);
    for (username, key, folded) in rows {
        assert_eq!([key, folded], skeleton_keys(&username), "{username}");
    }
}

pub(crate) async fn login_failures_count_per_key_and_are_forgiven(db: &TestDb) {
    let dir = db.database().await.directory;
    let keys = ["account:ann".to_owned(), "address:10.0.0.1".to_owned()];
    let t = 1_000_000;
    assert!(dir.login_failures(&keys, 0).await.unwrap().is_empty());
    dir.record_login_failure(&keys, t, 0).await.unwrap();
    dir.record_login_failure(&keys[..1], t + 1, 0).await.unwrap();
    let found = dir.login_failures(&keys, 0).await.unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!(
        (found[0].0.as_str(), found[0].1.failures, found[0].1.last_ms),
        ("account:ann", 2, t + 1)
    );
    assert_eq!((found[1].1.failures, found[1].1.last_ms), (1, t));
    // Counts older than the window are not reported, and start again at one.
    assert_eq!(dir.login_failures(&keys, t + 1).await.unwrap().len(), 1);
    dir.record_login_failure(&keys[1..], t + 10, t + 5).await.unwrap();
    let found = dir.login_failures(&keys[1..], 0).await.unwrap();
    assert_eq!(found[0].1.failures, 1, "forgiven, then counted again");
    dir.clear_login_failures("account:ann").await.unwrap();
    assert_eq!(dir.login_failures(&keys, 0).await.unwrap().len(), 1);
    assert_eq!(dir.purge_credentials(t + 11, t).await.unwrap(), 1);
    assert!(dir.login_failures(&keys, 0).await.unwrap().is_empty());
}

pub(crate) async fn a_new_password_ends_the_other_sessions(db: &TestDb) {
    let dir = db.database().await.directory;
    dir.create_user(&new_user("u:1", "ann")).await.unwrap();
    for id in ["s1", "s2", "s3"] {
        dir.create_session(&session(id, "u:1")).await.unwrap();
    }
    dir.create_session(&session("other", "u:2")).await.unwrap();
    let mut ended = dir
        .set_password(&uid("u:1"), "$argon2id$new", Some("s2"))
        .await
        .unwrap()
        .unwrap();
    ended.sort();
    assert_eq!(ended, ["s1", "s3"]);
    let user = dir.user_by_id(&uid("u:1")).await.unwrap().unwrap();
    assert_eq!(user.password_hash, "$argon2id$new");
    assert!(dir.session("hash-of-s2", now_ms()).await.unwrap().is_some(), "kept");
    assert!(dir.session("hash-of-s1", now_ms()).await.unwrap().is_none());
    assert!(
        dir.session("hash-of-other", now_ms()).await.unwrap().is_some(),
        "someone else's"
    );
    assert_eq!(dir.set_password(&uid("u:9"), "x", None).await.unwrap(), None);
}

pub(crate) async fn a_reset_token_works_once_before_it_expires(db: &TestDb) {
    let dir = db.database().await.directory;
    dir.create_user(&new_user("u:1", "ann")).await.unwrap();
    dir.create_session(&session("s1", "u:1")).await.unwrap();
    let found = dir.users_by_email("ANN@Example.COM", 5).await.unwrap();
    assert_eq!(found.len(), 1);
    assert!(dir.users_by_email("nobody@example.com", 5).await.unwrap().is_empty());

    let t = now_ms();
    let reset = |hash: &'static str, expires_at_ms: i64| NewPasswordReset {
        token_hash: hash,
        user_id: &found[0].id,
        now_ms: t,
        expires_at_ms,
    };
    assert!(
        dir.create_password_reset(&reset("h1", t + 60_000), t - 1, 2)
            .await
            .unwrap()
    );
    assert!(dir.create_password_reset(&reset("h2", t - 1), t - 1, 2).await.unwrap());
    assert!(
        !dir.create_password_reset(&reset("h3", t + 60_000), t - 1, 2)
            .await
            .unwrap(),
        "at most two in the window"
    );
    assert_eq!(dir.password_reset_user("h1", t).await.unwrap().unwrap().id, "u:1");
    assert!(dir.password_reset_user("h2", t).await.unwrap().is_none(), "expired");
    assert!(
        dir.password_reset_user("h3", t).await.unwrap().is_none(),
        "never stored"
    );

    let (user, ended) = dir
        .redeem_password_reset("h1", "$argon2id$reset", t)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((user.as_str(), ended), ("u:1", vec!["s1".to_owned()]));
    assert_eq!(
        dir.user_by_id(&user).await.unwrap().unwrap().password_hash,
        "$argon2id$reset"
    );
    assert!(
        dir.redeem_password_reset("h1", "again", t).await.unwrap().is_none(),
        "used"
    );
    assert!(
        dir.redeem_password_reset("h2", "late", t).await.unwrap().is_none(),
        "expired"
    );
    assert!(dir.password_reset_user("h1", t).await.unwrap().is_none());
    assert_eq!(
        dir.user_by_id(&user).await.unwrap().unwrap().password_hash,
        "$argon2id$reset"
    );
}

pub(crate) async fn a_guest_who_signs_up_keeps_their_rooms(db: &TestDb) {
    let dir = db.database().await.directory;
    let guest = Author {
        id: uid("guest:g1"),
        name: DisplayName::parse("Gus").unwrap(),
    };
    dir.create_room(&NewRoom {
        name: &room("p.guests"),
        visibility: Visibility::Private,
        title: Some("Gus's room"),
        owner: &guest,
        now_ms: now_ms(),
    })
    .await
    .unwrap();
    dir.create_session(&session("gs", "guest:g1")).await.unwrap();

    let mut user = new_user("u:1", "gus");
    user.adopt_guest = Some(guest.id.clone());
    dir.create_user(&user).await.unwrap();

    let rooms = dir.member_room_names(&uid("u:1"), 10).await.unwrap();
    assert_eq!(rooms, [room("p.guests")]);
    let standing = dir
        .room_access(&room("p.guests"), &uid("u:1"), false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(standing.standing.role, Some(RoomRole::Owner));
    assert_eq!(
        dir.member_name(&room("p.guests"), &uid("u:1"))
            .await
            .unwrap()
            .as_deref(),
        Some("gus")
    );
    let old = dir
        .room_access(&room("p.guests"), &guest.id, false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        old.check_read(),
        Err(AccessError::NotFound),
        "the guest id holds nothing now"
    );
    assert!(
        dir.session("hash-of-gs", now_ms()).await.unwrap().is_none(),
        "the guest session ended"
    );

    // A failed sign-up moves nothing.
    let guest2 = uid("guest:g2");
    dir.create_room(&NewRoom {
        name: &room("p.second"),
        visibility: Visibility::Private,
        title: None,
        owner: &Author {
            id: guest2.clone(),
            name: DisplayName::parse("Gil").unwrap(),
        },
        now_ms: now_ms(),
    })
    .await
    .unwrap();
    let mut taken = new_user("u:2", "GUS");
    taken.adopt_guest = Some(guest2.clone());
    assert!(matches!(dir.create_user(&taken).await, Err(StoreError::Conflict(_))));
    assert_eq!(dir.member_room_names(&guest2, 10).await.unwrap(), [room("p.second")]);
}

pub(crate) async fn a_log_in_keeps_the_one_before_it(db: &TestDb) {
    let dir = db.database().await.directory;
    dir.create_user(&new_user("u:1", "ann")).await.unwrap();
    let user = || async { dir.user_by_id(&uid("u:1")).await.unwrap().unwrap() };
    assert_eq!(
        (user().await.last_login_ms, user().await.previous_login_ms),
        (None, None)
    );
    dir.record_login(&uid("u:1"), 1_000).await.unwrap();
    assert_eq!(
        (user().await.last_login_ms, user().await.previous_login_ms),
        (Some(1_000), None)
    );
    dir.record_login(&uid("u:1"), 2_000).await.unwrap();
    assert_eq!(
        (user().await.last_login_ms, user().await.previous_login_ms),
        (Some(2_000), Some(1_000))
    );
}
