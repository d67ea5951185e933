//! `/metrics`, `/healthz`, `/readyz` and the gRPC health service of the
//! real server. A process of its own per test: the metrics recorder is the
//! process's, so counts in another test's process cannot blur these.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tokio::process::Command;

use crate::interop::tool;
use crate::support::{Raw, ServerProcess, stream_request};

/// A route that fails over: its first target fails retryably (and is
/// retried once), its second serves.
const ROUTES: &str = r#"
[router]
backoff = { initial_ms = 1, max_ms = 2 }

[[routes]]
name = "smart"
retries = 1
targets = [ { model = "echo/echo:error=PROVIDER_UNAVAILABLE" }, { model = "echo/echo" } ]

[listen.metrics]
enabled = true
addr = "127.0.0.1:0"
"#;

/// One series: a metric name and its labels.
type Series = (String, BTreeMap<String, String>);

/// Every sample of a Prometheus text exposition.
fn parse(text: &str) -> BTreeMap<Series, f64> {
    let mut samples = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => (name, labels.trim_end_matches('}')),
            None => (series, ""),
        };
        let labels = labels
            .split(',')
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (k, v) = l.split_once('=').unwrap();
                (k.to_owned(), v.trim_matches('"').to_owned())
            })
            .collect();
        samples.insert((name.to_owned(), labels), value.parse().unwrap());
    }
    samples
}

/// The value of `name{labels}` (0 when absent).
fn value(samples: &BTreeMap<Series, f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    let labels = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    samples
        .get(&(name.to_owned(), labels))
        .copied()
        .unwrap_or(0.0)
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

async fn get(url: &str) -> (u16, String) {
    let response = client().get(url).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// `POST /gtl/v1/complete` with `body`: the status and the answer.
async fn complete(server: &ServerProcess, body: Value) -> (u16, Value) {
    let response = client()
        .post(format!("http://{}/gtl/v1/complete", server.http))
        .bearer_auth(&server.token)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (
        status,
        serde_json::from_str(&response.text().await.unwrap()).unwrap(),
    )
}

fn message(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

/// The `[listen.metrics]` port the server printed.
fn metrics_port(server: &ServerProcess) -> String {
    server
        .log()
        .iter()
        .find_map(|l| l.strip_prefix("gtl-server: metrics on http://"))
        .expect("the server prints its metrics port")
        .trim_end_matches("/metrics")
        .to_owned()
}

/// `(tokens_in, tokens_out)` of a streamed call's usage frame.
fn usage(frames: &[Value]) -> (f64, f64) {
    let usage = frames
        .iter()
        .find(|f| f["type"] == "usage")
        .expect("a usage frame");
    (
        usage["tokens_in"].as_f64().unwrap(),
        usage["tokens_out"].as_f64().unwrap(),
    )
}

/// `promtool check metrics` over `text`: `None` when promtool is not
/// installed (outside CI), else its verdict and output.
async fn promtool(text: &str) -> Option<(bool, String)> {
    use tokio::io::AsyncWriteExt as _;
    let promtool = tool("promtool")?;
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    Some((out.status.success(), said))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_move_by_what_the_calls_imply_over_http_and_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), ROUTES).await;
    let port = metrics_port(&server);
    let ops = format!("http://{port}/metrics");
    let before = parse(&get(&ops).await.1);
    // That port serves the operators' routes and nothing else.
    assert_eq!(get(&format!("http://{port}/readyz")).await.0, 200);
    assert_eq!(get(&format!("http://{port}/gtl/v1/models")).await.0, 404);

    // HTTP: a success, a model echo does not have (its provider says
    // MODEL_NOT_FOUND), and a provider nobody configured (refused before
    // any provider is called).
    let (status, ok) = complete(
        &server,
        json!({"model": "echo", "messages": message("one two three")}),
    )
    .await;
    assert_eq!(status, 200, "{ok}");
    let http_in = ok["usage"]["tokens_in"].as_f64().unwrap();
    let http_out = ok["usage"]["tokens_out"].as_f64().unwrap();
    let (status, _) = complete(
        &server,
        json!({"model": "no-such-model-7f3a", "messages": message("hi")}),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = complete(
        &server,
        json!({"provider": "nowhere", "model": "echo", "messages": message("hi")}),
    )
    .await;
    assert_eq!(status, 404);

    // A stream over SSE, its body silent about `stream`: the route says it.
    let sse = client()
        .post(format!("http://{}/gtl/v1/stream", server.http))
        .bearer_auth(&server.token)
        .body(json!({"model": "echo", "messages": message("four five")}).to_string())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let sse: Vec<Value> = sse
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|data| serde_json::from_str(data).unwrap())
        .collect();
    assert_eq!(sse.last().unwrap()["type"], "done", "{sse:?}");
    let (sse_in, sse_out) = usage(&sse);

    // TCP: a success, a provider error, and a routed call that retries
    // and fails over.
    let mut tcp = Raw::hello(&server.tcp, &server.token).await;
    tcp.send(stream_request(1, "echo")).await;
    let plain = tcp.until_terminal(1).await;
    assert_eq!(plain.last().unwrap()["type"], "done", "{plain:?}");
    tcp.send(stream_request(2, "echo:error=CONTENT_FILTERED"))
        .await;
    let filtered = tcp.until_terminal(2).await;
    assert_eq!(filtered.last().unwrap()["code"], "CONTENT_FILTERED");
    tcp.send(stream_request(3, "smart")).await;
    let routed = tcp.until_terminal(3).await;
    assert_eq!(routed.last().unwrap()["type"], "done", "{routed:?}");
    // A resume with a wrong token over TCP, and a right one over HTTP.
    let accepted = plain.iter().find(|f| f["type"] == "accepted").unwrap();
    let session = accepted["session_id"].as_str().unwrap();
    tcp.send(
        json!({"type": "resume", "call_id": 4, "session_id": session,
                    "after_seq": 0, "resume_token": "wrong"}),
    )
    .await;
    assert_eq!(tcp.until_terminal(4).await[0]["code"], "RESUME_NOT_FOUND");
    let resumed = client()
        .get(format!(
            "http://{}/gtl/v1/sessions/{session}/events?after_seq=0",
            server.http
        ))
        .bearer_auth(&server.token)
        .header(
            "gtl-resume-token",
            accepted["resume_token"].as_str().unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status().as_u16(), 200);
    resumed.text().await.unwrap();

    // Both ports serve the same registry.
    let (status, text) = get(&format!("http://{}/metrics", server.http)).await;
    assert_eq!(status, 200);
    let after = parse(&text);
    let delta = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    let requests = |route, transport, provider, model, outcome| {
        delta(
            "gtl_requests_total",
            &[
                ("route", route),
                ("transport", transport),
                ("provider", provider),
                ("model", model),
                ("outcome", outcome),
            ],
        )
    };
    assert_eq!(requests("chat.complete", "http", "echo", "echo", "ok"), 1.0);
    // Unknown names share the `other` label value.
    let not_found = "MODEL_NOT_FOUND";
    assert_eq!(
        requests("chat.complete", "http", "echo", "other", not_found),
        1.0
    );
    assert_eq!(
        requests("chat.complete", "http", "other", "echo", not_found),
        1.0
    );
    assert_eq!(requests("chat.stream", "http", "echo", "echo", "ok"), 1.0);
    assert_eq!(requests("chat.stream", "tcp", "echo", "echo", "ok"), 1.0);
    assert_eq!(
        requests("chat.stream", "tcp", "echo", "other", "CONTENT_FILTERED"),
        1.0
    );
    assert_eq!(requests("chat.stream", "tcp", "routed", "smart", "ok"), 1.0);
    let total: f64 = after
        .iter()
        .filter(|((name, _), _)| name == "gtl_requests_total")
        .map(|(series, v)| v - before.get(series).copied().unwrap_or(0.0))
        .sum();
    assert_eq!(total, 7.0, "no call counted twice or left out");
    for (code, n) in [
        (not_found, 1.0),
        ("CONTENT_FILTERED", 1.0),
        ("PROVIDER_UNAVAILABLE", 2.0),
    ] {
        let labels = [("provider", "echo"), ("code", code)];
        assert_eq!(delta("gtl_provider_errors_total", &labels), n, "{code}");
    }
    assert_eq!(delta("gtl_retries_total", &[]), 1.0);
    assert_eq!(delta("gtl_failovers_total", &[]), 1.0);
    let (plain_in, plain_out) = usage(&plain);
    let (routed_in, routed_out) = usage(&routed);
    let tokens = |direction| {
        delta(
            "gtl_tokens_total",
            &[
                ("direction", direction),
                ("provider", "echo"),
                ("model", "echo"),
            ],
        )
    };
    assert_eq!(tokens("in"), http_in + sse_in + plain_in + routed_in);
    assert_eq!(tokens("out"), http_out + sse_out + plain_out + routed_out);
    let count = |name: &str, labels: &[(&str, &str)]| delta(&format!("{name}_count"), labels);
    let http = [("route", "chat.complete"), ("transport", "http")];
    let tcp_stream = [("route", "chat.stream"), ("transport", "tcp")];
    let http_stream = [("route", "chat.stream"), ("transport", "http")];
    assert_eq!(count("gtl_time_to_first_token_seconds", &http), 1.0);
    assert_eq!(count("gtl_time_to_first_token_seconds", &http_stream), 1.0);
    assert_eq!(count("gtl_time_to_first_token_seconds", &tcp_stream), 2.0);
    assert_eq!(
        count("gtl_added_latency_seconds", &[("transport", "http")]),
        2.0
    );
    assert_eq!(
        count("gtl_added_latency_seconds", &[("transport", "tcp")]),
        2.0
    );
    // The refused call never reached a provider.
    assert_eq!(count("gtl_request_duration_seconds", &http), 2.0);
    assert_eq!(count("gtl_request_duration_seconds", &http_stream), 1.0);
    assert_eq!(count("gtl_request_duration_seconds", &tcp_stream), 3.0);
    assert_eq!(
        count(
            "gtl_upstream_time_to_first_token_seconds",
            &[("provider", "echo"), ("model", "echo")]
        ),
        4.0
    );
    for (transport, outcome) in [("tcp", "RESUME_NOT_FOUND"), ("http", "ok")] {
        let labels = [("transport", transport), ("outcome", outcome)];
        assert_eq!(delta("gtl_resumes_total", &labels), 1.0, "{transport}");
    }
    assert_eq!(value(&after, "gtl_active_sessions", &[]), 0.0);
    assert_eq!(
        value(&after, "gtl_active_connections", &[("transport", "tcp")]),
        1.0
    );
    let failing = [("target", "echo/echo:error=PROVIDER_UNAVAILABLE")];
    assert_eq!(value(&after, "gtl_circuit_open", &failing), 0.0);
    assert!(
        after.contains_key(&(
            "gtl_circuit_open".to_owned(),
            [("target".to_owned(), "echo/echo".to_owned())].into()
        )),
        "every configured target has a breaker gauge"
    );
    let version = [("version", env!("CARGO_PKG_VERSION"))];
    assert_eq!(value(&after, "gtl_build_info", &version), 1.0);
    // No client string, session id or subject became a label value.
    for (_, labels) in after.keys() {
        for value in labels.values() {
            assert!(
                !value.contains("no-such-model")
                    && !value.contains("nowhere")
                    && !value.starts_with("s_")
                    && !value.contains("uid"),
                "unbounded label value {value}"
            );
        }
    }

    // Every documented metric but the cost (echo costs nothing) is exposed.
    let exposed = metric_names(&text);
    for name in [
        "gtl_requests_total",
        "gtl_request_duration_seconds",
        "gtl_time_to_first_token_seconds",
        "gtl_upstream_time_to_first_token_seconds",
        "gtl_added_latency_seconds",
        "gtl_tokens_total",
        "gtl_active_sessions",
        "gtl_active_connections",
        "gtl_resumes_total",
        "gtl_provider_errors_total",
        "gtl_retries_total",
        "gtl_failovers_total",
        "gtl_circuit_open",
        "gtl_build_info",
    ] {
        assert!(exposed.contains(name), "{name} is missing");
    }

    match promtool(&text).await {
        Some((passed, said)) => assert!(passed, "promtool check metrics: {said}\n{text}"),
        None => eprintln!("note: /metrics not checked by promtool"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness_over_http_and_grpc() {
    // One route whose only target always fails; one failure opens its
    // breaker, and then echo has no usable target.
    let routes = r#"
[router.breaker]
consecutive_failures = 1

[[routes]]
name = "broken"
targets = [ { model = "echo/echo:error=PROVIDER_UNAVAILABLE" } ]
"#;
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), routes).await;
    let base = format!("http://{}", server.http);
    // No token: monitoring probes without one.
    let (status, body) = get(&format!("{base}/healthz")).await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, body) = get(&format!("{base}/readyz")).await;
    assert_eq!(status, 200, "{body}");
    let ready: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["ready"], true);
    let grpc = grpc_health(&server.http).await;
    if let Some(status) = &grpc {
        assert_eq!(status, "SERVING");
    }

    let mut tcp = Raw::hello(&server.tcp, &server.token).await;
    tcp.send(stream_request(1, "broken")).await;
    let failed = tcp.until_terminal(1).await;
    assert_eq!(failed.last().unwrap()["code"], "PROVIDER_UNAVAILABLE");

    let (status, body) = get(&format!("{base}/readyz")).await;
    assert_eq!(status, 503, "{body}");
    let ready: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["providers"], false, "{ready}");
    assert_eq!(ready["store"], true, "{ready}");
    assert_eq!(ready["listening"], true, "{ready}");
    // Still alive.
    assert_eq!(get(&format!("{base}/healthz")).await.0, 200);
    if grpc.is_some() {
        assert_eq!(grpc_health(&server.http).await.unwrap(), "NOT_SERVING");
    }
    // /metrics needs no token either, and shows the open breaker.
    let (status, text) = get(&format!("{base}/metrics")).await;
    assert_eq!(status, 200);
    let target = [("target", "echo/echo:error=PROVIDER_UNAVAILABLE")];
    assert_eq!(value(&parse(&text), "gtl_circuit_open", &target), 1.0);
}

/// The status `grpcurl` gets from `grpc.health.v1.Health/Check` (no
/// token), `None` when grpcurl is not installed (outside CI).
async fn grpc_health(addr: &str) -> Option<String> {
    let grpcurl = tool("grpcurl")?;
    let out = Command::new(grpcurl)
        .args(["-plaintext", "-max-time", "60", addr])
        .arg("grpc.health.v1.Health/Check")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "grpcurl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    Some(answer["status"].as_str().unwrap().to_owned())
}

/// The metric names `text` mentions (`gtl_…`, without histogram suffixes).
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("gtl_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        let name = ["_bucket", "_count", "_sum"]
            .iter()
            .fold(name, |n, suffix| {
                n.strip_suffix(suffix).map_or(n.clone(), str::to_owned)
            });
        names.insert(name);
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_queries_parse_and_use_the_documented_metrics() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dashboard = std::fs::read_to_string(root.join("docs/grafana-dashboard.json")).unwrap();
    let operations = std::fs::read_to_string(root.join("docs/operations.md")).unwrap();
    // The operations guide's metric table: rows that start with a name.
    let documented: std::collections::BTreeSet<String> = operations
        .lines()
        .filter_map(|l| l.strip_prefix("| `gtl_"))
        .map(|l| format!("gtl_{}", l.split('`').next().unwrap()))
        .collect();
    assert_eq!(documented.len(), 15, "{documented:?}");
    let used = metric_names(&dashboard);
    assert!(
        used.is_subset(&documented),
        "undocumented: {:?}",
        used.difference(&documented).collect::<Vec<_>>()
    );
    for panel in [
        "gtl_added_latency_seconds",
        "gtl_cost_usd_total",
        "gtl_active_sessions",
    ] {
        assert!(used.contains(panel), "the dashboard shows {panel}");
    }

    // Every query is valid PromQL once Grafana's variables are filled in:
    // promtool checks them as recording rules (JSON is YAML).
    let dashboard: Value = serde_json::from_str(&dashboard).unwrap();
    let rules: Vec<Value> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .enumerate()
        .map(|(i, target)| {
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "5m")
                .replace("$__range", "1h")
                .replace("$job", ".*");
            json!({"record": format!("gtl:dashboard_{i}"), "expr": expr})
        })
        .collect();
    assert!(rules.len() > 20);
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.yml");
    let groups = json!({"groups": [{"name": "dashboard", "rules": rules}]});
    std::fs::write(&file, groups.to_string()).unwrap();
    let out = Command::new(promtool)
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_call_is_an_active_session_until_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), "").await;
    let scrape = || async {
        let (status, text) = get(&format!("http://{}/metrics", server.http)).await;
        assert_eq!(status, 200);
        parse(&text)
    };
    let cancelled = [
        ("route", "chat.stream"),
        ("transport", "tcp"),
        ("provider", "echo"),
        ("model", "echo"),
        ("outcome", "cancelled"),
    ];
    let mut tcp = Raw::hello(&server.tcp, &server.token).await;
    let mut request = stream_request(1, "echo");
    // One token, then nothing until the call is cancelled.
    request["metadata"] = json!({"echo.stall_after": "1"});
    tcp.send(request).await;
    while tcp.recv_call(1).await.unwrap()["type"] != "token" {}
    let running = scrape().await;
    assert_eq!(value(&running, "gtl_active_sessions", &[]), 1.0);
    assert_eq!(value(&running, "gtl_requests_total", &cancelled), 0.0);

    tcp.send(json!({"type": "cancel", "call_id": 1, "reason": "test"}))
        .await;
    let end = tcp.until_terminal(1).await;
    assert_eq!(end.last().unwrap()["code"], "CANCELLED", "{end:?}");
    let after = scrape().await;
    assert_eq!(value(&after, "gtl_active_sessions", &[]), 0.0);
    assert_eq!(value(&after, "gtl_requests_total", &cancelled), 1.0);
}
