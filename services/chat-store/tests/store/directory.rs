//! The suite's tests of the directory: accounts, sessions, membership, admin, uploads.

use super::*;

// ---------------------------------------------------------------------------------------
// The directory: accounts, sessions, membership, admin, uploads
// ---------------------------------------------------------------------------------------

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// A user id, as the gateway hands the directory one.
fn uid(id: &str) -> UserId {
    UserId::parse(id).unwrap()
}

fn name(name: &str) -> DisplayName {
    DisplayName::parse(name).unwrap()
}

pub(crate) fn new_user(id: &str, username: &str) -> chat_store::NewUser {
    chat_store::NewUser {
        id: uid(id),
        username: chat_domain::Username::parse(username).unwrap(),
        email: chat_domain::Email::parse(&format!("{username}@example.com")).unwrap(),
        first_name: chat_domain::PersonName::parse("Ann").unwrap(),
        last_name: chat_domain::PersonName::parse("Lee").unwrap(),
        password_hash: "$argon2id$fake".into(),
        role: chat_domain::Role::User,
        now_ms: now(),
        adopt_guest: None,
    }
}

fn session(id: &str, user_id: &str, expires_at_ms: i64) -> chat_store::SessionRecord {
    chat_store::SessionRecord {
        id: id.into(),
        token_hash: format!("hash-of-{id}"),
        user_id: user_id.into(),
        user_name: "ann".into(),
        guest: false,
        created_at_ms: now(),
        expires_at_ms,
        user_agent: "test".into(),
    }
}

pub(crate) async fn accounts_and_sessions(db: &TestDb) {
    let dir = db.database().await.directory;
    let ann = dir.create_user(&new_user("u:1", "Ann_L")).await.unwrap();
    assert_eq!((ann.username.as_str(), ann.role), ("Ann_L", chat_domain::Role::User));
    let err = dir.create_user(&new_user("u:2", "ann_l")).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(dir.user_by_username("ANN_L").await.unwrap().unwrap().id, "u:1");
    assert!(dir.user_by_username("bob").await.unwrap().is_none());

    let update = chat_store::ProfileUpdate {
        bio: Some(chat_domain::Bio::parse("hello\nworld").unwrap()),
        avatar_id: Some(Some(5)),
        ..Default::default()
    };
    let updated = dir.update_profile(&uid("u:1"), &update).await.unwrap().unwrap();
    assert_eq!(
        (updated.bio.as_str(), updated.avatar_id, updated.email.as_str()),
        ("hello\nworld", Some(5), "Ann_L@example.com")
    );
    let cleared = chat_store::ProfileUpdate {
        avatar_id: Some(None),
        ..Default::default()
    };
    assert_eq!(
        dir.update_profile(&uid("u:1"), &cleared)
            .await
            .unwrap()
            .unwrap()
            .avatar_id,
        None
    );

    dir.create_session(&session("s1", "u:1", now() + 60_000)).await.unwrap();
    dir.create_session(&session("s2", "u:1", now() + 60_000)).await.unwrap();
    dir.create_session(&session("old", "u:1", now() - 1)).await.unwrap();
    let found = dir.session("hash-of-s1", now()).await.unwrap().unwrap();
    assert_eq!((found.name.as_str(), found.disabled), ("Ann_L", false));
    assert!(dir.session("hash-of-old", now()).await.unwrap().is_none(), "expired");
    assert_eq!(dir.sessions_of(&uid("u:1"), now(), 10).await.unwrap().len(), 2);
    assert!(dir.revoke_session(&uid("u:1"), "s1").await.unwrap());
    assert!(
        !dir.revoke_session(&uid("u:2"), "s2").await.unwrap(),
        "only the owner revokes"
    );
    assert!(dir.session("hash-of-s1", now()).await.unwrap().is_none(), "revoked");
    assert_eq!(dir.purge_expired_sessions(now()).await.unwrap(), 1);

    assert!(dir.set_role("ann_l", chat_domain::Role::Admin).await.unwrap());
    assert_eq!(
        dir.session("hash-of-s2", now()).await.unwrap().unwrap().role,
        chat_domain::Role::Admin
    );
    assert!(dir.set_disabled(&uid("u:1"), true, now()).await.unwrap());
    assert!(
        dir.session("hash-of-s2", now()).await.unwrap().is_none(),
        "disabling ends sessions"
    );
    assert!(dir.user_by_id(&uid("u:1")).await.unwrap().unwrap().disabled);

    dir.create_user(&new_user("u:3", "bob")).await.unwrap();
    let search = chat_store::Search {
        query: Some("B"),
        after: None,
        limit: 10,
    };
    let found: Vec<String> = dir
        .search_users(&search)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(found, ["bob"]);
    let page = chat_store::Search {
        query: None,
        after: Some("ann_l"),
        limit: 10,
    };
    assert_eq!(dir.search_users(&page).await.unwrap().len(), 1);
}

pub(crate) async fn membership_and_panel_counts(db: &TestDb) {
    let database = db.database().await;
    let (store, dir) = (database.messages, database.directory);
    for name in ["alpha", "beta"] {
        store.enter_room(&room(name)).await.unwrap();
    }
    use chat_store::Entered;
    assert_eq!(
        dir.enter(&uid("ann"), &name("Ann"), &room("alpha"), now())
            .await
            .unwrap(),
        Entered::Joined
    );
    assert_eq!(
        dir.enter(&uid("ann"), &name("Ann"), &room("alpha"), now())
            .await
            .unwrap(),
        Entered::AlreadyMember
    );
    assert_eq!(
        dir.enter(&uid("ann"), &name("Ann"), &room("beta"), now())
            .await
            .unwrap(),
        Entered::Joined
    );
    assert_eq!(
        dir.enter(&uid("ann"), &name("Ann"), &room("nope"), now())
            .await
            .unwrap(),
        Entered::RoomNotFound
    );
    assert_eq!(
        dir.enter(&uid("bob"), &name("Bob"), &room("alpha"), now())
            .await
            .unwrap(),
        Entered::Joined
    );
    store
        .append_batch(&[
            msg("alpha", "ann", "1", "a"),
            msg("alpha", "bob", "2", "b"),
            msg("alpha", "bob", "3", "c"),
        ])
        .await
        .unwrap();
    dir.mark_read(&uid("ann"), &room("alpha"), 1).await.unwrap();
    dir.mark_read(&uid("ann"), &room("alpha"), 0).await.unwrap(); // never lowers
    let rooms = dir.member_rooms(&uid("ann"), None, 10).await.unwrap();
    let summary: Vec<(&str, u64, u64, bool)> = rooms
        .iter()
        .map(|r| (r.room.as_str(), r.last_seq, r.unread, r.last_activity_ms.is_some()))
        .collect();
    assert_eq!(summary, [("alpha", 3, 2, true), ("beta", 0, 0, false)]);
    // Changes are not unread news; a message that mentions Ann counts as a mention too.
    let mut mentioning = new_message("alpha", "bob", "4", "@ann look");
    mentioning.mentions = vec![author("ann"), author("carl")];
    let mut not_her = new_message("alpha", "bob", "5", "@carl");
    not_her.mentions = vec![author("carl")];
    store
        .append_batch(&[
            change(
                "alpha",
                "bob",
                "r1",
                2,
                chat_domain::Change::React {
                    emoji: chat_domain::Emoji::parse("👍").unwrap(),
                },
                false,
            ),
            NewEvent::Message(mentioning),
            NewEvent::Message(not_her),
        ])
        .await
        .unwrap();
    let alpha = &dir.member_rooms(&uid("ann"), None, 10).await.unwrap()[0];
    assert_eq!((alpha.last_seq, alpha.unread, alpha.mentions), (6, 4, 1));
    dir.mark_read(&uid("ann"), &room("alpha"), 99).await.unwrap(); // capped at the last seq
    let alpha = &dir.member_rooms(&uid("ann"), None, 10).await.unwrap()[0];
    assert_eq!((alpha.last_read_seq, alpha.unread, alpha.mentions), (6, 0, 0));
    assert_eq!(
        dir.member_rooms(&uid("ann"), Some(&room("alpha")), 10)
            .await
            .unwrap()
            .len(),
        1,
        "cursor"
    );
    assert_eq!(
        dir.member_room_names(&uid("ann"), 10).await.unwrap(),
        [room("alpha"), room("beta")],
        "the names a socket watches are the panel's rooms"
    );
    assert_eq!(dir.member_room_names(&uid("ann"), 1).await.unwrap(), [room("alpha")]);
    assert_eq!(dir.room_count(&uid("ann")).await.unwrap(), 2);
    assert_eq!(
        dir.message_count(&uid("bob")).await.unwrap(),
        4,
        "messages, not changes"
    );
    // Last seqs by name, for the gateways' repair sweep; unknown rooms are left out.
    let mut seqs = dir
        .last_seqs(&[room("alpha"), room("nope"), room("beta")])
        .await
        .unwrap();
    seqs.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
    assert_eq!(seqs, [(room("alpha"), 6), (room("beta"), 0)]);
    let many: Vec<RoomName> = (0..1200)
        .map(|i| room(&format!("r{i}")))
        .chain([room("alpha")])
        .collect();
    assert_eq!(
        dir.last_seqs(&many).await.unwrap(),
        [(room("alpha"), 6)],
        "more names than one statement takes"
    );

    // A long-unread room's counts look back UNREAD_WINDOW seqs: a mention before that, and
    // the messages before that, are not counted (the panel shows "99+" well before).
    store.enter_room(&room("gamma")).await.unwrap();
    dir.enter(&uid("ann"), &name("Ann"), &room("gamma"), now())
        .await
        .unwrap();
    let mut old_mention = new_message("gamma", "bob", "0", "@ann long ago");
    old_mention.mentions = vec![author("ann")];
    let filler = (1..=chat_store::UNREAD_WINDOW).map(|i| msg("gamma", "bob", &i.to_string(), "more"));
    let events: Vec<NewEvent> = std::iter::once(NewEvent::Message(old_mention)).chain(filler).collect();
    for chunk in events.chunks(200) {
        store.append_batch(chunk).await.unwrap();
    }
    let gamma = dir.member_rooms(&uid("ann"), Some(&room("beta")), 10).await.unwrap();
    assert_eq!(
        (
            gamma[0].room.as_str(),
            gamma[0].last_seq,
            gamma[0].unread,
            gamma[0].mentions
        ),
        ("gamma", chat_store::UNREAD_WINDOW + 1, chat_store::UNREAD_WINDOW, 0)
    );
    assert!(dir.leave(&uid("ann"), &room("gamma")).await.unwrap());
    let (count, members) = dir.room_members(&room("alpha"), None, 1).await.unwrap();
    assert_eq!((count, members.len(), members[0].user_id.as_str()), (2, 1, "ann"));
    let (_, rest) = dir.room_members(&room("alpha"), Some("ann"), 10).await.unwrap();
    assert_eq!(rest.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["Bob"]);

    assert!(dir.leave(&uid("ann"), &room("beta")).await.unwrap());
    assert!(!dir.leave(&uid("ann"), &room("beta")).await.unwrap());
    assert_eq!(dir.room_count(&uid("ann")).await.unwrap(), 1);
    assert_eq!(
        dir.enter(&uid("ann"), &name("Ann"), &room("beta"), now())
            .await
            .unwrap(),
        Entered::Joined,
        "may come back"
    );
}

pub(crate) async fn mentions_name_registered_members(db: &TestDb) {
    let database = db.database().await;
    let (store, dir) = (database.messages, database.directory);
    store.enter_room(&room("lobby")).await.unwrap();
    for (id, username, member) in [
        ("u:1", "Ann_L", true),
        ("u:2", "bob", true),
        ("u:3", "carl", false),
        ("u:4", "dora", true),
    ] {
        dir.create_user(&new_user(id, username)).await.unwrap();
        if member {
            dir.enter(&uid(id), &name(username), &room("lobby"), now())
                .await
                .unwrap();
        }
    }
    dir.set_disabled(&uid("u:4"), true, now()).await.unwrap();
    let usernames: Vec<chat_domain::Username> = ["BOB", "nobody", "carl", "dora", "ann_l"]
        .iter()
        .map(|u| chat_domain::Username::parse(u).unwrap())
        .collect();
    let found = dir.members_by_username(&room("lobby"), &usernames).await.unwrap();
    assert_eq!(
        found
            .iter()
            .map(|a| (a.id.as_str(), a.name.as_str()))
            .collect::<Vec<_>>(),
        [("u:2", "bob"), ("u:1", "Ann_L")],
        "members only, not disabled, in the order named, any case"
    );
    assert!(dir.members_by_username(&room("lobby"), &[]).await.unwrap().is_empty());
    // Whom presence looks up: every member, disabled or not, in id order, bounded.
    assert_eq!(
        dir.member_ids(&room("lobby"), 10).await.unwrap(),
        [uid("u:1"), uid("u:2"), uid("u:4")]
    );
    assert_eq!(
        dir.member_ids(&room("lobby"), 2).await.unwrap(),
        [uid("u:1"), uid("u:2")]
    );
    assert!(
        dir.members_by_username(&room("nope"), &usernames)
            .await
            .unwrap()
            .is_empty(),
        "no such room"
    );
}

pub(crate) async fn admin_deletes_keep_seqs_and_are_audited(db: &TestDb) {
    let database = db.database().await;
    let (store, dir) = (database.messages, database.directory);
    store.enter_room(&room("lobby")).await.unwrap();
    dir.enter(&uid("ann"), &name("Ann"), &room("lobby"), now())
        .await
        .unwrap();
    let outcomes = store
        .append_batch(&[msg("lobby", "ann", "1", "keep"), msg("lobby", "ann", "2", "spam 50%")])
        .await
        .unwrap();
    let spam = stored(&outcomes[1]);
    let found = dir.search_messages(Some("50%"), None, None, 10).await.unwrap();
    assert_eq!(
        found.iter().map(|m| m.id).collect::<Vec<_>>(),
        [spam.id],
        "% is literal"
    );
    assert!(
        dir.search_messages(Some("5_%"), None, None, 10)
            .await
            .unwrap()
            .is_empty(),
        "_ is literal"
    );

    // An administrator's deletion finds the message by id and is a change to its seq.
    let at = dir.find_message(spam.id).await.unwrap().unwrap();
    assert_eq!((at.room.as_str(), at.seq), ("lobby", 2));
    let delete = |cmid: &str| change("lobby", "admin", cmid, 2, Change::Delete, true);
    let outcomes = store.append_batch(&[delete("d1"), delete("d2")]).await.unwrap();
    assert!(matches!(outcomes[0], AppendOutcome::Stored(TimelineEvent::Change(_))));
    assert_eq!(outcomes[1], AppendOutcome::Refused(ChangeError::MessageDeleted), "once");
    let history = all_history(&store, "lobby").await;
    assert_eq!(history.len(), 2, "the tombstone keeps its seq");
    assert!(history[1].deleted && history[1].text.is_empty());
    assert!(!history[0].deleted);
    assert!(
        dir.search_messages(Some("spam"), None, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(dir.message_count(&uid("ann")).await.unwrap(), 1);

    assert!(dir.delete_room(&room("lobby"), now()).await.unwrap());
    assert!(!dir.delete_room(&room("lobby"), now()).await.unwrap());
    assert!(store.room(&room("lobby")).await.unwrap().is_none());
    assert_eq!(dir.room_count(&uid("ann")).await.unwrap(), 0, "members removed");
    let refused = store.append_batch(&[msg("lobby", "ann", "3", "late")]).await.unwrap();
    assert_eq!(
        refused,
        [AppendOutcome::RoomNotFound],
        "a deleted room takes no messages"
    );
    let (revived, created) = store.enter_room(&room("lobby")).await.unwrap();
    assert!(created);
    assert_eq!(revived.last_seq, 3, "seqs continue, never restart");
    assert!(all_events(&store, "lobby").await.is_empty(), "it comes back empty");

    for action in ["delete_message", "delete_room"] {
        let entry = chat_store::NewAuditEntry {
            actor_id: "u:admin",
            actor_name: "root",
            action,
            target: "lobby",
            detail: "",
        };
        dir.audit(&entry, now()).await.unwrap();
    }
    let log = dir.audit_log(None, 10).await.unwrap();
    assert_eq!(
        log.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        ["delete_room", "delete_message"]
    );
    assert_eq!(dir.audit_log(Some(log[0].id), 10).await.unwrap().len(), 1, "cursor");

    // A retried deletion of one message is audited once, whichever try gets there.
    let once = |target| chat_store::NewAuditEntry {
        actor_id: "u:admin",
        actor_name: "root",
        action: "delete_message",
        target,
        detail: "",
    };
    assert!(dir.audit_once(&once("7"), now()).await.unwrap(), "first");
    assert!(!dir.audit_once(&once("7"), now()).await.unwrap(), "retry");
    assert!(dir.audit_once(&once("8"), now()).await.unwrap(), "another message");
    let log = dir.audit_log(None, 10).await.unwrap();
    assert_eq!(
        log.iter()
            .map(|e| (e.action.as_str(), e.target.as_str()))
            .collect::<Vec<_>>(),
        [
            ("delete_message", "8"),
            ("delete_message", "7"),
            ("delete_room", "lobby"),
            ("delete_message", "lobby")
        ]
    );
}

pub(crate) async fn uploads_round_trip_and_image_messages_carry_them(db: &TestDb) {
    let database = db.database().await;
    let (store, blobs) = (database.messages, database.blobs);
    let bytes = b"\x89PNG\r\n\x1a\n\0\0binary".to_vec();
    let size = ImageSize {
        width: 500,
        height: 250,
    };
    let id = blobs.put(&new_upload("ann", 500, 250, &bytes)).await.unwrap();
    let blob = blobs.get(id).await.unwrap().unwrap();
    assert_eq!(
        (blob.bytes, blob.content_type.as_str(), blob.owner_id.as_str()),
        (bytes, "image/png", "ann")
    );
    assert_eq!(
        blobs.info(id).await.unwrap(),
        Some(chat_store::UploadInfo {
            owner_id: uid("ann"),
            size: Some(size)
        })
    );
    assert!(blobs.get(UploadId::new(id.get() + 1).unwrap()).await.unwrap().is_none());
    // 500 wide: a thumbnail 360 wide, none 720 wide (nor of any other width).
    let thumbnail = blobs.thumbnail(id, 360).await.unwrap().unwrap();
    assert_eq!(
        (
            thumbnail.bytes.as_slice(),
            thumbnail.content_type.as_str(),
            thumbnail.owner_id.as_str()
        ),
        (b"thumbnail 360".as_slice(), "image/jpeg", "ann")
    );
    for width in [720, 361, 0] {
        assert!(blobs.thumbnail(id, width).await.unwrap().is_none(), "{width}");
    }

    store.enter_room(&room("pics")).await.unwrap();
    let mut image = new_message("pics", "ann", "img", "caption");
    image.kind = MessageKind::Image;
    let upload = id;
    image.attachment = Some(upload);
    store.append_batch(&[NewEvent::Message(image)]).await.unwrap();
    let history = all_history(&store, "pics").await;
    assert_eq!(
        (history[0].kind, history[0].attachment, history[0].attachment_size),
        (MessageKind::Image, Some(upload), Some(size)),
        "history reads the image's size from its upload"
    );
}

/// Muting is a member's own setting of one room: the panel shows it, the room stays theirs
/// and keeps counting, and nobody else's membership changes.
pub(crate) async fn a_member_mutes_a_room_for_themselves(db: &TestDb) {
    let database = db.database().await;
    let (store, dir) = (database.messages, database.directory);
    store.enter_room(&room("loud")).await.unwrap();
    for (user, shown) in [("ann", "Ann"), ("bob", "Bob")] {
        dir.enter(&uid(user), &name(shown), &room("loud"), now()).await.unwrap();
    }
    let muted = |rooms: Vec<chat_store::MemberRoom>| {
        rooms
            .iter()
            .map(|r| (r.notifications_muted, r.unread))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        muted(dir.member_rooms(&uid("ann"), None, 10).await.unwrap()),
        [(false, 0)]
    );
    assert!(dir.mute_notifications(&uid("ann"), &room("loud"), true).await.unwrap());
    store.append_batch(&[msg("loud", "bob", "1", "hey")]).await.unwrap();
    assert_eq!(
        muted(dir.member_rooms(&uid("ann"), None, 10).await.unwrap()),
        [(true, 1)],
        "muted, and still counting"
    );
    assert_eq!(
        muted(dir.member_rooms(&uid("bob"), None, 10).await.unwrap()),
        [(false, 0)]
    );
    assert!(dir.mute_notifications(&uid("ann"), &room("loud"), false).await.unwrap());
    assert_eq!(
        muted(dir.member_rooms(&uid("ann"), None, 10).await.unwrap()),
        [(false, 1)]
    );
    // Only a member can; a room that does not exist has none.
    assert!(!dir.mute_notifications(&uid("cat"), &room("loud"), true).await.unwrap());
    assert!(
        !dir.mute_notifications(&uid("ann"), &room("nowhere"), true)
            .await
            .unwrap()
    );
    // Leaving and entering again starts afresh.
    dir.mute_notifications(&uid("ann"), &room("loud"), true).await.unwrap();
    dir.leave(&uid("ann"), &room("loud")).await.unwrap();
    dir.enter(&uid("ann"), &name("Ann"), &room("loud"), now())
        .await
        .unwrap();
    assert!(!dir.member_rooms(&uid("ann"), None, 10).await.unwrap()[0].notifications_muted);
}

/// Sending counts as reading up to what one sent: one's own messages, and what came before
/// them, are not unread on the panel (another tab, another device).
pub(crate) async fn sending_counts_as_reading_up_to_it(db: &TestDb) {
    let database = db.database().await;
    let (store, dir) = (database.messages, database.directory);
    store.enter_room(&room("alpha")).await.unwrap();
    for who in ["ann", "bob"] {
        dir.enter(&uid(who), &name(who), &room("alpha"), now()).await.unwrap();
    }
    store
        .append_batch(&[
            msg("alpha", "bob", "1", "one"),
            msg("alpha", "bob", "2", "two"),
            msg("alpha", "ann", "3", "my answer"),
            msg("alpha", "bob", "4", "after it"),
        ])
        .await
        .unwrap();
    let alpha = &dir.member_rooms(&uid("ann"), None, 10).await.unwrap()[0];
    assert_eq!((alpha.last_read_seq, alpha.unread), (3, 1), "read up to her message");
    let bob = &dir.member_rooms(&uid("bob"), None, 10).await.unwrap()[0];
    assert_eq!((bob.last_read_seq, bob.unread), (4, 0));
    // A stored marker further on wins; one behind her message does not pull it back.
    dir.mark_read(&uid("ann"), &room("alpha"), 4).await.unwrap();
    let alpha = &dir.member_rooms(&uid("ann"), None, 10).await.unwrap()[0];
    assert_eq!((alpha.last_read_seq, alpha.unread), (4, 0));
    let carl_room = &dir.member_rooms(&uid("carl"), None, 10).await.unwrap();
    assert!(carl_room.is_empty());
}
