//! One segment file: stream-copied frames muxed into WebM (VP8, Opus) or Matroska
//! (H.264) with ffmpeg-next, then trailer, `fsync`, SHA-256.
//!
//! Timestamps inside a segment are the RTP timestamps relative to the segment's
//! first frame, rescaled to the stream time base, which Matroska fixes at 1/1000
//! when the header is written (read back after `write_header`). Each frame is held
//! back until the next one arrives so its duration is known; the last frame gets
//! the previous frame's duration (Opus: its TOC's duration).

use std::fs::File;
use std::path::{Path, PathBuf};

use ff::{ffi, Rational};
use ffmpeg_next as ff;

use crate::depack::{annexb_nals, h264_sps_dimensions, opus_samples, vp8_dimensions};
use crate::types::Codec;

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    #[error("segment {path}: {op} failed: {source}")]
    Ffmpeg {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: ff::Error,
    },
    #[error("segment {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("first frame of a {codec:?} segment does not say its picture size")]
    NoSetup { codec: Codec },
}

/// What a segment's stream header needs, taken from its first (key)frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSetup {
    pub codec: Codec,
    pub clock_rate: u32,
    pub width: u32,
    pub height: u32,
    pub extradata: Vec<u8>,
}

impl StreamSetup {
    /// Derives the setup from the first frame (a keyframe for video).
    pub fn from_first_frame(codec: Codec, clock_rate: u32, frame: &[u8]) -> Option<Self> {
        match codec {
            Codec::Opus => Some(Self {
                codec,
                clock_rate,
                width: 0,
                height: 0,
                extradata: opus_head(),
            }),
            Codec::Vp8 => {
                let (width, height) = vp8_dimensions(frame)?;
                Some(Self {
                    codec,
                    clock_rate,
                    width,
                    height,
                    extradata: Vec::new(),
                })
            }
            Codec::H264 => {
                let nals = annexb_nals(frame);
                let sps = nals
                    .iter()
                    .find(|n| n.first().map(|b| b & 0x1f) == Some(7))?;
                let pps = nals
                    .iter()
                    .find(|n| n.first().map(|b| b & 0x1f) == Some(8))?;
                let (width, height) = h264_sps_dimensions(sps)?;
                let mut extradata = Vec::new();
                for n in [sps, pps] {
                    extradata.extend_from_slice(&[0, 0, 0, 1]);
                    extradata.extend_from_slice(n);
                }
                Some(Self {
                    codec,
                    clock_rate,
                    width,
                    height,
                    extradata,
                })
            }
        }
    }
}

/// An `OpusHead` (RFC 7845 §5.1): 2 channels, no pre-skip, 48 kHz, mapping family 0.
/// Pre-skip 0 keeps a segment's duration exactly what was received.
fn opus_head() -> Vec<u8> {
    let mut h = b"OpusHead".to_vec();
    h.push(1);
    h.push(2);
    h.extend_from_slice(&0u16.to_le_bytes());
    h.extend_from_slice(&48_000u32.to_le_bytes());
    h.extend_from_slice(&0i16.to_le_bytes());
    h.push(0);
    h
}

struct Held {
    ext: i64,
    data: Vec<u8>,
    key: bool,
}

/// A segment being written (to a temporary name).
pub struct SegmentWriter {
    octx: ff::format::context::Output,
    path: PathBuf,
    codec: Codec,
    rate: i64,
    tb: Rational,
    first_ext: i64,
    held: Option<Held>,
    last_dur: i64,
    last_pts: Option<i64>,
    end_ext: i64,
    frames: u64,
}

/// What a finished segment was.
#[derive(Debug, Clone)]
pub struct Finished {
    pub frames: u64,
    /// Extended RTP timestamp of the first frame.
    pub first_ext: i64,
    /// Extended RTP timestamp of the end of the last frame.
    pub end_ext: i64,
}

impl SegmentWriter {
    /// Opens `path` and writes the header. `first_ext` is the extended RTP timestamp
    /// that becomes pts 0.
    pub fn create(path: &Path, setup: &StreamSetup, first_ext: i64) -> Result<Self, SegmentError> {
        let ff_err = |op| {
            let path = path.to_path_buf();
            move |source| SegmentError::Ffmpeg { path, op, source }
        };
        let format = match setup.codec {
            Codec::H264 => "matroska",
            _ => "webm",
        };
        let mut octx = ff::format::output_as(path, format).map_err(ff_err("open"))?;
        let rate = i64::from(setup.clock_rate.max(1));
        {
            let mut st = octx
                .add_stream(ff::encoder::find(ff::codec::Id::None))
                .map_err(ff_err("add stream"))?;
            st.set_time_base(Rational::new(1, setup.clock_rate.max(1) as i32));
            // SAFETY: `st` is a live stream of `octx`; codecpar was allocated by
            // avformat_new_stream. Parameters has no setters for these fields, so we
            // write them directly; extradata is allocated with av_mallocz including
            // the zeroed padding FFmpeg requires, and freed by FFmpeg with the stream.
            unsafe {
                let par = (*st.as_mut_ptr()).codecpar;
                match setup.codec {
                    Codec::Opus => {
                        (*par).codec_type = ffi::AVMediaType::AVMEDIA_TYPE_AUDIO;
                        (*par).codec_id = ffi::AVCodecID::AV_CODEC_ID_OPUS;
                        (*par).sample_rate = 48_000;
                        ffi::av_channel_layout_default(&mut (*par).ch_layout, 2);
                    }
                    Codec::Vp8 | Codec::H264 => {
                        (*par).codec_type = ffi::AVMediaType::AVMEDIA_TYPE_VIDEO;
                        (*par).codec_id = if setup.codec == Codec::Vp8 {
                            ffi::AVCodecID::AV_CODEC_ID_VP8
                        } else {
                            ffi::AVCodecID::AV_CODEC_ID_H264
                        };
                        (*par).width = setup.width as i32;
                        (*par).height = setup.height as i32;
                        (*par).format = ffi::AVPixelFormat::AV_PIX_FMT_YUV420P as i32;
                    }
                }
                if !setup.extradata.is_empty() {
                    let n = setup.extradata.len();
                    let buf =
                        ffi::av_mallocz(n + ffi::AV_INPUT_BUFFER_PADDING_SIZE as usize) as *mut u8;
                    if buf.is_null() {
                        return Err(SegmentError::Ffmpeg {
                            path: path.to_path_buf(),
                            op: "allocate extradata",
                            source: ff::Error::Other {
                                errno: libc_enomem(),
                            },
                        });
                    }
                    std::ptr::copy_nonoverlapping(setup.extradata.as_ptr(), buf, n);
                    (*par).extradata = buf;
                    (*par).extradata_size = n as i32;
                }
            }
        }
        octx.write_header().map_err(ff_err("write header"))?;
        let tb = octx
            .stream(0)
            .map(|s| s.time_base())
            .unwrap_or(Rational::new(1, 1000));
        Ok(Self {
            octx,
            path: path.to_path_buf(),
            codec: setup.codec,
            rate,
            tb,
            first_ext,
            held: None,
            last_dur: rate / 30,
            last_pts: None,
            end_ext: first_ext,
            frames: 0,
        })
    }

    fn to_tb(&self, rtp_ticks: i64) -> i64 {
        // ticks / rate seconds -> units of tb (num/den seconds), rounded to nearest.
        let num = i128::from(rtp_ticks) * i128::from(self.tb.denominator());
        let den = i128::from(self.rate) * i128::from(self.tb.numerator().max(1));
        ((num + den / 2).div_euclid(den)) as i64
    }

    /// Adds a frame with extended RTP timestamp `ext`. Frames not after the previous
    /// one are refused (returns false) rather than given to the muxer out of order.
    pub fn write(&mut self, ext: i64, data: Vec<u8>, key: bool) -> Result<bool, SegmentError> {
        if let Some(h) = &self.held {
            if ext <= h.ext {
                return Ok(false);
            }
        } else if ext < self.first_ext {
            return Ok(false);
        }
        if let Some(h) = self.held.take() {
            let dur = ext - h.ext;
            self.emit(h, dur)?;
        }
        self.held = Some(Held { ext, data, key });
        Ok(true)
    }

    fn emit(&mut self, h: Held, dur: i64) -> Result<(), SegmentError> {
        let dur = if self.codec == Codec::Opus {
            opus_samples(&h.data).map_or(dur, i64::from)
        } else {
            dur
        };
        let pts = self.to_tb(h.ext - self.first_ext);
        if self.last_pts.is_some_and(|p| pts <= p) {
            return Ok(()); // would collide after rounding to the container's clock
        }
        let mut pkt = ff::Packet::copy(&h.data);
        pkt.set_stream(0);
        pkt.set_pts(Some(pts));
        pkt.set_dts(Some(pts));
        pkt.set_duration(self.to_tb(dur).max(1));
        if h.key {
            pkt.set_flags(ff::packet::Flags::KEY);
        }
        pkt.write_interleaved(&mut self.octx)
            .map_err(|source| SegmentError::Ffmpeg {
                path: self.path.clone(),
                op: "write frame",
                source,
            })?;
        self.last_pts = Some(pts);
        self.last_dur = dur;
        self.end_ext = h.ext + dur;
        self.frames += 1;
        Ok(())
    }

    /// Frames written so far (not counting the one held back).
    pub fn frames(&self) -> u64 {
        self.frames + u64::from(self.held.is_some())
    }

    /// Extended RTP timestamp of the first frame.
    pub fn first_ext(&self) -> i64 {
        self.first_ext
    }

    /// Writes the last frame and the trailer, closes and `fsync`s the file.
    pub fn finish(mut self) -> Result<Finished, SegmentError> {
        if let Some(h) = self.held.take() {
            let dur = self.last_dur;
            self.emit(h, dur)?;
        }
        self.octx
            .write_trailer()
            .map_err(|source| SegmentError::Ffmpeg {
                path: self.path.clone(),
                op: "write trailer",
                source,
            })?;
        let Self {
            octx,
            path,
            frames,
            first_ext,
            end_ext,
            ..
        } = self;
        drop(octx); // closes the file
        File::open(&path)
            .and_then(|f| f.sync_all())
            .map_err(|source| SegmentError::Io {
                path: path.clone(),
                source,
            })?;
        Ok(Finished {
            frames,
            first_ext,
            end_ext,
        })
    }

    /// Path being written.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn libc_enomem() -> i32 {
    12
}
