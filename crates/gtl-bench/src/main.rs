//! `gtl-load`: end-to-end load harness for `cargo xtask bench`.
//!
//! Starts a gateway in-process (echo provider, redb sessions in a temp dir,
//! UDS, TCP and the HTTP port on loopback) and measures, per transport,
//! over one client connection: streamed token events per second,
//! chat.complete round-trip latency (p50/p99), and many concurrent streams.
//! Every row goes through `gtl-client`, so the rows differ only in the
//! transport (the SSE row is the HTTP bridge: a request per call over an
//! HTTP/1.1 keep-alive pool). A second gateway keeps its
//! sessions in memory only, so the last row shows what durable sessions
//! cost. Then what the OpenAI-compatible route adds over calling a mock
//! upstream directly (`compat.rs`), and what the router adds per call
//! (`routing.rs`). Prints Markdown tables. Every loop is
//! bounded in count; nothing leaves loopback.

mod compat;
mod e2e;
mod routing;

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use futures::StreamExt as _;
use gtl_client::proto::{Body, CompletionRequest};
use gtl_client::{Client, ConnectOpts, connect, user_message};
use gtl_server::{Config, Server, default_registry};

// The gateway's allocator, so that the floor proxy (`e2e::floor`) is not
// slower than the gateway for a reason of no interest.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Tokens streamed per throughput run.
const STREAM_TOKENS: usize = 200_000;
/// Sequential calls per latency run (after a warm-up).
const LATENCY_CALLS: usize = 2_000;
/// Concurrent streams, and tokens in each.
const CONCURRENT: usize = 200;
const CONCURRENT_TOKENS: usize = 200;
/// New connections per connect-time run.
const CONNECTS: usize = 30;
/// Streams per first-token run (after a warm-up).
const FIRST_TOKENS: usize = 300;

/// `gtl-load [GTL_SERVER_BIN]` runs everything (the stdio row needs the
/// binary); `gtl-load --compat` only the compatible-API table,
/// `gtl-load --routing` only the router-overhead table;
/// `gtl-load --e2e [--quick] [--json FILE] [--against FILE] GTL_SERVER_BIN`
/// the direct-versus-gateway benchmark (`e2e`).
fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--e2e") {
        return e2e::main(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("--floor-proxy") {
        return e2e::floor_proxy(&args[1..]);
    }
    let arg = args.first().cloned();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if arg.as_deref() == Some("--compat") {
        return runtime.block_on(compat::run());
    }
    if arg.as_deref() == Some("--routing") {
        return runtime.block_on(routing::run());
    }
    runtime.block_on(run(arg.map(PathBuf::from)))
}

/// A gateway serving on `dir`'s paths and free loopback ports.
async fn gateway(
    dir: &std::path::Path,
    persist: bool,
) -> Result<(
    Vec<String>,
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
)> {
    let mut config = Config::default();
    config.set_data_dir(dir.join("data"));
    config.listen.uds.path = dir.join("gtl.sock");
    config.listen.tcp.addr = "127.0.0.1:0".parse()?;
    config.listen.http.addr = "127.0.0.1:0".parse()?;
    config.listen.quic.addr = "127.0.0.1:0".parse()?;
    config.listen.h3.addr = "127.0.0.1:0".parse()?;
    config.sessions.persist = persist;
    let server = Server::bind(&config, default_registry(&config)?).await?;
    let endpoints = server.endpoints();
    let token = std::fs::read_to_string(
        server
            .local_token_path()
            .context("the gateway writes no local token")?,
    )?
    .trim()
    .to_owned();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    Ok((endpoints, token, stop, serving))
}

async fn run(server_bin: Option<PathBuf>) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (endpoints, token, stop, serving) = gateway(dir.path(), true).await?;
    let memory_dir = tempfile::tempdir()?;
    let (memory_endpoints, _, memory_stop, memory_serving) =
        gateway(memory_dir.path(), false).await?;

    let mut transports: Vec<(&str, String)> = Vec::new();
    for endpoint in &endpoints {
        if let Some(addr) = endpoint.strip_prefix("http://") {
            // The HTTP port carries three transports.
            transports.push(("ws", format!("ws://{addr}/gtl/v1/ws")));
            transports.push(("sse (HTTP/1.1)", format!("sse://{addr}")));
            transports.push(("grpc (h2c)", format!("grpc://{addr}")));
        } else if endpoint.starts_with("quic://") {
            transports.push(("quic", endpoint.clone()));
        } else if endpoint.starts_with("wt://") {
            transports.push(("webtransport (HTTP/3)", endpoint.clone()));
        } else if endpoint.starts_with("unix:") {
            transports.push(("uds", endpoint.clone()));
        } else {
            transports.push(("tcp", endpoint.clone()));
        }
    }
    if let Some(bin) = &server_bin {
        let data = dir.path().join("stdio-data");
        transports.push((
            "stdio",
            format!(
                "stdio://{} --stdio --data-dir {}",
                bin.display(),
                data.display()
            ),
        ));
    }
    transports.push(("embedded", "embedded://".into()));
    if let Some(uds) = memory_endpoints.iter().find(|e| e.starts_with("unix:")) {
        transports.push(("uds, sessions in memory", uds.clone()));
    }

    println!(
        "| transport | connect + handshake p50 | first token p50 | chat.complete p50 | chat.complete p99 | streamed events/s (1 connection) | {CONCURRENT} concurrent streams: events/s |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, endpoint) in transports {
        // What `gtl` does: the local token to loopback network endpoints.
        let opts = if endpoint.starts_with("unix:")
            || endpoint.starts_with("stdio:")
            || endpoint.starts_with("embedded:")
        {
            ConnectOpts::new([endpoint.clone()])
        } else {
            ConnectOpts::new([endpoint.clone()]).with_token(token.clone())
        };
        let handshake = connect_time(&opts).await?;
        let client = connect(opts)
            .await
            .with_context(|| format!("connecting to {endpoint}"))?;
        let first = first_token(&client).await?;
        let (p50, p99) = latency(&client).await?;
        let throughput = median(3, || stream_rate(&client)).await?;
        let concurrent = concurrent_rate(&client).await?;
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} |",
            micros(handshake),
            micros(first),
            micros(p50),
            micros(p99),
            rate(throughput),
            rate(concurrent)
        );
        eprintln!("gtl-load: {name} done");
    }
    let _ = stop.send(());
    let _ = memory_stop.send(());
    serving.await?;
    memory_serving.await?;
    compat::run().await?;
    routing::run().await
}

fn echo(tokens: usize) -> CompletionRequest {
    let mut request = CompletionRequest {
        model: "echo".into(),
        messages: vec![user_message("benchmark")],
        stream: true,
        ..CompletionRequest::default()
    };
    request
        .metadata
        .insert("echo.tokens".into(), tokens.to_string());
    request
        .metadata
        .insert("echo.token_bytes".into(), "6".into());
    request
}

/// Token events per second of one stream of `STREAM_TOKENS` tokens.
async fn stream_rate(client: &Client) -> Result<f64> {
    let start = Instant::now();
    let tokens = count_tokens(client, echo(STREAM_TOKENS)).await?;
    if tokens != STREAM_TOKENS {
        bail!("expected {STREAM_TOKENS} tokens, got {tokens}");
    }
    Ok(tokens as f64 / start.elapsed().as_secs_f64())
}

async fn count_tokens(client: &Client, request: CompletionRequest) -> Result<usize> {
    let mut events = client.stream(request).await?;
    let mut tokens = 0;
    while let Some(event) = events.next().await {
        if matches!(event?.body, Body::Token(_)) {
            tokens += 1;
        }
    }
    Ok(tokens)
}

/// New connections, one at a time, each through the hello/welcome
/// exchange (for QUIC and WebTransport the 1-RTT TLS handshake too): p50.
async fn connect_time(opts: &ConnectOpts) -> Result<Duration> {
    let mut samples = Vec::with_capacity(CONNECTS);
    for _ in 0..CONNECTS {
        let start = Instant::now();
        let client = connect(opts.clone()).await?;
        samples.push(start.elapsed());
        drop(client);
    }
    samples.sort_unstable();
    Ok(samples[samples.len() / 2])
}

/// Time from asking for a stream to its first token event, one stream at
/// a time: p50.
async fn first_token(client: &Client) -> Result<Duration> {
    let request = CompletionRequest {
        model: "echo".into(),
        messages: vec![user_message("first token")],
        stream: true,
        ..CompletionRequest::default()
    };
    let mut samples = Vec::with_capacity(FIRST_TOKENS);
    for i in 0..FIRST_TOKENS + 50 {
        let start = Instant::now();
        let mut events = client.stream(request.clone()).await?;
        let mut first = None;
        while let Some(event) = events.next().await {
            if first.is_none() && matches!(event?.body, Body::Token(_)) {
                first = Some(start.elapsed());
            }
        }
        // The first 50 warm up.
        if i >= 50 {
            samples.push(first.context("a stream without a token")?);
        }
    }
    samples.sort_unstable();
    Ok(samples[samples.len() / 2])
}

/// chat.complete round trips, one at a time: (p50, p99).
async fn latency(client: &Client) -> Result<(Duration, Duration)> {
    let request = CompletionRequest {
        model: "echo".into(),
        messages: vec![user_message("ping")],
        ..CompletionRequest::default()
    };
    for _ in 0..100 {
        client.complete(request.clone()).await?;
    }
    let mut samples = Vec::with_capacity(LATENCY_CALLS);
    for _ in 0..LATENCY_CALLS {
        let start = Instant::now();
        client.complete(request.clone()).await?;
        samples.push(start.elapsed());
    }
    samples.sort_unstable();
    Ok((
        samples[samples.len() / 2],
        samples[samples.len() * 99 / 100],
    ))
}

/// `CONCURRENT` streams at once over the one connection: total events/s.
async fn concurrent_rate(client: &Client) -> Result<f64> {
    let start = Instant::now();
    let runs = (0..CONCURRENT).map(|_| count_tokens(client, echo(CONCURRENT_TOKENS)));
    let counts = futures::future::try_join_all(runs).await?;
    let total: usize = counts.iter().sum();
    if total != CONCURRENT * CONCURRENT_TOKENS {
        bail!(
            "expected {} tokens, got {total}",
            CONCURRENT * CONCURRENT_TOKENS
        );
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

async fn median<F, Fut>(runs: usize, mut f: F) -> Result<f64>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<f64>>,
{
    let mut values = Vec::with_capacity(runs);
    for _ in 0..runs {
        values.push(f().await?);
    }
    values.sort_by(f64::total_cmp);
    Ok(values[values.len() / 2])
}

fn rate(per_second: f64) -> String {
    if per_second >= 1e6 {
        format!("{:.2} M", per_second / 1e6)
    } else {
        format!("{:.0} k", per_second / 1e3)
    }
}

fn micros(d: Duration) -> String {
    format!("{} µs", d.as_micros())
}
