//! Search indexing, in the background. Messages are indexed after their commit, so that
//! a send pays only for queueing its id (see the store's `index_for_search`); this task is
//! what takes the queue. Every message service runs one, and the store lets one
//! at a time work, so search stays current while any service is up. Each interval it
//! indexes round after round until one comes back short (the queue is empty), so a burst
//! is taken in whole rounds and a quiet system makes one small query a tick.

use crate::metrics::Metrics;
use crate::settings::SearchSettings;
use chat_common::shutdown::CancellationToken;
use chat_store::{IndexRound, Store};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

/// Runs until `shutdown`. A round cut short by the shutdown rolls back and leaves its
/// queue entries for the next indexer.
pub fn spawn(
    store: Arc<dyn Store>,
    settings: &SearchSettings,
    metrics: Metrics,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let batch = settings.index_batch;
    let mut tick = tokio::time::interval(Duration::from_millis(settings.index_interval_ms));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            loop {
                let round = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    round = store.index_for_search(batch) => round,
                };
                match round {
                    Ok(IndexRound::Indexed { messages, more }) => {
                        metrics.search_indexed.inc_by(messages);
                        if !more {
                            break;
                        }
                    }
                    Ok(IndexRound::Busy) => break,
                    Err(error) => {
                        metrics.search_index_errors.inc();
                        tracing::warn!(%error, "search indexing failed; trying again at the next interval");
                        break;
                    }
                }
            }
        }
    })
}
