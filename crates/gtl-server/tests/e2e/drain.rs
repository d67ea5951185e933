//! A draining gateway (SIGTERM) on every connection transport: the client
//! is told, the stream running there finishes there, the next call goes to
//! the client's next endpoint, and the drained gateway stops by itself.

use gtl_client::connect;

use crate::harness::{Gateway, Transport, drain, echo};

/// A second gateway that accepts the first one's local token (the same
/// key), as a second instance on the same host does.
async fn sharing_the_key(first: &Gateway) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::copy(
        first.dir.path().join("data/local.key"),
        dir.path().join("data/local.key"),
    )
    .unwrap();
    Gateway::start_in(dir, None).await
}

async fn finishes_there_and_moves_on(transport: Transport) {
    let mut first = Gateway::start_with(|config| config.limits.drain_secs = 60).await;
    let second = sharing_the_key(&first).await;
    let here = first.endpoint(transport);
    let next = second.endpoint(transport);
    let client = connect(first.opts([here.clone(), next.clone()]))
        .await
        .unwrap();
    assert_eq!(client.endpoint(), here);
    let paced = echo("", &[("tokens", "20"), ("delay_ms", "50")]);
    let mut running = client.stream(paced).await.unwrap();
    let first_event = futures::StreamExt::next(&mut running).await;
    assert!(first_event.is_some());

    first.drain();
    let (rest, error) = drain(&mut running).await;
    assert!(error.is_none(), "{error:?}");
    assert!(
        matches!(
            rest.last().map(|e| &e.body),
            Some(gtl_client::proto::Body::Done(_))
        ),
        "the stream finished on the draining gateway: {rest:?}"
    );

    let answer = client.complete(echo("elsewhere", &[])).await.unwrap();
    assert_eq!(answer.text, "elsewhere");
    assert_eq!(
        client.endpoint(),
        next,
        "the new call went to the next endpoint"
    );
    // With its only client gone elsewhere, the first gateway has drained.
    first.shutdown().await;
    let again = client.complete(echo("still here", &[])).await.unwrap();
    assert_eq!(again.text, "still here");
}

macro_rules! per_connection_transport {
    ($($transport:ident),*) => {$(
        #[allow(non_snake_case)]
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $transport() {
            finishes_there_and_moves_on(Transport::$transport).await;
        }
    )*};
}

per_connection_transport!(Uds, Tcp, Ws, Grpc, Quic, Wt);
