//! Batched UDP I/O for a media worker: every datagram its connections emit in one
//! wake-up is queued in an [`EgressQueue`] and leaves in `sendmmsg` calls of up to
//! [`SEND_BATCH`] messages ([`send_queued`]); ingress drains the socket with
//! quinn-udp's `recv` (`recvmmsg`, and GRO where the kernel offers it) into a ring of
//! [`RECV_BATCH`] buffers ([`Ingress`]).
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
}

/// Sends the queue in `sendmmsg` batches until it is empty or the socket would block.
/// Bounded: at most one call per batch queued now plus one per refused datagram.
pub fn send_queued(socket: &impl AsFd, q: &mut EgressQueue) -> SendReport {
    let mut r = SendReport::default();
    let mut budget = q.len() / SEND_BATCH + 2 * SEND_BATCH;
    while !q.is_empty() && budget > 0 {
        budget -= 1;
        let addrs: Vec<SocketAddrAny> = q.batch(SEND_BATCH).map(|(a, _)| a.as_any()).collect();
        let iovs: Vec<[IoSlice<'_>; 1]> = q
            .batch(SEND_BATCH)
            .map(|(_, d)| [IoSlice::new(d)])
            .collect();
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

/// The receive side: quinn-udp's socket state and a ring of buffers.
pub struct Ingress {
    state: quinn_udp::UdpSocketState,
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
        let state = quinn_udp::UdpSocketState::new(socket.into())?;
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
        let rep = send_queued(&sender, &mut q);
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
