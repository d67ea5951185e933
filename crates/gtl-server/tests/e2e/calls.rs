//! The routes, over each transport.

use futures::StreamExt as _;
use gtl_client::proto::{Body, ErrorCode};
use gtl_client::tool_message;

use crate::harness::{Gateway, Transport, assert_contiguous, bodies, drain, echo, expected, take};

crate::per_transport!(
    chat_complete,
    chat_stream,
    session_pipe_with_a_tool_result,
    cancel_drops_the_provider_stream,
    models_list,
    many_concurrent_streams_on_one_connection,
    unknown_model,
    a_resume_elsewhere_ends_the_call_it_took_the_session_from,
    a_resume_at_the_terminal_seq_ends_with_the_terminal_event,
);

async fn chat_complete(transport: Transport) {
    let gateway = Gateway::start().await;
    let client = gateway.client(transport).await;
    let completion = client
        .complete(echo("Hello over the wire", &[]))
        .await
        .unwrap();
    assert_eq!(completion.text, "Hello over the wire");
    assert_eq!(completion.finish_reason, "stop");
    let usage = completion.usage.unwrap();
    assert_eq!((usage.tokens_in, usage.tokens_out), (4, 4));
}

async fn chat_stream(transport: Transport) {
    let gateway = Gateway::start().await;
    let client = gateway.client(transport).await;
    let request = echo("one two three four five", &[("tokens", "300")]);
    let mut events = client.stream(request.clone()).await.unwrap();
    let (seen, error) = drain(&mut events).await;
    assert!(error.is_none(), "{error:?}");
    assert_contiguous(&seen);
    assert_eq!(bodies(&seen), expected(&request).await);
}

async fn session_pipe_with_a_tool_result(transport: Transport) {
    let gateway = Gateway::start().await;
    let client = gateway.client(transport).await;
    let (input, mut events) = client
        .pipe(echo("weather in Oslo?", &[("tool_call", "get_weather")]))
        .await
        .unwrap();
    // Turn 1: the model calls the tool.
    let turn = take(&mut events, 4).await;
    let Body::ToolCall(call) = &turn[1].body else {
        panic!("no tool call: {turn:?}")
    };
    assert_eq!(call.function.as_ref().unwrap().name, "get_weather");
    assert!(matches!(&turn[3].body, Body::Done(d) if d.finish_reason == "tool_calls"));
    // The tool's result goes in while the session is open; turn 2 answers it.
    input
        .send_and_end(vec![tool_message(&call.id, "sunny, 21 degrees")])
        .unwrap();
    let (rest, error) = drain(&mut events).await;
    assert!(error.is_none(), "{error:?}");
    let text: String = rest
        .iter()
        .filter_map(|e| match &e.body {
            Body::Token(t) => Some(t.text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(text, "sunny, 21 degrees");
    // The last turn's own done, then the call's end of its own.
    let reasons: Vec<&str> = rest
        .iter()
        .filter_map(|e| match &e.body {
            Body::Done(d) => Some(d.finish_reason.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(reasons, ["stop", "end_of_input"]);
    let all: Vec<_> = turn.into_iter().chain(rest).collect();
    assert_contiguous(&all);
}

async fn cancel_drops_the_provider_stream(transport: Transport) {
    let gateway = Gateway::start().await;
    let client = gateway.client(transport).await;
    let mut events = client
        .stream(echo("x", &[("tokens", "100000"), ("delay_ms", "1")]))
        .await
        .unwrap();
    take(&mut events, 3).await;
    events.cancel("the user pressed stop");
    let (_, error) = drain(&mut events).await;
    assert_eq!(error.and_then(|e| e.code()), Some(ErrorCode::Cancelled));
    if transport != Transport::Stdio {
        // The provider's stream was dropped, not left running.
        let stats = gateway.echo.stats();
        assert_eq!((stats.started, stats.dropped), (1, 1), "{stats:?}");
    }
}

async fn models_list(transport: Transport) {
    let gateway = Gateway::start().await;
    let client = gateway.client(transport).await;
    let providers = client.models().await.unwrap();
    assert_eq!(providers.len(), 1);
    assert_eq!(providers[0].provider, "echo");
    assert!(
        providers[0]
            .models
            .iter()
            .any(|m| m.name == "echo" && m.supports_streaming)
    );
}

async fn many_concurrent_streams_on_one_connection(transport: Transport) {
    let gateway = Gateway::start().await;
    let client = gateway.client(transport).await;
    let runs = (0..128).map(|i| {
        let client = &client;
        async move {
            let request = echo(&format!("stream {i} says hello"), &[("tokens", "50")]);
            let mut events = client.stream(request.clone()).await.unwrap();
            let mut seen = Vec::new();
            while let Some(event) = events.next().await {
                seen.push(event.unwrap());
            }
            assert_contiguous(&seen);
            assert_eq!(bodies(&seen), expected(&request).await);
        }
    });
    futures::future::join_all(runs).await;
}

async fn unknown_model(transport: Transport) {
    let gateway = Gateway::start().await;
    let client = gateway.client(transport).await;
    let mut request = echo("x", &[]);
    request.model = "gpt-17".into();
    let err = client.complete(request.clone()).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::ModelNotFound), "{err}");
    request.model = "nowhere/gpt-17".into();
    request.provider = "nowhere".into();
    let err = client.complete(request).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::ModelNotFound), "{err}");
    assert!(err.to_string().contains("nowhere"), "{err}");
    // The connection still serves.
    assert_eq!(
        client.complete(echo("still here", &[])).await.unwrap().text,
        "still here"
    );
}

/// Every call leaves one audit line — who, which route and transport, the
/// provider and model, tokens, outcome, session — and never its text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_audited_without_their_text() {
    let gateway = Gateway::start().await;
    let client = gateway.client(Transport::Tcp).await;
    client
        .complete(echo("a private sentence", &[]))
        .await
        .unwrap();
    let failed = client
        .complete(echo("also private", &[("error", "RATE_LIMIT")]))
        .await
        .unwrap_err();
    assert_eq!(failed.code(), Some(ErrorCode::RateLimit));
    let log = gateway.dir.path().join("data/audit.log");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let lines = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.lines().count() >= 2 || std::time::Instant::now() > deadline {
            break text;
        }
        tokio::task::yield_now().await;
    };
    assert!(!lines.contains("private"), "{lines}");
    let records: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2, "{lines}");
    let ok = &records[0];
    assert_eq!(ok["route"], "chat.complete");
    assert_eq!(ok["transport"], "tcp");
    assert_eq!(ok["provider"], "echo");
    assert_eq!(ok["model"], "echo");
    assert_eq!(ok["outcome"], "ok");
    assert_eq!(ok["tokens_in"], 3);
    assert_eq!(ok["tokens_out"], 3);
    assert!(!ok["session_id"].as_str().unwrap().is_empty());
    assert!(ok["subject"].as_str().unwrap().starts_with("uid:"));
    assert_eq!(records[1]["outcome"], "error");
    assert_eq!(records[1]["error_code"], "RATE_LIMIT");
}

async fn a_resume_elsewhere_ends_the_call_it_took_the_session_from(transport: Transport) {
    let gateway = Gateway::start().await;
    let first = gateway.client(transport).await;
    let request = echo("one two three", &[("tokens", "400"), ("delay_ms", "2")]);
    let mut held = first.stream(request.clone()).await.unwrap();
    let before = take(&mut held, 3).await;
    // Another connection of the same owner picks the session up (a stdio
    // gateway is a process per connection: there, another call on the same
    // connection does).
    let second = match transport {
        Transport::Stdio => None,
        _ => Some(gateway.client(transport).await),
    };
    let mut resumed = second
        .as_ref()
        .unwrap_or(&first)
        .resume(held.resume_point())
        .await
        .unwrap();
    // The call that held the session is told, and ends.
    let (_, error) = drain(&mut held).await;
    let error = error.expect("the displaced call ends with an error");
    assert_eq!(error.code(), Some(ErrorCode::SessionMoved), "{error:?}");
    // The new one has the rest: nothing lost, nothing doubled.
    let (after, error) = drain(&mut resumed).await;
    assert!(error.is_none(), "{error:?}");
    let all: Vec<_> = before.into_iter().chain(after).collect();
    assert_contiguous(&all);
    assert_eq!(bodies(&all), expected(&request).await);
}

async fn a_resume_at_the_terminal_seq_ends_with_the_terminal_event(transport: Transport) {
    let gateway = Gateway::start().await;
    let client = gateway.client(transport).await;
    let mut events = client.stream(echo("done soon", &[])).await.unwrap();
    let (seen, error) = drain(&mut events).await;
    assert!(error.is_none(), "{error:?}");
    let last = seen.last().unwrap().clone();
    assert!(matches!(last.body, Body::Done(_)), "{last:?}");
    // A client that has everything resumes anyway (it kept the point, not
    // the end): the gateway sends the terminal event again, which the
    // client knows by its seq, so the call ends instead of waiting forever.
    let point = events.resume_point();
    assert_eq!(point.after_seq, last.seq);
    let mut again = client.resume(point).await.unwrap();
    let ended = tokio::time::timeout(std::time::Duration::from_secs(10), drain(&mut again)).await;
    let (seen, error) = ended.expect("the resumed call never ended");
    assert!(seen.is_empty() && error.is_none(), "{seen:?} {error:?}");
}
