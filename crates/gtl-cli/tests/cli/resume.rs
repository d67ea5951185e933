//! `gtl chat --resume`: a reply another process started, picked up from its
//! resume point.

use std::collections::BTreeMap;
use std::process::Command;

use futures::StreamExt as _;
use gtl_client::proto::{Body, CompletionRequest, Frame};
use gtl_client::{ConnectOpts, connect, user_message};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gtl_chat_resume_prints_the_rest_of_a_reply() {
    let dir = tempfile::tempdir().unwrap();
    let config = crate::uds_only(dir.path());
    let registry = gtl_server::default_registry(&config).unwrap();
    let server = gtl_server::Server::bind(&config, registry).await.unwrap();
    let endpoint = server.endpoints()[0].clone();
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));

    let client = connect(ConnectOpts::new([endpoint.as_str()]))
        .await
        .unwrap();
    let request = CompletionRequest {
        model: "echo".into(),
        messages: vec![user_message("one two three four five six seven eight")],
        metadata: BTreeMap::from([("echo.tokens".to_owned(), "40".to_owned())]),
        ..CompletionRequest::default()
    };
    let expected = client.complete(request.clone()).await.unwrap().text;
    let mut events = client.stream(request).await.unwrap();
    let mut text = String::new();
    for _ in 0..10 {
        if let Body::Token(token) = events.next().await.unwrap().unwrap().body {
            text.push_str(&token.text);
        }
    }
    let point = events.detach();

    let args = [
        "chat".to_owned(),
        "--json".to_owned(),
        "--endpoint".to_owned(),
        endpoint.clone(),
        "--resume".to_owned(),
        point.session_id.clone(),
        "--after".to_owned(),
        point.after_seq.to_string(),
    ];
    let token = point.resume_token.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_gtl"))
            .args(args)
            .env_remove("GTL_ENDPOINT")
            .env("GTL_RESUME_TOKEN", token)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let frames: Vec<Frame> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| Frame::from_json(line.as_bytes()).unwrap())
        .collect();
    assert!(matches!(frames[0].body, Some(Body::Accepted(_))));
    assert_eq!(frames[0].session_id, point.session_id);
    let seqs: Vec<u64> = frames[1..].iter().map(|f| f.seq).collect();
    let after = point.after_seq;
    assert_eq!(
        seqs,
        (after + 1..after + 1 + seqs.len() as u64).collect::<Vec<_>>()
    );
    for frame in &frames[1..] {
        if let Some(Body::Token(token)) = &frame.body {
            text.push_str(&token.text);
        }
    }
    assert!(matches!(frames.last().unwrap().body, Some(Body::Done(_))));
    assert_eq!(text, expected, "nothing lost or repeated");

    // A wrong token: the documented GTL-error exit status.
    let args = [
        "chat",
        "--endpoint",
        &endpoint,
        "--resume",
        &point.session_id,
        "--resume-token",
        "wrong",
    ]
    .map(str::to_owned);
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_gtl"))
            .args(args)
            .env_remove("GTL_RESUME_TOKEN")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(output.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&output.stderr).contains("RESUME_NOT_FOUND"));
}
