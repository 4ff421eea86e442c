//! HS256 JWTs minted locally, so that a run against a gateway in external-JWT mode needs no
//! HTTP round trip per client (and idle runs of 100,000 connections need no 100,000 sessions).
//!
//! Written with `hmac` + `sha2` + `base64` rather than a JWT crate: we need one algorithm,
//! and the gateway verifies with the same three crates.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The claims the gateway reads: `sub` becomes the author id, `name` the display name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub name: String,
    /// Unix seconds.
    pub exp: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("a JWT has three dot-separated parts")]
    Malformed,
    #[error("a JWT part is not valid base64url JSON")]
    Encoding,
    #[error("unsupported JWT algorithm {0:?} (only HS256)")]
    Algorithm(String),
    #[error("JWT signature does not match")]
    Signature,
    #[error("JWT expired")]
    Expired,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
}

/// A signing key for HS256 JWTs.
#[derive(Clone)]
pub struct JwtKey {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKey([redacted])")
    }
}

impl JwtKey {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            mac: Hmac::new_from_slice(secret).expect("HMAC takes keys of any length"),
        }
    }

    fn signature(&self, signing_input: &str) -> Vec<u8> {
        let mut mac = self.mac.clone();
        mac.update(signing_input.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// `base64url(header) "." base64url(claims) "." base64url(HMAC-SHA256)`.
    pub fn mint(&self, claims: &Claims) -> String {
        let header = Header {
            alg: "HS256".into(),
            typ: Some("JWT".into()),
        };
        let header = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).expect("header serializes"));
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialize"));
        let signing_input = format!("{header}.{payload}");
        let signature = URL_SAFE_NO_PAD.encode(self.signature(&signing_input));
        format!("{signing_input}.{signature}")
    }

    /// Checks the algorithm, signature and expiry (against `now`, unix seconds), as the
    /// gateway does; the load generator uses it to check its own tokens before a run.
    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let signing_input = &token[..header.len() + 1 + payload.len()];
        let header: Header = decode_json(header)?;
        if header.alg != "HS256" {
            return Err(TokenError::Algorithm(header.alg));
        }
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| TokenError::Encoding)?;
        let mut mac = self.mac.clone();
        mac.update(signing_input.as_bytes());
        mac.verify_slice(&signature).map_err(|_| TokenError::Signature)?;
        let claims: Claims = decode_json(payload)?;
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, TokenError> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| TokenError::Encoding)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Encoding)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            sub: "lg:run1:7".into(),
            name: "lg-7".into(),
            exp: 2_000_000_000,
        }
    }

    #[test]
    fn a_minted_token_verifies_and_round_trips_its_claims() {
        let key = JwtKey::new(b"secret");
        let token = key.mint(&claims());
        assert_eq!(token.split('.').count(), 3);
        assert_eq!(key.verify(&token, 1_900_000_000), Ok(claims()));
    }

    #[test]
    fn header_and_payload_are_plain_base64url_json() {
        let token = JwtKey::new(b"secret").mint(&claims());
        let parts: Vec<&str> = token.split('.').collect();
        let header: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header, serde_json::json!({"alg": "HS256", "typ": "JWT"}));
        let payload: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(
            payload,
            serde_json::json!({"sub": "lg:run1:7", "name": "lg-7", "exp": 2_000_000_000u64})
        );
        assert!(!token.contains('='), "no padding");
    }

    /// The well-known example token of RFC 7519's HS256 ecosystem (jwt.io), so that our
    /// signature is the standard one and not merely self-consistent.
    #[test]
    fn the_signature_matches_a_known_hs256_token() {
        let known = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.\
                     eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.\
                     SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
        let key = JwtKey::new(b"your-256-bit-secret");
        let (input, signature) = known.rsplit_once('.').unwrap();
        assert_eq!(URL_SAFE_NO_PAD.encode(key.signature(input)), signature);
    }

    #[test]
    fn wrong_key_tampering_expiry_and_garbage_are_refused() {
        let key = JwtKey::new(b"secret");
        let token = key.mint(&claims());
        assert_eq!(JwtKey::new(b"other").verify(&token, 0), Err(TokenError::Signature));

        let (_, rest) = token.split_once('.').unwrap();
        let (_, signature) = rest.split_once('.').unwrap();
        let forged_payload = URL_SAFE_NO_PAD.encode(br#"{"sub":"someone-else","name":"x","exp":2000000000}"#);
        let header = token.split('.').next().unwrap();
        let forged = format!("{header}.{forged_payload}.{signature}");
        assert_eq!(key.verify(&forged, 0), Err(TokenError::Signature));

        assert_eq!(key.verify(&token, 2_000_000_000), Err(TokenError::Expired));
        assert_eq!(key.verify("a.b", 0), Err(TokenError::Malformed));
        assert_eq!(key.verify("a.b.c.d", 0), Err(TokenError::Malformed));
        assert_eq!(key.verify("!!.b.c", 0), Err(TokenError::Encoding));

        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        let payload = token.split('.').nth(1).unwrap();
        assert_eq!(
            key.verify(&format!("{none_header}.{payload}.{signature}"), 0),
            Err(TokenError::Algorithm("none".into()))
        );
    }
}
