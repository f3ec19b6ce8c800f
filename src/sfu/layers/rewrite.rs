//! [`LayerRewriter`]: turns the packets of several source layers into one continuous
//! output stream for one subscriber leg.
//!
//! One rewriter exists per (published track, subscriber leg). The caller feeds it
//! **every** packet of **every** layer of the track — also those it expects to be
//! dropped, because that is how the rewriter tracks each layer's sequence space and
//! sees the keyframe it waits for — and sends what the [`Verdict`] says. It is pure:
//! no socket, no clock (arrival instants come in with the packets), no allocation per
//! packet once warm.
//!
//! # Sequence numbers
//!
//! The output is split into *segments*, one per stretch of forwarding one source
//! layer; a segment starts where the stream switched to its layer (at a keyframe of
//! that layer) and continues the output numbering at `last output + 1`. Inside a
//! segment an input packet `s` (its sequence number unwrapped to 64 bits) maps to
//!
//! ```text
//! out(s) = s - offset - |{ e in excluded : e < s }|
//! ```
//!
//! where `excluded` holds the input numbers the rewriter dropped *on purpose while they
//! were the newest packet of the layer* (temporal layers above the target). Hence:
//!
//! * a packet dropped on purpose takes no output number: no hole, nothing for the
//!   receiver to NACK forever;
//! * a packet lost upstream still takes its number — the next packet that does arrive
//!   is mapped past it — so the receiver sees the hole and NACKs it, and when the
//!   publisher's retransmission arrives late it maps to exactly that number;
//! * a reordered packet maps to the same number it would have had in order, because
//!   only numbers above everything seen so far are ever added to `excluded`, so the
//!   count below any number already mapped never changes;
//! * a late packet that should be dropped (its frame is above the temporal target)
//!   cannot give its number back — later packets were already numbered around it — so
//!   it becomes [`Verdict::Padding`]: the caller sends a padding-only packet with that
//!   number, which fills the hole for the receiver's NACK and jitter-buffer logic.
//!
//! `excluded` only needs the numbers within [`SEQ_WINDOW`] of the newest; older ones
//! are folded into `offset`, and a packet older than the window is dropped.
//!
//! Packets from the old layer after a switch, and packets of the new layer from before
//! its keyframe, are dropped: the keyframe makes them useless to the decoder, and a
//! receiver clears its NACK list up to a keyframe.
//!
//! # Timestamps
//!
//! Inside a segment the output timestamp is the input plus a constant offset. At a
//! segment start the offset is chosen so the first output timestamp is the last
//! output timestamp plus the **wall-clock gap** between the arrivals of the two
//! packets, in clock-rate ticks (at least one tick). Not a frame-interval estimate:
//! after a pause or a gap of seconds the timestamps must advance by seconds too, or
//! the receiver's jitter buffer and its audio/video sync (through the sender reports,
//! which webrtc derives from the wall clock) would be off by the gap.
//!
//! # Picture id and TL0PICIDX (VP8)
//!
//! Picture ids are renumbered like sequence numbers, one per frame, with the frames
//! dropped on purpose excluded, so the output picture id grows by one per output
//! frame. TL0PICIDX grows by one per base-layer frame, which is never dropped on
//! purpose, so a constant offset per segment keeps it continuous. Both continue at
//! `last + 1` across a switch and keep the width the source uses.
//!
//! # Switching
//!
//! * Spatial: only at the first packet of a keyframe of the target layer that is the
//!   newest packet of its layer (a keyframe whose first packet arrives after a later
//!   one was already dropped would be incomplete). Until then the old layer goes on
//!   and [`LayerRewriter::wants_keyframe`] names the layer to ask a keyframe of (the
//!   caller throttles the PLIs).
//! * Temporal down: at the next new frame. Temporal up: at a keyframe or at a frame
//!   with the layer-sync bit (Y) of a layer between the current and the target one.
//! * Decisions are per frame (by RTP timestamp), so a target change in the middle of a
//!   frame never cuts the frame in two.
//!
//! Codecs without layers (Opus, H.264) use one layer and get the same continuity; with
//! [`RewriterConfig::keyframes`] off (audio) a segment may start at any packet.

use std::collections::VecDeque;
use std::time::Instant;

use super::vp8::{PictureId, Temporal, Vp8Descriptor, Vp8Rewrite};
use super::{LayerTarget, Target, MAX_SPATIAL_LAYERS};

/// How far (in packets) behind the newest of its layer a packet may arrive and still
/// be mapped. 1024 packets are about 1 s of 720p video.
pub const SEQ_WINDOW: u64 = 1024;
/// How many recent frames keep their forward/drop decision.
const FRAME_MEMORY: usize = 64;
/// Unwrapped values start here, so a reordered packet just before the first one does
/// not underflow. A multiple of every modulus used (2^7, 2^8, 2^15, 2^16).
const BASE: u64 = 1 << 40;

/// How the rewriter of one track behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RewriterConfig {
    /// RTP clock rate of the track (90000 for video, 48000 for Opus).
    pub clock_rate: u32,
    /// Whether a layer may only be entered at a keyframe (video) or anywhere (audio).
    pub keyframes: bool,
}

/// The VP8 fields the rewriter works with, as parsed from the payload descriptor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Vp8Fields {
    pub picture_id: Option<PictureId>,
    pub tl0_pic_idx: Option<u8>,
    pub temporal: Option<Temporal>,
}

/// One packet of one source layer, as the rewriter needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourcePacket {
    /// Spatial layer (0 = lowest resolution); the caller maps SSRC/rid to it.
    pub layer: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub arrival: Instant,
    /// This is the first packet of a keyframe.
    pub keyframe: bool,
    pub vp8: Vp8Fields,
}

impl SourcePacket {
    /// A VP8 packet, with the fields of its parsed payload descriptor.
    pub fn vp8(layer: u8, seq: u16, timestamp: u32, arrival: Instant, d: &Vp8Descriptor) -> Self {
        SourcePacket {
            layer,
            seq,
            timestamp,
            arrival,
            keyframe: d.keyframe,
            vp8: Vp8Fields {
                picture_id: d.picture_id,
                tl0_pic_idx: d.tl0_pic_idx,
                temporal: d.temporal,
            },
        }
    }

    /// A packet of a codec without layers or descriptor (Opus, H.264): `keyframe` says
    /// whether it starts a keyframe (always `false` for audio).
    pub fn plain(seq: u16, timestamp: u32, arrival: Instant, keyframe: bool) -> Self {
        SourcePacket {
            layer: 0,
            seq,
            timestamp,
            arrival,
            keyframe,
            vp8: Vp8Fields::default(),
        }
    }
}

/// The header values of a forwarded packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewritten {
    pub seq: u16,
    pub timestamp: u32,
    /// The new picture id (in the width the packet carries), if it has one.
    pub picture_id: Option<u16>,
    pub tl0_pic_idx: Option<u8>,
    /// This packet starts a new segment (first packet, switch, or resume).
    pub switched: bool,
}

impl Rewritten {
    /// The values to write into the packet's VP8 payload descriptor.
    pub fn vp8(&self) -> Vp8Rewrite {
        Vp8Rewrite {
            picture_id: self.picture_id,
            tl0_pic_idx: self.tl0_pic_idx,
        }
    }
}

/// Why a packet is not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The subscriber's video is paused.
    Paused,
    /// Nothing forwarded yet: waiting for a keyframe of the target layer.
    WaitingForKeyframe,
    /// A layer other than the one forwarded now.
    OtherLayer,
    /// Of the forwarded layer, but from before the switch to it.
    BeforeSwitch,
    /// A temporal layer above the target.
    TemporalLayer,
    /// Again a packet already dropped on purpose (a retransmission of it).
    Duplicate,
    /// Older than the reordering window.
    TooOld,
    /// A spatial layer index beyond [`MAX_SPATIAL_LAYERS`].
    UnknownLayer,
}

/// What to do with one source packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send it with these header values (and SSRC/payload type of the leg).
    Forward(Rewritten),
    /// Do not send it; instead send a padding-only packet (no payload) with this
    /// sequence number and timestamp, to fill the number reserved for it.
    Padding {
        seq: u16,
        timestamp: u32,
    },
    Drop(DropReason),
}

/// An n-bit counter unwrapped to 64 bits around the highest value seen.
#[derive(Debug, Clone, Copy)]
struct Unwrap {
    bits: u32,
    highest: Option<u64>,
}

impl Unwrap {
    fn new(bits: u32) -> Self {
        Unwrap {
            bits,
            highest: None,
        }
    }

    /// The unwrapped value, and whether it is above everything seen before.
    fn unwrap(&mut self, value: u64) -> (u64, bool) {
        let m = 1u64 << self.bits;
        let v = value & (m - 1);
        let Some(h) = self.highest else {
            self.highest = Some(BASE + v);
            return (BASE + v, true);
        };
        let diff = v.wrapping_sub(h) & (m - 1);
        let ext = if diff < m / 2 {
            h + diff
        } else {
            h.saturating_sub(m - diff)
        };
        let newest = ext > h;
        if newest {
            self.highest = Some(ext);
        }
        (ext, newest)
    }
}

/// The `out = in - offset - excluded-below` mapping of one segment (module docs).
#[derive(Debug, Clone, Default)]
struct Renumber {
    offset: u64,
    /// First input value of the segment; lower ones are not of this segment.
    start: u64,
    /// Ascending input values dropped while newest.
    excluded: VecDeque<u64>,
}

impl Renumber {
    /// A mapping that sends `input` to `output`.
    fn starting(input: u64, output: u64) -> Self {
        Renumber {
            offset: input.wrapping_sub(output),
            start: input,
            excluded: VecDeque::new(),
        }
    }

    fn out(&self, input: u64) -> u64 {
        let below = self.excluded.partition_point(|&e| e < input) as u64;
        input.wrapping_sub(self.offset).wrapping_sub(below)
    }

    fn exclude(&mut self, input: u64) {
        debug_assert!(self.excluded.back().is_none_or(|&e| e < input));
        self.excluded.push_back(input);
    }

    fn is_excluded(&self, input: u64) -> bool {
        self.excluded.binary_search(&input).is_ok()
    }

    /// Folds the exclusions below `floor` into the offset (nothing below `floor` is
    /// mapped again).
    fn prune(&mut self, floor: u64) {
        while self.excluded.front().is_some_and(|&e| e < floor) {
            self.excluded.pop_front();
            self.offset = self.offset.wrapping_add(1);
        }
    }
}

/// What the rewriter tracks of each source layer, forwarded or not.
#[derive(Debug, Clone, Copy)]
struct LayerState {
    seq: Unwrap,
    picture_id: Unwrap,
    tl0: Unwrap,
}

impl LayerState {
    fn new() -> Self {
        LayerState {
            seq: Unwrap::new(16),
            picture_id: Unwrap::new(15),
            tl0: Unwrap::new(8),
        }
    }
}

/// The stretch of output taken from one layer.
#[derive(Debug, Clone)]
struct Segment {
    layer: u8,
    seq: Renumber,
    picture_id: Option<Renumber>,
    picture_id_window: u64,
    tl0_offset: Option<u64>,
    ts_offset: u32,
    /// Temporal layers up to this one are forwarded now.
    temporal: u8,
    /// Recent frames (RTP timestamp) and whether each is forwarded.
    frames: VecDeque<(u32, bool)>,
}

impl Segment {
    /// Forward/drop for a frame seen for the first time; moves the temporal layer
    /// only when `newest` (a late frame must not change what later frames got).
    fn decide(&mut self, p: &SourcePacket, target: u8, newest: bool) -> bool {
        let Some(t) = p.vp8.temporal else {
            return true;
        };
        if newest {
            if p.keyframe || target < self.temporal {
                self.temporal = target;
            } else if target > self.temporal
                && t.tid > self.temporal
                && t.tid <= target
                && t.layer_sync
            {
                self.temporal = t.tid;
            }
        }
        t.tid <= self.temporal
    }

    fn frame(&self, timestamp: u32) -> Option<bool> {
        self.frames
            .iter()
            .rev()
            .find(|(ts, _)| *ts == timestamp)
            .map(|&(_, fwd)| fwd)
    }

    fn remember(&mut self, timestamp: u32, forward: bool) {
        if self.frames.len() == FRAME_MEMORY {
            self.frames.pop_front();
        }
        self.frames.push_back((timestamp, forward));
    }
}

/// The last values sent, which the next segment continues from.
#[derive(Debug, Clone, Copy)]
struct Sent {
    seq: u64,
    timestamp: u32,
    arrival: Instant,
    picture_id: Option<u64>,
    tl0: Option<u64>,
}

/// Rewrites the layers of one published track into one subscriber's stream.
#[derive(Debug, Clone)]
pub struct LayerRewriter {
    config: RewriterConfig,
    target: Target,
    layers: [LayerState; MAX_SPATIAL_LAYERS],
    segment: Option<Segment>,
    sent: Option<Sent>,
}

impl LayerRewriter {
    /// A rewriter that forwards nothing until a target is set.
    pub fn new(config: RewriterConfig) -> Self {
        LayerRewriter {
            config,
            target: Target::Paused,
            layers: [LayerState::new(); MAX_SPATIAL_LAYERS],
            segment: None,
            sent: None,
        }
    }

    /// What should be forwarded from now on. A spatial change takes effect at the next
    /// keyframe of the new layer, a temporal one at the next frame; pausing is at once.
    pub fn set_target(&mut self, target: Target) {
        self.target = target;
        if target == Target::Paused {
            self.segment = None;
        }
    }

    pub fn target(&self) -> Target {
        self.target
    }

    /// The spatial layer forwarded now, if any.
    pub fn current_layer(&self) -> Option<u8> {
        self.segment.as_ref().map(|s| s.layer)
    }

    /// The layer a keyframe is needed from before the target can be reached; the
    /// caller sends a (throttled) PLI for that layer's SSRC while this is `Some`.
    pub fn wants_keyframe(&self) -> Option<u8> {
        match self.target {
            Target::Forward(t)
                if self.config.keyframes && self.current_layer() != Some(t.spatial) =>
            {
                Some(t.spatial)
            }
            _ => None,
        }
    }

    /// Decides one source packet.
    pub fn process(&mut self, p: &SourcePacket) -> Verdict {
        let Some(state) = self.layers.get_mut(usize::from(p.layer)) else {
            return Verdict::Drop(DropReason::UnknownLayer);
        };
        let (seq, newest) = state.seq.unwrap(u64::from(p.seq));
        let picture_id = p.vp8.picture_id.map(|pid| {
            if state.picture_id.bits != pid.bits() {
                state.picture_id = Unwrap::new(pid.bits());
            }
            state.picture_id.unwrap(u64::from(pid.value()))
        });
        let tl0 = p.vp8.tl0_pic_idx.map(|v| state.tl0.unwrap(u64::from(v)).0);
        let (seq_highest, pid_highest) = (
            state.seq.highest.unwrap_or(seq),
            state.picture_id.highest.unwrap_or(0),
        );

        let Target::Forward(target) = self.target else {
            return Verdict::Drop(DropReason::Paused);
        };
        let mut switched = false;
        if p.layer == target.spatial
            && self.current_layer() != Some(p.layer)
            && (!self.config.keyframes || (p.keyframe && newest))
        {
            self.start_segment(p, seq, picture_id.map(|(v, _)| v), tl0, target);
            switched = true;
        }
        let Some(seg) = self.segment.as_mut() else {
            return Verdict::Drop(DropReason::WaitingForKeyframe);
        };
        if seg.layer != p.layer {
            return Verdict::Drop(DropReason::OtherLayer);
        }
        if seq < seg.seq.start {
            return Verdict::Drop(DropReason::BeforeSwitch);
        }
        if seq_highest - seq >= SEQ_WINDOW
            || picture_id.is_some_and(|(v, _)| pid_highest - v >= seg.picture_id_window)
        {
            return Verdict::Drop(DropReason::TooOld);
        }
        if seg.seq.is_excluded(seq) {
            return Verdict::Drop(DropReason::Duplicate);
        }
        let forward = match seg.frame(p.timestamp) {
            Some(decided) => decided,
            None => {
                let forward = seg.decide(p, target.temporal, newest);
                seg.remember(p.timestamp, forward);
                if let (false, Some((pid, true)), Some(map)) =
                    (forward, picture_id, seg.picture_id.as_mut())
                {
                    map.exclude(pid);
                }
                forward
            }
        };
        let timestamp = p.timestamp.wrapping_add(seg.ts_offset);
        if !forward {
            if newest {
                seg.seq.exclude(seq);
                seg.seq.prune(seq_highest.saturating_sub(SEQ_WINDOW));
                return Verdict::Drop(DropReason::TemporalLayer);
            }
            // The number was reserved below the newest; a later segment must still
            // start above it.
            let out_seq = seg.seq.out(seq);
            if let Some(sent) = self.sent.as_mut() {
                sent.seq = sent.seq.max(out_seq);
            }
            return Verdict::Padding {
                seq: out_seq as u16,
                timestamp,
            };
        }

        let out_seq = seg.seq.out(seq);
        let out_pid = match (picture_id, seg.picture_id.as_ref()) {
            (Some((v, _)), Some(map)) => Some(map.out(v)),
            _ => None,
        };
        let out_tl0 = match (tl0, seg.tl0_offset) {
            (Some(v), Some(offset)) => Some(v.wrapping_sub(offset)),
            _ => None,
        };
        seg.seq.prune(seq_highest.saturating_sub(SEQ_WINDOW));
        if let Some(map) = seg.picture_id.as_mut() {
            map.prune(pid_highest.saturating_sub(seg.picture_id_window));
        }
        let sent = self.sent.get_or_insert(Sent {
            seq: out_seq,
            timestamp,
            arrival: p.arrival,
            picture_id: out_pid,
            tl0: out_tl0,
        });
        sent.seq = sent.seq.max(out_seq);
        // The newest frame, not the newest number: a late packet filling a hole at the
        // tail must not pull the next segment's timestamps back.
        if timestamp.wrapping_sub(sent.timestamp) < 1 << 31 {
            sent.timestamp = timestamp;
            sent.arrival = p.arrival;
        }
        sent.picture_id = max_some(sent.picture_id, out_pid);
        sent.tl0 = max_some(sent.tl0, out_tl0);
        let pid_mask = match p.vp8.picture_id {
            Some(PictureId::Short(_)) => 0x7f,
            _ => 0x7fff,
        };
        Verdict::Forward(Rewritten {
            seq: out_seq as u16,
            timestamp,
            picture_id: out_pid.map(|v| (v & pid_mask) as u16),
            tl0_pic_idx: out_tl0.map(|v| v as u8),
            switched,
        })
    }

    /// Starts forwarding `p.layer` at `p`, continuing the output from what was sent.
    fn start_segment(
        &mut self,
        p: &SourcePacket,
        seq: u64,
        picture_id: Option<u64>,
        tl0: Option<u64>,
        target: LayerTarget,
    ) {
        let sent = self.sent;
        let out_seq = sent.map_or(BASE + u64::from(p.seq), |s| s.seq + 1);
        let ts_offset = match sent {
            None => 0,
            Some(s) => {
                let gap = p.arrival.saturating_duration_since(s.arrival);
                let ticks = gap.as_micros() * u128::from(self.config.clock_rate) / 1_000_000;
                // At least one tick; at most a quarter of the timestamp space, which a
                // receiver still reads as "later".
                let ticks = ticks.clamp(1, 1 << 30) as u32;
                s.timestamp.wrapping_add(ticks).wrapping_sub(p.timestamp)
            }
        };
        let picture_id_bits = p.vp8.picture_id.map_or(15, PictureId::bits);
        let continue_from = |input: u64, last: Option<Option<u64>>| match last {
            Some(Some(last)) => last + 1,
            _ => input,
        };
        self.segment = Some(Segment {
            layer: p.layer,
            seq: Renumber::starting(seq, out_seq),
            picture_id: picture_id
                .map(|pid| Renumber::starting(pid, continue_from(pid, sent.map(|s| s.picture_id)))),
            // A quarter of the id space: far enough to tell late from new.
            picture_id_window: 1 << (picture_id_bits - 2),
            tl0_offset: tl0.map(|v| v.wrapping_sub(continue_from(v, sent.map(|s| s.tl0)))),
            ts_offset,
            temporal: target.temporal,
            frames: VecDeque::with_capacity(FRAME_MEMORY),
        });
    }
}

fn max_some(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::sfu::layers::vp8::tests::Rng;

    const VIDEO: RewriterConfig = RewriterConfig {
        clock_rate: 90_000,
        keyframes: true,
    };

    fn target(spatial: u8, temporal: u8) -> Target {
        Target::Forward(LayerTarget { spatial, temporal })
    }

    /// A video rewriter aiming at `t`.
    fn video(t: Target) -> LayerRewriter {
        let mut rw = LayerRewriter::new(VIDEO);
        rw.set_target(t);
        rw
    }

    /// One simulcast layer sending L1T3 (TIDs 0,2,1,2; Y on the first TL1/TL2 frame
    /// after each TL0), `per_frame` packets a frame, 30 fps.
    struct Layer {
        layer: u8,
        seq: u16,
        ts: u32,
        pid: u16,
        tl0: u8,
        pos: usize,
        per_frame: u16,
    }

    impl Layer {
        fn new(layer: u8, seq: u16, ts: u32, pid: u16, tl0: u8) -> Self {
            Layer {
                layer,
                seq,
                ts,
                pid,
                tl0,
                pos: 0,
                per_frame: 3,
            }
        }

        /// The packets of the next frame, arriving at `at`.
        fn frame(&mut self, at: Instant, keyframe: bool) -> Vec<SourcePacket> {
            if keyframe {
                self.pos = 0;
            }
            let tid = [0u8, 2, 1, 2][self.pos % 4];
            let layer_sync = matches!(self.pos % 4, 1 | 2);
            if tid == 0 {
                self.tl0 = self.tl0.wrapping_add(1);
            }
            let packets = (0..self.per_frame)
                .map(|i| SourcePacket {
                    layer: self.layer,
                    seq: self.seq.wrapping_add(i),
                    timestamp: self.ts,
                    arrival: at,
                    keyframe: keyframe && i == 0,
                    vp8: Vp8Fields {
                        picture_id: Some(PictureId::Long(self.pid)),
                        tl0_pic_idx: Some(self.tl0),
                        temporal: Some(Temporal { tid, layer_sync }),
                    },
                })
                .collect();
            self.seq = self.seq.wrapping_add(self.per_frame);
            self.ts = self.ts.wrapping_add(3000);
            self.pid = (self.pid + 1) & 0x7fff;
            self.pos += 1;
            packets
        }
    }

    fn forwarded(v: Verdict) -> Rewritten {
        match v {
            Verdict::Forward(r) => r,
            other => panic!("expected Forward, got {other:?}"),
        }
    }

    /// Runs packets through `rw`, returning the forwarded ones.
    fn run(rw: &mut LayerRewriter, packets: &[SourcePacket]) -> Vec<Rewritten> {
        packets
            .iter()
            .filter_map(|p| match rw.process(p) {
                Verdict::Forward(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    fn assert_continuous(out: &[Rewritten]) {
        for w in out.windows(2) {
            assert_eq!(w[1].seq, w[0].seq.wrapping_add(1), "seq hole: {w:?}");
            assert!(
                w[1].timestamp.wrapping_sub(w[0].timestamp) < 1 << 31,
                "timestamp went back: {w:?}"
            );
            let (a, b) = (w[0].picture_id.expect("pid"), w[1].picture_id.expect("pid"));
            let step = b.wrapping_sub(a) & 0x7fff;
            assert!(step <= 1, "picture id jumped: {w:?}");
            let step = w[1]
                .tl0_pic_idx
                .expect("tl0")
                .wrapping_sub(w[0].tl0_pic_idx.expect("tl0"));
            assert!(step <= 1, "TL0PICIDX jumped: {w:?}");
        }
    }

    #[test]
    fn a_single_layer_passes_through_unchanged_across_wraps() {
        let mut rw = LayerRewriter::new(RewriterConfig {
            clock_rate: 48_000,
            keyframes: false,
        });
        rw.set_target(target(0, 0));
        let t0 = Instant::now();
        for i in 0..200u16 {
            let seq = 65_500u16.wrapping_add(i);
            let ts = (u32::MAX - 96_000).wrapping_add(u32::from(i) * 960);
            let p = SourcePacket::plain(
                seq,
                ts,
                t0 + Duration::from_millis(u64::from(i) * 20),
                false,
            );
            let r = forwarded(rw.process(&p));
            assert_eq!((r.seq, r.timestamp), (seq, ts));
            assert_eq!(r.switched, i == 0);
        }
    }

    #[test]
    fn video_waits_for_a_keyframe_and_asks_for_it() {
        let mut rw = LayerRewriter::new(VIDEO);
        assert_eq!(rw.wants_keyframe(), None, "paused wants nothing");
        rw.set_target(target(0, 2));
        assert_eq!(rw.wants_keyframe(), Some(0));
        let mut l = Layer::new(0, 100, 1000, 10, 5);
        let t0 = Instant::now();
        for p in l.frame(t0, false) {
            assert_eq!(
                rw.process(&p),
                Verdict::Drop(DropReason::WaitingForKeyframe)
            );
        }
        let kf = l.frame(t0, true);
        let first = forwarded(rw.process(&kf[0]));
        assert!(first.switched);
        assert_eq!(rw.wants_keyframe(), None);
        // The first segment keeps the source's numbers.
        assert_eq!(
            (first.seq, first.timestamp, first.picture_id),
            (103, 4000, Some(11))
        );
    }

    #[test]
    fn temporal_layers_above_the_target_leave_no_holes() {
        let mut rw = video(target(0, 1));
        let mut l = Layer::new(0, 65_000, u32::MAX - 30_000, 32_700, 250);
        let t0 = Instant::now();
        let mut out = run(&mut rw, &l.frame(t0, true));
        for f in 1..200u32 {
            out.extend(run(
                &mut rw,
                &l.frame(t0 + Duration::from_millis(u64::from(f) * 33), false),
            ));
        }
        // Every TL2 frame (half of them) is gone, without a hole, across the wraps of
        // seq (u16), timestamp (u32), picture id (15 bits) and TL0PICIDX (u8).
        assert_eq!(out.len(), 100 * 3);
        assert_continuous(&out);
        let pid_steps: u16 = out
            .windows(2)
            .map(|w| {
                w[1].picture_id
                    .expect("pid")
                    .wrapping_sub(w[0].picture_id.expect("pid"))
                    & 0x7fff
            })
            .sum();
        assert_eq!(pid_steps, 99, "one picture id per output frame");
    }

    #[test]
    fn upstream_loss_stays_a_hole_that_the_retransmission_fills() {
        let mut rw = video(target(0, 2));
        let mut l = Layer::new(0, 0, 0, 0, 0);
        let t0 = Instant::now();
        run(&mut rw, &l.frame(t0, true));
        let frame = l.frame(t0, false);
        let a = forwarded(rw.process(&frame[0]));
        // frame[1] is lost upstream.
        let c = forwarded(rw.process(&frame[2]));
        assert_eq!(c.seq, a.seq + 2, "the lost packet keeps its number");
        let b = forwarded(rw.process(&frame[1]));
        assert_eq!(b.seq, a.seq + 1, "the retransmission fills it");
    }

    #[test]
    fn a_late_packet_of_a_dropped_frame_becomes_padding() {
        let mut rw = video(target(0, 1));
        let mut l = Layer::new(0, 0, 0, 0, 0);
        let t0 = Instant::now();
        let last = *run(&mut rw, &l.frame(t0, true)).last().expect("kf");
        let tl2 = l.frame(t0, false);
        assert_eq!(
            rw.process(&tl2[0]),
            Verdict::Drop(DropReason::TemporalLayer)
        );
        // tl2[1] is delayed; tl2[2] arrives in order and is dropped.
        assert_eq!(
            rw.process(&tl2[2]),
            Verdict::Drop(DropReason::TemporalLayer)
        );
        let next = run(&mut rw, &l.frame(t0, false));
        assert_eq!(
            next[0].seq,
            last.seq + 2,
            "one number stays reserved for tl2[1]"
        );
        assert_eq!(
            rw.process(&tl2[1]),
            Verdict::Padding {
                seq: last.seq + 1,
                timestamp: tl2[1].timestamp
            }
        );
        // A retransmission of a packet dropped in order is dropped again.
        assert_eq!(rw.process(&tl2[0]), Verdict::Drop(DropReason::Duplicate));
    }

    #[test]
    fn temporal_up_switch_waits_for_layer_sync() {
        let mut rw = video(target(0, 0));
        let mut l = Layer::new(0, 0, 0, 0, 0);
        let t0 = Instant::now();
        run(&mut rw, &l.frame(t0, true)); // pos 0, TL0
        assert!(run(&mut rw, &l.frame(t0, false)).is_empty()); // pos 1, TL2
        rw.set_target(target(0, 2));
        // pos 2 is TL1 with Y: taken, and the stream moves to TL1 only.
        assert_eq!(run(&mut rw, &l.frame(t0, false)).len(), 3);
        // pos 3 is TL2 without Y (it references the TL1 frame): still dropped, since
        // the current layer is 1 and this frame has no sync bit.
        assert!(run(&mut rw, &l.frame(t0, false)).is_empty());
        run(&mut rw, &l.frame(t0, false)); // pos 0
                                           // pos 1: TL2 with Y: now taken.
        assert_eq!(run(&mut rw, &l.frame(t0, false)).len(), 3);
    }

    #[test]
    fn spatial_up_switch_happens_at_the_keyframe_and_continues_every_counter() {
        let mut rw = video(target(0, 2));
        let t0 = Instant::now();
        let (mut q, mut h) = (
            Layer::new(0, 65_530, u32::MAX - 1000, 32_766, 254),
            Layer::new(1, 7_000, 123_456, 900, 17),
        );
        let mut out = run(&mut rw, &q.frame(t0, true));
        assert!(run(&mut rw, &h.frame(t0, false)).is_empty());
        rw.set_target(target(1, 2));
        assert_eq!(rw.wants_keyframe(), Some(1));
        let mut at = t0;
        for _ in 0..3 {
            at += Duration::from_millis(33);
            out.extend(run(&mut rw, &q.frame(at, false)));
            for p in h.frame(at, false) {
                assert_eq!(rw.process(&p), Verdict::Drop(DropReason::OtherLayer));
            }
        }
        assert_eq!(out.len(), 12, "the old layer goes on until the keyframe");
        let before = *out.last().expect("out");
        at += Duration::from_millis(40);
        let kf = run(&mut rw, &h.frame(at, true));
        assert!(kf[0].switched);
        assert_eq!(rw.current_layer(), Some(1));
        assert_eq!(rw.wants_keyframe(), None);
        assert_eq!(kf[0].seq, before.seq.wrapping_add(1));
        assert_eq!(
            kf[0].timestamp,
            before.timestamp.wrapping_add(3600),
            "40 ms at 90 kHz"
        );
        assert_eq!(
            kf[0].picture_id,
            Some((before.picture_id.expect("pid") + 1) & 0x7fff)
        );
        assert_eq!(
            kf[0].tl0_pic_idx,
            Some(before.tl0_pic_idx.expect("tl0").wrapping_add(1))
        );
        out.extend(kf);
        for _ in 0..10 {
            at += Duration::from_millis(33);
            for p in q.frame(at, false) {
                assert_eq!(rw.process(&p), Verdict::Drop(DropReason::OtherLayer));
            }
            out.extend(run(&mut rw, &h.frame(at, false)));
        }
        assert_continuous(&out);
    }

    #[test]
    fn spatial_down_switch_and_back_keeps_the_stream_continuous() {
        let mut rw = video(target(2, 1));
        let t0 = Instant::now();
        let mut layers = [
            Layer::new(0, 1, 1, 1, 1),
            Layer::new(1, 30_000, 2_000_000_000, 20_000, 128),
            Layer::new(2, 65_535, u32::MAX, 32_767, 255),
        ];
        let mut out = Vec::new();
        let mut at = t0;
        let mut plan = vec![(0, 2, true)];
        plan.extend((1..8).map(|f| (f, 2, false)));
        for f in 8..30 {
            // Down to layer 0 at frame 8 (keyframe at 12), back up to 2 at frame 20
            // (keyframe at 24).
            let want = if (8..20).contains(&f) { 0 } else { 2 };
            plan.push((f, want, f == 12 || f == 24));
        }
        for (f, want, keyframe) in plan {
            rw.set_target(target(want, 1));
            at += Duration::from_millis(33);
            for (i, l) in layers.iter_mut().enumerate() {
                let key = keyframe && (i as u8 == want || f == 0);
                out.extend(run(&mut rw, &l.frame(at, key)));
            }
            let expected = if (12..24).contains(&f) { 0 } else { 2 };
            assert_eq!(rw.current_layer(), Some(expected), "frame {f}");
        }
        assert_continuous(&out);
    }

    #[test]
    fn stragglers_from_before_the_switch_are_dropped() {
        let mut rw = video(target(0, 2));
        let t0 = Instant::now();
        let (mut q, mut h) = (Layer::new(0, 0, 0, 0, 0), Layer::new(1, 500, 0, 0, 0));
        run(&mut rw, &q.frame(t0, true));
        let late_q = q.frame(t0, false);
        rw.process(&late_q[0]);
        let early_h = h.frame(t0, false);
        rw.set_target(target(1, 2));
        run(&mut rw, &h.frame(t0, true));
        // The old layer's late packet, and the new layer's from before its keyframe.
        assert_eq!(
            rw.process(&late_q[2]),
            Verdict::Drop(DropReason::OtherLayer)
        );
        assert_eq!(
            rw.process(&early_h[1]),
            Verdict::Drop(DropReason::BeforeSwitch)
        );
    }

    #[test]
    fn a_keyframe_whose_start_arrives_late_is_not_a_switch_point() {
        let mut rw = video(target(0, 2));
        let t0 = Instant::now();
        let (mut q, mut h) = (Layer::new(0, 0, 0, 0, 0), Layer::new(1, 500, 0, 0, 0));
        run(&mut rw, &q.frame(t0, true));
        rw.set_target(target(1, 2));
        let kf = h.frame(t0, true);
        rw.process(&kf[1]);
        assert_eq!(rw.process(&kf[0]), Verdict::Drop(DropReason::OtherLayer));
        assert_eq!(rw.current_layer(), Some(0));
        assert_eq!(rw.wants_keyframe(), Some(1), "still asking");
    }

    #[test]
    fn pause_and_resume_continue_numbers_and_advance_time() {
        let mut rw = video(target(0, 2));
        let t0 = Instant::now();
        let mut l = Layer::new(0, 0, 0, 0, 0);
        let last = *run(&mut rw, &l.frame(t0, true)).last().expect("kf");
        rw.set_target(Target::Paused);
        assert_eq!(rw.wants_keyframe(), None);
        for f in 1..150u64 {
            for p in l.frame(t0 + Duration::from_millis(f * 33), false) {
                assert_eq!(rw.process(&p), Verdict::Drop(DropReason::Paused));
            }
        }
        rw.set_target(target(0, 2));
        assert_eq!(rw.wants_keyframe(), Some(0));
        let resumed = t0 + Duration::from_secs(5);
        assert!(run(&mut rw, &l.frame(resumed, false)).is_empty());
        let kf = run(&mut rw, &l.frame(resumed, true));
        assert_eq!(kf[0].seq, last.seq + 1, "no hole for the paused time");
        assert_eq!(
            kf[0].timestamp,
            last.timestamp + 5 * 90_000,
            "time advanced 5 s"
        );
        assert_eq!(kf[0].picture_id, Some(last.picture_id.expect("pid") + 1));
    }

    #[test]
    fn a_switch_during_loss_continues_from_the_last_packet_sent() {
        let mut rw = video(target(0, 2));
        let t0 = Instant::now();
        let (mut q, mut h) = (Layer::new(0, 0, 0, 0, 0), Layer::new(1, 900, 0, 0, 0));
        run(&mut rw, &q.frame(t0, true));
        let frame = q.frame(t0, false);
        let sent = forwarded(rw.process(&frame[0])); // the other two are lost
        rw.set_target(target(1, 2));
        let kf = run(&mut rw, &h.frame(t0 + Duration::from_millis(33), true));
        assert_eq!(kf[0].seq, sent.seq + 1);
        // The lost packets of the old layer arriving now are of no use.
        assert_eq!(rw.process(&frame[2]), Verdict::Drop(DropReason::OtherLayer));
    }

    #[test]
    fn packets_older_than_the_window_are_dropped() {
        let mut rw = video(target(0, 2));
        let mut l = Layer::new(0, 0, 0, 0, 0);
        let t0 = Instant::now();
        let first = l.frame(t0, true);
        rw.process(&first[0]);
        for _ in 0..400 {
            run(&mut rw, &l.frame(t0, false));
        }
        assert_eq!(rw.process(&first[1]), Verdict::Drop(DropReason::TooOld));
        let mut bogus = first[1];
        bogus.layer = MAX_SPATIAL_LAYERS as u8;
        assert_eq!(rw.process(&bogus), Verdict::Drop(DropReason::UnknownLayer));
    }

    #[test]
    fn rewrites_real_vp8_payloads_end_to_end() {
        use crate::sfu::layers::vp8::tests::payload;
        let mut rw = video(target(1, 2));
        let t0 = Instant::now();
        let mut pid = 32_760u16;
        for (i, seq) in (40_000u16..40_030).enumerate() {
            let mut bytes = payload(true, pid, 9, 0, false, i == 0);
            let d = Vp8Descriptor::parse(&bytes).expect("valid");
            let r = forwarded(rw.process(&SourcePacket::vp8(1, seq, 0, t0, &d)));
            d.rewrite(&mut bytes, r.vp8()).expect("rewrite");
            let again = Vp8Descriptor::parse(&bytes).expect("valid");
            assert_eq!(again.picture_id.map(PictureId::value), r.picture_id);
            pid = (pid + 1) & 0x7fff;
        }
    }

    /// Random loss, reordering and target changes over three layers: whatever is
    /// sent (forwarded or padding) never reuses an output number for another input,
    /// and the output has no more holes than the input lost or delayed packets.
    #[test]
    fn random_loss_reordering_and_switches_keep_the_invariants() {
        let (mut switches, mut paddings) = (0, 0);
        for seed in 1..=20u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let mut rw = video(target(1, 2));
            let t0 = Instant::now();
            let mut layers = [
                Layer::new(0, rng.next() as u16, rng.next() as u32, 32_700, 250),
                Layer::new(1, rng.next() as u16, rng.next() as u32, 5, 0),
                Layer::new(2, 65_400, u32::MAX - 100_000, 32_000, 200),
            ];
            let mut input = Vec::new();
            for f in 0..600u64 {
                let at = t0 + Duration::from_millis(f * 33);
                for l in layers.iter_mut() {
                    input.extend(l.frame(at, f % 60 == 0 || rng.next() % 40 == 0));
                }
            }
            let mut lost_or_late = 0usize;
            let mut delivered: Vec<SourcePacket> = Vec::new();
            let mut i = 0;
            while i < input.len() {
                match rng.next() % 50 {
                    0 => lost_or_late += 1,
                    1 if i + 4 < input.len() => {
                        // Delayed by a few packets.
                        delivered.extend_from_slice(&input[i + 1..i + 4]);
                        delivered.push(input[i]);
                        lost_or_late += 1;
                        i += 3;
                    }
                    _ => delivered.push(input[i]),
                }
                i += 1;
            }
            // Output numbers, unwrapped in emission order, keyed to their input.
            let mut used: std::collections::HashMap<u64, (u8, u16)> = Default::default();
            let mut out_seq = Unwrap::new(16);
            let mut newest_ts: Option<u32> = None;
            for (n, p) in delivered.iter().enumerate() {
                if n % 97 == 0 {
                    let spatial = (rng.next() % 3) as u8;
                    let temporal = (rng.next() % 3) as u8;
                    rw.set_target(if rng.next() % 10 == 0 {
                        Target::Paused
                    } else {
                        target(spatial, temporal)
                    });
                }
                let seq = match rw.process(p) {
                    Verdict::Forward(r) => {
                        switches += usize::from(r.switched);
                        if let (true, Some(newest)) = (r.switched, newest_ts) {
                            let step = r.timestamp.wrapping_sub(newest);
                            assert!(
                                step > 0 && step < 1 << 31,
                                "seed {seed}: a switch went back in time: {newest} -> {}",
                                r.timestamp
                            );
                        }
                        if newest_ts.is_none_or(|n| r.timestamp.wrapping_sub(n) < 1 << 31) {
                            newest_ts = Some(r.timestamp);
                        }
                        r.seq
                    }
                    Verdict::Padding { seq, .. } => {
                        paddings += 1;
                        seq
                    }
                    Verdict::Drop(_) => continue,
                };
                let (ext, _) = out_seq.unwrap(u64::from(seq));
                let prev = used.insert(ext, (p.layer, p.seq));
                assert!(
                    prev.is_none_or(|prev| prev == (p.layer, p.seq)),
                    "seed {seed}: output {seq} reused for {prev:?} and {:?}",
                    (p.layer, p.seq)
                );
            }
            let (lo, hi) = (
                used.keys().min().expect("sent"),
                used.keys().max().expect("sent"),
            );
            let holes = (hi - lo + 1) as usize - used.len();
            assert!(
                holes <= lost_or_late,
                "seed {seed}: {holes} holes for {lost_or_late} lost or late packets"
            );
        }
        // The run exercised what it claims to.
        assert!(
            switches > 100 && paddings > 10,
            "{switches} switches, {paddings} paddings"
        );
    }
}
