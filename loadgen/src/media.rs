//! The media the load generator sends: a pre-encoded VP8 loop at a chosen bitrate and
//! frame rate, and a 20 ms Opus loop, both made once by the `ffmpeg` CLI and cached.
//!
//! Every RTP payload ends with a 12-byte trailer, `OHLG` + the send time (nanoseconds
//! since the Unix epoch, big endian), so that a receiver on the same host can compute
//! one-way latency. The SFU never looks inside payloads (it strips header extensions,
//! which is why the stamp cannot travel in one), and neither does Janus's streaming
//! plugin for plain VP8; a real decoder would see a few bytes of garbage at the end of
//! each packet, which nothing here decodes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use bytes::{BufMut, Bytes, BytesMut};
use rtc::rtp;
use rtc::rtp::codec::vp8::Vp8Payloader;
use rtc::rtp::packetizer::Payloader;

/// Magic at the start of the trailer.
pub const TRAILER_MAGIC: &[u8; 4] = b"OHLG";
/// Trailer length in bytes.
pub const TRAILER_LEN: usize = 12;
/// RTP payload budget per packet, trailer included (like a browser's ~1200-byte packets).
pub const MTU: usize = 1200;
/// Opus frame duration.
pub const AUDIO_FRAME: Duration = Duration::from_millis(20);

/// What the clip is made of.
#[derive(Debug, Clone, Copy)]
pub struct ClipSpec {
    pub video_kbps: u32,
    pub fps: u32,
    pub width: u32,
    pub height: u32,
}

/// The clips in memory: each video frame already split into VP8 RTP payloads.
#[derive(Debug, Clone)]
pub struct Clip {
    pub spec: ClipSpec,
    /// Per frame, the RTP payloads (VP8 payload descriptor + partition data), trailer not
    /// yet appended.
    pub video: Vec<Vec<Bytes>>,
    /// Opus packets, 20 ms each.
    pub audio: Vec<Bytes>,
    /// Raw frames (for `MediaFixtures`, which the peer wants when publishing).
    pub raw_video: Vec<openhearing_peer::VideoFrame>,
}

impl Clip {
    /// Video RTP packets per second this clip produces.
    pub fn video_packets_per_second(&self) -> f64 {
        let pkts: usize = self.video.iter().map(|f| f.len()).sum();
        pkts as f64 * self.spec.fps as f64 / self.video.len() as f64
    }

    /// Audio RTP packets per second (50).
    pub fn audio_packets_per_second(&self) -> f64 {
        1.0 / AUDIO_FRAME.as_secs_f64()
    }

    /// Video payload bitrate actually encoded, in kbit/s (trailers included).
    pub fn video_kbps_actual(&self) -> f64 {
        let bytes: usize = self
            .video
            .iter()
            .flat_map(|f| f.iter().map(|p| p.len() + TRAILER_LEN))
            .sum();
        bytes as f64 * 8.0 * self.spec.fps as f64 / self.video.len() as f64 / 1000.0
    }

    /// The clip as peer fixtures (needed by `Participant::join` for publishers; the load
    /// generator sends its own packets through `RtpWriter`).
    pub fn fixtures(&self) -> openhearing_peer::MediaFixtures {
        openhearing_peer::MediaFixtures {
            video: self.raw_video.clone(),
            audio: self.audio.clone(),
            video_path: PathBuf::new(),
            audio_path: PathBuf::new(),
        }
    }
}

/// Makes (or loads from `dir`) the clips for `spec`.
pub fn load_clip(dir: &Path, spec: ClipSpec) -> Result<Clip> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let video_path = dir.join(format!(
        "vp8-{}x{}-{}fps-{}k-v2.ivf",
        spec.width, spec.height, spec.fps, spec.video_kbps
    ));
    let audio_path = dir.join("opus-20ms-48k.ogg");
    if !non_empty(&video_path) {
        let kbps = format!("{}k", spec.video_kbps);
        let src = format!(
            // Noise keeps the encoder at its target rate (a plain test pattern undershoots).
            "testsrc2=size={}x{}:rate={},noise=alls=12:allf=t",
            spec.width, spec.height, spec.fps
        );
        let gop = (spec.fps * 2).to_string();
        ffmpeg(
            &[
                "-f",
                "lavfi",
                "-i",
                &src,
                "-t",
                "4",
                "-c:v",
                "libvpx",
                "-b:v",
                &kbps,
                "-minrate",
                &kbps,
                "-maxrate",
                &kbps,
                "-g",
                &gop,
                "-auto-alt-ref",
                "0",
                // Key frames at most 4x an average frame, as a real-time encoder for
                // conferencing does (the first one would otherwise be ~300 KB).
                "-max-intra-rate",
                "400",
                "-deadline",
                "realtime",
                "-cpu-used",
                "8",
                "-f",
                "ivf",
            ],
            &video_path,
        )?;
    }
    if !non_empty(&audio_path) {
        ffmpeg(
            &[
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:sample_rate=48000",
                "-t",
                "4",
                "-ac",
                "2",
                "-c:a",
                "libopus",
                "-b:a",
                "48k",
                "-frame_duration",
                "20",
                "-f",
                "ogg",
            ],
            &audio_path,
        )?;
    }
    let raw_video = openhearing_peer::fixtures::read_ivf(&std::fs::read(&video_path)?)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let audio = openhearing_peer::fixtures::read_ogg_opus(&std::fs::read(&audio_path)?)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut payloader = Vp8Payloader::default();
    let mut video = Vec::with_capacity(raw_video.len());
    for f in &raw_video {
        let pkts = payloader
            .payload(MTU - TRAILER_LEN, &f.data)
            .map_err(|e| anyhow::anyhow!("VP8 payloader: {e}"))?;
        video.push(pkts);
    }
    Ok(Clip {
        spec,
        video,
        audio,
        raw_video,
    })
}

fn non_empty(p: &Path) -> bool {
    std::fs::metadata(p).map(|m| m.len() > 0).unwrap_or(false)
}

fn ffmpeg(args: &[&str], out: &Path) -> Result<()> {
    let tmp = out.with_extension(format!("{}.tmp", uuid::Uuid::new_v4().simple()));
    let o = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(args)
        .arg(&tmp)
        .output()
        .context("running ffmpeg (install ffmpeg with libvpx and libopus)")?;
    if !o.status.success() {
        let _ = std::fs::remove_file(&tmp);
        bail!(
            "ffmpeg failed making {}: {}",
            out.display(),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    std::fs::rename(&tmp, out)?;
    Ok(())
}

/// Nanoseconds since the Unix epoch (the clock both ends of a one-host run share).
pub fn now_unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// `payload` + trailer stamped now.
pub fn stamp(payload: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(payload.len() + TRAILER_LEN);
    b.put_slice(payload);
    b.put_slice(TRAILER_MAGIC);
    b.put_u64(now_unix_ns());
    b.freeze()
}

/// The send time in a payload's trailer, if it has one.
pub fn read_stamp(payload: &[u8]) -> Option<u64> {
    let n = payload.len();
    if n < TRAILER_LEN || &payload[n - TRAILER_LEN..n - 8] != TRAILER_MAGIC {
        return None;
    }
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&payload[n - 8..]);
    Some(u64::from_be_bytes(ts))
}

/// Where paced packets go.
#[async_trait::async_trait]
pub trait PacketSink: Send + Sync + 'static {
    async fn send(&self, packet: rtp::Packet) -> Result<()>;
}

#[async_trait::async_trait]
impl PacketSink for openhearing_peer::RtpWriter {
    async fn send(&self, packet: rtp::Packet) -> Result<()> {
        self.write(packet).await.map_err(|e| anyhow::anyhow!("{e}"))
    }
}

/// Plain RTP over UDP (the feed for Janus's streaming mountpoint and the UDP relay).
pub struct UdpSink {
    pub socket: Arc<tokio::net::UdpSocket>,
    pub to: std::net::SocketAddr,
}

#[async_trait::async_trait]
impl PacketSink for UdpSink {
    async fn send(&self, packet: rtp::Packet) -> Result<()> {
        use rtc::shared::marshal::Marshal;
        let buf = packet.marshal().map_err(|e| anyhow::anyhow!("{e}"))?;
        self.socket.send_to(&buf, self.to).await?;
        Ok(())
    }
}

/// Counts what a publisher sent.
#[derive(Debug, Default)]
pub struct SendCounters {
    pub packets: AtomicU64,
    pub bytes: AtomicU64,
    pub errors: AtomicU64,
    /// Packets written in the instant webrtc had the track unbound (it unbinds and
    /// binds a local track again while applying a renegotiation): lost by this
    /// participant's own stack, as by a full socket buffer, so not counted as errors.
    pub unbound: AtomicU64,
}

/// Whether a write failed only because webrtc had the local track unbound for a
/// moment (webrtc 0.21's `track is not binding yet`).
fn unbound_for_a_moment(e: &anyhow::Error) -> bool {
    e.to_string().contains("not binding yet")
}

/// Sends the video loop forever at the clip's frame rate, the marker on the last packet
/// of a frame, 90 kHz timestamps. A frame's packets are spread evenly over the frame
/// interval, like a browser's pacer does (a burst of a key frame's packets would
/// overflow a default-sized UDP receive buffer somewhere and measure that instead).
pub async fn pace_video(
    clip: Arc<Clip>,
    sink: Arc<dyn PacketSink>,
    ssrc: u32,
    payload_type: u8,
    counters: Arc<SendCounters>,
) {
    let period = Duration::from_nanos(1_000_000_000 / clip.spec.fps as u64);
    let ts_step = 90_000 / clip.spec.fps;
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut seq: u16 = rand_u16();
    let mut ts: u32 = rand_u16() as u32 * 7;
    for frame in clip.video.iter().cycle() {
        let start = ticker.tick().await;
        let last = frame.len().saturating_sub(1);
        let gap = period / frame.len().max(1) as u32;
        for (i, payload) in frame.iter().enumerate() {
            if i > 0 {
                tokio::time::sleep_until(start + gap * i as u32).await;
            }
            let p = packet(ssrc, payload_type, seq, ts, i == last, stamp(payload));
            seq = seq.wrapping_add(1);
            send_counted(&*sink, p, &counters).await;
        }
        ts = ts.wrapping_add(ts_step);
    }
}

/// Sends the Opus loop forever, one packet every 20 ms.
pub async fn pace_audio(
    clip: Arc<Clip>,
    sink: Arc<dyn PacketSink>,
    ssrc: u32,
    payload_type: u8,
    counters: Arc<SendCounters>,
) {
    let mut ticker = tokio::time::interval(AUDIO_FRAME);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut seq: u16 = rand_u16();
    let mut ts: u32 = rand_u16() as u32 * 11;
    for payload in clip.audio.iter().cycle() {
        ticker.tick().await;
        let p = packet(ssrc, payload_type, seq, ts, false, stamp(payload));
        seq = seq.wrapping_add(1);
        ts = ts.wrapping_add(960);
        send_counted(&*sink, p, &counters).await;
    }
}

async fn send_counted(sink: &dyn PacketSink, p: rtp::Packet, c: &SendCounters) {
    let len = p.payload.len() as u64;
    match sink.send(p).await {
        Ok(()) => {
            c.packets.fetch_add(1, Ordering::Relaxed);
            c.bytes.fetch_add(len, Ordering::Relaxed);
        }
        Err(e) if unbound_for_a_moment(&e) => {
            c.unbound.fetch_add(1, Ordering::Relaxed);
            tracing::debug!("RTP written while the track was unbound (renegotiation): {e}");
        }
        Err(e) => {
            let n = c.errors.fetch_add(1, Ordering::Relaxed) + 1;
            if n == 1 || n.is_multiple_of(1000) {
                tracing::warn!("sending RTP failed ({n} so far): {e}");
            }
        }
    }
}

fn packet(ssrc: u32, pt: u8, seq: u16, ts: u32, marker: bool, payload: Bytes) -> rtp::Packet {
    rtp::Packet {
        header: rtp::header::Header {
            version: 2,
            marker,
            payload_type: pt,
            sequence_number: seq,
            timestamp: ts,
            ssrc,
            ..Default::default()
        },
        payload,
    }
}

fn rand_u16() -> u16 {
    (uuid::Uuid::new_v4().as_u128() & 0x7fff) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailer_round_trip() {
        let b = stamp(b"hello vp8");
        assert_eq!(&b[..9], b"hello vp8");
        let ts = read_stamp(&b).expect("stamp");
        let now = now_unix_ns();
        assert!(now >= ts && now - ts < 1_000_000_000);
        assert_eq!(read_stamp(b"short"), None);
        assert_eq!(read_stamp(b"no trailer in this payload"), None);
    }
}
