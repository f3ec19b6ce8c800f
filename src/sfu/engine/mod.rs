//! The media engine (issue 14): the SFU on `rtc` 0.21's sans-IO core, with a small,
//! fixed set of sockets shared by every connection. **Groundwork, not wired into the
//! hearing yet**: today's [`crate::sfu::peer`] (one webrtc `PeerConnection`, its own
//! socket and driver task per participant) stays what the hearing uses until the steps
//! at the end of this page are done.
//!
//! The rest of this page is the design; [`demux`], [`tcp`], [`timers`], [`batch`] and
//! [`worker`] are its first, tested parts.
//!
//! # Why
//!
//! webrtc 0.21 is a thin async layer over `rtc::peer_connection::RTCPeerConnection`
//! (see `webrtc-0.21.1/src/peer_connection/driver.rs`): per connection it binds sockets,
//! runs a driver task that locks the core for each of `handle_read`, `poll_write`,
//! `poll_event`, `poll_read`, `poll_timeout`, and sends each datagram with its own
//! `sendmsg`. BENCHMARKS.md puts 83 % of the server's CPU in those tasks and 26 % in
//! the one-`sendmsg`-per-packet-per-subscriber, and a court has to open a thousand
//! ports. The core itself reads no clock and touches no socket: whoever owns it decides
//! threads, sockets and batching. This engine owns it.
//!
//! # Workers
//!
//! A fixed number of worker threads (`media.workers`, default: the number of cores
//! `std::thread::available_parallelism` reports). A worker is a plain OS thread — no
//! async runtime on the media path — that owns, exclusively and without locks:
//!
//! * its connections: each an `RTCPeerConnection` plus our per-connection state (the
//!   tracks it publishes, its legs, its budget/pacer) — `RTCPeerConnection` is `Send`
//!   but not `Sync`, and it never leaves the thread that built it;
//! * its socket(s): one UDP socket, and the ICE-TCP streams handed to it;
//! * a [`timers::TimerHeap`] of `poll_timeout` deadlines, one live entry per
//!   connection. After anything touches a connection (a datagram, a write, a
//!   negotiation step, a timeout) the worker asks it `poll_timeout()` again and
//!   reschedules only if the deadline changed; a wake-up pops the expired entries and
//!   calls `handle_timeout` on those connections only. Nothing ever scans every
//!   connection per tick (with a thousand observers a scan per millisecond would
//!   cost more than the media).
//! * its [`demux::Demux`]: the routing table and the rate limiters of its socket.
//!
//! The loop (built, [`worker`]): wait in epoll (`mio`, a direct dependency now, the
//! same version tokio uses) for the UDP socket, the TCP listener and streams, a
//! `mio::Waker` that every command rings, or the heap's first deadline — plus a 1 s
//! housekeeping tick (flow and ufrag expiry, rate-limiter tidying, drop-log summaries,
//! silent TCP streams) only while the worker holds anything: a worker with nothing
//! sleeps until a command or a datagram, with no timeout at all. Then: commands, expired
//! timers (`handle_timeout`), up to 4 `recvmmsg` rounds of datagrams routed and fed
//! (`handle_read`), TCP accepts and frames; only then are the touched connections
//! serviced once (`poll_event`, `poll_read` → our forwarding, `poll_write`), so every
//! datagram of one wake-up is fed before any output is drained, and all the output of
//! the wake-up goes into one egress queue sent at its end (below). mio is
//! edge-triggered: a source a bounded round did not drain (UDP, the listener, a TCP
//! stream) is remembered and the next wait does not sleep.
//!
//! The hearing side talks to a worker through a command queue (a `std::sync::mpsc`
//! channel plus the `mio::Waker`; built: new connection with its offer, add a leg
//! (the server's offer), apply the client's answer, remove a leg (the offer that
//! removes it), close, stats) with a `tokio::sync::oneshot` reply for each; the participant's actor awaits the reply, so negotiation stays serialised
//! per participant as today. Events (connection state, a track opened, a keyframe
//! request, counters) come back through a bounded channel; media never does.
//!
//! **Placement.** All connections of one hearing go to the same worker (chosen by load
//! when the hearing's first participant joins), so forwarding is a function call on one
//! thread and `policy::may_forward` is applied where it is today, when a leg is made.
//! A hearing that outgrows a worker (a review watched by hundreds of sites) spills its
//! *observers* onto other workers: the publisher's worker pushes each packet once per
//! other worker (an `Arc`'d packet on an SPSC queue) and that worker fans it out to its
//! own observers — one hop per worker, never one per subscriber.
//!
//! # Ports: one UDP port per worker
//!
//! Considered: (a) one UDP port shared by all workers with `SO_REUSEPORT`, (b) one port
//! per worker. **Chosen: (b).** With `SO_REUSEPORT` the kernel picks the socket by a
//! hash of the 4-tuple, not by anything we control: a client's flow lands on the
//! worker that owns its connection in only 1/N of cases, so the others need a
//! cross-thread hop for every packet they receive, or an `SO_ATTACH_REUSEPORT_EBPF`
//! program with a map userspace keeps in step (CAP_BPF, kernel-version dependent, and
//! the DTLS/SRTP packets that follow the STUN carry no ufrag to steer by). A NAT
//! rebinding or a worker's socket re-created also moves flows to another socket. A
//! single ingress thread dispatching to workers would keep one port but put every
//! packet through one thread and one hop. With (b) the kernel does the demultiplexing
//! for free, each worker reads only its own flows, and the count is still small and
//! fixed: ports `media.udp_port .. media.udp_port + workers - 1` (one firewall rule for
//! a range of, say, 4 ports), printed at start; `workers = 1` is exactly one port.
//! mediasoup's `WebRtcServer` makes the same choice (one listening port per worker).
//! The answer's host candidate names the owning worker's port, so a client only ever
//! talks to the worker that owns it.
//!
//! # Routing (ICE-lite, server-chosen ufrags)
//!
//! The server is ICE-lite (`SettingEngineBuilder::with_lite(true)`): it gathers nothing,
//! offers host candidates only (its ports, on the announced address), never sends
//! checks, and answers the browser's. Each connection gets credentials the worker
//! chooses (`with_ice_credentials`): the ufrag `w<worker:2 hex>c<conn:8 hex><nonce>`
//! ([`demux::Ufrag`]) names the worker and the connection; the password is random.
//!
//! * **New flows by STUN USERNAME.** A STUN binding request from an unknown 4-tuple:
//!   [`demux::binding_username`] reads USERNAME (`ours:theirs`) with bounds checks,
//!   without trusting it; the `ours` part is looked up in the worker's ufrag table
//!   (the parse is only a hint: the table decides); its MESSAGE-INTEGRITY is checked
//!   with that connection's password (we chose it: [`demux::Demux::verifying`],
//!   HMAC-SHA1 through rtc's own crypto provider), and only then is the 4-tuple bound
//!   to the connection. A forged request with a sniffed ufrag binds nothing and never
//!   reaches the core, and each connection may hold only a few flows (the candidate
//!   pairs a client tries), so the table cannot be inflated through one ufrag.
//! * **Known flows by 4-tuple.** DTLS, SRTP and SRTCP carry no ufrag: they are routed
//!   only by the 4-tuple map; from an unknown 4-tuple they are dropped and counted.
//! * **Expiry.** A flow idle for `flow_idle` (default 30 s, ICE consent freshness's
//!   failure window) is removed; a connection closing removes its ufrag and all its
//!   flows; a ufrag never used within `ufrag_idle` after the answer is removed with its
//!   connection. Expiry takes the time as an argument: no clock inside the tables.
//! * **Abuse.** Datagrams of unknown flows that fail to open one (junk, STUN with a
//!   ufrag nobody has, a bad MESSAGE-INTEGRITY) are charged to their source IP, and a
//!   source over its budget is dropped before anything is parsed or verified (a flood
//!   of STUN with random ufrags costs a hash lookup and a counter); an authentic
//!   binding request is never charged — a court's sites share a NAT address and join
//!   many at once (300 joining from one address within 4 s overran a budget that
//!   counted everything). Known flows are limited per 4-tuple, generously. Every drop is counted by its reason ([`demux::DropReason`]) and logged
//!   through [`demux::LogGate`]: one line per source per interval with the count of
//!   what was suppressed, never a line per packet.
//! * **What rtc requires.** The core matches `TransportContext::local_addr` against
//!   its local candidates exactly, so the worker passes the *advertised* candidate
//!   address (the announced IP and the worker's port), not the socket's `0.0.0.0`.
//!   rtc's ICE agent treats every datagram from source port 5353 as mDNS: the demuxer
//!   does not route such a source to a connection (counted). Inbound RTCP reaches the
//!   application only if an interceptor marks it: the worker registers today's
//!   [`crate::sfu::rtcp::KeyframeRequestTap`], unchanged, and reads PLIs through it.
//!   rtc 0.21 ignores a DTLS close_notify (the connection turns `disconnected` 5 s
//!   later, `failed` later still): a leaving participant is closed by the hearing
//!   side, and one that just vanishes by its flows going idle (`flow_idle`).
//!
//! # TCP: ICE-TCP passive on one port, and on the HTTPS port
//!
//! One TCP listener (`media.tcp_port`) for all workers, on by default; the answer
//! carries a `tcptype passive` candidate for it after the UDP one. Its accept thread
//! reads the first RFC 4571 frame ([`tcp::FrameDecoder`]), which must be a STUN binding
//! request; the ufrag in its USERNAME names the worker, which gets the stream (and the
//! bytes already read) through its command queue and registers it with its poll.
//! (The spike's worker owns a listener itself: the one-worker case.) From
//! then on the worker reads frames into `handle_read` with
//! `TransportProtocol::TCP` and writes the core's TCP datagrams framed
//! ([`tcp::encode_frame`]) to that stream; a stream that stalls drops its own packets
//! (a bounded write queue), like a slow UDP subscriber.
//!
//! **Sharing the HTTPS port.** The HTTPS accept loop (`src/server/connections.rs`)
//! peeks the first bytes of each accepted connection ([`tcp::classify_first_bytes`]):
//! `0x16 0x03 ..` is a TLS ClientHello and goes on to rustls as today; a 2-byte length
//! followed by a STUN binding request header is ICE-TCP and goes to the engine's TCP
//! intake; anything else is closed. The two cannot be confused: a TLS record's first
//! byte 0x16 read as an RFC 4571 length is ≥ 5632 bytes, far above any STUN binding
//! request (the classifier caps it at 1 KiB). The answer then also carries a passive
//! TCP candidate on port 443 (lowest priority): a site whose firewall opens only TCP
//! 443 joins with that one rule and no TURN server.
//!
//! # Batching
//!
//! * **Egress (built, [`batch`]).** During a wake-up the worker collects every datagram
//!   the connections it touched emit (`poll_write`) in an [`batch::EgressQueue`] and at
//!   the wake-up's end sends it in `sendmmsg` calls of up to 64 messages (rustix's
//!   `net::sendmmsg`, safe — the crate forbids `unsafe`; quinn-udp sends one
//!   `Transmit`, i.e. one destination, per call, and a fan-out goes to many). A
//!   partial send leaves the rest queued in order and is retried at once; `EAGAIN`
//!   leaves it queued and registers the socket for a writable event (only while
//!   something waits: an edge-triggered EPOLLOUT would otherwise fire on every freed
//!   buffer). The queue is bounded per destination (512) and in total (16 384): a
//!   datagram over either bound — the newest of a slow destination — is dropped and
//!   counted (`egress_dropped`), so nobody, a publisher least of all, waits. Measured
//!   by [`worker::WorkerStats`]' `send_syscalls` / `datagrams_out`: in
//!   tests/engine_one_port's fan-out to 4 subscribers, 343 datagrams left in 71 calls
//!   (4.8 per call, against 1 per `send_to` before). **GSO (built):** where one
//!   destination gets three or more equal-size datagrams in a row (a video frame's
//!   packets to one subscriber: each connection's output is drained in one go) they
//!   leave as one `UDP_SEGMENT` train through quinn-udp (`batch.rs` says why it is a
//!   call of its own and how a kernel that refuses GSO falls back).
//! * **Ingress (built).** quinn-udp's `recv` (`recvmmsg`, and GRO where the kernel
//!   offers it, trains split at their stride) fills a ring of 16 buffers
//!   ([`batch::Ingress`]); each datagram is routed and handed to its connection, and
//!   the connections are serviced once after the round. On the test's loopback the
//!   traffic is light (1.3 datagrams per call): the gain shows under load.
//! * **Copies.** Today `rtc` SRTP-encrypts into a fresh `BytesMut` per packet; the next
//!   step is encrypting into the batch's own buffer (a change to rtc's SRTP handler,
//!   or our own SRTP context per leg), and one retransmission cache per published
//!   track instead of the NACK responder's copy per subscriber.
//!
//! # What moves under it unchanged
//!
//! The allocator and budget ([`crate::sfu::budget`]), layer selection and rewriting
//! ([`crate::sfu::layers`], [`crate::sfu::layered`], [`crate::sfu::simulcast`]), RTX
//! unwrapping ([`crate::sfu::rtx`]), RED ([`crate::sfu::red`]), the pacer
//! ([`crate::sfu::pacer`]) and probing ([`crate::sfu::probe`]) are pure code over
//! packets and estimates; they are called today from a reader task per published track
//! and a writer per leg. Under the engine the same calls are made by the worker:
//! a packet read from a publisher's connection (`poll_read`) goes through RTX
//! unwrapping and RED reading, then for each leg through the leg's rewriter and the
//! allocator's decision, then into the subscriber's connection (`RTCRtpSender::
//! write_rtp`); the pacer's release times become entries in the same timer heap. The
//! interceptors ([`crate::sfu::rtcp`], [`crate::sfu::rid_ack`], the reception tap) are
//! `rtc` interceptors already and are registered on each `RTCPeerConnection` exactly as
//! `crate::sfu::interceptors` registers them today; the media engine and codecs are the
//! same `rtc` `MediaEngine`. `policy::may_forward` stays the only forwarding decision
//! (a leg exists only if the hearing made it); the recorder's `MediaTap` is called
//! where the fan-out is.
//!
//! # Next steps
//!
//! 1. An `EngineSfu` with the same surface as [`crate::sfu::Sfu`] /
//!    [`crate::sfu::peer`] (create a peer, negotiate, add/remove legs, tap) whose
//!    calls become worker commands — legs and the server's renegotiation offers are
//!    built ([`worker::Worker::add_leg`], `apply_answer`, `remove_leg`: nothing flows
//!    without a leg, a PLI goes to its leg's publisher); still to come: the client's
//!    own renegotiation offers, the forwarding of [`crate::sfu::forward`] (layers,
//!    RTX, RED, extensions per leg) called from the worker, the recorder's tap; a
//!    config switch, then the hearing tests run on both.
//! 2. ICE-TCP: the shared listener's accept thread handing streams to workers by
//!    ufrag, and the HTTPS-port intake above, with [`tcp`] (the spike proves a
//!    worker serves a client with no UDP at all over a passive TCP candidate; note
//!    webrtc 0.21 clients dial one only when it is trickled, browsers from the SDP).
//! 3. Batching: `sendmmsg` egress, GSO trains and `recvmmsg` ingress are built and
//!    counted; the gain measured under the load generator (CPU per forwarded packet,
//!    BENCHMARKS.md) remains.
//! 4. Copies: SRTP into the output buffer, a shared retransmission cache per track.

pub mod batch;
pub mod demux;
pub mod tcp;
pub mod timers;
pub mod worker;
