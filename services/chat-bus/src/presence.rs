//! Who is online, across every gateway: a registry of holds that expire.
//!
//! A person is online while some gateway holds them: it has a socket of theirs open. Each
//! gateway renews its holds every few seconds, with an expiry a few renewals ahead; a hold
//! that is not renewed (its gateway died) expires, and a sweep that any gateway may run
//! takes it away. Renewals, releases and the sweep each say who came online or went
//! offline everywhere, and exactly one caller hears of each change, so exactly one gateway
//! announces it.
//!
//! In Redis (7.0 has no per-field hash expiry), under one hash tag so that a Redis Cluster
//! keeps them in one slot:
//! * `{p}:{presence}:holds`: a sorted set of `user \n gateway`, scored by expiry (ms);
//! * `{p}:{presence}:count`: a hash, user → how many gateways hold them;
//! * `{p}:{presence}:online`: a sorted set of users, scored by their latest expiry, so that
//!   "who of these is online" is one `ZMSCORE` (a hold past its expiry counts as gone even
//!   before the sweep);
//! * `{p}:{presence}:seen`: a hash, user → when they last went offline (ms).
//!
//! Each change is one Lua script, atomic on the server. The in-memory registry of the
//! all-in-one binary keeps the same rules in a map.

use crate::BusError;
use chat_domain::UserId;
use redis::aio::{ConnectionLike, ConnectionManager};
use std::collections::HashMap;
use std::sync::Mutex;

#[async_trait::async_trait]
pub trait Presence: Send + Sync + 'static {
    /// `gateway` holds these users until `now_ms + ttl_ms` (new holds or renewed ones).
    /// Returns those who were offline until now.
    async fn renew(&self, gateway: &str, users: &[UserId], now_ms: u64, ttl_ms: u64) -> Result<Vec<UserId>, BusError>;

    /// `gateway` lets go of `user` (their last socket there closed). Returns whether they
    /// are now offline everywhere; then their last-seen time is `now_ms`.
    async fn release(&self, gateway: &str, user: &UserId, now_ms: u64) -> Result<bool, BusError>;

    /// Takes away at most `limit` holds that expired by `now_ms` (their gateway stopped
    /// renewing them). Returns who is now offline everywhere.
    async fn sweep(&self, now_ms: u64, limit: usize) -> Result<Vec<UserId>, BusError>;

    /// Whether each of `users` is online at `now_ms`, in order.
    async fn online(&self, users: &[UserId], now_ms: u64) -> Result<Vec<bool>, BusError>;

    /// When `user` last went offline (ms), if ever.
    async fn last_seen(&self, user: &UserId) -> Result<Option<u64>, BusError>;

    /// Holds in the registry, for the metrics.
    async fn holds(&self) -> Result<u64, BusError>;
}

/// The registry in this process: the all-in-one binary's, and the rules in plain code.
#[derive(Default)]
pub struct InMemoryPresence {
    state: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    /// (user, gateway) → expiry.
    holds: HashMap<(UserId, String), u64>,
    /// user → how many gateways hold them.
    count: HashMap<UserId, u32>,
    /// user → latest expiry of their holds.
    online: HashMap<UserId, u64>,
    seen: HashMap<UserId, u64>,
}

impl Registry {
    /// A hold is gone: the user is offline when it was their last.
    fn drop_hold(&mut self, user: &UserId, now_ms: u64) -> bool {
        let count = self.count.entry(user.clone()).or_default();
        *count = count.saturating_sub(1);
        if *count > 0 {
            return false;
        }
        self.count.remove(user);
        self.online.remove(user);
        self.seen.insert(user.clone(), now_ms);
        true
    }
}

#[async_trait::async_trait]
impl Presence for InMemoryPresence {
    async fn renew(&self, gateway: &str, users: &[UserId], now_ms: u64, ttl_ms: u64) -> Result<Vec<UserId>, BusError> {
        let mut state = self.state.lock().expect("presence lock");
        let expiry = now_ms + ttl_ms;
        let mut arrived = Vec::new();
        for user in users {
            if state.holds.insert((user.clone(), gateway.to_owned()), expiry).is_none() {
                *state.count.entry(user.clone()).or_default() += 1;
            }
            let latest = state.online.entry(user.clone()).or_insert(0);
            if *latest < now_ms {
                arrived.push(user.clone());
            }
            *latest = (*latest).max(expiry);
        }
        Ok(arrived)
    }

    async fn release(&self, gateway: &str, user: &UserId, now_ms: u64) -> Result<bool, BusError> {
        let mut state = self.state.lock().expect("presence lock");
        if state.holds.remove(&(user.clone(), gateway.to_owned())).is_none() {
            return Ok(false);
        }
        Ok(state.drop_hold(user, now_ms))
    }

    async fn sweep(&self, now_ms: u64, limit: usize) -> Result<Vec<UserId>, BusError> {
        let mut state = self.state.lock().expect("presence lock");
        let expired: Vec<(UserId, String)> = state
            .holds
            .iter()
            .filter(|(_, expiry)| **expiry <= now_ms)
            .map(|(key, _)| key.clone())
            .take(limit)
            .collect();
        let mut gone = Vec::new();
        for key in expired {
            state.holds.remove(&key);
            if state.drop_hold(&key.0, now_ms) {
                gone.push(key.0);
            }
        }
        Ok(gone)
    }

    async fn online(&self, users: &[UserId], now_ms: u64) -> Result<Vec<bool>, BusError> {
        let state = self.state.lock().expect("presence lock");
        Ok(users
            .iter()
            .map(|u| state.online.get(u).is_some_and(|expiry| *expiry > now_ms))
            .collect())
    }

    async fn last_seen(&self, user: &UserId) -> Result<Option<u64>, BusError> {
        Ok(self.state.lock().expect("presence lock").seen.get(user).copied())
    }

    async fn holds(&self) -> Result<u64, BusError> {
        Ok(self.state.lock().expect("presence lock").holds.len() as u64)
    }
}

/// The registry in Redis, shared by every gateway of a deployment. Its keys share the hash
/// tag `{presence}`, so that each script's keys sit in one slot of a Redis Cluster.
pub struct RedisPresence<C = ConnectionManager> {
    conn: C,
    /// holds, count, online, seen.
    keys: [String; 4],
}

/// KEYS: holds, count, online, seen. ARGV: gateway, now, ttl, users…
const RENEW: &str = r"
local expiry = tonumber(ARGV[2]) + tonumber(ARGV[3])
local now = tonumber(ARGV[2])
local arrived = {}
for i = 4, #ARGV do
  local user = ARGV[i]
  if redis.call('ZADD', KEYS[1], expiry, user .. '\n' .. ARGV[1]) == 1 then
    redis.call('HINCRBY', KEYS[2], user, 1)
  end
  local latest = tonumber(redis.call('ZSCORE', KEYS[3], user) or '0')
  if latest < now then table.insert(arrived, user) end
  if latest < expiry then redis.call('ZADD', KEYS[3], expiry, user) end
end
return arrived
";

/// The end of one hold (ARGV: user, now), shared by release and sweep: the user is offline
/// when it was their last.
const DROP_HOLD: &str = r"
local function drop_hold(user, now)
  if redis.call('HINCRBY', KEYS[2], user, -1) > 0 then return false end
  redis.call('HDEL', KEYS[2], user)
  redis.call('ZREM', KEYS[3], user)
  redis.call('HSET', KEYS[4], user, now)
  return true
end
";

/// ARGV: gateway, now, user.
const RELEASE: &str = r"
if redis.call('ZREM', KEYS[1], ARGV[3] .. '\n' .. ARGV[1]) == 0 then return 0 end
if drop_hold(ARGV[3], ARGV[2]) then return 1 end
return 0
";

/// ARGV: now, limit.
const SWEEP: &str = r"
local gone = {}
for _, hold in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])) do
  redis.call('ZREM', KEYS[1], hold)
  local user = string.sub(hold, 1, string.find(hold, '\n', 1, true) - 1)
  if drop_hold(user, ARGV[1]) then table.insert(gone, user) end
end
return gone
";

impl<C: ConnectionLike + Clone + Send + Sync + 'static> RedisPresence<C> {
    pub fn new(conn: C, key_prefix: &str) -> Self {
        let key = |name: &str| format!("{key_prefix}:{{presence}}:{name}");
        Self {
            conn,
            keys: [key("holds"), key("count"), key("online"), key("seen")],
        }
    }

    fn script(&self, body: &str) -> redis::Cmd {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(format!("{DROP_HOLD}{body}"))
            .arg(self.keys.len())
            .arg(&self.keys[..]);
        cmd
    }
}

fn users(found: Vec<String>) -> Vec<UserId> {
    found.iter().filter_map(|u| UserId::parse(u).ok()).collect()
}

#[async_trait::async_trait]
impl<C: ConnectionLike + Clone + Send + Sync + 'static> Presence for RedisPresence<C> {
    async fn renew(&self, gateway: &str, users_: &[UserId], now_ms: u64, ttl_ms: u64) -> Result<Vec<UserId>, BusError> {
        let mut arrived = Vec::new();
        // Bounded scripts: a gateway of 100,000 people renews them in slices.
        for slice in users_.chunks(1000) {
            let mut cmd = self.script(RENEW);
            cmd.arg(gateway).arg(now_ms).arg(ttl_ms);
            for user in slice {
                cmd.arg(user.as_str());
            }
            let found: Vec<String> = cmd.query_async(&mut self.conn.clone()).await?;
            arrived.extend(users(found));
        }
        Ok(arrived)
    }

    async fn release(&self, gateway: &str, user: &UserId, now_ms: u64) -> Result<bool, BusError> {
        let mut cmd = self.script(RELEASE);
        cmd.arg(gateway).arg(now_ms).arg(user.as_str());
        let gone: i64 = cmd.query_async(&mut self.conn.clone()).await?;
        Ok(gone == 1)
    }

    async fn sweep(&self, now_ms: u64, limit: usize) -> Result<Vec<UserId>, BusError> {
        let mut cmd = self.script(SWEEP);
        cmd.arg(now_ms).arg(limit);
        let found: Vec<String> = cmd.query_async(&mut self.conn.clone()).await?;
        Ok(users(found))
    }

    async fn online(&self, users_: &[UserId], now_ms: u64) -> Result<Vec<bool>, BusError> {
        if users_.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("ZMSCORE");
        cmd.arg(&self.keys[2]);
        for user in users_ {
            cmd.arg(user.as_str());
        }
        let scores: Vec<Option<f64>> = cmd.query_async(&mut self.conn.clone()).await?;
        Ok(scores
            .into_iter()
            .map(|s| s.is_some_and(|expiry| expiry > now_ms as f64))
            .collect())
    }

    async fn last_seen(&self, user: &UserId) -> Result<Option<u64>, BusError> {
        let seen: Option<u64> = redis::cmd("HGET")
            .arg(&self.keys[3])
            .arg(user.as_str())
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(seen)
    }

    async fn holds(&self) -> Result<u64, BusError> {
        let holds: u64 = redis::cmd("ZCARD")
            .arg(&self.keys[0])
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(holds)
    }
}
