//! GTL's chaos harness.
//!
//! Starts a `redis-server` and several `gtl-server` replicas sharing their
//! sessions through it, then runs concurrent streams from the echo
//! provider over random transports (Unix socket, TCP, WebSocket, SSE,
//! gRPC, QUIC). At random points a stream's connection is cut and the
//! stream resumed after its last event on another transport of another
//! replica (a *swap*); meanwhile replicas are killed (SIGKILL) and
//! restarted. Every event a stream receives is checked against the same
//! stream received whole: each must arrive once, in seq order, equal to the
//! original. A generation cut by a crash must end with the documented
//! `INTERNAL` "interrupted" error right after its last stored event.
//!
//! Bounded: the run stops after the asked number of swaps, or at its time
//! limit, whichever comes first.
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! let config = gtl_chaos::ChaosConfig::new("target/release/gtl-server".into());
//! let report = gtl_chaos::run(config).await?;
//! assert!(report.passed(), "{report}");
//! # Ok(())
//! # }
//! ```

pub mod figures;
mod replica;
mod stream;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use gtl_test::RedisServer;
use tokio::sync::RwLock;

use replica::Replica;

/// What to run.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ChaosConfig {
    /// The `gtl-server` binary.
    pub server: PathBuf,
    /// Replicas sharing one Redis.
    pub replicas: usize,
    /// Streams running at once.
    pub streams: usize,
    /// Swaps (cut, then resume elsewhere) before the run stops.
    pub swaps: u64,
    /// Time between two replica kills (`None`: no kills).
    pub kill_every: Option<Duration>,
    /// Tokens per generation, and the echo provider's delay before each.
    pub tokens: u32,
    /// Milliseconds before each token.
    pub delay_ms: u32,
    /// Seeds every random choice; printed so a run can be replayed.
    pub seed: u64,
    /// The run stops here even if the swaps are not all done.
    pub time_limit: Duration,
    /// Sample the replicas' resident memory this often (the soak).
    pub rss_every: Option<Duration>,
    /// The replicas' resume window (default: the server's).
    pub resume_window: Option<Duration>,
}

impl ChaosConfig {
    /// The full size: 10,000 swaps over 2 replicas, 32 streams, a kill
    /// every 2 s.
    pub fn new(server: PathBuf) -> Self {
        Self {
            server,
            replicas: 2,
            streams: 32,
            swaps: 10_000,
            kill_every: Some(Duration::from_secs(2)),
            tokens: 120,
            delay_ms: 2,
            seed: seed_from_clock(),
            time_limit: Duration::from_secs(600),
            rss_every: None,
            resume_window: None,
        }
    }

    /// The soak: steady streams with periodic resumes for `minutes`, no
    /// kills, the replicas' memory sampled.
    pub fn soak(server: PathBuf, minutes: u64) -> Self {
        let length = Duration::from_secs(minutes.max(1) * 60);
        Self {
            streams: 16,
            swaps: u64::MAX,
            kill_every: None,
            time_limit: length,
            rss_every: Some((length / 40).max(Duration::from_secs(5))),
            // Short, so that sessions expire within the run and the trend
            // shows whether memory levels off once they do.
            resume_window: Some(Duration::from_secs(30)),
            ..Self::new(server)
        }
    }

    /// A size for CI: a few hundred swaps and a few kills.
    pub fn small(server: PathBuf) -> Self {
        Self {
            streams: 8,
            swaps: 300,
            kill_every: Some(Duration::from_millis(500)),
            time_limit: Duration::from_secs(180),
            ..Self::new(server)
        }
    }
}

fn seed_from_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1
}

/// What a run found.
#[derive(Debug, Default, Clone)]
#[non_exhaustive]
pub struct Report {
    /// The seed of the run.
    pub seed: u64,
    /// Cuts followed by a resume elsewhere.
    pub swaps: u64,
    /// Generations started.
    pub generations: u64,
    /// Generations received whole, to their `done`.
    pub completed: u64,
    /// Generations ended by a replica crash with the documented error.
    pub cut_by_crash: u64,
    /// Events missing from a stream (a gap in its seqs, or a generation
    /// that ended without its remaining events).
    pub lost: u64,
    /// Events received twice.
    pub doubled: u64,
    /// Events that differ from the original stream's.
    pub changed: u64,
    /// Generations another replica took from a live driver (its claim
    /// lapsed while it ran: a stall longer than the lease).
    pub taken_over: u64,
    /// Replica kills.
    pub kills: u64,
    /// Anything else that went wrong, first few.
    pub failures: Vec<String>,
    /// How long the run took.
    pub elapsed: Duration,
    /// Seconds into the run, and the replicas' resident memory together.
    pub rss: Vec<(f64, u64)>,
}

impl Report {
    /// Nothing lost, doubled or changed, and no failure.
    pub fn passed(&self) -> bool {
        self.lost == 0 && self.doubled == 0 && self.changed == 0 && self.failures.is_empty()
    }

    /// The memory trend after the first quarter of the run (warm-up), in
    /// MiB per minute, by least squares; `None` with under 4 samples.
    pub fn rss_trend(&self) -> Option<f64> {
        let samples = &self.rss[self.rss.len() / 4..];
        if samples.len() < 4 {
            return None;
        }
        let n = samples.len() as f64;
        let mean_t = samples.iter().map(|s| s.0).sum::<f64>() / n;
        let mean_m = samples.iter().map(|s| s.1 as f64).sum::<f64>() / n;
        let (mut num, mut den) = (0.0, 0.0);
        for &(t, m) in samples {
            num += (t - mean_t) * (m as f64 - mean_m);
            den += (t - mean_t).powi(2);
        }
        (den > 0.0).then(|| num / den * 60.0 / f64::from(1 << 20))
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "seed {}: {} swaps, {} replica kills, {} generations in {:.1} s",
            self.seed,
            self.swaps,
            self.kills,
            self.generations,
            self.elapsed.as_secs_f64()
        )?;
        writeln!(
            f,
            "  {} received whole, {} ended by a crash with the documented error, {} taken \
             from a live replica",
            self.completed, self.cut_by_crash, self.taken_over
        )?;
        write!(
            f,
            "  events lost {}, doubled {}, changed {}; failures {}",
            self.lost,
            self.doubled,
            self.changed,
            self.failures.len()
        )?;
        if let (Some(first), Some(last)) = (self.rss.first(), self.rss.last()) {
            let mib = |b: u64| b as f64 / f64::from(1 << 20);
            write!(
                f,
                "\n  replicas' RSS: {:.1} MiB at {:.0} s, {:.1} MiB at {:.0} s ({} samples)",
                mib(first.1),
                first.0,
                mib(last.1),
                last.0,
                self.rss.len()
            )?;
            if let Some(trend) = self.rss_trend() {
                write!(f, "; trend after warm-up {trend:+.2} MiB per minute")?;
            }
        }
        for failure in &self.failures {
            write!(f, "\n  - {failure}")?;
        }
        Ok(())
    }
}

/// The live replicas, by slot (`None` while one restarts).
pub(crate) type Replicas = RwLock<Vec<Option<Arc<Endpoints>>>>;

/// What a client needs of a replica.
#[derive(Debug)]
pub(crate) struct Endpoints {
    pub(crate) urls: Vec<String>,
    pub(crate) token: String,
}

/// Counters the streams add to.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) swaps: AtomicU64,
    pub(crate) generations: AtomicU64,
    pub(crate) completed: AtomicU64,
    pub(crate) cut_by_crash: AtomicU64,
    pub(crate) lost: AtomicU64,
    pub(crate) doubled: AtomicU64,
    pub(crate) changed: AtomicU64,
    pub(crate) taken_over: AtomicU64,
    pub(crate) failures: std::sync::Mutex<Vec<String>>,
}

impl Tally {
    pub(crate) fn fail(&self, failure: String) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() < 20 {
            failures.push(failure);
        }
    }
}

/// Runs the harness: see the crate docs.
pub async fn run(config: ChaosConfig) -> Result<Report> {
    let started = Instant::now();
    let redis = RedisServer::start().context("starting redis-server")?;
    let dirs = tempfile::tempdir()?;
    let mut processes = Vec::new();
    let mut slots = Vec::new();
    for i in 0..config.replicas {
        let replica = Replica::start(
            &config.server,
            &dirs.path().join(format!("r{i}")),
            &redis.url(),
            config.resume_window,
        )
        .await?;
        slots.push(Some(Arc::new(Endpoints {
            urls: replica.endpoints.clone(),
            token: replica.token.clone(),
        })));
        processes.push(Some(replica));
    }
    let replicas: Arc<Replicas> = Arc::new(RwLock::new(slots));
    let tally = Arc::new(Tally::default());
    let model = format!("echo:tokens={},delay_ms={}", config.tokens, config.delay_ms);
    let reference = Arc::new(
        stream::reference(&replicas, &model)
            .await
            .context("the reference stream")?,
    );
    let deadline = started + config.time_limit;

    let mut streams = tokio::task::JoinSet::new();
    for i in 0..config.streams {
        let run = stream::Run {
            replicas: replicas.clone(),
            tally: tally.clone(),
            reference: reference.clone(),
            model: model.clone(),
            swaps: config.swaps,
            deadline,
            tokens: u64::from(config.tokens),
        };
        let seed = config
            .seed
            .wrapping_add((i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
            | 1;
        streams.spawn(run.go(seed));
    }

    // The killer: one replica at a time, restarted at once on its own data
    // dir, while the streams run.
    let mut kills = 0;
    let mut rng = stream::Rng(config.seed ^ 0x5bd1_e995);
    let mut done = false;
    let mut rss = Vec::new();
    let mut sample = tokio::time::interval(config.rss_every.unwrap_or(Duration::from_secs(3600)));
    while !done {
        let pause = config.kill_every.unwrap_or(Duration::from_secs(3600));
        tokio::select! {
            joined = streams.join_next() => done = joined.is_none(),
            _ = sample.tick(), if config.rss_every.is_some() => {
                let total = processes
                    .iter()
                    .flatten()
                    .filter_map(Replica::pid)
                    .map(rss_bytes)
                    .sum();
                rss.push((started.elapsed().as_secs_f64(), total));
            }
            () = tokio::time::sleep(pause), if config.kill_every.is_some() => {
                let slot = rng.below(config.replicas as u64) as usize;
                replicas.write().await[slot] = None;
                if let Some(process) = processes[slot].take() {
                    process.kill().await;
                    kills += 1;
                }
                let replica = Replica::start(
                    &config.server,
                    &dirs.path().join(format!("r{slot}")),
                    &redis.url(),
                    config.resume_window,
                )
                .await?;
                replicas.write().await[slot] = Some(Arc::new(Endpoints {
                    urls: replica.endpoints.clone(),
                    token: replica.token.clone(),
                }));
                processes[slot] = Some(replica);
            }
        }
    }
    for process in processes.into_iter().flatten() {
        process.kill().await;
    }
    let tally = Arc::try_unwrap(tally).unwrap_or_default();
    Ok(Report {
        seed: config.seed,
        swaps: tally.swaps.load(Ordering::Relaxed),
        generations: tally.generations.load(Ordering::Relaxed),
        completed: tally.completed.load(Ordering::Relaxed),
        cut_by_crash: tally.cut_by_crash.load(Ordering::Relaxed),
        lost: tally.lost.load(Ordering::Relaxed),
        doubled: tally.doubled.load(Ordering::Relaxed),
        changed: tally.changed.load(Ordering::Relaxed),
        taken_over: tally.taken_over.load(Ordering::Relaxed),
        kills,
        failures: tally.failures.into_inner().unwrap_or_default(),
        elapsed: started.elapsed(),
        rss,
    })
}

/// A process's resident memory, from /proc (0 when gone).
fn rss_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}
