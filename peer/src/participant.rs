//! A hearing participant: signaling client + media peer, driven by one background task.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openhearing_signaling::client::{SignalingClient, SignalingSender};
use openhearing_signaling::protocol::{ClientMessage, IceCandidate, ServerMessage};
use openhearing_signaling::Welcome;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;
use webrtc::peer_connection::RTCIceCandidateInit;

use crate::fixtures::MediaFixtures;
use crate::media_peer::{MediaKind, MediaPeer};
use crate::stats::ReceiveStats;
use crate::PeerError;

/// How long `join` waits for `welcome`.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `leave` waits for the server to close the socket.
const LEAVE_GRACE: Duration = Duration::from_secs(2);

/// What the participant does once joined.
#[derive(Debug, Clone, Default)]
pub struct JoinOptions {
    /// Offer an Opus and a VP8 track (stream id = own participant id). Otherwise offer
    /// receive-only audio and video transceivers.
    pub publish: bool,
    /// The clips to publish. When `publish` is set and this is `None`, the clips are
    /// generated (or loaded) in [`crate::fixtures::default_dir`].
    pub fixtures: Option<Arc<MediaFixtures>>,
    /// What the media peer does with received RTP (a tap, for the load generator).
    pub receive: crate::media_peer::ReceiveOptions,
    /// The tab id sent with `join`: a rejoin with the same one takes the seat back at
    /// once (a reconnecting browser tab), instead of waiting as a second device.
    pub tab: Option<String>,
}

/// Instants for join-time measurement.
#[derive(Debug, Clone)]
pub struct JoinTiming {
    /// Just before the WebSocket connect started.
    pub connect_started: Instant,
    /// When the WebSocket was open.
    pub ws_opened: Instant,
    /// When `welcome` arrived.
    pub welcomed: Instant,
    /// First RTP packet of each remote (stream id, kind).
    pub first_rtp: HashMap<(String, MediaKind), Instant>,
}

enum Control {
    Raw(String),
    Leave,
    Abort,
}

/// A joined participant. Dropping it stops its background task; prefer
/// [`leave`](Self::leave) or [`close_abruptly`](Self::close_abruptly).
pub struct Participant {
    welcome: Welcome,
    peer: Arc<MediaPeer>,
    fixtures: Option<Arc<MediaFixtures>>,
    sender: Mutex<Option<SignalingSender>>,
    control: mpsc::UnboundedSender<Control>,
    events: Arc<Mutex<Vec<ServerMessage>>>,
    failures: Arc<Mutex<Vec<String>>>,
    close_info: Arc<Mutex<Option<(u16, String)>>>,
    task: Mutex<Option<JoinHandle<()>>>,
    connect_started: Instant,
    ws_opened: Instant,
    welcomed: Instant,
}

impl Participant {
    /// Connects to `ws_url`, joins with `token`, builds the peer, sends the one client
    /// offer and starts the background task that handles the server's messages.
    pub async fn join(
        ws_url: &str,
        token: &str,
        opts: JoinOptions,
    ) -> Result<Participant, PeerError> {
        let connect_started = Instant::now();
        let mut client = SignalingClient::connect(ws_url).await?;
        let ws_opened = Instant::now();
        let welcome = client
            .join_from(token, opts.tab.as_deref(), JOIN_TIMEOUT)
            .await?;
        let welcomed = Instant::now();

        let receive = opts.receive;
        let fixtures = match (opts.publish, opts.fixtures) {
            (true, None) => Some(Arc::new(
                tokio::task::spawn_blocking(|| {
                    MediaFixtures::generate(&crate::fixtures::default_dir())
                })
                .await
                .map_err(|e| PeerError::State(format!("fixture task failed: {e}")))??,
            )),
            (_, f) => f,
        };

        let peer = Arc::new(MediaPeer::with_receive(receive).await?);
        let candidates = peer
            .take_candidates()
            .ok_or_else(|| PeerError::State("candidate channel already taken".into()))?;
        if opts.publish {
            peer.add_media_tracks(&welcome.you.id.to_string()).await?;
        } else {
            peer.add_recvonly_transceivers().await?;
        }
        let offer = peer.create_offer().await?;
        client.send(&ClientMessage::Offer { sdp: offer })?;

        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let events = Arc::new(Mutex::new(Vec::new()));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let close_info = Arc::new(Mutex::new(None));
        let sender = client.sender();
        let task = tokio::spawn(run(
            client,
            peer.clone(),
            candidates,
            control_rx,
            events.clone(),
            failures.clone(),
            close_info.clone(),
        ));
        Ok(Participant {
            welcome,
            peer,
            fixtures,
            sender: Mutex::new(Some(sender)),
            control: control_tx,
            events,
            failures,
            close_info,
            task: Mutex::new(Some(task)),
            connect_started,
            ws_opened,
            welcomed,
        })
    }

    /// Own participant id.
    pub fn id(&self) -> Uuid {
        self.welcome.you.id
    }

    /// The `welcome` the server sent.
    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    /// The media peer, for lower-level checks.
    pub fn peer(&self) -> &Arc<MediaPeer> {
        &self.peer
    }

    /// Snapshot of what was received, keyed by publishing participant id.
    pub fn stats(&self) -> ReceiveStats {
        self.peer.stats()
    }

    /// Polls the stats until `pred` holds (bounded by `timeout`).
    pub async fn wait_until(
        &self,
        pred: impl FnMut(&ReceiveStats) -> bool,
        timeout: Duration,
    ) -> Result<ReceiveStats, PeerError> {
        self.peer.wait_until(pred, timeout).await
    }

    /// Waits for the PeerConnection to connect.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<(), PeerError> {
        self.peer.wait_connected(timeout).await
    }

    /// Starts sending the clips (needs `publish` and the server's answer applied).
    pub async fn start_publishing(&self) -> Result<(), PeerError> {
        let fx = self
            .fixtures
            .clone()
            .ok_or_else(|| PeerError::State("this participant does not publish".into()))?;
        self.peer.start_publishing(fx).await
    }

    pub async fn stop_publishing(&self) {
        self.peer.stop_publishing().await
    }

    /// Hashes of every distinct frame/packet this participant sent.
    pub fn sent_hashes(&self) -> HashSet<u64> {
        self.peer.sent_hashes()
    }

    /// What received frames are matched against (e.g. the union of the others'
    /// [`sent_hashes`](Self::sent_hashes) or [`MediaFixtures::hashes`]).
    pub fn set_known_hashes(&self, known: HashSet<u64>) {
        self.peer.set_known_hashes(known)
    }

    /// Every server message except `candidate`s, in arrival order (participant events,
    /// `error`s, `offer`/`answer`, `pong`).
    pub fn events(&self) -> Vec<ServerMessage> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// Local failures of the background task (an offer or candidate that could not be
    /// applied, a send on a closed socket).
    pub fn failures(&self) -> Vec<String> {
        self.failures.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// A typed sender on the signaling socket (`None` after leave/close).
    pub fn signaling_sender(&self) -> Option<SignalingSender> {
        self.sender.lock().ok().and_then(|s| s.clone())
    }

    /// Sends a raw text frame (for malformed-input tests).
    pub fn send_text(&self, raw: impl Into<String>) -> Result<(), PeerError> {
        self.control
            .send(Control::Raw(raw.into()))
            .map_err(|_| PeerError::State("signaling task has ended".into()))
    }

    /// The close code and reason the server sent, once the socket has closed.
    pub fn close_info(&self) -> Option<(u16, String)> {
        self.close_info.lock().ok().and_then(|c| c.clone())
    }

    /// Whether the signaling task has ended (socket closed or participant closed).
    pub fn is_closed(&self) -> bool {
        self.task
            .lock()
            .ok()
            .and_then(|t| t.as_ref().map(|h| h.is_finished()))
            .unwrap_or(true)
    }

    /// Join timing: socket open, welcome, first RTP of each remote track.
    pub fn join_timing(&self) -> JoinTiming {
        let mut first_rtp = HashMap::new();
        for (id, s) in self.stats().streams {
            if let Some(t) = s.audio.first_packet_at {
                first_rtp.insert((id.clone(), MediaKind::Audio), t);
            }
            if let Some(t) = s.video.first_packet_at {
                first_rtp.insert((id, MediaKind::Video), t);
            }
        }
        JoinTiming {
            connect_started: self.connect_started,
            ws_opened: self.ws_opened,
            welcomed: self.welcomed,
            first_rtp,
        }
    }

    /// Sends `leave`, closes the PeerConnection and waits (briefly) for the server to
    /// close the socket.
    pub async fn leave(&self) -> Result<(), PeerError> {
        let _ = self.control.send(Control::Leave);
        self.drop_sender();
        let result = self.peer.close().await;
        self.join_task(LEAVE_GRACE + Duration::from_secs(1)).await;
        result
    }

    /// Closes the PeerConnection and the socket without `leave`, to simulate a dropped
    /// connection. The signaling client offers no way to reset the TCP connection, so
    /// the socket ends with a WebSocket close frame but no `leave` message.
    pub async fn close_abruptly(&self) -> Result<(), PeerError> {
        let _ = self.control.send(Control::Abort);
        self.drop_sender();
        let result = self.peer.close().await;
        self.join_task(Duration::from_secs(1)).await;
        result
    }

    fn drop_sender(&self) {
        if let Ok(mut s) = self.sender.lock() {
            s.take();
        }
    }

    async fn join_task(&self, timeout: Duration) {
        let handle = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(mut h) = handle {
            if tokio::time::timeout(timeout, &mut h).await.is_err() {
                h.abort();
            }
        }
    }
}

impl Drop for Participant {
    fn drop(&mut self) {
        if let Ok(mut t) = self.task.lock() {
            if let Some(h) = t.take() {
                h.abort();
            }
        }
    }
}

/// A webrtc candidate as the signaling protocol carries it.
pub fn to_wire(c: RTCIceCandidateInit) -> IceCandidate {
    IceCandidate {
        candidate: c.candidate,
        // webrtc 0.21 reports `sdpMid: ""`; that is no mid at all, say so.
        sdp_mid: c.sdp_mid.filter(|m| !m.is_empty()),
        sdp_mline_index: c.sdp_mline_index,
        username_fragment: c.username_fragment,
    }
}

/// A signaling candidate as webrtc takes it.
pub fn from_wire(c: IceCandidate) -> RTCIceCandidateInit {
    RTCIceCandidateInit {
        candidate: c.candidate,
        sdp_mid: c.sdp_mid,
        sdp_mline_index: c.sdp_mline_index,
        username_fragment: c.username_fragment,
        url: None,
    }
}

fn push<T>(list: &Mutex<Vec<T>>, item: T) {
    if let Ok(mut l) = list.lock() {
        l.push(item);
    }
}

/// The background task: server messages, local candidates and control requests.
async fn run(
    mut client: SignalingClient,
    peer: Arc<MediaPeer>,
    mut candidates: mpsc::UnboundedReceiver<RTCIceCandidateInit>,
    mut control: mpsc::UnboundedReceiver<Control>,
    events: Arc<Mutex<Vec<ServerMessage>>>,
    failures: Arc<Mutex<Vec<String>>>,
    close_info: Arc<Mutex<Option<(u16, String)>>>,
) {
    let mut leaving: Option<tokio::time::Instant> = None;
    loop {
        let grace = async {
            match leaving {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            msg = client.recv() => {
                let Some(msg) = msg else { break };
                handle(&client, &peer, msg, &events, &failures).await;
            }
            Some(c) = candidates.recv() => {
                if leaving.is_none() {
                    if let Err(e) = client.send(&ClientMessage::Candidate { candidate: to_wire(c) }) {
                        push(&failures, format!("sending a candidate: {e}"));
                    }
                }
            }
            Some(ctl) = control.recv() => match ctl {
                Control::Raw(text) => {
                    if let Err(e) = client.send_text(text) {
                        push(&failures, format!("sending a raw frame: {e}"));
                    }
                }
                Control::Leave => {
                    let _ = client.send(&ClientMessage::Leave);
                    leaving = Some(tokio::time::Instant::now() + LEAVE_GRACE);
                }
                Control::Abort => break,
            },
            _ = grace => {
                client.close();
                break;
            }
        }
    }
    if let (Ok(mut slot), Some(info)) = (close_info.lock(), client.close_info()) {
        *slot = Some(info);
    }
}

/// How long this peer may take to answer a server's offer (the server waits 20 s).
const ANSWER_WITHIN: Duration = Duration::from_secs(15);
/// An answer slower than this is logged (sent all the same).
const ANSWER_SLOW: Duration = Duration::from_secs(5);

async fn handle(
    client: &SignalingClient,
    peer: &MediaPeer,
    msg: ServerMessage,
    events: &Mutex<Vec<ServerMessage>>,
    failures: &Mutex<Vec<String>>,
) {
    match msg {
        ServerMessage::Candidate { candidate } => {
            if let Err(e) = peer.add_remote_candidate(from_wire(candidate)).await {
                push(failures, format!("remote candidate refused: {e}"));
            }
        }
        ServerMessage::Answer { ref sdp } => {
            let sdp = sdp.clone();
            push(events, msg);
            if let Err(e) = peer.apply_answer(sdp).await {
                push(failures, format!("applying the server's answer: {e}"));
            }
        }
        ServerMessage::Offer { ref sdp } => {
            let sdp = sdp.clone();
            push(events, msg);
            // Handled inline: the next server message waits, so offers are serialised.
            // Bounded below the server's answer timeout (20 s), so a peer whose own
            // webrtc stack stalls says so instead of looking like the server's fault.
            let started = Instant::now();
            match tokio::time::timeout(ANSWER_WITHIN, peer.answer_offer(sdp)).await {
                Ok(Ok(answer)) => {
                    if let Err(e) = client.send(&ClientMessage::Answer { sdp: answer }) {
                        push(failures, format!("sending an answer: {e}"));
                    } else if started.elapsed() > ANSWER_SLOW {
                        tracing::warn!(
                            seconds = started.elapsed().as_secs_f64(),
                            "answering the server's offer was slow"
                        );
                    }
                }
                Ok(Err(e)) => push(failures, format!("answering the server's offer: {e}")),
                Err(_) => push(
                    failures,
                    format!(
                        "answering the server's offer: this peer's webrtc did not finish within {} s",
                        ANSWER_WITHIN.as_secs()
                    ),
                ),
            }
        }
        other => push(events, other),
    }
}
