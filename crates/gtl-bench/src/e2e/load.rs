//! The open-loop load generator: requests leave at a fixed arrival rate
//! whether or not earlier ones have finished, and every latency is
//! measured from the moment its request was *meant* to leave, so a stalled
//! server shows up in the figures instead of slowing the generator
//! (coordinated omission). HTTP/1.1 over a pool of keep-alive connections,
//! or HTTP/2 (h2c) multiplexed over a few.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::{http1, http2};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, body::Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// HTTP version and connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Http {
    /// HTTP/1.1: one request at a time per connection.
    H1(usize),
    /// h2c: requests multiplexed over this many connections.
    H2(usize),
}

/// What to send.
#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) addr: SocketAddr,
    pub(crate) path: String,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) body: Bytes,
}

/// What one run measured, in nanoseconds.
pub(crate) struct Figures {
    /// Intended send → whole response.
    pub(crate) latency: Histogram<u64>,
    /// Intended send → first frame carrying a token.
    pub(crate) first_token: Histogram<u64>,
    /// Between consecutive frames carrying tokens.
    pub(crate) gaps: Histogram<u64>,
    /// Token texts received.
    pub(crate) tokens: u64,
    pub(crate) completed: u64,
    pub(crate) errors: u64,
    /// First send to last completion.
    pub(crate) elapsed: Duration,
}

impl Figures {
    fn new() -> Self {
        let histogram = || Histogram::new_with_bounds(1_000, 120_000_000_000, 3).expect("bounds");
        Self {
            latency: histogram(),
            first_token: histogram(),
            gaps: histogram(),
            tokens: 0,
            completed: 0,
            errors: 0,
            elapsed: Duration::ZERO,
        }
    }

    /// Completed requests per second.
    pub(crate) fn rate(&self) -> f64 {
        self.completed as f64 / self.elapsed.as_secs_f64()
    }
}

/// Connections to one server.
pub(crate) struct Pool {
    addr: SocketAddr,
    idle: Mutex<Vec<http1::SendRequest<Full<Bytes>>>>,
    free: Semaphore,
    h2: Vec<http2::SendRequest<Full<Bytes>>>,
    next: AtomicUsize,
}

impl Pool {
    pub(crate) async fn connect(addr: SocketAddr, http: Http) -> Result<Arc<Self>> {
        let (mut idle, mut h2, free) = (
            Vec::new(),
            Vec::new(),
            match http {
                Http::H1(n) => n,
                Http::H2(_) => 0,
            },
        );
        match http {
            Http::H1(n) => {
                for _ in 0..n {
                    idle.push(h1_connection(addr).await?);
                }
            }
            Http::H2(n) => {
                for _ in 0..n {
                    let io = TokioIo::new(tcp(addr).await?);
                    let (sender, connection) = http2::Builder::new(TokioExecutor::new())
                        .initial_connection_window_size(16 << 20)
                        .initial_stream_window_size(1 << 20)
                        .max_concurrent_reset_streams(0)
                        .handshake(io)
                        .await?;
                    tokio::spawn(connection);
                    h2.push(sender);
                }
            }
        }
        Ok(Arc::new(Self {
            addr,
            idle: Mutex::new(idle),
            free: Semaphore::new(free),
            h2,
            next: AtomicUsize::new(0),
        }))
    }

    /// Sends `request` and reads the whole response, noting when each
    /// frame carrying a token arrived.
    async fn exchange(&self, target: &Target, marks: &mut Vec<(Instant, u32)>) -> Result<()> {
        let request = build(target)?;
        if self.h2.is_empty() {
            let _permit = self.free.acquire().await?;
            let idle = self.idle.lock().expect("pool").pop();
            let mut sender = idle.context("no connection")?;
            if sender.ready().await.is_err() {
                sender = h1_connection(self.addr).await?;
            }
            let response = sender.send_request(request).await;
            let read = match response {
                Ok(response) => read(response, marks).await,
                Err(e) => Err(e.into()),
            };
            let sender = if read.is_ok() {
                sender
            } else {
                h1_connection(self.addr).await?
            };
            self.idle.lock().expect("pool").push(sender);
            read
        } else {
            let i = self.next.fetch_add(1, Ordering::Relaxed) % self.h2.len();
            let mut sender = self.h2[i].clone();
            sender.ready().await?;
            let response = sender.send_request(request).await?;
            read(response, marks).await
        }
    }
}

async fn tcp(addr: SocketAddr) -> Result<TcpStream> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

async fn h1_connection(addr: SocketAddr) -> Result<http1::SendRequest<Full<Bytes>>> {
    let (sender, connection) = http1::handshake(TokioIo::new(tcp(addr).await?)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

fn build(target: &Target) -> Result<Request<Full<Bytes>>> {
    let mut request = Request::post(target.path.as_str())
        .header(hyper::header::HOST, target.addr.to_string())
        .header(hyper::header::CONTENT_TYPE, "application/json");
    for (name, value) in &target.headers {
        request = request.header(name, value);
    }
    Ok(request.body(Full::new(target.body.clone()))?)
}

async fn read(response: Response<Incoming>, marks: &mut Vec<(Instant, u32)>) -> Result<()> {
    if !response.status().is_success() {
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        bail!("{status}: {}", String::from_utf8_lossy(&body));
    }
    let finder = memchr::memmem::Finder::new(super::mock::TOKEN.trim_end());
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            let tokens = finder.find_iter(&data).count() as u32;
            if tokens > 0 {
                marks.push((Instant::now(), tokens));
            }
        }
    }
    Ok(())
}

/// How a run paces its requests.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Pace {
    /// Open loop: `count` requests at `per_second`.
    Rate { per_second: u64, count: u64 },
    /// Closed loop: `workers` requests always in flight, for `time`.
    Saturate { workers: usize, time: Duration },
}

/// What every request of a run shares.
struct Run {
    pool: Arc<Pool>,
    target: Target,
    figures: Mutex<Figures>,
    failures: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Run {
    /// One request, meant to leave at `intended`.
    async fn one(self: Arc<Self>, intended: Instant) {
        let mut marks = Vec::new();
        match self.pool.exchange(&self.target, &mut marks).await {
            Ok(()) => record(&self.figures, intended, &marks),
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                let mut first = self.first_error.lock().expect("error");
                first.get_or_insert(format!("{e:#}"));
            }
        }
    }
}

/// Runs `pace` against `target` over `pool`.
pub(crate) async fn run(pool: &Arc<Pool>, target: &Target, pace: Pace) -> Result<Figures> {
    let run = Arc::new(Run {
        pool: pool.clone(),
        target: target.clone(),
        figures: Mutex::new(Figures::new()),
        failures: AtomicU64::new(0),
        first_error: Mutex::new(None),
    });
    let start = Instant::now();
    match pace {
        Pace::Rate { per_second, count } => {
            let each = run.clone();
            for task in paced(per_second, count, move |at| each.clone().one(at)).await? {
                task.await?;
            }
        }
        Pace::Saturate { workers, time } => {
            let stop = start + time;
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..workers {
                let run = run.clone();
                tasks.spawn(async move {
                    while Instant::now() < stop {
                        run.clone().one(Instant::now()).await;
                    }
                });
            }
            while tasks.join_next().await.is_some() {}
        }
    }
    let run = Arc::try_unwrap(run).map_err(|_| anyhow::anyhow!("a request outlived its run"))?;
    let mut figures = run.figures.into_inner().expect("figures");
    figures.elapsed = start.elapsed();
    figures.errors = run.failures.load(Ordering::Relaxed);
    if let Some(error) = run.first_error.into_inner().expect("error") {
        eprintln!(
            "gtl-load: {} of the requests failed; the first: {error}",
            figures.errors
        );
    }
    Ok(figures)
}

fn record(figures: &Mutex<Figures>, intended: Instant, marks: &[(Instant, u32)]) {
    let done = Instant::now();
    let mut figures = figures.lock().expect("figures");
    figures.completed += 1;
    figures.latency.saturating_record(nanos(done - intended));
    if let Some((first, _)) = marks.first() {
        figures
            .first_token
            .saturating_record(nanos(*first - intended));
    }
    for pair in marks.windows(2) {
        figures.gaps.saturating_record(nanos(pair[1].0 - pair[0].0));
    }
    figures.tokens += marks.iter().map(|(_, n)| u64::from(*n)).sum::<u64>();
}

/// Starts `count` calls of `f`, `per_second`, each given its intended
/// start. The pacing runs on a thread of its own: tokio's timer ticks in
/// milliseconds, which would send requests up to a millisecond late (and
/// charge that to the server), while a thread's sleep wakes within tens of
/// microseconds and costs no spinning core.
pub(crate) async fn paced<F, Fut>(
    per_second: u64,
    count: u64,
    f: F,
) -> Result<Vec<tokio::task::JoinHandle<Fut::Output>>>
where
    F: Fn(Instant) -> Fut + Send + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    let handle = tokio::runtime::Handle::current();
    let interval = Duration::from_nanos(1_000_000_000 / per_second.max(1));
    Ok(tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        (0..count)
            .map(|i| {
                let intended = start + interval * u32::try_from(i).unwrap_or(u32::MAX);
                if let Some(wait) = intended.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                handle.spawn(f(intended))
            })
            .collect()
    })
    .await?)
}

pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
