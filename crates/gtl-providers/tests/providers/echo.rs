//! The echo provider: its output, every knob, determinism and its counters.

use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt as _, StreamExt as _};
use gtl_core::{Completion, EventStream, Provider, ProviderError, complete};
use gtl_proto::types::{Content, Part};
use gtl_proto::{
    Body, CompletionRequest, ContentPart, ContentParts, Done, ErrorCode, Image, Message, Phase,
    Role, Status, Token, Usage,
};
use gtl_providers::EchoProvider;

fn message(role: Role, text: &str) -> Message {
    Message {
        role: role as i32,
        content: Some(Content::Text(text.into())),
        ..Message::default()
    }
}

fn request(text: &str) -> CompletionRequest {
    CompletionRequest {
        model: "echo".into(),
        messages: vec![message(Role::User, text)],
        stream: true,
        ..CompletionRequest::default()
    }
}

fn with_knobs(mut request: CompletionRequest, knobs: &[(&str, &str)]) -> CompletionRequest {
    for (key, value) in knobs {
        request
            .metadata
            .insert(format!("echo.{key}"), (*value).to_owned());
    }
    request
}

async fn events(provider: &EchoProvider, request: CompletionRequest) -> Vec<Body> {
    provider
        .stream(request)
        .await
        .expect("stream starts")
        .collect()
        .await
}

async fn stream_error(provider: &EchoProvider, request: CompletionRequest) -> ProviderError {
    match provider.stream(request).await {
        Ok(_) => panic!("the stream was expected to be refused"),
        Err(error) => error,
    }
}

fn token(text: &str) -> Body {
    Body::Token(Token { text: text.into() })
}

fn status() -> Body {
    Body::Status(Status {
        state: "streaming".into(),
        provider: "echo".into(),
        model: "echo".into(),
        reason: String::new(),
    })
}

fn usage(tokens_in: u64, tokens_out: u64) -> Body {
    Body::Usage(Usage {
        tokens_in,
        tokens_out,
        cost: 0.0,
        cached_tokens: 0,
    })
}

fn done(reason: &str) -> Body {
    Body::Done(Done {
        finish_reason: reason.into(),
    })
}

fn tokens_of(events: &[Body]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|body| match body {
            Body::Token(token) => Some(token.text.as_str()),
            _ => None,
        })
        .collect()
}

/// Polls the stream once without waiting: `None` when it is pending.
fn poll_now(stream: &mut EventStream) -> Option<Option<Body>> {
    stream.next().now_or_never()
}

#[tokio::test]
async fn streams_the_user_text_back_word_by_word() {
    let echo = EchoProvider::new();
    let got = events(&echo, request("Hello, brave  new\nworld")).await;
    assert_eq!(
        got,
        [
            status(),
            token("Hello, "),
            token("brave  "),
            token("new\n"),
            token("world"),
            usage(4, 4),
            done("stop"),
        ]
    );
}

#[tokio::test]
async fn complete_gives_back_the_input_exactly() {
    let echo = EchoProvider::new();
    for text in [
        "Hello",
        "  leading and trailing whitespace \n",
        "tabs\tand\r\nnewlines",
        "unicode: héllo wörld ✓ 你好",
        "   ",
        "",
    ] {
        let answer = complete(&echo, request(text)).await.unwrap();
        assert_eq!(answer.text, text);
        assert_eq!(answer.finish_reason, "stop");
        assert_eq!(answer.provider, "echo");
        let words = text.split_whitespace().count() as u64;
        assert_eq!(answer.usage.unwrap().tokens_in, words);
    }
}

#[tokio::test]
async fn echoes_the_last_non_assistant_message() {
    let echo = EchoProvider::new();
    let mut req = request("ignored");
    req.messages = vec![
        message(Role::System, "be brief"),
        message(Role::User, "what is the weather"),
        message(Role::Assistant, "let me look"),
        message(Role::Tool, "sunny, 21 degrees"),
        message(Role::Assistant, "trailing assistant turn"),
    ];
    let answer = complete(&echo, req).await.unwrap();
    assert_eq!(answer.text, "sunny, 21 degrees");
    // Words of every input message: 2 + 4 + 3 + 3 + 3.
    assert_eq!(
        answer.usage.unwrap(),
        Usage {
            tokens_in: 15,
            tokens_out: 3,
            ..Usage::default()
        }
    );
}

#[tokio::test]
async fn text_parts_are_concatenated_and_images_ignored() {
    let echo = EchoProvider::new();
    let parts = ContentParts {
        parts: vec![
            ContentPart {
                part: Some(Part::Text("look at ".into())),
            },
            ContentPart {
                part: Some(Part::Image(Image::default())),
            },
            ContentPart {
                part: Some(Part::Text("this".into())),
            },
        ],
    };
    let mut req = request("");
    req.messages[0].content = Some(Content::Parts(parts));
    assert_eq!(complete(&echo, req).await.unwrap().text, "look at this");
}

#[tokio::test]
async fn output_is_deterministic() {
    let echo = EchoProvider::new();
    let knobs = [("tokens", "50"), ("token_bytes", "7")];
    let first = events(&echo, with_knobs(request("a b c"), &knobs)).await;
    let second = events(&EchoProvider::new(), with_knobs(request("a b c"), &knobs)).await;
    assert_eq!(first, second);
    let tool = [("tool_call", "lookup")];
    assert_eq!(
        events(&echo, with_knobs(request("x"), &tool)).await,
        events(&echo, with_knobs(request("x"), &tool)).await
    );
}

#[tokio::test]
async fn max_tokens_cuts_the_output() {
    let echo = EchoProvider::new();
    let mut req = request("one two three four");
    req.max_tokens = Some(2);
    let got = events(&echo, req).await;
    assert_eq!(
        got,
        [
            status(),
            token("one "),
            token("two "),
            usage(4, 2),
            done("length")
        ]
    );

    let mut req = with_knobs(request("x"), &[("tokens", "10")]);
    req.max_tokens = Some(3);
    let answer = complete(&echo, req).await.unwrap();
    assert_eq!(answer.finish_reason, "length");
    assert_eq!(answer.usage.unwrap().tokens_out, 3);
}

#[tokio::test(start_paused = true)]
async fn delay_waits_before_each_token() {
    let echo = EchoProvider::new();
    let delay = Duration::from_millis(40);
    let mut stream = echo
        .stream(with_knobs(request("a b"), &[("delay_ms", "40")]))
        .await
        .unwrap();
    assert_eq!(poll_now(&mut stream), Some(Some(status())));
    for expected in ["a ", "b"] {
        assert_eq!(
            poll_now(&mut stream),
            None,
            "a token must wait for the delay"
        );
        tokio::time::advance(delay - Duration::from_millis(1)).await;
        assert_eq!(
            poll_now(&mut stream),
            None,
            "a token must wait for the whole delay"
        );
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(poll_now(&mut stream), Some(Some(token(expected))));
    }
    // Usage and done follow the last token without a delay.
    assert_eq!(poll_now(&mut stream), Some(Some(usage(2, 2))));
    assert_eq!(poll_now(&mut stream), Some(Some(done("stop"))));
    assert_eq!(poll_now(&mut stream), Some(None));
}

#[tokio::test(start_paused = true)]
async fn delayed_streams_complete_in_virtual_time() {
    let echo = EchoProvider::new();
    let req = with_knobs(request("x"), &[("tokens", "100"), ("delay_ms", "1000")]);
    let answer = complete(&echo, req).await.unwrap();
    assert_eq!(answer.usage.unwrap().tokens_out, 100);
}

#[test]
fn no_delay_never_needs_a_timer() {
    // A runtime without a time driver would panic on any sleep.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let echo = EchoProvider::new();
    let answer = runtime
        .block_on(complete(&echo, request("no timer here")))
        .unwrap();
    assert_eq!(answer.text, "no timer here");
}

#[tokio::test]
async fn generated_tokens_have_the_asked_count_and_size() {
    let echo = EchoProvider::new();
    let got = events(
        &echo,
        with_knobs(
            request("ignored text"),
            &[("tokens", "30"), ("token_bytes", "16")],
        ),
    )
    .await;
    let tokens = tokens_of(&got);
    assert_eq!(tokens.len(), 30);
    assert!(
        tokens.iter().all(|t| t.len() == 16 && t.ends_with(' ')),
        "{tokens:?}"
    );
    assert_eq!(tokens[0], "abcdefghijklmno ");
    assert_eq!(got[got.len() - 2], usage(2, 30));
    assert_eq!(got.last(), Some(&done("stop")));

    // The default size is 4 bytes; tokens=0 sends none.
    let got = events(&echo, with_knobs(request("x"), &[("tokens", "3")])).await;
    assert_eq!(tokens_of(&got), ["abc ", "bcd ", "cde "]);
    let got = events(&echo, with_knobs(request("x"), &[("tokens", "0")])).await;
    assert_eq!(got, [status(), usage(1, 0), done("stop")]);
}

#[tokio::test]
async fn large_generated_streams_are_produced_lazily() {
    let echo = EchoProvider::new();
    let req = with_knobs(request("x"), &[("tokens", "200000"), ("token_bytes", "1")]);
    let mut stream = echo.stream(req).await.unwrap();
    let mut count = 0_u64;
    let mut bytes = 0_usize;
    while let Some(body) = stream.next().await {
        if let Body::Token(token) = body {
            count += 1;
            bytes += token.text.len();
        }
    }
    assert_eq!((count, bytes), (200_000, 200_000));
}

#[tokio::test]
async fn tool_call_knob_sends_a_tool_call() {
    let echo = EchoProvider::new();
    let text = "find \"quoted\" things\n";
    let got = events(&echo, with_knobs(request(text), &[("tool_call", "search")])).await;
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(got[0], status());
    let Body::ToolCall(call) = &got[1] else {
        panic!("expected a tool call, got {:?}", got[1])
    };
    assert_eq!(call.id, "call_0");
    let function = call.function.as_ref().unwrap();
    assert_eq!(function.name, "search");
    let arguments: serde_json::Value = serde_json::from_str(&function.arguments).unwrap();
    assert_eq!(arguments, serde_json::json!({ "text": text }));
    assert_eq!(got[2], usage(3, 0));
    assert_eq!(got[3], done("tool_calls"));

    let answer = complete(&echo, with_knobs(request(text), &[("tool_call", "search")]))
        .await
        .unwrap();
    assert_eq!(answer.tool_calls, std::slice::from_ref(call));
    assert_eq!(answer.finish_reason, "tool_calls");
    assert!(answer.text.is_empty());
}

#[tokio::test]
async fn error_before_the_stream_is_an_err() {
    let echo = EchoProvider::new();
    let req = with_knobs(
        request("a b"),
        &[("error", "RATE_LIMIT"), ("retry_after_ms", "1500")],
    );
    let error = stream_error(&echo, req.clone()).await;
    assert_eq!(error.code, ErrorCode::RateLimit);
    assert_eq!(error.phase, Phase::BeforeFirstToken);
    assert_eq!(error.retry_after, Some(Duration::from_millis(1500)));
    assert!(error.is_retryable());

    let explicit = with_knobs(
        request("a b"),
        &[("error", "PROVIDER_UNAVAILABLE"), ("error_after", "0")],
    );
    assert_eq!(
        stream_error(&echo, explicit).await.code,
        ErrorCode::ProviderUnavailable
    );

    let via_complete = complete(&echo, req).await.unwrap_err();
    assert_eq!(via_complete.code, ErrorCode::RateLimit);
    let stats = echo.stats();
    assert_eq!((stats.started, stats.rejected), (0, 3));
}

#[tokio::test]
async fn error_after_tokens_is_an_error_event() {
    let echo = EchoProvider::new();
    let req = with_knobs(
        request("one two three four"),
        &[("error", "PROVIDER_ERROR"), ("error_after", "2")],
    );
    let got = events(&echo, req.clone()).await;
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(got[..3], [status(), token("one "), token("two ")]);
    let Body::Error(event) = &got[3] else {
        panic!("expected an error event, got {:?}", got[3])
    };
    assert_eq!(event.code(), ErrorCode::ProviderError);
    assert_eq!(event.phase(), Phase::AfterFirstToken);
    assert!(!event.retryable);

    let error = complete(&echo, req).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::ProviderError);
    assert_eq!(error.phase, Phase::AfterFirstToken);

    // The partial output is kept by a Completion fed by hand.
    let mut completion = Completion::default();
    for body in &got {
        completion.push(body);
    }
    assert_eq!(completion.text, "one two ");
    assert!(completion.error.is_some());

    // Streams that end with an error event still count as completed.
    let stats = echo.stats();
    assert_eq!((stats.started, stats.completed, stats.dropped), (2, 2, 0));
}

#[tokio::test]
async fn error_after_more_tokens_than_the_text_has_comes_last() {
    let echo = EchoProvider::new();
    let req = with_knobs(
        request("a b"),
        &[
            ("error", "RATE_LIMIT"),
            ("error_after", "10"),
            ("retry_after_ms", "250"),
        ],
    );
    let got = events(&echo, req).await;
    assert_eq!(got[..3], [status(), token("a "), token("b")]);
    let Body::Error(event) = &got[3] else {
        panic!("expected an error event, got {:?}", got[3])
    };
    assert_eq!(event.code(), ErrorCode::RateLimit);
    assert_eq!(event.retry_after_ms, 250);
    assert_eq!(got.len(), 4);

    // With nothing sent, the error is before the first token.
    let req = with_knobs(
        request(""),
        &[("error", "RATE_LIMIT"), ("error_after", "1")],
    );
    let got = events(&echo, req).await;
    let Body::Error(event) = &got[1] else {
        panic!("expected an error event, got {:?}", got[1])
    };
    assert_eq!(event.phase(), Phase::BeforeFirstToken);
}

#[tokio::test(start_paused = true)]
async fn stall_stops_the_stream_until_it_is_dropped() {
    let echo = EchoProvider::new();
    let mut stream = echo
        .stream(with_knobs(request("a b c d"), &[("stall_after", "2")]))
        .await
        .unwrap();
    assert_eq!(stream.next().await, Some(status()));
    assert_eq!(stream.next().await, Some(token("a ")));
    assert_eq!(stream.next().await, Some(token("b ")));
    assert_eq!(poll_now(&mut stream), None);
    tokio::time::advance(Duration::from_secs(24 * 3600)).await;
    assert_eq!(poll_now(&mut stream), None);
    // A timeout is the only way out; in paused time it fires at once.
    assert!(
        tokio::time::timeout(Duration::from_secs(60), stream.next())
            .await
            .is_err()
    );
    assert_eq!(echo.stats().dropped, 0);
    drop(stream);
    let stats = echo.stats();
    assert_eq!((stats.started, stats.completed, stats.dropped), (1, 0, 1));
}

#[tokio::test]
async fn stall_after_zero_stalls_before_any_token() {
    let echo = EchoProvider::new();
    let mut stream = echo
        .stream(with_knobs(request("a b"), &[("stall_after", "0")]))
        .await
        .unwrap();
    assert_eq!(poll_now(&mut stream), Some(Some(status())));
    assert_eq!(poll_now(&mut stream), None);
}

#[tokio::test]
async fn dropping_a_stream_before_its_end_counts_as_dropped() {
    let echo = EchoProvider::new();
    let shared: Arc<dyn Provider> = Arc::new(echo.clone());

    let mut stream = shared.stream(request("one two three")).await.unwrap();
    assert_eq!(stream.next().await, Some(status()));
    assert_eq!(stream.next().await, Some(token("one ")));
    drop(stream);

    // A stream never polled is dropped too.
    drop(shared.stream(request("x")).await.unwrap());

    // A stream read to its done event is completed, even if dropped before
    // it yields its end.
    let mut stream = shared.stream(request("x")).await.unwrap();
    while let Some(body) = stream.next().await {
        if body.is_terminal() {
            break;
        }
    }
    drop(stream);
    complete(shared.as_ref(), request("y z")).await.unwrap();

    let stats = echo.stats();
    assert_eq!(
        (
            stats.started,
            stats.completed,
            stats.dropped,
            stats.rejected
        ),
        (4, 2, 2, 0)
    );
}

#[tokio::test]
async fn knobs_can_come_from_the_model_name() {
    let echo = EchoProvider::new();
    let mut req = request("x");
    req.model = "echo:tokens=3,token_bytes=2".into();
    assert_eq!(
        tokens_of(&events(&echo, req.clone()).await),
        ["a ", "b ", "c "]
    );

    // Metadata wins over the model name.
    let req = with_knobs(req, &[("tokens", "1")]);
    assert_eq!(tokens_of(&events(&echo, req).await), ["a "]);

    let mut req = request("x");
    req.model = "echo:error=RATE_LIMIT".into();
    assert_eq!(stream_error(&echo, req).await.code, ErrorCode::RateLimit);
}

#[tokio::test]
async fn an_empty_model_means_echo() {
    let echo = EchoProvider::new();
    let mut req = request("hi");
    req.model.clear();
    assert_eq!(complete(&echo, req).await.unwrap().text, "hi");
}

#[tokio::test]
async fn unknown_models_are_not_found() {
    let echo = EchoProvider::new();
    for model in ["gpt-4o", "echo-2", "echoes", "echo/echo"] {
        let mut req = request("x");
        req.model = model.into();
        let error = stream_error(&echo, req).await;
        assert_eq!(error.code, ErrorCode::ModelNotFound, "{model}");
        assert_eq!(error.phase, Phase::BeforeFirstToken);
    }
}

#[tokio::test]
async fn invalid_knobs_are_invalid_requests() {
    let echo = EchoProvider::new();
    let cases: &[&[(&str, &str)]] = &[
        &[("delay_ms", "-1")],
        &[("delay_ms", "soon")],
        &[("tokens", "1.5")],
        &[("tokens", "3"), ("token_bytes", "0")],
        &[("tokens", "3"), ("token_bytes", "2000000")],
        &[("token_bytes", "8")],
        &[("tool_call", "")],
        &[("tool_call", "f"), ("tokens", "2")],
        &[("error", "NOT_A_CODE")],
        &[("error", "rate_limit")],
        &[("error_after", "2")],
        &[("retry_after_ms", "2")],
        &[("error", "RATE_LIMIT"), ("error_after", "x")],
        &[("stall_after", "")],
        &[("no_such_knob", "1")],
    ];
    for knobs in cases {
        let error = stream_error(&echo, with_knobs(request("x"), knobs)).await;
        assert_eq!(error.code, ErrorCode::InvalidRequest, "{knobs:?}: {error}");
        assert_eq!(error.phase, Phase::BeforeFirstToken);
    }
    let mut req = request("x");
    req.model = "echo:tokens".into();
    assert_eq!(
        stream_error(&echo, req).await.code,
        ErrorCode::InvalidRequest
    );

    // Metadata keys outside the `echo.` prefix are not echo's business.
    let mut req = request("x");
    req.metadata.insert("trace_id".into(), "abc".into());
    assert_eq!(complete(&echo, req).await.unwrap().text, "x");

    assert_eq!(echo.stats().rejected, cases.len() as u64 + 1);
}

#[tokio::test]
async fn a_request_without_messages_is_invalid() {
    let echo = EchoProvider::new();
    let mut req = request("x");
    req.messages.clear();
    assert_eq!(
        stream_error(&echo, req).await.code,
        ErrorCode::InvalidRequest
    );
}

#[tokio::test]
async fn models_lists_the_echo_model() {
    let echo = EchoProvider::new();
    assert_eq!(echo.name(), "echo");
    assert_eq!(EchoProvider::NAME, "echo");
    let info = echo.models().await.unwrap();
    assert_eq!(info.provider, "echo");
    assert_eq!(info.models.len(), 1);
    let model = &info.models[0];
    assert_eq!(model.name, "echo");
    assert!(model.supports_streaming && model.supports_functions && !model.supports_vision);
    assert_eq!(
        (model.cost_per_1k_input, model.cost_per_1k_output),
        (0.0, 0.0)
    );
    assert!(model.context_window > 0 && model.max_tokens > 0);
}
