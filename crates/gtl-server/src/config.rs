//! Server configuration: embedded defaults, overridden by a TOML file.
//!
//! Every field has a default, so an empty file (or none) is a working
//! gateway on loopback. `gtl-server --print-config` shows the effective
//! configuration, with every default filled in.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gtl_core::SessionConfig;
use serde::{Deserialize, Serialize};

/// The default TCP port of the GTL stream protocol.
pub const DEFAULT_TCP_PORT: u16 = 7301;

/// The default HTTP port (SSE, plain HTTP, WebSocket).
pub const DEFAULT_HTTP_PORT: u16 = 7300;

/// The default UDP port of native QUIC.
pub const DEFAULT_QUIC_PORT: u16 = 7302;

/// The default UDP port of HTTP/3 and WebTransport: the HTTP port's
/// number (TCP and UDP ports are separate).
pub const DEFAULT_H3_PORT: u16 = 7300;

/// The default port of the `[listen.metrics]` listener (when enabled).
pub const DEFAULT_METRICS_PORT: u16 = 7303;

/// The whole server configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// Where sessions (`sessions.redb`) and generated material live.
    pub data_dir: PathBuf,
    /// Listeners.
    pub listen: Listen,
    /// Who may call.
    pub auth: Auth,
    /// The certificate TLS listeners present.
    pub tls: Tls,
    /// Session limits.
    pub sessions: Sessions,
    /// Per-connection limits.
    pub limits: Limits,
    /// The audit log.
    pub audit: Audit,
    /// The server's log (stderr).
    pub log: Log,
    /// The built-in echo provider.
    pub echo: Echo,
    /// Providers besides echo and those the environment switches on
    /// (`[[providers]]` tables).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<crate::providers::ProviderEntry>,
    /// Model aliases: `alias = "provider/model"`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub aliases: std::collections::BTreeMap<String, String>,
    /// Settings shared by every route: default timeouts, breakers, retry
    /// delays, providers' default models (docs/routing.md).
    pub router: gtl_router::RouterConfig,
    /// Routes: model names clients use, served by weighted targets with
    /// failover (`[[routes]]` tables, docs/routing.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<gtl_router::RouteConfig>,
}

/// Where the server listens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Listen {
    /// The Unix domain socket.
    pub uds: Uds,
    /// Plain TCP.
    pub tcp: Tcp,
    /// The HTTP port: SSE, plain HTTP and WebSocket, HTTP/1.1 and h2c.
    pub http: Http,
    /// Native QUIC (UDP), with the data dir's self-signed certificate.
    pub quic: Quic,
    /// HTTP/3 and WebTransport (UDP) for browsers, with the same
    /// certificate; advertised on the HTTP port with `Alt-Svc`.
    pub h3: H3,
    /// A port of its own for `/metrics`, `/healthz` and `/readyz` (the
    /// HTTP port serves them too), e.g. for a Prometheus on another host.
    pub metrics: Metrics,
}

/// The metrics and health listener: plain HTTP, no credential, nothing
/// but `/metrics`, `/healthz` and `/readyz` (docs/security.md says why
/// that is safe to expose).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Metrics {
    /// Whether to listen (off by default: the HTTP port serves the same).
    pub enabled: bool,
    /// Address and port.
    pub addr: SocketAddr,
}

impl Default for Metrics {
    fn default() -> Self {
        Config::default().listen.metrics
    }
}

/// The HTTP/3 + WebTransport listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct H3 {
    /// Whether to listen.
    pub enabled: bool,
    /// UDP address and port; keep it on loopback unless auth is configured.
    pub addr: SocketAddr,
}

impl Default for H3 {
    fn default() -> Self {
        Config::default().listen.h3
    }
}

/// The QUIC listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Quic {
    /// Whether to listen.
    pub enabled: bool,
    /// UDP address and port; keep it on loopback unless auth is configured.
    pub addr: SocketAddr,
}

impl Default for Quic {
    fn default() -> Self {
        Config::default().listen.quic
    }
}

/// The HTTP listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Http {
    /// Whether to listen.
    pub enabled: bool,
    /// Address and port; keep it on loopback unless auth is configured.
    pub addr: SocketAddr,
    /// Serve HTTPS (and `wss://`, gRPC over TLS) instead of cleartext, with
    /// the `[tls]` certificate.
    pub tls: bool,
    /// Allow a non-loopback `addr` without TLS (cleartext on a network:
    /// only behind a TLS-terminating proxy on the same host).
    pub insecure: bool,
}

/// The Unix socket listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Uds {
    /// Whether to listen.
    pub enabled: bool,
    /// The socket's path.
    pub path: PathBuf,
}

/// The TCP listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Tcp {
    /// Whether to listen.
    pub enabled: bool,
    /// Address and port; keep it on loopback unless auth is configured.
    pub addr: SocketAddr,
    /// Speak TLS (`tcps://`) with the `[tls]` certificate.
    pub tls: bool,
    /// Allow a non-loopback `addr` without TLS (see [`Http::insecure`]).
    pub insecure: bool,
}

/// The certificate of the TLS listeners (QUIC always, TCP and HTTP when
/// their `tls` is set).
///
/// Without `cert` and `key`, a self-signed certificate is created in
/// `<data dir>/tls/` and rotated while the server runs (see
/// [`crate::tls`]); with them, those files are presented and reloaded
/// when they change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Tls {
    /// A PEM certificate chain, leaf first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// Its PEM private key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
}

/// The built-in echo provider: on by default (the two-command start and
/// load tests use it); a server facing real users may turn it off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Echo {
    /// Whether `echo` is served.
    pub enabled: bool,
}

impl Default for Echo {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// The audit log: one JSON line per call (who, what, how much, how it
/// ended; never the prompt or the answer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Audit {
    /// Whether calls are recorded.
    pub enabled: bool,
    /// The file; `<data dir>/audit.log` when not set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// Write to standard output instead of a file (for a log collector).
    pub stdout: bool,
    /// The file is rotated (`audit.log.1`, …) when it reaches this size.
    pub max_bytes: u64,
    /// Rotated files kept.
    pub keep: u32,
}

impl Default for Audit {
    fn default() -> Self {
        Self {
            enabled: true,
            path: None,
            stdout: false,
            max_bytes: 64 * 1024 * 1024,
            keep: 3,
        }
    }
}

/// The server's log, on stderr (`RUST_LOG` overrides `level`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Log {
    /// `text` (for people) or `json` (one object per line, for a log
    /// collector); `gtl-server --log-format` overrides it.
    pub format: LogFormat,
    /// A `tracing` filter: `info`, `debug`, `gtl_router=debug,info`, ….
    pub level: String,
    /// One info line per finished call (the audit record's fields: who,
    /// which model, tokens, cost, duration, outcome; never the text).
    pub calls: bool,
}

impl Default for Log {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
            calls: true,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!("`{other}`: the log format is `text` or `json`")),
        }
    }
}

/// Authentication settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Auth {
    /// Trust, without a token, the callers whose user the kernel names end
    /// to end: stdio, and Unix-socket peers running as the server's own
    /// user (or one of `trusted_uids` / `trusted_gids`). Each user is its
    /// own subject (`uid:<n>`), owning its own sessions. Loopback TCP, HTTP
    /// and QUIC peers are never trusted this way: they present a token (on
    /// this host, the local one).
    pub trust_same_host: bool,
    /// Other users trusted on the Unix socket.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trusted_uids: Vec<u32>,
    /// Groups whose members are trusted on the Unix socket.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trusted_gids: Vec<u32>,
    /// Write `<data dir>/local.token` (readable by the server's user only)
    /// and accept it from this host: how the server's own user's tools
    /// reach its loopback network listeners. `gtl token show` prints it.
    pub local_token: bool,
    /// GhostTokens must have this `iss` (defaults to `oidc_issuer`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// GhostTokens' `aud` must include this.
    pub audience: String,
    /// Where the issuer's keys are: an `http(s)://` URL or a file path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// An OIDC issuer whose `/.well-known/openid-configuration` names its
    /// keys (`jwks_uri`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oidc_issuer: Option<String>,
    /// A PEM public key (RSA, EC P-256/P-384, Ed25519) tokens are signed
    /// with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_key: Option<PathBuf>,
    /// The environment variable holding an HS256 secret (32 bytes or more).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hs256_secret_env: Option<String>,
    /// A file holding an HS256 secret (e.g. a mounted secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hs256_secret_file: Option<PathBuf>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
    /// The claim holding a token's scopes (the standard `scope` string is
    /// read too).
    pub scopes_claim: String,
    /// Scopes of a valid token that names none (e.g. `["chat:*"]` for an
    /// issuer whose ID tokens carry no scopes); empty grants nothing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub default_scopes: Vec<String>,
}

impl Auth {
    /// Whether GhostTokens are verified (any key source is set).
    pub fn verifies_tokens(&self) -> bool {
        self.jwks_url.is_some()
            || self.oidc_issuer.is_some()
            || self.public_key.is_some()
            || self.hs256_secret_env.is_some()
            || self.hs256_secret_file.is_some()
    }
}

/// Session limits (see docs/protocol.md, "Sessions and resume").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Sessions {
    /// How long a session outlives its client's connection, in seconds.
    pub resume_window_secs: u64,
    /// Bytes of events kept per session for resume.
    pub max_retained_bytes: usize,
    /// Bytes of undelivered events per session before the provider is paused.
    pub max_pending_bytes: usize,
    /// Keep sessions in `data_dir/sessions.redb` (true) or in memory only.
    /// With it, an event reaches a client only once it is stored.
    pub persist: bool,
    /// Where sessions are kept: `"redb"` (the file above, one machine),
    /// `"memory"`, or `"redis://host:port/db"` (`rediss://` for TLS): a
    /// Redis or Valkey server shared by every replica, so a client resumes
    /// on any of them (docs/deployment.md).
    pub backend: String,
    /// With a Redis backend: how long a replica's claim on the sessions it
    /// drives lasts unrenewed, in milliseconds. A replica that dies is
    /// noticed this long after, and its generations are ended for their
    /// clients by another replica.
    pub lease_ms: u64,
    /// With a `rediss://` backend: a PEM file of the CA certificates to
    /// trust (a private CA) instead of the system's roots.
    pub redis_ca_file: Option<PathBuf>,
    /// Memory all sessions' events may use together, in bytes. When it is
    /// spent, delivered events are dropped from memory first, then
    /// generations pause and new calls get `RATE_LIMIT`.
    pub memory_budget_bytes: usize,
    /// Sessions kept at once (running or waiting for a resume); beyond it
    /// new calls get `RATE_LIMIT`.
    pub max_sessions: usize,
}

/// Connection limits and timeouts (docs/operations.md lists what a client
/// sees for each). A timeout of 0 turns it off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Limits {
    /// The largest frame accepted, in bytes.
    pub max_frame_bytes: usize,
    /// Concurrent calls on one connection.
    pub max_calls_per_connection: usize,
    /// Open connections, server-wide; more are refused with `RATE_LIMIT`.
    pub max_connections: usize,
    /// Open connections from one peer (its user id where the OS tells,
    /// else its IP address); more are refused with `RATE_LIMIT`.
    pub max_connections_per_peer: usize,
    /// Seconds from connect to a complete `hello`.
    pub handshake_timeout_secs: u64,
    /// Seconds a connection with no running call may stay silent.
    pub idle_timeout_secs: u64,
    /// Seconds a peer may accept no bytes while the server has some for it;
    /// then the connection is closed (its sessions stay resumable).
    pub send_timeout_secs: u64,
    /// Memory of the events waiting to be delivered on one connection, in
    /// bytes; while it is spent, that connection's calls pause.
    pub connection_memory_bytes: usize,
    /// Calls running at once for one subject, on all its connections; more
    /// are refused with `RATE_LIMIT`.
    pub max_calls_per_subject: usize,
    /// Calls one token subject may start per minute (0: no limit); more are
    /// refused with `RATE_LIMIT`. Trusted local users are not limited.
    pub calls_per_minute_per_subject: u32,
    /// Connections one token subject may hold open, from wherever they
    /// come (local users are counted per peer); more are refused with
    /// `RATE_LIMIT`.
    pub max_connections_per_subject: usize,
    /// Seconds running calls get to finish after SIGTERM (a second SIGTERM
    /// cuts this short); then they are cut, resumable after a restart.
    pub drain_secs: u64,
    /// Seconds the server takes at most, after the drain, to close what is
    /// left and persist every session.
    pub shutdown_timeout_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        let data_dir = default_data_dir();
        Self {
            listen: Listen {
                uds: Uds {
                    enabled: true,
                    path: default_socket_path(&data_dir),
                },
                tcp: Tcp {
                    enabled: true,
                    addr: SocketAddr::from(([127, 0, 0, 1], DEFAULT_TCP_PORT)),
                    tls: false,
                    insecure: false,
                },
                http: Http {
                    enabled: true,
                    addr: SocketAddr::from(([127, 0, 0, 1], DEFAULT_HTTP_PORT)),
                    tls: false,
                    insecure: false,
                },
                quic: Quic {
                    enabled: true,
                    addr: SocketAddr::from(([127, 0, 0, 1], DEFAULT_QUIC_PORT)),
                },
                h3: H3 {
                    enabled: true,
                    addr: SocketAddr::from(([127, 0, 0, 1], DEFAULT_H3_PORT)),
                },
                metrics: Metrics {
                    enabled: false,
                    addr: SocketAddr::from(([127, 0, 0, 1], DEFAULT_METRICS_PORT)),
                },
            },
            data_dir,
            auth: Auth::default(),
            tls: Tls::default(),
            sessions: Sessions::default(),
            limits: Limits::default(),
            audit: Audit::default(),
            log: Log::default(),
            echo: Echo::default(),
            providers: Vec::new(),
            aliases: std::collections::BTreeMap::new(),
            router: gtl_router::RouterConfig::default(),
            routes: Vec::new(),
        }
    }
}

impl Default for Listen {
    fn default() -> Self {
        Config::default().listen
    }
}

impl Default for Uds {
    fn default() -> Self {
        Config::default().listen.uds
    }
}

impl Default for Tcp {
    fn default() -> Self {
        Config::default().listen.tcp
    }
}

impl Default for Http {
    fn default() -> Self {
        Config::default().listen.http
    }
}

impl Default for Auth {
    fn default() -> Self {
        let verify = gtl_auth::Settings::default();
        Self {
            trust_same_host: true,
            trusted_uids: Vec::new(),
            trusted_gids: Vec::new(),
            local_token: true,
            issuer: None,
            audience: verify.audience,
            jwks_url: None,
            oidc_issuer: None,
            public_key: None,
            hs256_secret_env: None,
            hs256_secret_file: None,
            leeway_secs: verify.leeway_secs,
            scopes_claim: verify.scopes_claim,
            default_scopes: verify.default_scopes,
        }
    }
}

/// Where the sessions are kept, from `[sessions] backend` and `persist`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionBackend {
    /// `data_dir/sessions.redb`.
    Redb,
    /// In memory: gone with the process.
    Memory,
    /// A Redis or Valkey server shared by the replicas, at this URL.
    Redis(String),
}

impl Sessions {
    /// The store the configuration names.
    pub fn store(&self) -> Result<SessionBackend, ConfigError> {
        let backend = self.backend.trim();
        if backend.starts_with("redis://") || backend.starts_with("rediss://") {
            return Ok(SessionBackend::Redis(backend.to_owned()));
        }
        match backend {
            "redb" if self.persist => Ok(SessionBackend::Redb),
            "redb" | "memory" => Ok(SessionBackend::Memory),
            // Never echo a URL-like value whole: it may hold a password.
            other => Err(ConfigError::Backend(
                other.split('@').next_back().unwrap_or_default().to_owned(),
            )),
        }
    }

    /// Whether sessions (and the response cache) are written anywhere.
    pub fn persists(&self) -> bool {
        !matches!(self.store(), Ok(SessionBackend::Memory))
    }
}

impl Default for Sessions {
    fn default() -> Self {
        let session = SessionConfig::default();
        Self {
            resume_window_secs: session.resume_window.as_secs(),
            max_retained_bytes: session.max_retained_bytes,
            max_pending_bytes: session.max_pending_bytes,
            persist: true,
            backend: "redb".into(),
            lease_ms: 3000,
            redis_ca_file: None,
            memory_budget_bytes: gtl_core::EngineConfig::DEFAULT_MEMORY_BUDGET,
            max_sessions: gtl_core::EngineConfig::DEFAULT_MAX_SESSIONS,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_bytes: gtl_proto::DEFAULT_MAX_FRAME_BYTES,
            max_calls_per_connection: 1024,
            max_connections: 8192,
            max_connections_per_peer: 1024,
            handshake_timeout_secs: 10,
            idle_timeout_secs: 300,
            send_timeout_secs: 30,
            connection_memory_bytes: 64 << 20,
            max_calls_per_subject: 256,
            calls_per_minute_per_subject: 600,
            max_connections_per_subject: 1024,
            drain_secs: 30,
            shutdown_timeout_secs: 10,
        }
    }
}

/// A configuration file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A cleartext listener would be reachable from the network.
    #[error(
        "[listen.{listener}] addr = \"{addr}\" is not a loopback address, and this listener has no \
         TLS: clients' credentials and conversations would cross the network in cleartext. Set \
         [listen.{listener}] tls = true (with [tls] cert and key for a certificate clients trust), \
         bind it to 127.0.0.1, or set [listen.{listener}] insecure = true if a TLS-terminating \
         proxy on this host is its only client"
    )]
    Cleartext {
        /// `tcp` or `http`.
        listener: &'static str,
        /// The address.
        addr: SocketAddr,
    },
    /// `[sessions] backend` names no known store.
    #[error(
        "[sessions] backend = \"{0}\" is not a session store: use \"redb\" (one machine), \"memory\" \
         or a Redis/Valkey URL, \"redis://host:6379/0\" (\"rediss://\" for TLS)"
    )]
    Backend(String),
    /// Only one of `[tls] cert` and `key` is set.
    #[error(
        "[tls] needs both cert (the PEM chain) and key (its PEM private key), or neither (a \
         self-signed certificate in the data dir)"
    )]
    TlsPair,
    /// The file is not valid configuration.
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line and column.
        source: Box<toml::de::Error>,
    },
}

impl Config {
    /// Reads a TOML file over the defaults.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }

    /// Parses TOML over the defaults. A `data_dir` given without a socket
    /// path moves the socket into it.
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        let raw: toml::Table = toml::from_str(text)?;
        let mut config: Self = toml::from_str(text)?;
        let socket_given = raw
            .get("listen")
            .and_then(|l| l.get("uds"))
            .and_then(|u| u.get("path"))
            .is_some();
        if raw.contains_key("data_dir") && !socket_given {
            config.listen.uds.path = default_socket_path(&config.data_dir);
        }
        Ok(config)
    }

    /// Refuses what must not run: a cleartext listener reachable from the
    /// network without `insecure = true`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return Err(ConfigError::TlsPair);
        }
        let listeners = [
            (
                "tcp",
                self.listen.tcp.enabled,
                self.listen.tcp.addr,
                self.listen.tcp.insecure || self.listen.tcp.tls,
            ),
            (
                "http",
                self.listen.http.enabled,
                self.listen.http.addr,
                self.listen.http.insecure || self.listen.http.tls,
            ),
        ];
        for (listener, enabled, addr, insecure) in listeners {
            if enabled && !insecure && !addr.ip().is_loopback() {
                return Err(ConfigError::Cleartext { listener, addr });
            }
        }
        self.sessions.store()?;
        Ok(())
    }

    /// The effective configuration as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("the config serializes")
    }

    /// Moves the data dir (and the default socket with it).
    pub fn set_data_dir(&mut self, dir: PathBuf) {
        if self.listen.uds.path == default_socket_path(&self.data_dir) {
            self.listen.uds.path = default_socket_path(&dir);
        }
        self.data_dir = dir;
    }

    /// The connection limits as the call service takes them.
    pub fn connection_limits(&self) -> crate::ConnectionLimits {
        let limits = &self.limits;
        let mut out = crate::ConnectionLimits::default();
        out.max_frame_bytes = limits.max_frame_bytes;
        out.max_calls = limits.max_calls_per_connection;
        out.max_connections = limits.max_connections;
        out.max_connections_per_peer = limits.max_connections_per_peer;
        out.handshake_timeout = timeout(limits.handshake_timeout_secs);
        out.idle_timeout = timeout(limits.idle_timeout_secs);
        out.send_timeout = timeout(limits.send_timeout_secs);
        out.connection_memory = limits.connection_memory_bytes;
        out.max_calls_per_subject = limits.max_calls_per_subject.max(1);
        out.calls_per_minute_per_subject = limits.calls_per_minute_per_subject;
        out.max_connections_per_subject = limits.max_connections_per_subject.max(1);
        out
    }

    /// The session limits as the engine takes them.
    pub fn session_config(&self) -> SessionConfig {
        SessionConfig::default()
            .with_resume_window(Duration::from_secs(self.sessions.resume_window_secs))
            .with_max_retained_bytes(self.sessions.max_retained_bytes)
            .with_max_pending_bytes(self.sessions.max_pending_bytes)
    }
}

/// Seconds as a timeout; 0 is none.
fn timeout(secs: u64) -> Duration {
    if secs == 0 {
        Duration::MAX
    } else {
        Duration::from_secs(secs)
    }
}

/// `$GTL_DATA_DIR`, else `$XDG_DATA_HOME/gtl`, else `~/.local/share/gtl`.
fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("GTL_DATA_DIR") {
        return dir.into();
    }
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(dir).join("gtl");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".local/share/gtl"),
        None => PathBuf::from(".gtl"),
    }
}

/// `$XDG_RUNTIME_DIR/gtl/gtl.sock` when a runtime dir exists, else
/// `<data_dir>/gtl.sock`.
fn default_socket_path(data_dir: &Path) -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if Path::new(&dir).is_dir() => PathBuf::from(dir).join("gtl/gtl.sock"),
        _ => data_dir.join("gtl.sock"),
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_cleartext_listener_on_the_network_needs_insecure() {
        let open = Config::from_toml("[listen.http]\naddr = \"0.0.0.0:7300\"\n").unwrap();
        let err = open.validate().unwrap_err().to_string();
        assert!(
            err.contains("[listen.http]") && err.contains("insecure = true"),
            "{err}"
        );
        let tcp = Config::from_toml("[listen.tcp]\naddr = \"[::]:7301\"\n").unwrap();
        assert!(tcp.validate().is_err());
        let allowed =
            Config::from_toml("[listen.http]\naddr = \"0.0.0.0:7300\"\ninsecure = true\n").unwrap();
        allowed.validate().unwrap();
        let disabled =
            Config::from_toml("[listen.tcp]\nenabled = false\naddr = \"0.0.0.0:7301\"\n").unwrap();
        disabled.validate().unwrap();
        Config::default().validate().unwrap();
        let tls = Config::from_toml("[listen.tcp]\naddr = \"0.0.0.0:7301\"\ntls = true\n").unwrap();
        tls.validate().unwrap();
    }

    #[test]
    fn the_echo_provider_can_be_switched_off() {
        let mut config = Config::from_toml("[echo]\nenabled = false\n").unwrap();
        config.set_data_dir(std::env::temp_dir().join("gtl-echo-off"));
        let registry = crate::default_registry(&config).unwrap();
        assert!(registry.get("echo").is_none());
        assert!(
            crate::default_registry(&Config::default())
                .unwrap()
                .get("echo")
                .is_some()
        );
    }

    #[test]
    fn a_certificate_needs_its_key() {
        let half = Config::from_toml("[tls]\ncert = \"/etc/gtl/cert.pem\"\n").unwrap();
        let err = half.validate().unwrap_err().to_string();
        assert!(err.contains("[tls]") && err.contains("key"), "{err}");
        let both =
            Config::from_toml("[tls]\ncert = \"/etc/gtl/cert.pem\"\nkey = \"/etc/gtl/key.pem\"\n")
                .unwrap();
        both.validate().unwrap();
    }

    use super::*;

    #[test]
    fn the_h3_listener_has_its_own_section() {
        let config = Config::default();
        assert!(config.listen.h3.enabled);
        assert_eq!(config.listen.h3.addr.to_string(), "127.0.0.1:7300");
        assert!(config.to_toml().contains("[listen.h3]"));
        let off = Config::from_toml("[listen.h3]\nenabled = false\n").unwrap();
        assert!(!off.listen.h3.enabled);
    }

    #[test]
    fn empty_file_is_the_defaults() {
        assert_eq!(Config::from_toml("").unwrap(), Config::default());
    }

    #[test]
    fn printed_config_reads_back_the_same() {
        let config = Config::default();
        assert_eq!(Config::from_toml(&config.to_toml()).unwrap(), config);
    }

    #[test]
    fn file_overrides_defaults() {
        let config = Config::from_toml(
            "data_dir = \"/srv/gtl\"\n[listen.tcp]\naddr = \"127.0.0.1:9000\"\n[sessions]\nresume_window_secs = 30\n",
        )
        .unwrap();
        assert_eq!(config.data_dir, PathBuf::from("/srv/gtl"));
        assert_eq!(config.listen.tcp.addr.port(), 9000);
        assert!(config.listen.tcp.enabled);
        assert_eq!(
            config.session_config().resume_window,
            Duration::from_secs(30)
        );
    }

    #[test]
    fn providers_and_aliases_read_from_the_file() {
        let config = Config::from_toml(
            "[aliases]\nfast = \"groq/llama-3.1-8b-instant\"\n\n[[providers]]\nkind = \"groq\"\napi_key_env = \"MY_GROQ_KEY\"\n",
        )
        .unwrap();
        assert_eq!(config.providers[0].kind, "groq");
        assert_eq!(config.aliases["fast"], "groq/llama-3.1-8b-instant");
        assert_eq!(Config::from_toml(&config.to_toml()).unwrap(), config);
    }

    #[test]
    fn unknown_keys_are_errors_with_a_location() {
        let err = Config::from_toml("[listen.tcp]\nadress = \"x\"\n").unwrap_err();
        assert!(err.to_string().contains("adress"), "{err}");
    }

    #[test]
    fn routes_and_router_defaults_parse_and_round_trip() {
        let config = Config::from_toml(
            r#"
[router]
timeouts = { first_token_secs = 20, idle_secs = 15 }
breaker = { consecutive_failures = 3, cooldown_secs = 10 }
default_models = { anthropic = "claude-sonnet-4-5" }

[[routes]]
name = "smart"
strategy = "failover"
after_first_token = "continue"
retries = 2
cache_ttl_secs = 0
targets = [ { model = "openai/gpt-4o", weight = 3 }, { model = "anthropic/claude-sonnet-4-5", weight = 1 } ]
"#,
        )
        .unwrap();
        let route = &config.routes[0];
        assert_eq!(route.name, "smart");
        assert_eq!(
            route.after_first_token,
            gtl_router::AfterFirstToken::Continue
        );
        assert_eq!((route.targets[0].weight, route.retries), (3, 2));
        assert_eq!(config.router.breaker.consecutive_failures, 3);
        assert_eq!(config.router.timeouts().idle.as_secs(), 15);
        assert_eq!(Config::from_toml(&config.to_toml()).unwrap(), config);
        let typo =
            Config::from_toml("[[routes]]\nname = \"x\"\ntargets = []\nstrategy = \"fastest\"\n");
        assert!(typo.unwrap_err().to_string().contains("fastest"));
    }
}
