//! The connection appends keep ([`Kept`]), on a real server: what is kept, what is
//! dropped, and that a kept connection that died costs one append at most.

use super::*;
use crate::store::NewMessage;
use chat_domain::{Author, ClientMsgId, DisplayName, MessageKind, MessageText, UserId};
use std::time::{Duration, Instant};
use test_database::TestDb;

async fn store(db: &TestDb) -> PgStore {
    let mut options = ConnectOptions::new(db.url.clone());
    options.max_connections = 4;
    let store = PgStore::connect(&options).await.expect("connect");
    store.enter_room(&room()).await.expect("enter");
    store
}

fn room() -> RoomName {
    RoomName::parse("alpha").unwrap()
}

fn message(n: u32) -> NewEvent {
    NewEvent::Message(NewMessage {
        room: room(),
        author: Author {
            id: UserId::parse("uann").unwrap(),
            name: DisplayName::parse("Ann").unwrap(),
        },
        text: MessageText::parse(format!("message {n}")).unwrap(),
        client_msg_id: ClientMsgId::parse(&format!("c{n}")).unwrap(),
        kind: MessageKind::Text,
        attachment: None,
        attachment_size: None,
        reply_to: None,
        mentions: Vec::new(),
    })
}

/// The backend process of the one kept connection, which stays kept.
async fn kept_backend(store: &PgStore) -> i32 {
    let mut kept = store.kept.slot().take().expect("a kept connection");
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *kept.0)
        .await
        .unwrap();
    *store.kept.slot() = Some(kept);
    pid
}

async fn terminate(store: &PgStore, pid: i32) {
    let done: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1, 5000)")
        .bind(pid)
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert!(done, "backend {pid} did not end");
}

fn stored(outcomes: &[AppendOutcome]) -> bool {
    matches!(outcomes, [AppendOutcome::Stored(_)])
}

/// The next append runs on the connection the last one kept, so a kept connection that
/// died fails exactly that append, as unavailable (which the gateway retries), and is
/// not kept again: the append after it runs on a live connection from the pool.
#[tokio::test]
async fn an_append_keeps_its_connection_and_a_dead_one_fails_once() {
    let db = TestDb::create().await;
    let store = store(&db).await;
    assert!(stored(&store.append_batch(&[message(1)]).await.unwrap()));
    assert!(store.kept.slot().is_some(), "the append's connection is kept");
    let first = kept_backend(&store).await;
    assert!(stored(&store.append_batch(&[message(2)]).await.unwrap()));
    assert_eq!(
        kept_backend(&store).await,
        first,
        "the next append used the kept connection"
    );

    terminate(&store, first).await;
    let error = store.append_batch(&[message(3)]).await.unwrap_err();
    assert!(error.is_unavailable(), "{error:?}");
    assert!(store.kept.slot().is_none(), "a failed append's connection is not kept");
    assert!(stored(&store.append_batch(&[message(3)]).await.unwrap()));
    assert_ne!(kept_backend(&store).await, first);
}

/// A kept connection idle for [`PING_IDLE_AFTER`] goes back to the pool, which pings it
/// and hands out a live one: after a quiet spell, a connection that died meanwhile fails
/// no append.
#[tokio::test]
async fn a_kept_connection_idle_a_while_is_not_used_unchecked() {
    let db = TestDb::create().await;
    let store = store(&db).await;
    assert!(stored(&store.append_batch(&[message(1)]).await.unwrap()));
    let first = kept_backend(&store).await;
    terminate(&store, first).await;
    // As if its last statement had ended that long ago.
    let long_ago = Instant::now()
        .checked_sub(PING_IDLE_AFTER + Duration::from_millis(1))
        .unwrap();
    store.kept.slot().as_mut().expect("a kept connection").1 = long_ago;
    assert!(stored(&store.append_batch(&[message(2)]).await.unwrap()));
    assert_ne!(kept_backend(&store).await, first);
}

/// Appends in parallel beyond the pool's size all complete: only one connection is kept
/// out of the pool, so those waiting for it get the others. (A first version kept one per
/// append: once every connection of the pool sat kept, appends waiting for the pool timed
/// out.)
#[tokio::test]
async fn parallel_appends_never_wait_on_kept_connections() {
    let db = TestDb::create().await;
    let mut options = ConnectOptions::new(db.url.clone());
    options.max_connections = 2;
    options.acquire_timeout = Duration::from_secs(30);
    let store = std::sync::Arc::new(PgStore::connect(&options).await.expect("connect"));
    store.enter_room(&room()).await.expect("enter");
    for round in 0..3 {
        let appends = (0..8).map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.append_batch(&[message(round * 8 + i)]).await })
        });
        for done in futures::future::join_all(appends).await {
            assert!(stored(&done.unwrap().unwrap()));
        }
    }
    assert!(store.kept.slot().is_some());
}

/// With a pool of one connection nothing is kept: a read would wait for it otherwise.
#[tokio::test]
async fn a_pool_of_one_keeps_nothing() {
    let db = TestDb::create().await;
    let mut options = ConnectOptions::new(db.url.clone());
    options.max_connections = 1;
    let store = PgStore::connect(&options).await.expect("connect");
    store.enter_room(&room()).await.expect("enter");
    assert!(stored(&store.append_batch(&[message(1)]).await.unwrap()));
    assert!(store.kept.slot().is_none());
    store
        .history_after(&room(), 0, 10)
        .await
        .expect("a read gets the connection");
}
