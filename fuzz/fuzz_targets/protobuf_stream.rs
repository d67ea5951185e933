//! Length-delimited protobuf `Codec` on arbitrary bytes fed in arbitrary chunks.
//!
//! Errors are fine; panics, a decoder that stops making progress, different
//! results for different splits of the same bytes, or a decoded frame that
//! does not re-encode and decode back equal are not. See `common` for the
//! input layout.

#![no_main]

mod common;

use gtl_proto::Encoding;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| common::run(Encoding::Protobuf, data));
