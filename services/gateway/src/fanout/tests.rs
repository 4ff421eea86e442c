//! The ordering rules of the fan-out, pinned without a database, a bus or a socket: events
//! go in through the same calls the bus reader and a join make, history comes from an
//! in-memory [`History`], and each member is an [`Outbox`] whose queue the test reads.
//! Gap fills wait on tokio's paused clock, which moves on by itself once every task is
//! idle, so a test waits for what it expects, never for a guessed time.

use super::*;
use crate::outbox::Closer;
use crate::queue::Receiver;
use chat_bus::EventKind;
use chat_domain::protocol::ServerFrame;
use chat_domain::{Change, ChangeEvent, ChatMessage, ClientMsgId, CloseCode, Emoji, MessageId};
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicUsize, Ordering};

const GAP_FILL_AFTER: Duration = Duration::from_millis(200);

/// A room's committed events, as the database would hand them to a gap fill.
#[derive(Default)]
struct StoredHistory {
    events: Mutex<Vec<TimelineEvent>>,
    reads: AtomicUsize,
}

impl StoredHistory {
    fn with(messages: impl IntoIterator<Item = ChatMessage>) -> Arc<Self> {
        Self::with_events(messages.into_iter().map(TimelineEvent::Message))
    }

    fn with_events(events: impl IntoIterator<Item = TimelineEvent>) -> Arc<Self> {
        let history = Self::default();
        history.events.lock().unwrap().extend(events);
        Arc::new(history)
    }
}

#[async_trait::async_trait]
impl History for StoredHistory {
    async fn after(&self, room: &RoomName, after_seq: u64, limit: u32) -> Result<Vec<TimelineEvent>, GatewayError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        let events = self.events.lock().unwrap();
        Ok(events
            .iter()
            .filter(|e| e.room() == room && e.seq() > after_seq)
            .take(limit as usize)
            .cloned()
            .collect())
    }
}

fn lobby() -> RoomName {
    RoomName::parse("lobby").unwrap()
}

fn message(seq: u64) -> ChatMessage {
    ChatMessage {
        id: MessageId::new(seq as i64 + 100).unwrap(),
        seq,
        text: format!("message {seq}"),
        client_msg_id: ClientMsgId::parse(&format!("c-{seq}")).unwrap(),
        ..chat_domain::testing::message()
    }
}

fn tombstone(seq: u64) -> ChatMessage {
    let mut message = message(seq);
    message.erase();
    message
}

/// A reaction at `seq` to the message at `target_seq`.
fn reaction(seq: u64, target_seq: u64) -> TimelineEvent {
    TimelineEvent::Change(ChangeEvent {
        id: MessageId::new(seq as i64 + 100).unwrap(),
        room: lobby(),
        seq,
        author: chat_domain::testing::message().author,
        client_msg_id: ClientMsgId::parse(&format!("c-{seq}")).unwrap(),
        at_ms: 0,
        target_seq,
        change: Change::React {
            emoji: Emoji::parse("👍").unwrap(),
        },
    })
}

/// The bus's entry for message `seq`, as a message service publishes it.
fn published(seq: u64) -> BusEvent {
    BusEvent {
        kind: EventKind::Message,
        room: lobby(),
        seq,
        payload: message(seq).to_frame(),
        traceparent: None,
        published_at_ms: None,
    }
}

/// Messages `seqs` arrive from the bus, in that order.
fn deliver(fanout: &Fanout, seqs: impl IntoIterator<Item = u64>) {
    for seq in seqs {
        fanout.deliver(published(seq));
    }
}

fn fanout(history: Arc<StoredHistory>, join_buffer: usize) -> (Fanout, Metrics) {
    let metrics = Metrics::register(&mut Registry::default());
    let interest = Arc::new(Interest::new(8));
    let fanout = Fanout::new(
        "test".into(),
        interest,
        history,
        GAP_FILL_AFTER,
        join_buffer,
        metrics.clone(),
    );
    (fanout, metrics)
}

/// One socket in the room: what it was sent, and how it was closed.
struct Member {
    id: ConnId,
    frames: Receiver<Utf8Bytes>,
    closer: Arc<Closer>,
}

impl Member {
    /// Joins as a socket does: registered first, the cut fixed against the room's last seq
    /// in the database, then made live with its `joined` frame.
    fn join(fanout: &Fanout, id: ConnId, capacity: usize, last_seq: u64, since_seq: Option<u64>) -> Self {
        let member = Self::begin(fanout, id, capacity);
        let hub = fanout.hub(&lobby()).unwrap();
        fanout.fix_cut(&hub, id, last_seq, since_seq);
        assert!(fanout.activate(&hub, id, joined()));
        member
    }

    fn begin(fanout: &Fanout, id: ConnId, capacity: usize) -> Self {
        let (outbox, frames, closer) = Outbox::new(capacity);
        fanout.begin_join(&lobby(), id, outbox);
        Self { id, frames, closer }
    }

    /// The seqs of the messages queued for this socket so far (`joined` as 0).
    fn received(&mut self) -> Vec<u64> {
        std::iter::from_fn(|| self.frames.try_recv())
            .map(|f| seq_of(&f))
            .collect()
    }

    /// Waits until `n` more frames are queued (a fill runs on its own task) and returns
    /// their seqs; the test fails on its deadline instead of hanging if they never come.
    async fn wait_for(&mut self, n: usize) -> Vec<u64> {
        let mut frames = Vec::new();
        while frames.len() < n {
            let wanted = n - frames.len();
            let taken = tokio::time::timeout(Duration::from_secs(60), self.frames.recv_many(&mut frames, wanted))
                .await
                .expect("the frames never came");
            assert!(taken > 0, "the member's queue closed");
        }
        frames.iter().map(seq_of).collect()
    }
}

fn joined() -> Bytes {
    ServerFrame::joined(&lobby(), 0, Vec::new(), false).to_bytes()
}

fn seq_of(frame: &Utf8Bytes) -> u64 {
    match ServerFrame::parse(frame.as_bytes()).unwrap() {
        ServerFrame::Message(m) => m.seq,
        ServerFrame::Reacted(r) => r.seq,
        ServerFrame::Joined { .. } => 0,
        other => panic!("unexpected frame {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn out_of_order_seqs_are_delivered_in_order() {
    let (fanout, _) = fanout(StoredHistory::with([]), 64);
    let mut ann = Member::join(&fanout, 1, 64, 0, None);
    deliver(&fanout, [2, 1, 4, 3]);
    assert_eq!(ann.received(), vec![0, 1, 2, 3, 4]);
}

#[tokio::test(start_paused = true)]
async fn a_repeat_is_dropped() {
    let (fanout, _) = fanout(StoredHistory::with([]), 64);
    let mut ann = Member::join(&fanout, 1, 64, 0, None);
    deliver(&fanout, [1, 2, 1, 2, 3, 2]);
    assert_eq!(ann.received(), vec![0, 1, 2, 3]);
}

#[tokio::test(start_paused = true)]
async fn a_gap_the_bus_leaves_is_filled_from_history() {
    let history = StoredHistory::with((1..=3).map(message));
    let (fanout, metrics) = fanout(history.clone(), 64);
    let mut ann = Member::join(&fanout, 1, 64, 0, None);
    deliver(&fanout, [1, 3]);
    assert_eq!(ann.received(), vec![0, 1], "3 waits for 2");
    assert_eq!(ann.wait_for(2).await, vec![2, 3]);
    assert_eq!(metrics.gap_fills.get(), 1);
    assert_eq!(history.reads.load(Ordering::Relaxed), 1);
}

#[tokio::test(start_paused = true)]
async fn a_gap_fill_delivers_tombstones_and_changes_in_their_place() {
    let history = StoredHistory::with_events([
        TimelineEvent::Message(message(1)),
        TimelineEvent::Message(tombstone(2)),
        reaction(3, 1),
        TimelineEvent::Message(message(4)),
    ]);
    let (fanout, _) = fanout(history, 64);
    let mut ann = Member::join(&fanout, 1, 64, 0, None);
    deliver(&fanout, [1, 4]);
    assert_eq!(ann.received(), vec![0, 1]);
    let mut filled = Vec::new();
    assert_eq!(ann.frames.recv_many(&mut filled, 3).await, 3);
    let frames: Vec<ServerFrame> = filled
        .iter()
        .map(|f| ServerFrame::parse(f.as_bytes()).unwrap())
        .collect();
    assert!(matches!(&frames[0], ServerFrame::Message(m) if m.seq == 2 && m.deleted && m.text.is_empty()));
    assert!(matches!(&frames[1], ServerFrame::Reacted(r) if r.seq == 3 && r.target_seq == 1));
    assert!(matches!(&frames[2], ServerFrame::Message(m) if m.seq == 4));
    fanout.deliver(published(5));
    assert_eq!(ann.received(), vec![5]);
}

#[tokio::test(start_paused = true)]
async fn a_join_without_since_seq_gets_live_messages_from_the_cut() {
    let (fanout, _) = fanout(StoredHistory::with([]), 64);
    let mut ann = Member::begin(&fanout, 1, 64);
    // Published while the join read the room's last seq (5): the first join of the room
    // delivers it, so the cut moves past it and history carries it.
    fanout.deliver(published(6));
    let hub = fanout.hub(&lobby()).unwrap();
    assert_eq!(
        fanout.fix_cut(&hub, 1, 5, None),
        7,
        "history covers 1-6, live starts at 7"
    );
    fanout.deliver(published(7));
    assert_eq!(ann.received(), Vec::<u64>::new(), "nothing before `joined`");
    assert!(fanout.activate(&hub, 1, joined()));
    assert_eq!(ann.received(), vec![0, 7], "`joined`, then what came meanwhile, once");
    fanout.deliver(published(8));
    assert_eq!(ann.received(), vec![8]);
}

#[tokio::test(start_paused = true)]
async fn a_join_with_since_seq_skips_what_the_client_has_seen() {
    let (fanout, _) = fanout(StoredHistory::with([]), 64);
    let mut ann = Member::join(&fanout, 1, 64, 7, None);
    // Bob resumes here having seen up to 9 through another gateway, ahead of this one.
    let mut bob = Member::join(&fanout, 2, 64, 7, Some(9));
    // And Cy resumes from 7, which this gateway has not delivered past yet either.
    let mut cy = Member::join(&fanout, 3, 64, 7, Some(7));
    deliver(&fanout, 8..=10);
    assert_eq!(ann.received(), vec![0, 8, 9, 10]);
    assert_eq!(bob.received(), vec![0, 10], "8 and 9 seen elsewhere: not again");
    assert_eq!(cy.received(), vec![0, 8, 9, 10]);
}

#[tokio::test(start_paused = true)]
async fn after_a_resync_what_was_delivered_is_not_repeated() {
    let history = StoredHistory::with((1..=4).map(message));
    let (fanout, metrics) = fanout(history, 64);
    let mut ann = Member::join(&fanout, 1, 64, 0, None);
    deliver(&fanout, [1, 2]);
    assert_eq!(ann.received(), vec![0, 1, 2]);
    // The bus may have lost 3 and 4: the room catches up from the database.
    fanout.resync_all();
    assert_eq!(ann.wait_for(2).await, vec![3, 4]);
    assert_eq!(metrics.gap_fills.get(), 1);
    // The bus comes back and repeats what the resync already delivered.
    deliver(&fanout, 1..=5);
    assert_eq!(ann.received(), vec![5]);
}

#[tokio::test(start_paused = true)]
async fn a_lost_tail_is_repaired_from_what_the_database_held() {
    // 2 and 3 were committed but never published: nothing after them reveals a gap.
    let history = StoredHistory::with((1..=3).map(message));
    let (fanout, _) = fanout(history, 64);
    let mut ann = Member::join(&fanout, 1, 64, 0, None);
    fanout.deliver(published(1));
    assert_eq!(ann.received(), vec![0, 1]);
    let current: HashMap<RoomName, u64> = [(lobby(), 1)].into();
    assert_eq!(
        fanout.repair(&current),
        0,
        "a room level with the database is left alone"
    );
    let behind: HashMap<RoomName, u64> = [(lobby(), 3)].into();
    assert_eq!(fanout.repair(&behind), 1);
    assert_eq!(ann.wait_for(2).await, vec![2, 3]);
}

#[tokio::test(start_paused = true)]
async fn a_member_that_falls_behind_is_closed_as_a_slow_consumer() {
    let (fanout, metrics) = fanout(StoredHistory::with([]), 64);
    // Room for `joined` and two messages.
    let slow = Member::join(&fanout, 1, 3, 0, None);
    let mut fast = Member::join(&fanout, 2, 64, 0, None);
    for seq in 1..=4 {
        fanout.deliver(published(seq));
        fast.received();
    }
    assert_eq!(slow.closer.code(), Some(CloseCode::SlowConsumer));
    assert_eq!(fast.closer.code(), None, "the others are not held back");
    assert_eq!(metrics.slow_consumer_closes.get(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_join_that_buffers_too_much_is_closed_as_a_slow_consumer() {
    // A join collects at most two frames before its `joined` is sent.
    let (fanout, metrics) = fanout(StoredHistory::with([]), 2);
    let joiner = Member::begin(&fanout, 1, 64);
    let hub = fanout.hub(&lobby()).unwrap();
    fanout.fix_cut(&hub, joiner.id, 0, None);
    deliver(&fanout, 1..=3);
    assert_eq!(joiner.closer.code(), Some(CloseCode::SlowConsumer));
    assert_eq!(metrics.slow_consumer_closes.get(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_room_is_forgotten_when_its_last_member_leaves() {
    let (fanout, _) = fanout(StoredHistory::with([]), 64);
    let ann = Member::join(&fanout, 1, 64, 0, None);
    assert_eq!((fanout.len(), fanout.position(&lobby())), (1, Some(0)));
    fanout.leave(&lobby(), ann.id);
    assert!(fanout.is_empty());
    assert_eq!(fanout.position(&lobby()), None);
}

#[tokio::test]
async fn a_room_holds_its_partition_on_the_bus_while_it_has_members_here() {
    use chat_bus::interest::{LINGER, Plan};
    use std::time::Instant;
    let (fanout, _) = fanout(StoredHistory::with([]), 16);
    let interest = fanout.inner.interest.clone();
    let partition = interest.partition_of(&lobby());
    let _first = Member::join(&fanout, 1, 16, 0, None);
    let _second = Member::join(&fanout, 2, 16, 0, None);
    let plan = interest.plan(Instant::now());
    assert_eq!(plan.start, [partition], "the room's partition is wanted");
    interest.started(&plan.start);
    fanout.ready(&lobby()).await;

    fanout.leave(&lobby(), 1);
    assert_eq!(
        interest.plan(Instant::now() + LINGER * 2),
        Plan::default(),
        "still a member here"
    );
    fanout.leave(&lobby(), 2);
    assert_eq!(interest.plan(Instant::now() + LINGER).stop, [partition], "released");
}
