//! Group commit. Sends queue up while a transaction is in flight; the next transaction
//! takes all of them (up to `max_batch`), so throughput grows with load instead of
//! collapsing into one transaction per message. Each sender is answered after the commit,
//! then the committed messages go to the publisher.
//!
//! **Lanes.** With one transaction in flight, a send that arrives just after one starts
//! waits for it to end before its own can start (0.5–0.7 ms of about 3 ms at 1,000 msg/s,
//! `sc_message_service_commit_wait_seconds`). So `commit.lanes` committers may run side
//! by side, each with its own queue and its own transaction in flight, and each room
//! always goes to the same lane (by the stable hash of its name): a room's sends keep
//! their order, and rooms in
//! different lanes stop waiting on each other. The database groups the lanes' commits
//! into its own WAL flushes. Each lane hands its publications to the one publisher in
//! commit order, so a room's events reach the bus in order too. One lane is the default:
//! on a 2-core machine, four lanes' smaller batches cost the database more CPU than the
//! wait saved, and latency rose from 2,000 msg/s up (docs/benchmarks.md).

use crate::metrics::Metrics;
use crate::publisher::Publication;
use crate::settings::CommitSettings;
use chat_bus::BusEvent;
use chat_common::telemetry::{MessageTrace, TRACE_TARGET};
use chat_domain::{ChangeError, TimelineEvent};
use chat_store::{AppendOutcome, NewEvent, Store};
use opentelemetry::trace::TraceContextExt;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// A committed send or change.
#[derive(Debug, Clone)]
pub struct Committed {
    pub event: TimelineEvent,
    /// The `client_msg_id` was stored before: this is the original event.
    pub duplicate: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CommitError {
    #[error("room does not exist")]
    RoomNotFound,
    #[error("{0}")]
    Refused(ChangeError),
    #[error("too many sends waiting for the database")]
    Overloaded,
    #[error("the database is unavailable")]
    Unavailable,
    #[error("the message service is shutting down")]
    ShuttingDown,
    #[error("internal error")]
    Internal,
}

struct Request {
    event: NewEvent,
    reply: oneshot::Sender<Result<Committed, CommitError>>,
    /// The message's trace, from the handler's span, which the database write and the
    /// publish join when it is recorded.
    trace: MessageTrace,
    /// When it was queued: its wait for the group commit is measured from here.
    queued: Instant,
}

/// What a sender waits on while its message is in a batch.
struct Waiter {
    reply: oneshot::Sender<Result<Committed, CommitError>>,
    trace: MessageTrace,
}

/// Submits sends to the committer. Cloned into every gRPC handler; when the last clone is
/// dropped the committer finishes what is queued and stops.
#[derive(Clone)]
pub struct CommitHandle {
    /// One queue per lane.
    lanes: Arc<[mpsc::Sender<Request>]>,
}

impl CommitHandle {
    /// Commits one event, in its trace.
    pub async fn commit(&self, event: NewEvent, trace: MessageTrace) -> Result<Committed, CommitError> {
        self.submit(event, trace)?.await
    }

    /// Queues a message for the next group commit of its room's lane now, and returns the
    /// wait for its answer. A room's messages submitted one after another are committed in
    /// that order, so a batch of sends keeps its order without waiting for each commit.
    pub fn submit(
        &self,
        event: NewEvent,
        trace: MessageTrace,
    ) -> Result<impl std::future::Future<Output = Result<Committed, CommitError>> + use<>, CommitError> {
        let (reply, answer) = oneshot::channel();
        let queued = Instant::now();
        let lane = chat_bus::partition_of(event.room(), self.lanes.len() as u32) as usize;
        self.lanes[lane]
            .try_send(Request {
                event,
                reply,
                trace,
                queued,
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => CommitError::Overloaded,
                mpsc::error::TrySendError::Closed(_) => CommitError::ShuttingDown,
            })?;
        // The committer always answers unless it died, which only happens at shutdown.
        Ok(async move { answer.await.unwrap_or(Err(CommitError::ShuttingDown)) })
    }
}

/// Starts the committer: a task per lane, each sharing `commit.queue`. It runs until every
/// [`CommitHandle`] is dropped and the queues are empty, then drops `publish`, which lets
/// the publisher drain in turn.
pub fn spawn(
    store: Arc<dyn Store>,
    publish: mpsc::Sender<Publication>,
    settings: &CommitSettings,
    metrics: Metrics,
) -> (CommitHandle, JoinHandle<()>) {
    let lanes = settings.lanes.max(1);
    let queue = settings.queue.div_ceil(lanes).max(1);
    let (senders, tasks): (Vec<_>, Vec<_>) = (0..lanes)
        .map(|_| {
            let (tx, rx) = mpsc::channel(queue);
            let lane = run(store.clone(), rx, publish.clone(), settings.max_batch, metrics.clone());
            (tx, tokio::spawn(lane))
        })
        .unzip();
    let task = tokio::spawn(async move {
        for lane in tasks {
            let _ = lane.await;
        }
    });
    (CommitHandle { lanes: senders.into() }, task)
}

async fn run(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<Request>,
    publish: mpsc::Sender<Publication>,
    max_batch: usize,
    metrics: Metrics,
) {
    let mut batch: Vec<Request> = Vec::with_capacity(max_batch);
    let mut messages: Vec<NewEvent> = Vec::with_capacity(max_batch);
    let mut waiters: Vec<Waiter> = Vec::with_capacity(max_batch);
    while rx.recv_many(&mut batch, max_batch).await > 0 {
        // The store takes the messages as a slice; each sender keeps its reply and trace.
        let taken = Instant::now();
        for Request {
            event,
            reply,
            trace,
            queued,
        } in batch.drain(..)
        {
            metrics
                .commit_wait_seconds
                .observe(taken.duration_since(queued).as_secs_f64());
            messages.push(event);
            waiters.push(Waiter { reply, trace });
        }
        metrics.batch_size.observe(messages.len() as f64);
        // One span for the transaction, linked to every message it carries, and a
        // `db.write` span in each message's own trace for the same time.
        // Only for the messages whose traces are recorded (a trace the sampler left out
        // stays out downstream too).
        let batch_span = if waiters.iter().any(|w| w.trace.is_recorded()) {
            tracing::info_span!(target: TRACE_TARGET, "group commit", batch_size = messages.len())
        } else {
            tracing::Span::none()
        };
        let writes: Vec<tracing::Span> = waiters
            .iter()
            .filter(|w| w.trace.is_recorded())
            .map(|w| {
                let span = w.trace.span();
                batch_span.add_link(span.context().span().span_context().clone());
                tracing::info_span!(target: TRACE_TARGET, parent: span, "db.write", batch_size = messages.len())
            })
            .collect();
        let started = Instant::now();
        let result = store.append_batch(&messages).instrument(batch_span).await;
        messages.clear();
        drop(writes);
        metrics.commit_seconds.observe(started.elapsed().as_secs_f64());
        match result {
            Ok(outcomes) => {
                let mut events = Vec::with_capacity(outcomes.len());
                let mut spans = Vec::new();
                for (request, outcome) in waiters.drain(..).zip(outcomes) {
                    let answer = match outcome {
                        AppendOutcome::Stored(event) => {
                            metrics.committed.inc();
                            Ok(Committed {
                                event,
                                duplicate: false,
                            })
                        }
                        AppendOutcome::Duplicate(event) => {
                            metrics.duplicates.inc();
                            Ok(Committed { event, duplicate: true })
                        }
                        AppendOutcome::RoomNotFound => Err(CommitError::RoomNotFound),
                        AppendOutcome::Refused(refusal) => Err(CommitError::Refused(refusal)),
                    };
                    if let Ok(committed) = &answer {
                        // Duplicates are published again too: if the first publish was lost
                        // (a crash between commit and publish), the retry repairs delivery,
                        // and gateways drop the repeat by seq.
                        let publish = if request.trace.is_recorded() {
                            tracing::info_span!(
                                target: TRACE_TARGET,
                                parent: request.trace.span(),
                                "xadd",
                                room = %committed.event.room(),
                                seq = committed.event.seq(),
                            )
                        } else {
                            tracing::Span::none()
                        };
                        events.push(BusEvent {
                            kind: chat_bus::EventKind::Message,
                            room: committed.event.room().clone(),
                            seq: committed.event.seq(),
                            payload: committed.event.to_frame(),
                            traceparent: request.trace.traceparent_through(&publish),
                            published_at_ms: None,
                        });
                        if !publish.is_disabled() {
                            spans.push(publish);
                        }
                    }
                    // The sender may have given up (deadline); the commit stands regardless.
                    let _ = request.reply.send(answer);
                }
                let publication = Publication {
                    events,
                    spans,
                    committed_at: Instant::now(),
                };
                if !publication.events.is_empty() && publish.send(publication).await.is_err() {
                    tracing::error!("publisher stopped before the committer; events not published");
                }
            }
            Err(error) => {
                metrics.store_errors.inc();
                let answer = if error.is_unavailable() {
                    tracing::warn!(%error, batch = waiters.len(), "group commit failed: database unavailable");
                    CommitError::Unavailable
                } else {
                    tracing::error!(error = ?error, batch = waiters.len(), "group commit failed");
                    CommitError::Internal
                };
                for request in waiters.drain(..) {
                    let _ = request.reply.send(Err(answer));
                }
            }
        }
    }
    tracing::debug!("committer drained");
}

#[cfg(test)]
mod tests;
