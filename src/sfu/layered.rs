//! The fan-out of a simulcast track: one source packet, parsed once on the publisher's
//! reader ([`Parsed`]), through each subscriber leg's [`LayerRewriter`] and through the
//! recorder tap's own rewriter ([`SimulcastFanout`]), and how a verdict becomes the
//! packet that is sent ([`build`]).
//!
//! Why it is shaped so: the reader parses the VP8 descriptor and classifies the packet
//! once ([`Parsed::new`]); each leg then only runs its rewriter and, for a forwarded
//! packet, clones the header and overwrites the few rewritten bytes ([`build`]). The
//! leg's rewriter sits behind an uncontended mutex ([`LayeredLeg`]): the reader is
//! the only one processing packets, the subscriber's allocator takes the lock a few
//! times a second to change the target.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc::rtp;

use super::forward::{Downstream, MediaTap};
use super::layers::rewrite::Rewritten;
use super::layers::vp8::Vp8Descriptor;
use super::layers::{
    LayerRewriter, LayerTarget, RewriterConfig, SourcePacket, Target, Verdict, MAX_SPATIAL_LAYERS,
};
use super::simulcast::{
    h264_keyframe_start, LayerMap, LayerMeter, LayerRates, MAX_TEMPORAL_LAYERS,
};

/// The payload format of a simulcast track, which says how keyframes are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Vp8,
    H264,
    /// Anything else: no keyframe is ever found, so no layer is entered.
    Other,
}

impl Format {
    pub fn of_mime(mime: &str) -> Format {
        let mime = mime.to_ascii_lowercase();
        match mime.as_str() {
            "video/vp8" => Format::Vp8,
            "video/h264" => Format::H264,
            _ => Format::Other,
        }
    }
}

/// One packet of a simulcast track with what the rewriters need of it.
#[derive(Debug)]
pub struct Parsed<'a> {
    pub packet: &'a rtp::Packet,
    pub source: SourcePacket,
    /// The VP8 descriptor, to rewrite picture id and TL0PICIDX in forwarded copies.
    pub vp8: Option<Vp8Descriptor>,
}

impl<'a> Parsed<'a> {
    /// Classifies `packet` of spatial `layer`. A VP8 packet whose descriptor does not
    /// parse is still forwarded in sequence, but can never start a layer.
    pub fn new(packet: &'a rtp::Packet, layer: u8, format: Format, arrival: Instant) -> Self {
        let (seq, ts) = (packet.header.sequence_number, packet.header.timestamp);
        let vp8 = match format {
            Format::Vp8 => Vp8Descriptor::parse(&packet.payload).ok(),
            _ => None,
        };
        let mut source = match &vp8 {
            Some(d) => SourcePacket::vp8(layer, seq, ts, arrival, d),
            None => {
                let key = format == Format::H264 && h264_keyframe_start(&packet.payload);
                SourcePacket::plain(seq, ts, arrival, key)
            }
        };
        source.layer = layer;
        Parsed {
            packet,
            source,
            vp8,
        }
    }

    /// The temporal layer (0 without temporal layering).
    pub fn temporal(&self) -> u8 {
        self.vp8.as_ref().map_or(0, Vp8Descriptor::tid)
    }
}

/// The packet a verdict asks for, before SSRC and payload type of the leg: the source
/// packet renumbered (and its VP8 descriptor rewritten) for `Forward`, a padding-only
/// packet for `Padding`, nothing for `Drop`.
pub fn build(verdict: Verdict, p: &Parsed<'_>) -> Option<rtp::Packet> {
    match verdict {
        Verdict::Forward(r) => Some(renumbered(p, r)),
        Verdict::Padding { seq, timestamp } => {
            let mut header = p.packet.header.clone();
            header.sequence_number = seq;
            header.timestamp = timestamp;
            header.marker = false;
            // No payload: the padding bit makes the marshaller append the padding.
            header.padding = true;
            Some(rtp::Packet {
                header,
                payload: bytes::Bytes::new(),
            })
        }
        Verdict::Drop(_) => None,
    }
}

fn renumbered(p: &Parsed<'_>, r: Rewritten) -> rtp::Packet {
    let mut packet = p.packet.clone();
    packet.header.sequence_number = r.seq;
    packet.header.timestamp = r.timestamp;
    if let Some(d) = &p.vp8 {
        let values = r.vp8();
        let unchanged = values.picture_id == d.picture_id.map(|v| v.value())
            && values.tl0_pic_idx == d.tl0_pic_idx;
        if !unchanged {
            let mut payload = BytesMut::from(&p.packet.payload[..]);
            // The descriptor was parsed from this very payload, so it fits.
            if d.rewrite(&mut payload, values).is_ok() {
                packet.payload = payload.freeze();
            }
        }
    }
    packet
}

/// What a layered leg did with one packet.
#[derive(Debug)]
pub struct LegOutput {
    pub packet: Option<rtp::Packet>,
    /// The layer the leg needs a keyframe of (send the publisher a throttled PLI).
    pub wants_keyframe: Option<u8>,
    /// The leg started forwarding a layer with this packet.
    pub switched_to: Option<u8>,
}

/// The rewriter of one subscriber leg of a simulcast track.
#[derive(Debug)]
pub struct LayeredLeg {
    rewriter: Mutex<LayerRewriter>,
}

impl LayeredLeg {
    /// A leg that forwards nothing until its subscriber's allocator sets a target.
    pub fn new(config: RewriterConfig) -> Self {
        LayeredLeg {
            rewriter: Mutex::new(LayerRewriter::new(config)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LayerRewriter> {
        // A panic while holding the lock leaves a rewriter that is still consistent
        // (every method completes its update before returning): go on with it.
        self.rewriter
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sets what the leg should forward; returns whether it changed.
    pub fn set_target(&self, target: Target) -> bool {
        let mut rw = self.lock();
        if rw.target() == target {
            return false;
        }
        rw.set_target(target);
        true
    }

    pub fn target(&self) -> Target {
        self.lock().target()
    }

    /// The spatial layer forwarded now (`None`: paused or waiting for a keyframe).
    pub fn current_layer(&self) -> Option<u8> {
        self.lock().current_layer()
    }

    /// Runs the rewriter on one packet.
    pub fn process(&self, p: &Parsed<'_>) -> LegOutput {
        let (verdict, wants_keyframe) = {
            let mut rw = self.lock();
            let verdict = rw.process(&p.source);
            (verdict, rw.wants_keyframe())
        };
        let switched_to = match verdict {
            Verdict::Forward(r) if r.switched => Some(p.source.layer),
            _ => None,
        };
        LegOutput {
            packet: build(verdict, p),
            wants_keyframe,
            switched_to,
        }
    }
}

/// What the fan-out of one packet asks of the track.
#[derive(Debug, Default)]
pub struct FanoutStep {
    /// Bit `l` set: some leg (or the tap) needs a keyframe of layer `l`.
    pub wanted: u8,
    /// A complete measuring window's layer bitrates, to publish.
    pub rates: Option<LayerRates>,
}

impl FanoutStep {
    /// The layers to ask a (throttled) keyframe of.
    pub fn wanted_keyframes(&self) -> impl Iterator<Item = u8> + '_ {
        (0..MAX_SPATIAL_LAYERS as u8).filter(|l| self.wanted & (1 << l) != 0)
    }
}

/// The reader's state for a simulcast track: the SSRC → layer map, the layer meter,
/// and the recorder's rewriter, which follows the top layer.
pub struct SimulcastFanout {
    config: RewriterConfig,
    format: Format,
    map: LayerMap,
    meter: LayerMeter,
    tap: LayerRewriter,
    /// Layers that had packets in the last complete measuring window (bit `l`: layer
    /// `l`); `None` until the first window completes.
    arriving: Option<u8>,
    /// What the tap's rewriter adds to the timestamps of the layer it forwards, to
    /// translate that layer's sender reports: `(ssrc, delta)`; `None` while no tap is
    /// set (ssrc 0 until the tap forwarded its first packet).
    tap_clock: Option<(u32, u32)>,
}

impl SimulcastFanout {
    pub fn new(config: RewriterConfig, format: Format, meter_window: Duration) -> Self {
        SimulcastFanout {
            config,
            format,
            map: LayerMap::default(),
            meter: LayerMeter::new(meter_window),
            tap: LayerRewriter::new(config),
            arriving: None,
            tap_clock: None,
        }
    }

    /// The recorder keeps the best picture that arrives: the highest layer with packets
    /// in the last measuring window (a publisher's browser turns its top layers off
    /// when its own uplink is short, and the archive must not go dark then), else the
    /// highest layer opened.
    fn tap_target(&self) -> Target {
        let arriving = self.arriving.and_then(|mask| {
            (0..MAX_SPATIAL_LAYERS as u8)
                .rev()
                .find(|&l| mask & (1 << l) != 0 && self.map.ssrc_of(l).is_some())
        });
        match arriving.or(self.map.top()) {
            Some(top) => Target::Forward(LayerTarget {
                spatial: top,
                temporal: (MAX_TEMPORAL_LAYERS - 1) as u8,
            }),
            None => Target::Paused,
        }
    }

    /// A layer opened (its rid seen on `ssrc`): returns its index; the tap aims at
    /// the highest layer known.
    pub fn open(&mut self, ssrc: u32, rid: &str) -> Option<u8> {
        let layer = self.map.open(ssrc, rid)?;
        let target = self.tap_target();
        self.tap.set_target(target);
        Some(layer)
    }

    /// One packet: measured, offered to every leg's rewriter and, when a tap is set,
    /// to the tap's.
    pub fn packet(
        &mut self,
        packet: &rtp::Packet,
        now: Instant,
        legs: &[Arc<Downstream>],
        tap: Option<&Arc<dyn MediaTap>>,
    ) -> FanoutStep {
        let mut step = FanoutStep::default();
        let Some(layer) = self.map.layer_of(packet.header.ssrc) else {
            return step; // an SSRC whose layer never opened
        };
        let parsed = Parsed::new(packet, layer, self.format, now);
        step.rates = self
            .meter
            .record(layer, parsed.temporal(), packet.payload.len(), now);
        if let Some(rates) = &step.rates {
            let mask = rates
                .iter()
                .enumerate()
                .filter(|(_, t)| t.iter().any(|&b| b > 0))
                .fold(0u8, |m, (l, _)| m | (1 << l));
            if self.arriving != Some(mask) {
                self.arriving = Some(mask);
                self.tap.set_target(self.tap_target());
            }
        }
        for leg in legs {
            if let Some(layer) = leg.offer_layered(&parsed) {
                step.wanted |= 1 << layer;
            }
        }
        let Some(tap) = tap else {
            self.tap_clock = None;
            return step;
        };
        if self.tap_clock.is_none() {
            // A tap (re)starts: a fresh rewriter, whose first segment keeps the top
            // layer's own numbers and clock, like the packets of a plain track.
            self.tap = LayerRewriter::new(self.config);
            self.tap.set_target(self.tap_target());
        }
        let verdict = self.tap.process(&parsed.source);
        self.tap_clock = Some(match verdict {
            Verdict::Forward(r) => (
                packet.header.ssrc,
                r.timestamp.wrapping_sub(packet.header.timestamp),
            ),
            _ => self.tap_clock.unwrap_or((0, 0)),
        });
        if let Some(out) = build(verdict, &parsed) {
            tap.rtp(&out, std::time::SystemTime::now());
        }
        if let Some(layer) = self.tap.wants_keyframe() {
            step.wanted |= 1 << layer;
        }
        step
    }

    /// A sender report's RTP time on the tap's clock, if it is of the layer the tap
    /// forwards (the others describe packets the archive does not hold).
    pub fn tap_time(&self, ssrc: u32, rtp_time: u32) -> Option<u32> {
        let (tapped, delta) = self.tap_clock?;
        (tapped == ssrc).then(|| rtp_time.wrapping_add(delta))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sfu::layers::vp8::tests::payload;
    use crate::sfu::layers::LayerTarget;

    fn vp8_packet(ssrc: u32, seq: u16, ts: u32, pid: u16, keyframe: bool) -> rtp::Packet {
        let mut p = rtp::Packet::default();
        p.header.ssrc = ssrc;
        p.header.sequence_number = seq;
        p.header.timestamp = ts;
        p.payload = payload(true, pid, 3, 0, false, keyframe).into();
        p
    }

    const VIDEO: RewriterConfig = RewriterConfig {
        clock_rate: 90_000,
        keyframes: true,
    };

    #[test]
    fn a_forwarded_packet_carries_the_rewritten_numbers() {
        let leg = LayeredLeg::new(VIDEO);
        assert!(leg.set_target(Target::Forward(LayerTarget {
            spatial: 1,
            temporal: 2
        })));
        assert!(!leg.set_target(leg.target()), "no change");
        let now = Instant::now();
        let other = vp8_packet(7, 100, 5000, 10, true);
        let out = leg.process(&Parsed::new(&other, 0, Format::Vp8, now));
        assert!(out.packet.is_none(), "layer 0 is not the target");
        assert_eq!(out.wants_keyframe, Some(1));
        let key = vp8_packet(8, 4000, 9000, 300, true);
        let out = leg.process(&Parsed::new(&key, 1, Format::Vp8, now));
        assert_eq!(out.switched_to, Some(1));
        assert_eq!(out.wants_keyframe, None);
        let sent = out.packet.expect("forwarded");
        assert_eq!(leg.current_layer(), Some(1));
        let next = vp8_packet(8, 4001, 12_000, 301, false);
        let second = leg
            .process(&Parsed::new(&next, 1, Format::Vp8, now))
            .packet
            .expect("forwarded");
        assert_eq!(
            second.header.sequence_number,
            sent.header.sequence_number.wrapping_add(1)
        );
        let d = Vp8Descriptor::parse(&second.payload).expect("still VP8");
        let first = Vp8Descriptor::parse(&sent.payload).expect("still VP8");
        assert_eq!(
            d.picture_id.map(|p| p.value()),
            first.picture_id.map(|p| p.value() + 1)
        );
        assert_eq!(second.payload.len(), next.payload.len());
    }

    #[test]
    fn padding_has_no_payload_and_the_reserved_number() {
        let p = vp8_packet(1, 10, 20, 5, false);
        let parsed = Parsed::new(&p, 0, Format::Vp8, Instant::now());
        let pad = build(
            Verdict::Padding {
                seq: 77,
                timestamp: 99,
            },
            &parsed,
        )
        .expect("padding packet");
        assert!(pad.header.padding && pad.payload.is_empty());
        assert_eq!((pad.header.sequence_number, pad.header.timestamp), (77, 99));
    }

    #[test]
    fn h264_keyframes_are_found_and_other_formats_never_start() {
        let p = rtp::Packet {
            payload: bytes::Bytes::from_static(&[0x65, 0x88, 0x00]),
            ..Default::default()
        };
        let now = Instant::now();
        assert!(Parsed::new(&p, 2, Format::H264, now).source.keyframe);
        assert_eq!(Parsed::new(&p, 2, Format::H264, now).source.layer, 2);
        assert!(!Parsed::new(&p, 2, Format::Other, now).source.keyframe);
        assert_eq!(Format::of_mime("video/VP8"), Format::Vp8);
        assert_eq!(Format::of_mime("video/H264"), Format::H264);
    }

    /// A sink that keeps what it is given.
    #[derive(Default)]
    struct Keep(Mutex<Vec<rtp::Packet>>);

    impl crate::sfu::forward::LegSink for Keep {
        fn try_write(&self, packet: rtp::Packet) -> crate::sfu::forward::SinkWrite {
            self.0.lock().expect("lock").push(packet);
            crate::sfu::forward::SinkWrite::Queued
        }
    }

    impl MediaTap for Keep {
        fn rtp(&self, packet: &rtp::Packet, _arrival: std::time::SystemTime) {
            self.0.lock().expect("lock").push(packet.clone());
        }
        fn sender_report(&self, _ssrc: u32, _ntp_time: u64, _rtp_time: u32) {}
    }

    impl Keep {
        fn seqs(&self) -> Vec<u16> {
            let got = self.0.lock().expect("lock");
            got.iter().map(|p| p.header.sequence_number).collect()
        }
        fn ssrcs(&self) -> Vec<u32> {
            let got = self.0.lock().expect("lock");
            got.iter().map(|p| p.header.ssrc).collect()
        }
    }

    /// Three simulcast layers (SSRC 10 = q, 20 = h, 30 = f), 3 packets a frame, the
    /// first frame of each a keyframe; frames interleaved across layers.
    fn simulcast_frames(frames: u16) -> Vec<rtp::Packet> {
        let mut out = Vec::new();
        for f in 0..frames {
            for (ssrc, base) in [(10u32, 1000u16), (20, 30_000), (30, 65_530)] {
                for i in 0..3u16 {
                    let seq = base.wrapping_add(f * 3 + i);
                    let mut p = vp8_packet(ssrc, seq, u32::from(f) * 3000, f, f == 0 && i == 0);
                    if i > 0 {
                        // Not the start of the frame.
                        p.payload = payload(false, f, 3, 0, false, false).into();
                    }
                    out.push(p);
                }
            }
        }
        out
    }

    #[test]
    fn packets_go_by_ssrc_to_their_layer_and_the_tap_gets_the_top_layer_only() {
        let mut fanout = SimulcastFanout::new(VIDEO, Format::Vp8, Duration::from_secs(1));
        // The full layer opens first; arrival order does not rank.
        assert_eq!(fanout.open(30, "f"), Some(2));
        assert_eq!(fanout.open(10, "q"), Some(0));
        assert_eq!(fanout.open(20, "h"), Some(1));
        let sink = Arc::new(Keep::default());
        let leg = Downstream::start_layered(uuid::Uuid::new_v4(), sink.clone(), 0xABCD, 96, VIDEO);
        leg.set_target(Target::Forward(LayerTarget {
            spatial: 0,
            temporal: 2,
        }));
        let keep = Arc::new(Keep::default());
        let tap: Arc<dyn MediaTap> = keep.clone();
        let now = Instant::now();
        let legs = [leg.clone()];
        for (i, p) in simulcast_frames(5).iter().enumerate() {
            let step = fanout.packet(p, now, &legs, Some(&tap));
            // Until f's keyframe (the 7th packet) arrives, the tap asks for one.
            let expected = if i < 6 { 1 << 2 } else { 0 };
            assert_eq!(step.wanted, expected, "packet {i}");
        }
        // The leg: layer q only, renumbered to its SSRC, continuous.
        assert_eq!(leg.current_layer(), Some(0));
        assert_eq!(sink.seqs(), (1000..1015).collect::<Vec<u16>>());
        assert!(sink.ssrcs().iter().all(|&s| s == 0xABCD));
        // The tap: layer f only, with its own SSRC and numbers, across the wrap.
        let expected: Vec<u16> = (0..15u16).map(|i| 65_530u16.wrapping_add(i)).collect();
        assert_eq!(keep.seqs(), expected);
        assert!(keep.ssrcs().iter().all(|&s| s == 30));
        // Sender reports of the tapped layer keep their clock; the others are not its.
        assert_eq!(fanout.tap_time(30, 12_345), Some(12_345));
        assert_eq!(fanout.tap_time(10, 12_345), None);
        // A packet of an SSRC that never opened reaches nobody.
        let stray = vp8_packet(99, 1, 1, 1, true);
        fanout.packet(&stray, now, &legs, Some(&tap));
        assert_eq!((sink.seqs().len(), keep.seqs().len()), (15, 15));
    }

    #[test]
    fn a_layer_without_its_keyframe_yet_is_asked_for_one() {
        let mut fanout = SimulcastFanout::new(VIDEO, Format::Vp8, Duration::from_secs(1));
        fanout.open(10, "q");
        fanout.open(20, "h");
        let sink = Arc::new(Keep::default());
        let leg = Downstream::start_layered(uuid::Uuid::new_v4(), sink.clone(), 1, 96, VIDEO);
        leg.set_target(Target::Forward(LayerTarget {
            spatial: 1,
            temporal: 2,
        }));
        let legs = [leg];
        let later = vp8_packet(20, 7, 9000, 3, false);
        let step = fanout.packet(&later, Instant::now(), &legs, None);
        assert_eq!(step.wanted_keyframes().collect::<Vec<_>>(), vec![1]);
        assert!(sink.seqs().is_empty());
    }

    #[test]
    fn the_tap_follows_the_top_layer_that_arrives() {
        let mut fanout = SimulcastFanout::new(VIDEO, Format::Vp8, Duration::from_millis(500));
        fanout.open(10, "q");
        fanout.open(20, "h");
        fanout.open(30, "f");
        let keep = Arc::new(Keep::default());
        let tap: Arc<dyn MediaTap> = keep.clone();
        let t0 = Instant::now();
        let at = |f: u16| t0 + Duration::from_millis(100 * u64::from(f));
        // 10 frames of every layer (keyframes at frame 0): the tap records f.
        for p in simulcast_frames(10) {
            let f = p.header.timestamp as u16 / 3000;
            fanout.packet(&p, at(f), &[], Some(&tap));
        }
        assert!(keep.ssrcs().iter().all(|&s| s == 30));
        let before = keep.seqs().len();
        // Then the publisher's browser stops sending f; h goes on, with a keyframe
        // (the one the tap asks for) at frame 20.
        let mut wanted = 0u8;
        for f in 10..30u16 {
            for i in 0..3u16 {
                let key = f == 20 && i == 0;
                let mut p = vp8_packet(20, 30_000 + f * 3 + i, u32::from(f) * 3000, f, key);
                if i > 0 {
                    p.payload = payload(false, f, 3, 0, false, false).into();
                }
                wanted |= fanout.packet(&p, at(f), &[], Some(&tap)).wanted;
            }
        }
        assert_ne!(wanted & (1 << 1), 0, "the tap asked for h's keyframe");
        let got = keep.ssrcs();
        assert!(got.len() > before, "the archive goes on with h");
        assert!(got[before..].iter().all(|&s| s == 20));
        // Continuous numbers across the switch: one stream for the recorder.
        let seqs = keep.seqs();
        for w in seqs.windows(2) {
            assert_eq!(w[1], w[0].wrapping_add(1), "{seqs:?}");
        }
    }

    #[test]
    fn a_restarted_tap_starts_again_at_a_keyframe() {
        let mut fanout = SimulcastFanout::new(VIDEO, Format::Vp8, Duration::from_secs(1));
        fanout.open(10, "q");
        let keep = Arc::new(Keep::default());
        let tap: Arc<dyn MediaTap> = keep.clone();
        let now = Instant::now();
        let frames = simulcast_frames(4);
        let q: Vec<&rtp::Packet> = frames.iter().filter(|p| p.header.ssrc == 10).collect();
        for p in &q[..6] {
            fanout.packet(p, now, &[], Some(&tap));
        }
        assert_eq!(keep.seqs().len(), 6);
        // Recording stops, then starts again mid-frame: nothing until a keyframe.
        fanout.packet(q[6], now, &[], None);
        let step = fanout.packet(q[7], now, &[], Some(&tap));
        assert_eq!(keep.seqs().len(), 6);
        assert_eq!(step.wanted_keyframes().collect::<Vec<_>>(), vec![0]);
    }
}
