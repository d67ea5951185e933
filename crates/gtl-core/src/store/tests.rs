//! Conformance tests every [`SessionStore`] passes, run against each
//! implementation, plus the redb store's restart test.

use gtl_proto::{Body, Done, ErrorCode, FunctionCall, Status, Token, ToolCall, Usage};

use super::*;

fn token(text: &str) -> Body {
    Body::Token(Token { text: text.into() })
}

fn meta(id: &str, created_unix_ms: u64) -> SessionMeta {
    SessionMeta::new(id, "alice", format!("rt_{id}"), created_unix_ms)
}

fn sample_events() -> Vec<(u64, Body)> {
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

/// The behaviour every store must have.
fn conformance(store: &dyn SessionStore) {
    // Create, and the id is then taken.
    store.create(&meta("s_b", 20)).unwrap();
    store.create(&meta("s_a", 10)).unwrap();
    assert!(matches!(
        store.create(&meta("s_a", 99)),
        Err(StoreError::SessionExists { session_id }) if session_id == "s_a"
    ));

    // A new session loads with no events.
    let loaded = store.load("s_a").unwrap().unwrap();
    assert_eq!(loaded.meta, meta("s_a", 10));
    assert!(loaded.events.is_empty());
    assert_eq!(loaded.last_seq, 0);
    assert!(store.load("s_missing").unwrap().is_none());

    // Append in two batches; load returns them in seq order.
    let events = sample_events();
    store.append("s_a", &events[..2]).unwrap();
    store.append("s_a", &events[2..]).unwrap();
    store.append("s_b", &[(1, token("other"))]).unwrap();
    let loaded = store.load("s_a").unwrap().unwrap();
    assert_eq!(loaded.events, events);
    assert_eq!(loaded.last_seq, 6);

    // Appending to an unknown session is a typed error.
    assert!(matches!(
        store.append("s_missing", &[(1, token("x"))]),
        Err(StoreError::UnknownSession { session_id }) if session_id == "s_missing"
    ));

    // A batch with a bad seq is refused whole.
    let bad = [(7, token("ok")), (8, token("ok")), (8, token("dup"))];
    assert!(matches!(
        store.append("s_a", &bad),
        Err(StoreError::SeqOutOfOrder {
            seq: 8,
            last_seq: 8,
            ..
        })
    ));
    assert!(matches!(
        store.append("s_a", &[(3, token("old"))]),
        Err(StoreError::SeqOutOfOrder {
            seq: 3,
            last_seq: 6,
            ..
        })
    ));
    assert_eq!(store.load("s_a").unwrap().unwrap().events, events);

    // An empty batch is fine and changes nothing.
    store.append("s_a", &[]).unwrap();

    // Trim forgets acknowledged events but keeps the numbering.
    store.trim("s_a", 3).unwrap();
    let loaded = store.load("s_a").unwrap().unwrap();
    let seqs: Vec<u64> = loaded.events.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(seqs, [4, 5, 6]);
    assert_eq!(loaded.events[..], events[3..]);
    assert_eq!(loaded.last_seq, 6);
    store.trim("s_a", 100).unwrap();
    let loaded = store.load("s_a").unwrap().unwrap();
    assert!(loaded.events.is_empty());
    assert_eq!(loaded.last_seq, 6);
    assert!(matches!(
        store.trim("s_missing", 1),
        Err(StoreError::UnknownSession { .. })
    ));
    // Trim touched only its own session.
    assert_eq!(
        store.load("s_b").unwrap().unwrap().events,
        [(1, token("other"))]
    );

    // Appends continue after a trim, above the last seq.
    store.append("s_a", &[(7, token("more"))]).unwrap();

    // Finish records the outcome and closes the log.
    let outcome = Outcome::Done {
        finish_reason: "stop".into(),
    };
    store.finish("s_a", &outcome).unwrap();
    let loaded = store.load("s_a").unwrap().unwrap();
    assert!(loaded.meta.finished);
    assert_eq!(loaded.meta.outcome, Some(outcome.clone()));
    assert_eq!(loaded.events, [(7, token("more"))]);
    assert!(matches!(
        store.append("s_a", &[(8, token("late"))]),
        Err(StoreError::SessionFinished { .. })
    ));
    assert!(matches!(
        store.finish("s_a", &outcome),
        Err(StoreError::SessionFinished { .. })
    ));
    assert!(matches!(
        store.finish("s_missing", &outcome),
        Err(StoreError::UnknownSession { .. })
    ));
    store
        .finish(
            "s_b",
            &Outcome::Failed {
                code: ErrorCode::RateLimit,
            },
        )
        .unwrap();

    // List returns every session, oldest first.
    let listed = store.list().unwrap();
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

    // Remove deletes the session and its events; the id can be reused.
    assert!(store.remove("s_a").unwrap());
    assert!(!store.remove("s_a").unwrap());
    assert!(store.load("s_a").unwrap().is_none());
    store.create(&meta("s_a", 30)).unwrap();
    let loaded = store.load("s_a").unwrap().unwrap();
    assert!(loaded.events.is_empty());
    assert_eq!(loaded.last_seq, 0);
    let ids: Vec<String> = store.list().unwrap().into_iter().map(|m| m.id).collect();
    assert_eq!(ids, ["s_b", "s_a"]);
}

#[test]
fn memory_store_conforms() {
    conformance(&MemoryStore::new());
}

#[test]
fn session_meta_debug_redacts_the_resume_token() {
    let shown = format!("{:?}", meta("s_1", 1));
    assert!(!shown.contains("rt_s_1"), "{shown}");
    assert!(shown.contains("<redacted>"), "{shown}");
}

#[test]
fn outcome_follows_the_terminal_event() {
    assert_eq!(
        Outcome::from_terminal(&Body::Done(Done {
            finish_reason: "length".into()
        })),
        Some(Outcome::Done {
            finish_reason: "length".into()
        })
    );
    let error = gtl_proto::Error {
        code: ErrorCode::Cancelled as i32,
        ..Default::default()
    };
    assert_eq!(
        Outcome::from_terminal(&Body::Error(error)),
        Some(Outcome::Failed {
            code: ErrorCode::Cancelled
        })
    );
    assert_eq!(Outcome::from_terminal(&token("x")), None);
}

#[cfg(feature = "redb")]
mod redb {
    use super::*;

    #[test]
    fn redb_store_conforms() {
        let dir = tempfile::tempdir().unwrap();
        conformance(&RedbStore::open(dir.path().join("sessions.redb")).unwrap());
    }

    #[test]
    fn a_reopened_database_replays_its_events() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sessions.redb");
        let events = sample_events();
        {
            let store = RedbStore::open(&path).unwrap();
            store.create(&meta("s_1", 5)).unwrap();
            store.append("s_1", &events[..3]).unwrap();
            store.append("s_1", &events[3..5]).unwrap();
            store.create(&meta("s_2", 6)).unwrap();
            store.append("s_2", &[(1, token("kept"))]).unwrap();
            store.trim("s_2", 1).unwrap();
            store
                .finish(
                    "s_2",
                    &Outcome::Failed {
                        code: ErrorCode::Internal,
                    },
                )
                .unwrap();
            // Dropping the store closes the database file.
        }
        let store = RedbStore::open(&path).unwrap();
        let loaded = store.load("s_1").unwrap().unwrap();
        assert_eq!(loaded.meta, meta("s_1", 5));
        assert_eq!(loaded.events[..], events[..5]);
        assert_eq!(loaded.last_seq, 5);
        // Numbering continues where it stopped, including for a trimmed log.
        store.append("s_1", &events[5..]).unwrap();
        assert_eq!(store.load("s_1").unwrap().unwrap().events, events);
        let s2 = store.load("s_2").unwrap().unwrap();
        assert!(s2.events.is_empty());
        assert_eq!(s2.last_seq, 1);
        assert_eq!(
            s2.meta.outcome,
            Some(Outcome::Failed {
                code: ErrorCode::Internal
            })
        );
        assert_eq!(store.list().unwrap().len(), 2);
    }

    #[test]
    fn a_database_file_is_locked_while_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sessions.redb");
        let _store = RedbStore::open(&path).unwrap();
        assert!(matches!(
            RedbStore::open(&path),
            Err(StoreError::Backend(_))
        ));
    }

    #[test]
    fn corrupt_rows_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sessions.redb");
        {
            let store = RedbStore::open(&path).unwrap();
            store.create(&meta("s_1", 1)).unwrap();
        }
        {
            // Write a row that is not a protobuf frame, behind the store's back.
            let db = ::redb::Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let def: ::redb::TableDefinition<'_, (&str, u64), &[u8]> =
                    ::redb::TableDefinition::new("gtl.v1.events");
                let mut table = txn.open_table(def).unwrap();
                table
                    .insert(("s_1", 1), [0xff_u8, 0xff, 0xff].as_slice())
                    .unwrap();
            }
            txn.commit().unwrap();
        }
        let store = RedbStore::open(&path).unwrap();
        let error = store.load("s_1").unwrap_err();
        assert!(matches!(&error, StoreError::Corrupt { session_id, .. } if session_id == "s_1"));
        assert!(std::error::Error::source(&error).is_some());
    }
}
