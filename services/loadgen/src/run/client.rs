//! One client's task: paced sends, every frame it reads, and its latency samples.

use super::{Outcome, Progress, Shared, unix_nanos};
use crate::accounting::{Stamp, StreamCheck};
use crate::connect::Ws;
use crate::monitor::Counters;
use crate::protocol::{self, Incoming};
use crate::wire::{Frame, Frames, WireError};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::{Instant, MissedTickBehavior};

/// Latency samples a client keeps before taking the shared histogram's lock.
pub(super) const FLUSH_EVERY: usize = 256;

pub(super) struct SendPlan {
    pub(super) sender: u32,
    pub(super) first_tick: Instant,
    pub(super) period: Duration,
    pub(super) end: Instant,
    pub(super) max_in_flight: usize,
    pub(super) text_bytes: usize,
}

/// A room's reactor: 👍 on the newest message it has seen, taken back at the next tick.
pub(super) struct ReactPlan {
    pub(super) room: usize,
    pub(super) first_tick: Instant,
    pub(super) period: Duration,
    pub(super) end: Instant,
}

/// A room's typist: `typing` every few seconds, as a person typing a long message.
pub(super) struct TypePlan {
    pub(super) first_tick: Instant,
    pub(super) every: Duration,
    pub(super) end: Instant,
}

/// A client's ledger; its socket is [`Client::drive`]'s own, so that a frame borrowed from
/// the socket's buffer can be handed to the ledger.
pub(super) struct Client {
    pub(super) room: Arc<str>,
    pub(super) shared: Arc<Shared>,
    pub(super) progress: Arc<Progress>,
    pub(super) outcome: Outcome,
    /// Send time (unix nanos) of each unacked message, by counter.
    pub(super) pending: HashMap<u64, u64>,
    pub(super) delivery_buf: Vec<u64>,
    pub(super) ack_buf: Vec<u64>,
    /// The seq of the newest message seen: what the next reaction goes to.
    pub(super) newest_message: Option<u64>,
    /// The message this reactor's 👍 stands on, if it does.
    pub(super) reacted_on: Option<u64>,
    /// Reactions sent and not yet answered.
    pub(super) reactions_in_flight: u64,
}

async fn tick(ticker: &mut Option<tokio::time::Interval>) {
    match ticker {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

impl Client {
    /// A send or an ack: publishes how many sends await their ack, and counts it in
    /// `total`, and in `window` when it falls in the measured window.
    fn count(&self, total: &AtomicU64, window: &AtomicU64, now: u64) {
        self.publish_in_flight();
        Counters::add(total, 1);
        if self.shared.in_window(now) {
            window.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// How many sends and reactions await their answer, for the drain.
    fn publish_in_flight(&self) {
        self.progress
            .in_flight
            .store(self.pending.len() as u64 + self.reactions_in_flight, Ordering::Release);
    }

    /// Runs the client until `stop` fires or the connection ends. `stop` is a oneshot, not
    /// a shared cancellation token: every wake-up polls it, and a token's poll takes a
    /// lock that all clients share.
    pub(super) async fn drive(
        mut self,
        mut ws: Ws,
        plan: Option<SendPlan>,
        (reactions, typing): (Option<ReactPlan>, Option<TypePlan>),
        mut stop: oneshot::Receiver<()>,
    ) -> Outcome {
        let paced = |first, period| {
            let mut t = tokio::time::interval_at(first, period);
            // Catch up after a stall, so that the mean rate is the one asked for.
            t.set_missed_tick_behavior(MissedTickBehavior::Burst);
            t
        };
        let mut ticker = plan.as_ref().map(|p| paced(p.first_tick, p.period));
        let mut react_ticker = reactions.as_ref().map(|r| paced(r.first_tick, r.period));
        let mut type_ticker = typing.as_ref().map(|t| paced(t.first_tick, t.every));
        let send_end = plan
            .as_ref()
            .map(|p| p.end)
            .or(reactions.as_ref().map(|r| r.end))
            .or(typing.as_ref().map(|t| t.end))
            .unwrap_or_else(Instant::now);
        let mut sending = plan.is_some() || reactions.is_some() || typing.is_some();
        if !sending {
            self.progress.done_sending.store(true, Ordering::Release);
        }
        // One timer for the whole run, not one per loop turn (a turn per delivery).
        let end_of_sending = tokio::time::sleep_until(send_end);
        tokio::pin!(end_of_sending);
        let mut n = 0u64;
        let mut stopped = false;
        loop {
            tokio::select! {
                biased;
                _ = &mut stop => {
                    stopped = true;
                    break;
                }
                _ = &mut end_of_sending, if sending => {
                    sending = false;
                    self.progress.done_sending.store(true, Ordering::Release);
                }
                _ = tick(&mut react_ticker), if sending => {
                    let reactor = reactions.as_ref().expect("only reactors tick");
                    if let Err(cause) = self.react(&mut ws, reactor.room, n).await {
                        self.outcome.disconnect = Some(cause);
                        break;
                    }
                    n += 1;
                }
                _ = tick(&mut type_ticker), if sending => {
                    let frame = protocol::typing(&self.room);
                    if let Err(e) = ws.send_text(&frame).await {
                        self.outcome.disconnect = Some(format!("send failed: {e}"));
                        break;
                    }
                    self.outcome.typing_sent += 1;
                }
                _ = tick(&mut ticker), if sending => {
                    let plan = plan.as_ref().expect("only senders tick");
                    if self.pending.len() >= plan.max_in_flight {
                        self.outcome.skipped += 1;
                        continue;
                    }
                    if let Err(cause) = self.send(&mut ws, plan, n).await {
                        self.outcome.disconnect = Some(cause);
                        break;
                    }
                    n += 1;
                }
                read = ws.fill() => {
                    let read = read.map_err(|e| match e {
                        WireError::Eof => "eof".to_owned(),
                        e => format!("error: {e}"),
                    });
                    if let Err(cause) = read.and_then(|_| self.take_frames(ws.frames())) {
                        self.outcome.disconnect = Some(cause);
                        break;
                    }
                    if let Err(e) = ws.flush_pongs().await {
                        self.outcome.disconnect = Some(format!("error: {e}"));
                        break;
                    }
                }
            }
        }
        if stopped {
            let _ = tokio::time::timeout(Duration::from_secs(1), ws.close()).await;
        }
        self.finish()
    }

    /// The client's part of the run is over: what it holds goes into its outcome.
    pub(super) fn finish(mut self) -> Outcome {
        self.progress.ended.store(true, Ordering::Release);
        self.flush_latencies();
        self.outcome.unacked = self.pending.len() as u64;
        self.outcome
    }

    /// Handles every whole frame read so far. An error is why the connection ends.
    pub(super) fn take_frames(&mut self, frames: &mut Frames) -> Result<(), String> {
        while let Some(frame) = frames.next_frame().map_err(|e| format!("error: {e}"))? {
            match frame {
                Frame::Text(text) => self.handle(text),
                Frame::Close(code) => return Err(code.map_or_else(|| "close".to_owned(), |c| format!("close {c}"))),
                Frame::Binary(_) | Frame::Control => {}
            }
        }
        Ok(())
    }

    async fn send(&mut self, ws: &mut Ws, plan: &SendPlan, n: u64) -> Result<(), String> {
        let now = unix_nanos();
        let stamp = Stamp {
            sender: plan.sender,
            n,
            sent_at_nanos: now,
        };
        let frame = protocol::send(
            &self.room,
            &stamp.encode_padded(plan.text_bytes),
            &protocol::client_msg_id(n),
        );
        ws.send_text(&frame).await.map_err(|e| format!("send failed: {e}"))?;
        self.pending.insert(n, now);
        self.outcome.sent += 1;
        self.count(&self.shared.monitor.counters.sent, &self.shared.window_sent, now);
        Ok(())
    }

    /// 👍 on the newest message seen, or takes it back if it stands there already.
    async fn react(&mut self, ws: &mut Ws, room: usize, n: u64) -> Result<(), String> {
        let Some(target) = self.newest_message else {
            return Ok(()); // nothing to react to yet
        };
        let back = self.reacted_on == Some(target);
        let now = unix_nanos();
        let frame = protocol::reaction(&self.room, target, back, &protocol::reaction_id(room, n, now));
        ws.send_text(&frame).await.map_err(|e| format!("send failed: {e}"))?;
        self.reacted_on = (!back).then_some(target);
        self.outcome.reactions_sent += 1;
        self.reactions_in_flight += 1;
        self.publish_in_flight();
        Ok(())
    }

    /// An event with this seq arrived: checked for order and loss, and counted as a
    /// delivery. False for one from before the run.
    fn delivered(&mut self, seq: u64, now: u64) -> bool {
        if seq < self.outcome.first_seq {
            return false;
        }
        self.outcome.by_seq.observe(seq);
        let contiguous = self.outcome.by_seq.contiguous().map_or(0, |c| c + 1);
        self.progress.contiguous_plus_one.store(contiguous, Ordering::Release);
        Counters::add(&self.shared.monitor.counters.delivered, 1);
        if self.shared.in_window(now) {
            self.shared.window_delivered.fetch_add(1, Ordering::Relaxed);
        }
        true
    }

    /// A delivery's latency from its send time, when that was in the measured window.
    fn sample(&mut self, sent_at_nanos: u64, now: u64) {
        if self.shared.in_window(sent_at_nanos) {
            self.delivery_buf.push(now.saturating_sub(sent_at_nanos));
            if self.delivery_buf.len() >= FLUSH_EVERY {
                self.flush_latencies();
            }
        }
    }

    fn handle(&mut self, text: &[u8]) {
        let Ok(frame) = Incoming::parse(text) else {
            *self.outcome.errors.entry("unparsable_frame".into()).or_default() += 1;
            return;
        };
        let now = unix_nanos();
        match frame.kind.as_ref() {
            "message" => {
                let Some(seq) = frame.seq else {
                    *self.outcome.errors.entry("message_without_seq".into()).or_default() += 1;
                    return;
                };
                self.newest_message = Some(seq);
                if !self.delivered(seq, now) {
                    return;
                }
                match frame.text.as_deref().and_then(Stamp::parse) {
                    Some(stamp) => {
                        self.outcome
                            .by_sender
                            .entry(stamp.sender)
                            .or_insert_with(|| StreamCheck::starting_at(0))
                            .observe(stamp.n);
                        self.sample(stamp.sent_at_nanos, now);
                    }
                    None => *self.outcome.errors.entry("foreign_message".into()).or_default() += 1,
                }
            }
            "reacted" | "unreacted" => {
                let (Some(seq), Some(sent)) = (
                    frame.seq,
                    frame.client_msg_id.as_deref().and_then(protocol::parse_reaction_id),
                ) else {
                    *self.outcome.errors.entry("foreign_reaction".into()).or_default() += 1;
                    return;
                };
                if self.delivered(seq, now) {
                    self.sample(sent.2, now);
                }
            }
            "ack" if frame.client_msg_id.as_deref().is_some_and(|id| id.starts_with("lr-")) => {
                self.outcome.reactions_acked += 1;
                self.reactions_in_flight = self.reactions_in_flight.saturating_sub(1);
                self.publish_in_flight();
                if let Some(seq) = frame.seq {
                    self.outcome.acked_seqs.insert(seq);
                    self.progress.max_acked_seq.fetch_max(seq, Ordering::AcqRel);
                }
            }
            "ack" => {
                let Some(n) = frame.client_msg_id.as_deref().and_then(protocol::parse_client_msg_id) else {
                    return;
                };
                self.outcome.acked += 1;
                self.outcome.acked_ns.insert(n);
                if frame.duplicate == Some(true) {
                    self.outcome.duplicate_acks += 1;
                }
                if let Some(seq) = frame.seq {
                    self.outcome.acked_seqs.insert(seq);
                    self.progress.max_acked_seq.fetch_max(seq, Ordering::AcqRel);
                }
                if let Some(sent_at) = self.pending.remove(&n)
                    && self.shared.in_window(sent_at)
                {
                    self.ack_buf.push(now.saturating_sub(sent_at));
                }
                self.count(&self.shared.monitor.counters.acked, &self.shared.window_acked, now);
            }
            "typing" => self.outcome.typing_received += 1,
            "presence" => self.outcome.presence_received += 1,
            "error" => {
                let code = frame.code.as_deref().unwrap_or("unknown");
                *self.outcome.errors.entry(code.to_owned()).or_default() += 1;
                Counters::add(&self.shared.monitor.counters.errors, 1);
                let reference = frame.reference.as_deref();
                if let Some(n) = reference.and_then(protocol::parse_client_msg_id) {
                    self.pending.remove(&n);
                } else if reference.is_some_and(|r| r.starts_with("lr-")) {
                    self.reactions_in_flight = self.reactions_in_flight.saturating_sub(1);
                }
                self.publish_in_flight();
            }
            _ => {}
        }
    }

    fn flush_latencies(&mut self) {
        for (buf, histogram) in [
            (&mut self.delivery_buf, &self.shared.delivery),
            (&mut self.ack_buf, &self.shared.ack),
        ] {
            if buf.is_empty() {
                continue;
            }
            let mut h = histogram.lock().expect("not poisoned");
            for nanos in buf.drain(..) {
                h.record_nanos(nanos);
            }
        }
    }
}
