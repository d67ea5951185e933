//! Upstream bodies are logged only when the `gtl::bodies` target is asked
//! for at trace level, and never with the provider key. A test binary of
//! its own: the subscriber it installs must not race other tests' callsites.
#![cfg(feature = "openai")]

use std::io::Write;
use std::sync::{Arc, Mutex};

use futures::StreamExt as _;
use gtl_core::Provider as _;
use gtl_proto::types::Content;
use gtl_proto::{CompletionRequest, Message, Role};
use gtl_providers::openai::OpenAiProvider;
use gtl_providers::{ProviderConfig, ProviderKind};
use gtl_test::{ReplayServer, Reply};

const KEY: &str = "sk-test-0123456789";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn bodies_are_logged_only_when_asked_for_and_without_the_key() {
    for (filter, logged) in [("debug", false), ("gtl::bodies=trace", true)] {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(move || writer.clone())
            .finish();
        let _default = tracing::subscriber::set_default(subscriber);
        let server = ReplayServer::start(
            Reply::sse("").body_file(gtl_test::provider_fixture("openai/chat_text.sse")),
        )
        .await;
        let provider = OpenAiProvider::new(
            ProviderConfig::new(ProviderKind::OpenAi)
                .with_api_key(KEY)
                .with_base_url(format!("{}/v1", server.url())),
        )
        .unwrap();
        // The key in the prompt: the body log must not show it either.
        let request = CompletionRequest {
            model: "gpt-4o".into(),
            stream: true,
            messages: vec![Message {
                role: Role::User as i32,
                content: Some(Content::Text(format!("my key is {KEY}"))),
                ..Message::default()
            }],
            ..CompletionRequest::default()
        };
        let events: Vec<_> = provider.stream(request).await.unwrap().collect().await;
        assert!(!events.is_empty());
        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert_eq!(log.contains("upstream request"), logged, "{filter}: {log}");
        assert_eq!(log.contains("upstream response"), logged, "{filter}: {log}");
        assert!(!log.contains(KEY), "{filter}: the key is scrubbed: {log}");
        if logged {
            assert!(log.contains("[redacted]"), "{log}");
            assert!(log.contains("chat.completion.chunk"), "{log}");
        }
    }
}
