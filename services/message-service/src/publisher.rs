//! Publishes committed messages to the bus, in commit order, after the commit. A failed
//! publish is retried with backoff: the messages are already durable, so giving up early
//! would only make gateways fill the gap from the database later.

use crate::metrics::Metrics;
use chat_bus::{Bus, BusEvent};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Committed messages to publish, with their `xadd` spans, which end once the entries
/// are in the bus.
pub struct Publication {
    pub events: Vec<BusEvent>,
    pub spans: Vec<tracing::Span>,
    /// When its commit ended: how long publishing took is measured from here.
    pub committed_at: std::time::Instant,
}

/// Batches waiting to be published. Bounded: when the bus is down for long, commits wait
/// here rather than growing memory without limit.
pub const QUEUE_BATCHES: usize = 1024;

/// Starts the publisher. It runs until every sender is dropped and the queue is published,
/// or until `give_up` is cancelled (the drain deadline), whichever comes first.
pub fn spawn(
    bus: Arc<dyn Bus>,
    metrics: Metrics,
    give_up: CancellationToken,
) -> (mpsc::Sender<Publication>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(QUEUE_BATCHES);
    (tx, tokio::spawn(run(bus, rx, metrics, give_up)))
}

async fn run(bus: Arc<dyn Bus>, mut rx: mpsc::Receiver<Publication>, metrics: Metrics, give_up: CancellationToken) {
    let mut batches = Vec::new();
    while rx.recv_many(&mut batches, 64).await > 0 {
        // Coalesce whatever queued into one pipelined round trip.
        let mut events: Vec<BusEvent> = Vec::new();
        let mut spans = Vec::new();
        let mut committed = Vec::with_capacity(batches.len());
        for publication in batches.drain(..) {
            events.extend(publication.events);
            spans.extend(publication.spans);
            committed.push(publication.committed_at);
        }
        let mut backoff = Duration::from_millis(20);
        loop {
            match bus.publish(&events).await {
                Ok(()) => {
                    for at in committed {
                        metrics.publish_seconds.observe(at.elapsed().as_secs_f64());
                    }
                    break;
                }
                Err(error) => {
                    metrics.publish_errors.inc();
                    tracing::warn!(%error, events = events.len(), retry_in_ms = backoff.as_millis() as u64, "publish failed");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = give_up.cancelled() => {
                            tracing::error!(events = events.len(), "drain deadline passed: unpublished events are left for gateways to fill from the database");
                            return;
                        }
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
    tracing::debug!("publisher drained");
}
