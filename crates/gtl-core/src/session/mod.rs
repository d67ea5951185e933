//! The session machine: sequence numbers, the retained event log, resume,
//! cancel, expiry and backpressure, with no IO and no clock.
//!
//! Like `quinn_proto::Connection`, a [`Session`] is driven from outside:
//! inputs are `handle_*(now, …)` calls, outputs are drained with `poll_*()`.
//! The caller passes the time in, so tests drive it deterministically with
//! virtual time.
//!
//! Memory is bounded two ways, counted in what the kept events cost in
//! memory ([`event_cost`]). Events the client has not acknowledged are
//! retained for resume up to [`SessionConfig::max_retained_bytes`]; beyond
//! that the oldest already-delivered ones are evicted (a resume that needs
//! them fails with `RESUME_WINDOW_EXCEEDED`). Events not yet delivered are
//! never evicted; instead [`Session::wants_events`] turns false once they
//! reach [`SessionConfig::max_pending_bytes`], and the engine stops pulling
//! from the provider until the client catches up.
//!
//! A session can also hold events back until they are durable
//! ([`Session::gate_on_durable`]): then an event is handed out only after
//! [`Session::handle_durable`] says it is stored, so a crash never loses an
//! event a client has seen.

mod error;
mod log;
mod state;

#[cfg(test)]
mod model;
#[cfg(test)]
mod tests;

use std::fmt;
use std::time::{Duration, Instant};

use gtl_proto::{Body, ErrorCode, FrameRef, Phase};

pub use error::{ResumeError, SessionError};
pub use log::event_cost;
pub use state::State;

use log::Log;

/// Limits of one session.
///
/// Start from [`SessionConfig::default`] and adjust with the `with_*`
/// methods.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionConfig {
    /// How long a session outlives its client's connection (and, once
    /// finished, its last attach, detach or end). Default: 10 minutes.
    pub resume_window: Duration,
    /// Bound on the memory cost ([`event_cost`]) of events kept for resume.
    /// Default: 8 MiB.
    pub max_retained_bytes: usize,
    /// Bound on the memory cost of events not yet delivered, beyond which
    /// [`Session::wants_events`] is false. Default: 1 MiB.
    pub max_pending_bytes: usize,
}

impl SessionConfig {
    /// The default resume window: 10 minutes.
    pub const DEFAULT_RESUME_WINDOW: Duration = Duration::from_secs(10 * 60);
    /// The default retained-bytes bound: 8 MiB.
    pub const DEFAULT_MAX_RETAINED_BYTES: usize = 8 << 20;
    /// The default pending-bytes bound: 1 MiB.
    pub const DEFAULT_MAX_PENDING_BYTES: usize = 1 << 20;

    /// Sets [`resume_window`](Self::resume_window).
    #[must_use]
    pub const fn with_resume_window(mut self, window: Duration) -> Self {
        self.resume_window = window;
        self
    }

    /// Sets [`max_retained_bytes`](Self::max_retained_bytes).
    #[must_use]
    pub const fn with_max_retained_bytes(mut self, bytes: usize) -> Self {
        self.max_retained_bytes = bytes;
        self
    }

    /// Sets [`max_pending_bytes`](Self::max_pending_bytes).
    #[must_use]
    pub const fn with_max_pending_bytes(mut self, bytes: usize) -> Self {
        self.max_pending_bytes = bytes;
        self
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            resume_window: Self::DEFAULT_RESUME_WINDOW,
            max_retained_bytes: Self::DEFAULT_MAX_RETAINED_BYTES,
            max_pending_bytes: Self::DEFAULT_MAX_PENDING_BYTES,
        }
    }
}

/// Names one attachment of a client connection to a session.
///
/// Each attach (the creating call, then every resume) gets a new id; a
/// disconnect carrying an older id is ignored, because a resume over another
/// connection may already have replaced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttachId(u64);

/// The next event to send to the attached client, borrowed from the log so
/// the transport encodes it without a copy.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Transmit<'a> {
    /// The event's sequence number.
    pub seq: u64,
    /// The event.
    pub body: &'a Body,
    /// The session the event belongs to.
    pub session_id: &'a str,
}

impl<'a> Transmit<'a> {
    /// The event as a borrowed frame on call `call_id`.
    pub fn frame(&self, call_id: u64) -> FrameRef<'a> {
        FrameRef {
            call_id,
            session_id: self.session_id,
            seq: self.seq,
            body: Some(self.body),
        }
    }
}

/// Work the session asks of its owner (see [`Session::poll_command`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Command {
    /// Stop the provider call: the session was cancelled or expired while the
    /// generation was still running.
    StopProvider,
}

/// One resumable session: the events of one generation, numbered by `seq`,
/// and the client attached to them.
///
/// # Example
///
/// ```
/// use std::time::{Duration, Instant};
/// use gtl_core::{Session, SessionConfig};
/// use gtl_proto::{Body, Done, Token};
///
/// let start = Instant::now();
/// let mut session = Session::new("s_1", "alice", "rt", SessionConfig::default(), start);
/// let first = session.attached().unwrap();
///
/// session.handle_event(start, Body::Token(Token { text: "Hel".into() }))?;
/// assert_eq!(session.poll_transmit().unwrap().seq, 1);
///
/// // The connection drops; the generation keeps running.
/// session.handle_disconnect(start, first);
/// session.handle_event(start, Body::Token(Token { text: "lo".into() }))?;
/// session.handle_event(start, Body::Done(Done::default()))?;
/// assert!(session.poll_transmit().is_none());
///
/// // The client comes back over another transport and gets what it missed.
/// let later = start + Duration::from_secs(5);
/// session.handle_resume(later, "alice", "rt", 1).unwrap();
/// let seqs: Vec<u64> = std::iter::from_fn(|| session.poll_transmit().map(|t| t.seq)).collect();
/// assert_eq!(seqs, [2, 3]);
/// # Ok::<(), gtl_core::SessionError>(())
/// ```
pub struct Session {
    id: String,
    owner: String,
    resume_token: String,
    config: SessionConfig,
    state: State,
    log: Log,
    /// Highest seq handed to the current (or last) attachment.
    sent: u64,
    /// Highest seq known to be stored, when sends wait for it.
    durable: Option<u64>,
    /// Cost of the retained events with seq ≤ `sent`.
    sent_bytes: usize,
    /// Highest seq the client acknowledged (never above `sent`).
    acked: u64,
    attached: Option<AttachId>,
    last_attach: u64,
    /// When the resume window starts counting: the last attach, detach or end.
    window_start: Instant,
    /// Whether output (token, tool call, patch) was logged, for `Phase`.
    output_started: bool,
    /// `session.pipe`: a `done` ends a turn, not the session.
    pipe: bool,
    stop_provider: bool,
}

impl Session {
    /// A new, streaming session attached to the client that created it; its
    /// attachment is [`Session::attached`].
    pub fn new(
        id: impl Into<String>,
        owner: impl Into<String>,
        resume_token: impl Into<String>,
        config: SessionConfig,
        now: Instant,
    ) -> Self {
        let mut session = Self::detached(id, owner, resume_token, config, now, Log::new(1));
        session.attached = Some(session.next_attach_id());
        session
    }

    /// Rebuilds a detached session from persisted events after a restart.
    ///
    /// `events` must be consecutive (the first may be above 1 when older ones
    /// were trimmed) and end at the latest event the store holds. A `done`
    /// followed by more events is read as the end of a `session.pipe` turn;
    /// a final `done` or `error` ends the session. When `finished` is false
    /// and the log does not end with a terminal event,
    /// the generation died with the old process: the session appends a final
    /// `INTERNAL` error, "generation was interrupted by a server restart", so
    /// a resuming client sees a clear end. `INTERNAL` (not `PROVIDER_ERROR`)
    /// because the provider did nothing wrong; it is marked retryable, and
    /// its phase tells the client whether output had already been sent.
    pub fn restore(
        id: impl Into<String>,
        owner: impl Into<String>,
        resume_token: impl Into<String>,
        events: Vec<(u64, Body)>,
        finished: bool,
        config: SessionConfig,
        now: Instant,
    ) -> Result<Self, SessionError> {
        let (mut session, ends_with_done) =
            Self::rebuild(id, owner, resume_token, events, config, now)?;
        if session.state == State::Streaming {
            if !finished && !ends_with_done {
                //= design#4
                //# a generation that was cut by the crash ends with a clear
                //# error, never silently.
                session
                    .append(session.interrupted("generation was interrupted by a server restart"));
            }
            let _ = session.state.finish();
        }
        Ok(session)
    }

    /// Rebuilds a detached session whose generation runs on, in another
    /// process (a replica sharing the store), from the events stored so far.
    ///
    /// Unlike [`restore`](Self::restore), an unfinished session stays
    /// streaming: the events the other process goes on storing are logged
    /// with [`handle_event`](Self::handle_event) as they arrive, under the
    /// same seqs. In a [`pipe`](crate::SessionMeta::pipe) session a `done`
    /// ends a turn, not the session.
    pub fn mirror(
        id: impl Into<String>,
        meta: &crate::SessionMeta,
        events: Vec<(u64, Body)>,
        config: SessionConfig,
        now: Instant,
    ) -> Result<Self, SessionError> {
        let (mut session, ends_with_done) = Self::rebuild(
            id,
            meta.owner.clone(),
            meta.resume_token.clone(),
            events,
            config,
            now,
        )?;
        if session.state == State::Streaming && (meta.finished || (ends_with_done && !meta.pipe)) {
            let _ = session.state.finish();
        }
        session.pipe = meta.pipe;
        Ok(session)
    }

    /// The `INTERNAL` error that ends a generation its process stopped
    /// driving, in the phase the session is in.
    pub fn interrupted(&self, message: &str) -> Body {
        Body::Error(gtl_proto::Error {
            code: ErrorCode::Internal as i32,
            message: message.to_owned(),
            retryable: ErrorCode::Internal.is_retryable(),
            phase: self.phase() as i32,
            retry_after_ms: 0,
        })
    }

    /// A detached session holding `events`, and whether the last was a
    /// `done`.
    fn rebuild(
        id: impl Into<String>,
        owner: impl Into<String>,
        resume_token: impl Into<String>,
        events: Vec<(u64, Body)>,
        config: SessionConfig,
        now: Instant,
    ) -> Result<(Self, bool), SessionError> {
        let first = events.first().map_or(1, |(seq, _)| *seq);
        if first == 0 {
            return Err(SessionError::OutOfOrder {
                expected: 1,
                got: 0,
            });
        }
        let mut session = Self::detached(id, owner, resume_token, config, now, Log::new(first));
        // Trimmed events may have been output, so assume they were: a client
        // must not fail over after output it may already have shown.
        session.output_started = first > 1;
        session.sent = first - 1;
        session.acked = first - 1;
        let mut ends_with_done = false;
        for (seq, body) in events {
            let expected = session.log.last_seq() + 1;
            if seq != expected {
                return Err(SessionError::OutOfOrder { expected, got: seq });
            }
            if session.state != State::Streaming {
                return Err(SessionError::Finished);
            }
            if !body.is_event() {
                return Err(SessionError::NotAnEvent(body.frame_type()));
            }
            let cancelled = is_cancel_error(&body);
            let error = matches!(body, Body::Error(_));
            ends_with_done = matches!(body, Body::Done(_));
            session.append(body);
            if cancelled {
                let _ = session.state.cancel();
            } else if error {
                let _ = session.state.finish();
            } else if ends_with_done {
                session.output_started = false;
            }
        }
        Ok((session, ends_with_done))
    }

    fn detached(
        id: impl Into<String>,
        owner: impl Into<String>,
        resume_token: impl Into<String>,
        config: SessionConfig,
        now: Instant,
        log: Log,
    ) -> Self {
        Self {
            id: id.into(),
            owner: owner.into(),
            resume_token: resume_token.into(),
            config,
            state: State::Streaming,
            log,
            sent: 0,
            durable: None,
            sent_bytes: 0,
            acked: 0,
            attached: None,
            last_attach: 0,
            window_start: now,
            output_started: false,
            pipe: false,
            stop_provider: false,
        }
    }

    /// The session id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The owner (token subject) the session belongs to.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The session's limits.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Where the generation is in its life.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether the generation ended (finished, cancelled or expired).
    pub fn is_finished(&self) -> bool {
        self.state != State::Streaming
    }

    /// Whether the resume window passed; the owner may drop the session.
    pub fn is_expired(&self) -> bool {
        self.state == State::Expired
    }

    /// The current attachment, or `None` while no client is attached.
    pub fn attached(&self) -> Option<AttachId> {
        self.attached
    }

    /// Seq of the newest event (0 before the first).
    pub fn last_seq(&self) -> u64 {
        self.log.last_seq()
    }

    /// The lowest `after_seq` a resume accepts: everything after it is still
    /// retained.
    pub fn min_after_seq(&self) -> u64 {
        self.log.front_seq() - 1
    }

    /// Highest seq handed to the current (or last) attachment.
    pub fn sent_seq(&self) -> u64 {
        self.sent
    }

    /// Highest seq the client acknowledged.
    pub fn acked_seq(&self) -> u64 {
        self.acked
    }

    /// Memory cost of the retained (not yet acknowledged or evicted) events.
    pub fn retained_bytes(&self) -> usize {
        self.log.bytes()
    }

    /// Memory cost of the events not yet handed to the attachment.
    pub fn pending_bytes(&self) -> usize {
        self.log.bytes() - self.sent_bytes
    }

    /// Whether the engine should pull more events from the provider: the
    /// generation is running and fewer than
    /// [`max_pending_bytes`](SessionConfig::max_pending_bytes) wait for the
    /// client.
    pub fn wants_events(&self) -> bool {
        //= design#4
        //# Backpressure: a slow client never makes server memory grow without
        //# bound.
        self.state == State::Streaming && self.pending_bytes() < self.config.max_pending_bytes
    }

    /// From now on, hands an event to the client only once
    /// [`handle_durable`](Self::handle_durable) reported it stored. Events
    /// already logged count as stored.
    pub fn gate_on_durable(&mut self) {
        self.durable = Some(self.log.last_seq());
    }

    /// Every event up to `seq` is stored: the client may have them.
    pub fn handle_durable(&mut self, seq: u64) {
        if let Some(durable) = &mut self.durable {
            *durable = (*durable).max(seq.min(self.log.last_seq()));
        }
    }

    /// The highest seq the client may be sent now: the last event, or the
    /// last durable one when sends wait for durability.
    pub fn sendable_seq(&self) -> u64 {
        self.durable.unwrap_or_else(|| self.log.last_seq())
    }

    /// Whether [`poll_transmit`](Self::poll_transmit) has an event to give.
    pub fn has_transmit(&self) -> bool {
        self.attached.is_some() && self.sent < self.sendable_seq()
    }

    /// Memory pressure: forgets every event already handed to the client,
    /// acknowledged or not (a resume before them then fails with
    /// `RESUME_WINDOW_EXCEEDED`). Returns the cost freed.
    pub fn shed_delivered(&mut self) -> usize {
        let before = self.log.bytes();
        while self.log.front_seq() <= self.sent {
            let Some(len) = self.log.pop_front() else {
                break;
            };
            self.sent_bytes -= len;
        }
        self.log.shrink_if_sparse();
        before - self.log.bytes()
    }

    /// The retained events with their seqs, oldest first (for persistence).
    pub fn retained_events(&self) -> impl ExactSizeIterator<Item = (u64, &Body)> + '_ {
        self.log.iter()
    }

    /// Switches `session.pipe` mode. While it is on, a `done` event ends the
    /// current turn, not the session: the session keeps streaming and the
    /// next turn's events follow with the next seqs. Errors still end the
    /// session. Switch it off before the last turn's `done`.
    pub fn set_pipe(&mut self, pipe: bool) {
        self.pipe = pipe;
    }

    /// Whether `session.pipe` mode is on (see [`set_pipe`](Self::set_pipe)).
    pub fn is_pipe(&self) -> bool {
        self.pipe
    }

    /// Whether output (a token, tool call or patch) was logged in the
    /// current turn: the phase an error ending it now should carry.
    pub fn phase(&self) -> Phase {
        if self.output_started {
            Phase::AfterFirstToken
        } else {
            Phase::BeforeFirstToken
        }
    }

    /// Logs an event from the provider and returns its seq (1, 2, 3, …).
    ///
    /// A terminal event (`done` or `error`) finishes the session, except a
    /// `done` in [`session.pipe` mode](Self::set_pipe). Fails when
    /// the session already finished or expired, or when `body` is not an
    /// event. This never refuses for backpressure: that is
    /// [`wants_events`](Self::wants_events)' job.
    pub fn handle_event(&mut self, now: Instant, body: Body) -> Result<u64, SessionError> {
        self.expire_if_due(now);
        match self.state {
            State::Streaming => {}
            State::Expired => return Err(SessionError::Expired),
            _ => return Err(SessionError::Finished),
        }
        if !body.is_event() {
            return Err(SessionError::NotAnEvent(body.frame_type()));
        }
        let turn_done = self.pipe && matches!(body, Body::Done(_));
        let terminal = body.is_terminal() && !turn_done;
        let seq = self.append(body);
        if terminal {
            let _ = self.state.finish();
            self.window_start = now;
        } else if turn_done {
            // The next turn starts with nothing output.
            self.output_started = false;
        }
        Ok(seq)
    }

    /// The client has every event up to `seq`: the session forgets them.
    ///
    /// An ack beyond what was sent to the client is clamped to
    /// [`sent_seq`](Self::sent_seq), so undelivered events are never lost; an
    /// ack below an earlier one changes nothing. Returns the acknowledged seq
    /// after the call.
    pub fn handle_ack(&mut self, now: Instant, seq: u64) -> u64 {
        self.expire_if_due(now);
        let seq = seq.min(self.sent);
        if self.state == State::Expired || seq <= self.acked {
            return self.acked;
        }
        self.acked = seq;
        while self.log.front_seq() <= seq {
            // A finished session keeps its terminal event: resumed at its
            // seq, it sends it again (see `handle_resume`).
            if self.is_finished() && self.log.front_seq() == self.log.last_seq() {
                break;
            }
            let Some(len) = self.log.pop_front() else {
                break;
            };
            self.sent_bytes -= len;
        }
        self.log.shrink_if_sparse();
        self.acked
    }

    /// The connection of attachment `attach` dropped: the session detaches
    /// and keeps logging events for the resume window.
    ///
    /// Returns false, and changes nothing, when `attach` is not the current
    /// attachment (a resume already replaced it).
    pub fn handle_disconnect(&mut self, now: Instant, attach: AttachId) -> bool {
        self.expire_if_due(now);
        if self.attached != Some(attach) {
            return false;
        }
        self.attached = None;
        self.window_start = now;
        true
    }

    /// A client asks to continue after `after_seq`.
    ///
    /// Both `owner` and `resume_token` must match (the token is compared in
    /// constant time). On success the client is attached, replacing any
    /// current attachment, and [`poll_transmit`](Self::poll_transmit) yields
    /// exactly the events after `after_seq`, then the live tail.
    pub fn handle_resume(
        &mut self,
        now: Instant,
        owner: &str,
        resume_token: &str,
        after_seq: u64,
    ) -> Result<AttachId, ResumeError> {
        self.expire_if_due(now);
        //= design#4
        //# Only the session's owner (same token subject, plus the resume
        //# token) may resume.
        // `&` rather than `&&`: both comparisons always run.
        let owner_ok = constant_time_eq(owner.as_bytes(), self.owner.as_bytes());
        let token_ok = constant_time_eq(resume_token.as_bytes(), self.resume_token.as_bytes());
        if !(owner_ok & token_ok) {
            return Err(ResumeError::PermissionDenied);
        }
        if self.state == State::Expired {
            return Err(ResumeError::Expired);
        }
        let min_after_seq = self.min_after_seq();
        if after_seq < min_after_seq {
            return Err(ResumeError::Trimmed {
                after_seq,
                min_after_seq,
            });
        }
        let last_seq = self.log.last_seq();
        if after_seq > last_seq {
            return Err(ResumeError::AfterLast {
                after_seq,
                last_seq,
            });
        }
        //= design#4
        //# receives exactly the events after `after_seq`, then the live tail:
        //# nothing lost, nothing doubled, order kept.
        // Nothing follows the terminal event of a finished session, yet the
        // resumed call must end: that event is sent again, under its own seq.
        let from = if self.is_finished() && after_seq == last_seq && after_seq > min_after_seq {
            after_seq - 1
        } else {
            after_seq
        };
        let attach = self.next_attach_id();
        self.attached = Some(attach);
        self.window_start = now;
        self.sent = from;
        self.sent_bytes = self.log.bytes_through(from);
        self.evict(self.sent);
        Ok(attach)
    }

    /// Whether `owner` holding `resume_token` may act on this session
    /// (cancel it, send it input) without being attached. Both are compared
    /// in constant time.
    pub fn authorizes(&self, owner: &str, resume_token: &str) -> bool {
        let owner_ok = constant_time_eq(owner.as_bytes(), self.owner.as_bytes());
        let token_ok = constant_time_eq(resume_token.as_bytes(), self.resume_token.as_bytes());
        owner_ok & token_ok
    }

    /// Cancels the session explicitly (unlike a disconnect, which keeps the
    /// generation running).
    ///
    /// Logs a final `CANCELLED` error carrying `reason` (or "call was
    /// cancelled" when empty) so the client sees the end, asks for
    /// [`Command::StopProvider`], and returns the error's seq. Does nothing
    /// and returns `None` when the session already finished.
    pub fn handle_cancel(&mut self, now: Instant, reason: &str) -> Option<u64> {
        self.expire_if_due(now);
        self.state.cancel().ok()?;
        self.stop_provider = true;
        self.window_start = now;
        let message = if reason.is_empty() {
            "call was cancelled"
        } else {
            reason
        };
        let phase = self.phase();
        Some(self.append(Body::Error(gtl_proto::Error {
            code: ErrorCode::Cancelled as i32,
            message: message.to_owned(),
            retryable: false,
            phase: phase as i32,
            retry_after_ms: 0,
        })))
    }

    /// Expires the session if its resume window ended at or before `now`
    /// (see [`poll_timeout`](Self::poll_timeout)).
    ///
    /// Expiry forgets the events and detaches any client; if the generation
    /// was still running, it asks for [`Command::StopProvider`].
    pub fn handle_timeout(&mut self, now: Instant) {
        self.expire_if_due(now);
    }

    /// The next event for the attached client; `None` while detached or
    /// when the client has everything.
    pub fn poll_transmit(&mut self) -> Option<Transmit<'_>> {
        self.attached?;
        let seq = self.sent + 1;
        if seq > self.sendable_seq() {
            return None;
        }
        let (_, len) = self.log.get(seq)?;
        self.sent = seq;
        self.sent_bytes += len;
        // The events before this one are delivered now and may be evicted.
        self.evict(seq - 1);
        let (body, _) = self.log.get(seq)?;
        Some(Transmit {
            seq,
            body,
            session_id: &self.id,
        })
    }

    /// When the resume window ends, if it is running.
    ///
    /// It runs while no client is attached, and once the generation ended
    /// (attached or not). It starts at the last attach, detach or end; call
    /// [`handle_timeout`](Self::handle_timeout) when it is reached.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Expired => None,
            State::Streaming if self.attached.is_some() => None,
            _ => self.window_start.checked_add(self.config.resume_window),
        }
    }

    /// The next command for the session's owner.
    pub fn poll_command(&mut self) -> Option<Command> {
        std::mem::take(&mut self.stop_provider).then_some(Command::StopProvider)
    }

    fn next_attach_id(&mut self) -> AttachId {
        self.last_attach += 1;
        AttachId(self.last_attach)
    }

    /// Logs an event, keeping the byte bound.
    fn append(&mut self, body: Body) -> u64 {
        self.output_started |= matches!(body, Body::Token(_) | Body::ToolCall(_) | Body::Patch(_));
        let seq = self.log.push(body);
        self.evict(self.sent);
        seq
    }

    /// Evicts the oldest events with seq ≤ `limit` while the log is over its
    /// byte bound. `limit` never exceeds `sent`: undelivered events stay.
    fn evict(&mut self, limit: u64) {
        while self.log.bytes() > self.config.max_retained_bytes && self.log.front_seq() <= limit {
            let Some(len) = self.log.pop_front() else {
                break;
            };
            self.sent_bytes -= len;
        }
    }

    fn expire_if_due(&mut self, now: Instant) {
        if self.poll_timeout().is_none_or(|deadline| now < deadline) {
            return;
        }
        let running = self.state == State::Streaming;
        if self.state.expire().is_ok() {
            self.stop_provider |= running;
            self.log.clear();
            self.sent = self.log.last_seq();
            self.sent_bytes = 0;
            self.attached = None;
        }
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("owner", &self.owner)
            .field("resume_token", &"<redacted>")
            .field("state", &self.state)
            .field("attached", &self.attached)
            .field("last_seq", &self.log.last_seq())
            .field("min_after_seq", &self.min_after_seq())
            .field("sent", &self.sent)
            .field("durable", &self.durable)
            .field("acked", &self.acked)
            .field("retained_bytes", &self.log.bytes())
            .field("pending_bytes", &self.pending_bytes())
            .finish_non_exhaustive()
    }
}

/// Whether a body is the error a cancel logs.
fn is_cancel_error(body: &Body) -> bool {
    matches!(body, Body::Error(error) if error.code == ErrorCode::Cancelled as i32)
}

/// Compares two secrets in time that depends only on their lengths.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}
