//! The rows the directory's queries read (users, sessions, memberships, the audit log), and
//! their conversion to records.

use crate::directory::{SessionRecord, UserRecord};
use crate::error::StoreError;
use crate::rows::MessageRow;
use chat_domain::{Role, UserId};

pub(super) const USER_COLUMNS: &str = "id, username, email, first_name, last_name, bio, avatar_id, role, disabled, \
                                       created_at_ms, last_login_ms, previous_login_ms, password_hash, read_receipts";

#[derive(sqlx::FromRow)]
pub(super) struct UserRow {
    id: String,
    username: String,
    email: String,
    first_name: String,
    last_name: String,
    bio: String,
    avatar_id: Option<i64>,
    role: String,
    disabled: bool,
    created_at_ms: i64,
    last_login_ms: Option<i64>,
    previous_login_ms: Option<i64>,
    password_hash: String,
    read_receipts: bool,
}

impl UserRow {
    pub(super) fn into_record(self) -> Result<UserRecord, StoreError> {
        let role = Role::parse(&self.role)
            .map_err(|_| StoreError::Corrupt(format!("users row {}: invalid role {:?}", self.id, self.role)))?;
        let id =
            UserId::parse(&self.id).map_err(|_| StoreError::Corrupt(format!("users row {:?}: invalid id", self.id)))?;
        Ok(UserRecord {
            id,
            username: self.username,
            email: self.email,
            first_name: self.first_name,
            last_name: self.last_name,
            bio: self.bio,
            avatar_id: self.avatar_id,
            role,
            disabled: self.disabled,
            created_at_ms: self.created_at_ms,
            last_login_ms: self.last_login_ms,
            previous_login_ms: self.previous_login_ms,
            password_hash: self.password_hash,
            read_receipts: self.read_receipts,
        })
    }
}

pub(super) const SESSION_COLUMNS: &str = "s.id, s.token_hash, s.user_id, s.user_name, s.guest, s.created_at_ms, \
                                          s.expires_at_ms, s.user_agent";

#[derive(sqlx::FromRow)]
pub(super) struct SessionRow {
    pub(super) id: String,
    pub(super) token_hash: String,
    pub(super) user_id: String,
    pub(super) user_name: String,
    pub(super) guest: bool,
    pub(super) created_at_ms: i64,
    pub(super) expires_at_ms: i64,
    pub(super) user_agent: String,
}

impl From<SessionRow> for SessionRecord {
    fn from(r: SessionRow) -> Self {
        Self {
            id: r.id,
            token_hash: r.token_hash,
            user_id: r.user_id,
            user_name: r.user_name,
            guest: r.guest,
            created_at_ms: r.created_at_ms,
            expires_at_ms: r.expires_at_ms,
            user_agent: r.user_agent,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct SessionLookupRow {
    #[sqlx(flatten)]
    pub(super) session: SessionRow,
    pub(super) username: Option<String>,
    pub(super) role: Option<String>,
    pub(super) disabled: Option<bool>,
}

#[derive(sqlx::FromRow)]
pub(super) struct MemberRoomRow {
    pub(super) name: String,
    pub(super) last_seq: i64,
    pub(super) last_read_seq: i64,
    pub(super) last_activity_ms: Option<i64>,
    pub(super) joined_at_ms: i64,
    pub(super) unread: i64,
    pub(super) mentions: i64,
    pub(super) visibility: String,
    pub(super) title: Option<String>,
    pub(super) dm_with_id: Option<String>,
    pub(super) dm_with_name: Option<String>,
    pub(super) notifications_muted: bool,
}

#[derive(sqlx::FromRow)]
pub(super) struct AuditRow {
    pub(super) id: i64,
    pub(super) actor_id: String,
    pub(super) actor_name: String,
    pub(super) action: String,
    pub(super) target: String,
    pub(super) detail: String,
    pub(super) created_at_ms: i64,
}

#[derive(sqlx::FromRow)]
pub(super) struct NamedMessageRow {
    pub(super) room_name: String,
    #[sqlx(flatten)]
    pub(super) message: MessageRow,
}
