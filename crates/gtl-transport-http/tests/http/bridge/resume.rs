//! A cut connection, then `resume` on a new one: exactly the rest.

use std::sync::{Arc, Mutex};

use gtl_proto::{Body, ErrorCode, Frame, Resume};
use gtl_transport::Connection;
use gtl_transport_http::HttpConnector;
use tokio::task::AbortHandle;

use super::{accepted, connector, error, next, open, request, send, seqs, terminal, text, until};
use crate::start;

fn resume(call_id: u64, session_id: &str, after_seq: u64, token: &str) -> Frame {
    Frame {
        call_id,
        session_id: session_id.into(),
        seq: 0,
        body: Some(Body::Resume(Resume {
            after_seq,
            resume_token: token.into(),
        })),
    }
}

/// Resumes `session` after `after_seq` on `conn` and reads to the end:
/// `accepted` first, then the rest.
async fn rest(conn: &mut Connection, session: &str, after_seq: u64, token: &str) -> Vec<Frame> {
    send(conn, [resume(11, session, after_seq, token)]).await;
    let rest = until(conn, terminal).await;
    let (resumed, _) = accepted(&rest[0]);
    assert_eq!(resumed, session);
    assert!(rest.iter().all(|f| f.call_id == 11));
    rest
}

#[tokio::test]
async fn a_new_connection_resumes_a_dropped_one_exactly() {
    let addr = start().await;
    let connector = connector(&addr);
    let (mut first, _) = open(&connector).await;
    send(&mut first, [request(1, "echo:tokens=60,delay_ms=2", "x")]).await;
    let (session, token) = accepted(&next(&mut first).await);
    let before = until(&mut first, |f| f.seq == 20).await;
    drop(first);

    let (mut second, _) = open(&connector).await;
    let after = rest(&mut second, &session, 20, &token).await;
    let mut all = seqs(&before);
    all.extend(seqs(&after));
    let expected: Vec<u64> = (1..=all.len() as u64).collect();
    assert_eq!(all, expected, "nothing lost, nothing doubled");
    assert!(matches!(after.last().unwrap().body, Some(Body::Done(_))));

    // The whole session once more, from the start: the same tokens.
    let replay = rest(&mut second, &session, 0, &token).await;
    let mut cut = before;
    cut.extend(after);
    assert_eq!(text(&replay), text(&cut));
}

/// A TCP relay to the gateway that a test can cut.
struct Relay {
    addr: String,
    links: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Relay {
    async fn to(target: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let links = Arc::new(Mutex::new(Vec::new()));
        let accepted = links.clone();
        tokio::spawn(async move {
            loop {
                let (mut client, _) = listener.accept().await.unwrap();
                let target = target.clone();
                let link = tokio::spawn(async move {
                    let mut server = tokio::net::TcpStream::connect(target).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
                accepted.lock().unwrap().push(link.abort_handle());
            }
        });
        Self { addr, links }
    }

    /// Drops every connection through the relay, as a network failure
    /// would.
    fn cut(&self) {
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }
}

#[tokio::test]
async fn a_broken_stream_fails_the_connection_and_a_resume_gets_the_rest() {
    let addr = start().await;
    let relay = Relay::to(addr.clone()).await;
    let (mut relayed, _) = open(&connector(&relay.addr)).await;
    send(&mut relayed, [request(1, "echo:tokens=60,delay_ms=2", "x")]).await;
    let (session, token) = accepted(&next(&mut relayed).await);
    let before = until(&mut relayed, |f| f.seq == 10).await;
    relay.cut();
    // The frames already bridged may still come, then the failure.
    let mut last = before.last().unwrap().seq;
    let failure = loop {
        match relayed.read.read_frame().await {
            Ok(Some(frame)) => {
                assert_eq!(frame.seq, last + 1);
                last = frame.seq;
            }
            Ok(None) => panic!("the connection ended without saying why"),
            Err(e) => break e,
        }
    };
    assert!(!failure.is_recoverable(), "{failure}");
    assert!(failure.to_string().contains("event stream"), "{failure}");
    // Nothing follows the failure.
    assert!(relayed.read.read_frame().await.unwrap().is_none());

    let direct = HttpConnector::new(&format!("http://{addr}")).unwrap();
    let (mut conn, _) = open(&direct).await;
    let after = rest(&mut conn, &session, last, &token).await;
    let mut all: Vec<u64> = (1..=last).collect();
    all.extend(seqs(&after));
    let expected: Vec<u64> = (1..=all.len() as u64).collect();
    assert_eq!(all, expected, "nothing lost, nothing doubled");
    assert!(matches!(after.last().unwrap().body, Some(Body::Done(_))));
}

#[tokio::test]
async fn a_refused_resume_is_the_error_frame_of_its_call() {
    let addr = start().await;
    let (mut conn, _) = open(&connector(&addr)).await;
    send(&mut conn, [resume(3, "s_nope", 0, "rt")]).await;
    let refusal = next(&mut conn).await;
    assert_eq!((refusal.call_id, refusal.seq), (3, 0));
    assert_eq!(error(&refusal).code(), ErrorCode::ResumeNotFound);
}
