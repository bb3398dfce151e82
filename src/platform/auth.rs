//! Passwords (argon2id) and player tokens (JWT HS256 with expiry).

use std::future::{ready, Ready};

use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use chrono::{DateTime, Utc};
use jsonwebtoken::{errors::ErrorKind, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::error::{AppError, ErrorCode};
use super::state::AppState;

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
        .map(|h| Argon2::default().verify_password(password.expose_secret().as_bytes(), &h).is_ok())
        .unwrap_or(false)
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

    /// The player id of a valid token.
    pub fn verify(&self, token: &str) -> Result<String, AppError> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 0;
        v.set_required_spec_claims(&["exp", "sub"]);
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &v).map(|d| d.claims.sub).map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => {
                AppError::new(ErrorCode::TokenExpired, "the token has expired; log in again")
            }
            _ => AppError::new(ErrorCode::InvalidToken, "the token is not valid"),
        })
    }
}

/// The bearer token of a request, if it has one.
pub fn bearer(req: &HttpRequest) -> Option<&str> {
    req.headers().get("authorization")?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

/// A player id whose token was already verified for this request (by the rate limiter).
#[derive(Debug, Clone)]
pub struct VerifiedPlayer(pub String);

/// The authenticated player of a request: the only source of identity.
#[derive(Debug, Clone)]
pub struct AuthPlayer(pub String);

impl FromRequest for AuthPlayer {
    type Error = AppError;
    type Future = Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        if let Some(v) = req.extensions().get::<VerifiedPlayer>() {
            return ready(Ok(AuthPlayer(v.0.clone())));
        }
        let Some(state) = req.app_data::<web::Data<AppState>>() else {
            return ready(Err(AppError::internal(anyhow::anyhow!("app state missing"))));
        };
        let r = match bearer(req) {
            None => Err(AppError::new(ErrorCode::Unauthorized, "send Authorization: Bearer <token>")),
            Some(t) => state.tokens.verify(t).map(AuthPlayer),
        };
        ready(r)
    }
}

/// The authenticated player when a valid token is sent, else nobody (for public
/// routes that show more to a logged-in caller). An invalid token is still an error.
#[derive(Debug, Clone)]
pub struct MaybePlayer(pub Option<String>);

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
    fn tokens_round_trip_and_expire() {
        let keys = TokenKeys::new(&SecretString::from("s3cret-for-tests-only-0123456789"), 60);
        let now = Utc::now();
        let (t, _) = keys.issue("p1", now).unwrap();
        assert_eq!(keys.verify(&t).unwrap(), "p1");
        let (old, _) = keys.issue("p1", now - chrono::Duration::seconds(120)).unwrap();
        assert_eq!(keys.verify(&old).unwrap_err().code, ErrorCode::TokenExpired);
        let other = TokenKeys::new(&SecretString::from("another-secret-another-secret-00"), 60);
        assert_eq!(other.verify(&t).unwrap_err().code, ErrorCode::InvalidToken);
    }

    #[test]
    fn passwords_verify_only_themselves() {
        let h = hash_password(&SecretString::from("correct horse")).unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(&SecretString::from("correct horse"), &h));
        assert!(!verify_password(&SecretString::from("wrong horse"), &h));
    }
}
