//! From RTP packets to whole, decodable frames: a small reorder buffer, and
//! depacketisers for VP8 (RFC 7741), Opus (RFC 7587) and H.264 (RFC 6184).
//!
//! Policy: a frame any of whose packets is missing (lost, truncated, or an
//! unsupported packetisation) is reported as [`DepackEvent::Dropped`] and never
//! emitted; the caller then waits for the next keyframe on video. Parsing never
//! panics and never indexes past a slice: every length comes from the packet and is
//! checked.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::types::{Codec, RtpPacket};

/// What the reorder buffer hands on, in sequence order.
#[derive(Debug)]
pub enum SeqEvent {
    Packet(RtpPacket),
    /// `count` packets were given up on just before the next `Packet`.
    Lost {
        count: u64,
    },
    /// The sequence jumped so far that this is a new stream; state must be reset.
    Reset,
}

/// Puts packets back in sequence order, waiting a bounded time (by arrival time)
/// and a bounded number of packets for a missing one before declaring it lost.
#[derive(Debug)]
pub struct ReorderBuffer {
    buf: BTreeMap<i64, RtpPacket>,
    next: Option<i64>,
    highest: Option<i64>,
    max_packets: usize,
    max_wait: Duration,
    /// Packets that arrived after their slot was given up (or twice).
    pub late_or_duplicate: u64,
}

/// A sequence jump larger than this is a restart, not loss.
const MAX_SEQ_JUMP: i64 = 3000;

impl ReorderBuffer {
    pub fn new(max_packets: usize, max_wait: Duration) -> Self {
        Self {
            buf: BTreeMap::new(),
            next: None,
            highest: None,
            max_packets: max_packets.max(1),
            max_wait,
            late_or_duplicate: 0,
        }
    }

    fn unwrap_seq(&self, seq: u16) -> i64 {
        match self.highest {
            None => i64::from(seq),
            Some(h) => {
                let delta = i64::from(seq.wrapping_sub(h as u16) as i16);
                h + delta
            }
        }
    }

    /// Takes one packet, returns what is now in order.
    pub fn push(&mut self, pkt: RtpPacket, out: &mut Vec<SeqEvent>) {
        let ext = self.unwrap_seq(pkt.seq);
        let next = *self.next.get_or_insert(ext);
        if ext < next {
            if next - ext > MAX_SEQ_JUMP {
                self.restart(ext, out);
            } else {
                self.late_or_duplicate += 1;
                return;
            }
        } else if ext - next > MAX_SEQ_JUMP {
            self.restart(ext, out);
        }
        let arrival = pkt.arrival;
        if self.buf.contains_key(&ext) {
            self.late_or_duplicate += 1;
            return;
        }
        self.buf.insert(ext, pkt);
        self.highest = Some(self.highest.map_or(ext, |h| h.max(ext)));
        self.drain(Some(arrival), out);
    }

    fn restart(&mut self, ext: i64, out: &mut Vec<SeqEvent>) {
        self.flush(out);
        out.push(SeqEvent::Reset);
        self.next = Some(ext);
        self.highest = Some(ext);
    }

    fn drain(&mut self, now: Option<SystemTime>, out: &mut Vec<SeqEvent>) {
        // Bounded: each iteration either removes a packet or advances `next` to a
        // buffered one, so at most 2 * buf.len() iterations.
        loop {
            let Some(next) = self.next else { return };
            if let Some(p) = self.buf.remove(&next) {
                out.push(SeqEvent::Packet(p));
                self.next = Some(next + 1);
                continue;
            }
            let Some((&first, oldest)) = self.buf.iter().next() else {
                return;
            };
            let waited_too_long = match now {
                None => true,
                Some(now) => now
                    .duration_since(oldest.arrival)
                    .map(|d| d > self.max_wait)
                    .unwrap_or(false),
            };
            if self.buf.len() > self.max_packets || waited_too_long {
                out.push(SeqEvent::Lost {
                    count: (first - next) as u64,
                });
                self.next = Some(first);
            } else {
                return;
            }
        }
    }

    /// Gives up on every missing packet and hands on everything buffered.
    pub fn flush(&mut self, out: &mut Vec<SeqEvent>) {
        self.drain(None, out);
    }

    /// Forgets everything (after an SSRC change).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.next = None;
        self.highest = None;
    }
}

/// A complete frame, ready to be muxed.
#[derive(Debug, Clone)]
pub struct Frame {
    pub rtp_ts: u32,
    pub data: Vec<u8>,
    pub keyframe: bool,
    pub arrival: SystemTime,
}

/// What a depacketiser produces.
#[derive(Debug)]
pub enum DepackEvent {
    Frame(Frame),
    /// A frame was incomplete and thrown away.
    Dropped {
        rtp_ts: u32,
    },
}

#[derive(Debug)]
struct Partial {
    ts: u32,
    data: Vec<u8>,
    broken: bool,
    keyframe: bool,
    arrival: SystemTime,
    // H.264 only: which parameter sets / IDR the frame contains.
    has_sps: bool,
    has_pps: bool,
}

/// Depacketiser for one codec.
#[derive(Debug)]
pub struct Depacketizer {
    codec: Codec,
    cur: Option<Partial>,
    /// A packet was lost while no frame was open: the next frame may lack its start.
    next_broken: bool,
    fu_active: bool,
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
}

/// Largest frame accepted (bytes): a bound against a runaway publisher.
const MAX_FRAME_BYTES: usize = 8 * 1024 * 1024;

impl Depacketizer {
    pub fn new(codec: Codec) -> Self {
        Self {
            codec,
            cur: None,
            next_broken: false,
            fu_active: false,
            sps: None,
            pps: None,
        }
    }

    /// Packets were lost just before the next one.
    pub fn lost(&mut self) {
        match &mut self.cur {
            Some(p) => p.broken = true,
            None => self.next_broken = true,
        }
        self.fu_active = false;
    }

    /// Drops any open frame (discontinuity or flush at close: an unterminated frame
    /// is incomplete by definition, except Opus which has none open).
    pub fn reset(&mut self, out: &mut Vec<DepackEvent>) {
        if let Some(p) = self.cur.take() {
            out.push(DepackEvent::Dropped { rtp_ts: p.ts });
        }
        self.next_broken = false;
        self.fu_active = false;
    }

    pub fn push(&mut self, pkt: &RtpPacket, out: &mut Vec<DepackEvent>) {
        // Padding-only packets (bandwidth probes) carry nothing; they only keep the
        // sequence numbers contiguous.
        if pkt.payload.is_empty() {
            return;
        }
        if self.codec == Codec::Opus {
            if self.next_broken {
                self.next_broken = false;
            }
            out.push(DepackEvent::Frame(Frame {
                rtp_ts: pkt.timestamp,
                data: pkt.payload.to_vec(),
                keyframe: true,
                arrival: pkt.arrival,
            }));
            return;
        }
        if let Some(p) = &self.cur {
            if p.ts != pkt.timestamp {
                // The open frame never saw its marker: incomplete.
                if let Some(p) = self.cur.take() {
                    out.push(DepackEvent::Dropped { rtp_ts: p.ts });
                }
                self.fu_active = false;
            }
        }
        match self.codec {
            Codec::Vp8 => self.push_vp8(pkt),
            Codec::H264 => self.push_h264(pkt),
            Codec::Opus => {}
        }
        if let Some(p) = &mut self.cur {
            if p.data.len() > MAX_FRAME_BYTES {
                p.broken = true;
                p.data.clear();
            }
        }
        if pkt.marker {
            if let Some(p) = self.cur.take() {
                self.fu_active = false;
                out.push(self.finish(p));
            }
        }
    }

    fn open(&mut self, pkt: &RtpPacket, broken: bool) -> &mut Partial {
        let broken = broken || std::mem::take(&mut self.next_broken);
        self.cur.get_or_insert(Partial {
            ts: pkt.timestamp,
            data: Vec::new(),
            broken,
            keyframe: false,
            arrival: pkt.arrival,
            has_sps: false,
            has_pps: false,
        })
    }

    fn push_vp8(&mut self, pkt: &RtpPacket) {
        let parsed = parse_vp8_descriptor(&pkt.payload);
        let is_open = self.cur.is_some();
        match parsed {
            Some((start, offset)) if offset < pkt.payload.len() => {
                let body = &pkt.payload[offset..];
                if !is_open {
                    let p = self.open(pkt, !start);
                    if start {
                        // RFC 7741 §4.3: P bit (bit 0 of the first payload byte) is 0 on keyframes.
                        p.keyframe = body[0] & 0x01 == 0;
                    }
                } else if start {
                    // A second start in the same frame: something is wrong.
                    if let Some(p) = &mut self.cur {
                        p.broken = true;
                    }
                }
                if let Some(p) = &mut self.cur {
                    if !p.broken {
                        p.data.extend_from_slice(body);
                    }
                }
            }
            _ => {
                self.open(pkt, true).broken = true;
            }
        }
    }

    fn push_h264(&mut self, pkt: &RtpPacket) {
        let payload = &pkt.payload[..];
        self.open(pkt, false);
        let Some(&first) = payload.first() else {
            return;
        };
        let mut nals: Vec<(u8, Vec<u8>)> = Vec::new();
        let mut ok = true;
        match first & 0x1f {
            1..=23 => nals.push((first & 0x1f, payload.to_vec())),
            24 => {
                let mut i = 1usize;
                while i + 2 <= payload.len() {
                    let size = usize::from(u16::from_be_bytes([payload[i], payload[i + 1]]));
                    i += 2;
                    if size == 0 || i + size > payload.len() {
                        ok = false;
                        break;
                    }
                    let nal = &payload[i..i + size];
                    nals.push((nal[0] & 0x1f, nal.to_vec()));
                    i += size;
                }
                if i != payload.len() {
                    ok = false;
                }
            }
            28 => {
                if payload.len() < 3 {
                    ok = false;
                } else {
                    let header = payload[1];
                    let start = header & 0x80 != 0;
                    let end = header & 0x40 != 0;
                    let ty = header & 0x1f;
                    if start {
                        if self.fu_active {
                            ok = false;
                        }
                        self.fu_active = true;
                        if let Some(p) = &mut self.cur {
                            if !p.broken {
                                p.data.extend_from_slice(&[0, 0, 0, 1, (first & 0xe0) | ty]);
                                p.data.extend_from_slice(&payload[2..]);
                            }
                            note_nal(p, ty);
                        }
                    } else if !self.fu_active {
                        ok = false;
                    } else if let Some(p) = &mut self.cur {
                        if !p.broken {
                            p.data.extend_from_slice(&payload[2..]);
                        }
                    }
                    if end {
                        self.fu_active = false;
                    }
                }
            }
            _ => ok = false,
        }
        let Some(p) = &mut self.cur else { return };
        if !ok {
            p.broken = true;
            return;
        }
        for (ty, nal) in nals {
            match ty {
                7 => self.sps = Some(nal.clone()),
                8 => self.pps = Some(nal.clone()),
                _ => {}
            }
            note_nal(p, ty);
            if !p.broken {
                p.data.extend_from_slice(&[0, 0, 0, 1]);
                p.data.extend_from_slice(&nal);
            }
        }
    }

    fn finish(&mut self, mut p: Partial) -> DepackEvent {
        if p.broken || p.data.is_empty() {
            return DepackEvent::Dropped { rtp_ts: p.ts };
        }
        if self.codec == Codec::H264 && p.keyframe && !(p.has_sps && p.has_pps) {
            match (&self.sps, &self.pps) {
                (Some(sps), Some(pps)) => {
                    let mut data = Vec::with_capacity(p.data.len() + sps.len() + pps.len() + 8);
                    for nal in [sps, pps] {
                        data.extend_from_slice(&[0, 0, 0, 1]);
                        data.extend_from_slice(nal);
                    }
                    data.extend_from_slice(&p.data);
                    p.data = data;
                }
                // An IDR nobody can decode without parameter sets: not a usable keyframe.
                _ => p.keyframe = false,
            }
        }
        DepackEvent::Frame(Frame {
            rtp_ts: p.ts,
            data: p.data,
            keyframe: p.keyframe,
            arrival: p.arrival,
        })
    }
}

fn note_nal(p: &mut Partial, ty: u8) {
    match ty {
        5 => p.keyframe = true,
        7 => p.has_sps = true,
        8 => p.has_pps = true,
        _ => {}
    }
}

/// Parses the VP8 payload descriptor (RFC 7741 §4.2). Returns (starts a frame:
/// S=1 and PID=0, offset of the VP8 payload).
pub fn parse_vp8_descriptor(p: &[u8]) -> Option<(bool, usize)> {
    let b0 = *p.first()?;
    let x = b0 & 0x80 != 0;
    let s = b0 & 0x10 != 0;
    let pid = b0 & 0x07;
    let mut i = 1usize;
    if x {
        let b1 = *p.get(i)?;
        i += 1;
        if b1 & 0x80 != 0 {
            // I: picture id, 7 or 15 bits.
            let m = *p.get(i)? & 0x80 != 0;
            i += if m { 2 } else { 1 };
        }
        if b1 & 0x40 != 0 {
            i += 1; // L: TL0PICIDX
        }
        if b1 & 0x30 != 0 {
            i += 1; // T or K: TID/Y/KEYIDX
        }
    }
    if i > p.len() {
        return None;
    }
    Some((s && pid == 0, i))
}

/// Width and height from a VP8 keyframe (RFC 6386 §9.1).
pub fn vp8_dimensions(frame: &[u8]) -> Option<(u32, u32)> {
    if frame.len() < 10 || frame[0] & 0x01 != 0 || frame[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let w = u32::from(u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff);
    let h = u32::from(u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff);
    (w > 0 && h > 0).then_some((w, h))
}

/// Samples (at 48 kHz) in one Opus packet, from its TOC byte (RFC 6716 §3.1).
pub fn opus_samples(packet: &[u8]) -> Option<u32> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    let per_frame = match config {
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        12..=15 => [480, 960][usize::from(config % 2)],
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let frames = match toc & 0x03 {
        0 => 1,
        1 | 2 => 2,
        _ => u32::from(*packet.get(1)? & 0x3f),
    };
    let total = per_frame * frames;
    (total > 0 && total <= 5760).then_some(total)
}

/// Splits an Annex B byte stream into NAL units (without start codes).
pub fn annexb_nals(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0usize;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut out = Vec::new();
    for (k, &s) in starts.iter().enumerate() {
        let mut e = starts.get(k + 1).map_or(data.len(), |&n| n - 3);
        // Trailing zero of a 4-byte start code belongs to the next one.
        while e > s && data[e - 1] == 0 {
            e -= 1;
        }
        if e > s {
            out.push(&data[s..e]);
        }
    }
    out
}

struct Bits<'a> {
    data: Vec<u8>,
    pos: usize,
    _p: std::marker::PhantomData<&'a ()>,
}

impl Bits<'_> {
    fn new(nal: &[u8]) -> Self {
        // Remove emulation prevention bytes (00 00 03 -> 00 00).
        let mut data = Vec::with_capacity(nal.len());
        let mut zeros = 0;
        for &b in nal {
            if zeros >= 2 && b == 3 {
                zeros = 0;
                continue;
            }
            zeros = if b == 0 { zeros + 1 } else { 0 };
            data.push(b);
        }
        Self {
            data,
            pos: 0,
            _p: std::marker::PhantomData,
        }
    }
    fn bit(&mut self) -> Option<u32> {
        let byte = *self.data.get(self.pos / 8)?;
        let b = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Some(u32::from(b))
    }
    fn bits(&mut self, n: u32) -> Option<u32> {
        let mut v = 0;
        for _ in 0..n {
            v = (v << 1) | self.bit()?;
        }
        Some(v)
    }
    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        Some((1u32 << zeros) - 1 + self.bits(zeros)?)
    }
    fn se(&mut self) -> Option<i32> {
        let k = self.ue()?;
        Some(if k % 2 == 1 {
            k.div_ceil(2) as i32
        } else {
            -((k / 2) as i32)
        })
    }
}

/// Width and height from an H.264 SPS NAL (with its header byte).
pub fn h264_sps_dimensions(sps: &[u8]) -> Option<(u32, u32)> {
    let mut r = Bits::new(sps.get(1..)?);
    let profile = r.bits(8)?;
    r.bits(16)?; // constraint flags, level
    r.ue()?; // sps id
    let mut chroma = 1;
    let mut separate = 0;
    if [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135].contains(&profile) {
        chroma = r.ue()?;
        if chroma == 3 {
            separate = r.bit()?;
        }
        r.ue()?;
        r.ue()?;
        r.bit()?;
        if r.bit()? == 1 {
            let lists = if chroma == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bit()? == 1 {
                    let size = if i < 6 { 16 } else { 64 };
                    let (mut last, mut next) = (8i32, 8i32);
                    for _ in 0..size {
                        if next != 0 {
                            // i64: a crafted delta near i32::MAX must not overflow.
                            let delta = i64::from(r.se()?);
                            next = (i64::from(last) + delta + 256).rem_euclid(256) as i32;
                        }
                        if next != 0 {
                            last = next;
                        }
                    }
                }
            }
        }
    }
    r.ue()?; // log2_max_frame_num
    match r.ue()? {
        0 => {
            r.ue()?;
        }
        1 => {
            r.bit()?;
            r.se()?;
            r.se()?;
            let n = r.ue()?;
            if n > 255 {
                return None;
            }
            for _ in 0..n {
                r.se()?;
            }
        }
        _ => {}
    }
    r.ue()?; // max refs
    r.bit()?;
    let w_mbs = r.ue()? + 1;
    let h_units = r.ue()? + 1;
    let frame_mbs_only = r.bit()?;
    if frame_mbs_only == 0 {
        r.bit()?;
    }
    r.bit()?;
    let (mut cl, mut cr, mut ct, mut cb) = (0, 0, 0, 0);
    if r.bit()? == 1 {
        cl = r.ue()?;
        cr = r.ue()?;
        ct = r.ue()?;
        cb = r.ue()?;
    }
    let fmo = 2 - frame_mbs_only;
    let (cx, cy): (u32, u32) = if separate == 1 || chroma == 0 {
        (1, fmo)
    } else {
        match chroma {
            1 => (2, 2 * fmo),
            2 => (2, fmo),
            _ => (1, fmo),
        }
    };
    // Checked: every factor comes from the publisher's SPS (up to 2^32 - 1 each).
    let w = w_mbs
        .checked_mul(16)?
        .checked_sub(cx.checked_mul(cl.checked_add(cr)?)?)?;
    let h = fmo
        .checked_mul(h_units)?
        .checked_mul(16)?
        .checked_sub(cy.checked_mul(ct.checked_add(cb)?)?)?;
    (w > 0 && h > 0 && w <= 16384 && h <= 16384).then_some((w, h))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn pkt(seq: u16, ts: u32, marker: bool, payload: &[u8], ms: u64) -> RtpPacket {
        RtpPacket {
            ssrc: 1,
            seq,
            timestamp: ts,
            marker,
            payload_type: 96,
            payload: Bytes::copy_from_slice(payload),
            arrival: SystemTime::UNIX_EPOCH + Duration::from_millis(ms),
        }
    }

    fn seqs(out: &[SeqEvent]) -> Vec<i64> {
        out.iter()
            .map(|e| match e {
                SeqEvent::Packet(p) => i64::from(p.seq),
                SeqEvent::Lost { count } => -(*count as i64),
                SeqEvent::Reset => -1000,
            })
            .collect()
    }

    #[test]
    fn reorder_restores_order_across_wrap_and_gives_up_after_wait() {
        let mut r = ReorderBuffer::new(16, Duration::from_millis(100));
        let mut out = Vec::new();
        for (s, ms) in [(65534u16, 0u64), (0, 1), (65535, 2), (1, 3)] {
            r.push(pkt(s, 0, false, b"x", ms), &mut out);
        }
        assert_eq!(seqs(&out), vec![65534, 65535, 0, 1]);
        out.clear();
        r.push(pkt(3, 0, false, b"x", 10), &mut out);
        assert!(out.is_empty(), "2 may still come");
        r.push(pkt(4, 0, false, b"x", 200), &mut out);
        assert_eq!(seqs(&out), vec![-1, 3, 4]);
        out.clear();
        r.push(pkt(2, 0, false, b"x", 201), &mut out);
        assert!(out.is_empty());
        assert_eq!(r.late_or_duplicate, 1);
    }

    #[test]
    fn vp8_frame_with_lost_middle_packet_is_dropped_and_next_keyframe_kept() {
        let mut d = Depacketizer::new(Codec::Vp8);
        let mut out = Vec::new();
        // keyframe in two packets: S=1 PID=0 then continuation
        let key = [0x10, 0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a];
        d.push(&pkt(1, 100, false, &key, 0), &mut out);
        d.lost();
        d.push(&pkt(3, 100, true, &[0x00, 0xaa], 0), &mut out);
        assert!(matches!(
            out.as_slice(),
            [DepackEvent::Dropped { rtp_ts: 100 }]
        ));
        out.clear();
        d.push(&pkt(4, 200, false, &key, 0), &mut out);
        d.push(&pkt(5, 200, true, &[0x00, 0xbb], 0), &mut out);
        match out.as_slice() {
            [DepackEvent::Frame(f)] => {
                assert!(f.keyframe);
                assert_eq!(f.data, vec![0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a, 0xbb]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn padding_only_packets_between_frames_do_not_break_the_next_frame() {
        let mut d = Depacketizer::new(Codec::Vp8);
        let mut out = Vec::new();
        let key = [0x10, 0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a];
        d.push(&pkt(1, 100, true, &key, 0), &mut out);
        d.push(&pkt(2, 100, false, &[], 0), &mut out); // padding probe, old timestamp
        d.push(&pkt(3, 200, true, &[0x10, 0x01, 0xaa], 0), &mut out);
        assert_eq!(out.len(), 2);
        assert!(
            out.iter().all(|e| matches!(e, DepackEvent::Frame(_))),
            "{out:?}"
        );
    }

    #[test]
    fn vp8_descriptor_with_extensions() {
        // X=1, S=1; I=1 with 15-bit picture id, L=1, T=1
        let p = [0x90, 0xe0, 0x80, 0x01, 0x05, 0x20, 0xaa];
        assert_eq!(parse_vp8_descriptor(&p), Some((true, 6)));
        assert_eq!(parse_vp8_descriptor(&[0x90, 0x80]), None);
    }

    #[test]
    fn h264_fu_a_and_stap_a_reassemble_and_idr_gets_parameter_sets() {
        let mut d = Depacketizer::new(Codec::H264);
        let mut out = Vec::new();
        let sps = [0x67, 0x42, 0xc0, 0x1e];
        let pps = [0x68, 0xce, 0x3c, 0x80];
        let mut stap = vec![0x18];
        for n in [&sps[..], &pps[..]] {
            stap.extend_from_slice(&(n.len() as u16).to_be_bytes());
            stap.extend_from_slice(n);
        }
        d.push(&pkt(1, 10, false, &stap, 0), &mut out);
        d.push(&pkt(2, 10, false, &[0x7c, 0x85, 1, 2], 0), &mut out);
        d.push(&pkt(3, 10, true, &[0x7c, 0x45, 3], 0), &mut out);
        let DepackEvent::Frame(f) = &out[0] else {
            panic!("{out:?}")
        };
        assert!(f.keyframe);
        let nals = annexb_nals(&f.data);
        assert_eq!(nals, vec![&sps[..], &pps[..], &[0x65, 1, 2, 3][..]]);
        out.clear();
        // A later IDR alone gets the cached SPS/PPS prepended.
        d.push(&pkt(4, 20, true, &[0x65, 9], 0), &mut out);
        let DepackEvent::Frame(f) = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!(annexb_nals(&f.data).len(), 3);
        // FU-A continuation without a start is broken.
        out.clear();
        d.push(&pkt(5, 30, true, &[0x7c, 0x41, 3], 0), &mut out);
        assert!(matches!(out[0], DepackEvent::Dropped { .. }));
    }

    #[test]
    fn opus_toc_sample_counts() {
        assert_eq!(opus_samples(&[0xfc]), Some(960)); // CELT FB 20 ms, one frame
        assert_eq!(opus_samples(&[0x78]), Some(960)); // hybrid FB 20 ms
        assert_eq!(opus_samples(&[0x01]), Some(960)); // SILK 10 ms, two frames
        assert_eq!(opus_samples(&[0x0b, 0x03]), Some(2880)); // SILK 20 ms, three frames
        assert_eq!(opus_samples(&[0x0b]), None);
    }

    #[test]
    fn sps_dimensions_from_x264_baseline_and_high() {
        // SPS NALs written by Debian's libx264 for 640x360 baseline and 1280x720 high.
        let base = hex::decode("6742c01ed900a02ff970110000030001000003003c0f162e48").expect("hex");
        assert_eq!(h264_sps_dimensions(&base), Some((640, 360)));
        let high =
            hex::decode("6764001facd9405005bb0110000003001000000303c0f1831960").expect("hex");
        assert_eq!(h264_sps_dimensions(&high), Some((1280, 720)));
    }

    /// An SPS from bits: the header byte, then `bits` ('0'/'1'), padded with a stop bit.
    fn sps_from_bits(header: &[u8], bits: &str) -> Vec<u8> {
        let mut bits = format!("{bits}1");
        while bits.len() % 8 != 0 {
            bits.push('0');
        }
        let mut out = header.to_vec();
        for chunk in bits.as_bytes().chunks(8) {
            let byte = chunk
                .iter()
                .fold(0u8, |b, &c| (b << 1) | u8::from(c == b'1'));
            out.push(byte);
        }
        out
    }

    /// Found by the `depack` fuzz target (fuzz/artifacts, kept as
    /// fuzz/seeds/depack/regress-sps-overflow): a publisher's SPS whose width in
    /// macroblocks is near 2^30 made `w_mbs * 16` overflow (a panic with overflow
    /// checks, a wrapped width without). Now it is no picture size, not a panic.
    #[test]
    fn sps_with_a_huge_width_is_refused_not_overflowed() {
        let ue_huge = format!("{}1{}", "0".repeat(29), "1".repeat(29));
        // baseline profile: sps_id 0, log2_max_frame_num 0, poc type 2, 0 refs, no gaps,
        // width - 1 = 2^30 - 2 macroblocks, height 1, frame_mbs_only, direct 8x8, no crop
        let bits = format!("1 1 011 1 0 {ue_huge} 1 1 1 0").replace(' ', "");
        let sps = sps_from_bits(&[0x67, 0x42, 0x00, 0x1e], &bits);
        assert_eq!(h264_sps_dimensions(&sps), None);
        // The same SPS with a sane width still reads: 2 x 1 macroblocks.
        let sane = "1 1 011 1 0 010 1 1 1 0".replace(' ', "");
        let sane = sps_from_bits(&[0x67, 0x42, 0x00, 0x1e], &sane);
        assert_eq!(h264_sps_dimensions(&sane), Some((32, 16)));
    }

    /// The same family: a scaling-list delta near i32::MAX overflowed `last + delta`.
    #[test]
    fn sps_scaling_list_delta_near_i32_max_does_not_overflow() {
        // high profile (100): sps_id 0, chroma 1, bit depths 0, 0, no bypass, scaling
        // matrix present, list 0 present, first delta se = +(2^31 - 1).
        let se_max = format!("{}1{}", "0".repeat(31), "1".repeat(30) + "0");
        let bits = format!("1 010 1 1 0 1 1 {se_max}").replace(' ', "");
        let sps = sps_from_bits(&[0x67, 100, 0x00, 0x1e], &bits);
        let _ = h264_sps_dimensions(&sps);
    }
}
