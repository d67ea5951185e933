//! Shared driver of the stream-codec targets.
//!
//! Input layout: byte 0 picks the frame-size limit (small, so the oversize
//! path is hit), byte 1 how many chunk-size bytes follow, then those bytes,
//! then the stream itself. The stream is fed to a [`Codec`] in chunks of the
//! given sizes (cycled), decoding after each chunk until `Ok(None)`.

use bytes::BytesMut;
use gtl_proto::{Codec, CodecError, Encoding, Frame};
use prost::Message as _;

/// What one `decode` call gave, with error sizes left out (a split stream
/// may learn an oversized frame's size only as a lower bound).
#[derive(Debug)]
pub enum Outcome {
    Frame(Box<Frame>),
    TooLarge,
    Json,
    Protobuf,
    LengthPrefix,
    LengthPrefixTooLarge,
    MissingBody,
    TooCostly,
}

/// Frames compare by their protobuf bytes: a NaN double (possible in
/// protobuf input) is not equal to itself, its bytes are.
impl PartialEq for Outcome {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Frame(a), Self::Frame(b)) => same(a, b),
            _ => std::mem::discriminant(self) == std::mem::discriminant(other),
        }
    }
}

pub fn same(a: &Frame, b: &Frame) -> bool {
    a.encode_to_vec() == b.encode_to_vec()
}

pub struct Input<'a> {
    pub max_frame_bytes: usize,
    pub chunks: Vec<usize>,
    pub stream: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn parse(data: &'a [u8]) -> Option<Self> {
        let (&limit, rest) = data.split_first()?;
        let (&count, rest) = rest.split_first()?;
        let count = usize::from(count % 8) + 1;
        if rest.len() < count {
            return None;
        }
        let (sizes, stream) = rest.split_at(count);
        Some(Self {
            // 8..=1028 bytes: a token frame of a few dozen characters fits,
            // anything bigger is rejected and skipped.
            max_frame_bytes: 8 + usize::from(limit) * 4,
            // 255 means "everything that is left".
            chunks: sizes
                .iter()
                .map(|&s| {
                    if s == 255 {
                        usize::MAX
                    } else {
                        usize::from(s) + 1
                    }
                })
                .collect(),
            stream,
        })
    }
}

/// Feeds `input` in chunks and returns every outcome, checking on the way
/// that the decoder always makes progress.
pub fn decode_chunked(encoding: Encoding, input: &Input<'_>) -> Vec<Outcome> {
    let mut codec = Codec::new(encoding).with_max_frame_bytes(input.max_frame_bytes);
    let mut buf = BytesMut::new();
    let mut outcomes = Vec::new();
    let mut rest = input.stream;
    let mut sizes = input.chunks.iter().cycle();
    while !rest.is_empty() {
        let size = (*sizes.next().expect("at least one chunk size")).min(rest.len());
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        buf.extend_from_slice(chunk);
        drain(&mut codec, &mut buf, &mut outcomes, input.stream.len());
    }
    assert!(
        buf.len() <= input.stream.len(),
        "decoder buffer grew beyond its input"
    );
    outcomes
}

/// Feeds the whole stream at once.
pub fn decode_whole(encoding: Encoding, input: &Input<'_>) -> Vec<Outcome> {
    let mut codec = Codec::new(encoding).with_max_frame_bytes(input.max_frame_bytes);
    let mut buf = BytesMut::from(input.stream);
    let mut outcomes = Vec::new();
    drain(&mut codec, &mut buf, &mut outcomes, input.stream.len());
    outcomes
}

fn drain(codec: &mut Codec, buf: &mut BytesMut, outcomes: &mut Vec<Outcome>, total: usize) {
    loop {
        let before = buf.len();
        let outcome = match codec.decode(buf) {
            Ok(None) => return,
            Ok(Some(frame)) => Outcome::Frame(Box::new(frame)),
            Err(CodecError::FrameTooLarge { size, max }) => {
                assert_eq!(max, codec.max_frame_bytes());
                assert!(size > max, "FrameTooLarge for {size} <= {max} bytes");
                Outcome::TooLarge
            }
            Err(CodecError::Json(_)) => Outcome::Json,
            Err(CodecError::Protobuf(_)) => Outcome::Protobuf,
            Err(CodecError::LengthPrefix) => Outcome::LengthPrefix,
            Err(CodecError::LengthPrefixTooLarge { size, bound, max }) => {
                assert_eq!(max, codec.max_frame_bytes());
                assert!(
                    size > bound,
                    "LengthPrefixTooLarge for {size} <= {bound} bytes"
                );
                Outcome::LengthPrefixTooLarge
            }
            Err(CodecError::MissingBody) => Outcome::MissingBody,
            Err(CodecError::TooCostly { cost, max }) => {
                assert!(cost > max, "TooCostly for {cost} <= {max} bytes");
                Outcome::TooCostly
            }
            Err(e) => panic!("unexpected codec error: {e}"),
        };
        // Every frame or error consumes input (or switches to skipping it):
        // a decoder that returns without consuming would loop forever here.
        assert!(
            buf.len() < before,
            "decode returned {outcome:?} without consuming input"
        );
        outcomes.push(outcome);
        assert!(
            outcomes.len() <= total,
            "more outcomes ({}) than input bytes ({total})",
            outcomes.len()
        );
    }
}

/// Every decoded frame re-encodes and decodes back equal (with the default
/// limit: canonical re-encoding may be longer than what was received).
pub fn check_round_trip(encoding: Encoding, outcomes: &[Outcome]) {
    let mut encoder = Codec::new(encoding);
    let mut wire = BytesMut::new();
    let frames: Vec<&Frame> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Frame(f) => Some(&**f),
            _ => None,
        })
        .collect();
    for frame in &frames {
        assert!(frame.body.is_some(), "decoded a frame without a body");
        encoder
            .encode(frame.as_ref(), &mut wire)
            .unwrap_or_else(|e| panic!("decoded frame does not re-encode: {e}\n{frame:?}"));
    }
    let mut decoder = Codec::new(encoding);
    for frame in &frames {
        let back = decoder
            .decode(&mut wire)
            .unwrap_or_else(|e| panic!("re-encoded frame does not decode: {e}\n{frame:?}"))
            .expect("re-encoded frame is complete");
        assert!(
            same(&back, frame),
            "re-encoding changed the frame\n{frame:?}\n{back:?}"
        );
    }
    assert_eq!(decoder.decode(&mut wire).ok().flatten(), None);
    assert!(wire.is_empty(), "bytes left after the re-encoded frames");
}

/// Runs one input through both feeding modes and checks them.
pub fn run(encoding: Encoding, data: &[u8]) {
    let Some(input) = Input::parse(data) else {
        return;
    };
    let chunked = decode_chunked(encoding, &input);
    check_round_trip(encoding, &chunked);
    let whole = decode_whole(encoding, &input);
    // How the bytes were split must not change what they decode to. The one
    // exception: a bad or absurd length prefix drops whatever is buffered,
    // and how much that is depends on the split.
    let unframed = |o: &Vec<Outcome>| {
        o.contains(&Outcome::LengthPrefix) || o.contains(&Outcome::LengthPrefixTooLarge)
    };
    if !unframed(&chunked) && !unframed(&whole) {
        assert_eq!(chunked, whole, "chunked and whole-buffer decoding differ");
    }
}
