//! Lite observers: receive-only subscribers cheap enough that several hundred fit
//! beside the server on this machine (a full webrtc 0.21 peer costs a driver task, a
//! socket gatherer and a tokio timer set each; ~100 of them fill the two cores).
//!
//! A [`LiteHost`] is one OS thread that owns many `rtc` 0.21 `RTCPeerConnection`s (the
//! same sans-IO core the full peers and the server use: ICE, DTLS, SRTP, the default
//! interceptors, so receiver reports, NACKs and transport-cc feedback go back to the
//! server exactly as a full peer's do) and drives them itself: one `mio` poll over
//! their sockets and a waker its command queue rings, one timer heap of their
//! `poll_timeout` deadlines (a connection is woken only when its own deadline passes,
//! never by a scan of all of them), datagrams read until the socket is drained, what
//! the core queued sent straight away. Each decrypted RTP packet is counted by
//! sequence number and send stamp into the observer's [`ReceiverTap`], as a full
//! receiver's tap does; the payload is not decoded.
//!
//! **One socket per observer, many observers per thread.** Every observer needs its
//! own 4-tuple: a server with one media port (the engine of issue 14) tells its
//! connections apart by the client's address alone, so observers sharing a socket
//! would be one flow to it. On loopback the only way to give many observers one socket
//! and still distinct addresses is a wildcard bind with per-datagram source addresses,
//! and the load generator binds only the address it is given (127.0.0.1 here, the veth
//! address in bench/janus-netns.sh). A socket costs a file descriptor and no CPU; what
//! makes a full peer expensive is its tasks and timers, which the host replaces with
//! one thread.
//!
//! [`LiteObserver`] joins an OpenHearing hearing with one: the signaling protocol (join,
//! the one client offer, trickled candidates, the server's renegotiation offers
//! answered in order) on a tokio task, the media on the host. [`LiteHost::answer`]
//! serves subscribers that are offered to (Janus's streaming plugin).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use bytes::BytesMut;
use mio::{Events, Interest, Poll, Token, Waker};
use openhearing_peer::participant::{from_wire, to_wire};
use openhearing_peer::MediaKind;
use openhearing_signaling::{
    ClientMessage, ServerMessage, SignalingClient, SignalingSender, Welcome,
};
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, RTCIceCandidate, RTCIceCandidateInit,
};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use tokio::sync::oneshot;
use tokio::task::JoinHandle as TaskHandle;

use crate::metrics::ReceiverTap;

const WAKER: Token = Token(0);
/// Datagrams read from one socket per wake-up before the others get their turn.
const READS_PER_WAKE: usize = 64;
/// The largest datagram read.
const RECV_BUF: usize = 2048;
/// How long joining (WebSocket join → welcome) may take.
const JOIN_TIMEOUT: Duration = Duration::from_secs(20);

/// When each step of a join first happened (welcome, the server's answer applied,
/// connected, the server's first offer answered): where a join's time goes.
#[derive(Debug, Default)]
pub struct JoinMarks {
    marks: Mutex<Vec<(&'static str, Instant)>>,
}

impl JoinMarks {
    /// Records `step` now, unless it was recorded before.
    pub fn mark(&self, step: &'static str) {
        if let Ok(mut m) = self.marks.lock() {
            if !m.iter().any(|(s, _)| *s == step) {
                m.push((step, Instant::now()));
            }
        }
    }

    pub fn get(&self) -> Vec<(&'static str, Instant)> {
        self.marks.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

/// Which connection of a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LiteId(usize);

/// What a host has done, for tests and the report.
#[derive(Debug, Default)]
pub struct LiteStats {
    pub connections: AtomicU64,
    pub connected: AtomicU64,
    pub datagrams_in: AtomicU64,
    pub datagrams_out: AtomicU64,
    pub rtp_in: AtomicU64,
    /// Datagrams the core refused (garbage, or SRTP that did not authenticate).
    pub core_errors: AtomicU64,
    /// Datagrams the socket would not take (dropped, as a full peer's would be).
    pub send_errors: AtomicU64,
    pub timer_entries: AtomicU64,
}

/// A local description and the one host candidate that goes with it.
#[derive(Debug, Clone)]
pub struct Local {
    pub id: LiteId,
    pub sdp: String,
    pub candidate: RTCIceCandidateInit,
}

enum Command {
    Offer {
        tap: Arc<ReceiverTap>,
        marks: Arc<JoinMarks>,
        reply: oneshot::Sender<Result<Local>>,
    },
    Answer {
        tap: Arc<ReceiverTap>,
        marks: Arc<JoinMarks>,
        offer: String,
        reply: oneshot::Sender<Result<Local>>,
    },
    ApplyAnswer {
        id: LiteId,
        sdp: String,
        reply: oneshot::Sender<Result<()>>,
    },
    Renegotiate {
        id: LiteId,
        offer: String,
        reply: oneshot::Sender<Result<String>>,
    },
    Candidate {
        id: LiteId,
        candidate: RTCIceCandidateInit,
    },
    Close {
        id: LiteId,
    },
    Shutdown,
}

struct Shared {
    commands: Mutex<mpsc::Sender<Command>>,
    waker: Waker,
    thread: Mutex<Option<JoinHandle<()>>>,
    stats: Arc<LiteStats>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Ok(tx) = self.commands.lock() {
            let _ = tx.send(Command::Shutdown);
        }
        let _ = self.waker.wake();
        if let Some(t) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.join();
        }
    }
}

/// One thread driving many receive-only connections. Cloning shares the thread; it
/// stops when the last clone is dropped.
#[derive(Clone)]
pub struct LiteHost {
    shared: Arc<Shared>,
}

impl LiteHost {
    /// Starts the thread; its connections' sockets bind `bind_ip` (port chosen by the
    /// kernel), which must be a concrete address: it is also their host candidate.
    pub fn spawn(bind_ip: IpAddr) -> Result<LiteHost> {
        if bind_ip.is_unspecified() {
            return Err(anyhow!(
                "lite observers bind a concrete address (their host candidate), not {bind_ip}"
            ));
        }
        let poll = Poll::new().context("lite host: epoll")?;
        let waker = Waker::new(poll.registry(), WAKER).context("lite host: waker")?;
        let (tx, rx) = mpsc::channel();
        let stats = Arc::new(LiteStats::default());
        let mut state = State {
            bind_ip,
            registry: poll.registry().try_clone().context("lite host: registry")?,
            commands: rx,
            conns: HashMap::new(),
            next: 1,
            timers: BinaryHeap::new(),
            touched: HashSet::new(),
            unread: HashSet::new(),
            stats: stats.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("lite-observers".into())
            .spawn(move || state.run(poll))
            .context("lite host: thread")?;
        Ok(LiteHost {
            shared: Arc::new(Shared {
                commands: Mutex::new(tx),
                waker,
                thread: Mutex::new(Some(thread)),
                stats,
            }),
        })
    }

    pub fn stats(&self) -> &LiteStats {
        &self.shared.stats
    }

    fn send(&self, cmd: Command) -> Result<()> {
        self.shared
            .commands
            .lock()
            .map_err(|_| anyhow!("lite host: command queue poisoned"))?
            .send(cmd)
            .map_err(|_| anyhow!("lite host: the thread has stopped"))?;
        self.shared
            .waker
            .wake()
            .context("lite host: waking the thread")
    }

    async fn ask<T>(&self, cmd: impl FnOnce(oneshot::Sender<Result<T>>) -> Command) -> Result<T> {
        let (reply, rx) = oneshot::channel();
        self.send(cmd(reply))?;
        rx.await
            .map_err(|_| anyhow!("lite host: the thread stopped before replying"))?
    }

    /// A new connection offering to receive one audio and one video track (as a
    /// browser observer does); the answer goes to [`apply_answer`](Self::apply_answer).
    pub async fn offer(&self, tap: Arc<ReceiverTap>, marks: Arc<JoinMarks>) -> Result<Local> {
        self.ask(|reply| Command::Offer { tap, marks, reply }).await
    }

    /// A new connection answering `offer` (a server that offers, like Janus).
    pub async fn answer(
        &self,
        tap: Arc<ReceiverTap>,
        marks: Arc<JoinMarks>,
        offer: String,
    ) -> Result<Local> {
        self.ask(|reply| Command::Answer {
            tap,
            marks,
            offer,
            reply,
        })
        .await
    }

    pub async fn apply_answer(&self, id: LiteId, sdp: String) -> Result<()> {
        self.ask(|reply| Command::ApplyAnswer { id, sdp, reply })
            .await
    }

    /// Answers a later offer on an existing connection.
    pub async fn renegotiate(&self, id: LiteId, offer: String) -> Result<String> {
        self.ask(|reply| Command::Renegotiate { id, offer, reply })
            .await
    }

    /// A remote candidate (kept until the remote description is there).
    pub fn add_candidate(&self, id: LiteId, candidate: RTCIceCandidateInit) -> Result<()> {
        self.send(Command::Candidate { id, candidate })
    }

    /// Closes the connection and its socket.
    pub fn close(&self, id: LiteId) {
        let _ = self.send(Command::Close { id });
    }
}

struct Conn {
    pc: RTCPeerConnection,
    socket: mio::net::UdpSocket,
    local: SocketAddr,
    tap: Arc<ReceiverTap>,
    marks: Arc<JoinMarks>,
    /// Track id → (stream id, kind) of what it receives.
    tracks: HashMap<String, (String, MediaKind)>,
    /// Remote candidates that came before the remote description.
    pending: Vec<RTCIceCandidateInit>,
    /// The deadline the heap holds for it (entries with another are stale).
    deadline: Option<Instant>,
    connected: bool,
}

struct State {
    bind_ip: IpAddr,
    registry: mio::Registry,
    commands: mpsc::Receiver<Command>,
    conns: HashMap<LiteId, Conn>,
    next: usize,
    timers: BinaryHeap<Reverse<(Instant, LiteId)>>,
    /// Connections to drain before the next wait.
    touched: HashSet<LiteId>,
    /// Sockets a wake-up did not drain (mio is edge-triggered).
    unread: HashSet<LiteId>,
    stats: Arc<LiteStats>,
}

impl State {
    fn run(&mut self, mut poll: Poll) {
        let mut events = Events::with_capacity(1024);
        let mut buf = vec![0u8; RECV_BUF];
        loop {
            let now = Instant::now();
            let timeout = if self.unread.is_empty() {
                self.timers
                    .peek()
                    .map(|Reverse((at, _))| at.saturating_duration_since(now))
            } else {
                Some(Duration::ZERO)
            };
            if let Err(e) = poll.poll(&mut events, timeout) {
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                tracing::error!("lite host: epoll failed: {e}");
                return;
            }
            for ev in events.iter() {
                if ev.token() != WAKER {
                    self.unread.insert(LiteId(ev.token().0));
                }
            }
            let now = Instant::now();
            loop {
                match self.commands.try_recv() {
                    Ok(Command::Shutdown) | Err(mpsc::TryRecvError::Disconnected) => {
                        self.close_all();
                        return;
                    }
                    Ok(cmd) => self.command(cmd, now),
                    Err(mpsc::TryRecvError::Empty) => break,
                }
            }
            self.fire_timers(now);
            self.read(&mut buf, now);
            self.service(now);
        }
    }

    fn command(&mut self, cmd: Command, now: Instant) {
        match cmd {
            Command::Offer { tap, marks, reply } => {
                let _ = reply.send(self.create(tap, marks, None, now));
            }
            Command::Answer {
                tap,
                marks,
                offer,
                reply,
            } => {
                let _ = reply.send(self.create(tap, marks, Some(offer), now));
            }
            Command::ApplyAnswer { id, sdp, reply } => {
                let r = self.with_conn(id, |c| {
                    c.pc.set_remote_description(now, RTCSessionDescription::answer(sdp)?)?;
                    c.add_pending();
                    Ok(())
                });
                let _ = reply.send(r);
            }
            Command::Renegotiate { id, offer, reply } => {
                let r = self.with_conn(id, |c| {
                    c.pc.set_remote_description(now, RTCSessionDescription::offer(offer)?)?;
                    c.add_pending();
                    let answer = c.pc.create_answer(None)?;
                    c.pc.set_local_description(now, answer)?;
                    Ok(c.pc
                        .local_description()
                        .ok_or_else(|| anyhow!("no local description after answering"))?
                        .sdp)
                });
                let _ = reply.send(r);
            }
            Command::Candidate { id, candidate } => {
                let _ = self.with_conn(id, |c| {
                    if c.pc.remote_description().is_some() {
                        if let Err(e) = c.pc.add_remote_candidate(candidate) {
                            tracing::debug!("lite observer: remote candidate refused: {e}");
                        }
                    } else {
                        c.pending.push(candidate);
                    }
                    Ok(())
                });
            }
            Command::Close { id } => self.remove(id),
            Command::Shutdown => {}
        }
    }

    fn with_conn<T>(&mut self, id: LiteId, f: impl FnOnce(&mut Conn) -> Result<T>) -> Result<T> {
        let c = self
            .conns
            .get_mut(&id)
            .ok_or_else(|| anyhow!("lite observer {id:?} is gone"))?;
        let r = f(c);
        self.touched.insert(id);
        r
    }

    /// A connection with its own socket, offering (no `offer`) or answering.
    fn create(
        &mut self,
        tap: Arc<ReceiverTap>,
        marks: Arc<JoinMarks>,
        offer: Option<String>,
        now: Instant,
    ) -> Result<Local> {
        let id = LiteId(self.next);
        self.next += 1;
        let std_socket = std::net::UdpSocket::bind(SocketAddr::new(self.bind_ip, 0))
            .with_context(|| format!("binding a UDP socket on {}", self.bind_ip))?;
        std_socket.set_nonblocking(true)?;
        let local = std_socket.local_addr()?;
        let mut socket = mio::net::UdpSocket::from_std(std_socket);
        let mut pc = new_connection(now)?;
        let answering = offer.is_some();
        match offer {
            None => {
                for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
                    pc.add_transceiver_from_kind(
                        kind,
                        Some(RTCRtpTransceiverInit {
                            direction: RTCRtpTransceiverDirection::Recvonly,
                            streams: vec![],
                            send_encodings: vec![],
                        }),
                    )?;
                }
                let offer = pc.create_offer(None)?;
                pc.set_local_description(now, offer)?;
            }
            Some(offer) => {
                pc.set_remote_description(now, RTCSessionDescription::offer(offer)?)?;
            }
        }
        let host = CandidateHostConfig {
            base_config: CandidateConfig {
                network: "udp".to_owned(),
                address: local.ip().to_string(),
                port: local.port(),
                component: 1,
                ..Default::default()
            },
            ..Default::default()
        }
        .new_candidate_host()?;
        let candidate = RTCIceCandidate::from(&host).to_json()?;
        pc.add_local_candidate(candidate.clone())?;
        if answering {
            let answer = pc.create_answer(None)?;
            pc.set_local_description(now, answer)?;
        }
        let sdp = pc
            .local_description()
            .ok_or_else(|| anyhow!("no local description"))?
            .sdp;
        self.registry
            .register(&mut socket, Token(id.0), Interest::READABLE)?;
        self.conns.insert(
            id,
            Conn {
                pc,
                socket,
                local,
                tap,
                marks,
                tracks: HashMap::new(),
                pending: Vec::new(),
                deadline: None,
                connected: false,
            },
        );
        self.stats.connections.fetch_add(1, Ordering::Relaxed);
        self.touched.insert(id);
        Ok(Local { id, sdp, candidate })
    }

    fn fire_timers(&mut self, now: Instant) {
        while let Some(Reverse((at, id))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(c) = self.conns.get_mut(&id) else {
                continue;
            };
            if c.deadline != Some(at) {
                continue; // stale: rescheduled since
            }
            c.deadline = None;
            let _ = c.pc.handle_timeout(now);
            self.touched.insert(id);
        }
    }

    fn read(&mut self, buf: &mut [u8], now: Instant) {
        let ids: Vec<LiteId> = self.unread.iter().copied().collect();
        for id in ids {
            let Some(c) = self.conns.get_mut(&id) else {
                self.unread.remove(&id);
                continue;
            };
            let mut drained = false;
            for _ in 0..READS_PER_WAKE {
                match c.socket.recv_from(buf) {
                    Ok((n, from)) => {
                        self.stats.datagrams_in.fetch_add(1, Ordering::Relaxed);
                        let msg = TaggedBytesMut {
                            now,
                            transport: TransportContext {
                                local_addr: c.local,
                                peer_addr: from,
                                ecn: None,
                                transport_protocol: TransportProtocol::UDP,
                            },
                            message: BytesMut::from(&buf[..n]),
                        };
                        if c.pc.handle_read(msg).is_err() {
                            self.stats.core_errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        drained = true;
                        break;
                    }
                    // An ICMP error queued on the socket: read on.
                    Err(_) => {}
                }
            }
            if drained {
                self.unread.remove(&id);
            }
            self.touched.insert(id);
        }
    }

    /// Drains the touched connections: events, media into the taps, datagrams out;
    /// then their deadlines.
    fn service(&mut self, now: Instant) {
        let touched: Vec<LiteId> = self.touched.drain().collect();
        let mut closed = Vec::new();
        for id in touched {
            let Some(c) = self.conns.get_mut(&id) else {
                continue;
            };
            if c.drain(now, &self.stats) {
                closed.push(id);
            }
            let deadline = c.pc.poll_timeout();
            if deadline != c.deadline {
                c.deadline = deadline;
                if let Some(at) = deadline {
                    self.timers.push(Reverse((at, id)));
                }
            }
        }
        for id in closed {
            self.remove(id);
        }
        // Stale entries pile up when deadlines move; rebuild before they dominate.
        if self.timers.len() > 4 * self.conns.len() + 64 {
            self.timers = self
                .conns
                .iter()
                .filter_map(|(id, c)| c.deadline.map(|at| Reverse((at, *id))))
                .collect();
        }
        self.stats
            .timer_entries
            .store(self.timers.len() as u64, Ordering::Relaxed);
    }

    fn remove(&mut self, id: LiteId) {
        if let Some(mut c) = self.conns.remove(&id) {
            let _ = c.pc.close();
            // What closing queued (DTLS close_notify) leaves; the socket closes after.
            c.flush(&self.stats);
            let _ = self.registry.deregister(&mut c.socket);
            self.stats.connections.fetch_sub(1, Ordering::Relaxed);
            if c.connected {
                self.stats.connected.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.unread.remove(&id);
        self.touched.remove(&id);
    }

    fn close_all(&mut self) {
        let ids: Vec<LiteId> = self.conns.keys().copied().collect();
        for id in ids {
            self.remove(id);
        }
    }
}

impl Conn {
    fn add_pending(&mut self) {
        for c in self.pending.drain(..) {
            if let Err(e) = self.pc.add_remote_candidate(c) {
                tracing::debug!("lite observer: remote candidate refused: {e}");
            }
        }
    }

    /// Everything the core has for us; true if the connection failed or closed.
    fn drain(&mut self, now: Instant, stats: &LiteStats) -> bool {
        let mut closed = false;
        loop {
            while let Some(ev) = self.pc.poll_event() {
                match ev {
                    RTCPeerConnectionEvent::OnConnectionStateChangeEvent(s) => {
                        let connected = s == RTCPeerConnectionState::Connected;
                        if connected != self.connected {
                            self.connected = connected;
                            if connected {
                                self.marks.mark("connected");
                                stats.connected.fetch_add(1, Ordering::Relaxed);
                            } else {
                                stats.connected.fetch_sub(1, Ordering::Relaxed);
                            }
                        }
                        if matches!(
                            s,
                            RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed
                        ) {
                            closed = true;
                        }
                    }
                    RTCPeerConnectionEvent::OnIceConnectionStateChangeEvent(
                        rtc::peer_connection::state::RTCIceConnectionState::Connected,
                    ) => self.marks.mark("ice_connected"),
                    RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                        let kind = self
                            .pc
                            .rtp_receiver(init.receiver_id)
                            .map(|r| r.track().kind());
                        let kind = match kind {
                            Some(RtpCodecKind::Audio) => MediaKind::Audio,
                            Some(RtpCodecKind::Video) => MediaKind::Video,
                            _ => continue,
                        };
                        let stream = init.stream_ids.first().cloned().unwrap_or_default();
                        self.tracks.insert(init.track_id, (stream, kind));
                    }
                    _ => {}
                }
            }
            let mut read = false;
            while let Some(TaggedRTCMessage { message, .. }) = self.pc.poll_read() {
                read = true;
                if let RTCMessage::RtpPacket(track, packet) = message {
                    stats.rtp_in.fetch_add(1, Ordering::Relaxed);
                    if let Some((stream, kind)) = self.tracks.get(&track) {
                        self.tap.record(stream, *kind, &packet, now);
                    }
                }
            }
            // A track opens on its first packet: read again once its event is in.
            if !read {
                break;
            }
        }
        self.flush(stats);
        closed
    }

    fn flush(&mut self, stats: &LiteStats) {
        while let Some(out) = self.pc.poll_write() {
            if out.transport.transport_protocol != TransportProtocol::UDP {
                continue;
            }
            match self.socket.send_to(&out.message, out.transport.peer_addr) {
                Ok(_) => {
                    stats.datagrams_out.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => {
                    stats.send_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

fn new_connection(now: Instant) -> Result<RTCPeerConnection> {
    // As the full peers are built: joins measure the same way.
    let (media, registry, setting) = openhearing_peer::media_peer::client_config()
        .map_err(|e| anyhow!("client configuration: {e}"))?;
    Ok(RTCPeerConnectionBuilder::new()
        .with_setting_engine(setting)
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .build(now)?)
}

/// An observer of an OpenHearing hearing whose media runs on a [`LiteHost`].
pub struct LiteObserver {
    host: LiteHost,
    id: LiteId,
    welcome: Welcome,
    sender: SignalingSender,
    ws_opened: Instant,
    marks: Arc<JoinMarks>,
    failures: Arc<Mutex<Vec<String>>>,
    task: TaskHandle<()>,
}

impl LiteObserver {
    /// Connects to `ws_url`, joins with `token`, offers to receive and keeps
    /// answering the server's messages on a task until [`close`](Self::close).
    pub async fn join(
        host: &LiteHost,
        ws_url: &str,
        token: &str,
        tap: Arc<ReceiverTap>,
    ) -> Result<LiteObserver> {
        let mut client = SignalingClient::connect(ws_url)
            .await
            .map_err(|e| anyhow!("connect: {e}"))?;
        let ws_opened = Instant::now();
        let welcome = client
            .join_from(token, None, JOIN_TIMEOUT)
            .await
            .map_err(|e| anyhow!("join: {e}"))?;
        let marks = Arc::new(JoinMarks::default());
        marks.mark("welcome");
        let local = host.offer(tap, marks.clone()).await?;
        client
            .send(&ClientMessage::Offer { sdp: local.sdp })
            .map_err(|e| anyhow!("sending the offer: {e}"))?;
        client
            .send(&ClientMessage::Candidate {
                candidate: to_wire(local.candidate),
            })
            .map_err(|e| anyhow!("sending our candidate: {e}"))?;
        let failures = Arc::new(Mutex::new(Vec::new()));
        let sender = client.sender();
        let task = tokio::spawn(signaling(
            client,
            host.clone(),
            local.id,
            marks.clone(),
            failures.clone(),
        ));
        Ok(LiteObserver {
            host: host.clone(),
            id: local.id,
            welcome,
            sender,
            ws_opened,
            marks,
            failures,
            task,
        })
    }

    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    pub fn ws_opened(&self) -> Instant {
        self.ws_opened
    }

    /// When each step of its join happened.
    pub fn marks(&self) -> Vec<(&'static str, Instant)> {
        self.marks.get()
    }

    /// What went wrong in signaling so far.
    pub fn failures(&self) -> Vec<String> {
        self.failures.lock().map(|f| f.clone()).unwrap_or_default()
    }

    /// Leaves the hearing and closes the connection.
    pub fn close(&self) {
        let _ = self.sender.send(&ClientMessage::Leave);
        self.task.abort();
        self.host.close(self.id);
    }
}

impl Drop for LiteObserver {
    fn drop(&mut self) {
        self.task.abort();
        self.host.close(self.id);
    }
}

/// The server's messages, in order: an offer is answered before the next is read.
async fn signaling(
    mut client: SignalingClient,
    host: LiteHost,
    id: LiteId,
    marks: Arc<JoinMarks>,
    failures: Arc<Mutex<Vec<String>>>,
) {
    let fail = |what: String| {
        if let Ok(mut f) = failures.lock() {
            f.push(what);
        }
    };
    while let Some(msg) = client.recv().await {
        match msg {
            ServerMessage::Answer { sdp } => {
                if let Err(e) = host.apply_answer(id, sdp).await {
                    fail(format!("applying the server's answer: {e:#}"));
                }
                marks.mark("answer");
            }
            ServerMessage::Candidate { candidate } => {
                marks.mark("remote_candidate");
                if let Err(e) = host.add_candidate(id, from_wire(candidate)) {
                    fail(format!("remote candidate: {e:#}"));
                }
            }
            ServerMessage::Offer { sdp } => match host.renegotiate(id, sdp).await {
                Ok(answer) => {
                    if let Err(e) = client.send(&ClientMessage::Answer { sdp: answer }) {
                        fail(format!("sending an answer: {e}"));
                    }
                    marks.mark("server_offer");
                }
                Err(e) => fail(format!("answering the server's offer: {e:#}")),
            },
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Collector;

    fn open_fds() -> usize {
        std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
    }

    #[test]
    fn a_wildcard_address_is_refused() {
        let e = LiteHost::spawn("0.0.0.0".parse().expect("ip"))
            .err()
            .expect("refused");
        assert!(e.to_string().contains("concrete address"), "{e}");
    }

    #[tokio::test]
    async fn connections_come_and_go_on_one_thread_and_leave_nothing() {
        let host = LiteHost::spawn("127.0.0.1".parse().expect("ip")).expect("host");
        let collector = Arc::new(Collector::default());
        let before = open_fds();
        let threads = || std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count());
        let threads_before = threads();
        let mut ids = Vec::new();
        for _ in 0..20 {
            let local = host
                .offer(ReceiverTap::new(collector.clone()), Arc::default())
                .await
                .expect("offer");
            assert!(local.sdp.contains("a=recvonly"), "{}", local.sdp);
            assert!(local.candidate.candidate.contains("127.0.0.1"));
            ids.push(local.id);
        }
        assert_eq!(host.stats().connections.load(Ordering::Relaxed), 20);
        // One socket each, and no thread per connection.
        assert!(open_fds() >= before + 20);
        assert!(threads() < threads_before + 10, "no thread per connection");
        for id in &ids {
            host.close(*id);
        }
        // A closed connection is gone for good: its answer finds nothing.
        let gone = host.apply_answer(ids[0], String::new()).await;
        assert!(gone.is_err_and(|e| e.to_string().contains("gone")));
        assert_eq!(host.stats().connections.load(Ordering::Relaxed), 0);
        assert!(open_fds() < before + 20, "sockets closed");
    }
}
