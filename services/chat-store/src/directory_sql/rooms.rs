//! [`Rooms`] in SQL, one text for both backends, like the rest of the directory.
//!
//! A moderation action is one transaction that begins by bumping the room's `last_seq`:
//! that write takes the room's row lock in PostgreSQL (the lock appends take) and the write
//! lock in SQLite, so the standings it then reads cannot change before it commits, and the
//! event's seq is gapless with the messages around it. A refusal rolls the bump back.

use super::{SqlDirectory, count, room_name, unique_violation};
use crate::error::StoreError;
use crate::rooms::{
    Invitation, Moderation, NewInviteLink, NewRoom, Redeemed, RoomRecord, Rooms, UPLOAD_ROOMS, UploadUses,
};
use crate::rows::{ROOM_EVENT_KIND, corrupt};
use chat_domain::{
    AccessError, Author, ClientMsgId, DisplayName, MessageId, RoomAccess, RoomAction, RoomEvent, RoomName, RoomRole,
    Standing, UploadId, UserId, Visibility,
};

/// The columns of [`RoomRecordRow`] for rooms aliased `r`.
const ROOM_RECORD_COLUMNS: &str = "r.name, r.visibility, r.title, r.topic, r.description, r.dm_key, r.last_seq,
    r.created_at_ms,
    (SELECT count(*) FROM memberships mb WHERE mb.room_id = r.id) AS member_count,
    (SELECT m.created_at_ms FROM messages m WHERE m.room_id = r.id AND m.seq = r.last_seq) AS last_activity_ms,
    (SELECT mb.user_id FROM memberships mb WHERE mb.room_id = r.id AND mb.role = 'owner' LIMIT 1) AS owner_id,
    (SELECT mb.user_name FROM memberships mb WHERE mb.room_id = r.id AND mb.role = 'owner' LIMIT 1) AS owner_name";

#[derive(sqlx::FromRow)]
struct RoomRecordRow {
    name: String,
    visibility: String,
    title: Option<String>,
    topic: String,
    description: String,
    dm_key: Option<String>,
    last_seq: i64,
    created_at_ms: i64,
    member_count: i64,
    last_activity_ms: Option<i64>,
    owner_id: Option<String>,
    owner_name: Option<String>,
}

fn author(id: &str, name: &str, table: &str) -> Result<Author, StoreError> {
    let bad = || StoreError::Corrupt(format!("{table}: invalid person {id:?} {name:?}"));
    Ok(Author {
        id: UserId::parse(id).map_err(|_| bad())?,
        name: DisplayName::parse(name).map_err(|_| bad())?,
    })
}

fn visibility(value: &str) -> Result<Visibility, StoreError> {
    Visibility::parse(value).map_err(|_| StoreError::Corrupt(format!("rooms: invalid visibility {value:?}")))
}

impl RoomRecordRow {
    fn into_record(self, dm_members: Vec<Author>) -> Result<RoomRecord, StoreError> {
        let owner = match (&self.owner_id, &self.owner_name) {
            (Some(id), Some(name)) => Some(author(id, name, "memberships")?),
            _ => None,
        };
        Ok(RoomRecord {
            name: room_name(&self.name)?,
            visibility: visibility(&self.visibility)?,
            title: self.title,
            topic: self.topic,
            description: self.description,
            dm_members,
            last_seq: count(self.last_seq),
            created_at_ms: self.created_at_ms,
            member_count: count(self.member_count),
            last_activity_ms: self.last_activity_ms,
            owner,
        })
    }
}

/// A direct message's key: the pair's ids in order, so either one opening it finds it.
fn dm_key(a: &UserId, b: &UserId) -> String {
    let (first, second) = if a.as_str() <= b.as_str() { (a, b) } else { (b, a) };
    format!("{first}\n{second}")
}

/// One person's standing as read: role, mute, ban, invitation.
type StandingRow = (Option<String>, Option<i64>, bool, bool);

const STANDING: &str = "SELECT m.role, m.muted_until_ms,
        EXISTS (SELECT 1 FROM room_bans b WHERE b.room_id = $1 AND b.user_id = $2) AS banned,
        EXISTS (SELECT 1 FROM room_invites i WHERE i.room_id = $1 AND i.user_id = $2) AS invited
     FROM (SELECT 1 AS one) o LEFT JOIN memberships m ON m.room_id = $1 AND m.user_id = $2";

fn standing((role, muted_until_ms, banned, invited): StandingRow, site_admin: bool) -> Result<Standing, StoreError> {
    let role = role
        .map(|r| RoomRole::parse(&r).map_err(|_| StoreError::Corrupt(format!("memberships: invalid role {r:?}"))))
        .transpose()?;
    Ok(Standing {
        role,
        invited,
        banned,
        muted_until_ms,
        site_admin,
    })
}

/// The audit log's target for an action: the room, and whom it was about.
fn audit_target(room: &RoomName, action: &RoomAction) -> String {
    match action.target() {
        Some(target) => format!("{room}/{}", target.id),
        None => room.to_string(),
    }
}

macro_rules! sql_rooms {
    ($db:ty) => {
        impl SqlDirectory<$db> {
            async fn standing_in(
                conn: &mut <$db as sqlx::Database>::Connection,
                room_id: i64,
                user: &UserId,
                site_admin: bool,
            ) -> Result<Standing, StoreError> {
                let row: StandingRow = sqlx::query_as(STANDING)
                    .bind(room_id)
                    .bind(user.as_str())
                    .fetch_one(&mut *conn)
                    .await?;
                standing(row, site_admin)
            }

            async fn dm_members_of(&self, dm: bool, name: &str) -> Result<Vec<Author>, StoreError> {
                if !dm {
                    return Ok(Vec::new());
                }
                let rows: Vec<(String, String)> = sqlx::query_as(
                    "SELECT mb.user_id, mb.user_name FROM memberships mb JOIN rooms r ON r.id = mb.room_id
                     WHERE r.name = $1 ORDER BY mb.user_id",
                )
                .bind(name)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(|(id, name)| author(id, name, "memberships")).collect()
            }

            /// Applies an allowed action's effects inside the moderation's transaction.
            async fn apply_action(
                conn: &mut <$db as sqlx::Database>::Connection,
                room_id: i64,
                m: &Moderation<'_>,
            ) -> Result<(), StoreError> {
                let by = m.actor.id.as_str();
                let now = m.now_ms;
                fn on<'q>(
                    sql: &'q str,
                    room_id: i64,
                    target: &'q Author,
                ) -> sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>> {
                    sqlx::query(sql).bind(room_id).bind(target.id.as_str())
                }
                match m.action {
                    RoomAction::Invited { target } => {
                        on("INSERT INTO room_invites (room_id, user_id, user_name, by_id, at_ms) VALUES ($1, $2, $3, $4, $5)
                             ON CONFLICT (room_id, user_id) DO NOTHING", room_id, target)
                        .bind(target.name.as_str())
                        .bind(by)
                        .bind(now)
                        .execute(&mut *conn)
                        .await?;
                    }
                    RoomAction::Kicked { target } => {
                        // Out, invitation and all: a private room takes them back only if
                        // someone lets them in again.
                        for sql in [
                            "DELETE FROM memberships WHERE room_id = $1 AND user_id = $2",
                            "DELETE FROM room_invites WHERE room_id = $1 AND user_id = $2",
                        ] {
                            on(sql, room_id, target).execute(&mut *conn).await?;
                        }
                    }
                    RoomAction::Banned { target } => {
                        on("INSERT INTO room_bans (room_id, user_id, user_name, by_id, at_ms) VALUES ($1, $2, $3, $4, $5)
                             ON CONFLICT (room_id, user_id) DO NOTHING", room_id, target)
                        .bind(target.name.as_str())
                        .bind(by)
                        .bind(now)
                        .execute(&mut *conn)
                        .await?;
                        for sql in [
                            "DELETE FROM memberships WHERE room_id = $1 AND user_id = $2",
                            "DELETE FROM room_invites WHERE room_id = $1 AND user_id = $2",
                        ] {
                            on(sql, room_id, target).execute(&mut *conn).await?;
                        }
                    }
                    RoomAction::Unbanned { target } => {
                        on("DELETE FROM room_bans WHERE room_id = $1 AND user_id = $2", room_id, target)
                            .execute(&mut *conn)
                            .await?;
                    }
                    RoomAction::Muted { target, until_ms } => {
                        on("UPDATE memberships SET muted_until_ms = $3 WHERE room_id = $1 AND user_id = $2", room_id, target)
                            .bind(*until_ms)
                            .execute(&mut *conn)
                            .await?;
                    }
                    RoomAction::Unmuted { target } => {
                        on("UPDATE memberships SET muted_until_ms = NULL WHERE room_id = $1 AND user_id = $2", room_id, target)
                            .execute(&mut *conn)
                            .await?;
                    }
                    RoomAction::RoleChanged { target, role } => {
                        on("UPDATE memberships SET role = $3 WHERE room_id = $1 AND user_id = $2", room_id, target)
                            .bind(role.as_str())
                            .execute(&mut *conn)
                            .await?;
                    }
                    RoomAction::OwnerChanged { target } => {
                        sqlx::query("UPDATE memberships SET role = 'moderator' WHERE room_id = $1 AND role = 'owner'")
                            .bind(room_id)
                            .execute(&mut *conn)
                            .await?;
                        on("UPDATE memberships SET role = 'owner' WHERE room_id = $1 AND user_id = $2", room_id, target)
                            .execute(&mut *conn)
                            .await?;
                    }
                    RoomAction::Updated { topic, description } => {
                        sqlx::query("UPDATE rooms SET topic = $2, description = $3 WHERE id = $1")
                            .bind(room_id)
                            .bind(topic)
                            .bind(description)
                            .execute(&mut *conn)
                            .await?;
                    }
                    RoomAction::VisibilityChanged { visibility } => {
                        sqlx::query("UPDATE rooms SET visibility = $2 WHERE id = $1")
                            .bind(room_id)
                            .bind(visibility.as_str())
                            .execute(&mut *conn)
                            .await?;
                    }
                }
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl Rooms for SqlDirectory<$db> {
            async fn room_access(
                &self,
                room: &RoomName,
                user: &UserId,
                site_admin: bool,
            ) -> Result<Option<RoomAccess>, StoreError> {
                // One statement: a websocket join asks this every time.
                let found: Option<(String, Option<String>, Option<String>, Option<i64>, bool, bool)> = sqlx::query_as(
                    "SELECT r.visibility, r.dm_key, m.role, m.muted_until_ms,
                        EXISTS (SELECT 1 FROM room_bans b WHERE b.room_id = r.id AND b.user_id = $2) AS banned,
                        EXISTS (SELECT 1 FROM room_invites i WHERE i.room_id = r.id AND i.user_id = $2) AS invited
                     FROM rooms r LEFT JOIN memberships m ON m.room_id = r.id AND m.user_id = $2
                     WHERE r.name = $1 AND r.deleted_at_ms IS NULL",
                )
                .bind(room.as_str())
                .bind(user.as_str())
                .fetch_optional(&self.pool)
                .await?;
                let Some((seen_by, dm_key, role, muted_until_ms, banned, invited)) = found else {
                    return Ok(None);
                };
                Ok(Some(RoomAccess {
                    visibility: visibility(&seen_by)?,
                    dm: dm_key.is_some(),
                    standing: standing((role, muted_until_ms, banned, invited), site_admin)?,
                }))
            }

            async fn room_record(&self, room: &RoomName) -> Result<Option<RoomRecord>, StoreError> {
                let row: Option<RoomRecordRow> = sqlx::query_as(&format!(
                    "SELECT {ROOM_RECORD_COLUMNS} FROM rooms r WHERE r.name = $1 AND r.deleted_at_ms IS NULL"
                ))
                .bind(room.as_str())
                .fetch_optional(&self.pool)
                .await?;
                let Some(row) = row else { return Ok(None) };
                let members = self.dm_members_of(row.dm_key.is_some(), &row.name).await?;
                row.into_record(members).map(Some)
            }

            async fn public_rooms(
                &self,
                query: Option<&str>,
                after: Option<&RoomName>,
                limit: u32,
            ) -> Result<Vec<RoomRecord>, StoreError> {
                let rows: Vec<RoomRecordRow> = sqlx::query_as(&format!(
                    "SELECT {ROOM_RECORD_COLUMNS} FROM rooms r
                     WHERE r.visibility = 'public' AND r.deleted_at_ms IS NULL AND r.name > $1
                       AND ($2 IS NULL OR r.name LIKE $2 ESCAPE '\\')
                     ORDER BY r.name LIMIT $3"
                ))
                .bind(after.map_or("", |r| r.as_str()))
                .bind(query.map(crate::directory::contains_pattern))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map(|row| row.into_record(Vec::new())).collect()
            }

            async fn create_room(&self, new: &NewRoom<'_>) -> Result<(), StoreError> {
                let mut tx = self.pool.begin().await?;
                let created: Result<(i64,), sqlx::Error> = sqlx::query_as(
                    "INSERT INTO rooms (name, created_at_ms, visibility, title) VALUES ($1, $2, $3, $4) RETURNING id",
                )
                .bind(new.name.as_str())
                .bind(new.now_ms)
                .bind(new.visibility.as_str())
                .bind(new.title)
                .fetch_one(&mut *tx)
                .await;
                let (room_id,) = match created {
                    Ok(row) => row,
                    Err(e) if unique_violation(&e) => return Err(StoreError::Conflict("the room exists".into())),
                    Err(e) => return Err(e.into()),
                };
                sqlx::query(
                    "INSERT INTO memberships (user_id, room_id, user_name, joined_at_ms, role) VALUES ($1, $2, $3, $4, 'owner')",
                )
                .bind(new.owner.id.as_str())
                .bind(room_id)
                .bind(new.owner.name.as_str())
                .bind(new.now_ms)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn claim_ownership(&self, room: &RoomName, user: &UserId) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "UPDATE memberships SET role = 'owner'
                     WHERE user_id = $1 AND room_id = (SELECT id FROM rooms WHERE name = $2 AND dm_key IS NULL)
                       AND NOT EXISTS (SELECT 1 FROM memberships o WHERE o.room_id = memberships.room_id AND o.role = 'owner')",
                )
                .bind(user.as_str())
                .bind(room.as_str())
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn open_dm(
                &self,
                a: &Author,
                b: &Author,
                name: &RoomName,
                now_ms: i64,
            ) -> Result<(RoomName, bool), StoreError> {
                let key = dm_key(&a.id, &b.id);
                let mut tx = self.pool.begin().await?;
                let inserted: Option<(i64,)> = sqlx::query_as(
                    "INSERT INTO rooms (name, created_at_ms, visibility, dm_key) VALUES ($1, $2, 'private', $3)
                     ON CONFLICT (dm_key) WHERE dm_key IS NOT NULL DO NOTHING RETURNING id",
                )
                .bind(name.as_str())
                .bind(now_ms)
                .bind(&key)
                .fetch_optional(&mut *tx)
                .await?;
                let created = inserted.is_some();
                // A pair's direct message deleted by an administrator comes back (empty) when
                // either opens it again, as any deleted room does when entered.
                let (room_id, found_name): (i64, String) =
                    sqlx::query_as("UPDATE rooms SET deleted_at_ms = NULL WHERE dm_key = $1 RETURNING id, name")
                        .bind(&key)
                        .fetch_one(&mut *tx)
                        .await?;
                // Both are members whatever happened since: leaving a direct message does
                // not end it, opening it again brings you back.
                for person in [a, b] {
                    sqlx::query(
                        "INSERT INTO memberships (user_id, room_id, user_name, joined_at_ms) VALUES ($1, $2, $3, $4)
                         ON CONFLICT (user_id, room_id) DO NOTHING",
                    )
                    .bind(person.id.as_str())
                    .bind(room_id)
                    .bind(person.name.as_str())
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok((room_name(&found_name)?, created))
            }

            async fn moderate(&self, m: &Moderation<'_>) -> Result<Result<RoomEvent, AccessError>, StoreError> {
                let mut tx = self.pool.begin().await?;
                let locked: Option<(i64, i64, String, Option<String>)> = sqlx::query_as(
                    "UPDATE rooms SET last_seq = last_seq + 1 WHERE name = $1 AND deleted_at_ms IS NULL
                     RETURNING id, last_seq, visibility, dm_key",
                )
                .bind(m.room.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                let Some((room_id, seq, seen_by, dm_key)) = locked else {
                    return Ok(Err(AccessError::NotFound));
                };
                let access = RoomAccess {
                    visibility: visibility(&seen_by)?,
                    dm: dm_key.is_some(),
                    standing: Self::standing_in(&mut tx, room_id, &m.actor.id, m.site_admin).await?,
                };
                let target = match m.action.target() {
                    Some(target) => Some(Self::standing_in(&mut tx, room_id, &target.id, false).await?),
                    None => None,
                };
                if let Err(refused) = access.check_action(m.action, target.as_ref()) {
                    tx.rollback().await?;
                    return Ok(Err(refused));
                }
                Self::apply_action(&mut tx, room_id, m).await?;
                let client_msg_id = format!("room-{seq}");
                let (id,): (i64,) = sqlx::query_as(
                    "INSERT INTO messages (room_id, seq, author_id, author_name, body, kind, client_msg_id, created_at_ms)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                )
                .bind(room_id)
                .bind(seq)
                .bind(m.actor.id.as_str())
                .bind(m.actor.name.as_str())
                .bind(m.action.to_json())
                .bind(ROOM_EVENT_KIND)
                .bind(&client_msg_id)
                .bind(m.now_ms)
                .fetch_one(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO audit_log (actor_id, actor_name, action, target, detail, created_at_ms)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(m.actor.id.as_str())
                .bind(m.actor.name.as_str())
                .bind(format!("room_{}", m.action.name()))
                .bind(audit_target(m.room, m.action))
                .bind(m.action.to_json())
                .bind(m.now_ms)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(Ok(RoomEvent {
                    id: MessageId::new(id).map_err(|_| corrupt("messages", id, "id", id))?,
                    room: m.room.clone(),
                    seq: count(seq),
                    author: m.actor.clone(),
                    client_msg_id: ClientMsgId::parse(&client_msg_id)
                        .map_err(|_| corrupt("messages", id, "client_msg_id", &client_msg_id))?,
                    at_ms: m.now_ms,
                    action: m.action.clone(),
                }))
            }

            async fn create_invite_link(&self, link: &NewInviteLink<'_>) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO invite_links (token_hash, room_id, by_id, created_at_ms, expires_at_ms, max_uses)
                     SELECT $1, id, $2, $3, $4, $5 FROM rooms WHERE name = $6 AND deleted_at_ms IS NULL",
                )
                .bind(link.token_hash)
                .bind(link.by.as_str())
                .bind(link.now_ms)
                .bind(link.expires_at_ms)
                .bind(link.max_uses.map(i64::from))
                .bind(link.room.as_str())
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn invite_link_room(&self, token_hash: &str, now_ms: i64) -> Result<Option<RoomRecord>, StoreError> {
                let row: Option<RoomRecordRow> = sqlx::query_as(&format!(
                    "SELECT {ROOM_RECORD_COLUMNS} FROM invite_links l JOIN rooms r ON r.id = l.room_id
                     WHERE l.token_hash = $1 AND l.expires_at_ms > $2 AND r.deleted_at_ms IS NULL
                       AND (l.max_uses IS NULL OR l.uses < l.max_uses)"
                ))
                .bind(token_hash)
                .bind(now_ms)
                .fetch_optional(&self.pool)
                .await?;
                row.map(|row| row.into_record(Vec::new())).transpose()
            }

            async fn redeem_invite(&self, token_hash: &str, who: &Author, now_ms: i64) -> Result<Redeemed, StoreError> {
                let mut tx = self.pool.begin().await?;
                let valid = "token_hash = $1 AND expires_at_ms > $2 AND (max_uses IS NULL OR uses < max_uses)
                     AND room_id IN (SELECT id FROM rooms WHERE deleted_at_ms IS NULL)";
                let link: Option<(i64, String)> = sqlx::query_as(&format!(
                    "SELECT l.room_id, r.name FROM invite_links l JOIN rooms r ON r.id = l.room_id WHERE l.{valid}"
                ))
                .bind(token_hash)
                .bind(now_ms)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((room_id, name)) = link else {
                    return Ok(Redeemed::Invalid);
                };
                let room = room_name(&name)?;
                let standing = Self::standing_in(&mut tx, room_id, &who.id, false).await?;
                if standing.banned {
                    return Ok(Redeemed::Banned);
                }
                if standing.role.is_some() {
                    // A member spends no use.
                    return Ok(Redeemed::Member { room, new: false });
                }
                // The use is taken with the validity checked again: two people racing for
                // a link's last use cannot both have it.
                let taken = sqlx::query(&format!("UPDATE invite_links SET uses = uses + 1 WHERE {valid}"))
                    .bind(token_hash)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
                if taken.rows_affected() == 0 {
                    return Ok(Redeemed::Invalid);
                }
                sqlx::query(
                    "INSERT INTO memberships (user_id, room_id, user_name, joined_at_ms) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (user_id, room_id) DO NOTHING",
                )
                .bind(who.id.as_str())
                .bind(room_id)
                .bind(who.name.as_str())
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
                // A member needs no invitation any more (one left behind would let them back
                // in after a kick).
                sqlx::query("DELETE FROM room_invites WHERE room_id = $1 AND user_id = $2")
                    .bind(room_id)
                    .bind(who.id.as_str())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(Redeemed::Member { room, new: true })
            }

            async fn invitations(&self, user: &UserId, limit: u32) -> Result<Vec<Invitation>, StoreError> {
                let rows: Vec<(String, Option<String>, Option<String>, i64)> = sqlx::query_as(
                    "SELECT r.name, r.title,
                        (SELECT mb.user_name FROM memberships mb WHERE mb.room_id = r.id AND mb.user_id = i.by_id),
                        i.at_ms
                     FROM room_invites i JOIN rooms r ON r.id = i.room_id
                     WHERE i.user_id = $1 AND r.deleted_at_ms IS NULL
                     ORDER BY i.at_ms DESC LIMIT $2",
                )
                .bind(user.as_str())
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map(|(name, title, by, at_ms)| {
                        Ok(Invitation {
                            room: room_name(&name)?,
                            title,
                            by,
                            at_ms,
                        })
                    })
                    .collect()
            }

            async fn member_name(&self, room: &RoomName, user: &UserId) -> Result<Option<String>, StoreError> {
                let row: Option<(String,)> = sqlx::query_as(
                    "SELECT mb.user_name FROM memberships mb JOIN rooms r ON r.id = mb.room_id
                     WHERE r.name = $1 AND mb.user_id = $2",
                )
                .bind(room.as_str())
                .bind(user.as_str())
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|(name,)| name))
            }

            async fn upload_uses(&self, id: UploadId) -> Result<Option<UploadUses>, StoreError> {
                let owner: Option<(String, bool)> = sqlx::query_as(
                    "SELECT u.owner_id, EXISTS (SELECT 1 FROM users p WHERE p.avatar_id = u.id) AS avatar
                     FROM uploads u WHERE u.id = $1",
                )
                .bind(id.get())
                .fetch_optional(&self.pool)
                .await?;
                let Some((owner_id, avatar)) = owner else {
                    return Ok(None);
                };
                let rooms: Vec<(String,)> = sqlx::query_as(
                    "SELECT DISTINCT r.name FROM messages m JOIN rooms r ON r.id = m.room_id
                     WHERE m.attachment_id = $1 AND m.deleted_at_ms IS NULL AND r.deleted_at_ms IS NULL
                     ORDER BY r.name LIMIT $2",
                )
                .bind(id.get())
                .bind(i64::from(UPLOAD_ROOMS))
                .fetch_all(&self.pool)
                .await?;
                Ok(Some(UploadUses {
                    owner: UserId::parse(&owner_id).map_err(|_| corrupt("uploads", id.get(), "owner_id", &owner_id))?,
                    avatar,
                    rooms: rooms.iter().map(|(name,)| room_name(name)).collect::<Result<_, _>>()?,
                }))
            }
        }
    };
}

sql_rooms!(sqlx::Postgres);
sql_rooms!(sqlx::Sqlite);
