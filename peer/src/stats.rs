//! What a peer received, per remote stream (publishing participant) and kind.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use rtc::rtp::codec::vp8::Vp8Packet;
use rtc::rtp::packetizer::Depacketizer;

use crate::hash::fnv1a64;

/// How many recent frame hashes are kept per (stream, kind).
pub const RECENT_FRAMES: usize = 200;

/// How a remote track was found to have ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndSignal {
    /// `TrackRemoteEvent::OnEnded` from webrtc.
    OnEnded,
    /// `TrackRemote::poll()` returned `None` (the peer connection closed).
    PollNone,
    /// A remote description no longer sends this track (direction `recvonly`/`inactive`,
    /// port 0, or msid gone). In webrtc 0.21 this is the only signal a renegotiation that
    /// removes a track produces on the receiving side.
    RemoteDescription,
}

/// Counters for one kind (audio or video) of one remote stream.
#[derive(Debug, Clone, Default)]
pub struct KindStats {
    /// Track ids seen for this stream and kind (normally one).
    pub track_ids: Vec<String>,
    pub rtp_packets: u64,
    /// RTP payload bytes.
    pub bytes: u64,
    pub packets_per_ssrc: HashMap<u32, u64>,
    /// Video: complete VP8 frames reassembled. Audio: Opus payloads.
    pub frames: u64,
    /// Video: complete frames that were key frames.
    pub keyframes: u64,
    /// Frames whose hash is in the peer's "known sent" set.
    pub frames_matched: u64,
    /// Video: partial frames thrown away because a packet was missing.
    pub frames_discarded: u64,
    /// When the first RTP packet arrived.
    pub first_packet_at: Option<Instant>,
    pub last_packet_at: Option<Instant>,
    /// How many times webrtc sent `OnOpen` (once per SSRC, and again on renegotiation).
    pub opens: u32,
    /// Whether the (latest) track ended, and how that was learnt.
    pub ended: Option<EndSignal>,
    /// Every lifecycle event seen from webrtc, in order (`open`, `mute`, `unmute`,
    /// `ending`, `ended`, `error`, `poll_none`), to observe the library's behaviour.
    pub lifecycle: Vec<String>,
    /// Hashes of the last [`RECENT_FRAMES`] frames, oldest first.
    pub recent_frame_hashes: VecDeque<u64>,
}

impl KindStats {
    pub fn is_ended(&self) -> bool {
        self.ended.is_some()
    }
}

/// Audio and video of one remote stream.
#[derive(Debug, Clone, Default)]
pub struct StreamStats {
    pub audio: KindStats,
    pub video: KindStats,
}

/// Snapshot of everything received, keyed by remote MediaStream id (the publishing
/// participant's id when talking to the OpenHearing server).
#[derive(Debug, Clone, Default)]
pub struct ReceiveStats {
    pub streams: HashMap<String, StreamStats>,
}

impl ReceiveStats {
    pub fn stream(&self, id: &str) -> Option<&StreamStats> {
        self.streams.get(id)
    }

    /// Total matched video frames over all streams.
    pub fn video_frames_matched(&self) -> u64 {
        self.streams.values().map(|s| s.video.frames_matched).sum()
    }

    /// Total matched audio packets over all streams.
    pub fn audio_frames_matched(&self) -> u64 {
        self.streams.values().map(|s| s.audio.frames_matched).sum()
    }
}

/// Reassembles VP8 frames from RTP payloads: a frame ends at the marker bit; a gap in
/// sequence numbers, a timestamp change or a frame not starting at a partition head
/// discards the partial frame.
#[derive(Default)]
pub(crate) struct Vp8Assembler {
    partial: BytesMut,
    in_frame: bool,
    timestamp: u32,
    next_seq: Option<u16>,
    depacketizer: Vp8Packet,
}

pub(crate) enum Assembled {
    Nothing,
    Frame(Bytes),
    Discarded,
}

impl Vp8Assembler {
    pub(crate) fn push(
        &mut self,
        seq: u16,
        timestamp: u32,
        marker: bool,
        payload: &Bytes,
    ) -> (Assembled, bool) {
        let mut discarded = false;
        let gap = self.next_seq.is_some_and(|n| n != seq);
        self.next_seq = Some(seq.wrapping_add(1));
        if self.in_frame && (gap || timestamp != self.timestamp) {
            self.partial.clear();
            self.in_frame = false;
            discarded = true;
        }
        if !self.in_frame {
            if !self.depacketizer.is_partition_head(payload) {
                // Middle of a frame whose start we lost: wait for the next head.
                return (Assembled::Nothing, discarded || gap);
            }
            self.in_frame = true;
            self.timestamp = timestamp;
        }
        match self.depacketizer.depacketize(payload) {
            Ok(data) => self.partial.extend_from_slice(&data),
            Err(_) => {
                self.partial.clear();
                self.in_frame = false;
                return (Assembled::Discarded, true);
            }
        }
        if marker {
            self.in_frame = false;
            let frame = std::mem::take(&mut self.partial).freeze();
            return (Assembled::Frame(frame), discarded);
        }
        (Assembled::Nothing, discarded)
    }
}

/// Records one complete frame into `k`.
pub(crate) fn record_frame(k: &mut KindStats, frame: &[u8], video: bool, known: &HashSet<u64>) {
    let h = fnv1a64(frame);
    k.frames += 1;
    if video && frame.first().is_some_and(|b| b & 0x01 == 0) {
        k.keyframes += 1;
    }
    if known.contains(&h) {
        k.frames_matched += 1;
    }
    if k.recent_frame_hashes.len() >= RECENT_FRAMES {
        k.recent_frame_hashes.pop_front();
    }
    k.recent_frame_hashes.push_back(h);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::rtp::codec::vp8::Vp8Payloader;
    use rtc::rtp::packetizer::Payloader;

    fn packets(frame: &[u8], mtu: usize) -> Vec<Bytes> {
        let mut p = Vp8Payloader::default();
        p.payload(mtu, &Bytes::copy_from_slice(frame))
            .expect("payload")
    }

    #[test]
    fn reassembles_and_discards_on_loss() {
        let frame: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        let pkts = packets(&frame, 1000);
        assert!(pkts.len() >= 3);
        let mut a = Vp8Assembler::default();
        let mut seq = 10u16;
        let mut got = None;
        for (i, p) in pkts.iter().enumerate() {
            if let (Assembled::Frame(f), _) = a.push(seq, 1000, i + 1 == pkts.len(), p) {
                got = Some(f);
            }
            seq += 1;
        }
        assert_eq!(got.as_deref(), Some(&frame[..]));

        // Lose the second packet of the next frame: nothing is produced, the loss is seen.
        let mut produced = false;
        let mut lost = false;
        for (i, p) in pkts.iter().enumerate() {
            if i == 1 {
                seq += 1;
                continue;
            }
            let (r, d) = a.push(seq, 4000, i + 1 == pkts.len(), p);
            lost |= d;
            produced |= matches!(r, Assembled::Frame(_));
            seq += 1;
        }
        assert!(!produced);
        assert!(lost);

        // The following frame is whole again.
        let mut got = None;
        for (i, p) in pkts.iter().enumerate() {
            if let (Assembled::Frame(f), _) = a.push(seq, 7000, i + 1 == pkts.len(), p) {
                got = Some(f);
            }
            seq += 1;
        }
        assert_eq!(got.as_deref(), Some(&frame[..]));
    }
}
