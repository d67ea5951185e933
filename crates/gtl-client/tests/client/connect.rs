//! Endpoint URLs and connection failures.

use gtl_client::{ClientError, ConnectOpts, connect};

use crate::support::{Gateway, fast_policy, request};

#[tokio::test]
async fn an_unknown_scheme_names_the_supported_ones() {
    let error = connect(ConnectOpts::new(["gopher://gateway.example:70"]))
        .await
        .unwrap_err();
    assert!(matches!(&error, ClientError::UnsupportedScheme { scheme, .. } if scheme == "gopher"));
    let message = error.to_string();
    for scheme in ["stdio://", "unix://", "tcp://"] {
        assert!(message.contains(scheme), "{message}");
    }
    assert!(!error.is_connect());
}

/// A list written for several clients may name transports this build
/// lacks: those are skipped, the rest are tried.
#[tokio::test]
async fn an_unsupported_scheme_in_a_list_is_skipped() {
    let gateway = Gateway::start().await;
    let opts = gateway.opts(["webtransport://somewhere:1", gateway.unix.as_str()]);
    let client = connect(opts).await.unwrap();
    assert_eq!(client.endpoint(), gateway.unix);
    let completion = client.complete(request("skipped", &[])).await.unwrap();
    assert_eq!(completion.text, "skipped");
}

#[tokio::test]
async fn no_endpoints_is_an_error() {
    let error = connect(ConnectOpts::new(Vec::<String>::new()))
        .await
        .unwrap_err();
    assert_eq!(error, ClientError::NoEndpoints);
}

#[tokio::test]
async fn a_missing_socket_says_how_to_start_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("unix://{}", dir.path().join("gtl.sock").display());
    let opts = ConnectOpts::new([url.as_str()]).with_reconnect(fast_policy());
    let error = connect(opts).await.unwrap_err();
    assert!(error.is_connect());
    assert_eq!(error.code(), None);
    let message = error.to_string();
    assert!(message.contains(&url), "{message}");
    assert!(message.contains("no such socket file"), "{message}");
    assert!(message.contains("is gtl-server running?"), "{message}");
    assert!(
        message.contains("cargo run --release -p gtl-server"),
        "{message}"
    );
}

#[tokio::test]
async fn a_command_that_cannot_run_is_named() {
    let opts = ConnectOpts::new(["stdio://gtl-no-such-command --stdio"]);
    let error = connect(opts).await.unwrap_err();
    assert!(error.is_connect());
    let message = error.to_string();
    assert!(message.contains("gtl-no-such-command"), "{message}");
    assert!(message.contains("PATH"), "{message}");
}

#[tokio::test]
async fn endpoints_are_tried_in_order() {
    let gateway = Gateway::start().await;
    let dir = tempfile::tempdir().unwrap();
    let missing = format!("unix://{}", dir.path().join("none.sock").display());
    let opts = gateway
        .opts([
            missing.as_str(),
            gateway.tcp.as_str(),
            gateway.unix.as_str(),
        ])
        .with_reconnect(fast_policy());
    let client = connect(opts).await.unwrap();
    assert_eq!(client.endpoint(), gateway.tcp);
    assert_eq!(
        client
            .complete(request("over tcp", &[]))
            .await
            .unwrap()
            .text,
        "over tcp"
    );

    let client = connect(gateway.opts([gateway.unix.as_str()]))
        .await
        .unwrap();
    assert_eq!(client.endpoint(), gateway.unix);
    assert_eq!(
        client
            .complete(request("over unix", &[]))
            .await
            .unwrap()
            .text,
        "over unix"
    );
    assert!(!client.models().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_token_the_gateway_cannot_check_is_refused_with_its_code() {
    let gateway = Gateway::start().await;
    let opts = gateway
        .opts([gateway.unix.as_str()])
        .with_token("not-a-jwt")
        .with_reconnect(fast_policy());
    // The gateway refuses after its welcome; the call reports why, and is
    // not retried with the same credentials.
    let result = match connect(opts).await {
        Ok(client) => client.complete(request("hi", &[])).await.map(|_| ()),
        Err(e) => Err(e),
    };
    let error = result.unwrap_err();
    assert_eq!(
        error.code(),
        Some(gtl_client::ErrorCode::Unauthenticated),
        "{error}"
    );
}
