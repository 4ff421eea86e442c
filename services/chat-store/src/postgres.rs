//! The PostgreSQL backend: several message-service processes share one database.
//!
//! Seqs stay gapless across processes because every append locks its rooms' rows
//! (`FOR UPDATE`, in id order so that two batches over the same rooms cannot deadlock)
//! before it looks for duplicates and numbers new messages. A second writer to the same
//! room waits on that lock and then sees the first one's rows and `last_seq`.
//!
//! Batches travel as arrays (`UNNEST`), so an append costs the same round trips whether it
//! holds 1 message or 500 in 50 rooms, and each statement's text is fixed, which lets the
//! connection reuse its prepared statements. A batch of new messages (nearly every batch)
//! is one statement: lock, number, insert and update in one round trip, its commit
//! included. Only a batch that repeats a key, within itself or from before, takes the five
//! round trips of a transaction that looks its keys up first (begin, lock, look up, insert
//! and update, commit): a retried send is rare, and the unique index that refuses it in
//! the single statement costs nothing extra.

use crate::ConnectOptions;
use crate::batch::{self, Plan};
use crate::error::StoreError;
use crate::rows::{InsertedRow, MessageRow, RoomRow, into_messages, message_columns, room_columns, to_db};
use crate::store::{AppendOutcome, NewMessage, RoomInfo, Store};
use chat_domain::{ChatMessage, RoomName, UploadId};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// The database's clock, in Unix milliseconds: one clock for every process, so times
/// follow seq order within a room. `statement_timestamp()` is read once per statement,
/// after the room locks are held, so a batch shares one commit time.
macro_rules! now_ms {
    () => {
        "(floor(extract(epoch FROM statement_timestamp()) * 1000))::bigint"
    };
}

pub(crate) struct PgStore {
    pub(crate) pool: PgPool,
}

impl PgStore {
    pub async fn connect(options: &ConnectOptions) -> Result<Self, StoreError> {
        let connect: PgConnectOptions = options
            .url
            .parse()
            .map_err(|e: sqlx::Error| StoreError::InvalidUrl(e.to_string()))?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await?;
        // The migrator holds a session-level advisory lock while it works, so processes
        // starting together apply each migration once. Run it on a connection of its own
        // that is closed if it fails, so a lock left behind by an error dies with it.
        let mut conn = pool.acquire().await?;
        if let Err(e) = MIGRATOR.run(&mut *conn).await {
            conn.close_on_drop();
            return Err(e.into());
        }
        drop(conn);
        tracing::debug!(backend = "postgres", "database migrated");
        Ok(Self { pool })
    }

    async fn fetch_room(&self, name: &RoomName) -> Result<Option<RoomRow>, StoreError> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            room_columns!(),
            " FROM rooms WHERE name = $1 AND deleted_at_ms IS NULL"
        ))
        .bind(name.as_str())
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The common case, a batch of new messages, in one statement and so one round trip:
    /// it locks the rooms (in id order, as [`Self::append_checked`] does), numbers the
    /// messages in batch order, inserts them and raises each room's `last_seq`. A key
    /// stored before makes the insert break the idempotency constraint: the statement then
    /// commits nothing and `None` sends the batch to the careful path, which finds it.
    /// Returns an outcome per message: stored, or its room was not found.
    ///
    /// The statement hands back the locked rooms (name, id, `last_seq` before the batch)
    /// and the inserted rows, not the inserted rows joined to their batch positions: the
    /// connection soon plans it generically, for a batch of unknown size, and then joined
    /// the two sides by nested loop (160,000 comparisons for 400 messages). The numbering is
    /// plain to repeat here: each room's messages in batch order, after its `last_seq`.
    async fn append_new(&self, batch: &[NewMessage]) -> Result<Option<Vec<AppendOutcome>>, StoreError> {
        let returned: Result<Vec<batch::NewBatchRow>, sqlx::Error> = sqlx::query_as(include_str!("append_new.sql"))
            .bind(batch.iter().map(|m| m.room.as_str()).collect::<Vec<_>>())
            .bind(batch.iter().map(|m| m.author.id.as_str()).collect::<Vec<_>>())
            .bind(batch.iter().map(|m| m.author.name.as_str()).collect::<Vec<_>>())
            .bind(batch.iter().map(|m| m.text.as_str()).collect::<Vec<_>>())
            .bind(batch.iter().map(|m| m.kind.as_str()).collect::<Vec<_>>())
            .bind(batch.iter().map(|m| m.client_msg_id.as_str()).collect::<Vec<_>>())
            .bind(
                batch
                    .iter()
                    .map(|m| m.attachment.map(UploadId::get))
                    .collect::<Vec<_>>(),
            )
            .bind(batch::room_names(batch))
            .fetch_all(&self.pool)
            .await;
        let returned = match returned {
            Ok(rows) => rows,
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        batch::outcomes_of_new(batch, returned).map(Some)
    }

    /// Any batch: the rooms are locked first, then the batch's keys are looked up, so a
    /// retried send gets its original back and a key repeated within the batch is stored once.
    async fn append_checked(&self, batch: &[NewMessage]) -> Result<Vec<AppendOutcome>, StoreError> {
        let mut tx = self.pool.begin().await?;

        let locked: Vec<RoomRow> = sqlx::query_as(concat!(
            "SELECT ",
            room_columns!(),
            " FROM rooms WHERE name = ANY($1) AND deleted_at_ms IS NULL ORDER BY id FOR UPDATE"
        ))
        .bind(batch::room_names(batch))
        .fetch_all(&mut *tx)
        .await?;
        let plan = Plan::new(batch, locked)?;

        // Only now, under the room locks, is the duplicate check free of races.
        let keys = plan.keys();
        let stored: Vec<MessageRow> = if keys.is_empty() {
            Vec::new()
        } else {
            let (rooms, authors, ids): (Vec<i64>, Vec<&str>, Vec<&str>) = unzip3(&keys);
            sqlx::query_as(concat!(
                "SELECT ",
                message_columns!(),
                " FROM UNNEST($1::bigint[], $2::text[], $3::text[]) AS k(room_id, author_id, client_msg_id)
                  JOIN messages m ON m.room_id = k.room_id AND m.author_id = k.author_id
                                 AND m.client_msg_id = k.client_msg_id"
            ))
            .bind(rooms)
            .bind(authors)
            .bind(ids)
            .fetch_all(&mut *tx)
            .await?
        };
        let assigned = plan.assign(stored)?;

        let inserted: Vec<InsertedRow> = if assigned.rows.is_empty() {
            Vec::new()
        } else {
            let rows = &assigned.rows;
            let (update_ids, update_seqs): (Vec<i64>, Vec<i64>) = assigned.room_updates.iter().copied().unzip();
            sqlx::query_as(concat!(
                "WITH inserted AS (
                    INSERT INTO messages
                        (room_id, seq, author_id, author_name, body, kind, client_msg_id, attachment_id, created_at_ms)
                    SELECT room_id, seq, author_id, author_name, body, kind, client_msg_id, attachment_id, ",
                now_ms!(),
                " FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                              $10::bigint[])
                         AS t(room_id, seq, author_id, author_name, body, kind, client_msg_id, attachment_id)
                    RETURNING id, room_id, seq, created_at_ms
                ), grown AS (
                    UPDATE rooms SET last_seq = u.last_seq
                    FROM UNNEST($8::bigint[], $9::bigint[]) AS u(id, last_seq)
                    WHERE rooms.id = u.id
                )
                SELECT id, room_id, seq, created_at_ms FROM inserted"
            ))
            .bind(rows.iter().map(|r| r.room_id).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.seq).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.message.author.id.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.message.author.name.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.message.text.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.message.kind.as_str()).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|r| r.message.client_msg_id.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(update_ids)
            .bind(update_seqs)
            .bind(
                rows.iter()
                    .map(|r| r.message.attachment.map(UploadId::get))
                    .collect::<Vec<_>>(),
            )
            .fetch_all(&mut *tx)
            .await?
        };

        let outcomes = assigned.finish(inserted)?;
        tx.commit().await?;
        Ok(outcomes)
    }
}

#[async_trait::async_trait]
impl Store for PgStore {
    #[tracing::instrument(name = "store.enter_room", skip_all, fields(db.system = "postgresql", room = %name))]
    async fn enter_room(&self, name: &RoomName) -> Result<(RoomInfo, bool), StoreError> {
        // Insert-or-nothing, then read: taking no lock on an existing room keeps entering
        // from queueing behind its appends. The retry covers a room deleted in between.
        for _ in 0..3 {
            let created: Option<RoomRow> = sqlx::query_as(concat!(
                "INSERT INTO rooms (name, created_at_ms) VALUES ($1, ",
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
                    " FROM rooms WHERE name > $1 AND deleted_at_ms IS NULL ORDER BY name LIMIT $2"
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
                    " FROM rooms WHERE deleted_at_ms IS NULL ORDER BY name LIMIT $1"
                ))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.into_iter().map(RoomRow::into_info).collect()
    }

    #[tracing::instrument(name = "store.append_batch", skip_all, fields(db.system = "postgresql", messages = batch.len()))]
    async fn append_batch(&self, batch: &[NewMessage]) -> Result<Vec<AppendOutcome>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        if !batch::repeats_a_key(batch)
            && let Some(outcomes) = self.append_new(batch).await?
        {
            return Ok(outcomes);
        }
        self.append_checked(batch).await
    }

    #[tracing::instrument(name = "store.history_after", skip_all, fields(db.system = "postgresql", room = %room))]
    async fn history_after(&self, room: &RoomName, after_seq: u64, limit: u32) -> Result<Vec<ChatMessage>, StoreError> {
        let rows = sqlx::query_as(concat!(
            "SELECT ",
            message_columns!(),
            " FROM messages m WHERE m.room_id = (SELECT id FROM rooms WHERE name = $1) AND m.seq > $2
              ORDER BY m.seq LIMIT $3"
        ))
        .bind(room.as_str())
        .bind(to_db(after_seq))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        into_messages(room, rows)
    }

    #[tracing::instrument(name = "store.history_before", skip_all, fields(db.system = "postgresql", room = %room))]
    async fn history_before(
        &self,
        room: &RoomName,
        before_seq: u64,
        limit: u32,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        let rows = sqlx::query_as(concat!(
            "SELECT ",
            message_columns!(),
            " FROM messages m WHERE m.room_id = (SELECT id FROM rooms WHERE name = $1) AND m.seq < $2
              ORDER BY m.seq DESC LIMIT $3"
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

fn unzip3<'a>(keys: &[batch::Key<'a>]) -> (Vec<i64>, Vec<&'a str>, Vec<&'a str>) {
    let mut rooms = Vec::with_capacity(keys.len());
    let mut authors = Vec::with_capacity(keys.len());
    let mut ids = Vec::with_capacity(keys.len());
    for &(room, author, id) in keys {
        rooms.push(room);
        authors.push(author);
        ids.push(id);
    }
    (rooms, authors, ids)
}
