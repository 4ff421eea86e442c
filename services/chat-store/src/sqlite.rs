//! The SQLite backend: the all-in-one server's embedded database, one process, one file.
//!
//! SQLite has one writer at a time. Appends begin with `BEGIN IMMEDIATE`, which takes the
//! write lock up front: a second writer then waits (up to the busy timeout) instead of
//! starting a read that could never be upgraded and failing with `SQLITE_BUSY`. Holding
//! that lock is what makes the duplicate check and the numbering race-free here; it plays
//! the part of the room row locks in PostgreSQL.
//!
//! SQLite has no arrays, so multi-row statements are built with `QueryBuilder` and bound
//! parameters, split into chunks that stay under SQLite's bound-parameter limit.

use crate::ConnectOptions;
use crate::batch::{self, Plan};
use crate::error::StoreError;
use crate::rows::{InsertedRow, MessageRow, RoomRow, into_messages, message_columns, room_columns, to_db};
use crate::store::{AppendOutcome, NewMessage, RoomInfo, Store};
use chat_domain::{ChatMessage, RoomName, UploadId};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Sqlite};
use std::time::Duration;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// Unix milliseconds by SQLite's clock; `'now'` is fixed for the duration of a statement,
/// so the rows of one insert share one time.
macro_rules! now_ms {
    () => {
        "CAST(ROUND((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER)"
    };
}

/// Rows per multi-row statement. The widest row binds 8 parameters; SQLite allows 32766.
const CHUNK_ROWS: usize = 1000;

/// How long a writer waits for another one before giving up with `SQLITE_BUSY`. Long,
/// because writes are short and waiting is better than failing a send.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) struct SqliteStore {
    pub(crate) pool: SqlitePool,
}

impl SqliteStore {
    pub async fn connect(options: &ConnectOptions) -> Result<Self, StoreError> {
        let connect: SqliteConnectOptions = options
            .url
            .parse()
            .map_err(|e: sqlx::Error| StoreError::InvalidUrl(e.to_string()))?;
        let connect = connect
            .create_if_missing(true)
            // WAL lets history reads run while a batch is being written; with NORMAL
            // synchronous a commit survives a process crash (not a power cut) without an
            // fsync per transaction.
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let in_memory = is_in_memory(&options.url);
        if !in_memory
            && let Some(parent) = connect.get_filename().parent()
            && !parent.as_os_str().is_empty()
        {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        }
        let mut pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout);
        if in_memory {
            // An in-memory database lives as long as a connection to it: keep exactly one,
            // forever, which also makes it the only writer.
            pool = pool
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        let pool = pool.connect_with(connect).await?;
        MIGRATOR.run(&pool).await?;
        tracing::debug!(backend = "sqlite", "database migrated");
        Ok(Self { pool })
    }

    async fn fetch_room(&self, name: &RoomName) -> Result<Option<RoomRow>, StoreError> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            room_columns!(),
            " FROM rooms WHERE name = ? AND deleted_at_ms IS NULL"
        ))
        .bind(name.as_str())
        .fetch_optional(&self.pool)
        .await?)
    }
}

fn is_in_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    #[tracing::instrument(name = "store.enter_room", skip_all, fields(db.system = "sqlite", room = %name))]
    async fn enter_room(&self, name: &RoomName) -> Result<(RoomInfo, bool), StoreError> {
        // The retry covers a room deleted between the insert and the read.
        for _ in 0..3 {
            let created: Option<RoomRow> = sqlx::query_as(concat!(
                "INSERT INTO rooms (name, created_at_ms) VALUES (?, ",
                now_ms!(),
                ") ON CONFLICT (name) DO UPDATE SET deleted_at_ms = NULL WHERE rooms.deleted_at_ms IS NOT NULL RETURNING ",
                room_columns!()
            ))
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await?;
            if let Some(row) = created {
                return Ok((row.into_info()?, true));
            }
            if let Some(row) = self.fetch_room(name).await? {
                return Ok((row.into_info()?, false));
            }
        }
        Err(StoreError::Database(sqlx::Error::RowNotFound))
    }

    async fn room(&self, name: &RoomName) -> Result<Option<RoomInfo>, StoreError> {
        self.fetch_room(name).await?.map(RoomRow::into_info).transpose()
    }

    async fn list_rooms(&self, after: Option<&RoomName>, limit: u32) -> Result<Vec<RoomInfo>, StoreError> {
        let rows: Vec<RoomRow> = match after {
            Some(after) => {
                sqlx::query_as(concat!(
                    "SELECT ",
                    room_columns!(),
                    " FROM rooms WHERE name > ? AND deleted_at_ms IS NULL ORDER BY name LIMIT ?"
                ))
                .bind(after.as_str())
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query_as(concat!(
                    "SELECT ",
                    room_columns!(),
                    " FROM rooms WHERE deleted_at_ms IS NULL ORDER BY name LIMIT ?"
                ))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.into_iter().map(RoomRow::into_info).collect()
    }

    #[tracing::instrument(name = "store.append_batch", skip_all, fields(db.system = "sqlite", messages = batch.len()))]
    async fn append_batch(&self, batch: &[NewMessage]) -> Result<Vec<AppendOutcome>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        // Dropping `tx` on any early return rolls back and releases the write lock.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;

        let mut locked: Vec<RoomRow> = Vec::new();
        for names in batch::room_names(batch).chunks(CHUNK_ROWS) {
            let mut query = QueryBuilder::<Sqlite>::new(concat!(
                "SELECT ",
                room_columns!(),
                " FROM rooms WHERE deleted_at_ms IS NULL AND name IN ("
            ));
            let mut list = query.separated(", ");
            for name in names {
                list.push_bind(*name);
            }
            query.push(")");
            locked.extend(query.build_query_as::<RoomRow>().fetch_all(&mut *tx).await?);
        }
        let plan = Plan::new(batch, locked)?;

        let mut stored: Vec<MessageRow> = Vec::new();
        for keys in plan.keys().chunks(CHUNK_ROWS) {
            let mut query = QueryBuilder::<Sqlite>::new("WITH k (room_id, author_id, client_msg_id) AS (");
            query.push_values(keys, |mut row, &(room_id, author_id, client_msg_id)| {
                row.push_bind(room_id).push_bind(author_id).push_bind(client_msg_id);
            });
            query.push(concat!(
                ") SELECT ",
                message_columns!(),
                " FROM k JOIN messages m ON m.room_id = k.room_id AND m.author_id = k.author_id
                                        AND m.client_msg_id = k.client_msg_id"
            ));
            stored.extend(query.build_query_as::<MessageRow>().fetch_all(&mut *tx).await?);
        }
        let assigned = plan.assign(stored)?;

        let mut inserted: Vec<InsertedRow> = Vec::with_capacity(assigned.rows.len());
        for rows in assigned.rows.chunks(CHUNK_ROWS) {
            let mut query = QueryBuilder::<Sqlite>::new(
                "INSERT INTO messages (room_id, seq, author_id, author_name, body, kind, client_msg_id, attachment_id, created_at_ms) ",
            );
            query.push_values(rows, |mut row, r| {
                let m = r.message;
                row.push_bind(r.room_id)
                    .push_bind(r.seq)
                    .push_bind(m.author.id.as_str())
                    .push_bind(m.author.name.as_str())
                    .push_bind(m.text.as_str())
                    .push_bind(m.kind.as_str())
                    .push_bind(m.client_msg_id.as_str())
                    .push_bind(m.attachment.map(UploadId::get))
                    .push(now_ms!());
            });
            query.push(" RETURNING id, room_id, seq, created_at_ms");
            inserted.extend(query.build_query_as::<InsertedRow>().fetch_all(&mut *tx).await?);
        }
        for updates in assigned.room_updates.chunks(CHUNK_ROWS) {
            let mut query = QueryBuilder::<Sqlite>::new("UPDATE rooms SET last_seq = u.column2 FROM (");
            query.push_values(updates, |mut row, &(room_id, last_seq)| {
                row.push_bind(room_id).push_bind(last_seq);
            });
            query.push(") AS u WHERE rooms.id = u.column1");
            query.build().execute(&mut *tx).await?;
        }

        let outcomes = assigned.finish(inserted)?;
        tx.commit().await?;
        Ok(outcomes)
    }

    #[tracing::instrument(name = "store.history_after", skip_all, fields(db.system = "sqlite", room = %room))]
    async fn history_after(&self, room: &RoomName, after_seq: u64, limit: u32) -> Result<Vec<ChatMessage>, StoreError> {
        let rows = sqlx::query_as(concat!(
            "SELECT ",
            message_columns!(),
            " FROM messages m WHERE m.room_id = (SELECT id FROM rooms WHERE name = ?) AND m.seq > ?
              ORDER BY m.seq LIMIT ?"
        ))
        .bind(room.as_str())
        .bind(to_db(after_seq))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        into_messages(room, rows)
    }

    #[tracing::instrument(name = "store.history_before", skip_all, fields(db.system = "sqlite", room = %room))]
    async fn history_before(
        &self,
        room: &RoomName,
        before_seq: u64,
        limit: u32,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        let rows = sqlx::query_as(concat!(
            "SELECT ",
            message_columns!(),
            " FROM messages m WHERE m.room_id = (SELECT id FROM rooms WHERE name = ?) AND m.seq < ?
              ORDER BY m.seq DESC LIMIT ?"
        ))
        .bind(room.as_str())
        .bind(to_db(before_seq))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut messages = into_messages(room, rows)?;
        messages.reverse();
        Ok(messages)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
