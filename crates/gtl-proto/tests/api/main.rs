//! Integration tests of gtl-proto: JSON mapping, codecs and round trips.

mod codec;
mod decoding;
mod json;
mod roundtrip;
mod strategies;
mod vectors;
