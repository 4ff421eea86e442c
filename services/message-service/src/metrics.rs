//! The message service's Prometheus metrics.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone)]
pub struct Metrics {
    pub committed: Counter,
    pub duplicates: Counter,
    pub refused: Counter,
    pub store_errors: Counter,
    pub publish_errors: Counter,
    pub batch_size: Histogram,
    pub commit_seconds: Histogram,
    pub commit_wait_seconds: Histogram,
    pub publish_seconds: Histogram,
    /// `SendMessages` calls as this service sees them, from the decoded request to the
    /// answer: against the gateway's `send_call_seconds`, the time between the processes.
    pub send_seconds: Histogram,
    pub search_indexed: Counter,
    pub search_index_errors: Counter,
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            committed: Counter::default(),
            duplicates: Counter::default(),
            refused: Counter::default(),
            store_errors: Counter::default(),
            publish_errors: Counter::default(),
            batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 11)),
            commit_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            commit_wait_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            publish_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            send_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            search_indexed: Counter::default(),
            search_index_errors: Counter::default(),
        };
        let r = registry.sub_registry_with_prefix("sc_message_service");
        r.register("messages_committed", "Messages stored", metrics.committed.clone());
        r.register(
            "send_duplicates",
            "Sends answered from an earlier commit of the same client_msg_id",
            metrics.duplicates.clone(),
        );
        r.register(
            "sends_refused",
            "Sends refused before reaching the database (invalid, unknown room, overloaded)",
            metrics.refused.clone(),
        );
        r.register(
            "store_errors",
            "Group-commit transactions that failed",
            metrics.store_errors.clone(),
        );
        r.register(
            "publish_errors",
            "Bus publishes that failed and were retried",
            metrics.publish_errors.clone(),
        );
        r.register(
            "commit_batch_size",
            "Sends per group-commit transaction",
            metrics.batch_size.clone(),
        );
        r.register(
            "commit_seconds",
            "Time of one group-commit transaction",
            metrics.commit_seconds.clone(),
        );
        r.register(
            "commit_wait_seconds",
            "Time a send waited in the queue for its group commit to start",
            metrics.commit_wait_seconds.clone(),
        );
        r.register(
            "publish_seconds",
            "Time from a group commit's end until its messages are in the bus",
            metrics.publish_seconds.clone(),
        );
        r.register(
            "send_seconds",
            "SendMessages calls handled, from the decoded request to its answer",
            metrics.send_seconds.clone(),
        );
        r.register(
            "search_indexed",
            "Committed, edited or deleted messages brought into the search index after their commit",
            metrics.search_indexed.clone(),
        );
        r.register(
            "search_index_errors",
            "Search indexing rounds that failed (retried at the next interval)",
            metrics.search_index_errors.clone(),
        );
        metrics
    }
}
