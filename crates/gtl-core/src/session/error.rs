//! The session machine's errors.

use gtl_proto::{ErrorCode, FrameType};

/// An input the session cannot take: an event after the end, or a
/// persisted log that does not hold together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The generation already ended (terminal event or cancel); nothing more
    /// may be logged.
    #[error("session is already finished")]
    Finished,
    /// The resume window passed and the session's events are gone.
    #[error("session has expired")]
    Expired,
    /// The body is not a session event (for example a `ping`).
    #[error("`{}` is not a session event", .0.as_str())]
    NotAnEvent(FrameType),
    /// A restored log skips or repeats a sequence number.
    #[error("restored event has seq {got}, expected {expected}")]
    OutOfOrder {
        /// The seq that would continue the log.
        expected: u64,
        /// The seq found.
        got: u64,
    },
}

/// Why a `resume` was refused. Each reason maps to the wire error code the
/// client receives (see [`ResumeError::code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResumeError {
    /// The caller is not the session's owner, or the resume token is wrong.
    #[error("not the owner of this session")]
    PermissionDenied,
    /// Events after `after_seq` were already forgotten: acknowledged, or
    /// evicted to keep the session within its byte bound.
    #[error(
        "events after seq {after_seq} are no longer retained (the earliest resume point is seq {min_after_seq})"
    )]
    Trimmed {
        /// The seq the client asked to resume after.
        after_seq: u64,
        /// The lowest `after_seq` the session can still serve.
        min_after_seq: u64,
    },
    /// `after_seq` names an event that was never sent.
    #[error("after_seq {after_seq} is beyond the last event {last_seq}")]
    AfterLast {
        /// The seq the client asked to resume after.
        after_seq: u64,
        /// The newest event's seq.
        last_seq: u64,
    },
    /// The resume window passed; the session is gone.
    #[error("session has expired")]
    Expired,
}

impl ResumeError {
    /// The wire error code for this refusal.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::PermissionDenied => ErrorCode::PermissionDenied,
            Self::Trimmed { .. } | Self::Expired => ErrorCode::ResumeWindowExceeded,
            Self::AfterLast { .. } => ErrorCode::InvalidRequest,
        }
    }
}
