//! A gateway on temp paths and free ports, and ways to reach it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use gtl_client::proto::{Body, CompletionRequest};
use gtl_client::{
    Client, ClientError, ConnectOpts, Event, EventStream, ReconnectPolicy, connect, user_message,
};
use gtl_providers::{EchoProvider, Registry};
use gtl_server::{Config, Server};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The transports under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    Uds,
    Tcp,
    /// A `gtl-server --stdio` child per connection (its own process, so
    /// its echo counters are not visible here).
    Stdio,
    /// WebSocket on the HTTP port.
    Ws,
    /// The HTTP port's routes, with SSE streams (the client's bridge).
    Sse,
    /// gRPC (`Pipe`) on the HTTP port, h2c.
    Grpc,
    /// Native QUIC, trusting the server's certificate by its hash.
    Quic,
    /// WebTransport over HTTP/3 (the browsers' transport), trusting the
    /// server's certificate by its hash.
    Wt,
}

/// A running gateway.
pub(crate) struct Gateway {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) echo: EchoProvider,
    pub(crate) uds: String,
    pub(crate) tcp: String,
    /// `http://127.0.0.1:PORT`.
    pub(crate) http: String,
    /// `quic://127.0.0.1:PORT?cert_sha256=…`.
    pub(crate) quic: String,
    /// `wt://127.0.0.1:PORT/gtl/v1/wt?cert_sha256=…` (unless HTTP/3 is off).
    pub(crate) wt: Option<String>,
    /// What the HTTP port knows of the WebTransport endpoint.
    pub(crate) webtransport: Option<gtl_transport_http::WebTransportInfo>,
    /// The gateway's local token: the loopback network transports need it.
    pub(crate) token: String,
    stop: Option<oneshot::Sender<()>>,
    serving: Option<JoinHandle<()>>,
}

impl Gateway {
    pub(crate) async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts with a configuration changed by `adjust`.
    pub(crate) async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config_for(dir.path());
        adjust(&mut config);
        Self::start_config(dir, config).await
    }

    /// Starts with HTTP/3 and WebTransport off.
    pub(crate) async fn start_without_h3() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config_for(dir.path());
        config.listen.h3.enabled = false;
        Self::start_config(dir, config).await
    }

    /// Starts on `dir`'s data and socket; `tcp` reuses a port after a restart.
    pub(crate) async fn start_in(dir: tempfile::TempDir, tcp: Option<&str>) -> Self {
        let mut config = config_for(dir.path());
        if let Some(tcp) = tcp {
            config.listen.tcp.addr = tcp.trim_start_matches("tcp://").parse().unwrap();
        }
        Self::start_config(dir, config).await
    }

    async fn start_config(dir: tempfile::TempDir, config: Config) -> Self {
        // A `--stdio` child gets the same settings, with its own data dir.
        let mut stdio = config.clone();
        stdio.set_data_dir(dir.path().join("stdio"));
        std::fs::write(dir.path().join("stdio.toml"), stdio.to_toml()).unwrap();
        let echo = EchoProvider::new();
        let mut registry = Registry::new();
        registry.add(Arc::new(echo.clone()));
        let server = Server::bind(&config, registry).await.unwrap();
        let endpoints = server.endpoints();
        let uds = endpoints
            .iter()
            .find(|e| e.starts_with("unix:"))
            .unwrap()
            .clone();
        let tcp = endpoints
            .iter()
            .find(|e| e.starts_with("tcp:"))
            .unwrap()
            .clone();
        let http = endpoints
            .iter()
            .find(|e| e.starts_with("http:"))
            .unwrap()
            .clone();
        let quic = endpoints
            .iter()
            .find(|e| e.starts_with("quic:"))
            .unwrap()
            .clone();
        let wt = endpoints.iter().find(|e| e.starts_with("wt:")).cloned();
        let webtransport = server.webtransport();
        let token = std::fs::read_to_string(server.local_token_path().unwrap()).unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        Self {
            dir,
            echo,
            uds,
            tcp,
            http,
            quic,
            wt,
            webtransport,
            token: token.trim().to_owned(),
            stop: Some(stop),
            serving: Some(serving),
        }
    }

    /// Starts draining, as SIGTERM does, without waiting for the drain.
    pub(crate) fn drain(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Graceful shutdown (as on SIGTERM, with the drain `limits.drain_secs`
    /// allows: none unless a test sets it): returns the data dir for a
    /// restart.
    pub(crate) async fn shutdown(mut self) -> tempfile::TempDir {
        self.drain();
        self.serving.take().unwrap().await.unwrap();
        self.dir
    }

    /// The endpoint URL of `transport`.
    pub(crate) fn endpoint(&self, transport: Transport) -> String {
        match transport {
            Transport::Uds => self.uds.clone(),
            Transport::Tcp => self.tcp.clone(),
            Transport::Ws => format!("ws://{}/gtl/v1/ws", self.http_addr()),
            Transport::Sse => format!("sse://{}", self.http_addr()),
            Transport::Grpc => format!("grpc://{}", self.http_addr()),
            Transport::Quic => self.quic.clone(),
            Transport::Wt => self.wt.clone().expect("HTTP/3 is on"),
            Transport::Stdio => format!(
                "stdio://{} --stdio --config {}",
                env!("CARGO_BIN_EXE_gtl-server"),
                self.dir.path().join("stdio.toml").display()
            ),
        }
    }

    /// The HTTP port's `host:port`.
    pub(crate) fn http_addr(&self) -> &str {
        self.http.trim_start_matches("http://")
    }

    pub(crate) async fn client(&self, transport: Transport) -> Client {
        // A `--stdio` child has no network listener, so no local token.
        let opts = match transport {
            Transport::Stdio => ConnectOpts::new([self.endpoint(transport)]),
            _ => self.opts([self.endpoint(transport)]),
        };
        connect(opts.with_reconnect(patient())).await.unwrap()
    }

    /// Options for `endpoints` with the gateway's local token, as `gtl`
    /// on its host has them (it reads the token from the data dir).
    pub(crate) fn opts(
        &self,
        endpoints: impl IntoIterator<Item = impl Into<String>>,
    ) -> ConnectOpts {
        ConnectOpts::new(endpoints).with_token(self.token.clone())
    }
}

pub(crate) fn config_for(dir: &std::path::Path) -> Config {
    let mut config = Config::default();
    config.set_data_dir(dir.join("data"));
    config.listen.uds.path = dir.join("gtl.sock");
    config.listen.tcp.addr = "127.0.0.1:0".parse().unwrap();
    config.listen.http.addr = "127.0.0.1:0".parse().unwrap();
    config.listen.quic.addr = "127.0.0.1:0".parse().unwrap();
    config.listen.h3.addr = "127.0.0.1:0".parse().unwrap();
    // A stop cuts running calls at once unless a test asks for a drain.
    config.limits.drain_secs = 0;
    config
}

/// Reconnects quickly and long enough for a gateway restart.
pub(crate) fn patient() -> ReconnectPolicy {
    ReconnectPolicy::default()
        .with_attempts_per_endpoint(200)
        .with_backoff(Duration::from_millis(2), Duration::from_millis(20))
}

/// An echo request with `echo.*` knobs.
pub(crate) fn echo(text: &str, knobs: &[(&str, &str)]) -> CompletionRequest {
    let metadata: BTreeMap<String, String> = knobs
        .iter()
        .map(|(k, v)| (format!("echo.{k}"), (*v).to_owned()))
        .collect();
    CompletionRequest {
        model: "echo".into(),
        messages: vec![user_message(text)],
        metadata,
        ..CompletionRequest::default()
    }
}

/// The events the echo provider produces for `request`, straight from the
/// provider: what every client must see, whatever happened to the network.
pub(crate) async fn expected(request: &CompletionRequest) -> Vec<Body> {
    let provider = EchoProvider::new();
    let mut request = request.clone();
    request.stream = true;
    let mut events = gtl_core::Provider::stream(&provider, request)
        .await
        .unwrap();
    let mut out = Vec::new();
    while let Some(body) = events.next().await {
        out.push(body);
    }
    out
}

/// Reads up to `n` events.
pub(crate) async fn take(events: &mut EventStream, n: usize) -> Vec<Event> {
    let mut out = Vec::new();
    while out.len() < n {
        match events.next().await {
            Some(Ok(event)) => out.push(event),
            other => panic!("stream ended early after {} events: {other:?}", out.len()),
        }
    }
    out
}

/// Reads a stream to its end: the events, and the error that ended it.
pub(crate) async fn drain(events: &mut EventStream) -> (Vec<Event>, Option<ClientError>) {
    let mut seen = Vec::new();
    while let Some(item) = events.next().await {
        match item {
            Ok(event) => seen.push(event),
            Err(e) => return (seen, Some(e)),
        }
    }
    (seen, None)
}

/// Asserts seqs are exactly 1..=n, in order.
pub(crate) fn assert_contiguous(events: &[Event]) {
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    let want: Vec<u64> = (1..=events.len() as u64).collect();
    assert_eq!(seqs, want, "every event exactly once, in order");
}

pub(crate) fn bodies(events: &[Event]) -> Vec<Body> {
    events.iter().map(|e| e.body.clone()).collect()
}

/// A WebSocket as a byte stream of lines: each line written is sent as a
/// text message, each text message received is read as a line; the read
/// side ends when the server closes.
async fn websocket_lines(
    url: &str,
) -> (
    Box<dyn tokio::io::AsyncRead + Send + Unpin>,
    Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
) {
    use futures::SinkExt as _;
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
    use tokio_tungstenite::tungstenite::Message;
    let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let (mut sink, mut stream) = ws.split();
    let (ours, theirs) = tokio::io::duplex(1 << 20);
    let (theirs_read, mut theirs_write) = tokio::io::split(theirs);
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(theirs_read).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if sink.send(Message::text(line)).await.is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            if let Message::Text(text) = message {
                let _ = theirs_write.write_all(text.as_bytes()).await;
                let _ = theirs_write.write_all(b"\n").await;
            }
        }
        let _ = theirs_write.shutdown().await;
    });
    let (read, write) = tokio::io::split(ours);
    (Box::new(read), Box::new(write))
}

/// A connection below the client: raw bytes, for malformed input.
pub(crate) struct Raw {
    pub(crate) read: tokio::io::BufReader<Box<dyn tokio::io::AsyncRead + Send + Unpin>>,
    pub(crate) write: Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
    /// The token a hello carries: the local one on the network transports.
    token: String,
    _child: Option<tokio::process::Child>,
}

impl Raw {
    pub(crate) async fn open(gateway: &Gateway, transport: Transport) -> Self {
        let endpoint = gateway.endpoint(transport);
        let (read, write, child): (
            Box<dyn tokio::io::AsyncRead + Send + Unpin>,
            Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
            _,
        ) = match transport {
            Transport::Uds => {
                let path = PathBuf::from(endpoint.trim_start_matches("unix://"));
                let (r, w) = tokio::net::UnixStream::connect(path)
                    .await
                    .unwrap()
                    .into_split();
                (Box::new(r), Box::new(w), None)
            }
            Transport::Tcp => {
                let addr = endpoint.trim_start_matches("tcp://");
                let (r, w) = tokio::net::TcpStream::connect(addr)
                    .await
                    .unwrap()
                    .into_split();
                (Box::new(r), Box::new(w), None)
            }
            Transport::Ws => {
                let (r, w) = websocket_lines(&endpoint).await;
                (r, w, None)
            }
            Transport::Stdio => {
                let mut words = endpoint.trim_start_matches("stdio://").split_whitespace();
                let mut child = tokio::process::Command::new(words.next().unwrap())
                    .args(words)
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .kill_on_drop(true)
                    .spawn()
                    .unwrap();
                let r = child.stdout.take().unwrap();
                let w = child.stdin.take().unwrap();
                (Box::new(r), Box::new(w), Some(child))
            }
            Transport::Sse | Transport::Grpc | Transport::Quic | Transport::Wt => {
                panic!("{transport:?} does not carry raw framed bytes")
            }
        };
        let token = match transport {
            Transport::Uds | Transport::Stdio => String::new(),
            _ => gateway.token.clone(),
        };
        Self {
            read: tokio::io::BufReader::new(read),
            write,
            token,
            _child: child,
        }
    }

    /// Sends a hello offering `version`, with the token this transport needs.
    pub(crate) async fn hello(&mut self, version: &str) {
        let hello =
            serde_json::json!({"type": "hello", "versions": [version], "token": self.token});
        self.send(format!("{hello}\n").as_bytes()).await;
    }

    pub(crate) async fn send(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt as _;
        self.write.write_all(bytes).await.unwrap();
        self.write.flush().await.unwrap();
    }

    /// Whether the gateway closed the connection (nothing more to read).
    pub(crate) async fn at_end(&mut self) -> bool {
        use tokio::io::AsyncBufReadExt as _;
        let mut line = String::new();
        self.read.read_line(&mut line).await.unwrap_or(0) == 0
    }

    /// The next JSON line from the gateway, parsed.
    pub(crate) async fn recv(&mut self) -> gtl_client::proto::Frame {
        use tokio::io::AsyncBufReadExt as _;
        let mut line = String::new();
        let n = self.read.read_line(&mut line).await.unwrap();
        assert!(n > 0, "the gateway closed the connection");
        gtl_client::proto::Frame::from_json(line.as_bytes()).unwrap()
    }
}
