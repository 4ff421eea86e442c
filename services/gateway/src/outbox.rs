//! A connection's outbound side as the rest of the gateway sees it: a bounded queue of
//! ready-to-send frames, and a way to close the socket with a code.

use crate::queue::{self, Receiver, Sender, TrySendError};
use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use chat_domain::CloseCode;
use pin_project_lite::pin_project;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

/// Turns server-built JSON (always UTF-8) into a websocket text payload without copying.
pub fn text(frame: Bytes) -> Utf8Bytes {
    Utf8Bytes::try_from(frame).expect("server frames are serialized JSON, always UTF-8")
}

/// Why and when a connection is to be closed. The first reason wins.
#[derive(Default)]
pub struct Closer {
    code: OnceLock<CloseCode>,
    /// Mirrors `token` for the fan-out, which asks once per frame: the token's own check
    /// takes a mutex, and with thousands of members per message that lock showed in profiles.
    closing: AtomicBool,
    token: CancellationToken,
    /// The writer's pings since the reader last heard anything from the client.
    silent_pings: AtomicU32,
}

impl Closer {
    pub fn code(&self) -> Option<CloseCode> {
        self.code.get().copied()
    }

    /// Resolves once the connection is to close now. Create it once per loop and poll it
    /// by reference: a new one per iteration registers and deregisters a waiter each time.
    pub fn cancelled(&self) -> Closed<'_> {
        Closed {
            closing: &self.closing,
            token: self.token.cancelled(),
            registered: None,
        }
    }

    /// Closes the socket now with `code`, dropping frames still queued.
    pub fn close(&self, code: CloseCode) {
        let _ = self.code.set(code);
        self.close_now();
    }

    /// The client sent something (a pong included): it is alive.
    pub fn heard(&self) {
        self.silent_pings.store(0, Ordering::Relaxed);
    }

    /// Counts a ping going out, and says whether `pings` went out before it with nothing
    /// heard since: the client is then presumed dead. The writer asks, on its ping timer,
    /// so that an idle socket needs no timer of its own for this (docs/benchmarks.md, idle).
    pub fn unanswered(&self, pings: u32) -> bool {
        self.silent_pings.fetch_add(1, Ordering::Relaxed) >= pings
    }

    fn close_now(&self) {
        self.closing.store(true, Ordering::Release);
        self.token.cancel();
    }
}

pin_project! {
    /// [`Closer::cancelled`]. The writer polls it on every wake-up, once per delivery in a
    /// big room, and the token's own future takes two locks per poll (the token's and its
    /// waiter list's). This one reads the closing flag, and polls the token's future only
    /// to register a waker it has not registered yet. That is enough: the flag is set
    /// before the token is cancelled, and the cancellation wakes the registered waker.
    pub struct Closed<'a> {
        closing: &'a AtomicBool,
        #[pin]
        token: WaitForCancellationFuture<'a>,
        registered: Option<Waker>,
    }
}

impl Future for Closed<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        if this.closing.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        if this
            .registered
            .as_ref()
            .is_some_and(|waker| waker.will_wake(cx.waker()))
        {
            return Poll::Pending;
        }
        let polled = this.token.poll(cx);
        if polled.is_pending() {
            *this.registered = Some(cx.waker().clone());
        }
        polled
    }
}

#[derive(Clone)]
pub struct Outbox {
    tx: Sender<Utf8Bytes>,
    closer: Arc<Closer>,
}

/// What [`Outbox::push`] did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    /// The queue was full: the connection is being closed as a slow consumer.
    SlowConsumer,
    /// The connection is already gone.
    Gone,
}

impl Outbox {
    pub fn new(capacity: usize) -> (Self, Receiver<Utf8Bytes>, Arc<Closer>) {
        let (tx, rx) = queue::bounded(capacity);
        let closer = Arc::new(Closer::default());
        (
            Self {
                tx,
                closer: closer.clone(),
            },
            rx,
            closer,
        )
    }

    /// Queues a frame without waiting. A full queue means the client is not reading fast
    /// enough: rather than buffer without bound, the connection is closed with
    /// [`CloseCode::SlowConsumer`] and the client resumes with `since_seq`.
    /// Only the push that closes the connection reports [`Pushed::SlowConsumer`]: a closing
    /// connection counts once, however many frames are still addressed to it.
    pub fn push(&self, frame: Utf8Bytes) -> Pushed {
        if self.is_closing() {
            return Pushed::Gone;
        }
        match self.tx.try_send(frame) {
            Ok(()) => Pushed::Queued,
            Err(TrySendError::Full(_)) => {
                let first = self.closer.code.set(CloseCode::SlowConsumer).is_ok();
                self.closer.close_now();
                if first { Pushed::SlowConsumer } else { Pushed::Gone }
            }
            Err(TrySendError::Closed(_)) => Pushed::Gone,
        }
    }

    /// Queues an ephemeral frame (typing, presence) if there is room, and drops it if not: a
    /// signal that will be stale in seconds is not worth closing a connection over.
    pub fn offer(&self, frame: Utf8Bytes) -> bool {
        !self.is_closing() && self.tx.try_send(frame).is_ok()
    }

    /// The connection is being closed now: frames for it are dropped.
    pub fn is_closing(&self) -> bool {
        self.closer.closing.load(Ordering::Acquire)
    }

    /// Closes the socket now with `code`, dropping frames still queued.
    pub fn close(&self, code: CloseCode) {
        self.closer.close(code);
    }

    /// Closes with `code` once every queued frame is written (a graceful drain).
    pub fn close_after_queue(&self, code: CloseCode) {
        let _ = self.closer.code.set(code);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_closes_the_connection_and_is_reported_once() {
        let (outbox, _receiver, closer) = Outbox::new(1);
        let frame = || text(Bytes::from_static(b"{}"));
        assert_eq!(outbox.push(frame()), Pushed::Queued);
        assert_eq!(outbox.push(frame()), Pushed::SlowConsumer);
        assert_eq!(outbox.push(frame()), Pushed::Gone, "already closing: not counted again");
        assert_eq!(closer.code(), Some(CloseCode::SlowConsumer));
        assert!(outbox.is_closing());
        assert!(closer.token.is_cancelled());
    }

    #[tokio::test]
    async fn a_waiting_closed_future_wakes_when_the_connection_closes_and_not_before() {
        let (outbox, _receiver, closer) = Outbox::new(4);
        let (asleep, mut is_asleep) = tokio::sync::oneshot::channel();
        let waiting = tokio::spawn(async move {
            let closed = closer.cancelled();
            tokio::pin!(closed);
            // Polled again while open, the later polls skip the token and stay pending.
            for _ in 0..3 {
                assert!(futures::poll!(closed.as_mut()).is_pending());
            }
            asleep.send(()).unwrap();
            closed.await;
        });
        // One thread: once the signal is in, the task is asleep on the future.
        (&mut is_asleep).await.unwrap();
        assert!(!waiting.is_finished());
        outbox.close(CloseCode::ServiceRestart);
        tokio::time::timeout(std::time::Duration::from_secs(10), waiting)
            .await
            .expect("the close woke the waiting future")
            .unwrap();
    }
}
