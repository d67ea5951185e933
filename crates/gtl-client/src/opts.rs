//! How to connect: endpoints, credentials and the reconnect policy.

use std::time::Duration;

use crate::endpoint::default_endpoints;

/// What [`connect`](crate::connect) needs.
///
/// [`ConnectOpts::default`] tries the gateway's default endpoints (see
/// [`default_endpoints`](crate::default_endpoints)); [`ConnectOpts::new`]
/// takes an ordered list; [`ConnectOpts::embedded`] runs the gateway
/// in-process.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ConnectOpts {
    /// Endpoint URLs, tried in order: `stdio://COMMAND ARGS…`,
    /// `unix:///PATH`, `tcp://HOST:PORT`, `embedded://`.
    pub endpoints: Vec<String>,
    /// A GhostToken (JWT) sent in `hello`, for gateways that require one.
    pub token: Option<String>,
    /// The client's name and version, for the gateway's logs.
    pub client_name: String,
    /// How hard to try when connecting and when a connection breaks.
    pub reconnect: ReconnectPolicy,
    /// Bound on opening a connection and its hello/welcome exchange.
    pub connect_timeout: Duration,
    /// Whom TLS endpoints trust, when set (see [`with_trust`](Self::with_trust)).
    pub(crate) trust: Option<crate::endpoint::Trust>,
    /// The in-process gateway's configuration, when set (see
    /// [`with_embedded_config`](Self::with_embedded_config)).
    #[cfg(feature = "embedded")]
    pub(crate) embedded_config: Option<Box<gtl_server::Config>>,
}

impl ConnectOpts {
    /// The default bound on opening one connection: 10 seconds.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

    /// Options for these endpoints, tried in order.
    pub fn new(endpoints: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            token: None,
            client_name: concat!("gtl-client/", env!("CARGO_PKG_VERSION")).to_owned(),
            reconnect: ReconnectPolicy::default(),
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            trust: None,
            #[cfg(feature = "embedded")]
            embedded_config: None,
        }
    }

    /// Options for the in-process gateway (`embedded://`): no daemon, no
    /// socket, the built-in providers, sessions in memory. Each client
    /// starts its own gateway.
    pub fn embedded() -> Self {
        Self::new(["embedded://"])
    }

    /// Runs the in-process gateway (`embedded://`) with `config`'s
    /// providers, aliases, routes and router settings instead of the
    /// defaults. Its listeners are switched off, audit too, and sessions
    /// are kept in memory: the gateway stays inside this process.
    #[cfg(feature = "embedded")]
    #[must_use]
    pub fn with_embedded_config(mut self, config: gtl_server::Config) -> Self {
        self.embedded_config = Some(Box::new(config));
        self
    }

    /// Sends `token` in `hello`.
    #[must_use]
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Names the client in the gateway's logs.
    #[must_use]
    pub fn with_client_name(mut self, name: impl Into<String>) -> Self {
        self.client_name = name.into();
        self
    }

    /// Sets the reconnect policy.
    #[must_use]
    pub fn with_reconnect(mut self, policy: ReconnectPolicy) -> Self {
        self.reconnect = policy;
        self
    }

    /// Trusts, on every TLS endpoint (`quic://`, `wt://`, `tcps://`,
    /// `https://`, `wss://`, `grpcs://`), as `trust` says: a CA file
    /// (`--ca`) or one certificate's SHA-256 (`--cert-hash`). Without it an
    /// endpoint trusts the pin in its URL (`?cert_sha256=HEX`), else, on
    /// loopback, the local gateway's certificate from its data dir, else
    /// the system's roots.
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn with_trust(mut self, trust: crate::Trust) -> Self {
        self.trust = Some(trust);
        self
    }

    /// Sets the bound on opening one connection.
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
}

impl Default for ConnectOpts {
    /// The default endpoints: `$GTL_ENDPOINT`, else the gateway's Unix
    /// socket, then QUIC, gRPC, WebSocket, SSE and TCP on loopback (see
    /// [`default_endpoints`](crate::default_endpoints)).
    fn default() -> Self {
        Self::new(default_endpoints())
    }
}

/// How often to try each endpoint, and how long to wait in between.
///
/// Endpoints are tried in rounds: a round starts at the endpoint in use
/// (the first one when connecting) and goes down the list, wrapping around,
/// so the first endpoint that answers wins at once. Up to
/// [`attempts_per_endpoint`](Self::attempts_per_endpoint) rounds run, the
/// waits between them doubling from
/// [`initial_backoff`](Self::initial_backoff) up to
/// [`max_backoff`](Self::max_backoff); an endpoint that cannot work on a
/// later try either (a command that does not run, a gateway that refused
/// the credentials) is left out of the later rounds.
///
/// Rounds run when connecting and each time a connection breaks while
/// calls are in flight. A connection that breaks again before the gateway
/// sent an event counts against a budget of `attempts_per_endpoint` times
/// the number of endpoints, so a gateway that accepts and drops
/// connections cannot keep a call waiting forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReconnectPolicy {
    /// Tries per endpoint: the number of rounds (at least 1).
    pub attempts_per_endpoint: u32,
    /// The wait before the second round.
    pub initial_backoff: Duration,
    /// The longest wait between two rounds.
    pub max_backoff: Duration,
}

impl ReconnectPolicy {
    /// Sets the tries per endpoint (at least 1).
    #[must_use]
    pub fn with_attempts_per_endpoint(mut self, attempts: u32) -> Self {
        self.attempts_per_endpoint = attempts.max(1);
        self
    }

    /// Sets the first wait and the longest one.
    #[must_use]
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// The wait before round `attempt` (0-based).
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        if attempt == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32.checked_shl(attempt - 1).unwrap_or(u32::MAX);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

impl Default for ReconnectPolicy {
    /// Three rounds, waiting 100 ms, then 200 ms (at most 2 s).
    fn default() -> Self {
        Self {
            attempts_per_endpoint: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_bound() {
        let policy = ReconnectPolicy::default()
            .with_backoff(Duration::from_millis(100), Duration::from_millis(350));
        let waits: Vec<_> = (0..5).map(|a| policy.backoff(a).as_millis()).collect();
        assert_eq!(waits, [0, 100, 200, 350, 350]);
        assert_eq!(policy.backoff(100), Duration::from_millis(350));
    }

    #[test]
    fn at_least_one_attempt() {
        let policy = ReconnectPolicy::default().with_attempts_per_endpoint(0);
        assert_eq!(policy.attempts_per_endpoint, 1);
    }
}
