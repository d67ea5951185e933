//! Routes through the real gateway, with OpenAI and Anthropic adapters
//! pointed at fault-injecting upstreams: each test states the exact event
//! sequence the client sees.

use std::sync::Arc;
use std::time::Duration;

use gtl_client::proto::{Body, CompletionRequest};
use gtl_client::{ConnectOpts, ReconnectPolicy, connect, user_message};
use gtl_providers::{EchoProvider, ProviderConfig, ProviderKind, Registry};
use gtl_server::{Config, Server};
use gtl_test::{ReplayServer, Reply, SseAnswer};
use tokio::sync::oneshot;

use crate::harness::{assert_contiguous, config_for, drain, take};

const OPENAI: &str = "gpt-4o";
const ANTHROPIC: &str = "claude-sonnet-4-5";

/// The routes, as an operator writes them; each test picks its policy by
/// the route it asks for.
const ROUTES: &str = r#"
[router]
timeouts = { connect_secs = 1.0, first_token_secs = 2.0, idle_secs = 1.0, total_secs = 30.0 }
backoff = { initial_ms = 10, max_ms = 50 }

[[routes]]
name = "smart"
after_first_token = "continue"
targets = [ { model = "openai/gpt-4o" }, { model = "anthropic/claude-sonnet-4-5" } ]

[[routes]]
name = "restarting"
after_first_token = "restart"
targets = [ { model = "openai/gpt-4o" }, { model = "anthropic/claude-sonnet-4-5" } ]

[[routes]]
name = "aborting"
after_first_token = "abort"
targets = [ { model = "openai/gpt-4o" }, { model = "anthropic/claude-sonnet-4-5" } ]

[[routes]]
name = "cached"
cache_ttl_secs = 60
targets = [ { model = "openai/gpt-4o" } ]

[[routes]]
name = "patient"
retries = 1
targets = [ { model = "openai/gpt-4o" }, { model = "anthropic/claude-sonnet-4-5" } ]
"#;

/// A gateway with the routes above over two fault-injecting upstreams.
struct Routed {
    tcp: String,
    /// The gateway's local token: loopback TCP needs it.
    token: String,
    openai: ReplayServer,
    anthropic: ReplayServer,
    _dir: tempfile::TempDir,
    _stop: oneshot::Sender<()>,
}

impl Routed {
    async fn start(openai: Vec<Reply>, anthropic: Vec<Reply>) -> Self {
        Self::start_with(openai, anthropic, |_| {}).await
    }

    /// Starts with the routes' configuration changed by `adjust`.
    async fn start_with(
        openai: Vec<Reply>,
        anthropic: Vec<Reply>,
        adjust: impl FnOnce(&mut Config),
    ) -> Self {
        let openai = ReplayServer::sequence(openai).await;
        let anthropic = ReplayServer::sequence(anthropic).await;
        let dir = tempfile::tempdir().unwrap();
        let mut config = config_for(dir.path());
        let routes = Config::from_toml(ROUTES).unwrap();
        config.router = routes.router;
        config.routes = routes.routes;
        adjust(&mut config);
        let mut registry = Registry::new();
        registry.add(Arc::new(EchoProvider::new()));
        for (kind, url) in [
            (ProviderKind::OpenAi, format!("{}/v1", openai.url())),
            (ProviderKind::Anthropic, anthropic.url()),
        ] {
            let provider = ProviderConfig::new(kind)
                .with_base_url(url)
                .with_api_key("test-key");
            registry.add(gtl_providers::build(provider).unwrap());
        }
        let server = Server::bind(&config, registry).await.unwrap();
        let tcp = server
            .endpoints()
            .into_iter()
            .find(|e| e.starts_with("tcp://"))
            .unwrap();
        let token = std::fs::read_to_string(server.local_token_path().unwrap()).unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        Self {
            tcp,
            token: token.trim().to_owned(),
            openai,
            anthropic,
            _dir: dir,
            _stop: stop,
        }
    }

    async fn client(&self) -> gtl_client::Client {
        connect(
            ConnectOpts::new([self.tcp.clone()])
                .with_token(self.token.clone())
                .with_reconnect(ReconnectPolicy::default().with_attempts_per_endpoint(1)),
        )
        .await
        .unwrap()
    }

    /// Streams `model` and returns what the client saw, compacted.
    async fn call(&self, model: &str) -> Vec<String> {
        call_on(&self.client().await, model).await
    }
}

/// Streams `model` on `client` and returns what it saw, compacted.
async fn call_on(client: &gtl_client::Client, model: &str) -> Vec<String> {
    {
        let request = CompletionRequest {
            model: model.into(),
            messages: vec![user_message("Tell me about the fox.")],
            ..CompletionRequest::default()
        };
        let mut events = client.stream(request).await.unwrap();
        let (events, error) = drain(&mut events).await;
        let mut seen: Vec<String> = events.iter().map(|e| show(&e.body)).collect();
        if let Some(error) = error {
            seen.push(format!("client error {error}"));
        }
        seen
    }
}

fn show(body: &Body) -> String {
    match body {
        Body::Status(s) => format!("status {} {}/{}", s.state, s.provider, s.model),
        Body::Token(t) => format!("token {}", t.text),
        Body::Usage(u) => format!("usage {} {}", u.tokens_in, u.tokens_out),
        Body::Done(d) => format!("done {}", d.finish_reason),
        Body::Error(e) => format!("error {} {}", e.code().name(), e.phase().as_str_name()),
        other => format!("{other:?}"),
    }
}

fn text(seen: &[String]) -> String {
    seen.iter()
        .filter_map(|line| line.strip_prefix("token "))
        .collect()
}

fn openai(pieces: &[&str]) -> SseAnswer {
    SseAnswer::openai(OPENAI, pieces, 12)
}

fn anthropic(pieces: &[&str]) -> SseAnswer {
    SseAnswer::anthropic(ANTHROPIC, pieces, 14)
}

/// The issue's acceptance test: an upstream cut mid-stream, one seamless
/// answer at the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continue_survives_an_upstream_cut_mid_stream_with_one_answer() {
    let first = openai(&["The quick", " brown", " never sent"]);
    let gateway = Routed::start(
        vec![first.cut_after(2)],
        vec![anthropic(&[" fox", " jumps."]).reply()],
    )
    .await;
    let seen = gateway.call("smart").await;
    assert_eq!(
        seen,
        [
            "status streaming openai/gpt-4o",
            "token The quick",
            "token  brown",
            "status continuing openai/gpt-4o",
            "status streaming anthropic/claude-sonnet-4-5",
            "token  fox",
            "token  jumps.",
            // The cut leg reported no usage; the second leg's is summed in.
            "usage 14 2",
            "done stop",
        ]
    );
    // The first leg's partial text plus the continuation: no gap, no
    // duplicate.
    assert_eq!(text(&seen), "The quick brown fox jumps.");
    // The fallback was asked to continue the partial answer.
    let sent = gateway.anthropic.single_request().json().unwrap();
    let last = sent["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["role"], "assistant");
    assert!(last.to_string().contains("The quick brown"), "{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_before_the_first_token_fails_over() {
    let gateway = Routed::start(
        vec![Reply::json(
            503,
            r#"{"error":{"message":"overloaded","type":"server_error"}}"#,
        )],
        vec![anthropic(&["Hi", "!"]).reply()],
    )
    .await;
    let seen = gateway.call("smart").await;
    assert_eq!(
        seen,
        [
            "status retrying openai/gpt-4o",
            "status streaming anthropic/claude-sonnet-4-5",
            "token Hi",
            "token !",
            "usage 14 2",
            "done stop",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_with_retry_after_is_retried_on_the_same_target() {
    let limited = Reply::json(
        429,
        r#"{"error":{"message":"slow down","type":"rate_limit"}}"#,
    )
    .header("retry-after", "1");
    let gateway = Routed::start(vec![limited, openai(&["ok"]).reply()], vec![]).await;
    let seen = gateway.call("patient").await;
    assert_eq!(
        seen,
        [
            "status retrying openai/gpt-4o",
            "status streaming openai/gpt-4o",
            "token ok",
            "usage 12 1",
            "done stop",
        ]
    );
    assert_eq!(gateway.openai.requests().len(), 2);
    assert!(gateway.anthropic.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_400_fails_at_once() {
    let gateway = Routed::start(
        vec![Reply::json(
            400,
            r#"{"error":{"message":"bad","type":"invalid_request_error"}}"#,
        )],
        vec![],
    )
    .await;
    let seen = gateway.call("smart").await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].contains("INVALID_REQUEST"), "{seen:?}");
    assert!(gateway.anthropic.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_then_a_stall_before_the_first_byte_then_an_answer() {
    // Three attempts on `patient`: openai 500, openai (retry) never sends
    // headers, then anthropic.
    let gateway = Routed::start(
        vec![
            Reply::json(500, r#"{"error":{"message":"boom"}}"#),
            Reply::new(200).stall_headers(),
        ],
        vec![anthropic(&["late"]).reply()],
    )
    .await;
    let seen = gateway.call("patient").await;
    assert_eq!(
        seen,
        [
            "status retrying openai/gpt-4o",
            "status retrying openai/gpt-4o",
            "status streaming anthropic/claude-sonnet-4-5",
            "token late",
            "usage 14 1",
            "done stop",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_after_a_cut_discards_and_sends_the_whole_answer() {
    let gateway = Routed::start(
        vec![openai(&["Partial", " answer"]).cut_after(1)],
        vec![anthropic(&["Whole", " answer"]).reply()],
    )
    .await;
    let seen = gateway.call("restarting").await;
    assert_eq!(
        seen,
        [
            "status streaming openai/gpt-4o",
            "token Partial",
            "status restarted openai/gpt-4o",
            "status streaming anthropic/claude-sonnet-4-5",
            "token Whole",
            "token  answer",
            "usage 14 2",
            "done stop",
        ]
    );
    // The fallback answered the original conversation.
    let sent = gateway.anthropic.single_request().json().unwrap();
    assert_eq!(sent["messages"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_after_a_cut_keeps_the_partial_output() {
    let gateway = Routed::start(vec![openai(&["Partial", " answer"]).cut_after(1)], vec![]).await;
    let seen = gateway.call("aborting").await;
    assert_eq!(
        seen[..2],
        ["status streaming openai/gpt-4o", "token Partial"]
    );
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen[2].contains("PROVIDER_UNAVAILABLE"), "{seen:?}");
    assert!(gateway.anthropic.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_mid_stream_hits_the_idle_timeout_and_continues() {
    let gateway = Routed::start(
        vec![openai(&["Slow", " start"]).stall_after(1)],
        vec![anthropic(&[" finish"]).reply()],
    )
    .await;
    let seen = gateway.call("smart").await;
    assert_eq!(
        seen,
        [
            "status streaming openai/gpt-4o",
            "token Slow",
            "status continuing openai/gpt-4o",
            "status streaming anthropic/claude-sonnet-4-5",
            "token  finish",
            "usage 14 1",
            "done stop",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_chunk_before_the_first_token_fails_over() {
    let gateway = Routed::start(
        vec![openai(&["never"]).malformed_after(0)],
        vec![anthropic(&["fine"]).reply()],
    )
    .await;
    let seen = gateway.call("smart").await;
    assert_eq!(
        seen,
        [
            "status streaming openai/gpt-4o",
            "status retrying openai/gpt-4o",
            "status streaming anthropic/claude-sonnet-4-5",
            "token fine",
            "usage 14 1",
            "done stop",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_drip_within_the_idle_timeout_is_one_normal_answer() {
    let gateway = Routed::start(
        vec![openai(&["drip", " drip", " drop"]).drip(Duration::from_millis(100))],
        vec![],
    )
    .await;
    let seen = gateway.call("smart").await;
    assert_eq!(
        seen,
        [
            "status streaming openai/gpt-4o",
            "token drip",
            "token  drip",
            "token  drop",
            "usage 12 3",
            "done stop",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_route_answers_the_second_identical_request_without_the_upstream() {
    let gateway = Routed::start(vec![openai(&["Once", " only"]).reply()], vec![]).await;
    let first = gateway.call("cached").await;
    let second = gateway.call("cached").await;
    assert_eq!(
        second,
        [
            "status cached cached/cached",
            "status streaming openai/gpt-4o",
            "token Once",
            "token  only",
            "usage 12 2",
            "done stop",
        ]
    );
    assert_eq!(second[1..], first[..]);
    assert_eq!(gateway.openai.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_identical_concurrent_requests_make_one_upstream_call() {
    // A slow answer, so the requests overlap with the one upstream call.
    let slow = openai(&["To", " all", " fifty"]).drip(Duration::from_millis(100));
    let gateway = Routed::start(vec![slow], vec![]).await;
    let client = gateway.client().await;
    let calls = (0..50).map(|_| call_on(&client, "cached"));
    for seen in futures::future::join_all(calls).await {
        assert_eq!(text(&seen), "To all fifty", "{seen:?}");
        assert_eq!(seen.last().unwrap(), "done stop");
    }
    // Whether a request joined the call in flight or came after it and
    // read the cache, the upstream was asked once.
    assert_eq!(gateway.openai.requests().len(), 1);
}

/// The session log keeps a routed call like any other: a client that
/// leaves before the cut resumes after the failover and gets every event
/// once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_works_across_a_failover() {
    let first = openai(&["The quick", " brown", " never sent"]);
    // A piece every 300 ms: the client has left before the cut.
    let slow_cut = first.cut_after(2).delay(Duration::from_millis(300));
    let gateway = Routed::start(
        vec![slow_cut],
        vec![anthropic(&[" fox", " jumps."]).reply()],
    )
    .await;
    // The first client's connection goes through a proxy that is cut
    // after two events: it leaves without cancelling the call.
    let proxy = crate::resume::Proxy::tcp(&gateway.tcp).await;
    let leaving = connect(
        ConnectOpts::new([proxy.endpoint.clone()])
            .with_token(gateway.token.clone())
            .with_reconnect(ReconnectPolicy::default().with_attempts_per_endpoint(1)),
    )
    .await
    .unwrap();
    let request = CompletionRequest {
        model: "smart".into(),
        messages: vec![user_message("Tell me about the fox.")],
        ..CompletionRequest::default()
    };
    let mut events = leaving.stream(request).await.unwrap();
    let mut all = take(&mut events, 2).await;
    proxy.cut(crate::resume::Cut::Everything);
    let point = events.resume_point();
    drop(events);
    drop(leaving);

    let back = gateway.client().await;
    let mut events = back.resume(point).await.unwrap();
    let (rest, error) = drain(&mut events).await;
    assert!(error.is_none(), "{error:?}");
    all.extend(rest);
    assert_contiguous(&all);
    let seen: Vec<String> = all.iter().map(|e| show(&e.body)).collect();
    assert_eq!(
        seen,
        [
            "status streaming openai/gpt-4o",
            "token The quick",
            "token  brown",
            "status continuing openai/gpt-4o",
            "status streaming anthropic/claude-sonnet-4-5",
            "token  fox",
            "token  jumps.",
            "usage 14 2",
            "done stop",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_list_shows_an_open_breaker() {
    let gateway = Routed::start_with(
        vec![Reply::json(503, r#"{"error":{"message":"down"}}"#)],
        vec![anthropic(&["up"]).reply(), anthropic(&["again"]).reply()],
        |config| config.router.breaker.consecutive_failures = 1,
    )
    .await;
    assert_eq!(text(&gateway.call("smart").await), "up");
    let client = gateway.client().await;
    let health = |infos: &[gtl_client::proto::ProviderInfo], provider: &str, model: &str| {
        infos
            .iter()
            .find(|info| info.provider == provider)
            .and_then(|info| info.models.iter().find(|m| m.name == model))
            .map(|m| m.health.clone())
    };
    let infos = client.models().await.unwrap();
    assert_eq!(health(&infos, "openai", OPENAI).as_deref(), Some("open"));
    assert_eq!(
        health(&infos, "anthropic", ANTHROPIC).as_deref(),
        Some("closed")
    );
    // The open breaker is skipped: the next call goes straight to anthropic.
    let seen = gateway.call("smart").await;
    assert_eq!(seen[0], "status streaming anthropic/claude-sonnet-4-5");
    assert_eq!(gateway.openai.requests().len(), 1);
}
