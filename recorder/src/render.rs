//! `archive render`: one playable MP4 of the whole hearing.
//!
//! Every participant gets a cell of a grid (their video, or a slate), labelled with
//! name and role; all audio tracks are mixed. Tracks are placed on the shared wall
//! clock from the journal (segment start times), so participants stay in sync. Any
//! stretch without video shows a dark slate saying why (`gap: packet_loss`,
//! `gap: paused`, ... or `no video`).
//!
//! Pipeline (all ffmpeg-next, no ffmpeg CLI): per-segment demux + decode; our own
//! time-line stepping at the output frame rate (each cell shows the latest frame
//! whose wall time is not later than half a frame after the tick; audio is placed
//! sample-exactly with silence in gaps); a filter graph of `buffer` sources →
//! `drawtext` labels → `xstack`, and `abuffer` sources → `amix` → `aformat`; libx264
//! (or MPEG-4 Part 2 when libx264 is missing) and AAC into MP4.

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};

use ff::{format::Pixel, format::Sample, frame, media, ChannelLayout, Rational};
use ffmpeg_next as ff;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::journal::{read_lines_lenient, Entry, GapRecord, Line, SegmentRecord, JOURNAL_FILE};
use crate::timing::{datetime_us, WallUs};
use crate::types::{GapCause, MediaKind, TrackMeta};

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("cannot read the archive journal: {0}")]
    Journal(#[from] crate::journal::JournalError),
    #[error("the archive has no segments to render")]
    Empty,
    #[error("ffmpeg: {what}: {source}")]
    Ffmpeg {
        what: String,
        #[source]
        source: ff::Error,
    },
    #[error("no usable font for labels (install fonts-dejavu-core)")]
    NoFont,
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("unsupported decoded audio format {0:?}")]
    AudioFormat(Sample),
}

fn ffe(what: impl Into<String>) -> impl FnOnce(ff::Error) -> RenderError {
    let what = what.into();
    move |source| RenderError::Ffmpeg { what, source }
}

/// Whether to draw a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Progress {
    /// On stderr when it is a terminal.
    #[default]
    Auto,
    Hidden,
}

/// Output settings.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub progress: Progress,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            width: 1280,
            height: 720,
            fps: 30,
            progress: Progress::Auto,
        }
    }
}

/// What was rendered.
#[derive(Debug, Clone)]
pub struct RenderReport {
    pub output: PathBuf,
    pub duration_s: f64,
    pub cells: usize,
    pub audio_tracks: usize,
    pub video_encoder: String,
    /// Wall time (µs since epoch) of the output's first frame.
    pub start_us: WallUs,
}

const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

fn find_font() -> Option<&'static str> {
    FONTS.iter().copied().find(|p| Path::new(p).is_file())
}

struct Seg {
    path: PathBuf,
    start: WallUs,
    end: WallUs,
}

struct Cell {
    label: String,
    participant: String,
    video: Vec<Seg>,
    tracks: Vec<String>,
    video_tracks: Vec<String>,
}

/// What the journal says about the archive, for rendering and `info`.
pub struct Timeline {
    pub tracks: Vec<TrackMeta>,
    pub segments: Vec<SegmentRecord>,
    pub gaps: Vec<GapRecord>,
}

impl Timeline {
    pub fn from_lines(lines: &[Line]) -> Self {
        let mut t = Timeline {
            tracks: Vec::new(),
            segments: Vec::new(),
            gaps: Vec::new(),
        };
        for l in lines {
            match &l.entry {
                Entry::TrackAdded { track }
                    if !t.tracks.iter().any(|x| x.track_id == track.track_id) =>
                {
                    t.tracks.push(track.clone());
                }
                Entry::Segment(s) => t.segments.push(s.clone()),
                Entry::Gap(g) => t.gaps.push(g.clone()),
                _ => {}
            }
        }
        t
    }
}

/// Escapes a value for a filter graph description (inside '...').
fn escape_path(p: &str) -> String {
    p.replace('\\', "\\\\\\\\")
        .replace('\'', "\\\\\\'")
        .replace(':', "\\\\:")
}

struct TextFiles {
    dir: PathBuf,
    n: usize,
}

impl TextFiles {
    fn new() -> Result<Self, RenderError> {
        let dir = std::env::temp_dir().join(format!("openhearing-render-{}", uuid::Uuid::new_v4()));
        fs::create_dir_all(&dir).map_err(|source| RenderError::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(Self { dir, n: 0 })
    }
    /// Writes `text` to a file for drawtext's `textfile=` (no escaping needed).
    fn file(&mut self, text: &str) -> Result<String, RenderError> {
        self.n += 1;
        let p = self.dir.join(format!("t{}.txt", self.n));
        fs::write(&p, text).map_err(|source| RenderError::Io {
            path: p.clone(),
            source,
        })?;
        Ok(escape_path(&p.to_string_lossy()))
    }
}

impl Drop for TextFiles {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
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
struct AudioReader {
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
    fn new(segs: &[Seg], t0: WallUs) -> Self {
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
    fn take(&mut self, from: i64, n: usize) -> Result<(Vec<f32>, Vec<f32>), RenderError> {
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

/// Gives a buffer source a new reference to `f`, leaving `f` intact
/// (`Source::add` uses `av_buffersrc_add_frame`, which takes the frame's data away).
fn push_ref(src: &mut ff::filter::Context, f: &frame::Video) -> Result<(), ff::Error> {
    // SAFETY: both pointers are live for the call; av_buffersrc_write_frame only
    // reads `f` and adds a reference to its buffers (copying if not ref-counted).
    let r = unsafe { ff::ffi::av_buffersrc_write_frame(src.as_mut_ptr(), f.as_ptr()) };
    if r < 0 {
        Err(ff::Error::from(r))
    } else {
        Ok(())
    }
}

fn black(w: u32, h: u32) -> frame::Video {
    let mut f = frame::Video::new(Pixel::YUV420P, w, h);
    for (plane, v) in [(0usize, 16u8), (1, 128), (2, 128)] {
        for b in f.data_mut(plane).iter_mut() {
            *b = v;
        }
    }
    f
}

/// Renders a slate (dark frame with centred text) through a one-off filter graph.
fn slate(
    w: u32,
    h: u32,
    text: &str,
    font: &str,
    texts: &mut TextFiles,
) -> Result<frame::Video, RenderError> {
    let mut g = ff::filter::Graph::new();
    let sink = ff::filter::find("buffersink").ok_or(RenderError::Ffmpeg {
        what: "buffersink filter".into(),
        source: ff::Error::FilterNotFound,
    })?;
    g.add(&sink, "out", "").map_err(ffe("slate sink"))?;
    let tf = texts.file(text)?;
    let spec = format!(
        "color=c=0x282828:s={w}x{h}:r=1:d=1,format=yuv420p,drawtext=fontfile='{font}':textfile='{tf}':expansion=none:fontcolor=0xdddddd:fontsize={}:x=(w-tw)/2:y=(h-th)/2",
        (h / 14).max(10)
    );
    g.input("out", 0)
        .and_then(|p| p.parse(&spec))
        .map_err(ffe("slate graph"))?;
    g.validate().map_err(ffe("slate graph"))?;
    let mut f = frame::Video::empty();
    let mut ctx = g.get("out").ok_or(RenderError::Ffmpeg {
        what: "slate sink".into(),
        source: ff::Error::Bug,
    })?;
    ctx.sink().frame(&mut f).map_err(ffe("slate frame"))?;
    Ok(f)
}

fn gap_label(cause: GapCause) -> String {
    format!("gap: {}", cause.as_str())
}

/// Renders the archive in `dir` to `out` (MP4).
pub fn render(dir: &Path, out: &Path, opts: &RenderOptions) -> Result<RenderReport, RenderError> {
    crate::live::ff_init().map_err(|_| RenderError::Ffmpeg {
        what: "init".into(),
        source: ff::Error::Bug,
    })?;
    let lines = read_lines_lenient(&dir.join(JOURNAL_FILE))?.lines;
    let tl = Timeline::from_lines(&lines);
    if tl.segments.is_empty() {
        return Err(RenderError::Empty);
    }
    let font = find_font().ok_or(RenderError::NoFont)?;
    let t0 = tl
        .segments
        .iter()
        .map(|s| datetime_us(&s.start))
        .min()
        .unwrap_or(0);
    let t1 = tl
        .segments
        .iter()
        .map(|s| datetime_us(&s.end))
        .max()
        .unwrap_or(t0);
    let fps = opts.fps.clamp(1, 120);
    let ticks = (((t1 - t0) * i64::from(fps) + 999_999) / 1_000_000).max(1);

    // Cells: one per participant, in order of first track.
    let mut cells: Vec<Cell> = Vec::new();
    for t in &tl.tracks {
        let idx = match cells.iter().position(|c| c.participant == t.participant_id) {
            Some(i) => i,
            None => {
                cells.push(Cell {
                    label: format!("{} ({})", t.name, t.role),
                    participant: t.participant_id.clone(),
                    video: Vec::new(),
                    tracks: Vec::new(),
                    video_tracks: Vec::new(),
                });
                cells.len() - 1
            }
        };
        cells[idx].tracks.push(t.track_id.clone());
        if t.kind == MediaKind::Video {
            cells[idx].video_tracks.push(t.track_id.clone());
            for s in tl.segments.iter().filter(|s| s.track_id == t.track_id) {
                cells[idx].video.push(Seg {
                    path: dir.join(&s.file),
                    start: datetime_us(&s.start),
                    end: datetime_us(&s.end),
                });
            }
        }
    }
    for c in &mut cells {
        c.video.sort_by_key(|s| s.start);
    }
    let audio_tracks: Vec<Vec<Seg>> = tl
        .tracks
        .iter()
        .filter(|t| t.kind == MediaKind::Audio)
        .map(|t| {
            let mut v: Vec<Seg> = tl
                .segments
                .iter()
                .filter(|s| s.track_id == t.track_id)
                .map(|s| Seg {
                    path: dir.join(&s.file),
                    start: datetime_us(&s.start),
                    end: datetime_us(&s.end),
                })
                .collect();
            v.sort_by_key(|s| s.start);
            v
        })
        .filter(|v| !v.is_empty())
        .collect();

    let n = cells.len().max(1);
    let cols = (n as f64).sqrt().ceil() as u32;
    let rows = (n as u32).div_ceil(cols);
    let cw = (opts.width / cols) & !1;
    let ch = (opts.height / rows) & !1;
    let (w, h) = (cw * cols, ch * rows);
    let slots = (cols * rows) as usize;

    let mut texts = TextFiles::new()?;
    // Video graph: buffer sources -> labels -> xstack.
    let mut vg = ff::filter::Graph::new();
    let buffer = ff::filter::find("buffer").ok_or(RenderError::Ffmpeg {
        what: "buffer filter".into(),
        source: ff::Error::FilterNotFound,
    })?;
    let buffersink = ff::filter::find("buffersink").ok_or(RenderError::Ffmpeg {
        what: "buffersink filter".into(),
        source: ff::Error::FilterNotFound,
    })?;
    let vargs = format!(
        "video_size={cw}x{ch}:pix_fmt={}:time_base=1/{fps}:pixel_aspect=1/1",
        ff::ffi::AVPixelFormat::AV_PIX_FMT_YUV420P as i32
    );
    for i in 0..slots {
        vg.add(&buffer, &format!("v{i}"), &vargs)
            .map_err(ffe("video source"))?;
    }
    vg.add(&buffersink, "vout", "").map_err(ffe("video sink"))?;
    let mut spec = String::new();
    let fs = (ch / 16).max(10);
    for i in 0..slots {
        match cells.get(i) {
            Some(c) => {
                let tf = texts.file(&c.label)?;
                spec.push_str(&format!(
                    "[v{i}]drawtext=fontfile='{font}':textfile='{tf}':expansion=none:fontcolor=white:fontsize={fs}:box=1:boxcolor=black@0.6:boxborderw=4:x=8:y=h-th-12[c{i}];"
                ));
            }
            None => spec.push_str(&format!("[v{i}]null[c{i}];")),
        }
    }
    if slots == 1 {
        spec.push_str("[c0]format=yuv420p[vout]");
    } else {
        let layout: Vec<String> = (0..slots as u32)
            .map(|i| format!("{}_{}", (i % cols) * cw, (i / cols) * ch))
            .collect();
        for i in 0..slots {
            spec.push_str(&format!("[c{i}]"));
        }
        spec.push_str(&format!(
            "xstack=inputs={slots}:layout={},format=yuv420p[vout]",
            layout.join("|")
        ));
    }
    {
        let mut p = vg.output("v0", 0).map_err(ffe("video graph"))?;
        for i in 1..slots {
            p = p.output(&format!("v{i}"), 0).map_err(ffe("video graph"))?;
        }
        p.input("vout", 0)
            .and_then(|p| p.parse(&spec))
            .map_err(ffe(format!("video graph {spec}")))?;
    }
    vg.validate().map_err(ffe("video graph"))?;

    // Audio graph: abuffer sources -> amix -> aformat.
    let mut ag = ff::filter::Graph::new();
    let na = audio_tracks.len();
    if na > 0 {
        let abuffer = ff::filter::find("abuffer").ok_or(RenderError::Ffmpeg {
            what: "abuffer filter".into(),
            source: ff::Error::FilterNotFound,
        })?;
        let abuffersink = ff::filter::find("abuffersink").ok_or(RenderError::Ffmpeg {
            what: "abuffersink filter".into(),
            source: ff::Error::FilterNotFound,
        })?;
        for i in 0..na {
            ag.add(
                &abuffer,
                &format!("a{i}"),
                "time_base=1/48000:sample_rate=48000:sample_fmt=fltp:channel_layout=stereo",
            )
            .map_err(ffe("audio source"))?;
        }
        ag.add(&abuffersink, "aout", "")
            .map_err(ffe("audio sink"))?;
        let mut spec = String::new();
        for i in 0..na {
            spec.push_str(&format!("[a{i}]"));
        }
        if na == 1 {
            spec.push_str("anull,");
        } else {
            spec.push_str(&format!("amix=inputs={na}:duration=longest:normalize=0,"));
        }
        spec.push_str("aformat=sample_fmts=fltp:sample_rates=48000:channel_layouts=stereo[aout]");
        {
            let mut p = ag.output("a0", 0).map_err(ffe("audio graph"))?;
            for i in 1..na {
                p = p.output(&format!("a{i}"), 0).map_err(ffe("audio graph"))?;
            }
            p.input("aout", 0)
                .and_then(|p| p.parse(&spec))
                .map_err(ffe("audio graph"))?;
        }
        ag.validate().map_err(ffe("audio graph"))?;
        if let Some(mut s) = ag.get("aout") {
            s.sink().set_frame_size(1024);
        }
    }

    // Output and encoders.
    let mut octx =
        ff::format::output_as(out, "mp4").map_err(ffe(format!("create {}", out.display())))?;
    let (vcodec, vname) = match ff::encoder::find_by_name("libx264") {
        Some(c) => (c, "libx264"),
        None => (
            ff::encoder::find(ff::codec::Id::MPEG4).ok_or(RenderError::Ffmpeg {
                what: "no H.264 or MPEG-4 encoder".into(),
                source: ff::Error::EncoderNotFound,
            })?,
            "mpeg4",
        ),
    };
    let mut venc = ff::codec::context::Context::new_with_codec(vcodec)
        .encoder()
        .video()
        .map_err(ffe("video encoder"))?;
    venc.set_width(w);
    venc.set_height(h);
    venc.set_format(Pixel::YUV420P);
    venc.set_time_base(Rational::new(1, fps as i32));
    venc.set_frame_rate(Some(Rational::new(fps as i32, 1)));
    venc.set_gop(fps * 2);
    venc.set_max_b_frames(0);
    venc.set_flags(ff::codec::Flags::GLOBAL_HEADER);
    let mut vopts = ff::Dictionary::new();
    if vname == "libx264" {
        vopts.set("preset", "superfast");
        vopts.set("crf", "24");
    } else {
        venc.set_bit_rate(2_000_000);
    }
    let mut venc = venc
        .open_as_with(vcodec, vopts)
        .map_err(ffe("open video encoder"))?;
    let vidx = {
        let mut st = octx.add_stream(vcodec).map_err(ffe("video stream"))?;
        st.set_parameters(&venc);
        st.set_time_base(Rational::new(1, fps as i32));
        st.index()
    };
    let mut aenc_opt = None;
    if na > 0 {
        let acodec = ff::encoder::find(ff::codec::Id::AAC).ok_or(RenderError::Ffmpeg {
            what: "AAC encoder".into(),
            source: ff::Error::EncoderNotFound,
        })?;
        let mut aenc = ff::codec::context::Context::new_with_codec(acodec)
            .encoder()
            .audio()
            .map_err(ffe("audio encoder"))?;
        aenc.set_rate(48_000);
        aenc.set_channel_layout(ChannelLayout::STEREO);
        aenc.set_format(Sample::F32(ff::format::sample::Type::Planar));
        aenc.set_bit_rate(128_000);
        aenc.set_time_base(Rational::new(1, 48_000));
        aenc.set_flags(ff::codec::Flags::GLOBAL_HEADER);
        let aenc = aenc.open_as(acodec).map_err(ffe("open audio encoder"))?;
        let aidx = {
            let mut st = octx.add_stream(acodec).map_err(ffe("audio stream"))?;
            st.set_parameters(&aenc);
            st.set_time_base(Rational::new(1, 48_000));
            st.index()
        };
        aenc_opt = Some((aenc, aidx));
    }
    octx.write_header().map_err(ffe("write header"))?;
    let vst_tb = octx
        .stream(vidx)
        .map(|s| s.time_base())
        .unwrap_or(Rational::new(1, fps as i32));
    let ast_tb = aenc_opt
        .as_ref()
        .and_then(|(_, i)| octx.stream(*i).map(|s| s.time_base()))
        .unwrap_or(Rational::new(1, 48_000));

    let bar = match opts.progress {
        Progress::Auto => {
            ProgressBar::with_draw_target(Some(ticks as u64), ProgressDrawTarget::stderr())
        }
        Progress::Hidden => ProgressBar::hidden(),
    };
    if let Ok(style) =
        ProgressStyle::with_template("rendering {bar:40} {percent:>3}% {elapsed}/{duration}")
    {
        bar.set_style(style);
    }

    std::thread::scope(|scope| -> Result<(), RenderError> {
        // Per-cell state.
        // One decoding thread per cell: demux, decode and fit to the cell in parallel;
        // frames come back in order through a small bounded channel.
        let mut readers: Vec<
            crossbeam_channel::Receiver<Result<(WallUs, frame::Video), RenderError>>,
        > = Vec::new();
        for c in &cells {
            let (tx, rx) = crossbeam_channel::bounded(4);
            let segs: Vec<(PathBuf, WallUs)> =
                c.video.iter().map(|s| (s.path.clone(), s.start)).collect();
            scope.spawn(move || {
                let mut reader = VideoReader {
                    segs: segs.into(),
                    cur: None,
                    eof_sent: false,
                };
                let mut fitter = Fitter {
                    scaler: None,
                    w: cw,
                    h: ch,
                };
                while let Some((wt, f)) = reader.next() {
                    if tx.send(fitter.fit(&f).map(|c| (wt, c))).is_err() {
                        break;
                    }
                }
            });
            readers.push(rx);
        }
        let mut lookahead: Vec<Option<(WallUs, frame::Video)>> =
            (0..cells.len()).map(|_| None).collect();
        let mut current: Vec<Option<(WallUs, frame::Video)>> =
            (0..cells.len()).map(|_| None).collect();
        let mut slates: HashMap<String, frame::Video> = HashMap::new();
        let mut areaders: Vec<AudioReader> = audio_tracks
            .iter()
            .map(|s| AudioReader::new(s, t0))
            .collect();
        let mut empty_cell = black(cw, ch);
        let half_tick = 500_000 / i64::from(fps);

        let write_video = |venc: &mut ff::encoder::Video,
                           octx: &mut ff::format::context::Output|
         -> Result<(), RenderError> {
            let mut pkt = ff::Packet::empty();
            while venc.receive_packet(&mut pkt).is_ok() {
                pkt.set_stream(vidx);
                pkt.rescale_ts(Rational::new(1, fps as i32), vst_tb);
                pkt.write_interleaved(octx).map_err(ffe("write video"))?;
            }
            Ok(())
        };
        let write_audio = |aenc: &mut ff::encoder::Audio,
                           aidx: usize,
                           octx: &mut ff::format::context::Output|
         -> Result<(), RenderError> {
            let mut pkt = ff::Packet::empty();
            while aenc.receive_packet(&mut pkt).is_ok() {
                pkt.set_stream(aidx);
                pkt.rescale_ts(Rational::new(1, 48_000), ast_tb);
                pkt.write_interleaved(octx).map_err(ffe("write audio"))?;
            }
            Ok(())
        };

        for k in 0..ticks {
            let t = t0 + k * 1_000_000 / i64::from(fps);
            for (i, cell) in cells.iter().enumerate() {
                // Advance to the latest frame due by this tick.
                loop {
                    if lookahead[i].is_none() {
                        lookahead[i] = match readers[i].recv() {
                            Ok(r) => Some(r?),
                            Err(_) => None,
                        };
                    }
                    match &lookahead[i] {
                        Some((wt, _)) if *wt <= t + half_tick => current[i] = lookahead[i].take(),
                        _ => break,
                    }
                }
                let in_segment = cell
                    .video
                    .iter()
                    .find(|s| s.start - half_tick <= t && t < s.end);
                let showing = matches!(
                    (&current[i], in_segment),
                    (Some((wt, _)), Some(seg)) if *wt >= seg.start - half_tick
                );
                let f: &mut frame::Video = match (&mut current[i], showing) {
                    (Some((_, f)), true) => f,
                    _ => {
                        let label = cause_at(&tl.gaps, &cell.video_tracks, t)
                            .or_else(|| cause_at(&tl.gaps, &cell.tracks, t))
                            .map(gap_label)
                            .unwrap_or_else(|| {
                                if cell.video.is_empty() {
                                    "audio only".to_string()
                                } else {
                                    "no video".to_string()
                                }
                            });
                        if !slates.contains_key(&label) {
                            let s = slate(cw, ch, &label, font, &mut texts)?;
                            slates.insert(label.clone(), s);
                        }
                        match slates.get_mut(&label) {
                            Some(f) => f,
                            None => &mut empty_cell,
                        }
                    }
                };
                // Frames are reference-counted: the filter graph takes a new reference.
                f.set_pts(Some(k));
                if let Some(mut src) = vg.get(&format!("v{i}")) {
                    push_ref(&mut src, f).map_err(ffe("push video"))?;
                }
            }
            for i in cells.len()..slots {
                empty_cell.set_pts(Some(k));
                if let Some(mut src) = vg.get(&format!("v{i}")) {
                    push_ref(&mut src, &empty_cell).map_err(ffe("push video"))?;
                }
            }
            if let Some(mut sink) = vg.get("vout") {
                let mut f = frame::Video::empty();
                while sink.sink().frame(&mut f).is_ok() {
                    venc.send_frame(&f).map_err(ffe("encode video"))?;
                    write_video(&mut venc, &mut octx)?;
                }
            }
            if let Some((aenc, aidx)) = aenc_opt.as_mut() {
                let from = k * 48_000 / i64::from(fps);
                let to = (k + 1) * 48_000 / i64::from(fps);
                let ns = (to - from) as usize;
                for (i, ar) in areaders.iter_mut().enumerate() {
                    let (l, r) = ar.take(from, ns)?;
                    let mut af = frame::Audio::new(
                        Sample::F32(ff::format::sample::Type::Planar),
                        ns,
                        ChannelLayout::STEREO,
                    );
                    af.set_rate(48_000);
                    af.plane_mut::<f32>(0)[..ns].copy_from_slice(&l);
                    af.plane_mut::<f32>(1)[..ns].copy_from_slice(&r);
                    af.set_pts(Some(from));
                    if let Some(mut src) = ag.get(&format!("a{i}")) {
                        src.source().add(&af).map_err(ffe("push audio"))?;
                    }
                }
                if let Some(mut sink) = ag.get("aout") {
                    let mut f = frame::Audio::empty();
                    while sink.sink().frame(&mut f).is_ok() {
                        aenc.send_frame(&f).map_err(ffe("encode audio"))?;
                        write_audio(aenc, *aidx, &mut octx)?;
                    }
                }
            }
            bar.inc(1);
        }
        // Flush filters and encoders.
        for i in 0..slots {
            if let Some(mut src) = vg.get(&format!("v{i}")) {
                let _ = src.source().flush();
            }
        }
        if let Some(mut sink) = vg.get("vout") {
            let mut f = frame::Video::empty();
            while sink.sink().frame(&mut f).is_ok() {
                venc.send_frame(&f).map_err(ffe("encode video"))?;
                write_video(&mut venc, &mut octx)?;
            }
        }
        venc.send_eof().map_err(ffe("flush video"))?;
        write_video(&mut venc, &mut octx)?;
        if let Some((aenc, aidx)) = aenc_opt.as_mut() {
            for i in 0..na {
                if let Some(mut src) = ag.get(&format!("a{i}")) {
                    let _ = src.source().flush();
                }
            }
            if let Some(mut sink) = ag.get("aout") {
                let mut f = frame::Audio::empty();
                while sink.sink().frame(&mut f).is_ok() {
                    aenc.send_frame(&f).map_err(ffe("encode audio"))?;
                    write_audio(aenc, *aidx, &mut octx)?;
                }
            }
            aenc.send_eof().map_err(ffe("flush audio"))?;
            write_audio(aenc, *aidx, &mut octx)?;
        }
        Ok(())
    })?;
    octx.write_trailer().map_err(ffe("write trailer"))?;
    bar.finish_and_clear();
    Ok(RenderReport {
        output: out.to_path_buf(),
        duration_s: ticks as f64 / f64::from(fps),
        cells: cells.len(),
        audio_tracks: na,
        video_encoder: vname.to_string(),
        start_us: t0,
    })
}

/// The cause of a gap covering `t` for any of `tracks` (or all tracks).
fn cause_at(gaps: &[GapRecord], tracks: &[String], t: WallUs) -> Option<GapCause> {
    gaps.iter()
        .filter(|g| g.track_id.as_ref().is_none_or(|id| tracks.contains(id)))
        .find(|g| datetime_us(&g.from) <= t && t < datetime_us(&g.to))
        .map(|g| g.cause)
}
