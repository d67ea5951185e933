//! What can go wrong, typed, with messages that say what to do.

use std::fmt;
use std::time::Duration;

use gtl_proto::{ErrorCode, Phase};

/// The command that starts a gateway with its default endpoints.
const START_SERVER: &str = "start it with `cargo run --release -p gtl-server`";

/// Why a client call failed.
///
/// Errors are cheap to clone: one connection failure is reported to every
/// call that was waiting on it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// An endpoint URL names a transport this client does not speak.
    #[error(
        "unsupported endpoint scheme `{scheme}` in `{endpoint}`: this client speaks {supported}"
    )]
    UnsupportedScheme {
        /// The endpoint as given.
        endpoint: String,
        /// Its scheme.
        scheme: String,
        /// The schemes this build supports, for the message.
        supported: &'static str,
    },
    /// An endpoint URL has a known scheme but is malformed.
    #[error("invalid endpoint `{endpoint}`: {reason}")]
    InvalidEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// What is wrong and how it should look.
        reason: String,
    },
    /// [`ConnectOpts`](crate::ConnectOpts) lists no endpoint.
    #[error(
        "no endpoint to connect to: give one, e.g. `unix:///run/user/1000/gtl/gtl.sock`, \
         `tcp://127.0.0.1:7301` or `embedded://`"
    )]
    NoEndpoints,
    /// No endpoint could be reached (when connecting, or when a call needed
    /// a connection).
    #[error("{}", connect_message("cannot connect to", failures))]
    Connect {
        /// Each endpoint tried and why it failed, in order.
        failures: Vec<EndpointFailure>,
    },
    /// The connection broke during a call and every reconnect attempt
    /// failed, so the call could not be resumed.
    #[error(
        "{}",
        connect_message("connection lost and cannot reconnect to", failures)
    )]
    Disconnected {
        /// Each endpoint tried and why it failed, in order.
        failures: Vec<EndpointFailure>,
    },
    /// The gateway answered with a GTL error: the call was refused, or its
    /// session ended with an `error` event.
    #[error(transparent)]
    Server(ServerError),
    /// A request could not be encoded for the wire (e.g. it exceeds the
    /// frame-size limit).
    #[error("cannot send the request: {message}")]
    Request {
        /// What the encoder said.
        message: String,
    },
    /// The gateway broke the protocol (e.g. skipped an event).
    #[error("protocol violation by the gateway: {message}")]
    Protocol {
        /// What was wrong.
        message: String,
    },
    /// The embedded gateway could not start.
    #[error("cannot start the embedded gateway: {message}")]
    Embedded {
        /// Why.
        message: String,
    },
    /// The client's connection task stopped (its runtime is shutting down).
    #[error("the client has shut down: its tokio runtime stopped; connect again")]
    Closed,
}

impl ClientError {
    /// The GTL error code, when the gateway gave one: always for
    /// [`ClientError::Server`], and for a connection the gateway refused
    /// during its handshake (e.g. `UNAUTHENTICATED`).
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Server(e) => Some(e.code()),
            Self::Connect { failures } | Self::Disconnected { failures } => {
                failures.iter().find_map(|f| f.code)
            }
            _ => None,
        }
    }

    /// Whether no connection could be made or kept (the `gtl` CLI exits
    /// with status 2 for these).
    pub fn is_connect(&self) -> bool {
        matches!(self, Self::Connect { .. } | Self::Disconnected { .. })
    }
}

impl From<ServerError> for ClientError {
    fn from(e: ServerError) -> Self {
        Self::Server(e)
    }
}

/// One endpoint that could not be reached, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointFailure {
    /// The endpoint URL.
    pub endpoint: String,
    /// What went wrong, for a person.
    pub message: String,
    /// The GTL code, when the gateway refused the handshake.
    pub code: Option<ErrorCode>,
}

impl EndpointFailure {
    pub(crate) fn new(endpoint: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            message: message.into(),
            code: None,
        }
    }

    pub(crate) fn with_code(mut self, code: ErrorCode) -> Self {
        self.code = Some(code);
        self
    }
}

impl fmt::Display for EndpointFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.endpoint, self.message)
    }
}

fn connect_message(what: &str, failures: &[EndpointFailure]) -> String {
    let mut out = String::from(what);
    match failures {
        [] => out.push_str(" any endpoint"),
        [one] => out.push_str(&format!(" {one}")),
        many => {
            out.push_str(" any endpoint:");
            for failure in many {
                out.push_str(&format!("\n  {failure}"));
            }
            out.push('\n');
        }
    }
    let refused = failures.iter().any(|f| f.code.is_some());
    let local = failures
        .iter()
        .any(|f| f.endpoint.starts_with("unix:") || f.endpoint.starts_with("tcp:"));
    if !refused && local {
        if failures.len() < 2 {
            out.push_str(" — ");
        }
        out.push_str(&format!(
            "is gtl-server running? {START_SERVER}, or pick another endpoint"
        ));
    }
    out
}

/// A GTL error from the gateway: its code, message and where in the session
/// it happened.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerError {
    error: gtl_proto::Error,
    seq: u64,
    session_id: String,
}

impl ServerError {
    pub(crate) fn new(error: gtl_proto::Error, seq: u64, session_id: impl Into<String>) -> Self {
        Self {
            error,
            seq,
            session_id: session_id.into(),
        }
    }

    /// The GTL error code (`INTERNAL` when the gateway sent none).
    pub fn code(&self) -> ErrorCode {
        match self.error.code() {
            ErrorCode::Unspecified => ErrorCode::Internal,
            code => code,
        }
    }

    /// The gateway's message.
    pub fn message(&self) -> &str {
        &self.error.message
    }

    /// Whether the same request may succeed later.
    pub fn retryable(&self) -> bool {
        self.error.retryable
    }

    /// How long to wait before retrying, when the gateway said.
    pub fn retry_after(&self) -> Option<Duration> {
        (self.error.retry_after_ms > 0).then(|| Duration::from_millis(self.error.retry_after_ms))
    }

    /// Whether output had already been sent when the error happened.
    pub fn phase(&self) -> Phase {
        self.error.phase()
    }

    /// The `error` event's seq in its session, or 0 when the call was
    /// refused before a session existed (or a resume was refused).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The session the error belongs to ("" when none).
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// The error as it came off the wire.
    pub fn as_proto(&self) -> &gtl_proto::Error {
        &self.error
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.error.message)?;
        match self.code() {
            ErrorCode::Unauthenticated => {
                f.write_str(" — connect over a same-host transport or present a valid token")
            }
            ErrorCode::ModelNotFound => f.write_str(" — list the models with `gtl models`"),
            ErrorCode::RateLimit => match self.retry_after() {
                Some(after) => write!(f, " — retry in {} ms", after.as_millis()),
                None => f.write_str(" — retry later"),
            },
            ErrorCode::ResumeNotFound | ErrorCode::ResumeWindowExceeded => {
                f.write_str(" — the session is gone; start a new call")
            }
            ErrorCode::VersionUnsupported => {
                f.write_str(" — upgrade gtl-client or gtl-server so they share a protocol version")
            }
            ErrorCode::ProviderTimeout | ErrorCode::ProviderUnavailable => {
                f.write_str(" — retry later or pick another provider")
            }
            _ => Ok(()),
        }
    }
}

impl std::error::Error for ServerError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_failures_on_local_sockets_say_how_to_start_the_server() {
        let err = ClientError::Connect {
            failures: vec![EndpointFailure::new(
                "unix:///tmp/x.sock",
                "no such socket file",
            )],
        };
        let text = err.to_string();
        assert!(
            text.starts_with("cannot connect to unix:///tmp/x.sock: no such socket file"),
            "{text}"
        );
        assert!(text.contains("cargo run --release -p gtl-server"), "{text}");
        assert_eq!(err.code(), None);
        assert!(err.is_connect());
    }

    #[test]
    fn a_refused_handshake_carries_its_code() {
        let err = ClientError::Connect {
            failures: vec![
                EndpointFailure::new("unix:///a", "no such socket file"),
                EndpointFailure::new("tcp://127.0.0.1:1", "token refused")
                    .with_code(ErrorCode::Unauthenticated),
            ],
        };
        assert_eq!(err.code(), Some(ErrorCode::Unauthenticated));
        assert!(!err.to_string().contains("cargo run"), "{err}");
    }

    #[test]
    fn server_errors_name_their_code_and_what_to_do() {
        let error = gtl_proto::Error {
            code: ErrorCode::ModelNotFound as i32,
            message: "echo has no model `x`".into(),
            ..gtl_proto::Error::default()
        };
        let err = ClientError::from(ServerError::new(error, 1, "s_1"));
        assert_eq!(err.code(), Some(ErrorCode::ModelNotFound));
        assert_eq!(
            err.to_string(),
            "MODEL_NOT_FOUND: echo has no model `x` — list the models with `gtl models`"
        );
    }
}
