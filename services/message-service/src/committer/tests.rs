//! The committer's batching and ordering rules, against a store that records each batch
//! and holds each commit until the test lets it finish: no database.

use super::*;
use chat_domain::{
    Author, ChatMessage, ClientMsgId, DisplayName, MessageId, MessageKind, MessageText, RoomName, UserId,
};
use chat_store::{NewMessage, RoomInfo, StoreError};
use prometheus_client::registry::Registry;
use tokio::sync::Semaphore;

/// A store whose `append_batch` reports each batch it is given (the client message ids,
/// in order) and then waits for a permit before it commits. Rooms named `missing…` do not
/// exist; a batch holding a client message id `fail` fails whole.
struct GatedStore {
    batches: mpsc::UnboundedSender<Vec<String>>,
    permits: Semaphore,
}

#[async_trait::async_trait]
impl Store for GatedStore {
    async fn enter_room(&self, _: &RoomName) -> Result<(RoomInfo, bool), StoreError> {
        unreachable!("the committer only appends")
    }
    async fn room(&self, _: &RoomName) -> Result<Option<RoomInfo>, StoreError> {
        unreachable!("the committer only appends")
    }
    async fn list_rooms(&self, _: Option<&RoomName>, _: u32) -> Result<Vec<RoomInfo>, StoreError> {
        unreachable!("the committer only appends")
    }
    async fn append_batch(&self, batch: &[NewEvent]) -> Result<Vec<AppendOutcome>, StoreError> {
        let ids: Vec<String> = batch.iter().map(|m| m.client_msg_id().as_str().to_owned()).collect();
        self.batches.send(ids.clone()).unwrap();
        self.permits.acquire().await.unwrap().forget();
        if ids.iter().any(|id| id == "fail") {
            return Err(StoreError::Corrupt("a test failure".into()));
        }
        Ok(batch
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let stored = stored(m, i as u64 + 1);
                if m.room().as_str().starts_with("missing") {
                    AppendOutcome::RoomNotFound
                } else if m.client_msg_id().as_str().starts_with("refuse") {
                    AppendOutcome::Refused(ChangeError::NotYours)
                } else if m.client_msg_id().as_str().starts_with("again") {
                    AppendOutcome::Duplicate(stored)
                } else {
                    AppendOutcome::Stored(stored)
                }
            })
            .collect())
    }
    async fn history_after(&self, _: &RoomName, _: u64, _: u32) -> Result<Vec<TimelineEvent>, StoreError> {
        unreachable!("the committer only appends")
    }
    async fn history_before(&self, _: &RoomName, _: u64, _: u32) -> Result<Vec<ChatMessage>, StoreError> {
        unreachable!("the committer only appends")
    }
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn index_for_search(&self, _max: u32) -> Result<chat_store::IndexRound, StoreError> {
        Ok(chat_store::IndexRound::Indexed {
            messages: 0,
            more: false,
        })
    }
}

fn stored(m: &NewEvent, seq: u64) -> TimelineEvent {
    m.committed(MessageId::new(seq as i64).unwrap(), seq, 0)
}

fn send(room: &str, client_msg_id: &str) -> NewEvent {
    NewEvent::Message(NewMessage {
        room: RoomName::parse(room).unwrap(),
        author: Author {
            id: UserId::parse("u:ann").unwrap(),
            name: DisplayName::parse("Ann").unwrap(),
        },
        text: MessageText::parse(format!("text of {client_msg_id}")).unwrap(),
        client_msg_id: ClientMsgId::parse(client_msg_id).unwrap(),
        kind: MessageKind::Text,
        attachment: None,
        attachment_size: None,
        reply_to: None,
        mentions: Vec::new(),
    })
}

struct Harness {
    handle: CommitHandle,
    batches: mpsc::UnboundedReceiver<Vec<String>>,
    published: mpsc::Receiver<Publication>,
    store: Arc<GatedStore>,
    metrics: Metrics,
}

fn harness(max_batch: usize) -> Harness {
    harness_with(max_batch, 1)
}

fn harness_with(max_batch: usize, lanes: usize) -> Harness {
    let (batches_tx, batches) = mpsc::unbounded_channel();
    let store = Arc::new(GatedStore {
        batches: batches_tx,
        permits: Semaphore::new(0),
    });
    let (publish, published) = mpsc::channel(16);
    let metrics = Metrics::register(&mut Registry::default());
    let settings = CommitSettings {
        max_batch,
        queue: 64,
        lanes,
    };
    let (handle, _task) = spawn(store.clone(), publish, &settings, metrics.clone());
    Harness {
        handle,
        batches,
        published,
        store,
        metrics,
    }
}

impl Harness {
    fn submit(
        &self,
        room: &str,
        id: &str,
    ) -> impl std::future::Future<Output = Result<Committed, CommitError>> + use<> {
        self.handle
            .submit(send(room, id), chat_common::telemetry::MessageTrace::none())
            .unwrap()
    }

    /// Lets the commit in progress finish.
    fn finish_one(&self) {
        self.store.permits.add_permits(1);
    }

    async fn next_batch(&mut self) -> Vec<String> {
        self.batches.recv().await.unwrap()
    }

    async fn next_published(&mut self) -> Vec<(String, u64)> {
        let publication = self.published.recv().await.unwrap();
        publication
            .events
            .iter()
            .map(|e| {
                let frame = chat_domain::protocol::ServerFrame::parse(&e.payload).unwrap();
                let chat_domain::protocol::ServerFrame::Message(m) = frame else {
                    panic!("not a message: {frame:?}")
                };
                assert_eq!(
                    (&m.room, m.seq),
                    (&e.room, e.seq),
                    "the entry names its frame's room and seq"
                );
                (m.client_msg_id.into_string(), m.seq)
            })
            .collect()
    }
}

#[tokio::test]
async fn sends_that_queue_during_a_commit_go_together_in_the_next_in_their_order() {
    let mut h = harness(100);
    let first = h.submit("lobby", "a");
    assert_eq!(h.next_batch().await, ["a"]);
    // While "a" commits, three more queue up.
    let rest = [h.submit("lobby", "b"), h.submit("other", "c"), h.submit("lobby", "d")];
    h.finish_one();
    assert_eq!(first.await.unwrap().event.client_msg_id().as_str(), "a");
    assert_eq!(h.next_batch().await, ["b", "c", "d"], "one commit for all that queued");
    h.finish_one();
    for (answer, id) in rest.into_iter().zip(["b", "c", "d"]) {
        let committed = answer.await.unwrap();
        assert_eq!(committed.event.client_msg_id().as_str(), id, "each sender gets its own");
    }
    assert_eq!(h.next_published().await, [("a".to_owned(), 1)]);
    assert_eq!(
        h.next_published().await,
        [("b".to_owned(), 1), ("c".to_owned(), 2), ("d".to_owned(), 3)],
        "published after the commit, in commit order"
    );
}

#[tokio::test]
async fn a_batch_holds_at_most_max_batch_sends() {
    let mut h = harness(2);
    let first = h.submit("lobby", "a");
    assert_eq!(h.next_batch().await, ["a"]);
    let rest = ["b", "c", "d", "e", "f"].map(|id| h.submit("lobby", id));
    for expected in [vec!["b", "c"], vec!["d", "e"], vec!["f"]] {
        h.finish_one();
        assert_eq!(h.next_batch().await, expected);
    }
    h.finish_one();
    first.await.unwrap();
    for answer in rest {
        answer.await.unwrap();
    }
    assert_eq!(h.metrics.committed.get(), 6);
}

#[tokio::test]
async fn each_outcome_answers_its_own_sender_and_only_stored_messages_are_published() {
    let mut h = harness(100);
    let _first = h.submit("lobby", "a");
    h.next_batch().await;
    let new = h.submit("lobby", "b");
    let missing = h.submit("missing-room", "c");
    let repeat = h.submit("lobby", "again-a");
    let refused = h.submit("lobby", "refuse-edit");
    h.finish_one();
    assert_eq!(h.next_batch().await, ["b", "c", "again-a", "refuse-edit"]);
    h.finish_one();
    assert!(!new.await.unwrap().duplicate);
    assert_eq!(missing.await.unwrap_err(), CommitError::RoomNotFound);
    assert_eq!(
        refused.await.unwrap_err(),
        CommitError::Refused(ChangeError::NotYours),
        "a refused change is answered with its reason and published nowhere"
    );
    let repeat = repeat.await.unwrap();
    assert!(repeat.duplicate, "a repeat is answered with the original");
    h.next_published().await;
    // A duplicate is published again: its first publish may have been lost.
    assert_eq!(
        h.next_published().await,
        [("b".to_owned(), 1), ("again-a".to_owned(), 3)]
    );
    assert_eq!((h.metrics.committed.get(), h.metrics.duplicates.get()), (2, 1));
}

#[tokio::test]
async fn a_failed_commit_answers_every_sender_and_publishes_nothing() {
    let mut h = harness(100);
    let first = h.submit("lobby", "a");
    h.next_batch().await;
    let failing = [h.submit("lobby", "b"), h.submit("lobby", "fail")];
    h.finish_one();
    first.await.unwrap();
    assert_eq!(h.next_batch().await, ["b", "fail"]);
    h.finish_one();
    for answer in failing {
        assert_eq!(answer.await.unwrap_err(), CommitError::Internal);
    }
    assert_eq!(h.metrics.store_errors.get(), 1);
    // The batch before the failure was published; nothing of the failed one.
    h.next_published().await;
    let after = h.submit("lobby", "e");
    h.next_batch().await;
    h.finish_one();
    after.await.unwrap();
    assert_eq!(h.next_published().await, [("e".to_owned(), 1)]);
}

/// Two rooms that fall in different lanes of two.
fn rooms_in_two_lanes() -> (String, String) {
    let lane = |room: &str| chat_bus::partition_of(&RoomName::parse(room).unwrap(), 2);
    let other = (0..)
        .map(|i| format!("room-{i}"))
        .find(|r| lane(r) != lane("lobby"))
        .unwrap();
    ("lobby".to_owned(), other)
}

#[tokio::test]
async fn a_room_in_another_lane_commits_while_one_is_in_flight_and_each_room_keeps_its_order() {
    let mut h = harness_with(100, 2);
    let (lobby, other) = rooms_in_two_lanes();
    let first = h.submit(&lobby, "a");
    assert_eq!(h.next_batch().await, ["a"]);
    // "a" is still committing: the lobby's next send waits for it, the other room's does not.
    let second = h.submit(&lobby, "b");
    let elsewhere = h.submit(&other, "c");
    let started = tokio::time::timeout(std::time::Duration::from_secs(10), h.next_batch())
        .await
        .expect("the other lane's commit starts while the first is in flight");
    assert_eq!(started, ["c"]);
    // Commits finish in the order they started (the gate is fair): "a", then "c".
    h.finish_one();
    assert_eq!(first.await.unwrap().event.client_msg_id().as_str(), "a");
    assert_eq!(h.next_batch().await, ["b"], "the lobby's next, after its first");
    h.finish_one();
    h.finish_one();
    elsewhere.await.unwrap();
    second.await.unwrap();
    let mut published = Vec::new();
    for _ in 0..3 {
        published.extend(h.next_published().await.into_iter().map(|(id, _)| id));
    }
    let position = |id: &str| published.iter().position(|p| p == id).unwrap();
    assert!(
        position("a") < position("b"),
        "a room's events reach the publisher in order: {published:?}"
    );
}
