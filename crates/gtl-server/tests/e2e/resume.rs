//! Cut connections and restarts: the client resumes, over the same
//! transport or another, and sees exactly the provider's events.

use std::path::PathBuf;

use futures::StreamExt as _;
use gtl_client::connect;
use gtl_client::proto::{Body, ErrorCode};
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::watch;

use crate::harness::{Gateway, assert_contiguous, bodies, drain, echo, expected, patient, take};

/// Paced so the stream is still running when the test cuts it.
const PACED: &[(&str, &str)] = &[("tokens", "400"), ("delay_ms", "1")];

/// A proxy in front of the gateway that the test can cut.
pub(crate) struct Proxy {
    pub(crate) endpoint: String,
    cut: watch::Sender<Cut>,
    /// The Unix proxy's socket file.
    path: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Cut {
    No,
    /// Drop every connection, keep accepting new ones.
    Connections,
    /// Drop every connection and stop listening: the endpoint is gone.
    Everything,
}

enum Listen {
    Unix(UnixListener, PathBuf),
    Tcp(TcpListener),
}

impl Proxy {
    /// A proxy at a new Unix socket in `dir` to `target` (an endpoint URL).
    async fn unix(dir: &std::path::Path, target: &str) -> Self {
        let path = dir.join("proxy.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let mut proxy = Self::spawn(
            Listen::Unix(listener, path.clone()),
            format!("unix://{}", path.display()),
            target,
        );
        proxy.path = Some(path);
        proxy
    }

    /// A proxy on a free loopback port to `target`.
    pub(crate) async fn tcp(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("tcp://{}", listener.local_addr().unwrap());
        Self::spawn(Listen::Tcp(listener), endpoint, target)
    }

    fn spawn(listen: Listen, endpoint: String, target: &str) -> Self {
        let (cut, watching) = watch::channel(Cut::No);
        let target = target.to_owned();
        tokio::spawn(async move {
            let mut watching_accept = watching.clone();
            loop {
                let accepted: Box<dyn Duplex> = tokio::select! {
                    // A cut and a reconnect can be ready together: the cut
                    // wins, so no connection slips through a cut proxy.
                    biased;
                    changed = watching_accept.changed() => {
                        if changed.is_err() || *watching_accept.borrow() == Cut::Everything { break }
                        continue;
                    }
                    accepted = accept(&listen) => accepted,
                };
                if *watching_accept.borrow() == Cut::Everything {
                    break;
                }
                let upstream = dial(&target).await;
                let mut watching = watching.clone();
                watching.mark_unchanged();
                tokio::spawn(async move {
                    let (mut a, mut b) = (accepted, upstream);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut a, &mut b) => {}
                        _ = watching.changed() => {
                            // Cut: drop both sides without a goodbye.
                            let _ = a.shutdown().await;
                        }
                    }
                });
            }
            if let Listen::Unix(_, path) = &listen {
                let _ = std::fs::remove_file(path);
            }
        });
        Self {
            endpoint,
            cut,
            path: None,
        }
    }

    pub(crate) fn cut(&self, how: Cut) {
        if how == Cut::Everything
            && let Some(path) = &self.path
        {
            // Gone before the cut is seen, so no reconnect can reach it.
            let _ = std::fs::remove_file(path);
        }
        self.cut.send_replace(how);
    }
}

trait Duplex: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Duplex for T {}

async fn accept(listen: &Listen) -> Box<dyn Duplex> {
    match listen {
        Listen::Unix(l, _) => Box::new(l.accept().await.unwrap().0),
        Listen::Tcp(l) => Box::new(l.accept().await.unwrap().0),
    }
}

async fn dial(target: &str) -> Box<dyn Duplex> {
    match target.split_once("://") {
        Some(("unix", path)) => Box::new(UnixStream::connect(path).await.unwrap()),
        Some(("tcp", addr)) => Box::new(TcpStream::connect(addr).await.unwrap()),
        _ => panic!("cannot dial {target}"),
    }
}

/// Streams through `proxy` (first endpoint) with `fallback` behind it, cuts
/// after 25 events, and checks the whole sequence against the provider's.
async fn cut_and_resume(
    gateway: &Gateway,
    proxy: Proxy,
    fallback: Option<String>,
    how: Cut,
) -> String {
    let endpoints: Vec<String> = std::iter::once(proxy.endpoint.clone())
        .chain(fallback)
        .collect();
    let client = connect(gateway.opts(endpoints).with_reconnect(patient()))
        .await
        .unwrap();
    let request = echo("resume me", PACED);
    let mut events = client.stream(request.clone()).await.unwrap();
    let before = take(&mut events, 25).await;
    proxy.cut(how);
    let (after, error) = drain(&mut events).await;
    assert!(error.is_none(), "{error:?}");
    let all: Vec<_> = before.into_iter().chain(after).collect();
    assert_contiguous(&all);
    assert_eq!(
        bodies(&all),
        expected(&request).await,
        "no loss, no duplicate"
    );
    client.endpoint()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_cut_resumes_over_tcp() {
    let gateway = Gateway::start().await;
    let proxy = Proxy::tcp(&gateway.tcp).await;
    let endpoint = proxy.endpoint.clone();
    assert_eq!(
        cut_and_resume(&gateway, proxy, None, Cut::Connections).await,
        endpoint
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uds_cut_resumes_over_uds() {
    let gateway = Gateway::start().await;
    let proxy = Proxy::unix(gateway.dir.path(), &gateway.uds).await;
    let endpoint = proxy.endpoint.clone();
    assert_eq!(
        cut_and_resume(&gateway, proxy, None, Cut::Connections).await,
        endpoint
    );
}

/// The hot transport swap: the Unix socket goes away mid-stream and the
/// session continues over TCP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uds_cut_resumes_over_tcp() {
    let gateway = Gateway::start().await;
    let proxy = Proxy::unix(gateway.dir.path(), &gateway.uds).await;
    let now = cut_and_resume(&gateway, proxy, Some(gateway.tcp.clone()), Cut::Everything).await;
    assert_eq!(now, gateway.tcp, "the client moved to TCP");
}

/// The Unix socket goes away mid-stream and the session continues over
/// the WebSocket on the HTTP port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uds_cut_resumes_over_websocket() {
    let gateway = Gateway::start().await;
    let proxy = Proxy::unix(gateway.dir.path(), &gateway.uds).await;
    let ws = gateway.endpoint(crate::harness::Transport::Ws);
    let now = cut_and_resume(&gateway, proxy, Some(ws.clone()), Cut::Everything).await;
    assert_eq!(now, ws, "the client moved to the WebSocket");
}

/// A WebSocket connection is cut mid-stream; the client reconnects over
/// WebSocket and resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_cut_resumes_over_websocket() {
    let gateway = Gateway::start().await;
    let http = gateway.http.replace("http://", "tcp://");
    let mut proxy = Proxy::tcp(&http).await;
    proxy.endpoint = format!("{}/gtl/v1/ws", proxy.endpoint.replace("tcp://", "ws://"));
    let endpoint = proxy.endpoint.clone();
    assert_eq!(
        cut_and_resume(&gateway, proxy, None, Cut::Connections).await,
        endpoint
    );
}

/// One stream across three transports: it starts on gRPC, is cut, resumes
/// on WebSocket, is cut again, and finishes over SSE; the caller sees the
/// provider's events exactly once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_moves_from_grpc_to_websocket_to_sse() {
    let gateway = Gateway::start().await;
    let http = gateway.http.replace("http://", "tcp://");
    let grpc = Proxy::tcp(&http).await;
    let ws = Proxy::tcp(&http).await;
    let grpc_url = grpc.endpoint.replace("tcp://", "grpc://");
    let ws_url = format!("{}/gtl/v1/ws", ws.endpoint.replace("tcp://", "ws://"));
    let sse_url = gateway.endpoint(crate::harness::Transport::Sse);
    let endpoints = [grpc_url.clone(), ws_url.clone(), sse_url.clone()];
    let client = connect(gateway.opts(endpoints).with_reconnect(patient()))
        .await
        .unwrap();
    assert_eq!(client.endpoint(), grpc_url);

    let request = echo(
        "across three transports",
        &[("tokens", "300"), ("delay_ms", "5")],
    );
    let mut events = client.stream(request.clone()).await.unwrap();
    let mut all = take(&mut events, 25).await;
    grpc.cut(Cut::Everything);
    // Events already received before the cut come first; read on until
    // the client has moved, then a few more over the WebSocket.
    while client.endpoint() != ws_url {
        match events.next().await {
            Some(Ok(event)) => all.push(event),
            other => panic!(
                "after {} events the stream ended ({other:?}) on {}",
                all.len(),
                client.endpoint()
            ),
        }
    }
    all.extend(take(&mut events, 10).await);
    ws.cut(Cut::Everything);
    let (rest, error) = drain(&mut events).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(client.endpoint(), sse_url, "finished over SSE");
    all.extend(rest);
    assert_contiguous(&all);
    assert_eq!(
        bodies(&all),
        expected(&request).await,
        "no loss, no duplicate"
    );
}

/// The server restarts between the cut and the resume: what was persisted
/// is replayed, and the generation the restart cut ends with a clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_replays_what_was_persisted() {
    let gateway = Gateway::start().await;
    let (uds, tcp) = (gateway.uds.clone(), gateway.tcp.clone());
    let client = connect(gateway.opts([uds.clone()]).with_reconnect(patient()))
        .await
        .unwrap();
    let request = echo("survive a restart", PACED);
    let mut events = client.stream(request.clone()).await.unwrap();
    let before = take(&mut events, 25).await;

    let dir = gateway.shutdown().await;
    let _restarted = Gateway::start_in(dir, Some(&tcp)).await;

    let (after, error) = drain(&mut events).await;
    let error = error.expect("the cut generation ends with an error");
    assert_eq!(error.code(), Some(ErrorCode::Internal), "{error}");
    assert!(error.to_string().contains("restart"), "{error}");
    let all: Vec<_> = before.into_iter().chain(after).collect();
    assert_contiguous(&all);
    assert!(all.len() >= 25);
    let want = expected(&request).await;
    assert_eq!(
        bodies(&all),
        want[..all.len()],
        "a prefix of the provider's events, none lost"
    );
    assert!(all.iter().all(|e| !matches!(e.body, Body::Done(_))));
}

/// A UDP relay between one QUIC client and the gateway that can stop
/// relaying at once: the network path is gone, nothing is closed.
struct UdpRelay {
    addr: std::net::SocketAddr,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl UdpRelay {
    async fn start(server: std::net::SocketAddr) -> Self {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        let front = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let back = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
        back.connect(server).await.unwrap();
        let addr = front.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let client = Arc::new(std::sync::Mutex::new(None::<std::net::SocketAddr>));
        let upstream = {
            let (front, back, cut, client) =
                (front.clone(), back.clone(), cut.clone(), client.clone());
            tokio::spawn(async move {
                let mut buf = vec![0; 65_536];
                while let Ok((n, from)) = front.recv_from(&mut buf).await {
                    *client.lock().unwrap() = Some(from);
                    if !cut.load(Ordering::Relaxed) {
                        let _ = back.send(&buf[..n]).await;
                    }
                }
            })
        };
        let downstream = {
            let cut = cut.clone();
            tokio::spawn(async move {
                let mut buf = vec![0; 65_536];
                while let Ok(n) = back.recv(&mut buf).await {
                    let to = *client.lock().unwrap();
                    if let Some(to) = to
                        && !cut.load(Ordering::Relaxed)
                    {
                        let _ = front.send_to(&buf[..n], to).await;
                    }
                }
            })
        };
        Self {
            addr,
            cut,
            tasks: vec![upstream, downstream],
        }
    }

    fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Drop for UdpRelay {
    fn drop(&mut self) {
        self.tasks.iter().for_each(tokio::task::JoinHandle::abort);
    }
}

/// A stream starts on QUIC; the network path is cut (the QUIC connection
/// is not closed, it just goes silent); the caller resumes from where it
/// was over WebSocket, then, cut again, over gRPC — every event exactly
/// once, without waiting for QUIC to notice the dead path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_moves_from_quic_to_websocket_to_grpc() {
    let gateway = Gateway::start().await;
    let quic = gateway.endpoint(crate::harness::Transport::Quic);
    let (authority, pin) = quic.trim_start_matches("quic://").split_once('?').unwrap();
    let relay = UdpRelay::start(authority.parse().unwrap()).await;
    let via_relay = format!("quic://{}?{pin}", relay.addr);
    let client = connect(gateway.opts([via_relay]).with_reconnect(patient()))
        .await
        .unwrap();
    let request = echo("from QUIC onwards", &[("tokens", "300"), ("delay_ms", "5")]);
    let mut events = client.stream(request.clone()).await.unwrap();
    let mut all = take(&mut events, 25).await;
    relay.cut();
    let point = events.resume_point();
    drop(events);

    let http = gateway.http.replace("http://", "tcp://");
    let ws = Proxy::tcp(&http).await;
    let ws_url = format!("{}/gtl/v1/ws", ws.endpoint.replace("tcp://", "ws://"));
    let grpc_url = gateway.endpoint(crate::harness::Transport::Grpc);
    let moved = connect(
        gateway
            .opts([ws_url.clone(), grpc_url.clone()])
            .with_reconnect(patient()),
    )
    .await
    .unwrap();
    assert_eq!(moved.endpoint(), ws_url);
    let mut events = moved.resume(point).await.unwrap();
    all.extend(take(&mut events, 10).await);
    ws.cut(Cut::Everything);
    let (rest, error) = drain(&mut events).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(moved.endpoint(), grpc_url, "finished over gRPC");
    all.extend(rest);
    assert_contiguous(&all);
    assert_eq!(
        bodies(&all),
        expected(&request).await,
        "no loss, no duplicate"
    );
}
