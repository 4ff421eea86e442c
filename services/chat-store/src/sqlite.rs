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
use crate::batch::{self, Effects, Plan, Targets};
use crate::error::StoreError;
use crate::rows::{
    InsertedRow, MessageRow, ReactionRow, RoomRow, into_events, into_messages, message_columns, reaction_columns,
    room_columns, seq_span, to_db,
};
use crate::search::IndexRound;
use crate::store::{AppendOutcome, NewEvent, RoomInfo, Store};
use chat_domain::{ChatMessage, RoomName, TimelineEvent};
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

/// Rows per multi-row statement. The widest row binds 11 parameters; SQLite allows 32766.
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

    /// The reactions standing on a page of rows.
    async fn reactions(&self, room: &RoomName, rows: &[MessageRow]) -> Result<Vec<ReactionRow>, StoreError> {
        let Some((first, last)) = seq_span(rows) else {
            return Ok(Vec::new());
        };
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            reaction_columns!(),
            " FROM reactions WHERE room_id = (SELECT id FROM rooms WHERE name = ?) AND seq BETWEEN ? AND ?"
        ))
        .bind(room.as_str())
        .bind(first)
        .bind(last)
        .fetch_all(&self.pool)
        .await?)
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

/// Reads, holding the write lock, the messages the batch's changes and replies name, and
/// the reactions on them that the rules need: one small indexed query each. SQLite runs
/// in this process, so a statement costs no round trip, and sqlx keeps each prepared.
async fn read_targets(tx: &mut sqlx::SqliteConnection, plan: &Plan<'_>) -> Result<Targets, StoreError> {
    let mut targets = Targets::default();
    for (room_id, seq) in plan.targets() {
        let found: Option<batch::TargetRow> = sqlx::query_as(
            "SELECT room_id, seq, author_id, kind, deleted_at_ms FROM messages WHERE room_id = ? AND seq = ?",
        )
        .bind(room_id)
        .bind(seq)
        .fetch_optional(&mut *tx)
        .await?;
        targets.messages.extend(found);
    }
    let reactors = plan.reactors();
    let mut counted = std::collections::HashSet::new();
    for &(room_id, seq, user_id) in &reactors {
        if counted.insert((room_id, seq)) {
            let counts: Vec<batch::ReactionCountRow> = sqlx::query_as(
                "SELECT room_id, seq, emoji, count(*) AS count FROM reactions
                 WHERE room_id = ? AND seq = ? GROUP BY room_id, seq, emoji",
            )
            .bind(room_id)
            .bind(seq)
            .fetch_all(&mut *tx)
            .await?;
            targets.counts.extend(counts);
        }
        let own: Vec<batch::OwnReactionRow> = sqlx::query_as(
            "SELECT room_id, seq, emoji, user_id FROM reactions WHERE room_id = ? AND seq = ? AND user_id = ?",
        )
        .bind(room_id)
        .bind(seq)
        .bind(user_id)
        .fetch_all(&mut *tx)
        .await?;
        targets.own.extend(own);
    }
    Ok(targets)
}

/// Applies what the batch's changes do to their messages, after the events are inserted
/// (edits and deletions take their text and time from the event rows).
async fn apply_effects(tx: &mut sqlx::SqliteConnection, effects: &Effects) -> Result<(), StoreError> {
    for (room_id, seq, emoji, user_id) in &effects.unreactions {
        sqlx::query("DELETE FROM reactions WHERE room_id = ? AND seq = ? AND emoji = ? AND user_id = ?")
            .bind(room_id)
            .bind(seq)
            .bind(emoji)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
    }
    for r in &effects.reactions {
        sqlx::query(
            "INSERT INTO reactions (room_id, seq, emoji, user_id, user_name, reacted_seq) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(r.room_id)
        .bind(r.seq)
        .bind(&r.emoji)
        .bind(&r.user_id)
        .bind(&r.user_name)
        .bind(r.reacted_seq)
        .execute(&mut *tx)
        .await?;
    }
    for (room_id, seq, edit_seq) in &effects.edits {
        sqlx::query(
            "UPDATE messages SET (body, mentions, edited_at_ms) =
                 (SELECT e.body, e.mentions, e.created_at_ms FROM messages e WHERE e.room_id = ?1 AND e.seq = ?3)
             WHERE room_id = ?1 AND seq = ?2",
        )
        .bind(room_id)
        .bind(seq)
        .bind(edit_seq)
        .execute(&mut *tx)
        .await?;
    }
    for (room_id, seq, deletion_seq) in &effects.deletions {
        // A deleted message's image is served no more: the upload goes with it (unless it
        // is someone's avatar).
        sqlx::query(
            "DELETE FROM uploads WHERE id = (SELECT attachment_id FROM messages WHERE room_id = ?1 AND seq = ?2)
               AND NOT EXISTS (SELECT 1 FROM users p WHERE p.avatar_id = uploads.id)",
        )
        .bind(room_id)
        .bind(seq)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE messages SET body = '', attachment_id = NULL, reply_to = NULL, mentions = '', edited_at_ms = NULL,
                 deleted_at_ms = (SELECT d.created_at_ms FROM messages d WHERE d.room_id = ?1 AND d.seq = ?3)
             WHERE room_id = ?1 AND seq = ?2",
        )
        .bind(room_id)
        .bind(seq)
        .bind(deletion_seq)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE messages SET body = '', mentions = '' WHERE room_id = ? AND target_seq = ? AND kind = 'edit'",
        )
        .bind(room_id)
        .bind(seq)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM reactions WHERE room_id = ? AND seq = ?")
            .bind(room_id)
            .bind(seq)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
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
    async fn append_batch(&self, batch: &[NewEvent]) -> Result<Vec<AppendOutcome>, StoreError> {
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
        let targets = read_targets(&mut tx, &plan).await?;
        let assigned = plan.assign(stored, targets)?;

        let mut inserted: Vec<InsertedRow> = Vec::with_capacity(assigned.rows.len());
        for rows in assigned.rows.chunks(CHUNK_ROWS) {
            let mut query = QueryBuilder::<Sqlite>::new(
                "INSERT INTO messages (room_id, seq, author_id, author_name, body, kind, client_msg_id, attachment_id, \
                 target_seq, reply_to, mentions, created_at_ms) ",
            );
            query.push_values(rows, |mut row, r| {
                let m = r.event;
                row.push_bind(r.room_id)
                    .push_bind(r.seq)
                    .push_bind(m.author().id.as_str())
                    .push_bind(m.author().name.as_str())
                    .push_bind(m.body())
                    .push_bind(m.kind())
                    .push_bind(m.client_msg_id().as_str())
                    .push_bind(m.attachment())
                    .push_bind(m.target_seq())
                    .push_bind(m.reply_to())
                    .push_bind(m.mentions())
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

        apply_effects(&mut tx, &assigned.effects).await?;

        let outcomes = assigned.finish(inserted)?;
        tx.commit().await?;
        Ok(outcomes)
    }

    #[tracing::instrument(name = "store.history_after", skip_all, fields(db.system = "sqlite", room = %room))]
    async fn history_after(
        &self,
        room: &RoomName,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<TimelineEvent>, StoreError> {
        let rows: Vec<MessageRow> = sqlx::query_as(concat!(
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
        let reactions = self.reactions(room, &rows).await?;
        into_events(room, rows, reactions)
    }

    #[tracing::instrument(name = "store.history_before", skip_all, fields(db.system = "sqlite", room = %room))]
    async fn history_before(
        &self,
        room: &RoomName,
        before_seq: u64,
        limit: u32,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        let mut rows: Vec<MessageRow> = sqlx::query_as(concat!(
            "SELECT ",
            message_columns!(),
            " FROM messages m WHERE m.room_id = (SELECT id FROM rooms WHERE name = ?) AND m.seq < ?
                AND m.kind IN ('text', 'image')
              ORDER BY m.seq DESC LIMIT ?"
        ))
        .bind(room.as_str())
        .bind(to_db(before_seq))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.reverse();
        let reactions = self.reactions(room, &rows).await?;
        into_messages(room, rows, reactions)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// One write transaction (SQLite has one writer, so indexers always take turns): take
    /// the oldest `max` queue entries (migration `search_after_commit`), take the changed
    /// messages out of the FTS5 table, and put every message back in its current words,
    /// none for one deleted since.
    #[tracing::instrument(name = "store.index_for_search", skip_all, fields(db.system = "sqlite"))]
    async fn index_for_search(&self, max: u32) -> Result<IndexRound, StoreError> {
        // Most rounds find nothing: look without taking the writer from the committer.
        let queued: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM search_queue)")
            .fetch_one(&self.pool)
            .await?;
        if !queued {
            return Ok(IndexRound::Indexed {
                messages: 0,
                more: false,
            });
        }
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let entries: Vec<(i64, i64, bool)> =
            sqlx::query_as("SELECT id, message_id, changed FROM search_queue ORDER BY id LIMIT ?")
                .bind(i64::from(max))
                .fetch_all(&mut *tx)
                .await?;
        let Some(&(last, _, _)) = entries.last() else {
            return Ok(IndexRound::Indexed {
                messages: 0,
                more: false,
            });
        };
        sqlx::query("DELETE FROM search_queue WHERE id <= ?")
            .bind(last)
            .execute(&mut *tx)
            .await?;
        let in_list = |sql: &'static str, ids: &[i64]| {
            let mut query = sqlx::QueryBuilder::<sqlx::Sqlite>::new(sql);
            let mut list = query.separated(", ");
            for &id in ids {
                list.push_bind(id);
            }
            query.push(")");
            query
        };
        let changed: Vec<i64> = entries.iter().filter(|e| e.2).map(|e| e.1).collect();
        let ids: Vec<i64> = entries.iter().map(|e| e.1).collect();
        if !changed.is_empty() {
            in_list("DELETE FROM message_search WHERE rowid IN (", &changed)
                .build()
                .execute(&mut *tx)
                .await?;
        }
        // A message new and changed in one round is written once, in its current words.
        in_list(
            "INSERT INTO message_search (rowid, body) SELECT id, body FROM messages \
             WHERE kind IN ('text', 'image') AND deleted_at_ms IS NULL AND id IN (",
            &ids,
        )
        .build()
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(IndexRound::Indexed {
            messages: entries.len() as u64,
            more: entries.len() as u64 == u64::from(max),
        })
    }
}
