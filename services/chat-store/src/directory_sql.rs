//! [`Directory`] and [`Blobs`](crate::Blobs) in SQL, one text for both backends.
//!
//! Every statement uses `$n` placeholders (which SQLite reads as numbered parameters) and
//! only what both dialects share (`ON CONFLICT`, `RETURNING`, `LIKE … ESCAPE`, `CASE`), so
//! a macro can stamp out the same method bodies for `Pool<Postgres>` and `Pool<Sqlite>`.
//! The suite in `tests/directory.rs` runs against both.
//!
//! The row types are in `rows`; `blobs` stamps out [`Blobs`](crate::Blobs) the same way.

use crate::directory::{
    AuditEntry, Directory, Entered, MemberRoom, MessageAt, NewAuditEntry, NewUser, ProfileUpdate, RoomMember, Search,
    SessionLookup, SessionRecord, UNREAD_WINDOW, UserRecord, contains_pattern,
};
use crate::error::StoreError;
use crate::rows::{RoomRow, message_columns, room_columns, to_db};
use crate::store::RoomInfo;
use chat_domain::lookalike::skeleton_keys;
use chat_domain::{Author, ChatMessage, DisplayName, MessageId, Role, RoomName, UploadId, UserId, Username};
use rows::{
    AuditRow, MemberRoomRow, NamedMessageRow, SESSION_COLUMNS, SessionLookupRow, SessionRow, USER_COLUMNS, UserRow,
};

mod blobs;
mod credentials;
mod rooms;
mod rows;
mod search;

pub(crate) struct SqlDirectory<DB: sqlx::Database> {
    pub pool: sqlx::Pool<DB>,
}

fn room_name(name: &str) -> Result<RoomName, StoreError> {
    RoomName::parse(name).map_err(|_| StoreError::Corrupt(format!("rooms: invalid name {name:?}")))
}

/// Rooms per `last_seqs` statement: well under SQLite's 32,766 bound parameters.
const LAST_SEQS_CHUNK: usize = 500;

fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// A `LIKE` pattern that finds `user` in a message's stored mention list (JSON authors).
fn mention_pattern(user: &UserId) -> String {
    let id = serde_json::to_string(user.as_str()).expect("a string serializes");
    let mut pattern = String::from("%");
    for c in format!("\"id\":{id}").chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// A user whose look-alike keys meet the two parameters `key` and `folded`: each key of one
/// name against both of the other's.
fn looks_alike(key: &str, folded: &str) -> String {
    format!("(name_key IN ({key}, {folded}) OR name_key_folded IN ({key}, {folded}))")
}

fn unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.is_unique_violation())
}

macro_rules! sql_directory {
    ($db:ty) => {
        #[async_trait::async_trait]
        impl Directory for SqlDirectory<$db> {
            async fn create_user(&self, user: &NewUser) -> Result<UserRecord, StoreError> {
                let [name_key, name_key_folded] = skeleton_keys(user.username.as_str());
                let mut tx = self.pool.begin().await?;
                // Not unique in the schema (accounts made before the rule may share a key),
                // so the insert itself checks: of two look-alike sign-ups at once, both may
                // pass, as two sign-ups of one name never can (username_key is unique).
                let row: Result<Option<UserRow>, sqlx::Error> = sqlx::query_as(&format!(
                    "INSERT INTO users (id, username, username_key, name_key, name_key_folded, email, first_name, \
                     last_name, role, password_hash, created_at_ms)
                     SELECT $1, $2, $3, $4, $11, $5, $6, $7, $8, $9, $10
                     WHERE NOT EXISTS (SELECT 1 FROM users WHERE {})
                     RETURNING {USER_COLUMNS}",
                    looks_alike("$4", "$11")
                ))
                .bind(user.id.as_str())
                .bind(user.username.as_str())
                .bind(user.username.key())
                .bind(&name_key)
                .bind(user.email.as_str())
                .bind(user.first_name.as_str())
                .bind(user.last_name.as_str())
                .bind(user.role.as_str())
                .bind(&user.password_hash)
                .bind(user.now_ms)
                .bind(&name_key_folded)
                .fetch_optional(&mut *tx)
                .await;
                let record = match row {
                    Ok(Some(row)) => row.into_record()?,
                    Ok(None) => return Err(StoreError::Conflict("username looks like a registered one".into())),
                    Err(e) if unique_violation(&e) => return Err(StoreError::Conflict("username is taken".into())),
                    Err(e) => return Err(e.into()),
                };
                if let Some(guest) = &user.adopt_guest {
                    for table in ["memberships", "room_invites", "room_bans"] {
                        sqlx::query(&format!("UPDATE {table} SET user_id = $2, user_name = $3 WHERE user_id = $1"))
                            .bind(guest.as_str())
                            .bind(record.id.as_str())
                            .bind(&record.username)
                            .execute(&mut *tx)
                            .await?;
                    }
                    sqlx::query("UPDATE uploads SET owner_id = $2 WHERE owner_id = $1")
                        .bind(guest.as_str())
                        .bind(record.id.as_str())
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                        .bind(guest.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(record)
            }

            async fn looks_like_username(&self, name: &str) -> Result<bool, StoreError> {
                let [key, folded] = skeleton_keys(name);
                let found: Option<(i32,)> = sqlx::query_as(&format!(
                    "SELECT 1 FROM users WHERE {} LIMIT 1",
                    looks_alike("$1", "$2")
                ))
                .bind(key)
                .bind(folded)
                .fetch_optional(&self.pool)
                .await?;
                Ok(found.is_some())
            }

            async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
                let row: Option<UserRow> =
                    sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE username_key = $1"))
                        .bind(username.to_ascii_lowercase())
                        .fetch_optional(&self.pool)
                        .await?;
                row.map(UserRow::into_record).transpose()
            }

            async fn user_by_id(&self, id: &UserId) -> Result<Option<UserRecord>, StoreError> {
                let row: Option<UserRow> = sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
                    .bind(id.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(UserRow::into_record).transpose()
            }

            async fn update_profile(
                &self,
                id: &UserId,
                update: &ProfileUpdate,
            ) -> Result<Option<UserRecord>, StoreError> {
                // One statement: each field keeps its value unless a new one is given ($n is
                // NULL for "unchanged"; the avatar has its own flag since NULL is a value).
                let row: Option<UserRow> = sqlx::query_as(&format!(
                    "UPDATE users SET
                        email = COALESCE($2, email),
                        first_name = COALESCE($3, first_name),
                        last_name = COALESCE($4, last_name),
                        bio = COALESCE($5, bio),
                        avatar_id = CASE WHEN $6 THEN $7 ELSE avatar_id END,
                        read_receipts = COALESCE($8, read_receipts)
                     WHERE id = $1 RETURNING {USER_COLUMNS}"
                ))
                .bind(id.as_str())
                .bind(update.email.as_ref().map(|v| v.as_str()))
                .bind(update.first_name.as_ref().map(|v| v.as_str()))
                .bind(update.last_name.as_ref().map(|v| v.as_str()))
                .bind(update.bio.as_ref().map(|v| v.as_str()))
                .bind(update.avatar_id.is_some())
                .bind(update.avatar_id.flatten())
                .bind(update.read_receipts)
                .fetch_optional(&self.pool)
                .await?;
                row.map(UserRow::into_record).transpose()
            }

            async fn record_login(&self, id: &UserId, now_ms: i64) -> Result<(), StoreError> {
                // The right-hand side reads the row as it was: the latest becomes the previous.
                sqlx::query("UPDATE users SET previous_login_ms = last_login_ms, last_login_ms = $2 WHERE id = $1")
                    .bind(id.as_str())
                    .bind(now_ms)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn set_role(&self, username: &str, role: Role) -> Result<bool, StoreError> {
                let done = sqlx::query("UPDATE users SET role = $2 WHERE username_key = $1")
                    .bind(username.to_ascii_lowercase())
                    .bind(role.as_str())
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn set_disabled(&self, id: &UserId, disabled: bool, now_ms: i64) -> Result<bool, StoreError> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query("UPDATE users SET disabled = $2 WHERE id = $1")
                    .bind(id.as_str())
                    .bind(disabled)
                    .execute(&mut *tx)
                    .await?;
                if disabled {
                    sqlx::query("DELETE FROM sessions WHERE user_id = $1 OR expires_at_ms < $2")
                        .bind(id.as_str())
                        .bind(now_ms)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(done.rows_affected() > 0)
            }

            async fn search_users(&self, search: &Search<'_>) -> Result<Vec<UserRecord>, StoreError> {
                let rows: Vec<UserRow> = sqlx::query_as(&format!(
                    "SELECT {USER_COLUMNS} FROM users
                     WHERE username_key > $1 AND ($2 IS NULL OR username_key LIKE $2 ESCAPE '\\'
                                                  OR lower(email) LIKE $2 ESCAPE '\\')
                     ORDER BY username_key LIMIT $3"
                ))
                .bind(search.after.map(str::to_ascii_lowercase).unwrap_or_default())
                .bind(search.query.map(contains_pattern))
                .bind(i64::from(search.limit))
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map(UserRow::into_record).collect()
            }

            async fn message_count(&self, user_id: &UserId) -> Result<u64, StoreError> {
                let (n,): (i64,) =
                    sqlx::query_as("SELECT count(*) FROM messages WHERE author_id = $1 AND deleted_at_ms IS NULL AND kind IN ('text', 'image')")
                        .bind(user_id.as_str())
                        .fetch_one(&self.pool)
                        .await?;
                Ok(count(n))
            }

            async fn create_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO sessions (id, token_hash, user_id, user_name, guest, created_at_ms, expires_at_ms, \
                     user_agent) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&s.id)
                .bind(&s.token_hash)
                .bind(&s.user_id)
                .bind(&s.user_name)
                .bind(s.guest)
                .bind(s.created_at_ms)
                .bind(s.expires_at_ms)
                .bind(&s.user_agent)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn session(&self, token_hash: &str, now_ms: i64) -> Result<Option<SessionLookup>, StoreError> {
                let row: Option<SessionLookupRow> = sqlx::query_as(&format!(
                    "SELECT {SESSION_COLUMNS}, u.username, u.role, u.disabled
                     FROM sessions s LEFT JOIN users u ON u.id = s.user_id
                     WHERE s.token_hash = $1 AND s.expires_at_ms > $2"
                ))
                .bind(token_hash)
                .bind(now_ms)
                .fetch_optional(&self.pool)
                .await?;
                let Some(row) = row else { return Ok(None) };
                let role = match row.role.as_deref() {
                    Some(role) => Role::parse(role).map_err(|_| StoreError::Corrupt(format!("users: invalid role {role:?}")))?,
                    None => Role::User,
                };
                Ok(Some(SessionLookup {
                    name: row.username.unwrap_or_else(|| row.session.user_name.clone()),
                    session: row.session.into(),
                    role,
                    disabled: row.disabled.unwrap_or(false),
                }))
            }

            async fn sessions_of(
                &self,
                user_id: &UserId,
                now_ms: i64,
                limit: u32,
            ) -> Result<Vec<SessionRecord>, StoreError> {
                let rows: Vec<SessionRow> = sqlx::query_as(&format!(
                    "SELECT {SESSION_COLUMNS} FROM sessions s WHERE s.user_id = $1 AND s.expires_at_ms > $2
                     ORDER BY s.created_at_ms DESC, s.id LIMIT $3"
                ))
                .bind(user_id.as_str())
                .bind(now_ms)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn revoke_session(&self, user_id: &UserId, session_id: &str) -> Result<bool, StoreError> {
                let done = sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id = $2")
                    .bind(user_id.as_str())
                    .bind(session_id)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn purge_expired_sessions(&self, now_ms: i64) -> Result<u64, StoreError> {
                let done = sqlx::query("DELETE FROM sessions WHERE expires_at_ms <= $1")
                    .bind(now_ms)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }

            async fn enter(
                &self,
                user_id: &UserId,
                name: &DisplayName,
                room: &RoomName,
                now_ms: i64,
            ) -> Result<Entered, StoreError> {
                let done = sqlx::query(
                    "INSERT INTO memberships (user_id, room_id, user_name, joined_at_ms)
                     SELECT $1, id, $2, $3 FROM rooms WHERE name = $4 AND deleted_at_ms IS NULL
                     ON CONFLICT (user_id, room_id) DO NOTHING",
                )
                .bind(user_id.as_str())
                .bind(name.as_str())
                .bind(now_ms)
                .bind(room.as_str())
                .execute(&self.pool)
                .await?;
                if done.rows_affected() > 0 {
                    sqlx::query(
                        "DELETE FROM room_invites WHERE user_id = $1 AND room_id = (SELECT id FROM rooms WHERE name = $2)",
                    )
                    .bind(user_id.as_str())
                    .bind(room.as_str())
                    .execute(&self.pool)
                    .await?;
                    return Ok(Entered::Joined);
                }
                let member: Option<(i64,)> = sqlx::query_as(
                    "SELECT mb.joined_at_ms FROM memberships mb JOIN rooms r ON r.id = mb.room_id
                     WHERE mb.user_id = $1 AND r.name = $2 AND r.deleted_at_ms IS NULL",
                )
                .bind(user_id.as_str())
                .bind(room.as_str())
                .fetch_optional(&self.pool)
                .await?;
                Ok(if member.is_some() { Entered::AlreadyMember } else { Entered::RoomNotFound })
            }

            async fn leave(&self, user_id: &UserId, room: &RoomName) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "DELETE FROM memberships WHERE user_id = $1 AND room_id = (SELECT id FROM rooms WHERE name = $2)",
                )
                .bind(user_id.as_str())
                .bind(room.as_str())
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn mute_notifications(&self, user_id: &UserId, room: &RoomName, muted: bool) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "UPDATE memberships SET notifications_muted = $3
                     WHERE user_id = $1 AND room_id = (SELECT id FROM rooms WHERE name = $2 AND deleted_at_ms IS NULL)",
                )
                .bind(user_id.as_str())
                .bind(room.as_str())
                .bind(muted)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn mark_read(&self, user_id: &UserId, room: &RoomName, seq: u64) -> Result<Option<u64>, StoreError> {
                // The cap can leave the marker where it was (a seq past the room's end):
                // only a marker that rose is news.
                let moved: Option<(i64, Option<bool>)> = sqlx::query_as(
                    "UPDATE memberships SET last_read_seq =
                        (SELECT CASE WHEN r.last_seq < $3 THEN r.last_seq ELSE $3 END
                         FROM rooms r WHERE r.id = memberships.room_id)
                     WHERE user_id = $1 AND room_id = (SELECT id FROM rooms WHERE name = $2)
                       AND last_read_seq < $3
                       AND last_read_seq < (SELECT r.last_seq FROM rooms r WHERE r.id = memberships.room_id)
                     RETURNING last_read_seq, (SELECT u.read_receipts FROM users u WHERE u.id = memberships.user_id)",
                )
                .bind(user_id.as_str())
                .bind(room.as_str())
                .bind(to_db(seq))
                .fetch_optional(&self.pool)
                .await?;
                Ok(moved.filter(|(_, receipts)| receipts.unwrap_or(true)).map(|(seq, _)| count(seq)))
            }

            async fn read_markers(&self, room: &RoomName, limit: u32) -> Result<Vec<(UserId, u64)>, StoreError> {
                let rows: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT mb.user_id, mb.last_read_seq FROM memberships mb
                     LEFT JOIN users u ON u.id = mb.user_id
                     WHERE mb.room_id = (SELECT id FROM rooms WHERE name = $1)
                       AND mb.last_read_seq > 0 AND COALESCE(u.read_receipts, true)
                     ORDER BY mb.last_read_seq DESC LIMIT $2",
                )
                .bind(room.as_str())
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|(id, seq)| {
                        let id = UserId::parse(id).map_err(|_| StoreError::Corrupt(format!("memberships: invalid user {id:?}")))?;
                        Ok((id, count(*seq)))
                    })
                    .collect()
            }

            async fn member_room_names(&self, user_id: &UserId, limit: u32) -> Result<Vec<RoomName>, StoreError> {
                let names: Vec<(String,)> = sqlx::query_as(
                    "SELECT r.name FROM memberships mb JOIN rooms r ON r.id = mb.room_id
                     WHERE mb.user_id = $1 AND r.deleted_at_ms IS NULL ORDER BY r.name LIMIT $2",
                )
                .bind(user_id.as_str())
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                names.iter().map(|(name,)| room_name(name)).collect()
            }

            async fn member_rooms(
                &self,
                user_id: &UserId,
                after: Option<&RoomName>,
                limit: u32,
            ) -> Result<Vec<MemberRoom>, StoreError> {
                // Unread counts messages only (edits and reactions are not news); mentions
                // are the unread messages whose mention list names this user. Both look at
                // the newest UNREAD_WINDOW seqs at most (a range of the (room, seq) key).
                // Sending counts as reading up to what one sent: the read marker used is the
                // stored one or the seq of this member's newest message, whichever is later,
                // so one's own messages (and what they answered) are never unread in another
                // tab. Worked out here, on reading, so that a send writes nothing more.
                let rows: Vec<MemberRoomRow> = sqlx::query_as(
                    "SELECT x.name, x.last_seq, x.read_seq AS last_read_seq, x.joined_at_ms,
                        (SELECT m.created_at_ms FROM messages m WHERE m.room_id = x.room_id AND m.seq = x.last_seq)
                            AS last_activity_ms,
                        (SELECT count(*) FROM messages m WHERE m.room_id = x.room_id
                            AND m.seq > x.read_seq AND m.seq > x.last_seq - $5
                            AND m.kind IN ('text', 'image') AND m.deleted_at_ms IS NULL) AS unread,
                        (SELECT count(*) FROM messages m WHERE m.room_id = x.room_id
                            AND m.seq > x.read_seq AND m.seq > x.last_seq - $5
                            AND m.kind IN ('text', 'image') AND m.mentions LIKE $4 ESCAPE '\\') AS mentions,
                        x.visibility, x.title,
                        CASE WHEN x.dm_key IS NOT NULL THEN (SELECT o.user_id FROM memberships o
                            WHERE o.room_id = x.room_id AND o.user_id <> $1 LIMIT 1) END AS dm_with_id,
                        CASE WHEN x.dm_key IS NOT NULL THEN (SELECT o.user_name FROM memberships o
                            WHERE o.room_id = x.room_id AND o.user_id <> $1 LIMIT 1) END AS dm_with_name,
                        x.notifications_muted
                     FROM (
                        SELECT y.*, CASE WHEN y.own_seq > y.stored_read THEN y.own_seq ELSE y.stored_read END
                            AS read_seq
                        FROM (
                            SELECT r.id AS room_id, r.name, r.last_seq, mb.joined_at_ms, r.visibility, r.title,
                                r.dm_key, mb.last_read_seq AS stored_read, mb.notifications_muted,
                                COALESCE((SELECT max(m.seq) FROM messages m WHERE m.room_id = r.id
                                    AND m.seq > r.last_seq - $5 AND m.author_id = $1
                                    AND m.kind IN ('text', 'image')), 0) AS own_seq
                            FROM memberships mb JOIN rooms r ON r.id = mb.room_id
                            WHERE mb.user_id = $1 AND r.name > $2 AND r.deleted_at_ms IS NULL
                            ORDER BY r.name LIMIT $3
                        ) y
                     ) x
                     ORDER BY x.name",
                )
                .bind(user_id.as_str())
                .bind(after.map_or("", |r| r.as_str()))
                .bind(i64::from(limit))
                .bind(mention_pattern(user_id))
                .bind(to_db(UNREAD_WINDOW))
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map(|r| {
                        Ok(MemberRoom {
                            room: room_name(&r.name)?,
                            last_seq: count(r.last_seq),
                            last_read_seq: count(r.last_read_seq),
                            last_activity_ms: r.last_activity_ms,
                            joined_at_ms: r.joined_at_ms,
                            unread: count(r.unread),
                            mentions: count(r.mentions),
                            visibility: chat_domain::Visibility::parse(&r.visibility)
                                .map_err(|_| StoreError::Corrupt(format!("rooms: invalid visibility {:?}", r.visibility)))?,
                            title: r.title,
                            dm_with: match (&r.dm_with_id, &r.dm_with_name) {
                                (Some(id), Some(name)) => Some(Author {
                                    id: UserId::parse(id).map_err(|_| StoreError::Corrupt(format!("memberships: invalid user {id:?}")))?,
                                    name: DisplayName::parse(name)
                                        .map_err(|_| StoreError::Corrupt(format!("memberships: invalid name {name:?}")))?,
                                }),
                                _ => None,
                            },
                            notifications_muted: r.notifications_muted,
                        })
                    })
                    .collect()
            }

            async fn last_seqs(&self, rooms: &[RoomName]) -> Result<Vec<(RoomName, u64)>, StoreError> {
                let mut found = Vec::with_capacity(rooms.len());
                for chunk in rooms.chunks(LAST_SEQS_CHUNK) {
                    let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
                    let sql = format!("SELECT name, last_seq FROM rooms WHERE name IN ({})", placeholders.join(", "));
                    let mut query = sqlx::query_as::<_, (String, i64)>(&sql);
                    for room in chunk {
                        query = query.bind(room.as_str());
                    }
                    for (name, last_seq) in query.fetch_all(&self.pool).await? {
                        let room = RoomName::parse(&name)
                            .map_err(|e| StoreError::Corrupt(format!("rooms row {name:?}: {}", e)))?;
                        found.push((room, count(last_seq)));
                    }
                }
                Ok(found)
            }

            async fn room_count(&self, user_id: &UserId) -> Result<u64, StoreError> {
                let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM memberships WHERE user_id = $1")
                    .bind(user_id.as_str())
                    .fetch_one(&self.pool)
                    .await?;
                Ok(count(n))
            }

            async fn member_ids(&self, room: &RoomName, limit: u32) -> Result<Vec<UserId>, StoreError> {
                let ids: Vec<(String,)> = sqlx::query_as(
                    "SELECT user_id FROM memberships WHERE room_id = (SELECT id FROM rooms WHERE name = $1)
                     ORDER BY user_id LIMIT $2",
                )
                .bind(room.as_str())
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                ids.iter()
                    .map(|(id,)| UserId::parse(id).map_err(|_| StoreError::Corrupt(format!("memberships: invalid user {id:?}"))))
                    .collect()
            }

            async fn members_by_username(&self, room: &RoomName, usernames: &[Username]) -> Result<Vec<Author>, StoreError> {
                if usernames.is_empty() {
                    return Ok(Vec::new());
                }
                let keys: Vec<String> = (2..usernames.len() + 2).map(|i| format!("${i}")).collect();
                let sql = format!(
                    "SELECT u.username_key, u.id, mb.user_name FROM users u
                     JOIN memberships mb ON mb.user_id = u.id
                     WHERE u.username_key IN ({}) AND u.disabled = false
                       AND mb.room_id = (SELECT id FROM rooms WHERE name = $1)",
                    keys.join(", ")
                );
                let mut query = sqlx::query_as::<_, (String, String, String)>(&sql).bind(room.as_str());
                for username in usernames {
                    query = query.bind(username.key());
                }
                let found = query.fetch_all(&self.pool).await?;
                let mut members = Vec::with_capacity(found.len());
                for username in usernames {
                    if let Some((_, id, name)) = found.iter().find(|(key, _, _)| *key == username.key()) {
                        let bad = || StoreError::Corrupt(format!("memberships: invalid member {id:?} {name:?}"));
                        members.push(Author {
                            id: UserId::parse(id).map_err(|_| bad())?,
                            name: DisplayName::parse(name).map_err(|_| bad())?,
                        });
                    }
                }
                Ok(members)
            }

            async fn room_members(
                &self,
                room: &RoomName,
                after: Option<&str>,
                limit: u32,
            ) -> Result<(u64, Vec<RoomMember>), StoreError> {
                let (n,): (i64,) = sqlx::query_as(
                    "SELECT count(*) FROM memberships WHERE room_id = (SELECT id FROM rooms WHERE name = $1)",
                )
                .bind(room.as_str())
                .fetch_one(&self.pool)
                .await?;
                // With each member's avatar, so that a room shows its members' (and its
                // authors') pictures without a profile request per person.
                let rows: Vec<(String, String, i64, String, Option<i64>, Option<i64>)> = sqlx::query_as(
                    "SELECT mb.user_id, mb.user_name, mb.joined_at_ms, mb.role, mb.muted_until_ms,
                        (SELECT u.avatar_id FROM users u WHERE u.id = mb.user_id)
                     FROM memberships mb
                     WHERE mb.room_id = (SELECT id FROM rooms WHERE name = $1) AND mb.user_id > $2
                     ORDER BY mb.user_id LIMIT $3",
                )
                .bind(room.as_str())
                .bind(after.unwrap_or(""))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                let members = rows
                    .into_iter()
                    .map(|(user_id, name, joined_at_ms, role, muted_until_ms, avatar_id)| {
                        Ok(RoomMember {
                            avatar: avatar_id.map(UploadId::new).transpose().map_err(|_| {
                                StoreError::Corrupt(format!("users: invalid avatar_id {avatar_id:?}"))
                            })?,
                            role: chat_domain::RoomRole::parse(&role)
                                .map_err(|_| StoreError::Corrupt(format!("memberships: invalid role {role:?}")))?,
                            user_id,
                            name,
                            joined_at_ms,
                            muted_until_ms,
                        })
                    })
                    .collect::<Result<_, StoreError>>()?;
                Ok((count(n), members))
            }

            async fn search_rooms(&self, search: &Search<'_>) -> Result<Vec<RoomInfo>, StoreError> {
                let rows: Vec<RoomRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    room_columns!(),
                    " FROM rooms WHERE deleted_at_ms IS NULL AND name > $1 AND ($2 IS NULL OR name LIKE $2 ESCAPE '\\')
                      ORDER BY name LIMIT $3"
                ))
                .bind(search.after.unwrap_or(""))
                .bind(search.query.map(contains_pattern))
                .bind(i64::from(search.limit))
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map(RoomRow::into_info).collect()
            }

            async fn search_messages(
                &self,
                query: Option<&str>,
                room: Option<&RoomName>,
                before_id: Option<i64>,
                limit: u32,
            ) -> Result<Vec<ChatMessage>, StoreError> {
                let rows: Vec<NamedMessageRow> = sqlx::query_as(concat!(
                    "SELECT r.name AS room_name, ",
                    message_columns!(),
                    " FROM messages m JOIN rooms r ON r.id = m.room_id
                      WHERE m.deleted_at_ms IS NULL AND m.kind IN ('text', 'image') AND m.id < $1
                        AND ($2 IS NULL OR lower(m.body) LIKE $2 ESCAPE '\\')
                        AND ($3 IS NULL OR r.name = $3)
                      ORDER BY m.id DESC LIMIT $4"
                ))
                .bind(before_id.unwrap_or(i64::MAX))
                .bind(query.map(contains_pattern))
                .bind(room.map(|r| r.as_str()))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map(|r| r.message.into_message(room_name(&r.room_name)?))
                    .collect()
            }

            async fn find_message(&self, id: MessageId) -> Result<Option<MessageAt>, StoreError> {
                let found: Option<(String, i64)> = sqlx::query_as(
                    "SELECT r.name, m.seq FROM messages m JOIN rooms r ON r.id = m.room_id
                     WHERE m.id = $1 AND m.kind IN ('text', 'image')",
                )
                .bind(id.get())
                .fetch_optional(&self.pool)
                .await?;
                found
                    .map(|(room, seq)| Ok(MessageAt { room: room_name(&room)?, id, seq: count(seq) }))
                    .transpose()
            }

            async fn delete_room(&self, room: &RoomName, now_ms: i64) -> Result<bool, StoreError> {
                let mut tx = self.pool.begin().await?;
                let found: Option<(i64,)> = sqlx::query_as(
                    "UPDATE rooms SET deleted_at_ms = $2 WHERE name = $1 AND deleted_at_ms IS NULL RETURNING id",
                )
                .bind(room.as_str())
                .bind(now_ms)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((room_id,)) = found else { return Ok(false) };
                // Its timeline goes for good; the room row keeps `last_seq`, so a room entered
                // again under the name comes back empty and its seqs continue.
                for table in ["reactions", "messages"] {
                    sqlx::query(&format!("DELETE FROM {table} WHERE room_id = $1"))
                        .bind(room_id)
                        .execute(&mut *tx)
                        .await?;
                }
                // Who was in it, banned, invited or holding a link goes too; the room that
                // comes back under the name is new in all but its seqs.
                for table in ["memberships", "room_bans", "room_invites", "invite_links"] {
                    sqlx::query(&format!("DELETE FROM {table} WHERE room_id = $1"))
                        .bind(room_id)
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query("UPDATE rooms SET topic = '', description = '' WHERE id = $1")
                    .bind(room_id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn audit(&self, e: &NewAuditEntry<'_>, now_ms: i64) -> Result<i64, StoreError> {
                let (id,): (i64,) = sqlx::query_as(
                    "INSERT INTO audit_log (actor_id, actor_name, action, target, detail, created_at_ms)
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                )
                .bind(e.actor_id)
                .bind(e.actor_name)
                .bind(e.action)
                .bind(e.target)
                .bind(e.detail)
                .bind(now_ms)
                .fetch_one(&self.pool)
                .await?;
                Ok(id)
            }

            async fn audit_once(&self, e: &NewAuditEntry<'_>, now_ms: i64) -> Result<bool, StoreError> {
                let written = sqlx::query(
                    "INSERT INTO audit_log (actor_id, actor_name, action, target, detail, created_at_ms)
                     SELECT $1, $2, $3, $4, $5, $6
                     WHERE NOT EXISTS (SELECT 1 FROM audit_log WHERE action = $3 AND target = $4)",
                )
                .bind(e.actor_id)
                .bind(e.actor_name)
                .bind(e.action)
                .bind(e.target)
                .bind(e.detail)
                .bind(now_ms)
                .execute(&self.pool)
                .await?;
                Ok(written.rows_affected() == 1)
            }

            async fn audit_log(&self, before_id: Option<i64>, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
                let rows: Vec<AuditRow> = sqlx::query_as(
                    "SELECT id, actor_id, actor_name, action, target, detail, created_at_ms FROM audit_log
                     WHERE id < $1 ORDER BY id DESC LIMIT $2",
                )
                .bind(before_id.unwrap_or(i64::MAX))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|r| AuditEntry {
                        id: r.id,
                        actor_id: r.actor_id,
                        actor_name: r.actor_name,
                        action: r.action,
                        target: r.target,
                        detail: r.detail,
                        created_at_ms: r.created_at_ms,
                    })
                    .collect())
            }
        }
    };
}

sql_directory!(sqlx::Postgres);
sql_directory!(sqlx::Sqlite);
