//! Paces the video a subscriber connection sends, so that a keyframe leaves as a
//! stream of packets rather than one burst, while audio and RTCP are never held.
//!
//! # Why
//!
//! A keyframe is tens of kilobytes, sent at once when unpaced. On a thin link (a
//! detention site behind 600 kbit/s) the bottleneck's buffer is smaller than that, so
//! the end of every keyframe is dropped there, the picture cannot be decoded until the
//! next one, and the burst reads to the estimator as congestion. Browsers pace at
//! about 2.5 × their estimate; so does this, for video only.
//!
//! rtc 0.21's own `PacerInterceptor` meters every RTP packet first-in first-out at the
//! estimate itself: audio would queue behind a keyframe (a judge's words late or, at
//! its queue limit, lost), and at 1 × the estimate any over-estimate builds a standing
//! queue. This one lets audio and RTCP pass at once and holds only video, at
//! [`PACING_FACTOR`] × the estimate, in its own first-in first-out queue (order within
//! a stream is kept; the allocator, not the pacer, keeps the average rate below the
//! estimate by choosing layers).
//!
//! # Retransmissions and probes
//!
//! NACK answers (RTX, from the responder wire-ward of the application) may use
//! [`REPAIR_SHARE`] of the estimate; beyond it they are dropped, so a congested link
//! is not sent its losses twice over. Probe clusters (`probe.rs`) are sent from here
//! as RTX copies of recent video at the cluster's own rate, outside the video bucket;
//! this numbers every packet of a repair stream, answers and probes alike.
//!
//! # Where
//!
//! At `Slot::Pacer`: application-ward of the TWCC sender and the congestion
//! controller's send history, so a packet is numbered and recorded when it leaves
//! here; wire-ward of the NACK responder, so retransmissions are paced too. The
//! estimate arrives on the read leg as `Attribute::TargetBitrateChanged`, attached by
//! the congestion controller to the feedback that produced it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::interceptor::{
    Attribute, AttributedPacket, Interceptor, Pacer, Packet, StreamInfo, TaggedPacket,
};
use rtc::rtp;
use rtc::sansio::Protocol;
use rtc::shared::error::Error;
use rtc::shared::marshal::MarshalSize;
use rtc::shared::TransportContext;

use super::probe::{Cluster, Prober};

/// Video leaves at this multiple of the estimate (libwebrtc's pacing factor).
pub const PACING_FACTOR: f64 = 2.5;
/// The pacing rate never goes below this (bits/s): an estimate at its floor must
/// still let a keyframe out within a second or so.
pub const MIN_PACING_BPS: f64 = 250_000.0;
/// Video packets held at most; an arrival beyond is refused (the receiver's NACK
/// recovers it) rather than delaying everything behind it further.
pub const QUEUE_LIMIT: usize = 2048;
/// Recent video packets kept to copy into probe packets.
const PROBE_SOURCES: usize = 16;
/// Retransmissions may use at most this share of the estimate; beyond, a NACK answer
/// is dropped (the receiver asks again or gives up on that frame). On a thin link
/// whose buffer overflowed, answering every NACK doubled what was sent into it and
/// starved the audio: libwebrtc caps its retransmissions by its estimate too.
pub const REPAIR_SHARE: f64 = 0.3;
/// ... with this much of it usable at once (seconds' worth), for the burst of NACKs a
/// loss burst brings.
const REPAIR_BURST_SECONDS: f64 = 0.5;
/// The repair budget never goes below this (bits/s).
const MIN_REPAIR_BPS: f64 = 64_000.0;

/// A repair stream of one outgoing video stream.
#[derive(Debug, Clone, Copy)]
struct Repair {
    ssrc: u32,
    payload_type: u8,
}

/// The probe cluster being sent.
#[derive(Debug, Clone, Copy)]
struct Sending {
    cluster: Cluster,
    left: u32,
    next_at: Instant,
}

/// See the module docs.
pub struct VideoPacer {
    bucket: Pacer,
    /// SSRCs of the connection's outgoing video streams (and their RTX).
    video: HashSet<u32>,
    queue: VecDeque<TaggedPacket>,
    dropped: u64,
    released: VecDeque<TaggedPacket>,
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
    /// Probing (`probe.rs`): each video stream's repair stream, the sequence
    /// numbers of every repair stream (the NACK responder's retransmissions and the
    /// probes share them, so this numbers both), recent video to copy, and the
    /// cluster on its way.
    prober: Option<Arc<Prober>>,
    repairs: HashMap<u32, Repair>,
    repair_seq: HashMap<u32, u16>,
    sources: VecDeque<rtp::Packet>,
    sending: Option<Sending>,
    /// The retransmission budget: bits available now, when last refilled, and the
    /// estimate it is a share of.
    repair_bits: f64,
    repair_refilled: Option<Instant>,
    estimate_bps: f64,
    repairs_dropped: u64,
}

fn pacing_rate(estimate_bps: f64) -> f64 {
    (estimate_bps * PACING_FACTOR).max(MIN_PACING_BPS)
}

impl VideoPacer {
    /// A pacer for a connection whose estimate starts at `initial_estimate_bps`.
    pub fn new(initial_estimate_bps: u64) -> Self {
        VideoPacer {
            bucket: Pacer::new(pacing_rate(initial_estimate_bps as f64)),
            video: HashSet::new(),
            queue: VecDeque::new(),
            dropped: 0,
            released: VecDeque::new(),
            read_queue: VecDeque::new(),
            write_queue: VecDeque::new(),
            prober: None,
            repairs: HashMap::new(),
            repair_seq: HashMap::new(),
            sources: VecDeque::new(),
            sending: None,
            repair_bits: 0.0,
            repair_refilled: None,
            estimate_bps: initial_estimate_bps as f64,
            repairs_dropped: 0,
        }
    }

    /// Retransmissions dropped because they were beyond [`REPAIR_SHARE`].
    pub fn repairs_dropped(&self) -> u64 {
        self.repairs_dropped
    }

    /// Whether a retransmission of `bits` fits the repair budget at `now` (and takes
    /// it from the budget if so).
    fn afford_repair(&mut self, now: Instant, bits: f64) -> bool {
        let rate = (self.estimate_bps * REPAIR_SHARE).max(MIN_REPAIR_BPS);
        let cap = rate * REPAIR_BURST_SECONDS;
        let elapsed = self.repair_refilled.map_or(REPAIR_BURST_SECONDS, |t| {
            now.saturating_duration_since(t).as_secs_f64()
        });
        self.repair_bits = (self.repair_bits + elapsed * rate).min(cap);
        self.repair_refilled = Some(now);
        if self.repair_bits < bits {
            return false;
        }
        self.repair_bits -= bits;
        true
    }

    /// Sends the probe clusters `prober` asks for (see `probe.rs`).
    pub fn with_prober(mut self, prober: Arc<Prober>) -> Self {
        self.prober = Some(prober);
        self
    }

    /// Keeps a video packet to copy into probes, and gives a repair stream's packet
    /// (a NACK answer) the next number of that stream.
    fn note_outgoing(&mut self, msg: &mut TaggedPacket) {
        let Packet::Rtp(rtp) = &mut msg.message.packet else {
            return;
        };
        let ssrc = rtp.header.ssrc;
        if let Some(seq) = self.repair_seq.get_mut(&ssrc) {
            rtp.header.sequence_number = *seq;
            *seq = seq.wrapping_add(1);
        } else if self.prober.is_some()
            && self.repairs.contains_key(&ssrc)
            && !rtp.payload.is_empty()
        {
            if self.sources.len() >= PROBE_SOURCES {
                self.sources.pop_front();
            }
            self.sources.push_back(rtp.clone());
        }
    }

    /// Starts a cluster if one is due and there is video to copy.
    fn maybe_start_probe(&mut self, now: Instant) {
        if self.sending.is_some() || self.sources.is_empty() {
            return;
        }
        let Some(cluster) = self.prober.as_ref().and_then(|p| p.start(now)) else {
            return;
        };
        self.sending = Some(Sending {
            cluster,
            left: cluster.packets,
            next_at: now,
        });
    }

    /// Sends the probe packets due by `now`.
    fn send_probes(&mut self, now: Instant) {
        let Some(prober) = self.prober.clone() else {
            return;
        };
        while let Some(sending) = self.sending.as_mut() {
            if sending.next_at > now {
                return;
            }
            let id = sending.cluster.id;
            let rate = sending.cluster.rate_bps.max(1) as f64;
            // Newest first, round the kept packets: a probe never copies a stream
            // whose leg has gone (its packets were dropped when it was unbound).
            let index = (sending.cluster.packets - sending.left) as usize;
            let source = self
                .sources
                .len()
                .checked_sub(1 + index % self.sources.len().max(1))
                .and_then(|i| self.sources.get(i).cloned());
            let built = source.and_then(|src| {
                let repair = *self.repairs.get(&src.header.ssrc)?;
                let seq = self.repair_seq.entry(repair.ssrc).or_insert(0);
                let number = *seq;
                *seq = seq.wrapping_add(1);
                Some((repair.ssrc, number, probe_packet(&src, repair, number)))
            });
            let Some((ssrc, number, packet)) = built else {
                prober.finished(id, now);
                self.sending = None;
                return;
            };
            let bits = (packet.marshal_size() * 8) as f64;
            prober.sent(id, ssrc, number, now);
            self.released.push_back(TaggedPacket {
                now,
                transport: TransportContext::default(),
                message: AttributedPacket::new(Packet::Rtp(packet)).with(Attribute::Retransmission),
            });
            sending.left -= 1;
            sending.next_at += Duration::from_secs_f64(bits / rate);
            if sending.left == 0 {
                self.sending = None;
            }
        }
    }

    /// Video packets waiting now.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Video packets refused because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The rate video leaves at now (bits/s).
    pub fn rate_bps(&self) -> f64 {
        self.bucket.target_bitrate()
    }

    fn bits(packet: &TaggedPacket) -> f64 {
        match &packet.message.packet {
            Packet::Rtp(rtp) => (rtp.marshal_size() * 8) as f64,
            _ => 0.0,
        }
    }

    fn is_paced(&self, packet: &TaggedPacket) -> bool {
        matches!(&packet.message.packet, Packet::Rtp(rtp) if self.video.contains(&rtp.header.ssrc))
    }
}

/// An RTX copy (RFC 4588) of `src` on `repair`, numbered `seq`: what the NACK
/// responder would send for it, so the receiver treats it as a repair it did not need.
fn probe_packet(src: &rtp::Packet, repair: Repair, seq: u16) -> rtp::Packet {
    let mut payload = Vec::with_capacity(2 + src.payload.len());
    payload.extend_from_slice(&src.header.sequence_number.to_be_bytes());
    payload.extend_from_slice(&src.payload);
    rtp::Packet {
        header: rtp::header::Header {
            version: 2,
            ssrc: repair.ssrc,
            payload_type: repair.payload_type,
            sequence_number: seq,
            timestamp: src.header.timestamp,
            marker: src.header.marker,
            ..Default::default()
        },
        payload: payload.into(),
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for VideoPacer {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Some(Attribute::TargetBitrateChanged { bits_per_second }) =
            msg.message.get(&Attribute::TargetBitrateChanged {
                bits_per_second: 0.0,
            })
        {
            self.bucket
                .set_target_bitrate(pacing_rate(*bits_per_second));
            self.estimate_bps = *bits_per_second;
        }
        self.read_queue.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read_queue.pop_front()
    }

    fn handle_write(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        let repair = matches!(&msg.message.packet,
            Packet::Rtp(rtp) if self.repair_seq.contains_key(&rtp.header.ssrc));
        if repair && !self.afford_repair(msg.now, Self::bits(&msg)) {
            self.repairs_dropped += 1;
            return Ok(());
        }
        self.note_outgoing(&mut msg);
        if self.prober.is_some() {
            self.maybe_start_probe(msg.now);
            self.send_probes(msg.now);
        }
        if !self.is_paced(&msg) {
            self.write_queue.push_back(msg);
            return Ok(());
        }
        self.bucket.refill(msg.now);
        if self.queue.is_empty() && self.bucket.can_release(Self::bits(&msg)) {
            // Nothing waits and the budget has room: it leaves at once.
            self.bucket.consume(Self::bits(&msg));
            self.write_queue.push_back(msg);
            return Ok(());
        }
        if self.queue.len() >= QUEUE_LIMIT {
            self.dropped += 1;
            return Ok(());
        }
        self.queue.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write_queue
            .pop_front()
            .or_else(|| self.released.pop_front())
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), Self::Error> {
        self.bucket.refill(now);
        while let Some(head) = self.queue.front() {
            let bits = Self::bits(head);
            if !self.bucket.can_release(bits) {
                break;
            }
            self.bucket.consume(bits);
            if let Some(mut packet) = self.queue.pop_front() {
                // It departs now: what records departures must see this instant.
                packet.now = now;
                self.released.push_back(packet);
            }
        }
        if self.prober.is_some() {
            self.maybe_start_probe(now);
            self.send_probes(now);
        }
        Ok(())
    }

    fn poll_timeout(&mut self) -> Option<Self::Time> {
        let probe = self.sending.map(|s| s.next_at);
        let head = self
            .queue
            .front()
            .map(Self::bits)
            .and_then(|bits| self.bucket.releasable_at(bits));
        match (head, probe) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

impl Interceptor for VideoPacer {
    fn bind_local_stream(&mut self, info: &StreamInfo) {
        if info.mime_type.to_ascii_lowercase().starts_with("video/") {
            self.video.insert(info.ssrc);
            if let Some(rtx) = info.ssrc_rtx {
                self.video.insert(rtx);
                if let Some(payload_type) = info.payload_type_rtx {
                    self.repairs.insert(
                        info.ssrc,
                        Repair {
                            ssrc: rtx,
                            payload_type,
                        },
                    );
                    self.repair_seq.entry(rtx).or_insert(0);
                }
            }
        }
    }

    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        self.video.remove(&info.ssrc);
        self.repairs.remove(&info.ssrc);
        self.sources.retain(|p| p.header.ssrc != info.ssrc);
        if let Some(rtx) = info.ssrc_rtx {
            self.video.remove(&rtx);
            self.repair_seq.remove(&rtx);
        }
    }

    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::shared::TransportMessage;
    use std::time::Duration;

    fn video_info(ssrc: u32) -> StreamInfo {
        StreamInfo {
            ssrc,
            mime_type: "video/VP8".to_owned(),
            ..Default::default()
        }
    }

    fn rtp(now: Instant, ssrc: u32, seq: u16, len: usize) -> TaggedPacket {
        let mut header = rtc::rtp::header::Header {
            ssrc,
            sequence_number: seq,
            ..Default::default()
        };
        header.version = 2;
        TransportMessage {
            now,
            transport: Default::default(),
            message: Packet::Rtp(rtc::rtp::Packet {
                header,
                payload: bytes::Bytes::from(vec![0u8; len]),
            })
            .into(),
        }
    }

    fn drain(p: &mut VideoPacer) -> Vec<(u32, u16)> {
        let mut out = Vec::new();
        while let Some(m) = p.poll_write() {
            if let Packet::Rtp(r) = m.message.packet {
                out.push((r.header.ssrc, r.header.sequence_number));
            }
        }
        out
    }

    #[test]
    fn a_keyframe_burst_leaves_at_the_pacing_rate_and_audio_is_never_held() {
        // 400 kbit/s estimate: video leaves at 1 Mbit/s.
        let mut p = VideoPacer::new(400_000);
        assert_eq!(p.rate_bps(), 1_000_000.0);
        p.bind_local_stream(&video_info(1));
        let t0 = Instant::now();
        // A 30-packet keyframe of 1200-byte packets (~290 kbit) arrives at once.
        for seq in 0..30 {
            p.handle_write(rtp(t0, 1, seq, 1188)).expect("write");
        }
        let first = drain(&mut p);
        assert!(
            !first.is_empty() && first.len() < 30,
            "some leaves at once, the rest is held: {}",
            first.len()
        );
        // Audio (an SSRC not bound as video) passes while video waits.
        p.handle_write(rtp(t0, 2, 7, 100)).expect("write");
        assert_eq!(drain(&mut p), vec![(2, 7)]);
        // Released over time, in order, by about 290 ms at 1 Mbit/s.
        let mut released = first;
        let mut now = t0;
        for _ in 0..100 {
            let Some(at) = p.poll_timeout() else { break };
            now = at.max(now + Duration::from_millis(1));
            p.handle_timeout(now).expect("timeout");
            released.extend(drain(&mut p));
        }
        let seqs: Vec<u16> = released.iter().map(|r| r.1).collect();
        assert_eq!(seqs, (0..30).collect::<Vec<_>>(), "every packet, in order");
        let took = now - t0;
        assert!(
            took > Duration::from_millis(150) && took < Duration::from_millis(450),
            "paced over ~290 ms, took {took:?}"
        );
        assert_eq!(p.queued(), 0);
    }

    #[test]
    fn probes_are_rtx_copies_at_the_clusters_rate_numbered_with_the_nack_answers() {
        use crate::sfu::probe::{ProbeConfig, Prober};
        let prober = Arc::new(Prober::new(ProbeConfig {
            initial_bps: 1_000_000,
            packets: 5,
            ..ProbeConfig::default()
        }));
        let mut p = VideoPacer::new(2_000_000).with_prober(prober.clone());
        p.bind_local_stream(&StreamInfo {
            ssrc_rtx: Some(2),
            payload_type: 96,
            payload_type_rtx: Some(97),
            ..video_info(1)
        });
        let t0 = Instant::now();
        // No video yet: nothing to copy, no probe.
        assert_eq!(p.poll_timeout(), None);
        // A NACK answer (RTX from the responder, numbered 0 by it).
        p.handle_write(rtp(t0, 2, 0, 500)).expect("write");
        assert_eq!(drain(&mut p), vec![(2, 0)]);
        // The first video packet: it leaves, and the cluster starts with it.
        p.handle_write(rtp(t0, 1, 40, 1000)).expect("write");
        let mut out: Vec<rtc::rtp::Packet> = Vec::new();
        let mut now = t0;
        for _ in 0..50 {
            while let Some(m) = p.poll_write() {
                if let Packet::Rtp(r) = m.message.packet {
                    out.push(r);
                }
            }
            let Some(at) = p.poll_timeout() else { break };
            now = at.max(now);
            p.handle_timeout(now).expect("timeout");
        }
        let probes: Vec<&rtc::rtp::Packet> = out.iter().filter(|r| r.header.ssrc == 2).collect();
        assert_eq!(probes.len(), 5, "the whole cluster");
        for (i, r) in probes.iter().enumerate() {
            assert_eq!(
                r.header.sequence_number,
                1 + i as u16,
                "after the NACK answer's 0"
            );
            assert_eq!(r.header.payload_type, 97);
            assert_eq!(
                &r.payload[..2],
                &40u16.to_be_bytes(),
                "the copied packet's number"
            );
            assert_eq!(r.payload.len(), 1002);
        }
        // Five ~1 kB packets at 1 Mbit/s: the last leaves ~32 ms after the first.
        let took = now - t0;
        assert!(
            took > Duration::from_millis(25) && took < Duration::from_millis(60),
            "{took:?}"
        );
        // The next NACK answer goes on from the probes' numbers.
        p.handle_write(rtp(now, 2, 1, 500)).expect("write");
        assert_eq!(drain(&mut p), vec![(2, 6)]);
    }

    #[test]
    fn retransmissions_beyond_their_share_of_the_estimate_are_dropped() {
        // 600 kbit/s: repairs may use 180 kbit/s, 90 kbit at once.
        let mut p = VideoPacer::new(600_000);
        p.bind_local_stream(&StreamInfo {
            ssrc_rtx: Some(2),
            payload_type_rtx: Some(97),
            ..video_info(1)
        });
        let t0 = Instant::now();
        // A NACK for 40 packets at once: about nine of 1.2 kB fit.
        for seq in 0..40 {
            p.handle_write(rtp(t0, 2, seq, 1188)).expect("write");
        }
        let sent = drain(&mut p);
        assert!((8..=10).contains(&sent.len()), "{}", sent.len());
        assert_eq!(p.repairs_dropped(), 40 - sent.len() as u64);
        // Numbered without gaps: a dropped answer takes no number.
        let seqs: Vec<u16> = sent.iter().map(|s| s.1).collect();
        assert_eq!(seqs, (0..sent.len() as u16).collect::<Vec<_>>());
        // A second later the budget is back; media was never touched.
        let t1 = t0 + Duration::from_secs(1);
        p.handle_write(rtp(t1, 2, 99, 1188)).expect("write");
        p.handle_write(rtp(t1, 1, 5, 1188)).expect("write");
        assert_eq!(drain(&mut p).len(), 2);
    }

    #[test]
    fn the_estimate_from_feedback_sets_the_rate_and_a_full_queue_refuses() {
        let mut p = VideoPacer::new(2_000_000);
        let mut fb = rtp(Instant::now(), 9, 0, 10);
        fb.message.add(Attribute::TargetBitrateChanged {
            bits_per_second: 40_000.0,
        });
        p.handle_read(fb).expect("read");
        assert!(p.poll_read().is_some(), "the feedback goes on");
        assert_eq!(p.rate_bps(), MIN_PACING_BPS, "never below the floor");
        p.bind_local_stream(&video_info(1));
        let t0 = Instant::now();
        for seq in 0..(QUEUE_LIMIT as u16 + 100) {
            p.handle_write(rtp(t0, 1, seq, 1188)).expect("write");
        }
        assert_eq!(p.queued(), QUEUE_LIMIT);
        assert!(p.dropped() > 0);
        // Unbound (the leg went away): its packets are no longer held.
        p.unbind_local_stream(&video_info(1));
        p.handle_write(rtp(t0, 1, 1, 100)).expect("write");
        assert!(drain(&mut p).contains(&(1, 1)));
    }
}
