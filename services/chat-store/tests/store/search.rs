//! The suite's tests of message search: the query syntax, filters, scope and paging, on
//! both backends' full-text indexes.

use super::*;
use chat_domain::{RoomAction, SearchQuery, Visibility};
use chat_store::{Directory, Moderation, NewRoom, SearchRequest, SearchScope};

pub(crate) fn request<'a>(query: &'a SearchQuery, scope: SearchScope<'a>) -> SearchRequest<'a> {
    SearchRequest {
        query,
        scope,
        author: None,
        since_ms: None,
        until_ms: None,
        images_only: false,
        before_id: None,
        limit: 50,
    }
}

/// The seqs a search in `room_name` finds, newest first.
async fn found(dir: &Arc<dyn Directory>, room_name: &str, q: &str) -> Vec<u64> {
    let query = SearchQuery::parse(q).unwrap();
    let room = room(room_name);
    let hits = dir.search(&request(&query, SearchScope::Room(&room))).await.unwrap();
    assert!(hits.iter().all(|m| m.room == room));
    seqs(&hits)
}

async fn seqs_of(dir: &Arc<dyn Directory>, request: &SearchRequest<'_>) -> Vec<u64> {
    seqs(&dir.search(request).await.unwrap())
}

/// The rooms a search finds `q` in, for the scope, as a sorted list.
async fn rooms_found(dir: &Arc<dyn Directory>, scope: SearchScope<'_>, q: &str) -> Vec<String> {
    let query = SearchQuery::parse(q).unwrap();
    let hits = dir.search(&request(&query, scope)).await.unwrap();
    let rooms: BTreeSet<String> = hits.iter().map(|m| m.room.as_str().to_owned()).collect();
    rooms.into_iter().collect()
}

pub(crate) async fn search_finds_words_phrases_and_leaves_out_exclusions(db: &TestDb) {
    let chat_store::Database {
        messages: store,
        directory: dir,
        ..
    } = db.database().await;
    enter(&store, &["alpha", "beta"]).await;
    let texts = [
        "the quick brown fox",
        "quick thinking saves the day",
        "brown bread and butter",
        "Quick! The FOX is brown",
        "Привет, мир: ÉTÉ",
    ];
    let batch: Vec<NewEvent> = texts
        .iter()
        .enumerate()
        .map(|(i, text)| msg("alpha", "ann", &format!("a{i}"), text))
        .collect();
    store.append_batch(&batch).await.unwrap();
    store
        .append_batch(&[msg("beta", "ann", "b0", "quick elsewhere")])
        .await
        .unwrap();
    assert_eq!(
        found(&dir, "alpha", "quick").await,
        Vec::<u64>::new(),
        "indexed after the commit, not in it"
    );
    index_search(&store).await;

    assert_eq!(found(&dir, "alpha", "quick").await, [4, 2, 1], "newest first, any case");
    assert_eq!(
        found(&dir, "alpha", "QUICK brown").await,
        [4, 1],
        "every word must match"
    );
    assert_eq!(found(&dir, "alpha", r#""brown fox""#).await, [1], "a phrase in order");
    assert_eq!(found(&dir, "alpha", "quick -fox").await, [2]);
    assert_eq!(found(&dir, "alpha", r#"brown -"brown fox""#).await, [4, 3]);
    assert_eq!(found(&dir, "alpha", "привет été").await, [5], "not only ASCII");
    assert_eq!(found(&dir, "alpha", "ete").await, Vec::<u64>::new(), "accents are kept");
    assert_eq!(found(&dir, "alpha", "quic").await, Vec::<u64>::new(), "whole words");
    assert_eq!(found(&dir, "beta", "quick").await, [1]);

    // The operators of either dialect are only text.
    assert_eq!(found(&dir, "alpha", "quick & !fox").await, [4, 1]);
    assert_eq!(found(&dir, "alpha", "fox:* | (brown)").await, [4, 1]);
    assert_eq!(
        found(&dir, "alpha", r#"NEAR(quick fox) OR AND NOT"#).await,
        Vec::<u64>::new()
    );
    assert_eq!(
        found(&dir, "alpha", "'; DROP TABLE messages; --").await,
        Vec::<u64>::new()
    );
    assert_eq!(
        found(&dir, "alpha", r#"bro"wn"#).await,
        Vec::<u64>::new(),
        "a quote splits words"
    );
    assert_eq!(all_history(&store, "alpha").await.len(), 5);
}

pub(crate) async fn search_sees_edits_never_deletions_and_filters(db: &TestDb) {
    let chat_store::Database {
        messages: store,
        directory: dir,
        blobs,
    } = db.database().await;
    enter(&store, &["alpha"]).await;
    store
        .append_batch(&[
            msg("alpha", "ann", "a1", "release notes draft"),
            msg("alpha", "bob", "b1", "release party tonight"),
            msg("alpha", "ann", "a2", "the release is out"),
        ])
        .await
        .unwrap();
    let upload = blobs.put(&new_upload("bob", 10, 10, b"\x89PNG")).await.unwrap();
    let mut image = new_message("alpha", "bob", "img", "release poster");
    image.kind = MessageKind::Image;
    image.attachment = Some(upload);
    store.append_batch(&[NewEvent::Message(image)]).await.unwrap();
    index_search(&store).await;
    assert_eq!(found(&dir, "alpha", "party").await, [2]);

    // An edit is found by its new text only; a deletion is not found at all, not even
    // before the index has caught up with it.
    let edit = Change::Edit {
        text: "final notes".to_owned(),
        mentions: Vec::new(),
    };
    store
        .append_batch(&[change("alpha", "ann", "e1", 1, edit, false)])
        .await
        .unwrap();
    store
        .append_batch(&[change("alpha", "bob", "d1", 2, Change::Delete, false)])
        .await
        .unwrap();
    assert_eq!(found(&dir, "alpha", "party").await, Vec::<u64>::new());
    index_search(&store).await;
    assert_eq!(found(&dir, "alpha", "draft").await, Vec::<u64>::new());
    assert_eq!(found(&dir, "alpha", "final").await, [1]);
    assert_eq!(found(&dir, "alpha", "party").await, Vec::<u64>::new());
    assert_eq!(found(&dir, "alpha", "release").await, [4, 3]);

    let query = SearchQuery::parse("release").unwrap();
    let alpha = room("alpha");
    let base = request(&query, SearchScope::Room(&alpha));
    let ann = UserId::parse("ann").unwrap();
    assert_eq!(
        seqs_of(
            &dir,
            &SearchRequest {
                author: Some(&ann),
                ..base.clone()
            }
        )
        .await,
        [3]
    );
    assert_eq!(
        seqs_of(
            &dir,
            &SearchRequest {
                images_only: true,
                ..base.clone()
            }
        )
        .await,
        [4]
    );
    let stored = all_history(&store, "alpha").await;
    let third = stored[2].sent_at_ms;
    let fourth = stored[3].sent_at_ms;
    assert_eq!(
        seqs_of(
            &dir,
            &SearchRequest {
                since_ms: Some(fourth),
                ..base.clone()
            }
        )
        .await,
        // Two messages can share a millisecond.
        if third < fourth { vec![4] } else { vec![4, 3] },
        "since is inclusive"
    );
    assert_eq!(
        seqs_of(
            &dir,
            &SearchRequest {
                until_ms: Some(fourth),
                ..base.clone()
            }
        )
        .await,
        if third < fourth { vec![3] } else { vec![] },
        "until is exclusive"
    );
    assert_eq!(
        seqs_of(
            &dir,
            &SearchRequest {
                until_ms: Some(0),
                ..base.clone()
            }
        )
        .await,
        Vec::<u64>::new()
    );
}

pub(crate) async fn search_pages_stay_stable_while_messages_arrive(db: &TestDb) {
    let chat_store::Database {
        messages: store,
        directory: dir,
        ..
    } = db.database().await;
    enter(&store, &["alpha"]).await;
    let batch: Vec<NewEvent> = (0..7)
        .map(|i| msg("alpha", "ann", &format!("m{i}"), &format!("news number {i}")))
        .collect();
    store.append_batch(&batch).await.unwrap();
    index_search(&store).await;
    let query = SearchQuery::parse("news").unwrap();
    let alpha = room("alpha");
    let mut page = SearchRequest {
        limit: 3,
        ..request(&query, SearchScope::Room(&alpha))
    };
    let mut seen = Vec::new();
    let mut arrivals = 0;
    loop {
        let hits = dir.search(&page).await.unwrap();
        seen.extend(seqs(&hits));
        // New matches arrive between pages: they are newer than the cursor, so they join
        // no later page and move nothing.
        arrivals += 1;
        store
            .append_batch(&[msg("alpha", "bob", &format!("n{arrivals}"), "more news")])
            .await
            .unwrap();
        index_search(&store).await;
        match hits.last() {
            Some(last) if hits.len() == 3 => page.before_id = Some(last.id.get()),
            _ => break,
        }
    }
    assert_eq!(seen, [7, 6, 5, 4, 3, 2, 1], "every match once, newest first");
}

pub(crate) async fn search_scope_is_what_the_person_may_read(db: &TestDb) {
    let chat_store::Database {
        messages: store,
        directory: dir,
        ..
    } = db.database().await;
    let (ann, bob) = (author("u:a"), author("u:b"));
    enter(&store, &["mine", "open", "shut"]).await;
    for name in ["mine", "shut"] {
        dir.enter(&ann.id, &ann.name, &room(name), now_ms()).await.unwrap();
    }
    dir.enter(&bob.id, &bob.name, &room("shut"), now_ms()).await.unwrap();
    assert!(dir.claim_ownership(&room("shut"), &bob.id).await.unwrap());
    for (name, owner) in [("p.club", &bob), ("p.ours", &ann)] {
        dir.create_room(&NewRoom {
            name: &room(name),
            visibility: Visibility::Private,
            title: Some("club"),
            owner,
            now_ms: now_ms(),
        })
        .await
        .unwrap();
    }
    for name in ["mine", "open", "shut", "p.club", "p.ours"] {
        store
            .append_batch(&[msg(name, "u:b", &format!("x-{name}"), "secret plans")])
            .await
            .unwrap();
    }
    index_search(&store).await;
    // Bob bans Ann from "shut", a public room she was in.
    dir.moderate(&Moderation {
        room: &room("shut"),
        actor: &bob,
        site_admin: false,
        action: &RoomAction::Banned { target: ann.clone() },
        now_ms: now_ms(),
    })
    .await
    .unwrap()
    .unwrap();

    assert_eq!(
        rooms_found(&dir, SearchScope::Member(&ann.id), "plans").await,
        ["mine", "p.ours"]
    );
    assert_eq!(
        rooms_found(&dir, SearchScope::Public(&ann.id), "plans").await,
        ["mine", "open", "p.ours"],
        "public rooms too, never a private room she is not in, never one she is banned from"
    );
    // The same answer as the rule for one room: every room found is one she may read.
    for name in rooms_found(&dir, SearchScope::Public(&ann.id), "plans").await {
        let access = dir.room_access(&room(&name), &ann.id, false).await.unwrap().unwrap();
        assert_eq!(access.check_read(), Ok(()), "{name}");
    }
    for name in ["shut", "p.club"] {
        let access = dir.room_access(&room(name), &ann.id, false).await.unwrap().unwrap();
        assert!(access.check_read().is_err(), "{name}");
    }
    assert_eq!(
        rooms_found(&dir, SearchScope::Public(&bob.id), "plans").await,
        ["mine", "open", "p.club", "shut"]
    );
}
