//! The signaling WebSocket: `GET /ws/hearings/{hearing_id}`.
//!
//! One task per connection (the *session*) owns the participant's PeerConnection and
//! runs every negotiation step on it in order, so offers, answers and candidates never
//! interleave. It translates between three parties: the client (JSON frames), the
//! hearing actor ([`HearingHandle`] / [`SessionCommand`]) and the SFU peer
//! ([`PeerEvent`]).
//!
//! Negotiation (see `signaling/PROTOCOL.md`): the client offers once, the server
//! answers; afterwards only the server offers (tracks added/removed) and at most one
//! server offer is outstanding. Changes that arrive meanwhile are folded into the
//! next offer.
//!
//! Bad input never ends other participants' sessions: malformed or unknown messages,
//! garbage SDP and bogus candidates get a non-fatal `error`; floods and
//! authentication failures close only this socket. Joins are rate limited per source
//! address and per participant ([`JoinLimiter`]) before anything is spent on them.
//!
//! The session carries its [`Device`] (peer address, `User-Agent`) into the hearing,
//! which audits it. A second device on a link in use may have to wait for the court
//! (`device_waiting`): the session then holds the socket with no PeerConnection
//! until the hearing seats it (a `welcome` arrives) or closes it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod join;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRef, Path, State};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use openhearing_signaling::{
    decode_client, ClientMessage, Connection, ErrorCode, IceCandidate, ServerMessage,
};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

pub use self::join::SeenDevice;
use self::join::{await_join, fill_welcome, wait_for_seat, Authenticated, JoinRefused};
use super::join_limit::{JoinLimiter, TokenBucket};
use crate::auth::JoinTokens;
use crate::hearing::{
    Device, HearingHandle, Hearings, JoinRequest, Refusal, SessionCommand, SessionLink,
};
use crate::sfu::{ActiveLeg, Candidate, LinkState, Peer, PeerEvent, PendingLeg, Sfu, SfuError};
use crate::store::Store;

/// Limits applied to each signaling connection (`[signaling]` in the config).
#[derive(Debug, Clone)]
pub struct SignalingLimits {
    pub max_message_bytes: usize,
    pub rate_per_second: u32,
    pub burst: u32,
    pub join_timeout: Duration,
    /// How long the client may take to answer a server offer.
    pub answer_timeout: Duration,
}

/// What the signaling endpoint needs from the application.
#[derive(Clone)]
pub struct SignalingState {
    pub store: Arc<dyn Store>,
    pub tokens: Arc<JoinTokens>,
    pub hearings: Arc<Hearings>,
    pub sfu: Arc<Sfu>,
    pub limits: SignalingLimits,
    /// Join rate limits per source address and per participant.
    pub joins: Arc<JoinLimiter>,
    /// Turns `true` when the server shuts down.
    pub shutdown: watch::Receiver<bool>,
}

/// Queue of frames waiting to be written to one client; a client that lets it fill
/// up is too slow to follow the hearing and is disconnected.
const OUTBOX: usize = 1024;
/// Candidates accepted before the client's offer was applied.
const EARLY_CANDIDATES: usize = 64;

pub async fn handler<S>(
    ws: WebSocketUpgrade,
    Path(hearing): Path<String>,
    SeenDevice(device): SeenDevice,
    State(state): State<S>,
) -> Response
where
    SignalingState: FromRef<S>,
{
    let st = SignalingState::from_ref(&state);
    // Frames up to 4x the protocol limit are read so that an oversize message gets a
    // clear `message_too_large` instead of a dropped connection; beyond that the
    // WebSocket layer closes with 1009.
    let cap = st.limits.max_message_bytes.saturating_mul(4).max(64 * 1024);
    ws.max_message_size(cap)
        .max_frame_size(cap)
        .on_upgrade(move |socket| run_session(socket, hearing, device, st))
}

/// A trickled candidate from the wire, as the SFU takes it.
fn to_sfu(c: IceCandidate) -> Candidate {
    Candidate {
        candidate: c.candidate,
        sdp_mid: c.sdp_mid,
        sdp_mline_index: c.sdp_mline_index,
        username_fragment: c.username_fragment,
    }
}

/// A local candidate of the SFU, as the wire carries it.
fn to_wire(c: Candidate) -> IceCandidate {
    IceCandidate {
        candidate: c.candidate,
        sdp_mid: c.sdp_mid,
        sdp_mline_index: c.sdp_mline_index,
        username_fragment: c.username_fragment,
    }
}

/// Whether a WebSocket read failed because the frame or message exceeded the
/// configured maximum (tungstenite's capacity error; axum wraps it opaquely).
fn is_oversize(e: &axum::Error) -> bool {
    let text = e.to_string();
    text.contains("Space limit exceeded") || text.contains("too long") || text.contains("too big")
}

enum Out {
    Msg(ServerMessage),
    Close(u16, String),
}

#[derive(Clone)]
struct Outbox(mpsc::Sender<Out>, Arc<std::sync::atomic::AtomicBool>);

impl Outbox {
    /// Queues a message; false when the client is not keeping up (or gone).
    fn send(&self, m: ServerMessage) -> bool {
        self.0.try_send(Out::Msg(m)).is_ok()
    }
    fn error(&self, code: ErrorCode, message: impl Into<String>) -> bool {
        self.send(ServerMessage::error(code, message))
    }
    /// Closes the socket with 1009 ("message too big"), as PROTOCOL.md documents for
    /// frames beyond what the WebSocket layer reads (4x `max_message_bytes`).
    fn close_too_big(&self) {
        self.1.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = self
            .0
            .try_send(Out::Close(1009, "message_too_large".to_owned()));
    }

    /// Reports a fatal error and closes the socket.
    fn fatal(&self, code: ErrorCode, message: impl Into<String>) {
        self.fatal_retry(code, message, None);
    }

    /// [`Outbox::fatal`] with a hint when to try again.
    fn fatal_retry(&self, code: ErrorCode, message: impl Into<String>, retry: Option<Duration>) {
        let _ = self.0.try_send(Out::Msg(ServerMessage::Error {
            code,
            message: message.into(),
            fatal: true,
            // Rounded up: a hint of 0 ms would invite an immediate retry.
            retry_after_ms: retry.map(|d| {
                u64::try_from(d.as_micros().div_ceil(1000))
                    .unwrap_or(u64::MAX)
                    .max(1)
            }),
        }));
        let _ = self
            .0
            .try_send(Out::Close(code.close_code(), code.to_string()));
    }
}

async fn run_session(socket: WebSocket, hearing: String, device: Device, st: SignalingState) {
    let (mut sink, mut stream) = socket.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Out>(OUTBOX);
    let out = Outbox(out_tx, Arc::new(std::sync::atomic::AtomicBool::new(false)));
    let linger = out.1.clone();
    let writer = tokio::spawn(async move {
        while let Some(o) = out_rx.recv().await {
            match o {
                Out::Msg(m) => {
                    let text = match serde_json::to_string(&m) {
                        Ok(t) => t,
                        Err(e) => {
                            tracing::error!("cannot encode {}: {e}", m.kind());
                            continue;
                        }
                    };
                    if sink.send(Message::Text(text.into())).await.is_err() {
                        break;
                    }
                }
                Out::Close(code, reason) => {
                    let _ = sink
                        .send(Message::Close(Some(CloseFrame {
                            code,
                            reason: reason.into(),
                        })))
                        .await;
                    break;
                }
            }
        }
        let _ = sink.close().await;
    });

    let joined = match tokio::time::timeout(
        st.limits.join_timeout,
        await_join(&mut stream, &hearing, &st, &out, device),
    )
    .await
    {
        Ok(Ok(j)) => Some(j),
        Ok(Err(JoinRefused(r, retry))) => {
            out.fatal_retry(r.code, r.message, retry);
            None
        }
        Err(_) => {
            out.fatal(
                ErrorCode::JoinTimeout,
                format!(
                    "no join message within {} s",
                    st.limits.join_timeout.as_secs()
                ),
            );
            None
        }
    };
    if let Some(auth) = joined {
        let session = Session::start(auth, &mut stream, &st, out.clone()).await;
        match session {
            Ok(mut s) => {
                let reason = s.run(&mut stream, &st).await;
                s.finish(reason).await;
            }
            Err(Some(r)) => out.fatal(r.code, r.message),
            Err(None) => {} // told already (kicked while waiting, or gone)
        }
    }
    drop(out);
    // Let the writer flush the last error and close frame while we keep reading
    // (and discarding) what the client still sends: dropping a socket with unread
    // input makes the kernel answer with a reset, and the client would lose the
    // error it is being told. Bounded, so a client that never closes cannot hold us.
    let drain = async {
        while let Some(Ok(m)) = stream.next().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
        if linger.load(std::sync::atomic::Ordering::Relaxed) {
            // The stream failed on an oversize frame and cannot be read any further:
            // give the client a moment to read our close frame before the socket
            // goes and its unread input turns into a reset that would discard it.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        let _ = tokio::join!(writer, drain);
    })
    .await;
}

fn too_large(len: usize, max: usize) -> String {
    format!("message of {len} bytes exceeds the limit of {max} bytes")
}

/// Why a session ended, as told to the other participants.
#[derive(Debug, Clone, Copy)]
enum EndReason {
    Left,
    ConnectionLost,
    /// The hearing closed the session (replaced, denied, removed, closed, revoked).
    Kicked(ErrorCode),
    Shutdown,
}

impl EndReason {
    fn as_str(self) -> &'static str {
        match self {
            EndReason::Left => "left",
            EndReason::ConnectionLost | EndReason::Shutdown => "connection_lost",
            EndReason::Kicked(ErrorCode::Replaced) => "replaced",
            EndReason::Kicked(ErrorCode::AdmissionDenied) => "denied",
            EndReason::Kicked(ErrorCode::Removed) => "removed",
            EndReason::Kicked(ErrorCode::HearingClosed) => "hearing_closed",
            EndReason::Kicked(ErrorCode::LinkRevoked) => "link_revoked",
            EndReason::Kicked(_) => "connection_lost",
        }
    }
}

struct Session {
    me: Uuid,
    session: u64,
    out: Outbox,
    hearing: HearingHandle,
    peer: Peer,
    peer_events: mpsc::UnboundedReceiver<PeerEvent>,
    commands: mpsc::UnboundedReceiver<SessionCommand>,
    may_publish: bool,
    /// The client's first offer has been answered.
    initial_done: bool,
    /// Our offer awaits the client's answer since this instant.
    offer_sent_at: Option<Instant>,
    renegotiate: bool,
    /// Legs added since the last offer.
    pending: Vec<PendingLeg>,
    /// Legs carried by the outstanding offer.
    inflight: Vec<PendingLeg>,
    legs: HashMap<String, ActiveLeg>,
    early_candidates: Vec<Candidate>,
    connected_once: bool,
    bucket: TokenBucket,
    /// This session in `openhearing_sessions{role}` while it lives.
    _counted: crate::metrics::SessionCount,
}

impl Session {
    /// Joins the hearing, waits for the court if this is a second device, then sets
    /// up the PeerConnection and sends the `welcome`. `Err(None)`: the client was
    /// already told why not (or is gone).
    async fn start(
        auth: Authenticated,
        stream: &mut futures_util::stream::SplitStream<WebSocket>,
        st: &SignalingState,
        out: Outbox,
    ) -> Result<Session, Option<Refusal>> {
        let session = st.hearings.next_session();
        let (cmd_tx, mut commands) = mpsc::unbounded_channel();
        let joined = st
            .hearings
            .join(
                auth.hearing_id,
                JoinRequest {
                    participant: auth.participant,
                    link_version: auth.link_version,
                    link: SessionLink {
                        session,
                        tx: cmd_tx,
                    },
                    device: auth.device,
                },
            )
            .await
            .map_err(|e| Some(e.refusal()))?;
        let hearing = joined.handle;
        let mut early = Vec::new();
        let mut welcome = joined.welcome;
        if matches!(welcome, ServerMessage::DeviceWaiting { .. }) {
            out.send(welcome);
            match wait_for_seat(stream, &mut commands, &mut early, st, &out).await {
                Ok(w) => welcome = w,
                Err(reason) => {
                    hearing.leave(auth.participant, session, reason.as_str());
                    return Err(None);
                }
            }
        }
        let (ev_tx, peer_events) = mpsc::unbounded_channel();
        let peer = match st.sfu.create_peer(auth.participant, ev_tx).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(participant = %auth.participant, "cannot create peer: {e}");
                hearing.leave(
                    auth.participant,
                    session,
                    EndReason::ConnectionLost.as_str(),
                );
                return Err(Some(Refusal::new(
                    ErrorCode::Internal,
                    format!("the server cannot accept media now: {e}"),
                )));
            }
        };
        let may_publish = fill_welcome(&mut welcome, st);
        let mut role = String::from("unknown");
        if let ServerMessage::Welcome(w) = &welcome {
            role = w.you.role.to_string();
            tracing::info!(participant = %w.you.id, role = %w.you.role, hearing = %hearing.id, "joined");
        }
        out.send(welcome);
        let mut s = Session {
            may_publish,
            me: auth.participant,
            session,
            out,
            hearing,
            peer,
            peer_events,
            commands,
            initial_done: false,
            offer_sent_at: None,
            renegotiate: false,
            pending: Vec::new(),
            inflight: Vec::new(),
            legs: HashMap::new(),
            early_candidates: Vec::new(),
            connected_once: false,
            bucket: TokenBucket::new(f64::from(st.limits.rate_per_second), st.limits.burst),
            _counted: crate::metrics::SessionCount::new(role),
        };
        for cmd in early {
            if s.on_command(cmd).await.is_some() {
                s.peer.close().await;
                return Err(None);
            }
        }
        Ok(s)
    }

    async fn run(
        &mut self,
        stream: &mut futures_util::stream::SplitStream<WebSocket>,
        st: &SignalingState,
    ) -> EndReason {
        let mut shutdown = st.shutdown.clone();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                frame = stream.next() => {
                    let text = match frame {
                        Some(Ok(Message::Text(t))) => t,
                        Some(Ok(Message::Binary(_))) => {
                            if !self.charge() { return EndReason::ConnectionLost; }
                            self.out.error(ErrorCode::BinaryNotSupported, "binary frames are not part of the protocol; send JSON text");
                            continue;
                        }
                        Some(Ok(Message::Close(_))) | None => return EndReason::ConnectionLost,
                        Some(Err(e)) => {
                            tracing::debug!(participant = %self.me, "websocket error: {e}");
                            if is_oversize(&e) {
                                self.out.close_too_big();
                            }
                            return EndReason::ConnectionLost;
                        }
                        Some(Ok(_)) => continue,
                    };
                    if !self.charge() { return EndReason::ConnectionLost; }
                    if text.len() > st.limits.max_message_bytes {
                        self.out.error(ErrorCode::MessageTooLarge, too_large(text.len(), st.limits.max_message_bytes));
                        continue;
                    }
                    match decode_client(&text) {
                        Ok(msg) => {
                            if let Some(end) = self.on_client(msg).await { return end; }
                        }
                        Err(e) => { self.out.error(e.code(), e.to_string()); }
                    }
                }
                Some(cmd) = self.commands.recv() => {
                    if let Some(end) = self.on_command(cmd).await { return end; }
                }
                Some(ev) = self.peer_events.recv() => {
                    if let Some(end) = self.on_peer(ev) { return end; }
                }
                _ = tick.tick() => {
                    if let Some(t) = self.offer_sent_at {
                        if t.elapsed() > st.limits.answer_timeout {
                            self.out.fatal(ErrorCode::NegotiationTimeout, format!(
                                "no answer to the server's offer within {} s", st.limits.answer_timeout.as_secs()));
                            return EndReason::ConnectionLost;
                        }
                    }
                }
                _ = shutdown.changed() => {
                    self.out.fatal(ErrorCode::ServerShutdown, "the server is shutting down; rejoin in a moment");
                    return EndReason::Shutdown;
                }
            }
            if self.out.0.is_closed() {
                return EndReason::ConnectionLost;
            }
        }
    }

    /// Rate limit: false (and the socket is being closed) when the client floods.
    fn charge(&mut self) -> bool {
        if self.bucket.take() {
            return true;
        }
        self.out.fatal(
            ErrorCode::RateLimited,
            "too many messages; the connection is closed",
        );
        false
    }

    async fn on_client(&mut self, msg: ClientMessage) -> Option<EndReason> {
        match msg {
            ClientMessage::Join { .. } => {
                self.out.error(
                    ErrorCode::AlreadyJoined,
                    "this connection has already joined",
                );
            }
            ClientMessage::Offer { sdp } => {
                if self.offer_sent_at.is_some() {
                    self.out.error(
                        ErrorCode::NegotiationConflict,
                        "the server's offer is waiting for your answer; answer it, then offer again",
                    );
                    return None;
                }
                match self.peer.answer_offer(sdp, self.may_publish).await {
                    Ok(answer) => {
                        self.out.send(ServerMessage::Answer { sdp: answer });
                        self.initial_done = true;
                        for c in std::mem::take(&mut self.early_candidates) {
                            if let Err(e) = self.peer.add_candidate(c).await {
                                self.out.error(ErrorCode::InvalidCandidate, e.to_string());
                            }
                        }
                        if self.renegotiate || !self.pending.is_empty() {
                            self.offer().await;
                        }
                    }
                    Err(SfuError::PublishNotAllowed) => {
                        self.hearing.publish_refused(self.me, self.session);
                        self.out.error(
                            ErrorCode::PublishNotAllowed,
                            SfuError::PublishNotAllowed.to_string(),
                        );
                    }
                    Err(SfuError::InvalidSdp(e)) => {
                        self.out.error(
                            ErrorCode::InvalidSdp,
                            format!("the offer could not be applied: {e}"),
                        );
                    }
                    Err(e) => {
                        self.out.error(ErrorCode::Internal, e.to_string());
                    }
                }
            }
            ClientMessage::Answer { sdp } => {
                if self.offer_sent_at.is_none() {
                    self.out.error(
                        ErrorCode::NoOfferPending,
                        "there is no server offer to answer",
                    );
                    return None;
                }
                match self.peer.apply_answer(sdp).await {
                    Ok(()) => {
                        self.offer_sent_at = None;
                        for leg in std::mem::take(&mut self.inflight) {
                            self.activate(leg).await;
                        }
                        if self.renegotiate || !self.pending.is_empty() {
                            self.offer().await;
                        }
                    }
                    Err(e) => {
                        self.out.error(
                            ErrorCode::InvalidSdp,
                            format!("the answer could not be applied: {e}"),
                        );
                    }
                }
            }
            ClientMessage::Candidate { candidate } => {
                let candidate = to_sfu(candidate);
                if !self.initial_done {
                    if self.early_candidates.len() >= EARLY_CANDIDATES {
                        self.out.error(
                            ErrorCode::InvalidCandidate,
                            "too many candidates before the offer",
                        );
                    } else {
                        self.early_candidates.push(candidate);
                    }
                } else if let Err(e) = self.peer.add_candidate(candidate).await {
                    self.out.error(ErrorCode::InvalidCandidate, e.to_string());
                }
            }
            ClientMessage::MediaState { audio, video } => {
                self.hearing
                    .media_state(self.me, self.session, audio, video);
            }
            ClientMessage::MediaReport { remotes } => {
                self.hearing.media_report(self.me, self.session, remotes);
            }
            ClientMessage::Ping { id } => {
                self.out.send(ServerMessage::Pong { id });
            }
            ClientMessage::Leave => return Some(EndReason::Left),
            // Court actions: the hearing actor checks the permission table and
            // answers on this session's channel.
            action @ (ClientMessage::Admit { .. }
            | ClientMessage::AdmitAll
            | ClientMessage::AdmitDevice { .. }
            | ClientMessage::RefuseDevice { .. }
            | ClientMessage::Deny { .. }
            | ClientMessage::CallIn { .. }
            | ClientMessage::Dismiss { .. }
            | ClientMessage::Mute { .. }
            | ClientMessage::MuteAll
            | ClientMessage::RequestUnmute { .. }
            | ClientMessage::AcceptUnmute
            | ClientMessage::Remove { .. }
            | ClientMessage::Lock { .. }
            | ClientMessage::Spotlight { .. }
            | ClientMessage::SetState { .. }
            | ClientMessage::RequestConsultation { .. }
            | ClientMessage::AnswerConsultation { .. }
            | ClientMessage::EndConsultation { .. }
            | ClientMessage::StartDeliberation
            | ClientMessage::EndDeliberation) => {
                self.hearing.act(self.me, self.session, action);
            }
        }
        None
    }

    async fn on_command(&mut self, cmd: SessionCommand) -> Option<EndReason> {
        match cmd {
            SessionCommand::Send(m) => {
                if !self.out.send(m) {
                    return Some(EndReason::ConnectionLost);
                }
            }
            SessionCommand::Subscribe(track) => match self.peer.add_leg(track).await {
                Ok(leg) => {
                    self.pending.push(leg);
                    self.offer().await;
                }
                Err(e) => tracing::warn!(participant = %self.me, "cannot add leg: {e}"),
            },
            SessionCommand::Unsubscribe(track_id) => {
                let mut sender = self.legs.remove(&track_id).map(|l| l.sender().clone());
                for list in [&mut self.pending, &mut self.inflight] {
                    if let Some(i) = list.iter().position(|l| l.source.id == track_id) {
                        sender = Some(list.remove(i).sender().clone());
                    }
                }
                if let Some(s) = sender {
                    if let Err(e) = self.peer.remove_sender(&s).await {
                        tracing::warn!(participant = %self.me, "cannot remove leg: {e}");
                    }
                    self.renegotiate = true;
                    self.offer().await;
                }
            }
            SessionCommand::Kick { code, message } => {
                self.out.fatal(code, message);
                return Some(EndReason::Kicked(code));
            }
        }
        None
    }

    fn on_peer(&mut self, ev: PeerEvent) -> Option<EndReason> {
        match ev {
            PeerEvent::LocalCandidate(c) => {
                self.out.send(ServerMessage::Candidate {
                    candidate: to_wire(c),
                });
            }
            PeerEvent::State(s) => {
                tracing::debug!(participant = %self.me, "connection {s}");
                let reported = match s {
                    LinkState::Connected => Some(Connection::Connected),
                    LinkState::Disconnected => Some(Connection::Unstable),
                    LinkState::New | LinkState::Connecting => Some(Connection::Connecting),
                    _ => None,
                };
                if let Some(c) = reported {
                    self.hearing.connection(self.me, self.session, c);
                }
                match s {
                    LinkState::Connected if !self.connected_once => {
                        self.connected_once = true;
                        // Keyframes requested before the connection was up were lost.
                        for leg in self.legs.values() {
                            leg.source.request_keyframe();
                        }
                    }
                    LinkState::Failed | LinkState::Closed => {
                        return Some(EndReason::ConnectionLost);
                    }
                    _ => {}
                }
            }
            PeerEvent::TrackPublished(t) => {
                self.hearing.track_published(self.me, self.session, t);
            }
            PeerEvent::TrackEnded(id) => {
                self.hearing.track_ended(self.me, self.session, id);
            }
            PeerEvent::VideoPaused { track, paused } => {
                // A leg removed meanwhile: nothing to say about it.
                if let Some(leg) = self.legs.get(&track) {
                    self.out.send(ServerMessage::VideoPaused {
                        participant_id: leg.source.publisher,
                        paused,
                    });
                }
            }
        }
        None
    }

    /// Sends a server offer now if negotiation allows, else remembers to.
    async fn offer(&mut self) {
        if !self.initial_done || self.offer_sent_at.is_some() {
            self.renegotiate = true;
            return;
        }
        self.renegotiate = false;
        match self.peer.create_offer().await {
            Ok(sdp) => {
                self.inflight.append(&mut self.pending);
                self.offer_sent_at = Some(Instant::now());
                self.out.send(ServerMessage::Offer { sdp });
            }
            Err(e) => {
                tracing::error!(participant = %self.me, "cannot create offer: {e}");
                self.out
                    .error(ErrorCode::Internal, format!("renegotiation failed: {e}"));
            }
        }
    }

    async fn activate(&mut self, leg: PendingLeg) {
        let track_id = leg.source.id.clone();
        match self.peer.activate(leg).await {
            Ok(active) => {
                self.hearing.leg_ready(
                    self.me,
                    self.session,
                    track_id.clone(),
                    active.downstream.clone(),
                );
                self.legs.insert(track_id, active);
            }
            Err(e) => {
                tracing::warn!(participant = %self.me, track = %track_id, "leg not activated: {e}");
            }
        }
    }

    async fn finish(self, reason: EndReason) {
        tracing::info!(participant = %self.me, reason = reason.as_str(), "session ended");
        self.hearing.leave(self.me, self.session, reason.as_str());
        self.peer.close().await;
    }
}
