//! The suite's tests of rooms as people stand with them: private rooms, roles, moderation
//! as timeline events, invitations, direct messages, and who may fetch an upload.

use super::*;
use chat_domain::{AccessError, RoomAction, RoomRole, Visibility};
use chat_store::{Moderation, NewInviteLink, NewRoom, Redeemed};

fn person(id: &str, name: &str) -> Author {
    Author {
        id: UserId::parse(id).unwrap(),
        name: DisplayName::parse(name).unwrap(),
    }
}

async fn moderate(
    dir: &Arc<dyn chat_store::Directory>,
    room_name: &str,
    actor: &Author,
    action: RoomAction,
) -> Result<chat_domain::RoomEvent, AccessError> {
    dir.moderate(&Moderation {
        room: &room(room_name),
        actor,
        site_admin: false,
        action: &action,
        now_ms: now_ms(),
    })
    .await
    .unwrap()
}

async fn stands(dir: &Arc<dyn chat_store::Directory>, room_name: &str, who: &Author) -> chat_domain::RoomAccess {
    dir.room_access(&room(room_name), &who.id, false)
        .await
        .unwrap()
        .expect("the room exists")
}

pub(crate) async fn a_private_room_is_for_its_members_and_invitees(db: &TestDb) {
    let chat_store::Database { directory: dir, .. } = db.database().await;
    let (ann, bob, cat) = (person("u:a", "ann"), person("u:b", "bob"), person("u:c", "cat"));
    dir.create_room(&NewRoom {
        name: &room("p.secret"),
        visibility: Visibility::Private,
        title: Some("Our plans"),
        owner: &ann,
        now_ms: now_ms(),
    })
    .await
    .unwrap();
    let again = NewRoom {
        name: &room("p.secret"),
        visibility: Visibility::Private,
        title: None,
        owner: &bob,
        now_ms: now_ms(),
    };
    assert!(matches!(dir.create_room(&again).await, Err(StoreError::Conflict(_))));

    assert_eq!(
        stands(&dir, "p.secret", &ann).await.standing.role,
        Some(RoomRole::Owner)
    );
    assert_eq!(
        stands(&dir, "p.secret", &bob).await.check_read(),
        Err(AccessError::NotFound)
    );
    assert!(
        dir.room_access(&room("p.other"), &bob.id, false)
            .await
            .unwrap()
            .is_none()
    );
    let admin = dir
        .room_access(&room("p.secret"), &bob.id, true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(admin.check_read(), Ok(()), "a site administrator sees every room");

    let record = dir.room_record(&room("p.secret")).await.unwrap().unwrap();
    assert_eq!(
        (record.visibility, record.title.as_deref()),
        (Visibility::Private, Some("Our plans"))
    );
    assert_eq!((record.owner, record.member_count), (Some(ann.clone()), 1));

    // Invited, Bob may see it and join; joining uses the invitation up.
    let invited = moderate(&dir, "p.secret", &ann, RoomAction::Invited { target: bob.clone() })
        .await
        .unwrap();
    assert_eq!(invited.seq, 1, "a room event takes the room's next seq");
    assert_eq!(stands(&dir, "p.secret", &bob).await.check_read(), Ok(()));
    let invitations = dir.invitations(&bob.id, 10).await.unwrap();
    assert_eq!(
        invitations
            .iter()
            .map(|i| (i.room.as_str(), i.title.as_deref(), i.by.as_deref()))
            .collect::<Vec<_>>(),
        [("p.secret", Some("Our plans"), Some("ann"))]
    );
    assert_eq!(
        stands(&dir, "p.secret", &cat).await.check_read(),
        Err(AccessError::NotFound)
    );
    dir.enter(&bob.id, &bob.name, &room("p.secret"), now_ms())
        .await
        .unwrap();
    let bob_there = stands(&dir, "p.secret", &bob).await.standing;
    assert_eq!((bob_there.role, bob_there.invited), (Some(RoomRole::Member), false));
    assert!(dir.invitations(&bob.id, 10).await.unwrap().is_empty(), "taken up");

    // The directory lists public rooms only, filtered by name.
    let store = db.store().await;
    enter(&store, &["lobby", "lounge"]).await;
    let listed = dir.public_rooms(None, None, 50).await.unwrap();
    let names: Vec<&str> = listed.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["lobby", "lounge"]);
    let filtered = dir.public_rooms(Some("LOU"), None, 50).await.unwrap();
    assert_eq!(filtered.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["lounge"]);
    let after = dir.public_rooms(None, Some(&room("lobby")), 50).await.unwrap();
    assert_eq!(after.len(), 1);
}

pub(crate) async fn moderation_is_ruled_and_committed_as_room_events(db: &TestDb) {
    let chat_store::Database { directory: dir, .. } = db.database().await;
    let store = db.store().await;
    let (ann, bob, cat) = (person("u:a", "ann"), person("u:b", "bob"), person("u:c", "cat"));
    enter(&store, &["hall"]).await;
    for who in [&ann, &bob, &cat] {
        dir.enter(&who.id, &who.name, &room("hall"), now_ms()).await.unwrap();
    }
    assert!(dir.claim_ownership(&room("hall"), &ann.id).await.unwrap());
    assert!(
        !dir.claim_ownership(&room("hall"), &bob.id).await.unwrap(),
        "a room has one owner"
    );
    store.append_batch(&[msg("hall", "u:b", "m1", "hello")]).await.unwrap();

    // A plain member may not; nothing is stored and no seq is taken.
    let refused = moderate(&dir, "hall", &bob, RoomAction::Kicked { target: cat.clone() }).await;
    assert!(matches!(refused, Err(AccessError::Forbidden(_))), "{refused:?}");
    let promoted = RoomAction::RoleChanged {
        target: bob.clone(),
        role: RoomRole::Moderator,
    };
    assert_eq!(moderate(&dir, "hall", &ann, promoted).await.unwrap().seq, 2);
    let until_ms = now_ms() + 60_000;
    let muted = moderate(
        &dir,
        "hall",
        &bob,
        RoomAction::Muted {
            target: cat.clone(),
            until_ms,
        },
    )
    .await
    .unwrap();
    assert_eq!(muted.seq, 3);
    let cat_now = stands(&dir, "hall", &cat).await;
    assert_eq!(cat_now.check_send(now_ms()), Err(AccessError::Muted { until_ms }));
    assert_eq!(cat_now.check_read(), Ok(()));
    // A moderator cannot act on the owner, nor name moderators.
    let at_owner = moderate(&dir, "hall", &bob, RoomAction::Kicked { target: ann.clone() }).await;
    assert!(matches!(at_owner, Err(AccessError::Forbidden(_))));
    store
        .append_batch(&[msg("hall", "u:a", "m2", "still here")])
        .await
        .unwrap();
    let banned = moderate(&dir, "hall", &bob, RoomAction::Banned { target: cat.clone() })
        .await
        .unwrap();
    assert_eq!(banned.seq, 5, "room events and messages share one gapless sequence");
    let cat_now = stands(&dir, "hall", &cat).await;
    assert_eq!(
        (cat_now.standing.role, cat_now.check_read()),
        (None, Err(AccessError::Banned))
    );
    let again = moderate(&dir, "hall", &bob, RoomAction::Banned { target: cat.clone() }).await;
    assert!(matches!(again, Err(AccessError::Conflict(_))));
    let topic = RoomAction::Updated {
        topic: "Tea".into(),
        description: "All about tea".into(),
    };
    moderate(&dir, "hall", &ann, topic).await.unwrap();
    assert_eq!(dir.room_record(&room("hall")).await.unwrap().unwrap().topic, "Tea");
    moderate(&dir, "hall", &ann, RoomAction::OwnerChanged { target: bob.clone() })
        .await
        .unwrap();
    assert_eq!(stands(&dir, "hall", &bob).await.standing.role, Some(RoomRole::Owner));
    assert_eq!(
        stands(&dir, "hall", &ann).await.standing.role,
        Some(RoomRole::Moderator)
    );

    // The replay holds every event in order; a page of messages only the messages.
    let events = all_events(&store, "hall").await;
    let kinds: Vec<(u64, &str)> = events
        .iter()
        .map(|e| match e {
            TimelineEvent::Message(_) => (e.seq(), "message"),
            TimelineEvent::Room(r) => (e.seq(), r.action.name()),
            TimelineEvent::Change(_) => (e.seq(), "change"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            (1, "message"),
            (2, "role_changed"),
            (3, "muted"),
            (4, "message"),
            (5, "banned"),
            (6, "updated"),
            (7, "owner_changed")
        ]
    );
    assert_eq!(events[2], TimelineEvent::Room(muted));
    let page = store.history_before(&room("hall"), u64::MAX, 50).await.unwrap();
    assert_eq!(seqs(&page), [1, 4]);
    // Room events are no unread news. Bob sent the first message, which counts as reading
    // up to it: what is unread for him is Ann's message, not the events around it.
    let panel = dir.member_rooms(&bob.id, None, 10).await.unwrap();
    assert_eq!(panel[0].unread, 1, "Ann's message, not the room events");
    // Each is in the audit log.
    let audit = dir.audit_log(None, 50).await.unwrap();
    let actions: Vec<&str> = audit.iter().rev().map(|a| a.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "room_role_changed",
            "room_muted",
            "room_banned",
            "room_updated",
            "room_owner_changed"
        ]
    );
    assert_eq!(audit[2].target, "hall/u:c");
    // Kicking and unbanning someone who is not there changes nothing.
    let kick = moderate(&dir, "hall", &bob, RoomAction::Kicked { target: cat.clone() }).await;
    assert!(matches!(kick, Err(AccessError::Conflict(_))));
    moderate(&dir, "hall", &bob, RoomAction::Unbanned { target: cat.clone() })
        .await
        .unwrap();
    assert_eq!(stands(&dir, "hall", &cat).await.check_read(), Ok(()));
    let missing = moderate(&dir, "nowhere", &bob, RoomAction::Unbanned { target: cat.clone() }).await;
    assert_eq!(missing, Err(AccessError::NotFound));
    let members = dir.room_members(&room("hall"), None, 10).await.unwrap().1;
    let roles: Vec<(&str, RoomRole)> = members.iter().map(|m| (m.user_id.as_str(), m.role)).collect();
    assert_eq!(roles, [("u:a", RoomRole::Moderator), ("u:b", RoomRole::Owner)]);
}

pub(crate) async fn invite_links_and_direct_messages(db: &TestDb) {
    let chat_store::Database { directory: dir, .. } = db.database().await;
    let (ann, bob, cat) = (person("u:a", "ann"), person("u:b", "bob"), person("u:c", "cat"));
    let secret = room("p.club");
    let new_room = NewRoom {
        name: &secret,
        visibility: Visibility::Private,
        title: Some("Club"),
        owner: &ann,
        now_ms: now_ms(),
    };
    dir.create_room(&new_room).await.unwrap();
    let link = |hash: &'static str, expires_at_ms: i64, max_uses: Option<u32>| NewInviteLink {
        token_hash: hash,
        room: &secret,
        by: &ann.id,
        expires_at_ms,
        max_uses,
        now_ms: now_ms(),
    };
    dir.create_invite_link(&link("once", now_ms() + 60_000, Some(1)))
        .await
        .unwrap();
    dir.create_invite_link(&link("old", now_ms() - 1, None)).await.unwrap();
    assert_eq!(
        dir.invite_link_room("once", now_ms())
            .await
            .unwrap()
            .unwrap()
            .title
            .as_deref(),
        Some("Club")
    );
    assert!(
        dir.invite_link_room("old", now_ms()).await.unwrap().is_none(),
        "expired"
    );
    assert_eq!(
        dir.redeem_invite("old", &bob, now_ms()).await.unwrap(),
        Redeemed::Invalid
    );
    assert_eq!(
        dir.redeem_invite("nope", &bob, now_ms()).await.unwrap(),
        Redeemed::Invalid
    );
    assert_eq!(
        dir.redeem_invite("once", &bob, now_ms()).await.unwrap(),
        Redeemed::Member {
            room: secret.clone(),
            new: true
        }
    );
    assert_eq!(stands(&dir, "p.club", &bob).await.standing.role, Some(RoomRole::Member));
    assert_eq!(
        dir.redeem_invite("once", &cat, now_ms()).await.unwrap(),
        Redeemed::Invalid,
        "used up"
    );
    // A banned person gets nothing from a link.
    moderate(&dir, "p.club", &ann, RoomAction::Banned { target: cat.clone() })
        .await
        .unwrap();
    dir.create_invite_link(&link("open", now_ms() + 60_000, None))
        .await
        .unwrap();
    assert_eq!(
        dir.redeem_invite("open", &cat, now_ms()).await.unwrap(),
        Redeemed::Banned
    );

    // A direct message is one room per pair, whoever opens it.
    let (dm, created) = dir.open_dm(&ann, &bob, &room("dm.first"), now_ms()).await.unwrap();
    assert_eq!((dm.as_str(), created), ("dm.first", true));
    let (again, created) = dir.open_dm(&bob, &ann, &room("dm.second"), now_ms()).await.unwrap();
    assert_eq!((again.as_str(), created), ("dm.first", false));
    assert_eq!(
        stands(&dir, "dm.first", &cat).await.check_read(),
        Err(AccessError::NotFound)
    );
    let refused = moderate(&dir, "dm.first", &ann, RoomAction::Invited { target: cat.clone() }).await;
    assert!(
        matches!(refused, Err(AccessError::Forbidden(_))),
        "nobody moderates a direct message"
    );
    let panel = dir.member_rooms(&bob.id, None, 10).await.unwrap();
    let dm_row = panel.iter().find(|r| r.room == dm).unwrap();
    assert_eq!(
        (dm_row.dm_with.as_ref(), dm_row.visibility),
        (Some(&ann), Visibility::Private)
    );
    let record = dir.room_record(&dm).await.unwrap().unwrap();
    assert_eq!(record.dm_with(&bob.id), Some(&ann));
    assert_eq!(record.owner, None);
}

pub(crate) async fn what_decides_who_may_fetch_an_upload(db: &TestDb) {
    let chat_store::Database {
        directory: dir, blobs, ..
    } = db.database().await;
    let store = db.store().await;
    enter(&store, &["gallery"]).await;
    let id = blobs.put(&new_upload("u:a", 1000, 800, b"png")).await.unwrap();
    assert!(blobs.thumbnail(id, 360).await.unwrap().is_some());
    let uses = dir.upload_uses(id).await.unwrap().unwrap();
    assert_eq!((uses.owner.as_str(), uses.avatar, uses.rooms.len()), ("u:a", false, 0));
    let mut image = new_message("gallery", "u:a", "img", "look");
    image.kind = MessageKind::Image;
    image.attachment = Some(id);
    store.append_batch(&[NewEvent::Message(image)]).await.unwrap();
    assert_eq!(dir.upload_uses(id).await.unwrap().unwrap().rooms, [room("gallery")]);
    store
        .append_batch(&[change("gallery", "u:a", "del", 1, Change::Delete, false)])
        .await
        .unwrap();
    assert!(
        dir.upload_uses(id).await.unwrap().is_none(),
        "a deleted message's image goes with it"
    );
    assert!(blobs.get(id).await.unwrap().is_none());
    assert!(
        blobs.thumbnail(id, 360).await.unwrap().is_none(),
        "and its thumbnails with it"
    );
    // An avatar stays, whatever message showed it.
    let avatar = blobs.put(&new_upload("u:a", 100, 100, b"png")).await.unwrap();
    dir.create_user(&new_user("u:a", "ann")).await.unwrap();
    let update = chat_store::ProfileUpdate {
        avatar_id: Some(Some(avatar.get())),
        ..Default::default()
    };
    dir.update_profile(&UserId::parse("u:a").unwrap(), &update)
        .await
        .unwrap();
    let mut image = new_message("gallery", "u:a", "img2", "me");
    image.kind = MessageKind::Image;
    image.attachment = Some(avatar);
    store.append_batch(&[NewEvent::Message(image)]).await.unwrap();
    store
        .append_batch(&[change("gallery", "u:a", "del2", 3, Change::Delete, false)])
        .await
        .unwrap();
    assert!(dir.upload_uses(avatar).await.unwrap().unwrap().avatar);
}
