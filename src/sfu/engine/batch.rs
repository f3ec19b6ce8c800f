//! Batched UDP I/O for a media worker: every datagram its connections emit in one
//! wake-up is queued in an [`EgressQueue`] and leaves in `sendmmsg` calls of up to
//! [`SEND_BATCH`] messages ([`send_queued`]); ingress drains the socket with
//! quinn-udp's `recv` (`recvmmsg`, and GRO where the kernel offers it) into a ring of
//! [`RECV_BATCH`] buffers ([`Ingress`]).
//!
//! **GSO.** Where the queue's front holds a train — [`GSO_MIN`] or more datagrams in a
//! row to one destination, all of one size but the last, which may be shorter (a
//! video frame's packets to one subscriber: the worker drains each connection's
//! output in one go) — the train leaves in one `sendmsg` with a `UDP_SEGMENT` size
//! (quinn-udp's `Transmit::segment_size`): the kernel walks its UDP and IP layers
//! once for the train and cuts it into datagrams at the end, where `sendmmsg` walks
//! them once per datagram. rustix's `sendmmsg` has no `UDP_SEGMENT` message, so a
//! train is its own call; a shorter run stays in the `sendmmsg` batch, where it costs
//! no call of its own. A kernel or driver that refuses GSO turns it off for the
//! socket (quinn-udp's `max_gso_segments` falls to 1) and the train goes by
//! `sendmmsg` instead, nothing lost.
//!
//! The queue is the pure part (grouping into batches, what a partial send or a full
//! send buffer leaves queued, the bounds): a partial `sendmmsg` or `EAGAIN` keeps the
//! rest queued in order for the next writable wake-up; the queue is bounded per
//! destination and in total, and a datagram over either bound — the newest of a slow
//! destination — is dropped and counted, so nobody (a publisher above all) waits.

use std::collections::{HashMap, VecDeque};
use std::io::{IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::Arc;

use bytes::BytesMut;
use rustix::net::addr::SocketAddrArg;
use rustix::net::{sendmmsg, MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny};

/// Messages per `sendmmsg` call (the kernel takes up to UIO_MAXIOV = 1024).
pub const SEND_BATCH: usize = 64;
/// Datagrams queued for one destination at most.
pub const PER_DESTINATION: usize = 512;
/// Datagrams queued in all at most.
pub const QUEUE_CAP: usize = 16_384;
/// Buffers per `recvmmsg` call.
pub const RECV_BATCH: usize = 16;
/// The shortest run to one destination sent as a GSO train of its own (a shorter
/// one saves less in the kernel than its own call costs).
pub const GSO_MIN: usize = 3;
/// Bytes of one GSO train at most (a UDP datagram's 64 KiB, with room for headers).
pub const GSO_MAX_BYTES: usize = 60_000;

/// Outgoing datagrams in the order they were produced, with per-destination counts.
#[derive(Debug)]
pub struct EgressQueue {
    queue: VecDeque<(SocketAddr, BytesMut)>,
    per_dest: HashMap<SocketAddr, usize>,
    per_dest_cap: usize,
    cap: usize,
    /// Datagrams dropped at `push` (a destination's share or the queue full).
    pub dropped: u64,
}

impl Default for EgressQueue {
    fn default() -> Self {
        EgressQueue::new(QUEUE_CAP, PER_DESTINATION)
    }
}

impl EgressQueue {
    pub fn new(cap: usize, per_dest_cap: usize) -> EgressQueue {
        EgressQueue {
            queue: VecDeque::new(),
            per_dest: HashMap::new(),
            per_dest_cap: per_dest_cap.max(1),
            cap: cap.max(1),
            dropped: 0,
        }
    }

    /// Queues a datagram; false (and counted) if its destination already has its
    /// share queued or the queue is full: the newest is the one dropped.
    pub fn push(&mut self, to: SocketAddr, data: BytesMut) -> bool {
        let n = self.per_dest.get(&to).copied().unwrap_or(0);
        if n >= self.per_dest_cap || self.queue.len() >= self.cap {
            self.dropped += 1;
            return false;
        }
        self.per_dest.insert(to, n + 1);
        self.queue.push_back((to, data));
        true
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Datagrams queued for one destination.
    pub fn queued_for(&self, to: &SocketAddr) -> usize {
        self.per_dest.get(to).copied().unwrap_or(0)
    }

    /// The next batch: up to `max` datagrams from the front, in order.
    pub fn batch(&self, max: usize) -> impl Iterator<Item = (&SocketAddr, &[u8])> {
        self.queue
            .range(..self.queue.len().min(max))
            .map(|(a, d)| (a, &d[..]))
    }

    /// How many datagrams from position `at` on form one GSO train (module docs): at
    /// most `max_segments` and [`GSO_MAX_BYTES`], to one destination, each the size
    /// of the first but the last, which may be shorter. At least 1 if `at` is queued.
    pub fn train_at(&self, at: usize, max_segments: usize) -> usize {
        let Some((to, first)) = self.queue.get(at) else {
            return 0;
        };
        let size = first.len();
        let mut n = 1;
        let mut bytes = size;
        while n < max_segments {
            let Some((next_to, d)) = self.queue.get(at + n) else {
                break;
            };
            if next_to != to || d.len() > size || bytes + d.len() > GSO_MAX_BYTES {
                break;
            }
            n += 1;
            bytes += d.len();
            if d.len() < size {
                break; // a shorter one ends the train
            }
        }
        n
    }

    /// How many datagrams from the front go in the next `sendmmsg`: up to `max`,
    /// ending before the first train of [`GSO_MIN`] or more (with `max_segments`
    /// above 1). 0 when the front itself is such a train.
    pub fn plain_run(&self, max: usize, max_segments: usize) -> usize {
        let end = self.queue.len().min(max);
        if max_segments < 2 {
            return end;
        }
        let mut i = 0;
        while i < end {
            let t = self.train_at(i, max_segments);
            if t >= GSO_MIN {
                return i;
            }
            i += t.max(1);
        }
        end
    }

    /// The first `n` datagrams were sent: forget them.
    pub fn sent(&mut self, n: usize) {
        for _ in 0..n.min(self.queue.len()) {
            if let Some((to, _)) = self.queue.pop_front() {
                match self.per_dest.get_mut(&to) {
                    Some(c) if *c > 1 => *c -= 1,
                    _ => {
                        self.per_dest.remove(&to);
                    }
                }
            }
        }
    }
}

/// What one [`send_queued`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SendReport {
    pub syscalls: u64,
    pub datagrams: u64,
    /// Datagrams the kernel refused (the first of a batch failing with an error
    /// other than "would block": dropped, the rest retried).
    pub errors: u64,
    /// The send buffer was full: what is left stays queued for a writable event.
    pub blocked: bool,
    /// GSO trains sent (each one call of `syscalls`), and the datagrams they held
    /// (part of `datagrams`).
    pub gso_trains: u64,
    pub gso_datagrams: u64,
}

/// Sends the queue in `sendmmsg` batches and, with `gso` (the socket's quinn-udp
/// state), GSO trains, until it is empty or the socket would block. Bounded: at
/// most one call per datagram queued now plus one per refused datagram.
pub fn send_queued(
    socket: &impl AsFd,
    q: &mut EgressQueue,
    gso: Option<&quinn_udp::UdpSocketState>,
) -> SendReport {
    let mut r = SendReport::default();
    let mut budget = q.len() + 2 * SEND_BATCH;
    let mut train = Vec::new();
    while !q.is_empty() && budget > 0 {
        budget -= 1;
        let segments = gso.map_or(1, |s| s.max_gso_segments());
        let n = q.plain_run(SEND_BATCH, segments);
        if n == 0 {
            let Some(state) = gso else { break };
            match send_train(socket, q, state, segments, &mut train) {
                TrainSent::Sent(n) => {
                    r.syscalls += 1;
                    r.gso_trains += 1;
                    r.gso_datagrams += n as u64;
                    r.datagrams += n as u64;
                }
                TrainSent::Blocked => {
                    r.syscalls += 1;
                    r.blocked = true;
                    break;
                }
                TrainSent::Refused(n) => {
                    r.syscalls += 1;
                    if state.max_gso_segments() > 1 {
                        // Not GSO's fault (an ICMP error pending for the
                        // destination...): the train goes, as a refused datagram
                        // would.
                        r.errors += 1;
                        q.sent(n);
                    }
                    // Otherwise GSO is off for the socket now: sendmmsg next.
                }
            }
            continue;
        }
        let addrs: Vec<SocketAddrAny> = q.batch(n).map(|(a, _)| a.as_any()).collect();
        let iovs: Vec<[IoSlice<'_>; 1]> = q.batch(n).map(|(_, d)| [IoSlice::new(d)]).collect();
        let mut ctrls: Vec<SendAncillaryBuffer<'_, '_, '_>> = iovs
            .iter()
            .map(|_| SendAncillaryBuffer::default())
            .collect();
        let mut msgs: Vec<MMsgHdr<'_>> = addrs
            .iter()
            .zip(iovs.iter())
            .zip(ctrls.iter_mut())
            .map(|((a, iov), c)| MMsgHdr::new_with_addr(a, iov, c))
            .collect();
        let res = sendmmsg(socket, &mut msgs, SendFlags::DONTWAIT);
        drop(msgs);
        r.syscalls += 1;
        match res {
            Ok(0) => {
                r.blocked = true;
                break;
            }
            Ok(n) => {
                r.datagrams += n as u64;
                q.sent(n);
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::WOULDBLOCK) | Err(rustix::io::Errno::NOBUFS) => {
                r.blocked = true;
                break;
            }
            Err(_) => {
                // The first message failed (an ICMP error pending for its
                // destination, too large...): it goes, the rest are retried.
                r.errors += 1;
                q.sent(1);
            }
        }
    }
    r
}

/// What became of the train at the queue's front (its length where it matters).
enum TrainSent {
    Sent(usize),
    Blocked,
    Refused(usize),
}

/// Sends the train at the queue's front in one GSO `sendmsg`, copied into `buf`
/// (quinn-udp takes one contiguous buffer).
fn send_train(
    socket: &impl AsFd,
    q: &mut EgressQueue,
    state: &quinn_udp::UdpSocketState,
    segments: usize,
    buf: &mut Vec<u8>,
) -> TrainSent {
    let n = q.train_at(0, segments);
    buf.clear();
    let mut destination = None;
    let mut segment_size = 0;
    for (to, d) in q.batch(n) {
        destination.get_or_insert(*to);
        segment_size = segment_size.max(d.len());
        buf.extend_from_slice(d);
    }
    let Some(destination) = destination else {
        return TrainSent::Refused(0);
    };
    let transmit = quinn_udp::Transmit {
        destination,
        ecn: None,
        contents: buf,
        segment_size: Some(segment_size),
        src_ip: None,
    };
    match state.try_send(socket.into(), &transmit) {
        Ok(()) => {
            q.sent(n);
            TrainSent::Sent(n)
        }
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => TrainSent::Blocked,
        Err(e) => {
            tracing::debug!("media worker: GSO send to {destination}: {e}");
            TrainSent::Refused(n)
        }
    }
}

/// The receive side: quinn-udp's socket state and a ring of buffers.
pub struct Ingress {
    /// Shared with the egress's GSO trains ([`Ingress::socket_state`]): one socket,
    /// one state (a GSO refusal turns GSO off for the socket once).
    state: Arc<quinn_udp::UdpSocketState>,
    bufs: Vec<Vec<u8>>,
    meta: Vec<quinn_udp::RecvMeta>,
    /// Buffers the last call filled.
    filled: usize,
}

/// What one [`Ingress::recv`] read.
#[derive(Debug, Default, Clone, Copy)]
pub struct RecvReport {
    pub syscalls: u64,
    pub datagrams: u64,
    /// The socket is drained (the call would block).
    pub drained: bool,
}

impl Ingress {
    /// Sets the socket up for quinn-udp (packet info, GRO where offered); `datagram`
    /// is the largest datagram taken.
    pub fn new(socket: &impl AsFd, datagram: usize) -> std::io::Result<Ingress> {
        let state = Arc::new(quinn_udp::UdpSocketState::new(socket.into())?);
        // A GRO buffer holds up to gro_segments datagrams of one flow.
        let size = datagram
            .saturating_mul(state.gro_segments().max(1))
            .min(u16::MAX as usize);
        Ok(Ingress {
            state,
            bufs: (0..RECV_BATCH).map(|_| vec![0u8; size]).collect(),
            meta: vec![quinn_udp::RecvMeta::default(); RECV_BATCH],
            filled: 0,
        })
    }

    /// quinn-udp's state of the socket, for [`send_queued`]'s GSO trains.
    pub fn socket_state(&self) -> Arc<quinn_udp::UdpSocketState> {
        self.state.clone()
    }

    /// One `recvmmsg` into the ring; what it read is then in [`Ingress::datagrams`].
    pub fn recv(&mut self, socket: &impl AsFd) -> RecvReport {
        let mut r = RecvReport::default();
        self.filled = 0;
        // An interrupted call and an ICMP error pending on the socket are retried
        // (bounded).
        for _ in 0..4 {
            let mut slices: Vec<IoSliceMut<'_>> =
                self.bufs.iter_mut().map(|b| IoSliceMut::new(b)).collect();
            r.syscalls += 1;
            match self.state.recv(socket.into(), &mut slices, &mut self.meta) {
                Ok(n) => {
                    self.filled = n.min(self.meta.len());
                    r.datagrams = self.datagrams().count() as u64;
                    return r;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    r.drained = true;
                    return r;
                }
                Err(e) => {
                    tracing::debug!("media worker: recv: {e}");
                }
            }
        }
        r
    }

    /// The datagrams the last [`Ingress::recv`] read (GRO trains split at their
    /// stride), with their sources.
    pub fn datagrams(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> {
        self.meta
            .iter()
            .zip(self.bufs.iter())
            .take(self.filled)
            .flat_map(|(m, b)| {
                b.get(..m.len)
                    .unwrap_or_default()
                    .chunks(m.stride.max(1))
                    .map(move |d| (m.addr, d))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn d(tag: u8) -> BytesMut {
        BytesMut::from(&[tag; 3][..])
    }

    fn tags(q: &EgressQueue, max: usize) -> Vec<(u16, u8)> {
        q.batch(max).map(|(a, d)| (a.port(), d[0])).collect()
    }

    #[test]
    fn a_wake_ups_datagrams_go_in_batches_in_the_order_they_came() {
        let mut q = EgressQueue::new(100, 10);
        // A fan-out: one packet to 4 subscribers, then the next.
        for tag in 0..2 {
            for port in 1..=4 {
                assert!(q.push(a(port), d(tag)));
            }
        }
        assert_eq!(q.len(), 8);
        assert_eq!(
            tags(&q, 5),
            vec![(1, 0), (2, 0), (3, 0), (4, 0), (1, 1)],
            "a batch is the front of the queue, destinations mixed, order kept"
        );
        assert_eq!(
            tags(&q, 100).len(),
            8,
            "a batch never reaches past the queue"
        );
        assert_eq!(q.queued_for(&a(1)), 2);
    }

    #[test]
    fn a_partial_send_keeps_the_rest_queued_in_order() {
        let mut q = EgressQueue::new(100, 10);
        for (i, port) in [1, 2, 1, 3, 2].into_iter().enumerate() {
            assert!(q.push(a(port), d(i as u8)));
        }
        q.sent(3);
        assert_eq!(tags(&q, 10), vec![(3, 3), (2, 4)]);
        assert_eq!(q.queued_for(&a(1)), 0, "both of port 1's went");
        assert_eq!(q.queued_for(&a(2)), 1);
        assert_eq!(q.queued_for(&a(3)), 1);
        q.sent(10);
        assert!(q.is_empty());
        assert_eq!(q.queued_for(&a(2)), 0);
        assert_eq!(q.queued_for(&a(3)), 0);
    }

    #[test]
    fn a_slow_destination_drops_its_own_newest_and_others_still_queue() {
        let mut q = EgressQueue::new(100, 3);
        for tag in 0..5 {
            let _ = q.push(a(1), d(tag));
        }
        assert_eq!(q.queued_for(&a(1)), 3);
        assert_eq!(q.dropped, 2);
        assert_eq!(
            tags(&q, 10),
            vec![(1, 0), (1, 1), (1, 2)],
            "the oldest stay, the newest went"
        );
        assert!(q.push(a(2), d(9)), "another destination is not held back");
        // Once sent, the slow one may queue again.
        q.sent(1);
        assert!(q.push(a(1), d(7)));
        // The total bound holds whatever the destinations.
        let mut q = EgressQueue::new(4, 10);
        for port in 1..=6 {
            let _ = q.push(a(port), d(0));
        }
        assert_eq!((q.len(), q.dropped), (4, 2));
    }

    #[test]
    fn sendmmsg_sends_a_batch_to_several_destinations_in_one_call() {
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        sender.set_nonblocking(true).expect("nonblocking");
        let receivers: Vec<std::net::UdpSocket> = (0..4)
            .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").expect("bind"))
            .collect();
        let mut q = EgressQueue::default();
        for tag in 0..3u8 {
            for r in &receivers {
                assert!(q.push(r.local_addr().expect("addr"), d(tag)));
            }
        }
        let rep = send_queued(&sender, &mut q, None);
        assert_eq!(rep.datagrams, 12);
        assert_eq!(
            rep.syscalls, 1,
            "12 datagrams, 4 destinations, one sendmmsg"
        );
        assert!(q.is_empty() && !rep.blocked);
        for r in &receivers {
            r.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .expect("timeout");
            let mut buf = [0u8; 16];
            for tag in 0..3u8 {
                let (n, from) = r.recv_from(&mut buf).expect("received");
                assert_eq!(
                    (&buf[..n], from),
                    (&[tag; 3][..], sender.local_addr().expect("addr"))
                );
            }
        }
    }

    fn sized(tag: u8, len: usize) -> BytesMut {
        BytesMut::from(&vec![tag; len][..])
    }

    #[test]
    fn trains_are_runs_to_one_destination_of_one_size_but_a_shorter_last() {
        let mut q = EgressQueue::new(100, 100);
        // To 1: a frame of three full packets and a short last one, then a lone one
        // to 2, two to 3 (too few for a train), then four to 1 again, one of them
        // bigger (which ends the train before it).
        for (port, len) in [
            (1, 1200),
            (1, 1200),
            (1, 1200),
            (1, 400),
            (2, 1200),
            (3, 900),
            (3, 900),
            (1, 800),
            (1, 800),
            (1, 1000),
            (1, 800),
        ] {
            assert!(q.push(a(port), sized(0, len)));
        }
        assert_eq!(q.train_at(0, 64), 4, "three full and the short last");
        assert_eq!(q.train_at(0, 3), 3, "no more than the kernel takes");
        assert_eq!(q.train_at(4, 64), 1);
        assert_eq!(q.train_at(5, 64), 2);
        assert_eq!(q.train_at(7, 64), 2, "a bigger one is not a segment");
        assert_eq!(q.train_at(11, 64), 0);
        assert_eq!(q.plain_run(64, 64), 0, "the front is a train");
        assert_eq!(q.plain_run(64, 1), 11, "no GSO: everything batched");
        q.sent(4);
        assert_eq!(
            q.plain_run(64, 64),
            7,
            "no train of three left: one sendmmsg for the rest"
        );
        assert_eq!(q.plain_run(5, 64), 5, "at most a batch");
        // The byte bound: 60 datagrams of 1200 bytes are more than a train holds.
        let mut q = EgressQueue::new(100, 100);
        for _ in 0..60 {
            assert!(q.push(a(1), sized(0, 1200)));
        }
        assert_eq!(q.train_at(0, 64), GSO_MAX_BYTES / 1200);
    }

    #[test]
    fn a_train_leaves_in_one_call_and_arrives_as_separate_datagrams() {
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        sender.set_nonblocking(true).expect("nonblocking");
        let state = quinn_udp::UdpSocketState::new((&sender).into()).expect("state");
        if state.max_gso_segments() < 2 {
            eprintln!("no GSO on this kernel: the sendmmsg path is tested elsewhere");
            return;
        }
        let frame = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let other = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let mut q = EgressQueue::default();
        // A frame of five packets (the last shorter) to one subscriber, then one
        // datagram each to it and another.
        for i in 0..5u8 {
            let len = if i == 4 { 300 } else { 1100 };
            assert!(q.push(frame.local_addr().expect("addr"), sized(i, len)));
        }
        assert!(q.push(other.local_addr().expect("addr"), sized(9, 50)));
        assert!(q.push(frame.local_addr().expect("addr"), sized(5, 60)));
        let rep = send_queued(&sender, &mut q, Some(&state));
        assert_eq!(rep.datagrams, 7);
        assert_eq!((rep.gso_trains, rep.gso_datagrams), (1, 5));
        assert_eq!(rep.syscalls, 2, "one train, one sendmmsg for the rest");
        assert!(q.is_empty() && !rep.blocked && rep.errors == 0);
        let got = |s: &std::net::UdpSocket, n: usize| {
            s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .expect("timeout");
            let mut buf = [0u8; 2048];
            (0..n)
                .map(|_| {
                    let (len, _) = s.recv_from(&mut buf).expect("received");
                    (buf[0], len)
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            got(&frame, 6),
            vec![
                (0, 1100),
                (1, 1100),
                (2, 1100),
                (3, 1100),
                (4, 300),
                (5, 60)
            ],
            "cut where they were joined, in order"
        );
        assert_eq!(got(&other, 1), vec![(9, 50)]);
    }

    #[test]
    fn recvmmsg_drains_what_several_sources_sent() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket.set_nonblocking(true).expect("nonblocking");
        let mut ingress = Ingress::new(&socket, 2048).expect("ingress");
        let to = socket.local_addr().expect("addr");
        let sources: Vec<std::net::UdpSocket> = (0..3)
            .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").expect("bind"))
            .collect();
        for (i, s) in sources.iter().enumerate() {
            for k in 0..2u8 {
                s.send_to(&[i as u8, k], to).expect("sent");
            }
        }
        let mut got = Vec::new();
        let mut syscalls = 0;
        // Loopback delivers at once; bounded in rounds anyway.
        for _ in 0..1000 {
            let r = ingress.recv(&socket);
            syscalls += r.syscalls;
            got.extend(ingress.datagrams().map(|(from, d)| (from, d.to_vec())));
            if got.len() >= 6 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(got.len(), 6, "every datagram read: {got:?}");
        assert!(syscalls < 6, "in fewer calls than datagrams ({syscalls})");
        for (i, s) in sources.iter().enumerate() {
            let from = s.local_addr().expect("addr");
            let mine: Vec<Vec<u8>> = got
                .iter()
                .filter(|(f, _)| *f == from)
                .map(|(_, d)| d.clone())
                .collect();
            assert_eq!(mine, vec![vec![i as u8, 0], vec![i as u8, 1]]);
        }
    }
}
