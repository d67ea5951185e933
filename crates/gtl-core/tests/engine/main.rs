//! The engine under tokio: provider streams into sessions, resume, cancel,
//! backpressure, persistence across a restart, session.pipe.

mod scripted;

use std::sync::Arc;

use gtl_core::{
    Call, Engine, EngineConfig, MemoryStore, RedbStore, SessionConfig, SessionStore, StartCall,
};
use gtl_proto::types::Content;
use gtl_proto::{Body, CompletionRequest, ErrorCode, Input, Message, Role};
use scripted::Scripted;

fn request(pipe: bool) -> CompletionRequest {
    CompletionRequest {
        model: "scripted".into(),
        messages: vec![user("hi")],
        stream: true,
        pipe,
        ..CompletionRequest::default()
    }
}

fn user(text: &str) -> Message {
    Message {
        role: Role::User as i32,
        content: Some(Content::Text(text.into())),
        ..Message::default()
    }
}

/// Drains a call until it is over, returning (seq, body) pairs.
async fn collect(call: &Call) -> Vec<(u64, Body)> {
    let mut out = Vec::new();
    loop {
        call.ready().await;
        let drained = call.drain(usize::MAX, |t| out.push((t.seq, t.body.clone())));
        if drained.finished || drained.detached {
            return out;
        }
    }
}

/// Drains until at least `n` events arrived.
async fn take(call: &Call, n: usize) -> Vec<(u64, Body)> {
    let mut out = Vec::new();
    while out.len() < n {
        call.ready().await;
        call.drain(n - out.len(), |t| out.push((t.seq, t.body.clone())));
    }
    out
}

fn engine(store: Arc<dyn SessionStore>) -> Engine {
    Engine::new(store, EngineConfig::default())
}

fn texts(events: &[(u64, Body)]) -> Vec<String> {
    events
        .iter()
        .map(|(_, b)| match b {
            Body::Token(t) => t.text.clone(),
            other => other.frame_type().as_str().to_owned(),
        })
        .collect()
}

#[tokio::test]
async fn a_call_streams_every_event_in_order() {
    let provider = Scripted::tokens(50);
    let engine = engine(Arc::new(MemoryStore::new()));
    let call = engine
        .start(StartCall::new(
            "alice",
            Arc::new(provider.clone()),
            request(false),
        ))
        .unwrap();
    assert!(call.resume_token().is_some_and(|t| t.len() == 32));
    let events = collect(&call).await;
    assert_eq!(events.len(), 51);
    assert!(
        events
            .iter()
            .enumerate()
            .all(|(i, (seq, _))| *seq == i as u64 + 1)
    );
    assert_eq!(texts(&events), provider.expected());
}

#[tokio::test]
async fn disconnect_keeps_generating_and_resume_replays_exactly_the_rest() {
    let provider = Scripted::tokens(200).with_gate();
    let engine = engine(Arc::new(MemoryStore::new()));
    let call = engine
        .start(StartCall::new(
            "alice",
            Arc::new(provider.clone()),
            request(false),
        ))
        .unwrap();
    let id = call.session_id().to_owned();
    let token = call.resume_token().unwrap().to_owned();
    provider.open(20);
    let first = take(&call, 20).await;
    drop(call); // the connection drops
    provider.open(usize::MAX); // the generation goes on while nobody listens
    provider.wait_finished().await;

    // A stranger cannot take it over, nor can the owner with a wrong token,
    // and neither can tell the session from one that does not exist.
    let stranger = engine.resume("mallory", &id, 20, &token).await.unwrap_err();
    let guess = engine.resume("alice", &id, 20, "guess").await.unwrap_err();
    assert_eq!(stranger, guess);
    assert_eq!(stranger.code, ErrorCode::ResumeNotFound);
    let unknown = engine
        .resume("alice", "s_nope", 0, &token)
        .await
        .unwrap_err();
    assert_eq!(unknown.message, stranger.message.replace(&id, "s_nope"));
    assert_eq!(
        engine
            .resume("alice", "s_nope", 0, &token)
            .await
            .unwrap_err()
            .code,
        ErrorCode::ResumeNotFound
    );

    let resumed = engine.resume("alice", &id, 20, &token).await.unwrap();
    let rest = collect(&resumed).await;
    assert_eq!(rest.first().map(|e| e.0), Some(21));
    let all: Vec<_> = first.into_iter().chain(rest).collect();
    assert_eq!(texts(&all), provider.expected());
}

#[tokio::test]
async fn cancel_drops_the_provider_stream_and_ends_with_cancelled() {
    let provider = Scripted::tokens(1_000_000).with_gate();
    let engine = engine(Arc::new(MemoryStore::new()));
    let call = engine
        .start(StartCall::new(
            "alice",
            Arc::new(provider.clone()),
            request(false),
        ))
        .unwrap();
    provider.open(5);
    take(&call, 5).await;
    call.cancel("user pressed stop");
    let rest = collect(&call).await;
    let Some((_, Body::Error(error))) = rest.last() else {
        panic!("no final error: {rest:?}")
    };
    assert_eq!(error.code(), ErrorCode::Cancelled);
    provider.wait_dropped().await;
}

#[tokio::test]
async fn a_slow_client_bounds_what_the_session_buffers() {
    let provider = Scripted::tokens(100_000);
    let config =
        EngineConfig::default().with_session(SessionConfig::default().with_max_pending_bytes(4096));
    let engine = Engine::new(Arc::new(MemoryStore::new()), config);
    let call = engine
        .start(StartCall::new(
            "alice",
            Arc::new(provider.clone()),
            request(false),
        ))
        .unwrap();
    // Nobody drains: the driver must stop pulling once 4 KiB are pending.
    provider.wait_pulled_at_least(100).await;
    tokio::task::yield_now().await;
    let pulled = provider.pulled();
    assert!(
        pulled < 2_000,
        "the provider was pulled {pulled} times with no reader"
    );
    // Draining lets it go on to the end, with nothing lost.
    let events = collect(&call).await;
    assert_eq!(events.len(), 100_001);
}

#[tokio::test]
async fn a_restart_replays_persisted_events_and_ends_the_cut_generation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.redb");
    let provider = Scripted::tokens(1_000).with_gate();
    let (id, token, seen) = {
        let engine = engine(Arc::new(RedbStore::open(&path).unwrap()));
        let call = engine
            .start(StartCall::new(
                "alice",
                Arc::new(provider.clone()),
                request(false),
            ))
            .unwrap();
        provider.open(30);
        let seen = take(&call, 10).await;
        let (id, token) = (
            call.session_id().to_owned(),
            call.resume_token().unwrap().to_owned(),
        );
        drop(call);
        // A server restart: the drivers stop, the events are written out,
        // and the database is closed.
        engine.shutdown().await.unwrap();
        (id, token, seen)
    };
    let engine = engine(Arc::new(RedbStore::open(&path).unwrap()));
    assert_eq!(engine.restore().await.unwrap(), 1);
    let resumed = engine.resume("alice", &id, 10, &token).await.unwrap();
    let rest = collect(&resumed).await;
    assert_eq!(rest.first().map(|e| e.0), Some(11));
    let Some((_, Body::Error(error))) = rest.last() else {
        panic!("no final error")
    };
    assert_eq!(error.code(), ErrorCode::Internal);
    assert!(error.message.contains("restart"));
    let tokens: Vec<_> = seen.into_iter().chain(rest).collect();
    let expected = provider.expected();
    let got = texts(&tokens);
    assert_eq!(
        got[..got.len() - 1],
        expected[..got.len() - 1],
        "a prefix of the generation, in order"
    );
}

#[tokio::test]
async fn pipe_runs_a_turn_per_input_and_ends_after_end() {
    let provider = Scripted::echo_last();
    let engine = engine(Arc::new(MemoryStore::new()));
    let call = engine
        .start(StartCall::new(
            "alice",
            Arc::new(provider.clone()),
            request(true),
        ))
        .unwrap();
    let first = take(&call, 2).await;
    assert_eq!(texts(&first), ["hi", "done"]);
    call.input(Input {
        messages: vec![user("tool says 42")],
        end: false,
        ..Input::default()
    })
    .unwrap();
    let second = take(&call, 2).await;
    assert_eq!(texts(&second), ["tool says 42", "done"]);
    call.input(Input {
        messages: vec![user("bye")],
        end: true,
        ..Input::default()
    })
    .unwrap();
    let last = collect(&call).await;
    // The last turn's done, then the call's own end.
    assert_eq!(texts(&last), ["bye", "done", "done"]);
    assert!(
        matches!(&last.last().unwrap().1, Body::Done(d) if d.finish_reason == "end_of_input"),
        "{last:?}"
    );
    assert_eq!(last.last().unwrap().0, 7);
    assert!(
        call.input(Input::default()).is_err(),
        "input after the end is refused"
    );
    // The provider saw the whole conversation on the last turn.
    assert_eq!(provider.last_request_len(), 5);
}

#[tokio::test]
async fn ending_input_while_idle_ends_the_pipe() {
    let provider = Scripted::echo_last();
    let engine = engine(Arc::new(MemoryStore::new()));
    let call = engine
        .start(StartCall::new("alice", Arc::new(provider), request(true)))
        .unwrap();
    take(&call, 2).await;
    call.input(Input {
        messages: vec![],
        end: true,
        ..Input::default()
    })
    .unwrap();
    let last = collect(&call).await;
    let Some((_, Body::Done(done))) = last.last() else {
        panic!("no done")
    };
    assert_eq!(done.finish_reason, "end_of_input");
}

#[tokio::test]
async fn provider_errors_before_the_stream_become_error_events() {
    let engine = engine(Arc::new(MemoryStore::new()));
    let call = engine
        .start(StartCall::new(
            "alice",
            Arc::new(Scripted::failing()),
            request(false),
        ))
        .unwrap();
    let events = collect(&call).await;
    let [(1, Body::Error(error))] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(error.code(), ErrorCode::RateLimit);
}

#[tokio::test]
async fn duplicate_and_invalid_session_ids_are_refused() {
    let engine = engine(Arc::new(MemoryStore::new()));
    let provider: Arc<Scripted> = Arc::new(Scripted::tokens(1));
    let _call = engine
        .start(StartCall::new("a", provider.clone(), request(false)).with_session_id("s"))
        .unwrap();
    let err = engine
        .start(StartCall::new("a", provider.clone(), request(false)).with_session_id("s"))
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidRequest);
    let err = engine
        .start(StartCall::new("a", provider, request(false)).with_session_id(""))
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidRequest);
}

#[tokio::test]
async fn without_persistence_the_store_is_never_written() {
    let store = Arc::new(MemoryStore::new());
    let engine = Engine::new(store.clone(), EngineConfig::default().with_persist(false));
    let provider = Arc::new(Scripted::tokens(100));
    let call = engine
        .start(StartCall::new("alice", provider, request(false)))
        .unwrap();
    assert_eq!(collect(&call).await.len(), 101);
    engine.flush().await.unwrap();
    assert!(store.list().await.unwrap().is_empty());
    // The same engine with persistence on writes the session.
    let engine = Engine::new(store.clone(), EngineConfig::default());
    let call = engine
        .start(StartCall::new(
            "alice",
            Arc::new(Scripted::tokens(3)),
            request(false),
        ))
        .unwrap();
    collect(&call).await;
    engine.flush().await.unwrap();
    assert_eq!(store.list().await.unwrap().len(), 1);
}

#[tokio::test]
async fn the_first_output_hook_runs_once_when_the_first_token_is_handed_out() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let fired = Arc::new(AtomicUsize::new(0));
    let counter = fired.clone();
    let engine = engine(Arc::new(MemoryStore::new()));
    let call = engine
        .start(
            StartCall::new("alice", Arc::new(Scripted::tokens(5)), request(false))
                .with_first_output(gtl_core::FirstOutput::new(move || {
                    counter.fetch_add(1, Ordering::SeqCst);
                })),
        )
        .unwrap();
    let mut tokens_seen = false;
    loop {
        let event = take(&call, 1).await;
        tokens_seen |= matches!(event[0].1, Body::Token(_));
        // Not before the first token is handed out, then never again.
        assert_eq!(fired.load(Ordering::SeqCst), usize::from(tokens_seen));
        if matches!(event[0].1, Body::Done(_)) {
            break;
        }
    }
    assert!(tokens_seen);
}
