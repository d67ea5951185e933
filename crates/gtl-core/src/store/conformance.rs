//! The behaviour every [`SessionStore`] must have, as one check a store's
//! own tests run against it (feature `conformance`).

use gtl_proto::{Body, Done, ErrorCode, FunctionCall, Status, Token, ToolCall, Usage};

use super::{Outcome, SessionMeta, SessionStore, StoreError};

/// A token event.
pub fn token(text: &str) -> Body {
    Body::Token(Token { text: text.into() })
}

/// Metadata of session `id` of `alice`.
pub fn meta(id: &str, created_unix_ms: u64) -> SessionMeta {
    SessionMeta::new(id, "alice", format!("rt_{id}"), created_unix_ms)
}

/// Six events of every kind a session stores.
pub fn sample_events() -> Vec<(u64, Body)> {
    vec![
        (
            1,
            Body::Status(Status {
                state: "streaming".into(),
                provider: "echo".into(),
                model: "echo".into(),
                reason: String::new(),
            }),
        ),
        (2, token("Hello, ")),
        (3, token("world")),
        (
            4,
            Body::ToolCall(ToolCall {
                id: "call_0".into(),
                function: Some(FunctionCall {
                    name: "f".into(),
                    arguments: r#"{"a":1}"#.into(),
                }),
            }),
        ),
        (
            5,
            Body::Usage(Usage {
                tokens_in: 2,
                tokens_out: 2,
                cost: 0.5,
                cached_tokens: 0,
            }),
        ),
        (
            6,
            Body::Done(Done {
                finish_reason: "stop".into(),
            }),
        ),
    ]
}

/// Checks the behaviour every store must have, on an empty `store`.
///
/// # Panics
///
/// At the first behaviour that differs.
pub async fn check(store: &dyn SessionStore) {
    // Create, and the id is then taken.
    store.create(&meta("s_b", 20)).await.unwrap();
    store.create(&meta("s_a", 10)).await.unwrap();
    assert!(matches!(
        store.create(&meta("s_a", 99)).await,
        Err(StoreError::SessionExists { session_id }) if session_id == "s_a"
    ));

    // A new session loads with no events.
    let loaded = store.load("s_a").await.unwrap().unwrap();
    assert_eq!(loaded.meta, meta("s_a", 10));
    assert!(loaded.events.is_empty());
    assert_eq!(loaded.last_seq, 0);
    assert!(store.load("s_missing").await.unwrap().is_none());

    // Append in two batches; load returns them in seq order.
    let events = sample_events();
    store.append("s_a", &events[..2]).await.unwrap();
    store.append("s_a", &events[2..]).await.unwrap();
    store.append("s_b", &[(1, token("other"))]).await.unwrap();
    let loaded = store.load("s_a").await.unwrap().unwrap();
    assert_eq!(loaded.events, events);
    assert_eq!(loaded.last_seq, 6);

    // Appending to an unknown session is a typed error.
    assert!(matches!(
        store.append("s_missing", &[(1, token("x"))]).await,
        Err(StoreError::UnknownSession { session_id }) if session_id == "s_missing"
    ));

    // A batch with a bad seq is refused whole.
    let bad = [(7, token("ok")), (8, token("ok")), (8, token("dup"))];
    assert!(matches!(
        store.append("s_a", &bad).await,
        Err(StoreError::SeqOutOfOrder {
            seq: 8,
            last_seq: 8,
            ..
        })
    ));
    assert!(matches!(
        store.append("s_a", &[(3, token("old"))]).await,
        Err(StoreError::SeqOutOfOrder {
            seq: 3,
            last_seq: 6,
            ..
        })
    ));
    assert_eq!(store.load("s_a").await.unwrap().unwrap().events, events);

    // An empty batch is fine and changes nothing.
    store.append("s_a", &[]).await.unwrap();

    // Trim forgets acknowledged events but keeps the numbering.
    store.trim("s_a", 3).await.unwrap();
    let loaded = store.load("s_a").await.unwrap().unwrap();
    let seqs: Vec<u64> = loaded.events.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(seqs, [4, 5, 6]);
    assert_eq!(loaded.events[..], events[3..]);
    assert_eq!(loaded.last_seq, 6);
    store.trim("s_a", 100).await.unwrap();
    let loaded = store.load("s_a").await.unwrap().unwrap();
    assert!(loaded.events.is_empty());
    assert_eq!(loaded.last_seq, 6);
    assert!(matches!(
        store.trim("s_missing", 1).await,
        Err(StoreError::UnknownSession { .. })
    ));
    // Trim touched only its own session.
    assert_eq!(
        store.load("s_b").await.unwrap().unwrap().events,
        [(1, token("other"))]
    );

    // Appends continue after a trim, above the last seq.
    store.append("s_a", &[(7, token("more"))]).await.unwrap();

    // Finish records the outcome and closes the log.
    let outcome = Outcome::Done {
        finish_reason: "stop".into(),
    };
    store.finish("s_a", &outcome).await.unwrap();
    let loaded = store.load("s_a").await.unwrap().unwrap();
    assert!(loaded.meta.finished);
    assert_eq!(loaded.meta.outcome, Some(outcome.clone()));
    assert_eq!(loaded.events, [(7, token("more"))]);
    assert!(matches!(
        store.append("s_a", &[(8, token("late"))]).await,
        Err(StoreError::SessionFinished { .. })
    ));
    assert!(matches!(
        store.finish("s_a", &outcome).await,
        Err(StoreError::SessionFinished { .. })
    ));
    assert!(matches!(
        store.finish("s_missing", &outcome).await,
        Err(StoreError::UnknownSession { .. })
    ));
    store
        .finish(
            "s_b",
            &Outcome::Failed {
                code: ErrorCode::RateLimit,
            },
        )
        .await
        .unwrap();

    // List returns every session, oldest first (a shared store lists none).
    if store.is_shared() {
        assert!(store.list().await.unwrap().is_empty());
    } else {
        check_list(store).await;
    }

    // Remove deletes the session and its events; the id can be reused.
    assert!(store.remove("s_a").await.unwrap());
    assert!(!store.remove("s_a").await.unwrap());
    assert!(store.load("s_a").await.unwrap().is_none());
    let mut piped = meta("s_a", 30);
    piped.pipe = true;
    store.create(&piped).await.unwrap();
    let loaded = store.load("s_a").await.unwrap().unwrap();
    assert!(loaded.events.is_empty());
    assert_eq!(loaded.last_seq, 0);
    assert_eq!(loaded.meta, piped);
    if !store.is_shared() {
        let ids: Vec<String> = store
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(ids, ["s_b", "s_a"]);
    }
}

async fn check_list(store: &dyn SessionStore) {
    let listed = store.list().await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["s_a", "s_b"]);
    assert_eq!(
        listed[1].outcome,
        Some(Outcome::Failed {
            code: ErrorCode::RateLimit
        })
    );
    assert_eq!(listed[0].resume_token, "rt_s_a");
    assert_eq!(listed[0].owner, "alice");
}
