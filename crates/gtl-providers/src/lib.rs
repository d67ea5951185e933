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

pub mod echo;
mod registry;

pub use echo::{EchoProvider, EchoStats};
pub use registry::Registry;
