//! The closed set of GTL error codes and their gRPC and HTTP mappings.

use crate::ErrorCode;

/// A string that names no GTL error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown error code `{0}`")]
pub struct UnknownErrorCode(pub String);

/// Every code, in schema order, for documentation and exhaustive tests.
const ALL: [ErrorCode; 17] = [
    ErrorCode::Unauthenticated,
    ErrorCode::PermissionDenied,
    ErrorCode::InvalidRequest,
    ErrorCode::ModelNotFound,
    ErrorCode::RateLimit,
    ErrorCode::ContextLengthExceeded,
    ErrorCode::ContentFiltered,
    ErrorCode::ProviderTimeout,
    ErrorCode::ProviderUnavailable,
    ErrorCode::ProviderError,
    ErrorCode::Cancelled,
    ErrorCode::ResumeNotFound,
    ErrorCode::ResumeWindowExceeded,
    ErrorCode::VersionUnsupported,
    ErrorCode::FrameTooLarge,
    ErrorCode::Internal,
    ErrorCode::SessionMoved,
];

impl ErrorCode {
    /// All defined codes (excluding `Unspecified`).
    pub const ALL: &'static [Self] = &ALL;

    /// The code's wire name, e.g. `"RATE_LIMIT"`.
    pub fn name(self) -> &'static str {
        match self {
            // An unset code is reported as INTERNAL: the sender broke the protocol.
            Self::Unspecified | Self::Internal => "INTERNAL",
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::PermissionDenied => "PERMISSION_DENIED",
            Self::InvalidRequest => "INVALID_REQUEST",
            Self::ModelNotFound => "MODEL_NOT_FOUND",
            Self::RateLimit => "RATE_LIMIT",
            Self::ContextLengthExceeded => "CONTEXT_LENGTH_EXCEEDED",
            Self::ContentFiltered => "CONTENT_FILTERED",
            Self::ProviderTimeout => "PROVIDER_TIMEOUT",
            Self::ProviderUnavailable => "PROVIDER_UNAVAILABLE",
            Self::ProviderError => "PROVIDER_ERROR",
            Self::Cancelled => "CANCELLED",
            Self::ResumeNotFound => "RESUME_NOT_FOUND",
            Self::ResumeWindowExceeded => "RESUME_WINDOW_EXCEEDED",
            Self::VersionUnsupported => "VERSION_UNSUPPORTED",
            Self::FrameTooLarge => "FRAME_TOO_LARGE",
            Self::SessionMoved => "SESSION_MOVED",
        }
    }

    /// Parses a wire name.
    pub fn from_name(name: &str) -> Result<Self, UnknownErrorCode> {
        ALL.iter()
            .copied()
            .find(|code| code.name() == name)
            .ok_or_else(|| UnknownErrorCode(name.to_owned()))
    }

    /// The gRPC status code (numeric, as in `google.rpc.Code`).
    pub fn grpc_code(self) -> i32 {
        match self {
            Self::Cancelled => 1,
            Self::ProviderError => 2,
            Self::InvalidRequest | Self::VersionUnsupported => 3,
            Self::ProviderTimeout => 4,
            Self::ModelNotFound | Self::ResumeNotFound => 5,
            Self::PermissionDenied => 7,
            // ABORTED: another attachment won the session.
            Self::SessionMoved => 10,
            Self::RateLimit | Self::FrameTooLarge => 8,
            Self::ContentFiltered => 9,
            Self::ContextLengthExceeded | Self::ResumeWindowExceeded => 11,
            Self::Unspecified | Self::Internal => 13,
            Self::ProviderUnavailable => 14,
            Self::Unauthenticated => 16,
        }
    }

    /// The HTTP status code.
    pub fn http_status(self) -> u16 {
        match self {
            Self::InvalidRequest | Self::ContextLengthExceeded | Self::VersionUnsupported => 400,
            Self::Unauthenticated => 401,
            Self::PermissionDenied => 403,
            Self::ModelNotFound | Self::ResumeNotFound => 404,
            Self::SessionMoved => 409,
            Self::ResumeWindowExceeded => 410,
            Self::FrameTooLarge => 413,
            Self::ContentFiltered => 422,
            Self::RateLimit => 429,
            // The client went away or asked to stop (nginx's convention).
            Self::Cancelled => 499,
            Self::Unspecified | Self::Internal => 500,
            Self::ProviderError => 502,
            Self::ProviderUnavailable => 503,
            Self::ProviderTimeout => 504,
        }
    }

    /// Whether retrying the same request later may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::RateLimit | Self::ProviderTimeout | Self::ProviderUnavailable | Self::Internal
        )
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for &code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_name(code.name()), Ok(code));
        }
        assert!(ErrorCode::from_name("NOPE").is_err());
    }

    #[test]
    fn every_code_maps_to_an_error_status() {
        for &code in ErrorCode::ALL {
            assert!((1..=16).contains(&code.grpc_code()), "{code}");
            assert!(code.http_status() >= 400, "{code}");
        }
    }

    #[test]
    fn all_lists_every_schema_value() {
        // The generated enum's values are 1..=17; ALL must hold each once.
        let mut values: Vec<i32> = ErrorCode::ALL.iter().map(|c| *c as i32).collect();
        values.sort_unstable();
        assert_eq!(values, (1..=17).collect::<Vec<_>>());
    }
}
