//! Unit tests of each session rule, with virtual time.

use std::time::{Duration, Instant};

use gtl_proto::{Body, Done, ErrorCode, Phase, Ping, Status, Token};

use super::*;

const WINDOW: Duration = Duration::from_secs(600);

fn token(text: &str) -> Body {
    Body::Token(Token { text: text.into() })
}

fn done() -> Body {
    Body::Done(Done {
        finish_reason: "stop".into(),
    })
}

fn status() -> Body {
    Body::Status(Status {
        state: "streaming".into(),
        ..Status::default()
    })
}

fn start() -> Instant {
    Instant::now()
}

fn session(now: Instant) -> Session {
    Session::new("s_1", "alice", "secret", SessionConfig::default(), now)
}

/// Drains every event the session would send now.
fn drain(session: &mut Session) -> Vec<(u64, Body)> {
    std::iter::from_fn(|| session.poll_transmit().map(|t| (t.seq, t.body.clone()))).collect()
}

fn seqs(events: &[(u64, Body)]) -> Vec<u64> {
    events.iter().map(|(seq, _)| *seq).collect()
}

fn error_of(body: &Body) -> &gtl_proto::Error {
    match body {
        Body::Error(error) => error,
        other => panic!("expected an error event, got {other:?}"),
    }
}

#[test]
fn config_defaults() {
    let config = SessionConfig::default();
    assert_eq!(config.resume_window, Duration::from_secs(600));
    assert_eq!(config.max_retained_bytes, 8 * 1024 * 1024);
    assert_eq!(config.max_pending_bytes, 1024 * 1024);
    let config = config
        .with_resume_window(Duration::from_secs(1))
        .with_max_pending_bytes(7);
    assert_eq!(
        (config.resume_window, config.max_pending_bytes),
        (Duration::from_secs(1), 7)
    );
}

#[test]
fn events_are_numbered_from_one_and_sent_in_order() {
    let now = start();
    let mut s = session(now);
    assert!(s.attached().is_some());
    assert_eq!(s.handle_event(now, status()), Ok(1));
    assert_eq!(s.handle_event(now, token("a")), Ok(2));
    let t = s.poll_transmit().unwrap();
    assert_eq!((t.seq, t.body), (1, &status()));
    let frame = t.frame(9);
    assert_eq!((frame.call_id, frame.session_id, frame.seq), (9, "s_1", 1));
    assert_eq!(s.handle_event(now, token("b")), Ok(3));
    assert_eq!(seqs(&drain(&mut s)), [2, 3]);
    assert!(s.poll_transmit().is_none());
    assert_eq!(s.sent_seq(), 3);
}

#[test]
fn rejects_non_events_and_events_after_the_end() {
    let now = start();
    let mut s = session(now);
    let err = s
        .handle_event(now, Body::Ping(Ping::default()))
        .unwrap_err();
    assert_eq!(err, SessionError::NotAnEvent(gtl_proto::FrameType::Ping));
    assert_eq!(err.to_string(), "`ping` is not a session event");
    assert_eq!(s.last_seq(), 0);

    assert_eq!(s.handle_event(now, done()), Ok(1));
    assert_eq!(s.state(), State::Finished);
    assert!(s.is_finished());
    assert_eq!(
        s.handle_event(now, token("late")),
        Err(SessionError::Finished)
    );
    assert_eq!(s.last_seq(), 1);
}

#[test]
fn an_error_event_finishes_the_session() {
    let now = start();
    let mut s = session(now);
    let error = Body::Error(gtl_proto::Error {
        code: ErrorCode::RateLimit as i32,
        message: "slow down".into(),
        ..Default::default()
    });
    assert_eq!(s.handle_event(now, error), Ok(1));
    assert_eq!(s.state(), State::Finished);
    assert!(
        s.poll_command().is_none(),
        "a finished generation needs no stop"
    );
}

#[test]
fn resume_replays_exactly_the_missed_events_then_the_live_tail() {
    let now = start();
    let mut s = session(now);
    let first = s.attached().unwrap();
    for text in ["a", "b", "c"] {
        s.handle_event(now, token(text)).unwrap();
    }
    assert_eq!(seqs(&drain(&mut s)), [1, 2, 3]);
    assert!(s.handle_disconnect(now, first));
    assert!(s.attached().is_none());

    // The generation keeps running while detached; nothing is sent.
    s.handle_event(now, token("d")).unwrap();
    s.handle_event(now, token("e")).unwrap();
    assert!(s.poll_transmit().is_none());

    // The client had seen up to 2 (3 was in flight when the link broke).
    let second = s.handle_resume(now, "alice", "secret", 2).unwrap();
    assert_ne!(first, second);
    assert_eq!(s.attached(), Some(second));
    let replay = drain(&mut s);
    assert_eq!(seqs(&replay), [3, 4, 5]);
    assert_eq!(replay[0].1, token("c"));
    assert_eq!(replay[2].1, token("e"));

    // Then the live tail.
    s.handle_event(now, done()).unwrap();
    assert_eq!(seqs(&drain(&mut s)), [6]);
}

#[test]
fn resume_while_attached_replaces_the_attachment_and_stale_disconnects_are_ignored() {
    let now = start();
    let mut s = session(now);
    let old = s.attached().unwrap();
    s.handle_event(now, token("a")).unwrap();
    s.handle_event(now, token("b")).unwrap();
    assert_eq!(seqs(&drain(&mut s)), [1, 2]);

    let new = s.handle_resume(now, "alice", "secret", 1).unwrap();
    // The old connection's close arrives late: it must not detach the new one.
    assert!(!s.handle_disconnect(now, old));
    assert_eq!(s.attached(), Some(new));
    assert_eq!(s.poll_timeout(), None);
    assert_eq!(seqs(&drain(&mut s)), [2]);
    assert!(s.handle_disconnect(now, new));
    assert!(
        !s.handle_disconnect(now, new),
        "a second disconnect is a no-op"
    );
}

#[test]
fn ack_trims_the_log_and_older_resumes_fail() {
    let now = start();
    let mut s = session(now);
    for text in ["a", "b", "c", "d"] {
        s.handle_event(now, token(text)).unwrap();
    }
    let all = s.retained_bytes();
    drain(&mut s);
    assert_eq!(s.handle_ack(now, 2), 2);
    assert_eq!(s.acked_seq(), 2);
    assert_eq!(s.min_after_seq(), 2);
    assert_eq!(
        s.retained_bytes(),
        all - event_cost(&token("a")) - event_cost(&token("b"))
    );
    assert_eq!(
        s.retained_events().map(|(seq, _)| seq).collect::<Vec<_>>(),
        [3, 4]
    );
    // An older ack changes nothing.
    assert_eq!(s.handle_ack(now, 1), 2);

    let err = s.handle_resume(now, "alice", "secret", 1).unwrap_err();
    assert_eq!(
        err,
        ResumeError::Trimmed {
            after_seq: 1,
            min_after_seq: 2
        }
    );
    assert_eq!(err.code(), ErrorCode::ResumeWindowExceeded);
    assert_eq!(
        err.to_string(),
        "events after seq 1 are no longer retained (the earliest resume point is seq 2)"
    );
    s.handle_resume(now, "alice", "secret", 2).unwrap();
    assert_eq!(seqs(&drain(&mut s)), [3, 4]);
}

#[test]
fn acks_beyond_what_was_sent_are_clamped() {
    let now = start();
    let mut s = session(now);
    for text in ["a", "b", "c"] {
        s.handle_event(now, token(text)).unwrap();
    }
    assert_eq!(s.poll_transmit().map(|t| t.seq), Some(1));
    assert_eq!(s.handle_ack(now, 99), 1);
    assert_eq!(s.min_after_seq(), 1);
    // The undelivered events are all still there.
    assert_eq!(seqs(&drain(&mut s)), [2, 3]);
}

#[test]
fn resume_after_the_last_event_is_an_invalid_request() {
    let now = start();
    let mut s = session(now);
    s.handle_event(now, token("a")).unwrap();
    let err = s.handle_resume(now, "alice", "secret", 2).unwrap_err();
    assert_eq!(
        err,
        ResumeError::AfterLast {
            after_seq: 2,
            last_seq: 1
        }
    );
    assert_eq!(err.code(), ErrorCode::InvalidRequest);
    // A failed resume leaves the current attachment alone.
    assert_eq!(s.attached().map(|_| ()), Some(()));
    assert_eq!(
        s.handle_resume(now, "alice", "secret", 1).map(|_| ()),
        Ok(())
    );
    assert!(s.poll_transmit().is_none());
}

#[test]
fn only_the_owner_with_the_token_may_resume() {
    let now = start();
    let mut s = session(now);
    let attach = s.attached();
    for (owner, token) in [
        ("mallory", "secret"),
        ("alice", "guess"),
        ("alice", ""),
        ("", ""),
    ] {
        let err = s.handle_resume(now, owner, token, 0).unwrap_err();
        assert_eq!(err, ResumeError::PermissionDenied);
        assert_eq!(err.code(), ErrorCode::PermissionDenied);
        assert_eq!(err.to_string(), "not the owner of this session");
    }
    assert_eq!(s.attached(), attach);
    assert!(s.handle_resume(now, "alice", "secret", 0).is_ok());
    assert!(
        !format!("{s:?}").contains("secret"),
        "Debug must not print the token"
    );
}

#[test]
fn constant_time_eq_compares_bytes() {
    assert!(constant_time_eq(b"", b""));
    assert!(constant_time_eq(b"abc", b"abc"));
    assert!(!constant_time_eq(b"abc", b"abd"));
    assert!(!constant_time_eq(b"abc", b"ab"));
}

#[test]
fn eviction_keeps_the_byte_bound_and_never_drops_undelivered_events() {
    let now = start();
    let one = event_cost(&token("0123456789"));
    let config = SessionConfig::default().with_max_retained_bytes(3 * one);
    let mut s = Session::new("s_1", "alice", "secret", config, now);
    for _ in 0..5 {
        s.handle_event(now, token("0123456789")).unwrap();
    }
    // Nothing was delivered yet, so nothing could be evicted.
    assert_eq!(s.retained_bytes(), 5 * one);
    assert_eq!(s.min_after_seq(), 0);

    // Delivering makes the older events evictable; the bound holds again.
    assert_eq!(seqs(&drain(&mut s)), [1, 2, 3, 4, 5]);
    s.handle_event(now, token("0123456789")).unwrap();
    assert_eq!(s.retained_bytes(), 3 * one);
    assert_eq!(s.min_after_seq(), 3);
    assert_eq!(s.pending_bytes(), one);

    let err = s.handle_resume(now, "alice", "secret", 2).unwrap_err();
    assert_eq!(err.code(), ErrorCode::ResumeWindowExceeded);
    s.handle_resume(now, "alice", "secret", 3).unwrap();
    assert_eq!(seqs(&drain(&mut s)), [4, 5, 6]);
}

#[test]
fn backpressure_flag_follows_pending_bytes() {
    let now = start();
    let one = event_cost(&token("0123456789"));
    let config = SessionConfig::default().with_max_pending_bytes(2 * one);
    let mut s = Session::new("s_1", "alice", "secret", config, now);
    let attach = s.attached().unwrap();
    assert!(s.wants_events());
    s.handle_event(now, token("0123456789")).unwrap();
    assert!(s.wants_events());
    s.handle_event(now, token("0123456789")).unwrap();
    assert_eq!(s.pending_bytes(), 2 * one);
    assert!(!s.wants_events(), "a slow client stops the provider pull");

    assert!(s.poll_transmit().is_some());
    assert_eq!(s.pending_bytes(), one);
    assert!(s.wants_events());

    // An absent client: pending grows to the bound and the pull stops.
    s.handle_disconnect(now, attach);
    s.handle_event(now, token("0123456789")).unwrap();
    assert!(!s.wants_events());

    // A resume from further back makes the replay pending again.
    s.handle_resume(now, "alice", "secret", 0).unwrap();
    assert_eq!(s.pending_bytes(), 3 * one);
    drain(&mut s);
    assert_eq!(s.pending_bytes(), 0);
    assert!(s.wants_events());
    s.handle_event(now, done()).unwrap();
    drain(&mut s);
    assert!(!s.wants_events(), "a finished session wants nothing");
}

#[test]
fn cancel_ends_the_session_and_stops_the_provider() {
    let now = start();
    let mut s = session(now);
    s.handle_event(now, status()).unwrap();
    assert_eq!(s.handle_cancel(now, "user pressed stop"), Some(2));
    assert_eq!(s.state(), State::Cancelled);
    assert_eq!(s.poll_command(), Some(Command::StopProvider));
    assert_eq!(s.poll_command(), None);

    let events = drain(&mut s);
    assert_eq!(seqs(&events), [1, 2]);
    let error = error_of(&events[1].1);
    assert_eq!(error.code, ErrorCode::Cancelled as i32);
    assert_eq!(error.phase, Phase::BeforeFirstToken as i32);
    assert_eq!(error.message, "user pressed stop");
    assert!(!error.retryable);

    // A second cancel, or a late provider event, changes nothing.
    assert_eq!(s.handle_cancel(now, ""), None);
    assert_eq!(
        s.handle_event(now, token("late")),
        Err(SessionError::Finished)
    );
    assert_eq!(s.poll_command(), None);
    assert_eq!(s.last_seq(), 2);
}

#[test]
fn cancel_after_output_reports_the_phase_and_cancel_after_done_is_a_no_op() {
    let now = start();
    let mut s = session(now);
    s.handle_event(now, token("a")).unwrap();
    assert_eq!(s.handle_cancel(now, ""), Some(2));
    let events = drain(&mut s);
    let error = error_of(&events[1].1);
    assert_eq!(error.phase, Phase::AfterFirstToken as i32);
    assert_eq!(error.message, "call was cancelled");

    let mut s = session(now);
    s.handle_event(now, done()).unwrap();
    assert_eq!(s.handle_cancel(now, "too late"), None);
    assert_eq!(s.state(), State::Finished);
    assert_eq!(s.poll_command(), None);
}

#[test]
fn disconnect_is_not_cancel() {
    let now = start();
    let mut s = session(now);
    let attach = s.attached().unwrap();
    s.handle_event(now, token("a")).unwrap();
    s.handle_disconnect(now, attach);
    assert_eq!(s.state(), State::Streaming);
    assert_eq!(s.poll_command(), None);
    assert_eq!(s.handle_event(now, token("b")), Ok(2));
}

#[test]
fn a_detached_session_expires_after_the_window_and_stops_the_provider() {
    let t0 = start();
    let mut s = session(t0);
    let attach = s.attached().unwrap();
    assert_eq!(
        s.poll_timeout(),
        None,
        "no timer while attached and streaming"
    );
    s.handle_event(t0, token("a")).unwrap();

    let t1 = t0 + Duration::from_secs(30);
    s.handle_disconnect(t1, attach);
    assert_eq!(s.poll_timeout(), Some(t1 + WINDOW));

    // Just before the deadline nothing happens.
    s.handle_timeout(t1 + WINDOW - Duration::from_millis(1));
    assert_eq!(s.state(), State::Streaming);
    assert_eq!(s.poll_command(), None);

    s.handle_timeout(t1 + WINDOW);
    assert!(s.is_expired());
    assert_eq!(s.poll_command(), Some(Command::StopProvider));
    assert_eq!(s.poll_timeout(), None);
    assert_eq!(s.retained_bytes(), 0);
    assert!(!s.wants_events());

    let err = s
        .handle_resume(t1 + WINDOW, "alice", "secret", 1)
        .unwrap_err();
    assert_eq!(err, ResumeError::Expired);
    assert_eq!(err.code(), ErrorCode::ResumeWindowExceeded);
    // The owner check still comes first.
    let err = s
        .handle_resume(t1 + WINDOW, "mallory", "secret", 1)
        .unwrap_err();
    assert_eq!(err, ResumeError::PermissionDenied);
    assert_eq!(
        s.handle_event(t1 + WINDOW, token("b")),
        Err(SessionError::Expired)
    );
}

#[test]
fn resume_within_the_window_stops_the_timer() {
    let t0 = start();
    let mut s = session(t0);
    s.handle_disconnect(t0, s.attached().unwrap());
    let t1 = t0 + WINDOW - Duration::from_secs(1);
    s.handle_resume(t1, "alice", "secret", 0).unwrap();
    assert_eq!(s.poll_timeout(), None);
    s.handle_timeout(t0 + 2 * WINDOW);
    assert_eq!(s.state(), State::Streaming);
}

#[test]
fn a_late_driver_still_sees_the_expiry() {
    // handle_timeout was never called; the next input notices the deadline.
    let t0 = start();
    let mut s = session(t0);
    s.handle_disconnect(t0, s.attached().unwrap());
    let late = t0 + WINDOW + Duration::from_secs(1);
    assert_eq!(
        s.handle_resume(late, "alice", "secret", 0),
        Err(ResumeError::Expired)
    );
    assert_eq!(s.poll_command(), Some(Command::StopProvider));
}

#[test]
fn a_finished_session_expires_one_window_after_it_ended() {
    let t0 = start();
    let mut s = session(t0);
    s.handle_event(t0, token("a")).unwrap();
    let t1 = t0 + Duration::from_secs(5);
    s.handle_event(t1, done()).unwrap();
    // Attached and finished: the window runs from the end.
    assert_eq!(s.poll_timeout(), Some(t1 + WINDOW));

    // A later detach restarts it.
    let t2 = t1 + Duration::from_secs(60);
    s.handle_disconnect(t2, s.attached().unwrap());
    assert_eq!(s.poll_timeout(), Some(t2 + WINDOW));
    s.handle_timeout(t2 + WINDOW);
    assert!(s.is_expired());
    assert_eq!(s.poll_command(), None, "the provider had already finished");
}

#[test]
fn restore_of_an_interrupted_generation_ends_with_an_internal_error() {
    let now = start();
    let events = vec![(1, status()), (2, token("Hel")), (3, token("lo"))];
    let mut s = Session::restore(
        "s_1",
        "alice",
        "secret",
        events,
        false,
        Default::default(),
        now,
    )
    .unwrap();
    assert_eq!(s.state(), State::Finished);
    assert_eq!(s.attached(), None);
    assert_eq!(s.last_seq(), 4);
    assert_eq!(s.poll_timeout(), Some(now + WINDOW));
    assert!(s.poll_transmit().is_none(), "detached until a resume");

    s.handle_resume(now, "alice", "secret", 2).unwrap();
    let events = drain(&mut s);
    assert_eq!(seqs(&events), [3, 4]);
    let error = error_of(&events[1].1);
    assert_eq!(error.code, ErrorCode::Internal as i32);
    assert_eq!(
        error.message,
        "generation was interrupted by a server restart"
    );
    assert_eq!(error.phase, Phase::AfterFirstToken as i32);
    assert!(error.retryable);
}

#[test]
fn restore_before_output_reports_the_phase() {
    let now = start();
    let s = Session::restore(
        "s",
        "a",
        "t",
        vec![(1, status())],
        false,
        Default::default(),
        now,
    )
    .unwrap();
    let (_, last) = s.retained_events().last().unwrap();
    assert_eq!(error_of(last).phase, Phase::BeforeFirstToken as i32);

    // Events before the first retained one were trimmed: assume output.
    let s = Session::restore(
        "s",
        "a",
        "t",
        vec![(5, status())],
        false,
        Default::default(),
        now,
    )
    .unwrap();
    assert_eq!(s.min_after_seq(), 4);
    let (seq, last) = s.retained_events().last().unwrap();
    assert_eq!(seq, 6);
    assert_eq!(error_of(last).phase, Phase::AfterFirstToken as i32);
}

#[test]
fn restore_of_finished_sessions_appends_nothing() {
    let now = start();
    let config = SessionConfig::default;
    let events = vec![(1, token("a")), (2, done())];
    let s = Session::restore("s", "a", "t", events, true, config(), now).unwrap();
    assert_eq!((s.state(), s.last_seq()), (State::Finished, 2));

    // The terminal event alone is enough, whatever the flag says.
    let events = vec![(1, token("a")), (2, done())];
    let s = Session::restore("s", "a", "t", events, false, config(), now).unwrap();
    assert_eq!((s.state(), s.last_seq()), (State::Finished, 2));

    // Everything acked and trimmed: the flag is all there is.
    let s = Session::restore("s", "a", "t", Vec::new(), true, config(), now).unwrap();
    assert_eq!((s.state(), s.last_seq()), (State::Finished, 0));

    let mut s = session(now);
    s.handle_cancel(now, "stop");
    let events: Vec<_> = s
        .retained_events()
        .map(|(seq, body)| (seq, body.clone()))
        .collect();
    let s = Session::restore("s", "a", "t", events, true, config(), now).unwrap();
    assert_eq!((s.state(), s.last_seq()), (State::Cancelled, 1));
}

#[test]
fn restore_rejects_a_broken_log() {
    let now = start();
    let config = SessionConfig::default;
    let restore = |events| Session::restore("s", "a", "t", events, false, config(), now);
    assert_eq!(
        restore(vec![(1, token("a")), (3, token("b"))]).unwrap_err(),
        SessionError::OutOfOrder {
            expected: 2,
            got: 3
        }
    );
    assert_eq!(
        restore(vec![(0, token("a"))]).unwrap_err(),
        SessionError::OutOfOrder {
            expected: 1,
            got: 0
        }
    );
    let error = Body::Error(gtl_proto::Error::default());
    assert_eq!(
        restore(vec![(1, error), (2, token("b"))]).unwrap_err(),
        SessionError::Finished
    );
    assert_eq!(
        restore(vec![(1, Body::Ping(Ping::default()))]).unwrap_err(),
        SessionError::NotAnEvent(gtl_proto::FrameType::Ping)
    );
}

#[test]
fn debug_and_display() {
    let now = start();
    let s = session(now);
    let debug = format!("{s:?}");
    assert!(
        debug.contains("s_1") && debug.contains("<redacted>"),
        "{debug}"
    );
    assert_eq!(State::Streaming.to_string(), "streaming");
    assert_eq!(
        SessionError::Finished.to_string(),
        "session is already finished"
    );
}

#[test]
fn in_pipe_mode_done_ends_a_turn_not_the_session() {
    let now = start();
    let mut s = session(now);
    s.set_pipe(true);
    assert!(s.is_pipe());
    s.handle_event(now, token("a")).unwrap();
    assert_eq!(s.phase(), Phase::AfterFirstToken);
    assert_eq!(s.handle_event(now, done()), Ok(2));
    assert_eq!(s.state(), State::Streaming);
    assert_eq!(
        s.phase(),
        Phase::BeforeFirstToken,
        "a new turn has no output yet"
    );
    assert_eq!(s.poll_timeout(), None);

    // The next turn continues the numbering; switched off, done ends it all.
    s.handle_event(now, token("b")).unwrap();
    s.set_pipe(false);
    assert_eq!(s.handle_event(now, done()), Ok(4));
    assert_eq!(s.state(), State::Finished);
    assert_eq!(seqs(&drain(&mut s)), [1, 2, 3, 4]);
}

#[test]
fn in_pipe_mode_an_error_still_ends_the_session() {
    let now = start();
    let mut s = session(now);
    s.set_pipe(true);
    let error = Body::Error(gtl_proto::Error {
        code: ErrorCode::ProviderError as i32,
        ..Default::default()
    });
    s.handle_event(now, error).unwrap();
    assert_eq!(s.state(), State::Finished);
}

#[test]
fn restore_reads_inner_dones_as_pipe_turns() {
    let now = start();
    let config = SessionConfig::default;
    let turns = || vec![(1, token("a")), (2, done()), (3, token("b"))];
    let s = Session::restore("s", "a", "t", turns(), false, config(), now).unwrap();
    assert_eq!((s.state(), s.last_seq()), (State::Finished, 4));
    let (_, last) = s.retained_events().last().unwrap();
    assert_eq!(error_of(last).phase, Phase::AfterFirstToken as i32);

    // Interrupted between a turn's done and the next output.
    let mut events = turns();
    events.truncate(2);
    events.push((3, status()));
    let s = Session::restore("s", "a", "t", events, false, config(), now).unwrap();
    let (seq, last) = s.retained_events().last().unwrap();
    assert_eq!(seq, 4);
    assert_eq!(error_of(last).phase, Phase::BeforeFirstToken as i32);

    // A pipe session that stopped after a turn's done ends there.
    let mut events = turns();
    events.truncate(2);
    let s = Session::restore("s", "a", "t", events, false, config(), now).unwrap();
    assert_eq!((s.state(), s.last_seq()), (State::Finished, 2));
}

#[test]
fn a_gated_session_sends_only_durable_events() {
    let now = start();
    let mut s = session(now);
    s.gate_on_durable();
    for text in ["a", "b", "c"] {
        s.handle_event(now, token(text)).unwrap();
    }
    assert!(!s.has_transmit());
    assert!(drain(&mut s).is_empty(), "nothing is stored yet");
    s.handle_durable(2);
    assert_eq!(s.sendable_seq(), 2);
    assert_eq!(
        drain(&mut s)
            .iter()
            .map(|(seq, _)| *seq)
            .collect::<Vec<_>>(),
        [1, 2]
    );
    // A report beyond the log is clamped; older reports change nothing.
    s.handle_durable(99);
    s.handle_durable(1);
    assert_eq!(s.sendable_seq(), 3);
    s.handle_event(now, done()).unwrap();
    assert_eq!(drain(&mut s).len(), 1, "the done waits for its commit");
    s.handle_durable(4);
    assert_eq!(drain(&mut s).first().map(|(seq, _)| *seq), Some(4));
}

#[test]
fn ungated_sessions_send_at_once() {
    let now = start();
    let mut s = session(now);
    s.handle_event(now, token("a")).unwrap();
    assert!(s.has_transmit());
    assert_eq!(s.sendable_seq(), 1);
}

#[test]
fn shedding_forgets_delivered_events_only() {
    let now = start();
    let mut s = session(now);
    for text in ["a", "b", "c", "d"] {
        s.handle_event(now, token(text)).unwrap();
    }
    s.poll_transmit();
    s.poll_transmit();
    let freed = s.shed_delivered();
    assert_eq!(freed, 2 * event_cost(&token("a")));
    assert_eq!(s.min_after_seq(), 2);
    assert_eq!(
        drain(&mut s)
            .iter()
            .map(|(seq, _)| *seq)
            .collect::<Vec<_>>(),
        [3, 4],
        "undelivered events are kept"
    );
}

#[test]
fn authorizes_needs_owner_and_token() {
    let s = session(start());
    assert!(s.authorizes("alice", "secret"));
    assert!(!s.authorizes("bob", "secret"));
    assert!(!s.authorizes("alice", "guess"));
    assert!(!s.authorizes("alice", ""));
}

#[test]
fn a_resume_at_the_terminal_seq_gets_the_terminal_event_again() {
    let now = start();
    let mut s = session(now);
    s.handle_event(now, token("a")).unwrap();
    s.handle_event(now, done()).unwrap();
    assert_eq!(seqs(&drain(&mut s)), [1, 2]);
    // Even acknowledged, the terminal event stays for this.
    s.handle_ack(now, 2);
    assert_eq!(s.min_after_seq(), 1);
    s.handle_resume(now, "alice", "secret", 2).unwrap();
    let again = drain(&mut s);
    assert_eq!(seqs(&again), [2]);
    assert!(matches!(again[0].1, Body::Done(_)));
    // A resume before the end replays as usual, once.
    let mut s = session(now);
    for body in [token("a"), token("b"), done()] {
        s.handle_event(now, body).unwrap();
    }
    s.handle_resume(now, "alice", "secret", 1).unwrap();
    assert_eq!(seqs(&drain(&mut s)), [2, 3]);
}

#[test]
fn a_running_session_resumed_at_its_last_seq_waits_for_the_next_event() {
    let now = start();
    let mut s = session(now);
    s.handle_event(now, token("a")).unwrap();
    drain(&mut s);
    s.handle_resume(now, "alice", "secret", 1).unwrap();
    assert!(drain(&mut s).is_empty());
    s.handle_event(now, token("b")).unwrap();
    assert_eq!(seqs(&drain(&mut s)), [2]);
}
