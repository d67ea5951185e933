//! Anthropic Messages bodies, cut in arbitrary chunks.
//!
//! The same bytes go to the event-stream decoder and to the unary one.
//! See `provider` for what is checked and `chunks` for the input layout.

#![no_main]

mod chunks;
mod provider;

use gtl_providers::fuzzing::Decoder;
use libfuzzer_sys::fuzz_target;

const DECODERS: &[Decoder] = &[Decoder::Anthropic, Decoder::AnthropicUnary];

fuzz_target!(|data: &[u8]| provider::run(DECODERS, data));
