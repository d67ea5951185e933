//! Shared helpers: requests, a gateway on real sockets, a cutting proxy.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt as _;
use gtl_client::proto::{Body, CompletionRequest};
use gtl_client::{ClientError, ConnectOpts, Event, EventStream, ReconnectPolicy, user_message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// An echo request for `text` with `echo.` knobs.
pub(crate) fn request(text: &str, knobs: &[(&str, &str)]) -> CompletionRequest {
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

/// Quick retries, so tests that exhaust them stay short.
pub(crate) fn fast_policy() -> ReconnectPolicy {
    ReconnectPolicy::default()
        .with_attempts_per_endpoint(2)
        .with_backoff(Duration::from_millis(1), Duration::from_millis(5))
}

/// Reads a stream to its end: the events, and the error that ended it.
pub(crate) async fn drain(events: &mut EventStream) -> (Vec<Event>, Option<ClientError>) {
    let mut seen = Vec::new();
    while let Some(item) = events.next().await {
        match item {
            Ok(event) => seen.push(event),
            Err(e) => {
                assert!(events.next().await.is_none(), "nothing follows an error");
                return (seen, Some(e));
            }
        }
    }
    (seen, None)
}

/// The concatenated token text of `events`.
pub(crate) fn text(events: &[Event]) -> String {
    events
        .iter()
        .filter_map(|e| match &e.body {
            Body::Token(t) => Some(t.text.as_str()),
            _ => None,
        })
        .collect()
}

/// Asserts the seqs are 1, 2, 3, … and the last event is `done`.
pub(crate) fn assert_complete(events: &[Event]) {
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    let expected: Vec<u64> = (1..=events.len() as u64).collect();
    assert_eq!(seqs, expected, "every event exactly once, in order");
    assert!(matches!(
        events.last().map(|e| &e.body),
        Some(Body::Done(_))
    ));
}

/// A `gtl-server` on a Unix socket and an ephemeral TCP port.
pub(crate) struct Gateway {
    pub(crate) unix: String,
    pub(crate) tcp: String,
    pub(crate) tcp_addr: SocketAddr,
    /// The gateway's local token (loopback TCP needs it).
    pub(crate) token: String,
    _stop: oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

impl Gateway {
    pub(crate) async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = gtl_server::Config::default();
        config.set_data_dir(PathBuf::from(dir.path()));
        config.listen.uds.path = dir.path().join("gtl.sock");
        config.listen.tcp.addr = "127.0.0.1:0".parse().unwrap();
        config.listen.http.addr = "127.0.0.1:0".parse().unwrap();
        config.listen.quic.addr = "127.0.0.1:0".parse().unwrap();
        config.listen.h3.addr = "127.0.0.1:0".parse().unwrap();
        config.sessions.persist = false;
        let server =
            gtl_server::Server::bind(&config, gtl_server::default_registry(&config).unwrap())
                .await
                .unwrap();
        let endpoints = server.endpoints();
        let unix = endpoints
            .iter()
            .find(|e| e.starts_with("unix://"))
            .unwrap()
            .clone();
        let tcp = endpoints
            .iter()
            .find(|e| e.starts_with("tcp://"))
            .unwrap()
            .clone();
        let tcp_addr = tcp.trim_start_matches("tcp://").parse().unwrap();
        let token = std::fs::read_to_string(server.local_token_path().unwrap()).unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        Self {
            unix,
            tcp,
            tcp_addr,
            token: token.trim().to_owned(),
            _stop: stop,
            _dir: dir,
        }
    }
}

impl Gateway {
    /// Options for `endpoints` with the gateway's local token, as `gtl` on
    /// its host has them.
    pub(crate) fn opts<'a>(&self, endpoints: impl IntoIterator<Item = &'a str>) -> ConnectOpts {
        ConnectOpts::new(endpoints).with_token(self.token.clone())
    }
}

/// A TCP proxy to `target` for one connection: it passes the client's bytes
/// through, passes only the first `limit` bytes of the gateway's, then cuts
/// both connections. It accepts no second connection, so a reconnect to it
/// is refused.
pub(crate) async fn cutting_proxy(target: SocketAddr, limit: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("tcp://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (client, _) = listener.accept().await.unwrap();
        drop(listener);
        let gateway = TcpStream::connect(target).await.unwrap();
        let (mut from_client, mut to_client) = client.into_split();
        let (mut from_gateway, mut to_gateway) = gateway.into_split();
        let upstream = tokio::spawn(async move {
            let _ = tokio::io::copy(&mut from_client, &mut to_gateway).await;
        });
        let mut buf = vec![0; limit];
        let mut passed = 0;
        while passed < limit {
            match from_gateway.read(&mut buf[..limit - passed]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to_client.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    passed += n;
                }
            }
        }
        // Dropping every half closes both connections.
        upstream.abort();
    });
    url
}

/// A TCP proxy to `target` for one connection that cuts it after the
/// client's first call went through and before the gateway answers it: the
/// hello and the welcome (JSON lines) pass, then the client's next bytes,
/// then both connections are closed. It accepts no second connection.
pub(crate) async fn proxy_cutting_first_call(target: SocketAddr) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("tcp://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (client, _) = listener.accept().await.unwrap();
        drop(listener);
        let gateway = TcpStream::connect(target).await.unwrap();
        let (mut from_client, mut to_client) = client.into_split();
        let (mut from_gateway, mut to_gateway) = gateway.into_split();
        copy_line(&mut from_client, &mut to_gateway).await;
        copy_line(&mut from_gateway, &mut to_client).await;
        let mut call = vec![0; 64 * 1024];
        let n = from_client.read(&mut call).await.unwrap();
        to_gateway.write_all(&call[..n]).await.unwrap();
    });
    url
}

/// Copies one `\n`-terminated line.
async fn copy_line(from: &mut (impl AsyncReadExt + Unpin), to: &mut (impl AsyncWriteExt + Unpin)) {
    loop {
        let byte = from.read_u8().await.unwrap();
        to.write_u8(byte).await.unwrap();
        if byte == b'\n' {
            return;
        }
    }
}
