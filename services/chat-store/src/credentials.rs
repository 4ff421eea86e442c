//! What keeps accounts safe besides the password itself: the log-in throttle's memory
//! (failed attempts, shared by every gateway through the database, so an attacker gains
//! nothing by spreading guesses over gateways), password changes that end the other
//! sessions, and single-use password-reset tokens. The policies (how many failures, how
//! long a wait, who may reset) are the gateway's; this is where they are kept.

use crate::directory::UserRecord;
use crate::error::StoreError;
use chat_domain::UserId;

/// Failed log-ins counted against one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginFailures {
    pub failures: u32,
    /// When the last one happened (Unix ms).
    pub last_ms: i64,
}

/// A password-reset token to store: only its keyed hash.
#[derive(Debug, Clone)]
pub struct NewPasswordReset<'a> {
    pub token_hash: &'a str,
    pub user_id: &'a UserId,
    pub now_ms: i64,
    pub expires_at_ms: i64,
}

#[async_trait::async_trait]
pub trait Credentials: Send + Sync + 'static {
    /// The failures counted against each of `keys` whose last failure is at or after
    /// `since_ms` (older counts have been forgiven); keys without any are left out.
    async fn login_failures(&self, keys: &[String], since_ms: i64) -> Result<Vec<(String, LoginFailures)>, StoreError>;
    /// Counts one failed attempt against each of `keys`. A key whose last failure is before
    /// `since_ms` starts again at one.
    async fn record_login_failure(&self, keys: &[String], now_ms: i64, since_ms: i64) -> Result<(), StoreError>;
    /// Forgets the failures counted against `key` (its owner has just logged in).
    async fn clear_login_failures(&self, key: &str) -> Result<(), StoreError>;

    /// Sets a user's password hash and, in the same transaction, ends every session of
    /// theirs but `keep`. Returns the ids of the sessions ended, or `None` when there is no
    /// such user.
    async fn set_password(
        &self,
        id: &UserId,
        password_hash: &str,
        keep: Option<&str>,
    ) -> Result<Option<Vec<String>>, StoreError>;

    /// Accounts with this e-mail address (compared without case), at most `limit`.
    async fn users_by_email(&self, email: &str, limit: u32) -> Result<Vec<UserRecord>, StoreError>;
    /// Stores a reset token unless the user already has `max_recent` created at or after
    /// `since_ms`; returns whether it was stored.
    async fn create_password_reset(
        &self,
        reset: &NewPasswordReset<'_>,
        since_ms: i64,
        max_recent: u32,
    ) -> Result<bool, StoreError>;
    /// The account an unused, unexpired reset token is for.
    async fn password_reset_user(&self, token_hash: &str, now_ms: i64) -> Result<Option<UserRecord>, StoreError>;
    /// Uses a reset token: when it is unused and unexpired, marks it used, sets the
    /// password hash and ends all the user's sessions, in one transaction. Returns the user
    /// and the ids of the sessions ended; `None` when the token is used, expired or unknown
    /// (or was used by a concurrent redemption).
    async fn redeem_password_reset(
        &self,
        token_hash: &str,
        password_hash: &str,
        now_ms: i64,
    ) -> Result<Option<(UserId, Vec<String>)>, StoreError>;

    /// Removes failure counts last touched before `failures_before_ms`, and reset tokens
    /// that expired before `now_ms`; returns how many rows went.
    async fn purge_credentials(&self, failures_before_ms: i64, now_ms: i64) -> Result<u64, StoreError>;
}
