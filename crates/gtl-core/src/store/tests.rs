//! Conformance tests every [`SessionStore`] passes, run against each
//! implementation, plus the redb store's restart test.

use gtl_proto::{Body, Done, ErrorCode};

use super::conformance::{check, meta, sample_events, token};
use super::*;

#[tokio::test]
async fn memory_store_conforms() {
    check(&MemoryStore::new()).await;
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

    #[tokio::test]
    async fn redb_store_conforms() {
        let dir = tempfile::tempdir().unwrap();
        check(&RedbStore::open(dir.path().join("sessions.redb")).unwrap()).await;
    }

    #[tokio::test]
    async fn a_reopened_database_replays_its_events() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sessions.redb");
        let events = sample_events();
        {
            let store = RedbStore::open(&path).unwrap();
            store.create(&meta("s_1", 5)).await.unwrap();
            store.append("s_1", &events[..3]).await.unwrap();
            store.append("s_1", &events[3..5]).await.unwrap();
            store.create(&meta("s_2", 6)).await.unwrap();
            store.append("s_2", &[(1, token("kept"))]).await.unwrap();
            store.trim("s_2", 1).await.unwrap();
            store
                .finish(
                    "s_2",
                    &Outcome::Failed {
                        code: ErrorCode::Internal,
                    },
                )
                .await
                .unwrap();
            // Dropping the store closes the database file.
        }
        let store = RedbStore::open(&path).unwrap();
        let loaded = store.load("s_1").await.unwrap().unwrap();
        assert_eq!(loaded.meta, meta("s_1", 5));
        assert_eq!(loaded.events[..], events[..5]);
        assert_eq!(loaded.last_seq, 5);
        // Numbering continues where it stopped, including for a trimmed log.
        store.append("s_1", &events[5..]).await.unwrap();
        assert_eq!(store.load("s_1").await.unwrap().unwrap().events, events);
        let s2 = store.load("s_2").await.unwrap().unwrap();
        assert!(s2.events.is_empty());
        assert_eq!(s2.last_seq, 1);
        assert_eq!(
            s2.meta.outcome,
            Some(Outcome::Failed {
                code: ErrorCode::Internal
            })
        );
        assert_eq!(store.list().await.unwrap().len(), 2);
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

    #[tokio::test]
    async fn corrupt_rows_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sessions.redb");
        {
            let store = RedbStore::open(&path).unwrap();
            store.create(&meta("s_1", 1)).await.unwrap();
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
        let error = store.load("s_1").await.unwrap_err();
        assert!(matches!(&error, StoreError::Corrupt { session_id, .. } if session_id == "s_1"));
        assert!(std::error::Error::source(&error).is_some());
    }
}
