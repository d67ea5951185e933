//! Bedrock ConverseStream bodies (AWS event-stream frames), cut in
//! arbitrary chunks.
//!
//! The same bytes go to the event-stream decoder and to the unary Converse
//! decoder (JSON).
//! See `provider` for what is checked and `chunks` for the input layout.

#![no_main]

mod chunks;
mod provider;

use gtl_providers::fuzzing::Decoder;
use libfuzzer_sys::fuzz_target;

const DECODERS: &[Decoder] = &[Decoder::Bedrock, Decoder::BedrockUnary];

fuzz_target!(|data: &[u8]| provider::run(DECODERS, data));
