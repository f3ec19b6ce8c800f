//! Adaptive media, the I/O-free part: which layer of each published video track a
//! subscriber receives, and how the packets of changing layers become one continuous
//! stream for it (issue 13).
//!
//! Why it is shaped so: everything here is pure — packets and estimates come in as
//! values, decisions go out as values, no socket, task or clock — so the current
//! webrtc-based SFU and the later sans-IO engine can both call it per packet, and it
//! is tested with plain numbers.
//!
//! * [`vp8`]: the VP8 RTP payload descriptor (RFC 7741): parse, detect keyframes,
//!   rewrite picture id and TL0PICIDX in place.
//! * [`rewrite`]: [`LayerRewriter`], one per (published track, subscriber leg): drop or
//!   renumber each packet so sequence numbers, timestamps, picture ids and TL0PICIDX
//!   stay continuous across layer switches, temporal drops, loss and reordering.
//! * [`allocator`]: [`Allocator`], one per subscriber: the layer (or pause) of every
//!   video track for its bandwidth estimate — audio first, then the bench and the
//!   floor, then the rest — with hysteresis and a probing hint.
//!
//! # How the wiring calls it (per packet)
//!
//! On the publisher's reader: map the packet's SSRC to its spatial layer (from the
//! rid, see below), parse the VP8 descriptor once ([`vp8::Vp8Descriptor::parse`]) and
//! build a [`rewrite::SourcePacket`]. Per subscriber leg: [`LayerRewriter::process`];
//! on [`rewrite::Verdict::Forward`] clone the packet, set SSRC/payload type of the leg
//! and the rewritten sequence number and timestamp, and write picture id / TL0PICIDX
//! with [`vp8::Vp8Descriptor::rewrite`] (into a `BytesMut` copy of the payload); on
//! `Padding` send a padding-only packet with that number; while
//! [`LayerRewriter::wants_keyframe`] is `Some(layer)`, send the publisher a throttled
//! PLI for that layer's SSRC. Periodically and on estimate changes, run the
//! subscriber's [`Allocator::allocate`] and hand each track's decision to its
//! rewriter with [`LayerRewriter::set_target`].
//!
//! # What webrtc 0.21 / rtc 0.21 offer (research for the wiring)
//!
//! Paths are below `~/.cargo/registry/src/index.crates.io-*/`.
//!
//! **Simulcast arrival.** A simulcast publisher (`a=simulcast:send q;h;f`, one m-line)
//! arrives as **one** `TrackRemote` (`on_track` is called once) that delivers
//! `TrackRemoteEvent::OnOpen(RTCTrackEventInit)` **once per rid**, as each layer's
//! first packet arrives: `webrtc-0.21.1/src/peer_connection/driver.rs` ("For simulcast,
//! multiple RTCTrackEvent::OnOpen fire for the same track_id … Only create the
//! TrackRemote and call on_track the first time"). `RTCTrackEventInit`
//! (`rtc-0.21.1/src/peer_connection/event/track_event.rs`) carries `ssrc` and
//! `rid: Option<RtpStreamId>`. All layers' packets then come through the same
//! `TrackRemote::poll()` as `OnRtpPacket`; the layer of a packet is found by its
//! `header.ssrc` in the SSRC→rid map built from the `OnOpen`s (or
//! `Track::rid(ssrc)` / `Track::ssrcs()`, `webrtc-0.21.1/src/media_stream/mod.rs`).
//! The example doing exactly this is `webrtc-0.21.1/examples/simulcast/simulcast.rs`
//! (rids "q","h","f", a PLI per rid SSRC). The rid header extensions (mid,
//! rtp-stream-id, repaired-rtp-stream-id) are already registered by
//! `register_default_interceptors` through `configure_simulcast_extension_headers`
//! (`rtc-0.21.1/src/peer_connection/configuration/interceptor_registry.rs`). Note for
//! the wiring: today's `peer.rs` takes the first `OnOpen` only and `forward.rs`
//! ignores later ones, so a simulcast publisher's layers would be forwarded mixed
//! until the reader maps SSRCs to layers.
//!
//! **Bandwidth estimate.** Send-side congestion control is opt-in:
//! `configure_congestion_control(registry, estimator, CongestionFeedback::Twcc,
//! &mut media_engine)` (same `interceptor_registry.rs`) registers the transport-cc
//! feedback and header extension and places `CongestionControlBuilder` (send history
//! plus feedback ingest, `rtc-interceptor-0.21.1/src/cc/`), `TwccSenderBuilder`
//! (transport-wide sequence numbers, `src/twcc/sender.rs`), `PacerBuilder`
//! (`src/pacing/`) and `TwccReceiverBuilder`. `register_default_interceptors` only
//! adds the TWCC *receiver* (`configure_twcc_receiver_only`), i.e. feedback for the
//! publisher's estimator. The estimator is any `BandwidthEstimator`
//! (`rtc-interceptor-0.21.1/src/cc/estimator.rs`: `on_reports`, `target_bitrate`,
//! `handle_timeout`); the GCC implementation is `rtc::interceptor::Gcc`
//! (`src/gcc/estimator.rs`, `Gcc::new(initial, min, max)`). The chain takes the
//! estimator by value, so the application reads it by wrapping it: the
//! `ReportingEstimator` of `webrtc-0.21.1/examples/bandwidth-estimation-from-disk/`
//! delegates every call and publishes `target_bitrate()` into an `Arc<AtomicU64>`
//! after `on_reports`/`handle_timeout`. Since the SFU builds one registry per
//! PeerConnection (`Sfu::create_peer`), that gives a **per-PeerConnection estimate**
//! in the async crate. Caveats: the pacer then paces all of that connection's
//! packets to the estimate (queueing delay), and nothing in 0.21 sends probe padding,
//! so the estimate is capped near what is sent — hence [`allocator::Probe`], which
//! the wiring would meet with padding-only packets.
//!
//! **RTX (RFC 4588).** Negotiated by registering a `video/rtx` codec
//! (`MIME_TYPE_RTX`) with `sdp_fmtp_line: "apt=<primary pt>"` next to each video
//! codec, as `MediaEngine::register_default_codecs` does
//! (`rtc-0.21.1/src/peer_connection/configuration/media_engine.rs`, e.g. 97 for 96).
//! On receive, rtc de-encapsulates RTX into the primary SSRC with the original
//! sequence number before the track sees it (`rtc-0.21.1/src/peer_connection/
//! handler/endpoint.rs`, `handle_rtp_message`/`deencapsulate_rtx`), so repaired
//! packets reach the reader as late packets — which [`LayerRewriter`] maps to the hole
//! they fill. On send, the `NackResponder`
//! (`rtc-interceptor-0.21.1/src/nack/responder.rs`) answers with RTX packets when the
//! stream's `StreamInfo` has `ssrc_rtx`/`payload_type_rtx` (`src/stream_info.rs`).
//!
//! **RED (RFC 2198).** rtc 0.21 has no RED support (no `audio/red` MIME constant, no
//! encoder or decoder). It could only be negotiated as an opaque codec
//! (`register_codec` with `audio/red`, clock 48000, 2 channels, fmtp `111/111`) and
//! forwarded unchanged to subscribers that negotiated it too; the recorder would
//! then have to unpack it.

pub mod allocator;
pub mod rewrite;
pub mod vp8;

pub use allocator::{
    Allocation, Allocator, AllocatorConfig, Decision, Priority, TrackDemand, TrackKind,
};
pub use rewrite::{LayerRewriter, RewriterConfig, SourcePacket, Verdict};

/// The most spatial layers a track may have (simulcast encodings).
pub const MAX_SPATIAL_LAYERS: usize = 4;

/// A spatial layer (0 = lowest resolution) and the highest temporal layer of it
/// (0 = base frame rate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LayerTarget {
    pub spatial: u8,
    pub temporal: u8,
}

/// What a subscriber leg should get of a track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Forward(LayerTarget),
    Paused,
}

impl From<Decision> for Target {
    /// Audio is its single layer; a paused video track is paused.
    fn from(d: Decision) -> Self {
        match d {
            Decision::Audio => Target::Forward(LayerTarget {
                spatial: 0,
                temporal: 0,
            }),
            Decision::Video(t) => Target::Forward(t),
            Decision::Paused => Target::Paused,
        }
    }
}
