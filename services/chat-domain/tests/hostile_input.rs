//! Property tests of everything that parses what a client sends: websocket frames, every
//! validated value, and upload sniffing. Hostile input must never panic, must get the
//! documented error code (`docs/protocol.md` §2, §6, §7), and whatever is accepted must obey
//! the documented rules and parse again to itself.
//!
//! Each property runs `PROPTEST_CASES` cases (2000 unless the variable says otherwise).

use chat_domain::error::ErrorCode;
use chat_domain::protocol::ClientFrame;
use chat_domain::upload::{ImageType, UploadId, sniff_image};
use chat_domain::{
    Bio, ClientMsgId, DisplayName, Email, MessageText, Password, PersonName, RoomName, UserId, Username,
};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Enough cases to find edge cases, few enough that the crate's tests stay fast in debug.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    ProptestConfig::with_cases(cases)
}

/// The characters attackers reach for: controls, NUL, bidi overrides and isolates, zero-width
/// and BOM, line and paragraph separators, SQL and path metacharacters, quotes and escapes.
const HOSTILE_CHARS: &str = concat!(
    "\0\u{1}\u{7}\u{8}\t\n\r\u{b}\u{c}\u{1b}\u{7f}\u{80}\u{85}\u{9f}\u{a0}",
    "\u{200b}\u{200d}\u{200e}\u{200f}\u{061c}\u{202a}\u{202b}\u{202c}\u{202d}\u{202e}",
    "\u{2066}\u{2067}\u{2068}\u{2069}\u{2028}\u{2029}\u{feff}\u{fffd}\u{10ffff}\u{1f600}",
    "éİß '\";-%_\\/.:@<>&{}[]aZ09",
);

/// Strings built mostly from [`HOSTILE_CHARS`], with arbitrary characters mixed in.
fn hostile_string(max: usize) -> impl Strategy<Value = String> {
    let ch = prop_oneof![
        4 => proptest::sample::select(HOSTILE_CHARS.chars().collect::<Vec<_>>()),
        1 => any::<char>(),
    ];
    proptest::collection::vec(ch, 0..=max).prop_map(|cs| cs.into_iter().collect())
}

/// Any string a client might send: arbitrary, hostile, or near a rule's edge.
fn any_text(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        hostile_string(max),
        "[A-Za-z0-9_.:@ -]{0,80}",
        // Around the length bounds (32, 64, 255, 256, 4000 …).
        (proptest::sample::select(vec!['a', 'é', '😀', ' ']), 0usize..4100)
            .prop_map(|(c, n)| std::iter::repeat_n(c, n).collect()),
    ]
}

/// Arbitrary JSON: every type, huge and negative numbers, and nested arrays and objects.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(Value::from),
        proptest::sample::select(vec![0i64, -1, 1, i64::MIN, i64::MAX]).prop_map(Value::from),
        Just(json!(u64::MAX)),
        Just(json!(1e300)),
        hostile_string(16).prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(hostile_string(6), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A field of a frame: absent, a plausible valid value, a hostile string, or any JSON.
fn field(valid: &'static [&'static str]) -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        2 => Just(None),
        3 => proptest::sample::select(valid).prop_map(|v| Some(json!(v))),
        2 => any_text(80).prop_map(|s| Some(Value::String(s))),
        2 => any_json().prop_map(Some),
    ]
}

fn number_field(valid: &'static [i64]) -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        2 => Just(None),
        2 => proptest::sample::select(valid).prop_map(|v| Some(json!(v))),
        2 => any_json().prop_map(Some),
    ]
}

/// A frame-shaped object: every known field present or not, valid or not, plus junk fields.
fn structured_frame() -> impl Strategy<Value = Value> {
    (
        field(&["join", "leave", "send", "typing", "JOIN", "dance", ""]),
        field(&["lobby", "General", "a.b_c-1", "-x", "no spaces", "ünï"]),
        field(&["hello", " ", "", "nul\u{0}", "\u{202e}bidi"]),
        field(&["c-1", "0190c3e4-7b1a-7cc0-9a55-3f8e0b0d3c11", "a b", ""]),
        number_field(&[0, 1, 41, -1]),
        field(&["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "x"]),
        number_field(&[1, 7, 0, -3, i64::MAX]),
        proptest::collection::btree_map(hostile_string(8), any_json(), 0..3),
    )
        .prop_map(|(ty, room, text, id, since, tp, attachment, extra)| {
            let mut object: Map<String, Value> = extra.into_iter().collect();
            for (key, value) in [
                ("type", ty),
                ("room", room),
                ("text", text),
                ("client_msg_id", id),
                ("since_seq", since),
                ("traceparent", tp),
                ("attachment_id", attachment),
            ] {
                match value {
                    Some(v) => object.insert(key.to_owned(), v),
                    None => object.remove(key),
                };
            }
            Value::Object(object)
        })
}

/// What `docs/protocol.md` says a frame should produce: `Ok(())` or the error code, with the
/// `ref` it carries. Written from the documented rules, independently of the parser.
fn expected_outcome(frame: &Value) -> Result<(), (ErrorCode, Option<String>)> {
    let Some(object) = frame.as_object() else {
        return Err((ErrorCode::InvalidJson, None));
    };
    // A known field of the wrong JSON type is `invalid_json`; `null` counts as absent.
    let string = |key: &str| match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(()),
    };
    let (ty, room, text, id, tp) = match (
        string("type"),
        string("room"),
        string("text"),
        string("client_msg_id"),
        string("traceparent"),
    ) {
        (Ok(a), Ok(b), Ok(c), Ok(d), Ok(e)) => (a, b, c, d, e),
        _ => return Err((ErrorCode::InvalidJson, None)),
    };
    let _ = tp;
    let since_ok = match object.get("since_seq") {
        None | Some(Value::Null) => true,
        Some(v) => v.as_u64().is_some(),
    };
    let attachment = match object.get("attachment_id") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or(()),
    };
    let Ok(attachment) = attachment else {
        return Err((ErrorCode::InvalidJson, None));
    };
    if !since_ok {
        return Err((ErrorCode::InvalidJson, None));
    }
    let reference = id.clone().or_else(|| room.clone());
    let fail = |code| Err((code, reference.clone()));
    let Some(ty) = ty else {
        return fail(ErrorCode::MissingField);
    };
    if !matches!(ty.as_str(), "join" | "leave" | "send" | "typing") {
        return fail(ErrorCode::UnknownType);
    }
    let Some(room) = room.as_deref() else {
        return fail(ErrorCode::MissingField);
    };
    if !room_name_is_valid(room) {
        return fail(ErrorCode::InvalidRoom);
    }
    if ty != "send" {
        return Ok(());
    }
    let Some(id) = id.as_deref() else {
        return fail(ErrorCode::MissingField);
    };
    if !client_msg_id_is_valid(id) {
        return fail(ErrorCode::InvalidClientMsgId);
    }
    if attachment.is_some_and(|a| a <= 0) {
        return fail(ErrorCode::InvalidArgument);
    }
    match (text, attachment) {
        (None, None) => fail(ErrorCode::MissingField),
        (Some(text), None) if !text_is_valid(&text, false) => fail(ErrorCode::InvalidText),
        (Some(text), Some(_)) if !text_is_valid(&text, true) => fail(ErrorCode::InvalidText),
        _ => Ok(()),
    }
}

/// §7: 1–64 of `a-z 0-9 _ . -` after lowercasing, the first a letter or digit.
fn room_name_is_valid(s: &str) -> bool {
    let mut chars = s.chars();
    (1..=64).contains(&s.chars().count())
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// §7: 1–64 of `A-Z a-z 0-9 _ . : -`.
fn client_msg_id_is_valid(s: &str) -> bool {
    (1..=64).contains(&s.chars().count()) && s.chars().all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c))
}

/// §7: at most 4000 scalar values, no control characters but tab, LF and CR, and (unless
/// it is an image's caption) not empty or only white space.
fn text_is_valid(s: &str, caption: bool) -> bool {
    (caption || !s.trim().is_empty())
        && s.chars().count() <= 4000
        && !s.chars().any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// Every refusal is one of the codes a frame can get, with a message for a person.
fn check_refusal(input: &str) -> Result<(), TestCaseError> {
    if let Err(e) = ClientFrame::parse(input) {
        prop_assert!(
            matches!(
                e.code,
                ErrorCode::InvalidJson
                    | ErrorCode::UnknownType
                    | ErrorCode::MissingField
                    | ErrorCode::InvalidRoom
                    | ErrorCode::InvalidText
                    | ErrorCode::InvalidClientMsgId
                    | ErrorCode::InvalidArgument
            ),
            "unexpected code {:?}",
            e.code
        );
        prop_assert!(!e.message.is_empty());
        // The error frame is always valid JSON, whatever the frame held.
        let frame: Value = serde_json::from_slice(&e.to_frame()).expect("error frames are JSON");
        prop_assert_eq!(&frame["type"], "error");
        prop_assert_eq!(&frame["code"], e.code.as_str());
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_strings_never_panic_the_frame_parser(s in any_text(200)) {
        check_refusal(&s)?;
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_frame_parser(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        // The gateway only ever sees valid UTF-8 text frames; anything else is decoded lossily here.
        check_refusal(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn arbitrary_json_gets_a_precise_code(value in any_json()) {
        let input = value.to_string();
        check_refusal(&input)?;
        if let Err((code, _)) = expected_outcome(&value) {
            prop_assert_eq!(ClientFrame::parse(&input).unwrap_err().code, code);
        }
    }

    #[test]
    fn frame_shaped_json_gets_exactly_the_documented_outcome(frame in structured_frame()) {
        let input = frame.to_string();
        check_refusal(&input)?;
        let parsed = ClientFrame::parse(&input);
        match (expected_outcome(&frame), parsed) {
            (Ok(()), Ok(parsed)) => {
                // What was accepted is what was sent, normalised as documented.
                let room = frame["room"].as_str().unwrap();
                match parsed {
                    ClientFrame::Join { room: r, since_seq } => {
                        prop_assert_eq!(r.as_str(), room.to_ascii_lowercase());
                        prop_assert_eq!(since_seq, frame.get("since_seq").and_then(Value::as_u64));
                    }
                    ClientFrame::Leave { room: r } | ClientFrame::Typing { room: r } => {
                        prop_assert_eq!(r.as_str(), room.to_ascii_lowercase())
                    }
                    ClientFrame::Send { room: r, body, client_msg_id, traceparent, .. } => {
                        prop_assert_eq!(r.as_str(), room.to_ascii_lowercase());
                        prop_assert_eq!(body.text.as_str(), frame["text"].as_str().unwrap_or(""));
                        prop_assert_eq!(client_msg_id.as_str(), frame["client_msg_id"].as_str().unwrap());
                        prop_assert_eq!(body.attachment.map(UploadId::get), frame.get("attachment_id").and_then(Value::as_i64));
                        if let Some(tp) = traceparent {
                            prop_assert_eq!(Some(tp.as_str()), frame["traceparent"].as_str());
                        }
                    }
                    ClientFrame::Change { .. } | ClientFrame::Read { .. } | ClientFrame::Ping => {
                        prop_assert!(false, "no change, read or ping frame is generated")
                    }
                }
            }
            (Err((code, reference)), Err(e)) => {
                prop_assert_eq!(e.code, code, "{}", e.message);
                prop_assert_eq!(e.reference, reference);
            }
            (expected, got) => prop_assert!(false, "expected {:?}, got {:?} for {}", expected, got, input),
        }
    }

    #[test]
    fn a_valid_frame_with_hostile_bytes_spliced_in_never_panics(
        at in any::<proptest::sample::Index>(),
        junk in hostile_string(8),
    ) {
        let frame = r#"{"type":"send","room":"lobby","text":"hi","client_msg_id":"c-1","since_seq":3}"#;
        let mut cut = at.index(frame.len() + 1);
        while !frame.is_char_boundary(cut) {
            cut -= 1;
        }
        check_refusal(&format!("{}{}{}", &frame[..cut], junk, &frame[cut..]))?;
    }

    #[test]
    fn room_names_follow_the_rules_and_round_trip(s in any_text(80)) {
        let parsed = RoomName::parse(&s);
        prop_assert_eq!(parsed.is_ok(), room_name_is_valid(&s), "{:?}", s);
        if let Ok(name) = parsed {
            prop_assert_eq!(name.as_str(), s.to_ascii_lowercase());
            prop_assert_eq!(RoomName::parse(name.as_str()), Ok(name));
        }
    }

    #[test]
    fn message_text_follows_the_rules_and_is_kept_exactly(s in any_text(4100)) {
        let parsed = MessageText::parse(s.clone());
        prop_assert_eq!(parsed.is_ok(), text_is_valid(&s, false));
        if let Ok(text) = parsed {
            prop_assert_eq!(text.as_str(), s.as_str());
            prop_assert_eq!(MessageText::parse(text.as_str().to_owned()), Ok(text));
        }
        let caption = MessageText::caption(s.clone());
        prop_assert_eq!(caption.is_ok(), text_is_valid(&s, true));
        if let Ok(caption) = caption {
            prop_assert_eq!(caption.as_str(), s.as_str());
        }
    }

    #[test]
    fn client_msg_ids_follow_the_rules_and_round_trip(s in any_text(80)) {
        let parsed = ClientMsgId::parse(&s);
        prop_assert_eq!(parsed.is_ok(), client_msg_id_is_valid(&s));
        if let Ok(id) = parsed {
            prop_assert_eq!(id.as_str(), s.as_str());
            prop_assert_eq!(ClientMsgId::parse(id.as_str()), Ok(id));
        }
    }

    #[test]
    fn display_names_are_trimmed_bounded_and_free_of_controls(s in any_text(40)) {
        let parsed = DisplayName::parse(&s);
        let trimmed = s.trim();
        let valid = (1..=32).contains(&trimmed.chars().count()) && !trimmed.chars().any(char::is_control);
        prop_assert_eq!(parsed.is_ok(), valid, "{:?}", s);
        if let Ok(name) = parsed {
            prop_assert_eq!(name.as_str(), trimmed);
            prop_assert_eq!(DisplayName::parse(name.as_str()), Ok(name));
        }
    }

    #[test]
    fn user_ids_are_printable_ascii(s in any_text(140)) {
        let parsed = UserId::parse(&s);
        let valid = (1..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic());
        prop_assert_eq!(parsed.is_ok(), valid);
        if let Ok(id) = parsed {
            prop_assert_eq!(UserId::parse(id.as_str()), Ok(id));
        }
    }

    #[test]
    fn usernames_follow_the_rules_and_round_trip(s in prop_oneof![any_text(40), "[ ]?[A-Za-z0-9_]{2,34}[ ]?"]) {
        let parsed = Username::parse(&s);
        let t = s.trim();
        let valid = (3..=32).contains(&t.chars().count())
            && t.starts_with(|c: char| c.is_ascii_alphabetic())
            && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        prop_assert_eq!(parsed.is_ok(), valid, "{:?}", s);
        if let Ok(name) = parsed {
            prop_assert_eq!(name.as_str(), t);
            prop_assert_eq!(name.key(), t.to_ascii_lowercase());
            prop_assert_eq!(Username::parse(name.as_str()), Ok(name));
        }
    }

    #[test]
    fn emails_are_shaped_like_addresses_and_round_trip(
        s in prop_oneof![any_text(40), "[a-z%_'\\\\.+-]{0,8}@[a-z.-]{0,12}", "[ ]?[a-z]{1,250}@[a-z]{1,4}\\.[a-z]{1,3}"],
    ) {
        if let Ok(email) = Email::parse(&s) {
            let e = email.as_str();
            prop_assert_eq!(e, s.trim());
            prop_assert!(!e.is_empty() && e.len() <= 254);
            prop_assert_eq!(e.matches('@').count(), 1);
            let (local, domain) = e.split_once('@').unwrap();
            prop_assert!(!local.is_empty());
            prop_assert!(domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.'));
            prop_assert!(!e.chars().any(|c| c.is_whitespace() || c.is_control()));
            prop_assert_eq!(Email::parse(e), Ok(email.clone()));
        }
    }

    #[test]
    fn person_names_refuse_controls_and_bidi_and_round_trip(s in any_text(70)) {
        let parsed = PersonName::parse(&s);
        let t = s.trim();
        let valid = (1..=64).contains(&t.chars().count()) && !t.chars().any(|c| c.is_control() || is_bidi_control(c));
        prop_assert_eq!(parsed.is_ok(), valid, "{:?}", s);
        if let Ok(name) = parsed {
            prop_assert_eq!(name.as_str(), t);
            prop_assert_eq!(PersonName::parse(name.as_str()), Ok(name));
        }
    }

    #[test]
    fn bios_allow_line_breaks_only_and_round_trip(s in any_text(300)) {
        let parsed = Bio::parse(&s);
        let t = s.trim();
        let valid = t.chars().count() <= 255
            && !t.chars().any(|c| (c.is_control() && c != '\n') || is_bidi_control(c));
        prop_assert_eq!(parsed.is_ok(), valid, "{:?}", s);
        if let Ok(bio) = parsed {
            prop_assert_eq!(bio.as_str(), t);
            prop_assert_eq!(Bio::parse(bio.as_str()), Ok(bio));
        }
    }

    #[test]
    fn passwords_are_bounded_and_never_contain_the_username(
        s in any_text(300),
        user in "[A-Za-z][A-Za-z0-9_]{2,8}",
    ) {
        let username = Username::parse(&user).unwrap();
        let chars = s.chars().count();
        match Password::new_for(&s, &username) {
            Ok(p) => {
                prop_assert_eq!(p.expose(), s.as_str());
                prop_assert!((10..=256).contains(&chars));
                prop_assert!(!s.to_ascii_lowercase().contains(&username.key()));
                prop_assert_eq!(format!("{p:?}"), "Password(***)");
            }
            Err(_) => prop_assert!(
                !(10..=256).contains(&chars) || s.to_ascii_lowercase().contains(&username.key())
            ),
        }
        prop_assert_eq!(Password::offered(&s).is_ok(), (1..=256).contains(&chars));
    }

    #[test]
    fn sniffing_arbitrary_bytes_never_panics_and_names_only_real_magic(
        bytes in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        if let Some(kind) = sniff_image(&bytes) {
            prop_assert!(has_magic(&bytes, kind), "{:?} is not a {:?}", bytes, kind);
        }
    }

    #[test]
    fn real_magic_is_recognised_whatever_follows(
        kind in proptest::sample::select(vec![ImageType::Png, ImageType::Jpeg, ImageType::Gif, ImageType::Webp]),
        size in any::<[u8; 4]>(),
        rest in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut bytes = match kind {
            ImageType::Png => b"\x89PNG\r\n\x1a\n".to_vec(),
            ImageType::Jpeg => b"\xff\xd8\xff".to_vec(),
            ImageType::Gif => b"GIF89a".to_vec(),
            ImageType::Webp => [&b"RIFF"[..], &size, b"WEBP"].concat(),
        };
        bytes.extend_from_slice(&rest);
        prop_assert_eq!(sniff_image(&bytes), Some(kind));
        prop_assert_eq!(ImageType::from_mime(kind.mime()), Some(kind));
    }

    #[test]
    fn a_damaged_magic_is_not_that_type(
        kind in proptest::sample::select(vec![ImageType::Png, ImageType::Jpeg, ImageType::Gif, ImageType::Webp]),
        at in any::<proptest::sample::Index>(),
        flip in 1u8..=255,
        rest in proptest::collection::vec(any::<u8>(), 0..16),
    ) {
        let (mut bytes, magic_at): (Vec<u8>, Vec<usize>) = match kind {
            ImageType::Png => (b"\x89PNG\r\n\x1a\n".to_vec(), (0..8).collect()),
            ImageType::Jpeg => (b"\xff\xd8\xff".to_vec(), (0..3).collect()),
            ImageType::Gif => (b"GIF89a".to_vec(), (0..6).collect()),
            ImageType::Webp => (b"RIFF\0\0\0\0WEBP".to_vec(), (0..4).chain(8..12).collect()),
        };
        let i = *at.get(&magic_at);
        bytes[i] ^= flip;
        bytes.extend_from_slice(&rest);
        // Only a flip that happens to make another signature of the type (GIF89a → GIF87a)
        // may still be recognised as it.
        prop_assert_eq!(sniff_image(&bytes) == Some(kind), has_magic(&bytes, kind), "{:?}", bytes);
        if let Some(other) = sniff_image(&bytes) {
            prop_assert!(has_magic(&bytes, other));
        }
    }

    #[test]
    fn only_the_exact_mime_types_are_served_back(s in any_text(20)) {
        if let Some(kind) = ImageType::from_mime(&s) {
            prop_assert_eq!(kind.mime(), s.as_str());
        }
    }
}

/// The signatures, as the formats define them (PNG spec §5.2, JFIF SOI + marker, GIF87a/89a,
/// RIFF container with the WEBP form type).
fn has_magic(bytes: &[u8], kind: ImageType) -> bool {
    match kind {
        ImageType::Png => bytes.starts_with(&[0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a]),
        ImageType::Jpeg => bytes.starts_with(&[0xff, 0xd8, 0xff]),
        ImageType::Gif => bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a"),
        ImageType::Webp => bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP",
    }
}

#[test]
fn deeply_nested_json_is_refused_without_overflowing_the_stack() {
    for depth in [200, 10_000, 1_000_000] {
        let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let objects = format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
        // Not an object; an object whose only field is unknown, so `type` is missing.
        assert_eq!(ClientFrame::parse(&arrays).unwrap_err().code, ErrorCode::InvalidJson);
        assert_eq!(ClientFrame::parse(&objects).unwrap_err().code, ErrorCode::MissingField);
        for inner in [&arrays, &objects] {
            // Inside an unknown field it is valid JSON, skipped without recursion: ignored,
            // as unknown fields are. (The frame size limit bounds it on the wire.)
            let extra = format!(r#"{{"type":"join","room":"lobby","extra":{inner}}}"#);
            assert!(matches!(ClientFrame::parse(&extra), Ok(ClientFrame::Join { .. })));
            // Inside a known field it is the wrong type.
            let room = format!(r#"{{"type":"join","room":{inner}}}"#);
            assert_eq!(ClientFrame::parse(&room).unwrap_err().code, ErrorCode::InvalidJson);
        }
        // Unclosed nesting, as a truncated frame would be.
        assert_eq!(
            ClientFrame::parse(&"[".repeat(depth)).unwrap_err().code,
            ErrorCode::InvalidJson
        );
    }
}

#[test]
fn huge_numbers_are_the_wrong_type_not_a_crash() {
    for since in [
        "18446744073709551616",
        "1e400",
        "-1",
        "1.5",
        "-0",
        "1e3",
        "99999999999999999999999999",
    ] {
        let frame = format!(r#"{{"type":"join","room":"lobby","since_seq":{since}}}"#);
        assert_eq!(
            ClientFrame::parse(&frame).unwrap_err().code,
            ErrorCode::InvalidJson,
            "{since}"
        );
    }
    let max = format!(r#"{{"type":"join","room":"lobby","since_seq":{}}}"#, u64::MAX);
    assert!(matches!(
        ClientFrame::parse(&max),
        Ok(ClientFrame::Join {
            since_seq: Some(u64::MAX),
            ..
        })
    ));
    for id in ["9223372036854775808", "-9223372036854775809", "1e19", "7.0"] {
        let frame = format!(r#"{{"type":"send","room":"x","client_msg_id":"a","attachment_id":{id}}}"#);
        assert_eq!(
            ClientFrame::parse(&frame).unwrap_err().code,
            ErrorCode::InvalidJson,
            "{id}"
        );
    }
}

#[test]
fn nul_escapes_and_lone_surrogates_are_handled() {
    // `\u0000` decodes to NUL: refused in text and names, never truncated silently.
    let text = r#"{"type":"send","room":"x","text":"a\u0000b","client_msg_id":"c"}"#;
    assert_eq!(ClientFrame::parse(text).unwrap_err().code, ErrorCode::InvalidText);
    let room = r#"{"type":"join","room":"a\u0000b"}"#;
    assert_eq!(ClientFrame::parse(room).unwrap_err().code, ErrorCode::InvalidRoom);
    // A lone surrogate escape is not a Unicode scalar value: not valid JSON text.
    let surrogate = r#"{"type":"send","room":"x","text":"\ud800","client_msg_id":"c"}"#;
    assert_eq!(ClientFrame::parse(surrogate).unwrap_err().code, ErrorCode::InvalidJson);
    // A proper surrogate pair is an emoji, and is text.
    let pair = r#"{"type":"send","room":"x","text":"\ud83d\ude00","client_msg_id":"c"}"#;
    assert!(matches!(ClientFrame::parse(pair), Ok(ClientFrame::Send { body, .. }) if body.text.as_str() == "😀"));
}
