//! Why a dialect request is refused, and error answers ready to send.

use std::time::Duration;

/// Why a request body in a dialect was refused.
///
/// Every variant is the client's mistake or asks for something GTL cannot
/// honour, so each dialect answers it with HTTP 400 and its own
/// `invalid_request_error` (see `openai::request_error` and
/// `anthropic::request_error`). [`DialectError::param`] names the field,
/// in the dialect's own path notation (`messages[1].content[0].type` for
/// OpenAI, `messages.1.content.0.type` for Anthropic).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DialectError {
    /// The body is not JSON.
    #[error("the request body is not valid JSON: {0}")]
    Json(#[source] JsonError),
    /// The body is JSON, but not an object.
    #[error("the request body must be a JSON object")]
    NotAnObject,
    /// A required field is absent or null.
    #[error("`{param}` is required")]
    Missing {
        /// The field.
        param: String,
    },
    /// A field has the wrong type, or a value the dialect does not allow.
    #[error("`{param}`: {message}")]
    Invalid {
        /// The field.
        param: String,
        /// What is wrong with it.
        message: String,
    },
    /// A field the dialect allows, with a value GTL cannot honour for
    /// every provider (for example `n` greater than 1).
    #[error("`{param}`: {message}")]
    Unsupported {
        /// The field.
        param: String,
        /// What GTL cannot do, and what to send instead.
        message: String,
    },
}

impl DialectError {
    /// The field the error is about, if it is about one field.
    pub fn param(&self) -> Option<&str> {
        match self {
            Self::Json(_) | Self::NotAnObject => None,
            Self::Missing { param }
            | Self::Invalid { param, .. }
            | Self::Unsupported { param, .. } => Some(param),
        }
    }
}

/// Why a body is not JSON: the parser's message, with line and column.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct JsonError(serde_json::Error);

impl JsonError {
    pub(crate) fn new(error: serde_json::Error) -> Self {
        Self(error)
    }
}

/// An error answer in a dialect's shape: what the HTTP route sends
/// instead of a completion.
///
/// The body is JSON (`content-type: application/json`); `headers` lists
/// the extra headers the dialect sends with it (`retry-after` and
/// `retry-after-ms` on rate limits).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ErrorReply {
    /// The HTTP status.
    pub status: u16,
    /// Extra response headers, lowercase names.
    pub headers: Vec<(&'static str, String)>,
    /// The JSON body.
    pub body: Vec<u8>,
}

impl ErrorReply {
    pub(crate) fn new(status: u16, retry_after: Option<Duration>, body: Vec<u8>) -> Self {
        let mut headers = Vec::new();
        if let Some(delay) = retry_after {
            // Both SDKs read `retry-after-ms` first; `retry-after` (whole
            // seconds, rounded up so a client never retries early) is the
            // standard header every other client reads.
            let millis = delay.as_millis();
            headers.push(("retry-after", millis.div_ceil(1000).to_string()));
            headers.push(("retry-after-ms", millis.to_string()));
        }
        Self {
            status,
            headers,
            body,
        }
    }
}
