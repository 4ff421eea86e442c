//! The first step of the database path past one primary (`docs/scaling.md`): `messages`
//! hash-partitioned by room. The store runs unchanged on it, since every unique key the
//! guarantees rest on already holds `room_id`; only the primary key has to become
//! `(room_id, id)`. This converts a migrated database's `messages` and runs the paths that
//! touch it: a cross-room batch (the one-statement append), a retried key, a reply, an
//! edit and a reaction (the careful path), history, and search through the queue its
//! statement trigger fills from the partitions' rows.

use super::*;

/// `messages` again, as a parent of four hash partitions by `room_id`, with the
/// constraints, indexes and triggers of the migrations.
const PARTITION_MESSAGES: &str = r"
ALTER TABLE messages RENAME TO messages_single;
CREATE TABLE messages (LIKE messages_single INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING CONSTRAINTS)
    PARTITION BY HASH (room_id);
DROP TABLE messages_single;
ALTER TABLE messages ADD CONSTRAINT messages_pkey PRIMARY KEY (room_id, id);
ALTER TABLE messages ADD CONSTRAINT messages_room_seq_key UNIQUE (room_id, seq);
ALTER TABLE messages ADD CONSTRAINT messages_room_author_client_msg_id_key UNIQUE (room_id, author_id, client_msg_id);
ALTER TABLE messages ADD FOREIGN KEY (room_id) REFERENCES rooms (id) ON DELETE CASCADE;
CREATE INDEX messages_author_id_idx ON messages (author_id);
CREATE INDEX messages_room_target_idx ON messages (room_id, target_seq) WHERE target_seq IS NOT NULL;
CREATE INDEX messages_attachment_idx ON messages (attachment_id) WHERE attachment_id IS NOT NULL;
CREATE INDEX messages_id_idx ON messages (id);
CREATE TABLE messages_p0 PARTITION OF messages FOR VALUES WITH (MODULUS 4, REMAINDER 0);
CREATE TABLE messages_p1 PARTITION OF messages FOR VALUES WITH (MODULUS 4, REMAINDER 1);
CREATE TABLE messages_p2 PARTITION OF messages FOR VALUES WITH (MODULUS 4, REMAINDER 2);
CREATE TABLE messages_p3 PARTITION OF messages FOR VALUES WITH (MODULUS 4, REMAINDER 3);
CREATE TRIGGER messages_queue_inserted_for_search AFTER INSERT ON messages
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION queue_inserted_for_search();
CREATE TRIGGER messages_queue_changed_for_search AFTER UPDATE OF body, deleted_at_ms ON messages
    FOR EACH ROW
    WHEN (NEW.kind IN ('text', 'image')
          AND (OLD.body IS DISTINCT FROM NEW.body OR OLD.deleted_at_ms IS DISTINCT FROM NEW.deleted_at_ms))
    EXECUTE FUNCTION queue_changed_for_search();
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_runs_on_messages_hash_partitioned_by_room() {
    use chat_domain::SearchQuery;
    use chat_store::SearchScope;
    let db = postgres().await;
    let chat_store::Database {
        messages: store,
        directory: dir,
        ..
    } = db.database().await;
    db.execute(PARTITION_MESSAGES).await;
    let rooms = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"];
    enter(&store, &rooms).await;

    // One batch over every room: the one-statement append, inserting through the parent.
    let batch: Vec<NewEvent> = rooms
        .iter()
        .flat_map(|r| (1..=3).map(move |i| msg(r, "ann", &format!("{r}-{i}"), &format!("hello {r} {i}"))))
        .collect();
    let outcomes = store.append_batch(&batch).await.unwrap();
    assert!(outcomes.iter().all(|o| matches!(o, AppendOutcome::Stored(_))));
    // A retried key, a reply, an edit and a reaction: the careful path.
    let careful = vec![
        msg("alpha", "ann", "alpha-1", "hello alpha 1"),
        NewEvent::Message({
            let mut reply = new_message("alpha", "bob", "r1", "a reply");
            reply.reply_to = Some(1);
            reply
        }),
        change(
            "alpha",
            "ann",
            "e1",
            2,
            Change::Edit {
                text: "edited".into(),
                mentions: Vec::new(),
            },
            false,
        ),
        change(
            "alpha",
            "bob",
            "x1",
            3,
            Change::React {
                emoji: chat_domain::Emoji::parse("👍").unwrap(),
            },
            false,
        ),
    ];
    let outcomes = store.append_batch(&careful).await.unwrap();
    assert_eq!(duplicate(&outcomes[0]).seq, 1, "a retried key is stored once");

    let alpha = all_history(&store, "alpha").await;
    assert_eq!(seqs(&alpha), [1, 2, 3, 4], "gapless, the changes folded in");
    assert_eq!(alpha[1].text.as_str(), "edited");
    assert_eq!(alpha[2].reactions.len(), 1);
    for r in &rooms[1..] {
        assert_eq!(seqs(&all_history(&store, r).await), [1, 2, 3], "{r}");
    }
    let events = all_events(&store, "alpha").await;
    assert_eq!(
        events.len(),
        6,
        "every event of alpha, the changes included: {events:?}"
    );

    // The rows are spread over the partitions, none in the parent itself.
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
        .await
        .unwrap();
    let partitions: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT tableoid::regclass::text FROM messages ORDER BY 1")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert!(partitions.len() >= 2, "rows in {partitions:?}");
    assert!(partitions.iter().all(|p| p.starts_with("messages_p")), "{partitions:?}");

    // Search: the statement trigger on the parent queued the partitions' rows.
    index_search(&store).await;
    let query = SearchQuery::parse("hello").unwrap();
    let found = dir
        .search(&search::request(&query, SearchScope::Room(&room("beta"))))
        .await
        .unwrap();
    assert_eq!(seqs(&found).len(), 3);
    let edited = SearchQuery::parse("edited").unwrap();
    let found = dir
        .search(&search::request(&edited, SearchScope::Room(&room("alpha"))))
        .await
        .unwrap();
    assert_eq!(seqs(&found), [2], "an edit is queued by the row trigger on the parent");
}
