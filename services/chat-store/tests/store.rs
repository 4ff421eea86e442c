//! One suite, run against both backends: every test is written once and the macros at the
//! bottom generate a `#[tokio::test]` per backend.
//!
//! Each test gets a database of its own from `test_database::TestDb`: a fresh file in a
//! temporary directory for SQLite; for PostgreSQL a fresh database `test_<uuid>` on the
//! server named by `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`),
//! dropped again when the test ends, even when it fails.

use chat_domain::{
    Author, Change, ChangeError, ChatMessage, ClientMsgId, DisplayName, ImageSize, MessageKind, MessageText, RoomName,
    TimelineEvent, UploadId, UserId,
};
use chat_store::{AppendOutcome, ConnectOptions, IndexRound, NewChange, NewEvent, NewMessage, Store, StoreError};
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

fn new_message(room_name: &str, author_id: &str, cmid: &str, text: &str) -> NewMessage {
    NewMessage {
        room: room(room_name),
        author: author(author_id),
        text: MessageText::parse(text.to_owned()).unwrap(),
        client_msg_id: ClientMsgId::parse(cmid).unwrap(),
        kind: MessageKind::Text,
        attachment: None,
        attachment_size: None,
        reply_to: None,
        mentions: Vec::new(),
    }
}

/// An upload of `owner`'s, `width` × `height`, with the thumbnails the domain's rule gives
/// (their bytes name their width).
fn new_upload(owner: &str, width: u32, height: u32, bytes: &[u8]) -> chat_store::NewUpload {
    let size = ImageSize { width, height };
    chat_store::NewUpload {
        owner_id: UserId::parse(owner).unwrap(),
        content_type: "image/png".into(),
        bytes: bytes.to_vec(),
        size,
        thumbnails: size
            .thumbnails()
            .map(|t| chat_store::NewThumbnail {
                size: t,
                content_type: "image/jpeg".into(),
                bytes: format!("thumbnail {}", t.width).into_bytes(),
            })
            .collect(),
        created_at_ms: now_ms(),
    }
}

fn msg(room_name: &str, author_id: &str, cmid: &str, text: &str) -> NewEvent {
    NewEvent::Message(new_message(room_name, author_id, cmid, text))
}

fn change(room_name: &str, author_id: &str, cmid: &str, target_seq: u64, change: Change, admin: bool) -> NewEvent {
    NewEvent::Change(NewChange {
        room: room(room_name),
        author: author(author_id),
        client_msg_id: ClientMsgId::parse(cmid).unwrap(),
        target_seq,
        change,
        admin,
    })
}

async fn enter(store: &Arc<dyn Store>, names: &[&str]) {
    for name in names {
        store.enter_room(&room(name)).await.unwrap();
    }
}

fn stored(outcome: &AppendOutcome) -> &ChatMessage {
    match outcome {
        AppendOutcome::Stored(TimelineEvent::Message(m)) => m,
        other => panic!("expected a stored message, got {other:?}"),
    }
}

fn duplicate(outcome: &AppendOutcome) -> &ChatMessage {
    match outcome {
        AppendOutcome::Duplicate(TimelineEvent::Message(m)) => m,
        other => panic!("expected a duplicate message, got {other:?}"),
    }
}

/// Every event of a room, oldest first.
async fn all_events(store: &Arc<dyn Store>, name: &str) -> Vec<TimelineEvent> {
    store.history_after(&room(name), 0, u32::MAX).await.unwrap()
}

/// The messages of a room's full replay, oldest first (changes left out).
async fn all_history(store: &Arc<dyn Store>, name: &str) -> Vec<ChatMessage> {
    all_events(store, name)
        .await
        .into_iter()
        .filter_map(|event| match event {
            TimelineEvent::Message(m) => Some(m),
            TimelineEvent::Change(_) | TimelineEvent::Room(_) => None,
        })
        .collect()
}

fn seqs(messages: &[ChatMessage]) -> Vec<u64> {
    messages.iter().map(|m| m.seq).collect()
}

/// Brings the search index up to date, as a message service's indexer would, two queue
/// entries a round.
async fn index_search(store: &Arc<dyn Store>) {
    loop {
        match store.index_for_search(2).await.unwrap() {
            IndexRound::Indexed { more: true, .. } => continue,
            IndexRound::Indexed { more: false, .. } => return,
            IndexRound::Busy => panic!("nothing else indexes a test's database"),
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

#[path = "store/credentials.rs"]
mod credentials;
#[path = "store/directory.rs"]
mod directory;
#[path = "store/messages.rs"]
mod messages;
#[path = "store/partitioned.rs"]
mod partitioned;
#[path = "store/rooms.rs"]
mod rooms;
#[path = "store/search.rs"]
mod search;
#[path = "store/timeline.rs"]
mod timeline;

use credentials::*;
use directory::*;
use messages::*;
use rooms::*;
use search::*;
use timeline::*;

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
        a_batch_of_one_is_numbered_and_stored_as_larger_batches_are,
        history_pages_forward_and_back,
        changes_keep_the_rules_and_history_shows_the_result,
        an_edit_replaces_the_mentions_and_a_deletion_erases_its_text,
        history_is_the_fold_of_the_events,
    ],
    db: [
        history_survives_a_reconnect,
        concurrent_writers_share_one_gapless_sequence,
        racing_retries_of_the_same_sends_store_each_once,
        a_failing_batch_commits_nothing,
        a_corrupt_row_is_reported_not_trusted,
        accounts_and_sessions,
        membership_and_panel_counts,
        a_member_mutes_a_room_for_themselves,
        sending_counts_as_reading_up_to_it,
        mentions_name_registered_members,
        admin_deletes_keep_seqs_and_are_audited,
        uploads_round_trip_and_image_messages_carry_them,
        a_private_room_is_for_its_members_and_invitees,
        moderation_is_ruled_and_committed_as_room_events,
        invite_links_and_direct_messages,
        what_decides_who_may_fetch_an_upload,
        search_finds_words_phrases_and_leaves_out_exclusions,
        search_sees_edits_never_deletions_and_filters,
        search_pages_stay_stable_while_messages_arrive,
        search_scope_is_what_the_person_may_read,
        look_alike_usernames_are_refused,
        the_migrations_keys_are_the_domains,
        login_failures_count_per_key_and_are_forgiven,
        a_new_password_ends_the_other_sessions,
        a_reset_token_works_once_before_it_expires,
        a_guest_who_signs_up_keeps_their_rooms,
        a_log_in_keeps_the_one_before_it,
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

/// Postgres plans each search by how common its words are. With no statistics (as when
/// the index was a partial index on an expression, which ANALYZE's figures are not taken
/// from), every word was estimated to match 0.5% of messages, and at a million messages a
/// rare word took seconds (`docs/benchmarks.md`, search). Here a word in every message
/// must be estimated as common and a word in one as rare; with `message_search.words`'s
/// statistics gone, both are estimated at 10 of 2,000 and this fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_estimates_a_searched_words_matches_from_statistics() {
    use sqlx::Connection;
    let db = postgres().await;
    let chat_store::Database { messages: store, .. } = db.database().await;
    enter(&store, &["alpha"]).await;
    db.execute(
        "INSERT INTO messages (room_id, seq, author_id, author_name, body, kind, client_msg_id, created_at_ms)
         SELECT r.id, g, 'uann', 'ann', 'common w' || g || CASE WHEN g = 7 THEN ' rare' ELSE '' END,
                'text', 'c' || g, g
         FROM rooms r, generate_series(1, 2000) g WHERE r.name = 'alpha';",
    )
    .await;
    index_search(&store).await;
    db.execute("ANALYZE message_search").await;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let mut estimate = async |words: &str| -> f64 {
        // The store's match (directory_sql/search.rs); the plan's first line ends
        // "(cost=… rows=N width=…)".
        let plan: Vec<String> = sqlx::query_scalar(
            "EXPLAIN SELECT message_id FROM message_search WHERE words @@ websearch_to_tsquery('simple', $1)",
        )
        .bind(words)
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let rows = plan[0].split(" rows=").nth(1).and_then(|rest| rest.split(' ').next());
        rows.and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no row estimate in {plan:?}"))
    };
    let common = estimate("\"common\"").await;
    let rare = estimate("\"rare\"").await;
    assert!(common > 1500.0, "a word in all 2,000 messages estimated at {common}");
    assert!(rare < 5.0, "a word in one message estimated at {rare}");
}

/// Postgres indexes after the commit: a new message is found once an indexer has run, and
/// indexers take turns (one that finds another at work is told so, and indexes nothing),
/// so two never write one message's words out of order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_indexes_after_the_commit_one_indexer_at_a_time() {
    use chat_domain::SearchQuery;
    use chat_store::SearchScope;
    use sqlx::Connection;
    let db = postgres().await;
    let chat_store::Database {
        messages: store,
        directory: dir,
        ..
    } = db.database().await;
    enter(&store, &["alpha"]).await;
    store
        .append_batch(&[msg("alpha", "ann", "a1", "hello world")])
        .await
        .unwrap();
    let (query, alpha) = (SearchQuery::parse("hello").unwrap(), room("alpha"));
    let request = request(&query, SearchScope::Room(&alpha));
    assert!(dir.search(&request).await.unwrap().is_empty(), "not indexed yet");

    let mut other = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let mut turn = other.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(chat_store::SEARCH_INDEXER_LOCK)
        .execute(&mut *turn)
        .await
        .unwrap();
    assert_eq!(store.index_for_search(100).await.unwrap(), IndexRound::Busy);
    assert!(dir.search(&request).await.unwrap().is_empty());
    turn.commit().await.unwrap();

    assert_eq!(
        store.index_for_search(100).await.unwrap(),
        IndexRound::Indexed {
            messages: 1,
            more: false
        }
    );
    assert_eq!(seqs(&dir.search(&request).await.unwrap()), [1]);
    assert_eq!(
        store.index_for_search(100).await.unwrap(),
        IndexRound::Indexed {
            messages: 0,
            more: false
        }
    );
}
