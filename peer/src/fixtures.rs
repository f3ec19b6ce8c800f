//! Real media clips for tests: a VP8 clip and an Opus clip made once by the `ffmpeg` CLI
//! and kept in memory as the frames/packets a publisher sends.

use std::collections::HashSet;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use rtc::media::io::ivf_reader::IVFReader;

use crate::hash::fnv1a64;
use crate::PeerError;

/// Video frame rate of the clip.
pub const VIDEO_FPS: u32 = 15;
/// Duration of one video frame.
pub const VIDEO_FRAME_DURATION: Duration = Duration::from_nanos(1_000_000_000 / VIDEO_FPS as u64);
/// Duration of one Opus packet (`-frame_duration 20`).
pub const AUDIO_PACKET_DURATION: Duration = Duration::from_millis(20);

// A keyframe every 5 frames (1/3 s): the clip cannot answer a keyframe request the way
// a browser's encoder does, so a receiver that starts mid-stream (the recorder) waits
// at most this long, as it would for a browser.
const VIDEO_FILE: &str = "openhearing-testsrc-320x240-15fps-g5.ivf";
const AUDIO_FILE: &str = "openhearing-sine-440hz-48k.ogg";

/// Serialises generation inside one process (tests run in parallel threads); across
/// processes the write-then-rename below keeps readers from seeing half-written files.
static GENERATE: Mutex<()> = Mutex::new(());

/// One encoded VP8 frame.
#[derive(Debug, Clone)]
pub struct VideoFrame {
    pub data: Bytes,
    pub keyframe: bool,
}

/// The clips, in memory.
#[derive(Debug, Clone)]
pub struct MediaFixtures {
    /// VP8 frames in decode order, 15 fps.
    pub video: Vec<VideoFrame>,
    /// Opus packets (20 ms each), header packets excluded.
    pub audio: Vec<Bytes>,
    pub video_path: PathBuf,
    pub audio_path: PathBuf,
}

impl MediaFixtures {
    /// Makes the clips in `dir` with `ffmpeg` unless they already exist there, then
    /// loads them. Blocking (runs a process and reads files): call it from a test's
    /// setup or `spawn_blocking`.
    pub fn generate(dir: &Path) -> Result<MediaFixtures, PeerError> {
        Self::generate_from(
            dir,
            (VIDEO_FILE, "testsrc=size=320x240:rate=15"),
            (AUDIO_FILE, "sine=frequency=440:sample_rate=48000"),
        )
    }

    /// A sync pattern: black video with a white frame, and silence with a 1 kHz tone
    /// burst, both from 1.0 s to 1.2 s of each 4 s loop — so a receiver (or a
    /// recording) can measure how far apart audio and video end up.
    pub fn generate_sync(dir: &Path) -> Result<MediaFixtures, PeerError> {
        Self::generate_from(
            dir,
            (
                "openhearing-sync-flash-320x240-15fps-g5.ivf",
                "color=c=black:size=320x240:rate=15,drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='between(t,1,1.199)'",
            ),
            (
                "openhearing-sync-burst-48k.ogg",
                "aevalsrc='if(between(t,1,1.2),0.8*sin(2*PI*1000*t),0)':s=48000",
            ),
        )
    }

    fn generate_from(
        dir: &Path,
        (video_file, video_source): (&str, &str),
        (audio_file, audio_source): (&str, &str),
    ) -> Result<MediaFixtures, PeerError> {
        std::fs::create_dir_all(dir)?;
        let video_path = dir.join(video_file);
        let audio_path = dir.join(audio_file);
        {
            let _guard = GENERATE.lock().unwrap_or_else(|p| p.into_inner());
            if !non_empty(&video_path) {
                run_ffmpeg(
                    "the VP8 clip",
                    &[
                        "-f",
                        "lavfi",
                        "-i",
                        video_source,
                        "-t",
                        "4",
                        "-c:v",
                        "libvpx",
                        "-b:v",
                        "300k",
                        "-g",
                        "5",
                        "-keyint_min",
                        "5",
                        // No hidden alt-ref frames: every IVF frame is a displayable frame,
                        // like a browser's real-time encoder produces.
                        "-auto-alt-ref",
                        "0",
                        "-deadline",
                        "realtime",
                        "-f",
                        "ivf",
                    ],
                    &video_path,
                )?;
            }
            if !non_empty(&audio_path) {
                run_ffmpeg(
                    "the Opus clip",
                    &[
                        "-f",
                        "lavfi",
                        "-i",
                        audio_source,
                        "-t",
                        "4",
                        "-ac",
                        "1",
                        "-c:a",
                        "libopus",
                        "-b:a",
                        "32k",
                        "-frame_duration",
                        "20",
                        "-f",
                        "ogg",
                    ],
                    &audio_path,
                )?;
            }
        }
        let video = read_ivf(&std::fs::read(&video_path)?)?;
        let audio = read_ogg_opus(&std::fs::read(&audio_path)?)?;
        Ok(MediaFixtures {
            video,
            audio,
            video_path,
            audio_path,
        })
    }

    /// Hashes of every video frame and audio packet of the clips: what a publisher
    /// that loops the clips sends (once it has gone round once).
    pub fn hashes(&self) -> HashSet<u64> {
        self.video
            .iter()
            .map(|f| fnv1a64(&f.data))
            .chain(self.audio.iter().map(|p| fnv1a64(p)))
            .collect()
    }
}

fn non_empty(p: &Path) -> bool {
    std::fs::metadata(p).map(|m| m.len() > 0).unwrap_or(false)
}

fn run_ffmpeg(what: &str, args: &[&str], out: &Path) -> Result<(), PeerError> {
    let tmp = out.with_extension(format!("{}.tmp", std::process::id()));
    let output = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(args)
        .arg(&tmp)
        .output()
        .map_err(PeerError::FfmpegMissing)?;
    if !output.status.success() {
        let _ = std::fs::remove_file(&tmp);
        return Err(PeerError::Ffmpeg {
            what: what.to_owned(),
            detail: format!(
                "{}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        });
    }
    std::fs::rename(&tmp, out)?;
    Ok(())
}

/// Reads every frame of an IVF file (rtc's IVF reader).
pub fn read_ivf(data: &[u8]) -> Result<Vec<VideoFrame>, PeerError> {
    let media_err = |detail: String| PeerError::Media {
        what: "IVF".into(),
        detail,
    };
    let (mut reader, header) =
        IVFReader::new(Cursor::new(data)).map_err(|e| media_err(e.to_string()))?;
    if &header.four_cc != b"VP80" {
        return Err(media_err(format!(
            "codec is {:?}, expected VP80",
            String::from_utf8_lossy(&header.four_cc)
        )));
    }
    let mut frames = Vec::new();
    // The reader reports the end of the file as an error; stop there.
    while let Ok((frame, _)) = reader.parse_next_frame() {
        let data = frame.freeze();
        if data.is_empty() {
            continue;
        }
        // VP8 payload header: bit 0 of the first byte is 0 for a key frame (RFC 6386 §9.1).
        let keyframe = data[0] & 0x01 == 0;
        frames.push(VideoFrame { data, keyframe });
    }
    if frames.is_empty() {
        return Err(media_err("no frames".into()));
    }
    Ok(frames)
}

/// Reads the Opus packets of an Ogg file, skipping the `OpusHead` and `OpusTags`
/// header packets.
///
/// rtc's `OggReader` returns whole page bodies, and ffmpeg's Ogg muxer puts up to a
/// second of packets in one page, so packet boundaries would be lost; this parser
/// follows the page segment tables (RFC 3533) to split pages into packets, including
/// packets continued across pages.
pub fn read_ogg_opus(data: &[u8]) -> Result<Vec<Bytes>, PeerError> {
    let media_err = |detail: String| PeerError::Media {
        what: "Ogg/Opus".into(),
        detail,
    };
    let mut packets: Vec<Vec<u8>> = Vec::new();
    let mut partial: Vec<u8> = Vec::new();
    let mut pos = 0usize;
    while pos < data.len() {
        let header = data
            .get(pos..pos + 27)
            .ok_or_else(|| media_err(format!("truncated page header at {pos}")))?;
        if &header[0..4] != b"OggS" {
            return Err(media_err(format!("no capture pattern at {pos}")));
        }
        let nsegs = header[26] as usize;
        let table = data
            .get(pos + 27..pos + 27 + nsegs)
            .ok_or_else(|| media_err(format!("truncated segment table at {pos}")))?;
        let mut body = pos + 27 + nsegs;
        for &lacing in table {
            let len = lacing as usize;
            let seg = data
                .get(body..body + len)
                .ok_or_else(|| media_err(format!("truncated page body at {body}")))?;
            partial.extend_from_slice(seg);
            body += len;
            if lacing < 255 {
                packets.push(std::mem::take(&mut partial));
            }
        }
        pos = body;
    }
    let mut it = packets.into_iter();
    match it.next() {
        Some(p) if p.starts_with(b"OpusHead") => {}
        _ => return Err(media_err("first packet is not OpusHead".into())),
    }
    match it.next() {
        Some(p) if p.starts_with(b"OpusTags") => {}
        _ => return Err(media_err("second packet is not OpusTags".into())),
    }
    let audio: Vec<Bytes> = it.filter(|p| !p.is_empty()).map(Bytes::from).collect();
    if audio.is_empty() {
        return Err(media_err("no audio packets".into()));
    }
    Ok(audio)
}

/// A per-user cache directory for the clips (under the system temp dir).
pub fn default_dir() -> PathBuf {
    std::env::temp_dir().join("openhearing-peer-fixtures")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_clips_flash_and_beep_together() {
        let fx = MediaFixtures::generate_sync(&default_dir()).expect("sync fixtures");
        assert!((55..=65).contains(&fx.video.len()));
        assert!((190..=210).contains(&fx.audio.len()));
        // Same loop length for both, so flash and burst stay aligned on every loop
        // (tests/recording_sync.rs measures them after recording and rendering).
        let video_s = fx.video.len() as f64 / 15.0;
        let audio_s = fx.audio.len() as f64 * 0.020;
        assert!(
            (video_s - audio_s).abs() < 0.1,
            "{video_s} s vs {audio_s} s"
        );
    }

    #[test]
    fn fixtures_generate_and_parse() {
        let fx = MediaFixtures::generate(&default_dir()).expect("fixtures");
        let n = fx.video.len();
        assert!((55..=65).contains(&n), "video frames: {n}");
        assert!(fx.video[0].keyframe, "first frame must be a keyframe");
        // One keyframe every 5 frames (60 frames over 4 s).
        let keys = fx.video.iter().filter(|f| f.keyframe).count();
        assert!((11..=13).contains(&keys), "keyframes: {keys}");
        let a = fx.audio.len();
        assert!((190..=210).contains(&a), "opus packets: {a}");
        // A second call uses the cache and reads the same content.
        let again = MediaFixtures::generate(&default_dir()).expect("cached fixtures");
        assert_eq!(again.hashes(), fx.hashes());
    }

    #[test]
    fn ogg_parser_rejects_garbage() {
        assert!(read_ogg_opus(b"not an ogg file at all, definitely not").is_err());
        assert!(read_ivf(b"DKIF").is_err());
    }
}
