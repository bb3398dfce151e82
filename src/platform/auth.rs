//! Passwords (argon2id) and player tokens (JWT HS256 with expiry).

use std::future::ready;
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
use futures_util::future::LocalBoxFuture;

use crate::game::ids::PlayerId;
use crate::game::player::Player;

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
    /// The player's token version when issued (see [`Player::token_version`]).
    #[serde(default)]
    pub ver: u32,
}

/// Signs and checks tokens: the current key signs, and it or the previous one
/// (during a rotation) verifies. Each key is named in the token header (`kid`,
/// a fingerprint of the key, not the key), so a token finds its key directly.
pub struct TokenKeys {
    current: Key,
    previous: Option<Key>,
    ttl_secs: i64,
}

/// One HS256 key and its id.
struct Key {
    id: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl Key {
    fn new(secret: &SecretString) -> Self {
        use sha2::Digest;
        let s = secret.expose_secret().as_bytes();
        let digest = sha2::Sha256::digest(s);
        let id = digest.iter().take(6).fold(String::new(), |mut id, b| {
            use std::fmt::Write;
            let _ = write!(id, "{b:02x}");
            id
        });
        Self { id, encoding: EncodingKey::from_secret(s), decoding: DecodingKey::from_secret(s) }
    }
}

impl TokenKeys {
    /// Keys from the configured secret.
    pub fn new(secret: &SecretString, ttl_secs: u64) -> Self {
        Self::rotating(secret, None, ttl_secs)
    }

    /// Keys from the current secret and, during a rotation, the previous one.
    pub fn rotating(current: &SecretString, previous: Option<&SecretString>, ttl_secs: u64) -> Self {
        Self { current: Key::new(current), previous: previous.map(Key::new), ttl_secs: ttl_secs as i64 }
    }

    /// The key a token names (a token without `kid` is tried with the current one).
    fn key_for(&self, token: &str) -> Option<&Key> {
        let kid = jsonwebtoken::decode_header(token).ok()?.kid;
        match kid {
            None => Some(&self.current),
            Some(kid) => std::iter::once(&self.current).chain(self.previous.as_ref()).find(|k| k.id == kid),
        }
    }

    /// A token for `player_id` at its token version `ver`, valid from `now` for
    /// the configured lifetime.
    pub fn issue(&self, player_id: &str, ver: u32, now: DateTime<Utc>) -> Result<(String, DateTime<Utc>), AppError> {
        let exp = now.timestamp() + self.ttl_secs;
        let claims = Claims { sub: player_id.to_string(), iat: now.timestamp(), exp, ver };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.current.id.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.current.encoding).map_err(AppError::internal)?;
        Ok((token, DateTime::from_timestamp(exp, 0).unwrap_or(now)))
    }

    /// The player id and token version of a token that is valid at `now`.
    ///
    /// Expiry is checked here against `now` (the server's injected clock), not by
    /// the JWT library against the wall clock: issuing and checking must agree on
    /// what time it is, or a server on a moved clock rejects its own fresh tokens.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<(String, u32), AppError> {
        let mut v = Validation::new(Algorithm::HS256);
        v.validate_exp = false;
        v.validate_nbf = false;
        v.set_required_spec_claims(&["exp", "sub"]);
        let invalid = || AppError::new(ErrorCode::InvalidToken, "the token is not valid");
        let key = self.key_for(token).ok_or_else(invalid)?;
        let claims = jsonwebtoken::decode::<Claims>(token, &key.decoding, &v).map_err(|_| invalid())?.claims;
        let now = now.timestamp();
        if now >= claims.exp {
            return Err(AppError::new(ErrorCode::TokenExpired, "the token has expired; log in again"));
        }
        // A token issued in the future was not issued by this server's clock.
        if claims.iat > now {
            return Err(AppError::new(ErrorCode::InvalidToken, "the token is not valid yet"));
        }
        Ok((claims.sub, claims.ver))
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
    ver: u32,
}

impl Authenticator {
    /// The player of a request's bearer token: `None` without one, else the
    /// player or why the token is refused. Checked once per request.
    pub fn player(&self, req: &HttpRequest) -> Option<Result<String, AppError>> {
        Some(self.signed(req)?.map(|(player, _)| player))
    }

    /// The player and token version a request's bearer token is signed for
    /// (signature and expiry checked, not revocation). Checked once per request.
    fn signed(&self, req: &HttpRequest) -> Option<Result<(String, u32), AppError>> {
        let token = bearer(req)?;
        if let Some(c) = req.extensions().get::<CheckedToken>().filter(|c| c.token == token) {
            return Some(Ok((c.player.clone(), c.ver)));
        }
        let checked = self.tokens.verify(token, self.clock.now());
        if let Ok((player, ver)) = &checked {
            req.extensions_mut().insert(CheckedToken { token: token.to_string(), player: player.clone(), ver: *ver });
        }
        Some(checked)
    }
}

/// Where the extractor reads a player's current record (through the cache):
/// to refuse a revoked token, and to hand the handler the record it checked.
pub trait PlayerSource: Send + Sync {
    /// The player's current record, `None` if there is no such player.
    fn current(&self, player_id: String) -> LocalBoxFuture<'_, Result<Option<Arc<Player>>, AppError>>;
}

/// The authenticated player of a request: the only source of identity. The
/// token is signed, unexpired and of the player's current token version (a
/// logout or a password change revokes older ones); the record it was checked
/// against comes along.
#[derive(Debug, Clone)]
pub struct AuthPlayer(pub PlayerId, pub Arc<Player>);

impl AuthPlayer {
    /// A copy of the caller's record as it was when the token was checked, to change.
    pub fn player(&self) -> Player {
        (*self.1).clone()
    }

    /// The same record, borrowed: for a handler that only reads it (no copy).
    pub fn record(&self) -> &Player {
        &self.1
    }
}

impl FromRequest for AuthPlayer {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let (Some(auth), Some(source)) =
            (req.app_data::<web::Data<Authenticator>>(), req.app_data::<web::Data<dyn PlayerSource>>().cloned())
        else {
            return Box::pin(ready(Err(AppError::internal(anyhow::anyhow!("authenticator missing from app data")))));
        };
        let signed = match auth.signed(req) {
            None => Err(AppError::new(ErrorCode::Unauthorized, "send Authorization: Bearer <token>")),
            Some(checked) => checked,
        };
        let req = req.clone();
        Box::pin(async move {
            let (id, ver) = signed?;
            let player = source
                .current(id.clone())
                .await?
                .ok_or_else(|| AppError::new(ErrorCode::InvalidToken, "the token's player does not exist"))?;
            if player.token_version != ver {
                return Err(AppError::new(
                    ErrorCode::InvalidToken,
                    "the token was revoked (a logout or a password change): log in again",
                ));
            }
            // For the access log: whose request it was.
            req.extensions_mut().insert(VerifiedPlayer(id.clone()));
            Ok(AuthPlayer(PlayerId(id), player))
        })
    }
}

/// The player a request's token was verified for, left in the request's
/// extensions for the access log.
#[derive(Debug, Clone)]
pub struct VerifiedPlayer(pub String);

/// The authenticated player when a valid token is sent, else nobody (for public
/// routes that show more to a logged-in caller). An invalid token is still an error.
#[derive(Debug, Clone)]
pub struct MaybePlayer(pub Option<PlayerId>);

impl FromRequest for MaybePlayer {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, p: &mut actix_web::dev::Payload) -> Self::Future {
        if bearer(req).is_none() {
            return Box::pin(ready(Ok(MaybePlayer(None))));
        }
        let checked = AuthPlayer::from_request(req, p);
        Box::pin(async move { checked.await.map(|a| MaybePlayer(Some(a.0))) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotation_keeps_the_previous_keys_tokens_until_it_is_removed() {
        let (old, new) = (
            SecretString::from("old-key-old-key-old-key-0123456789"),
            SecretString::from("new-key-new-key-new-key-9876543210"),
        );
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let (old_token, _) = TokenKeys::new(&old, 60).issue("p1", 0, t0).unwrap();
        let rotating = TokenKeys::rotating(&new, Some(&old), 60);
        assert_eq!(rotating.verify(&old_token, t0).unwrap().0, "p1", "the previous key still verifies");
        let (new_token, _) = rotating.issue("p2", 0, t0).unwrap();
        let kid = jsonwebtoken::decode_header(&new_token).unwrap().kid.unwrap();
        assert_eq!(kid, Key::new(&new).id, "the current key signs and names itself");
        assert!(!kid.is_empty() && !new_token.contains("new-key"));
        let done = TokenKeys::new(&new, 60);
        assert_eq!(done.verify(&new_token, t0).unwrap().0, "p2");
        assert!(done.verify(&old_token, t0).is_err(), "removed: its tokens are refused");
    }

    #[test]
    fn tokens_round_trip_and_expire_on_the_callers_clock() {
        let keys = TokenKeys::new(&SecretString::from("s3cret-for-tests-only-0123456789"), 60);
        // A fixed instant far from today: the outcome must not depend on the wall clock.
        let t0 = DateTime::from_timestamp(1_900_000_000, 0).unwrap();
        let (t, exp) = keys.issue("p1", 3, t0).unwrap();
        assert_eq!(exp, t0 + chrono::Duration::seconds(60));
        assert_eq!(keys.verify(&t, t0).unwrap(), ("p1".to_string(), 3));
        assert_eq!(keys.verify(&t, t0 + chrono::Duration::seconds(59)).unwrap().0, "p1");
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
