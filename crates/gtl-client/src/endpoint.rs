//! Endpoint URLs: which transport, and where.

use std::fmt;
use std::path::{Path, PathBuf};

use std::sync::LazyLock;

use gtl_transport::{Connection, Connector, TransportError};
use gtl_transport_stdio::StdioConnector;
use gtl_transport_tcp::TcpConnector;
use gtl_transport_uds::UdsConnector;

use crate::error::{ClientError, EndpointFailure};

/// Whom TLS endpoints trust ([`crate::ConnectOpts::with_trust`]).
#[cfg(feature = "tls")]
pub(crate) type Trust = gtl_transport_quic::Trust;

/// A build without TLS trusts nothing: it has no TLS endpoints.
#[cfg(not(feature = "tls"))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Trust {}

/// The schemes this build speaks, for error messages.
static SUPPORTED: LazyLock<String> = LazyLock::new(|| {
    let mut schemes = vec!["stdio://COMMAND [ARGS…]", "unix:///PATH", "tcp://HOST:PORT"];
    let tls = cfg!(feature = "tls");
    if tls {
        schemes.push("tcps://HOST:PORT[?cert_sha256=HEX]");
    }
    if cfg!(feature = "ws") {
        schemes.push(if tls {
            "ws[s]://HOST:PORT[/PATH]"
        } else {
            "ws://HOST:PORT[/PATH]"
        });
    }
    if cfg!(feature = "http") {
        schemes.push("sse://HOST:PORT");
        schemes.push(if tls {
            "http[s]://HOST:PORT"
        } else {
            "http://HOST:PORT"
        });
    }
    if cfg!(feature = "grpc") {
        schemes.push(if tls {
            "grpc[s]://HOST:PORT"
        } else {
            "grpc://HOST:PORT"
        });
    }
    if cfg!(feature = "quic") {
        schemes.push("quic://HOST:PORT[?cert_sha256=HEX]");
    }
    if cfg!(feature = "wt") {
        schemes.push("wt://HOST:PORT[/PATH][?cert_sha256=HEX] (or h3://)");
    }
    if cfg!(feature = "embedded") {
        schemes.push("embedded://");
    }
    schemes.join(", ")
});

/// The transports reached by a URL their connector parses itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Remote {
    /// `ws://`, `wss://`.
    Ws,
    /// `sse://`, `http://`, `https://`: the HTTP port's routes.
    Http,
    /// `grpc://`, `grpcs://`.
    Grpc,
    /// `quic://`.
    Quic,
    /// `wt://`: WebTransport.
    Wt,
    /// `tcps://`: the TCP transport inside TLS.
    Tcps,
}

impl Remote {
    /// The transport a scheme names, if this build has it.
    fn of(scheme: &str) -> Option<Self> {
        let tls = cfg!(feature = "tls");
        match scheme {
            "ws" if cfg!(feature = "ws") => Some(Self::Ws),
            "wss" if cfg!(feature = "ws") && tls => Some(Self::Ws),
            "sse" | "http" if cfg!(feature = "http") => Some(Self::Http),
            "https" if cfg!(feature = "http") && tls => Some(Self::Http),
            "grpc" if cfg!(feature = "grpc") => Some(Self::Grpc),
            "grpcs" if cfg!(feature = "grpc") && tls => Some(Self::Grpc),
            "quic" if cfg!(feature = "quic") => Some(Self::Quic),
            // `h3://` names the same thing: GTL over HTTP/3, which is its
            // WebTransport session.
            "wt" | "h3" if cfg!(feature = "wt") => Some(Self::Wt),
            "tcps" if tls => Some(Self::Tcps),
            _ => None,
        }
    }

    /// The connector for `url`, trusting as `trust` says on TLS.
    fn connector(
        self,
        url: &str,
        trust: Option<&Trust>,
    ) -> Result<Box<dyn Connector>, TransportError> {
        let endpoint_error = |reason: String| TransportError::Endpoint {
            endpoint: url.to_owned(),
            reason,
        };
        let _ = (&endpoint_error, trust);
        match self {
            #[cfg(feature = "ws")]
            Self::Ws => {
                let connector = gtl_transport_ws::WsConnector::new(&without_pin(url))?;
                #[cfg(feature = "tls")]
                if url.starts_with("wss://") {
                    return Ok(Box::new(connector.with_tls_config(tls_config(
                        url,
                        trust,
                        &[],
                    )?)));
                }
                Ok(Box::new(connector))
            }
            #[cfg(feature = "http")]
            Self::Http => {
                let connector = gtl_transport_http::HttpConnector::new(&without_pin(url))?;
                #[cfg(feature = "tls")]
                if url.starts_with("https://") {
                    return Ok(Box::new(connector.with_tls_config(tls_config(
                        url,
                        trust,
                        &[],
                    )?)));
                }
                Ok(Box::new(connector))
            }
            #[cfg(feature = "grpc")]
            Self::Grpc => {
                let connector = gtl_transport_grpc::GrpcConnector::new(&without_pin(url))?;
                #[cfg(feature = "tls")]
                if url.starts_with("grpcs://") {
                    return grpc_trust(connector, url, trust);
                }
                Ok(Box::new(connector))
            }
            #[cfg(feature = "quic")]
            Self::Quic => {
                let connector = gtl_transport_quic::QuicConnector::new(url)
                    .map_err(|e| endpoint_error(e.to_string()))?;
                match trust {
                    #[cfg(feature = "tls")]
                    Some(trust) => Ok(Box::new(
                        connector
                            .with_trust(trust)
                            .map_err(|e| endpoint_error(e.to_string()))?,
                    )),
                    _ => Ok(Box::new(local_quic_trust(connector))),
                }
            }
            #[cfg(feature = "wt")]
            Self::Wt => {
                let url = match url.strip_prefix("h3://") {
                    Some(rest) => format!("wt://{rest}"),
                    None => url.to_owned(),
                };
                let connector = gtl_transport_quic::WtConnector::new(&url)
                    .map_err(|e| endpoint_error(e.to_string()))?;
                match trust {
                    #[cfg(feature = "tls")]
                    Some(trust) => Ok(Box::new(
                        connector
                            .with_trust(trust)
                            .map_err(|e| endpoint_error(e.to_string()))?,
                    )),
                    _ => Ok(Box::new(local_wt_trust(connector))),
                }
            }
            #[cfg(feature = "tls")]
            Self::Tcps => {
                let bare = without_pin(url);
                let addr = bare
                    .strip_prefix("tcps://")
                    .unwrap_or(&bare)
                    .trim_end_matches('/');
                let valid = addr
                    .rsplit_once(':')
                    .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
                if !valid {
                    return Err(endpoint_error(
                        "expected `tcps://HOST:PORT[?cert_sha256=HEX]`".into(),
                    ));
                }
                let config = tls_config(url, trust, &[b"gtl/1"])?;
                Ok(Box::new(TcpConnector::new(addr).with_tls(config)))
            }
            #[allow(unreachable_patterns, reason = "every variant's feature may be on")]
            _ => Err(endpoint_error("not in this build".into())),
        }
    }
}

/// `url` without its `?cert_sha256=HEX` (which only this crate reads for
/// the TLS-over-TCP schemes).
#[cfg(any(feature = "ws", feature = "http", feature = "grpc", feature = "tls"))]
fn without_pin(url: &str) -> String {
    match url.split_once("?cert_sha256=") {
        Some((base, _)) => base.to_owned(),
        None => url.to_owned(),
    }
}

/// Whom a TLS-over-TCP endpoint trusts: the caller's choice, else the pin
/// in its URL, else (on loopback) the local gateway's certificate, else the
/// system's roots.
#[cfg(feature = "tls")]
fn trust_for(url: &str, trust: Option<&Trust>) -> Result<Trust, TransportError> {
    let endpoint_error = |reason: String| TransportError::Endpoint {
        endpoint: url.to_owned(),
        reason,
    };
    if let Some(trust) = trust {
        return Ok(trust.clone());
    }
    if let Some((_, hex)) = url.split_once("?cert_sha256=") {
        return Trust::sha256_hex(hex).map_err(|e| endpoint_error(e.to_string()));
    }
    let local = local_certificate();
    if is_loopback_url(url) && local.is_file() {
        use rustls::pki_types::pem::PemObject as _;
        if let Ok(cert) = rustls::pki_types::CertificateDer::from_pem_file(&local) {
            return Ok(Trust::Sha256(gtl_transport_quic::cert_sha256(&cert)));
        }
    }
    Ok(Trust::System)
}

#[cfg(feature = "tls")]
fn tls_config(
    url: &str,
    trust: Option<&Trust>,
    alpn: &[&[u8]],
) -> Result<std::sync::Arc<rustls::ClientConfig>, TransportError> {
    let trust = trust_for(url, trust)?;
    gtl_transport_quic::tls_client_config(&trust, alpn)
        .map(std::sync::Arc::new)
        .map_err(|e| TransportError::Endpoint {
            endpoint: url.to_owned(),
            reason: e.to_string(),
        })
}

/// gRPC over TLS checks certificates against CAs only (tonic's TLS): the
/// system's, or a CA file's.
#[cfg(all(feature = "tls", feature = "grpc"))]
fn grpc_trust(
    connector: gtl_transport_grpc::GrpcConnector,
    url: &str,
    trust: Option<&Trust>,
) -> Result<Box<dyn Connector>, TransportError> {
    match trust_for(url, trust)? {
        Trust::System => Ok(Box::new(connector)),
        Trust::Roots(roots) => {
            let pem: String = roots.iter().map(|cert| pem_certificate(cert)).collect();
            Ok(Box::new(connector.with_ca_certificates(pem.as_bytes())?))
        }
        _ => Err(TransportError::Endpoint {
            endpoint: url.to_owned(),
            reason: "grpcs:// verifies the gateway against CAs only; give --ca FILE, or pin \
                     the certificate over quic://, https:// or wss:// instead"
                .into(),
        }),
    }
}

#[cfg(all(feature = "tls", feature = "grpc"))]
fn pem_certificate(der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut body = String::new();
    for chunk in der.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                body.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                body.push('=');
            }
        }
    }
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|l| std::str::from_utf8(l).unwrap_or_default())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

/// The gateway's default ports (`DEFAULT_*_PORT` in
/// `crates/gtl-server/src/config.rs`).
const DEFAULT_TCP_PORT: u16 = 7301;
const DEFAULT_HTTP_PORT: u16 = 7300;
const DEFAULT_QUIC_PORT: u16 = 7302;

/// The environment variable that overrides the default endpoints: one URL,
/// or several separated by commas.
pub const ENDPOINT_ENV: &str = "GTL_ENDPOINT";

/// A parsed endpoint URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// Spawn this command line and speak GTL on its stdin/stdout.
    Stdio(String),
    /// A Unix domain socket.
    Unix(PathBuf),
    /// `host:port`.
    Tcp(String),
    /// A URL its transport's connector parses (WebSocket, HTTP/SSE, gRPC,
    /// QUIC).
    Remote(Remote, String),
    /// The in-process gateway.
    Embedded,
}

impl Endpoint {
    /// Whether this is a network endpoint on this host (where the local
    /// gateway's token applies); a Unix socket, stdio or the in-process
    /// gateway needs no token.
    pub(crate) fn is_loopback_network(&self) -> bool {
        match self {
            Self::Tcp(addr) => is_loopback_url(addr),
            Self::Remote(_, url) => is_loopback_url(url),
            Self::Stdio(_) | Self::Unix(_) | Self::Embedded => false,
        }
    }

    /// Parses `stdio://CMD ARGS…`, `unix:///path`, `tcp://host:port` or
    /// `embedded://`.
    pub(crate) fn parse(url: &str) -> Result<Self, ClientError> {
        let url = url.trim();
        let invalid = |reason: &str| ClientError::InvalidEndpoint {
            endpoint: url.to_owned(),
            reason: reason.to_owned(),
        };
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(invalid(&format!("not a URL; use {}", SUPPORTED.as_str())));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "stdio" => {
                let command = rest.trim();
                if command.is_empty() {
                    return Err(invalid(
                        "no command to run, e.g. `stdio://gtl-server --stdio`",
                    ));
                }
                Ok(Self::Stdio(command.to_owned()))
            }
            "unix" => {
                if rest.is_empty() {
                    return Err(invalid("no socket path, e.g. `unix:///run/gtl/gtl.sock`"));
                }
                Ok(Self::Unix(PathBuf::from(rest)))
            }
            "tcp" => {
                let addr = rest.strip_suffix('/').unwrap_or(rest);
                let Some((host, port)) = addr.rsplit_once(':') else {
                    return Err(invalid("no port, e.g. `tcp://127.0.0.1:7301`"));
                };
                if host.is_empty() || host.contains('/') {
                    return Err(invalid(
                        "expected `tcp://HOST:PORT`, e.g. `tcp://127.0.0.1:7301`",
                    ));
                }
                if port.parse::<u16>().is_err() {
                    return Err(invalid(&format!(
                        "port `{port}` is not a number in 0..=65535"
                    )));
                }
                Ok(Self::Tcp(addr.to_owned()))
            }
            scheme if Remote::of(scheme).is_some() => {
                let remote = Remote::of(scheme).expect("checked");
                if let Err(e) = remote.connector(url, None) {
                    let reason = match e {
                        TransportError::Endpoint { reason, .. } => reason,
                        other => other.to_string(),
                    };
                    return Err(invalid(&reason));
                }
                Ok(Self::Remote(remote, url.to_owned()))
            }
            "embedded" => {
                if !matches!(rest, "" | "/") {
                    return Err(invalid("embedded:// takes no address"));
                }
                if cfg!(feature = "embedded") {
                    Ok(Self::Embedded)
                } else {
                    Err(invalid(
                        "this build of gtl-client has no in-process gateway: enable its \
                         `embedded` cargo feature",
                    ))
                }
            }
            _ => Err(ClientError::UnsupportedScheme {
                endpoint: url.to_owned(),
                scheme: scheme.to_owned(),
                supported: SUPPORTED.as_str(),
            }),
        }
    }

    /// Opens a connection (no handshake yet). The error says whether
    /// trying again may help: a command that cannot run will not run on
    /// the next try either, while a socket may appear once its gateway is
    /// up.
    pub(crate) async fn open(
        &self,
        embedded: &mut EmbeddedGateway,
        trust: Option<&Trust>,
    ) -> Result<Connection, (EndpointFailure, bool)> {
        let result = match self {
            Self::Stdio(command) => match StdioConnector::from_command_line(command) {
                Ok(connector) => connector.connect().await,
                Err(e) => Err(e),
            },
            Self::Unix(path) => UdsConnector::new(path).connect().await,
            Self::Tcp(addr) => TcpConnector::new(addr.clone()).connect().await,
            Self::Remote(remote, url) => match remote.connector(url, trust) {
                Ok(connector) => connector.connect().await,
                Err(e) => Err(e),
            },
            Self::Embedded => {
                return embedded
                    .connect()
                    .await
                    .map_err(|e| (self.failure(e), false));
            }
        };
        result.map_err(|e| {
            let retry = !matches!(e, TransportError::Endpoint { .. });
            (self.failure(self.describe(&e)), retry)
        })
    }

    fn failure(&self, message: String) -> EndpointFailure {
        EndpointFailure::new(self.to_string(), message)
    }

    /// A transport error in words that point at the fix.
    fn describe(&self, error: &TransportError) -> String {
        match (self, error) {
            (Self::Unix(_), TransportError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                "no such socket file".to_owned()
            }
            (Self::Stdio(command), TransportError::Endpoint { reason, .. }) => {
                let program = command.split_whitespace().next().unwrap_or_default();
                format!("{reason} — is `{program}` installed and on PATH?")
            }
            (_, TransportError::Io(e)) => e.to_string(),
            (_, other) => other.to_string(),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stdio(command) => write!(f, "stdio://{command}"),
            Self::Unix(path) => write!(f, "unix://{}", path.display()),
            Self::Tcp(addr) => write!(f, "tcp://{addr}"),
            Self::Remote(_, url) => f.write_str(url),
            Self::Embedded => f.write_str("embedded://"),
        }
    }
}

/// A loopback `quic://` URL without a pin trusts the local gateway's own
/// certificate (`<data dir>/tls/cert.pem`, created by gtl-server on first
/// start) when this user can read it, so `quic://127.0.0.1:7302` just
/// works on the gateway's host; otherwise the system's roots decide.
#[cfg(feature = "quic")]
fn local_quic_trust(
    connector: gtl_transport_quic::QuicConnector,
) -> gtl_transport_quic::QuicConnector {
    if connector.is_pinned() || !connector.is_loopback() {
        return connector;
    }
    let cert = local_certificate();
    if !cert.is_file() {
        return connector;
    }
    match connector.clone().with_pinned_cert_file(&cert) {
        Ok(pinned) => pinned,
        Err(e) => {
            tracing::debug!("not trusting the local certificate: {e}");
            connector
        }
    }
}

/// A loopback `wt://` URL without a pin trusts the local gateway's own
/// certificate, as `local_quic_trust` does for `quic://`.
#[cfg(feature = "wt")]
fn local_wt_trust(connector: gtl_transport_quic::WtConnector) -> gtl_transport_quic::WtConnector {
    if connector.is_pinned() || !connector.is_loopback() {
        return connector;
    }
    let cert = local_certificate();
    if !cert.is_file() {
        return connector;
    }
    match connector.clone().with_pinned_cert_file(&cert) {
        Ok(pinned) => pinned,
        Err(e) => {
            tracing::debug!("not trusting the local certificate: {e}");
            connector
        }
    }
}

/// Whether `url` (`scheme://host:port/…`, or `host:port`) names this host.
fn is_loopback_url(url: &str) -> bool {
    let authority = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .split(['/', '?'])
        .next()
        .unwrap_or_default();
    let host = authority
        .rsplit_once(':')
        .map_or(authority, |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The local gateway's token (`<data dir>/local.token`, written by
/// gtl-server for its own user), when this user can read it: what a
/// client sends to a loopback network endpoint when it was given no
/// token, since the gateway trusts no loopback peer without one.
pub fn local_token() -> Option<String> {
    let text = std::fs::read_to_string(local_token_path()).ok()?;
    let token = text.trim();
    (!token.is_empty()).then(|| token.to_owned())
}

/// Where the local gateway writes its token: `<data dir>/local.token`
/// (`$GTL_DATA_DIR`, else `$XDG_DATA_HOME/gtl`, else `~/.local/share/gtl`).
pub fn local_token_path() -> PathBuf {
    default_data_dir().join("local.token")
}

/// The local gateway's certificate, `<data dir>/tls/cert.pem`.
#[cfg(any(feature = "quic", feature = "wt", feature = "tls"))]
fn local_certificate() -> PathBuf {
    default_data_dir().join("tls/cert.pem")
}

/// The endpoints a client tries when none are given: the URLs in
/// `$GTL_ENDPOINT` (comma-separated) when set, else where `gtl-server`
/// listens by default, in the seeds' order: the same-host path first (its
/// Unix socket), then QUIC, gRPC, WebSocket and SSE, then plain TCP. A
/// scheme this build lacks is left out.
pub fn default_endpoints() -> Vec<String> {
    if let Some(value) = std::env::var_os(ENDPOINT_ENV) {
        let list = split_list(&value.to_string_lossy());
        if !list.is_empty() {
            return list;
        }
    }
    let http = format!("127.0.0.1:{DEFAULT_HTTP_PORT}");
    let network = [
        ("quic", format!("quic://127.0.0.1:{DEFAULT_QUIC_PORT}")),
        ("grpc", format!("grpc://{http}")),
        ("ws", format!("ws://{http}/gtl/v1/ws")),
        ("sse", format!("sse://{http}")),
    ];
    std::iter::once(format!("unix://{}", default_socket_path().display()))
        .chain(
            network
                .into_iter()
                .filter(|(scheme, _)| Remote::of(scheme).is_some())
                .map(|(_, url)| url),
        )
        .chain([format!("tcp://127.0.0.1:{DEFAULT_TCP_PORT}")])
        .collect()
}

/// Splits a comma-separated endpoint list, dropping empty entries.
pub(crate) fn split_list(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The gateway's default socket path.
///
/// This duplicates `default_socket_path` and `default_data_dir` in
/// `crates/gtl-server/src/config.rs` (the client must not link the server
/// to learn a path); keep the two in step.
fn default_socket_path() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if Path::new(&dir).is_dir() => PathBuf::from(dir).join("gtl/gtl.sock"),
        _ => default_data_dir().join("gtl.sock"),
    }
}

/// `$GTL_DATA_DIR`, else `$XDG_DATA_HOME/gtl`, else `~/.local/share/gtl`
/// (see `default_data_dir` in `crates/gtl-server/src/config.rs`).
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

/// The in-process gateway behind `embedded://`, started on first use and
/// kept for the client's lifetime, so a reconnect finds its sessions.
#[derive(Default)]
pub(crate) struct EmbeddedGateway {
    #[cfg(feature = "embedded")]
    gateway: Option<gtl_server::Gateway>,
    /// The configuration to start it with (the defaults when unset).
    #[cfg(feature = "embedded")]
    config: Option<Box<gtl_server::Config>>,
}

impl fmt::Debug for EmbeddedGateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedGateway").finish_non_exhaustive()
    }
}

impl EmbeddedGateway {
    /// A gateway started on first use with `config` (the defaults when
    /// unset).
    #[cfg(feature = "embedded")]
    pub(crate) fn with_config(config: Option<Box<gtl_server::Config>>) -> Self {
        Self {
            gateway: None,
            config,
        }
    }

    /// A connection to the in-process gateway over an in-memory pipe.
    #[cfg(feature = "embedded")]
    async fn connect(&mut self) -> Result<Connection, String> {
        use gtl_proto::Encoding;
        use gtl_transport::{PeerInfo, stream_connection};

        /// Bytes in flight each way, like a socket buffer.
        const PIPE_BYTES: usize = 256 * 1024;

        let gateway = match &self.gateway {
            Some(gateway) => gateway.clone(),
            None => {
                let mut config = self.config.as_deref().cloned().unwrap_or_default();
                config.listen.uds.enabled = false;
                config.listen.tcp.enabled = false;
                config.listen.http.enabled = false;
                config.listen.quic.enabled = false;
                config.listen.h3.enabled = false;
                config.sessions.persist = false;
                // In-process: nothing written to the user's data dir.
                config.audit.enabled = false;
                let server = gtl_server::Server::bind(
                    &config,
                    gtl_server::default_registry(&config).map_err(|e| e.to_string())?,
                )
                .await
                .map_err(|e| e.to_string())?;
                self.gateway.insert(server.gateway()).clone()
            }
        };
        let (client_end, server_end) = tokio::io::duplex(PIPE_BYTES);
        let (client_read, client_write) = tokio::io::split(client_end);
        let (server_read, server_write) = tokio::io::split(server_end);
        let server_conn = stream_connection(
            server_read,
            server_write,
            PeerInfo::new("embedded", "in-process client"),
            Encoding::Json,
        );
        tokio::spawn(async move { gateway.serve(server_conn).await });
        Ok(stream_connection(
            client_read,
            client_write,
            PeerInfo::new("embedded", "in-process gateway"),
            Encoding::Json,
        ))
    }

    #[cfg(not(feature = "embedded"))]
    async fn connect(&mut self) -> Result<Connection, String> {
        Err("the `embedded` feature is off".to_owned())
    }
}

/// Opens a connection to the endpoint `url` with `opts`' trust and connect
/// timeout, without a handshake and without the client's call handling: the
/// frames are the caller's to write and read (a protocol tester, `gtl
/// conformance`). `embedded://` has no wire and is refused.
pub async fn open_frames(url: &str, opts: &crate::ConnectOpts) -> Result<Connection, ClientError> {
    let endpoint = Endpoint::parse(url)?;
    if matches!(endpoint, Endpoint::Embedded) {
        return Err(ClientError::InvalidEndpoint {
            endpoint: url.to_owned(),
            reason: "an embedded gateway has no connection to open".into(),
        });
    }
    let mut embedded = EmbeddedGateway::default();
    let open = endpoint.open(&mut embedded, opts.trust.as_ref());
    let failure = |message: String| ClientError::Connect {
        failures: vec![EndpointFailure::new(url.to_owned(), message)],
    };
    match tokio::time::timeout(opts.connect_timeout, open).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err((e, _))) => Err(ClientError::Connect { failures: vec![e] }),
        Err(_) => Err(failure(format!(
            "no connection within {} s",
            opts.connect_timeout.as_secs()
        ))),
    }
}

/// The token the client presents in `hello` to the endpoint `url`: `opts`'
/// own, else, for a network endpoint on this host, the local gateway's
/// (the Unix socket and stdio need none: the peer's uid is its identity).
pub fn hello_token(url: &str, opts: &crate::ConnectOpts) -> String {
    if let Some(token) = &opts.token {
        return token.clone();
    }
    match Endpoint::parse(url) {
        Ok(endpoint) if endpoint.is_loopback_network() => local_token().unwrap_or_default(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<Endpoint, ClientError> {
        Endpoint::parse(url)
    }

    #[test]
    fn only_network_endpoints_on_this_host_get_the_local_token() {
        for (url, local) in [
            ("tcp://127.0.0.1:7301", true),
            ("tcp://[::1]:7301", true),
            ("tcp://localhost:7301", true),
            ("tcp://10.0.0.2:7301", false),
            ("tcp://gateway.example:7301", false),
            ("unix:///run/gtl.sock", false),
            ("stdio://gtl-server --stdio", false),
        ] {
            assert_eq!(parse(url).unwrap().is_loopback_network(), local, "{url}");
        }
        assert!(is_loopback_url("quic://127.0.0.1:7302?cert_sha256=00"));
        assert!(is_loopback_url("ws://localhost:7300/gtl/v1/ws"));
        assert!(!is_loopback_url("wss://127.0.0.1.example:443/gtl/v1/ws"));
    }

    #[test]
    fn parses_every_scheme() {
        assert_eq!(
            parse("stdio://gtl-server --stdio").unwrap(),
            Endpoint::Stdio("gtl-server --stdio".into())
        );
        assert_eq!(
            parse("unix:///run/user/1000/gtl/gtl.sock").unwrap(),
            Endpoint::Unix("/run/user/1000/gtl/gtl.sock".into())
        );
        assert_eq!(
            parse("tcp://127.0.0.1:7301").unwrap(),
            Endpoint::Tcp("127.0.0.1:7301".into())
        );
        assert_eq!(
            parse("TCP://[::1]:7301/").unwrap(),
            Endpoint::Tcp("[::1]:7301".into())
        );
        assert_eq!(
            parse("  tcp://gateway.internal:80 ").unwrap(),
            Endpoint::Tcp("gateway.internal:80".into())
        );
        #[cfg(feature = "embedded")]
        assert_eq!(parse("embedded://").unwrap(), Endpoint::Embedded);
        for (url, remote) in [
            ("ws://127.0.0.1:7300/gtl/v1/ws", Remote::Ws),
            ("wss://gateway.example:443", Remote::Ws),
            ("sse://127.0.0.1:7300", Remote::Http),
            ("http://127.0.0.1:7300", Remote::Http),
            ("https://gateway.example", Remote::Http),
            ("grpc://127.0.0.1:7300", Remote::Grpc),
            ("grpcs://gateway.example:443", Remote::Grpc),
            ("quic://127.0.0.1:7302", Remote::Quic),
            ("wt://127.0.0.1:7300/gtl/v1/wt", Remote::Wt),
            ("wt://localhost", Remote::Wt),
            ("h3://127.0.0.1:7300", Remote::Wt),
        ] {
            assert_eq!(
                parse(url).unwrap(),
                Endpoint::Remote(remote, url.into()),
                "{url}"
            );
        }
    }

    #[test]
    fn display_gives_back_the_url() {
        for url in [
            "stdio://gtl-server --stdio",
            "unix:///tmp/gtl.sock",
            "tcp://127.0.0.1:7301",
            #[cfg(feature = "embedded")]
            "embedded://",
        ] {
            assert_eq!(parse(url).unwrap().to_string(), url);
        }
    }

    #[test]
    fn unknown_schemes_name_the_supported_ones() {
        let err = parse("gopher://gateway:70").unwrap_err();
        assert!(
            matches!(&err, ClientError::UnsupportedScheme { scheme, .. } if scheme == "gopher")
        );
        let text = err.to_string();
        for scheme in [
            "stdio://", "unix://", "tcp://", "ws", "sse://", "grpc", "quic://", "wt://",
        ] {
            assert!(text.contains(scheme), "{text}");
        }
    }

    #[test]
    fn malformed_urls_say_what_is_expected() {
        for (url, hint) in [
            ("stdio://", "gtl-server --stdio"),
            ("stdio://   ", "gtl-server --stdio"),
            ("unix://", "unix:///"),
            ("tcp://127.0.0.1", "no port"),
            ("tcp://:7301", "HOST:PORT"),
            ("tcp://host:http", "not a number"),
            ("tcp://host:70000", "not a number"),
            ("/run/gtl.sock", "not a URL"),
            ("embedded://somewhere", "no address"),
            ("quic://h:1?cert_sha256=12", "64 hex digits"),
            ("wt://h:1/gtl/v1/wt?cert_sha256=12", "64 hex digits"),
            ("grpc://h:1/path", "path"),
        ] {
            let err = parse(url).unwrap_err();
            assert!(
                matches!(err, ClientError::InvalidEndpoint { .. }),
                "{url}: {err:?}"
            );
            assert!(err.to_string().contains(hint), "{url}: {err}");
        }
    }

    #[test]
    fn endpoint_lists_split_on_commas() {
        assert_eq!(
            split_list(" unix:///a.sock, ,tcp://127.0.0.1:7301,"),
            ["unix:///a.sock", "tcp://127.0.0.1:7301"]
        );
        assert!(split_list(" , ").is_empty());
    }

    #[test]
    fn defaults_follow_the_seeds_order() {
        // GTL_ENDPOINT may be set in the environment running the tests; the
        // fallback list is what the server listens on by default.
        if std::env::var_os(ENDPOINT_ENV).is_none() {
            let defaults = default_endpoints();
            assert!(defaults[0].starts_with("unix://"));
            assert!(defaults[0].ends_with("gtl.sock"));
            assert_eq!(
                defaults[1..],
                [
                    "quic://127.0.0.1:7302",
                    "grpc://127.0.0.1:7300",
                    "ws://127.0.0.1:7300/gtl/v1/ws",
                    "sse://127.0.0.1:7300",
                    "tcp://127.0.0.1:7301",
                ]
            );
            for url in defaults {
                parse(&url).unwrap();
            }
        }
    }
}
