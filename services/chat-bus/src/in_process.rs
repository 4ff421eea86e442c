//! The in-process bus of the all-in-one binary: a bounded log in memory with the same
//! semantics as the Redis Streams bus (ids, readers from their last id, trimming).

use crate::presence::{InMemoryPresence, Presence};
use crate::{Bus, BusError, BusEvent, BusItem, BusReader, Interest, Signal, SignalReader};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, watch};

/// Signals a listener that falls behind may miss (it skips ahead, as an ephemeral signal may
/// be lost).
const SIGNAL_CAPACITY: usize = 4096;

/// A bounded append-only log. Like a stream trimmed with `MAXLEN`, the oldest entries go
/// once it is full; a reader that falls that far behind gets [`BusItem::Resync`].
#[derive(Clone)]
pub struct InProcessBus {
    inner: Arc<Inner>,
}

struct Inner {
    log: Mutex<Log>,
    /// The id of the newest entry; readers wait on it changing.
    newest: watch::Sender<u64>,
    signals: broadcast::Sender<Signal>,
    presence: Arc<InMemoryPresence>,
}

struct Log {
    /// Entries with contiguous ids, the first one's id is `first_id`.
    entries: VecDeque<BusEvent>,
    first_id: u64,
    capacity: usize,
}

impl InProcessBus {
    pub fn new(capacity: usize) -> Self {
        let (newest, _) = watch::channel(0);
        Self {
            inner: Arc::new(Inner {
                log: Mutex::new(Log {
                    entries: VecDeque::with_capacity(capacity.min(4096)),
                    first_id: 1,
                    capacity: capacity.max(1),
                }),
                newest,
                signals: broadcast::channel(SIGNAL_CAPACITY).0,
                presence: Arc::default(),
            }),
        }
    }
}

#[async_trait::async_trait]
impl Bus for InProcessBus {
    async fn publish(&self, events: &[BusEvent]) -> Result<(), BusError> {
        let newest = {
            let mut log = self.inner.log.lock().expect("bus lock poisoned");
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            for event in events {
                if log.entries.len() == log.capacity {
                    log.entries.pop_front();
                    log.first_id += 1;
                }
                let mut event = event.clone();
                event.published_at_ms = Some(now);
                log.entries.push_back(event);
            }
            log.first_id + log.entries.len() as u64 - 1
        };
        self.inner.newest.send_replace(newest);
        Ok(())
    }

    /// One log, read whole by every reader: whatever is held, everything is read.
    fn interest(&self) -> Arc<Interest> {
        Arc::new(Interest::everything(1))
    }

    async fn subscribe(&self, interest: Arc<Interest>) -> Result<Box<dyn BusReader>, BusError> {
        interest.hold_everything();
        interest.started(&interest.plan(std::time::Instant::now()).start);
        let receiver = self.inner.newest.subscribe();
        let last_id = *receiver.borrow();
        Ok(Box::new(InProcessReader {
            inner: self.inner.clone(),
            receiver,
            last_id,
        }))
    }

    async fn ping(&self) -> Result<(), BusError> {
        Ok(())
    }

    async fn signal(&self, signals: &[Signal]) -> Result<(), BusError> {
        for signal in signals {
            // No listener is no error: nobody is there to tell.
            let _ = self.inner.signals.send(signal.clone());
        }
        Ok(())
    }

    fn presence(&self) -> Arc<dyn Presence> {
        self.inner.presence.clone()
    }

    async fn listen(&self) -> Result<Box<dyn SignalReader>, BusError> {
        Ok(Box::new(InProcessSignals(self.inner.signals.subscribe())))
    }
}

struct InProcessSignals(broadcast::Receiver<Signal>);

#[async_trait::async_trait]
impl SignalReader for InProcessSignals {
    async fn next(&mut self) -> Vec<Signal> {
        loop {
            match self.0.recv().await {
                Ok(first) => {
                    let mut signals = vec![first];
                    while let Ok(signal) = self.0.try_recv() {
                        signals.push(signal);
                    }
                    return signals;
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "signal listener fell behind; skipped ahead");
                }
                // The bus is gone (process shutting down): nothing more will come.
                Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    }
}

struct InProcessReader {
    inner: Arc<Inner>,
    receiver: watch::Receiver<u64>,
    last_id: u64,
}

/// At most this many entries per batch, so one reader never holds the lock for long.
const MAX_BATCH: usize = 1024;

impl InProcessReader {
    fn take_available(&mut self) -> Vec<BusItem> {
        let log = self.inner.log.lock().expect("bus lock poisoned");
        let mut items = Vec::new();
        let mut next = self.last_id + 1;
        if next < log.first_id {
            // Trimmed past our position: entries were lost to this reader.
            items.push(BusItem::Resync);
            next = log.first_id;
        }
        let start = (next - log.first_id) as usize;
        items.extend(
            log.entries
                .iter()
                .skip(start)
                .take(MAX_BATCH)
                .cloned()
                .map(BusItem::Event),
        );
        let taken = items.iter().filter(|i| matches!(i, BusItem::Event(_))).count() as u64;
        self.last_id = next + taken - 1;
        items
    }
}

#[async_trait::async_trait]
impl BusReader for InProcessReader {
    async fn next_batch(&mut self) -> Vec<BusItem> {
        loop {
            // Mark the current value seen before reading, so a publish in between wakes us.
            self.receiver.borrow_and_update();
            let items = self.take_available();
            if !items.is_empty() {
                return items;
            }
            if self.receiver.changed().await.is_err() {
                // The bus is gone (process shutting down): nothing more will come.
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use chat_domain::RoomName;

    fn event(seq: u64) -> BusEvent {
        BusEvent {
            kind: crate::EventKind::Message,
            room: RoomName::parse("r").unwrap(),
            seq,
            payload: Bytes::from(format!("{{\"seq\":{seq}}}")),
            traceparent: None,
            published_at_ms: None,
        }
    }

    fn seqs(items: &[BusItem]) -> Vec<u64> {
        items
            .iter()
            .filter_map(|i| match i {
                BusItem::Event(e) => Some(e.seq),
                BusItem::Resync => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn readers_see_everything_after_they_subscribed_in_order() {
        let bus = InProcessBus::new(100);
        bus.publish(&[event(1)]).await.unwrap();
        let mut a = bus.subscribe(bus.interest()).await.unwrap();
        let mut b = bus.subscribe(bus.interest()).await.unwrap();
        bus.publish(&[event(2), event(3)]).await.unwrap();
        bus.publish(&[event(4)]).await.unwrap();
        assert_eq!(seqs(&a.next_batch().await), vec![2, 3, 4]);
        assert_eq!(seqs(&b.next_batch().await), vec![2, 3, 4]);
    }

    #[tokio::test]
    async fn a_waiting_reader_wakes_on_publish() {
        let bus = InProcessBus::new(100);
        let mut reader = bus.subscribe(bus.interest()).await.unwrap();
        let waiting = tokio::spawn(async move { reader.next_batch().await });
        tokio::task::yield_now().await;
        bus.publish(&[event(1)]).await.unwrap();
        assert_eq!(seqs(&waiting.await.unwrap()), vec![1]);
    }

    #[tokio::test]
    async fn a_reader_trimmed_past_gets_resync_then_what_is_left() {
        let bus = InProcessBus::new(3);
        let mut reader = bus.subscribe(bus.interest()).await.unwrap();
        bus.publish(&[event(1), event(2), event(3), event(4), event(5)])
            .await
            .unwrap();
        let items = reader.next_batch().await;
        assert_eq!(items[0], BusItem::Resync);
        assert_eq!(seqs(&items), vec![3, 4, 5]);
        bus.publish(&[event(6)]).await.unwrap();
        let items = reader.next_batch().await;
        assert_eq!(seqs(&items), vec![6]);
        assert!(matches!(&items[0], BusItem::Event(e) if e.published_at_ms.is_some() && e.payload == event(6).payload));
    }
}
