//! One media worker: one OS thread, ONE UDP socket, many `rtc` `RTCPeerConnection`s
//! behind it (ICE-lite, server-chosen ufrags), datagrams routed by [`Demux`], timeouts
//! from a [`TimerHeap`].
//!
//! **Legs.** Nothing is forwarded that the owner did not ask for: a leg is one
//! publisher's track of one kind into one subscriber's connection, made by
//! [`Worker::add_leg`] — the call the hearing side makes where `policy::may_forward`
//! said yes, as it calls `PublishedTrack::add_downstream` today. Adding a leg gives the
//! subscriber's connection a sendonly transceiver of its own and returns the server's
//! offer; the leg carries media once [`Worker::apply_answer`] applied the answer with
//! the codec accepted (the payload type is read then). [`Worker::remove_leg`] stops it
//! at once and returns the offer that removes the transceiver. A connection with an
//! offer outstanding refuses another negotiation step ([`WorkerError::Negotiating`]):
//! the caller serialises them per participant, as today. A subscriber's PLI names the
//! leg's SSRC and goes to that leg's publisher only. The layer selection, RTX and RED
//! of [`crate::sfu::forward`] are not here yet (packets are forwarded as they come,
//! SSRC and payload type rewritten, extensions stripped).
//!
//! ICE-TCP (passive) is served from the worker's own listener when configured: each
//! stream's first RFC 4571 frame must be a binding request, signed with the password
//! of the connection its ufrag names.
//!
//! The loop waits in epoll (`mio`) for its UDP socket, its TCP listener and streams,
//! a [`mio::Waker`] its command queue rings, or the timer heap's first deadline (and a
//! once-a-second tidy while it holds anything); an idle worker with nothing sleeps
//! until a command or a datagram comes. Ingress drains the socket with `recvmmsg`,
//! egress leaves in `sendmmsg` batches and GSO trains at the end of each wake-up
//! ([`super::batch`]); [`WorkerStats`] counts the calls and the datagrams.
//!
//! Not yet: per-leg header-extension rewriting (extensions are stripped), the
//! client's own renegotiation offers (a connection answers the client's first offer).

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mio::{Events, Interest, Poll, Token, Waker};
use rand::distr::{Alphanumeric, SampleString};
use rtc::ice::tcp_type::TcpType;
use rtc::interceptor::{Registry, Slot};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::{
    MediaEngine, MIME_TYPE_OPUS, MIME_TYPE_VP8,
};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, RTCDtlsRole, RTCIceCandidate, RTCIceCandidateInit,
};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{
    RTCRtpReceiverId, RTCRtpSenderId, RTCRtpTransceiverDirection, RTCRtpTransceiverInit,
};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use tokio::sync::oneshot;

use super::batch::{send_queued, EgressQueue, Ingress};
use super::demux::{
    binding_username, local_ufrag, ConnId, Demux, DemuxLimits, DropCounters, Flow, LogGate, Route,
    Ufrag,
};
use super::tcp::{encode_frame, FrameDecoder};
use super::timers::TimerHeap;
use crate::sfu::rtcp::KeyframeRequestTap;

/// Poll tokens: the UDP socket, the TCP listener, the command queue's waker; TCP
/// streams count up from [`FIRST_STREAM`].
const UDP: Token = Token(0);
const LISTENER: Token = Token(1);
const WAKER: Token = Token(2);
const FIRST_STREAM: usize = 3;
/// Events taken per wait.
const EVENTS: usize = 256;
/// `recvmmsg` calls per wake-up before the rest waits for the next round.
const INGRESS_ROUNDS: usize = 4;
/// How often expiry, rate-limiter tidying and drop summaries run while the worker
/// holds anything.
const HOUSEKEEPING: Duration = Duration::from_secs(1);

/// The largest datagram read.
const RECV_BUF: usize = 2048;

/// The largest ICE-TCP frame taken (a datagram's worth).
const MAX_TCP_FRAME: usize = 1500;
/// Framed bytes queued for one TCP stream before its packets are dropped.
const MAX_TCP_QUEUE: usize = 512 * 1024;
/// ICE-TCP streams one worker holds at most.
const MAX_TCP_STREAMS: usize = 4096;
/// A TCP stream that has not sent a binding request for a connection by then is closed.
const TCP_FIRST_FRAME: Duration = Duration::from_secs(10);

/// Which leg of a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LegId(pub u32);

/// A leg added to a subscriber's connection, and the server's offer carrying it.
#[derive(Debug, Clone)]
pub struct LegOffer {
    pub leg: LegId,
    pub sdp: String,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("the worker's address {0} is unspecified: give the address to announce")]
    Unspecified(SocketAddr),
    #[error("rtc: {0}")]
    Rtc(#[from] rtc::shared::error::Error),
    #[error("no local description after set_local_description")]
    NoLocalDescription,
    #[error("the worker thread has stopped")]
    Stopped,
    #[error("crypto provider: {0}")]
    Crypto(String),
    #[error("connection {0} is not on this worker (closed, or never made)")]
    NoConnection(ConnId),
    #[error("leg {0:?} is not on this worker")]
    NoLeg(LegId),
    #[error("connection {0} has an offer waiting for its answer: one negotiation at a time")]
    Negotiating(ConnId),
    #[error("connection {0} has no offer outstanding to answer")]
    NoOffer(ConnId),
    #[error("the answer is not valid SDP for connection {conn}: {reason}")]
    InvalidAnswer { conn: ConnId, reason: String },
    #[error("a {0} leg cannot be made: the worker forwards audio and video only")]
    Kind(RtpCodecKind),
}

/// How a worker is set up.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Its number (named in every ufrag it hands out).
    pub index: u8,
    /// The address its one UDP socket binds.
    pub bind: SocketAddr,
    /// The IP its host candidate announces (default: the bound IP, which must then
    /// not be unspecified). rtc matches a datagram's local address against its
    /// candidates, so this is also the `local_addr` every datagram is tagged with.
    pub announce: Option<IpAddr>,
    pub limits: DemuxLimits,
    /// A flow silent this long is forgotten.
    pub flow_idle: Duration,
    /// A connection that got no binding request this long after its answer is closed.
    pub ufrag_idle: Duration,
    /// ICE-TCP (passive): the address its TCP listener binds (same IP rule as UDP).
    pub tcp: Option<SocketAddr>,
}

impl WorkerConfig {
    pub fn new(index: u8, bind: SocketAddr) -> WorkerConfig {
        WorkerConfig {
            index,
            bind,
            announce: None,
            limits: DemuxLimits::default(),
            flow_idle: Duration::from_secs(30),
            ufrag_idle: Duration::from_secs(30),
            tcp: None,
        }
    }
}

/// The answer to an offer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub conn: ConnId,
    pub ufrag: String,
    pub sdp: String,
    /// The candidates in the answer (UDP host, TCP passive), for a client that
    /// takes them trickled.
    pub candidates: Vec<RTCIceCandidateInit>,
}

/// What a worker holds and has done.
#[derive(Debug, Clone, Default)]
pub struct WorkerStats {
    pub connections: usize,
    /// Connections in the `Connected` state.
    pub connected: usize,
    pub flows: usize,
    /// Legs made (pending or flowing), and those carrying media now.
    pub legs: usize,
    pub legs_flowing: usize,
    /// Connections with a deadline in the timer heap.
    pub timers: usize,
    /// UDP sockets the worker holds (one, by construction; reported for the tests
    /// that count them in /proc independently).
    pub sockets: usize,
    pub datagrams_in: u64,
    pub datagrams_out: u64,
    /// RTP packets read out of connections.
    pub rtp_in: u64,
    /// RTP packets written into other connections.
    pub rtp_forwarded: u64,
    /// RTCP compounds read out of connections, and those with a PLI.
    pub rtcp_in: u64,
    /// Datagrams that are SRTCP by their first bytes (RFC 5761), whatever came of them.
    pub rtcp_datagrams_in: u64,
    pub plis_in: u64,
    pub plis_relayed: u64,
    pub drops: DropCounters,
    /// Datagrams the kernel refused (`sendmmsg` failing on one).
    pub send_errors: u64,
    /// Wake-ups of the loop (each wait that returned).
    pub wakeups: u64,
    /// `sendmmsg` calls, and the datagrams they sent are `datagrams_out`.
    pub send_syscalls: u64,
    /// Of `send_syscalls`, the GSO trains (one `sendmsg` each), and the datagrams
    /// they held (part of `datagrams_out`).
    pub gso_trains: u64,
    pub gso_datagrams: u64,
    /// `recvmmsg` calls, and the datagrams they read are `datagrams_in`.
    pub recv_syscalls: u64,
    /// Datagrams dropped before sending: the newest of a destination with its share
    /// queued, or the egress queue full.
    pub egress_dropped: u64,
    /// Times the send buffer was full (the rest waited for a writable event).
    pub egress_blocked: u64,
    /// Datagrams queued now.
    pub egress_queued: usize,
    /// Errors the core returned (a datagram it refused, a timeout handler).
    pub core_errors: u64,
    /// Wake-ups for expired timers and connections they touched.
    pub timer_wakeups: u64,
    /// ICE-TCP streams accepted, open now, refused (no binding request for one of
    /// our ufrags first, bad framing, too many), and packets dropped on a full queue.
    pub tcp_accepted: u64,
    pub tcp_streams: usize,
    pub tcp_refused: u64,
    pub tcp_dropped: u64,
    pub tcp_frames_in: u64,
    pub tcp_frames_out: u64,
}

impl WorkerStats {
    /// Datagrams per `sendmmsg` call (0 before the first).
    pub fn datagrams_per_send(&self) -> f64 {
        if self.send_syscalls == 0 {
            0.0
        } else {
            self.datagrams_out as f64 / self.send_syscalls as f64
        }
    }

    /// Datagrams per `recvmmsg` call (0 before the first).
    pub fn datagrams_per_recv(&self) -> f64 {
        if self.recv_syscalls == 0 {
            0.0
        } else {
            self.datagrams_in as f64 / self.recv_syscalls as f64
        }
    }
}

enum Command {
    Answer {
        offer: String,
        reply: oneshot::Sender<Result<Answer, WorkerError>>,
    },
    Close {
        conn: ConnId,
    },
    AddLeg {
        subscriber: ConnId,
        publisher: ConnId,
        kind: RtpCodecKind,
        stream_id: String,
        reply: oneshot::Sender<Result<LegOffer, WorkerError>>,
    },
    ApplyAnswer {
        conn: ConnId,
        sdp: String,
        reply: oneshot::Sender<Result<Vec<LegId>, WorkerError>>,
    },
    RemoveLeg {
        leg: LegId,
        reply: oneshot::Sender<Result<Option<String>, WorkerError>>,
    },
    Stats {
        reply: oneshot::Sender<WorkerStats>,
    },
    Shutdown,
}

/// A running worker thread.
pub struct Worker {
    commands: mpsc::Sender<Command>,
    /// Rung after each command: the thread sleeps in epoll.
    waker: Waker,
    local_addr: SocketAddr,
    tcp_addr: Option<SocketAddr>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Binds the socket and starts the thread.
    pub fn spawn(config: WorkerConfig) -> Result<Worker, WorkerError> {
        let socket = UdpSocket::bind(config.bind)?;
        socket.set_nonblocking(true)?;
        let bound = socket.local_addr()?;
        let ip = config.announce.unwrap_or(bound.ip());
        if ip.is_unspecified() {
            return Err(WorkerError::Unspecified(bound));
        }
        let local = SocketAddr::new(ip, bound.port());
        let (tcp_listener, tcp_local) = match config.tcp {
            Some(bind) => {
                let l = TcpListener::bind(bind)?;
                l.set_nonblocking(true)?;
                let b = l.local_addr()?;
                let ip = config.announce.unwrap_or(b.ip());
                if ip.is_unspecified() {
                    return Err(WorkerError::Unspecified(b));
                }
                (
                    Some(mio::net::TcpListener::from_std(l)),
                    Some(SocketAddr::new(ip, b.port())),
                )
            }
            None => (None, None),
        };
        let ingress = Ingress::new(&socket, RECV_BUF)?;
        let gso = ingress.socket_state();
        let mut socket = mio::net::UdpSocket::from_std(socket);
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut socket, UDP, Interest::READABLE)?;
        let mut tcp_listener = tcp_listener;
        if let Some(l) = tcp_listener.as_mut() {
            poll.registry().register(l, LISTENER, Interest::READABLE)?;
        }
        let waker = Waker::new(poll.registry(), WAKER)?;
        let (tx, rx) = mpsc::channel();
        let mut state = State {
            index: config.index,
            io: Io {
                socket,
                tcp: HashMap::new(),
                egress: EgressQueue::default(),
                gso,
                writable_interest: false,
            },
            registry: poll.registry().try_clone()?,
            tcp_tokens: HashMap::new(),
            next_token: FIRST_STREAM,
            drops_pending: false,
            tcp_listener,
            tcp_local,
            local,
            commands: rx,
            demux: Demux::verifying(
                config.limits,
                rtc::crypto::default_provider().map_err(|e| WorkerError::Crypto(e.to_string()))?,
            ),
            timers: TimerHeap::new(),
            conns: HashMap::new(),
            next_conn: 1,
            legs: HashMap::new(),
            next_leg: 1,
            flowing: HashMap::new(),
            stats: WorkerStats::default(),
            drop_log: LogGate::new(Duration::from_secs(10), 1024),
            flow_idle: config.flow_idle,
            ufrag_idle: config.ufrag_idle,
            last_expiry: Instant::now(),
            touched: HashSet::new(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("media-worker-{}", config.index))
            .spawn(move || state.run(poll, ingress))?;
        Ok(Worker {
            commands: tx,
            waker,
            local_addr: local,
            tcp_addr: tcp_local,
            thread: Some(thread),
        })
    }

    /// The address of the worker's one UDP socket, as its candidates announce it.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address of its ICE-TCP listener, if it has one.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
    }

    /// Answers an offer with a new connection on this worker.
    pub async fn answer(&self, offer: String) -> Result<Answer, WorkerError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Answer { offer, reply })?;
        rx.await.map_err(|_| WorkerError::Stopped)?
    }

    /// Closes a connection (its ufrag, flows and timer go with it).
    pub fn close(&self, conn: ConnId) -> Result<(), WorkerError> {
        self.send(Command::Close { conn })
    }

    /// Adds a leg: `publisher`'s `kind` track into `subscriber`'s connection, whose
    /// stream id (how the client tells whose media it is) is `stream_id`. Returns the
    /// offer to send the subscriber; media flows once its answer is applied.
    pub async fn add_leg(
        &self,
        subscriber: ConnId,
        publisher: ConnId,
        kind: RtpCodecKind,
        stream_id: impl Into<String>,
    ) -> Result<LegOffer, WorkerError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::AddLeg {
            subscriber,
            publisher,
            kind,
            stream_id: stream_id.into(),
            reply,
        })?;
        rx.await.map_err(|_| WorkerError::Stopped)?
    }

    /// Applies a client's answer to the server's outstanding offer; returns the legs
    /// it started.
    pub async fn apply_answer(&self, conn: ConnId, sdp: String) -> Result<Vec<LegId>, WorkerError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::ApplyAnswer { conn, sdp, reply })?;
        rx.await.map_err(|_| WorkerError::Stopped)?
    }

    /// Stops a leg at once; returns the offer that removes it from the subscriber's
    /// connection (`None` if that connection is gone).
    pub async fn remove_leg(&self, leg: LegId) -> Result<Option<String>, WorkerError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::RemoveLeg { leg, reply })?;
        rx.await.map_err(|_| WorkerError::Stopped)?
    }

    pub async fn stats(&self) -> Result<WorkerStats, WorkerError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Stats { reply })?;
        rx.await.map_err(|_| WorkerError::Stopped)
    }

    /// Queues a command and wakes the thread.
    fn send(&self, cmd: Command) -> Result<(), WorkerError> {
        self.commands.send(cmd).map_err(|_| WorkerError::Stopped)?;
        self.waker.wake()?;
        Ok(())
    }

    /// Stops the thread and waits for it.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.send(Command::Shutdown);
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("media worker thread panicked");
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One publisher's track of one kind into one subscriber's connection.
struct Leg {
    subscriber: ConnId,
    publisher: ConnId,
    kind: RtpCodecKind,
    sender: RTCRtpSenderId,
    ssrc: u32,
    codec_mime: &'static str,
    /// Read from the subscriber's answer; until then the leg carries nothing.
    payload_type: Option<u8>,
}

struct Conn {
    pc: RTCPeerConnection,
    state: RTCPeerConnectionState,
    /// Track id → (kind, receiver) of what this connection publishes.
    incoming: HashMap<String, (RtpCodecKind, RTCRtpReceiverId)>,
}

/// An accepted ICE-TCP stream.
struct TcpFlow {
    stream: mio::net::TcpStream,
    token: Token,
    decoder: FrameDecoder,
    /// The connection its first binding request named.
    conn: Option<ConnId>,
    /// Framed bytes not yet written.
    out: Vec<u8>,
    accepted: Instant,
}

/// The worker's sockets: the UDP socket with its egress queue, and the ICE-TCP
/// streams by remote address.
struct Io {
    socket: mio::net::UdpSocket,
    tcp: HashMap<SocketAddr, TcpFlow>,
    egress: EgressQueue,
    /// quinn-udp's state of the socket (the ingress's), for GSO trains (`batch.rs`).
    gso: std::sync::Arc<quinn_udp::UdpSocketState>,
    /// The UDP socket is registered for writable events (output is queued).
    writable_interest: bool,
}

struct State {
    index: u8,
    io: Io,
    /// The poll's registry (streams come and go).
    registry: mio::Registry,
    tcp_tokens: HashMap<Token, SocketAddr>,
    next_token: usize,
    /// Drops were logged through the gate since the last housekeeping.
    drops_pending: bool,
    tcp_listener: Option<mio::net::TcpListener>,
    /// The announced address of the TCP listener (its passive candidate).
    tcp_local: Option<SocketAddr>,
    local: SocketAddr,
    commands: mpsc::Receiver<Command>,
    demux: Demux,
    timers: TimerHeap,
    conns: HashMap<ConnId, Conn>,
    next_conn: u32,
    legs: HashMap<LegId, Leg>,
    next_leg: u32,
    /// The legs carrying media, by the publisher and kind they take it from.
    flowing: HashMap<(ConnId, RtpCodecKind), Vec<LegId>>,
    stats: WorkerStats,
    drop_log: LogGate<IpAddr>,
    flow_idle: Duration,
    ufrag_idle: Duration,
    last_expiry: Instant,
    /// Connections whose output must be drained before the thread sleeps.
    touched: HashSet<ConnId>,
}

/// Media read out of a connection in this wake-up, to forward.
enum Forward {
    Rtp {
        from: ConnId,
        kind: RtpCodecKind,
        packet: rtc::rtp::Packet,
    },
    /// A subscriber's keyframe request about the stream with this SSRC.
    Pli { from: ConnId, media_ssrc: u32 },
}

impl State {
    fn run(&mut self, mut poll: Poll, mut ingress: Ingress) {
        let mut events = Events::with_capacity(EVENTS);
        let mut buf = vec![0u8; RECV_BUF];
        let mut due = Vec::new();
        // Sources that may hold more than one round read (edge-triggered: an event
        // comes only when new data arrives, so what a bounded round left is
        // remembered here and the next wait does not sleep).
        let mut udp_ready = true;
        let mut accept_ready = self.tcp_listener.is_some();
        let mut tcp_ready: HashSet<SocketAddr> = HashSet::new();
        loop {
            let busy =
                udp_ready || accept_ready || !tcp_ready.is_empty() || !self.touched.is_empty();
            let timeout = if busy {
                Some(Duration::ZERO)
            } else {
                self.next_wake()
                    .map(|d| d.saturating_duration_since(Instant::now()))
            };
            if let Err(e) = poll.poll(&mut events, timeout) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    tracing::error!("media worker {}: poll: {e}", self.index);
                    self.close_all();
                    self.send_egress();
                    return;
                }
            }
            self.stats.wakeups += 1;
            for ev in events.iter() {
                match ev.token() {
                    // Writable: send_egress below sends what is queued.
                    UDP => udp_ready |= ev.is_readable() || ev.is_error(),
                    LISTENER => accept_ready = true,
                    WAKER => {}
                    t => {
                        let Some(peer) = self.tcp_tokens.get(&t).copied() else {
                            continue;
                        };
                        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                            tcp_ready.insert(peer);
                        }
                        if ev.is_writable() {
                            if let Some(f) = self.io.tcp.get_mut(&peer) {
                                if !write_pending(f) {
                                    // The read finds the error and closes it.
                                    tcp_ready.insert(peer);
                                }
                            }
                        }
                    }
                }
            }
            loop {
                match self.commands.try_recv() {
                    Ok(Command::Shutdown) | Err(mpsc::TryRecvError::Disconnected) => {
                        self.close_all();
                        self.send_egress();
                        return;
                    }
                    Ok(cmd) => self.command(cmd),
                    Err(mpsc::TryRecvError::Empty) => break,
                }
            }
            let now = Instant::now();
            self.timers.expired(now, &mut due);
            if !due.is_empty() {
                self.stats.timer_wakeups += 1;
            }
            for id in due.drain(..) {
                if let Some(c) = self.conns.get_mut(&id) {
                    if c.pc.handle_timeout(now).is_err() {
                        self.stats.core_errors += 1;
                    }
                    self.touched.insert(id);
                }
            }
            if udp_ready {
                udp_ready = self.read_udp(&mut ingress, now);
            }
            if accept_ready {
                accept_ready = self.accept_tcp(now, &mut tcp_ready);
            }
            if !tcp_ready.is_empty() {
                let peers: Vec<SocketAddr> = tcp_ready.drain().collect();
                for peer in peers {
                    if self.read_tcp(peer, &mut buf, now) {
                        tcp_ready.insert(peer);
                    }
                }
            }
            self.service(now);
            if now.saturating_duration_since(self.last_expiry) >= HOUSEKEEPING {
                self.expire(now);
            }
            // Everything this wake-up produced leaves together.
            self.send_egress();
        }
    }

    /// When the thread must wake with no event: the first timer, and housekeeping
    /// while it holds anything. None: sleep until an event.
    fn next_wake(&mut self) -> Option<Instant> {
        let holds = !self.conns.is_empty()
            || self.demux.router.flows() > 0
            || !self.io.tcp.is_empty()
            || self.drops_pending;
        let house = holds.then(|| self.last_expiry + HOUSEKEEPING);
        match (self.timers.next_deadline(), house) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Reads the UDP socket in `recvmmsg` rounds and routes each datagram; true if
    /// it may hold more (the rounds ran out before it was drained).
    fn read_udp(&mut self, ingress: &mut Ingress, now: Instant) -> bool {
        for _ in 0..INGRESS_ROUNDS {
            let r = ingress.recv(&self.io.socket);
            self.stats.recv_syscalls += r.syscalls;
            for (from, data) in ingress.datagrams() {
                self.datagram(from, data, now);
            }
            if r.drained {
                return false;
            }
        }
        true
    }

    /// Sends the egress queue in `sendmmsg` batches; asks for a writable event while
    /// some of it waits for room in the send buffer.
    fn send_egress(&mut self) {
        if !self.io.egress.is_empty() {
            let r = send_queued(&self.io.socket, &mut self.io.egress, Some(&self.io.gso));
            self.stats.send_syscalls += r.syscalls;
            self.stats.datagrams_out += r.datagrams;
            self.stats.gso_trains += r.gso_trains;
            self.stats.gso_datagrams += r.gso_datagrams;
            self.stats.send_errors += r.errors;
            if r.blocked {
                self.stats.egress_blocked += 1;
            }
        }
        let want = !self.io.egress.is_empty();
        if want != self.io.writable_interest {
            let interest = if want {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            match self.registry.reregister(&mut self.io.socket, UDP, interest) {
                Ok(()) => self.io.writable_interest = want,
                Err(e) => tracing::error!("media worker {}: reregister: {e}", self.index),
            }
        }
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Answer { offer, reply } => {
                let r = self.answer(offer, Instant::now());
                let _ = reply.send(r);
            }
            Command::Close { conn } => self.remove(conn),
            Command::AddLeg {
                subscriber,
                publisher,
                kind,
                stream_id,
                reply,
            } => {
                let r = self.add_leg(subscriber, publisher, kind, stream_id, Instant::now());
                let _ = reply.send(r);
            }
            Command::ApplyAnswer { conn, sdp, reply } => {
                let r = self.apply_answer(conn, sdp, Instant::now());
                let _ = reply.send(r);
            }
            Command::RemoveLeg { leg, reply } => {
                let r = self.remove_leg(leg, Instant::now());
                let _ = reply.send(r);
            }
            Command::Stats { reply } => {
                let mut s = self.stats.clone();
                s.connections = self.conns.len();
                s.connected = self
                    .conns
                    .values()
                    .filter(|c| c.state == RTCPeerConnectionState::Connected)
                    .count();
                s.flows = self.demux.router.flows();
                s.legs = self.legs.len();
                s.legs_flowing = self.flowing.values().map(Vec::len).sum();
                s.timers = self.timers.len();
                s.sockets = 1;
                s.drops = self.demux.drops().clone();
                s.tcp_streams = self.io.tcp.len();
                s.egress_dropped = self.io.egress.dropped;
                s.egress_queued = self.io.egress.len();
                let _ = reply.send(s);
            }
            Command::Shutdown => {}
        }
    }

    fn answer(&mut self, offer: String, now: Instant) -> Result<Answer, WorkerError> {
        let id = ConnId(self.next_conn);
        self.next_conn = self.next_conn.wrapping_add(1).max(1);
        let mut rng = rand::rng();
        let ufrag = Ufrag::new(
            self.index,
            id,
            &Alphanumeric.sample_string(&mut rng, Ufrag::NONCE_LEN),
        );
        let pwd = Alphanumeric.sample_string(&mut rng, 24);
        let setting = SettingEngineBuilder::new()
            .with_lite(true)
            .with_ice_credentials(ufrag.as_str().to_owned(), pwd.clone())
            .with_answering_dtls_role(RTCDtlsRole::Server)
            .build();
        let mut media = MediaEngine::default();
        media.register_default_codecs()?;
        // rtc delivers inbound RTCP to the application only if an interceptor marks it:
        // today's keyframe-request tap (sfu/rtcp.rs) does, last in the chain, unchanged.
        let registry = register_default_interceptors(Registry::new(), &mut media)?
            .with(Slot::from(14_000), KeyframeRequestTap::default());
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_setting_engine(setting)
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .build(now)?;

        // No tracks of ours yet: what this connection receives comes in legs
        // (`add_leg`), each a renegotiation of its own.
        pc.set_remote_description(now, RTCSessionDescription::offer(offer)?)?;
        let host = CandidateHostConfig {
            base_config: CandidateConfig {
                network: "udp".to_owned(),
                address: self.local.ip().to_string(),
                port: self.local.port(),
                component: 1,
                ..Default::default()
            },
            ..Default::default()
        }
        .new_candidate_host()?;
        let mut candidates = vec![RTCIceCandidate::from(&host).to_json()?];
        if let Some(tcp) = self.tcp_local {
            let passive = CandidateHostConfig {
                base_config: CandidateConfig {
                    network: "tcp".to_owned(),
                    address: tcp.ip().to_string(),
                    port: tcp.port(),
                    component: 1,
                    ..Default::default()
                },
                tcp_type: TcpType::Passive,
            }
            .new_candidate_host()?;
            candidates.push(RTCIceCandidate::from(&passive).to_json()?);
        }
        for c in &candidates {
            pc.add_local_candidate(c.clone())?;
        }
        pc.add_local_candidate(RTCIceCandidateInit::default())?;
        let answer = pc.create_answer(None)?;
        pc.set_local_description(now, answer)?;
        let sdp = pc
            .local_description()
            .ok_or(WorkerError::NoLocalDescription)?
            .sdp;

        self.demux.router.insert_conn(ufrag.as_str(), id, now);
        // Checked before a flow is bound: a forged request never reaches the core.
        self.demux.router.set_key(id, pwd.as_bytes());
        self.conns.insert(
            id,
            Conn {
                pc,
                state: RTCPeerConnectionState::New,
                incoming: HashMap::new(),
            },
        );
        self.touched.insert(id);
        self.service(now);
        Ok(Answer {
            conn: id,
            ufrag: ufrag.as_str().to_owned(),
            sdp,
            candidates,
        })
    }

    fn datagram(&mut self, from: SocketAddr, data: &[u8], now: Instant) {
        self.stats.datagrams_in += 1;
        if super::demux::classify(data) == super::demux::Class::Rtcp {
            self.stats.rtcp_datagrams_in += 1;
        }
        let flow = Flow {
            local: self.local,
            remote: from,
            tcp: false,
        };
        match self.demux.route(flow, data, now) {
            Route::Conn { conn, .. } => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                let msg = TaggedBytesMut {
                    now,
                    transport: TransportContext {
                        local_addr: self.local,
                        peer_addr: from,
                        ecn: None,
                        transport_protocol: TransportProtocol::UDP,
                    },
                    message: BytesMut::from(data),
                };
                if c.pc.handle_read(msg).is_err() {
                    self.stats.core_errors += 1;
                }
                // Serviced once the wake-up's datagrams are all in.
                self.touched.insert(conn);
            }
            Route::Drop(reason) => {
                self.drops_pending = true;
                if let Some(suppressed) = self.drop_log.check(&from.ip(), now) {
                    tracing::info!(
                        worker = self.index,
                        source = %from,
                        reason = reason.as_str(),
                        suppressed,
                        "media datagram dropped"
                    );
                }
            }
        }
    }

    /// Drains every touched connection (events, media, datagrams), forwards the media
    /// read, and reschedules their timers. Bounded: forwarding touches other
    /// connections, whose output is drained in the next round, and writing media
    /// into a connection yields no media to forward.
    fn service(&mut self, now: Instant) {
        for _round in 0..4 {
            if self.touched.is_empty() {
                return;
            }
            let touched: Vec<ConnId> = self.touched.drain().collect();
            let mut forwards = Vec::new();
            let mut closed = Vec::new();
            for id in touched {
                let Some(c) = self.conns.get_mut(&id) else {
                    continue;
                };
                drain_events(id, c, &mut closed);
                while let Some(TaggedRTCMessage { message, .. }) = c.pc.poll_read() {
                    match message {
                        RTCMessage::RtpPacket(track, packet) => {
                            self.stats.rtp_in += 1;
                            if let Some((kind, _)) = c.incoming.get(&track) {
                                forwards.push(Forward::Rtp {
                                    from: id,
                                    kind: *kind,
                                    packet,
                                });
                            }
                        }
                        RTCMessage::RtcpPacket(_, packets) => {
                            self.stats.rtcp_in += 1;
                            for pli in packets
                                .iter()
                                .filter_map(|p| p.as_any().downcast_ref::<PictureLossIndication>())
                            {
                                self.stats.plis_in += 1;
                                forwards.push(Forward::Pli {
                                    from: id,
                                    media_ssrc: pli.media_ssrc,
                                });
                            }
                        }
                        _ => {}
                    }
                }
                // Reading can raise events (a track opening on its first packet).
                drain_events(id, c, &mut closed);
                flush(&mut self.io, c, &mut self.stats);
                self.timers.schedule(id, c.pc.poll_timeout());
            }
            for f in forwards {
                self.forward(f, now);
            }
            for id in closed {
                self.remove(id);
            }
        }
    }

    fn forward(&mut self, f: Forward, now: Instant) {
        match f {
            Forward::Rtp { from, kind, packet } => {
                let Some(legs) = self.flowing.get(&(from, kind)) else {
                    return;
                };
                for leg_id in legs {
                    let Some(leg) = self.legs.get(leg_id) else {
                        continue;
                    };
                    let Some(pt) = leg.payload_type else {
                        continue;
                    };
                    let Some(c) = self.conns.get_mut(&leg.subscriber) else {
                        continue;
                    };
                    if c.state != RTCPeerConnectionState::Connected {
                        continue;
                    }
                    let Some(mut sender) = c.pc.rtp_sender(leg.sender) else {
                        continue;
                    };
                    let mut p = packet.clone();
                    p.header.ssrc = leg.ssrc;
                    p.header.payload_type = pt;
                    // The publisher's extension ids are not this connection's: drop
                    // them (the real legs rewrite them, forward.rs).
                    p.header.extension = false;
                    p.header.extensions.clear();
                    if sender.write_rtp(now, p).is_ok() {
                        self.stats.rtp_forwarded += 1;
                    } else {
                        self.stats.core_errors += 1;
                    }
                    self.touched.insert(leg.subscriber);
                }
            }
            Forward::Pli { from, media_ssrc } => {
                // The leg whose SSRC the request names, and only its publisher.
                let Some(publisher) = self
                    .legs
                    .values()
                    .find(|l| {
                        l.subscriber == from
                            && l.ssrc == media_ssrc
                            && l.kind == RtpCodecKind::Video
                    })
                    .map(|l| l.publisher)
                else {
                    return;
                };
                let Some(c) = self.conns.get_mut(&publisher) else {
                    return;
                };
                let receivers: Vec<RTCRtpReceiverId> = c
                    .incoming
                    .values()
                    .filter(|(k, _)| *k == RtpCodecKind::Video)
                    .map(|(_, r)| *r)
                    .collect();
                for r in receivers {
                    let Some(mut receiver) = c.pc.rtp_receiver(r) else {
                        continue;
                    };
                    let ssrcs: Vec<u32> = receiver.track().ssrcs().collect();
                    for media_ssrc in ssrcs {
                        let pli = PictureLossIndication {
                            sender_ssrc: 0,
                            media_ssrc,
                        };
                        if receiver.write_rtcp(now, vec![Box::new(pli)]).is_ok() {
                            self.stats.plis_relayed += 1;
                        }
                    }
                }
                self.touched.insert(publisher);
            }
        }
    }

    /// Adds a sendonly transceiver for the leg to the subscriber's connection and
    /// returns the offer carrying it.
    fn add_leg(
        &mut self,
        subscriber: ConnId,
        publisher: ConnId,
        kind: RtpCodecKind,
        stream_id: String,
        now: Instant,
    ) -> Result<LegOffer, WorkerError> {
        let (mime, codec) = match kind {
            RtpCodecKind::Audio => (MIME_TYPE_OPUS, crate::sfu::audio_codec()),
            RtpCodecKind::Video => (MIME_TYPE_VP8, vp8()),
            other => return Err(WorkerError::Kind(other)),
        };
        if !self.conns.contains_key(&publisher) {
            return Err(WorkerError::NoConnection(publisher));
        }
        let c = self
            .conns
            .get_mut(&subscriber)
            .ok_or(WorkerError::NoConnection(subscriber))?;
        if c.pc.pending_local_description().is_some() {
            return Err(WorkerError::Negotiating(subscriber));
        }
        let leg = LegId(self.next_leg);
        self.next_leg = self.next_leg.wrapping_add(1).max(1);
        let ssrc = rand::random::<u32>().max(1);
        let label = format!("{kind}-{}", leg.0);
        let track = MediaStreamTrack::new(
            stream_id,
            label.clone(),
            label,
            kind,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec,
                ..Default::default()
            }],
        );
        // A transceiver of its own (`add_track` would reuse an idle one of the same
        // kind, even the m-section the client publishes on: see peer.rs).
        let transceiver = c.pc.add_transceiver_from_track(
            track,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Sendonly,
                streams: vec![],
                send_encodings: vec![],
            }),
        )?;
        let sdp = local_offer(&mut c.pc, now)?;
        self.legs.insert(
            leg,
            Leg {
                subscriber,
                publisher,
                kind,
                sender: RTCRtpSenderId::from(transceiver),
                ssrc,
                codec_mime: mime,
                payload_type: None,
            },
        );
        self.touched.insert(subscriber);
        Ok(LegOffer { leg, sdp })
    }

    /// Applies the client's answer; the subscriber's legs waiting for it start
    /// (those whose codec it accepted).
    fn apply_answer(
        &mut self,
        conn: ConnId,
        sdp: String,
        now: Instant,
    ) -> Result<Vec<LegId>, WorkerError> {
        let live: HashSet<ConnId> = self.conns.keys().copied().collect();
        let c = self
            .conns
            .get_mut(&conn)
            .ok_or(WorkerError::NoConnection(conn))?;
        if c.pc.pending_local_description().is_none() {
            return Err(WorkerError::NoOffer(conn));
        }
        let invalid = |e: rtc::shared::error::Error| WorkerError::InvalidAnswer {
            conn,
            reason: e.to_string(),
        };
        let answer = RTCSessionDescription::answer(sdp).map_err(invalid)?;
        c.pc.set_remote_description(now, answer).map_err(invalid)?;
        self.touched.insert(conn);
        let mut started = Vec::new();
        for (id, leg) in self
            .legs
            .iter_mut()
            .filter(|(_, l)| l.subscriber == conn && l.payload_type.is_none())
        {
            let Some(mut sender) = c.pc.rtp_sender(leg.sender) else {
                continue;
            };
            let pt = sender
                .get_parameters()
                .rtp_parameters
                .codecs
                .iter()
                .find(|p| p.rtp_codec.mime_type.eq_ignore_ascii_case(leg.codec_mime))
                .map(|p| p.payload_type);
            let Some(pt) = pt else {
                tracing::debug!(conn = %conn, leg = id.0, "the subscriber did not accept {}", leg.codec_mime);
                continue;
            };
            leg.payload_type = Some(pt);
            // Only while the publisher is there: a leg of a closed one stays idle
            // until the owner removes it.
            if live.contains(&leg.publisher) {
                self.flowing
                    .entry((leg.publisher, leg.kind))
                    .or_default()
                    .push(*id);
            }
            started.push(*id);
        }
        Ok(started)
    }

    /// Stops a leg and removes its transceiver from the subscriber's connection;
    /// the offer that says so, if the connection is still there.
    fn remove_leg(&mut self, id: LegId, now: Instant) -> Result<Option<String>, WorkerError> {
        let leg = self.legs.get(&id).ok_or(WorkerError::NoLeg(id))?;
        let (subscriber, publisher, kind, sender) =
            (leg.subscriber, leg.publisher, leg.kind, leg.sender);
        if let Some(c) = self.conns.get(&subscriber) {
            if c.pc.pending_local_description().is_some() {
                return Err(WorkerError::Negotiating(subscriber));
            }
        }
        self.legs.remove(&id);
        self.stop_flowing(publisher, kind, id);
        let Some(c) = self.conns.get_mut(&subscriber) else {
            return Ok(None);
        };
        c.pc.remove_track(sender)?;
        let sdp = local_offer(&mut c.pc, now)?;
        self.touched.insert(subscriber);
        Ok(Some(sdp))
    }

    fn stop_flowing(&mut self, publisher: ConnId, kind: RtpCodecKind, id: LegId) {
        if let Some(list) = self.flowing.get_mut(&(publisher, kind)) {
            list.retain(|l| *l != id);
            if list.is_empty() {
                self.flowing.remove(&(publisher, kind));
            }
        }
    }

    fn expire(&mut self, now: Instant) {
        self.last_expiry = now;
        for id in self
            .demux
            .router
            .expire(now, self.flow_idle, self.ufrag_idle)
        {
            tracing::debug!(worker = self.index, conn = %id, "connection expired");
            self.remove(id);
        }
        // A stream that named no connection in time goes.
        let silent: Vec<SocketAddr> = self
            .io
            .tcp
            .iter()
            .filter(|(_, f)| {
                f.conn.is_none() && now.saturating_duration_since(f.accepted) >= TCP_FIRST_FRAME
            })
            .map(|(p, _)| *p)
            .collect();
        for peer in silent {
            self.close_tcp(peer);
        }
        self.demux.tidy(now);
        self.drops_pending = false;
        let (summaries, overflow) = self.drop_log.flush(now);
        for (ip, n) in summaries {
            tracing::info!(worker = self.index, source = %ip, suppressed = n, "media datagrams dropped");
        }
        if overflow > 0 {
            tracing::info!(
                worker = self.index,
                overflow,
                "media datagrams dropped from untracked sources"
            );
        }
    }

    fn remove(&mut self, id: ConnId) {
        // Its legs as a subscriber go; as a publisher they stop flowing and stay
        // (idle) in their subscribers' connections until the owner removes them.
        self.legs.retain(|_, l| l.subscriber != id);
        let legs = &self.legs;
        self.flowing.retain(|(publisher, _), flowing| {
            flowing.retain(|l| legs.contains_key(l));
            *publisher != id && !flowing.is_empty()
        });
        self.demux.router.remove_conn(id);
        self.timers.remove(id);
        self.touched.remove(&id);
        if let Some(mut c) = self.conns.remove(&id) {
            if c.pc.close().is_err() {
                self.stats.core_errors += 1;
            }
            flush(&mut self.io, &mut c, &mut self.stats);
        }
        // Its ICE-TCP streams go with it.
        let streams: Vec<SocketAddr> = self
            .io
            .tcp
            .iter()
            .filter(|(_, f)| f.conn == Some(id))
            .map(|(p, _)| *p)
            .collect();
        for peer in streams {
            self.close_tcp(peer);
        }
    }

    /// Accepts ICE-TCP streams (bounded per wake-up) and registers them; true if the
    /// listener may hold more. Each stream's first frame must be a binding request
    /// naming one of this worker's ufrags, or the stream is closed.
    fn accept_tcp(&mut self, now: Instant, ready: &mut HashSet<SocketAddr>) -> bool {
        let Some(listener) = &self.tcp_listener else {
            return false;
        };
        for _ in 0..64 {
            match listener.accept() {
                Ok((mut stream, peer)) => {
                    let token = Token(self.next_token);
                    if self.io.tcp.len() >= MAX_TCP_STREAMS
                        || self.io.tcp.contains_key(&peer)
                        || self
                            .registry
                            .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                            .is_err()
                    {
                        self.stats.tcp_refused += 1;
                        continue;
                    }
                    self.next_token = self.next_token.wrapping_add(1).max(FIRST_STREAM);
                    let _ = stream.set_nodelay(true);
                    self.stats.tcp_accepted += 1;
                    self.tcp_tokens.insert(token, peer);
                    // Bytes that came with the connection are read at once.
                    ready.insert(peer);
                    self.io.tcp.insert(
                        peer,
                        TcpFlow {
                            stream,
                            token,
                            decoder: FrameDecoder::new(MAX_TCP_FRAME),
                            conn: None,
                            out: Vec::new(),
                            accepted: now,
                        },
                    );
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
                Err(e) => {
                    tracing::debug!("media worker {}: accept: {e}", self.index);
                    return false;
                }
            }
        }
        true
    }

    /// Writes what a stream has queued, reads its frames (bounded) and hands each to
    /// its connection; true if it may hold more to read.
    fn read_tcp(&mut self, peer: SocketAddr, buf: &mut [u8], now: Instant) -> bool {
        let mut frames = Vec::new();
        let mut close = false;
        let Some(f) = self.io.tcp.get_mut(&peer) else {
            return false;
        };
        close |= !write_pending(f);
        // Bounded: a stream that keeps sending waits for the next round.
        let mut more = !close;
        for _ in 0..16 {
            if close {
                break;
            }
            let n = f.decoder.room().min(buf.len());
            match f.stream.read(&mut buf[..n]) {
                Ok(0) => close = true,
                Ok(k) => {
                    f.decoder.feed(&buf[..k]);
                    loop {
                        match f.decoder.next_frame() {
                            Ok(Some(frame)) => frames.push(frame),
                            Ok(None) => break,
                            Err(_) => {
                                self.stats.tcp_refused += 1;
                                close = true;
                                break;
                            }
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    more = false;
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => close = true,
            }
        }
        for frame in frames {
            if close || !self.tcp_frame(peer, frame, now) {
                close = true;
                break;
            }
        }
        if close {
            self.close_tcp(peer);
            return false;
        }
        more
    }

    /// One frame from an ICE-TCP stream; false: close the stream.
    fn tcp_frame(&mut self, peer: SocketAddr, frame: BytesMut, now: Instant) -> bool {
        let Some(local) = self.tcp_local else {
            return false;
        };
        let flow = Flow {
            local,
            remote: peer,
            tcp: true,
        };
        let bound = self.io.tcp.get(&peer).and_then(|f| f.conn);
        let conn = match bound {
            Some(c) => {
                let _ = self.demux.router.by_flow(&flow, now);
                c
            }
            None => {
                let named = binding_username(&frame)
                    .ok()
                    .flatten()
                    .and_then(local_ufrag)
                    .and_then(|u| self.demux.router.by_ufrag(u));
                let Some(c) = named.filter(|c| self.demux.authentic(*c, &frame)) else {
                    self.stats.tcp_refused += 1;
                    return false;
                };
                if self.demux.router.bind(flow, c, now).is_err() {
                    self.stats.tcp_refused += 1;
                    return false;
                }
                if let Some(f) = self.io.tcp.get_mut(&peer) {
                    f.conn = Some(c);
                }
                c
            }
        };
        let Some(c) = self.conns.get_mut(&conn) else {
            return false;
        };
        self.stats.tcp_frames_in += 1;
        let msg = TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr: local,
                peer_addr: peer,
                ecn: None,
                transport_protocol: TransportProtocol::TCP,
            },
            message: frame,
        };
        if c.pc.handle_read(msg).is_err() {
            self.stats.core_errors += 1;
        }
        self.touched.insert(conn);
        true
    }

    fn close_tcp(&mut self, peer: SocketAddr) {
        if let Some(mut f) = self.io.tcp.remove(&peer) {
            self.tcp_tokens.remove(&f.token);
            let _ = self.registry.deregister(&mut f.stream);
            let _ = f.stream.shutdown(std::net::Shutdown::Both);
            if let (Some(local), Some(_)) = (self.tcp_local, f.conn) {
                self.demux.router.unbind(&Flow {
                    local,
                    remote: peer,
                    tcp: true,
                });
            }
        }
    }

    fn close_all(&mut self) {
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            self.remove(id);
        }
    }
}

fn drain_events(id: ConnId, c: &mut Conn, closed: &mut Vec<ConnId>) {
    while let Some(ev) = c.pc.poll_event() {
        match ev {
            RTCPeerConnectionEvent::OnConnectionStateChangeEvent(s) => {
                tracing::debug!(conn = %id, "connection state {s}");
                c.state = s;
                if matches!(
                    s,
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed
                ) {
                    closed.push(id);
                }
            }
            RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                if let Some(r) = c.pc.rtp_receiver(init.receiver_id) {
                    let kind = r.track().kind();
                    c.incoming.insert(init.track_id, (kind, init.receiver_id));
                }
            }
            RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnClose(track)) => {
                c.incoming.remove(&track);
            }
            _ => {}
        }
    }
}

/// Creates an offer, sets it as the local description and returns its SDP.
fn local_offer(pc: &mut RTCPeerConnection, now: Instant) -> Result<String, WorkerError> {
    let offer = pc.create_offer(None)?;
    pc.set_local_description(now, offer)?;
    Ok(pc
        .local_description()
        .ok_or(WorkerError::NoLocalDescription)?
        .sdp)
}

/// Takes what the connection has queued: UDP onto the egress queue (sent in
/// `sendmmsg` batches at the end of the wake-up; a destination over its share drops
/// its newest, counted there), TCP framed onto its stream's queue.
fn flush(io: &mut Io, c: &mut Conn, stats: &mut WorkerStats) {
    while let Some(out) = c.pc.poll_write() {
        match out.transport.transport_protocol {
            TransportProtocol::UDP => {
                let _ = io.egress.push(out.transport.peer_addr, out.message);
            }
            TransportProtocol::TCP => {
                let Some(f) = io.tcp.get_mut(&out.transport.peer_addr) else {
                    stats.tcp_dropped += 1;
                    continue;
                };
                if f.out.len() > MAX_TCP_QUEUE || encode_frame(&out.message, &mut f.out).is_err() {
                    // A slow stream drops its own packets; nobody waits for it.
                    stats.tcp_dropped += 1;
                    continue;
                }
                stats.tcp_frames_out += 1;
                // A broken stream is found and closed by the next poll.
                let _ = write_pending(f);
            }
            _ => stats.send_errors += 1,
        }
    }
}

/// Writes what a TCP stream has queued, as far as it takes it; false if broken.
fn write_pending(f: &mut TcpFlow) -> bool {
    while !f.out.is_empty() {
        match f.stream.write(&f.out) {
            Ok(0) => return false,
            Ok(n) => {
                f.out.drain(..n);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
    }
    true
}

fn vp8() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_VP8.to_owned(),
        clock_rate: 90000,
        channels: 0,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>() {}

    #[test]
    fn a_connection_can_be_built_on_one_thread_and_owned_by_another() {
        // The design keeps each RTCPeerConnection on its worker, but relies on it
        // being Send (built, then moved into the worker's state).
        assert_send::<RTCPeerConnection>();
        assert_send::<State>();
    }

    #[tokio::test]
    async fn an_idle_worker_sleeps_in_epoll_and_a_command_wakes_it() {
        let worker = Worker::spawn(WorkerConfig::new(0, "127.0.0.1:0".parse().expect("addr")))
            .expect("spawn");
        let bound = Duration::from_secs(10);
        let first = tokio::time::timeout(bound, worker.stats())
            .await
            .expect("answered while idle")
            .expect("stats");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let second = tokio::time::timeout(bound, worker.stats())
            .await
            .expect("answered while idle")
            .expect("stats");
        // Holding nothing it has no deadline at all: only the waker (this command)
        // ends its wait. (A read timeout of a few ms would show dozens here.)
        let woke = second.wakeups - first.wakeups;
        assert!(
            (1..=2).contains(&woke),
            "an idle worker woke {woke} times between two commands"
        );
        assert_eq!((second.connections, second.timers), (0, 0));
        worker
            .close(ConnId(7))
            .expect("a close of nothing is taken");
        let third = tokio::time::timeout(bound, worker.stats())
            .await
            .expect("answered")
            .expect("stats");
        assert!(third.wakeups > second.wakeups);
        worker.shutdown();
    }

    #[test]
    fn an_unspecified_address_needs_an_announced_one() {
        let cfg = WorkerConfig::new(0, "0.0.0.0:0".parse().expect("addr"));
        assert!(matches!(
            Worker::spawn(cfg),
            Err(WorkerError::Unspecified(_))
        ));
    }
}
