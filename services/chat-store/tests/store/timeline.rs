//! Changes to messages (edits, deletions, reactions) and replies: the rules the store
//! decides under the room's lock, and history as the fold of the events.

use super::*;
use chat_domain::Emoji;
use chat_domain::timeline::{MAX_REACTIONS, Timeline};

fn emoji(e: &str) -> Emoji {
    Emoji::parse(e).unwrap()
}

fn edit(text: &str) -> Change {
    Change::Edit {
        text: text.into(),
        mentions: Vec::new(),
    }
}

fn react(e: &str) -> Change {
    Change::React { emoji: emoji(e) }
}

fn unreact(e: &str) -> Change {
    Change::Unreact { emoji: emoji(e) }
}

fn reply(room_name: &str, author_id: &str, cmid: &str, reply_to: u64) -> NewEvent {
    let mut message = new_message(room_name, author_id, cmid, "a reply");
    message.reply_to = Some(reply_to);
    NewEvent::Message(message)
}

fn refused(outcome: &AppendOutcome) -> ChangeError {
    match outcome {
        AppendOutcome::Refused(refusal) => *refusal,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn stored_seq(outcome: &AppendOutcome) -> u64 {
    match outcome {
        AppendOutcome::Stored(event) => event.seq(),
        other => panic!("expected Stored, got {other:?}"),
    }
}

/// The newest page of messages, as a join or the HTTP API reads it.
async fn page(store: &Arc<dyn Store>, name: &str) -> Vec<ChatMessage> {
    store.history_before(&room(name), u64::MAX, 1000).await.unwrap()
}

pub(crate) async fn changes_keep_the_rules_and_history_shows_the_result(store: Arc<dyn Store>) {
    enter(&store, &["lobby", "other"]).await;
    let c = |author: &str, cmid: &str, target: u64, what: Change| change("lobby", author, cmid, target, what, false);
    let first = store
        .append_batch(&[
            msg("lobby", "ann", "m1", "helo"),
            msg("lobby", "bob", "m2", "hi"),
            msg("other", "ann", "o1", "elsewhere"),
        ])
        .await
        .unwrap();
    assert_eq!(stored(&first[0]).seq, 1);

    // Each rule, one refusal each; nothing is stored for a refusal, so seqs stay gapless.
    let outcomes = store
        .append_batch(&[
            c("ann", "e1", 1, edit("hello")),
            c("bob", "e2", 1, edit("hijacked")),
            c("bob", "d1", 1, Change::Delete),
            c("ann", "e3", 9, edit("nothing there")),
            c("ann", "e4", 3, edit("a change is not a message")),
            c("bob", "r1", 1, react("👍")),
            c("bob", "r2", 1, react("👍")),
            c("ann", "r3", 1, react("👍")),
            c("ann", "u1", 1, unreact("🎉")),
            reply("lobby", "bob", "p1", 2),
            reply("lobby", "bob", "p2", 42),
            c("bob", "d2", 2, Change::Delete),
            c("bob", "e5", 2, edit("too late")),
            c("ann", "r4", 2, react("👍")),
            reply("lobby", "ann", "p3", 2),
        ])
        .await
        .unwrap();
    assert_eq!(stored_seq(&outcomes[0]), 3, "an edit takes the next seq");
    assert_eq!(refused(&outcomes[1]), ChangeError::NotYours);
    assert_eq!(refused(&outcomes[2]), ChangeError::NotYours);
    assert_eq!(refused(&outcomes[3]), ChangeError::NoSuchMessage);
    assert_eq!(refused(&outcomes[4]), ChangeError::NoSuchMessage);
    assert_eq!(stored_seq(&outcomes[5]), 4);
    assert_eq!(refused(&outcomes[6]), ChangeError::AlreadyReacted);
    assert_eq!(stored_seq(&outcomes[7]), 5);
    assert_eq!(refused(&outcomes[8]), ChangeError::NotReacted);
    assert_eq!(stored_seq(&outcomes[9]), 6, "a reply to a message of the room");
    assert_eq!(refused(&outcomes[10]), ChangeError::NoSuchMessage);
    assert_eq!(stored_seq(&outcomes[11]), 7, "the author deletes their own");
    assert_eq!(refused(&outcomes[12]), ChangeError::MessageDeleted);
    assert_eq!(refused(&outcomes[13]), ChangeError::MessageDeleted);
    assert_eq!(refused(&outcomes[14]), ChangeError::MessageDeleted);

    // A reply names a seq of its own room only: `other` has seq 1 but not 6.
    let elsewhere = store.append_batch(&[reply("other", "ann", "p4", 6)]).await.unwrap();
    assert_eq!(refused(&elsewhere[0]), ChangeError::NoSuchMessage);

    // A retried change is the original: same seq, nothing new.
    let retried = store.append_batch(&[c("ann", "e1", 1, edit("hello"))]).await.unwrap();
    assert!(matches!(&retried[0], AppendOutcome::Duplicate(e) if e.seq() == 3));
    assert_eq!(store.room(&room("lobby")).await.unwrap().unwrap().last_seq, 7);

    let messages = page(&store, "lobby").await;
    assert_eq!(
        seqs(&messages),
        [1, 2, 6],
        "changes are not messages; the tombstone keeps its place"
    );
    let edited = &messages[0];
    assert_eq!(edited.text, "hello");
    let at = |seq: u64| all_events_at(&store, seq);
    assert_eq!(edited.edited_at_ms, Some(at(3).await));
    let users: Vec<Vec<&str>> = edited
        .reactions
        .iter()
        .map(|r| r.users.iter().map(|u| u.id.as_str()).collect())
        .collect();
    assert_eq!(
        (edited.reactions[0].emoji.as_str(), users),
        ("👍", vec![vec!["bob", "ann"]]),
        "in the order they reacted"
    );
    assert!(messages[1].deleted && messages[1].text.is_empty() && messages[1].reactions.is_empty());
    assert_eq!(messages[2].reply_to, Some(2));
    let replay = all_events(&store, "lobby").await;
    assert_eq!(
        replay.iter().map(TimelineEvent::seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6, 7]
    );

    // Taking a reaction back, and the cap on distinct emoji.
    let outcomes = store.append_batch(&[c("bob", "u2", 1, unreact("👍"))]).await.unwrap();
    assert_eq!(stored_seq(&outcomes[0]), 8);
    let many: Vec<&str> = emojis::iter()
        .map(|e| e.as_str())
        .filter(|e| *e != "👍")
        .take(MAX_REACTIONS)
        .collect();
    let batch: Vec<NewEvent> = many
        .iter()
        .enumerate()
        .map(|(i, e)| c("carl", &format!("x{i}"), 1, react(e)))
        .collect();
    let outcomes = store.append_batch(&batch).await.unwrap();
    assert_eq!(
        refused(&outcomes[MAX_REACTIONS - 1]),
        ChangeError::TooManyReactions,
        "👍 and 19 more make 20"
    );
    assert!(
        outcomes[..MAX_REACTIONS - 1]
            .iter()
            .all(|o| matches!(o, AppendOutcome::Stored(_)))
    );
    let reactions = &page(&store, "lobby").await[0].reactions;
    assert_eq!(reactions.len(), MAX_REACTIONS);
    assert_eq!(
        reactions[0].users.iter().map(|u| u.id.as_str()).collect::<Vec<_>>(),
        ["ann"]
    );
}

/// The commit time of the event at `seq` of `lobby`.
async fn all_events_at(store: &Arc<dyn Store>, seq: u64) -> i64 {
    all_events(store, "lobby")
        .await
        .iter()
        .find(|e| e.seq() == seq)
        .map(TimelineEvent::at_ms)
        .unwrap()
}

pub(crate) async fn an_edit_replaces_the_mentions_and_a_deletion_erases_its_text(store: Arc<dyn Store>) {
    enter(&store, &["lobby"]).await;
    let c = |cmid: &str, target: u64, what: Change| change("lobby", "ann", cmid, target, what, false);
    let mut first = new_message("lobby", "ann", "m1", "secret @bob");
    first.mentions = vec![author("bob")];
    let naming_carl = Change::Edit {
        text: "still secret @carl".into(),
        mentions: vec![author("carl")],
    };
    store
        .append_batch(&[NewEvent::Message(first), c("e1", 1, naming_carl.clone())])
        .await
        .unwrap();
    let mentioned = |m: &chat_domain::ChatMessage| m.mentions.iter().map(|a| a.id.to_string()).collect::<Vec<_>>();
    assert_eq!(mentioned(&page(&store, "lobby").await[0]), ["carl"], "history");
    let events = all_events(&store, "lobby").await;
    assert!(
        matches!(&events[1], TimelineEvent::Change(e) if e.change == naming_carl),
        "replay"
    );

    store.append_batch(&[c("d1", 1, Change::Delete)]).await.unwrap();
    for event in all_events(&store, "lobby").await {
        let (text, mentions) = match &event {
            TimelineEvent::Message(m) => (m.text.clone(), m.mentions.len()),
            TimelineEvent::Change(c) => match &c.change {
                Change::Edit { text, mentions } => (text.clone(), mentions.len()),
                _ => (String::new(), 0),
            },
            TimelineEvent::Room(_) => (String::new(), 0),
        };
        assert!(!text.contains("secret") && mentions == 0, "{event:?}");
    }
}

/// A small deterministic generator, so a failing sequence can be replayed from its seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// Random sequences of messages and changes (many refused, some retried), committed in
/// random batches: the page of history equals the fold of the committed events and the
/// fold of the replay. The three are what a paging client, a live client and a resuming
/// client show.
pub(crate) async fn history_is_the_fold_of_the_events(store: Arc<dyn Store>) {
    const PEOPLE: [&str; 2] = ["ann", "bob"];
    // Past MAX_REACTIONS, for the flood of reactions some rooms get.
    const EMOJI: [&str; 24] = [
        "👍", "🎉", "❤️", "😀", "😂", "😎", "🔥", "👀", "🙏", "✅", "❌", "💯", "🚀", "🤔", "😢", "😡", "👏", "🙌",
        "🤝", "💡", "⭐", "🍕", "☕", "🐛",
    ];
    // Edited, deleted and reacted messages that stand at the end, retries and refusals
    // for too many reactions: the generator must make each, or the comparison proves little.
    let mut stood = (0, 0, 0);
    let (mut retried, mut too_many) = (0, 0);
    for seed in 0..40u64 {
        let name = format!("fold-{seed}");
        enter(&store, &[&name]).await;
        let mut rng = Rng(seed);
        let mut committed = Vec::new();
        let mut sent: Vec<NewEvent> = Vec::new();
        let mut next_id = 0;
        for round in 0..12 {
            let last = committed.len() as u64 + 1;
            let batch: Vec<NewEvent> = if round == 6 && seed % 4 == 0 {
                // One person floods the newest message with every emoji.
                let target = last.saturating_sub(1).max(1);
                EMOJI
                    .iter()
                    .map(|e| {
                        next_id += 1;
                        change(&name, "bob", &format!("k{next_id}"), target, react(e), false)
                    })
                    .collect()
            } else {
                (0..1 + rng.below(8))
                    .map(|_| {
                        next_id += 1;
                        let who = PEOPLE[rng.below(2) as usize];
                        let cmid = format!("k{next_id}");
                        // Mostly the latest few seqs, so changes pile up on the same
                        // messages; sometimes one past the end.
                        let target = last.saturating_sub(rng.below(5)).max(1);
                        let pick = EMOJI[rng.below(3) as usize];
                        let event = match rng.below(11) {
                            0..=2 => msg(&name, who, &cmid, &format!("text {next_id}")),
                            3 => reply(&name, who, &cmid, target),
                            4 => change(&name, who, &cmid, target, edit(&format!("edit {next_id}")), false),
                            5 => change(&name, who, &cmid, target, Change::Delete, rng.below(4) == 0),
                            6..=7 => change(&name, who, &cmid, target, react(pick), false),
                            8 => change(&name, who, &cmid, target, unreact(pick), false),
                            // A retry of something sent before, in this batch or an earlier one.
                            _ if !sent.is_empty() => sent[rng.below(sent.len() as u64) as usize].clone(),
                            _ => msg(&name, who, &cmid, "first"),
                        };
                        sent.push(event.clone());
                        event
                    })
                    .collect()
            };
            for outcome in store.append_batch(&batch).await.unwrap() {
                match outcome {
                    AppendOutcome::Stored(event) => committed.push(event),
                    AppendOutcome::Duplicate(_) => retried += 1,
                    AppendOutcome::Refused(ChangeError::TooManyReactions) => too_many += 1,
                    _ => {}
                }
            }
        }
        let mut live = Timeline::new();
        for event in &committed {
            live.apply(event);
        }
        let mut resumed = Timeline::new();
        for event in all_events(&store, &name).await {
            resumed.apply(&event);
        }
        let history = page(&store, &name).await;
        let live: Vec<ChatMessage> = live.messages().cloned().collect();
        let resumed: Vec<ChatMessage> = resumed.messages().cloned().collect();
        assert_eq!(history, live, "seed {seed}: history against the live fold");
        assert_eq!(history, resumed, "seed {seed}: history against the replay's fold");
        stood.0 += history.iter().filter(|m| m.edited_at_ms.is_some()).count();
        stood.1 += history.iter().filter(|m| m.deleted).count();
        stood.2 += history.iter().map(|m| m.reactions.len()).sum::<usize>();
    }
    assert!(stood.0 > 10 && stood.1 > 10 && stood.2 > 10, "{stood:?}");
    assert!(retried > 10 && too_many > 0, "retried {retried}, too many {too_many}");
}
