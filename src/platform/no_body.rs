//! The extractor of a POST route that takes no body (a fight, a claim, a
//! promotion). The server decides everything such a write does; a client that
//! sends fields (`stars`, `won`, `seed`, `rewards` ...) is told they are not
//! read, instead of their being dropped in silence.

use actix_web::{dev::Payload, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use futures_util::StreamExt;
use serde_json::{json, Map, Value};

use super::error::{AppError, ErrorCode};

/// More than an empty object could need: a longer body is refused unread.
const LIMIT: usize = 1024;

/// Proof that the request had no body, or `{}`.
#[derive(Debug, Clone, Copy)]
pub struct NoBody;

impl FromRequest for NoBody {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, AppError>>;

    fn from_request(_: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let mut payload = payload.take();
        Box::pin(async move {
            let mut body = Vec::new();
            while let Some(chunk) = payload.next().await {
                let chunk =
                    chunk.map_err(|e| AppError::new(ErrorCode::MalformedJson, format!("reading the body: {e}")))?;
                body.extend_from_slice(&chunk);
                if body.len() > LIMIT {
                    return Err(AppError::new(
                        ErrorCode::PayloadTooLarge,
                        format!("this route takes no body (at most {{}}, sent more than {LIMIT} bytes)"),
                    ));
                }
            }
            check(&body)
        })
    }
}

/// Empty, whitespace or an empty JSON object.
fn check(body: &[u8]) -> Result<NoBody, AppError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(NoBody);
    }
    match serde_json::from_slice::<Map<String, Value>>(body) {
        Ok(fields) if fields.is_empty() => Ok(NoBody),
        Ok(fields) => {
            let names: Vec<&String> = fields.keys().collect();
            Err(AppError::new(
                ErrorCode::ValidationFailed,
                format!(
                    "this route takes no body: the server decides its outcome; unknown field(s) {}",
                    names.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ")
                ),
            )
            .with_details(json!({"fields": names})))
        }
        Err(e) => Err(AppError::new(ErrorCode::MalformedJson, format!("malformed JSON: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_nothing_or_an_empty_object_passes() {
        for ok in ["", "  \n", "{}", " { } "] {
            assert!(check(ok.as_bytes()).is_ok(), "{ok:?}");
        }
        let e = check(br#"{"stars": 3, "won": true}"#).unwrap_err();
        assert!(e.to_string().contains("\"stars\"") && e.to_string().contains("\"won\""), "{e}");
        assert!(check(b"[1]").is_err());
        assert!(check(b"{").is_err());
    }
}
