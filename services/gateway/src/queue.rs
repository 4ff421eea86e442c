//! A bounded single-consumer queue that costs nothing until it is used.
//!
//! Every connection has two queues (frames out, sends up), and most connections are idle.
//! A tokio channel allocates its first block of 32 slots and a cache-padded channel
//! header up front: about 1.7 KiB for the frame queue and 0.9 KiB for the send queue on
//! every socket, idle or not (docs/benchmarks.md). Here a queue is a mutex around a
//! `VecDeque` that grows only when items arrive, with one waker for the one consumer.
//! Both sides only ever hold the lock to move items, never across an await.

use futures::task::AtomicWaker;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Poll;

/// An emptied queue that grew past this many slots lets them go.
const KEEP_CAPACITY: usize = 32;

struct Shared<T> {
    state: Mutex<State<T>>,
    capacity: usize,
    /// Live [`Sender`]s. Changed from and to zero only under the lock, so the consumer's
    /// "no senders left" check cannot miss the last one leaving.
    senders: AtomicUsize,
    consumer: AtomicWaker,
}

struct State<T> {
    items: VecDeque<T>,
    /// The [`Receiver`] is gone: nothing will be taken any more.
    closed: bool,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Nothing panics while holding the lock; if something did, the items are intact.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Why [`Sender::try_send`] gave the item back.
#[derive(Debug, PartialEq, Eq)]
pub enum TrySendError<T> {
    /// The queue holds `capacity` items.
    Full(T),
    /// The receiver is gone.
    Closed(T),
}

/// Creates a queue that holds at most `capacity` items.
pub fn bounded<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            closed: false,
        }),
        capacity,
        senders: AtomicUsize::new(1),
        consumer: AtomicWaker::new(),
    });
    (Sender { shared: shared.clone() }, Receiver { shared })
}

pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Sender<T> {
    /// Queues `item` without waiting.
    pub fn try_send(&self, item: T) -> Result<(), TrySendError<T>> {
        {
            let mut state = self.shared.lock();
            if state.closed {
                return Err(TrySendError::Closed(item));
            }
            if state.items.len() >= self.shared.capacity {
                return Err(TrySendError::Full(item));
            }
            state.items.push_back(item);
        }
        self.shared.consumer.wake();
        Ok(())
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        // This sender is alive, so the count is not zero and needs no lock to grow.
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let last = {
            let _state = self.shared.lock();
            self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1
        };
        if last {
            self.shared.consumer.wake();
        }
    }
}

pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Receiver<T> {
    /// Waits until items are queued, then moves up to `limit` of them into `into` (which
    /// should start empty). Returns how many were moved; 0 means every sender is gone and
    /// the queue is empty.
    pub async fn recv_many(&mut self, into: &mut Vec<T>, limit: usize) -> usize {
        std::future::poll_fn(|cx| {
            let mut state = self.shared.lock();
            if state.items.is_empty() {
                if self.shared.senders.load(Ordering::Acquire) == 0 {
                    return Poll::Ready(0);
                }
                // Registered under the lock: a push after this wakes us, one before it
                // would have left an item.
                self.shared.consumer.register(cx.waker());
                return Poll::Pending;
            }
            let n = state.items.len().min(limit.max(1));
            into.extend(state.items.drain(..n));
            if state.items.is_empty() && state.items.capacity() > KEEP_CAPACITY {
                // A burst is over: give back what it grew to.
                state.items = VecDeque::new();
            }
            Poll::Ready(n)
        })
        .await
    }

    /// Takes the next item if one is queued.
    pub fn try_recv(&mut self) -> Option<T> {
        self.shared.lock().items.pop_front()
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let items = {
            let mut state = self.shared.lock();
            state.closed = true;
            std::mem::take(&mut state.items)
        };
        // Dropped outside the lock: an item's drop may do anything.
        drop(items);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_at_most_its_capacity_and_gives_items_back_when_full_or_closed() {
        let (tx, mut rx) = bounded(2);
        tx.try_send(1).unwrap();
        tx.try_send(2).unwrap();
        assert_eq!(tx.try_send(3), Err(TrySendError::Full(3)));
        assert_eq!(rx.try_recv(), Some(1));
        tx.try_send(3).unwrap();
        drop(rx);
        assert_eq!(tx.try_send(4), Err(TrySendError::Closed(4)));
    }

    #[tokio::test]
    async fn recv_many_takes_in_order_up_to_the_limit_and_ends_when_senders_are_gone() {
        let (tx, mut rx) = bounded(10);
        let other = tx.clone();
        for i in 0..5 {
            tx.try_send(i).unwrap();
        }
        let mut got = Vec::new();
        assert_eq!(rx.recv_many(&mut got, 3).await, 3);
        assert_eq!(rx.recv_many(&mut got, 3).await, 2);
        assert_eq!(got, [0, 1, 2, 3, 4]);
        drop(tx);
        other.try_send(5).unwrap();
        drop(other);
        got.clear();
        assert_eq!(rx.recv_many(&mut got, 3).await, 1, "what was queued is still taken");
        assert_eq!(rx.recv_many(&mut got, 3).await, 0, "then the end");
    }

    #[tokio::test]
    async fn a_waiting_receiver_wakes_for_an_item_from_another_task_and_for_the_last_sender_leaving() {
        let (tx, mut rx) = bounded::<u32>(4);
        let sending = tokio::spawn(async move {
            tokio::task::yield_now().await;
            tx.try_send(7).unwrap();
            tx
        });
        let mut got = Vec::new();
        assert_eq!(rx.recv_many(&mut got, 4).await, 1);
        assert_eq!(got, [7]);
        let tx = sending.await.unwrap();
        let leaving = tokio::spawn(async move { drop(tx) });
        assert_eq!(rx.recv_many(&mut got, 4).await, 0);
        leaving.await.unwrap();
    }
}
