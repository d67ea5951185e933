//! Errors in Anthropic's shape: `{"type":"error","error":{"type","message"}}`.

use std::time::Duration;

use gtl_proto::ErrorCode;
use serde::Serialize;

use crate::{DialectError, ErrorReply, write};

/// An Anthropic error body. `request_id` is `null` in answers (the
/// definition requires the key; GTL's id for a call is its session id,
/// which a refused request does not have) and absent in the stream's
/// `error` event, as Anthropic sends it.
#[derive(Debug, Serialize)]
pub(crate) struct ErrorBody<'a> {
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) error: ErrorObject<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) request_id: Option<Option<&'a str>>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ErrorObject<'a> {
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) message: &'a str,
}

/// Anthropic's status and error `type` for a GTL error code.
///
/// Anthropic's own pairs: 400 `invalid_request_error`, 401
/// `authentication_error`, 403 `permission_error`, 404 `not_found_error`,
/// 413 `request_too_large`, 429 `rate_limit_error`, 500 `api_error`, 504
/// `timeout_error`, and 529 `overloaded_error` for a provider that is
/// unavailable (Anthropic's SDKs retry it, as GTL marks it retryable).
/// GTL's 409, 410 and 499 have no Anthropic equivalent and keep their
/// status.
pub(crate) fn shape(code: ErrorCode) -> (u16, &'static str) {
    const INVALID: &str = "invalid_request_error";
    match code {
        ErrorCode::InvalidRequest
        | ErrorCode::VersionUnsupported
        | ErrorCode::ContextLengthExceeded
        | ErrorCode::ContentFiltered => (400, INVALID),
        ErrorCode::Unauthenticated => (401, "authentication_error"),
        ErrorCode::PermissionDenied => (403, "permission_error"),
        ErrorCode::ModelNotFound | ErrorCode::ResumeNotFound => (404, "not_found_error"),
        ErrorCode::SessionMoved => (409, INVALID),
        ErrorCode::ResumeWindowExceeded => (410, INVALID),
        ErrorCode::FrameTooLarge => (413, "request_too_large"),
        ErrorCode::RateLimit => (429, "rate_limit_error"),
        ErrorCode::Cancelled => (499, INVALID),
        ErrorCode::Unspecified | ErrorCode::Internal | ErrorCode::ProviderError => {
            (500, "api_error")
        }
        ErrorCode::ProviderTimeout => (504, "timeout_error"),
        ErrorCode::ProviderUnavailable => (529, "overloaded_error"),
    }
}

fn reply(status: u16, kind: &'static str, message: &str, retry: Option<Duration>) -> ErrorReply {
    let body = ErrorBody {
        kind: "error",
        error: ErrorObject { kind, message },
        request_id: Some(None),
    };
    ErrorReply::new(status, retry, write::json_body(&body))
}

/// A GTL error as Anthropic's error answer: status, `retry-after` headers
/// (when `retry_after` is given) and body.
pub fn error_response(code: ErrorCode, message: &str, retry_after: Option<Duration>) -> ErrorReply {
    let (status, kind) = shape(code);
    reply(status, kind, message, retry_after)
}

/// A refused request as Anthropic's 400 `invalid_request_error`; the
/// message starts with the field's path, as Anthropic's do.
pub fn request_error(error: &DialectError) -> ErrorReply {
    reply(400, "invalid_request_error", &error.to_string(), None)
}

/// The answer to `POST /v1/messages/count_tokens` when the provider the
/// model routes to cannot count tokens: 400 `invalid_request_error`
/// naming the provider.
pub fn count_tokens_unsupported(provider: &str) -> ErrorReply {
    let message = format!(
        "counting tokens is not available for models of provider `{provider}`; \
         send the request to /v1/messages and read its usage"
    );
    reply(400, "invalid_request_error", &message, None)
}
