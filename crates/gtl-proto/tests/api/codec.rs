//! Framing: split input, size limits, recovery after bad frames.

use bytes::BytesMut;
use gtl_proto::{Body, Codec, CodecError, Encoding, ErrorCode, Frame, Ping, Token, sse};

fn token(seq: u64, text: &str) -> Frame {
    Frame::event("s", seq, Body::Token(Token { text: text.into() }))
}

fn encode_all(codec: &mut Codec, frames: &[Frame]) -> BytesMut {
    let mut wire = BytesMut::new();
    for frame in frames {
        codec.encode(frame.as_ref(), &mut wire).unwrap();
    }
    wire
}

#[test]
fn frames_split_at_every_byte_offset_decode_whole() {
    for encoding in [Encoding::Json, Encoding::Protobuf] {
        let frames: Vec<Frame> = (1..=3)
            .map(|i| token(i, &"é".repeat(i as usize * 50)))
            .collect();
        let wire = encode_all(&mut Codec::new(encoding), &frames);
        for cut in 0..=wire.len() {
            let mut codec = Codec::new(encoding);
            let mut buf = BytesMut::from(&wire[..cut]);
            let mut got = Vec::new();
            while let Some(f) = codec.decode(&mut buf).unwrap() {
                got.push(f);
            }
            buf.extend_from_slice(&wire[cut..]);
            while let Some(f) = codec.decode(&mut buf).unwrap() {
                got.push(f);
            }
            assert_eq!(got, frames, "{encoding:?} cut at {cut}");
            assert!(buf.is_empty());
        }
    }
}

#[test]
fn byte_by_byte_feeding_decodes_everything() {
    for encoding in [Encoding::Json, Encoding::Protobuf] {
        let frames: Vec<Frame> = (1..=20).map(|i| token(i, "tok ")).collect();
        let wire = encode_all(&mut Codec::new(encoding), &frames);
        let mut codec = Codec::new(encoding);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for byte in wire.iter() {
            buf.extend_from_slice(&[*byte]);
            while let Some(f) = codec.decode(&mut buf).unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, frames, "{encoding:?}");
    }
}

#[test]
fn oversized_frames_are_rejected_then_skipped() {
    for encoding in [Encoding::Json, Encoding::Protobuf] {
        let big = token(1, &"x".repeat(4096));
        let small = token(2, "ok");
        let wire = encode_all(&mut Codec::new(encoding), &[big.clone(), small.clone()]);

        // Whole input at once, and in pieces smaller than the limit.
        for chunk in [wire.len(), 100, 7] {
            let mut codec = Codec::new(encoding).with_max_frame_bytes(1024);
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            let mut too_large = 0;
            for piece in wire.chunks(chunk) {
                buf.extend_from_slice(piece);
                loop {
                    match codec.decode(&mut buf) {
                        Ok(Some(f)) => got.push(f),
                        Ok(None) => break,
                        Err(e @ CodecError::FrameTooLarge { .. }) => {
                            assert_eq!(e.code(), ErrorCode::FrameTooLarge);
                            assert!(!e.is_fatal());
                            too_large += 1;
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            assert_eq!(too_large, 1, "{encoding:?} chunk {chunk}");
            assert_eq!(got, vec![small.clone()], "{encoding:?} chunk {chunk}");
        }

        // The encoder refuses to produce what the peer would refuse.
        let mut codec = Codec::new(encoding).with_max_frame_bytes(1024);
        let mut out = BytesMut::from(&b"kept"[..]);
        let err = codec.encode(big.as_ref(), &mut out).unwrap_err();
        assert!(
            matches!(err, CodecError::FrameTooLarge { max: 1024, .. }),
            "{err}"
        );
        assert_eq!(&out[..], b"kept", "a failed encode leaves the buffer alone");
    }
}

#[test]
fn malformed_json_line_is_an_error_and_the_next_line_decodes() {
    let mut codec = Codec::new(Encoding::Json);
    let mut buf = BytesMut::from(&b"{not json\n\r\n{\"type\":\"ping\",\"nonce\":1}\r\n"[..]);
    let err = codec.decode(&mut buf).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidRequest);
    let frame = codec.decode(&mut buf).unwrap().unwrap();
    assert_eq!(frame.body, Some(Body::Ping(Ping { nonce: 1 })));
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
}

#[test]
fn malformed_protobuf_is_an_error_and_the_next_frame_decodes() {
    let mut codec = Codec::new(Encoding::Protobuf);
    // Length 3, then a field with an invalid wire type (7).
    let mut buf = BytesMut::from(&[3u8, 0x0f, 0x01, 0x02][..]);
    buf.extend_from_slice(&encode_all(
        &mut Codec::new(Encoding::Protobuf),
        &[token(1, "ok")],
    ));
    assert!(matches!(
        codec.decode(&mut buf),
        Err(CodecError::Protobuf(_))
    ));
    assert_eq!(codec.decode(&mut buf).unwrap(), Some(token(1, "ok")));
}

#[test]
fn frames_without_a_body_are_rejected() {
    let mut codec = Codec::new(Encoding::Protobuf);
    // An empty frame: length 0.
    let mut buf = BytesMut::from(&[0u8][..]);
    assert!(matches!(
        codec.decode(&mut buf),
        Err(CodecError::MissingBody { .. })
    ));
    let empty = Frame::default();
    assert!(matches!(
        codec.encode(empty.as_ref(), &mut BytesMut::new()),
        Err(CodecError::MissingBody { .. })
    ));
}

#[test]
fn bad_length_prefix_is_a_fatal_invalid_request() {
    // Eleven continuation bytes, and a tenth byte carrying bits past 64.
    let mut overflow = vec![0xffu8; 9];
    overflow.push(0x02);
    for wire in [vec![0xffu8; 11], overflow] {
        let mut codec = Codec::new(Encoding::Protobuf);
        let mut buf = BytesMut::from(&wire[..]);
        let err = codec.decode(&mut buf).unwrap_err();
        assert!(matches!(err, CodecError::LengthPrefix), "{err}");
        assert_eq!(err.code(), ErrorCode::InvalidRequest);
        assert!(err.is_fatal());
        assert!(
            err.to_string().starts_with("invalid length prefix"),
            "{err}"
        );
        assert!(buf.is_empty(), "the unframeable bytes are dropped");
    }
}

/// The varint of `n`, as a length prefix.
fn prefix(n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    prost::encoding::encode_varint(n, &mut out);
    out
}

#[test]
fn absurd_length_prefix_is_fatal_at_every_split() {
    for size in [1 << 63, u64::MAX, 16 * 1024 + 1] {
        let mut wire = prefix(size);
        wire.extend_from_slice(b"rest of the stream");
        for cut in 0..=wire.len() {
            let mut codec = Codec::new(Encoding::Protobuf).with_max_frame_bytes(1024);
            let mut buf = BytesMut::from(&wire[..cut]);
            let mut result = codec.decode(&mut buf);
            if matches!(result, Ok(None)) {
                buf.extend_from_slice(&wire[cut..]);
                result = codec.decode(&mut buf);
            }
            let err = result.unwrap_err();
            assert!(
                matches!(err, CodecError::LengthPrefixTooLarge { size: s, bound: 16384, max: 1024 } if s == size),
                "{size} cut at {cut}: {err}"
            );
            assert_eq!(err.code(), ErrorCode::FrameTooLarge);
            assert!(err.is_fatal());
            assert!(buf.is_empty());
        }
    }
}

#[test]
fn length_prefix_up_to_the_skip_limit_is_skipped() {
    let mut codec = Codec::new(Encoding::Protobuf).with_max_frame_bytes(1024);
    assert_eq!(codec.skip_limit(), 16 * 1024);
    let mut wire = prefix(16 * 1024);
    wire.resize(wire.len() + 16 * 1024, 0xff);
    let ok = token(1, "ok");
    wire.extend_from_slice(&encode_all(
        &mut Codec::new(Encoding::Protobuf),
        std::slice::from_ref(&ok),
    ));
    let mut got = Vec::new();
    let mut buf = BytesMut::new();
    for piece in wire.chunks(1000) {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(f)) => got.push(f),
                Ok(None) => break,
                Err(e) => {
                    assert!(matches!(e, CodecError::FrameTooLarge { .. }), "{e}");
                    assert!(!e.is_fatal());
                }
            }
        }
    }
    assert_eq!(got, vec![ok]);
}

#[test]
fn sse_events_carry_type_id_and_json() {
    let mut out = BytesMut::new();
    sse::encode(token(2, "Hel").as_ref(), 1024, &mut out).unwrap();
    sse::comment("keep-alive", &mut out);
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        "event: token\nid: 2\ndata: {\"type\":\"token\",\"session_id\":\"s\",\"seq\":2,\"text\":\"Hel\"}\n\n: keep-alive\n\n"
    );
    let err = sse::encode(token(3, &"x".repeat(2000)).as_ref(), 1024, &mut out).unwrap_err();
    assert_eq!(err.code(), ErrorCode::FrameTooLarge);
}

#[test]
fn unspecified_encoding_means_json() {
    assert_eq!(Codec::new(Encoding::Unspecified).encoding(), Encoding::Json);
}

#[test]
fn a_frame_with_no_json_form_is_an_error_and_leaves_the_buffer_alone() {
    let frame = Frame::event(
        "s",
        5,
        Body::Usage(gtl_proto::Usage {
            cost: f64::NAN,
            ..gtl_proto::Usage::default()
        }),
    );
    let mut codec = Codec::new(Encoding::Json);
    let mut out = BytesMut::from(&b"kept"[..]);
    let err = codec.encode(frame.as_ref(), &mut out).unwrap_err();
    assert!(matches!(err, CodecError::Json(_)), "{err}");
    assert_eq!(err.code(), ErrorCode::InvalidRequest);
    let err = sse::encode(frame.as_ref(), 1024, &mut out).unwrap_err();
    assert!(matches!(err, CodecError::Json(_)), "{err}");
    assert_eq!(&out[..], b"kept", "a failed encode leaves the buffer alone");
    // Protobuf carries it.
    let mut codec = Codec::new(Encoding::Protobuf);
    codec.encode(frame.as_ref(), &mut out).unwrap();
}
