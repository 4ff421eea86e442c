//! Identity, for now: guest sessions. `POST /api/v1/sessions` with a display name mints a
//! signed, expiring token (also set as an HttpOnly cookie). The token is the only source of
//! a message's author; no frame field can change it.
//!
//! The seam for accounts: everything else asks [`Sessions::authenticate`] for a
//! [`Principal`] and never looks at tokens itself.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chat_domain::{Author, DisplayName, UserId};
use hmac::{Hmac, Mac};
use http::HeaderMap;
use http::header::{AUTHORIZATION, COOKIE};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const COOKIE_NAME: &str = "sc_session";

/// Who is calling, as established by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub author: Author,
    /// Unix seconds after which the session is no longer valid.
    pub expires_at: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no session: create one with POST /api/v1/sessions")]
    Missing,
    #[error("invalid session token")]
    Invalid,
    #[error("session expired")]
    Expired,
}

#[derive(Serialize, Deserialize)]
struct Claims {
    sub: String,
    name: String,
    exp: u64,
}

/// Mints and checks session tokens: `base64url(claims) "." base64url(HMAC-SHA256)`.
#[derive(Clone)]
pub struct Sessions {
    key: Hmac<Sha256>,
    ttl: Duration,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Sessions {
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        Self {
            key: Hmac::new_from_slice(secret).expect("HMAC takes keys of any length"),
            ttl,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A new guest identity for `name`, and its token.
    pub fn create_guest(&self, name: DisplayName) -> (String, Principal) {
        let id = UserId::parse(&format!("guest:{}", uuid::Uuid::new_v4().simple())).expect("guest ids are valid");
        let principal = Principal {
            author: Author { id, name },
            expires_at: now() + self.ttl.as_secs(),
        };
        (self.sign(&principal), principal)
    }

    fn sign(&self, principal: &Principal) -> String {
        let claims = Claims {
            sub: principal.author.id.as_str().to_owned(),
            name: principal.author.name.as_str().to_owned(),
            exp: principal.expires_at,
        };
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("claims serialize"));
        let mut mac = self.key.clone();
        mac.update(payload.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{payload}.{signature}")
    }

    /// Checks a token's signature and expiry.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let (payload, signature) = token.split_once('.').ok_or(AuthError::Invalid)?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| AuthError::Invalid)?;
        let mut mac = self.key.clone();
        mac.update(payload.as_bytes());
        mac.verify_slice(&signature).map_err(|_| AuthError::Invalid)?;
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or(AuthError::Invalid)?;
        if claims.exp <= now() {
            return Err(AuthError::Expired);
        }
        Ok(Principal {
            author: Author {
                id: UserId::parse(&claims.sub).map_err(|_| AuthError::Invalid)?,
                name: DisplayName::parse(&claims.name).map_err(|_| AuthError::Invalid)?,
            },
            expires_at: claims.exp,
        })
    }

    /// The caller's principal, from the session cookie or an `Authorization: Bearer` header.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, AuthError> {
        let token = bearer(headers).or_else(|| cookie(headers)).ok_or(AuthError::Missing)?;
        self.verify(&token)
    }

    /// The `Set-Cookie` value carrying a session token.
    pub fn cookie_header(&self, token: &str, secure: bool) -> String {
        format!(
            "{COOKIE_NAME}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
            self.ttl.as_secs(),
            if secure { "; Secure" } else { "" }
        )
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(|t| t.trim().to_owned())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions() -> Sessions {
        Sessions::new(b"0123456789abcdef0123456789abcdef", Duration::from_secs(60))
    }

    #[test]
    fn a_token_round_trips_and_is_read_from_cookie_or_bearer() {
        let s = sessions();
        let (token, principal) = s.create_guest(DisplayName::parse("Ann").unwrap());
        assert_eq!(s.verify(&token).unwrap(), principal);
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, format!("a=b; {COOKIE_NAME}={token}").parse().unwrap());
        assert_eq!(s.authenticate(&headers).unwrap(), principal);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
        assert_eq!(s.authenticate(&headers).unwrap(), principal);
        assert_eq!(s.authenticate(&HeaderMap::new()), Err(AuthError::Missing));
    }

    #[test]
    fn tampered_foreign_and_expired_tokens_are_refused() {
        let s = sessions();
        let (token, _) = s.create_guest(DisplayName::parse("Ann").unwrap());
        // Swap in claims naming someone else, keeping the signature.
        let forged_claims = URL_SAFE_NO_PAD.encode(br#"{"sub":"guest:x","name":"Bob","exp":99999999999}"#);
        let forged = format!("{forged_claims}.{}", token.split_once('.').unwrap().1);
        assert_eq!(s.verify(&forged), Err(AuthError::Invalid));
        let other = Sessions::new(b"another-secret-another-secret-xx", Duration::from_secs(60));
        assert_eq!(other.verify(&token), Err(AuthError::Invalid));
        assert_eq!(s.verify("garbage"), Err(AuthError::Invalid));
        let expired = Sessions::new(b"0123456789abcdef0123456789abcdef", Duration::ZERO);
        let (token, _) = expired.create_guest(DisplayName::parse("Ann").unwrap());
        assert_eq!(expired.verify(&token), Err(AuthError::Expired));
    }
}
