//! Length-delimited protobuf `Codec` on arbitrary bytes fed in arbitrary chunks.
//!
//! Errors are fine; panics, a decoder that stops making progress, different
//! results for different splits of the same bytes, or a decoded frame that
//! does not re-encode and decode back equal are not. See `common` for the
//! input layout. The input taken whole as one frame's payload must also
//! decode as prost decodes it (the codec reads token events without prost).

#![no_main]

mod common;

use bytes::BytesMut;
use gtl_proto::{Codec, CodecError, Encoding, Frame};
use libfuzzer_sys::fuzz_target;
use prost::Message as _;

fuzz_target!(|data: &[u8]| {
    common::run(Encoding::Protobuf, data);
    same_as_prost(data);
});

/// The codec reads token events without prost; taken as one frame's
/// payload, any input must decode as prost decodes it.
fn same_as_prost(payload: &[u8]) {
    let mut wire = BytesMut::new();
    prost::encoding::encode_varint(payload.len() as u64, &mut wire);
    wire.extend_from_slice(payload);
    match (
        Codec::new(Encoding::Protobuf).decode(&mut wire),
        Frame::decode(payload),
    ) {
        (Ok(Some(ours)), Ok(prost)) => {
            assert!(common::same(&ours, &prost), "{ours:?}\n{prost:?}")
        }
        (Err(CodecError::MissingBody), Ok(prost)) => assert!(prost.body.is_none()),
        (Err(CodecError::Protobuf(_)), Err(_)) => {}
        (ours, prost) => panic!("codec gave {ours:?}, prost {prost:?}"),
    }
}
