//! Per-event cost of the session machine.
//!
//! `event_transmit_ack`: one provider token logged, sent to the attached
//! client and, every 64 events, acknowledged (the steady state of a
//! streaming call). `resume_replay_1k`: a resume that replays 1024 retained
//! events. Run with `cargo bench -p gtl-core --bench session`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use gtl_core::{Session, SessionConfig};
use gtl_proto::{Body, Token};

const ACK_EVERY: u64 = 64;
const REPLAY: u64 = 1024;

fn token() -> Body {
    Body::Token(Token {
        text: String::from("Hello"),
    })
}

fn session(now: Instant) -> Session {
    Session::new("s_1", "alice", "rt", SessionConfig::default(), now)
}

fn event_transmit_ack(c: &mut Criterion) {
    let mut group = c.benchmark_group("session");
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));

    let now = Instant::now();
    group.throughput(Throughput::Elements(1));
    group.bench_function("event_transmit_ack", |b| {
        let mut s = session(now);
        b.iter(|| {
            let seq = s.handle_event(now, token()).expect("streaming");
            let transmit = s.poll_transmit().expect("attached");
            black_box((transmit.seq, transmit.body));
            if seq.is_multiple_of(ACK_EVERY) {
                s.handle_ack(now, seq);
            }
        });
    });

    group.throughput(Throughput::Elements(REPLAY));
    group.bench_function("resume_replay_1k", |b| {
        b.iter_batched(
            || {
                let mut s = session(now);
                let attach = s.attached().expect("attached");
                s.handle_disconnect(now, attach);
                for _ in 0..REPLAY {
                    s.handle_event(now, token()).expect("streaming");
                }
                s
            },
            |mut s| {
                s.handle_resume(now, "alice", "rt", 0).expect("resume");
                while let Some(transmit) = s.poll_transmit() {
                    black_box((transmit.seq, transmit.body));
                }
                s
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group!(benches, event_transmit_ack);
criterion_main!(benches);
