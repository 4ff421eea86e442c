//! Validated newtypes. Each has a private field and a `parse` constructor, so a value of one
//! of these types is valid by construction and no function downstream re-checks a `&str`.

use crate::error::ErrorCode;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Why a value was refused, phrased for the person who typed it, with the protocol's code
/// for it: each type knows its own code, so no caller maps one error to a code by hand.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct NameError {
    code: ErrorCode,
    message: &'static str,
}

impl NameError {
    pub const fn new(code: ErrorCode, message: &'static str) -> Self {
        Self { code, message }
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    pub fn message(&self) -> &'static str {
        self.message
    }
}

/// `Deserialize` through `parse`, for types read back from the wire (server frames in
/// clients and tests): a value that breaks the rules does not deserialize.
macro_rules! deserialize_by_parse {
    ($($name:ident),+) => {$(
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    )+};
}
deserialize_by_parse!(RoomName, ClientMsgId, DisplayName, UserId, Emoji);

macro_rules! string_newtype {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        /// Compares with plain text, as it reads: `user.id == "u:1"`.
        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
    };
}

/// A positive id the database assigned (a message's, an upload's): a newtype whose `new`
/// refuses anything else, serialized as the plain number.
macro_rules! positive_id {
    ($(#[$doc:meta])* $name:ident, $refusal:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(i64);

        impl $name {
            pub fn new(id: i64) -> Result<Self, $crate::names::NameError> {
                if id <= 0 {
                    return Err($crate::names::NameError::new($crate::error::ErrorCode::InvalidArgument, $refusal));
                }
                Ok(Self(id))
            }

            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_i64(self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Self::new(i64::deserialize(d)?).map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use positive_id;

/// A room's name: 1 to 64 characters of `a-z 0-9 _ . -`, starting with a letter or digit.
/// Names are case-insensitive: `General` and `general` are the same room, stored lowercase.
/// The restricted alphabet keeps names safe in URLs, stream keys and logs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomName(String);
string_newtype!(RoomName);

impl RoomName {
    pub const MAX_LEN: usize = 64;

    pub fn parse(input: &str) -> Result<Self, NameError> {
        if input.is_empty() {
            return Err(NameError::new(ErrorCode::InvalidRoom, "room name is empty"));
        }
        if input.len() > Self::MAX_LEN {
            return Err(NameError::new(
                ErrorCode::InvalidRoom,
                "room name is longer than 64 characters",
            ));
        }
        let name = input.to_ascii_lowercase();
        let bytes = name.as_bytes();
        if !bytes[0].is_ascii_alphanumeric() {
            return Err(NameError::new(
                ErrorCode::InvalidRoom,
                "room name must start with a letter or a digit",
            ));
        }
        if !bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-'))
        {
            return Err(NameError::new(
                ErrorCode::InvalidRoom,
                "room name may only hold letters a-z, digits, '_', '.' and '-'",
            ));
        }
        Ok(Self(name))
    }
}

/// The text of a message: 1 to 4000 characters, not only white space, and no control
/// characters other than tab, line feed and carriage return. Everything else, emoji and
/// bidirectional marks included, is legitimate text and is stored exactly as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageText(String);
string_newtype!(MessageText);

impl MessageText {
    pub const MAX_CHARS: usize = 4000;

    pub fn parse(input: String) -> Result<Self, NameError> {
        if input.trim().is_empty() {
            return Err(NameError::new(ErrorCode::InvalidText, "message text is empty"));
        }
        Self::caption(input)
    }

    /// The text of an image message: the same rules, but it may be empty.
    pub fn caption(input: String) -> Result<Self, NameError> {
        // A cheap byte-length bound first: 4 bytes is the widest UTF-8 character.
        if input.len() > Self::MAX_CHARS * 4 || input.chars().count() > Self::MAX_CHARS {
            return Err(NameError::new(
                ErrorCode::InvalidText,
                "message text is longer than 4000 characters",
            ));
        }
        if input
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
        {
            return Err(NameError::new(
                ErrorCode::InvalidText,
                "message text holds control characters",
            ));
        }
        Ok(Self(input))
    }
}

/// The client's idempotency key for a send: 1 to 64 characters of `A-Z a-z 0-9 _ . : -`
/// (a UUID fits). A retried send with the same key in the same room by the same author is
/// stored once.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientMsgId(String);
string_newtype!(ClientMsgId);

impl ClientMsgId {
    pub const MAX_LEN: usize = 64;

    pub fn parse(input: &str) -> Result<Self, NameError> {
        if input.is_empty() || input.len() > Self::MAX_LEN {
            return Err(NameError::new(
                ErrorCode::InvalidClientMsgId,
                "client_msg_id must be 1 to 64 characters",
            ));
        }
        if !input
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
        {
            return Err(NameError::new(
                ErrorCode::InvalidClientMsgId,
                "client_msg_id may only hold letters, digits, '_', '.', ':' and '-'",
            ));
        }
        Ok(Self(input.to_owned()))
    }
}

/// A person's display name: 1 to 32 characters once surrounding white space is trimmed,
/// with no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DisplayName(String);
string_newtype!(DisplayName);

impl DisplayName {
    pub const MAX_CHARS: usize = 32;

    pub fn parse(input: &str) -> Result<Self, NameError> {
        let name = input.trim();
        if name.is_empty() {
            return Err(NameError::new(ErrorCode::InvalidName, "name is empty"));
        }
        if name.chars().count() > Self::MAX_CHARS {
            return Err(NameError::new(
                ErrorCode::InvalidName,
                "name is longer than 32 characters",
            ));
        }
        if name.chars().any(char::is_control) {
            return Err(NameError::new(ErrorCode::InvalidName, "name holds control characters"));
        }
        Ok(Self(name.to_owned()))
    }
}

/// The server-side identity of an author: an opaque id minted by the server (for example
/// `guest:<uuid>`), 1 to 128 printable ASCII characters without spaces.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(String);
string_newtype!(UserId);

impl UserId {
    pub const MAX_LEN: usize = 128;

    pub fn parse(input: &str) -> Result<Self, NameError> {
        if input.is_empty() || input.len() > Self::MAX_LEN {
            return Err(NameError::new(
                ErrorCode::InvalidArgument,
                "user id must be 1 to 128 characters",
            ));
        }
        if !input.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(NameError::new(
                ErrorCode::InvalidArgument,
                "user id must be printable ASCII without spaces",
            ));
        }
        Ok(Self(input.to_owned()))
    }
}

/// A reaction: one emoji of the Unicode emoji set (one grapheme cluster, skin tones
/// included), or a `:name:` from the GitHub shortcode list the `emojis` crate ships, which
/// becomes its emoji. Kept as the emoji itself, so `:+1:` and 👍 are one reaction and no
/// name that could hold markup is ever stored.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Emoji(String);
string_newtype!(Emoji);

impl Emoji {
    pub fn parse(input: &str) -> Result<Self, NameError> {
        // The longest emoji (a family with skin tones) is well under 64 bytes.
        let found = if input.len() > 64 {
            None
        } else if let Some(name) = input.strip_prefix(':').and_then(|s| s.strip_suffix(':')) {
            emojis::get_by_shortcode(name)
        } else {
            emojis::get(input)
        };
        found.map(|emoji| Self(emoji.as_str().to_owned())).ok_or(NameError::new(
            ErrorCode::InvalidEmoji,
            "a reaction is one emoji, or a :name: from the emoji list",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn room_names_are_lowercased_and_checked() {
        assert_eq!(RoomName::parse("General-1").unwrap().as_str(), "general-1");
        assert_eq!(RoomName::parse("a.b_c").unwrap().as_str(), "a.b_c");
        assert!(RoomName::parse("").is_err());
        assert!(RoomName::parse("-lead").is_err());
        assert!(RoomName::parse("has space").is_err());
        assert!(RoomName::parse("ünïcode").is_err());
        assert!(RoomName::parse("x/../y").is_err());
        assert!(RoomName::parse(&"a".repeat(64)).is_ok());
        assert!(RoomName::parse(&"a".repeat(65)).is_err());
    }

    #[test]
    fn message_text_rules() {
        assert!(MessageText::parse("hello\n\tworld".into()).is_ok());
        assert!(MessageText::parse("   \n ".into()).is_err());
        assert!(MessageText::parse("".into()).is_err());
        assert!(MessageText::parse("nul\0byte".into()).is_err());
        assert!(MessageText::parse("bell\u{7}".into()).is_err());
        // Bidi overrides and emoji are text: kept intact.
        let bidi = "abc \u{202E}cba 😀".to_string();
        assert_eq!(MessageText::parse(bidi.clone()).unwrap().as_str(), bidi);
        assert!(MessageText::parse("é".repeat(4000)).is_ok());
        assert!(MessageText::parse("é".repeat(4001)).is_err());
    }

    #[test]
    fn client_msg_id_and_display_name_rules() {
        assert!(ClientMsgId::parse("0190c3e4-7b1a-7cc0-9a55-3f8e0b0d3c11").is_ok());
        assert!(ClientMsgId::parse("").is_err());
        assert!(ClientMsgId::parse("with space").is_err());
        assert!(ClientMsgId::parse(&"x".repeat(65)).is_err());
        assert_eq!(DisplayName::parse("  Ann  ").unwrap().as_str(), "Ann");
        assert!(DisplayName::parse(" ").is_err());
        assert!(DisplayName::parse("a\u{1b}[31m").is_err());
        assert!(UserId::parse("guest:abc").is_ok());
        assert!(UserId::parse("a b").is_err());
    }

    proptest! {
        #[test]
        fn room_name_parse_never_panics_and_accepts_only_the_alphabet(s in "\\PC{0,80}") {
            if let Ok(name) = RoomName::parse(&s) {
                prop_assert!(name.as_str().len() <= RoomName::MAX_LEN);
                prop_assert!(name.as_str().bytes().all(|b| b.is_ascii_lowercase()
                    || b.is_ascii_digit() || b"_.-".contains(&b)));
                prop_assert_eq!(RoomName::parse(name.as_str()).unwrap(), name);
            }
        }

        #[test]
        fn accepted_text_is_kept_byte_for_byte(s in any::<String>()) {
            if let Ok(text) = MessageText::parse(s.clone()) {
                prop_assert_eq!(text.as_str(), s.as_str());
            }
        }
    }

    #[test]
    fn a_reaction_is_one_emoji_or_a_listed_name() {
        assert_eq!(Emoji::parse("👍").unwrap(), "👍");
        assert_eq!(Emoji::parse(":+1:").unwrap(), "👍", "a name becomes its emoji");
        assert_eq!(Emoji::parse(":tada:").unwrap(), "🎉");
        assert_eq!(Emoji::parse("👍🏽").unwrap(), "👍🏽", "skin tones are one grapheme");
        for bad in [
            "",
            "a",
            "👍👍",
            ":nope:",
            "<b>",
            ":<img src=x>:",
            "👍 ",
            &"👍".repeat(40),
        ] {
            assert_eq!(
                Emoji::parse(bad).unwrap_err().code(),
                ErrorCode::InvalidEmoji,
                "{bad:?}"
            );
        }
    }
}
