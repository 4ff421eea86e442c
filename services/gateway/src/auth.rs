//! Who is calling. Every request and socket gets a [`Principal`] from [`Auth::authenticate`],
//! and nothing else in the gateway looks at tokens: the author of every message, and every
//! permission, comes from here.
//!
//! Three kinds of session, one token slot (the `sc_session` cookie or `Authorization:
//! Bearer`):
//! * **server-side sessions** for accounts and guests: a random token whose keyed hash is a
//!   row in `sessions`, so sessions can be listed, revoked, and ended with their account;
//! * **external tokens**: when `auth.jwt_secret` is set, an HS256 JWT (`sub`, `name`, `exp`)
//!   minted by the operator's own backend is a session for the user `ext:<sub>`.
//!
//! Passwords are hashed with argon2id on the blocking pool: a hash costs tens of
//! milliseconds of CPU, which must not stall the sockets served by the async workers.

use crate::settings::AuthSettings;
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chat_domain::{Author, DisplayName, Password, Role, UserId};
use chat_store::{Directory, SessionRecord, StoreError};
use hmac::{Hmac, Mac};
use http::HeaderMap;
use http::header::{AUTHORIZATION, COOKIE};
use serde::Deserialize;
use sha2::Sha256;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const COOKIE_NAME: &str = "sc_session";

/// Which kind of identity a principal has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityKind {
    /// A registered account (`u:<uuid>`).
    Account,
    /// A display name alone (`guest:<uuid>`).
    Guest,
    /// Vouched for by the operator's backend with a JWT (`ext:<sub>`).
    External,
}

/// Who is calling, as established by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub author: Author,
    pub kind: IdentityKind,
    pub role: Role,
    /// The server-side session's public id; `None` for external tokens.
    pub session_id: Option<String>,
    /// Unix seconds after which the session is no longer valid.
    pub expires_at: u64,
}

impl Principal {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no session: log in, sign up, or create a guest session")]
    Missing,
    #[error("invalid or revoked session")]
    Invalid,
    #[error("session expired")]
    Expired,
    #[error("this account is disabled")]
    Disabled,
    #[error("cannot check the session now")]
    Unavailable(#[source] StoreError),
}

/// Sessions, tokens and passwords.
#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

struct Inner {
    /// Keys the stored token hashes.
    key: Hmac<Sha256>,
    jwt: Option<Hmac<Sha256>>,
    ttl: Duration,
    guests: bool,
    /// Lowercased usernames that are admins by configuration.
    admins: HashSet<String>,
    directory: Arc<dyn Directory>,
    /// Verified against when the username does not exist, so that a failed log-in takes
    /// as long whether or not the account exists.
    decoy_hash: String,
    /// Hashes running at once. Each argon2id hash holds 19 MiB and a core for tens of
    /// milliseconds: a burst of log-ins must queue, not exhaust memory.
    hashing: tokio::sync::Semaphore,
}

/// Password hashes computed at once, per gateway.
const CONCURRENT_HASHES: usize = 4;

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Auth {
    pub fn new(settings: &AuthSettings, directory: Arc<dyn Directory>) -> Self {
        let hmac = |key: &[u8]| Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
        let decoy_hash = Argon2::default()
            .hash_password(b"decoy password", &SaltString::generate(&mut OsRng))
            .expect("argon2 hashes with its defaults")
            .to_string();
        Self {
            inner: Arc::new(Inner {
                key: hmac(settings.secret.as_bytes()),
                jwt: (!settings.jwt_secret.is_empty()).then(|| hmac(settings.jwt_secret.as_bytes())),
                ttl: Duration::from_secs(settings.session_ttl_secs),
                guests: settings.guests,
                admins: settings.admins.iter().map(|a| a.to_ascii_lowercase()).collect(),
                directory,
                decoy_hash,
                hashing: tokio::sync::Semaphore::new(CONCURRENT_HASHES),
            }),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.inner.ttl
    }

    pub fn guests_allowed(&self) -> bool {
        self.inner.guests
    }

    /// Whether configuration makes this username an admin.
    pub fn admin_by_config(&self, username: &str) -> bool {
        self.inner.admins.contains(&username.to_ascii_lowercase())
    }

    /// The caller's principal, from an `Authorization: Bearer` header or the session cookie.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, AuthError> {
        let token = bearer(headers).or_else(|| cookie(headers)).ok_or(AuthError::Missing)?;
        self.verify(&token).await
    }

    /// Checks a token: a JWT when external tokens are on and it has a JWT's shape, else a
    /// server-side session.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        if let Some(key) = &self.inner.jwt
            && token.bytes().filter(|b| *b == b'.').count() == 2
        {
            return verify_jwt(key, token, now_secs());
        }
        if token.is_empty() || token.len() > 128 {
            return Err(AuthError::Invalid);
        }
        let found = self
            .inner
            .directory
            .session(&self.token_hash(token), now_ms())
            .await
            .map_err(AuthError::Unavailable)?
            .ok_or(AuthError::Invalid)?;
        if found.disabled {
            return Err(AuthError::Disabled);
        }
        let s = found.session;
        let author = Author {
            id: UserId::parse(&s.user_id).map_err(|_| AuthError::Invalid)?,
            name: DisplayName::parse(&found.name).map_err(|_| AuthError::Invalid)?,
        };
        let kind = if s.guest {
            IdentityKind::Guest
        } else {
            IdentityKind::Account
        };
        let role = if kind == IdentityKind::Account && self.admin_by_config(&found.name) {
            Role::Admin
        } else {
            found.role
        };
        Ok(Principal {
            author,
            kind,
            role,
            session_id: Some(s.id),
            expires_at: u64::try_from(s.expires_at_ms / 1000).unwrap_or(0),
        })
    }

    /// Starts a server-side session; returns the token (shown once, never stored).
    pub async fn start_session(
        &self,
        author: &Author,
        guest: bool,
        user_agent: &str,
    ) -> Result<(String, SessionRecord), StoreError> {
        let (token, token_hash) = self.new_token();
        let now = now_ms();
        let record = SessionRecord {
            id: uuid::Uuid::new_v4().simple().to_string(),
            token_hash,
            user_id: author.id.as_str().to_owned(),
            user_name: author.name.as_str().to_owned(),
            guest,
            created_at_ms: now,
            expires_at_ms: now.saturating_add(i64::try_from(self.inner.ttl.as_millis()).unwrap_or(i64::MAX)),
            user_agent: user_agent.chars().take(200).collect(),
        };
        self.inner.directory.create_session(&record).await?;
        Ok((token, record))
    }

    /// A fresh random token (32 bytes, base64url) and its stored form: the token is shown
    /// once (to its holder) and never stored.
    pub fn new_token(&self) -> (String, String) {
        let mut raw = [0u8; 32];
        rand::fill(&mut raw);
        let token = URL_SAFE_NO_PAD.encode(raw);
        let hash = self.token_hash(&token);
        (token, hash)
    }

    /// The stored form of a token: HMAC-SHA256 under `auth.secret`, hex.
    pub fn token_hash(&self, token: &str) -> String {
        let mut mac = self.inner.key.clone();
        mac.update(token.as_bytes());
        mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Runs password work on the blocking pool, a bounded number at a time.
    async fn hashing<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> T {
        let _permit = self
            .inner
            .hashing
            .acquire()
            .await
            .expect("the semaphore is never closed");
        tokio::task::spawn_blocking(work)
            .await
            .expect("password hashing does not panic")
    }

    /// Hashes a new password with argon2id (a fresh salt each time).
    pub async fn hash_password(&self, password: Password) -> String {
        self.hashing(move || {
            Argon2::default()
                .hash_password(password.expose().as_bytes(), &SaltString::generate(&mut OsRng))
                .expect("argon2 hashes with its defaults")
                .to_string()
        })
        .await
    }

    /// Checks a password against a stored hash, or against a decoy when there is no
    /// account, so both cases cost the same.
    pub async fn verify_password(&self, password: Password, stored: Option<String>) -> bool {
        let exists = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.inner.decoy_hash.clone());
        let matches = self
            .hashing(move || {
                PasswordHash::new(&hash).is_ok_and(|parsed| {
                    Argon2::default()
                        .verify_password(password.expose().as_bytes(), &parsed)
                        .is_ok()
                })
            })
            .await;
        exists && matches
    }

    /// The `Set-Cookie` value carrying a session token.
    pub fn cookie_header(&self, token: &str, secure: bool) -> String {
        format!(
            "{COOKIE_NAME}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
            self.inner.ttl.as_secs(),
            if secure { "; Secure" } else { "" }
        )
    }

    /// The `Set-Cookie` value that removes the session cookie.
    pub fn clear_cookie_header(secure: bool) -> String {
        format!(
            "{COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{}",
            if secure { "; Secure" } else { "" }
        )
    }
}

#[derive(Deserialize)]
struct JwtHeader {
    alg: String,
}

#[derive(Deserialize)]
struct JwtClaims {
    sub: String,
    name: String,
    exp: u64,
}

/// Verifies an HS256 JWT. Only HS256 is accepted, whatever the header asks for: trusting
/// the header's `alg` is how `none` and key-confusion attacks work.
fn verify_jwt(key: &Hmac<Sha256>, token: &str, now: u64) -> Result<Principal, AuthError> {
    let mut parts = token.splitn(3, '.');
    let (Some(header), Some(claims), Some(signature)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(AuthError::Invalid);
    };
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|_| AuthError::Invalid);
    let header: JwtHeader = serde_json::from_slice(&decode(header)?).map_err(|_| AuthError::Invalid)?;
    if header.alg != "HS256" {
        return Err(AuthError::Invalid);
    }
    let mut mac = key.clone();
    mac.update(&token.as_bytes()[..token.len() - signature.len() - 1]);
    mac.verify_slice(&decode(signature)?).map_err(|_| AuthError::Invalid)?;
    let claims: JwtClaims = serde_json::from_slice(&decode(claims)?).map_err(|_| AuthError::Invalid)?;
    if claims.exp <= now {
        return Err(AuthError::Expired);
    }
    if claims.sub.is_empty() || claims.sub.len() > 64 {
        return Err(AuthError::Invalid);
    }
    Ok(Principal {
        author: Author {
            id: UserId::parse(&format!("ext:{}", claims.sub)).map_err(|_| AuthError::Invalid)?,
            name: DisplayName::parse(&claims.name).map_err(|_| AuthError::Invalid)?,
        },
        kind: IdentityKind::External,
        role: Role::User,
        session_id: None,
        expires_at: claims.exp,
    })
}

/// Whether the request authenticates by the session cookie (which a browser attaches to a
/// request another site makes it send) rather than by a bearer token (which only our own
/// pages' code, or a client that is not a browser, can send).
pub fn by_cookie(headers: &HeaderMap) -> bool {
    bearer(headers).is_none() && cookie(headers).is_some()
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    // The scheme name is case-insensitive (RFC 9110).
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            pair.trim()
                .strip_prefix(COOKIE_NAME)?
                .strip_prefix('=')
                .map(str::to_owned)
        })
}

/// Mints an HS256 JWT, as an operator's backend would. For tests and tools.
pub fn mint_jwt(secret: &[u8], sub: &str, name: &str, exp: u64) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = URL_SAFE_NO_PAD.encode(serde_json::json!({"sub": sub, "name": name, "exp": exp}).to_string());
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(format!("{header}.{claims}").as_bytes());
    format!(
        "{header}.{claims}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn key() -> Hmac<Sha256> {
        Hmac::new_from_slice(KEY).unwrap()
    }

    #[test]
    fn a_jwt_from_the_operator_is_an_external_principal() {
        let token = mint_jwt(KEY, "42", "Ann", 2_000);
        let principal = verify_jwt(&key(), &token, 1_000).unwrap();
        assert_eq!(principal.author.id.as_str(), "ext:42");
        assert_eq!(principal.author.name.as_str(), "Ann");
        assert_eq!(
            (principal.kind, principal.role, principal.expires_at),
            (IdentityKind::External, Role::User, 2_000)
        );
    }

    #[test]
    fn bad_signatures_expiry_and_other_algorithms_are_refused() {
        let token = mint_jwt(KEY, "42", "Ann", 2_000);
        assert!(matches!(verify_jwt(&key(), &token, 2_000), Err(AuthError::Expired)));
        let foreign = mint_jwt(b"another-key-another-key-another-k", "42", "Ann", 2_000);
        assert!(matches!(verify_jwt(&key(), &foreign, 1_000), Err(AuthError::Invalid)));
        // Claims swapped under the original signature.
        let (_, rest) = token.split_once('.').unwrap();
        let (_, signature) = rest.split_once('.').unwrap();
        let forged_claims = URL_SAFE_NO_PAD.encode(br#"{"sub":"1","name":"Admin","exp":2000}"#);
        let forged = format!("{}.{forged_claims}.{signature}", token.split('.').next().unwrap());
        assert!(matches!(verify_jwt(&key(), &forged, 1_000), Err(AuthError::Invalid)));
        // `alg: none` with an empty signature.
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(br#"{"sub":"1","name":"Admin","exp":2000}"#)
        );
        assert!(matches!(verify_jwt(&key(), &none, 1_000), Err(AuthError::Invalid)));
        assert!(matches!(verify_jwt(&key(), "a.b.c", 1_000), Err(AuthError::Invalid)));
    }

    #[test]
    fn tokens_are_read_from_bearer_or_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, format!("a=b; {COOKIE_NAME}=tok").parse().unwrap());
        assert_eq!(cookie(&headers).as_deref(), Some("tok"));
        headers.insert(AUTHORIZATION, "bearer other".parse().unwrap());
        assert_eq!(bearer(&headers).as_deref(), Some("other"));
        headers.insert(AUTHORIZATION, "Basic other".parse().unwrap());
        assert_eq!(bearer(&headers), None);
    }
}
