//! Every call type against the in-process gateway.

use futures::StreamExt as _;
use gtl_client::proto::{Body, CompletionRequest, ErrorCode};
use gtl_client::{ClientError, ConnectOpts, Event, connect, tool_message};

use crate::support::{assert_complete, drain, request, text};

#[tokio::test]
async fn complete_aggregates_the_reply() {
    let client = connect(ConnectOpts::embedded()).await.unwrap();
    assert_eq!(client.endpoint(), "embedded://");
    let completion = client
        .complete(request("Hello, embedded world", &[]))
        .await
        .unwrap();
    assert_eq!(completion.text, "Hello, embedded world");
    assert_eq!(completion.finish_reason, "stop");
    assert_eq!(
        (completion.provider.as_str(), completion.model.as_str()),
        ("echo", "echo")
    );
    let usage = completion.usage.unwrap();
    assert_eq!((usage.tokens_in, usage.tokens_out), (3, 3));
    assert!(completion.error.is_none());
}

#[tokio::test]
async fn stream_yields_each_event_in_order_and_ends() {
    let client = connect(ConnectOpts::embedded()).await.unwrap();
    let mut events = client.stream(request("one two three", &[])).await.unwrap();
    assert!(
        events.session_id().starts_with("s_"),
        "{}",
        events.session_id()
    );
    let (seen, error) = drain(&mut events).await;
    assert!(error.is_none(), "{error:?}");
    assert_complete(&seen);
    assert_eq!(text(&seen), "one two three");
    assert!(matches!(seen[0].body, Body::Status(_)));
    assert_eq!(events.last_seq(), seen.len() as u64);
    let frame = seen[1].to_frame(events.session_id());
    assert!(frame.to_json().unwrap().contains(r#""type":"token""#));
}

#[tokio::test]
async fn calls_on_one_connection_run_concurrently() {
    let client = connect(ConnectOpts::embedded()).await.unwrap();
    let texts: Vec<String> = (0..8).map(|i| format!("call number {i}")).collect();
    let calls = texts.iter().map(|t| client.complete(request(t, &[])));
    let results = futures::future::join_all(calls).await;
    for (result, expected) in results.into_iter().zip(&texts) {
        assert_eq!(&result.unwrap().text, expected);
    }
}

#[tokio::test]
async fn models_lists_the_echo_provider() {
    let client = connect(ConnectOpts::embedded()).await.unwrap();
    let providers = client.models().await.unwrap();
    let echo = providers.iter().find(|p| p.provider == "echo").unwrap();
    assert!(
        echo.models
            .iter()
            .any(|m| m.name == "echo" && m.supports_streaming)
    );
}

#[tokio::test]
async fn pipe_carries_a_tool_result_into_the_next_turn() {
    let client = connect(ConnectOpts::embedded()).await.unwrap();
    let (input, mut events) = client
        .pipe(request("weather in Oslo", &[("tool_call", "lookup")]))
        .await
        .unwrap();

    // Turn 1: the model asks for the tool and stops.
    let mut turn = Vec::new();
    while let Some(event) = events.next().await {
        let event = event.unwrap();
        let done = matches!(event.body, Body::Done(_));
        turn.push(event);
        if done {
            break;
        }
    }
    let call = turn
        .iter()
        .find_map(|e| match &e.body {
            Body::ToolCall(call) => Some(call.clone()),
            _ => None,
        })
        .expect("a tool call");
    assert_eq!(call.function.as_ref().unwrap().name, "lookup");
    assert!(matches!(&turn.last().unwrap().body, Body::Done(d) if d.finish_reason == "tool_calls"));

    // Turn 2: the tool's answer goes in; it is echoed back, and the stream
    // ends with that turn.
    input
        .send_and_end(vec![tool_message(&call.id, "sunny and 21 degrees")])
        .unwrap();
    let (rest, error) = drain(&mut events).await;
    assert!(error.is_none(), "{error:?}");
    assert!(matches!(rest.last().map(|e| &e.body), Some(Body::Done(_))));
    assert!(
        turn_output(&rest).contains("sunny and 21 degrees"),
        "{rest:?}"
    );
    let all: Vec<Event> = turn.into_iter().chain(rest).collect();
    assert_complete(&all);
}

/// What a turn said: its tokens and its tool calls' arguments.
fn turn_output(events: &[Event]) -> String {
    events
        .iter()
        .filter_map(|e| match &e.body {
            Body::Token(t) => Some(t.text.clone()),
            Body::ToolCall(c) => c.function.as_ref().map(|f| f.arguments.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn ending_an_idle_pipe_ends_the_call_with_end_of_input() {
    let client = connect(ConnectOpts::embedded()).await.unwrap();
    let (input, mut events) = client.pipe(request("first turn", &[])).await.unwrap();
    let mut seen = Vec::new();
    while let Some(event) = events.next().await {
        let event = event.unwrap();
        let done = matches!(event.body, Body::Done(_));
        seen.push(event);
        if done {
            break;
        }
    }
    assert_eq!(text(&seen), "first turn");
    input
        .send(vec![gtl_client::user_message("second turn")])
        .unwrap();
    drop(input); // Dropping the sender ends the input.
    let (rest, error) = drain(&mut events).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(text(&rest), "second turn");
    assert!(
        matches!(&rest.last().unwrap().body, Body::Done(d) if d.finish_reason == "end_of_input"),
        "{rest:?}"
    );
    seen.extend(rest);
    assert_complete(&seen);
}

#[tokio::test]
async fn cancel_ends_the_stream_with_cancelled() {
    let client = connect(ConnectOpts::embedded()).await.unwrap();
    let mut events = client
        .stream(request("x", &[("tokens", "1000000"), ("delay_ms", "1")]))
        .await
        .unwrap();
    // Wait for the generation to be under way.
    while let Some(event) = events.next().await {
        if matches!(event.unwrap().body, Body::Token(_)) {
            break;
        }
    }
    events.cancel("enough");
    let (seen, error) = drain(&mut events).await;
    assert!(seen.len() < 1_000_000);
    let error = error.expect("the stream ends with an error");
    assert_eq!(error.code(), Some(ErrorCode::Cancelled), "{error}");
    let ClientError::Server(error) = error else {
        unreachable!()
    };
    assert!(error.message().contains("enough"), "{error}");
    assert_eq!(error.seq(), events.last_seq() + 1);
    assert_eq!(error.session_id(), events.session_id());
}

#[tokio::test]
async fn a_provider_error_is_an_error_event_after_accepted() {
    let client = connect(ConnectOpts::embedded()).await.unwrap();
    let mut bad_model = request("hi", &[]);
    bad_model.model = "no-such-model".into();
    let mut events = client.stream(bad_model.clone()).await.unwrap();
    let (seen, error) = drain(&mut events).await;
    assert!(seen.is_empty(), "{seen:?}");
    let error = error.unwrap();
    assert_eq!(error.code(), Some(ErrorCode::ModelNotFound));
    assert!(error.to_string().contains("gtl models"), "{error}");
    let ClientError::Server(server) = &error else {
        unreachable!()
    };
    assert_eq!(server.seq(), 1);

    // complete() takes the same path.
    let error = client.complete(bad_model).await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::ModelNotFound));
}

#[tokio::test]
async fn a_refused_call_fails_before_a_stream_exists() {
    let client = connect(ConnectOpts::embedded()).await.unwrap();
    let request = CompletionRequest {
        provider: "no-such-provider".into(),
        ..request("hi", &[])
    };
    let error = client.stream(request).await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::ModelNotFound), "{error}");
    let ClientError::Server(server) = &error else {
        unreachable!()
    };
    assert_eq!(server.seq(), 0);
    // The connection serves the next call.
    assert_eq!(
        client
            .complete(crate::support::request("still here", &[]))
            .await
            .unwrap()
            .text,
        "still here"
    );
}

#[tokio::test]
async fn many_events_are_acked_and_all_delivered() {
    let client = connect(ConnectOpts::embedded()).await.unwrap();
    let completion = client
        .complete(request("x", &[("tokens", "5000")]))
        .await
        .unwrap();
    assert_eq!(completion.usage.unwrap().tokens_out, 5000);
    assert_eq!(completion.text.len(), 5000 * 4);
}

#[tokio::test]
async fn the_embedded_gateway_takes_routes_from_its_configuration() {
    let config = gtl_server::Config::from_toml(
        r#"
[[routes]]
name = "resilient"
targets = [ { model = "echo/echo:error=PROVIDER_UNAVAILABLE" }, { model = "echo/echo" } ]
"#,
    )
    .unwrap();
    let client = connect(ConnectOpts::embedded().with_embedded_config(config))
        .await
        .unwrap();
    let mut routed = request("routed in process", &[]);
    routed.model = "resilient".into();
    let mut events = client.stream(routed).await.unwrap();
    let (events, error) = drain(&mut events).await;
    assert!(error.is_none(), "{error:?}");
    let Some(Body::Status(first)) = events.first().map(|e: &Event| &e.body) else {
        panic!("a status first: {events:?}");
    };
    assert_eq!(first.state, "retrying");
    assert_eq!(text(&events), "routed in process");
}
