//! The `Idempotency-Key` header: one extractor, and the request fingerprint that
//! decides whether a repeat is the same request.

use std::future::{ready, Ready};

use actix_web::{FromRequest, HttpRequest};
use sha2::{Digest, Sha256};

use super::error::{AppError, ErrorCode};
use crate::store::IdempotencyRequest;

/// A validated `Idempotency-Key` (1-64 chars of `[A-Za-z0-9_-]`), required,
/// with the request it came on (method and path).
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    /// The key.
    pub key: String,
    /// `METHOD /path` of the request, taken from the request itself.
    pub route: String,
}

impl IdempotencyKey {
    /// Binds the key to what was asked: the request's method and path and a
    /// canonical form of its parsed body (`&()` for a route without one).
    pub fn for_body(&self, body: &impl serde::Serialize) -> IdempotencyRequest {
        let mut h = Sha256::new();
        h.update(self.route.as_bytes());
        h.update([0]);
        h.update(serde_json::to_vec(body).unwrap_or_default());
        IdempotencyRequest { key: self.key.clone(), fingerprint: hex::encode(h.finalize()) }
    }
}

fn valid(k: &str) -> bool {
    (1..=64).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl FromRequest for IdempotencyKey {
    type Error = AppError;
    type Future = Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let r = match req.headers().get("idempotency-key").map(|v| v.to_str()) {
            None => {
                Err(AppError::new(ErrorCode::IdempotencyKeyInvalid, "this request needs an Idempotency-Key header"))
            }
            Some(Ok(k)) if valid(k) => {
                Ok(IdempotencyKey { key: k.to_string(), route: format!("{} {}", req.method(), req.path()) })
            }
            Some(_) => Err(AppError::new(
                ErrorCode::IdempotencyKeyInvalid,
                "Idempotency-Key must be 1-64 characters of A-Z, a-z, 0-9, _ and -",
            )),
        };
        ready(r)
    }
}
