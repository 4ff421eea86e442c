//! The stream reader on a Redis Cluster.
//!
//! One `XREAD` may not name keys of different slots, and each partition has a slot of its
//! own, so this reader keeps one blocking read per stream, each on a connection of its own
//! to the master that holds the stream's slot (a blocked read holds its connection). It
//! learns where a slot lives from `MOVED` replies, starting from any seed node, and follows
//! `ASK` for one read while a slot migrates.
//!
//! A read whose connection breaks (its master killed, cut off, or failed over) may have
//! missed entries the old master took and never passed to its replica, so the reader
//! yields [`BusItem::Resync`] once and goes back to the seeds, with backoff, until the
//! slot's new master answers; each stream resumes from its last id. While a slot has no
//! master (`CLUSTERDOWN`) its reads wait and retry: delivery of those rooms pauses, and
//! nothing else does.
//!
//! Signals use sharded Pub/Sub: one channel per partition, on the shard of the partition's
//! stream, each subscribed through the redis crate's cluster connection (RESP3 pushes),
//! which subscribes again on the new master after a failover.

use super::{Keys, RedisStreamsConfig, SIGNAL_BATCH, decode_signals, nodelay, read_reply, take_entries};
use crate::partition::key_slot;
use crate::{BusError, BusItem, BusReader, Interest, Link, Signal, SignalReader};
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use redis::aio::MultiplexedConnection;
use redis::cluster_async::ClusterConnection;
use redis::streams::StreamRangeReply;
use redis::{AsyncConnectionConfig, Client, ConnectionAddr, ErrorKind, RedisError, ServerErrorKind, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{PLAN_EVERY, READ_COUNT};

/// The longest wait between attempts to reach a stream's master.
const MAX_BACKOFF: Duration = Duration::from_millis(500);

pub(super) struct ClusterReader {
    nodes: Arc<Nodes>,
    keys: Arc<Keys>,
    interest: Arc<Interest>,
    /// Stream ends (`XREVRANGE`) through the cluster connection, which routes by slot.
    shared: ClusterConnection,
    /// What it reads, by key: the control stream and the partitions wanted.
    streams: HashMap<String, Stream>,
    /// One read in flight per stream (and perhaps one of a stream stopped since).
    reads: FuturesUnordered<BoxFuture<'static, Read>>,
    /// A read's connection broke since the last batch: entries may have been missed.
    missed: bool,
    planned_at: Instant,
    /// Tells a stopped stream's late read from its restarted one's.
    generation: u64,
    /// Down while every stream's reads fail: one master failing over cuts off only its
    /// slots, and the gateway must not give up on the whole bus for it.
    link: Arc<Link>,
}

struct Stream {
    partition: Option<u32>,
    last_id: String,
    generation: u64,
    /// Failed attempts in a row, for the backoff.
    failures: u32,
}

/// What the reads share: how to reach the nodes, and where each slot lives.
struct Nodes {
    config: RedisStreamsConfig,
    seeds: Vec<Client>,
    next_seed: AtomicUsize,
    /// The master of each slot, as the last `MOVED` told; forgotten when it fails.
    owners: Mutex<HashMap<u16, String>>,
}

/// A connection to one node.
struct Node {
    addr: String,
    conn: MultiplexedConnection,
}

/// Where a stream's next read goes.
enum Target {
    /// The node of the last read, if it still stands; else the slot's owner or a seed.
    Usual(Option<Node>),
    /// The slot's new master (`MOVED`).
    Moved(String),
    /// The node a migrating slot's key is on now, for this one read (`ASK`).
    Ask(String),
}

/// A finished read.
struct Read {
    key: String,
    generation: u64,
    node: Option<Node>,
    outcome: Result<Value, RedisError>,
    /// Whether the read got as far as being sent on an open connection.
    connected: bool,
}

impl Nodes {
    fn client_for(&self, addr: &str) -> Result<Client, RedisError> {
        let (host, port) = addr
            .rsplit_once(':')
            .and_then(|(host, port)| Some((host.to_owned(), port.parse().ok()?)))
            .ok_or_else(|| RedisError::from((ErrorKind::Client, "a node address without a port", addr.to_owned())))?;
        let info = self.seeds[0]
            .get_connection_info()
            .clone()
            .set_addr(ConnectionAddr::Tcp(host, port));
        Client::open(info)
    }

    async fn connect(&self, client: &Client, addr: String) -> Result<Node, RedisError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(self.config.block() + Duration::from_secs(5)));
        let mut conn = client.get_multiplexed_async_connection_with_config(&config).await?;
        redis::cmd("CLIENT")
            .arg("SETNAME")
            .arg(format!("{}-reader", self.config.key_prefix.replace(' ', "_")))
            .query_async::<()>(&mut conn)
            .await?;
        Ok(Node { addr, conn })
    }

    /// The slot's master if known, else the next seed (which redirects).
    async fn reach(&self, slot: u16) -> Result<Node, RedisError> {
        let owner = self.owners.lock().expect("owners lock").get(&slot).cloned();
        match owner {
            Some(addr) => self.connect(&self.client_for(&addr)?, addr).await,
            None => {
                let seed = &self.seeds[self.next_seed.fetch_add(1, Ordering::Relaxed) % self.seeds.len()];
                let addr = seed.get_connection_info().addr().to_string();
                self.connect(seed, addr).await
            }
        }
    }

    /// One `XREAD BLOCK` of one stream, at `target`.
    async fn read(
        self: Arc<Self>,
        key: String,
        generation: u64,
        last_id: String,
        target: Target,
        wait: Duration,
    ) -> Read {
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        let slot = key_slot(&key);
        let (node, asking) = match target {
            Target::Usual(Some(node)) => (Ok(node), false),
            Target::Usual(None) => (self.reach(slot).await, false),
            Target::Moved(addr) => (
                async { self.connect(&self.client_for(&addr)?, addr).await }.await,
                false,
            ),
            Target::Ask(addr) => (async { self.connect(&self.client_for(&addr)?, addr).await }.await, true),
        };
        let mut node = match node {
            Ok(node) => node,
            Err(outcome) => {
                return Read {
                    key,
                    generation,
                    node: None,
                    outcome: Err(outcome),
                    connected: false,
                };
            }
        };
        let mut read = redis::cmd("XREAD");
        read.arg("COUNT")
            .arg(READ_COUNT)
            .arg("BLOCK")
            .arg(self.config.block_ms)
            .arg("STREAMS")
            .arg(&key)
            .arg(&last_id);
        let outcome = if asking {
            let mut pipe = redis::pipe();
            pipe.cmd("ASKING").ignore().add_command(read);
            pipe.query_async::<Vec<Value>>(&mut node.conn)
                .await
                .map(|mut replies| replies.pop().unwrap_or(Value::Nil))
        } else {
            read.query_async::<Value>(&mut node.conn).await
        };
        Read {
            key,
            generation,
            node: Some(node),
            outcome,
            connected: true,
        }
    }
}

impl ClusterReader {
    pub(super) async fn start(
        config: RedisStreamsConfig,
        keys: Arc<Keys>,
        interest: Arc<Interest>,
        seeds: Vec<Client>,
        shared: ClusterConnection,
    ) -> Result<Self, BusError> {
        let mut reader = Self {
            nodes: Arc::new(Nodes {
                config,
                seeds,
                next_seed: AtomicUsize::new(0),
                owners: Mutex::new(HashMap::new()),
            }),
            keys,
            interest,
            shared,
            streams: HashMap::new(),
            reads: FuturesUnordered::new(),
            missed: false,
            planned_at: Instant::now(),
            generation: 0,
            link: Arc::new(Link::default()),
        };
        let control = reader.keys.control.clone();
        let end = Self::ends(&reader.shared, std::slice::from_ref(&control)).await?;
        reader.begin(control, None, end.into_iter().next().expect("one end per key"));
        reader.apply_interest().await?;
        Ok(reader)
    }

    /// The id of the newest entry of each stream (`0-0` if it has none): one command per
    /// key, since a pipeline may not span slots.
    async fn ends(shared: &ClusterConnection, keys: &[String]) -> Result<Vec<String>, BusError> {
        let reads = keys.iter().map(|key| {
            let mut conn = shared.clone();
            let mut cmd = redis::cmd("XREVRANGE");
            cmd.arg(key).arg("+").arg("-").arg("COUNT").arg(1);
            async move { cmd.query_async::<StreamRangeReply>(&mut conn).await }
        });
        futures::future::join_all(reads)
            .await
            .into_iter()
            .map(|reply| {
                Ok(reply?
                    .ids
                    .into_iter()
                    .next()
                    .map_or_else(|| "0-0".to_string(), |e| e.id))
            })
            .collect()
    }

    /// Starts reading a stream from `last_id`.
    fn begin(&mut self, key: String, partition: Option<u32>, last_id: String) {
        self.generation += 1;
        let generation = self.generation;
        self.streams.insert(
            key.clone(),
            Stream {
                partition,
                last_id: last_id.clone(),
                generation,
                failures: 0,
            },
        );
        self.reads.push(Box::pin(self.nodes.clone().read(
            key,
            generation,
            last_id,
            Target::Usual(None),
            Duration::ZERO,
        )));
    }

    async fn apply_interest(&mut self) -> Result<(), BusError> {
        self.planned_at = Instant::now();
        let plan = self.interest.plan(self.planned_at);
        self.streams
            .retain(|_, stream| stream.partition.is_none_or(|p| !plan.stop.contains(&p)));
        self.link.set_reads(self.streams.len());
        if plan.start.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = plan
            .start
            .iter()
            .map(|&p| self.keys.partitions[p as usize].clone())
            .collect();
        let ends = Self::ends(&self.shared, &keys).await?;
        for ((&partition, key), last_id) in plan.start.iter().zip(keys).zip(ends) {
            self.begin(key, Some(partition), last_id);
        }
        self.interest.started(&plan.start);
        self.link.set_reads(self.streams.len());
        Ok(())
    }

    /// Files a finished read and sends the stream's next one; returns what it read.
    fn finish(&mut self, read: Read) -> Vec<BusItem> {
        let Some(stream) = self.streams.get_mut(&read.key) else {
            return Vec::new();
        };
        if stream.generation != read.generation {
            return Vec::new();
        }
        let mut items = Vec::new();
        let (target, wait) = match read.outcome {
            Ok(reply) => {
                stream.failures = 0;
                for (_, entries) in read_reply(reply) {
                    if let Some(last) = take_entries(&read.key, entries, &mut items) {
                        stream.last_id = last;
                    }
                }
                (Target::Usual(read.node), Duration::ZERO)
            }
            Err(error) => {
                stream.failures += 1;
                let backoff = (Duration::from_millis(25) * 2u32.pow(stream.failures.min(6))).min(MAX_BACKOFF);
                let slot = key_slot(&read.key);
                match (error.kind(), error.redirect_node()) {
                    (ErrorKind::Server(ServerErrorKind::Moved), Some((addr, _))) => {
                        let known = self
                            .nodes
                            .owners
                            .lock()
                            .expect("owners lock")
                            .insert(slot, addr.to_owned());
                        // A seed's answer only routes; the master read from sending the
                        // stream elsewhere (a resharding) is news.
                        if read
                            .node
                            .as_ref()
                            .is_some_and(|node| known.as_deref() == Some(node.addr.as_str()))
                        {
                            tracing::info!(key = %read.key, %addr, "bus stream moved to another master");
                            self.link.redirected();
                        } else {
                            tracing::debug!(key = %read.key, %addr, "bus stream found");
                        }
                        // Straight there, unless this keeps failing (a failover under way
                        // still names the dead master): then with backoff.
                        let wait = if stream.failures > 1 { backoff } else { Duration::ZERO };
                        (Target::Moved(addr.to_owned()), wait)
                    }
                    (ErrorKind::Server(ServerErrorKind::Ask), Some((addr, _))) => {
                        self.link.redirected();
                        (Target::Ask(addr.to_owned()), Duration::ZERO)
                    }
                    // No master for the slot yet (a failover under way): the same node
                    // will redirect once one is elected.
                    (ErrorKind::Server(ServerErrorKind::ClusterDown | ServerErrorKind::TryAgain), _) => {
                        (Target::Usual(read.node), backoff)
                    }
                    _ => {
                        if read.connected {
                            tracing::warn!(key = %read.key, %error, "bus reader lost a cluster node");
                            self.link.connection_lost();
                            self.missed = true;
                        } else {
                            tracing::debug!(key = %read.key, %error, "bus reader cannot reach a cluster node");
                        }
                        let mut owners = self.nodes.owners.lock().expect("owners lock");
                        if read
                            .node
                            .as_ref()
                            .is_none_or(|node| owners.get(&slot) == Some(&node.addr))
                        {
                            owners.remove(&slot);
                        }
                        (Target::Usual(None), backoff)
                    }
                }
            }
        };
        let next = self
            .nodes
            .clone()
            .read(read.key, read.generation, stream.last_id.clone(), target, wait);
        self.reads.push(Box::pin(next));
        if self.streams.values().all(|stream| stream.failures > 0) {
            self.link.down();
        } else {
            self.link.up();
        }
        items
    }
}

#[async_trait::async_trait]
impl BusReader for ClusterReader {
    async fn next_batch(&mut self) -> Vec<BusItem> {
        loop {
            if self.missed {
                self.missed = false;
                return vec![BusItem::Resync];
            }
            if (self.interest.behind() || self.planned_at.elapsed() >= PLAN_EVERY)
                && let Err(error) = self.apply_interest().await
            {
                // Nothing read is lost: the partitions start once their ends can be read.
                tracing::warn!(%error, "bus reader cannot read where new partitions end");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            let interest = self.interest.clone();
            let plan_at = tokio::time::Instant::from_std(self.planned_at + PLAN_EVERY);
            tokio::select! {
                biased;
                Some(read) = self.reads.next() => {
                    let items = self.finish(read);
                    if !items.is_empty() {
                        return items;
                    }
                }
                () = interest.changed() => {}
                () = tokio::time::sleep_until(plan_at) => {}
            }
        }
    }

    fn link(&self) -> Arc<Link> {
        self.link.clone()
    }
}

/// A gateway's subscription to every partition's signal channel on a cluster.
pub(super) struct ClusterSignals {
    /// Kept so that the subscriptions last; it resubscribes by itself after failovers.
    _conn: ClusterConnection,
    pushes: tokio::sync::mpsc::UnboundedReceiver<redis::PushInfo>,
}

impl ClusterSignals {
    pub(super) async fn start(config: &RedisStreamsConfig, channels: &[String]) -> Result<Self, BusError> {
        let (sender, pushes) = tokio::sync::mpsc::unbounded_channel();
        let client = redis::cluster::ClusterClient::builder(config.cluster_nodes.iter().map(String::as_str))
            .tcp_settings(nodelay())
            .connection_timeout(Duration::from_secs(2))
            .response_timeout(Duration::from_secs(5))
            .use_protocol(redis::ProtocolVersion::RESP3)
            .push_sender(sender)
            .build()?;
        let mut conn = client.get_async_connection().await?;
        // One channel per command: a command's channels may not span slots.
        for channel in channels {
            conn.ssubscribe(channel).await?;
        }
        Ok(Self { _conn: conn, pushes })
    }
}

#[async_trait::async_trait]
impl SignalReader for ClusterSignals {
    async fn next(&mut self) -> Vec<Signal> {
        loop {
            let Some(first) = self.pushes.recv().await else {
                // The connection is gone for good: nothing more will come.
                return std::future::pending().await;
            };
            let mut arrived = vec![first];
            while arrived.len() < SIGNAL_BATCH {
                match self.pushes.try_recv() {
                    Ok(push) => arrived.push(push),
                    Err(_) => break,
                }
            }
            // `smessage` pushes carry [channel, payload]; subscribe confirmations and
            // disconnection notices carry no signal.
            let payloads: Vec<Vec<u8>> = arrived
                .into_iter()
                .filter(|push| push.kind == redis::PushKind::SMessage)
                .filter_map(|push| match push.data.into_iter().nth(1)? {
                    Value::BulkString(bytes) => Some(bytes),
                    _ => None,
                })
                .collect();
            let signals = decode_signals("sharded signals", payloads.iter().map(Vec::as_slice));
            if !signals.is_empty() {
                return signals;
            }
        }
    }
}
