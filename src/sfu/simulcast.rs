//! The publisher side of simulcast: which spatial layer a packet belongs to, how much
//! each layer costs, and where a keyframe starts — the per-packet facts the reader of a
//! [`PublishedTrack`](super::PublishedTrack) needs before the legs' rewriters
//! ([`super::layers::LayerRewriter`]) decide anything.
//!
//! Why it is shaped so: like [`super::layers`], everything here is pure (no task, no
//! clock: instants come in as arguments), so it is tested with plain values; the
//! reader task owns one [`LayerMap`] and one [`LayerMeter`] and publishes the meter's
//! rates into atomics that the subscribers' allocators read.
//!
//! # Which rid is which layer
//!
//! webrtc 0.21 hands the SFU a simulcast track's rids one by one, in the order their
//! first packets arrive (random between encodings), so the order of arrival says
//! nothing. The rule, [`spatial_index`]:
//! * `q`, `h`, `f` — the `scaleResolutionDownBy` 4/2/1 naming convention (quarter,
//!   half, full) that the web client, webrtc-rs' simulcast example and LiveKit use —
//!   are layers 0, 1, 2;
//! * a rid that is a small number `0`..`3` is that layer (lowest resolution first);
//! * any other rid takes the lowest index not yet taken, in order of arrival. That can
//!   rank layers wrongly; a client that wants correct layer selection names its
//!   encodings by one of the two conventions above.
//!
//! A track whose first packet carries no rid is not simulcast: its legs forward every
//! packet unchanged as before layers existed (see `forward.rs`).
//!
//! # Known limitation (webrtc 0.21)
//!
//! Every renegotiation of the publisher's connection fires `OnOpen` again for the
//! layers webrtc re-learns, and seen in the browser e2e tests: after one, packets of
//! a layer whose rid was not re-learnt stop reaching the track (the browser sends
//! the rid header extension only at the start of a stream). Its measured rate then
//! drops to 0 and the allocators move their legs to a layer that still arrives, but
//! a leg may wait for that layer's keyframe meanwhile. Hence the web client's
//! simulcast is opt-in for now.

use std::time::{Duration, Instant};

use super::layers::MAX_SPATIAL_LAYERS;

/// Temporal layers a VP8 descriptor can name (TID is two bits).
pub const MAX_TEMPORAL_LAYERS: usize = 4;

/// The spatial layer a rid names by convention (module docs), if it follows one.
pub fn spatial_index(rid: &str) -> Option<u8> {
    match rid {
        "q" => Some(0),
        "h" => Some(1),
        "f" => Some(2),
        n => n
            .parse::<u8>()
            .ok()
            .filter(|&i| usize::from(i) < MAX_SPATIAL_LAYERS),
    }
}

/// SSRC → spatial layer of one simulcast track, built from the rids as they open.
#[derive(Debug, Clone, Default)]
pub struct LayerMap {
    /// `(ssrc, layer)` of every layer opened so far.
    entries: Vec<(u32, u8)>,
}

impl LayerMap {
    /// Records that `ssrc` carries `rid` and returns its layer; `None` when every
    /// index is taken (more encodings than [`MAX_SPATIAL_LAYERS`]). An SSRC seen again
    /// keeps its layer.
    pub fn open(&mut self, ssrc: u32, rid: &str) -> Option<u8> {
        if let Some(layer) = self.layer_of(ssrc) {
            return Some(layer);
        }
        let taken = |l: u8| self.entries.iter().any(|&(_, e)| e == l);
        let layer = match spatial_index(rid) {
            Some(l) if !taken(l) => l,
            _ => (0..MAX_SPATIAL_LAYERS as u8).find(|&l| !taken(l))?,
        };
        self.entries.push((ssrc, layer));
        Some(layer)
    }

    /// The layer of a packet's SSRC.
    pub fn layer_of(&self, ssrc: u32) -> Option<u8> {
        self.entries
            .iter()
            .find(|&&(s, _)| s == ssrc)
            .map(|&(_, l)| l)
    }

    /// The SSRC of a layer.
    pub fn ssrc_of(&self, layer: u8) -> Option<u32> {
        self.entries
            .iter()
            .find(|&&(_, l)| l == layer)
            .map(|&(s, _)| s)
    }

    /// The highest layer opened (the archive's layer).
    pub fn top(&self) -> Option<u8> {
        self.entries.iter().map(|&(_, l)| l).max()
    }
}

/// Bits per second of each spatial layer with temporal layers `0..=t` (cumulative), as
/// the allocator takes them; 0 where nothing of that temporal layer arrived.
pub type LayerRates = [[u64; MAX_TEMPORAL_LAYERS]; MAX_SPATIAL_LAYERS];

/// Measures each (spatial, temporal) layer's bitrate over windows of `window`.
#[derive(Debug, Clone)]
pub struct LayerMeter {
    window: Duration,
    started: Option<Instant>,
    bytes: [[u64; MAX_TEMPORAL_LAYERS]; MAX_SPATIAL_LAYERS],
}

impl LayerMeter {
    pub fn new(window: Duration) -> Self {
        LayerMeter {
            window,
            started: None,
            bytes: [[0; MAX_TEMPORAL_LAYERS]; MAX_SPATIAL_LAYERS],
        }
    }

    /// Counts one packet of `bytes` (payload) of layer (`spatial`, `temporal`) arriving
    /// at `now`. When a window is complete, returns its rates and starts the next one.
    pub fn record(
        &mut self,
        spatial: u8,
        temporal: u8,
        bytes: usize,
        now: Instant,
    ) -> Option<LayerRates> {
        let started = *self.started.get_or_insert(now);
        let elapsed = now.saturating_duration_since(started);
        let done = (elapsed >= self.window).then(|| {
            let rates = self.rates(elapsed);
            self.bytes = [[0; MAX_TEMPORAL_LAYERS]; MAX_SPATIAL_LAYERS];
            self.started = Some(now);
            rates
        });
        let (s, t) = (usize::from(spatial), usize::from(temporal));
        if let Some(cell) = self.bytes.get_mut(s).and_then(|l| l.get_mut(t)) {
            // RTP, UDP and IP headers: about 40 bytes a packet on the wire.
            *cell += bytes as u64 + 40;
        }
        done
    }

    fn rates(&self, elapsed: Duration) -> LayerRates {
        let micros = elapsed.as_micros().max(1);
        let mut out = [[0; MAX_TEMPORAL_LAYERS]; MAX_SPATIAL_LAYERS];
        for (s, temporal) in self.bytes.iter().enumerate() {
            let mut sum = 0u64;
            for (t, &b) in temporal.iter().enumerate() {
                sum += b;
                if b > 0 {
                    out[s][t] = (u128::from(sum) * 8 * 1_000_000 / micros) as u64;
                }
            }
        }
        out
    }
}

/// Whether an H.264 RTP payload (RFC 6184) starts a keyframe: an SPS or IDR NAL unit,
/// alone, first in a STAP-A, or the first fragment of an FU-A.
pub fn h264_keyframe_start(payload: &[u8]) -> bool {
    const IDR: u8 = 5;
    const SPS: u8 = 7;
    let is_key = |nal_type: u8| nal_type == IDR || nal_type == SPS;
    match payload.first().map(|b| b & 0x1f) {
        Some(24) => payload.get(3).is_some_and(|b| is_key(b & 0x1f)),
        Some(28) => payload
            .get(1)
            .is_some_and(|b| b & 0x80 != 0 && is_key(b & 0x1f)),
        Some(t) => is_key(t),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rids_follow_the_naming_conventions() {
        assert_eq!(spatial_index("q"), Some(0));
        assert_eq!(spatial_index("h"), Some(1));
        assert_eq!(spatial_index("f"), Some(2));
        assert_eq!(spatial_index("0"), Some(0));
        assert_eq!(spatial_index("3"), Some(3));
        assert_eq!(spatial_index("4"), None);
        assert_eq!(spatial_index("hi"), None);
    }

    #[test]
    fn layers_are_ranked_by_name_not_by_arrival() {
        let mut m = LayerMap::default();
        // The full layer's first packet arrives first.
        assert_eq!(m.open(30, "f"), Some(2));
        assert_eq!(m.open(10, "q"), Some(0));
        assert_eq!(m.open(20, "h"), Some(1));
        assert_eq!(m.open(30, "f"), Some(2), "an SSRC keeps its layer");
        assert_eq!(
            (m.layer_of(10), m.layer_of(20), m.layer_of(30)),
            (Some(0), Some(1), Some(2))
        );
        assert_eq!(m.layer_of(99), None);
        assert_eq!((m.ssrc_of(1), m.top()), (Some(20), Some(2)));
    }

    #[test]
    fn unconventional_rids_take_free_layers_in_arrival_order() {
        let mut m = LayerMap::default();
        assert_eq!(m.open(1, "hi"), Some(0));
        assert_eq!(m.open(2, "q"), Some(1), "q's own index is taken");
        assert_eq!(m.open(3, "lo"), Some(2));
        assert_eq!(m.open(4, "mid"), Some(3));
        assert_eq!(m.open(5, "x"), None, "more encodings than layers");
    }

    #[test]
    fn the_meter_reports_cumulative_rates_per_window() {
        let mut m = LayerMeter::new(Duration::from_secs(1));
        let t0 = Instant::now();
        // In one second: layer 0 TL0 10 x 1210 bytes, TL1 5 x 1210; layer 2 TL0 20 x 1210.
        for i in 0..10 {
            assert_eq!(
                m.record(0, 0, 1210, t0 + Duration::from_millis(i * 90)),
                None
            );
        }
        for i in 0..5 {
            m.record(0, 1, 1210, t0 + Duration::from_millis(i * 150));
        }
        for i in 0..20 {
            m.record(2, 0, 1210, t0 + Duration::from_millis(i * 45));
        }
        let rates = m
            .record(1, 0, 100, t0 + Duration::from_secs(1))
            .expect("a window is complete");
        assert_eq!(rates[0][0], 10 * 1250 * 8);
        assert_eq!(rates[0][1], 15 * 1250 * 8, "TL1 includes TL0");
        assert_eq!(rates[0][2], 0, "no TL2 arrived");
        assert_eq!(rates[2][0], 20 * 1250 * 8);
        assert_eq!(
            rates[1][0], 0,
            "the packet closing the window counts in the next"
        );
        let next = m
            .record(1, 0, 100, t0 + Duration::from_secs(2))
            .expect("next window");
        assert_eq!((next[1][0], next[0][0]), (140 * 8, 0));
    }

    #[test]
    fn h264_keyframe_starts_are_found_in_every_packetization() {
        assert!(h264_keyframe_start(&[0x67, 0x42]), "SPS alone");
        assert!(h264_keyframe_start(&[0x65, 0x88]), "IDR alone");
        assert!(!h264_keyframe_start(&[0x41, 0x9a]), "non-IDR slice");
        assert!(
            h264_keyframe_start(&[0x78, 0x00, 0x0a, 0x67]),
            "STAP-A with SPS"
        );
        assert!(h264_keyframe_start(&[0x7c, 0x85]), "FU-A start of IDR");
        assert!(!h264_keyframe_start(&[0x7c, 0x45]), "FU-A middle of IDR");
        assert!(!h264_keyframe_start(&[]));
    }
}
