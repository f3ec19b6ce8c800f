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
//!
//! The module is split along that pipeline: `layout` (the journal's time line, the
//! cells and the grid), `decode` (segment readers, one thread per cell), `slate` (what
//! a cell shows without video, and the label font), `encode` (the filter graphs and the
//! encoders), `strip` (the optional health strip under the grid: who could see and
//! hear whom, from the journal's `media_health` events); [`render`] here steps the
//! time line and feeds them.

mod decode;
mod encode;
mod layout;
mod slate;
pub mod strip;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ff::{format::Sample, frame, ChannelLayout, Rational};
use ffmpeg_next as ff;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::journal::{read_lines_lenient, JOURNAL_FILE};
use crate::live::ff_init;
use crate::timing::{datetime_us, WallUs};

use decode::AudioReader;
use encode::{push_ref, Encoders};
use layout::{cause_at, Grid};
use slate::{black, find_font, gap_label, slate, TextFiles};

pub use layout::Timeline;

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
    /// Burn the health strip under the grid (`--health-strip`): per pair and kind,
    /// `ok` / `degraded` / `lost` over time, from the journal's `media_health`
    /// events. An archive without such events renders without it.
    pub health_strip: bool,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            width: 1280,
            height: 720,
            fps: 30,
            progress: Progress::Auto,
            health_strip: false,
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
    /// The health strip drawn under the grid, if any: its rows, from the picture's
    /// row `grid_height` on.
    pub strip: Option<strip::HealthStrip>,
    /// Height of the grid (the picture above the strip).
    pub grid_height: u32,
}

/// Renders the archive in `dir` to `out` (MP4).
pub fn render(dir: &Path, out: &Path, opts: &RenderOptions) -> Result<RenderReport, RenderError> {
    ff_init().map_err(|_| RenderError::Ffmpeg {
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

    let cells = layout::cells(dir, &tl);
    let audio_tracks = layout::audio_segments(dir, &tl);

    let grid = Grid::new(cells.len(), opts.width, opts.height);
    let (cw, ch, w, h, slots) = (grid.cw, grid.ch, grid.w, grid.h, grid.slots);

    let strip = if opts.health_strip {
        let names: HashMap<String, String> = tl
            .tracks
            .iter()
            .map(|t| (t.participant_id.clone(), t.name.clone()))
            .collect();
        let t_end = t0 + ticks * 1_000_000 / i64::from(fps);
        strip::HealthStrip::from_lines(&lines, &names, w, t0, t_end)
    } else {
        None
    };
    let strip_h = strip.as_ref().map_or(0, |s| s.height());

    let mut texts = TextFiles::new()?;
    let mut vg = encode::video_graph(&grid, fps, &cells, strip.as_ref(), font, &mut texts)?;
    let na = audio_tracks.len();
    let mut ag = encode::audio_graph(na)?;
    let Encoders {
        mut octx,
        mut venc,
        vname,
        vidx,
        mut aenc_opt,
    } = Encoders::open(out, w, h + strip_h, fps, na > 0)?;
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
        // One decoding thread per cell: demux, decode and fit to the cell in parallel;
        // frames come back in order through a small bounded channel.
        let readers: Vec<decode::CellFrames> = cells
            .iter()
            .map(|c| decode::spawn_cell(scope, c, cw, ch))
            .collect();
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
            if let Some(s) = &strip {
                let mut f = s.frame(t);
                f.set_pts(Some(k));
                if let Some(mut src) = vg.get("strip") {
                    push_ref(&mut src, &f).map_err(ffe("push strip"))?;
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
        if let Some(mut src) = vg.get("strip") {
            let _ = src.source().flush();
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
        strip,
        grid_height: h,
    })
}
