//! Many streams open at once: each is a `chat.stream` over the native TCP
//! transport (a thousand to a connection, as a multiplexing client or a
//! fleet behind a proxy would send them) to the mock's slow drip, relayed
//! over one h2c connection upstream. The figures: the gateway's memory and
//! CPU with every stream open, and every token accounted for.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use futures::StreamExt as _;
use gtl_client::proto::{Body, CompletionRequest};
use gtl_client::{ConnectOpts, connect, user_message};
use tokio::sync::{Notify, Semaphore};

use super::gateway::Gateway;

/// Streams per client connection.
const PER_CONNECTION: usize = 1_000;
/// Chunks each stream gets: one at once, the rest a drip interval apart.
const CHUNKS: u64 = 3;
/// Streams being opened at once.
const OPENING: usize = 1_000;

/// What holding `streams` open measured.
pub(crate) struct Held {
    pub(crate) streams: usize,
    /// The most streams open (first token received, end not yet) at once.
    pub(crate) peak_open: usize,
    pub(crate) open_time: Duration,
    pub(crate) rss_idle: u64,
    pub(crate) rss_peak: u64,
    pub(crate) open_files: usize,
    /// Gateway CPU over the quiet hold window, as a share of one core.
    pub(crate) hold_cpu: f64,
    pub(crate) tokens_expected: u64,
    pub(crate) tokens_received: u64,
    pub(crate) failed: u64,
}

#[derive(Default)]
struct Counters {
    opened: AtomicUsize,
    finished: AtomicUsize,
    tokens: AtomicU64,
    failed: AtomicU64,
    first_error: std::sync::Mutex<Option<String>>,
    changed: Notify,
}

pub(crate) async fn hold(gateway: &Gateway, streams: usize, drip: Duration) -> Result<Held> {
    let rss_idle = gateway.rss()?;
    let tcp = gateway.endpoint("tcp://")?.to_owned();
    let mut clients = Vec::new();
    for _ in 0..streams.div_ceil(PER_CONNECTION) {
        let opts = ConnectOpts::new([tcp.clone()]).with_token(gateway.token.clone());
        clients.push(connect(opts).await?);
    }
    let request = CompletionRequest {
        model: format!("openai/mock-{CHUNKS}x{}", drip.as_millis()),
        messages: vec![user_message("drip")],
        stream: true,
        ..CompletionRequest::default()
    };
    let counters = Arc::new(Counters::default());
    let opening = Arc::new(Semaphore::new(OPENING));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..streams {
        let permit = opening.clone().acquire_owned().await?;
        let client = clients[i % clients.len()].clone();
        let (request, counters) = (request.clone(), counters.clone());
        tasks.spawn(async move {
            let mut permit = Some(permit);
            let mut tokens = 0;
            let outcome: Result<()> = async {
                let mut events = client.stream(request).await?;
                while let Some(event) = events.next().await {
                    if matches!(event?.body, Body::Token(_)) {
                        tokens += 1;
                        if permit.take().is_some() {
                            counters.opened.fetch_add(1, Ordering::Relaxed);
                            counters.changed.notify_one();
                        }
                    }
                }
                Ok(())
            }
            .await;
            drop(permit);
            counters.tokens.fetch_add(tokens, Ordering::Relaxed);
            if let Err(e) = outcome {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = counters.first_error.lock().expect("first error");
                first.get_or_insert_with(|| format!("{e:#}"));
            }
            counters.finished.fetch_add(1, Ordering::Relaxed);
            counters.changed.notify_one();
        });
    }
    // Wait until every stream has its first token (or has failed).
    let mut peak_open = 0;
    loop {
        let opened = counters.opened.load(Ordering::Relaxed);
        let finished = counters.finished.load(Ordering::Relaxed);
        peak_open = peak_open.max(opened.saturating_sub(finished));
        if opened + counters.failed.load(Ordering::Relaxed) as usize >= streams
            || finished >= streams
        {
            break;
        }
        if tokio::time::timeout(Duration::from_secs(120), counters.changed.notified())
            .await
            .is_err()
        {
            bail!("streams stopped opening ({opened} of {streams})");
        }
    }
    let open_time = start.elapsed();
    // The quiet part: every stream open, the drip between two chunks.
    let window = (drip / 3).min(Duration::from_secs(5));
    let cpu_before = gateway.cpu()?;
    tokio::time::sleep(window).await;
    let hold_cpu = gateway.cpu()?.saturating_sub(cpu_before).as_secs_f64() / window.as_secs_f64();
    let rss_peak = gateway.rss()?;
    let open_files = gateway.open_files();
    let opened_now = counters.opened.load(Ordering::Relaxed);
    peak_open = peak_open.max(opened_now.saturating_sub(counters.finished.load(Ordering::Relaxed)));
    let limit = drip * (CHUNKS as u32 + 2) + Duration::from_secs(60);
    if tokio::time::timeout(limit, async { while tasks.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        bail!("streams still open {limit:?} after the last one opened");
    }
    if let Some(error) = counters.first_error.lock().expect("first error").take() {
        eprintln!(
            "gtl-load: {} streams failed; the first: {error}",
            counters.failed.load(Ordering::Relaxed)
        );
    }
    Ok(Held {
        streams,
        peak_open,
        open_time,
        rss_idle,
        rss_peak,
        open_files,
        hold_cpu,
        tokens_expected: CHUNKS * streams as u64,
        tokens_received: counters.tokens.load(Ordering::Relaxed),
        failed: counters.failed.load(Ordering::Relaxed),
    })
}
