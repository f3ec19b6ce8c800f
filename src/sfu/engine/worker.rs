//! The spike that proves the core can be driven the engine's way: one OS thread, ONE
//! UDP socket, many `rtc` `RTCPeerConnection`s behind it (ICE-lite, server-chosen
//! ufrags), datagrams routed by [`Demux`], timeouts from a [`TimerHeap`]. Forwarding
//! is deliberately trivial: every RTP packet a connection publishes goes to every
//! other connection's outgoing track of the same kind (SSRC and payload type
//! rewritten), and a subscriber's PLI goes to the publishers. The real fan-out
//! (legs, layers, policy) stays in [`crate::sfu::forward`] until it moves here.
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
//! Not yet: renegotiation (each connection is answered once), per-leg
//! header-extension rewriting (extensions are stripped).

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
use rtc::rtp_transceiver::{RTCRtpReceiverId, RTCRtpSenderId};
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

/// Stream id of the tracks a connection receives from the worker.
pub const RELAY_STREAM: &str = "relay";

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

/// A track a connection sends (what the worker forwards into it).
struct OutTrack {
    sender: RTCRtpSenderId,
    ssrc: u32,
    codec_mime: &'static str,
    /// The payload type negotiated for it, read once connected.
    payload_type: Option<u8>,
}

struct Conn {
    pc: RTCPeerConnection,
    state: RTCPeerConnectionState,
    out: HashMap<RtpCodecKind, OutTrack>,
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
    Pli {
        from: ConnId,
    },
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
            Command::Stats { reply } => {
                let mut s = self.stats.clone();
                s.connections = self.conns.len();
                s.connected = self
                    .conns
                    .values()
                    .filter(|c| c.state == RTCPeerConnectionState::Connected)
                    .count();
                s.flows = self.demux.router.flows();
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

        let mut out = HashMap::new();
        for (kind, mime, codec) in [
            (
                RtpCodecKind::Audio,
                MIME_TYPE_OPUS,
                crate::sfu::audio_codec(),
            ),
            (RtpCodecKind::Video, MIME_TYPE_VP8, vp8()),
        ] {
            let ssrc = rand::random::<u32>().max(1);
            let track = MediaStreamTrack::new(
                RELAY_STREAM.to_owned(),
                format!("{RELAY_STREAM}-{kind}"),
                format!("{kind}"),
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
            let sender = pc.add_track(track)?;
            out.insert(
                kind,
                OutTrack {
                    sender,
                    ssrc,
                    codec_mime: mime,
                    payload_type: None,
                },
            );
        }

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
                out,
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
                            if packets
                                .iter()
                                .any(|p| p.as_any().is::<PictureLossIndication>())
                            {
                                self.stats.plis_in += 1;
                                forwards.push(Forward::Pli { from: id });
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
                for (id, c) in self.conns.iter_mut() {
                    if *id == from || c.state != RTCPeerConnectionState::Connected {
                        continue;
                    }
                    let Some(out) = c.out.get_mut(&kind) else {
                        continue;
                    };
                    let Some(mut sender) = c.pc.rtp_sender(out.sender) else {
                        continue;
                    };
                    let pt = match out.payload_type {
                        Some(pt) => pt,
                        None => {
                            let Some(pt) = sender
                                .get_parameters()
                                .rtp_parameters
                                .codecs
                                .iter()
                                .find(|p| {
                                    p.rtp_codec.mime_type.eq_ignore_ascii_case(out.codec_mime)
                                })
                                .map(|p| p.payload_type)
                            else {
                                continue;
                            };
                            out.payload_type = Some(pt);
                            pt
                        }
                    };
                    let mut p = packet.clone();
                    p.header.ssrc = out.ssrc;
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
                    self.touched.insert(*id);
                }
            }
            Forward::Pli { from } => {
                for (id, c) in self.conns.iter_mut() {
                    if *id == from || c.state != RTCPeerConnectionState::Connected {
                        continue;
                    }
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
                    self.touched.insert(*id);
                }
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
