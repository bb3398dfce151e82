//! Passwords (argon2id) and player tokens (JWT HS256 with expiry).

use std::future::{ready, Ready};
use std::sync::Arc;

use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::clock::Clock;
use super::error::{AppError, ErrorCode};
use crate::game::ids::PlayerId;

/// Hashes a password with argon2id and a random salt (CPU-heavy: call off the async threads).
pub fn hash_password(password: &SecretString) -> Result<String, AppError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AppError::internal(anyhow::anyhow!("hashing password: {e}")))
}

/// Checks a password against a stored hash (CPU-heavy: call off the async threads).
pub fn verify_password(password: &SecretString, hash: &str) -> bool {
    PasswordHash::new(hash)
        .is_ok_and(|h| Argon2::default().verify_password(password.expose_secret().as_bytes(), &h).is_ok())
}

/// Token claims.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// Player id.
    pub sub: String,
    /// Issued at (unix seconds).
    pub iat: i64,
    /// Expiry (unix seconds).
    pub exp: i64,
}

/// Signs and checks tokens with the shared secret.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl_secs: i64,
}

impl TokenKeys {
    /// Keys from the configured secret.
    pub fn new(secret: &SecretString, ttl_secs: u64) -> Self {
        let s = secret.expose_secret().as_bytes();
        Self { encoding: EncodingKey::from_secret(s), decoding: DecodingKey::from_secret(s), ttl_secs: ttl_secs as i64 }
    }

    /// A token for `player_id`, valid from `now` for the configured lifetime.
    pub fn issue(&self, player_id: &str, now: DateTime<Utc>) -> Result<(String, DateTime<Utc>), AppError> {
        let exp = now.timestamp() + self.ttl_secs;
        let claims = Claims { sub: player_id.to_string(), iat: now.timestamp(), exp };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(AppError::internal)?;
        Ok((token, DateTime::from_timestamp(exp, 0).unwrap_or(now)))
    }

    /// The player id of a token that is valid at `now`.
    ///
    /// Expiry is checked here against `now` (the server's injected clock), not by
    /// the JWT library against the wall clock: issuing and checking must agree on
    /// what time it is, or a server on a moved clock rejects its own fresh tokens.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<String, AppError> {
        let mut v = Validation::new(Algorithm::HS256);
        v.validate_exp = false;
        v.validate_nbf = false;
        v.set_required_spec_claims(&["exp", "sub"]);
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &v)
            .map_err(|_| AppError::new(ErrorCode::InvalidToken, "the token is not valid"))?
            .claims;
        let now = now.timestamp();
        if now >= claims.exp {
            return Err(AppError::new(ErrorCode::TokenExpired, "the token has expired; log in again"));
        }
        // A token issued in the future was not issued by this server's clock.
        if claims.iat > now {
            return Err(AppError::new(ErrorCode::InvalidToken, "the token is not valid yet"));
        }
        Ok(claims.sub)
    }
}

/// The bearer token of a request, if it has one.
pub fn bearer(req: &HttpRequest) -> Option<&str> {
    req.headers().get("authorization")?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

/// What checking a request's token needs: the keys and the server's clock.
/// Registered as app data of its own, so the extractor needs nothing else.
pub struct Authenticator {
    /// Signing and checking keys.
    pub tokens: Arc<TokenKeys>,
    /// The clock tokens are issued and checked on.
    pub clock: Arc<dyn Clock>,
}

/// A token already found valid for this request, with the token itself: whoever
/// checks the same request again (the limiter, then the extractor) reuses it only
/// for that very token, so identity never depends on which of them ran first.
struct CheckedToken {
    token: String,
    player: String,
}

impl Authenticator {
    /// The player of a request's bearer token: `None` without one, else the
    /// player or why the token is refused. Checked once per request.
    pub fn player(&self, req: &HttpRequest) -> Option<Result<String, AppError>> {
        let token = bearer(req)?;
        if let Some(c) = req.extensions().get::<CheckedToken>().filter(|c| c.token == token) {
            return Some(Ok(c.player.clone()));
        }
        let checked = self.tokens.verify(token, self.clock.now());
        if let Ok(player) = &checked {
            req.extensions_mut().insert(CheckedToken { token: token.to_string(), player: player.clone() });
        }
        Some(checked)
    }
}

/// The authenticated player of a request: the only source of identity.
#[derive(Debug, Clone)]
pub struct AuthPlayer(pub PlayerId);

impl FromRequest for AuthPlayer {
    type Error = AppError;
    type Future = Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let Some(auth) = req.app_data::<web::Data<Authenticator>>() else {
            return ready(Err(AppError::internal(anyhow::anyhow!("authenticator missing from app data"))));
        };
        let r = match auth.player(req) {
            None => Err(AppError::new(ErrorCode::Unauthorized, "send Authorization: Bearer <token>")),
            Some(checked) => checked.map(|id| AuthPlayer(PlayerId(id))),
        };
        ready(r)
    }
}

/// The authenticated player when a valid token is sent, else nobody (for public
/// routes that show more to a logged-in caller). An invalid token is still an error.
#[derive(Debug, Clone)]
pub struct MaybePlayer(pub Option<PlayerId>);

impl FromRequest for MaybePlayer {
    type Error = AppError;
    type Future = Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, p: &mut actix_web::dev::Payload) -> Self::Future {
        if bearer(req).is_none() {
            return ready(Ok(MaybePlayer(None)));
        }
        ready(AuthPlayer::from_request(req, p).into_inner().map(|a| MaybePlayer(Some(a.0))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_expire_on_the_callers_clock() {
        let keys = TokenKeys::new(&SecretString::from("s3cret-for-tests-only-0123456789"), 60);
        // A fixed instant far from today: the outcome must not depend on the wall clock.
        let t0 = DateTime::from_timestamp(1_900_000_000, 0).unwrap();
        let (t, exp) = keys.issue("p1", t0).unwrap();
        assert_eq!(exp, t0 + chrono::Duration::seconds(60));
        assert_eq!(keys.verify(&t, t0).unwrap(), "p1");
        assert_eq!(keys.verify(&t, t0 + chrono::Duration::seconds(59)).unwrap(), "p1");
        assert_eq!(keys.verify(&t, t0 + chrono::Duration::seconds(60)).unwrap_err().code, ErrorCode::TokenExpired);
        assert_eq!(keys.verify(&t, t0 + chrono::Duration::seconds(61)).unwrap_err().code, ErrorCode::TokenExpired);
        assert_eq!(keys.verify(&t, t0 - chrono::Duration::seconds(1)).unwrap_err().code, ErrorCode::InvalidToken);
        let other = TokenKeys::new(&SecretString::from("another-secret-another-secret-00"), 60);
        assert_eq!(other.verify(&t, t0).unwrap_err().code, ErrorCode::InvalidToken);
        assert_eq!(keys.verify("not.a.token", t0).unwrap_err().code, ErrorCode::InvalidToken);
    }

    #[test]
    fn passwords_verify_only_themselves() {
        let h = hash_password(&SecretString::from("correct horse")).unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(&SecretString::from("correct horse"), &h));
        assert!(!verify_password(&SecretString::from("wrong horse"), &h));
    }
}
