//! One suite, run against both backends: every test is written once and the macros at the
//! bottom generate a `#[tokio::test]` per backend.
//!
//! Each test gets a database of its own from `test_database::TestDb`: a fresh file in a
//! temporary directory for SQLite; for PostgreSQL a fresh database `test_<uuid>` on the
//! server named by `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`),
//! dropped again when the test ends, even when it fails.

use chat_domain::{
    Author, ChatMessage, ClientMsgId, DisplayName, MessageKind, MessageText, RoomName, UploadId, UserId,
};
use chat_store::{AppendOutcome, ConnectOptions, NewMessage, Store, StoreError};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use test_database::{TestDb, with_database};

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

/// A fresh database per test, PostgreSQL or SQLite: the helper the integration tests use too.
async fn sqlite() -> TestDb {
    TestDb::sqlite()
}

async fn postgres() -> TestDb {
    TestDb::create().await
}

/// What the suite opens on a test database, each on a pool of its own, as a separate
/// process would have.
trait Open {
    async fn store(&self) -> Arc<dyn Store>;
    async fn database(&self) -> chat_store::Database;
}

impl Open for TestDb {
    async fn store(&self) -> Arc<dyn Store> {
        chat_store::connect(&options(&self.url)).await.expect("connect")
    }

    async fn database(&self) -> chat_store::Database {
        chat_store::open(&options(&self.url)).await.expect("open")
    }
}

fn options(url: &str) -> ConnectOptions {
    let mut options = ConnectOptions::new(url);
    // Tests run in parallel against one server: stay well under its connection limit.
    options.max_connections = 4;
    options
}

fn room(name: &str) -> RoomName {
    RoomName::parse(name).unwrap()
}

fn author(id: &str) -> Author {
    Author {
        id: UserId::parse(id).unwrap(),
        name: DisplayName::parse(&format!("Name of {id}")).unwrap(),
    }
}

fn msg(room_name: &str, author_id: &str, cmid: &str, text: &str) -> NewMessage {
    NewMessage {
        room: room(room_name),
        author: author(author_id),
        text: MessageText::parse(text.to_owned()).unwrap(),
        client_msg_id: ClientMsgId::parse(cmid).unwrap(),
        kind: MessageKind::Text,
        attachment: None,
    }
}

async fn enter(store: &Arc<dyn Store>, names: &[&str]) {
    for name in names {
        store.enter_room(&room(name)).await.unwrap();
    }
}

fn stored(outcome: &AppendOutcome) -> &ChatMessage {
    match outcome {
        AppendOutcome::Stored(m) => m,
        other => panic!("expected Stored, got {other:?}"),
    }
}

fn duplicate(outcome: &AppendOutcome) -> &ChatMessage {
    match outcome {
        AppendOutcome::Duplicate(m) => m,
        other => panic!("expected Duplicate, got {other:?}"),
    }
}

async fn all_history(store: &Arc<dyn Store>, name: &str) -> Vec<ChatMessage> {
    store.history_after(&room(name), 0, u32::MAX).await.unwrap()
}

fn seqs(messages: &[ChatMessage]) -> Vec<u64> {
    messages.iter().map(|m| m.seq).collect()
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

// ---------------------------------------------------------------------------------------
// Tests taking a store
// ---------------------------------------------------------------------------------------

async fn enter_room_creates_once_and_lists_by_cursor(store: Arc<dyn Store>) {
    let before = now_ms();
    let (first, created) = store.enter_room(&room("lobby")).await.unwrap();
    assert!(created);
    assert_eq!(first.name, room("lobby"));
    assert_eq!(first.last_seq, 0);
    // Database clock vs. ours: allow for a little skew.
    assert!(
        (before - 60_000..now_ms() + 60_000).contains(&first.created_at_ms),
        "{first:?}"
    );

    let (again, created) = store.enter_room(&room("Lobby")).await.unwrap();
    assert!(!created, "entering an existing room must not create it");
    assert_eq!(again, first);
    assert_eq!(store.room(&room("lobby")).await.unwrap(), Some(first));
    assert_eq!(store.room(&room("nowhere")).await.unwrap(), None);

    // Byte order: '-' < '.' < digits < '_' < letters.
    enter(&store, &["b", "a-1", "a", "a_1", "c", "a.1"]).await;
    let names = |rooms: Vec<chat_store::RoomInfo>| rooms.into_iter().map(|r| r.name.into_string()).collect::<Vec<_>>();
    let page1 = store.list_rooms(None, 3).await.unwrap();
    assert_eq!(names(page1.clone()), ["a", "a-1", "a.1"]);
    let page2 = store.list_rooms(Some(&page1[2].name), 3).await.unwrap();
    assert_eq!(names(page2.clone()), ["a_1", "b", "c"]);
    let page3 = store.list_rooms(Some(&page2[2].name), 3).await.unwrap();
    assert_eq!(names(page3.clone()), ["lobby"]);
    assert!(store.list_rooms(Some(&page3[0].name), 3).await.unwrap().is_empty());
    assert!(store.list_rooms(None, 0).await.unwrap().is_empty());
    // A cursor need not be an existing room.
    assert_eq!(
        names(store.list_rooms(Some(&room("bb")), 10).await.unwrap()),
        ["c", "lobby"]
    );
    store.ping().await.unwrap();
}

async fn a_batch_over_several_rooms_gets_gapless_seqs_in_input_order(store: Arc<dyn Store>) {
    enter(&store, &["red", "green", "blue"]).await;
    let before = now_ms();
    let batch = vec![
        msg("red", "u1", "r1", "red one"),
        msg("green", "u1", "g1", "green one"),
        msg("red", "u2", "r2", "red two"),
        msg("blue", "u1", "b1", "blue one"),
        msg("red", "u1", "r3", "red three"),
        msg("green", "u2", "g2", "green two"),
    ];
    let outcomes = store.append_batch(&batch).await.unwrap();
    assert_eq!(outcomes.len(), batch.len());
    let got: Vec<(String, u64)> = outcomes
        .iter()
        .map(stored)
        .map(|m| (m.room.to_string(), m.seq))
        .collect();
    let expect = [
        ("red", 1),
        ("green", 1),
        ("red", 2),
        ("blue", 1),
        ("red", 3),
        ("green", 2),
    ];
    assert_eq!(got, expect.map(|(r, s)| (r.to_string(), s)));
    for (outcome, input) in outcomes.iter().zip(&batch) {
        let m = stored(outcome);
        assert_eq!(m.text, input.text.as_str());
        assert_eq!(m.author, input.author);
        assert_eq!(m.client_msg_id, input.client_msg_id);
        assert_eq!(m.kind, MessageKind::Text);
        assert!((before - 60_000..now_ms() + 60_000).contains(&m.sent_at_ms), "{m:?}");
    }
    let ids: BTreeSet<i64> = outcomes.iter().map(|o| stored(o).id).collect();
    assert_eq!(ids.len(), batch.len(), "every message gets its own id");

    assert_eq!(store.room(&room("red")).await.unwrap().unwrap().last_seq, 3);
    assert_eq!(store.room(&room("green")).await.unwrap().unwrap().last_seq, 2);
    assert_eq!(store.room(&room("blue")).await.unwrap().unwrap().last_seq, 1);

    // History returns exactly what the append returned.
    let red = all_history(&store, "red").await;
    let red_stored: Vec<ChatMessage> = [0, 2, 4].iter().map(|&i| stored(&outcomes[i]).clone()).collect();
    assert_eq!(red, red_stored);

    // The next batch continues where the last one stopped.
    let next = store.append_batch(&[msg("red", "u1", "r4", "red four")]).await.unwrap();
    assert_eq!(stored(&next[0]).seq, 4);
    assert_eq!(seqs(&all_history(&store, "red").await), [1, 2, 3, 4]);
    assert!(store.append_batch(&[]).await.unwrap().is_empty());
}

async fn a_large_batch_over_many_rooms(store: Arc<dyn Store>) {
    let names: Vec<String> = (0..50).map(|i| format!("room-{i:02}")).collect();
    for name in &names {
        store.enter_room(&room(name)).await.unwrap();
    }
    // 1500 messages, 30 per room: more than one SQLite statement chunk.
    let batch: Vec<NewMessage> = (0..1500)
        .map(|i| msg(&names[i % 50], "u1", &format!("m{i}"), &format!("text {i}")))
        .collect();
    let outcomes = store.append_batch(&batch).await.unwrap();
    for (i, outcome) in outcomes.iter().enumerate() {
        let m = stored(outcome);
        assert_eq!(m.room.as_str(), names[i % 50]);
        assert_eq!(m.seq, (i / 50 + 1) as u64);
        assert_eq!(m.text, format!("text {i}"));
    }
    for name in &names {
        assert_eq!(seqs(&all_history(&store, name).await), (1..=30).collect::<Vec<_>>());
    }
    // Resending all of it stores nothing and answers with the originals.
    let again = store.append_batch(&batch).await.unwrap();
    for (first, second) in outcomes.iter().zip(&again) {
        assert_eq!(stored(first), duplicate(second));
    }
    assert_eq!(store.room(&room("room-07")).await.unwrap().unwrap().last_seq, 30);
    // A thousand new ones carry on every room's seqs.
    let more: Vec<NewMessage> = (1500..2500)
        .map(|i| msg(&names[i % 50], "u1", &format!("m{i}"), &format!("text {i}")))
        .collect();
    let outcomes = store.append_batch(&more).await.unwrap();
    for (i, outcome) in (1500..).zip(&outcomes) {
        let m = stored(outcome);
        assert_eq!((m.room.as_str(), m.seq), (names[i % 50].as_str(), (i / 50 + 1) as u64));
    }
    for name in &names {
        assert_eq!(seqs(&all_history(&store, name).await), (1..=50).collect::<Vec<_>>());
    }
}

async fn a_repeated_client_msg_id_within_a_batch_is_stored_once(store: Arc<dyn Store>) {
    enter(&store, &["lobby"]).await;
    let batch = [
        msg("lobby", "ann", "x", "first try"),
        msg("lobby", "ann", "y", "other"),
        msg("lobby", "ann", "x", "second try, different text"),
    ];
    let outcomes = store.append_batch(&batch).await.unwrap();
    let original = stored(&outcomes[0]);
    assert_eq!(original.seq, 1);
    assert_eq!(stored(&outcomes[1]).seq, 2);
    assert_eq!(
        duplicate(&outcomes[2]),
        original,
        "the duplicate is the original message"
    );
    let history = all_history(&store, "lobby").await;
    assert_eq!(history.len(), 2, "one row per distinct client_msg_id");
    assert_eq!(history[0].text, "first try");
    assert_eq!(store.room(&room("lobby")).await.unwrap().unwrap().last_seq, 2);
}

async fn a_repeated_client_msg_id_across_batches_returns_the_original(store: Arc<dyn Store>) {
    enter(&store, &["lobby"]).await;
    let first = store.append_batch(&[msg("lobby", "ann", "x", "hello")]).await.unwrap();
    let original = stored(&first[0]).clone();

    let retry = store
        .append_batch(&[msg("lobby", "ann", "x", "hello again"), msg("lobby", "ann", "z", "new")])
        .await
        .unwrap();
    assert_eq!(
        duplicate(&retry[0]),
        &original,
        "same id, seq, text and time as the first"
    );
    assert_eq!(stored(&retry[1]).seq, 2, "a duplicate consumes no seq");
    let history = all_history(&store, "lobby").await;
    assert_eq!(seqs(&history), [1, 2]);
    assert_eq!(history[0], original);
}

async fn the_same_client_msg_id_from_two_authors_is_two_messages(store: Arc<dyn Store>) {
    enter(&store, &["lobby", "other"]).await;
    let outcomes = store
        .append_batch(&[
            msg("lobby", "ann", "guessable", "from ann"),
            msg("lobby", "bob", "guessable", "from bob"),
        ])
        .await
        .unwrap();
    assert_eq!(stored(&outcomes[0]).seq, 1);
    assert_eq!(stored(&outcomes[1]).seq, 2);
    // In separate batches too, and across rooms for the same author.
    let later = store
        .append_batch(&[
            msg("lobby", "cat", "guessable", "from cat"),
            msg("other", "ann", "guessable", "ann elsewhere"),
        ])
        .await
        .unwrap();
    assert_eq!(stored(&later[0]).seq, 3);
    assert_eq!(stored(&later[1]).seq, 1);
    let texts: Vec<String> = all_history(&store, "lobby").await.into_iter().map(|m| m.text).collect();
    assert_eq!(texts, ["from ann", "from bob", "from cat"]);
}

async fn a_missing_room_fails_only_its_own_messages(store: Arc<dyn Store>) {
    enter(&store, &["lobby"]).await;
    let outcomes = store
        .append_batch(&[
            msg("lobby", "ann", "a", "one"),
            msg("ghost", "ann", "b", "boo"),
            msg("lobby", "ann", "c", "two"),
        ])
        .await
        .unwrap();
    assert_eq!(stored(&outcomes[0]).seq, 1);
    assert_eq!(outcomes[1], AppendOutcome::RoomNotFound);
    assert_eq!(stored(&outcomes[2]).seq, 2);
    assert_eq!(
        store.room(&room("ghost")).await.unwrap(),
        None,
        "appending never creates a room"
    );
    assert!(all_history(&store, "ghost").await.is_empty());
    // A batch of nothing but missing rooms.
    let outcomes = store.append_batch(&[msg("ghost", "ann", "d", "boo")]).await.unwrap();
    assert_eq!(outcomes, [AppendOutcome::RoomNotFound]);
}

async fn history_pages_forward_and_back(store: Arc<dyn Store>) {
    enter(&store, &["lobby", "quiet"]).await;
    let batch: Vec<NewMessage> = (1..=10)
        .map(|i| msg("lobby", "ann", &format!("m{i}"), &format!("text {i}")))
        .collect();
    store.append_batch(&batch).await.unwrap();
    let lobby = room("lobby");
    let after = |after, limit| {
        let store = store.clone();
        let lobby = lobby.clone();
        async move { seqs(&store.history_after(&lobby, after, limit).await.unwrap()) }
    };
    assert_eq!(after(0, 3).await, [1, 2, 3]);
    assert_eq!(after(3, 3).await, [4, 5, 6]);
    assert_eq!(after(9, 5).await, [10]);
    assert_eq!(after(10, 5).await, Vec::<u64>::new());
    assert_eq!(after(100, 5).await, Vec::<u64>::new());
    assert_eq!(after(u64::MAX, 5).await, Vec::<u64>::new());
    assert_eq!(after(0, 0).await, Vec::<u64>::new());
    assert_eq!(after(0, u32::MAX).await, (1..=10).collect::<Vec<_>>());

    let before = |before, limit| {
        let store = store.clone();
        let lobby = lobby.clone();
        async move { seqs(&store.history_before(&lobby, before, limit).await.unwrap()) }
    };
    assert_eq!(before(u64::MAX, 3).await, [8, 9, 10], "the newest page, ascending");
    assert_eq!(before(11, 3).await, [8, 9, 10]);
    assert_eq!(before(8, 3).await, [5, 6, 7]);
    assert_eq!(before(4, 10).await, [1, 2, 3]);
    assert_eq!(before(2, 10).await, [1]);
    assert_eq!(before(1, 10).await, Vec::<u64>::new());
    assert_eq!(before(0, 10).await, Vec::<u64>::new());
    assert_eq!(before(5, 0).await, Vec::<u64>::new());

    let page = store.history_before(&lobby, u64::MAX, 2).await.unwrap();
    assert_eq!(page[1].text, "text 10");
    assert_eq!(page[1].room, lobby);
    assert!(store.history_after(&room("quiet"), 0, 10).await.unwrap().is_empty());
    assert!(
        store
            .history_before(&room("nowhere"), u64::MAX, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

// ---------------------------------------------------------------------------------------
// Tests taking the database (reconnecting, several stores, SQL behind the store's back)
// ---------------------------------------------------------------------------------------

async fn history_survives_a_reconnect(db: &TestDb) {
    let store = db.store().await;
    enter(&store, &["lobby"]).await;
    let outcomes = store
        .append_batch(&[msg("lobby", "ann", "a", "kept"), msg("lobby", "bob", "b", "also kept")])
        .await
        .unwrap();
    let written: Vec<ChatMessage> = outcomes.iter().map(|o| stored(o).clone()).collect();
    drop(store);

    let store = db.store().await;
    assert_eq!(all_history(&store, "lobby").await, written);
    let (info, created) = store.enter_room(&room("lobby")).await.unwrap();
    assert!(!created);
    assert_eq!(info.last_seq, 2);
    // Idempotency survives too, and numbering continues.
    let again = store
        .append_batch(&[msg("lobby", "ann", "a", "kept"), msg("lobby", "ann", "c", "third")])
        .await
        .unwrap();
    assert_eq!(duplicate(&again[0]), &written[0]);
    assert_eq!(stored(&again[1]).seq, 3);
}

async fn concurrent_writers_share_one_gapless_sequence(db: &TestDb) {
    // Two pools: as two message-service processes would append.
    let stores = [db.store().await, db.store().await];
    enter(&stores[0], &["busy"]).await;
    let mut tasks = Vec::new();
    for (s, store) in stores.iter().enumerate() {
        for b in 0..10 {
            let store = store.clone();
            let batch: Vec<NewMessage> = (0..50)
                .map(|i| {
                    msg(
                        "busy",
                        &format!("writer-{s}"),
                        &format!("b{b}-m{i}"),
                        &format!("{s}/{b}/{i}"),
                    )
                })
                .collect();
            tasks.push(tokio::spawn(async move { store.append_batch(&batch).await }));
        }
    }
    let mut returned = Vec::new();
    for task in futures::future::join_all(tasks).await {
        let outcomes = task.expect("task").expect("append");
        let batch_seqs: Vec<u64> = outcomes.iter().map(|o| stored(o).seq).collect();
        assert!(
            batch_seqs.windows(2).all(|w| w[1] == w[0] + 1),
            "a batch to one room is contiguous"
        );
        returned.extend(batch_seqs);
    }
    returned.sort_unstable();
    assert_eq!(
        returned,
        (1..=1000).collect::<Vec<u64>>(),
        "returned seqs: no gap, no duplicate"
    );

    let history = all_history(&stores[1], "busy").await;
    assert_eq!(
        seqs(&history),
        (1..=1000).collect::<Vec<u64>>(),
        "stored seqs: no gap, no duplicate"
    );
    let distinct: BTreeSet<&str> = history.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(distinct.len(), 1000);
    assert_eq!(stores[0].room(&room("busy")).await.unwrap().unwrap().last_seq, 1000);
}

async fn racing_retries_of_the_same_sends_store_each_once(db: &TestDb) {
    // Two message services given the same sends at once (a gateway's retry after a timeout
    // that was only slow): each key is stored once, both get the same message back, and
    // the rooms' seqs stay gapless. One side's insert then breaks the idempotency key
    // while the other commits, which is what sends a batch to the path that looks keys up.
    let stores = [db.store().await, db.store().await];
    enter(&stores[0], &["north", "south"]).await;
    let batch_of = |round: usize| -> Vec<NewMessage> {
        (0..20)
            .map(|i| {
                let room = if i % 2 == 0 { "north" } else { "south" };
                msg(room, "ann", &format!("r{round}-m{i}"), &format!("{round}/{i}"))
            })
            .collect()
    };
    for round in 0..10 {
        let tasks = stores.iter().map(|store| {
            let (store, batch) = (store.clone(), batch_of(round));
            tokio::spawn(async move { store.append_batch(&batch).await })
        });
        let results: Vec<Vec<AppendOutcome>> = futures::future::join_all(tasks)
            .await
            .into_iter()
            .map(|r| r.expect("task").expect("append"))
            .collect();
        let message = |o: &AppendOutcome| match o {
            AppendOutcome::Stored(m) | AppendOutcome::Duplicate(m) => m.clone(),
            other => panic!("expected a message, got {other:?}"),
        };
        for (a, b) in results[0].iter().zip(&results[1]) {
            assert_eq!(
                message(a),
                message(b),
                "round {round}: both sides get the one stored message"
            );
            let stored_once = matches!(a, AppendOutcome::Stored(_)) != matches!(b, AppendOutcome::Stored(_));
            assert!(stored_once, "round {round}: exactly one side stored it: {a:?} / {b:?}");
        }
    }
    for name in ["north", "south"] {
        let history = all_history(&stores[1], name).await;
        assert_eq!(
            seqs(&history),
            (1..=100).collect::<Vec<u64>>(),
            "{name}: one row per send, gapless"
        );
        assert_eq!(stores[0].room(&room(name)).await.unwrap().unwrap().last_seq, 100);
    }
    // A retry riding with new sends in other rooms: the retry is the original, the rest new.
    let mixed = stores[0]
        .append_batch(&[
            msg("south", "ann", "r3-m1", "again"),
            msg("north", "ann", "fresh-1", "new"),
            msg("west", "ann", "fresh-2", "no such room"),
        ])
        .await
        .unwrap();
    assert_eq!(duplicate(&mixed[0]).text, "3/1");
    assert_eq!(stored(&mixed[1]).seq, 101);
    assert_eq!(mixed[2], AppendOutcome::RoomNotFound);
}

async fn a_failing_batch_commits_nothing(db: &TestDb) {
    let store = db.store().await;
    enter(&store, &["lobby", "side"]).await;
    // A rule the store does not know about, so that the insert fails mid-batch.
    let poison = if db.url.starts_with("sqlite:") {
        "CREATE TRIGGER poison BEFORE INSERT ON messages WHEN NEW.body = 'poison'
             BEGIN SELECT RAISE(ABORT, 'poison'); END;"
    } else {
        "ALTER TABLE messages ADD CONSTRAINT poison CHECK (body <> 'poison')"
    };
    db.execute(poison).await;
    let err = store
        .append_batch(&[
            msg("lobby", "ann", "a", "fine"),
            msg("side", "ann", "b", "fine too"),
            msg("lobby", "ann", "c", "poison"),
        ])
        .await
        .expect_err("the batch must fail");
    assert!(matches!(err, StoreError::Database(_)), "{err:?}");
    assert!(!err.is_unavailable());
    assert!(
        all_history(&store, "lobby").await.is_empty(),
        "nothing of the batch is committed"
    );
    assert!(all_history(&store, "side").await.is_empty());
    assert_eq!(store.room(&room("lobby")).await.unwrap().unwrap().last_seq, 0);
    // The connection is usable afterwards (the transaction was rolled back) and the ids are free.
    let outcomes = store.append_batch(&[msg("lobby", "ann", "a", "fine")]).await.unwrap();
    assert_eq!(stored(&outcomes[0]).seq, 1);
}

async fn a_corrupt_row_is_reported_not_trusted(db: &TestDb) {
    let store = db.store().await;
    enter(&store, &["lobby"]).await;
    store.append_batch(&[msg("lobby", "ann", "a", "hello")]).await.unwrap();
    db.execute("UPDATE messages SET kind = 'hologram'").await;
    let err = store
        .history_after(&room("lobby"), 0, 10)
        .await
        .expect_err("corrupt kind");
    assert!(
        matches!(err, StoreError::Corrupt(ref why) if why.contains("kind")),
        "{err:?}"
    );
    // The duplicate lookup reads rows too.
    let err = store
        .append_batch(&[msg("lobby", "ann", "a", "hello")])
        .await
        .expect_err("corrupt kind");
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
}

// ---------------------------------------------------------------------------------------
// The directory: accounts, sessions, membership, admin, uploads
// ---------------------------------------------------------------------------------------

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

fn new_user(id: &str, username: &str) -> chat_store::NewUser {
    chat_store::NewUser {
        id: id.into(),
        username: chat_domain::Username::parse(username).unwrap(),
        email: chat_domain::Email::parse(&format!("{username}@example.com")).unwrap(),
        first_name: chat_domain::PersonName::parse("Ann").unwrap(),
        last_name: chat_domain::PersonName::parse("Lee").unwrap(),
        password_hash: "$argon2id$fake".into(),
        role: chat_domain::Role::User,
        now_ms: now(),
    }
}

fn session(id: &str, user_id: &str, expires_at_ms: i64) -> chat_store::SessionRecord {
    chat_store::SessionRecord {
        id: id.into(),
        token_hash: format!("hash-of-{id}"),
        user_id: user_id.into(),
        user_name: "ann".into(),
        guest: false,
        created_at_ms: now(),
        expires_at_ms,
        user_agent: "test".into(),
    }
}

async fn accounts_and_sessions(db: &TestDb) {
    let dir = db.database().await.directory;
    let ann = dir.create_user(&new_user("u:1", "Ann_L")).await.unwrap();
    assert_eq!((ann.username.as_str(), ann.role), ("Ann_L", chat_domain::Role::User));
    let err = dir.create_user(&new_user("u:2", "ann_l")).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(dir.user_by_username("ANN_L").await.unwrap().unwrap().id, "u:1");
    assert!(dir.user_by_username("bob").await.unwrap().is_none());

    let update = chat_store::ProfileUpdate {
        bio: Some(chat_domain::Bio::parse("hello\nworld").unwrap()),
        avatar_id: Some(Some(5)),
        ..Default::default()
    };
    let updated = dir.update_profile("u:1", &update).await.unwrap().unwrap();
    assert_eq!(
        (updated.bio.as_str(), updated.avatar_id, updated.email.as_str()),
        ("hello\nworld", Some(5), "Ann_L@example.com")
    );
    let cleared = chat_store::ProfileUpdate {
        avatar_id: Some(None),
        ..Default::default()
    };
    assert_eq!(
        dir.update_profile("u:1", &cleared).await.unwrap().unwrap().avatar_id,
        None
    );

    dir.create_session(&session("s1", "u:1", now() + 60_000)).await.unwrap();
    dir.create_session(&session("s2", "u:1", now() + 60_000)).await.unwrap();
    dir.create_session(&session("old", "u:1", now() - 1)).await.unwrap();
    let found = dir.session("hash-of-s1", now()).await.unwrap().unwrap();
    assert_eq!((found.name.as_str(), found.disabled), ("Ann_L", false));
    assert!(dir.session("hash-of-old", now()).await.unwrap().is_none(), "expired");
    assert_eq!(dir.sessions_of("u:1", now(), 10).await.unwrap().len(), 2);
    assert!(dir.revoke_session("u:1", "s1").await.unwrap());
    assert!(
        !dir.revoke_session("u:2", "s2").await.unwrap(),
        "only the owner revokes"
    );
    assert!(dir.session("hash-of-s1", now()).await.unwrap().is_none(), "revoked");
    assert_eq!(dir.purge_expired_sessions(now()).await.unwrap(), 1);

    assert!(dir.set_role("ann_l", chat_domain::Role::Admin).await.unwrap());
    assert_eq!(
        dir.session("hash-of-s2", now()).await.unwrap().unwrap().role,
        chat_domain::Role::Admin
    );
    assert!(dir.set_disabled("u:1", true, now()).await.unwrap());
    assert!(
        dir.session("hash-of-s2", now()).await.unwrap().is_none(),
        "disabling ends sessions"
    );
    assert!(dir.user_by_id("u:1").await.unwrap().unwrap().disabled);

    dir.create_user(&new_user("u:3", "bob")).await.unwrap();
    let search = chat_store::Search {
        query: Some("B"),
        after: None,
        limit: 10,
    };
    let found: Vec<String> = dir
        .search_users(&search)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(found, ["bob"]);
    let page = chat_store::Search {
        query: None,
        after: Some("ann_l"),
        limit: 10,
    };
    assert_eq!(dir.search_users(&page).await.unwrap().len(), 1);
}

async fn membership_and_panel_counts(db: &TestDb) {
    let database = db.database().await;
    let (store, dir) = (database.messages, database.directory);
    for name in ["alpha", "beta"] {
        store.enter_room(&room(name)).await.unwrap();
    }
    use chat_store::Entered;
    assert_eq!(
        dir.enter("ann", "Ann", &room("alpha"), now()).await.unwrap(),
        Entered::Joined
    );
    assert_eq!(
        dir.enter("ann", "Ann", &room("alpha"), now()).await.unwrap(),
        Entered::AlreadyMember
    );
    assert_eq!(
        dir.enter("ann", "Ann", &room("beta"), now()).await.unwrap(),
        Entered::Joined
    );
    assert_eq!(
        dir.enter("ann", "Ann", &room("nope"), now()).await.unwrap(),
        Entered::RoomNotFound
    );
    assert_eq!(
        dir.enter("bob", "Bob", &room("alpha"), now()).await.unwrap(),
        Entered::Joined
    );
    store
        .append_batch(&[
            msg("alpha", "ann", "1", "a"),
            msg("alpha", "bob", "2", "b"),
            msg("alpha", "bob", "3", "c"),
        ])
        .await
        .unwrap();
    dir.mark_read("ann", &room("alpha"), 1).await.unwrap();
    dir.mark_read("ann", &room("alpha"), 0).await.unwrap(); // never lowers
    let rooms = dir.member_rooms("ann", None, 10).await.unwrap();
    let summary: Vec<(&str, u64, u64, bool)> = rooms
        .iter()
        .map(|r| (r.room.as_str(), r.last_seq, r.unread(), r.last_activity_ms.is_some()))
        .collect();
    assert_eq!(summary, [("alpha", 3, 2, true), ("beta", 0, 0, false)]);
    dir.mark_read("ann", &room("alpha"), 99).await.unwrap(); // capped at the last seq
    assert_eq!(dir.member_rooms("ann", None, 10).await.unwrap()[0].last_read_seq, 3);
    assert_eq!(
        dir.member_rooms("ann", Some(&room("alpha")), 10).await.unwrap().len(),
        1,
        "cursor"
    );
    assert_eq!(dir.room_count("ann").await.unwrap(), 2);
    assert_eq!(dir.message_count("bob").await.unwrap(), 2);
    // Last seqs by name, for the gateways' repair sweep; unknown rooms are left out.
    let mut seqs = dir
        .last_seqs(&[room("alpha"), room("nope"), room("beta")])
        .await
        .unwrap();
    seqs.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
    assert_eq!(seqs, [(room("alpha"), 3), (room("beta"), 0)]);
    let many: Vec<RoomName> = (0..1200)
        .map(|i| room(&format!("r{i}")))
        .chain([room("alpha")])
        .collect();
    assert_eq!(
        dir.last_seqs(&many).await.unwrap(),
        [(room("alpha"), 3)],
        "more names than one statement takes"
    );
    let (count, members) = dir.room_members(&room("alpha"), None, 1).await.unwrap();
    assert_eq!((count, members.len(), members[0].user_id.as_str()), (2, 1, "ann"));
    let (_, rest) = dir.room_members(&room("alpha"), Some("ann"), 10).await.unwrap();
    assert_eq!(rest.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["Bob"]);

    assert!(dir.leave("ann", &room("beta")).await.unwrap());
    assert!(!dir.leave("ann", &room("beta")).await.unwrap());
    assert_eq!(dir.room_count("ann").await.unwrap(), 1);
    assert_eq!(
        dir.enter("ann", "Ann", &room("beta"), now()).await.unwrap(),
        Entered::Joined,
        "may come back"
    );
}

async fn admin_deletes_keep_seqs_and_are_audited(db: &TestDb) {
    let database = db.database().await;
    let (store, dir) = (database.messages, database.directory);
    store.enter_room(&room("lobby")).await.unwrap();
    dir.enter("ann", "Ann", &room("lobby"), now()).await.unwrap();
    let outcomes = store
        .append_batch(&[msg("lobby", "ann", "1", "keep"), msg("lobby", "ann", "2", "spam 50%")])
        .await
        .unwrap();
    let AppendOutcome::Stored(spam) = &outcomes[1] else {
        panic!("{outcomes:?}")
    };
    let found = dir.search_messages(Some("50%"), None, None, 10).await.unwrap();
    assert_eq!(
        found.iter().map(|m| m.id).collect::<Vec<_>>(),
        [spam.id],
        "% is literal"
    );
    assert!(
        dir.search_messages(Some("5_%"), None, None, 10)
            .await
            .unwrap()
            .is_empty(),
        "_ is literal"
    );

    let deleted = dir.delete_message(spam.id, now()).await.unwrap().unwrap();
    assert_eq!((deleted.room.as_str(), deleted.seq), ("lobby", 2));
    assert!(dir.delete_message(spam.id, now()).await.unwrap().is_none(), "once");
    let history = store.history_after(&room("lobby"), 0, 10).await.unwrap();
    assert_eq!(history.len(), 2, "the tombstone keeps its seq");
    assert!(history[1].deleted && history[1].text.is_empty());
    assert!(!history[0].deleted);
    assert!(
        dir.search_messages(Some("spam"), None, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(dir.message_count("ann").await.unwrap(), 1);

    assert!(dir.delete_room(&room("lobby"), now()).await.unwrap());
    assert!(!dir.delete_room(&room("lobby"), now()).await.unwrap());
    assert!(store.room(&room("lobby")).await.unwrap().is_none());
    assert_eq!(dir.room_count("ann").await.unwrap(), 0, "members removed");
    let refused = store.append_batch(&[msg("lobby", "ann", "3", "late")]).await.unwrap();
    assert_eq!(
        refused,
        [AppendOutcome::RoomNotFound],
        "a deleted room takes no messages"
    );
    let (revived, created) = store.enter_room(&room("lobby")).await.unwrap();
    assert!(created);
    assert_eq!(revived.last_seq, 2, "seqs continue, never restart");
    assert!(
        store
            .history_after(&room("lobby"), 0, 10)
            .await
            .unwrap()
            .iter()
            .all(|m| m.deleted)
    );

    for action in ["delete_message", "delete_room"] {
        let entry = chat_store::NewAuditEntry {
            actor_id: "u:admin",
            actor_name: "root",
            action,
            target: "lobby",
            detail: "",
        };
        dir.audit(&entry, now()).await.unwrap();
    }
    let log = dir.audit_log(None, 10).await.unwrap();
    assert_eq!(
        log.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        ["delete_room", "delete_message"]
    );
    assert_eq!(dir.audit_log(Some(log[0].id), 10).await.unwrap().len(), 1, "cursor");
}

async fn uploads_round_trip_and_image_messages_carry_them(db: &TestDb) {
    let database = db.database().await;
    let (store, blobs) = (database.messages, database.blobs);
    let bytes = b"\x89PNG\r\n\x1a\n\0\0binary".to_vec();
    let id = blobs.put("ann", "image/png", &bytes, now()).await.unwrap();
    let blob = blobs.get(id).await.unwrap().unwrap();
    assert_eq!(
        (blob.bytes, blob.content_type.as_str(), blob.owner_id.as_str()),
        (bytes, "image/png", "ann")
    );
    assert_eq!(blobs.owner(id).await.unwrap().as_deref(), Some("ann"));
    assert!(blobs.get(id + 1).await.unwrap().is_none());

    store.enter_room(&room("pics")).await.unwrap();
    let mut image = msg("pics", "ann", "img", "caption");
    image.kind = MessageKind::Image;
    let upload = UploadId::new(id).unwrap();
    image.attachment = Some(upload);
    store.append_batch(&[image]).await.unwrap();
    let history = store.history_after(&room("pics"), 0, 10).await.unwrap();
    assert_eq!(
        (history[0].kind, history[0].attachment),
        (MessageKind::Image, Some(upload))
    );
}

// ---------------------------------------------------------------------------------------
// One test per backend for each of the above
// ---------------------------------------------------------------------------------------

macro_rules! suite {
    (store: [$($store_test:ident),* $(,)?], db: [$($db_test:ident),* $(,)?] $(,)?) => {
        suite!(@backend sqlite, sqlite, [$($store_test),*], [$($db_test),*]);
        suite!(@backend postgres, postgres, [$($store_test),*], [$($db_test),*]);
    };
    (@backend $module:ident, $make:ident, [$($store_test:ident),*], [$($db_test:ident),*]) => {
        mod $module {
            use super::Open;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $store_test() {
                    let db = super::$make().await;
                    super::$store_test(db.store().await).await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $db_test() {
                    let db = super::$make().await;
                    super::$db_test(&db).await;
                }
            )*
        }
    };
}

suite! {
    store: [
        enter_room_creates_once_and_lists_by_cursor,
        a_batch_over_several_rooms_gets_gapless_seqs_in_input_order,
        a_large_batch_over_many_rooms,
        a_repeated_client_msg_id_within_a_batch_is_stored_once,
        a_repeated_client_msg_id_across_batches_returns_the_original,
        the_same_client_msg_id_from_two_authors_is_two_messages,
        a_missing_room_fails_only_its_own_messages,
        history_pages_forward_and_back,
    ],
    db: [
        history_survives_a_reconnect,
        concurrent_writers_share_one_gapless_sequence,
        racing_retries_of_the_same_sends_store_each_once,
        a_failing_batch_commits_nothing,
        a_corrupt_row_is_reported_not_trusted,
        accounts_and_sessions,
        membership_and_panel_counts,
        admin_deletes_keep_seqs_and_are_audited,
        uploads_round_trip_and_image_messages_carry_them,
    ],
}

#[test]
fn with_database_replaces_only_the_path() {
    assert_eq!(
        with_database("postgres://u@h:5432/postgres", "t"),
        "postgres://u@h:5432/t"
    );
    assert_eq!(
        with_database("postgres://u@h/postgres?sslmode=disable", "t"),
        "postgres://u@h/t?sslmode=disable"
    );
    assert_eq!(with_database("postgres://u@h", "t"), "postgres://u@h/t");
}
