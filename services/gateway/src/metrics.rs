//! The gateway's Prometheus metrics.

use chat_bus::SignalKind;
use chat_domain::ErrorCode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    pub code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SignalLabel {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

#[derive(Clone)]
pub struct Metrics {
    pub connections: Gauge,
    pub rooms: Gauge,
    pub frames_in: Counter,
    pub frames_out: Counter,
    pub deliveries: Counter,
    pub fanout_lag_seconds: Histogram,
    pub bus_reader_lag_seconds: prometheus_client::metrics::gauge::Gauge<f64, std::sync::atomic::AtomicU64>,
    pub acks: Counter,
    pub errors: Family<CodeLabel, Counter>,
    pub slow_consumer_closes: Counter,
    pub handshakes_paced: Counter,
    pub repairs: Counter,
    pub gap_fills: Counter,
    pub bus_resyncs: Counter,
    /// Stream partitions the bus reader reads now (the control stream not counted).
    pub bus_partitions: Gauge,
    pub bus_reads: Gauge,
    /// Entries the bus reader took in: what this gateway's share of the traffic costs.
    pub bus_entries_read: Counter,
    /// Entries read that concerned someone here (a room with members or watchers here).
    pub bus_entries_delivered: Counter,
    /// Sockets closed because the bus was out of reach past `gateway.bus_cutoff_ms`.
    pub bus_cutoff_closes: Counter,
    /// The bus reader's connections lost mid-read, and cluster redirects it followed.
    pub bus_connections_lost: Counter,
    pub bus_redirects: Counter,
    pub send_seconds: Histogram,
    /// The `SendMessages` calls alone, from the gateway's side: with the message service's
    /// own `send_seconds`, it tells the time spent between the two processes.
    pub send_call_seconds: Histogram,
    /// Signals heard on the bus, by kind.
    pub signals_in: Family<SignalLabel, Counter>,
    /// Signal frames queued to sockets, by kind.
    pub signals_out: Family<SignalLabel, Counter>,
    /// `typing` frames from clients dropped for coming too fast.
    pub typing_dropped: Counter,
    /// Holds in the presence registry (every gateway's), as last read.
    pub presence_holds: Gauge,
    /// Holds this gateway's sweeps took away because they expired (their gateway died).
    pub presence_expired: Counter,
    /// Big rooms' online members counted (on a join with no fresh count, or when due).
    pub presence_counts: Counter,
    /// Password checks that failed (log-ins and password changes).
    pub login_failures: Counter,
    /// Password checks and reset requests the throttle refused with 429.
    pub throttled: Counter,
    /// Mails handed to the transport, by outcome (`sent`, `failed`).
    pub mails: Family<OutcomeLabel, Counter>,
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            connections: Gauge::default(),
            rooms: Gauge::default(),
            frames_in: Counter::default(),
            frames_out: Counter::default(),
            deliveries: Counter::default(),
            fanout_lag_seconds: Histogram::new(exponential_buckets(0.0002, 2.0, 16)),
            bus_reader_lag_seconds: Default::default(),
            acks: Counter::default(),
            errors: Family::default(),
            slow_consumer_closes: Counter::default(),
            handshakes_paced: Counter::default(),
            repairs: Counter::default(),
            gap_fills: Counter::default(),
            bus_resyncs: Counter::default(),
            bus_partitions: Gauge::default(),
            bus_reads: Gauge::default(),
            bus_entries_read: Counter::default(),
            bus_entries_delivered: Counter::default(),
            bus_cutoff_closes: Counter::default(),
            bus_connections_lost: Counter::default(),
            bus_redirects: Counter::default(),
            send_seconds: Histogram::new(exponential_buckets(0.0002, 2.0, 16)),
            send_call_seconds: Histogram::new(exponential_buckets(0.0002, 2.0, 16)),
            signals_in: Family::default(),
            signals_out: Family::default(),
            typing_dropped: Counter::default(),
            presence_holds: Gauge::default(),
            presence_expired: Counter::default(),
            presence_counts: Counter::default(),
            login_failures: Counter::default(),
            throttled: Counter::default(),
            mails: Family::default(),
        };
        for outcome in ["sent", "failed"] {
            let _ = m.mails.get_or_create(&OutcomeLabel { outcome });
        }
        // Every kind shows from the start, at zero: a dashboard's rate needs the series.
        for kind in [SignalKind::Typing, SignalKind::Presence, SignalKind::Read] {
            let _ = m.signals_in.get_or_create(&signal_label(kind));
            let _ = m.signals_out.get_or_create(&signal_label(kind));
        }
        let r = registry.sub_registry_with_prefix("sc_gateway");
        r.register("connections", "Open websocket connections", m.connections.clone());
        r.register("rooms", "Rooms with at least one local member", m.rooms.clone());
        r.register("frames_in", "Websocket frames received", m.frames_in.clone());
        r.register(
            "signals_in",
            "Ephemeral signals (typing, presence, read) heard from the bus",
            m.signals_in.clone(),
        );
        r.register(
            "signals_out",
            "Ephemeral signal frames queued to sockets",
            m.signals_out.clone(),
        );
        r.register(
            "presence_holds",
            "Holds in the presence registry, every gateway's (someone online on some gateway)",
            m.presence_holds.clone(),
        );
        r.register(
            "presence_expired",
            "Presence holds this gateway's sweeps removed because they were not renewed",
            m.presence_expired.clone(),
        );
        r.register(
            "presence_counts",
            "Big rooms' online members counted (a join without a fresh count, or a summary due)",
            m.presence_counts.clone(),
        );
        r.register(
            "typing_dropped",
            "Typing frames from clients dropped for coming faster than signals.typing_min_interval_ms",
            m.typing_dropped.clone(),
        );
        r.register(
            "deliveries",
            "Message frames queued to sockets by the fan-out",
            m.deliveries.clone(),
        );
        r.register("acks", "Sends acknowledged", m.acks.clone());
        r.register(
            "frames_out",
            "Websocket frames written to sockets",
            m.frames_out.clone(),
        );
        r.register(
            "fanout_lag_seconds",
            "From XADD to the entry's delivery to local sockets",
            m.fanout_lag_seconds.clone(),
        );
        r.register(
            "bus_reader_lag_seconds",
            "Age of the newest bus entry when it was read",
            m.bus_reader_lag_seconds.clone(),
        );
        r.register("errors", "Error frames and responses sent, by code", m.errors.clone());
        r.register(
            "slow_consumer_closes",
            "Sockets closed because their outbound queue was full",
            m.slow_consumer_closes.clone(),
        );
        r.register(
            "handshakes_paced",
            "Websocket handshakes refused (503) past handshakes_per_sec",
            m.handshakes_paced.clone(),
        );
        r.register(
            "repairs",
            "Rooms the repair sweep caught up from the database because a publish was lost",
            m.repairs.clone(),
        );
        r.register(
            "gap_fills",
            "History reads made to fill gaps or resync",
            m.gap_fills.clone(),
        );
        r.register(
            "bus_resyncs",
            "Times the bus reader reported possible loss",
            m.bus_resyncs.clone(),
        );
        r.register(
            "bus_partitions",
            "Stream partitions the bus reader reads now (those holding rooms served here)",
            m.bus_partitions.clone(),
        );
        r.register(
            "bus_reads",
            "Reads the bus reader keeps in flight now: on one Redis, 1 while the bus is busy and up to redis.read_connections while it is quiet; on a Redis Cluster, one per stream",
            m.bus_reads.clone(),
        );
        r.register(
            "bus_entries_read",
            "Bus entries read (partitions and the control stream)",
            m.bus_entries_read.clone(),
        );
        r.register(
            "bus_entries_delivered",
            "Bus entries read that concerned a room with members or watchers here",
            m.bus_entries_delivered.clone(),
        );
        r.register(
            "bus_cutoff_closes",
            "Sockets closed with 1012 because the bus was out of reach past gateway.bus_cutoff_ms",
            m.bus_cutoff_closes.clone(),
        );
        r.register(
            "bus_connections_lost",
            "Bus reader connections lost mid-read (a Redis node killed, failed over or cut off)",
            m.bus_connections_lost.clone(),
        );
        r.register(
            "bus_redirects",
            "Redis Cluster redirects (MOVED to a new master, ASK) the bus reader followed",
            m.bus_redirects.clone(),
        );
        r.register(
            "login_failures",
            "Password checks that failed (log-ins and password changes)",
            m.login_failures.clone(),
        );
        r.register(
            "throttled",
            "Password checks and password-reset requests refused with 429 by the log-in throttle",
            m.throttled.clone(),
        );
        r.register(
            "mails",
            "Mails handed to the mail transport, by outcome",
            m.mails.clone(),
        );
        r.register(
            "send_seconds",
            "Send frame received to ack queued",
            m.send_seconds.clone(),
        );
        r.register(
            "send_call_seconds",
            "SendMessages calls to the message services, from the call's start to its answer",
            m.send_call_seconds.clone(),
        );
        m
    }

    pub fn error(&self, code: ErrorCode) {
        self.errors.get_or_create(&CodeLabel { code: code.as_str() }).inc();
    }

    pub fn mail(&self, sent: bool) {
        let outcome = if sent { "sent" } else { "failed" };
        self.mails.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    pub fn signal_in(&self, kind: SignalKind) {
        self.signals_in.get_or_create(&signal_label(kind)).inc();
    }

    pub fn signal_out(&self, kind: SignalKind, frames: usize) {
        self.signals_out
            .get_or_create(&signal_label(kind))
            .inc_by(frames as u64);
    }
}

fn signal_label(kind: SignalKind) -> SignalLabel {
    SignalLabel {
        kind: match kind {
            SignalKind::Typing => "typing",
            SignalKind::Presence => "presence",
            SignalKind::Read => "read",
        },
    }
}
