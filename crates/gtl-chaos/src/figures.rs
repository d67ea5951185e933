//! Figures of the Redis backend against redb, over native TCP with the echo
//! provider: resume latency on the same replica and on another one,
//! `chat.complete` latency, and streamed events per second.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use gtl_client::proto::{Body, Frame, Resume};
use gtl_test::RedisServer;

use crate::replica::Replica;
use crate::stream::{Peer, request};

/// How many resumes are timed per kind.
const RESUMES: usize = 100;
/// How long `chat.complete` is timed per backend.
const COMPLETE_FOR: Duration = Duration::from_secs(5);
/// Connections calling `chat.complete` at once.
const CALLERS: usize = 4;
/// Streams and tokens per stream for the events-per-second figure.
const STREAMS: usize = 4;
const STREAM_TOKENS: u32 = 50_000;

/// Measures everything and returns a Markdown table.
pub async fn run(server: &Path) -> Result<String> {
    let redis = RedisServer::start().context("starting redis-server")?;
    let dirs = tempfile::tempdir()?;
    let a = Replica::start(server, &dirs.path().join("a"), &redis.url(), None).await?;
    let b = Replica::start(server, &dirs.path().join("b"), &redis.url(), None).await?;
    let local = Replica::start(server, &dirs.path().join("local"), "redb", None).await?;

    let same_redb = resumes(&local, &local).await?;
    let same = resumes(&a, &a).await?;
    let other = resumes(&a, &b).await?;
    let complete_redis = complete(&a).await?;
    let complete_redb = complete(&local).await?;
    let events_redis = events_per_second(&a).await?;
    let events_redb = events_per_second(&local).await?;
    for replica in [a, b, local] {
        replica.kill().await;
    }

    let mut out = String::new();
    writeln!(out, "| figure | redb (one machine) | Redis, 2 replicas |")?;
    writeln!(out, "|---|---|---|")?;
    writeln!(
        out,
        "| resume on the same replica, p50 / p99 | {} | {} |",
        pair(&same_redb),
        pair(&same)
    )?;
    writeln!(
        out,
        "| resume on another replica, p50 / p99 | — | {} |",
        pair(&other)
    )?;
    writeln!(
        out,
        "| `chat.complete` ({CALLERS} callers), p50 / p99 | {} | {} |",
        pair(&complete_redb.0),
        pair(&complete_redis.0)
    )?;
    writeln!(
        out,
        "| `chat.complete` calls per second | {:.0} | {:.0} |",
        complete_redb.1, complete_redis.1
    )?;
    writeln!(
        out,
        "| streamed events per second ({STREAMS} streams) | {:.0} | {:.0} |",
        events_redb, events_redis
    )?;
    Ok(out)
}

fn endpoint(replica: &Replica) -> Result<&str> {
    replica
        .endpoints
        .iter()
        .find(|u| u.starts_with("tcp://"))
        .map(String::as_str)
        .context("no tcp endpoint")
}

/// Time from sending `resume` to the first replayed event, for a stream
/// started on `start` (cut after three events) and resumed on `on` while it
/// still generates. Each sample is a fresh session, so a resume on another
/// replica includes loading it from Redis.
async fn resumes(start: &Replica, on: &Replica) -> Result<Vec<Duration>> {
    let mut times = Vec::with_capacity(RESUMES);
    for _ in 0..RESUMES {
        let mut peer = Peer::open(endpoint(start)?, &start.token).await?;
        peer.send(request("echo:tokens=40,delay_ms=10")).await?;
        let (mut session, mut token, mut last) = (String::new(), String::new(), 0);
        while last < 3 {
            let frame = peer.recv().await?.context("closed")?;
            match &frame.body {
                Some(Body::Accepted(accepted)) => {
                    session.clone_from(&frame.session_id);
                    token.clone_from(&accepted.resume_token);
                }
                _ if frame.seq > 0 => last = frame.seq,
                _ => {}
            }
        }
        drop(peer);
        let mut peer = Peer::open(endpoint(on)?, &on.token).await?;
        let resume = Frame {
            call_id: 1,
            session_id: session,
            seq: 0,
            body: Some(Body::Resume(Resume {
                // From the first event: there is something to replay at
                // once, whatever the generation does meanwhile.
                after_seq: 1,
                resume_token: token,
            })),
        };
        let sent = Instant::now();
        peer.send(resume).await?;
        loop {
            let frame = peer.recv().await?.context("closed")?;
            if frame.seq > 0 {
                times.push(sent.elapsed());
                break;
            }
            if let Some(Body::Error(error)) = frame.body {
                bail!("resume refused: {}", error.message);
            }
        }
    }
    Ok(times)
}

/// `chat.complete` latencies from [`CALLERS`] connections in a closed
/// loop, and the calls per second.
async fn complete(replica: &Replica) -> Result<(Vec<Duration>, f64)> {
    let url = endpoint(replica)?.to_owned();
    let mut callers = tokio::task::JoinSet::new();
    let started = Instant::now();
    for _ in 0..CALLERS {
        let (url, token) = (url.clone(), replica.token.clone());
        callers.spawn(async move {
            let mut times = Vec::new();
            while started.elapsed() < COMPLETE_FOR {
                let mut peer = Peer::open(&url, &token).await?;
                let mut unary = request("echo");
                if let Some(Body::CompletionRequest(request)) = &mut unary.body {
                    request.stream = false;
                }
                let sent = Instant::now();
                peer.send(unary).await?;
                while let Some(frame) = peer.recv().await? {
                    if matches!(frame.body, Some(Body::Done(_) | Body::Error(_))) {
                        break;
                    }
                }
                times.push(sent.elapsed());
            }
            Ok::<_, anyhow::Error>(times)
        });
    }
    let mut times = Vec::new();
    while let Some(joined) = callers.join_next().await {
        times.extend(joined??);
    }
    let rate = times.len() as f64 / started.elapsed().as_secs_f64();
    Ok((times, rate))
}

/// Events per second received over [`STREAMS`] streams at once.
async fn events_per_second(replica: &Replica) -> Result<f64> {
    let url = endpoint(replica)?.to_owned();
    let started = Instant::now();
    let mut streams = tokio::task::JoinSet::new();
    for _ in 0..STREAMS {
        let (url, token) = (url.clone(), replica.token.clone());
        streams.spawn(async move {
            let mut peer = Peer::open(&url, &token).await?;
            peer.send(request(&format!("echo:tokens={STREAM_TOKENS}")))
                .await?;
            let mut events = 0u64;
            while let Some(frame) = peer.recv().await? {
                if frame.seq > 0 {
                    events += 1;
                }
                if matches!(frame.body, Some(Body::Done(_) | Body::Error(_))) {
                    break;
                }
            }
            Ok::<_, anyhow::Error>(events)
        });
    }
    let mut events = 0;
    while let Some(joined) = streams.join_next().await {
        events += joined??;
    }
    Ok(events as f64 / started.elapsed().as_secs_f64())
}

/// `p50 / p99` of `times`, in milliseconds.
fn pair(times: &[Duration]) -> String {
    let mut sorted = times.to_vec();
    sorted.sort();
    let at = |q: f64| {
        let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
        sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    format!("{:.2} / {:.2} ms", at(0.5), at(0.99))
}
