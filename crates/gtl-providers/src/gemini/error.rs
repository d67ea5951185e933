//! What Gemini's error payloads say beyond the shared mapping.
//!
//! Google APIs answer errors with a `google.rpc.Status` as JSON:
//! `{"error":{"code":429,"message":…,"status":"RESOURCE_EXHAUSTED","details":[…]}}`.
//! The shared mapping reads the status, code and message; two things it
//! cannot see live in `details`:
//!
//! - an invalid API key is a 400 `INVALID_ARGUMENT` whose `ErrorInfo` has
//!   reason `API_KEY_INVALID`: `UNAUTHENTICATED`, not the client's
//!   `INVALID_REQUEST`;
//! - a 429 carries its delay as `RetryInfo.retryDelay` (`"37s"`), not as a
//!   `Retry-After` header.

use std::time::Duration;

use gtl_core::ProviderError;
use gtl_proto::ErrorCode;
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Default, Deserialize)]
struct Status {
    #[serde(default)]
    details: Vec<Value>,
}

#[derive(Debug, Deserialize)]
struct Payload {
    error: Status,
}

/// Refines `error`, the shared mapping of the error payload `body`, with
/// what `body`'s details say.
pub(crate) fn refine(mut error: ProviderError, body: &[u8]) -> ProviderError {
    // The payload, or the first of a JSON array of them (streaming errors).
    let status = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(items)) => items.into_iter().next(),
        Ok(value) => Some(value),
        Err(_) => None,
    }
    .and_then(|value| serde_json::from_value::<Payload>(value).ok())
    .map(|payload| payload.error)
    .unwrap_or_default();
    if detail(&status, "google.rpc.ErrorInfo", "reason").as_deref() == Some("API_KEY_INVALID") {
        error.code = ErrorCode::Unauthenticated;
    }
    if error.retry_after.is_none()
        && let Some(delay) = detail(&status, "google.rpc.RetryInfo", "retryDelay")
            .as_deref()
            .and_then(parse_duration)
    {
        error = error.with_retry_after(delay);
    }
    error
}

/// The string `field` of the first detail of type `kind`.
fn detail(status: &Status, kind: &str, field: &str) -> Option<String> {
    status.details.iter().find_map(|detail| {
        let type_url = detail.get("@type")?.as_str()?;
        if !type_url.ends_with(kind) {
            return None;
        }
        Some(detail.get(field)?.as_str()?.to_owned())
    })
}

/// A proto3 JSON `Duration`: seconds with an `s` suffix, e.g. `"37s"` or
/// `"1.5s"`.
fn parse_duration(text: &str) -> Option<Duration> {
    let seconds: f64 = text.strip_suffix('s')?.parse().ok()?;
    Duration::try_from_secs_f64(seconds).ok()
}
