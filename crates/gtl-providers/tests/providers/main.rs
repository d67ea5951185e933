//! The provider adapters' integration tests: one test binary, one module
//! per provider.
//!
//! Each network adapter runs against [`gtl_test::ReplayServer`], a local
//! HTTP server that serves the provider's exact wire format (the recorded
//! streams in `shared/providers/fixtures/`, and this crate's
//! `tests/fixtures/<provider>/` variations) and records the requests it
//! gets, so each test asserts both the GTL events and the outbound request
//! (method, path, headers, and the body against the provider's published
//! schema, with [`gtl_test::OpenApi`]).
//!
//! To add a provider: create `tests/providers/<provider>.rs` (or a
//! `<provider>/mod.rs` directory) and declare it below behind its feature,
//! e.g. `#[cfg(feature = "anthropic")] mod anthropic;`.
//!
//! Run them all with `cargo test -p gtl-providers --features full`.

mod echo;
#[cfg(any(
    feature = "anthropic",
    feature = "gemini",
    feature = "ollama",
    feature = "bedrock"
))]
mod support;

#[cfg(feature = "openai")]
mod openai;

#[cfg(feature = "ollama")]
mod ollama;

#[cfg(feature = "bedrock")]
mod bedrock;

#[cfg(feature = "anthropic")]
mod anthropic;

#[cfg(feature = "gemini")]
mod gemini;
