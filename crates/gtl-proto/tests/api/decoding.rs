//! The decoders' fast paths against the general ones.
//!
//! `Frame::from_json` reads the hot event types as encoders write them
//! without serde, and the protobuf codec reads token events without prost;
//! `serde_json` driving `Frame`'s `Deserialize` (the visitor) and
//! `prost::Message::decode` are the references they must agree with.

use std::collections::BTreeMap;

use bytes::BytesMut;
use gtl_proto::{Body, Codec, CodecError, Encoding, Frame, FrameType, Token};
use proptest::prelude::*;
use prost::Message as _;
use serde_json::value::RawValue;

use crate::strategies::frame;

/// What `from_json` gives, compared with the visitor alone.
fn check_json_agrees(json: &[u8]) -> Result<(), TestCaseError> {
    let fast = Frame::from_json(json).ok();
    // Text that is not UTF-8 is read by the full mapping in both cases,
    // except through the visitor; only UTF-8 text is compared.
    if let Ok(text) = std::str::from_utf8(json) {
        let reference = serde_json::from_str::<Frame>(text).ok();
        prop_assert_eq!(fast, reference, "{}", text);
    }
    Ok(())
}

/// Small edits: what a buggy or hostile peer, or a fuzzer, would send.
#[derive(Debug, Clone)]
enum Edit {
    Remove(usize),
    Insert(usize, &'static str),
    Replace(usize, u8),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let piece = prop::sample::select(vec![
        "\"",
        "\\",
        " ",
        ",",
        ":",
        "{",
        "}",
        "[",
        "]",
        "0",
        "01",
        "-1",
        "1.5",
        "1e400",
        "null",
        "true",
        "\"x\"",
        "\"type\":",
        "\"token\"",
        "\"msg\":\"m\",",
        "\"text\":",
        "\"seq\":7,",
        "\"state\":5,",
        "\"stream\":true,",
        "\"future\":[1,{}],",
        "\\n",
        "\\u0065",
        "\n",
        "\t",
        "é",
    ]);
    let edit = prop_oneof![
        any::<usize>().prop_map(Edit::Remove),
        (any::<usize>(), piece).prop_map(|(at, s)| Edit::Insert(at, s)),
        (
            any::<usize>(),
            prop::sample::select(b"{}\":,\\ 0a".to_vec())
        )
            .prop_map(|(at, b)| Edit::Replace(at, b)),
    ];
    prop::collection::vec(edit, 1..4)
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for edit in edits {
        let len = bytes.len();
        match *edit {
            Edit::Remove(at) if len > 0 => {
                bytes.remove(at % len);
            }
            Edit::Insert(at, piece) => {
                let at = at % (len + 1);
                bytes.splice(at..at, piece.bytes());
            }
            Edit::Replace(at, b) if len > 0 => bytes[at % len] = b,
            _ => {}
        }
    }
    bytes
}

/// The top-level entries of a canonical JSON frame, values kept raw.
fn entries(json: &str) -> Vec<(String, Box<RawValue>)> {
    let map: BTreeMap<String, Box<RawValue>> = serde_json::from_str(json).unwrap();
    map.into_iter().collect()
}

fn object(entries: &[(String, Box<RawValue>)], sep: &str) -> String {
    let fields: Vec<String> = entries
        .iter()
        .map(|(key, value)| format!("\"{key}\":{sep}{}", value.get()))
        .collect();
    format!("{{{}}}", fields.join(&format!(",{sep}")))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    /// On canonical JSON and on any small edit of it, the direct path of
    /// the hot types agrees with the visitor: the same frame, or an error.
    #[test]
    fn json_fast_path_agrees_with_the_visitor(frame in frame(), edits in edits()) {
        let json = frame.to_json().unwrap();
        check_json_agrees(json.as_bytes())?;
        check_json_agrees(&apply(json.into_bytes(), &edits))?;
    }

    /// Keys in any order, whitespace, unknown keys: the same frame.
    #[test]
    fn any_key_order_decodes_the_same(frame in frame()) {
        let json = frame.to_json().unwrap();
        let mut sorted = entries(&json);
        let unknown: Box<RawValue> =
            RawValue::from_string(r#"{"x":[1,"é",null],"type":"hello"}"#.into()).unwrap();
        let mut variants = vec![object(&sorted, ""), object(&sorted, " ")];
        sorted.reverse();
        variants.push(object(&sorted, ""));
        sorted.insert(0, ("from_the_future".into(), unknown.clone()));
        variants.push(object(&sorted, ""));
        sorted.rotate_left(1);
        variants.push(object(&sorted, "\n "));
        for variant in variants {
            let back = Frame::from_json(variant.as_bytes());
            prop_assert_eq!(back.as_ref().ok(), Some(&frame), "{}", variant);
        }
    }

    /// The codec's token path agrees with prost on token frames and on any
    /// small edit of their bytes.
    #[test]
    fn protobuf_fast_path_agrees_with_prost(
        call_id in prop_oneof![Just(0u64), any::<u64>()],
        session_id in "[a-z0-9_]{0,20}",
        seq in prop_oneof![Just(0u64), any::<u64>()],
        text in any::<String>(),
        edits in prop::collection::vec((any::<usize>(), any::<u8>(), 0..4u8), 0..3),
    ) {
        let frame = Frame {
            call_id,
            session_id,
            seq,
            body: Some(Body::Token(Token { text })),
        };
        let mut payload = frame.encode_to_vec();
        for (at, byte, kind) in edits {
            let len = payload.len();
            match kind {
                0 if len > 0 => { payload.remove(at % len); }
                1 => payload.insert(at % (len + 1), byte),
                2 if len > 0 => payload[at % len] = byte,
                _ => payload.truncate(at % (len + 1)),
            }
        }
        let mut wire = BytesMut::new();
        prost::encoding::encode_varint(payload.len() as u64, &mut wire);
        wire.extend_from_slice(&payload);
        let ours = Codec::new(Encoding::Protobuf).decode(&mut wire);
        match (ours, Frame::decode(&payload[..])) {
            (Ok(Some(a)), Ok(b)) => prop_assert_eq!(a, b),
            (Err(CodecError::MissingBody { .. }), Ok(b)) => prop_assert!(b.body.is_none()),
            (Err(CodecError::Protobuf(_)), Err(_)) => {}
            (ours, prost) => prop_assert!(false, "codec {:?}, prost {:?}", ours, prost),
        }
    }
}

fn parse(json: &str) -> Result<Frame, String> {
    Frame::from_json(json.as_bytes()).map_err(|e| e.to_string())
}

#[test]
fn the_type_may_come_anywhere() {
    let token = parse(r#"{"text":"a","seq":2,"type":"token"}"#).unwrap();
    assert_eq!(
        token,
        Frame::event("", 2, Body::Token(Token { text: "a".into() }))
    );
    let request =
        parse(r#"{"session_id":"s","model":"m","type":"completion_request","stream":true}"#)
            .unwrap();
    assert_eq!(request.frame_type(), Some(FrameType::CompletionRequest));
    assert_eq!(request.session_id, "s");
    let Some(Body::CompletionRequest(request)) = request.body else {
        panic!("not a request")
    };
    assert_eq!((request.model.as_str(), request.stream), ("m", true));
}

#[test]
fn every_known_key_is_checked_whatever_the_type() {
    // The full mapping reads every field of every type, so a field of
    // another type with the wrong JSON type is an error, in any position.
    for json in [
        r#"{"type":"token","text":"a","stream":"yes"}"#,
        r#"{"stream":"yes","type":"token","text":"a"}"#,
        r#"{"type":"token","state":5}"#,
        r#"{"type":"ping","cost":"free"}"#,
        r#"{"type":"hello","nonce":-1}"#,
    ] {
        assert!(parse(json).is_err(), "{json}");
    }
    // Unknown keys are not.
    for json in [
        r#"{"type":"token","text":"a","streamed":"yes"}"#,
        r#"{"futur":{"x":1e400},"type":"hello"}"#,
    ] {
        assert!(parse(json).is_ok(), "{json}");
    }
}

#[test]
fn a_key_given_twice_is_an_error() {
    for (json, key) in [
        (r#"{"type":"token","text":"a","text":"b"}"#, "text"),
        (r#"{"text":"a","type":"token","text":"b"}"#, "text"),
        (r#"{"type":"error","msg":"a","msg":"b"}"#, "msg"),
        (r#"{"type":"hello","type":"hello"}"#, "type"),
        (r#"{"type":null,"type":"token"}"#, "type"),
        (r#"{"seq":1,"type":"hello","seq":2}"#, "seq"),
        (r#"{"type":"token","stream":true,"stream":true}"#, "stream"),
    ] {
        let err = parse(json).unwrap_err();
        assert!(
            err.contains(&format!("duplicate field `{key}`")),
            "{json}: {err}"
        );
    }
}

#[test]
fn other_serde_deserializers_work_too() {
    // A `Value` holds its keys sorted: `type` comes late, after the keys of
    // other types, which the visitor keeps aside as raw JSON.
    for json in [
        r#"{"type":"token","session_id":"s","seq":3,"text":"a"}"#,
        r#"{"type":"completion_request","model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0.5,"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]}"#,
        r#"{"type":"patch","op":{"Insert":{"range":null,"text":"x"}},"rev":1}"#,
    ] {
        let value: serde_json::Value = serde_json::from_str(json).unwrap();
        let frame: Frame = serde_json::from_value(value).unwrap();
        assert_eq!(frame, parse(json).unwrap(), "{json}");
    }
    let value = serde_json::json!({"type": "token", "text": "a", "stream": "yes"});
    assert!(serde_json::from_value::<Frame>(value).is_err());
}
