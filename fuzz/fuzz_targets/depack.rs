//! The recorder's RTP path for one track, from publisher bytes to muxable frames, as
//! its writer thread runs it: reorder buffer → depacketiser (VP8, Opus or H.264) →
//! the per-frame parsers the segment writer uses (stream setup from the first frame,
//! VP8 dimensions, Annex B NAL split, H.264 SPS, Opus duration).
//!
//! Input: one byte that picks the codec, then packets, each a 4-byte header —
//! sequence step (signed), timestamp step (×1000 ticks, signed), flags (bit 0 marker,
//! bits 1–7 arrival step in ms), payload length — and that many payload bytes. The
//! RTP header itself is webrtc's to parse; this is what the recorder does with it.
#![no_main]

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use openhearing_recorder::depack::{
    annexb_nals, h264_sps_dimensions, opus_samples, vp8_dimensions, DepackEvent, Depacketizer,
    ReorderBuffer, SeqEvent,
};
use openhearing_recorder::segment::StreamSetup;
use openhearing_recorder::{Codec, RtpPacket};

fn frames(codec: Codec, events: Vec<DepackEvent>) {
    for ev in events {
        let DepackEvent::Frame(f) = ev else { continue };
        let rate = if codec == Codec::Opus { 48_000 } else { 90_000 };
        if let Some(setup) = StreamSetup::from_first_frame(codec, rate, &f.data) {
            assert_eq!(setup.codec, codec);
        }
        match codec {
            Codec::Opus => {
                let _ = opus_samples(&f.data);
            }
            Codec::Vp8 => {
                let _ = vp8_dimensions(&f.data);
            }
            Codec::H264 => {
                for nal in annexb_nals(&f.data) {
                    if nal.first().map(|b| b & 0x1f) == Some(7) {
                        let _ = h264_sps_dimensions(nal);
                    }
                }
            }
        }
    }
}

fn apply(depack: &mut Depacketizer, codec: Codec, seq: Vec<SeqEvent>) {
    let mut out = Vec::new();
    for ev in seq {
        match ev {
            SeqEvent::Packet(p) => depack.push(&p, &mut out),
            SeqEvent::Lost { .. } => depack.lost(),
            SeqEvent::Reset => depack.reset(&mut out),
        }
    }
    frames(codec, out);
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, mut rest)) = data.split_first() else {
        return;
    };
    let codec = match pick % 3 {
        0 => Codec::Opus,
        1 => Codec::Vp8,
        _ => Codec::H264,
    };
    let mut reorder = ReorderBuffer::new(96, Duration::from_millis(150));
    let mut depack = Depacketizer::new(codec);
    let (mut seq, mut ts) = (0u16, 0u32);
    let mut arrival = SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000);
    while let [seq_step, ts_step, flags, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (payload, next) = tail.split_at(len);
        rest = next;
        seq = seq.wrapping_add_signed(i16::from(*seq_step as i8));
        ts = ts.wrapping_add_signed(i32::from(*ts_step as i8) * 1000);
        arrival += Duration::from_millis(u64::from(flags >> 1));
        let pkt = RtpPacket {
            ssrc: 1,
            seq,
            timestamp: ts,
            marker: flags & 1 != 0,
            payload_type: 96,
            payload: Bytes::copy_from_slice(payload),
            arrival,
        };
        let mut out = Vec::new();
        reorder.push(pkt, &mut out);
        apply(&mut depack, codec, out);
    }
    let mut out = Vec::new();
    reorder.flush(&mut out);
    apply(&mut depack, codec, out);
    let mut last = Vec::new();
    depack.reset(&mut last);
    frames(codec, last);
});
