//! The suite's tests of rooms and messages: numbering, idempotency, history, and what a
//! store does under concurrency and failure.

use super::*;

// ---------------------------------------------------------------------------------------
// Tests taking a store
// ---------------------------------------------------------------------------------------

pub(crate) async fn enter_room_creates_once_and_lists_by_cursor(store: Arc<dyn Store>) {
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

pub(crate) async fn a_batch_over_several_rooms_gets_gapless_seqs_in_input_order(store: Arc<dyn Store>) {
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
        let NewEvent::Message(input) = input else {
            unreachable!()
        };
        assert_eq!(m.text, input.text.as_str());
        assert_eq!(m.author, input.author);
        assert_eq!(m.client_msg_id, input.client_msg_id);
        assert_eq!(m.kind, MessageKind::Text);
        assert!((before - 60_000..now_ms() + 60_000).contains(&m.sent_at_ms), "{m:?}");
    }
    let ids: BTreeSet<_> = outcomes.iter().map(|o| stored(o).id).collect();
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

pub(crate) async fn a_large_batch_over_many_rooms(store: Arc<dyn Store>) {
    let names: Vec<String> = (0..50).map(|i| format!("room-{i:02}")).collect();
    for name in &names {
        store.enter_room(&room(name)).await.unwrap();
    }
    // 1500 messages, 30 per room: more than one SQLite statement chunk.
    let batch: Vec<NewEvent> = (0..1500)
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
    let more: Vec<NewEvent> = (1500..2500)
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

pub(crate) async fn a_repeated_client_msg_id_within_a_batch_is_stored_once(store: Arc<dyn Store>) {
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

pub(crate) async fn a_repeated_client_msg_id_across_batches_returns_the_original(store: Arc<dyn Store>) {
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

pub(crate) async fn the_same_client_msg_id_from_two_authors_is_two_messages(store: Arc<dyn Store>) {
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

/// A batch of one takes a statement of its own on Postgres (`append_one.sql`): between
/// batches of several, in the same room, it takes the next seq, stores every field as the
/// batch statement does, and is refused as a repeat the same way.
pub(crate) async fn a_batch_of_one_is_numbered_and_stored_as_larger_batches_are(store: Arc<dyn Store>) {
    enter(&store, &["lobby"]).await;
    let two = store
        .append_batch(&[msg("lobby", "ann", "a", "one"), msg("lobby", "bob", "b", "two")])
        .await
        .unwrap();
    let mut third = new_message("lobby", "cat", "c", "three, for @bob");
    third.mentions = vec![author("bob")];
    let one = store.append_batch(&[NewEvent::Message(third)]).await.unwrap();
    let next = store
        .append_batch(&[msg("lobby", "ann", "d", "four"), msg("lobby", "ann", "e", "five")])
        .await
        .unwrap();
    let last = store.append_batch(&[msg("lobby", "bob", "f", "six")]).await.unwrap();
    let written: Vec<ChatMessage> = [two, one.clone(), next, last.clone()]
        .iter()
        .flatten()
        .map(|o| stored(o).clone())
        .collect();
    assert_eq!(seqs(&written), [1, 2, 3, 4, 5, 6]);
    let three = stored(&one[0]);
    assert_eq!(
        (three.author.clone(), three.text.as_str(), three.mentions.clone()),
        (author("cat"), "three, for @bob", vec![author("bob")])
    );
    assert!(
        written.windows(2).all(|w| w[0].sent_at_ms <= w[1].sent_at_ms),
        "{written:?}"
    );
    assert_eq!(
        all_history(&store, "lobby").await,
        written,
        "what was returned is what was stored"
    );

    // A repeat of a stored key, alone in its batch: the original, and no seq taken.
    let again = store
        .append_batch(&[msg("lobby", "cat", "c", "changed text")])
        .await
        .unwrap();
    assert_eq!(duplicate(&again[0]), three);
    let after = store.append_batch(&[msg("lobby", "cat", "g", "seven")]).await.unwrap();
    assert_eq!(stored(&after[0]).seq, 7);
    assert_eq!(stored(&last[0]).seq, 6);
    let (info, _) = store.enter_room(&room("lobby")).await.unwrap();
    assert_eq!(info.last_seq, 7);
}

pub(crate) async fn a_missing_room_fails_only_its_own_messages(store: Arc<dyn Store>) {
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

pub(crate) async fn history_pages_forward_and_back(store: Arc<dyn Store>) {
    enter(&store, &["lobby", "quiet"]).await;
    let batch: Vec<NewEvent> = (1..=10)
        .map(|i| msg("lobby", "ann", &format!("m{i}"), &format!("text {i}")))
        .collect();
    store.append_batch(&batch).await.unwrap();
    let lobby = room("lobby");
    let after = |after, limit| {
        let store = store.clone();
        let lobby = lobby.clone();
        async move {
            store
                .history_after(&lobby, after, limit)
                .await
                .unwrap()
                .iter()
                .map(TimelineEvent::seq)
                .collect::<Vec<_>>()
        }
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

pub(crate) async fn history_survives_a_reconnect(db: &TestDb) {
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

pub(crate) async fn concurrent_writers_share_one_gapless_sequence(db: &TestDb) {
    // Two pools: as two message-service processes would append.
    let stores = [db.store().await, db.store().await];
    enter(&stores[0], &["busy"]).await;
    let mut tasks = Vec::new();
    for (s, store) in stores.iter().enumerate() {
        for b in 0..10 {
            let store = store.clone();
            let batch: Vec<NewEvent> = (0..50)
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

pub(crate) async fn racing_retries_of_the_same_sends_store_each_once(db: &TestDb) {
    // Two message services given the same sends at once (a gateway's retry after a timeout
    // that was only slow): each key is stored once, both get the same message back, and
    // the rooms' seqs stay gapless. One side's insert then breaks the idempotency key
    // while the other commits, which is what sends a batch to the path that looks keys up.
    let stores = [db.store().await, db.store().await];
    enter(&stores[0], &["north", "south"]).await;
    let batch_of = |round: usize| -> Vec<NewEvent> {
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

pub(crate) async fn a_failing_batch_commits_nothing(db: &TestDb) {
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

pub(crate) async fn a_corrupt_row_is_reported_not_trusted(db: &TestDb) {
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
