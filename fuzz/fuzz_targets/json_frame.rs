//! `Frame::from_json` on arbitrary bytes.
//!
//! `from_json` must agree with the serde visitor it short-cuts, whatever
//! parses must print (`to_json`), the printed text must parse back to an
//! equal frame and print the same text again (canonical form), and the frame
//! must survive protobuf and SSE encoding unchanged.

#![no_main]

use bytes::BytesMut;
use gtl_proto::{DEFAULT_MAX_FRAME_BYTES, Frame, sse};
use libfuzzer_sys::fuzz_target;
use prost::Message as _;

fuzz_target!(|data: &[u8]| {
    // `from_json` reads hot events laid out as encoders write them without
    // serde; on UTF-8 text it must agree with `Frame`'s serde visitor.
    let parsed = Frame::from_json(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let reference = serde_json::from_str::<Frame>(text);
        assert_eq!(
            parsed.as_ref().ok(),
            reference.as_ref().ok(),
            "from_json and the serde visitor disagree: {reference:?}"
        );
    }
    let Ok(frame) = parsed else {
        return;
    };
    assert!(
        frame.body.is_some(),
        "a parsed JSON frame always has a body"
    );

    // JSON → frame → JSON → frame: equal frames, identical canonical text.
    let json = frame
        .to_json()
        .unwrap_or_else(|e| panic!("parsed frame does not print: {e}\n{frame:?}"));
    assert!(
        !json.contains('\n'),
        "JSON form holds a raw newline: {json}"
    );
    let back = Frame::from_json(json.as_bytes())
        .unwrap_or_else(|e| panic!("printed JSON does not parse: {e}\n{json}"));
    assert_eq!(back, frame, "JSON round trip changed the frame\n{json}");
    let again = back.to_json().expect("re-parsed frame prints");
    assert_eq!(again, json, "canonical JSON is not a fixed point");

    // JSON → protobuf → frame: the two forms convert without loss.
    let wire = frame.encode_to_vec();
    assert_eq!(wire.len(), frame.as_ref().protobuf_len());
    let mut borrowed = Vec::with_capacity(wire.len());
    frame.as_ref().encode_protobuf(&mut borrowed);
    assert_eq!(
        borrowed, wire,
        "FrameRef::encode_protobuf differs from prost"
    );
    let decoded = Frame::decode(&wire[..]).expect("own protobuf encoding decodes");
    assert_eq!(
        decoded, frame,
        "protobuf round trip changed the frame\n{json}"
    );
    let via_protobuf = decoded.to_json().expect("protobuf-decoded frame prints");
    let reparsed = Frame::from_json(via_protobuf.as_bytes()).expect("it parses");
    assert_eq!(reparsed, frame, "JSON → protobuf → JSON changed the frame");

    // SSE: one event, its data line is exactly the JSON form.
    let mut out = BytesMut::new();
    sse::encode(frame.as_ref(), DEFAULT_MAX_FRAME_BYTES, &mut out).expect("SSE encodes");
    let text = std::str::from_utf8(&out).expect("SSE is UTF-8");
    let event = text
        .strip_suffix("\n\n")
        .expect("an SSE event ends with a blank line");
    let data = event
        .lines()
        .find_map(|line| line.strip_prefix("data: "))
        .expect("an SSE event has a data line");
    assert_eq!(data, json, "SSE data is not the JSON form");
    assert_eq!(event.lines().count(), if frame.seq == 0 { 2 } else { 3 });
});
