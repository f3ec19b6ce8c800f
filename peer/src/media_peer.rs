//! One WebRTC PeerConnection configured like a real client, publishing the test clips
//! and counting what it receives.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rtc::interceptor::Registry;
use rtc::media::Sample;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::{
    MediaEngine, MIME_TYPE_OPUS, MIME_TYPE_VP8,
};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceCandidateInit,
    RTCPeerConnectionIceEvent, RTCPeerConnectionState, RTCSessionDescription, SettingEngine,
    SettingEngineBuilder,
};
use webrtc::rtp_transceiver::RtpSender;

use crate::fixtures::{MediaFixtures, AUDIO_PACKET_DURATION, VIDEO_FRAME_DURATION};
use crate::hash::fnv1a64;
use crate::sdp::sending_tracks;
use crate::stats::{record_frame, Assembled, EndSignal, KindStats, ReceiveStats, Vp8Assembler};
use crate::PeerError;

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    Audio,
    Video,
}

/// Sees every RTP packet a [`MediaPeer`] receives, as it arrives (the load generator
/// reads send timestamps and sequence numbers through it). Called on the track's
/// reading task: keep it short.
pub trait RtpTap: Send + Sync + 'static {
    /// `stream` is the remote MediaStream id (the publisher's participant id when
    /// talking to the OpenHearing server).
    fn on_rtp(&self, stream: &str, kind: MediaKind, packet: &rtc::rtp::Packet, at: Instant);
}

/// How a [`MediaPeer`] treats what it receives.
#[derive(Clone, Default)]
pub struct ReceiveOptions {
    /// Called for every received RTP packet.
    pub tap: Option<Arc<dyn RtpTap>>,
    /// Skip the built-in [`ReceiveStats`] bookkeeping (VP8 reassembly, hashing, the
    /// per-packet lock); only the tap sees packets. Lifecycle events are still kept.
    pub tap_only: bool,
    /// The address the peer's UDP socket binds (default 127.0.0.1). A peer talking
    /// to a server that ignores loopback candidates (Janus/libnice) needs an address
    /// on another interface, e.g. one end of a veth pair in a test namespace.
    pub bind_ip: Option<std::net::IpAddr>,
}

impl std::fmt::Debug for ReceiveOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiveOptions")
            .field("tap", &self.tap.is_some())
            .field("tap_only", &self.tap_only)
            .field("bind_ip", &self.bind_ip)
            .finish()
    }
}

/// Writes RTP packets of the caller's making on one of the peer's own local tracks
/// (see [`MediaPeer::rtp_writer`]).
#[derive(Clone)]
pub struct RtpWriter {
    track: Arc<TrackLocalStaticSample>,
    /// The track's SSRC.
    pub ssrc: u32,
    /// The negotiated payload type.
    pub payload_type: u8,
}

impl RtpWriter {
    /// Sends `packet` as it is (set its SSRC and payload type from this writer).
    pub async fn write(&self, packet: rtc::rtp::Packet) -> Result<(), PeerError> {
        self.track.write_rtp(packet).await?;
        Ok(())
    }
}

/// State shared between the peer, its event handler and its track tasks.
#[derive(Default)]
struct Shared {
    stats: Mutex<ReceiveStats>,
    /// Hashes of frames the other side(s) sent; received frames are matched against it.
    known: RwLock<Arc<HashSet<u64>>>,
    /// Remote track id -> (stream id, kind), for tracks that have opened.
    tracks: Mutex<HashMap<String, (String, MediaKind)>>,
    /// Hashes of every distinct frame and packet this peer sent.
    sent: Mutex<HashSet<u64>>,
    receive: ReceiveOptions,
}

impl Shared {
    fn with_kind<R>(
        &self,
        stream: &str,
        kind: MediaKind,
        f: impl FnOnce(&mut KindStats) -> R,
    ) -> R {
        let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        let s = stats.streams.entry(stream.to_owned()).or_default();
        f(match kind {
            MediaKind::Audio => &mut s.audio,
            MediaKind::Video => &mut s.video,
        })
    }

    fn mark_ended(&self, stream: &str, kind: MediaKind, how: EndSignal) {
        self.with_kind(stream, kind, |k| {
            if k.ended.is_none() {
                k.ended = Some(how);
            }
        });
    }

    fn known(&self) -> Arc<HashSet<u64>> {
        self.known.read().map(|g| g.clone()).unwrap_or_default()
    }
}

struct Handler {
    candidates: mpsc::UnboundedSender<RTCIceCandidateInit>,
    state: watch::Sender<RTCPeerConnectionState>,
    shared: Arc<Shared>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        match event.candidate.to_json() {
            Ok(init) => {
                let _ = self.candidates.send(init);
            }
            Err(e) => tracing::warn!("local candidate not serialisable: {e}"),
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        tracing::debug!("peer connection state: {state}");
        self.state.send_replace(state);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        // on_track fires once per remote track (at its first RTP packet); OnOpen may fire
        // again on later renegotiations, so all per-track work lives in this one task.
        tokio::spawn(read_track(track, self.shared.clone()));
    }
}

async fn read_track(track: Arc<dyn TrackRemote>, shared: Arc<Shared>) {
    let stream = track.stream_id().await;
    let track_id = track.track_id().await;
    let kind = match track.kind().await {
        RtpCodecKind::Audio => MediaKind::Audio,
        RtpCodecKind::Video => MediaKind::Video,
        other => {
            tracing::warn!("remote track {track_id} of unexpected kind {other:?}; ignored");
            return;
        }
    };
    if let Ok(mut tracks) = shared.tracks.lock() {
        tracks.insert(track_id.clone(), (stream.clone(), kind));
    }
    shared.with_kind(&stream, kind, |k| {
        if !k.track_ids.contains(&track_id) {
            // A new track for this stream and kind: whatever ended before is replaced.
            k.track_ids.push(track_id.clone());
            k.ended = None;
        }
    });
    let mut assemblers: HashMap<u32, Vp8Assembler> = HashMap::new();
    let mut pli_sent = false;
    loop {
        let Some(event) = track.poll().await else {
            shared.with_kind(&stream, kind, |k| k.lifecycle.push("poll_none".into()));
            shared.mark_ended(&stream, kind, EndSignal::PollNone);
            return;
        };
        match event {
            TrackRemoteEvent::OnRtpPacket(pkt) => {
                let now = Instant::now();
                if let Some(tap) = &shared.receive.tap {
                    tap.on_rtp(&stream, kind, &pkt, now);
                }
                if shared.receive.tap_only {
                    continue;
                }
                let h = &pkt.header;
                let known = shared.known();
                let assembled = match kind {
                    MediaKind::Video => Some(assemblers.entry(h.ssrc).or_default().push(
                        h.sequence_number,
                        h.timestamp,
                        h.marker,
                        &pkt.payload,
                    )),
                    MediaKind::Audio => None,
                };
                shared.with_kind(&stream, kind, |k| {
                    k.rtp_packets += 1;
                    k.bytes += pkt.payload.len() as u64;
                    *k.packets_per_ssrc.entry(h.ssrc).or_default() += 1;
                    k.first_packet_at.get_or_insert(now);
                    k.last_packet_at = Some(now);
                    match assembled {
                        None => {
                            if !pkt.payload.is_empty() {
                                record_frame(k, &pkt.payload, false, &known);
                            }
                        }
                        Some((result, lost)) => {
                            if lost {
                                k.frames_discarded += 1;
                            }
                            match result {
                                Assembled::Frame(f) => record_frame(k, &f, true, &known),
                                Assembled::Discarded => k.frames_discarded += 1,
                                Assembled::Nothing => {}
                            }
                        }
                    }
                });
            }
            TrackRemoteEvent::OnOpen(init) => {
                shared.with_kind(&stream, kind, |k| {
                    k.opens += 1;
                    k.lifecycle.push("open".into());
                });
                // Like a browser joining mid-stream: ask for a key frame once.
                if kind == MediaKind::Video && !pli_sent {
                    pli_sent = true;
                    let pli = PictureLossIndication {
                        sender_ssrc: 0,
                        media_ssrc: init.ssrc,
                    };
                    if let Err(e) = track.write_rtcp(vec![Box::new(pli)]).await {
                        tracing::debug!("PLI not sent: {e}");
                    }
                }
            }
            TrackRemoteEvent::OnEnded => {
                shared.with_kind(&stream, kind, |k| k.lifecycle.push("ended".into()));
                shared.mark_ended(&stream, kind, EndSignal::OnEnded);
            }
            TrackRemoteEvent::OnEnding => {
                shared.with_kind(&stream, kind, |k| k.lifecycle.push("ending".into()))
            }
            TrackRemoteEvent::OnMute => {
                shared.with_kind(&stream, kind, |k| k.lifecycle.push("mute".into()))
            }
            TrackRemoteEvent::OnUnmute => {
                shared.with_kind(&stream, kind, |k| k.lifecycle.push("unmute".into()))
            }
            TrackRemoteEvent::OnError => {
                shared.with_kind(&stream, kind, |k| k.lifecycle.push("error".into()))
            }
            _ => {}
        }
    }
}

/// A local track being (or ready to be) published.
struct LocalTrack {
    track: Arc<TrackLocalStaticSample>,
    sender: Arc<dyn RtpSender>,
    ssrc: u32,
}

#[derive(Default)]
struct Publishing {
    audio: Option<LocalTrack>,
    video: Option<LocalTrack>,
    audio_task: Option<JoinHandle<()>>,
    video_task: Option<JoinHandle<()>>,
}

/// How often this peer's ICE agent checks while connecting. Browsers check a new
/// candidate pair at once; webrtc's tick paces the first check and the nomination that
/// follows it, so each join this peer measures pays it up to twice (at 50 ms: a join
/// p50 of 114–121 ms against 65–67 ms at 10 ms, same server, BENCHMARKS.md).
pub const ICE_CHECK_INTERVAL: Duration = Duration::from_millis(10);
/// Checks per candidate pair before it fails: webrtc's default patience (1.4 s).
pub const ICE_CHECKS_PER_PAIR: u16 = 140;

/// What every client peer of the tests and the load generator is built with (full
/// peers here, lite observers in `openhearing-loadgen`): default codecs and
/// interceptors; no mDNS, peer-reflexive candidates taken at once, a new pair checked
/// every [`ICE_CHECK_INTERVAL`], so joins are measured the same way by both.
pub fn client_config() -> Result<(MediaEngine, Registry, SettingEngine), PeerError> {
    let mut media_engine = MediaEngine::default();
    media_engine.register_default_codecs()?;
    let registry = register_default_interceptors(Registry::new(), &mut media_engine)?;
    let settings = SettingEngineBuilder::new()
        .with_prflx_acceptance_min_wait(Some(Duration::ZERO))
        .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
        .with_ice_connection_attempts(Some(ICE_CHECK_INTERVAL), Some(ICE_CHECKS_PER_PAIR))
        .build();
    Ok((media_engine, registry, settings))
}

/// One PeerConnection: 127.0.0.1 only (unless [`ReceiveOptions::bind_ip`] says otherwise), default codecs and interceptors, no mDNS,
/// peer-reflexive candidates accepted at once.
pub struct MediaPeer {
    pc: Arc<dyn PeerConnection>,
    shared: Arc<Shared>,
    state: watch::Receiver<RTCPeerConnectionState>,
    candidates: Mutex<Option<mpsc::UnboundedReceiver<RTCIceCandidateInit>>>,
    /// Remote candidates that arrived before any remote description.
    pending_candidates: tokio::sync::Mutex<Vec<RTCIceCandidateInit>>,
    /// Serialises offer/answer steps.
    negotiation: tokio::sync::Mutex<()>,
    publishing: tokio::sync::Mutex<Publishing>,
}

impl MediaPeer {
    /// Builds the PeerConnection. Local ICE candidates come out of
    /// [`take_candidates`](Self::take_candidates).
    pub async fn new() -> Result<MediaPeer, PeerError> {
        Self::with_receive(ReceiveOptions::default()).await
    }

    /// Like [`new`](Self::new), with a tap on received RTP.
    pub async fn with_receive(receive: ReceiveOptions) -> Result<MediaPeer, PeerError> {
        let (media_engine, registry, setting_engine) = client_config()?;
        let bind = std::net::SocketAddr::new(
            receive
                .bind_ip
                .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)),
            0,
        )
        .to_string();
        let (cand_tx, cand_rx) = mpsc::unbounded_channel();
        let (state_tx, state_rx) = watch::channel(RTCPeerConnectionState::New);
        let shared = Arc::new(Shared {
            receive,
            ..Shared::default()
        });
        let handler = Arc::new(Handler {
            candidates: cand_tx,
            state: state_tx,
            shared: shared.clone(),
        });
        let pc = PeerConnectionBuilder::new()
            .with_media_engine(media_engine)
            .with_interceptor_registry(registry)
            .with_setting_engine(setting_engine)
            .with_handler(handler)
            .with_udp_addrs(vec![bind])
            .build()
            .await?;
        Ok(MediaPeer {
            pc: Arc::new(pc),
            shared,
            state: state_rx,
            candidates: Mutex::new(Some(cand_rx)),
            pending_candidates: tokio::sync::Mutex::new(Vec::new()),
            negotiation: tokio::sync::Mutex::new(()),
            publishing: tokio::sync::Mutex::new(Publishing::default()),
        })
    }

    /// The underlying connection, for anything this wrapper does not cover.
    pub fn pc(&self) -> &Arc<dyn PeerConnection> {
        &self.pc
    }

    /// The receiver of local ICE candidates (only the first call gets it).
    pub fn take_candidates(&self) -> Option<mpsc::UnboundedReceiver<RTCIceCandidateInit>> {
        self.candidates.lock().ok().and_then(|mut g| g.take())
    }

    /// Adds an Opus and a VP8 track whose MediaStream id is `stream_id`.
    pub async fn add_media_tracks(&self, stream_id: &str) -> Result<(), PeerError> {
        let mut p = self.publishing.lock().await;
        if p.audio.is_some() || p.video.is_some() {
            return Err(PeerError::State("tracks already added".into()));
        }
        let opus = RTCRtpCodec {
            mime_type: MIME_TYPE_OPUS.to_owned(),
            clock_rate: 48000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
            rtcp_feedback: vec![],
        };
        let vp8 = RTCRtpCodec {
            mime_type: MIME_TYPE_VP8.to_owned(),
            clock_rate: 90000,
            channels: 0,
            sdp_fmtp_line: String::new(),
            rtcp_feedback: vec![],
        };
        p.audio = Some(self.add_local(stream_id, RtpCodecKind::Audio, opus).await?);
        p.video = Some(self.add_local(stream_id, RtpCodecKind::Video, vp8).await?);
        Ok(())
    }

    async fn add_local(
        &self,
        stream_id: &str,
        kind: RtpCodecKind,
        codec: RTCRtpCodec,
    ) -> Result<LocalTrack, PeerError> {
        let ssrc = (uuid::Uuid::new_v4().as_u128() as u32).max(1);
        let track = Arc::new(TrackLocalStaticSample::new(
            Instant::now(),
            MediaStreamTrack::new(
                stream_id.to_owned(),
                format!("{stream_id}-{kind}"),
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
            ),
        )?);
        let sender = self
            .pc
            .add_track(track.clone() as Arc<dyn TrackLocal>)
            .await?;
        Ok(LocalTrack {
            track,
            sender,
            ssrc,
        })
    }

    /// A writer for RTP packets of the caller's own making on the local `kind` track
    /// (instead of [`start_publishing`](Self::start_publishing)). Needs
    /// [`add_media_tracks`](Self::add_media_tracks) and a completed negotiation.
    pub async fn rtp_writer(&self, kind: MediaKind) -> Result<RtpWriter, PeerError> {
        let p = self.publishing.lock().await;
        let t = match kind {
            MediaKind::Audio => p.audio.as_ref(),
            MediaKind::Video => p.video.as_ref(),
        }
        .ok_or_else(|| PeerError::State(format!("no local {kind:?} track")))?;
        Ok(RtpWriter {
            track: t.track.clone(),
            ssrc: t.ssrc,
            payload_type: payload_type(&t.sender).await?,
        })
    }

    /// Adds receive-only audio and video transceivers (for a participant that does not
    /// publish).
    pub async fn add_recvonly_transceivers(&self) -> Result<(), PeerError> {
        for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
            self.pc
                .add_transceiver_from_kind(
                    kind,
                    Some(RTCRtpTransceiverInit {
                        direction: RTCRtpTransceiverDirection::Recvonly,
                        streams: vec![],
                        send_encodings: vec![],
                    }),
                )
                .await?;
        }
        Ok(())
    }

    /// Creates an offer, sets it as the local description and returns its SDP.
    pub async fn create_offer(&self) -> Result<String, PeerError> {
        let _n = self.negotiation.lock().await;
        let offer = self.pc.create_offer(None).await?;
        self.pc.set_local_description(offer.clone()).await?;
        Ok(offer.sdp)
    }

    /// Applies the answer to our offer.
    pub async fn apply_answer(&self, sdp: String) -> Result<(), PeerError> {
        let _n = self.negotiation.lock().await;
        self.apply_remote(RTCSessionDescription::answer(sdp.clone())?, &sdp)
            .await
    }

    /// Applies a remote offer and returns our answer (already set locally).
    pub async fn answer_offer(&self, sdp: String) -> Result<String, PeerError> {
        let _n = self.negotiation.lock().await;
        self.apply_remote(RTCSessionDescription::offer(sdp.clone())?, &sdp)
            .await?;
        let answer = self.pc.create_answer(None).await?;
        self.pc.set_local_description(answer.clone()).await?;
        Ok(answer.sdp)
    }

    async fn apply_remote(&self, desc: RTCSessionDescription, sdp: &str) -> Result<(), PeerError> {
        self.pc.set_remote_description(desc).await?;
        let pending = std::mem::take(&mut *self.pending_candidates.lock().await);
        for c in pending {
            if let Err(e) = self.pc.add_ice_candidate(c).await {
                tracing::warn!("queued remote candidate refused: {e}");
            }
        }
        // webrtc 0.21 does not signal a remote track that stopped being sent (no OnEnded,
        // no OnMute, poll() keeps waiting): read it from the description.
        let live = sending_tracks(sdp);
        let tracks: Vec<(String, String, MediaKind)> = self
            .shared
            .tracks
            .lock()
            .map(|t| {
                t.iter()
                    .map(|(id, (s, k))| (id.clone(), s.clone(), *k))
                    .collect()
            })
            .unwrap_or_default();
        for (track_id, stream, kind) in tracks {
            if !live.contains(&(stream.clone(), track_id.clone())) {
                self.shared.with_kind(&stream, kind, |k| {
                    // Only the latest track of this stream and kind decides.
                    if k.track_ids.last() == Some(&track_id) && k.ended.is_none() {
                        k.ended = Some(EndSignal::RemoteDescription);
                        k.lifecycle.push("not_in_remote_description".into());
                    }
                });
            }
        }
        Ok(())
    }

    /// Adds a remote candidate, or queues it until a remote description is set.
    pub async fn add_remote_candidate(&self, c: RTCIceCandidateInit) -> Result<(), PeerError> {
        let mut pending = self.pending_candidates.lock().await;
        if self.pc.remote_description().await.is_none() {
            pending.push(c);
            return Ok(());
        }
        drop(pending);
        self.pc.add_ice_candidate(c).await?;
        Ok(())
    }

    /// The current connection state.
    pub fn connection_state(&self) -> RTCPeerConnectionState {
        *self.state.borrow()
    }

    /// Waits until the connection is `Connected`; fails early on `Failed`/`Closed`.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<(), PeerError> {
        let mut rx = self.state.clone();
        let wait = async move {
            rx.wait_for(|s| {
                matches!(
                    s,
                    RTCPeerConnectionState::Connected
                        | RTCPeerConnectionState::Failed
                        | RTCPeerConnectionState::Closed
                )
            })
            .await
            .map(|s| *s)
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(RTCPeerConnectionState::Connected)) => Ok(()),
            Ok(Ok(s)) => Err(PeerError::Connection(format!("is {s}"))),
            Ok(Err(_)) => Err(PeerError::Connection("handler dropped".into())),
            Err(_) => Err(PeerError::Timeout {
                what: "the peer connection to connect".into(),
                after: timeout,
            }),
        }
    }

    /// Starts sending the clips in real time, looping (video 1/15 s per frame, audio
    /// 20 ms per packet). Call once connected; a no-op for kinds already running.
    pub async fn start_publishing(&self, fixtures: Arc<MediaFixtures>) -> Result<(), PeerError> {
        let mut p = self.publishing.lock().await;
        if p.audio.is_none() && p.video.is_none() {
            return Err(PeerError::State("no local tracks to publish".into()));
        }
        if let Some(t) = &p.audio {
            if p.audio_task.as_ref().is_none_or(|h| h.is_finished()) {
                let frames: Vec<bytes::Bytes> = fixtures.audio.clone();
                let pt = payload_type(&t.sender).await?;
                p.audio_task = Some(tokio::spawn(pace(
                    t.track.clone(),
                    t.ssrc,
                    pt,
                    frames,
                    AUDIO_PACKET_DURATION,
                    self.shared.clone(),
                )));
            }
        }
        if let Some(t) = &p.video {
            if p.video_task.as_ref().is_none_or(|h| h.is_finished()) {
                let frames: Vec<bytes::Bytes> =
                    fixtures.video.iter().map(|f| f.data.clone()).collect();
                let pt = payload_type(&t.sender).await?;
                p.video_task = Some(tokio::spawn(pace(
                    t.track.clone(),
                    t.ssrc,
                    pt,
                    frames,
                    VIDEO_FRAME_DURATION,
                    self.shared.clone(),
                )));
            }
        }
        Ok(())
    }

    /// Stops sending (the tracks stay negotiated).
    pub async fn stop_publishing(&self) {
        let mut p = self.publishing.lock().await;
        for h in [p.audio_task.take(), p.video_task.take()]
            .into_iter()
            .flatten()
        {
            h.abort();
        }
    }

    /// Stops sending video and removes the video sender; renegotiate afterwards.
    pub async fn remove_video(&self) -> Result<(), PeerError> {
        let mut p = self.publishing.lock().await;
        if let Some(h) = p.video_task.take() {
            h.abort();
        }
        let t = p
            .video
            .take()
            .ok_or_else(|| PeerError::State("no video track".into()))?;
        self.pc.remove_track(&t.sender).await?;
        Ok(())
    }

    /// Hashes of every distinct frame and packet sent so far.
    pub fn sent_hashes(&self) -> HashSet<u64> {
        self.shared
            .sent
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// Sets the hashes received frames are matched against (what the other side sent).
    /// Frames received before are not re-examined; their hashes stay in
    /// [`KindStats::recent_frame_hashes`].
    pub fn set_known_hashes(&self, known: HashSet<u64>) {
        if let Ok(mut g) = self.shared.known.write() {
            *g = Arc::new(known);
        }
    }

    /// A snapshot of everything received.
    pub fn stats(&self) -> ReceiveStats {
        self.shared
            .stats
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// Polls [`stats`](Self::stats) every 50 ms until `pred` holds or `timeout` passes.
    pub async fn wait_until(
        &self,
        mut pred: impl FnMut(&ReceiveStats) -> bool,
        timeout: Duration,
    ) -> Result<ReceiveStats, PeerError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let s = self.stats();
            if pred(&s) {
                return Ok(s);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(PeerError::Timeout {
                    what: format!("a receive condition (last stats: {})", summary(&s)),
                    after: timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops publishing and closes the connection.
    pub async fn close(&self) -> Result<(), PeerError> {
        self.stop_publishing().await;
        self.pc.close().await?;
        Ok(())
    }
}

/// One line per stream for error messages.
pub(crate) fn summary(s: &ReceiveStats) -> String {
    let mut parts: Vec<String> = s
        .streams
        .iter()
        .map(|(id, st)| {
            format!(
                "{id}: audio {} pkts/{} matched{}, video {} pkts/{} frames/{} matched{}",
                st.audio.rtp_packets,
                st.audio.frames_matched,
                if st.audio.is_ended() { " (ended)" } else { "" },
                st.video.rtp_packets,
                st.video.frames,
                st.video.frames_matched,
                if st.video.is_ended() { " (ended)" } else { "" },
            )
        })
        .collect();
    parts.sort();
    if parts.is_empty() {
        "nothing received".into()
    } else {
        parts.join("; ")
    }
}

async fn payload_type(sender: &Arc<dyn RtpSender>) -> Result<u8, PeerError> {
    sender
        .get_parameters()
        .await?
        .rtp_parameters
        .codecs
        .first()
        .map(|c| c.payload_type)
        .ok_or_else(|| PeerError::State("sender has no negotiated codec (negotiate first)".into()))
}

/// Sends `frames` forever, one every `period`, recording their hashes.
async fn pace(
    track: Arc<TrackLocalStaticSample>,
    ssrc: u32,
    pt: u8,
    frames: Vec<bytes::Bytes>,
    period: Duration,
    shared: Arc<Shared>,
) {
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut errors = 0u64;
    for data in frames.iter().cycle() {
        ticker.tick().await;
        let h = fnv1a64(data);
        let sample = Sample {
            data: data.clone(),
            duration: period,
            ..Sample::new(Instant::now())
        };
        match track.sample_writer(ssrc, pt).write_sample(&sample).await {
            Ok(()) => {
                if let Ok(mut s) = shared.sent.lock() {
                    s.insert(h);
                }
            }
            Err(e) => {
                errors += 1;
                if errors == 1 || errors.is_multiple_of(100) {
                    tracing::warn!("write_sample failed ({errors} so far): {e}");
                }
            }
        }
    }
}
