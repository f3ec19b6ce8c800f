//! The SFU: WebRTC connections and the media hot path.
//!
//! Layering (after LiveKit's `rtc`/`sfu` split): this module knows peers, tracks and
//! forwarding legs — never hearings, roles, HTTP, JSON or the database. *Who* may
//! receive *whose* media is decided by the hearing's policy function
//! (`crate::hearing::policy`) and applied here through [`PublishedTrack::add_downstream`]
//! / [`PublishedTrack::remove_downstream`].
//!
//! * [`engine`]: the coming media engine on rtc's sans-IO core (issue 14), not wired in yet.
//! * [`peer`]: one PeerConnection per participant and its negotiation steps.
//! * [`forward`]: the per-packet fan-out (lock-free reads; each leg written straight
//!   from the track's reader task, a full subscriber queue drops that leg's packet).
//! * [`layers`]: the pure layer selection (VP8 descriptor, per-leg rewriter,
//!   per-subscriber allocator); [`simulcast`] (rid → layer, layer bitrates) and
//!   [`layered`] (a parsed packet through a leg's rewriter) wire it to the reader;
//!   [`budget`]: each connection's bandwidth estimate and allocation (issue 13);
//!   [`feedback`]: which packets the subscriber's transport-cc feedback described (a
//!   lost feedback is not lost media); [`probe`]: bursts that measure the link.
//! * [`ports`]: ports from the configured range (webrtc 0.21 binds a socket per
//!   connection; it has no UDP mux).
//! * [`pacer`]: paces each connection's video at a multiple of its estimate (audio
//!   and RTCP unpaced), so keyframes do not overflow a thin link's buffer.
//! * [`rid_ack`]: withholds reception reports about simulcast layers so browsers keep
//!   labelling them with their rid (rtc 0.21 forgets a layer's SSRC on renegotiation).
//! * [`rtcp`]: the interceptor that surfaces subscribers' keyframe requests.
//! * [`rtx`]: publishers' retransmissions unwrapped into media before the NACK
//!   generator and the fan-out see them; [`dedup`]: packets that arrive twice
//!   (padding of old packets, a repair that crossed its original) dropped before
//!   they are measured or forwarded.
//! * [`red`]: RED audio read safely, its primary block for who did not accept RED.
//! * [`sdp`]: the SDP inspection done before webrtc sees an offer, and the repair
//!   formats a negotiation settled on.
//! * [`loopback`]: a self-test connection, whose own tracks come straight back to it
//!   (the pre-join network test; no hearing involved).
//!
//! Codecs: Opus for audio (in-band FEC on, `useinbandfec=1`), with RED (RFC 2198,
//! `red/48000/2`) where the browser offers it; VP8 preferred and H.264 (constrained
//! baseline, packetization-mode 1) negotiable for video, each with RTX (RFC 4588,
//! `video/rtx` with `apt=`). Loss repair in both directions:
//! * *Subscriber side*: webrtc's NACK responder answers a subscriber's NACK from what
//!   this connection sent, on the leg's RTX SSRC and payload type (each leg's own,
//!   named in [`Peer::add_leg`] and negotiated with that subscriber).
//! * *Publisher side*: the SFU NACKs the publisher for what did not arrive (every
//!   20 ms, `NACK_INTERVAL`); its RTX
//!   packets are unwrapped back into the media stream ([`rtx`]) before the fan-out, so
//!   a late repair is forwarded like any late packet and a raw RTX packet never is.
//! * *Audio*: RED is forwarded as it is to subscribers that accepted it; the others
//!   and the recorder get plain Opus (the primary block). Opus FEC needs nothing from
//!   the SFU: it is inside the Opus payload.
//! * Keyframe requests to a publisher are throttled per track and per simulcast layer
//!   (each layer has its own SSRC), whoever asks: subscribers, layer switches, the
//!   recorder.

pub mod budget;
pub mod dedup;
pub mod engine;
pub mod feedback;
pub mod forward;
pub mod layered;
pub mod layers;
pub mod loopback;
pub mod pacer;
pub mod peer;
pub mod ports;
pub mod probe;
pub mod reception;
pub mod red;
pub mod repair_streams;
pub mod rid_ack;
pub mod rtcp;
pub mod rtx;
pub mod sdp;
pub mod simulcast;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rtc::interceptor::{
    CongestionControlBuilder, NackGeneratorBuilder, NackResponderBuilder, Registry, Slot,
    TwccSenderBuilder,
};
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_rtcp_reports, configure_simulcast_extension_headers, configure_twcc_receiver_only,
};
use rtc::peer_connection::configuration::media_engine::{
    MediaEngine, MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_RTX, MIME_TYPE_VP8,
};
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind,
};
use tokio::sync::{mpsc, watch};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceCandidateType, RTCPeerConnectionState, SettingEngineBuilder,
};

pub use forward::{Downstream, LegCounters, MediaTap, PeerId, PublishedTrack};
pub use layers::{Priority, Target};
pub use loopback::{Loopback, LoopbackCounters};
pub use peer::{ActiveLeg, Peer, PeerEvent, PendingLeg};

/// An ICE candidate as the SFU exchanges it with its owner: the fields of the
/// browser's `RTCIceCandidateInit`. The SFU takes no wire type; `api::ws` converts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The `candidate:` line; empty means end-of-candidates.
    pub candidate: String,
    pub sdp_mid: Option<String>,
    pub sdp_mline_index: Option<u16>,
    pub username_fragment: Option<String>,
}

/// A connection's state as the SFU reports it (webrtc's aggregate peer-connection
/// state, without exposing webrtc's type to the layers above).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    New,
    Connecting,
    Connected,
    /// Media interrupted; ICE may still recover.
    Disconnected,
    Failed,
    Closed,
}

impl From<RTCPeerConnectionState> for LinkState {
    fn from(s: RTCPeerConnectionState) -> LinkState {
        match s {
            RTCPeerConnectionState::New => LinkState::New,
            RTCPeerConnectionState::Connecting => LinkState::Connecting,
            RTCPeerConnectionState::Connected => LinkState::Connected,
            RTCPeerConnectionState::Disconnected => LinkState::Disconnected,
            RTCPeerConnectionState::Failed => LinkState::Failed,
            RTCPeerConnectionState::Closed => LinkState::Closed,
            // `Unspecified` and any state a later webrtc adds: not yet usable.
            _ => LinkState::New,
        }
    }
}

impl std::fmt::Display for LinkState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LinkState::New => "new",
            LinkState::Connecting => "connecting",
            LinkState::Connected => "connected",
            LinkState::Disconnected => "disconnected",
            LinkState::Failed => "failed",
            LinkState::Closed => "closed",
        })
    }
}

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    Audio,
    Video,
}

impl MediaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
        }
    }
}

/// What the SFU needs from the configuration (`[media]`).
#[derive(Debug, Clone)]
pub struct SfuSettings {
    /// Address media sockets bind to. A wildcard binds every non-loopback interface.
    pub bind_ip: IpAddr,
    /// Address announced in ICE candidates instead of the bound one (1:1 NAT).
    pub announced_ip: Option<IpAddr>,
    /// Port range for media sockets; `0..=0` lets the OS choose (tests).
    pub port_min: u16,
    pub port_max: u16,
    /// Also accept ICE over TCP, on the same port number as the connection's UDP port.
    pub ice_tcp: bool,
    /// Minimum time between two keyframe requests to one publisher.
    pub pli_throttle: Duration,
    /// Time between two ICE connectivity checks of a connection (webrtc's default is
    /// 200 ms; the controlled side only confirms a pair on its next tick).
    pub ice_check_interval: Duration,
    /// The most one subscriber connection is sent (bits/s); `None`: its estimate alone.
    pub max_subscriber_bps: Option<u64>,
}

/// How many connectivity checks a candidate pair gets before it counts as failed when
/// they are `interval` apart: as many as keep webrtc's default patience (7 checks
/// 200 ms apart = 1.4 s), so a faster tick joins sooner without giving up sooner on a
/// slow link.
fn binding_requests_for(interval: Duration) -> u16 {
    let ms = interval.as_millis().max(1);
    1400u128.div_ceil(ms).clamp(7, u16::MAX as u128) as u16
}

/// Errors of the SFU. Those a client can cause say what was wrong with its input.
#[derive(Debug, thiserror::Error)]
pub enum SfuError {
    #[error("no free media port in {min}-{max}: every port of the configured range is in use")]
    NoFreePort { min: u16, max: u16 },
    #[error("invalid SDP: {0}")]
    InvalidSdp(String),
    #[error("invalid ICE candidate: {0}")]
    InvalidCandidate(String),
    #[error("this participant may not publish media; offer receive-only transceivers")]
    PublishNotAllowed,
    #[error("codec not accepted: {0}")]
    CodecRejected(String),
    #[error("webrtc: {0}")]
    WebRtc(String),
}

/// The SFU: builds peers with the configured codecs, interceptors and ports.
#[derive(Debug)]
pub struct Sfu {
    settings: SfuSettings,
    ports: Arc<ports::PortAllocator>,
    track_seq: Arc<AtomicU64>,
}

impl Sfu {
    pub fn new(settings: SfuSettings) -> Arc<Sfu> {
        let ports = ports::PortAllocator::new(
            settings.bind_ip,
            settings.port_min,
            settings.port_max,
            settings.ice_tcp,
        );
        Arc::new(Sfu {
            settings,
            ports,
            track_seq: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Media ports leased now (one per live connection).
    pub fn ports_in_use(&self) -> usize {
        self.ports.in_use()
    }

    /// Builds the PeerConnection of participant `id`; its events go to `events`.
    pub async fn create_peer(
        &self,
        id: PeerId,
        events: mpsc::UnboundedSender<PeerEvent>,
    ) -> Result<Peer, SfuError> {
        let lease = self.ports.lease().ok_or(SfuError::NoFreePort {
            min: self.settings.port_min,
            max: self.settings.port_max,
        })?;
        let addr = SocketAddr::new(self.settings.bind_ip, lease.port());

        let mut media =
            media_engine().map_err(|e| SfuError::WebRtc(format!("media engine: {e}")))?;
        let budget = budget::Budget::new(
            &id.to_string(),
            self.settings.max_subscriber_bps,
            Some(events.clone()),
        );
        let formats = Arc::new(ArcSwap::from_pointee(sdp::RepairFormats::default()));
        let registry = interceptors(&mut media, formats.clone(), budget.reception())
            .map_err(|e| SfuError::WebRtc(format!("interceptors: {e}")))?;
        // Send-side bandwidth estimation from the subscriber's transport-cc feedback
        // (its header extension and feedback are registered above), and video paced at
        // a multiple of it with audio never held: see budget.rs and pacer.rs.
        let registry = registry
            .with(
                Slot::CongestionControl,
                repair_streams::WithRepairStreams(
                    CongestionControlBuilder::new(budget.estimator()).build(),
                ),
            )
            .with(
                Slot::TwccSender,
                repair_streams::WithRepairStreams(TwccSenderBuilder::new().build()),
            )
            .with(
                Slot::Pacer,
                pacer::VideoPacer::new(budget::INITIAL_ESTIMATE_BPS).with_prober(budget.prober()),
            )
            // Before the congestion control reads the feedback: see feedback.rs.
            .with(
                Slot::from(feedback::FeedbackTap::SLOT),
                feedback::FeedbackTap::new(budget.coverage()),
            );

        let mut settings = SettingEngineBuilder::new()
            // Browsers' first connectivity check often arrives before their trickled
            // candidate; waiting for it delayed connections by ~1 s.
            .with_prflx_acceptance_min_wait(Some(Duration::ZERO))
            .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
            .with_ice_connection_attempts(
                Some(self.settings.ice_check_interval),
                Some(binding_requests_for(self.settings.ice_check_interval)),
            );
        if self.settings.bind_ip.is_loopback() {
            settings = settings.with_include_loopback_candidate(true);
        }
        if let Some(announced) = self.settings.announced_ip {
            settings =
                settings.with_nat_1to1_ips(vec![announced.to_string()], RTCIceCandidateType::Host);
        }

        let (state_tx, state_rx) = watch::channel(LinkState::New);
        let handler = Arc::new(peer::Handler {
            peer: id,
            events: events.clone(),
            state_tx,
            pli_throttle: self.settings.pli_throttle,
            track_seq: self.track_seq.clone(),
            formats: formats.clone(),
        });
        let mut builder = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .with_setting_engine(settings.build())
            .with_handler(handler as Arc<dyn PeerConnectionEventHandler>)
            .with_udp_addrs(vec![addr]);
        if self.settings.ice_tcp {
            builder = builder.with_tcp_addrs(vec![addr]);
        }
        let pc = builder
            .build()
            .await
            .map_err(|e| SfuError::WebRtc(format!("cannot create connection on {addr}: {e}")))?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);
        budget::spawn_reallocation(Arc::downgrade(&budget));
        Ok(Peer::new(
            id,
            pc,
            state_rx,
            lease,
            peer::CONNECT_TIMEOUT,
            events,
            budget,
            formats,
        ))
    }
}

/// How often the SFU asks a publisher for the packets it lacks. rtc's generator
/// NACKs on a timer only (100 ms by default), never at the gap, so each repair waited
/// 50 ms on average before it was asked for, on top of the round trip, and a second
/// try (the first retransmission lost) 100 ms more; at 10 % loss on a site's uplink
/// the court's browser froze two or three times per 20 s where a direct call, whose
/// receiver NACKs at once, never froze. At 20 ms a NACK leaves 10 ms after the gap on
/// average; the publisher's browser resends a packet at most once per round trip
/// however often it is asked, so the extra NACKs on a long link cost only their few
/// bytes.
const NACK_INTERVAL: Duration = Duration::from_millis(20);
/// How many times one missing packet is asked for: a second at [`NACK_INTERVAL`],
/// several round trips of a slow link; a packet still missing then is late for any
/// jitter buffer, and the subscriber's keyframe request takes over.
const MAX_NACKS_PER_PACKET: u16 = 50;

/// webrtc's default interceptors (NACK, reports, TWCC receiver, simulcast header
/// extensions), except that the NACK generator is fed repaired media (`rtx.rs`), and
/// the keyframe-request tap last in the chain (`rtcp.rs`).
fn interceptors(
    media: &mut MediaEngine,
    formats: Arc<ArcSwap<sdp::RepairFormats>>,
    reception: Arc<reception::ReceptionReports>,
) -> Result<Registry, webrtc::error::Error> {
    // What `register_default_interceptors` does, with our generator; the NACK
    // feedback it would register is in the codecs already (`media_engine`).
    let generator = rtx::RepairingNackGenerator::new(
        NackGeneratorBuilder::new()
            .with_interval(NACK_INTERVAL)
            .with_max_nacks_per_packet(MAX_NACKS_PER_PACKET)
            .build(),
        formats,
    );
    let registry = Registry::new()
        .with(Slot::NackResponder, NackResponderBuilder::new().build())
        .with(Slot::NackGenerator, generator);
    configure_simulcast_extension_headers(media)?;
    let registry = configure_twcc_receiver_only(registry, media)?;
    Ok(configure_rtcp_reports(registry)
        // Last in the chain: see rtcp.rs.
        .with(
            Slot::from(14_000),
            rtcp::KeyframeRequestTap::recording(reception),
        )
        // Simulcast layers stay labelled with their rid: see rid_ack.rs.
        .with(
            rid_ack::WithholdRidAcks::slot(),
            rid_ack::WithholdRidAcks::default(),
        ))
}

/// The only audio codec the SFU negotiates, so every published audio track is this.
pub(crate) fn audio_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

/// The payload types the SFU numbers its own offers with (an answer takes the
/// offer's). Chrome's numbers, so a subscriber that is also a publisher sees one
/// numbering.
const OPUS_PT: u8 = 111;
const RED_PT: u8 = 63;
const VP8_PT: u8 = 96;
const VP8_RTX_PT: u8 = 97;
const H264_PT: u8 = 102;
const H264_RTX_PT: u8 = 103;

/// RED carrying Opus, with the primary's payload type in its fmtp (RFC 2198 §5).
pub(crate) const MIME_TYPE_RED: &str = "audio/red";

/// The codecs the SFU negotiates (see the module docs).
fn media_engine() -> Result<MediaEngine, webrtc::error::Error> {
    let mut media = MediaEngine::default();
    media.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: audio_codec(),
            payload_type: OPUS_PT,
        },
        RtpCodecKind::Audio,
    )?;
    media.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: MIME_TYPE_RED.to_owned(),
                clock_rate: 48000,
                channels: 2,
                sdp_fmtp_line: format!("{OPUS_PT}/{OPUS_PT}"),
                rtcp_feedback: vec![],
            },
            payload_type: RED_PT,
        },
        RtpCodecKind::Audio,
    )?;
    let feedback = || {
        vec![
            RTCPFeedback {
                typ: "ccm".to_owned(),
                parameter: "fir".to_owned(),
            },
            RTCPFeedback {
                typ: "nack".to_owned(),
                parameter: "".to_owned(),
            },
            RTCPFeedback {
                typ: "nack".to_owned(),
                parameter: "pli".to_owned(),
            },
        ]
    };
    media.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: MIME_TYPE_VP8.to_owned(),
                clock_rate: 90000,
                channels: 0,
                sdp_fmtp_line: String::new(),
                rtcp_feedback: feedback(),
            },
            payload_type: VP8_PT,
        },
        RtpCodecKind::Video,
    )?;
    media.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: MIME_TYPE_H264.to_owned(),
                clock_rate: 90000,
                channels: 0,
                sdp_fmtp_line:
                    "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
                        .to_owned(),
                rtcp_feedback: feedback(),
            },
            payload_type: H264_PT,
        },
        RtpCodecKind::Video,
    )?;
    for (payload_type, apt) in [(VP8_RTX_PT, VP8_PT), (H264_RTX_PT, H264_PT)] {
        media.register_codec(
            RTCRtpCodecParameters {
                rtp_codec: RTCRtpCodec {
                    mime_type: MIME_TYPE_RTX.to_owned(),
                    clock_rate: 90000,
                    channels: 0,
                    sdp_fmtp_line: format!("apt={apt}"),
                    rtcp_feedback: vec![],
                },
                payload_type,
            },
            RtpCodecKind::Video,
        )?;
    }
    Ok(media)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faster_checks_keep_the_same_patience() {
        assert_eq!(binding_requests_for(Duration::from_millis(200)), 7);
        assert_eq!(binding_requests_for(Duration::from_millis(50)), 28);
        assert_eq!(binding_requests_for(Duration::from_millis(10)), 140);
        // Slower than the default: never fewer than webrtc's 7 checks.
        assert_eq!(binding_requests_for(Duration::from_millis(1000)), 7);
    }
}
