//! Limits: a token bucket per connection for sends, so that one client cannot turn the
//! gateway into a firehose for everyone else (time is passed in, so the arithmetic is
//! tested without waiting); and the admission of connections: paced (a token bucket of
//! handshakes per gateway, so a reconnect storm is spread out instead of landing on the
//! database at once), and bounded per gateway and per user.

use chat_domain::UserId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Allows `rate` events per second on average and bursts of up to `burst` at once.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket: a new connection may send a burst at once.
    pub fn new(rate: f64, burst: u32, now: Instant) -> Self {
        Self {
            rate,
            burst: f64::from(burst),
            tokens: f64::from(burst),
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_then_the_steady_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(2.0, 3, start);
        assert_eq!((0..5).filter(|_| bucket.try_take(start)).count(), 3, "the burst");
        assert!(!bucket.try_take(start + Duration::from_millis(100)), "0.2 of a token");
        assert!(
            bucket.try_take(start + Duration::from_millis(500)),
            "one token after half a second"
        );
        assert!(!bucket.try_take(start + Duration::from_millis(500)));
        // A long pause refills up to the burst, no further.
        let later = start + Duration::from_secs(60);
        assert_eq!((0..10).filter(|_| bucket.try_take(later)).count(), 3);
    }
}

/// Admission of websocket connections: at most `max_total` on this gateway and
/// `max_per_user` per user. Counted from the handshake, not from when the socket is set up,
/// so a burst of handshakes cannot slip past the limits.
pub struct Admission {
    max_total: usize,
    max_per_user: usize,
    counts: Mutex<Counts>,
    /// Handshakes this gateway starts per second.
    pace: Mutex<TokenBucket>,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_user: HashMap<UserId, usize>,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// More handshakes at once than the pace allows: retry after a random backoff.
    Paced,
    GatewayFull,
    TooManyForUser,
}

/// A place held by one connection; dropping it frees the place.
pub struct Admitted {
    admission: Arc<Admission>,
    user: UserId,
}

impl Admission {
    pub fn new(max_total: usize, max_per_user: usize, pace: TokenBucket) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_user,
            counts: Mutex::new(Counts::default()),
            pace: Mutex::new(pace),
        })
    }

    /// The first check of a handshake, before its session is looked up: the work a
    /// handshake costs (a database read, then the socket's set-up) is what a storm of
    /// reconnects would pile up.
    pub fn pace(&self, now: Instant) -> Result<(), Refused> {
        if self.pace.lock().expect("pace lock").try_take(now) {
            Ok(())
        } else {
            Err(Refused::Paced)
        }
    }

    pub fn admit(self: &Arc<Self>, user: &UserId) -> Result<Admitted, Refused> {
        let mut counts = self.counts.lock().expect("admission lock");
        if counts.total >= self.max_total {
            return Err(Refused::GatewayFull);
        }
        let mine = counts.per_user.entry(user.clone()).or_default();
        if *mine >= self.max_per_user {
            return Err(Refused::TooManyForUser);
        }
        *mine += 1;
        counts.total += 1;
        Ok(Admitted {
            admission: self.clone(),
            user: user.clone(),
        })
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut counts = self.admission.counts.lock().expect("admission lock");
        counts.total -= 1;
        if let Some(mine) = counts.per_user.get_mut(&self.user) {
            *mine -= 1;
            if *mine == 0 {
                counts.per_user.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod admission_tests {
    use super::*;

    #[test]
    fn places_are_held_until_dropped() {
        let admission = Admission::new(3, 2, TokenBucket::new(1.0, 1, Instant::now()));
        let (ann, bob) = (UserId::parse("u:ann").unwrap(), UserId::parse("u:bob").unwrap());
        let first = admission.admit(&ann).unwrap();
        let _second = admission.admit(&ann).unwrap();
        assert_eq!(admission.admit(&ann).err(), Some(Refused::TooManyForUser));
        let _third = admission.admit(&bob).unwrap();
        assert_eq!(admission.admit(&bob).err(), Some(Refused::GatewayFull));
        drop(first);
        assert!(admission.admit(&ann).is_ok(), "a place came free");
    }

    #[test]
    fn handshakes_are_paced() {
        let start = Instant::now();
        let admission = Admission::new(100, 100, TokenBucket::new(10.0, 2, start));
        assert_eq!(admission.pace(start), Ok(()));
        assert_eq!(admission.pace(start), Ok(()));
        assert_eq!(admission.pace(start), Err(Refused::Paced), "past the burst");
        let later = start + std::time::Duration::from_millis(100);
        assert_eq!(
            admission.pace(later),
            Ok(()),
            "one more after a tenth of a second at 10/s"
        );
        assert_eq!(admission.pace(later), Err(Refused::Paced));
    }
}
