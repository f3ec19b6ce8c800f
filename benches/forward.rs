//! Micro-benchmarks of the SFU's per-packet work (src/sfu/forward.rs), calling the
//! server's own code:
//! 1. `strip_extensions`, once per published packet;
//! 2. `forward` to N legs: per leg, the `Downstream` clones the packet (the payload
//!    is a refcounted `Bytes`), rewrites SSRC and payload type and hands it to its
//!    sink without waiting. In the server the sink is webrtc's `TrackLocalStaticRTP`,
//!    whose `write_rtp` queues on the connection driver's bounded `async_channel`; here
//!    the sink is the same kind of channel, drained after every packet, so the numbers
//!    are our work plus one channel send per leg — not webrtc's lock, boxed future,
//!    interceptors, SRTP or the socket;
//! 3. `marshal` of the RTP packet, which webrtc does once per subscriber before SRTP
//!    (not our code, but per subscriber and per packet).
//!
//! 4. `simulcast_fanout_N`: the same for a simulcast track (src/sfu/layered.rs): the
//!    packet's SSRC mapped to its layer, its VP8 descriptor parsed once, and per leg
//!    the leg's `LayerRewriter` (behind its mutex) deciding and renumbering it. Each
//!    iteration is one packet of the top layer, which every leg forwards.
//!
//! Results are per packet and per subscriber. BENCHMARKS.md compares them with the
//! measured end-to-end cost.

use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use openhearing::sfu::forward::{forward, strip_extensions, Downstream, LegSink, SinkWrite};
use rtc::rtp;
use rtc::shared::marshal::Marshal;

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

/// A connection driver's queue, as webrtc 0.21 has it: a bounded `async_channel`.
struct ChannelSink {
    tx: async_channel::Sender<rtp::Packet>,
}

impl LegSink for ChannelSink {
    fn try_write(&self, packet: rtp::Packet) -> SinkWrite {
        match self.tx.try_send(packet) {
            Ok(()) => SinkWrite::Queued,
            Err(async_channel::TrySendError::Full(_)) => SinkWrite::Full,
            Err(async_channel::TrySendError::Closed(_)) => SinkWrite::Closed,
        }
    }
}

fn fanout(c: &mut Criterion) {
    for n in [1usize, 10, 100] {
        let mut g = c.benchmark_group(format!("fanout_{n}_subscribers"));
        g.throughput(Throughput::Elements(n as u64));
        let mut rxs = Vec::new();
        let legs: Vec<Arc<Downstream>> = (0..n)
            .map(|i| {
                let (tx, rx) = async_channel::bounded(256);
                rxs.push(rx);
                Downstream::start(
                    uuid::Uuid::new_v4(),
                    Arc::new(ChannelSink { tx }),
                    0x9abc_0000 + i as u32,
                    97,
                )
            })
            .collect();
        g.bench_function("strip_forward_drain", |b| {
            b.iter_batched(
                sample_packet,
                |mut packet| {
                    strip_extensions(&mut packet);
                    forward(&legs, &packet);
                    // The drivers' side: take the packets out again.
                    for rx in &rxs {
                        std::hint::black_box(rx.try_recv().ok());
                    }
                },
                BatchSize::SmallInput,
            )
        });
        g.finish();
        assert!(
            legs.iter().all(|l| l.dropped() == 0),
            "benchmark queues overflowed"
        );
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
    let (tx, rx) = async_channel::bounded::<rtp::Packet>(256);
    g.bench_function("driver_channel_try_send_recv", |b| {
        b.iter(|| {
            let _ = tx.try_send(p.clone());
            std::hint::black_box(rx.try_recv().ok())
        })
    });
    g.finish();
}

/// A VP8 packet as libwebrtc sends it (X, I 15-bit, L, T), `seq` of layer f.
fn vp8_packet(seq: u16) -> rtp::Packet {
    let mut payload = vec![
        0x90u8,
        0xe0,
        0x80 | (seq >> 8) as u8 & 0x7f,
        seq as u8,
        3,
        0x00,
    ];
    if seq == 0 {
        payload.extend_from_slice(&[0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01]);
    }
    payload.resize(1188, 0x55);
    rtp::Packet {
        header: rtp::header::Header {
            version: 2,
            payload_type: 96,
            sequence_number: seq,
            timestamp: u32::from(seq) * 3000,
            ssrc: 30,
            ..Default::default()
        },
        payload: Bytes::from(payload),
    }
}

fn simulcast_fanout(c: &mut Criterion) {
    use openhearing::sfu::layered::{Format, SimulcastFanout};
    use openhearing::sfu::layers::{LayerTarget, RewriterConfig, Target};
    let config = RewriterConfig {
        clock_rate: 90_000,
        keyframes: true,
    };
    for n in [1usize, 10, 100] {
        let mut g = c.benchmark_group(format!("simulcast_fanout_{n}_subscribers"));
        g.throughput(Throughput::Elements(n as u64));
        let mut rxs = Vec::new();
        let legs: Vec<Arc<Downstream>> = (0..n)
            .map(|i| {
                let (tx, rx) = async_channel::bounded(256);
                rxs.push(rx);
                let leg = Downstream::start_layered(
                    uuid::Uuid::new_v4(),
                    Arc::new(ChannelSink { tx }),
                    0x9abc_0000 + i as u32,
                    97,
                    config,
                );
                leg.set_target(Target::Forward(LayerTarget {
                    spatial: 2,
                    temporal: 2,
                }));
                leg
            })
            .collect();
        let mut fanout =
            SimulcastFanout::new(config, Format::Vp8, std::time::Duration::from_millis(500));
        for (ssrc, rid) in [(10, "q"), (20, "h"), (30, "f")] {
            fanout.open(ssrc, rid);
        }
        let now = std::time::Instant::now();
        // The first packet (seq 0) is the keyframe every leg starts at.
        let mut seq = u16::MAX;
        g.bench_function("strip_fanout_drain", |b| {
            b.iter_batched(
                || {
                    seq = seq.wrapping_add(1);
                    vp8_packet(seq)
                },
                |mut packet| {
                    strip_extensions(&mut packet);
                    std::hint::black_box(fanout.packet(&packet, now, &legs, None));
                    for rx in &rxs {
                        std::hint::black_box(rx.try_recv().ok());
                    }
                },
                BatchSize::SmallInput,
            )
        });
        g.finish();
        assert!(
            legs.iter().all(|l| l.current_layer() == Some(2)),
            "every leg forwards the top layer"
        );
    }
}

criterion_group!(benches, per_packet, fanout, simulcast_fanout);
criterion_main!(benches);
