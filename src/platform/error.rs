//! The one error-code table and the JSON error shape:
//! `{"error": {"code": "...", "message": "...", "details": {...}}}`.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde_json::{json, Value};

use crate::game::error::GameError;
use crate::store::StoreError;

/// Stable error codes clients can switch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The body is not valid JSON.
    MalformedJson,
    /// A value is missing, of the wrong type or out of range.
    ValidationFailed,
    /// The body is not `application/json`.
    UnsupportedMediaType,
    /// The body is too large.
    PayloadTooLarge,
    /// No bearer token.
    Unauthorized,
    /// The token is forged, malformed or for another secret.
    InvalidToken,
    /// The token has expired.
    TokenExpired,
    /// Wrong username or password.
    InvalidCredentials,
    /// The username is taken.
    UsernameTaken,
    /// No such route or resource (or not the caller's).
    NotFound,
    /// The route exists but not with this method.
    MethodNotAllowed,
    /// Not enough currency.
    InsufficientFunds,
    /// Not enough shards of a hero.
    InsufficientShards,
    /// The `Idempotency-Key` header is required or malformed.
    IdempotencyKeyInvalid,
    /// The key was used with a different request.
    IdempotencyKeyReused,
    /// The action conflicts with the current state.
    Conflict,
    /// A summon would pass the player's monthly spending cap.
    SpendingCapReached,
    /// Summons are barred on this account (a minor's).
    SummonsBarred,
    /// The server seed of a summon is still secret (rotate to reveal it).
    SeedNotRevealed,
    /// A webhook delivery's signature is missing, wrong or stale.
    InvalidSignature,
    /// A purchase limit of the day or week is reached.
    LimitReached,
    /// No such redeem code.
    CodeUnknown,
    /// The redeem code has expired.
    CodeExpired,
    /// Every use of the redeem code is taken.
    CodeUsedUp,
    /// The redeem code was disabled.
    CodeDisabled,
    /// The redeem code was redeemed on this account before.
    CodeAlreadyRedeemed,
    /// The offer is no longer on sale.
    OfferExpired,
    /// Not allowed on that object (another's guild, a blocker, a rank without the power).
    Forbidden,
    /// Too many requests.
    RateLimited,
    /// A dependency is down or the server is shutting down.
    ServiceUnavailable,
    /// A bug or an unexpected failure.
    Internal,
}

impl ErrorCode {
    /// HTTP status and wire code, in one exhaustive table.
    pub fn parts(self) -> (StatusCode, &'static str) {
        #[allow(clippy::enum_glob_use)] // the table names every variant; the match is exhaustive
        use ErrorCode::*;
        match self {
            MalformedJson => (StatusCode::BAD_REQUEST, "MALFORMED_JSON"),
            ValidationFailed => (StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED"),
            UnsupportedMediaType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE"),
            PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE"),
            Unauthorized => (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"),
            InvalidToken => (StatusCode::UNAUTHORIZED, "INVALID_TOKEN"),
            TokenExpired => (StatusCode::UNAUTHORIZED, "TOKEN_EXPIRED"),
            InvalidCredentials => (StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS"),
            UsernameTaken => (StatusCode::CONFLICT, "USERNAME_TAKEN"),
            NotFound => (StatusCode::NOT_FOUND, "NOT_FOUND"),
            MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED"),
            InsufficientFunds => (StatusCode::CONFLICT, "INSUFFICIENT_FUNDS"),
            InsufficientShards => (StatusCode::CONFLICT, "INSUFFICIENT_SHARDS"),
            IdempotencyKeyInvalid => (StatusCode::BAD_REQUEST, "IDEMPOTENCY_KEY_INVALID"),
            IdempotencyKeyReused => (StatusCode::CONFLICT, "IDEMPOTENCY_KEY_REUSED"),
            Conflict => (StatusCode::CONFLICT, "CONFLICT"),
            SpendingCapReached => (StatusCode::CONFLICT, "SPENDING_CAP_REACHED"),
            SummonsBarred => (StatusCode::FORBIDDEN, "SUMMONS_BARRED"),
            InvalidSignature => (StatusCode::UNAUTHORIZED, "INVALID_SIGNATURE"),
            LimitReached => (StatusCode::CONFLICT, "LIMIT_REACHED"),
            CodeUnknown => (StatusCode::NOT_FOUND, "CODE_UNKNOWN"),
            CodeExpired => (StatusCode::GONE, "CODE_EXPIRED"),
            CodeUsedUp => (StatusCode::CONFLICT, "CODE_USED_UP"),
            CodeDisabled => (StatusCode::GONE, "CODE_DISABLED"),
            CodeAlreadyRedeemed => (StatusCode::CONFLICT, "CODE_ALREADY_REDEEMED"),
            OfferExpired => (StatusCode::GONE, "OFFER_EXPIRED"),
            Forbidden => (StatusCode::FORBIDDEN, "FORBIDDEN"),
            SeedNotRevealed => (StatusCode::CONFLICT, "SEED_NOT_REVEALED"),
            RateLimited => (StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED"),
            ServiceUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE"),
            Internal => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL"),
        }
    }
}

/// An error on its way to the client.
#[derive(Debug)]
pub struct AppError {
    /// Which code.
    pub code: ErrorCode,
    /// Human-readable, safe to show.
    pub message: String,
    /// Structured detail (needed vs had, field names).
    pub details: Value,
    /// Seconds for `Retry-After` on 429 and 503.
    pub retry_after: Option<u64>,
    /// The cause, logged for 5xx, never sent.
    pub source: Option<anyhow::Error>,
}

impl AppError {
    /// An error with a message and no details.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), details: json!({}), retry_after: None, source: None }
    }

    /// Adds structured details.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    /// An unexpected failure: the client sees only `INTERNAL`.
    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        let mut e = Self::new(ErrorCode::Internal, "internal error");
        e.source = Some(cause.into());
        e
    }

    /// A dependency outage: 503 with `Retry-After`.
    pub fn unavailable(message: impl Into<String>) -> Self {
        let mut e = Self::new(ErrorCode::ServiceUnavailable, message);
        e.retry_after = Some(1);
        e
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.parts().1, self.message)?;
        if let Some(s) = &self.source {
            write!(f, " ({s:#})")?;
        }
        Ok(())
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        self.code.parts().0
    }

    fn error_response(&self) -> HttpResponse {
        let (status, code) = self.code.parts();
        if status.is_server_error() {
            tracing::error!(code, error = %self, "request failed");
        }
        let mut res = HttpResponse::build(status);
        if let Some(s) = self.retry_after {
            res.insert_header((header::RETRY_AFTER, s.to_string()));
        }
        res.json(json!({"error": {"code": code, "message": self.message, "details": self.details}}))
    }
}

impl From<GameError> for AppError {
    fn from(e: GameError) -> Self {
        let message = e.to_string();
        match e {
            GameError::InsufficientFunds(f) => AppError::new(ErrorCode::InsufficientFunds, f.to_string())
                .with_details(json!({"currency": f.currency, "needed": f.needed, "has": f.has})),
            GameError::NotEnoughShards { hero_id, needed, has } => {
                AppError::new(ErrorCode::InsufficientShards, format!("needs {needed} shards of {hero_id}, has {has}"))
                    .with_details(json!({"hero_id": hero_id, "needed": needed, "has": has}))
            }
            GameError::NotFound(m) => AppError::new(ErrorCode::NotFound, m),
            GameError::Invalid(m) => AppError::new(ErrorCode::ValidationFailed, m),
            GameError::Conflict(m) => AppError::new(ErrorCode::Conflict, m),
            GameError::SpendingCapReached { cap, spent, cost } => AppError::new(ErrorCode::SpendingCapReached, message)
                .with_details(json!({"monthly_cap": cap, "spent": spent, "cost": cost})),
            GameError::SummonsBarred => AppError::new(ErrorCode::SummonsBarred, message),
            GameError::LimitReached(m) => AppError::new(ErrorCode::LimitReached, m),
            GameError::AlreadyRedeemed(m) => AppError::new(ErrorCode::CodeAlreadyRedeemed, m),
            GameError::OfferExpired(m) => AppError::new(ErrorCode::OfferExpired, m),
            GameError::Forbidden(m) => AppError::new(ErrorCode::Forbidden, m),
            GameError::Internal(m) => AppError::internal(anyhow::anyhow!(m)),
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::UsernameTaken => AppError::new(ErrorCode::UsernameTaken, "username is taken"),
            StoreError::Unavailable(_) | StoreError::Contention => {
                let mut a = AppError::unavailable("the store is unavailable, retry shortly");
                a.source = Some(anyhow::anyhow!(e));
                a
            }
            StoreError::Corrupt(_) => AppError::internal(anyhow::anyhow!(e)),
        }
    }
}

/// Maps actix's JSON body errors into our shape.
pub fn json_error(err: actix_web::error::JsonPayloadError, _req: &actix_web::HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as J;
    let e = match &err {
        J::ContentType => AppError::new(ErrorCode::UnsupportedMediaType, "send the body as application/json"),
        J::Overflow { limit } | J::OverflowKnownLength { limit, .. } => {
            AppError::new(ErrorCode::PayloadTooLarge, format!("body larger than {limit} bytes"))
        }
        J::Deserialize(d) if d.is_data() => AppError::new(ErrorCode::ValidationFailed, d.to_string()),
        J::Deserialize(d) => AppError::new(ErrorCode::MalformedJson, format!("malformed JSON: {d}")),
        other => AppError::new(ErrorCode::MalformedJson, other.to_string()),
    };
    e.into()
}

/// Maps actix's path errors into our shape (a path that does not parse names nothing).
pub fn path_error(err: actix_web::error::PathError, _req: &actix_web::HttpRequest) -> actix_web::Error {
    AppError::new(ErrorCode::NotFound, format!("no such resource: {err}")).into()
}

/// Maps actix's query string errors into our shape.
pub fn query_error(err: actix_web::error::QueryPayloadError, _req: &actix_web::HttpRequest) -> actix_web::Error {
    AppError::new(ErrorCode::ValidationFailed, format!("invalid query: {err}")).into()
}
