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
//! included. A batch that repeats a key, within itself or from before, or that holds a
//! change or a reply (whose target the rules must read under the lock) takes the careful
//! path instead: a transaction that looks its keys and targets up first (begin, lock, look
//! up, insert, apply the changes, commit). A retried send is rare, the unique index that
//! refuses it in the single statement costs nothing extra, and a change costs a few round
//! trips more than a message, each an array statement whatever the batch holds.

use crate::ConnectOptions;
use crate::batch::{self, Effects, Plan, Targets};
use crate::error::StoreError;
use crate::kept::{Kept, PING_IDLE_AFTER};
use crate::rows::{
    InsertedRow, MessageRow, ReactionRow, RoomRow, into_events, into_messages, message_columns, reaction_columns,
    room_columns, seq_span, to_db,
};
use crate::search::IndexRound;
use crate::store::{AppendOutcome, NewEvent, RoomInfo, Store};
use chat_domain::{ChatMessage, RoomName, TimelineEvent};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};

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
    /// The connection an append kept for the next one.
    kept: Kept<Postgres>,
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
            // sqlx pings every connection it hands out: a round trip before each
            // statement, about half of a one-message commit's time at moderate load.
            // Only a connection that sat idle a while is pinged now; one in steady use
            // that died fails its statement, which the caller retries (a send comes
            // back `unavailable` and the gateway sends it again, idempotently).
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_IDLE_AFTER {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
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
        Ok(Self {
            pool,
            kept: Kept::new(),
        })
    }

    /// The reactions standing on a page of rows, oldest first.
    async fn reactions(&self, room: &RoomName, rows: &[MessageRow]) -> Result<Vec<ReactionRow>, StoreError> {
        let Some((first, last)) = seq_span(rows) else {
            return Ok(Vec::new());
        };
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            reaction_columns!(),
            " FROM reactions WHERE room_id = (SELECT id FROM rooms WHERE name = $1) AND seq BETWEEN $2 AND $3"
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
    /// Returns an outcome per message: stored, or its room was not found. A batch of one,
    /// the usual batch at moderate load, takes a statement of its own, lighter for
    /// Postgres ([`one_new_message`]), with the same rows back.
    ///
    /// The statement hands back the locked rooms (name, id, `last_seq` before the batch)
    /// and the inserted rows, not the inserted rows joined to their batch positions: the
    /// connection soon plans it generically, for a batch of unknown size, and then joined
    /// the two sides by nested loop (160,000 comparisons for 400 messages). The numbering is
    /// plain to repeat here: each room's messages in batch order, after its `last_seq`.
    async fn append_new(&self, batch: &[NewEvent]) -> Result<Option<Vec<AppendOutcome>>, StoreError> {
        let mut conn = self.kept.take(&self.pool).await?;
        let returned: Result<Vec<batch::NewBatchRow>, sqlx::Error> = match batch {
            [message] => one_new_message(message).fetch_all(&mut *conn).await,
            _ => {
                sqlx::query_as(include_str!("append_new.sql"))
                    .bind(batch.iter().map(|m| m.room().as_str()).collect::<Vec<_>>())
                    .bind(batch.iter().map(|m| m.author().id.as_str()).collect::<Vec<_>>())
                    .bind(batch.iter().map(|m| m.author().name.as_str()).collect::<Vec<_>>())
                    .bind(batch.iter().map(NewEvent::body).collect::<Vec<_>>())
                    .bind(batch.iter().map(NewEvent::kind).collect::<Vec<_>>())
                    .bind(batch.iter().map(|m| m.client_msg_id().as_str()).collect::<Vec<_>>())
                    .bind(batch.iter().map(NewEvent::attachment).collect::<Vec<_>>())
                    .bind(batch::room_names(batch))
                    .bind(batch.iter().map(NewEvent::mentions).collect::<Vec<_>>())
                    .fetch_all(&mut *conn)
                    .await
            }
        };
        let returned = match returned {
            Ok(rows) => {
                self.kept.keep(&self.pool, conn);
                rows
            }
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        batch::outcomes_of_new(batch, returned).map(Some)
    }

    /// Any batch: the rooms are locked first, then the batch's keys are looked up, so a
    /// retried send gets its original back and a key repeated within the batch is stored
    /// once; then the messages its changes and replies name, so each is decided against
    /// what is committed.
    async fn append_checked(&self, batch: &[NewEvent]) -> Result<Vec<AppendOutcome>, StoreError> {
        let mut conn = self.kept.take(&self.pool).await?;
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;

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
        let targets = read_targets(&mut tx, &plan).await?;
        let assigned = plan.assign(stored, targets)?;

        let inserted: Vec<InsertedRow> = if assigned.rows.is_empty() {
            Vec::new()
        } else {
            let rows = &assigned.rows;
            let (update_ids, update_seqs): (Vec<i64>, Vec<i64>) = assigned.room_updates.iter().copied().unzip();
            sqlx::query_as(concat!(
                "WITH inserted AS (
                    INSERT INTO messages
                        (room_id, seq, author_id, author_name, body, kind, client_msg_id, attachment_id,
                         target_seq, reply_to, mentions, created_at_ms)
                    SELECT room_id, seq, author_id, author_name, body, kind, client_msg_id, attachment_id,
                           target_seq, reply_to, mentions, ",
                now_ms!(),
                " FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                              $10::bigint[], $11::bigint[], $12::bigint[], $13::text[])
                         AS t(room_id, seq, author_id, author_name, body, kind, client_msg_id, attachment_id,
                              target_seq, reply_to, mentions)
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
            .bind(rows.iter().map(|r| r.event.author().id.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.event.author().name.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.event.body()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.event.kind()).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|r| r.event.client_msg_id().as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(update_ids)
            .bind(update_seqs)
            .bind(rows.iter().map(|r| r.event.attachment()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.event.target_seq()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.event.reply_to()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.event.mentions()).collect::<Vec<_>>())
            .fetch_all(&mut *tx)
            .await?
        };
        apply_effects(&mut tx, &assigned.effects).await?;

        let outcomes = assigned.finish(inserted)?;
        tx.commit().await?;
        self.kept.keep(&self.pool, conn);
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
    async fn append_batch(&self, batch: &[NewEvent]) -> Result<Vec<AppendOutcome>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        if batch.iter().all(NewEvent::needs_no_check)
            && !batch::repeats_a_key(batch)
            && let Some(outcomes) = self.append_new(batch).await?
        {
            return Ok(outcomes);
        }
        self.append_checked(batch).await
    }

    #[tracing::instrument(name = "store.history_after", skip_all, fields(db.system = "postgresql", room = %room))]
    async fn history_after(
        &self,
        room: &RoomName,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<TimelineEvent>, StoreError> {
        let rows: Vec<MessageRow> = sqlx::query_as(concat!(
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
        let reactions = self.reactions(room, &rows).await?;
        into_events(room, rows, reactions)
    }

    #[tracing::instrument(name = "store.history_before", skip_all, fields(db.system = "postgresql", room = %room))]
    async fn history_before(
        &self,
        room: &RoomName,
        before_seq: u64,
        limit: u32,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        let mut rows: Vec<MessageRow> = sqlx::query_as(concat!(
            "SELECT ",
            message_columns!(),
            " FROM messages m WHERE m.room_id = (SELECT id FROM rooms WHERE name = $1) AND m.seq < $2
                AND m.kind IN ('text', 'image')
              ORDER BY m.seq DESC LIMIT $3"
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

    /// One transaction: take the oldest `max` queue entries (the migration
    /// `search_after_commit` says how appends, edits and deletions queue them), take out
    /// the old words of the changed messages, and write every message's current words,
    /// none for one deleted since. The transaction's advisory lock makes indexers take
    /// turns, so two never write one message's entry out of order; a queue entry is gone
    /// only with the commit that indexed it.
    #[tracing::instrument(name = "store.index_for_search", skip_all, fields(db.system = "postgresql"))]
    async fn index_for_search(&self, max: u32) -> Result<IndexRound, StoreError> {
        let mut tx = self.pool.begin().await?;
        let turn: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(SEARCH_INDEXER_LOCK)
            .fetch_one(&mut *tx)
            .await?;
        if !turn {
            return Ok(IndexRound::Busy);
        }
        let entries: Vec<(Vec<i64>, bool)> = sqlx::query_as(
            "DELETE FROM search_queue WHERE id IN (SELECT id FROM search_queue ORDER BY id LIMIT $1) \
             RETURNING message_ids, changed",
        )
        .bind(i64::from(max))
        .fetch_all(&mut *tx)
        .await?;
        let more = entries.len() as u64 == u64::from(max);
        let changed: Vec<i64> = entries
            .iter()
            .filter(|(_, changed)| *changed)
            .flat_map(|(ids, _)| ids.clone())
            .collect();
        let ids: Vec<i64> = entries.into_iter().flat_map(|(ids, _)| ids).collect();
        if !changed.is_empty() {
            sqlx::query("DELETE FROM message_search WHERE message_id = ANY($1)")
                .bind(&changed)
                .execute(&mut *tx)
                .await?;
        }
        if !ids.is_empty() {
            // A message new and changed in one round is written once, in its current words.
            sqlx::query(
                "INSERT INTO message_search (message_id, words) \
                 SELECT id, to_tsvector('simple', body) FROM messages \
                 WHERE id = ANY($1) AND kind IN ('text', 'image') AND deleted_at_ms IS NULL \
                 ON CONFLICT (message_id) DO UPDATE SET words = EXCLUDED.words",
            )
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(IndexRound::Indexed {
            messages: ids.len() as u64,
            more,
        })
    }
}

/// The append of one new message (`append_one.sql`): the rows `append_new.sql` hands back
/// for a batch of one, for about a sixth less of Postgres's CPU per commit, the arrays and
/// the batch numbering being what costs it.
fn one_new_message(
    message: &NewEvent,
) -> sqlx::query::QueryAs<'_, Postgres, batch::NewBatchRow, sqlx::postgres::PgArguments> {
    sqlx::query_as(include_str!("append_one.sql"))
        .bind(message.room().as_str())
        .bind(message.author().id.as_str())
        .bind(message.author().name.as_str())
        .bind(message.body())
        .bind(message.kind())
        .bind(message.client_msg_id().as_str())
        .bind(message.attachment())
        .bind(message.mentions())
}

/// The transaction-level advisory lock Postgres search indexers take turns on, for an
/// operator reading `pg_locks` (objid holds its low 32 bits): the bytes of "sc-index".
pub const SEARCH_INDEXER_LOCK: i64 = 0x7363_2d69_6e64_6578;

/// Reads, under the batch's room locks, the messages its changes and replies name, and
/// the reactions on them that the rules need.
async fn read_targets(tx: &mut Transaction<'_, Postgres>, plan: &Plan<'_>) -> Result<Targets, StoreError> {
    let places = plan.targets();
    if places.is_empty() {
        return Ok(Targets::default());
    }
    let (rooms, seqs): (Vec<i64>, Vec<i64>) = places.into_iter().unzip();
    let messages = sqlx::query_as(
        "SELECT m.room_id, m.seq, m.author_id, m.kind, m.deleted_at_ms
         FROM UNNEST($1::bigint[], $2::bigint[]) AS t(room_id, seq)
         JOIN messages m ON m.room_id = t.room_id AND m.seq = t.seq",
    )
    .bind(&rooms)
    .bind(&seqs)
    .fetch_all(&mut **tx)
    .await?;
    let reactors = plan.reactors();
    if reactors.is_empty() {
        return Ok(Targets {
            messages,
            ..Targets::default()
        });
    }
    let counts = sqlx::query_as(
        "SELECT r.room_id, r.seq, r.emoji, count(*) AS count
         FROM (SELECT DISTINCT * FROM UNNEST($1::bigint[], $2::bigint[])) AS t(room_id, seq)
         JOIN reactions r ON r.room_id = t.room_id AND r.seq = t.seq
         GROUP BY r.room_id, r.seq, r.emoji",
    )
    .bind(&rooms)
    .bind(&seqs)
    .fetch_all(&mut **tx)
    .await?;
    let (rooms, seqs, users) = unzip3(&reactors);
    let own = sqlx::query_as(
        "SELECT r.room_id, r.seq, r.emoji, r.user_id
         FROM UNNEST($1::bigint[], $2::bigint[], $3::text[]) AS t(room_id, seq, user_id)
         JOIN reactions r ON r.room_id = t.room_id AND r.seq = t.seq AND r.user_id = t.user_id",
    )
    .bind(rooms)
    .bind(seqs)
    .bind(users)
    .fetch_all(&mut **tx)
    .await?;
    Ok(Targets { messages, counts, own })
}

/// Applies what the batch's changes do to their messages, after the events are inserted
/// (edits and deletions take their text and time from the event rows).
async fn apply_effects(tx: &mut Transaction<'_, Postgres>, effects: &Effects) -> Result<(), StoreError> {
    if effects.is_empty() {
        return Ok(());
    }
    if !effects.unreactions.is_empty() {
        let (mut rooms, mut seqs, mut emoji, mut users) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (room, seq, e, user) in &effects.unreactions {
            rooms.push(*room);
            seqs.push(*seq);
            emoji.push(e.as_str());
            users.push(user.as_str());
        }
        sqlx::query(
            "DELETE FROM reactions r USING UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[])
                 AS t(room_id, seq, emoji, user_id)
             WHERE r.room_id = t.room_id AND r.seq = t.seq AND r.emoji = t.emoji AND r.user_id = t.user_id",
        )
        .bind(rooms)
        .bind(seqs)
        .bind(emoji)
        .bind(users)
        .execute(&mut **tx)
        .await?;
    }
    if !effects.reactions.is_empty() {
        let r = &effects.reactions;
        sqlx::query(
            "INSERT INTO reactions (room_id, seq, emoji, user_id, user_name, reacted_seq)
             SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bigint[])",
        )
        .bind(r.iter().map(|r| r.room_id).collect::<Vec<_>>())
        .bind(r.iter().map(|r| r.seq).collect::<Vec<_>>())
        .bind(r.iter().map(|r| r.emoji.as_str()).collect::<Vec<_>>())
        .bind(r.iter().map(|r| r.user_id.as_str()).collect::<Vec<_>>())
        .bind(r.iter().map(|r| r.user_name.as_str()).collect::<Vec<_>>())
        .bind(r.iter().map(|r| r.reacted_seq).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await?;
    }
    if !effects.edits.is_empty() {
        let (rooms, seqs, edits) = unzip3(&effects.edits);
        sqlx::query(
            "UPDATE messages m SET body = e.body, mentions = e.mentions, edited_at_ms = e.created_at_ms
             FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[]) AS t(room_id, seq, edit_seq)
             JOIN messages e ON e.room_id = t.room_id AND e.seq = t.edit_seq
             WHERE m.room_id = t.room_id AND m.seq = t.seq",
        )
        .bind(rooms)
        .bind(seqs)
        .bind(edits)
        .execute(&mut **tx)
        .await?;
    }
    if !effects.deletions.is_empty() {
        let (rooms, seqs, deletions) = unzip3(&effects.deletions);
        sqlx::query(
            "WITH t AS (
                SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[]) AS t(room_id, seq, deletion_seq)
            ), erased AS (
                UPDATE messages m SET body = '', attachment_id = NULL, reply_to = NULL, mentions = '',
                       edited_at_ms = NULL, deleted_at_ms = d.created_at_ms
                FROM t JOIN messages d ON d.room_id = t.room_id AND d.seq = t.deletion_seq
                WHERE m.room_id = t.room_id AND m.seq = t.seq
            ), images AS (
                -- A deleted message's image is served no more: the upload goes with it
                -- (unless it is someone's avatar). Reads the attachment as it was before
                -- `erased`, as every part of one statement does.
                DELETE FROM uploads u USING t, messages o
                WHERE o.room_id = t.room_id AND o.seq = t.seq AND u.id = o.attachment_id
                  AND NOT EXISTS (SELECT 1 FROM users p WHERE p.avatar_id = u.id)
            ), edits AS (
                UPDATE messages m SET body = '', mentions = ''
                FROM t WHERE m.room_id = t.room_id AND m.target_seq = t.seq AND m.kind = 'edit'
            )
            DELETE FROM reactions r USING t WHERE r.room_id = t.room_id AND r.seq = t.seq",
        )
        .bind(rooms)
        .bind(seqs)
        .bind(deletions)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Three columns of array parameters from a list of triples.
fn unzip3<A: Copy, B: Copy, C: Copy>(items: &[(A, B, C)]) -> (Vec<A>, Vec<B>, Vec<C>) {
    let mut a = Vec::with_capacity(items.len());
    let mut b = Vec::with_capacity(items.len());
    let mut c = Vec::with_capacity(items.len());
    for &(x, y, z) in items {
        a.push(x);
        b.push(y);
        c.push(z);
    }
    (a, b, c)
}

#[cfg(test)]
mod tests;
