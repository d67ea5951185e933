//! One chaos stream: generations started, cut and resumed over random
//! transports and replicas, every event checked.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use gtl_client::proto::types::Content;
use gtl_client::proto::{Body, CompletionRequest, ErrorCode, Frame, Hello, Message, Resume, Role};
use gtl_client::{ConnectOpts, Connection, open_frames};

use crate::{Replicas, Tally};

/// How long one frame may take before the connection counts as lost.
const FRAME_WITHIN: Duration = Duration::from_secs(20);

/// A small deterministic generator (xorshift).
#[derive(Debug)]
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// An open connection after the handshake.
pub(crate) struct Peer {
    conn: Connection,
}

impl Peer {
    pub(crate) async fn open(url: &str, token: &str) -> Result<Self> {
        let opts = ConnectOpts::new([url])
            .with_token(token)
            .with_connect_timeout(Duration::from_secs(5));
        let conn = open_frames(url, &opts).await?;
        let mut peer = Self { conn };
        peer.send(Frame::control(
            0,
            Body::Hello(Box::new(Hello {
                versions: vec!["1.0".into()],
                token: token.to_owned(),
                client: "gtl-chaos".into(),
                ..Hello::default()
            })),
        ))
        .await?;
        match peer.recv().await?.and_then(|f| f.body) {
            Some(Body::Welcome(_)) => Ok(peer),
            other => bail!("hello answered with {other:?}"),
        }
    }

    pub(crate) async fn send(&mut self, frame: Frame) -> Result<()> {
        self.conn.write.write_frame(frame.as_ref())?;
        tokio::time::timeout(FRAME_WITHIN, self.conn.write.flush())
            .await
            .context("send timed out")??;
        Ok(())
    }

    /// The next frame; `None` when the connection ended.
    pub(crate) async fn recv(&mut self) -> Result<Option<Frame>> {
        match tokio::time::timeout(FRAME_WITHIN, self.conn.read.read_frame()).await {
            Err(_) => bail!("no frame within {} s", FRAME_WITHIN.as_secs()),
            Ok(Ok(frame)) => Ok(frame),
            Ok(Err(_)) => Ok(None),
        }
    }
}

/// A `chat.stream` (or with `stream` false, `chat.complete`) request on
/// call 1.
pub(crate) fn request(model: &str) -> Frame {
    Frame::control(
        1,
        Body::CompletionRequest(Box::new(CompletionRequest {
            model: model.to_owned(),
            stream: true,
            messages: vec![Message {
                role: Role::User as i32,
                content: Some(Content::Text("chaos, tell me everything twice".into())),
                ..Message::default()
            }],
            ..CompletionRequest::default()
        })),
    )
}

/// The events of one generation of `model`, received whole.
pub(crate) async fn reference(replicas: &Replicas, model: &str) -> Result<Vec<Body>> {
    let endpoints = replicas.read().await[0].clone().context("no replica")?;
    let url = endpoints
        .urls
        .iter()
        .find(|u| u.starts_with("tcp://"))
        .context("no tcp endpoint")?;
    let mut peer = Peer::open(url, &endpoints.token).await?;
    peer.send(request(model)).await?;
    let mut events = Vec::new();
    while let Some(frame) = peer.recv().await? {
        if frame.seq == 0 {
            continue;
        }
        let body = frame.body.context("an event without a body")?;
        let end = matches!(body, Body::Done(_) | Body::Error(_));
        events.push(body);
        if end {
            break;
        }
    }
    match events.last() {
        Some(Body::Done(_)) => Ok(events),
        other => bail!("the reference stream ended with {other:?}"),
    }
}

/// What one stream task runs with.
pub(crate) struct Run {
    pub(crate) replicas: Arc<Replicas>,
    pub(crate) tally: Arc<Tally>,
    pub(crate) reference: Arc<Vec<Body>>,
    pub(crate) model: String,
    pub(crate) swaps: u64,
    pub(crate) deadline: Instant,
    pub(crate) tokens: u64,
}

/// How a generation ended for its client.
enum Ended {
    Whole,
    Crash,
    /// The session never reached the store (the replica died before its
    /// first event was stored): nothing was delivered, nothing to check.
    NeverStored,
    Failed(String),
}

impl Run {
    pub(crate) async fn go(self, seed: u64) {
        let mut rng = Rng(seed);
        while self.tally.swaps.load(Ordering::Relaxed) < self.swaps
            && Instant::now() < self.deadline
        {
            self.tally.generations.fetch_add(1, Ordering::Relaxed);
            match self.generation(&mut rng).await {
                Ended::Whole => self.tally.completed.fetch_add(1, Ordering::Relaxed),
                Ended::Crash => self.tally.cut_by_crash.fetch_add(1, Ordering::Relaxed),
                Ended::NeverStored => 0,
                Ended::Failed(why) => {
                    self.tally.fail(why);
                    0
                }
            };
        }
    }

    /// A random live replica's random endpoint, and its token.
    async fn pick(&self, rng: &mut Rng) -> Option<(String, String)> {
        let live: Vec<_> = self
            .replicas
            .read()
            .await
            .iter()
            .flatten()
            .cloned()
            .collect();
        let replica = live.get(rng.below(live.len() as u64) as usize)?;
        let url = replica
            .urls
            .get(rng.below(replica.urls.len() as u64) as usize)?;
        Some((url.clone(), replica.token.clone()))
    }

    async fn generation(&self, rng: &mut Rng) -> Ended {
        let mut session: Option<(String, String)> = None;
        let mut last = 0u64;
        let mut attempts = 0;
        // About four cuts per generation.
        let cut_span = (self.tokens / 4).max(2);
        loop {
            if Instant::now() > self.deadline + Duration::from_secs(60) {
                return Ended::Failed(format!("session {session:?} unfinished at the time limit"));
            }
            attempts += 1;
            if attempts > 200 {
                return Ended::Failed(format!("session {session:?}: no replica answered"));
            }
            let Some((url, token)) = self.pick(rng).await else {
                // Every replica is restarting.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            let Ok(mut peer) = Peer::open(&url, &token).await else {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            let first = match &session {
                None => request(&self.model),
                Some((id, resume_token)) => Frame {
                    call_id: 1,
                    session_id: id.clone(),
                    seq: 0,
                    body: Some(Body::Resume(Resume {
                        after_seq: last,
                        resume_token: resume_token.clone(),
                    })),
                },
            };
            if peer.send(first).await.is_err() {
                continue;
            }
            let swaps_left = self.tally.swaps.load(Ordering::Relaxed) < self.swaps;
            let mut cut_after = swaps_left.then(|| 1 + rng.below(cut_span));
            loop {
                // Nothing more: the replica went away; resume elsewhere.
                let Ok(Some(frame)) = peer.recv().await else {
                    break;
                };
                if frame.call_id != 1 {
                    continue;
                }
                match (&frame.body, frame.seq) {
                    (Some(Body::Accepted(accepted)), _) => {
                        if session.is_none() {
                            session =
                                Some((frame.session_id.clone(), accepted.resume_token.clone()));
                        }
                        continue;
                    }
                    (Some(Body::Error(error)), 0) => {
                        let code = error.code();
                        if code == ErrorCode::ResumeNotFound && last == 0 {
                            return Ended::NeverStored;
                        }
                        if code == ErrorCode::SessionMoved {
                            // Only a replica whose claim lapsed while it
                            // still ran says this to a connected client.
                            self.tally.taken_over.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        return Ended::Failed(format!(
                            "session {session:?} on {url}: {code:?} {}",
                            error.message
                        ));
                    }
                    (_, 0) => continue,
                    _ => {}
                }
                if frame.seq <= last {
                    self.tally.doubled.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                if frame.seq > last + 1 {
                    self.tally
                        .lost
                        .fetch_add(frame.seq - last - 1, Ordering::Relaxed);
                }
                last = frame.seq;
                let body = frame.body.unwrap_or(Body::Ack(Default::default()));
                if let Some(end) = self.check(last, &body) {
                    return end;
                }
                if let Some(left) = &mut cut_after {
                    *left -= 1;
                    if *left == 0 {
                        self.tally.swaps.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
            }
            // Dropping the connection is the cut.
        }
    }

    /// Checks event `seq` against the reference; `Some` when it ends the
    /// generation.
    fn check(&self, seq: u64, body: &Body) -> Option<Ended> {
        let expected = self.reference.get(seq as usize - 1);
        if let Body::Error(error) = body
            && error.code() == ErrorCode::Internal
            && error.message.contains("interrupted")
        {
            // The driver died: the rest of the generation is not owed, but
            // nothing before it may be missing (checked by the seqs).
            return Some(Ended::Crash);
        }
        if expected != Some(body) {
            self.tally.changed.fetch_add(1, Ordering::Relaxed);
            return Some(Ended::Failed(format!(
                "seq {seq}: got {body:?}, expected {expected:?}"
            )));
        }
        match body {
            Body::Done(_) => Some(Ended::Whole),
            Body::Error(error) => Some(Ended::Failed(format!(
                "the generation failed: {:?} {}",
                error.code(),
                error.message
            ))),
            _ => None,
        }
    }
}
