//! Rooms as people stand with them: visibility, roles, bans, mutes, invitations, direct
//! messages, and the room events moderation commits. The rules are the domain's
//! ([`chat_domain::room`]); this is what they are read from and written to.

use crate::error::StoreError;
use chat_domain::{AccessError, Author, RoomAccess, RoomAction, RoomEvent, RoomName, UploadId, UserId, Visibility};

/// A room as the directory, its page and the panel show it.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomRecord {
    pub name: RoomName,
    pub visibility: Visibility,
    /// What the creator called a private room; `None` for a public one (its name says it).
    pub title: Option<String>,
    pub topic: String,
    pub description: String,
    /// A direct message's two people; empty for other rooms.
    pub dm_members: Vec<Author>,
    pub last_seq: u64,
    pub created_at_ms: i64,
    pub member_count: u64,
    /// The newest event's time, `None` while the room is empty.
    pub last_activity_ms: Option<i64>,
    /// `None` for a room made before rooms had owners (site administrators moderate it).
    pub owner: Option<Author>,
}

impl RoomRecord {
    /// In a direct message, the other person.
    pub fn dm_with(&self, viewer: &UserId) -> Option<&Author> {
        self.dm_members.iter().find(|a| a.id != *viewer)
    }
}

/// A room the server creates (private rooms; public rooms are created by entering them).
#[derive(Debug, Clone)]
pub struct NewRoom<'a> {
    pub name: &'a RoomName,
    pub visibility: Visibility,
    pub title: Option<&'a str>,
    pub owner: &'a Author,
    pub now_ms: i64,
}

/// A moderation action to decide and, if allowed, commit as a room event.
#[derive(Debug, Clone)]
pub struct Moderation<'a> {
    pub room: &'a RoomName,
    /// From the session, never from the client.
    pub actor: &'a Author,
    pub site_admin: bool,
    pub action: &'a RoomAction,
    pub now_ms: i64,
}

/// An invite link to record; only the token's hash is stored.
#[derive(Debug, Clone)]
pub struct NewInviteLink<'a> {
    pub token_hash: &'a str,
    pub room: &'a RoomName,
    pub by: &'a UserId,
    pub expires_at_ms: i64,
    /// `None`: any number of uses until it expires.
    pub max_uses: Option<u32>,
    pub now_ms: i64,
}

/// What redeeming an invite link did.
#[derive(Debug, Clone, PartialEq)]
pub enum Redeemed {
    /// A use was taken and they are a member (new, or already).
    Member { room: RoomName, new: bool },
    /// They are banned from the room: no use taken.
    Banned,
    /// Unknown, expired, or used up.
    Invalid,
}

/// What decides who may fetch an upload: who uploaded it, whether it is someone's avatar,
/// and the rooms it was posted in. (Deleting a message deletes its upload.)
#[derive(Debug, Clone, PartialEq)]
pub struct UploadUses {
    pub owner: UserId,
    pub avatar: bool,
    /// Rooms where a message (not deleted) shows it; at most [`UPLOAD_ROOMS`].
    pub rooms: Vec<RoomName>,
}

/// A private room someone invited you to by name, not yet entered.
#[derive(Debug, Clone, PartialEq)]
pub struct Invitation {
    pub room: RoomName,
    pub title: Option<String>,
    /// The name the inviter has in the room; `None` when they have left it.
    pub by: Option<String>,
    pub at_ms: i64,
}

/// Most invitations the panel shows.
pub const MAX_INVITATIONS: u32 = 50;

/// Most rooms [`Rooms::upload_uses`] reads for one upload.
pub const UPLOAD_ROOMS: u32 = 20;

#[async_trait::async_trait]
pub trait Rooms: Send + Sync + 'static {
    /// Where `user` stands with `room` (a site administrator when `site_admin`); `None`
    /// when there is no such room.
    async fn room_access(
        &self,
        room: &RoomName,
        user: &UserId,
        site_admin: bool,
    ) -> Result<Option<RoomAccess>, StoreError>;
    async fn room_record(&self, room: &RoomName) -> Result<Option<RoomRecord>, StoreError>;
    /// The room directory: public rooms whose name contains `query` (any case), in name
    /// order after `after`, at most `limit`.
    async fn public_rooms(
        &self,
        query: Option<&str>,
        after: Option<&RoomName>,
        limit: u32,
    ) -> Result<Vec<RoomRecord>, StoreError>;
    /// Creates a room with its owner as the first member. [`StoreError::Conflict`] when
    /// the name is taken.
    async fn create_room(&self, room: &NewRoom<'_>) -> Result<(), StoreError>;
    /// Makes `user` (a member) the owner of `room` if it has none: the creator of a public
    /// room, who entered it first. Says whether they became it.
    async fn claim_ownership(&self, room: &RoomName, user: &UserId) -> Result<bool, StoreError>;
    /// The direct message between `a` and `b`: found if they have one, else created under
    /// `name`, with both as members. Says whether it was created.
    async fn open_dm(
        &self,
        a: &Author,
        b: &Author,
        name: &RoomName,
        now_ms: i64,
    ) -> Result<(RoomName, bool), StoreError>;
    /// Decides the action under the room's lock ([`RoomAccess::check_action`]) and, if it
    /// is allowed, applies it, commits it as the room's next event and records it in the
    /// audit log, all in one transaction. The outer error is the database's; the inner one
    /// the refusal (`NotFound` also when there is no such room).
    async fn moderate(&self, moderation: &Moderation<'_>) -> Result<Result<RoomEvent, AccessError>, StoreError>;
    async fn create_invite_link(&self, link: &NewInviteLink<'_>) -> Result<(), StoreError>;
    /// The room a valid (known, unexpired, not used up) link leads to.
    async fn invite_link_room(&self, token_hash: &str, now_ms: i64) -> Result<Option<RoomRecord>, StoreError>;
    /// Takes one use of the link and makes `who` a member, unless they are banned.
    async fn redeem_invite(&self, token_hash: &str, who: &Author, now_ms: i64) -> Result<Redeemed, StoreError>;
    /// The invitations `user` has not taken up yet, newest first, at most `limit`.
    async fn invitations(&self, user: &UserId, limit: u32) -> Result<Vec<Invitation>, StoreError>;
    /// The name `user` has in `room`, if a member: how a guest (who has no username) is
    /// named by a moderation event.
    async fn member_name(&self, room: &RoomName, user: &UserId) -> Result<Option<String>, StoreError>;
    /// `None` when no such upload.
    async fn upload_uses(&self, id: UploadId) -> Result<Option<UploadUses>, StoreError>;
}
