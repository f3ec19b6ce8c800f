//! The media hot path: one published track fanned out to N subscriber legs.
//!
//! Design (why it looks like this):
//! * One reader task per published track pulls RTP from webrtc and, per packet, loads
//!   the current subscriber list through an [`ArcSwap`] — no lock is taken per packet.
//!   The list is replaced (copy on write) only when a subscriber is added or removed,
//!   which is rare next to packets.
//! * Each subscriber leg ([`Downstream`]) is written from the reader task itself,
//!   without waiting: webrtc's `write_rtp` only queues the packet on the subscriber
//!   connection's bounded driver channel, and when that channel is full the packet is
//!   dropped and counted. A slow subscriber loses packets; it never delays the
//!   publisher or the other subscribers. (An earlier design had a queue and a writer
//!   task per leg: one more channel hop and task wake-up per packet per subscriber,
//!   for a queue that sat in front of webrtc's own.)
//! * Header extensions are stripped once, before the fan-out: their ids differ
//!   between legs and webrtc drops a packet with an unknown one. Stripping first also
//!   makes each per-subscriber clone cheap (payload is a refcounted `Bytes`).
//! * Each leg rewrites SSRC and payload type to the subscriber leg's values, which
//!   only exist after that leg's negotiation completed.
//! * A **simulcast** track (its first packet carries a rid) takes a second path: the
//!   reader maps each packet's SSRC to its spatial layer ([`super::simulcast`]),
//!   parses it once ([`super::layered::Parsed`]), and every leg passes it through its
//!   own [`super::layers::LayerRewriter`], whose target the subscriber's allocator sets
//!   ([`super::budget`]). Keyframe requests then go to one layer's SSRC. The recorder's
//!   tap gets the top layer through a rewriter of its own, so the archive holds one
//!   continuous stream of the best resolution. A track without rid keeps the first
//!   path exactly: every packet to every leg, renumbered by nothing.
//! * Each track measures the bitrate of each of its layers (audio and plain video as
//!   layer 0) for the allocators; the reader publishes it into atomics twice a second.
//! * Repair formats: a publisher's RTX reaches the reader already unwrapped into media
//!   ([`super::rtx`]); a packet still carrying an RTX payload type is dropped, never
//!   forwarded as media. A **RED** audio packet ([`super::red`]) goes as it is to legs
//!   that accepted RED and as its primary Opus block to the others and to the tap, so
//!   the recorder only ever sees plain Opus.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use futures_util::FutureExt;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::RTCRtpCodec;
use uuid::Uuid;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

use super::dedup::SeenBySsrc;
use super::layered::{Format, LayeredLeg, Parsed, SimulcastFanout};
use super::layers::{Priority, RewriterConfig, Target, MAX_SPATIAL_LAYERS};
use super::sdp::RepairFormats;
use super::simulcast::{LayerMeter, LayerRates, MAX_TEMPORAL_LAYERS};
use super::MediaKind;

/// How often a track's layer bitrates are published for the allocators.
const METER_WINDOW: Duration = Duration::from_millis(500);

/// A participant's connection, as the SFU knows it: just an id.
pub type PeerId = Uuid;

/// An internal consumer of a published track's packets (the recorder): no
/// PeerConnection, no renegotiation. It is called on the track's reader task for
/// every packet, so it must not block — queue and return.
pub trait MediaTap: Send + Sync {
    /// One RTP packet as the publisher sent it (header extensions stripped).
    fn rtp(&self, packet: &rtp::Packet, arrival: std::time::SystemTime);
    /// A sender report from the publisher: `ntp_time` (NTP format) is the wall-clock
    /// instant of `rtp_time` on the track's RTP clock.
    fn sender_report(&self, ssrc: u32, ntp_time: u64, rtp_time: u32);
}

/// What webrtc's first `OnOpen` of a track says: the SSRC of its first packet and,
/// for a simulcast track, that layer's rid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub ssrc: u32,
    pub rid: Option<String>,
}

/// One track a peer publishes, with its current subscribers.
pub struct PublishedTrack {
    /// Unique within the server: `<publisher>-<kind>-<n>`.
    pub id: String,
    pub publisher: PeerId,
    pub kind: MediaKind,
    pub codec: RTCRtpCodec,
    remote: Arc<dyn TrackRemote>,
    /// The rid of the first layer: `Some` makes this a simulcast track.
    first_rid: Option<String>,
    media_ssrc: AtomicU32,
    /// SSRC of each spatial layer of a simulcast track (0: not opened).
    layer_ssrcs: [AtomicU32; MAX_SPATIAL_LAYERS],
    /// Measured bits/s per layer (see [`LayerRates`]), published by the reader.
    rates: [[AtomicU64; MAX_TEMPORAL_LAYERS]; MAX_SPATIAL_LAYERS],
    /// The allocators' [`Priority`] of this track, set by the hearing.
    priority: AtomicU8,
    /// A screen share (its publisher's second video track), as the hearing decided.
    screen: AtomicBool,
    downstreams: ArcSwap<Vec<Arc<Downstream>>>,
    /// The recorder's tap, when the policy lets it record this track now.
    tap: ArcSwap<Option<Arc<dyn MediaTap>>>,
    /// One throttle per spatial layer (a plain track uses the first).
    keyframes: [KeyframeRequester; MAX_SPATIAL_LAYERS],
    /// The publisher connection's negotiated RTX and RED payload types.
    formats: Arc<ArcSwap<RepairFormats>>,
    ended: AtomicBool,
    /// RTP packets received from the publisher (the media-health sampler reads it).
    received: AtomicU64,
}

impl std::fmt::Debug for PublishedTrack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishedTrack")
            .field("id", &self.id)
            .field("publisher", &self.publisher)
            .field("kind", &self.kind)
            .finish()
    }
}

impl PublishedTrack {
    // One argument per thing the publisher's connection knows of the track; a struct
    // for them would only be unpacked here.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: String,
        publisher: PeerId,
        kind: MediaKind,
        codec: RTCRtpCodec,
        opened: Opened,
        remote: Arc<dyn TrackRemote>,
        pli_throttle: Duration,
        formats: Arc<ArcSwap<RepairFormats>>,
    ) -> Arc<Self> {
        let Opened { ssrc, rid } = opened;
        Arc::new(PublishedTrack {
            id,
            publisher,
            kind,
            codec,
            remote,
            first_rid: rid.filter(|r| !r.is_empty() && kind == MediaKind::Video),
            media_ssrc: AtomicU32::new(ssrc),
            layer_ssrcs: Default::default(),
            rates: Default::default(),
            priority: AtomicU8::new(priority_code(Priority::Normal)),
            screen: AtomicBool::new(false),
            downstreams: ArcSwap::from_pointee(Vec::new()),
            tap: ArcSwap::from_pointee(None),
            keyframes: std::array::from_fn(|_| KeyframeRequester::new(pli_throttle)),
            formats,
            ended: AtomicBool::new(false),
            received: AtomicU64::new(0),
        })
    }

    /// Whether this track is simulcast (its legs select layers).
    pub fn is_simulcast(&self) -> bool {
        self.first_rid.is_some()
    }

    /// How the rewriters of this track's legs behave.
    pub fn rewriter_config(&self) -> RewriterConfig {
        RewriterConfig {
            clock_rate: self.codec.clock_rate,
            keyframes: self.kind == MediaKind::Video,
        }
    }

    /// How much this track matters to every subscriber's allocator. The SFU knows no
    /// roles: the hearing sets it (the bench, the floor, everyone else).
    pub fn set_priority(&self, priority: Priority) {
        self.priority
            .store(priority_code(priority), Ordering::Relaxed);
    }

    /// Marks the track as a screen share. The SFU forwards it as any plain video;
    /// only its legs' names say what it is (see `Peer::add_leg`),
    /// so that a receiver tells it from the publisher's camera.
    pub fn set_screen(&self, screen: bool) {
        self.screen.store(screen, Ordering::Relaxed);
    }

    pub fn is_screen(&self) -> bool {
        self.screen.load(Ordering::Relaxed)
    }

    pub fn priority(&self) -> Priority {
        match self.priority.load(Ordering::Relaxed) {
            0 => Priority::Bench,
            1 => Priority::Floor,
            _ => Priority::Normal,
        }
    }

    /// The measured bitrates of the track's layers (all zero until measured).
    pub fn layer_rates(&self) -> LayerRates {
        std::array::from_fn(|s| std::array::from_fn(|t| self.rates[s][t].load(Ordering::Relaxed)))
    }

    fn publish_rates(&self, rates: &LayerRates) {
        for (cells, values) in self.rates.iter().zip(rates) {
            for (cell, &v) in cells.iter().zip(values) {
                cell.store(v, Ordering::Relaxed);
            }
        }
    }

    /// Reads the publisher's RTP until the track ends, fanning every packet out.
    /// Returns when the remote track ended (publisher left or renegotiated it away).
    pub(crate) async fn run_reader(self: Arc<Self>) {
        let mut meter = LayerMeter::new(METER_WINDOW);
        let mut red_seen = false;
        let mut seen = SeenBySsrc::default();
        let mut simulcast = self.first_rid.clone().map(|rid| {
            let format = Format::of_mime(&self.codec.mime_type);
            let mut fanout = SimulcastFanout::new(self.rewriter_config(), format, METER_WINDOW);
            self.open_layer(&mut fanout, self.media_ssrc.load(Ordering::Relaxed), &rid);
            fanout
        });
        while let Some(event) = self.remote.poll().await {
            match event {
                TrackRemoteEvent::OnRtpPacket(mut packet) => {
                    if self.is_ended() {
                        break; // withdrawn
                    }
                    self.received.fetch_add(1, Ordering::Relaxed);
                    strip_extensions(&mut packet);
                    let now = Instant::now();
                    let formats = self.formats.load();
                    if self.kind == MediaKind::Video && formats.is_rtx(packet.header.payload_type) {
                        // A repair rtx.rs could not attribute: not media.
                        tracing::trace!(track = %self.id, ssrc = packet.header.ssrc, "raw RTX packet dropped");
                        continue;
                    }
                    if !seen.first_time(packet.header.ssrc, packet.header.sequence_number) {
                        // Padding of old packets, or a repair that crossed its original.
                        tracing::trace!(track = %self.id, ssrc = packet.header.ssrc, seq = packet.header.sequence_number, "duplicate dropped");
                        continue;
                    }
                    if let Some(fanout) = simulcast.as_mut() {
                        let tap = self.tap.load();
                        let legs = self.downstreams.load();
                        let out = fanout.packet(&packet, now, &legs, tap.as_ref().as_ref());
                        if let Some(rates) = out.rates {
                            self.publish_rates(&rates);
                        }
                        for layer in out.wanted_keyframes() {
                            self.request_layer_keyframe(layer);
                        }
                        continue;
                    }
                    self.media_ssrc.store(packet.header.ssrc, Ordering::Relaxed);
                    if let Some(rates) = meter.record(0, 0, packet.payload.len(), now) {
                        self.publish_rates(&rates);
                    }
                    let red = self.kind == MediaKind::Audio
                        && formats.red == Some(packet.header.payload_type);
                    if red && !red_seen {
                        red_seen = true;
                        tracing::info!(track = %self.id, payload_type = packet.header.payload_type, "audio arrives as RED");
                    }
                    let tapped = if red {
                        // Malformed RED: nothing for plain legs and the tap.
                        let plain = super::red::primary(&packet).ok();
                        forward_red(&self.downstreams.load(), &packet, plain.as_ref());
                        plain
                    } else {
                        forward(&self.downstreams.load(), &packet);
                        Some(packet)
                    };
                    if let (Some(tap), Some(packet)) = (self.tap.load().as_ref(), tapped) {
                        tap.rtp(&packet, std::time::SystemTime::now());
                    }
                }
                TrackRemoteEvent::OnRtcpPacket(packets) => {
                    // The interceptor delivers sender reports on the receive side (rtcp.rs).
                    if let Some(tap) = self.tap.load().as_ref() {
                        for p in &packets {
                            if let Some(sr) = p.as_any().downcast_ref::<SenderReport>() {
                                let rtp_time = match simulcast.as_ref() {
                                    None => Some(sr.rtp_time),
                                    Some(s) => s.tap_time(sr.ssrc, sr.rtp_time),
                                };
                                if let Some(rtp_time) = rtp_time {
                                    tap.sender_report(sr.ssrc, sr.ntp_time, rtp_time);
                                }
                            }
                        }
                    }
                }
                TrackRemoteEvent::OnOpen(init) => {
                    // Later layers of a simulcast track (the first opened in peer.rs).
                    if let (Some(fanout), Some(rid)) = (simulcast.as_mut(), init.rid.as_deref()) {
                        self.open_layer(fanout, init.ssrc, rid);
                    }
                }
                TrackRemoteEvent::OnEnded => break,
                _ => {}
            }
        }
        self.ended.store(true, Ordering::Release);
        // Release every leg and the tap: nothing is forwarded from an ended track.
        self.downstreams.store(Arc::new(Vec::new()));
        self.tap.store(Arc::new(None));
    }

    /// A simulcast layer opened: its SSRC is where its keyframe requests go.
    fn open_layer(&self, fanout: &mut SimulcastFanout, ssrc: u32, rid: &str) {
        match fanout.open(ssrc, rid) {
            Some(layer) => {
                self.layer_ssrcs[usize::from(layer)].store(ssrc, Ordering::Relaxed);
                tracing::debug!(track = %self.id, rid, ssrc, layer, "simulcast layer opened");
            }
            None => {
                tracing::warn!(track = %self.id, rid, "more simulcast layers than supported: ignored");
            }
        }
    }

    /// Starts (`Some`) or stops (`None`) handing this track's packets to a tap. Video
    /// taps get a keyframe requested so they can start a decodable file at once. A
    /// simulcast track's tap gets its top layer only, as one continuous stream.
    pub fn set_tap(self: &Arc<Self>, tap: Option<Arc<dyn MediaTap>>) {
        let starting = tap.is_some();
        self.tap.store(Arc::new(tap));
        // A simulcast track's tap asks for its layer's keyframe itself (its rewriter).
        if starting && self.kind == MediaKind::Video && !self.is_simulcast() {
            self.request_keyframe();
        }
    }

    /// Whether a tap receives this track now.
    pub fn is_tapped(&self) -> bool {
        self.tap.load().is_some()
    }

    /// The publisher's own id of the track (its `a=msid` track id).
    pub async fn remote_track_id(&self) -> String {
        self.remote.track_id().await
    }

    /// The publisher stopped sending this track in a renegotiation (see
    /// [`super::sdp::sent_track_ids`]): it ends as if the remote track had, and its
    /// reader stops at its next packet, if any comes.
    pub fn withdraw(&self) {
        self.ended.store(true, Ordering::Release);
        self.downstreams.store(Arc::new(Vec::new()));
        self.tap.store(Arc::new(None));
    }

    /// Whether the publisher's track has ended.
    pub fn is_ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    /// Starts forwarding to `leg` (replacing an earlier leg of the same subscriber)
    /// and, for video, asks the publisher for a keyframe so the new subscriber can
    /// start decoding at once (of a simulcast track: for the layer the leg is given).
    pub fn add_downstream(self: &Arc<Self>, leg: Arc<Downstream>) {
        self.downstreams.rcu(|cur| {
            let mut next: Vec<Arc<Downstream>> = cur
                .iter()
                .filter(|d| d.subscriber != leg.subscriber)
                .cloned()
                .collect();
            next.push(leg.clone());
            next
        });
        // A simulcast leg asks for its own layer's keyframe (its rewriter).
        if self.kind == MediaKind::Video && !self.is_simulcast() {
            self.request_keyframe();
        }
    }

    /// Stops forwarding to `subscriber` at once. Returns whether a leg was removed.
    pub fn remove_downstream(&self, subscriber: PeerId) -> bool {
        let mut removed = false;
        self.downstreams.rcu(|cur| {
            let next: Vec<Arc<Downstream>> = cur
                .iter()
                .filter(|d| d.subscriber != subscriber)
                .cloned()
                .collect();
            removed = next.len() != cur.len();
            next
        });
        removed
    }

    /// RTP packets received from the publisher so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// The counters of every current leg, by subscriber.
    pub fn leg_counters(&self) -> Vec<(PeerId, LegCounters)> {
        self.downstreams
            .load()
            .iter()
            .map(|d| (d.subscriber, d.counters(self.codec.clock_rate)))
            .collect()
    }

    /// The subscribers currently forwarded to.
    pub fn subscribers(&self) -> Vec<PeerId> {
        self.downstreams
            .load()
            .iter()
            .map(|d| d.subscriber)
            .collect()
    }

    /// Asks the publisher for a keyframe (PLI), at most once per throttle window; a
    /// request inside the window is sent when the window ends, never lost. Of a
    /// simulcast track, every layer is asked.
    pub fn request_keyframe(self: &Arc<Self>) {
        if self.is_simulcast() {
            for layer in 0..MAX_SPATIAL_LAYERS as u8 {
                self.request_layer_keyframe(layer);
            }
        } else {
            self.request_layer_keyframe(0);
        }
    }

    /// Asks for a keyframe of one spatial layer (of a plain track: layer 0, its only
    /// one), through that layer's throttle.
    pub fn request_layer_keyframe(self: &Arc<Self>, layer: u8) {
        if self.kind != MediaKind::Video || self.is_ended() || self.ssrc_of(layer).is_none() {
            return;
        }
        let throttle = &self.keyframes[usize::from(layer)];
        match throttle.decide() {
            KeyframeDecision::SendNow => self.send_pli(layer),
            KeyframeDecision::Later(delay) => {
                let me = self.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let throttle = &me.keyframes[usize::from(layer)];
                    throttle.deferred_done();
                    if !me.is_ended() {
                        throttle.mark_sent();
                        me.send_pli(layer);
                    }
                });
            }
            KeyframeDecision::AlreadyScheduled => {}
        }
    }

    /// The SSRC the publisher sends `layer` on.
    fn ssrc_of(&self, layer: u8) -> Option<u32> {
        if !self.is_simulcast() {
            return (layer == 0).then(|| self.media_ssrc.load(Ordering::Relaxed));
        }
        let ssrc = self
            .layer_ssrcs
            .get(usize::from(layer))?
            .load(Ordering::Relaxed);
        (ssrc != 0).then_some(ssrc)
    }

    fn send_pli(self: &Arc<Self>, layer: u8) {
        let Some(media_ssrc) = self.ssrc_of(layer) else {
            return;
        };
        let remote = self.remote.clone();
        tokio::spawn(async move {
            let pli = PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc,
            };
            if let Err(e) = remote.write_rtcp(vec![Box::new(pli)]).await {
                tracing::debug!("PLI to publisher failed: {e}");
            }
        });
    }
}

fn priority_code(p: Priority) -> u8 {
    match p {
        Priority::Bench => 0,
        Priority::Floor => 1,
        Priority::Normal => 2,
    }
}

/// Hands one packet (extensions already stripped) to every leg. The whole per-packet
/// work of the SFU besides webrtc's own; public for the micro-benchmarks.
pub fn forward(legs: &[Arc<Downstream>], packet: &rtp::Packet) {
    for leg in legs {
        leg.offer(packet);
    }
}

/// Hands a RED audio packet to every leg: as it is to those that accepted RED, as
/// `plain` (its primary block; `None` when the RED payload is malformed) to the rest.
pub fn forward_red(legs: &[Arc<Downstream>], packet: &rtp::Packet, plain: Option<&rtp::Packet>) {
    for leg in legs {
        leg.offer_red(packet, plain);
    }
}

/// Removes RTP header extensions before the fan-out: their ids are negotiated per
/// connection, and webrtc drops a packet carrying an id its leg did not negotiate.
/// Public for the micro-benchmarks.
pub fn strip_extensions(packet: &mut rtp::Packet) {
    if packet.header.extension {
        packet.header.extension = false;
        packet.header.extension_profile = 0;
        packet.header.extensions.clear();
        // The padding of the removed block too: the transport-cc interceptor adds an
        // extension to every sent packet, and a stale padding count makes the header's
        // size disagree with what it marshals (webrtc then drops the packet).
        packet.header.extensions_padding = 0;
    }
}

/// What became of a packet handed to a [`LegSink`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkWrite {
    /// Queued for sending.
    Queued,
    /// No room: the packet was dropped.
    Full,
    /// The leg's connection is gone.
    Closed,
}

/// Where a leg's packets go: the subscriber connection's webrtc track in the server.
/// Must never wait.
pub trait LegSink: Send + Sync {
    fn try_write(&self, packet: rtp::Packet) -> SinkWrite;
}

impl LegSink for TrackLocalStaticRTP {
    fn try_write(&self, packet: rtp::Packet) -> SinkWrite {
        // `write_rtp` takes an uncontended lock and sends on the connection driver's
        // bounded channel: both complete on the first poll unless the channel is full.
        // Polling once and dropping the future is a `try_send`, so the publisher's
        // reader never waits. (webrtc's channel and lock are not tokio's, so no
        // cooperative budget makes a send with room in the channel report "pending".)
        match self.write_rtp(packet).now_or_never() {
            Some(Ok(())) => SinkWrite::Queued,
            None => SinkWrite::Full,
            Some(Err(_)) => SinkWrite::Closed,
        }
    }
}

/// One subscriber's leg of a published track.
///
/// Written straight from the publisher's reader task: the packet is rewritten to the
/// leg's SSRC and payload type and handed to webrtc's driver channel of the
/// subscriber's connection without waiting. When that channel is full (the
/// subscriber's connection cannot keep up) the packet is dropped and counted: a slow
/// subscriber never delays the publisher or the other subscribers.
pub struct Downstream {
    pub subscriber: PeerId,
    sink: Arc<dyn LegSink>,
    ssrc: u32,
    payload_type: u8,
    /// The subscriber's RED payload type, when this audio leg accepted RED.
    red_payload_type: Option<u8>,
    dropped: AtomicU64,
    /// Packets handed to the subscriber's connection.
    forwarded: AtomicU64,
    closed: AtomicBool,
    /// The layer selection of a simulcast track's leg; `None` for a plain track.
    layers: Option<LayeredLeg>,
    /// Which `openhearing_sfu_simulcast_legs` gauge counts this leg (index into
    /// `metrics::SIMULCAST_LAYERS`; `NO_LAYER` until the allocator chose).
    counted: std::sync::atomic::AtomicU8,
    /// The subscriber connection's reception reports, once attached.
    reception: std::sync::OnceLock<Arc<super::reception::ReceptionReports>>,
}

const NO_LAYER: u8 = u8::MAX;

fn layer_gauge(target: Target) -> u8 {
    match target {
        Target::Forward(t) => t.spatial.min(2),
        Target::Paused => 3,
    }
}

impl std::fmt::Debug for Downstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Downstream")
            .field("subscriber", &self.subscriber)
            .field("ssrc", &self.ssrc)
            .field("payload_type", &self.payload_type)
            .field("red_payload_type", &self.red_payload_type)
            .field("layered", &self.layers.is_some())
            .finish()
    }
}

impl Downstream {
    /// Creates the leg that rewrites each packet to the subscriber leg's `ssrc` and
    /// `payload_type` and writes it to `sink` (the leg's webrtc track).
    pub fn start(
        subscriber: PeerId,
        sink: Arc<dyn LegSink>,
        ssrc: u32,
        payload_type: u8,
    ) -> Arc<Downstream> {
        Self::with_layers(subscriber, sink, ssrc, payload_type, None, None)
    }

    /// An audio leg: like [`Downstream::start`] (`payload_type` is the subscriber's
    /// Opus); `red_payload_type` is its RED, when it accepted RED.
    pub fn start_audio(
        subscriber: PeerId,
        sink: Arc<dyn LegSink>,
        ssrc: u32,
        payload_type: u8,
        red_payload_type: Option<u8>,
    ) -> Arc<Downstream> {
        Self::with_layers(subscriber, sink, ssrc, payload_type, red_payload_type, None)
    }

    /// The leg of a simulcast track: like [`Downstream::start`], but every packet goes
    /// through the leg's rewriter, which forwards nothing until
    /// [`Downstream::set_target`] names a layer.
    pub fn start_layered(
        subscriber: PeerId,
        sink: Arc<dyn LegSink>,
        ssrc: u32,
        payload_type: u8,
        config: RewriterConfig,
    ) -> Arc<Downstream> {
        let layers = Some(LayeredLeg::new(config));
        Self::with_layers(subscriber, sink, ssrc, payload_type, None, layers)
    }

    fn with_layers(
        subscriber: PeerId,
        sink: Arc<dyn LegSink>,
        ssrc: u32,
        payload_type: u8,
        red_payload_type: Option<u8>,
        layers: Option<LayeredLeg>,
    ) -> Arc<Downstream> {
        crate::metrics::media().legs.increment(1.0);
        Arc::new(Downstream {
            subscriber,
            sink,
            ssrc,
            payload_type,
            red_payload_type,
            dropped: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            layers,
            counted: std::sync::atomic::AtomicU8::new(NO_LAYER),
            reception: std::sync::OnceLock::new(),
        })
    }

    /// Whether this leg selects layers (its track is simulcast).
    pub fn is_layered(&self) -> bool {
        self.layers.is_some()
    }

    /// Whether the subscriber's connection is gone.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// What this leg should forward from now on (a leg of a plain track ignores it:
    /// it forwards everything). A change is logged at debug level.
    /// Returns whether the target changed.
    pub fn set_target(&self, target: Target) -> bool {
        let changed = self.layers.as_ref().is_some_and(|l| l.set_target(target));
        if changed {
            let gauges = &crate::metrics::media().simulcast_legs;
            let now = layer_gauge(target);
            let was = self.counted.swap(now, Ordering::Relaxed);
            if was != now {
                if let Some(g) = gauges.get(usize::from(was)) {
                    g.decrement(1.0);
                }
                gauges[usize::from(now)].increment(1.0);
            }
            tracing::debug!(subscriber = %self.subscriber, ssrc = self.ssrc, ?target, "layer target changed");
        }
        changed
    }

    /// The target the allocator set (`None` for a plain track's leg).
    pub fn target(&self) -> Option<Target> {
        self.layers.as_ref().map(LayeredLeg::target)
    }

    /// The spatial layer this leg forwards now: `None` while paused or waiting for a
    /// keyframe of its target, and for a plain track's leg.
    pub fn current_layer(&self) -> Option<u8> {
        self.layers.as_ref().and_then(LayeredLeg::current_layer)
    }

    fn offer(&self, packet: &rtp::Packet) {
        if self.closed.load(Ordering::Relaxed) {
            return;
        }
        self.write(packet.clone(), self.payload_type);
    }

    /// A RED packet: as RED (its blocks renumbered to this subscriber's Opus) if the
    /// leg accepted RED, else its primary block `plain`, else nothing.
    fn offer_red(&self, packet: &rtp::Packet, plain: Option<&rtp::Packet>) {
        if self.closed.load(Ordering::Relaxed) {
            return;
        }
        match (self.red_payload_type, plain) {
            (Some(red), Some(_)) => {
                let Ok(payload) =
                    super::red::with_block_payload_type(&packet.payload, self.payload_type)
                else {
                    return;
                };
                let mut packet = packet.clone();
                packet.payload = payload;
                self.write(packet, red);
            }
            (None, Some(plain)) => self.write(plain.clone(), self.payload_type),
            (_, None) => {}
        }
    }

    /// Offers a simulcast packet to the leg's rewriter and sends what it says;
    /// returns the layer the leg needs a keyframe of.
    pub(crate) fn offer_layered(&self, p: &Parsed<'_>) -> Option<u8> {
        let layers = self.layers.as_ref()?;
        if self.closed.load(Ordering::Relaxed) {
            return None;
        }
        let out = layers.process(p);
        if let Some(layer) = out.switched_to {
            tracing::debug!(subscriber = %self.subscriber, ssrc = self.ssrc, layer, "leg switched layer");
        }
        if let Some(packet) = out.packet {
            self.write(packet, self.payload_type);
        }
        out.wants_keyframe
    }

    fn write(&self, mut packet: rtp::Packet, payload_type: u8) {
        packet.header.ssrc = self.ssrc;
        packet.header.payload_type = payload_type;
        let bytes = packet.payload.len() as u64;
        let counters = crate::metrics::media();
        match self.sink.try_write(packet) {
            SinkWrite::Queued => {
                self.forwarded.fetch_add(1, Ordering::Relaxed);
                counters.packets_forwarded.increment(1);
                counters.bytes_forwarded.increment(bytes);
            }
            SinkWrite::Full => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                counters.packets_dropped.increment(1);
            }
            SinkWrite::Closed => {
                // The subscriber's connection is gone; the owner removes the leg.
                self.closed.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Packets dropped because this subscriber's connection could not keep up.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Reads the subscriber's reception reports about this leg from `reception`
    /// (its connection's), for [`Downstream::counters`].
    pub fn attach_reception(&self, reception: Arc<super::reception::ReceptionReports>) {
        let _ = self.reception.set(reception);
    }

    /// What this leg has forwarded and dropped so far (media health samples it), and
    /// what the subscriber last reported about it (its jitter is in ticks of the
    /// track's `clock_rate`).
    pub fn counters(&self, clock_rate: u32) -> LegCounters {
        let reported = self
            .reception
            .get()
            .and_then(|r| r.latest(self.ssrc, std::time::Instant::now()));
        let hz = clock_rate;
        LegCounters {
            forwarded: self.forwarded.load(Ordering::Relaxed),
            dropped: self.dropped(),
            reported_loss: reported.map(|r| r.fraction_lost),
            reported_jitter_ms: reported
                .filter(|_| hz > 0)
                .map(|r| f64::from(r.jitter) * 1000.0 / f64::from(hz)),
        }
    }
}

/// A leg's packet counters since it started: handed to the subscriber's connection,
/// and dropped because that connection could not keep up; and what the subscriber's
/// latest fresh RTCP report said of it (loss since its previous report, 0 to 1, and
/// jitter in milliseconds), if any.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LegCounters {
    pub forwarded: u64,
    pub dropped: u64,
    pub reported_loss: Option<f64>,
    pub reported_jitter_ms: Option<f64>,
}

impl Drop for Downstream {
    fn drop(&mut self) {
        crate::metrics::media().legs.decrement(1.0);
        let counted = self.counted.load(Ordering::Relaxed);
        if let Some(g) = crate::metrics::media()
            .simulcast_legs
            .get(usize::from(counted))
        {
            g.decrement(1.0);
        }
        // The operator's sign that a site's link or machine could not keep up (and
        // `openhearing_rtp_packets_dropped_total`).
        let dropped = self.dropped();
        if dropped > 0 {
            tracing::warn!(subscriber = %self.subscriber, dropped, "subscriber too slow: packets dropped for it");
        }
    }
}

/// Relays keyframe requests (PLI/FIR) a subscriber sends about its leg to the
/// publisher, through the publisher track's throttle. Ends with the local track. Of a
/// simulcast track, only the layer the leg forwards is asked (a leg waiting for a
/// layer asks for it itself).
pub(crate) fn relay_keyframe_requests(
    local: Arc<TrackLocalStaticRTP>,
    source: Arc<PublishedTrack>,
    leg: std::sync::Weak<Downstream>,
) {
    tokio::spawn(async move {
        while let Some(event) = local.poll().await {
            let TrackLocalEvent::OnRtcpPacket(packets) = event else {
                continue;
            };
            // The interceptor delivers keyframe requests and sender reports (rtcp.rs);
            // only the former concern a subscriber's leg.
            if packets.iter().any(|p| !p.as_any().is::<SenderReport>()) {
                if !source.is_simulcast() {
                    source.request_keyframe();
                } else if let Some(layer) = leg.upgrade().and_then(|l| l.current_layer()) {
                    source.request_layer_keyframe(layer);
                }
            }
        }
    });
}

enum KeyframeDecision {
    SendNow,
    Later(Duration),
    AlreadyScheduled,
}

/// Throttle state for keyframe requests of one published track.
struct KeyframeRequester {
    throttle: Duration,
    epoch: Instant,
    /// Milliseconds since `epoch` of the last PLI sent, plus one (0 = never).
    last_sent_ms: AtomicU64,
    deferred: AtomicBool,
}

impl KeyframeRequester {
    fn new(throttle: Duration) -> Self {
        KeyframeRequester {
            throttle,
            epoch: Instant::now(),
            last_sent_ms: AtomicU64::new(0),
            deferred: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    fn mark_sent(&self) {
        self.last_sent_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    fn deferred_done(&self) {
        self.deferred.store(false, Ordering::Release);
    }

    fn decide(&self) -> KeyframeDecision {
        let now = self.now_ms();
        let last = self.last_sent_ms.load(Ordering::Relaxed);
        let throttle = self.throttle.as_millis() as u64;
        if last == 0 || now.saturating_sub(last) >= throttle {
            if self
                .last_sent_ms
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return KeyframeDecision::SendNow;
            }
            return KeyframeDecision::AlreadyScheduled;
        }
        if self.deferred.swap(true, Ordering::AcqRel) {
            return KeyframeDecision::AlreadyScheduled;
        }
        KeyframeDecision::Later(Duration::from_millis(throttle - (now - last)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyframe_requests_are_throttled_but_not_lost() {
        let k = KeyframeRequester::new(Duration::from_millis(10_000));
        assert!(matches!(k.decide(), KeyframeDecision::SendNow));
        // Inside the window: one deferred request, further ones fold into it.
        assert!(matches!(k.decide(), KeyframeDecision::Later(_)));
        assert!(matches!(k.decide(), KeyframeDecision::AlreadyScheduled));
        k.deferred_done();
        assert!(matches!(k.decide(), KeyframeDecision::Later(_)));
    }

    #[test]
    fn zero_throttle_always_sends() {
        let k = KeyframeRequester::new(Duration::ZERO);
        for _ in 0..3 {
            assert!(matches!(k.decide(), KeyframeDecision::SendNow));
        }
    }

    /// A sink with room for `room` packets that records what it got.
    struct TestSink {
        room: usize,
        closed: AtomicBool,
        got: std::sync::Mutex<Vec<rtp::Packet>>,
        calls: AtomicU64,
    }

    impl TestSink {
        fn new(room: usize) -> Arc<TestSink> {
            Arc::new(TestSink {
                room,
                closed: AtomicBool::new(false),
                got: std::sync::Mutex::new(Vec::new()),
                calls: AtomicU64::new(0),
            })
        }
    }

    impl LegSink for TestSink {
        fn try_write(&self, packet: rtp::Packet) -> SinkWrite {
            self.calls.fetch_add(1, Ordering::Relaxed);
            if self.closed.load(Ordering::Relaxed) {
                return SinkWrite::Closed;
            }
            let mut got = self.got.lock().expect("lock");
            if got.len() >= self.room {
                return SinkWrite::Full;
            }
            got.push(packet);
            SinkWrite::Queued
        }
    }

    fn packet(seq: u16) -> rtp::Packet {
        let mut p = rtp::Packet::default();
        p.header.ssrc = 1;
        p.header.payload_type = 96;
        p.header.sequence_number = seq;
        p.payload = bytes::Bytes::from_static(b"media");
        p
    }

    #[test]
    fn each_leg_gets_its_own_ssrc_and_payload_type() {
        let (a, b) = (TestSink::new(10), TestSink::new(10));
        let legs = vec![
            Downstream::start(Uuid::new_v4(), a.clone(), 0xAAAA, 111),
            Downstream::start(Uuid::new_v4(), b.clone(), 0xBBBB, 100),
        ];
        forward(&legs, &packet(7));
        let a = a.got.lock().expect("lock");
        let b = b.got.lock().expect("lock");
        assert_eq!((a[0].header.ssrc, a[0].header.payload_type), (0xAAAA, 111));
        assert_eq!((b[0].header.ssrc, b[0].header.payload_type), (0xBBBB, 100));
        assert_eq!(a[0].header.sequence_number, 7);
        assert_eq!(&a[0].payload[..], b"media");
    }

    #[test]
    fn a_full_leg_drops_and_counts_without_touching_the_others() {
        let (slow, fast) = (TestSink::new(2), TestSink::new(100));
        let legs = vec![
            Downstream::start(Uuid::new_v4(), slow.clone(), 1, 96),
            Downstream::start(Uuid::new_v4(), fast.clone(), 2, 96),
        ];
        for seq in 0..10 {
            forward(&legs, &packet(seq));
        }
        assert_eq!(legs[0].dropped(), 8);
        assert_eq!(legs[1].dropped(), 0);
        assert_eq!(fast.got.lock().expect("lock").len(), 10);
    }

    #[test]
    fn a_closed_leg_is_not_written_again() {
        let sink = TestSink::new(100);
        let leg = Downstream::start(Uuid::new_v4(), sink.clone(), 1, 96);
        forward(std::slice::from_ref(&leg), &packet(1));
        sink.closed.store(true, Ordering::Relaxed);
        for seq in 2..10 {
            forward(std::slice::from_ref(&leg), &packet(seq));
        }
        // One write saw the closed connection; after it the leg stops trying.
        assert_eq!(sink.calls.load(Ordering::Relaxed), 2);
        assert_eq!(leg.dropped(), 0);
    }

    /// A RED payload: one redundant block, then the primary (both Opus 111).
    fn red_packet(seq: u16) -> rtp::Packet {
        let mut p = packet(seq);
        p.header.payload_type = 63;
        p.payload = bytes::Bytes::from_static(&[
            0x80 | 111,
            0x0f,
            0x00,
            4,
            111,
            b'p',
            b'r',
            b'e',
            b'v',
            b'n',
            b'o',
            b'w',
        ]);
        p
    }

    #[test]
    fn red_goes_as_red_to_red_legs_and_as_opus_to_the_others() {
        let (red, plain) = (TestSink::new(10), TestSink::new(10));
        let legs = vec![
            Downstream::start_audio(Uuid::new_v4(), red.clone(), 0xAAAA, 109, Some(120)),
            Downstream::start_audio(Uuid::new_v4(), plain.clone(), 0xBBBB, 111, None),
        ];
        let p = red_packet(5);
        let primary = super::super::red::primary(&p).expect("well-formed");
        forward_red(&legs, &p, Some(&primary));
        let red = red.got.lock().expect("lock");
        let plain = plain.got.lock().expect("lock");
        assert_eq!(
            (red[0].header.ssrc, red[0].header.payload_type),
            (0xAAAA, 120)
        );
        // The blocks name this subscriber's Opus number.
        let blocks = super::super::red::parse(&red[0].payload).expect("still RED");
        assert!(blocks.iter().all(|b| b.payload_type == 109));
        assert_eq!(&blocks[1].data[..], b"now");
        assert_eq!(
            (plain[0].header.ssrc, plain[0].header.payload_type),
            (0xBBBB, 111)
        );
        assert_eq!(&plain[0].payload[..], b"now");
        assert_eq!(plain[0].header.sequence_number, 5);
    }

    #[test]
    fn malformed_red_reaches_nobody() {
        let (red, plain) = (TestSink::new(10), TestSink::new(10));
        let legs = vec![
            Downstream::start_audio(Uuid::new_v4(), red.clone(), 1, 111, Some(63)),
            Downstream::start_audio(Uuid::new_v4(), plain.clone(), 2, 111, None),
        ];
        let mut p = red_packet(1);
        p.payload = bytes::Bytes::from_static(&[0x80 | 111, 0x0f]);
        let primary = super::super::red::primary(&p).ok();
        assert!(primary.is_none());
        forward_red(&legs, &p, primary.as_ref());
        assert!(red.got.lock().expect("lock").is_empty());
        assert!(plain.got.lock().expect("lock").is_empty());
    }

    #[test]
    fn stripping_extensions_clears_them() {
        let mut p = rtp::Packet::default();
        p.header.extension = true;
        p.header.extension_profile = 0xBEDE;
        p.header.extensions.push(rtp::header::Extension {
            id: 3,
            payload: bytes::Bytes::from_static(&[1, 2]),
        });
        p.header.extensions_padding = 2;
        strip_extensions(&mut p);
        assert!(!p.header.extension);
        assert!(p.header.extensions.is_empty());
        assert_eq!(p.header.extensions_padding, 0);
        // What the transport-cc interceptor then does: one extension, consistent size.
        p.header
            .set_extension(5, bytes::Bytes::from_static(&[0, 7]))
            .expect("extension");
        use rtc::shared::marshal::{Marshal, MarshalSize};
        let size = p.marshal_size();
        assert_eq!(p.marshal().expect("marshals").len(), size);
    }
}
