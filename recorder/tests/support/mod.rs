//! Test support: real VP8/Opus/H.264 media made by the `ffmpeg` CLI, demuxed with
//! ffmpeg-next, packetised into RTP here (RFC 7741, RFC 7587, RFC 6184), and
//! checks with `ffprobe`/`ffmpeg`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ffmpeg_next as ff;
use openhearing_recorder::journal::{Entry, Line, JOURNAL_FILE};
use openhearing_recorder::timing::unix_us_to_ntp;
use openhearing_recorder::{
    ArchiveKey, Codec, HearingMeta, HearingRecorder, MediaKind, RecorderConfig, RtpPacket,
    TrackMeta,
};

/// One encoded frame from a clip.
#[derive(Clone)]
pub struct ClipFrame {
    pub pts: f64,
    pub data: Vec<u8>,
    pub key: bool,
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .expect("ffmpeg CLI must be installed (apt-get install ffmpeg)");
    assert!(
        out.status.success(),
        "{:?} failed: {}",
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes a VP8 clip from an lavfi source graph (400 kbit/s, keyframe every second).
pub fn make_vp8(dir: &Path, name: &str, source: &str) -> PathBuf {
    make_vp8_rate(dir, name, source, "400k")
}

/// Makes a VP8 clip at the given bit rate, encoded like a real-time sender (no
/// alt-ref frames, no lag).
pub fn make_vp8_rate(dir: &Path, name: &str, source: &str, rate: &str) -> PathBuf {
    let out = dir.join(format!("{name}.webm"));
    let args = "-v error -y -f lavfi -i SRC -pix_fmt yuv420p -c:v libvpx -b:v RATE -g 30 \
                -keyint_min 30 -auto-alt-ref 0 -lag-in-frames 0 -deadline realtime -cpu-used 8";
    let mut cmd = Command::new("ffmpeg");
    for a in args.split_whitespace() {
        cmd.arg(match a {
            "SRC" => source,
            "RATE" => rate,
            other => other,
        });
    }
    run(cmd.arg(&out));
    out
}

/// Makes an H.264 clip (constrained baseline, like WebRTC) in MPEG-TS, whose
/// packets are Annex B with SPS/PPS before every IDR.
pub fn make_h264(dir: &Path, name: &str, source: &str) -> PathBuf {
    let out = dir.join(format!("{name}.ts"));
    let args = "-v error -y -f lavfi -i SRC -pix_fmt yuv420p -c:v libx264 -profile:v baseline \
                -g 30 -bf 0 -tune zerolatency";
    let mut cmd = Command::new("ffmpeg");
    for a in args.split_whitespace() {
        cmd.arg(if a == "SRC" { source } else { a });
    }
    run(cmd.arg(&out));
    out
}

/// Makes an Opus clip (20 ms frames).
pub fn make_opus(dir: &Path, name: &str, source: &str) -> PathBuf {
    let out = dir.join(format!("{name}.webm"));
    run(Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            source,
            "-c:a",
            "libopus",
            "-b:a",
            "32k",
            "-frame_duration",
            "20",
            "-application",
            "voip",
        ])
        .arg(&out));
    out
}

/// Reads a clip's frames (pts in seconds from the first frame).
pub fn read_clip(path: &Path) -> Vec<ClipFrame> {
    ff::init().expect("ffmpeg init");
    let mut ictx = ff::format::input(path).expect("open clip");
    let (idx, tb) = {
        let st = ictx.streams().next().expect("a stream");
        (st.index(), st.time_base())
    };
    let mut out = Vec::new();
    for (st, pkt) in ictx.packets() {
        if st.index() != idx {
            continue;
        }
        let Some(pts) = pkt.pts().or(pkt.dts()) else {
            continue;
        };
        let Some(data) = pkt.data() else { continue };
        out.push(ClipFrame {
            pts: pts as f64 * f64::from(tb.numerator()) / f64::from(tb.denominator()),
            data: data.to_vec(),
            key: pkt.is_key(),
        });
    }
    let first = out.first().map_or(0.0, |f| f.pts);
    for f in &mut out {
        f.pts -= first;
    }
    out
}

/// Splits Annex B H.264 into NAL units.
fn nals(data: &[u8]) -> Vec<Vec<u8>> {
    openhearing_recorder::depack::annexb_nals(data)
        .into_iter()
        .map(|n| n.to_vec())
        .collect()
}

/// RTP payloads for one frame (marker goes on the last).
pub fn packetize(codec: Codec, frame: &ClipFrame, picture_id: u16, mtu: usize) -> Vec<Vec<u8>> {
    match codec {
        Codec::Opus => vec![frame.data.clone()],
        Codec::Vp8 => {
            let mut out = Vec::new();
            for (i, chunk) in frame.data.chunks(mtu).enumerate() {
                // X=1, S on first, PID=0; I=1 with a 15-bit picture id.
                let mut p = vec![
                    if i == 0 { 0x90 } else { 0x80 },
                    0x80,
                    0x80 | ((picture_id >> 8) as u8 & 0x7f),
                    picture_id as u8,
                ];
                p.extend_from_slice(chunk);
                out.push(p);
            }
            out
        }
        Codec::H264 => {
            let mut out = Vec::new();
            let units = nals(&frame.data);
            // Runs of small NALs (AUD, SPS, PPS, small slices) go in one STAP-A, big
            // ones as FU-A; order is kept.
            let mut stap: Vec<u8> = Vec::new();
            let flush = |stap: &mut Vec<u8>, out: &mut Vec<Vec<u8>>| {
                if !stap.is_empty() {
                    let mut p = vec![0x18];
                    p.append(stap);
                    out.push(p);
                }
            };
            for n in units {
                if n.len() < 100 {
                    stap.extend_from_slice(&(n.len() as u16).to_be_bytes());
                    stap.extend_from_slice(&n);
                    continue;
                }
                flush(&mut stap, &mut out);
                if n.len() <= mtu {
                    out.push(n);
                    continue;
                }
                let header = n[0];
                let body = &n[1..];
                let chunks: Vec<&[u8]> = body.chunks(mtu).collect();
                for (i, c) in chunks.iter().enumerate() {
                    let mut fu = vec![(header & 0xe0) | 28, header & 0x1f];
                    if i == 0 {
                        fu[1] |= 0x80;
                    }
                    if i + 1 == chunks.len() {
                        fu[1] |= 0x40;
                    }
                    fu.extend_from_slice(c);
                    out.push(fu);
                }
            }
            flush(&mut stap, &mut out);
            out
        }
    }
}

/// A packet to deliver at `arrival`.
pub struct Timed {
    pub arrival: SystemTime,
    pub track: String,
    pub what: Item,
}

pub enum Item {
    Rtp(RtpPacket),
    /// (ssrc, ntp, rtp)
    Sr(u32, u64, u32),
}

/// How one track is sent.
pub struct SendPlan {
    pub track: String,
    pub codec: Codec,
    pub frames: Vec<ClipFrame>,
    /// Wall time (µs since epoch) the clip's pts 0 was captured.
    pub capture_start_us: i64,
    /// Network delay added to every packet.
    pub delay: Duration,
    pub ssrc: u32,
    pub ts_base: u32,
    pub seq_base: u16,
}

impl SendPlan {
    pub fn rate(&self) -> f64 {
        if self.codec == Codec::Opus {
            48_000.0
        } else {
            90_000.0
        }
    }

    /// Packets plus a sender report every second (the first at 0.3 s).
    pub fn packets(&self) -> Vec<Timed> {
        let mut out = Vec::new();
        let mut seq = self.seq_base;
        for (i, f) in self.frames.iter().enumerate() {
            let ts = self
                .ts_base
                .wrapping_add((f.pts * self.rate()).round() as u32);
            let capture = self.capture_start_us + (f.pts * 1e6) as i64;
            let payloads = packetize(self.codec, f, i as u16, 1000);
            let n = payloads.len();
            for (k, p) in payloads.into_iter().enumerate() {
                let arrival = UNIX_EPOCH
                    + Duration::from_micros(capture as u64)
                    + self.delay
                    + Duration::from_micros(k as u64 * 50);
                out.push(Timed {
                    arrival,
                    track: self.track.clone(),
                    what: Item::Rtp(RtpPacket {
                        ssrc: self.ssrc,
                        seq,
                        timestamp: ts,
                        marker: k + 1 == n,
                        payload_type: if self.codec == Codec::Opus { 111 } else { 96 },
                        payload: Bytes::from(p),
                        arrival,
                    }),
                });
                seq = seq.wrapping_add(1);
            }
        }
        let dur = self.frames.last().map_or(0.0, |f| f.pts);
        let mut t = 0.3;
        while t < dur {
            let wall = self.capture_start_us + (t * 1e6) as i64;
            let rtp = self.ts_base.wrapping_add((t * self.rate()).round() as u32);
            out.push(Timed {
                arrival: UNIX_EPOCH + Duration::from_micros(wall as u64) + self.delay,
                track: self.track.clone(),
                what: Item::Sr(self.ssrc, unix_us_to_ntp(wall), rtp),
            });
            t += 1.0;
        }
        out
    }
}

/// Merges plans by arrival time.
pub fn schedule(plans: &[SendPlan]) -> Vec<Timed> {
    let mut all: Vec<Timed> = plans.iter().flat_map(|p| p.packets()).collect();
    all.sort_by_key(|t| t.arrival);
    all
}

/// Delivers scheduled items to the recorder (as fast as it takes them).
pub fn deliver(rec: &HearingRecorder, items: Vec<Timed>) -> usize {
    let mut refused = 0;
    for t in items {
        match t.what {
            Item::Rtp(p) => {
                if rec.push_rtp(&t.track, p).is_err() {
                    refused += 1;
                }
            }
            Item::Sr(ssrc, ntp, rtp) => rec.push_sender_report(&t.track, ssrc, ntp, rtp),
        }
    }
    refused
}

pub fn track(id: &str, participant: &str, name: &str, role: &str, codec: Codec) -> TrackMeta {
    TrackMeta {
        track_id: id.into(),
        participant_id: participant.into(),
        name: name.into(),
        role: role.into(),
        site: "Phòng xử án 1".into(),
        kind: codec.kind(),
        codec,
        clock_rate: if codec.kind() == MediaKind::Audio {
            48_000
        } else {
            90_000
        },
    }
}

pub fn hearing(id: &str) -> HearingMeta {
    HearingMeta {
        hearing_id: id.into(),
        case_number: "HS-1/2026".into(),
        title: "Test hearing".into(),
        court: None,
        scheduled_start: None,
    }
}

/// `ffprobe` duration of a file's first stream, in seconds (container duration).
pub fn probe_duration(path: &Path) -> f64 {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe must be installed");
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("ffprobe duration of {}", path.display()))
}

/// Decodes the whole file with the ffmpeg CLI; returns its error output (empty = clean).
pub fn decode_errors(path: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg must be installed");
    let mut s = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        s.push_str(&format!(" (exit {:?})", out.status.code()));
    }
    s
}

/// The journal's parsed lines.
pub fn journal_lines(dir: &Path) -> Vec<Line> {
    let text = std::fs::read_to_string(dir.join(JOURNAL_FILE)).expect("journal");
    text.lines()
        .map(|l| serde_json::from_str(l).expect("journal line"))
        .collect()
}

pub fn segments(lines: &[Line]) -> Vec<openhearing_recorder::journal::SegmentRecord> {
    lines
        .iter()
        .filter_map(|l| match &l.entry {
            Entry::Segment(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

pub fn gaps(lines: &[Line]) -> Vec<openhearing_recorder::journal::GapRecord> {
    lines
        .iter()
        .filter_map(|l| match &l.entry {
            Entry::Gap(g) => Some(g.clone()),
            _ => None,
        })
        .collect()
}

/// A deterministic xorshift PRNG for loss patterns.
pub struct Rng(pub u64);
impl Rng {
    pub fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Copies a folder tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir").flatten() {
        let p = e.path();
        let t = to.join(e.file_name());
        if p.is_dir() {
            copy_dir(&p, &t);
        } else {
            std::fs::copy(&p, &t).expect("copy");
        }
    }
}

/// A recorder of a two-party hearing `hearing_id` in `dir/rec` (2 s segments) with
/// four tracks: `a-cam`/`a-mic` of the presiding judge A, `b-cam`/`b-mic` of the
/// defendant B.
pub fn two_party_recorder(dir: &Path, seed: u8, hearing_id: &str) -> (ArchiveKey, HearingRecorder) {
    let key = ArchiveKey::from_seed([seed; 32]);
    let mut cfg = RecorderConfig::new(dir.join("rec"));
    cfg.segment_seconds = 2;
    let rec = HearingRecorder::open(cfg, key.clone(), hearing(hearing_id), |_| {}).expect("open");
    for (id, p, name, role, codec) in [
        ("a-cam", "a", "Nguyễn Văn A", "presiding_judge", Codec::Vp8),
        ("a-mic", "a", "Nguyễn Văn A", "presiding_judge", Codec::Opus),
        ("b-cam", "b", "Trần Văn B", "defendant", Codec::Vp8),
        ("b-mic", "b", "Trần Văn B", "defendant", Codec::Opus),
    ] {
        rec.add_track(track(id, p, name, role, codec), || {})
            .expect("add");
    }
    (key, rec)
}
