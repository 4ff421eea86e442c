//! Which message service a call goes to.
//!
//! Every room has a home among the message services: the one its name ranks highest with
//! (rendezvous hashing over the endpoints' addresses, the same on every gateway). Sending
//! each room's messages through one service matters for throughput: each service commits
//! in group transactions that lock their rooms' rows, and two services committing to the
//! same rooms wait on each other's locks, one transaction after the other (measured:
//! 16,000 msg/s had p99 170 ms over two services sharing rooms and 63 ms through one,
//! docs/benchmarks.md). The home is a preference, never a requirement: any service can
//! commit any room, since the row locks keep seqs gapless, so when a home fails its
//! rooms fall to their next-ranked service until it is back.

use super::Client;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tonic::transport::Endpoint;

/// How long a service that failed at the transport level is passed over. A call that
/// finds every service passed over still tries them, so this only reorders.
const DOWN_FOR: Duration = Duration::from_secs(1);

/// How often endpoint host names are resolved again, so that instances added behind one
/// name (a compose service with replicas, a Kubernetes headless service) are found.
const RESOLVE_EVERY: Duration = Duration::from_secs(10);

/// One message service instance and its own channel.
pub(super) struct Member {
    pub addr: SocketAddr,
    /// The address hashed once: half of every ranking score.
    key: u64,
    pub client: Client,
    /// Until when (milliseconds after `epoch`) this member is passed over; 0 when it is up.
    down_until_ms: AtomicU64,
}

/// Where a call goes.
#[derive(Debug, Clone, Copy)]
pub(super) enum Route<'a> {
    /// To the room's home, then its next-ranked services.
    Room(&'a str),
    /// Anywhere: spread over the services in turn.
    Any,
}

/// The known message services, kept current by [`discover`].
#[derive(Clone)]
pub(super) struct Endpoints {
    members: watch::Receiver<Arc<[Arc<Member>]>>,
    epoch: Instant,
    next: Arc<AtomicUsize>,
}

impl Endpoints {
    /// Waits (up to `within`) until at least one service is known.
    pub async fn ready(&self, within: Duration) -> bool {
        if !self.members.borrow().is_empty() {
            return true;
        }
        let mut members = self.members.clone();
        matches!(
            tokio::time::timeout(within, members.wait_for(|m| !m.is_empty())).await,
            Ok(Ok(_))
        )
    }

    /// The service for attempt number `attempt` (from 0) of a call: the route's ranking,
    /// with services that failed a moment ago moved to the back.
    pub fn pick(&self, route: Route<'_>, attempt: usize) -> Option<Arc<Member>> {
        let members = self.members.borrow().clone();
        if members.is_empty() {
            return None;
        }
        let now = self.now_ms();
        let mut order: Vec<(bool, u64, usize)> = match route {
            Route::Room(room) => {
                let room = fnv1a(room.as_bytes());
                members
                    .iter()
                    .enumerate()
                    .map(|(i, m)| (m.is_down(now), u64::MAX - mix(room ^ m.key), i))
                    .collect()
            }
            Route::Any => {
                let first = self.next.fetch_add(1, Ordering::Relaxed);
                let n = members.len();
                (0..n)
                    .map(|k| {
                        let i = (first + k) % n;
                        (members[i].is_down(now), k as u64, i)
                    })
                    .collect()
            }
        };
        order.sort_unstable();
        let (_, _, index) = order[attempt % order.len()];
        Some(members[index].clone())
    }

    /// Passes over `member` for a moment: its transport failed.
    pub fn mark_down(&self, member: &Member) {
        let until = self.now_ms() + DOWN_FOR.as_millis() as u64;
        member.down_until_ms.store(until, Ordering::Relaxed);
    }

    fn now_ms(&self) -> u64 {
        // Never 0, which means "up".
        self.epoch.elapsed().as_millis() as u64 + 1
    }
}

impl Member {
    fn is_down(&self, now_ms: u64) -> bool {
        self.down_until_ms.load(Ordering::Relaxed) > now_ms
    }
}

/// A configured endpoint, split so that each address its host resolves to becomes an
/// endpoint of its own.
pub(super) struct Target {
    pub scheme: String,
    pub host_port: String,
}

/// How each member's channel connects.
pub(super) struct Connect {
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub client: fn(tonic::transport::Channel) -> Client,
}

/// Starts resolving `targets` and returns the services as they are found.
pub(super) fn spawn(targets: Vec<Target>, connect: Connect) -> Endpoints {
    let (tx, members) = watch::channel(Arc::from(Vec::new()));
    tokio::spawn(discover(targets, tx, connect));
    Endpoints {
        members,
        epoch: Instant::now(),
        next: Arc::new(AtomicUsize::new(0)),
    }
}

/// Keeps the members equal to what the targets resolve to, each with a channel that
/// connects lazily and reconnects by itself. Ends when every [`Endpoints`] is dropped.
async fn discover(targets: Vec<Target>, tx: watch::Sender<Arc<[Arc<Member>]>>, connect: Connect) {
    while !tx.is_closed() {
        let current = tx.borrow().clone();
        let mut found: Vec<(SocketAddr, &str)> = Vec::new();
        for target in &targets {
            match tokio::net::lookup_host(&target.host_port).await {
                Ok(addrs) => found.extend(addrs.map(|a| (a, target.scheme.as_str()))),
                Err(error) => {
                    tracing::warn!(endpoint = %target.host_port, %error, "cannot resolve message service");
                    // Keep what this name resolved to before rather than drop live instances:
                    // without the name we cannot tell which of them it was, so keep them all.
                    found.extend(current.iter().map(|m| (m.addr, target.scheme.as_str())));
                }
            }
        }
        found.sort_unstable();
        found.dedup_by_key(|(addr, _)| *addr);
        let mut next: Vec<Arc<Member>> = Vec::with_capacity(found.len());
        for (addr, scheme) in found {
            if let Some(member) = current.iter().find(|m| m.addr == addr) {
                next.push(member.clone());
                continue;
            }
            match Endpoint::from_shared(format!("{scheme}://{addr}")) {
                Ok(endpoint) => {
                    let channel = endpoint
                        .connect_timeout(connect.connect_timeout)
                        .timeout(connect.timeout)
                        .tcp_nodelay(true)
                        .http2_keep_alive_interval(Duration::from_secs(20))
                        .connect_lazy();
                    tracing::info!(%addr, "message service endpoint added");
                    next.push(Arc::new(Member {
                        addr,
                        key: fnv1a(addr.to_string().as_bytes()),
                        client: (connect.client)(channel),
                        down_until_ms: AtomicU64::new(0),
                    }));
                }
                Err(error) => tracing::error!(%addr, %error, "invalid endpoint"),
            }
        }
        for gone in current.iter().filter(|m| !next.iter().any(|n| n.addr == m.addr)) {
            tracing::info!(addr = %gone.addr, "message service endpoint removed");
        }
        let changed = next.len() != current.len() || next.iter().zip(current.iter()).any(|(a, b)| a.addr != b.addr);
        if changed {
            tx.send_replace(Arc::from(next));
        }
        tokio::select! {
            _ = tokio::time::sleep(RESOLVE_EVERY) => {}
            _ = tx.closed() => {}
        }
    }
}

/// FNV-1a: a fixed hash, so that every gateway, whatever its build, ranks alike.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// splitmix64's finaliser: spreads a combined key over all 64 bits before ranking.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(ports: &[u16]) -> Endpoints {
        let members: Vec<Arc<Member>> = ports
            .iter()
            .map(|&port| {
                let addr = SocketAddr::from(([127, 0, 0, 1], port));
                let channel = Endpoint::from_shared(format!("http://{addr}")).unwrap().connect_lazy();
                Arc::new(Member {
                    addr,
                    key: fnv1a(addr.to_string().as_bytes()),
                    client: super::super::client(channel),
                    down_until_ms: AtomicU64::new(0),
                })
            })
            .collect();
        let (tx, members) = watch::channel(Arc::from(members));
        std::mem::forget(tx); // the members stay as they are for the test
        Endpoints {
            members,
            epoch: Instant::now(),
            next: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn home(e: &Endpoints, room: &str) -> u16 {
        e.pick(Route::Room(room), 0).unwrap().addr.port()
    }

    #[tokio::test]
    async fn a_room_has_one_home_that_every_gateway_agrees_on_and_rooms_spread_over_all() {
        let (a, b) = (endpoints(&[1, 2, 3]), endpoints(&[1, 2, 3]));
        let rooms: Vec<String> = (0..300).map(|i| format!("room-{i}")).collect();
        let mut per_home = std::collections::HashMap::new();
        for room in &rooms {
            assert_eq!(home(&a, room), home(&a, room), "stable");
            assert_eq!(home(&a, room), home(&b, room), "the same on another gateway");
            *per_home.entry(home(&a, room)).or_insert(0) += 1;
        }
        assert_eq!(per_home.len(), 3);
        assert!(per_home.values().all(|&n| n > 60), "spread: {per_home:?}");
    }

    #[tokio::test]
    async fn losing_a_service_moves_only_its_rooms() {
        let (three, two) = (endpoints(&[1, 2, 3]), endpoints(&[1, 2]));
        for i in 0..300 {
            let room = format!("room-{i}");
            if home(&three, &room) != 3 {
                assert_eq!(home(&three, &room), home(&two, &room), "{room} moved needlessly");
            }
        }
    }

    #[tokio::test]
    async fn retries_and_a_failed_home_go_to_the_next_ranked_service() {
        let e = endpoints(&[1, 2, 3]);
        let room = "busy";
        let ranked: Vec<u16> = (0..3)
            .map(|n| e.pick(Route::Room(room), n).unwrap().addr.port())
            .collect();
        let mut distinct = ranked.clone();
        distinct.sort_unstable();
        assert_eq!(distinct, [1, 2, 3], "each attempt tries another service");

        let first = e.pick(Route::Room(room), 0).unwrap();
        e.mark_down(&first);
        assert_eq!(home(&e, room), ranked[1], "passed over while down");
        assert_eq!(
            e.pick(Route::Room(room), 2).unwrap().addr.port(),
            ranked[0],
            "still tried last"
        );
        first.down_until_ms.store(1, Ordering::Relaxed);
        assert_eq!(home(&e, room), ranked[0], "back once up");
    }

    #[tokio::test]
    async fn calls_without_a_room_take_turns() {
        let e = endpoints(&[1, 2]);
        let picks: Vec<u16> = (0..4).map(|_| e.pick(Route::Any, 0).unwrap().addr.port()).collect();
        assert_eq!(picks.iter().filter(|&&p| p == 1).count(), 2, "{picks:?}");
    }

    #[test]
    fn the_hash_is_fnv1a() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
