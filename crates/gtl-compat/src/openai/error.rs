//! Errors in OpenAI's shape: `{"error":{"message","type","param","code"}}`.

use std::time::Duration;

use gtl_proto::ErrorCode;
use serde::Serialize;

use crate::{DialectError, ErrorReply, write};

/// The body of an OpenAI error, before or inside a stream.
#[derive(Debug, Serialize)]
pub(crate) struct ErrorBody<'a> {
    pub(crate) error: ErrorObject<'a>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ErrorObject<'a> {
    pub(crate) message: &'a str,
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) param: Option<&'a str>,
    pub(crate) code: Option<&'static str>,
}

/// OpenAI's status, `type` and `code` for a GTL error code.
///
/// OpenAI's SDKs pick their exception by status alone, so the status is
/// what matters: the table keeps OpenAI's own statuses (400, 401, 403,
/// 404, 429, 500, 503) and GTL's where OpenAI has none (409, 410, 413,
/// 499, 504). `type` and `code` are the values OpenAI sends for the same
/// failure, `context_length_exceeded` and `rate_limit_exceeded` being the
/// ones clients test for.
pub(crate) fn shape(code: ErrorCode) -> (u16, &'static str, Option<&'static str>) {
    const INVALID: &str = "invalid_request_error";
    match code {
        ErrorCode::InvalidRequest | ErrorCode::VersionUnsupported => (400, INVALID, None),
        ErrorCode::ContextLengthExceeded => (400, INVALID, Some("context_length_exceeded")),
        ErrorCode::ContentFiltered => (400, INVALID, Some("content_filter")),
        ErrorCode::Unauthenticated => (401, INVALID, Some("invalid_api_key")),
        ErrorCode::PermissionDenied => (403, INVALID, Some("permission_denied")),
        ErrorCode::ModelNotFound => (404, INVALID, Some("model_not_found")),
        ErrorCode::ResumeNotFound => (404, INVALID, None),
        ErrorCode::SessionMoved => (409, INVALID, Some("session_moved")),
        ErrorCode::ResumeWindowExceeded => (410, INVALID, None),
        ErrorCode::FrameTooLarge => (413, INVALID, Some("request_too_large")),
        ErrorCode::RateLimit => (429, "requests", Some("rate_limit_exceeded")),
        ErrorCode::Cancelled => (499, INVALID, Some("cancelled")),
        ErrorCode::Unspecified | ErrorCode::Internal | ErrorCode::ProviderError => {
            (500, "server_error", None)
        }
        ErrorCode::ProviderUnavailable => (503, "server_error", Some("service_unavailable")),
        ErrorCode::ProviderTimeout => (504, "server_error", Some("timeout")),
    }
}

/// A GTL error as OpenAI's error answer: status, `retry-after` headers
/// (when `retry_after` is given) and body.
pub fn error_response(code: ErrorCode, message: &str, retry_after: Option<Duration>) -> ErrorReply {
    let (status, kind, code) = shape(code);
    let body = ErrorBody {
        error: ErrorObject {
            message,
            kind,
            param: None,
            code,
        },
    };
    ErrorReply::new(status, retry_after, write::json_body(&body))
}

/// A refused request as OpenAI's 400 answer, the field in `param`.
pub fn request_error(error: &DialectError) -> ErrorReply {
    let message = error.to_string();
    let body = ErrorBody {
        error: ErrorObject {
            message: &message,
            kind: "invalid_request_error",
            param: error.param(),
            code: None,
        },
    };
    ErrorReply::new(400, None, write::json_body(&body))
}
