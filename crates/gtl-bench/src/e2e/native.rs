//! The native transports through the gateway to the mock, start-up, and
//! resume: every call here goes through `gtl-client`, as an application
//! would.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use futures::StreamExt as _;
use gtl_client::proto::{Body, CompletionRequest};
use gtl_client::{Client, ConnectOpts, connect, user_message};
use hdrhistogram::Histogram;

use super::gateway::Gateway;
use super::load::nanos;
use super::report::Report;
use super::{Size, UNARY_MODEL};

/// The native endpoints of `gateway`, named, as `gtl` would reach them.
fn endpoints(gateway: &Gateway) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for endpoint in &gateway.endpoints {
        if let Some(addr) = endpoint.strip_prefix("http://") {
            out.push(("ws", format!("ws://{addr}/gtl/v1/ws")));
            out.push(("sse (HTTP/1.1)", format!("sse://{addr}")));
            out.push(("grpc (h2c)", format!("grpc://{addr}")));
        } else if endpoint.starts_with("quic://") {
            out.push(("quic", endpoint.clone()));
        } else if endpoint.starts_with("wt://") {
            out.push(("webtransport", endpoint.clone()));
        } else if endpoint.starts_with("unix:") {
            out.push(("uds", endpoint.clone()));
        } else {
            out.push(("tcp", endpoint.clone()));
        }
    }
    out
}

fn opts(gateway: &Gateway, endpoint: &str) -> ConnectOpts {
    let opts = ConnectOpts::new([endpoint.to_owned()]);
    if endpoint.starts_with("unix:") {
        opts
    } else {
        opts.with_token(gateway.token.clone())
    }
}

fn request(model: &str, stream: bool) -> CompletionRequest {
    CompletionRequest {
        model: format!("openai/{model}"),
        messages: vec![user_message("What is the weather in San Francisco?")],
        stream,
        ..CompletionRequest::default()
    }
}

/// Spawn → the first `chat.complete` answered over the Unix socket.
pub(crate) async fn first_call(gateway: &Gateway) -> Result<Duration> {
    let client = connect(opts(gateway, gateway.endpoint("unix:")?)).await?;
    let answer = client.complete(request(UNARY_MODEL, false)).await?;
    let elapsed = gateway.spawned.elapsed();
    if answer.text.is_empty() {
        bail!("the first call came back empty");
    }
    Ok(elapsed)
}

/// Unary calls at a fixed rate over each native transport.
pub(crate) async fn transports(
    report: &mut Report,
    size: &Size,
    gateway: &Gateway,
    baseline: Option<(f64, f64)>,
) -> Result<()> {
    for (name, endpoint) in endpoints(gateway) {
        let client = connect(opts(gateway, &endpoint))
            .await
            .with_context(|| format!("connecting to {endpoint}"))?;
        // Warm up.
        for _ in 0..200 {
            client.complete(request(UNARY_MODEL, false)).await?;
        }
        let before = gateway.cpu()?;
        let latency = open_loop(&client, 2_000, size.native_calls).await?;
        let cpu = gateway.cpu()?.saturating_sub(before);
        report.native(name, &latency, cpu, size.native_calls, baseline);
        eprintln!("gtl-load: {name} done");
    }
    Ok(())
}

/// `count` `chat.complete` calls at `per_second`, latency from each call's
/// intended start.
async fn open_loop(client: &Client, per_second: u64, count: u64) -> Result<Histogram<u64>> {
    let client = Arc::new(client.clone());
    let calls = super::load::paced(per_second, count, move |intended: Instant| {
        let client = client.clone();
        async move {
            let answer = client.complete(request(UNARY_MODEL, false)).await;
            (intended.elapsed(), answer.map(|a| a.text.len()))
        }
    })
    .await?;
    let mut histogram = Histogram::new_with_bounds(1_000, 120_000_000_000, 3)?;
    for call in calls {
        let (latency, answer) = call.await?;
        if answer? == 0 {
            bail!("an empty answer");
        }
        histogram.saturating_record(nanos(latency));
    }
    Ok(histogram)
}

/// What resuming measured.
pub(crate) struct Resumes {
    /// New connection + resume → first replayed event.
    pub(crate) reconnect: Histogram<u64>,
    /// Resume request on an open connection → first replayed event.
    pub(crate) resume: Histogram<u64>,
    pub(crate) count: usize,
}

/// `count` times each way: a stream over the Unix socket is cut after 5
/// tokens, resumed over TCP 10 ms later, and checked to the last token.
pub(crate) async fn resume(gateway: &Gateway, count: usize) -> Result<Resumes> {
    const TOKENS: usize = 60;
    /// How long the cut client is away. Resuming at once would time the
    /// mock's next token (a millisecond away) rather than the replay; by
    /// then the session has stored the tokens generated meanwhile, and the
    /// first event a resume gets is a replayed one.
    const AWAY: Duration = Duration::from_millis(10);
    let mut out = Resumes {
        reconnect: Histogram::new_with_bounds(1_000, 120_000_000_000, 3)?,
        resume: Histogram::new_with_bounds(1_000, 120_000_000_000, 3)?,
        count,
    };
    let tcp = gateway.endpoint("tcp://")?.to_owned();
    let model = format!("mock-{TOKENS}x1");
    let warm = connect(opts(gateway, &tcp)).await?;
    for i in 0..count * 2 {
        let first = connect(opts(gateway, gateway.endpoint("unix:")?)).await?;
        let mut events = first.stream(request(&model, true)).await?;
        let mut seen = 0;
        while seen < 5 {
            let event = events.next().await.context("the stream ended early")??;
            seen += usize::from(matches!(event.body, Body::Token(_)));
        }
        let point = events.detach();
        drop(first);
        tokio::time::sleep(AWAY).await;
        // Every other cut resumes on a fresh connection (what a cut
        // client does), the rest on one already open.
        let fresh = i % 2 == 0;
        let start = Instant::now();
        let fresh_client;
        let client = if fresh {
            fresh_client = connect(opts(gateway, &tcp)).await?;
            &fresh_client
        } else {
            &warm
        };
        let mut resumed = client.resume(point.clone()).await?;
        let event = resumed.next().await.context("nothing replayed")??;
        let histogram = if fresh {
            &mut out.reconnect
        } else {
            &mut out.resume
        };
        histogram.saturating_record(nanos(start.elapsed()));
        if event.seq != point.after_seq + 1 {
            bail!("resumed at {} after {}", event.seq, point.after_seq);
        }
        seen += usize::from(matches!(event.body, Body::Token(_)));
        while let Some(event) = resumed.next().await {
            seen += usize::from(matches!(event?.body, Body::Token(_)));
        }
        if seen != TOKENS {
            bail!("{seen} tokens after a resume, not {TOKENS}");
        }
    }
    Ok(out)
}
