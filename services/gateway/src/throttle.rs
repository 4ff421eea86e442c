//! The log-in throttle: password guessing slows down exponentially, per account and per
//! client address, and one address cannot take the password-hashing capacity from the rest.
//!
//! * **Failures** are counted in the database ([`chat_store::Credentials`]), so every gateway
//!   sees the same counts and spreading guesses over gateways gains nothing. After
//!   `account_free_failures` failures in a row on an account, or `address_free_failures`
//!   from an address, the next attempt must wait `first_wait_ms` after the last failure, and
//!   the wait doubles with each further failure up to `max_wait_ms`. An attempt that comes
//!   too soon gets 429 `too_many_attempts` with `Retry-After`, and is neither checked nor
//!   counted. A correct password clears the account's count; the address's count stays (a
//!   guesser must not reset it by logging in to an account of their own), and is forgotten
//!   `forget_after_secs` after its last failure.
//! * **Hashing capacity**: each gateway hashes at most a few passwords at once (see
//!   [`crate::auth`]), and at most `checks_per_address` of them from one address. Beyond
//!   that an address's requests get 429 at once, so a flood from one address waits on
//!   itself, never on anyone else's log-in.
//! * Password-reset requests are counted the same way per address (`reset:` keys, every
//!   request counts), so one address cannot mail-bomb a stranger.
//!
//! The arithmetic ([`Backoff`]) is plain and tested without a database or a clock.

use crate::auth::now_ms;
use crate::client_addr::address_key;
use crate::error::GatewayError;
use crate::metrics::Metrics;
use crate::settings::ThrottleSettings;
use chat_domain::ErrorCode;
use chat_store::Directory;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// How long attempts must wait after failures in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Failures allowed before any wait.
    pub free: u32,
    pub first_wait_ms: u64,
    pub max_wait_ms: u64,
}

impl Backoff {
    /// The wait after `failures` in a row: none for the first `free`, then `first_wait_ms`,
    /// doubling with each failure beyond, at most `max_wait_ms`.
    pub fn wait_ms(&self, failures: u32) -> u64 {
        if failures < self.free {
            return 0;
        }
        let doublings = failures - self.free;
        let factor = 1u64.checked_shl(doublings).unwrap_or(u64::MAX);
        self.first_wait_ms.saturating_mul(factor).min(self.max_wait_ms)
    }

    /// How many milliseconds from `now_ms` the next attempt must wait, if any.
    pub fn remaining_ms(&self, failures: u32, last_ms: i64, now_ms: i64) -> Option<u64> {
        let until = last_ms.saturating_add(i64::try_from(self.wait_ms(failures)).unwrap_or(i64::MAX));
        u64::try_from(until.saturating_sub(now_ms)).ok().filter(|ms| *ms > 0)
    }
}

/// The seconds a client is told to wait: whole seconds, rounded up.
fn retry_after_secs(ms: u64) -> u64 {
    ms.div_ceil(1000).max(1)
}

pub struct LoginThrottle {
    account: Backoff,
    address: Backoff,
    resets: Backoff,
    forget_after_ms: i64,
    checks_per_address: u32,
    directory: Arc<dyn Directory>,
    metrics: Metrics,
    /// Password checks running on this gateway, per address key.
    in_flight: Mutex<HashMap<String, u32>>,
}

/// An address's turn at the password hasher; given back when dropped.
pub struct Slot<'a> {
    throttle: &'a LoginThrottle,
    address: String,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut in_flight = self.throttle.in_flight.lock().expect("throttle lock");
        if let Some(n) = in_flight.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                in_flight.remove(&self.address);
            }
        }
    }
}

/// An attempt the throttle let through; say how it went.
pub struct Attempt<'a> {
    throttle: &'a LoginThrottle,
    keys: Vec<String>,
    account_key: Option<String>,
    /// A password check (not a reset request): its failure is a failed log-in.
    password_check: bool,
    _slot: Option<Slot<'a>>,
}

impl Attempt<'_> {
    /// The password was wrong (or, for a reset request, the request counts anyway).
    pub async fn failed(self) -> Result<(), GatewayError> {
        if self.password_check {
            self.throttle.metrics.login_failures.inc();
        }
        let now = now_ms();
        let since = now - self.throttle.forget_after_ms;
        Ok(self
            .throttle
            .directory
            .record_login_failure(&self.keys, now, since)
            .await?)
    }

    /// The password was right: the account's failures are forgiven.
    pub async fn succeeded(self) -> Result<(), GatewayError> {
        if let Some(key) = &self.account_key {
            self.throttle.directory.clear_login_failures(key).await?;
        }
        Ok(())
    }
}

fn too_many(message: &str, wait_ms: u64) -> GatewayError {
    GatewayError::new(ErrorCode::TooManyAttempts, message).retry_after(retry_after_secs(wait_ms))
}

impl LoginThrottle {
    pub fn new(settings: &ThrottleSettings, directory: Arc<dyn Directory>, metrics: Metrics) -> Self {
        let backoff = |free| Backoff {
            free,
            first_wait_ms: settings.first_wait_ms,
            max_wait_ms: settings.max_wait_ms,
        };
        Self {
            account: backoff(settings.account_free_failures),
            address: backoff(settings.address_free_failures),
            resets: backoff(settings.address_free_resets),
            forget_after_ms: i64::try_from(settings.forget_after_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
            checks_per_address: settings.checks_per_address,
            directory,
            metrics,
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    /// A turn at the password hasher for `ip`, or 429 while `checks_per_address` checks
    /// from its address already run here. Sign-up takes one: it hashes a password, but has
    /// no failures to count.
    pub fn slot(&self, ip: IpAddr) -> Result<Slot<'_>, GatewayError> {
        let address = address_key(ip);
        let mut in_flight = self.in_flight.lock().expect("throttle lock");
        let n = in_flight.entry(address.clone()).or_insert(0);
        if *n >= self.checks_per_address {
            self.metrics.throttled.inc();
            return Err(too_many(
                "too many password checks from your address at once; try again in a moment",
                1000,
            ));
        }
        *n += 1;
        drop(in_flight);
        Ok(Slot {
            throttle: self,
            address,
        })
    }

    /// Lets a password check for `account` (a username's key; `None` when the name given is
    /// no username) from `ip` go ahead, or refuses it with 429 and `Retry-After` while the
    /// account or the address must wait after failures.
    pub async fn admit_login(&self, account: Option<&str>, ip: IpAddr) -> Result<Attempt<'_>, GatewayError> {
        let slot = self.slot(ip)?;
        let account_key = account.map(|a| format!("account:{a}"));
        let keys: Vec<(String, Backoff)> = account_key
            .iter()
            .map(|k| (k.clone(), self.account))
            .chain([(format!("address:{}", slot.address), self.address)])
            .collect();
        let (keys, counted) = self
            .check(keys, "too many failed log-ins; wait before trying again")
            .await?;
        Ok(Attempt {
            throttle: self,
            keys,
            // Only an account with failures to forgive costs a write when its owner gets in.
            account_key: account_key.filter(|k| counted.contains(k)),
            password_check: true,
            _slot: Some(slot),
        })
    }

    /// Lets a password-reset request from `ip` go ahead, or refuses it with 429 while the
    /// address has asked too often. The caller counts every request with
    /// [`Attempt::failed`].
    pub async fn admit_reset(&self, ip: IpAddr) -> Result<Attempt<'_>, GatewayError> {
        let keys = vec![(format!("reset:{}", address_key(ip)), self.resets)];
        let (keys, _) = self
            .check(keys, "too many password-reset requests; wait before asking again")
            .await?;
        Ok(Attempt {
            throttle: self,
            keys,
            account_key: None,
            password_check: false,
            _slot: None,
        })
    }

    /// Forgives an account's failed log-ins (its owner has just proved who they are another
    /// way: a password-reset link from their mailbox).
    pub async fn forgive_account(&self, account: &str) -> Result<(), GatewayError> {
        Ok(self
            .directory
            .clear_login_failures(&format!("account:{account}"))
            .await?)
    }

    /// Refuses while any key must wait; returns the keys, and those with failures counted.
    async fn check(
        &self,
        keys: Vec<(String, Backoff)>,
        message: &str,
    ) -> Result<(Vec<String>, Vec<String>), GatewayError> {
        let now = now_ms();
        let names: Vec<String> = keys.iter().map(|(k, _)| k.clone()).collect();
        let found = self
            .directory
            .login_failures(&names, now - self.forget_after_ms)
            .await?;
        let wait = found
            .iter()
            .filter_map(|(key, f)| {
                let (_, backoff) = keys.iter().find(|(k, _)| k == key)?;
                backoff.remaining_ms(f.failures, f.last_ms, now)
            })
            .max();
        match wait {
            Some(ms) => {
                self.metrics.throttled.inc();
                Err(too_many(message, ms))
            }
            None => Ok((names, found.into_iter().map(|(key, _)| key).collect())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BACKOFF: Backoff = Backoff {
        free: 3,
        first_wait_ms: 1000,
        max_wait_ms: 60_000,
    };

    #[test]
    fn waits_start_after_the_free_failures_and_double() {
        let waits: Vec<u64> = (0..10).map(|n| BACKOFF.wait_ms(n)).collect();
        assert_eq!(waits, [0, 0, 0, 1000, 2000, 4000, 8000, 16_000, 32_000, 60_000]);
        assert_eq!(BACKOFF.wait_ms(u32::MAX), 60_000, "no overflow");
    }

    #[test]
    fn the_wait_runs_from_the_last_failure() {
        assert_eq!(BACKOFF.remaining_ms(2, 10_000, 10_000), None);
        assert_eq!(BACKOFF.remaining_ms(3, 10_000, 10_000), Some(1000));
        assert_eq!(BACKOFF.remaining_ms(4, 10_000, 10_500), Some(1500));
        assert_eq!(BACKOFF.remaining_ms(4, 10_000, 12_000), None, "waited out");
        assert_eq!(retry_after_secs(1), 1);
        assert_eq!(retry_after_secs(1000), 1);
        assert_eq!(retry_after_secs(1001), 2);
    }
}
