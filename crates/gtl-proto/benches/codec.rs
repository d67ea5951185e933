//! Codec throughput on the hot path: token events.
//!
//! Each iteration handles a batch of 1000 token frames (call 1, session
//! `s_0123456789abcdef`, seq 1..=1000, text `" hello"`), so the reported
//! element rate is frames per second on one core. Targets: ≥ 5M frames/s
//! protobuf and ≥ 2M frames/s JSON for an encode+decode round trip.
//!
//! Run with `cargo bench -p gtl-proto --bench codec`.

use std::hint::black_box;
use std::time::Duration;

use bytes::BytesMut;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use gtl_proto::{Body, Codec, DEFAULT_MAX_FRAME_BYTES, Encoding, Frame, Token, sse};

const BATCH: u64 = 1000;

fn token_frames() -> Vec<Frame> {
    (1..=BATCH)
        .map(|seq| {
            let mut frame = Frame::event(
                "s_0123456789abcdef",
                seq,
                Body::Token(Token {
                    text: " hello".into(),
                }),
            );
            frame.call_id = 1;
            frame
        })
        .collect()
}

fn encode_all(codec: &mut Codec, frames: &[Frame], wire: &mut BytesMut) {
    for frame in frames {
        codec
            .encode(frame.as_ref(), wire)
            .expect("token frame encodes");
    }
}

fn decode_all(codec: &mut Codec, wire: &mut BytesMut) -> u64 {
    let mut n = 0;
    while let Some(frame) = codec.decode(wire).expect("token frame decodes") {
        black_box(frame);
        n += 1;
    }
    n
}

fn encoded(encoding: Encoding, frames: &[Frame]) -> BytesMut {
    let mut wire = BytesMut::new();
    encode_all(&mut Codec::new(encoding), frames, &mut wire);
    wire
}

fn token_codec(c: &mut Criterion) {
    let frames = token_frames();
    let mut group = c.benchmark_group("token_x1000");
    group
        .throughput(Throughput::Elements(BATCH))
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(20);

    for (name, encoding) in [("protobuf", Encoding::Protobuf), ("json", Encoding::Json)] {
        // Sanity: the batch decodes back to what was encoded.
        let mut check = encoded(encoding, &frames);
        let mut codec = Codec::new(encoding);
        let mut back = Vec::new();
        while let Some(frame) = codec.decode(&mut check).unwrap() {
            back.push(frame);
        }
        assert_eq!(back, frames, "{name} round trip");

        group.bench_function(BenchmarkId::new("roundtrip", name), |b| {
            let mut codec = Codec::new(encoding);
            let mut wire = BytesMut::with_capacity(64 * 1024);
            b.iter(|| {
                encode_all(&mut codec, black_box(&frames), &mut wire);
                let n = decode_all(&mut codec, &mut wire);
                debug_assert_eq!(n, BATCH);
                wire.clear();
            });
        });

        group.bench_function(BenchmarkId::new("encode", name), |b| {
            let mut codec = Codec::new(encoding);
            let mut wire = BytesMut::with_capacity(64 * 1024);
            b.iter(|| {
                wire.clear();
                encode_all(&mut codec, black_box(&frames), &mut wire);
                black_box(wire.len());
            });
        });

        let wire = encoded(encoding, &frames);
        group.bench_function(BenchmarkId::new("decode", name), |b| {
            let mut codec = Codec::new(encoding);
            b.iter_batched_ref(
                || wire.clone(),
                |wire| decode_all(&mut codec, wire),
                BatchSize::SmallInput,
            );
        });
    }

    group.bench_function(BenchmarkId::new("encode", "sse"), |b| {
        let mut out = BytesMut::with_capacity(128 * 1024);
        b.iter(|| {
            out.clear();
            for frame in black_box(&frames) {
                sse::encode(frame.as_ref(), DEFAULT_MAX_FRAME_BYTES, &mut out)
                    .expect("token frame encodes");
            }
            black_box(out.len());
        });
    });

    group.finish();
}

criterion_group!(benches, token_codec);
criterion_main!(benches);
