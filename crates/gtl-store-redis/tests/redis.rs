//! The Redis store against a real `redis-server` of the test's own.

use std::sync::Arc;
use std::time::Duration;

use gtl_core::store_conformance::{check, meta, sample_events, token};
use gtl_core::{Outcome, SessionStore, SessionWrite, StoreError};
use gtl_store_redis::{RedisConfig, RedisStore};
use gtl_test::RedisServer;

async fn store(server: &RedisServer) -> RedisStore {
    RedisStore::connect(RedisConfig::new(server.url()).with_lease(Duration::from_millis(300)))
        .await
        .expect("connect to the test's redis-server")
}

#[tokio::test]
async fn the_redis_store_conforms() {
    let server = RedisServer::start().unwrap();
    check(&store(&server).await).await;
}

#[tokio::test]
async fn a_tail_waits_for_the_next_event_and_claims_fence_the_seqs() {
    let server = RedisServer::start().unwrap();
    let a = Arc::new(store(&server).await);
    let b = store(&server).await;
    let mut first = SessionWrite::new("s_1");
    first.create = Some(meta("s_1", 1));
    first.events = sample_events()[..2].to_vec();
    assert!(a.commit(vec![first]).await.iter().all(Result::is_ok));

    // B reads what is there at once, then waits for what A writes next.
    let now = b.tail("s_1", 0, Duration::from_secs(5)).await.unwrap();
    assert_eq!(now, sample_events()[..2]);
    let writer = a.clone();
    let later = tokio::spawn(async move {
        writer.append("s_1", &sample_events()[2..3]).await.unwrap();
    });
    let next = b.tail("s_1", 2, Duration::from_secs(5)).await.unwrap();
    assert_eq!(next, sample_events()[2..3]);
    later.await.unwrap();
    assert!(
        b.tail("s_1", 3, Duration::from_millis(50))
            .await
            .unwrap()
            .is_empty()
    );

    // A holds the claim while it renews; unrenewed, it lapses to B.
    assert!(!b.claim("s_1").await.unwrap());
    a.renew(&["s_1".to_owned()]).await.unwrap();
    assert!(!b.claim("s_1").await.unwrap());
    a.release(&["s_1".to_owned()]).await.unwrap();
    assert!(b.claim("s_1").await.unwrap());
    // B ends the generation; A, still believing it drives, cannot write
    // the same seq.
    let mut end = SessionWrite::new("s_1");
    end.events = vec![(4, token("from b"))];
    end.outcome = Some(Outcome::Failed {
        code: gtl_proto::ErrorCode::Internal,
    });
    assert!(b.commit(vec![end]).await[0].is_ok());
    assert!(matches!(
        a.append("s_1", &[(4, token("from a"))]).await,
        Err(StoreError::SessionFinished { .. })
    ));
}

#[tokio::test]
async fn a_cancel_reaches_the_driver_at_its_next_renewal() {
    let server = RedisServer::start().unwrap();
    let a = store(&server).await;
    let b = store(&server).await;
    a.create(&meta("s_1", 1)).await.unwrap();
    b.request_cancel("s_1", "user stop").await.unwrap();
    let ids = ["s_1".to_owned()];
    assert_eq!(
        a.renew(&ids).await.unwrap(),
        [("s_1".to_owned(), "user stop".to_owned())]
    );
    assert!(a.renew(&ids).await.unwrap().is_empty());
    assert!(matches!(
        b.request_cancel("s_none", "x").await,
        Err(StoreError::UnknownSession { .. })
    ));
}

#[tokio::test]
async fn with_redis_gone_calls_fail_fast_and_recover_when_it_returns() {
    let mut server = RedisServer::start().unwrap();
    let a = store(&server).await;
    a.create(&meta("s_1", 1)).await.unwrap();
    server.kill();
    let started = std::time::Instant::now();
    assert!(matches!(a.ping().await, Err(StoreError::Backend(_))));
    assert!(matches!(
        a.append("s_1", &[(1, token("x"))]).await,
        Err(StoreError::Backend(_))
    ));
    assert!(a.tail("s_1", 0, Duration::from_millis(100)).await.is_err());
    // Bounded by the command timeout, not a hang (a generous bound).
    assert!(started.elapsed() < Duration::from_secs(30));
    server.restart().unwrap();
    // The connection manager reconnects on the next commands.
    let mut back = false;
    for _ in 0..20 {
        if a.ping().await.is_ok() {
            back = true;
            break;
        }
    }
    assert!(back, "the store did not reconnect");
    // The restarted server is empty: the session is gone, a new one works.
    assert!(a.load("s_1").await.unwrap().is_none());
    a.create(&meta("s_2", 2)).await.unwrap();
}

#[tokio::test]
async fn counters_add_up_across_connections_and_expire_with_their_period() {
    use gtl_core::counters::{Counters, SharedCounters, unix_now};
    let server = RedisServer::start().unwrap();
    let a: Arc<dyn SharedCounters> = Arc::new(store(&server).await);
    let b: Arc<dyn SharedCounters> = Arc::new(store(&server).await);
    let now = unix_now();
    let delta = gtl_core::counters::CounterDelta::new;
    assert_eq!(a.add(&[delta("k", 2.5, now + 60)]).await.unwrap(), [2.5]);
    assert_eq!(
        b.add(&[delta("k", 1.0, now + 60), delta("j", 0.0, now + 60)])
            .await
            .unwrap(),
        [3.5, 0.0]
    );
    // A counter whose period ended is gone.
    assert_eq!(a.add(&[delta("old", 1.0, now - 1)]).await.unwrap(), [1.0]);
    assert_eq!(a.add(&[delta("old", 0.0, now + 60)]).await.unwrap(), [0.0]);

    // Through `Counters`: B sees A's additions after a sync.
    let ca = Counters::shared(a);
    let cb = Counters::shared(b);
    ca.add("calls", 4.0, now + 60, now);
    let seen = async {
        loop {
            if cb.get("calls", now) == 4.0 {
                return;
            }
            tokio::time::sleep(gtl_core::counters::SYNC_EVERY).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), seen)
        .await
        .unwrap();
}
