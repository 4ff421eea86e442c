//! A room's timeline: messages, and the changes people make to them (edits, deletions,
//! reactions added and taken back), each an event with the room's next `seq`.
//!
//! Two things live here because every layer must agree on them:
//! * the rules a change must keep ([`MessageState::apply`]): whose message may be edited
//!   or deleted, what a deleted message still allows, how many reactions a message may
//!   have. The store runs them under the room's lock, against the state it read there,
//!   so they hold however many gateways and services race.
//! * the fold ([`Timeline`]): a message's current state from its events. History is that
//!   state as the store keeps it; a client that replays every event computes the same, and
//!   a property test holds the store to it.

use crate::error::ErrorCode;
use crate::message::{Author, ChatMessage, MessageId, Reaction};
use crate::names::{ClientMsgId, Emoji, NameError, RoomName, UserId};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Most distinct emoji one message may carry.
pub const MAX_REACTIONS: usize = 20;

/// Most people one message can mention.
pub const MAX_MENTIONS: usize = 20;

/// The usernames a text mentions: each `@name` (letters, digits and `_`) that starts the
/// text or follows a character that is not part of a name or an address, in order,
/// without repeats, at most [`MAX_MENTIONS`]. Whether each is a member is for the room
/// to say.
pub fn mentioned_usernames(text: &str) -> Vec<crate::Username> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut found: Vec<crate::Username> = Vec::new();
    let mut previous: Option<char> = None;
    for (at, c) in text.char_indices() {
        let starts = c == '@' && previous.is_none_or(|p| !is_name(p) && !matches!(p, '.' | '-' | '@'));
        previous = Some(c);
        if !starts {
            continue;
        }
        let rest = &text[at + 1..];
        let end = rest.find(|c: char| !is_name(c)).unwrap_or(rest.len());
        let Ok(name) = crate::Username::parse(&rest[..end]) else {
            continue;
        };
        if !found.iter().any(|f| f.key() == name.key()) {
            found.push(name);
            if found.len() == MAX_MENTIONS {
                break;
            }
        }
    }
    found
}

/// What a change does to the message it targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// New text for the author's own message. Validated as [`crate::MessageText`] when it
    /// was sent; empty when read back for a message deleted since (its text is erased).
    /// `mentions` are the members the new text names, resolved as a message's are: they
    /// replace the message's.
    Edit {
        text: String,
        mentions: Vec<Author>,
    },
    /// The message becomes a tombstone: it keeps its seq and loses its content.
    Delete,
    React {
        emoji: Emoji,
    },
    Unreact {
        emoji: Emoji,
    },
}

impl Change {
    /// The stored kind of the event, beside `text` and `image` for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Edit { .. } => "edit",
            Self::Delete => "delete",
            Self::React { .. } => "react",
            Self::Unreact { .. } => "unreact",
        }
    }

    /// The stored body: the new text, the emoji, or nothing.
    pub fn body(&self) -> &str {
        match self {
            Self::Edit { text, .. } => text,
            Self::Delete => "",
            Self::React { emoji } | Self::Unreact { emoji } => emoji.as_str(),
        }
    }

    /// A change as stored (`kind`, `body`, and an edit's `mentions`); `None` for the kinds
    /// of messages.
    pub fn from_stored(kind: &str, body: String, mentions: Vec<Author>) -> Option<Result<Self, NameError>> {
        Some(match kind {
            "edit" => Ok(Self::Edit { text: body, mentions }),
            "delete" => Ok(Self::Delete),
            "react" => Emoji::parse(&body).map(|emoji| Self::React { emoji }),
            "unreact" => Emoji::parse(&body).map(|emoji| Self::Unreact { emoji }),
            _ => return None,
        })
    }
}

/// A committed change: the event at `seq` that changed the message at `target_seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeEvent {
    pub id: MessageId,
    pub room: RoomName,
    pub seq: u64,
    /// Who made the change, from the session.
    pub author: Author,
    pub client_msg_id: ClientMsgId,
    /// Commit time, milliseconds since the Unix epoch.
    pub at_ms: i64,
    pub target_seq: u64,
    pub change: Change,
}

/// One event of a room's timeline, as committed: what history replays and the bus carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimelineEvent {
    Message(ChatMessage),
    Change(ChangeEvent),
    /// A change to the room itself: moderation, roles, topic, visibility.
    Room(crate::room::RoomEvent),
}

impl TimelineEvent {
    pub fn seq(&self) -> u64 {
        match self {
            Self::Message(m) => m.seq,
            Self::Change(c) => c.seq,
            Self::Room(r) => r.seq,
        }
    }

    pub fn room(&self) -> &RoomName {
        match self {
            Self::Message(m) => &m.room,
            Self::Change(c) => &c.room,
            Self::Room(r) => &r.room,
        }
    }

    pub fn id(&self) -> MessageId {
        match self {
            Self::Message(m) => m.id,
            Self::Change(c) => c.id,
            Self::Room(r) => r.id,
        }
    }

    pub fn author(&self) -> &Author {
        match self {
            Self::Message(m) => &m.author,
            Self::Change(c) => &c.author,
            Self::Room(r) => &r.author,
        }
    }

    pub fn client_msg_id(&self) -> &ClientMsgId {
        match self {
            Self::Message(m) => &m.client_msg_id,
            Self::Change(c) => &c.client_msg_id,
            Self::Room(r) => &r.client_msg_id,
        }
    }

    /// Commit time, milliseconds since the Unix epoch.
    pub fn at_ms(&self) -> i64 {
        match self {
            Self::Message(m) => m.sent_at_ms,
            Self::Change(c) => c.at_ms,
            Self::Room(r) => r.at_ms,
        }
    }
}

/// Why a change (or a reply) was refused. Nothing is stored for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    #[error("no message has that seq in this room")]
    NoSuchMessage,
    #[error("the message was deleted")]
    MessageDeleted,
    #[error("only its author may edit a message, and only its author or an administrator delete it")]
    NotYours,
    #[error("you have already reacted with this emoji")]
    AlreadyReacted,
    #[error("you have not reacted with this emoji")]
    NotReacted,
    #[error("a message may carry at most 20 different emoji")]
    TooManyReactions,
}

impl ChangeError {
    pub fn code(self) -> ErrorCode {
        match self {
            Self::NoSuchMessage => ErrorCode::NotFound,
            Self::MessageDeleted => ErrorCode::MessageDeleted,
            Self::NotYours => ErrorCode::Forbidden,
            Self::AlreadyReacted => ErrorCode::AlreadyReacted,
            Self::NotReacted => ErrorCode::NotReacted,
            Self::TooManyReactions => ErrorCode::TooManyReactions,
        }
    }
}

/// What the rules need to know of a message to decide a change to it. The store fills it
/// from what it read under the room's lock; `users` need only hold the reactions of the
/// people whose changes are being decided, `count` holds everyone's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageState {
    pub author: UserId,
    pub deleted: bool,
    pub reactions: BTreeMap<Emoji, Reactors>,
}

/// Who reacted with one emoji, as far as [`MessageState`] needs to know.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reactors {
    pub count: u64,
    pub users: BTreeSet<UserId>,
}

impl MessageState {
    pub fn new(author: UserId) -> Self {
        Self {
            author,
            deleted: false,
            reactions: BTreeMap::new(),
        }
    }

    /// Whether a new message may reply to this one.
    pub fn check_reply(&self) -> Result<(), ChangeError> {
        if self.deleted {
            return Err(ChangeError::MessageDeleted);
        }
        Ok(())
    }

    /// Decides a change by `actor` (an administrator when `admin`) and, if it is allowed,
    /// applies it, so that the next change in the same batch sees it.
    pub fn apply(&mut self, actor: &UserId, admin: bool, change: &Change) -> Result<(), ChangeError> {
        if self.deleted {
            return Err(ChangeError::MessageDeleted);
        }
        match change {
            Change::Edit { .. } if *actor != self.author => Err(ChangeError::NotYours),
            Change::Edit { .. } => Ok(()),
            Change::Delete if *actor != self.author && !admin => Err(ChangeError::NotYours),
            Change::Delete => {
                self.deleted = true;
                self.reactions.clear();
                Ok(())
            }
            Change::React { emoji } => {
                let known = self.reactions.contains_key(emoji);
                if !known && self.reactions.len() >= MAX_REACTIONS {
                    return Err(ChangeError::TooManyReactions);
                }
                let reactors = self.reactions.entry(emoji.clone()).or_default();
                if !reactors.users.insert(actor.clone()) {
                    return Err(ChangeError::AlreadyReacted);
                }
                reactors.count += 1;
                Ok(())
            }
            Change::Unreact { emoji } => {
                let Some(reactors) = self.reactions.get_mut(emoji) else {
                    return Err(ChangeError::NotReacted);
                };
                if !reactors.users.remove(actor) {
                    return Err(ChangeError::NotReacted);
                }
                reactors.count = reactors.count.saturating_sub(1);
                if reactors.count == 0 {
                    self.reactions.remove(emoji);
                }
                Ok(())
            }
        }
    }
}

/// A room's messages in their current state, folded from its events in `seq` order: what
/// a client that replays every event shows, and what history must equal.
///
/// Reactions are listed emoji by emoji in the order of each emoji's earliest standing
/// reaction, and each emoji's people in the order they reacted: the order the store
/// reads them back in.
#[derive(Debug, Default)]
pub struct Timeline {
    messages: BTreeMap<u64, ChatMessage>,
    /// Standing reactions: (message seq, emoji, person) → the seq of the reaction and who.
    reactions: HashMap<(u64, Emoji, UserId), (u64, Author)>,
}

impl Timeline {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one committed event. Events are valid (the store committed them), so an
    /// event about an unknown message changes nothing.
    pub fn apply(&mut self, event: &TimelineEvent) {
        let change = match event {
            TimelineEvent::Message(message) => {
                self.messages.insert(message.seq, message.clone());
                return;
            }
            // A room event changes no message.
            TimelineEvent::Room(_) => return,
            TimelineEvent::Change(change) => change,
        };
        let Some(message) = self.messages.get_mut(&change.target_seq) else {
            return;
        };
        if message.deleted {
            return;
        }
        let target = change.target_seq;
        match &change.change {
            Change::Edit { text, mentions } => {
                message.text = text.clone();
                message.mentions = mentions.clone();
                message.edited_at_ms = Some(change.at_ms);
            }
            Change::Delete => {
                message.erase();
                self.reactions.retain(|(seq, _, _), _| *seq != target);
            }
            Change::React { emoji } => {
                let key = (target, emoji.clone(), change.author.id.clone());
                self.reactions
                    .entry(key)
                    .or_insert_with(|| (change.seq, change.author.clone()));
            }
            Change::Unreact { emoji } => {
                self.reactions
                    .remove(&(target, emoji.clone(), change.author.id.clone()));
            }
        }
        if matches!(change.change, Change::React { .. } | Change::Unreact { .. }) {
            let standing = self
                .reactions
                .iter()
                .filter(|((seq, _, _), _)| *seq == target)
                .map(|((_, emoji, _), (seq, author))| (*seq, emoji.clone(), author.clone()));
            message.reactions = Reaction::group(standing);
        }
    }

    /// The messages, oldest first.
    pub fn messages(&self) -> impl Iterator<Item = &ChatMessage> {
        self.messages.values()
    }
}

impl Reaction {
    /// Groups standing reactions `(seq of the reaction, emoji, who)` into one entry per
    /// emoji: emoji in the order of their earliest reaction, people in the order they
    /// reacted. Any input order gives the same result.
    pub fn group(standing: impl IntoIterator<Item = (u64, Emoji, Author)>) -> Vec<Reaction> {
        let mut standing: Vec<_> = standing.into_iter().collect();
        standing.sort_by_key(|(seq, _, _)| *seq);
        let mut grouped: Vec<Reaction> = Vec::new();
        for (_, emoji, author) in standing {
            match grouped.iter_mut().find(|r| r.emoji == emoji) {
                Some(reaction) => reaction.users.push(author),
                None => grouped.push(Reaction {
                    emoji,
                    users: vec![author],
                }),
            }
        }
        grouped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str) -> UserId {
        UserId::parse(id).unwrap()
    }

    fn emoji(e: &str) -> Emoji {
        Emoji::parse(e).unwrap()
    }

    #[test]
    fn mentions_are_at_names_not_addresses() {
        let names = |text: &str| -> Vec<String> {
            mentioned_usernames(text)
                .iter()
                .map(|u| u.as_str().to_owned())
                .collect()
        };
        assert_eq!(names("@ann hi @Bob_2, and @ann again"), ["ann", "Bob_2"]);
        assert_eq!(names("(@carl) @dave."), ["carl", "dave"]);
        assert!(names("mail me at ann@example.com or @ or @@x or a-@b").is_empty());
        let many: String = (0..30).map(|i| format!("@user{i} ")).collect();
        assert_eq!(names(&many).len(), MAX_MENTIONS);
    }

    #[test]
    fn only_the_author_edits_and_the_author_or_an_admin_deletes() {
        let (ann, bob) = (user("u:ann"), user("u:bob"));
        let edit = Change::Edit {
            text: "x".into(),
            mentions: vec![],
        };
        let mut state = MessageState::new(ann.clone());
        assert_eq!(
            state.apply(&bob, true, &edit),
            Err(ChangeError::NotYours),
            "not even an admin"
        );
        assert_eq!(state.apply(&ann, false, &edit), Ok(()));
        assert_eq!(state.apply(&bob, false, &Change::Delete), Err(ChangeError::NotYours));
        assert_eq!(state.clone().apply(&ann, false, &Change::Delete), Ok(()));
        assert_eq!(state.apply(&bob, true, &Change::Delete), Ok(()));
        for change in [edit, Change::Delete, Change::React { emoji: emoji("👍") }] {
            assert_eq!(state.apply(&ann, false, &change), Err(ChangeError::MessageDeleted));
        }
        assert_eq!(state.check_reply(), Err(ChangeError::MessageDeleted));
    }

    #[test]
    fn one_reaction_per_person_per_emoji_and_at_most_twenty_emoji() {
        let (ann, bob) = (user("u:ann"), user("u:bob"));
        let mut state = MessageState::new(ann.clone());
        let react = |e: &str| Change::React { emoji: emoji(e) };
        assert_eq!(state.apply(&ann, false, &react("👍")), Ok(()));
        assert_eq!(state.apply(&ann, false, &react("👍")), Err(ChangeError::AlreadyReacted));
        assert_eq!(state.apply(&bob, false, &react("👍")), Ok(()));
        assert_eq!(state.reactions[&emoji("👍")].count, 2);
        let unreact = Change::Unreact { emoji: emoji("👍") };
        assert_eq!(state.apply(&bob, false, &unreact), Ok(()));
        assert_eq!(state.apply(&bob, false, &unreact), Err(ChangeError::NotReacted));
        let others: Vec<&str> = emojis::iter()
            .take(40)
            .map(|e| e.as_str())
            .filter(|e| *e != "👍")
            .collect();
        for e in &others[..MAX_REACTIONS - 1] {
            assert_eq!(state.apply(&bob, false, &react(e)), Ok(()));
        }
        assert_eq!(
            state.apply(&bob, false, &react(others[MAX_REACTIONS])),
            Err(ChangeError::TooManyReactions)
        );
        assert_eq!(
            state.apply(&bob, false, &react("👍")),
            Ok(()),
            "an emoji already there is fine"
        );
    }

    #[test]
    fn a_reaction_others_still_hold_stays_when_one_person_takes_theirs_back() {
        let (ann, bob) = (user("u:ann"), user("u:bob"));
        let mut state = MessageState::new(ann.clone());
        // As the store loads it: three people reacted, only Bob's is known by name.
        state.reactions.insert(
            emoji("🎉"),
            Reactors {
                count: 3,
                users: [bob.clone()].into(),
            },
        );
        state
            .apply(&bob, false, &Change::Unreact { emoji: emoji("🎉") })
            .unwrap();
        assert_eq!(state.reactions[&emoji("🎉")].count, 2);
    }

    #[test]
    fn reactions_group_by_earliest_standing_reaction() {
        let author = |id: &str| Author {
            id: user(id),
            name: crate::DisplayName::parse(id).unwrap(),
        };
        let grouped = Reaction::group([
            (9, emoji("🎉"), author("u:c")),
            (5, emoji("👍"), author("u:a")),
            (7, emoji("🎉"), author("u:b")),
            (8, emoji("👍"), author("u:d")),
        ]);
        let shown: Vec<(String, Vec<String>)> = grouped
            .iter()
            .map(|r| (r.emoji.to_string(), r.users.iter().map(|u| u.id.to_string()).collect()))
            .collect();
        assert_eq!(
            shown,
            [
                ("👍".to_string(), vec!["u:a".to_string(), "u:d".to_string()]),
                ("🎉".to_string(), vec!["u:b".to_string(), "u:c".to_string()]),
            ]
        );
    }
}
