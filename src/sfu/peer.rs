//! One participant's PeerConnection: negotiation helpers, the tracks it publishes and
//! the legs it receives. A [`Peer`] is owned by exactly one task (the participant's
//! signaling session), which serialises every negotiation step on it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RTCRtpRtxParameters,
    RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use tokio::sync::{mpsc, watch};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionEventHandler, RTCIceCandidateInit, RTCPeerConnectionIceEvent,
    RTCPeerConnectionState, RTCSessionDescription,
};
use webrtc::rtp_transceiver::RtpSender;

use super::budget::Budget;
use super::forward::{relay_keyframe_requests, Downstream, Opened, PeerId, PublishedTrack};
use super::ports::PortLease;
use super::sdp::RepairFormats;
use super::{Candidate, LinkState, MediaKind, SfuError};

/// What a peer reports to its owner.
#[derive(Debug)]
pub enum PeerEvent {
    /// A local ICE candidate to trickle to the client.
    LocalCandidate(Candidate),
    /// The connection state changed.
    State(LinkState),
    /// The client started publishing a track (its first RTP packet arrived).
    TrackPublished(Arc<PublishedTrack>),
    /// A published track ended.
    TrackEnded(String),
    /// This connection's bandwidth allocator paused (or resumed) the video of a
    /// track it receives (`track`: the published track's id).
    VideoPaused { track: String, paused: bool },
}

/// A forwarded track added to this peer's connection, waiting for the negotiation
/// that carries it to complete before packets may flow.
pub struct PendingLeg {
    pub source: Arc<PublishedTrack>,
    local: Arc<TrackLocalStaticRTP>,
    sender: Arc<dyn RtpSender>,
    ssrc: u32,
}

/// A forwarded track that is flowing to this peer.
pub struct ActiveLeg {
    pub source: Arc<PublishedTrack>,
    pub downstream: Arc<Downstream>,
    sender: Arc<dyn RtpSender>,
}

pub struct Peer {
    pub id: PeerId,
    pc: Arc<dyn PeerConnection>,
    state: watch::Receiver<LinkState>,
    /// What this connection is sent of each simulcast track it receives.
    budget: Arc<Budget>,
    /// The RTX and RED payload types its last answer settled on (read by the NACK
    /// generator and this peer's published tracks).
    formats: Arc<ArcSwap<RepairFormats>>,
    _ports: PortLease,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer").field("id", &self.id).finish()
    }
}

pub(super) struct Handler {
    pub peer: PeerId,
    pub events: mpsc::UnboundedSender<PeerEvent>,
    pub state_tx: watch::Sender<LinkState>,
    pub pli_throttle: Duration,
    pub track_seq: Arc<AtomicU64>,
    pub formats: Arc<ArcSwap<RepairFormats>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        match event.candidate.to_json() {
            Ok(init) => {
                let _ = self.events.send(PeerEvent::LocalCandidate(Candidate {
                    candidate: init.candidate,
                    sdp_mid: init.sdp_mid,
                    sdp_mline_index: init.sdp_mline_index,
                    username_fragment: init.username_fragment,
                }));
            }
            Err(e) => tracing::warn!(peer = %self.peer, "cannot encode local candidate: {e}"),
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let state = LinkState::from(state);
        let _ = self.state_tx.send(state);
        let _ = self.events.send(PeerEvent::State(state));
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let peer = self.peer;
        let events = self.events.clone();
        let throttle = self.pli_throttle;
        let formats = self.formats.clone();
        let n = self.track_seq.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            // The track opens with its first RTP packet, which tells us the SSRC and so
            // the codec. A track that never opens is simply never published.
            let init = loop {
                match track.poll().await {
                    Some(TrackRemoteEvent::OnOpen(init)) => break init,
                    Some(TrackRemoteEvent::OnEnded) | None => return,
                    Some(_) => continue,
                }
            };
            let kind = match track.kind().await {
                RtpCodecKind::Audio => MediaKind::Audio,
                RtpCodecKind::Video => MediaKind::Video,
                other => {
                    tracing::warn!(%peer, "ignoring track of kind {other:?}");
                    return;
                }
            };
            let Some(codec) = resolve_codec(track.as_ref(), kind, init.ssrc).await else {
                tracing::warn!(%peer, ssrc = init.ssrc, "track opened without a negotiated codec");
                return;
            };
            let id = format!("{peer}-{}-{n}", kind.as_str());
            let published = PublishedTrack::new(
                id.clone(),
                peer,
                kind,
                codec,
                Opened {
                    ssrc: init.ssrc,
                    rid: init.rid,
                },
                track,
                throttle,
                formats,
            );
            tracing::info!(%peer, track = %id, codec = %published.codec.mime_type, simulcast = published.is_simulcast(), "track published");
            let _ = events.send(PeerEvent::TrackPublished(published.clone()));
            published.run_reader().await;
            tracing::info!(%peer, track = %id, "track ended");
            let _ = events.send(PeerEvent::TrackEnded(id));
        });
    }
}

/// The codec of a track that just opened. webrtc 0.21 sometimes has not recorded it
/// for the SSRC yet when `OnOpen` arrives (seen in about 3 runs of 20 when a publisher
/// was already sending while others joined), so look again briefly, and fall back to
/// the track's negotiated encodings, rather than losing the track for the session.
/// Audio can only be the one audio codec the SFU negotiates; under load the lookup
/// was seen to fail for over a second, which lost a prosecutor's audio for a whole
/// hearing in a test run.
///
/// An audio track whose first packet was RED is still an Opus track (RED only wraps
/// it: see forward.rs).
async fn resolve_codec(track: &dyn TrackRemote, kind: MediaKind, ssrc: u32) -> Option<RTCRtpCodec> {
    let unwrapped = |c: RTCRtpCodec| {
        if c.mime_type.eq_ignore_ascii_case(super::MIME_TYPE_RED) {
            super::audio_codec()
        } else {
            c
        }
    };
    for _ in 0..50 {
        if let Some(c) = track.codec(ssrc).await {
            return Some(unwrapped(c));
        }
        if let Some(c) = track
            .codings()
            .await
            .into_iter()
            .map(|e| e.codec)
            .find(|c| !c.mime_type.is_empty())
        {
            return Some(unwrapped(c));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (kind == MediaKind::Audio).then(super::audio_codec)
}

/// How long a connection may stay `connecting` before the server gives it up.
///
/// On a lossy link (issue 13: 10 % loss both ways) one join in four used to stall:
/// ICE connected, but the DTLS handshake (webrtc 0.21 is the DTLS client) never
/// finished. The cause was rtc-dtls disarming its retransmit timer when the browser
/// repeated its flight 4 after part of our flight 5 was lost; the workspace builds a
/// fixed copy (`vendor/rtc-dtls/PATCHED.md`, `tests/dtls_loss.rs`). This watchdog
/// stays as the net under anything else that leaves a connection `connecting` with
/// no error and no `failed`: closing it ends the participant's session as a lost
/// connection, and the web client rejoins at once with a fresh connection. Healthy
/// joins connect within a few seconds even over ICE-TCP; ICE itself gives up on a
/// dead path well before this.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// Closes `pc` if, once `connecting`, it does not reach `connected` within `limit`, and
/// reports it `closed` on `events` (webrtc does not report closing a connection that
/// never connected). Watches only the first connection attempt; holds the connection
/// weakly, so a peer dropped meanwhile is left alone.
async fn close_if_never_connected(
    id: PeerId,
    pc: Weak<dyn PeerConnection>,
    mut state: watch::Receiver<LinkState>,
    limit: Duration,
    events: mpsc::UnboundedSender<PeerEvent>,
) {
    use LinkState as S;
    loop {
        match *state.borrow_and_update() {
            S::Connecting => break,
            S::Connected | S::Failed | S::Closed => return,
            _ => {}
        }
        if state.changed().await.is_err() {
            return;
        }
    }
    let settled = async {
        loop {
            if matches!(
                *state.borrow_and_update(),
                S::Connected | S::Failed | S::Closed
            ) {
                return;
            }
            if state.changed().await.is_err() {
                return;
            }
        }
    };
    if tokio::time::timeout(limit, settled).await.is_ok() {
        return;
    }
    if let Some(pc) = pc.upgrade() {
        tracing::warn!(
            peer = %id,
            "connection still connecting after {} s (DTLS handshake stalled?): closing it so the client rejoins",
            limit.as_secs()
        );
        if let Err(e) = pc.close().await {
            tracing::debug!(peer = %id, "close: {e}");
        }
        let _ = events.send(PeerEvent::State(LinkState::Closed));
    }
}

impl Peer {
    /// A peer over `pc`; a connection that never completes is closed after
    /// `connect_timeout` and reported closed on `events`.
    // Called once, from `Sfu::create_peer`, with what it built for the connection.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        id: PeerId,
        pc: Arc<dyn PeerConnection>,
        state: watch::Receiver<LinkState>,
        ports: PortLease,
        connect_timeout: Duration,
        events: mpsc::UnboundedSender<PeerEvent>,
        budget: Arc<Budget>,
        formats: Arc<ArcSwap<RepairFormats>>,
    ) -> Self {
        tokio::spawn(close_if_never_connected(
            id,
            Arc::downgrade(&pc),
            state.clone(),
            connect_timeout,
            events,
        ));
        Peer {
            id,
            pc,
            state,
            budget,
            formats,
            _ports: ports,
        }
    }

    /// Records the repair formats an answer settled on. An answer webrtc accepted
    /// parses; should it not, the formats stay as they were.
    fn learn_formats(&self, answer: &str) {
        match RepairFormats::of_answer(answer) {
            Ok(formats) => self.formats.store(Arc::new(formats)),
            Err(e) => tracing::debug!(peer = %self.id, "repair formats not read: {e}"),
        }
    }

    /// This connection's bandwidth budget (estimate, cap, layer allocation).
    pub fn budget(&self) -> &Arc<Budget> {
        &self.budget
    }

    /// Applies the client's offer and returns the server's answer. `may_publish`
    /// false refuses an offer that sends media.
    pub async fn answer_offer(&self, sdp: String, may_publish: bool) -> Result<String, SfuError> {
        if !may_publish && super::sdp::offer_sends_media(&sdp).map_err(SfuError::InvalidSdp)? {
            return Err(SfuError::PublishNotAllowed);
        }
        let offer =
            RTCSessionDescription::offer(sdp).map_err(|e| SfuError::InvalidSdp(e.to_string()))?;
        self.pc
            .set_remote_description(offer)
            .await
            .map_err(|e| SfuError::InvalidSdp(e.to_string()))?;
        let answer = self
            .pc
            .create_answer(None)
            .await
            .map_err(|e| SfuError::WebRtc(format!("create answer: {e}")))?;
        self.pc
            .set_local_description(answer)
            .await
            .map_err(|e| SfuError::WebRtc(format!("set local answer: {e}")))?;
        let sdp = self.local_sdp().await?;
        self.learn_formats(&sdp);
        Ok(sdp)
    }

    /// Creates a server offer (after tracks were added or removed).
    pub async fn create_offer(&self) -> Result<String, SfuError> {
        let offer = self
            .pc
            .create_offer(None)
            .await
            .map_err(|e| SfuError::WebRtc(format!("create offer: {e}")))?;
        self.pc
            .set_local_description(offer)
            .await
            .map_err(|e| SfuError::WebRtc(format!("set local offer: {e}")))?;
        self.local_sdp().await
    }

    /// Applies the client's answer to our offer.
    pub async fn apply_answer(&self, sdp: String) -> Result<(), SfuError> {
        let answer = RTCSessionDescription::answer(sdp.clone())
            .map_err(|e| SfuError::InvalidSdp(e.to_string()))?;
        self.pc
            .set_remote_description(answer)
            .await
            .map_err(|e| SfuError::InvalidSdp(e.to_string()))?;
        self.learn_formats(&sdp);
        Ok(())
    }

    /// The local description in force: the outstanding offer while one waits for
    /// its answer (a resumed session sends it again when the answer was lost).
    pub async fn local_sdp(&self) -> Result<String, SfuError> {
        self.pc
            .local_description()
            .await
            .map(|d| d.sdp)
            .ok_or_else(|| SfuError::WebRtc("no local description after setting it".into()))
    }

    /// Adds a client's trickled ICE candidate. An empty candidate string means
    /// end-of-candidates and is accepted silently.
    pub async fn add_candidate(&self, c: Candidate) -> Result<(), SfuError> {
        if c.candidate.trim().is_empty() {
            return Ok(());
        }
        if c.candidate.len() > 1024 {
            return Err(SfuError::InvalidCandidate(
                "candidate longer than 1024 bytes".into(),
            ));
        }
        let init = RTCIceCandidateInit {
            candidate: c.candidate,
            sdp_mid: c.sdp_mid,
            sdp_mline_index: c.sdp_mline_index,
            username_fragment: c.username_fragment,
            ..Default::default()
        };
        self.pc
            .add_ice_candidate(init)
            .await
            .map_err(|e| SfuError::InvalidCandidate(e.to_string()))
    }

    /// Adds a sendonly transceiver carrying `source` to this connection. Packets flow
    /// only after [`Peer::activate`], once the negotiation carrying it completed.
    pub async fn add_leg(&self, source: Arc<PublishedTrack>) -> Result<PendingLeg, SfuError> {
        let ssrc = rand::random::<u32>() | 1;
        // A video leg's retransmissions go on an RTX SSRC of its own. Named here
        // because webrtc 0.21 binds the NACK responder from the track's codings while
        // the SDP announces the sender's encodings: an RTX SSRC only webrtc minted
        // would be announced but never used (repairs would go on the media SSRC). If
        // the subscriber does not accept RTX, the responder repeats on the media SSRC.
        let rtx = (source.kind == MediaKind::Video).then(|| RTCRtpRtxParameters {
            ssrc: rand::random::<u32>() & !1,
        });
        let kind = match source.kind {
            MediaKind::Audio => RtpCodecKind::Audio,
            MediaKind::Video => RtpCodecKind::Video,
        };
        // The stream id is the publisher's participant id: that is how a client knows
        // whose media a track carries. The track id says what it is: `audio-<id>`,
        // `video-<id>` (the camera) or `screen-<id>` (a screen share, a second video
        // track), so a receiver shows a shared screen apart from the camera.
        let what = if source.is_screen() {
            "screen"
        } else {
            source.kind.as_str()
        };
        let label = format!("{what}-{}", source.publisher);
        let track = MediaStreamTrack::new(
            source.publisher.to_string(),
            label.clone(),
            label,
            kind,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    rtx,
                    ..Default::default()
                },
                codec: source.codec.clone(),
                ..Default::default()
            }],
        );
        let local = Arc::new(TrackLocalStaticRTP::new(track));
        // A dedicated sendonly transceiver per leg. (`add_track` would reuse any idle
        // transceiver of the same kind — even the m-section the client publishes on —
        // and receivers do not reliably announce a new track on a reused one.) The
        // cost is one m-section per leg ever added in this connection's lifetime.
        let transceiver = self
            .pc
            .add_transceiver_from_track(
                local.clone() as Arc<dyn TrackLocal>,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Sendonly,
                    ..Default::default()
                }),
            )
            .await
            .map_err(|e| SfuError::WebRtc(format!("add track: {e}")))?;
        let sender = transceiver
            .sender()
            .await
            .map_err(|e| SfuError::WebRtc(format!("transceiver has no sender: {e}")))?
            .ok_or_else(|| SfuError::WebRtc("transceiver has no sender".into()))?;
        Ok(PendingLeg {
            source,
            local,
            sender,
            ssrc,
        })
    }

    /// Starts the flow of a leg whose negotiation completed: reads the payload type
    /// the subscriber accepted; from then on the track's reader writes to the leg.
    /// Keyframe requests the subscriber sends about this leg are relayed to the
    /// publisher. A simulcast track's leg gets its first layer from this connection's
    /// budget at once.
    pub async fn activate(&self, leg: PendingLeg) -> Result<ActiveLeg, SfuError> {
        let params = leg
            .sender
            .get_parameters()
            .await
            .map_err(|e| SfuError::WebRtc(format!("sender parameters: {e}")))?;
        let payload_type_of = |mime: &str| {
            params
                .rtp_parameters
                .codecs
                .iter()
                .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(mime))
                .map(|c| c.payload_type)
        };
        let pt = payload_type_of(&leg.source.codec.mime_type).ok_or_else(|| {
            SfuError::CodecRejected(format!(
                "the subscriber did not accept {}",
                leg.source.codec.mime_type
            ))
        })?;
        let sink = leg.local.clone();
        let downstream = if leg.source.is_simulcast() {
            let config = leg.source.rewriter_config();
            Downstream::start_layered(self.id, sink, leg.ssrc, pt, config)
        } else if leg.source.kind == MediaKind::Audio {
            let red = payload_type_of(super::MIME_TYPE_RED);
            Downstream::start_audio(self.id, sink, leg.ssrc, pt, red)
        } else {
            Downstream::start(self.id, sink, leg.ssrc, pt)
        };
        downstream.attach_reception(self.budget.reception());
        // Every leg: plain ones are the fixed cost the simulcast ones must fit beside.
        self.budget.add_leg(&downstream, &leg.source);
        relay_keyframe_requests(
            leg.local.clone(),
            leg.source.clone(),
            Arc::downgrade(&downstream),
        );
        Ok(ActiveLeg {
            source: leg.source,
            downstream,
            sender: leg.sender,
        })
    }

    /// Removes a leg's sender from the connection (a renegotiation must follow).
    pub async fn remove_sender(&self, sender: &Arc<dyn RtpSender>) -> Result<(), SfuError> {
        self.pc
            .remove_track(sender)
            .await
            .map_err(|e| SfuError::WebRtc(format!("remove track: {e}")))
    }

    /// Waits until the connection is connected (true) or failed/closed or timed out (false).
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        let mut rx = self.state.clone();
        let fut = async {
            loop {
                match *rx.borrow_and_update() {
                    LinkState::Connected => return true,
                    LinkState::Failed | LinkState::Closed => return false,
                    _ => {}
                }
                if rx.changed().await.is_err() {
                    return false;
                }
            }
        };
        tokio::time::timeout(timeout, fut).await.unwrap_or(false)
    }

    /// Closes the connection and frees its sockets and port.
    pub async fn close(&self) {
        if let Err(e) = self.pc.close().await {
            tracing::debug!(peer = %self.id, "close: {e}");
        }
    }
}

impl ActiveLeg {
    pub fn sender(&self) -> &Arc<dyn RtpSender> {
        &self.sender
    }
}

impl PendingLeg {
    pub fn sender(&self) -> &Arc<dyn RtpSender> {
        &self.sender
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use webrtc::peer_connection::PeerConnectionBuilder;

    struct NoEvents;
    impl PeerConnectionEventHandler for NoEvents {}

    /// A real connection that never connects.
    async fn connection() -> Arc<dyn PeerConnection> {
        let pc = PeerConnectionBuilder::new()
            .with_handler(Arc::new(NoEvents) as Arc<dyn PeerConnectionEventHandler>)
            .with_udp_addrs(vec!["127.0.0.1:0"])
            .build()
            .await
            .expect("connection builds");
        Arc::new(pc)
    }

    /// Whether `pc` is closed within `ms`: a closed connection refuses to make offers.
    async fn closed_within(pc: &Arc<dyn PeerConnection>, ms: u64) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(ms);
        loop {
            if pc.create_offer(None).await.is_err() {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether a `closed` state event arrives on `events` within `ms`.
    async fn closed_event_within(events: &mut mpsc::UnboundedReceiver<PeerEvent>, ms: u64) -> bool {
        let closed = async {
            while let Some(ev) = events.recv().await {
                if matches!(ev, PeerEvent::State(LinkState::Closed)) {
                    return true;
                }
            }
            false
        };
        tokio::time::timeout(Duration::from_millis(ms), closed)
            .await
            .unwrap_or(false)
    }

    /// A real connection, never connecting, watched with `limit`: the connection, the
    /// state the watchdog reads, its events and the watchdog's task.
    async fn watched(
        limit: Duration,
    ) -> (
        Arc<dyn PeerConnection>,
        watch::Sender<LinkState>,
        mpsc::UnboundedReceiver<PeerEvent>,
        tokio::task::JoinHandle<()>,
    ) {
        let pc = connection().await;
        let (state_tx, state_rx) = watch::channel(LinkState::New);
        let (events_tx, events) = mpsc::unbounded_channel();
        let watchdog = tokio::spawn(close_if_never_connected(
            PeerId::new_v4(),
            Arc::downgrade(&pc),
            state_rx,
            limit,
            events_tx,
        ));
        (pc, state_tx, events, watchdog)
    }

    #[tokio::test]
    async fn a_connection_stuck_connecting_is_closed() {
        let (pc, state, mut events, watchdog) = watched(Duration::from_millis(300)).await;
        state.send(LinkState::Connecting).unwrap();
        assert!(!closed_within(&pc, 100).await, "closed before the limit");
        assert!(
            closed_event_within(&mut events, 3000).await,
            "no closed event after the limit"
        );
        assert!(
            closed_within(&pc, 1000).await,
            "reported closed but not closed"
        );
        watchdog.await.unwrap();
    }

    #[tokio::test]
    async fn a_connection_that_connects_in_time_is_left_alone() {
        let (pc, state, mut events, watchdog) = watched(Duration::from_millis(200)).await;
        state.send(LinkState::Connecting).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        state.send(LinkState::Connected).unwrap();
        watchdog.await.unwrap();
        assert!(
            !closed_within(&pc, 400).await,
            "a connected connection was closed"
        );
        assert!(
            !closed_event_within(&mut events, 100).await,
            "a closed event for a connected connection"
        );
        pc.close().await.unwrap();
    }
}
