//! The shapes of request and response bodies. Each derives its OpenAPI schema, so the
//! document describes what the handlers really send. Messages and acks are the websocket
//! frames themselves: their types come from `chat_domain::protocol`, schema and all, so
//! there is no mirror here to drift from them.

use crate::auth::{IdentityKind, Principal};
use chat_domain::message::{avatar_url, format_millis};
use chat_domain::protocol::HistoryItem;
use chat_domain::{Author, Role, RoomRole, UploadId, UserId, Visibility};
use chat_store::{AuditEntry, MemberRoom, RoomInfo, RoomMember, RoomRecord, SessionRecord, UserRecord};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable: clients branch on it (see docs/protocol.md for the list).
    pub code: String,
    /// For people; may change.
    pub message: String,
}

/// The caller, as sessions see them.
#[derive(Serialize, ToSchema)]
pub struct PrincipalView {
    /// The author id messages carry.
    pub id: String,
    pub name: String,
    #[schema(value_type = String, example = "account")]
    pub kind: IdentityKind,
    #[schema(value_type = String, example = "user")]
    pub role: Role,
}

impl From<&Principal> for PrincipalView {
    fn from(p: &Principal) -> Self {
        Self {
            id: p.author.id.as_str().to_owned(),
            name: p.author.name.as_str().to_owned(),
            kind: p.kind,
            role: p.role,
        }
    }
}

/// A new session. The token also arrives as the HttpOnly `sc_session` cookie; scripts in
/// a browser should rely on the cookie and not keep the token.
#[derive(Serialize, ToSchema)]
pub struct SessionCreated {
    pub token: String,
    pub user: PrincipalView,
    pub expires_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct CurrentSession {
    pub user: PrincipalView,
    pub expires_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct SessionInfo {
    /// Revoke with `DELETE /api/v1/me/sessions/{id}`.
    pub id: String,
    pub created_at: String,
    pub expires_at: String,
    pub user_agent: String,
    /// This is the session making the request.
    pub current: bool,
}

impl SessionInfo {
    pub fn new(s: &SessionRecord, current: Option<&str>) -> Self {
        Self {
            id: s.id.clone(),
            created_at: format_millis(s.created_at_ms),
            expires_at: format_millis(s.expires_at_ms),
            user_agent: s.user_agent.clone(),
            current: current == Some(s.id.as_str()),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SessionList {
    pub sessions: Vec<SessionInfo>,
}

/// Anyone's profile, as everyone may see it.
#[derive(Serialize, ToSchema)]
pub struct ProfileView {
    pub id: String,
    pub username: String,
    pub first_name: String,
    pub last_name: String,
    pub bio: String,
    pub avatar_url: Option<String>,
    pub joined_at: String,
    #[schema(value_type = String)]
    pub role: Role,
    /// Whether they are online now; absent when presence is switched off (and on your own).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub online: Option<bool>,
    /// When they last went offline (RFC 3339), if ever and presence is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
}

impl From<&UserRecord> for ProfileView {
    fn from(u: &UserRecord) -> Self {
        Self {
            id: u.id.to_string(),
            username: u.username.clone(),
            first_name: u.first_name.clone(),
            last_name: u.last_name.clone(),
            bio: u.bio.clone(),
            avatar_url: u.avatar_id.and_then(|id| UploadId::new(id).ok()).map(avatar_url),
            joined_at: format_millis(u.created_at_ms),
            role: u.role,
            online: None,
            last_seen: None,
        }
    }
}

/// Your own profile: the public one plus what only you (and admins) see.
#[derive(Serialize, ToSchema)]
pub struct OwnProfile {
    #[serde(flatten)]
    pub profile: ProfileView,
    pub email: String,
    pub last_login: Option<String>,
    pub disabled: bool,
    /// Whether the members of your rooms see how far you have read.
    pub read_receipts: bool,
}

impl From<&UserRecord> for OwnProfile {
    fn from(u: &UserRecord) -> Self {
        Self {
            profile: u.into(),
            email: u.email.clone(),
            last_login: u.last_login_ms.map(format_millis),
            disabled: u.disabled,
            read_receipts: u.read_receipts,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct UsersPage {
    pub users: Vec<OwnProfile>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct RoomView {
    pub name: String,
    pub last_seq: u64,
    pub created_at: String,
    pub visibility: Visibility,
    /// A private room's title (its name is the server's); `null` for a public room.
    pub title: Option<String>,
}

impl From<&RoomInfo> for RoomView {
    /// A public room entered by name.
    fn from(r: &RoomInfo) -> Self {
        Self {
            name: r.name.as_str().to_owned(),
            last_seq: r.last_seq,
            created_at: format_millis(r.created_at_ms),
            visibility: Visibility::Public,
            title: None,
        }
    }
}

impl From<&RoomRecord> for RoomView {
    fn from(r: &RoomRecord) -> Self {
        Self {
            name: r.name.as_str().to_owned(),
            last_seq: r.last_seq,
            created_at: format_millis(r.created_at_ms),
            visibility: r.visibility,
            title: r.title.clone(),
        }
    }
}

/// A public room as the room directory lists it.
#[derive(Serialize, ToSchema)]
pub struct DirectoryRoom {
    #[serde(flatten)]
    pub room: RoomView,
    pub topic: String,
    pub member_count: u64,
    /// The newest event's time; `null` while the room is empty.
    pub last_activity: Option<String>,
}

impl From<&RoomRecord> for DirectoryRoom {
    fn from(r: &RoomRecord) -> Self {
        Self {
            room: r.into(),
            topic: r.topic.clone(),
            member_count: r.member_count,
            last_activity: r.last_activity_ms.map(format_millis),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DirectoryPage {
    pub rooms: Vec<DirectoryRoom>,
    pub next_after: Option<String>,
}

/// A room as its page shows it, and where the caller stands with it.
#[derive(Serialize, ToSchema)]
pub struct RoomDetails {
    pub name: String,
    pub visibility: Visibility,
    pub title: Option<String>,
    pub topic: String,
    pub description: String,
    /// In a direct message, the other person.
    pub dm_with: Option<Author>,
    pub member_count: u64,
    /// `null` for a room made before rooms had owners, and for a direct message.
    pub owner: Option<Author>,
    pub last_seq: u64,
    /// `null` when the caller is not a member.
    pub your_role: Option<RoomRole>,
    /// Until when the caller may read but not send here; `null` when not muted.
    pub muted_until: Option<String>,
    /// The caller is invited (and not yet a member).
    pub invited: bool,
}

impl RoomDetails {
    pub fn new(r: &RoomRecord, viewer: &UserId, standing: &chat_domain::Standing, now_ms: i64) -> Self {
        Self {
            name: r.name.as_str().to_owned(),
            visibility: r.visibility,
            title: r.title.clone(),
            topic: r.topic.clone(),
            description: r.description.clone(),
            dm_with: r.dm_with(viewer).cloned(),
            member_count: r.member_count,
            owner: r.owner.clone(),
            last_seq: r.last_seq,
            your_role: standing.role,
            muted_until: standing.muted_at(now_ms).map(format_millis),
            invited: standing.invited,
        }
    }
}

/// An owner's or moderator's action (`POST /api/v1/rooms/{room}/actions`). Which fields
/// are needed depends on `action`; the person is named by `user_id` or `username`.
#[derive(Deserialize, ToSchema)]
pub struct RoomActionBody {
    /// `invite`, `kick`, `ban`, `unban`, `mute`, `unmute`, `set_role`, `update`,
    /// `set_visibility` or `transfer`.
    pub action: String,
    pub user_id: Option<String>,
    pub username: Option<String>,
    /// `mute`: for how long, 1 to 525600 minutes.
    pub minutes: Option<u32>,
    /// `set_role`: `moderator` or `member`.
    pub role: Option<RoomRole>,
    /// `update`: the new topic (one line, up to 200 characters) and description (up to
    /// 1000); one left out stays as it is.
    pub topic: Option<String>,
    pub description: Option<String>,
    /// `set_visibility`.
    pub visibility: Option<Visibility>,
}

#[derive(Deserialize, ToSchema)]
pub struct NewInviteLinkBody {
    /// 1 to 43200 (30 days); 10080 (7 days) when absent.
    pub expires_in_minutes: Option<u32>,
    /// 1 to 1000; any number of uses when absent.
    pub max_uses: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct InviteLinkView {
    /// Shown once: only its hash is kept.
    pub token: String,
    /// Where to send people: the invite page, with the token in the fragment.
    pub url: String,
    pub expires_at: String,
    pub max_uses: Option<u32>,
}

/// What an invite link leads to, before it is used.
#[derive(Serialize, ToSchema)]
pub struct InvitePreview {
    pub room: String,
    pub title: Option<String>,
    pub visibility: Visibility,
    pub member_count: u64,
}

#[derive(Deserialize, ToSchema)]
pub struct OpenDm {
    pub username: String,
}

#[derive(Serialize, ToSchema)]
pub struct DmOpened {
    pub room: RoomView,
    pub dm_with: Author,
}

#[derive(Serialize, ToSchema)]
pub struct RoomEntered {
    pub room: RoomView,
    /// False when the caller was a member already.
    pub joined: bool,
}

#[derive(Serialize, ToSchema)]
pub struct RoomsPage {
    pub rooms: Vec<RoomView>,
    pub next_after: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct HistoryPage {
    pub room: String,
    pub last_seq: u64,
    /// Oldest first, each as its websocket frame: messages in their current state (deleted
    /// ones as tombstones), or with `after_seq` every event after it (`message`, `edited`,
    /// `deleted`, `reacted`, `unreacted`, `room_event`).
    pub messages: Vec<HistoryItem>,
}

#[derive(Serialize, ToSchema)]
pub struct MemberView {
    pub user_id: String,
    pub name: String,
    pub joined_at: String,
    /// Whether they are online now; absent when presence is switched off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub online: Option<bool>,
    pub role: RoomRole,
    /// Until when they may read but not send; `null` when not muted.
    pub muted_until: Option<String>,
    /// Their profile picture, `/api/v1/uploads/{id}`; `null` when they have none.
    pub avatar_url: Option<String>,
}

impl MemberView {
    pub fn new(m: &RoomMember, now_ms: i64) -> Self {
        Self {
            user_id: m.user_id.clone(),
            name: m.name.clone(),
            joined_at: format_millis(m.joined_at_ms),
            online: None,
            role: m.role,
            muted_until: m.muted_until_ms.filter(|until| *until > now_ms).map(format_millis),
            avatar_url: m.avatar.map(avatar_url),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct MembersPage {
    pub room: String,
    pub count: u64,
    pub members: Vec<MemberView>,
    pub next_after: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PanelRoom {
    pub name: String,
    pub last_seq: u64,
    /// Messages after your read marker.
    pub unread: u64,
    /// Of those, the ones that mention you.
    pub mentions: u64,
    pub last_activity: Option<String>,
    pub joined_at: String,
    pub visibility: Visibility,
    /// A private room's title; `null` for a public room.
    pub title: Option<String>,
    /// In a direct message, the other person (list it under their name).
    pub dm_with: Option<Author>,
    /// You muted its notifications (`PATCH /api/v1/rooms/{room}/membership`).
    pub muted: bool,
}

impl From<&MemberRoom> for PanelRoom {
    fn from(r: &MemberRoom) -> Self {
        Self {
            name: r.room.as_str().to_owned(),
            last_seq: r.last_seq,
            unread: r.unread,
            mentions: r.mentions,
            last_activity: r.last_activity_ms.map(format_millis),
            joined_at: format_millis(r.joined_at_ms),
            visibility: r.visibility,
            title: r.title.clone(),
            dm_with: r.dm_with.clone(),
            muted: r.notifications_muted,
        }
    }
}

/// A private room you were invited to by name and have not entered yet.
#[derive(Serialize, ToSchema)]
pub struct InvitationView {
    pub room: String,
    pub title: Option<String>,
    /// Who invited you, as the room names them; `null` when they have left it.
    pub by: Option<String>,
    pub at: String,
}

impl From<&chat_store::Invitation> for InvitationView {
    fn from(i: &chat_store::Invitation) -> Self {
        Self {
            room: i.room.as_str().to_owned(),
            title: i.title.clone(),
            by: i.by.clone(),
            at: format_millis(i.at_ms),
        }
    }
}

/// The index page's data.
#[derive(Serialize, ToSchema)]
pub struct Panel {
    pub user: PrincipalView,
    /// Your profile; absent for guests and external users.
    pub profile: Option<OwnProfile>,
    pub message_count: u64,
    pub room_count: u64,
    /// Your log-in before the latest one (the latest is most likely this session); `null`
    /// until you have logged in twice, and for guests and external users.
    pub last_login: Option<String>,
    pub joined_at: Option<String>,
    /// Your rooms in name order, a page at a time.
    pub rooms: Vec<PanelRoom>,
    pub next_after: Option<String>,
    /// Private rooms you were invited to by name and have not entered, newest first (on
    /// the first page only).
    pub invitations: Vec<InvitationView>,
}

#[derive(Serialize, ToSchema)]
pub struct UploadView {
    pub id: i64,
    pub url: String,
    /// As stored: the sniffed type (a JPEG stays a JPEG).
    pub content_type: String,
    /// Bytes as stored, without metadata.
    pub size: usize,
    /// In pixels, as displayed.
    pub width: u32,
    pub height: u32,
}

#[derive(Serialize, ToSchema)]
pub struct AdminMessagesPage {
    pub messages: Vec<HistoryItem>,
    /// Pass as `before_id` for the next (older) page.
    pub next_before_id: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditView {
    pub id: i64,
    pub actor_id: String,
    pub actor_name: String,
    pub action: String,
    pub target: String,
    pub detail: String,
    pub at: String,
}

impl From<&AuditEntry> for AuditView {
    fn from(e: &AuditEntry) -> Self {
        Self {
            id: e.id,
            actor_id: e.actor_id.clone(),
            actor_name: e.actor_name.clone(),
            action: e.action.clone(),
            target: e.target.clone(),
            detail: e.detail.clone(),
            at: format_millis(e.created_at_ms),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditView>,
    pub next_before_id: Option<i64>,
}

// ----- Requests -----

#[derive(Deserialize, ToSchema)]
pub struct SignUp {
    /// 3–32 of `A-Z a-z 0-9 _`, starting with a letter; unique regardless of case.
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// At least 10 characters, not containing the username.
    pub password: String,
}

/// Ask for a password-reset link by e-mail.
#[derive(Deserialize, ToSchema)]
pub struct ResetRequest {
    pub email: String,
}

/// The answer to a reset request: the same whether or not the address is known.
#[derive(Serialize, ToSchema)]
pub struct ResetRequested {
    /// Always `sent`.
    pub status: &'static str,
}

/// Use a password-reset link: its token, and the new password.
#[derive(Deserialize, ToSchema)]
pub struct ResetConfirm {
    pub token: String,
    /// At least 10 characters, not containing the username.
    pub new_password: String,
}

/// A password change.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    pub current_password: String,
    /// At least 10 characters, not containing the username.
    pub new_password: String,
}

/// Log in with an account, or (when guests are allowed) start a guest session with a
/// display name alone.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum LogIn {
    Account { username: String, password: String },
    Guest { name: String },
}

/// Fields to change; absent fields stay as they are. `avatar_id: null` removes the avatar.
#[derive(Deserialize, ToSchema, Default)]
pub struct ProfilePatch {
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// At most 255 characters.
    pub bio: Option<String>,
    /// An upload of yours, or null.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub avatar_id: Option<Option<i64>>,
    /// Whether the members of your rooms see how far you have read.
    pub read_receipts: Option<bool>,
}

/// Tells "absent" (outer `None`) from "null" (`Some(None)`).
fn double_option<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    Option::<i64>::deserialize(d).map(Some)
}

#[derive(Deserialize, ToSchema)]
pub struct EnterRoom {
    /// A public room's name; for a private room, its title (the server names it).
    pub name: String,
    /// `public` (the default) or `private`.
    pub visibility: Option<Visibility>,
}

#[derive(Deserialize, ToSchema)]
pub struct Publish {
    /// The text, or an image's caption (then optional).
    pub text: Option<String>,
    pub client_msg_id: String,
    /// An upload of yours: makes this an image message.
    pub attachment_id: Option<i64>,
    /// The seq of the message (in this room) this one replies to.
    pub reply_to: Option<u64>,
}

/// Your own settings for a room you are a member of.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MembershipUpdate {
    /// Mute the room's notifications (no desktop notification, no sound, not in the tab
    /// title's count) or unmute them. Not a moderator's mute, which stops someone sending.
    pub muted: bool,
}

#[derive(Serialize, ToSchema)]
pub struct MembershipView {
    pub room: String,
    pub muted: bool,
}

#[derive(Deserialize, ToSchema)]
pub struct MarkRead {
    /// The highest seq read; capped at the room's last seq, never lowered.
    pub seq: u64,
}

#[derive(Deserialize, ToSchema)]
pub struct SetDisabled {
    pub disabled: bool,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// The `next_after` of the previous page.
    pub after: Option<String>,
    /// 1–200, default 50.
    pub limit: Option<u32>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchPage {
    /// Case-insensitive substring to look for.
    pub q: Option<String>,
    pub after: Option<String>,
    pub limit: Option<u32>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Every event after this seq (catching up, as a resuming socket does).
    pub after_seq: Option<u64>,
    /// Messages before this seq, in their current state (scrolling back). Without either,
    /// the newest page.
    pub before_seq: Option<u64>,
    pub limit: Option<u32>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessageSearch {
    pub q: Option<String>,
    pub room: Option<String>,
    /// The `next_before_id` of the previous page.
    pub before_id: Option<i64>,
    pub limit: Option<u32>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    pub before_id: Option<i64>,
    pub limit: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_domain::protocol::MessageFrame;
    use chat_domain::{ChatMessage, MessageKind};
    use serde_json::Value;
    use utoipa::PartialSchema;

    /// Every property the schema of one history item names, following `$ref`s to the
    /// frame types and their `oneOf`/`allOf` parts (not into nested objects).
    fn documented_keys(schema: &Value, out: &mut Vec<String>) {
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            out.extend(properties.keys().cloned());
        }
        if schema.get("$ref").and_then(Value::as_str) == Some("#/components/schemas/MessageFrame") {
            documented_keys(&serde_json::to_value(MessageFrame::schema()).unwrap(), out);
        }
        for parts in ["oneOf", "allOf", "anyOf"] {
            for part in schema.get(parts).and_then(Value::as_array).into_iter().flatten() {
                documented_keys(part, out);
            }
        }
    }

    /// The documented message shape has exactly the fields of the real frame, every
    /// optional one set.
    #[test]
    fn message_doc_matches_the_message_frame() {
        let sample = chat_domain::testing::message();
        let message = ChatMessage {
            kind: MessageKind::Image,
            attachment: Some(UploadId::new(3).unwrap()),
            reply_to: Some(1),
            mentions: vec![sample.author.clone()],
            edited_at_ms: Some(1),
            deleted: true,
            reactions: vec![chat_domain::Reaction {
                emoji: chat_domain::Emoji::parse("👍").unwrap(),
                users: vec![sample.author.clone()],
            }],
            ..sample
        };
        let frame: Value = serde_json::from_slice(&message.to_frame()).unwrap();
        let mut frame_keys: Vec<&str> = frame.as_object().unwrap().keys().map(String::as_str).collect();
        let mut doc_keys = Vec::new();
        documented_keys(&serde_json::to_value(HistoryItem::schema()).unwrap(), &mut doc_keys);
        let mut doc_keys: Vec<&str> = doc_keys.iter().map(String::as_str).collect();
        frame_keys.sort_unstable();
        doc_keys.sort_unstable();
        doc_keys.dedup();
        assert_eq!(frame_keys, doc_keys);
    }
}

/// Where a search looks when no room is named.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SearchIn {
    /// The rooms you are a member of.
    #[default]
    Mine,
    /// Those and every public room.
    Public,
}

/// What a search result must have.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SearchHas {
    /// Image messages only (found by their captions).
    Image,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// Words (all must match), a `"quoted phrase"`, `-word` to leave out: the syntax of
    /// web search engines. At most 200 characters and 12 terms.
    pub q: Option<String>,
    /// Only this room (which you must be able to read).
    pub room: Option<String>,
    /// Without `room`: `mine` (default) or `public`.
    #[param(inline)]
    pub scope: Option<SearchIn>,
    /// Only messages by this user id.
    pub author: Option<String>,
    /// Only messages sent at or after this time (RFC 3339 in UTC, or a date).
    pub since: Option<String>,
    /// Only messages sent before this time (RFC 3339 in UTC, or a date).
    pub until: Option<String>,
    /// `image`: only image messages.
    #[param(inline)]
    pub has: Option<SearchHas>,
    /// The `next_before` of the previous page.
    pub before: Option<i64>,
    pub limit: Option<u32>,
}

/// One message found.
#[derive(Serialize, ToSchema)]
pub struct SearchHit {
    /// The message in its current state, as history shows it.
    pub message: chat_domain::protocol::MessageFrame,
    /// Part of its text with the words looked for marked: show each segment as text.
    pub snippet: Vec<chat_domain::search::Segment>,
}

#[derive(Serialize, ToSchema)]
pub struct SearchResults {
    /// Newest first.
    pub results: Vec<SearchHit>,
    /// Pass as `before` for the next (older) page; absent on the last one.
    pub next_before: Option<i64>,
}
