//! What `/v1/chat/completions` through GTL adds over calling the upstream
//! directly.
//!
//! The upstream is a local mock that answers every request with OpenAI's
//! recorded chat stream (`gtl-test`'s replay server). The same request is
//! sent at a fixed rate, open loop (each request leaves on schedule, not
//! when the previous one ended), to the mock directly and to a gateway
//! whose `openai` provider is that mock. Unary: time to the whole answer.
//! Streamed: time to the first content chunk (TTFT). Every loop is bounded
//! in count.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use futures::StreamExt as _;
use gtl_providers::{EchoProvider, ProviderConfig, ProviderKind, Registry};
use gtl_server::{Config, Server};
use gtl_test::{ReplayServer, Reply, provider_fixture, read, served_sse};
use serde_json::json;

/// Requests per second, and requests per measurement.
const RATE: u64 = 100;
const REQUESTS: usize = 1_000;

/// Prints the overhead table.
pub(crate) async fn run() -> Result<()> {
    let recording = read(provider_fixture("openai/chat_text.sse"));
    let upstream = ReplayServer::start(Reply::sse(served_sse(&recording))).await;
    let dir = tempfile::tempdir()?;
    let mut config = Config::default();
    config.set_data_dir(dir.path().join("data"));
    config.listen.uds.path = dir.path().join("gtl.sock");
    config.listen.tcp.addr = "127.0.0.1:0".parse()?;
    config.listen.http.addr = "127.0.0.1:0".parse()?;
    config.listen.quic.addr = "127.0.0.1:0".parse()?;
    let mut registry = Registry::new();
    registry.add(Arc::new(EchoProvider::new()));
    let openai = ProviderConfig::new(ProviderKind::OpenAi)
        .with_base_url(format!("{}/v1", upstream.url()))
        .with_api_key("mock-key");
    registry.add(gtl_providers::build(openai)?);
    let server = Server::bind(&config, registry).await?;
    let token = std::fs::read_to_string(
        server
            .local_token_path()
            .context("the gateway writes no local token")?,
    )?;
    let http = server
        .endpoints()
        .into_iter()
        .find(|e| e.starts_with("http://"))
        .context("the gateway has no HTTP port")?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));

    let _ = rustls::crypto::ring::default_provider().install_default();
    // As an SDK does: the key (here the gateway's local token) on every
    // request, to the gateway and to the upstream alike.
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {}", token.trim()).parse()?,
    );
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .build()?;
    let direct = format!("{}/v1/chat/completions", upstream.url());
    let gateway = format!("{http}/v1/chat/completions");
    println!(
        "\n### OpenAI-compatible API overhead ({REQUESTS} requests at {RATE}/s, mock upstream on loopback)\n"
    );
    println!(
        "| `/v1/chat/completions` | direct p50 | direct p99 | through GTL p50 | through GTL p99 | added p50 |"
    );
    println!("|---|---|---|---|---|---|");
    for (name, stream) in [
        ("unary: whole answer", false),
        ("streamed: first token", true),
    ] {
        let body = json!({
            "model": "openai/gpt-4o",
            "stream": stream,
            "messages": [{"role": "user", "content": "What is the weather in San Francisco?"}],
        });
        let direct_samples = measure(&client, &direct, &body, stream).await?;
        let gateway_samples = measure(&client, &gateway, &body, stream).await?;
        let (d50, d99) = percentiles(direct_samples);
        let (g50, g99) = percentiles(gateway_samples);
        println!(
            "| {name} | {} | {} | {} | {} | {} |",
            crate::micros(d50),
            crate::micros(d99),
            crate::micros(g50),
            crate::micros(g99),
            crate::micros(g50.saturating_sub(d50)),
        );
    }
    let _ = stop.send(());
    serving.await?;
    Ok(())
}

/// `REQUESTS` requests at `RATE` per second; each sample is the time to
/// the whole body, or, when `first_token`, to the first content delta.
async fn measure(
    client: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
    first_token: bool,
) -> Result<Vec<Duration>> {
    // Warm the connection pools and the gateway.
    for _ in 0..50 {
        one(client, url, body, first_token).await?;
    }
    let mut ticks = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    let mut running = Vec::with_capacity(REQUESTS);
    for _ in 0..REQUESTS {
        ticks.tick().await;
        let (client, url, body) = (client.clone(), url.to_owned(), body.clone());
        running.push(tokio::spawn(async move {
            one(&client, &url, &body, first_token).await
        }));
    }
    let mut samples = Vec::with_capacity(REQUESTS);
    for task in running {
        samples.push(task.await??);
    }
    Ok(samples)
}

async fn one(
    client: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
    first_token: bool,
) -> Result<Duration> {
    let start = Instant::now();
    let response = client.post(url).json(body).send().await?;
    if !response.status().is_success() {
        bail!("{url}: {}", response.status());
    }
    let mut chunks = response.bytes_stream();
    let mut seen = Vec::new();
    let mut first = None;
    while let Some(chunk) = chunks.next().await {
        seen.extend_from_slice(&chunk?);
        if first_token && first.is_none() && contains(&seen, b"\"content\":\"I") {
            first = Some(start.elapsed());
        }
    }
    let whole = start.elapsed();
    if !contains(&seen, b"I'm") {
        bail!("{url}: the answer lacks the recorded text");
    }
    Ok(if first_token {
        first.context("no content delta in the stream")?
    } else {
        whole
    })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort_unstable();
    (
        samples[samples.len() / 2],
        samples[samples.len() * 99 / 100],
    )
}
