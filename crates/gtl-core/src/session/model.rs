//! Randomized model test: random interleavings of provider events, client
//! acks, disconnects, resumes, cancels and time, checked against a model of
//! the client.
//!
//! The client keeps every event it receives. On a resume at `k` it truncates
//! its view to `seq ≤ k` and expects `k + 1` next. Every event it receives
//! must be exactly the next one of the session's log, so a skipped, doubled
//! or reordered event fails at once; at the end (unless the session expired)
//! a final resume and drain must leave the client holding the whole log:
//! the provider's events in order, plus the `CANCELLED` error after a cancel.

use std::time::{Duration, Instant};

use gtl_proto::{Body, Done, ErrorCode, FunctionCall, Phase, Token, ToolCall, Usage};
use proptest::collection::vec;
use proptest::prelude::*;

use super::*;

const WINDOW: Duration = Duration::from_secs(10);
const OWNER: &str = "alice";
const TOKEN: &str = "rt_secret";

#[derive(Debug, Clone)]
enum Op {
    /// The provider produces a token (if the engine would pull now).
    Token(String),
    /// The provider produces a tool call.
    ToolCall,
    /// The provider reports usage.
    Usage,
    /// The provider ends the generation.
    Done,
    /// The client reads up to this many events; 0 reads all.
    Drain(usize),
    /// The client acks: what it has, more than it has, or less.
    Ack(u8),
    /// The client's connection drops.
    Disconnect,
    /// A late close from an old connection.
    StaleDisconnect(u8),
    /// The client resumes at a valid point between the oldest retained
    /// event and the last one it saw.
    Resume(u8),
    /// A resume that must fail: wrong owner, wrong token, too new, too old.
    BadResume(u8, u8),
    /// The client cancels.
    Cancel,
    /// The engine switches `session.pipe` mode on or off.
    Pipe(bool),
    /// Time passes; the driver may or may not call `handle_timeout`.
    Advance { secs: u64, call_timeout: bool },
}

/// Random token text of 0 to 7 characters, ASCII or not, from one `u64`
/// (cheaper to generate and shrink than a vector of characters).
fn text() -> impl Strategy<Value = String> {
    const ALPHABET: [char; 16] = [
        'a', 'b', 'z', ' ', '\n', '"', '\\', '{', '0', 'é', 'ß', 'Ж', '語', '🦀', '\u{0}',
        '\u{fffd}',
    ];
    any::<u64>().prop_map(|bits| {
        let len = (bits & 7) as usize;
        (0..len)
            .map(|i| ALPHABET[((bits >> (4 * i + 3)) & 15) as usize])
            .collect()
    })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        24 => text().prop_map(Op::Token),
        2 => Just(Op::ToolCall),
        2 => Just(Op::Usage),
        1 => Just(Op::Done),
        12 => (0usize..6).prop_map(Op::Drain),
        5 => any::<u8>().prop_map(Op::Ack),
        4 => Just(Op::Disconnect),
        1 => any::<u8>().prop_map(Op::StaleDisconnect),
        4 => any::<u8>().prop_map(Op::Resume),
        2 => (0u8..4, any::<u8>()).prop_map(|(kind, n)| Op::BadResume(kind, n)),
        1 => Just(Op::Cancel),
        1 => any::<bool>().prop_map(Op::Pipe),
        3 => (0u64..12, any::<bool>())
            .prop_map(|(secs, call_timeout)| Op::Advance { secs, call_timeout }),
    ]
}

fn config() -> impl Strategy<Value = SessionConfig> {
    (0usize..600, 1usize..400).prop_map(|(retained, pending)| {
        SessionConfig::default()
            .with_resume_window(WINDOW)
            .with_max_retained_bytes(retained)
            .with_max_pending_bytes(pending)
    })
}

/// The model's view of the session's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Life {
    Streaming,
    Finished,
    Cancelled,
    Expired,
}

struct Harness {
    session: Session,
    config: SessionConfig,
    now: Instant,
    life: Life,
    /// Every event the session logged, in order (index = seq - 1).
    expected: Vec<Body>,
    /// What the client holds; always a prefix of `expected`.
    received: Vec<Body>,
    attach: Option<AttachId>,
    stale: Vec<AttachId>,
    acked: u64,
    window_start: Instant,
    output_started: bool,
    pipe: bool,
    stop_expected: bool,
}

impl Harness {
    fn new(config: SessionConfig) -> Self {
        let now = Instant::now();
        let session = Session::new("s", OWNER, TOKEN, config.clone(), now);
        let attach = session.attached();
        assert!(attach.is_some());
        Self {
            session,
            config,
            now,
            life: Life::Streaming,
            expected: Vec::new(),
            received: Vec::new(),
            attach,
            stale: Vec::new(),
            acked: 0,
            window_start: now,
            output_started: false,
            pipe: false,
            stop_expected: false,
        }
    }

    fn deadline(&self) -> Option<Instant> {
        match self.life {
            Life::Expired => None,
            Life::Streaming if self.attach.is_some() => None,
            _ => Some(self.window_start + WINDOW),
        }
    }

    /// What every `handle_*(now, …)` does first.
    fn expire_if_due(&mut self) {
        if self.deadline().is_some_and(|deadline| self.now >= deadline) {
            self.stop_expected |= self.life == Life::Streaming;
            self.life = Life::Expired;
            self.stale.extend(self.attach.take());
        }
    }

    fn sent(&self) -> usize {
        if self.life == Life::Expired {
            self.expected.len()
        } else {
            self.received.len()
        }
    }

    fn bytes(events: &[Body]) -> usize {
        events.iter().map(event_cost).sum()
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Token(text) => self.provider(Body::Token(Token { text })),
            Op::ToolCall => self.provider(Body::ToolCall(ToolCall {
                id: format!("call_{}", self.expected.len()),
                function: Some(FunctionCall {
                    name: "get_weather".into(),
                    arguments: r#"{"city":"Oslo"}"#.into(),
                }),
            })),
            Op::Usage => self.provider(Body::Usage(Usage {
                tokens_in: 10,
                tokens_out: self.expected.len() as u64,
                cost: 0.001,
                cached_tokens: 0,
            })),
            Op::Done => self.provider(Body::Done(Done {
                finish_reason: "stop".into(),
            })),
            Op::Drain(max) => self.drain(if max == 0 { usize::MAX } else { max }),
            Op::Ack(n) => self.ack(n),
            Op::Disconnect => {
                if let Some(attach) = self.attach {
                    self.expire_if_due();
                    let detached = self.attach.is_some();
                    assert_eq!(self.session.handle_disconnect(self.now, attach), detached);
                    if detached {
                        self.stale.push(attach);
                        self.attach = None;
                        self.window_start = self.now;
                    }
                }
            }
            Op::StaleDisconnect(n) => {
                if !self.stale.is_empty() {
                    let attach = self.stale[usize::from(n) % self.stale.len()];
                    self.expire_if_due();
                    assert!(!self.session.handle_disconnect(self.now, attach));
                }
            }
            Op::Resume(n) => self.resume(n),
            Op::BadResume(kind, n) => self.bad_resume(kind, n),
            Op::Cancel => {
                self.expire_if_due();
                let got = self.session.handle_cancel(self.now, "stop");
                if self.life == Life::Streaming {
                    let phase = if self.output_started {
                        Phase::AfterFirstToken
                    } else {
                        Phase::BeforeFirstToken
                    };
                    self.expected.push(Body::Error(gtl_proto::Error {
                        code: ErrorCode::Cancelled as i32,
                        message: "stop".into(),
                        retryable: false,
                        phase: phase as i32,
                        retry_after_ms: 0,
                    }));
                    assert_eq!(got, Some(self.expected.len() as u64));
                    self.life = Life::Cancelled;
                    self.window_start = self.now;
                    self.stop_expected = true;
                } else {
                    assert_eq!(got, None);
                }
            }
            Op::Pipe(pipe) => {
                self.pipe = pipe;
                self.session.set_pipe(pipe);
            }
            Op::Advance { secs, call_timeout } => {
                self.now += Duration::from_secs(secs);
                if call_timeout {
                    self.expire_if_due();
                    self.session.handle_timeout(self.now);
                }
            }
        }
    }

    fn provider(&mut self, body: Body) {
        // The engine pulls from the provider only while the session wants it.
        if self.life == Life::Streaming && !self.session.wants_events() {
            return;
        }
        self.expire_if_due();
        let turn_done = self.pipe && matches!(body, Body::Done(_));
        let terminal = body.is_terminal() && !turn_done;
        let output = matches!(body, Body::Token(_) | Body::ToolCall(_));
        let got = self.session.handle_event(self.now, body.clone());
        match self.life {
            Life::Streaming => {
                self.expected.push(body);
                assert_eq!(got, Ok(self.expected.len() as u64));
                self.output_started = (self.output_started || output) && !turn_done;
                if terminal {
                    self.life = Life::Finished;
                    self.window_start = self.now;
                }
            }
            Life::Finished | Life::Cancelled => assert_eq!(got, Err(SessionError::Finished)),
            Life::Expired => assert_eq!(got, Err(SessionError::Expired)),
        }
    }

    fn drain(&mut self, max: usize) {
        for _ in 0..max {
            let Some(transmit) = self.session.poll_transmit() else {
                // Nothing more only when detached or when the client has all.
                if self.attach.is_some() {
                    assert_eq!(self.received.len(), self.expected.len(), "transmit stalled");
                }
                return;
            };
            assert!(self.attach.is_some(), "sent while detached");
            let seq = self.received.len() as u64 + 1;
            assert_eq!(transmit.seq, seq, "seq must be the previous one + 1");
            assert_eq!(transmit.session_id, "s");
            assert_eq!(Some(transmit.body), self.expected.get(self.received.len()));
            self.received.push(transmit.body.clone());
        }
    }

    fn ack(&mut self, n: u8) {
        if self.attach.is_none() {
            return;
        }
        let have = self.received.len() as u64;
        let seq = match n % 4 {
            0 | 1 => have,
            2 => u64::from(n) + have,
            _ => u64::from(n) % (have + 1),
        };
        self.expire_if_due();
        let got = self.session.handle_ack(self.now, seq);
        if self.life != Life::Expired {
            self.acked = self.acked.max(seq.min(have));
        }
        assert_eq!(got, self.acked);
    }

    fn resume(&mut self, n: u8) {
        self.expire_if_due();
        if self.life == Life::Expired {
            let got = self.session.handle_resume(self.now, OWNER, TOKEN, 0);
            assert_eq!(got, Err(ResumeError::Expired));
            return;
        }
        let low = self.session.min_after_seq();
        let high = self.received.len() as u64;
        assert!(low <= high, "an event the client never got was forgotten");
        let after_seq = low + u64::from(n) % (high - low + 1);
        let attach = self
            .session
            .handle_resume(self.now, OWNER, TOKEN, after_seq)
            .unwrap_or_else(|err| panic!("resume at {after_seq}: {err}"));
        assert!(!self.stale.contains(&attach) && Some(attach) != self.attach);
        self.stale.extend(self.attach.replace(attach));
        self.received
            .truncate(self.replay_from(after_seq, low) as usize);
        self.window_start = self.now;
    }

    /// Where a resume at `after_seq` replays from: after it, except at the
    /// terminal event of a finished session, which comes again.
    fn replay_from(&self, after_seq: u64, low: u64) -> u64 {
        let ended = matches!(self.life, Life::Finished | Life::Cancelled);
        if ended && after_seq == self.expected.len() as u64 && after_seq > low {
            after_seq - 1
        } else {
            after_seq
        }
    }

    fn bad_resume(&mut self, kind: u8, n: u8) {
        let last = self.expected.len() as u64;
        let min = self.session.min_after_seq();
        let (owner, token, after_seq) = match kind {
            0 => ("mallory", TOKEN, 0),
            1 => (OWNER, "rt_guess", 0),
            2 => (OWNER, TOKEN, last + 1 + u64::from(n)),
            _ if min > 0 => (OWNER, TOKEN, u64::from(n) % min),
            _ => return,
        };
        self.expire_if_due();
        let got = self
            .session
            .handle_resume(self.now, owner, token, after_seq);
        let err = got.expect_err("a bad resume must fail");
        let code = match (kind, self.life) {
            (0 | 1, _) => ErrorCode::PermissionDenied,
            (_, Life::Expired) => ErrorCode::ResumeWindowExceeded,
            (2, _) => ErrorCode::InvalidRequest,
            _ => ErrorCode::ResumeWindowExceeded,
        };
        assert_eq!(err.code(), code, "{err}");
    }

    /// Compares everything observable with the model after each step.
    fn check(&mut self) {
        let expected_command = self.stop_expected.then_some(Command::StopProvider);
        assert_eq!(self.session.poll_command(), expected_command);
        self.stop_expected = false;
        let s = &self.session;

        let phase = if self.output_started {
            Phase::AfterFirstToken
        } else {
            Phase::BeforeFirstToken
        };
        assert_eq!(self.session.phase(), phase);
        let state = match self.life {
            Life::Streaming => State::Streaming,
            Life::Finished => State::Finished,
            Life::Cancelled => State::Cancelled,
            Life::Expired => State::Expired,
        };
        assert_eq!(s.state(), state);
        assert_eq!(s.attached(), self.attach);
        assert_eq!(s.poll_timeout(), self.deadline());
        assert_eq!(s.last_seq(), self.expected.len() as u64);
        assert_eq!(s.acked_seq(), self.acked);
        let sent = self.sent();
        assert_eq!(s.sent_seq(), sent as u64);

        let pending = Self::bytes(&self.expected[sent..]);
        assert_eq!(s.pending_bytes(), pending);
        let wants = self.life == Life::Streaming && pending < self.config.max_pending_bytes;
        assert_eq!(s.wants_events(), wants);

        let min = s.min_after_seq();
        if self.life == Life::Expired {
            assert_eq!(s.retained_bytes(), 0);
            return;
        }
        // Everything acked is forgotten (but a finished session's terminal
        // event); nothing undelivered is.
        let last = self.expected.len() as u64;
        let ended = matches!(self.life, Life::Finished | Life::Cancelled);
        let forgotten = if ended && self.acked == last {
            last - 1
        } else {
            self.acked
        };
        assert!(
            forgotten <= min && min <= sent as u64,
            "acked {} min {min}",
            self.acked
        );
        let retained = Self::bytes(&self.expected[min as usize..]);
        assert_eq!(s.retained_bytes(), retained);
        assert_eq!(
            s.retained_events().len(),
            self.expected.len() - min as usize
        );
        // Over the bound, only undelivered events (and the one just sent) remain.
        assert!(
            retained <= self.config.max_retained_bytes || min + 1 >= sent as u64,
            "retained {retained} over the bound with delivered events left"
        );
    }

    /// The client resumes one last time and reads everything.
    fn finish(mut self) {
        self.expire_if_due();
        if self.life == Life::Expired {
            let got = self.session.handle_resume(self.now, OWNER, TOKEN, 0);
            assert_eq!(
                got.map_err(|e| e.code()),
                Err(ErrorCode::ResumeWindowExceeded)
            );
            return;
        }
        let have = self.received.len() as u64;
        let low = self.session.min_after_seq();
        let attach = self
            .session
            .handle_resume(self.now, OWNER, TOKEN, have)
            .expect("final resume");
        self.stale.extend(self.attach.replace(attach));
        self.received.truncate(self.replay_from(have, low) as usize);
        self.window_start = self.now;
        self.drain(usize::MAX);
        self.check();
        assert_eq!(
            self.received, self.expected,
            "the client must hold the whole log"
        );
        if self.life == Life::Cancelled {
            let last = self.received.last().expect("a cancel logs an event");
            assert!(matches!(last, Body::Error(e) if e.code == ErrorCode::Cancelled as i32));
        }
        if self.life == Life::Finished {
            assert!(self.received.last().is_some_and(Body::is_terminal));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 10_000,
        // Failures print the minimal case; no regression files in the tree.
        failure_persistence: None,
        // ChaCha dominates the run time in debug builds; XorShift is plenty
        // for test-case generation.
        rng_algorithm: proptest::test_runner::RngAlgorithm::XorShift,
        ..ProptestConfig::default()
    })]

    #[test]
    fn session_matches_the_client_model(config in config(), ops in vec(op(), 1..40)) {
        let mut harness = Harness::new(config);
        for op in ops {
            harness.apply(op);
            harness.check();
        }
        harness.finish();
    }
}
