//! Provider failures in GTL's terms: HTTP statuses, error payloads and
//! `Retry-After`.
//!
//! | provider says | GTL code |
//! |---|---|
//! | 401 | `UNAUTHENTICATED` |
//! | 403 | `PERMISSION_DENIED` |
//! | 429 | `RATE_LIMIT`, with `Retry-After` / `retry-after-ms` |
//! | 408, 504, a timeout on our side | `PROVIDER_TIMEOUT` |
//! | 5xx (incl. 529 overloaded), connection failures | `PROVIDER_UNAVAILABLE` |
//! | a context-length message or code (any other status) | `CONTEXT_LENGTH_EXCEEDED` |
//! | a content-filter message or code | `CONTENT_FILTERED` |
//! | 404, or an unknown-model message or code | `MODEL_NOT_FOUND` |
//! | any other 4xx | `INVALID_REQUEST` |
//! | an in-band error (no status, or under 200) | by its type/code/message, else `PROVIDER_ERROR` |
//!
//! All of these are [`Phase::BeforeFirstToken`](gtl_proto::Phase) here;
//! the stream driver sets the phase of errors inside a stream.

use std::time::{Duration, SystemTime};

use gtl_core::ProviderError;
use gtl_proto::ErrorCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

/// The longest provider message kept in a GTL error, in bytes.
const MAX_MESSAGE: usize = 1000;

/// What a provider's error payload says, in the fields classification
/// reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ErrorBody {
    /// The error's type, code and status names, space-separated, e.g.
    /// `"invalid_request_error context_length_exceeded"`.
    pub(crate) kind: String,
    /// The human-readable message.
    pub(crate) message: String,
    /// A numeric code that is an HTTP status (OpenRouter's in-band
    /// `error.code`, Gemini's `error.code`).
    pub(crate) status: Option<u16>,
}

impl ErrorBody {
    /// Reads the common error shapes:
    ///
    /// - `{"error": {"message", "type", "code", "status"}}` (OpenAI, Azure,
    ///   Gemini, Groq, Mistral, OpenRouter, DeepSeek);
    /// - `{"type": "error", "error": {"type", "message"}}` (Anthropic);
    /// - `{"error": "text"}` (Ollama, llama.cpp);
    /// - `{"message", "type"|"code"|"__type"}` (vLLM, Bedrock);
    /// - `{"detail": …}` (FastAPI-based servers);
    /// - anything else: the body's text as the message.
    pub(crate) fn parse(body: &[u8]) -> Self {
        let Ok(value) = serde_json::from_slice::<Value>(body) else {
            return Self {
                message: String::from_utf8_lossy(body).trim().to_owned(),
                ..Self::default()
            };
        };
        // A JSON array of errors (Gemini's streaming errors): the first.
        let value = match value {
            Value::Array(mut items) if !items.is_empty() => items.swap_remove(0),
            value => value,
        };
        match value.get("error") {
            Some(Value::String(message)) => Self {
                message: message.clone(),
                ..Self::default()
            },
            Some(inner @ Value::Object(_)) => Self::from_object(inner),
            _ => Self::from_object(&value),
        }
    }

    /// Reads an error object's `message`, `type`/`code`/`status`/`__type`
    /// and numeric `code`.
    pub(crate) fn from_object(object: &Value) -> Self {
        let mut kind = Vec::new();
        let mut status = None;
        for field in ["type", "code", "status", "__type"] {
            match object.get(field) {
                Some(Value::String(name)) if !name.is_empty() => kind.push(name.clone()),
                Some(Value::Number(number)) => {
                    status = number
                        .as_u64()
                        .and_then(|n| u16::try_from(n).ok())
                        .filter(|n| (100..=599).contains(n));
                }
                _ => {}
            }
        }
        let message = match object.get("message").or_else(|| object.get("detail")) {
            Some(Value::String(text)) => text.clone(),
            Some(other) if !other.is_null() => other.to_string(),
            _ => String::new(),
        };
        Self {
            kind: kind.join(" "),
            message,
            status,
        }
    }

    /// This payload as an in-band error (one sent inside a response body):
    /// its own numeric status, if any, takes part in the mapping.
    pub(crate) fn to_error(&self, provider: &str) -> ProviderError {
        let code = classify(self.status, &self.kind, &self.message);
        ProviderError::new(code, describe(provider, self, self.status))
    }
}

/// The GTL error for a non-success HTTP response.
pub(crate) fn status_error(
    provider: &str,
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
) -> ProviderError {
    let parsed = ErrorBody::parse(body);
    let code = classify(Some(status), &parsed.kind, &parsed.message);
    let mut error = ProviderError::new(code, describe(provider, &parsed, Some(status)));
    if let Some(delay) = retry_after {
        error = error.with_retry_after(delay);
    }
    error
}

fn describe(provider: &str, body: &ErrorBody, status: Option<u16>) -> String {
    let mut text = if body.message.is_empty() {
        body.kind.clone()
    } else {
        body.message.clone()
    };
    if text.is_empty() {
        text = "error without a message".to_owned();
    }
    if text.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    match status {
        Some(status) => format!("{provider}: {text} (HTTP {status})"),
        None => format!("{provider}: {text}"),
    }
}

const CONTEXT: &[&str] = &[
    "context_length",
    "context length",
    "context window",
    "maximum context",
    "prompt is too long",
    "input is too long",
    "too many input tokens",
    "exceeds the maximum number of tokens",
    "reduce the length",
];
const FILTERED: &[&str] = &[
    "content_filter",
    "content filter",
    "content_policy",
    "content policy",
    "content management policy",
    "responsibleaipolicyviolation",
];
const UNAUTHENTICATED: &[&str] = &[
    "authentication",
    "unauthenticated",
    "invalid_api_key",
    "unauthorized",
    "unrecognizedclient",
];
const PERMISSION: &[&str] = &["permission", "forbidden", "access_denied", "accessdenied"];
const RATE_LIMIT: &[&str] = &[
    "rate_limit",
    "rate limit",
    "resource_exhausted",
    "too_many_requests",
    "too many requests",
    "throttl",
    "quota",
];
const TIMEOUT: &[&str] = &["timeout", "deadline_exceeded", "timed out"];
const UNAVAILABLE: &[&str] = &[
    "overloaded",
    "unavailable",
    "server_error",
    "internal",
    "api_error",
    "bad_gateway",
];
const INVALID: &[&str] = &[
    "invalid_request",
    "invalid_argument",
    "bad_request",
    "validation",
    "failed_precondition",
];

/// The GTL code for a provider failure: its HTTP status (if any), its
/// error type/code names (`kind`) and its message. See the module docs for
/// the table.
pub(crate) fn classify(status: Option<u16>, kind: &str, message: &str) -> ErrorCode {
    let kind = kind.to_lowercase();
    let message = message.to_lowercase();
    let either = |words: &[&str]| {
        words
            .iter()
            .any(|w| kind.contains(w) || message.contains(w))
    };

    match status {
        Some(401) => return ErrorCode::Unauthenticated,
        Some(403) => return ErrorCode::PermissionDenied,
        Some(429) => return ErrorCode::RateLimit,
        Some(408 | 504) => return ErrorCode::ProviderTimeout,
        Some(500..=599) => return ErrorCode::ProviderUnavailable,
        _ => {}
    }
    // Specific conditions named by the provider win over the generic class
    // of a 4xx (OpenAI's context overflow is a 400, Azure's filter a 400).
    if either(CONTEXT) {
        return ErrorCode::ContextLengthExceeded;
    }
    if either(FILTERED) {
        return ErrorCode::ContentFiltered;
    }
    if is_unknown_model(&kind, &message) {
        return ErrorCode::ModelNotFound;
    }
    match status {
        Some(404) => return ErrorCode::ModelNotFound,
        Some(400..=499) => return ErrorCode::InvalidRequest,
        _ => {}
    }
    // An in-band error: its type names the class; failing that, its message.
    let tables: [(&[&str], ErrorCode); 7] = [
        (UNAUTHENTICATED, ErrorCode::Unauthenticated),
        (PERMISSION, ErrorCode::PermissionDenied),
        (RATE_LIMIT, ErrorCode::RateLimit),
        (TIMEOUT, ErrorCode::ProviderTimeout),
        (UNAVAILABLE, ErrorCode::ProviderUnavailable),
        (INVALID, ErrorCode::InvalidRequest),
        (&["not_found"], ErrorCode::ModelNotFound),
    ];
    for text in [&kind, &message] {
        for (words, code) in tables {
            if words.iter().any(|w| text.contains(w)) {
                return code;
            }
        }
    }
    ErrorCode::ProviderError
}

fn is_unknown_model(kind: &str, message: &str) -> bool {
    kind.contains("model_not_found")
        || kind.contains("deploymentnotfound")
        || (message.contains("model")
            && [
                "not found",
                "does not exist",
                "unknown model",
                "no such model",
                "invalid model",
                "model identifier is invalid",
            ]
            .iter()
            .any(|w| message.contains(w)))
}

/// The delay a response asks for: `retry-after-ms` (OpenAI, Azure), else
/// `Retry-After` in seconds (fractions allowed) or as an HTTP date
/// (relative to `now`; a date in the past means no delay).
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    parse_retry_after(text("retry-after")?, now)
}

/// Parses one `Retry-After` value: delta-seconds or an HTTP date.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Replaces every occurrence of each secret in `text` with `[redacted]`.
pub(crate) fn scrub(text: &str, secrets: &[String]) -> String {
    let mut text = text.to_owned();
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        if text.contains(secret.as_str()) {
            text = text.replace(secret.as_str(), "[redacted]");
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(status: u16, body: &str) -> ErrorCode {
        status_error("p", status, None, body.as_bytes()).code
    }

    #[test]
    fn statuses_map_to_codes() {
        let cases = [
            (401, ErrorCode::Unauthenticated),
            (403, ErrorCode::PermissionDenied),
            (404, ErrorCode::ModelNotFound),
            (408, ErrorCode::ProviderTimeout),
            (504, ErrorCode::ProviderTimeout),
            (429, ErrorCode::RateLimit),
            (500, ErrorCode::ProviderUnavailable),
            (503, ErrorCode::ProviderUnavailable),
            (529, ErrorCode::ProviderUnavailable),
            (400, ErrorCode::InvalidRequest),
            (422, ErrorCode::InvalidRequest),
            (302, ErrorCode::ProviderError),
        ];
        for (status, expected) in cases {
            assert_eq!(code(status, "{}"), expected, "HTTP {status}");
        }
    }

    #[test]
    fn payloads_refine_a_4xx() {
        let openai_context = r#"{"error":{"message":"This model's maximum context length is 8192 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#;
        assert_eq!(code(400, openai_context), ErrorCode::ContextLengthExceeded);
        let anthropic_context = r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#;
        assert_eq!(
            code(400, anthropic_context),
            ErrorCode::ContextLengthExceeded
        );
        let azure_filter = r#"{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI's content management policy.","type":null,"param":"prompt","code":"content_filter","status":400}}"#;
        assert_eq!(code(400, azure_filter), ErrorCode::ContentFiltered);
        let ollama_model = r#"{"error":"model 'llama9' not found, try pulling it first"}"#;
        assert_eq!(code(400, ollama_model), ErrorCode::ModelNotFound);
        let gemini =
            r#"{"error":{"code":400,"message":"API key not valid.","status":"INVALID_ARGUMENT"}}"#;
        assert_eq!(code(400, gemini), ErrorCode::InvalidRequest);
        // A definitive status is not second-guessed by its message.
        assert_eq!(code(429, openai_context), ErrorCode::RateLimit);
    }

    #[test]
    fn in_band_errors_map_by_type() {
        let cases = [
            (
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
                ErrorCode::ProviderUnavailable,
            ),
            (
                r#"{"error":{"type":"rate_limit_error","message":"slow down"}}"#,
                ErrorCode::RateLimit,
            ),
            (
                r#"{"error":{"code":502,"message":"Provider returned error"}}"#,
                ErrorCode::ProviderUnavailable,
            ),
            (
                r#"{"error":{"code":"server_error","message":"The server had an error"}}"#,
                ErrorCode::ProviderUnavailable,
            ),
            (
                r#"{"error":"an error was encountered while running the model"}"#,
                ErrorCode::ProviderError,
            ),
            (
                r#"[{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","message":"quota"}}]"#,
                ErrorCode::RateLimit,
            ),
        ];
        for (body, expected) in cases {
            let error = ErrorBody::parse(body.as_bytes()).to_error("p");
            assert_eq!(error.code, expected, "{body}");
            assert!(error.message.starts_with("p: "), "{}", error.message);
        }
    }

    #[test]
    fn retry_after_forms() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("1.5", now),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "7".parse().unwrap());
        headers.insert("retry-after-ms", "250".parse().unwrap());
        assert_eq!(retry_after(&headers, now), Some(Duration::from_millis(250)));
    }

    #[test]
    fn messages_are_bounded_and_scrubbed() {
        let long = format!("{{\"error\":\"{}\"}}", "é".repeat(2000));
        let error = status_error("p", 400, None, long.as_bytes());
        assert!(error.message.len() < MAX_MESSAGE + 32);
        assert_eq!(
            scrub("bad key sk-123456 given", &["sk-123456".to_owned()]),
            "bad key [redacted] given"
        );
    }
}
