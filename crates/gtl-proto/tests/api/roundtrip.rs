//! Lossless conversion between the JSON and protobuf forms, proven on
//! arbitrary frames of every type.

use bytes::BytesMut;
use gtl_proto::{Codec, Encoding, Frame};
use proptest::prelude::*;
use prost::Message as _;

use crate::strategies::frame;

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    /// protobuf → JSON → protobuf gives the same frame, and the same bytes.
    #[test]
    fn json_preserves_every_protobuf_frame(frame in frame()) {
        let json = frame.to_json().unwrap();
        let back = Frame::from_json(json.as_bytes()).unwrap();
        prop_assert_eq!(&back, &frame);
        prop_assert_eq!(back.encode_to_vec(), frame.encode_to_vec());
    }

    /// JSON → protobuf → JSON gives the same text, for canonical JSON.
    #[test]
    fn protobuf_preserves_every_json_frame(frame in frame()) {
        let json = frame.to_json().unwrap();
        let wire = Frame::from_json(json.as_bytes()).unwrap().encode_to_vec();
        let again = Frame::decode(&wire[..]).unwrap().to_json().unwrap();
        prop_assert_eq!(again, json);
    }

    /// Both stream codecs give back what they were given, in order.
    #[test]
    fn codecs_round_trip(frames in proptest::collection::vec(frame(), 1..4)) {
        for encoding in [Encoding::Json, Encoding::Protobuf] {
            let mut codec = Codec::new(encoding);
            let mut wire = BytesMut::new();
            for f in &frames {
                codec.encode(f.as_ref(), &mut wire).unwrap();
            }
            let mut got = Vec::new();
            while let Some(f) = codec.decode(&mut wire).unwrap() {
                got.push(f);
            }
            prop_assert_eq!(&got, &frames);
        }
    }
}
