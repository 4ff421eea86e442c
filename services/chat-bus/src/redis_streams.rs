//! The scaled bus: `P` partitioned Redis Streams (`{prefix}:events:{<tag>}`), a room's
//! partition chosen by a stable hash of its name ([`crate::partition`]), and one control
//! stream (`{prefix}:control`) for what every gateway needs. Publishers pipeline
//! `XADD … MAXLEN ~ N`. Each gateway reads the control stream and the partitions its
//! [`Interest`] wants, with `XREAD BLOCK`s from its last seen ids (spread over up to
//! `read_connections` while the bus is quiet, one read of every stream while it is busy);
//! it starts a partition from its current end when a room there is first held, and after a
//! lost connection resumes every stream from the same ids.
//!
//! Ephemeral signals go over Pub/Sub on one channel, `{prefix}:signals`: published on the
//! same connection as the streams, heard on a connection of each listener's own.
//!
//! On a Redis Cluster (`cluster_nodes` set) the same keys spread over the masters by their
//! hash tags. Publishes, presence and signals go through the redis crate's cluster
//! connection, which follows redirects and failovers; the reader is [`cluster`]'s.

mod cluster;

use crate::partition::{MAX_PARTITIONS, hash_tag};
use crate::presence::{Presence, RedisPresence};
use crate::{Bus, BusError, BusEvent, BusItem, BusReader, EventKind, Interest, Link, Signal, SignalReader};
use bytes::Bytes;
use chat_domain::RoomName;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::streams::StreamRangeReply;
use redis::{AsyncConnectionConfig, Client, Cmd, Pipeline, RedisFuture, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The most connections a reader spreads its reads over on one Redis unless configured:
/// about 8 streams a read with 64 partitions, a third of the cost of one read of them all
/// at moderate load (`docs/benchmarks.md`).
pub const DEFAULT_READ_CONNECTIONS: u32 = 8;

/// The most read connections a setting may ask for.
pub const MAX_READ_CONNECTIONS: u32 = 64;

fn default_read_connections() -> u32 {
    DEFAULT_READ_CONNECTIONS
}

#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RedisStreamsConfig {
    /// May hold a password: masked when printed.
    #[serde(serialize_with = "chat_common::settings::serialize_url")]
    pub url: String,
    /// Prefix of every key, so deployments (and tests) can share one Redis. No `{` or `}`:
    /// the partitions' hash tags must be the first in their keys.
    pub key_prefix: String,
    /// Number of stream partitions, at most 1024; the same on every service and gateway.
    /// A gateway reads only the partitions holding rooms it serves, so more partitions
    /// mean a closer fit to what it serves (and more streams to list in each read).
    #[serde(alias = "shards")]
    pub partitions: u32,
    /// Approximate length each stream is trimmed to (`MAXLEN ~`). It bounds Redis memory and
    /// how far behind a gateway may fall before it must resync from the database.
    pub max_len: u64,
    /// How long one `XREAD BLOCK` waits, in milliseconds, before it is issued again.
    pub block_ms: u64,
    /// On one Redis, the most connections a gateway's reader spreads its partitions over,
    /// each with one `XREAD BLOCK` in flight, from 1 to 64 (1: always one read). Redis runs
    /// a read by the number of streams it names, and again whenever one of them grows, so
    /// narrower reads cost it less at moderate load; on a busy bus one wide read returns
    /// many entries for one call, and the reader gathers its reads into one while they come
    /// back full. A Redis Cluster reads each stream on its own.
    #[serde(default = "default_read_connections")]
    pub read_connections: u32,
    /// Seed nodes of a Redis Cluster (`redis://host:port`, a few masters or replicas; the
    /// rest are discovered). Empty: one Redis at `url`.
    #[serde(default)]
    pub cluster_nodes: Vec<String>,
}

impl RedisStreamsConfig {
    pub fn new(url: impl Into<String>, key_prefix: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            key_prefix: key_prefix.into(),
            partitions: 64,
            max_len: 100_000,
            block_ms: 2000,
            read_connections: DEFAULT_READ_CONNECTIONS,
            cluster_nodes: Vec::new(),
        }
    }

    /// Checks what the services cannot work without.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_PARTITIONS).contains(&self.partitions) {
            return Err(format!("partitions must be from 1 to {MAX_PARTITIONS}"));
        }
        if !(1..=MAX_READ_CONNECTIONS).contains(&self.read_connections) {
            return Err(format!("read_connections must be from 1 to {MAX_READ_CONNECTIONS}"));
        }
        if self.key_prefix.contains(['{', '}']) {
            return Err("key_prefix must not contain `{` or `}` (the partitions' hash tags)".into());
        }
        Ok(())
    }

    fn block(&self) -> Duration {
        Duration::from_millis(self.block_ms)
    }

    fn signal_channel(&self) -> String {
        format!("{}:signals", self.key_prefix)
    }
}

/// The connection publishes, presence and reads of stream ends share: one Redis, or the
/// redis crate's cluster connection, which routes each command by its key's slot and follows
/// `MOVED`, `ASK` and failovers.
#[derive(Clone)]
enum Shared {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Shared {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}

/// Every stream's key, worked out once: finding a partition's hash tag takes hashing.
struct Keys {
    partitions: Vec<String>,
    control: String,
    /// On a Redis Cluster, each partition's sharded Pub/Sub channel for the signals of its
    /// rooms, with the partition's hash tag: it lives on the shard of the partition's stream.
    signals: Vec<String>,
}

impl Keys {
    fn new(config: &RedisStreamsConfig) -> Self {
        Self {
            partitions: (0..config.partitions)
                .map(|i| format!("{}:events:{{{}}}", config.key_prefix, hash_tag(i, config.partitions)))
                .collect(),
            control: format!("{}:control", config.key_prefix),
            signals: (0..config.partitions)
                .map(|i| format!("{}:signals:{{{}}}", config.key_prefix, hash_tag(i, config.partitions)))
                .collect(),
        }
    }

    fn signal_channel(&self, signal: &Signal) -> &str {
        &self.signals[crate::partition_of(&signal.room, self.signals.len() as u32) as usize]
    }

    fn of(&self, event: &BusEvent) -> &str {
        match event.kind {
            EventKind::Broadcast => &self.control,
            _ => &self.partitions[crate::partition_of(&event.room, self.partitions.len() as u32) as usize],
        }
    }
}

pub struct RedisStreamsBus {
    config: RedisStreamsConfig,
    keys: Arc<Keys>,
    /// One client per node to connect readers and listeners to: the one Redis, or the
    /// cluster's seeds (a listener moves to the next when its node goes).
    clients: Vec<Client>,
    /// Reconnects by itself after Redis restarts, and on a cluster follows its topology.
    publisher: Shared,
    presence: Arc<RedisPresence<Shared>>,
}

impl RedisStreamsBus {
    /// Connects the publishing connection. Fails when Redis cannot be reached now.
    pub async fn connect(config: RedisStreamsConfig) -> Result<Self, BusError> {
        config.validate().map_err(BusError::Config)?;
        let (publisher, clients) = if config.cluster_nodes.is_empty() {
            let client = client(&config.url)?;
            let manager_config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(2)))
                .set_response_timeout(Some(Duration::from_secs(5)))
                .set_number_of_retries(2);
            let manager = ConnectionManager::new_with_config(client.clone(), manager_config).await?;
            (Shared::Single(manager), vec![client])
        } else {
            let cluster = ClusterClient::builder(config.cluster_nodes.iter().map(String::as_str))
                .tcp_settings(nodelay())
                .connection_timeout(Duration::from_secs(2))
                .response_timeout(Duration::from_secs(5))
                // A failover takes the cluster's node timeout and an election: retries
                // spread over about ten seconds carry a publish across one.
                .retries(12)
                .max_retry_wait(1000)
                .build()?;
            let clients = config
                .cluster_nodes
                .iter()
                .map(|url| client(url))
                .collect::<Result<_, _>>()?;
            (Shared::Cluster(cluster.get_async_connection().await?), clients)
        };
        let presence = Arc::new(RedisPresence::new(publisher.clone(), &config.key_prefix));
        Ok(Self {
            keys: Arc::new(Keys::new(&config)),
            config,
            clients,
            publisher,
            presence,
        })
    }

    pub fn config(&self) -> &RedisStreamsConfig {
        &self.config
    }

    /// Sends the pipelines all at once, each on a clone of the shared connection (on a
    /// cluster, each to its slot's master); the first error, if any, after all are done.
    async fn send_all(&self, pipes: impl Iterator<Item = Pipeline>) -> Result<(), BusError> {
        let sends = pipes.map(|pipe| {
            let mut conn = self.publisher.clone();
            async move { pipe.query_async::<()>(&mut conn).await }
        });
        for result in futures::future::join_all(sends).await {
            result?;
        }
        Ok(())
    }

    /// One `XADD … MAXLEN ~` per event, in order.
    fn appends<'a>(&self, events: impl IntoIterator<Item = &'a BusEvent>) -> Pipeline {
        let mut pipe = redis::pipe();
        for event in events {
            let cmd = pipe
                .cmd("XADD")
                .arg(self.keys.of(event))
                .arg("MAXLEN")
                .arg("~")
                .arg(self.config.max_len)
                .arg("*")
                .arg("r")
                .arg(event.room.as_str())
                .arg("s")
                .arg(event.seq)
                .arg("p")
                .arg(event.payload.as_ref());
            if let Some(tp) = &event.traceparent {
                cmd.arg("t").arg(tp.as_str());
            }
            if let Some(kind) = event.kind.wire() {
                cmd.arg("k").arg(kind);
            }
            cmd.ignore();
        }
        pipe
    }
}

/// `items` grouped by `key`, each group in the items' order, the groups in order of first
/// appearance: a batch's streams or channels, one pipeline each on a cluster.
fn by_key<'a, 'k, T>(items: &'a [T], key: impl Fn(&'a T) -> &'k str) -> impl Iterator<Item = Vec<&'a T>> {
    let mut groups: Vec<(&'k str, Vec<&'a T>)> = Vec::new();
    for item in items {
        let k = key(item);
        match groups.iter_mut().find(|(g, _)| *g == k) {
            Some((_, list)) => list.push(item),
            None => groups.push((k, vec![item])),
        }
    }
    groups.into_iter().map(|(_, list)| list)
}

/// TCP_NODELAY: a pipelined XADD or an XREAD must not wait for the ACK of the previous
/// segment (Nagle with the peer's delayed ACK holds it up to 40 ms).
fn nodelay() -> redis::io::tcp::TcpSettings {
    redis::io::tcp::TcpSettings::default().set_nodelay(true)
}

fn client(url: &str) -> Result<Client, BusError> {
    let info = redis::IntoConnectionInfo::into_connection_info(url)?.set_tcp_settings(nodelay());
    Ok(Client::open(info)?)
}

#[async_trait::async_trait]
impl Bus for RedisStreamsBus {
    async fn publish(&self, events: &[BusEvent]) -> Result<(), BusError> {
        if events.is_empty() {
            return Ok(());
        }
        if let Shared::Cluster(_) = self.publisher {
            // A pipeline goes to one node, and a cluster refuses one that spans slots: one
            // pipeline per stream, in order within it, all streams at once.
            let pipes = by_key(events, |event| self.keys.of(event)).map(|list| self.appends(list));
            return self.send_all(pipes).await;
        }
        let pipe = self.appends(events);
        let mut conn = self.publisher.clone();
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    fn interest(&self) -> Arc<Interest> {
        Arc::new(Interest::new(self.config.partitions))
    }

    async fn subscribe(&self, interest: Arc<Interest>) -> Result<Box<dyn BusReader>, BusError> {
        if interest.partitions() != self.config.partitions {
            return Err(BusError::Config("the interest is sized for another bus".into()));
        }
        if let Shared::Cluster(conn) = &self.publisher {
            let reader = cluster::ClusterReader::start(
                self.config.clone(),
                self.keys.clone(),
                interest,
                self.clients.clone(),
                conn.clone(),
            )
            .await?;
            return Ok(Box::new(reader));
        }
        let reader = RedisReader::start(
            self.clients[0].clone(),
            self.config.clone(),
            self.keys.clone(),
            interest,
        )
        .await?;
        Ok(Box::new(reader))
    }

    async fn ping(&self) -> Result<(), BusError> {
        let mut conn = self.publisher.clone();
        redis::cmd("PING").query_async::<()>(&mut conn).await?;
        Ok(())
    }

    async fn signal(&self, signals: &[Signal]) -> Result<(), BusError> {
        if signals.is_empty() {
            return Ok(());
        }
        if let Shared::Cluster(_) = self.publisher {
            // Sharded Pub/Sub: a signal travels within its room's shard, not over the whole
            // cluster bus as PUBLISH would. One pipeline per channel, as for the streams.
            let pipes = by_key(signals, |signal| self.keys.signal_channel(signal)).map(|list| {
                let mut pipe = redis::pipe();
                for signal in list {
                    let channel = self.keys.signal_channel(signal);
                    pipe.cmd("SPUBLISH").arg(channel).arg(signal.encode()).ignore();
                }
                pipe
            });
            return self.send_all(pipes).await;
        }
        let channel = self.config.signal_channel();
        let mut pipe = redis::pipe();
        for signal in signals {
            pipe.cmd("PUBLISH").arg(&channel).arg(signal.encode()).ignore();
        }
        let mut conn = self.publisher.clone();
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    fn presence(&self) -> Arc<dyn Presence> {
        self.presence.clone()
    }

    async fn listen(&self) -> Result<Box<dyn SignalReader>, BusError> {
        if let Shared::Cluster(_) = self.publisher {
            let listener = cluster::ClusterSignals::start(&self.config, &self.keys.signals).await?;
            return Ok(Box::new(listener));
        }
        let mut listener = RedisSignals {
            clients: self.clients.clone(),
            next: 0,
            channel: self.config.signal_channel(),
            messages: None,
        };
        listener.messages = Some(listener.subscribe().await?);
        Ok(Box::new(listener))
    }
}

/// A gateway's Pub/Sub subscription to the signals.
struct RedisSignals {
    /// The one Redis, or the cluster's seeds: a Pub/Sub message reaches every node of a
    /// cluster, so any one will do, and the next is tried when one fails.
    clients: Vec<Client>,
    next: usize,
    channel: String,
    /// `None` after the connection broke, until it is back.
    messages: Option<redis::aio::PubSubStream>,
}

impl RedisSignals {
    async fn subscribe(&mut self) -> Result<redis::aio::PubSubStream, BusError> {
        let client = &self.clients[self.next % self.clients.len()];
        self.next += 1;
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(&self.channel).await?;
        Ok(pubsub.into_on_message())
    }
}

/// Signals taken per wake-up at most, so that a burst is handled in bounded batches.
const SIGNAL_BATCH: usize = 256;

/// Signal messages as they arrived, decoded; a malformed one is logged and skipped.
fn decode_signals<'a>(channel: &str, payloads: impl IntoIterator<Item = &'a [u8]>) -> Vec<Signal> {
    payloads
        .into_iter()
        .filter_map(|payload| {
            let signal = Signal::decode(payload);
            if signal.is_none() {
                tracing::warn!(%channel, "skipping a malformed signal");
            }
            signal
        })
        .collect()
}

#[async_trait::async_trait]
impl SignalReader for RedisSignals {
    async fn next(&mut self) -> Vec<Signal> {
        let mut backoff = Duration::from_millis(50);
        loop {
            let Some(messages) = self.messages.as_mut() else {
                match self.subscribe().await {
                    Ok(messages) => {
                        tracing::info!(channel = %self.channel, "signal listener resubscribed");
                        self.messages = Some(messages);
                    }
                    Err(error) => {
                        tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64, "signal listener cannot reach redis");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                    }
                }
                continue;
            };
            let Some(first) = messages.next().await else {
                tracing::warn!(channel = %self.channel, "signal listener lost its redis connection");
                self.messages = None;
                continue;
            };
            let mut arrived = vec![first];
            // Whatever else has arrived already, without waiting for more.
            while arrived.len() < SIGNAL_BATCH {
                match messages.next().now_or_never() {
                    Some(Some(message)) => arrived.push(message),
                    _ => break,
                }
            }
            let signals = decode_signals(&self.channel, arrived.iter().map(|m| m.get_payload_bytes()));
            if !signals.is_empty() {
                return signals;
            }
        }
    }
}

/// The id of the newest entry of each stream, `0-0` for one that does not exist yet.
async fn current_ends(conn: &mut MultiplexedConnection, keys: &[String]) -> Result<Vec<String>, BusError> {
    let mut pipe = redis::pipe();
    for key in keys {
        pipe.cmd("XREVRANGE").arg(key).arg("+").arg("-").arg("COUNT").arg(1);
    }
    let replies: Vec<StreamRangeReply> = pipe.query_async(conn).await?;
    Ok(replies
        .into_iter()
        .map(|r| r.ids.into_iter().next().map_or_else(|| "0-0".to_string(), |e| e.id))
        .collect())
}

/// The reader on one Redis. Its streams are spread over up to `read_connections` groups by
/// partition (the control stream in the first), and each group has one `XREAD BLOCK` in
/// flight on a connection of its own. One Redis runs an `XREAD` by the number of streams it
/// names, and runs it again in full whenever one of them grows: at moderate load every
/// message wakes a read, and a read of an eighth of the streams costs a third as much. On a
/// busy bus one wide read returns many entries for one call where narrow ones would return
/// a few each, so the reader gathers its streams into one read while reads come back full
/// and spreads them again when they come back with an entry or so ([`width_for`]).
struct RedisReader {
    client: Client,
    config: RedisStreamsConfig,
    keys: Arc<Keys>,
    interest: Arc<Interest>,
    /// `None` after a connection broke, until every one is back.
    conns: Option<Connections>,
    /// What it reads, the control stream first, each with the last id seen.
    streams: Vec<Stream>,
    /// Index into `streams` by key, to file a reply's entries.
    by_key: HashMap<String, usize>,
    /// The reads in flight, and reads since superseded, whose answers are dropped.
    reads: FuturesUnordered<BoxFuture<'static, GroupRead>>,
    /// Per group, the number of its read in flight; `None` when it has none.
    reading: Vec<Option<u64>>,
    /// The number the next read is given.
    next_read: u64,
    /// The most groups it spreads its streams over.
    widest: usize,
    /// Reads and their entries since the width was last chosen.
    load: Load,
    /// A connection broke since the last batch: entries may have been missed.
    missed: bool,
    /// When the interest was last applied: partitions are stopped at most this often.
    planned_at: Instant,
    link: Arc<Link>,
}

/// The reader's connections to the one Redis.
struct Connections {
    /// For the stream ends: never blocked, so it answers at once.
    lookup: MultiplexedConnection,
    /// One per group: a blocked `XREAD` holds its connection for the length of the block.
    groups: Vec<MultiplexedConnection>,
}

/// A stream being read, and where reading resumes.
struct Stream {
    /// `None` for the control stream.
    partition: Option<u32>,
    /// The read it belongs to.
    group: usize,
    key: String,
    last_id: String,
}

/// The group of `width` that reads a stream: partition *p* in group *p* mod `width`, the
/// control stream (`None`) in the first.
fn group_of(partition: Option<u32>, width: usize) -> usize {
    partition.map_or(0, |p| p as usize % width)
}

/// Reads finished and the entries they brought.
#[derive(Debug, Default, Clone, Copy)]
struct Load {
    reads: u64,
    entries: u64,
}

/// Reads in a period below which the width stays as it is: too few to judge by.
const READS_TO_JUDGE: u64 = 100;

/// The groups to read with next, from `width` now, at most `widest`, and the load since it
/// was chosen. Spread reads that bring two entries each or more mean a busy bus: one read.
/// One read that brings fewer than one and a half means a quiet one: spread again. Between
/// the two it stays, so that it does not swing back and forth.
fn width_for(width: usize, widest: usize, load: Load) -> usize {
    if widest == 1 || load.reads < READS_TO_JUDGE {
        width
    } else if width > 1 && load.entries >= 2 * load.reads {
        1
    } else if width == 1 && 2 * load.entries < 3 * load.reads {
        widest
    } else {
        width
    }
}

/// A group's finished read.
struct GroupRead {
    group: usize,
    number: u64,
    outcome: Result<Value, redis::RedisError>,
}

/// How often the reader looks for partitions to stop reading (starting one wakes it).
const PLAN_EVERY: Duration = Duration::from_secs(1);

/// Entries per `XREAD`; bounds one batch's memory.
const READ_COUNT: usize = 1000;

impl RedisReader {
    async fn start(
        client: Client,
        config: RedisStreamsConfig,
        keys: Arc<Keys>,
        interest: Arc<Interest>,
    ) -> Result<Self, BusError> {
        // More connections than partitions would have nothing to read.
        let groups = config.read_connections.min(config.partitions) as usize;
        let mut reader = Self {
            client,
            config,
            keys,
            interest,
            conns: None,
            streams: Vec::new(),
            by_key: HashMap::new(),
            reads: FuturesUnordered::new(),
            reading: vec![None; groups],
            next_read: 0,
            widest: groups,
            load: Load::default(),
            missed: false,
            planned_at: Instant::now(),
            link: Arc::new(Link::default()),
        };
        let mut conns = connect_all(&reader.client, &reader.config, groups).await?;
        let control = [reader.keys.control.clone()];
        let end = current_ends(&mut conns.lookup, &control).await?;
        reader.streams.push(Stream {
            partition: None,
            group: group_of(None, groups),
            key: reader.keys.control.clone(),
            last_id: end.into_iter().next().expect("one end per key"),
        });
        reader.conns = Some(conns);
        reader.link.set_reads(groups);
        // Indexed now, not only when the interest changes: a gateway that holds no room
        // yet still files the control stream's entries and moves past them.
        reader.index();
        reader.apply_interest().await?;
        Ok(reader)
    }

    /// Chooses how many reads to spread the streams over from the load since the last
    /// choice ([`width_for`]).
    async fn choose_width(&mut self) -> Result<(), BusError> {
        let load = std::mem::take(&mut self.load);
        let width = width_for(self.reading.len(), self.widest, load);
        if width != self.reading.len() {
            tracing::debug!(
                width,
                reads = load.reads,
                entries = load.entries,
                "bus reader respreads its reads"
            );
            self.respread(width).await?;
        }
        Ok(())
    }

    /// Spreads the streams over `width` reads, each on a fresh connection: every read in
    /// flight is superseded (its connection stays blocked until it returns, and what it
    /// returns is dropped), and the new reads start from the same ids.
    async fn respread(&mut self, width: usize) -> Result<(), BusError> {
        let (client, config) = (&self.client, &self.config);
        let fresh = futures::future::try_join_all((0..width).map(|_| connect_reader(client, config, "reader"))).await?;
        let conns = self.conns.as_mut().expect("connected before spreading the reads");
        conns.groups = fresh;
        self.reading = vec![None; width];
        for stream in &mut self.streams {
            stream.group = group_of(stream.partition, width);
        }
        self.link.set_reads(width);
        Ok(())
    }

    /// Starts the partitions the interest wants and does not read yet, from their current
    /// ends, and stops those it no longer wants.
    async fn apply_interest(&mut self) -> Result<(), BusError> {
        self.planned_at = Instant::now();
        let plan = self.interest.plan(self.planned_at);
        if plan.start.is_empty() && plan.stop.is_empty() {
            return Ok(());
        }
        self.streams
            .retain(|s| s.partition.is_none_or(|p| !plan.stop.contains(&p)));
        if !plan.start.is_empty() {
            // A group given a stream reads again, on a fresh connection: its read in flight
            // holds the old one until it returns. Everything that can fail comes first, so
            // that a failure leaves the partitions to be started again.
            let width = self.reading.len();
            let mut restarted: Vec<usize> = plan.start.iter().map(|&p| group_of(Some(p), width)).collect();
            restarted.sort_unstable();
            restarted.dedup();
            let (client, config) = (&self.client, &self.config);
            let fresh =
                futures::future::try_join_all(restarted.iter().map(|_| connect_reader(client, config, "reader")))
                    .await?;
            let keys: Vec<String> = plan
                .start
                .iter()
                .map(|&p| self.keys.partitions[p as usize].clone())
                .collect();
            let conns = self.conns.as_mut().expect("connected before applying the interest");
            let ends = current_ends(&mut conns.lookup, &keys).await?;
            for (group, conn) in restarted.into_iter().zip(fresh) {
                conns.groups[group] = conn;
                self.reading[group] = None;
            }
            for ((&partition, key), last_id) in plan.start.iter().zip(keys).zip(ends) {
                self.streams.push(Stream {
                    partition: Some(partition),
                    group: group_of(Some(partition), width),
                    key,
                    last_id,
                });
            }
            self.interest.started(&plan.start);
        }
        self.index();
        tracing::debug!(partitions = self.streams.len() - 1, "bus reader's partitions changed");
        Ok(())
    }

    /// Indexes `streams` by key, after every change to them: a reply's entries for a key
    /// not in the index are dropped, and its stream's last id stays where it was.
    fn index(&mut self) {
        self.by_key = self
            .streams
            .iter()
            .enumerate()
            .map(|(index, stream)| (stream.key.clone(), index))
            .collect();
    }

    async fn reconnect(&mut self) {
        let mut backoff = Duration::from_millis(50);
        loop {
            match connect_all(&self.client, &self.config, self.reading.len()).await {
                Ok(conns) => {
                    tracing::info!(prefix = %self.config.key_prefix, "bus reader reconnected to redis");
                    self.conns = Some(conns);
                    return;
                }
                Err(error) => {
                    self.link.down();
                    tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64, "bus reader cannot reach redis");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    /// A connection broke: every read in flight is dropped, entries may have been missed,
    /// and reading resumes from the same ids once every connection is back.
    fn lost(&mut self) {
        self.conns = None;
        self.reading.fill(None);
        self.missed = true;
    }

    /// Sends an `XREAD` for each group that reads something and has none in flight.
    fn read_every_group(&mut self) {
        let Some(conns) = &self.conns else { return };
        for (group, reading) in self.reading.iter_mut().enumerate() {
            if reading.is_some() {
                continue;
            }
            let streams: Vec<&Stream> = self.streams.iter().filter(|s| s.group == group).collect();
            if streams.is_empty() {
                continue;
            }
            let mut command = redis::cmd("XREAD");
            command
                .arg("COUNT")
                .arg(READ_COUNT)
                .arg("BLOCK")
                .arg(self.config.block_ms)
                .arg("STREAMS");
            for stream in &streams {
                command.arg(&stream.key);
            }
            for stream in &streams {
                command.arg(&stream.last_id);
            }
            self.next_read += 1;
            let number = self.next_read;
            *reading = Some(number);
            let mut conn = conns.groups[group].clone();
            self.reads.push(Box::pin(async move {
                let outcome = command.query_async::<Value>(&mut conn).await;
                GroupRead { group, number, outcome }
            }));
        }
    }

    /// Files a finished read's entries under their streams, moving each one's last id on;
    /// drops a superseded read's.
    fn finish(&mut self, read: GroupRead, items: &mut Vec<BusItem>) {
        if self.reading.get(read.group) != Some(&Some(read.number)) {
            return;
        }
        self.reading[read.group] = None;
        match read.outcome {
            Ok(reply) => {
                self.link.up();
                let before = items.len();
                for (key, entries) in read_reply(reply) {
                    let Some(&index) = self.by_key.get(&key) else { continue };
                    if let Some(last) = take_entries(&key, entries, items) {
                        self.streams[index].last_id = last;
                    }
                }
                self.load.reads += 1;
                self.load.entries += (items.len() - before) as u64;
            }
            Err(error) => {
                self.link.down();
                self.link.connection_lost();
                tracing::warn!(%error, "bus reader lost its redis connection");
                self.lost();
            }
        }
    }
}

/// One of a reader's connections, named `<prefix>-<role>` so that operators (and tests)
/// can find the readers in `CLIENT LIST`. A reply may take the length of a block.
async fn connect_reader(
    client: &Client,
    config: &RedisStreamsConfig,
    role: &str,
) -> Result<MultiplexedConnection, BusError> {
    let settings = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(config.block() + Duration::from_secs(5)));
    let mut conn = client.get_multiplexed_async_connection_with_config(&settings).await?;
    redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg(format!("{}-{role}", config.key_prefix.replace(' ', "_")))
        .query_async::<()>(&mut conn)
        .await?;
    Ok(conn)
}

/// A reader's connections: one to look up stream ends, and one per group.
async fn connect_all(client: &Client, config: &RedisStreamsConfig, groups: usize) -> Result<Connections, BusError> {
    let lookup = connect_reader(client, config, "reader-lookup").await?;
    let groups = futures::future::try_join_all((0..groups).map(|_| connect_reader(client, config, "reader"))).await?;
    Ok(Connections { lookup, groups })
}

/// One stream entry: its id, and its event unless malformed.
type Entry = (String, Option<BusEvent>);

/// Walks an `XREAD` reply as Redis sent it: each stream's key and its entries, as `(id,
/// event)`, the event `None` for an entry that does not parse. Payloads are moved out
/// rather than copied through maps: with every message read by every gateway, the typed
/// reply's per-entry maps and copies showed in profiles.
fn read_reply(reply: Value) -> Vec<(String, Vec<Entry>)> {
    let streams: Vec<(Value, Value)> = match reply {
        // RESP2: [[key, entries], ...]; RESP3: {key: entries, ...}.
        Value::Array(streams) => streams.into_iter().filter_map(pair).collect(),
        Value::Map(streams) => streams,
        _ => Vec::new(),
    };
    streams
        .into_iter()
        .filter_map(|(key, entries)| {
            let Value::Array(entries) = entries else { return None };
            let entries = entries
                .into_iter()
                .filter_map(|entry| {
                    let (id, fields) = pair(entry)?;
                    let id = text(id)?;
                    let event = parse_entry(fields).map(|mut event| {
                        // A stream id is `<milliseconds>-<sequence>`, stamped by Redis at XADD.
                        event.published_at_ms = id.split('-').next().and_then(|ms| ms.parse().ok());
                        event
                    });
                    Some((id, event))
                })
                .collect();
            Some((text(key)?, entries))
        })
        .collect()
}

/// Appends one stream's events to `items`; returns the last id, if any entry came.
fn take_entries(key: &str, entries: Vec<Entry>, items: &mut Vec<BusItem>) -> Option<String> {
    let mut last = None;
    for (id, event) in entries {
        match event {
            Some(event) => items.push(BusItem::Event(event)),
            None => tracing::warn!(%key, %id, "skipping malformed bus entry"),
        }
        last = Some(id);
    }
    last
}

/// A two-element array as its elements.
fn pair(value: Value) -> Option<(Value, Value)> {
    let Value::Array(mut items) = value else { return None };
    if items.len() != 2 {
        return None;
    }
    let second = items.pop()?;
    Some((items.pop()?, second))
}

fn bytes(value: Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(bytes) => Some(bytes),
        Value::SimpleString(s) => Some(s.into_bytes()),
        _ => None,
    }
}

fn text(value: Value) -> Option<String> {
    String::from_utf8(bytes(value)?).ok()
}

/// An entry's fields (`r` room, `s` seq, `p` payload, optional `t` traceparent and `k`
/// kind) as a [`BusEvent`]; `None` if one is missing or malformed.
fn parse_entry(fields: Value) -> Option<BusEvent> {
    let fields = match fields {
        Value::Array(flat) => flat,
        Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        _ => return None,
    };
    let (mut room, mut seq, mut payload, mut traceparent, mut kind) = (None, None, None, None, None);
    let mut fields = fields.into_iter();
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        let value = bytes(value)?;
        match bytes(name)?.as_slice() {
            b"r" => room = Some(String::from_utf8(value).ok()?),
            b"s" => seq = Some(std::str::from_utf8(&value).ok()?.parse().ok()?),
            b"p" => payload = Some(Bytes::from(value)),
            b"t" => traceparent = String::from_utf8(value).ok(),
            b"k" => kind = Some(value),
            _ => {}
        }
    }
    Some(BusEvent {
        kind: EventKind::from_wire(kind.as_deref())?,
        room: RoomName::parse(&room?).ok()?,
        seq: seq?,
        payload: payload?,
        traceparent,
        published_at_ms: None,
    })
}

#[async_trait::async_trait]
impl BusReader for RedisReader {
    async fn next_batch(&mut self) -> Vec<BusItem> {
        loop {
            if self.conns.is_none() {
                self.reconnect().await;
            }
            if self.missed {
                self.missed = false;
                return vec![BusItem::Resync];
            }
            if self.planned_at.elapsed() >= PLAN_EVERY
                && let Err(error) = self.choose_width().await
            {
                tracing::warn!(%error, "bus reader lost its redis connection");
                self.lost();
                continue;
            }
            if (self.interest.behind() || self.planned_at.elapsed() >= PLAN_EVERY)
                && let Err(error) = self.apply_interest().await
            {
                tracing::warn!(%error, "bus reader lost its redis connection");
                self.lost();
                continue;
            }
            self.read_every_group();
            let interest = self.interest.clone();
            // A room held on a partition not read yet cuts the wait short: the join that
            // held it waits for the partition to be read.
            let read = tokio::select! {
                biased;
                Some(read) = self.reads.next() => read,
                () = interest.changed() => continue,
            };
            let mut items = Vec::new();
            self.finish(read, &mut items);
            // What the other groups have read already joins the batch.
            while let Some(Some(read)) = self.reads.next().now_or_never() {
                self.finish(read, &mut items);
            }
            if !items.is_empty() {
                return items;
            }
        }
    }

    fn link(&self) -> Arc<Link> {
        self.link.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::{Load, MAX_READ_CONNECTIONS, RedisReader, RedisStreamsBus, RedisStreamsConfig, by_key, width_for};
    use crate::{Bus, BusEvent, BusItem, BusReader, EventKind};
    use bytes::Bytes;
    use chat_domain::RoomName;
    use std::collections::HashMap;
    use std::time::Duration;

    #[test]
    fn reads_gather_when_they_come_back_full_and_spread_when_they_come_back_nearly_empty() {
        let load = |reads, entries| Load { reads, entries };
        assert_eq!(width_for(8, 8, load(1000, 2000)), 1, "two entries a read: one read");
        assert_eq!(width_for(8, 8, load(1000, 1999)), 8);
        assert_eq!(width_for(1, 8, load(1000, 1499)), 8, "under one and a half: spread");
        assert_eq!(width_for(1, 8, load(1000, 1500)), 1);
        assert_eq!(width_for(1, 8, load(99, 0)), 1, "too few reads to judge");
        assert_eq!(width_for(8, 8, load(99, 990)), 8, "too few reads to judge");
        assert_eq!(width_for(1, 1, load(1000, 0)), 1, "one connection: always one read");
    }

    /// Against a real Redis (`REDIS_URL`, default 127.0.0.1:6379), with a key prefix of its
    /// own: the reader is respread while every group's read is blocked, and the events
    /// published next wake those superseded reads as well as the new ones.
    #[tokio::test]
    async fn reads_respread_between_batches_lose_and_repeat_nothing() {
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let mut config = RedisStreamsConfig::new(url, format!("test-{}", uuid::Uuid::new_v4().simple()));
        config.partitions = 8;
        config.read_connections = 4;
        // Far longer than the test may take: no read returns but for an entry.
        config.block_ms = 120_000;
        let bus = RedisStreamsBus::connect(config.clone()).await.unwrap();
        let interest = bus.interest();
        interest.hold_everything();
        let mut reader = RedisReader::start(bus.clients[0].clone(), config.clone(), bus.keys.clone(), interest)
            .await
            .unwrap();
        let rooms: Vec<RoomName> = (0..16)
            .map(|i| RoomName::parse(&format!("room-{i}")).unwrap())
            .collect();
        let mut got: HashMap<RoomName, Vec<u64>> = HashMap::new();
        let widths = [Some(1), Some(4), Some(2), Some(1), Some(3), None];
        for (round, width) in widths.into_iter().enumerate() {
            let seq = round as u64 + 1;
            let events: Vec<BusEvent> = rooms
                .iter()
                .map(|room| BusEvent {
                    kind: EventKind::Message,
                    room: room.clone(),
                    seq,
                    payload: Bytes::from_static(b"{}"),
                    traceparent: None,
                    published_at_ms: None,
                })
                .collect();
            bus.publish(&events).await.unwrap();
            while rooms
                .iter()
                .any(|room| got.get(room).and_then(|s| s.last()) != Some(&seq))
            {
                let batch = tokio::time::timeout(Duration::from_secs(20), reader.next_batch())
                    .await
                    .expect("the round's events in time");
                for item in batch {
                    let BusItem::Event(event) = item else {
                        panic!("no connection was lost")
                    };
                    got.entry(event.room.clone()).or_default().push(event.seq);
                }
            }
            if let Some(width) = width {
                // Every group blocked in a read, each to be superseded.
                reader.read_every_group();
                assert!(reader.reading.iter().all(Option::is_some));
                reader.respread(width).await.unwrap();
                assert_eq!(reader.reading.len(), width);
                assert_eq!(reader.link.reads(), width as u64, "what the gateway's metrics show");
            }
        }
        let every: Vec<u64> = (1..=widths.len() as u64).collect();
        for room in &rooms {
            assert_eq!(got[room], every, "{room:?}: each once, in order");
        }
    }

    #[test]
    fn read_connections_are_from_one_to_the_bound() {
        let mut config = RedisStreamsConfig::new("redis://127.0.0.1:6379", "sc");
        for good in [1, 8, MAX_READ_CONNECTIONS] {
            config.read_connections = good;
            assert_eq!(config.validate(), Ok(()));
        }
        for bad in [0, MAX_READ_CONNECTIONS + 1] {
            config.read_connections = bad;
            assert!(config.validate().unwrap_err().contains("read_connections"), "{bad}");
        }
    }

    #[test]
    fn groups_keep_the_items_order_within_each_key_and_first_appearance_across() {
        let items = [("b", 1), ("a", 2), ("b", 3), ("c", 4), ("a", 5)];
        let groups: Vec<Vec<i32>> = by_key(&items, |item| item.0)
            .map(|group| group.into_iter().map(|item| item.1).collect())
            .collect();
        assert_eq!(groups, [vec![1, 3], vec![2, 5], vec![4]]);
    }
}
