//! `gtl chat --model <provider>/<model>` through a `gtl-server` to each
//! provider adapter, each provider played by a local HTTP server replaying a
//! stream recorded from its live API.

use std::process::Command;

use gtl_client::proto::CompletionRequest;
use gtl_client::user_message;
use gtl_providers::{Env, Registry};
use gtl_test::{ReplayServer, Reply, provider_fixture};

struct Case {
    model: &'static str,
    fixture: &'static str,
    ndjson: bool,
    /// The variables that point the provider at the replay server.
    env: fn(&str) -> Vec<(&'static str, String)>,
}

const CASES: &[Case] = &[
    Case {
        model: "openai/gpt-4o",
        fixture: "openai/chat_text.sse",
        ndjson: false,
        env: |url| {
            vec![
                ("OPENAI_API_KEY", "sk-test".into()),
                ("OPENAI_BASE_URL", format!("{url}/v1")),
            ]
        },
    },
    Case {
        model: "anthropic/claude-sonnet-4-5",
        fixture: "anthropic/messages_text.sse",
        ndjson: false,
        env: |url| {
            vec![
                ("ANTHROPIC_API_KEY", "sk-ant-test".into()),
                ("ANTHROPIC_BASE_URL", url.into()),
            ]
        },
    },
    Case {
        model: "gemini/gemini-2.5-flash",
        fixture: "gemini/stream_text_usage.sse",
        ndjson: false,
        env: |url| {
            vec![
                ("GEMINI_API_KEY", "gm-test".into()),
                ("GEMINI_BASE_URL", url.into()),
            ]
        },
    },
    Case {
        model: "ollama/llama3.2",
        fixture: "ollama/chat_text.ndjson",
        ndjson: true,
        env: |url| vec![("OLLAMA_HOST", url.into())],
    },
];

fn reply(case: &Case) -> Reply {
    let body = gtl_test::read(provider_fixture(case.fixture));
    if case.ndjson {
        Reply::ndjson(body).chunked(7)
    } else {
        Reply::sse(gtl_test::served_sse(&body)).chunked(7)
    }
}

fn registry(env: &Env) -> Registry {
    gtl_server::registry(&[], &Default::default(), env).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gtl_chat_streams_from_every_provider_through_the_server() {
    for case in CASES {
        let replay = ReplayServer::start(reply(case)).await;
        let mut env = Env::new();
        for (name, value) in (case.env)(&replay.url()) {
            env.set(name, value);
        }

        // What the adapter itself makes of the recording.
        let mut request = CompletionRequest {
            model: case.model.into(),
            messages: vec![user_message("Say hello")],
            stream: true,
            ..CompletionRequest::default()
        };
        let direct = registry(&env);
        let provider = direct.resolve(&mut request).unwrap();
        let expected = gtl_core::complete(provider.as_ref(), request)
            .await
            .unwrap();
        assert!(
            !expected.text.is_empty(),
            "{}: the recording has text",
            case.model
        );

        // The same through gtl-server and the `gtl` command.
        let dir = tempfile::tempdir().unwrap();
        let config = crate::uds_only(dir.path());
        let server = gtl_server::Server::bind(&config, registry(&env))
            .await
            .unwrap();
        let endpoint = server.endpoints()[0].clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        let model = case.model;
        let output = tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_gtl"))
                .args([
                    "chat",
                    "--endpoint",
                    &endpoint,
                    "--model",
                    model,
                    "Say hello",
                ])
                .env_remove("GTL_ENDPOINT")
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{model}: {stderr}");
        assert_eq!(stdout.trim_end(), expected.text.trim_end(), "{model}");
        let (provider_name, _) = model.split_once('/').unwrap();
        assert!(
            stderr.contains(provider_name),
            "{model}: usage line names the provider: {stderr}"
        );

        // The provider received one request, on the path its API defines.
        let requests = replay.requests();
        let gateway_request = requests.last().unwrap();
        assert!(
            gateway_request.path.contains(match provider_name {
                "openai" => "/v1/chat/completions",
                "anthropic" => "/v1/messages",
                "gemini" => ":streamGenerateContent",
                _ => "/api/chat",
            }),
            "{model}: {}",
            gateway_request.path
        );

        let _ = stop.send(());
        serving.await.unwrap();
    }
}
