//! Rate limiting: a token bucket per connection for sends, so that one client cannot turn
//! the gateway into a firehose for everyone else. Time is passed in, so the arithmetic is
//! tested without waiting.

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
