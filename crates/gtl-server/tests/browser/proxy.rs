//! A loopback TCP proxy in front of the gateway's HTTP port that cuts the
//! first WebSocket connection after a set number of bytes from the
//! gateway: a connection dropped mid-stream, deterministically.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// A running proxy.
pub(crate) struct CuttingProxy {
    /// `host:port` to use instead of the gateway's.
    pub(crate) addr: String,
    cuts: Arc<AtomicUsize>,
}

impl CuttingProxy {
    /// Proxies to `upstream`; the first WebSocket upgrade's connection
    /// gets `budget` bytes from the gateway, then both ends are closed.
    /// Every other connection passes untouched.
    pub(crate) async fn start(upstream: String, budget: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let cuts = Arc::new(AtomicUsize::new(0));
        let armed = Arc::new(AtomicBool::new(true));
        let counter = cuts.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let armed = armed.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let _ = relay(client, &upstream, budget, &armed, &counter).await;
                });
            }
        });
        Self { addr, cuts }
    }

    /// How many connections it has cut.
    pub(crate) fn cuts(&self) -> usize {
        self.cuts.load(Ordering::SeqCst)
    }
}

async fn relay(
    mut client: TcpStream,
    upstream: &str,
    budget: usize,
    armed: &AtomicBool,
    cuts: &AtomicUsize,
) -> std::io::Result<()> {
    let mut server = TcpStream::connect(upstream).await?;
    // The request line tells a WebSocket upgrade from the page's other
    // requests (a browser opens a connection of its own for each socket).
    let mut head = Vec::new();
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 8192 {
        let mut chunk = [0; 1024];
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&chunk[..n]);
    }
    server.write_all(&head).await?;
    let websocket = head.starts_with(b"GET /gtl/v1/ws ");
    if !(websocket && armed.swap(false, Ordering::SeqCst)) {
        tokio::io::copy_bidirectional(&mut client, &mut server).await?;
        return Ok(());
    }
    let (mut client_read, mut client_write) = client.split();
    let (mut server_read, mut server_write) = server.split();
    let upward = tokio::io::copy(&mut client_read, &mut server_write);
    let downward = async {
        let mut left = budget;
        let mut chunk = vec![0; 4096];
        while left > 0 {
            let n = server_read.read(&mut chunk[..left.min(4096)]).await?;
            if n == 0 {
                break;
            }
            client_write.write_all(&chunk[..n]).await?;
            left -= n;
        }
        std::io::Result::Ok(())
    };
    tokio::select! {
        _ = upward => {}
        _ = downward => {}
    }
    cuts.fetch_add(1, Ordering::SeqCst);
    // Dropping both streams closes them: the page sees its socket fail.
    Ok(())
}
