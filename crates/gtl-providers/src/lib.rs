//! GTL provider adapters.
//!
//! Each adapter implements [`gtl_core::Provider`]: it turns a
//! [`CompletionRequest`](gtl_proto::CompletionRequest) into the provider's
//! API call and the provider's answer into GTL's normalised event stream
//! (`status`, `token`, `tool_call`, `usage`, then `done` or `error`).
//!
//! A [`Registry`] holds the configured providers and picks the one a
//! request addresses (`provider/model`, the `provider` field, or an alias).
//!
//! # Providers
//!
//! - [`EchoProvider`] (`echo`, always built): deterministic, needs no key,
//!   streams the last user or tool message back word by word. Its knobs
//!   (delays, generated load, tool calls, injected errors, stalls) make it
//!   the test workhorse; see the [`echo`] module.
//! - `openai` (feature `openai`): OpenAI Chat Completions and every
//!   OpenAI-compatible server (vLLM, llama.cpp, LM Studio, Groq, Mistral,
//!   DeepSeek, Together, OpenRouter), and with feature `azure` Azure
//!   OpenAI deployments; see the `openai` module.
//!
//! # Configuration
//!
//! A [`ProviderConfig`] describes one provider (key, base URL, headers,
//! [`Timeouts`], aliases, prices, models). [`providers_from_env`] builds
//! the providers the usual environment variables switch on (listed on
//! [`configs_from_env`]); [`build`] builds one from a config. Usage is
//! priced with a [`PriceTable`]. `docs/providers.md` describes each
//! provider's mapping, the error table and the timeouts.
//!
//! # Features
//!
//! `openai`, `azure` (implies `openai`), `anthropic`, `gemini`, `ollama`,
//! `bedrock`, and `full` for all of them. Without any, only `echo` is built.
//!
//! # Example
//!
//! ```
//! use gtl_core::{Provider, complete};
//! use gtl_proto::{CompletionRequest, Message, Role, types::Content};
//! use gtl_providers::EchoProvider;
//!
//! let echo = EchoProvider::new();
//! let request = CompletionRequest {
//!     model: "echo".into(),
//!     messages: vec![Message {
//!         role: Role::User as i32,
//!         content: Some(Content::Text("Hello, GTL".into())),
//!         ..Message::default()
//!     }],
//!     ..CompletionRequest::default()
//! };
//! let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
//! let answer = runtime.block_on(complete(&echo, request))?;
//! assert_eq!(answer.text, "Hello, GTL");
//! assert_eq!(answer.finish_reason, "stop");
//! assert_eq!(echo.name(), "echo");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![doc(test(no_crate_inject, attr(deny(warnings))))]

mod config;
pub mod echo;
mod registry;
mod usage;

// The shared HTTP layer and tool-call assembly. Each provider feature uses
// a different part of them.
#[cfg(feature = "__http")]
#[cfg_attr(
    not(feature = "full"),
    allow(
        dead_code,
        unused_imports,
        reason = "each provider feature uses a different subset"
    )
)]
mod http;
#[cfg(feature = "__http")]
#[cfg_attr(
    not(feature = "full"),
    allow(dead_code, reason = "each provider feature uses a different subset")
)]
mod tools;

#[cfg(feature = "anthropic")]
pub mod anthropic;
#[cfg(feature = "bedrock")]
pub mod bedrock;
#[cfg(fuzzing)]
pub mod fuzzing;
#[cfg(feature = "gemini")]
pub mod gemini;
#[cfg(feature = "ollama")]
pub mod ollama;
#[cfg(feature = "openai")]
pub mod openai;

pub use config::{
    AZURE_DEFAULT_API_VERSION, AwsCredentials, Compat, ConfigError, Env, ProviderConfig,
    ProviderKind, Secret, Timeouts, build, configs_from_env, ollama_base_url, providers_from_env,
};
pub use echo::{EchoProvider, EchoStats};
#[cfg(feature = "__http")]
pub use http::set_trace_injector;
pub use registry::Registry;
pub use usage::{Price, PriceTable, merge_usage};
