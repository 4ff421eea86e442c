//! The connection appends keep from one batch to the next.
//!
//! sqlx tests every connection it takes back into its pool with a ping: for PostgreSQL a
//! query round trip, which wakes the database's backend process. Under load that was one
//! more round trip per commit, after the commit's own. An append takes the kept
//! connection instead of asking the pool, and gives it back here.
//!
//! PostgreSQL's appends use it. SQLite's do not: there the ping is a hop to the
//! connection's worker thread, and keeping the connection made no difference the
//! all-in-one's saturation runs could tell from their scatter (docs/benchmarks/history.md,
//! "SQLite, measured and not changed").
//! The helper is generic all the same, so that its rules are tested here on SQLite files,
//! without a server.

use sqlx::pool::PoolConnection;
use sqlx::{Database, Pool};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A connection idle this long is checked (pinged) before it is used again: it may have
/// died meanwhile, and the check costs nothing next to the wait.
pub(crate) const PING_IDLE_AFTER: Duration = Duration::from_secs(1);

/// One connection at most, not one per commit lane: whoever waits for the pool (another
/// lane, a history read) must not wait while connections sit here unused. With one lane,
/// the default, every commit runs on it; with more, the others go through the pool.
pub(crate) struct Kept<DB: Database> {
    /// The connection, with when its last statement ended.
    slot: Mutex<Option<(PoolConnection<DB>, Instant)>>,
}

impl<DB: Database> Kept<DB> {
    pub(crate) fn new() -> Self {
        Self { slot: Mutex::new(None) }
    }

    /// The kept connection if it was used within [`PING_IDLE_AFTER`], else one from the
    /// pool. A kept connection idle longer goes back to the pool, which pings it then.
    pub(crate) async fn take(&self, pool: &Pool<DB>) -> Result<PoolConnection<DB>, sqlx::Error> {
        let kept = self.slot.lock().expect("kept connection lock").take();
        if let Some((conn, last_used)) = kept
            && last_used.elapsed() < PING_IDLE_AFTER
        {
            return Ok(conn);
        }
        pool.acquire().await
    }

    /// Keeps the connection of an append that succeeded, unless one is kept already or the
    /// pool has no other (reads would wait for it while it sits here). After a failure the
    /// caller drops the connection instead: the pool's ping on its return closes it if it
    /// is broken, and flushes a rollback left pending.
    pub(crate) fn keep(&self, pool: &Pool<DB>, conn: PoolConnection<DB>) {
        let mut slot = self.slot.lock().expect("kept connection lock");
        if slot.is_none() && pool.options().get_max_connections() > 1 {
            *slot = Some((conn, Instant::now()));
        }
    }

    /// The slot itself, for tests that look at or stand in for what is kept.
    #[cfg(test)]
    pub(crate) fn slot(&self) -> std::sync::MutexGuard<'_, Option<(PoolConnection<DB>, Instant)>> {
        self.slot.lock().expect("kept connection lock")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Sqlite;
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

    async fn pool(dir: &tempfile::TempDir, max_connections: u32) -> Pool<Sqlite> {
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("kept.db"))
            .create_if_missing(true);
        SqlitePoolOptions::new()
            .max_connections(max_connections)
            .connect_with(options)
            .await
            .unwrap()
    }

    /// A temporary table lives on the connection that made it: a way to tell connections apart.
    async fn mark(conn: &mut PoolConnection<Sqlite>) {
        sqlx::query("CREATE TEMP TABLE mark (x)")
            .execute(&mut **conn)
            .await
            .unwrap();
    }

    async fn marked(conn: &mut PoolConnection<Sqlite>) -> bool {
        sqlx::query("SELECT x FROM temp.mark")
            .fetch_all(&mut **conn)
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn the_kept_connection_is_the_next_one_taken() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(&dir, 2).await;
        let kept = Kept::new();
        let mut conn = kept.take(&pool).await.unwrap();
        mark(&mut conn).await;
        kept.keep(&pool, conn);
        // A second connection offered is not kept: one at most.
        let other = pool.acquire().await.unwrap();
        kept.keep(&pool, other);
        let mut again = kept.take(&pool).await.unwrap();
        assert!(marked(&mut again).await, "took the kept connection");
        assert!(kept.slot().is_none());
    }

    #[tokio::test]
    async fn a_pool_of_one_keeps_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(&dir, 1).await;
        let kept = Kept::new();
        let conn = kept.take(&pool).await.unwrap();
        kept.keep(&pool, conn);
        assert!(kept.slot().is_none());
        pool.acquire().await.expect("the connection went back to the pool");
    }
}
