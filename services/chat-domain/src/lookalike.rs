//! Names that cannot pass for someone else's.
//!
//! Two checks, both for a name someone is choosing now:
//! * [`check_new_display_name`]: no invisible characters (zero-width spaces, joiners, soft
//!   hyphens, bidirectional formatting, fillers), no space but the plain one, and letters of
//!   one script only (UTS #39 "single script", where Japanese may mix Han and kana), so
//!   `bоb` with a Cyrillic `о` is refused outright;
//! * [`skeleton_keys`]: the UTS #39 confusable skeleton with case folded. Two names that
//!   share a key look alike (`b0b`, `B0B`, `bob`; `a1ice`, `AIice`, `alice`; `rnallory`,
//!   `mallory`), so the store refuses a guest name or a new username that shares a key
//!   with a registered username.
//!
//! These are not part of [`DisplayName::parse`]: stored names are read back through it,
//! and a name accepted before these rules existed must still read as valid. Usernames need
//! only the skeleton: [`crate::Username`] allows nothing but ASCII letters, digits and `_`.

use crate::error::ErrorCode;
use crate::names::{DisplayName, NameError};
use unicode_security::general_security_profile::IdentifierType;
use unicode_security::{GeneralSecurityProfile, MixedScript, skeleton};

/// Refuses a display name someone is choosing now if it could pass for another: see the
/// module's documentation.
pub fn check_new_display_name(name: &DisplayName) -> Result<(), NameError> {
    let mut previous = None;
    for c in name.as_str().chars() {
        if is_invisible(c, previous) {
            return Err(NameError::new(
                ErrorCode::InvalidName,
                "name holds invisible or formatting characters",
            ));
        }
        previous = Some(c);
    }
    if !name.as_str().is_single_script() {
        return Err(NameError::new(
            ErrorCode::InvalidName,
            "name mixes letters of different scripts",
        ));
    }
    Ok(())
}

/// Whether `c` (after `previous`) shows as nothing, or as a space a reader cannot tell from
/// another: the default-ignorable code points (U+200B–U+200F, U+2060–U+2064, U+FEFF, U+00AD,
/// U+3164 …), every space but U+0020, and the blank braille pattern. An emoji's variation
/// selector (U+FE0E, U+FE0F) is allowed right after a symbol, where it picks the emoji's
/// style and cannot hide inside a word.
fn is_invisible(c: char, previous: Option<char>) -> bool {
    if c == ' ' {
        return false;
    }
    if matches!(c, '\u{FE0E}' | '\u{FE0F}') {
        return !previous.is_some_and(|p| !p.is_ascii() && !p.is_alphanumeric());
    }
    c.is_whitespace() || c == '\u{2800}' || c.identifier_type() == Some(IdentifierType::Default_Ignorable)
}

/// The keys of how a name looks: two names look alike when they share one. A key is the
/// UTS #39 skeleton, lowercased, and the skeleton again: the skeleton alone keeps case (`0`
/// becomes `O`, `1` and `I` become `l`), and usernames are unique regardless of case, so `b0b`
/// must meet `bob`: `b0b` → `bOb` → `bob`. There are two keys, of the name as typed and of
/// it lowercased first, because the skeleton of a capital `I` is `l` but that of `i` is `i`:
/// `AIice` looks like `alice` as typed, while `B0B_SMITH` looks like `bob_smith` only
/// lowercased.
pub fn skeleton_keys(name: &str) -> [String; 2] {
    [key(name), key(&name.to_lowercase())]
}

fn key(name: &str) -> String {
    let once: String = skeleton(name).collect();
    skeleton(&once.to_lowercase()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str) -> Result<(), NameError> {
        check_new_display_name(&DisplayName::parse(name).unwrap())
    }

    #[test]
    fn invisible_and_formatting_characters_are_refused() {
        for name in [
            "bob\u{200B}",
            "b\u{200B}ob",
            "b\u{200C}ob",
            "b\u{200D}ob",
            "b\u{2060}ob",
            "b\u{FEFF}ob",
            "b\u{00AD}ob",
            "b\u{034F}ob",
            "bob\u{202E}",
            "b\u{2066}ob",
            "\u{3164}bob",
            "bob\u{E0041}",
            "bo\u{FE0F}b",
            "bob\u{00A0}smith",
            "bob\u{2003}smith",
            "bob\u{3000}smith",
            "bob\u{2028}smith",
            "\u{2800}",
        ] {
            let refused = check(name).unwrap_err();
            assert_eq!(refused.code(), ErrorCode::InvalidName, "{name:?}");
        }
    }

    #[test]
    fn mixed_scripts_are_refused() {
        // Latin with one Cyrillic letter; with one Greek letter; Cyrillic with a Latin one.
        for name in ["b\u{043E}b", "\u{0430}lice", "\u{03BF}scar", "\u{0434}a\u{0448}a"] {
            assert!(check(name).is_err(), "{name:?}");
        }
    }

    #[test]
    fn names_in_one_script_of_any_kind_pass() {
        for name in [
            "Ann",
            "Ann-Marie O'Neil 2",
            "José Álvarez",
            "Дмитрий",
            "Ελένη",
            "山田太郎",
            "やまだ たろう",
            "山田たろう",
            "김민준",
            "محمد",
            "דוד",
            "Nguyễn Văn An",
            "Ann ❤️",
            "Ann ☺\u{FE0E}",
        ] {
            assert_eq!(check(name), Ok(()), "{name:?}");
        }
    }

    #[test]
    fn look_alikes_share_a_key() {
        let meet = |a: &str, b: &str| {
            let (a, b) = (skeleton_keys(a), skeleton_keys(b));
            a.iter().any(|k| b.contains(k))
        };
        let same = |a: &str, b: &str| assert!(meet(a, b), "{a} and {b}");
        same("bob", "b0b");
        same("bob", "B0B");
        same("bob", "BOB");
        same("alice", "a1ice");
        same("alice", "AIice");
        same("mallory", "rnallory");
        same("bob_smith", "B0B_SMITH");
        same("Smith", "SMITH");
        // A Cyrillic о and а, a Greek ο.
        same("bob", "b\u{043E}b");
        same("alice", "\u{0430}lice");
        same("oscar", "\u{03BF}scar");
        // Invisible characters vanish from the skeleton.
        same("bob", "b\u{200B}ob");
        let differ = |a: &str, b: &str| assert!(!meet(a, b), "{a} and {b}");
        differ("bob", "rob");
        differ("alice", "alicia");
        differ("bob", "bo b");
    }
}
