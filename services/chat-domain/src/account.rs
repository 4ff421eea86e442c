//! Validated account fields. As with [`crate::names`], a value of one of these types is
//! valid by construction: the HTTP API parses each field once, at the edge.

use crate::error::ErrorCode;
use crate::names::NameError;
use serde::{Serialize, Serializer};
use std::fmt;

macro_rules! text_newtype {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
    };
}

/// A registered user's handle: 3 to 32 of `A-Z a-z 0-9 _`, starting with a letter.
/// Shown as typed, but unique regardless of case: [`Username::key`] is what the database
/// keeps unique, so `Alice` and `alice` can never be two people.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);
text_newtype!(Username);

impl Username {
    pub const MIN_LEN: usize = 3;
    pub const MAX_LEN: usize = 32;

    pub fn parse(input: &str) -> Result<Self, NameError> {
        let name = input.trim();
        if name.len() < Self::MIN_LEN || name.len() > Self::MAX_LEN {
            return Err(NameError::new(
                ErrorCode::InvalidUsername,
                "username must be 3 to 32 characters",
            ));
        }
        if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return Err(NameError::new(
                ErrorCode::InvalidUsername,
                "username must start with a letter",
            ));
        }
        if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(NameError::new(
                ErrorCode::InvalidUsername,
                "username may only hold letters, digits and _",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    /// The case-folded form that is unique.
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

/// An e-mail address, checked for shape only (one `@`, a dotted domain, no spaces, control
/// or bidirectional formatting characters, which could make it display as another): whether
/// it receives mail is for a confirmation step, not a parser, to tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);
text_newtype!(Email);

impl Email {
    pub const MAX_LEN: usize = 254;

    pub fn parse(input: &str) -> Result<Self, NameError> {
        let email = input.trim();
        if email.is_empty() || email.len() > Self::MAX_LEN {
            return Err(NameError::new(
                ErrorCode::InvalidEmail,
                "e-mail must be 1 to 254 characters",
            ));
        }
        let shaped = match email.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            }
            None => false,
        };
        if !shaped
            || email
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || is_bidi_control(c))
        {
            return Err(NameError::new(
                ErrorCode::InvalidEmail,
                "e-mail is not an address like name@example.com",
            ));
        }
        Ok(Self(email.to_owned()))
    }
}

/// A first or last name: 1 to 64 characters once trimmed, no control characters, no
/// bidirectional overrides (which could make a name display as someone else's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonName(String);
text_newtype!(PersonName);

impl PersonName {
    pub const MAX_CHARS: usize = 64;

    pub fn parse(input: &str) -> Result<Self, NameError> {
        let name = input.trim();
        if name.is_empty() {
            return Err(NameError::new(
                ErrorCode::InvalidProfile,
                "first and last name are required",
            ));
        }
        if name.chars().count() > Self::MAX_CHARS {
            return Err(NameError::new(
                ErrorCode::InvalidProfile,
                "a name is longer than 64 characters",
            ));
        }
        if name.chars().any(|c| c.is_control() || is_bidi_control(c)) {
            return Err(NameError::new(
                ErrorCode::InvalidProfile,
                "a name holds control characters",
            ));
        }
        Ok(Self(name.to_owned()))
    }
}

/// A profile's free text: at most 255 characters; line breaks allowed, other control
/// characters not.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bio(String);
text_newtype!(Bio);

impl Bio {
    pub const MAX_CHARS: usize = 255;

    pub fn parse(input: &str) -> Result<Self, NameError> {
        let bio = input.trim();
        if bio.chars().count() > Self::MAX_CHARS {
            return Err(NameError::new(
                ErrorCode::InvalidProfile,
                "bio is longer than 255 characters",
            ));
        }
        if bio.chars().any(|c| (c.is_control() && c != '\n') || is_bidi_control(c)) {
            return Err(NameError::new(
                ErrorCode::InvalidProfile,
                "bio holds control characters",
            ));
        }
        Ok(Self(bio.to_owned()))
    }
}

/// A password as typed, before hashing. Kept out of `Debug` output and logs.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Length rules (in characters); long passphrases are welcome, unbounded input is not.
    pub const MIN_CHARS: usize = 10;
    pub const MAX_CHARS: usize = 256;

    /// Checks a new password: long enough, not absurdly long, and not the username.
    pub fn new_for(input: &str, username: &Username) -> Result<Self, NameError> {
        let chars = input.chars().count();
        if chars < Self::MIN_CHARS {
            return Err(NameError::new(
                ErrorCode::WeakPassword,
                "password must be at least 10 characters",
            ));
        }
        if chars > Self::MAX_CHARS {
            return Err(NameError::new(
                ErrorCode::WeakPassword,
                "password must be at most 256 characters",
            ));
        }
        if input.to_ascii_lowercase().contains(&username.key()) {
            return Err(NameError::new(
                ErrorCode::WeakPassword,
                "password must not contain the username",
            ));
        }
        Ok(Self(input.to_owned()))
    }

    /// A password offered at log-in: not checked for strength (rules may have changed since
    /// it was set), only bounded, so hashing cost stays bounded.
    pub fn offered(input: &str) -> Result<Self, NameError> {
        if input.is_empty() || input.chars().count() > Self::MAX_CHARS {
            return Err(NameError::new(
                ErrorCode::InvalidCredentials,
                "wrong username or password",
            ));
        }
        Ok(Self(input.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// What a user may do beyond chatting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    /// Granted by an operator (command line or configuration), never by the API.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Result<Self, NameError> {
        match s {
            "user" => Ok(Self::User),
            "admin" => Ok(Self::Admin),
            _ => Err(NameError::new(ErrorCode::InvalidArgument, "unknown role")),
        }
    }
}

/// Unicode bidirectional formatting characters: they reorder how text is displayed, so a
/// name holding them could render as a different name.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_keep_their_case_but_are_unique_without_it() {
        let name = Username::parse(" Alice_1 ").unwrap();
        assert_eq!(name.as_str(), "Alice_1");
        assert_eq!(name.key(), "alice_1");
        for bad in ["al", "1abc", "has space", "dash-ed", "ünï", &"a".repeat(33), "guest:x"] {
            assert!(Username::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails_are_checked_for_shape() {
        assert!(Email::parse("ann@example.com").is_ok());
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@example",
            "a b@example.com",
            "a@b@c.d",
            "a@.com",
            "ann@\u{202E}moc.example",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_and_bios_refuse_control_and_bidi_characters() {
        assert!(PersonName::parse("Ann-Marie O'Neil").is_ok());
        assert!(PersonName::parse("  ").is_err());
        assert!(PersonName::parse("evil\u{202E}nimda").is_err());
        assert!(PersonName::parse("nul\0").is_err());
        assert!(Bio::parse("line one\nline two").is_ok());
        assert!(Bio::parse(&"x".repeat(255)).is_ok());
        assert!(Bio::parse(&"x".repeat(256)).is_err());
        assert!(Bio::parse("tab\tbio").is_err());
    }

    #[test]
    fn passwords_need_length_and_must_not_contain_the_username() {
        let user = Username::parse("Alice").unwrap();
        assert!(Password::new_for("correct horse battery", &user).is_ok());
        assert!(Password::new_for("short", &user).is_err());
        assert!(Password::new_for("my-ALICE-password", &user).is_err());
        assert!(Password::new_for(&"x".repeat(257), &user).is_err());
        assert!(Password::offered("short").is_ok());
        assert!(Password::offered("").is_err());
        assert_eq!(format!("{:?}", Password::offered("secret").unwrap()), "Password(***)");
    }
}
