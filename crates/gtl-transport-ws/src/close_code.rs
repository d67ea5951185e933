//! The WebSocket close codes GTL uses (RFC 6455 §7.4.1).
//!
//! | code | constant | when |
//! |---|---|---|
//! | 1000 | [`NORMAL`] | the connection is done: [`FrameWrite::close`](gtl_transport::FrameWrite::close) after normal use |
//! | 1001 | [`GOING_AWAY`] | the server is shutting down (its last frame: a connection-level `PROVIDER_UNAVAILABLE` error) |
//! | 1002 | [`PROTOCOL_ERROR`] | the peer broke the WebSocket protocol, or GTL's handshake (`INVALID_REQUEST`, `VERSION_UNSUPPORTED`) |
//! | 1008 | [`POLICY`] | the connection is refused: authentication, permissions, connection caps, rate limits |
//! | 1009 | [`MESSAGE_TOO_BIG`] | a message exceeded the receiver's frame-size limit and could not be skipped |
//! | 1011 | [`INTERNAL`] | the server failed (`INTERNAL` and every other connection-level error) |
//!
//! A connection-level `error` frame (`call_id` 0, no session) sent just
//! before closing picks the code through [`for_error`]: the frame says
//! why in GTL's terms, the close code in WebSocket's.

use gtl_proto::ErrorCode;

/// 1000: normal closure.
pub const NORMAL: u16 = 1000;
/// 1001: the endpoint is going away (server shutdown).
pub const GOING_AWAY: u16 = 1001;
/// 1002: protocol error.
pub const PROTOCOL_ERROR: u16 = 1002;
/// 1008: policy violation (refused: authentication, caps, rate limits).
pub const POLICY: u16 = 1008;
/// 1009: a message was too big to process.
pub const MESSAGE_TOO_BIG: u16 = 1009;
/// 1011: internal error.
pub const INTERNAL: u16 = 1011;

/// The close code for a connection closed because of a connection-level
/// error with this GTL code.
pub fn for_error(code: ErrorCode) -> u16 {
    match code {
        ErrorCode::Unauthenticated | ErrorCode::PermissionDenied | ErrorCode::RateLimit => POLICY,
        ErrorCode::InvalidRequest | ErrorCode::VersionUnsupported => PROTOCOL_ERROR,
        ErrorCode::FrameTooLarge => MESSAGE_TOO_BIG,
        ErrorCode::ProviderUnavailable => GOING_AWAY,
        _ => INTERNAL,
    }
}

/// The close message's reason text for a code.
pub(crate) fn reason(code: u16) -> &'static str {
    match code {
        NORMAL => "",
        GOING_AWAY => "going away",
        PROTOCOL_ERROR => "protocol error",
        POLICY => "refused",
        MESSAGE_TOO_BIG => "message too big",
        _ => "internal error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_policy_and_framing_is_protocol() {
        assert_eq!(for_error(ErrorCode::Unauthenticated), 1008);
        assert_eq!(for_error(ErrorCode::RateLimit), 1008);
        assert_eq!(for_error(ErrorCode::VersionUnsupported), 1002);
        assert_eq!(for_error(ErrorCode::FrameTooLarge), 1009);
        assert_eq!(for_error(ErrorCode::ProviderUnavailable), 1001);
        assert_eq!(for_error(ErrorCode::Internal), 1011);
        assert_eq!(for_error(ErrorCode::Unspecified), 1011);
    }
}
