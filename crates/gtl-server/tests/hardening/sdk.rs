//! The official `openai` and `anthropic` Python packages, unmodified,
//! against the real server's compatible routes: text, streams, tools,
//! images, usage, errors, and either dialect to providers that speak the
//! other, served from the recorded provider streams.
//!
//! What each recorded stream should come out as is read by GTL's own
//! adapters straight from the replay server; the scripts check that the
//! SDKs see exactly that through the gateway. A unary SDK call makes a
//! unary provider call, answered with the same answer in the provider's
//! documented unary form.

use std::path::PathBuf;
use std::sync::Arc;

use gtl_core::{Completion, Provider};
use gtl_proto::types::Content;
use gtl_proto::{CompletionRequest, Message, Role};
use gtl_providers::{ProviderConfig, ProviderKind};
use gtl_test::{ReplayServer, Reply, provider_fixture, read, served_sse};
use serde_json::{Value, json};
use tokio::process::Command;

use crate::support::ServerProcess;

/// A provider behind a replay server: its name in GTL, its kind, the
/// model the scripts ask for, and the recording it answers with.
struct Upstream {
    name: &'static str,
    kind: &'static str,
    model: &'static str,
    fixture: &'static str,
}

const UPSTREAMS: [Upstream; 6] = [
    Upstream {
        name: "anthropic",
        kind: "anthropic",
        model: "claude-sonnet-4-5",
        fixture: "anthropic/messages_text.sse",
    },
    Upstream {
        name: "anthropic-tools",
        kind: "anthropic",
        model: "claude-sonnet-4-5",
        fixture: "anthropic/messages_tool_use.sse",
    },
    Upstream {
        name: "openai",
        kind: "openai",
        model: "gpt-4o",
        fixture: "openai/chat_text.sse",
    },
    Upstream {
        name: "openai-tools",
        kind: "openai",
        model: "gpt-4o",
        fixture: "openai/chat_parallel_tool_calls.sse",
    },
    Upstream {
        name: "gemini",
        kind: "gemini",
        model: "gemini-2.5-flash",
        fixture: "gemini/stream_text_usage.sse",
    },
    Upstream {
        name: "ollama",
        kind: "ollama",
        model: "llama3.2",
        fixture: "ollama/chat_text.ndjson",
    },
];

fn reply(fixture: &str) -> Reply {
    let body = read(provider_fixture(fixture));
    if fixture.ends_with(".ndjson") {
        Reply::ndjson(body)
    } else {
        Reply::sse(served_sse(&body))
    }
}

fn kind(name: &str) -> ProviderKind {
    match name {
        "anthropic" => ProviderKind::Anthropic,
        "openai" => ProviderKind::OpenAi,
        "gemini" => ProviderKind::Gemini,
        _ => ProviderKind::Ollama,
    }
}

/// What GTL's own adapter reads from a recording served at `url`.
async fn read_back(upstream: &Upstream, url: &str) -> Completion {
    let config = ProviderConfig::new(kind(upstream.kind))
        .with_base_url(url)
        .with_api_key("replay-key");
    let provider: Arc<dyn Provider> = gtl_providers::build(config).unwrap();
    let request = CompletionRequest {
        model: upstream.model.into(),
        stream: true,
        messages: vec![Message {
            role: Role::User as i32,
            content: Some(Content::Text("hi".into())),
            ..Message::default()
        }],
        ..CompletionRequest::default()
    };
    gtl_core::complete(provider.as_ref(), request)
        .await
        .unwrap()
}

/// The recording's answer in the provider's unary (`stream: false`) form,
/// as each API's reference documents its response body: what the replay
/// answers a unary call with, since only streams were recorded.
fn unary_body(upstream: &Upstream, completion: &Completion) -> Value {
    let usage = completion.usage.unwrap_or_default();
    let (tokens_in, tokens_out, cached) = (usage.tokens_in, usage.tokens_out, usage.cached_tokens);
    let calls = completion.tool_calls.iter().map(|call| {
        let function = call.function.clone().unwrap_or_default();
        let arguments: Value = serde_json::from_str(&function.arguments).unwrap();
        (
            call.id.clone(),
            function.name,
            function.arguments,
            arguments,
        )
    });
    let text = &completion.text;
    match upstream.kind {
        "openai" => {
            let calls: Vec<Value> = calls
                .map(|(id, name, arguments, _)| {
                    json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}})
                })
                .collect();
            let mut message =
                json!({"role": "assistant", "content": (!text.is_empty()).then_some(text)});
            let finish = if calls.is_empty() {
                "stop"
            } else {
                "tool_calls"
            };
            if !calls.is_empty() {
                message["tool_calls"] = json!(calls);
            }
            json!({
                "id": "chatcmpl-replay", "object": "chat.completion", "created": 1_700_000_000,
                "model": upstream.model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": {
                    "prompt_tokens": tokens_in, "completion_tokens": tokens_out,
                    "total_tokens": tokens_in + tokens_out,
                    "prompt_tokens_details": {"cached_tokens": cached},
                },
            })
        }
        "anthropic" => {
            let mut content: Vec<Value> = Vec::new();
            if !text.is_empty() {
                content.push(json!({"type": "text", "text": text}));
            }
            content.extend(calls.map(|(id, name, _, input)| {
                json!({"type": "tool_use", "id": id, "name": name, "input": input})
            }));
            let stop = if completion.tool_calls.is_empty() {
                "end_turn"
            } else {
                "tool_use"
            };
            json!({
                "id": "msg_replay", "type": "message", "role": "assistant",
                "model": upstream.model, "content": content,
                "stop_reason": stop, "stop_sequence": null,
                // GTL's `tokens_in` is the uncached input plus cache reads.
                "usage": {
                    "input_tokens": tokens_in - cached, "output_tokens": tokens_out,
                    "cache_read_input_tokens": cached, "cache_creation_input_tokens": 0,
                },
            })
        }
        "gemini" => {
            let mut parts = vec![json!({"text": text})];
            parts.extend(
                calls.map(
                    |(_, name, _, args)| json!({"functionCall": {"name": name, "args": args}}),
                ),
            );
            json!({
                "candidates": [{
                    "content": {"role": "model", "parts": parts},
                    "finishReason": "STOP", "index": 0,
                }],
                "usageMetadata": {
                    "promptTokenCount": tokens_in, "candidatesTokenCount": tokens_out,
                    "totalTokenCount": tokens_in + tokens_out,
                    "cachedContentTokenCount": cached,
                },
                "modelVersion": upstream.model,
            })
        }
        _ => json!({
            "model": upstream.model, "created_at": "2025-01-01T00:00:00Z",
            "message": {"role": "assistant", "content": text},
            "done": true, "done_reason": "stop",
            "prompt_eval_count": tokens_in, "eval_count": tokens_out,
        }),
    }
}

/// The answer the SDKs must see through the gateway, streamed or not.
fn expected(completion: &Completion) -> Value {
    let usage = completion.usage.unwrap_or_default();
    let calls: Vec<(String, String, Value)> = completion
        .tool_calls
        .iter()
        .map(|call| {
            let function = call.function.clone().unwrap_or_default();
            let arguments = serde_json::from_str(&function.arguments).unwrap();
            (call.id.clone(), function.name, arguments)
        })
        .collect();
    let anthropic_id = |id: &str| -> String {
        id.chars()
            .map(|c| match c {
                'a'..='z' | 'A'..='Z' | '0'..='9' | '_' | '-' => c,
                _ => '_',
            })
            .collect()
    };
    json!({
        "text": completion.text,
        "tool_calls": calls.iter()
            .map(|(id, name, arguments)| json!({"id": id, "name": name, "arguments": arguments}))
            .collect::<Vec<_>>(),
        "tool_calls_anthropic": calls.iter()
            .map(|(id, name, arguments)| json!({"id": anthropic_id(id), "name": name, "arguments": arguments}))
            .collect::<Vec<_>>(),
        "tokens_in": usage.tokens_in,
        "tokens_out": usage.tokens_out,
        "cached": usage.cached_tokens,
    })
}

/// A Python that has both SDKs: the tools environment `.ci/run` makes
/// (`~/.cache/gtl/venv`), else `python3` on `PATH`. `None` (with a note)
/// when neither has them outside CI; in CI their absence fails the test.
async fn python() -> Option<PathBuf> {
    let venv = std::env::var_os("HOME")
        .map(|home| PathBuf::from(home).join(".cache/gtl/venv/bin/python3"));
    for candidate in venv.into_iter().chain([PathBuf::from("python3")]) {
        let works = Command::new(&candidate)
            .args(["-c", "import openai, anthropic"])
            .output()
            .await
            .is_ok_and(|out| out.status.success());
        if works {
            return Some(candidate);
        }
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "the openai and anthropic Python packages are missing: .ci/run installs them"
    );
    eprintln!(
        "skipped: the openai/anthropic Python packages are not installed (bash .ci/run installs them)"
    );
    None
}

/// Starts the replay servers and the gateway pointed at them; the
/// gateway's HTTP port, what each model should answer, and the replays
/// (kept alive for the test).
async fn gateway(
    dir: &std::path::Path,
    dialect: &str,
) -> (ServerProcess, Value, Vec<ReplayServer>) {
    let mut config = String::from("[aliases]\nsmart = \"anthropic/claude-sonnet-4-5\"\n");
    let mut expectations = serde_json::Map::new();
    let mut replays = Vec::new();
    for upstream in &UPSTREAMS {
        // Only streams were recorded: a unary call is answered with the
        // same answer in the provider's unary form.
        let recorded = reply(upstream.fixture);
        let completion =
            read_back(upstream, &ReplayServer::start(recorded.clone()).await.url()).await;
        let unary = Reply::json(200, unary_body(upstream, &completion).to_string());
        let replay = ReplayServer::start_by_mode(recorded, unary).await;
        let url = replay.url();
        config.push_str(&format!(
            "[[providers]]\nkind = \"{}\"\nname = \"{}\"\nbase_url = \"{url}\"\napi_key_env = \"GTL_TEST_PROVIDER_KEY\"\n",
            upstream.kind, upstream.name
        ));
        // Each SDK is checked against the providers of the other dialect
        // (and Gemini and Ollama, which are neither).
        if upstream.kind != dialect {
            let model = format!("{}/{}", upstream.name, upstream.model);
            expectations.insert(model, expected(&completion));
        }
        replays.push(replay);
    }
    if dialect == "openai" {
        // An alias resolves to the provider it names.
        let smart = expectations["anthropic/claude-sonnet-4-5"].clone();
        expectations.insert("smart".into(), smart);
    }
    let server = ServerProcess::start(dir, &config).await;
    (server, Value::Object(expectations), replays)
}

async fn run_script(dialect: &str) {
    let Some(python) = python().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (server, expected, _replays) = gateway(dir.path(), dialect).await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/hardening/sdk/{dialect}_sdk.py"));
    let out = Command::new(python)
        .arg(&script)
        .env("GTL_BASE_URL", format!("http://{}", server.http))
        .env("GTL_EXPECTED", expected.to_string())
        // The SDKs must not pick up a real key or endpoint from the
        // environment running the tests.
        .env_remove("OPENAI_BASE_URL")
        .env_remove("ANTHROPIC_BASE_URL")
        // The gateway's local token, as `gtl token show` prints it.
        .env("OPENAI_API_KEY", &server.token)
        .env("ANTHROPIC_API_KEY", &server.token)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{dialect} SDK script failed\n--- stdout\n{stdout}--- stderr\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{stdout}");
    // Every check ran: the cross-dialect ones once per provider.
    assert!(stdout.lines().all(|l| l.starts_with("ok ")), "{stdout}");
    for model in expected.as_object().unwrap().keys() {
        assert!(stdout.contains(&format!("ok {model} stream")), "{stdout}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_sdk_works_unmodified_against_any_provider() {
    run_script("openai").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_anthropic_sdk_works_unmodified_against_any_provider() {
    run_script("anthropic").await;
}
