//! Reading the recorded segments back: [`VideoReader`] decodes one cell's video
//! segments in order and [`Fitter`] scales each frame into the cell, on a thread per
//! cell ([`spawn_cell`]); [`AudioReader`] decodes one audio track and places its
//! samples on the time line, silence where nothing was recorded. A segment that cannot
//! be opened or decoded is skipped, as the journal's gaps already say why.

use std::collections::VecDeque;
use std::path::PathBuf;

use ff::{format::Pixel, format::Sample, frame, media, Rational};
use ffmpeg_next as ff;

use super::layout::{Cell, Seg};
use super::slate::black;
use super::{ffe, RenderError};
use crate::timing::WallUs;

/// What a cell's decoding thread sends back: its frames, fitted to the cell, in order.
pub(super) type CellFrames =
    crossbeam_channel::Receiver<Result<(WallUs, frame::Video), RenderError>>;

/// Starts the decoding thread of `cell` in `scope`: demux, decode and fit to a `w`x`h`
/// cell; frames come back in order through a small bounded channel.
pub(super) fn spawn_cell<'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    cell: &Cell,
    w: u32,
    h: u32,
) -> CellFrames {
    let (tx, rx) = crossbeam_channel::bounded(4);
    let segs: Vec<(PathBuf, WallUs)> = cell
        .video
        .iter()
        .map(|s| (s.path.clone(), s.start))
        .collect();
    scope.spawn(move || {
        let mut reader = VideoReader {
            segs: segs.into(),
            cur: None,
            eof_sent: false,
        };
        let mut fitter = Fitter { scaler: None, w, h };
        while let Some((wt, f)) = reader.next() {
            if tx.send(fitter.fit(&f).map(|c| (wt, c))).is_err() {
                break;
            }
        }
    });
    rx
}

/// Decodes one cell's video segments in order, yielding frames with wall times.
struct VideoReader {
    segs: VecDeque<(PathBuf, WallUs)>,
    cur: Option<(
        ff::format::context::Input,
        ff::decoder::Video,
        usize,
        Rational,
        WallUs,
    )>,
    eof_sent: bool,
}

impl VideoReader {
    fn next(&mut self) -> Option<(WallUs, frame::Video)> {
        // Bounded: each turn reads one packet or finishes one segment.
        for _ in 0..1_000_000 {
            if self.cur.is_none() {
                let (path, start) = self.segs.pop_front()?;
                let Ok(ictx) = ff::format::input(&path) else {
                    tracing::warn!(file = %path.display(), "cannot open segment");
                    continue;
                };
                let Some(st) = ictx.streams().best(media::Type::Video) else {
                    continue;
                };
                let (idx, tb) = (st.index(), st.time_base());
                let dec = ff::codec::context::Context::from_parameters(st.parameters())
                    .and_then(|c| c.decoder().video());
                let Ok(dec) = dec else { continue };
                self.cur = Some((ictx, dec, idx, tb, start));
                self.eof_sent = false;
            }
            let (ictx, dec, idx, tb, start) = self.cur.as_mut()?;
            let mut f = frame::Video::empty();
            if dec.receive_frame(&mut f).is_ok() {
                let pts = f.timestamp().or(f.pts()).unwrap_or(0);
                let us = pts * 1_000_000 * i64::from(tb.numerator())
                    / i64::from(tb.denominator().max(1));
                return Some((*start + us, f));
            }
            if self.eof_sent {
                self.cur = None;
                continue;
            }
            let mut pkt = ff::Packet::empty();
            match pkt.read(ictx) {
                Ok(()) => {
                    if pkt.stream() == *idx {
                        let _ = dec.send_packet(&pkt);
                    }
                }
                Err(ff::Error::Eof) | Err(_) => {
                    let _ = dec.send_eof();
                    self.eof_sent = true;
                }
            }
        }
        None
    }
}

/// Decodes one audio track's segments and places samples on the time line.
pub(super) struct AudioReader {
    segs: VecDeque<(PathBuf, WallUs)>,
    cur: Option<(
        ff::format::context::Input,
        ff::decoder::Audio,
        usize,
        Rational,
        WallUs,
    )>,
    eof_sent: bool,
    t0: WallUs,
    /// Timeline sample index of `l[0]`.
    base: i64,
    l: VecDeque<f32>,
    r: VecDeque<f32>,
    done: bool,
}

impl AudioReader {
    pub(super) fn new(segs: &[Seg], t0: WallUs) -> Self {
        Self {
            segs: segs.iter().map(|s| (s.path.clone(), s.start)).collect(),
            cur: None,
            eof_sent: false,
            t0,
            base: 0,
            l: VecDeque::new(),
            r: VecDeque::new(),
            done: false,
        }
    }

    fn decode_one(&mut self) -> Result<bool, RenderError> {
        for _ in 0..1_000_000 {
            if self.cur.is_none() {
                let Some((path, start)) = self.segs.pop_front() else {
                    self.done = true;
                    return Ok(false);
                };
                let Ok(ictx) = ff::format::input(&path) else {
                    continue;
                };
                let Some(st) = ictx.streams().best(media::Type::Audio) else {
                    continue;
                };
                let (idx, tb) = (st.index(), st.time_base());
                let dec = ff::codec::context::Context::from_parameters(st.parameters())
                    .and_then(|c| c.decoder().audio());
                let Ok(dec) = dec else { continue };
                self.cur = Some((ictx, dec, idx, tb, start));
                self.eof_sent = false;
            }
            let Some((ictx, dec, idx, tb, start)) = self.cur.as_mut() else {
                continue;
            };
            let mut f = frame::Audio::empty();
            if dec.receive_frame(&mut f).is_ok() {
                let pts = f.timestamp().or(f.pts()).unwrap_or(0);
                let us = *start
                    + pts * 1_000_000 * i64::from(tb.numerator())
                        / i64::from(tb.denominator().max(1));
                let pos = (us - self.t0) * 48_000 / 1_000_000;
                self.place(pos, &f)?;
                return Ok(true);
            }
            if self.eof_sent {
                self.cur = None;
                continue;
            }
            let mut pkt = ff::Packet::empty();
            match pkt.read(ictx) {
                Ok(()) => {
                    if pkt.stream() == *idx {
                        let _ = dec.send_packet(&pkt);
                    }
                }
                Err(_) => {
                    let _ = dec.send_eof();
                    self.eof_sent = true;
                }
            }
        }
        Ok(false)
    }

    fn place(&mut self, pos: i64, f: &frame::Audio) -> Result<(), RenderError> {
        let n = f.samples();
        let ch = usize::from(f.channels().max(1));
        let (left, right): (Vec<f32>, Vec<f32>) = match f.format() {
            Sample::F32(ff::format::sample::Type::Planar) => {
                let l = f.plane::<f32>(0)[..n].to_vec();
                let r = if ch > 1 {
                    f.plane::<f32>(1)[..n].to_vec()
                } else {
                    l.clone()
                };
                (l, r)
            }
            Sample::F32(ff::format::sample::Type::Packed) => {
                let data = f.data(0);
                let all: Vec<f32> = data
                    .chunks_exact(4)
                    .map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                let l = (0..n)
                    .map(|i| all.get(i * ch).copied().unwrap_or(0.0))
                    .collect();
                let r = (0..n)
                    .map(|i| all.get(i * ch + ch.min(2) - 1).copied().unwrap_or(0.0))
                    .collect();
                (l, r)
            }
            other => return Err(RenderError::AudioFormat(other)),
        };
        let end = self.base + self.l.len() as i64;
        let mut skip = 0usize;
        if pos > end {
            let pad = (pos - end).min(48_000 * 3600) as usize;
            self.l.extend(std::iter::repeat_n(0.0, pad));
            self.r.extend(std::iter::repeat_n(0.0, pad));
        } else if pos < end {
            skip = ((end - pos) as usize).min(n);
        }
        self.l.extend(&left[skip..]);
        self.r.extend(&right[skip..]);
        Ok(())
    }

    /// Samples for time-line positions `from..from+n` (silence where nothing was recorded).
    pub(super) fn take(
        &mut self,
        from: i64,
        n: usize,
    ) -> Result<(Vec<f32>, Vec<f32>), RenderError> {
        while !self.done && self.base + (self.l.len() as i64) < from + n as i64 {
            if !self.decode_one()? && self.done {
                break;
            }
        }
        // Drop anything before `from`.
        if self.base < from {
            let k = ((from - self.base) as usize).min(self.l.len());
            self.l.drain(..k);
            self.r.drain(..k);
            self.base += k as i64;
            if self.base < from {
                self.base = from; // nothing buffered: the window starts empty
            }
        }
        let lead = ((self.base - from).max(0) as usize).min(n);
        let take = (n - lead).min(self.l.len());
        let mut l = vec![0.0f32; lead];
        let mut r = vec![0.0f32; lead];
        l.extend(self.l.drain(..take));
        r.extend(self.r.drain(..take));
        self.base += take as i64;
        l.resize(n, 0.0);
        r.resize(n, 0.0);
        Ok((l, r))
    }
}

/// Copies `src` (any size, yuv420p) into the centre of a `w`x`h` black yuv420p frame,
/// scaled to fit while keeping its aspect ratio.
struct Fitter {
    scaler: Option<(ff::software::scaling::Context, (Pixel, u32, u32))>,
    w: u32,
    h: u32,
}

impl Fitter {
    fn fit(&mut self, src: &frame::Video) -> Result<frame::Video, RenderError> {
        let (sw, sh) = (src.width().max(1), src.height().max(1));
        let scale = f64::min(
            f64::from(self.w) / f64::from(sw),
            f64::from(self.h) / f64::from(sh),
        );
        let tw = ((f64::from(sw) * scale) as u32 & !1).clamp(2, self.w);
        let th = ((f64::from(sh) * scale) as u32 & !1).clamp(2, self.h);
        let key = (src.format(), sw, sh);
        if self.scaler.as_ref().map(|(_, k)| *k) != Some(key) {
            let ctx = ff::software::scaling::Context::get(
                src.format(),
                sw,
                sh,
                Pixel::YUV420P,
                tw,
                th,
                ff::software::scaling::Flags::BILINEAR,
            )
            .map_err(ffe("scaler"))?;
            self.scaler = Some((ctx, key));
        }
        let mut scaled = frame::Video::empty();
        if let Some((ctx, _)) = self.scaler.as_mut() {
            ctx.run(src, &mut scaled).map_err(ffe("scale"))?;
        }
        if tw == self.w && th == self.h {
            return Ok(scaled);
        }
        let mut out = black(self.w, self.h);
        let (ox, oy) = (((self.w - tw) / 2) & !1, ((self.h - th) / 2) & !1);
        for plane in 0..3 {
            let (px, py, pw, ph) = if plane == 0 {
                (ox as usize, oy as usize, tw as usize, th as usize)
            } else {
                (
                    ox as usize / 2,
                    oy as usize / 2,
                    tw as usize / 2,
                    th as usize / 2,
                )
            };
            let ss = scaled.stride(plane);
            let ds = out.stride(plane);
            let sdata = scaled.data(plane);
            let ddata = out.data_mut(plane);
            for row in 0..ph {
                let s = row * ss;
                let d = (py + row) * ds + px;
                if s + pw <= sdata.len() && d + pw <= ddata.len() {
                    ddata[d..d + pw].copy_from_slice(&sdata[s..s + pw]);
                }
            }
        }
        Ok(out)
    }
}
