//! gtl-compat's tests: one binary, one module per concern.
//!
//! - `golden`: GTL event sequences (`tests/golden/events/*.ndjson`) →
//!   each dialect's exact bytes, streamed and unary (`tests/golden/openai/`,
//!   `tests/golden/anthropic/`); `GTL_BLESS=1` rewrites the expected files.
//!   The streams are also read back by SDK-like clients split at every
//!   byte, which must reassemble the same text, tool calls and usage.
//! - `openai_request`, `anthropic_request`: request bodies → GTL requests,
//!   field by field, and every refusal with its message and `param`.
//! - `answers`: errors, model lists and token counts in each dialect.
//! - `spec`: every body and event the goldens hold, validated against the
//!   providers' OpenAPI definitions.
//! - `roundtrip`: this crate's bytes read by GTL's own OpenAI and Anthropic
//!   adapters (through a local replay server) give back the events, usage
//!   and error codes that went in; and dialect requests sent on by either
//!   adapter.

mod answers;
mod anthropic_request;
mod clients;
mod golden;
mod openai_request;
mod roundtrip;
mod spec;
mod support;
