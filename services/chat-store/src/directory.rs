//! People and what hangs off them: accounts, server-side sessions, room membership, the
//! admin's view of messages, and the audit log. Messages themselves stay with [`crate::Store`]
//! (the message service's path); this is what the gateway's HTTP API reads and writes.
//!
//! One SQL text serves both backends (`$n` placeholders, which SQLite also reads), so the
//! two cannot drift apart; `directory_sql` instantiates it for each pool type.

use crate::error::StoreError;
use chat_domain::{
    Author, Bio, ChatMessage, DisplayName, Email, MessageId, PersonName, Role, RoomName, UploadId, UserId, Username,
};

/// A registered user as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    /// The author id messages carry: `u:<uuid>`.
    pub id: UserId,
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub bio: String,
    pub avatar_id: Option<i64>,
    pub role: Role,
    pub disabled: bool,
    pub created_at_ms: i64,
    pub last_login_ms: Option<i64>,
    /// The log-in before the latest one (`None` until the second).
    pub previous_login_ms: Option<i64>,
    /// The argon2id PHC string.
    pub password_hash: String,
    /// Whether the members of their rooms see how far they have read.
    pub read_receipts: bool,
}

/// A user to create; every field already validated and the password already hashed.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: UserId,
    pub username: Username,
    pub email: Email,
    pub first_name: PersonName,
    pub last_name: PersonName,
    pub password_hash: String,
    pub role: Role,
    pub now_ms: i64,
    /// A guest signing up: their memberships (with roles and read markers), invitations and
    /// bans become the new account's, in the same transaction, and their sessions end.
    /// Their messages keep the guest's id and name.
    pub adopt_guest: Option<UserId>,
}

/// Profile fields to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ProfileUpdate {
    pub email: Option<Email>,
    pub first_name: Option<PersonName>,
    pub last_name: Option<PersonName>,
    pub bio: Option<Bio>,
    /// `Some(None)` removes the avatar.
    pub avatar_id: Option<Option<i64>>,
    /// Whether they send read receipts.
    pub read_receipts: Option<bool>,
}

/// A server-side session. The token itself is never stored, only its hash.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    /// Public handle, for listing and revoking.
    pub id: String,
    pub token_hash: String,
    pub user_id: String,
    /// The guest's display name; for a registered user, the username at creation.
    pub user_name: String,
    pub guest: bool,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub user_agent: String,
}

/// A session found by its token, with what authorisation needs of its user.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionLookup {
    pub session: SessionRecord,
    /// The name messages carry: the current username, or the guest's name.
    pub name: String,
    pub role: Role,
    pub disabled: bool,
}

/// How far back from a room's newest event its panel counts look: at most this many seqs
/// per room, so a room left unread for a year costs the panel what a busy hour does. The
/// client shows "99+" above 99, and a mention older than the window is no longer counted.
pub const UNREAD_WINDOW: u64 = 1_000;

/// A room on someone's panel.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberRoom {
    pub room: RoomName,
    pub last_seq: u64,
    /// The read marker, or the seq of this member's newest message there when that is later:
    /// sending counts as reading up to what one sent.
    pub last_read_seq: u64,
    /// The newest message's time, `None` while the room is empty.
    pub last_activity_ms: Option<i64>,
    pub joined_at_ms: i64,
    /// Messages after the read marker (changes to messages are not counted) among the
    /// room's newest [`UNREAD_WINDOW`] seqs.
    pub unread: u64,
    /// Of those, the ones that mention this member.
    pub mentions: u64,
    pub visibility: chat_domain::Visibility,
    /// A private room's title.
    pub title: Option<String>,
    /// In a direct message, the other person.
    pub dm_with: Option<Author>,
    /// The member muted its notifications: their clients neither notify nor sound for it.
    /// (A moderator's mute, which stops someone sending, is another thing.)
    pub notifications_muted: bool,
}

/// A member as the room's member list shows them.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomMember {
    pub user_id: String,
    pub name: String,
    pub joined_at_ms: i64,
    pub role: chat_domain::RoomRole,
    /// Until when they may read but not send, if a mute was set (it may have ended).
    pub muted_until_ms: Option<i64>,
    /// Their profile picture, if they have one (accounts only).
    pub avatar: Option<UploadId>,
}

/// What [`Directory::enter`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entered {
    /// A new member.
    Joined,
    /// Was a member already.
    AlreadyMember,
    RoomNotFound,
}

/// Where a message is: its room and seq, which a change to it names.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageAt {
    pub room: RoomName,
    pub id: MessageId,
    pub seq: u64,
}

/// One admin action, for the audit log.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub id: i64,
    pub actor_id: String,
    pub actor_name: String,
    /// A stable verb: `delete_message`, `delete_room`, `disable_user`, `grant_admin` …
    pub action: String,
    pub target: String,
    pub detail: String,
    pub created_at_ms: i64,
}

/// A new audit record; `id` and time are assigned on insert.
#[derive(Debug, Clone)]
pub struct NewAuditEntry<'a> {
    pub actor_id: &'a str,
    pub actor_name: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    pub detail: &'a str,
}

/// An admin's search over rooms: name contains `query` (case-insensitive), name-ordered
/// after `after`.
#[derive(Debug, Clone, Default)]
pub struct Search<'a> {
    pub query: Option<&'a str>,
    pub after: Option<&'a str>,
    pub limit: u32,
}

#[async_trait::async_trait]
pub trait Directory: crate::Rooms + crate::MessageSearch + crate::Credentials + Send + Sync + 'static {
    /// Fails with [`StoreError::Conflict`] when the username is taken in any case, or looks
    /// like one that is (shares a [`chat_domain::lookalike::skeleton_keys`] key).
    async fn create_user(&self, user: &NewUser) -> Result<UserRecord, StoreError>;
    async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>, StoreError>;
    /// Whether `name` looks like a registered username: they share a
    /// [`chat_domain::lookalike::skeleton_keys`] key (as the same name in any case does).
    async fn looks_like_username(&self, name: &str) -> Result<bool, StoreError>;
    async fn user_by_id(&self, id: &UserId) -> Result<Option<UserRecord>, StoreError>;
    /// `None` when no such user.
    async fn update_profile(&self, id: &UserId, update: &ProfileUpdate) -> Result<Option<UserRecord>, StoreError>;
    async fn record_login(&self, id: &UserId, now_ms: i64) -> Result<(), StoreError>;
    /// Returns false when no such user.
    async fn set_role(&self, username: &str, role: Role) -> Result<bool, StoreError>;
    /// Disables (or re-enables) an account; disabling also ends all its sessions.
    async fn set_disabled(&self, id: &UserId, disabled: bool, now_ms: i64) -> Result<bool, StoreError>;
    async fn search_users(&self, search: &Search<'_>) -> Result<Vec<UserRecord>, StoreError>;
    /// Messages by this author that are not deleted.
    async fn message_count(&self, user_id: &UserId) -> Result<u64, StoreError>;

    async fn create_session(&self, session: &SessionRecord) -> Result<(), StoreError>;
    /// The unexpired session with this token hash (expired ones are `None`).
    async fn session(&self, token_hash: &str, now_ms: i64) -> Result<Option<SessionLookup>, StoreError>;
    /// The user's unexpired sessions, newest first, at most `limit`.
    async fn sessions_of(&self, user_id: &UserId, now_ms: i64, limit: u32) -> Result<Vec<SessionRecord>, StoreError>;
    /// Ends one of the user's sessions by its public id; false when there was none.
    async fn revoke_session(&self, user_id: &UserId, session_id: &str) -> Result<bool, StoreError>;
    /// Removes sessions that expired before `now_ms`; returns how many.
    async fn purge_expired_sessions(&self, now_ms: i64) -> Result<u64, StoreError>;

    /// Makes the user a member of the room (a live one; deleted rooms are not found), and
    /// uses up their invitation to it. Whether they may is the caller's to have decided
    /// ([`chat_domain::RoomAccess::check_read`]).
    async fn enter(
        &self,
        user_id: &UserId,
        name: &DisplayName,
        room: &RoomName,
        now_ms: i64,
    ) -> Result<Entered, StoreError>;
    /// Returns false when the user was not a member.
    async fn leave(&self, user_id: &UserId, room: &RoomName) -> Result<bool, StoreError>;
    /// Mutes or unmutes `room`'s notifications for its member `user_id`. Returns false if
    /// they are not a member.
    async fn mute_notifications(&self, user_id: &UserId, room: &RoomName, muted: bool) -> Result<bool, StoreError>;
    /// Raises the member's read marker to `seq` (capped at the room's last seq). Returns
    /// the new marker when it moved and the member sends read receipts: what their rooms
    /// may be told.
    async fn mark_read(&self, user_id: &UserId, room: &RoomName, seq: u64) -> Result<Option<u64>, StoreError>;
    /// The read markers of `room`'s members who send read receipts, at most `limit`: who has
    /// seen how far, as a joining socket is shown.
    async fn read_markers(&self, room: &RoomName, limit: u32) -> Result<Vec<(UserId, u64)>, StoreError>;
    /// The user's rooms in name order after `after`, at most `limit`.
    /// The names of the rooms `user_id` is a member of, in name order, at most `limit`:
    /// what a socket watches for notifications. Cheaper than [`Directory::member_rooms`],
    /// which counts each room's unread messages and mentions.
    async fn member_room_names(&self, user_id: &UserId, limit: u32) -> Result<Vec<RoomName>, StoreError>;
    async fn member_rooms(
        &self,
        user_id: &UserId,
        after: Option<&RoomName>,
        limit: u32,
    ) -> Result<Vec<MemberRoom>, StoreError>;
    async fn room_count(&self, user_id: &UserId) -> Result<u64, StoreError>;
    /// Each named room's last committed seq (rooms that do not exist are left out): what a
    /// gateway compares with what it has delivered, to find messages whose publish was lost.
    async fn last_seqs(&self, rooms: &[RoomName]) -> Result<Vec<(RoomName, u64)>, StoreError>;
    /// The room's member count and a page of members in user-id order after `after`.
    async fn room_members(
        &self,
        room: &RoomName,
        after: Option<&str>,
        limit: u32,
    ) -> Result<(u64, Vec<RoomMember>), StoreError>;

    /// The ids of `room`'s members, at most `limit` (in id order): whom the room's
    /// presence looks up.
    async fn member_ids(&self, room: &RoomName, limit: u32) -> Result<Vec<UserId>, StoreError>;
    /// The members of `room` with these usernames (any case), as mentions name them: the
    /// registered users among them who are members and not disabled, with the names they
    /// have in the room, in the order of `usernames`. One statement whatever the count
    /// (a text names at most `MAX_MENTIONS`).
    async fn members_by_username(&self, room: &RoomName, usernames: &[Username]) -> Result<Vec<Author>, StoreError>;
    /// Admin: rooms whose name contains the query.
    async fn search_rooms(&self, search: &Search<'_>) -> Result<Vec<crate::RoomInfo>, StoreError>;
    /// Admin: messages (not deleted) whose text contains `query`, optionally in one room,
    /// newest first, with ids below `before_id`.
    async fn search_messages(
        &self,
        query: Option<&str>,
        room: Option<&RoomName>,
        before_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<ChatMessage>, StoreError>;
    /// Where the message with this id is (messages only, not changes). An administrator's
    /// deletion names a message by id, and is committed as a change to that seq.
    async fn find_message(&self, id: MessageId) -> Result<Option<MessageAt>, StoreError>;
    /// Admin: deletes a room: its messages are erased and its members removed; the name
    /// can be entered again later, as a new empty room that continues the old seqs.
    async fn delete_room(&self, room: &RoomName, now_ms: i64) -> Result<bool, StoreError>;
    async fn audit(&self, entry: &NewAuditEntry<'_>, now_ms: i64) -> Result<i64, StoreError>;
    /// Records an action on a target unless one is recorded already; says whether it wrote
    /// the entry. An idempotent request (an administrator's deletion, keyed by its message)
    /// that is retried because its first answer was lost cannot tell whether the first try
    /// reached the audit: it records once, here, instead of never or twice.
    async fn audit_once(&self, entry: &NewAuditEntry<'_>, now_ms: i64) -> Result<bool, StoreError>;
    /// Newest first, ids below `before_id`.
    async fn audit_log(&self, before_id: Option<i64>, limit: u32) -> Result<Vec<AuditEntry>, StoreError>;
}

/// `%query%` for `LIKE … ESCAPE '\'`, lowercased, with the pattern characters escaped so
/// that a search for `50%` means the text "50%".
pub(crate) fn contains_pattern(query: &str) -> String {
    let mut pattern = String::with_capacity(query.len() + 2);
    pattern.push('%');
    for c in query.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}
