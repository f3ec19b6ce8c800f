//! Micro-benchmarks of the SFU's per-packet work (src/sfu/forward.rs).
//!
//! The hot path's functions are private to the `sfu` module (the reader loop,
//! `strip_extensions`, `Downstream::offer` and the writer's rewrite), so these
//! benchmarks run the same operations on the same types, in the same order:
//! 1. `decision`: strip header extensions once, load the subscriber list through
//!    `ArcSwap` (no lock), clone the packet for every leg (the payload is a refcounted
//!    `Bytes`, the header is copied);
//! 2. `queue`: the per-subscriber bounded tokio `mpsc` queue, `try_send` by the reader
//!    and `recv` by the leg's writer task;
//! 3. `rewrite`: the writer's SSRC and payload-type rewrite;
//! 4. `marshal`: serialising the RTP packet, which webrtc does once per subscriber
//!    before SRTP (not our code, but per subscriber and per packet).
//!
//! Results are per packet and per subscriber. BENCHMARKS.md compares them with the
//! measured end-to-end cost.

use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rtc::rtp;
use rtc::shared::marshal::Marshal;
use tokio::sync::mpsc;

fn sample_packet() -> rtp::Packet {
    let mut p = rtp::Packet {
        header: rtp::header::Header {
            version: 2,
            payload_type: 96,
            sequence_number: 4242,
            timestamp: 90_000,
            ssrc: 0x1234_5678,
            ..Default::default()
        },
        payload: Bytes::from(vec![0x55u8; 1188]),
    };
    // As from a browser: transport-wide CC and abs-send-time extensions.
    p.header.extension = true;
    p.header.extension_profile = 0xBEDE;
    p.header.extensions.push(rtp::header::Extension {
        id: 3,
        payload: Bytes::from_static(&[0, 1]),
    });
    p.header.extensions.push(rtp::header::Extension {
        id: 2,
        payload: Bytes::from_static(&[1, 2, 3]),
    });
    p
}

/// Same as forward.rs's `strip_extensions`.
fn strip_extensions(packet: &mut rtp::Packet) {
    if packet.header.extension {
        packet.header.extension = false;
        packet.header.extension_profile = 0;
        packet.header.extensions.clear();
    }
}

struct Leg {
    tx: mpsc::Sender<rtp::Packet>,
}

fn fanout(c: &mut Criterion) {
    for n in [1usize, 10, 100] {
        let mut g = c.benchmark_group(format!("fanout_{n}_subscribers"));
        g.throughput(Throughput::Elements(n as u64));
        // decision + clone + queue, then the writers' recv + rewrite: per packet, all legs.
        let mut rxs = Vec::new();
        let legs: Vec<Arc<Leg>> = (0..n)
            .map(|_| {
                let (tx, rx) = mpsc::channel(512);
                rxs.push(rx);
                Arc::new(Leg { tx })
            })
            .collect();
        let list = ArcSwap::from_pointee(legs);
        g.bench_function("decision_clone_queue_rewrite", |b| {
            b.iter_batched(
                sample_packet,
                |mut packet| {
                    strip_extensions(&mut packet);
                    let legs = list.load();
                    for leg in legs.iter() {
                        let _ = leg.tx.try_send(packet.clone());
                    }
                    for rx in rxs.iter_mut() {
                        if let Ok(mut p) = rx.try_recv() {
                            p.header.ssrc = 0x9abc_def0;
                            p.header.payload_type = 97;
                            std::hint::black_box(&p);
                        }
                    }
                },
                BatchSize::SmallInput,
            )
        });
        g.bench_function("decision_clone_only", |b| {
            b.iter_batched(
                sample_packet,
                |mut packet| {
                    strip_extensions(&mut packet);
                    let legs = list.load();
                    for _leg in legs.iter() {
                        std::hint::black_box(packet.clone());
                    }
                },
                BatchSize::SmallInput,
            )
        });
        g.finish();
    }
}

fn per_packet(c: &mut Criterion) {
    let mut g = c.benchmark_group("per_packet");
    g.throughput(Throughput::Elements(1));
    g.bench_function("strip_extensions", |b| {
        b.iter_batched(
            sample_packet,
            |mut p| {
                strip_extensions(&mut p);
                p
            },
            BatchSize::SmallInput,
        )
    });
    let mut p = sample_packet();
    strip_extensions(&mut p);
    g.bench_function("clone_stripped", |b| {
        b.iter(|| std::hint::black_box(&p).clone())
    });
    g.bench_function("marshal_stripped", |b| {
        b.iter(|| std::hint::black_box(&p).marshal().expect("marshal"))
    });
    let (tx, mut rx) = mpsc::channel::<rtp::Packet>(512);
    g.bench_function("queue_try_send_recv", |b| {
        b.iter(|| {
            let _ = tx.try_send(p.clone());
            std::hint::black_box(rx.try_recv().ok())
        })
    });
    g.finish();
}

criterion_group!(benches, per_packet, fanout);
criterion_main!(benches);
