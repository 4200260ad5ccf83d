//! Secrets and tokens: random keys, their stored hashes, and signed session tokens (JWT HS256).

use crate::clock::Clock;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use switchboard_core::session::{PresentedToken, SessionClaims};
use switchboard_core::{Session, SessionId};

/// A new random secret: `prefix` and 32 hex digits (128 bits).
pub fn generate_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    format!("{prefix}{}", hex::encode(bytes))
}

/// What the store keeps of a secret: its SHA-256, so a stolen database yields no key.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[derive(Serialize, Deserialize)]
struct Claims {
    /// The session id.
    sid: String,
    /// Expiry, seconds since the epoch (JWT `exp`).
    exp: i64,
    /// Expiry in milliseconds, for the exact session deadline.
    exp_ms: i64,
    iat: i64,
}

/// Issues and verifies session tokens with the server's signing secret.
pub struct SessionTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl SessionTokens {
    pub fn new(secret: &str) -> SessionTokens {
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is checked by the core against the engine's clock, so paused-time tests and
        // production agree; the library only checks the signature and the algorithm.
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        SessionTokens {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
        }
    }

    pub fn issue(&self, session: &Session, clock: &Clock) -> String {
        let claims = Claims {
            sid: session.id.0.clone(),
            exp: session.expires_at / 1000,
            exp_ms: session.expires_at,
            iat: clock.now_ms() / 1000,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing cannot fail")
    }

    pub fn verify(&self, token: Option<&str>) -> PresentedToken {
        let Some(token) = token.filter(|token| !token.is_empty()) else {
            return PresentedToken::Missing;
        };
        match jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation) {
            Ok(data) => PresentedToken::Verified(SessionClaims {
                session_id: SessionId(data.claims.sid),
                expires_at: data.claims.exp_ms,
            }),
            Err(_) => PresentedToken::Unverifiable,
        }
    }
}
