//! Micro-benchmark of the media worker's egress (src/sfu/engine/batch.rs): one
//! wake-up's output sent on a real UDP socket over loopback, `sendmmsg` batches alone
//! against `sendmmsg` with GSO trains (`cargo bench --bench egress`).
//!
//! Two shapes of a wake-up, 20 subscribers each:
//! * `frame`: a video frame of 6 packets (5 × 1,200 bytes and a 400-byte last) to
//!   each subscriber, the worker having drained each connection's output in one go —
//!   a run of 6 per destination, the case GSO is for;
//! * `interleaved`: 6 single packets to each subscriber in turn (destinations
//!   alternating, as when each packet of a wake-up came from a different publisher) —
//!   no train anywhere, to show GSO costs nothing there.
//!
//! The receivers are bound but never read: loopback drops what their buffers do not
//! take, and the sender never waits. Loopback delivery runs in the sender's system
//! call, so the time is the kernel's whole cost of the datagrams. Results are per
//! wake-up (120 datagrams); BENCHMARKS.md quotes them.

use std::net::UdpSocket;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use openhearing::sfu::engine::batch::{send_queued, EgressQueue};

const SUBSCRIBERS: usize = 20;
const PACKETS: usize = 6;

fn queue(receivers: &[UdpSocket], interleaved: bool) -> EgressQueue {
    let mut q = EgressQueue::default();
    let size = |i: usize| if i == PACKETS - 1 { 400 } else { 1200 };
    if interleaved {
        for i in 0..PACKETS {
            for r in receivers {
                let addr = r.local_addr().expect("addr");
                q.push(addr, BytesMut::from(&vec![0x80u8; size(i)][..]));
            }
        }
    } else {
        for r in receivers {
            let addr = r.local_addr().expect("addr");
            for i in 0..PACKETS {
                q.push(addr, BytesMut::from(&vec![0x80u8; size(i)][..]));
            }
        }
    }
    q
}

fn egress(c: &mut Criterion) {
    let sender = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sender.set_nonblocking(true).expect("nonblocking");
    let state = quinn_udp::UdpSocketState::new((&sender).into()).expect("state");
    let receivers: Vec<UdpSocket> = (0..SUBSCRIBERS)
        .map(|_| UdpSocket::bind("127.0.0.1:0").expect("bind"))
        .collect();
    let mut g = c.benchmark_group("egress");
    g.throughput(Throughput::Elements((SUBSCRIBERS * PACKETS) as u64));
    for (shape, interleaved) in [("frame", false), ("interleaved", true)] {
        for (how, gso) in [("sendmmsg", None), ("sendmmsg+gso", Some(&state))] {
            g.bench_function(format!("{shape}/{how}"), |b| {
                b.iter_batched(
                    || queue(&receivers, interleaved),
                    |mut q| {
                        let r = send_queued(&sender, &mut q, gso);
                        assert!(q.is_empty(), "{r:?}");
                        r
                    },
                    criterion::BatchSize::SmallInput,
                )
            });
        }
    }
    g.finish();
}

criterion_group!(benches, egress);
criterion_main!(benches);
