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
//! The session carries its [`Device`](crate::hearing::Device) (peer address,
//! `User-Agent`) into the hearing, which audits it. A second device on a link in use
//! may have to wait for the court (`device_waiting`): the session then holds the
//! socket with no PeerConnection until the hearing seats it (a `welcome` arrives) or
//! closes it.
//!
//! Outages keep the seat (issue 13): a connection that was up and went `failed` waits
//! [`ICE_RESTART_WINDOW`] for the client's ICE-restart offer, and a resumable session
//! whose socket broke parks until a new socket resumes it (`park.rs`, `resume.rs`);
//! `socket.rs` is a socket's own task, which joins or resumes, or runs a pre-join
//! self-test (`selftest.rs`: a loopback through the SFU, outside the hearing).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod join;
mod outbox;
mod park;
mod resume;
mod selftest;
mod socket;

use axum::extract::ws::{Message, WebSocket};
use openhearing_signaling::{
    decode_client, ClientMessage, Connection, ErrorCode, IceCandidate, ServerMessage,
};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

pub use self::join::SeenDevice;
use self::join::{fill_welcome, wait_for_seat, Authenticated};
use self::outbox::{Out, Outbox};
use self::resume::Registration;
pub use self::resume::Resumes;
pub use self::selftest::SelfTests;
use super::join_limit::{JoinLimiter, TokenBucket};
use crate::auth::JoinTokens;
use crate::hearing::{HearingHandle, Hearings, JoinRequest, Refusal, SessionCommand, SessionLink};
use crate::sfu::{ActiveLeg, Candidate, LinkState, Peer, PeerEvent, PendingLeg, Sfu, SfuError};
use crate::store::Store;

/// Limits applied to each signaling connection (`[signaling]` in the config).
#[derive(Debug, Clone)]
pub struct SignalingLimits {
    pub max_message_bytes: usize,
    /// The limit for `offer` and `answer` (at least `max_message_bytes`).
    pub max_sdp_bytes: usize,
    pub rate_per_second: u32,
    pub burst: u32,
    pub join_timeout: Duration,
    /// How long the client may take to answer a server offer.
    pub answer_timeout: Duration,
    /// How long a resumable session whose socket dropped keeps its seat for a
    /// `resume` (PROTOCOL.md, *Resuming a session*).
    pub resume_window: Duration,
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
    /// The sessions a new socket can `resume`.
    pub resumes: Arc<Resumes>,
    /// The pre-join self-tests running now (one per participant).
    pub self_tests: Arc<SelfTests>,
    /// Turns `true` when the server shuts down.
    pub shutdown: watch::Receiver<bool>,
}

/// The reading half of a client's socket.
type SocketStream = futures_util::stream::SplitStream<WebSocket>;

/// The close code of a client abandoning a stalled socket to resume on a new one.
const RESUMING_CLOSE_CODE: u16 = 4000;

/// Candidates accepted before the client's offer was applied.
const EARLY_CANDIDATES: usize = 64;
/// How long a connection that was up may stay `failed` before the session ends: the
/// client restarts ICE on it meanwhile (PROTOCOL.md, *ICE restart*), and its restarts
/// are spaced 4 s apart, four at most.
const ICE_RESTART_WINDOW: Duration = Duration::from_secs(30);

pub use self::socket::handler;

/// A trickled candidate from the wire, as the SFU takes it.
/// Takes one message's token from a connection's `bucket`: false, with a fatal
/// `rate_limited` to the client, when it floods (hearing sessions and self-tests).
fn charge(bucket: &mut TokenBucket, out: &Outbox) -> bool {
    if bucket.take() {
        return true;
    }
    out.fatal(
        ErrorCode::RateLimited,
        "too many messages; the connection is closed",
    );
    false
}

/// Keeps a candidate that came before the connection's first offer, up to
/// [`EARLY_CANDIDATES`]; beyond, the client is told and the candidate dropped.
fn keep_early(early: &mut Vec<Candidate>, candidate: Candidate, out: &Outbox) {
    if early.len() >= EARLY_CANDIDATES {
        out.error(
            ErrorCode::InvalidCandidate,
            "too many candidates before the offer",
        );
    } else {
        early.push(candidate);
    }
}

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

fn too_large(len: usize, max: usize) -> String {
    format!("message of {len} bytes exceeds the limit of {max} bytes")
}

/// Why a session ended, as told to the other participants.
#[derive(Debug, Clone, Copy)]
enum EndReason {
    Left,
    ConnectionLost,
    /// The socket broke (no close frame): a resumable session parks instead of ending.
    SocketLost,
    /// The hearing closed the session (replaced, denied, removed, closed, revoked).
    Kicked(ErrorCode),
    Shutdown,
}

impl EndReason {
    fn as_str(self) -> &'static str {
        match self {
            EndReason::Left => "left",
            EndReason::ConnectionLost | EndReason::SocketLost | EndReason::Shutdown => {
                "connection_lost"
            }
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
    /// The tracks this participant publishes now.
    published: Vec<Arc<crate::sfu::PublishedTrack>>,
    early_candidates: Vec<Candidate>,
    connected_once: bool,
    /// The connection is down (`disconnected` or `failed` after being up) since then.
    link_down_since: Option<Instant>,
    /// Its ICE gave up (`failed`) then: only the client's ICE restart brings it back.
    link_failed_since: Option<Instant>,
    bucket: TokenBucket,
    /// The connection's last state.
    link: LinkState,
    /// Resumable sessions (`join.resumable`): their entry in [`Resumes`].
    registration: Option<Registration>,
    resume_window: Duration,
    /// The socket dropped: since when, and the queue its messages wait in.
    parked: Option<(Instant, mpsc::Receiver<Out>)>,
    /// The socket of the last `resume`, and where its stream goes back.
    resumed: Option<(SocketStream, tokio::sync::oneshot::Sender<SocketStream>)>,
    /// The join's own socket was replaced by a resumed one: never read again.
    first_socket_gone: bool,
    /// Journal number of the outstanding server offer.
    offer_seq: u64,
    /// This session in `openhearing_sessions{role}` while it lives.
    _counted: crate::metrics::SessionCount,
}

impl Session {
    /// Joins the hearing, waits for the court if this is a second device, then sets
    /// up the PeerConnection and sends the `welcome`. `Err(None)`: the client was
    /// already told why not (or is gone).
    async fn start(
        auth: Authenticated,
        stream: &mut SocketStream,
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
        // A client that can resume gets its ticket, and from here on every message is
        // numbered for a replay.
        let registration = auth.resumable.then(|| st.resumes.register());
        let mut out = out;
        if let (Some(reg), ServerMessage::Welcome(w)) = (&registration, &mut welcome) {
            w.resume = Some(openhearing_signaling::ResumeTicket {
                token: reg.token.clone(),
                window_ms: u64::try_from(st.limits.resume_window.as_millis()).unwrap_or(u64::MAX),
            });
        }
        let mut role = String::from("unknown");
        if let ServerMessage::Welcome(w) = &welcome {
            role = w.you.role.to_string();
            tracing::info!(participant = %w.you.id, role = %w.you.role, hearing = %hearing.id, "joined");
        }
        out.send(welcome);
        if registration.is_some() {
            out = out.journaled(Default::default());
        }
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
            published: Vec::new(),
            early_candidates: Vec::new(),
            connected_once: false,
            link_down_since: None,
            link_failed_since: None,
            bucket: TokenBucket::new(f64::from(st.limits.rate_per_second), st.limits.burst),
            link: LinkState::New,
            registration,
            resume_window: st.limits.resume_window,
            parked: None,
            resumed: None,
            first_socket_gone: false,
            offer_seq: 0,
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

    async fn run(&mut self, stream: &mut SocketStream, st: &SignalingState) -> EndReason {
        let mut shutdown = st.shutdown.clone();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            let end = tokio::select! {
                frame = park::next_frame(self.parked.is_some(), self.first_socket_gone, &mut self.resumed, stream) => {
                    self.on_frame(frame, st).await
                }
                Some(r) = park::next_resumption(&mut self.registration) => {
                    self.on_resume(r).await;
                    None
                }
                Some(cmd) = self.commands.recv() => self.on_command(cmd).await,
                Some(ev) = self.peer_events.recv() => self.on_peer(ev),
                _ = tick.tick() => self.on_tick(st),
                _ = shutdown.changed() => {
                    self.out.fatal(ErrorCode::ServerShutdown, "the server is shutting down; rejoin in a moment");
                    Some(EndReason::Shutdown)
                }
            };
            let end = match end {
                None if self.out.is_closed() => Some(EndReason::SocketLost),
                end => end,
            };
            match end {
                None => {}
                Some(EndReason::SocketLost) => {
                    if let Some(end) = self.socket_lost() {
                        return end;
                    }
                }
                Some(end) => return end,
            }
        }
    }

    /// One frame of the client's socket (`None`: the socket ended).
    async fn on_frame(
        &mut self,
        frame: Option<Result<Message, axum::Error>>,
        st: &SignalingState,
    ) -> Option<EndReason> {
        let text = match frame {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Binary(_))) => {
                if !self.charge() {
                    return Some(EndReason::ConnectionLost);
                }
                self.out.error(
                    ErrorCode::BinaryNotSupported,
                    "binary frames are not part of the protocol; send JSON text",
                );
                return None;
            }
            // A client dropping a socket it found stalled, to resume on a new one
            // (PROTOCOL.md, *Resuming a session*): as if it had broken.
            Some(Ok(Message::Close(Some(f)))) if f.code == RESUMING_CLOSE_CODE => {
                return Some(EndReason::SocketLost)
            }
            // A clean close is the client going away on purpose (a closed tab): no park.
            Some(Ok(Message::Close(_))) => return Some(EndReason::ConnectionLost),
            None => return Some(EndReason::SocketLost),
            Some(Err(e)) => {
                tracing::debug!(participant = %self.me, "websocket error: {e}");
                if is_oversize(&e) {
                    self.out.close_too_big();
                    return Some(EndReason::ConnectionLost);
                }
                return Some(EndReason::SocketLost);
            }
            Some(Ok(_)) => return None,
        };
        if !self.charge() {
            return Some(EndReason::ConnectionLost);
        }
        if text.len() > st.limits.max_sdp_bytes {
            self.out.error(
                ErrorCode::MessageTooLarge,
                too_large(text.len(), st.limits.max_sdp_bytes),
            );
            return None;
        }
        match decode_client(&text) {
            // Only an SDP message may be larger than `max_message_bytes`: a
            // connection's SDP grows by a media section for every track it was sent.
            Ok(msg)
                if text.len() > st.limits.max_message_bytes
                    && !matches!(
                        msg,
                        ClientMessage::Offer { .. } | ClientMessage::Answer { .. }
                    ) =>
            {
                self.out.error(
                    ErrorCode::MessageTooLarge,
                    too_large(text.len(), st.limits.max_message_bytes),
                );
                None
            }
            Ok(msg) => self.on_client(msg).await,
            Err(_) if text.len() > st.limits.max_message_bytes => {
                self.out.error(
                    ErrorCode::MessageTooLarge,
                    too_large(text.len(), st.limits.max_message_bytes),
                );
                None
            }
            Err(e) => {
                self.out.error(e.code(), e.to_string());
                None
            }
        }
    }

    /// The once-a-second checks: a failed connection not restarted, a parked session
    /// not resumed, an offer not answered.
    fn on_tick(&mut self, st: &SignalingState) -> Option<EndReason> {
        if let Some(t) = self.link_failed_since {
            if t.elapsed() > ICE_RESTART_WINDOW {
                tracing::info!(participant = %self.me, "connection failed and not restarted within {} s", ICE_RESTART_WINDOW.as_secs());
                return Some(EndReason::ConnectionLost);
            }
        }
        if let Some((since, _)) = &self.parked {
            if since.elapsed() > self.resume_window {
                tracing::info!(participant = %self.me, "socket not resumed within {} s", self.resume_window.as_secs());
                return Some(EndReason::ConnectionLost);
            }
            // No answer can come while there is no socket: the clock restarts on resume.
            return None;
        }
        if let Some(t) = self.offer_sent_at {
            if t.elapsed() > st.limits.answer_timeout {
                self.out.fatal(
                    ErrorCode::NegotiationTimeout,
                    format!(
                        "no answer to the server's offer within {} s",
                        st.limits.answer_timeout.as_secs()
                    ),
                );
                return Some(EndReason::ConnectionLost);
            }
        }
        None
    }

    /// Rate limit: false (and the socket is being closed) when the client floods.
    fn charge(&mut self) -> bool {
        charge(&mut self.bucket, &self.out)
    }

    async fn on_client(&mut self, msg: ClientMessage) -> Option<EndReason> {
        match msg {
            ClientMessage::Join { .. }
            | ClientMessage::Resume { .. }
            | ClientMessage::SelfTest { .. } => {
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
                let offered = sdp.clone();
                match self.peer.answer_offer(sdp, self.may_publish).await {
                    Ok(answer) => {
                        self.end_withdrawn(&offered).await;
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
                        tracing::debug!(participant = %self.me, legs = self.inflight.len(), "answer to the server's offer applied");
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
                    keep_early(&mut self.early_candidates, candidate, &self.out);
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
                    return Some(EndReason::SocketLost);
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
                self.link = s;
                let reported = match s {
                    LinkState::Connected => Some(Connection::Connected),
                    LinkState::Disconnected => Some(Connection::Unstable),
                    // A connection that was up and failed waits for the client's ICE
                    // restart: the participant keeps the seat, on an unstable link.
                    LinkState::Failed if self.connected_once => Some(Connection::Unstable),
                    LinkState::New | LinkState::Connecting if self.link_down_since.is_some() => {
                        Some(Connection::Unstable)
                    }
                    LinkState::New | LinkState::Connecting => Some(Connection::Connecting),
                    _ => None,
                };
                if let Some(c) = reported {
                    self.hearing.connection(self.me, self.session, c);
                }
                match s {
                    LinkState::Connected => {
                        if !self.connected_once || self.link_down_since.is_some() {
                            // Keyframes requested before the connection was (back) up
                            // were lost, and a decoder that missed packets needs one.
                            for leg in self.legs.values() {
                                leg.source.request_keyframe();
                            }
                        }
                        if self.link_down_since.is_some() {
                            // And everyone receiving this participant missed packets
                            // of theirs: a keyframe now, not at their next PLI.
                            for t in &self.published {
                                t.request_keyframe();
                            }
                        }
                        if let Some(t) = self.link_down_since.take() {
                            tracing::info!(participant = %self.me, restarted = self.link_failed_since.is_some(), "connection back after {} ms", t.elapsed().as_millis());
                        }
                        self.connected_once = true;
                        self.link_failed_since = None;
                    }
                    LinkState::Disconnected if self.connected_once => {
                        self.link_down_since.get_or_insert_with(Instant::now);
                    }
                    LinkState::Failed if self.connected_once => {
                        tracing::info!(participant = %self.me, "connection failed; waiting up to {} s for the client's ICE restart", ICE_RESTART_WINDOW.as_secs());
                        self.link_down_since.get_or_insert_with(Instant::now);
                        self.link_failed_since.get_or_insert_with(Instant::now);
                    }
                    LinkState::Failed | LinkState::Closed => {
                        return Some(EndReason::ConnectionLost);
                    }
                    _ => {}
                }
            }
            PeerEvent::TrackPublished(t) => {
                self.published.push(t.clone());
                self.hearing.track_published(self.me, self.session, t);
            }
            PeerEvent::TrackEnded(id) => {
                self.published.retain(|t| t.id != id);
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
    /// Ends the published tracks this participant's offer no longer sends (a screen
    /// share stopped): webrtc 0.21 would keep them open, silent, for the connection's
    /// life, and the receivers would keep an empty tile.
    async fn end_withdrawn(&mut self, offer: &str) {
        let Ok(Some(sent)) = crate::sfu::sdp::sent_track_ids(offer) else {
            return;
        };
        let mut gone = Vec::new();
        for t in &self.published {
            let id = t.remote_track_id().await;
            if !id.is_empty() && !sent.contains(&id) {
                gone.push(t.clone());
            }
        }
        for t in gone {
            tracing::info!(participant = %self.me, track = %t.id, "track withdrawn by the publisher's offer");
            t.withdraw();
            self.published.retain(|p| p.id != t.id);
            self.hearing
                .track_ended(self.me, self.session, t.id.clone());
        }
    }

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
                tracing::debug!(participant = %self.me, legs = self.inflight.len(), "offer sent");
                self.out.send(ServerMessage::Offer { sdp });
                self.offer_seq = self.out.sent();
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

    async fn finish(mut self, reason: EndReason) {
        tracing::info!(participant = %self.me, reason = reason.as_str(), "session ended");
        // No resume can take the session any more.
        self.registration = None;
        if let Some((stream, done)) = self.resumed.take() {
            let _ = done.send(stream);
        }
        self.hearing.leave(self.me, self.session, reason.as_str());
        self.peer.close().await;
    }
}
