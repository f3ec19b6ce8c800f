//! The archive as a time line: what the journal recorded ([`Timeline`]), one [`Cell`]
//! per participant with their video segments, the audio segments of every track, and
//! the [`Grid`] the cells are laid out on. Pure data from the journal; no ffmpeg here,
//! so what ends up where can be read apart from how it is decoded.

use std::path::{Path, PathBuf};

use crate::journal::{Entry, GapRecord, Line, SegmentRecord};
use crate::timing::{datetime_us, WallUs};
use crate::types::{GapCause, MediaKind, TrackMeta};

/// One recorded segment file, placed on the wall clock.
pub(super) struct Seg {
    pub(super) path: PathBuf,
    pub(super) start: WallUs,
    pub(super) end: WallUs,
}

/// One participant's place in the grid.
pub(super) struct Cell {
    pub(super) label: String,
    pub(super) participant: String,
    pub(super) video: Vec<Seg>,
    pub(super) tracks: Vec<String>,
    pub(super) video_tracks: Vec<String>,
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

/// Cells: one per participant, in order of first track.
pub(super) fn cells(dir: &Path, tl: &Timeline) -> Vec<Cell> {
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
    cells
}

/// The segments of every audio track that has any, each in start order.
pub(super) fn audio_segments(dir: &Path, tl: &Timeline) -> Vec<Vec<Seg>> {
    tl.tracks
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
        .collect()
}

/// The grid of cells: as many columns as the square root of the cell count needs,
/// cells of even size, the output frame their exact multiple.
pub(super) struct Grid {
    pub(super) cols: u32,
    pub(super) cw: u32,
    pub(super) ch: u32,
    pub(super) w: u32,
    pub(super) h: u32,
    pub(super) slots: usize,
}

impl Grid {
    pub(super) fn new(cells: usize, width: u32, height: u32) -> Self {
        let n = cells.max(1);
        let cols = (n as f64).sqrt().ceil() as u32;
        let rows = (n as u32).div_ceil(cols);
        let cw = (width / cols) & !1;
        let ch = (height / rows) & !1;
        let (w, h) = (cw * cols, ch * rows);
        let slots = (cols * rows) as usize;
        Grid {
            cols,
            cw,
            ch,
            w,
            h,
            slots,
        }
    }
}

/// The cause of a gap covering `t` for any of `tracks` (or all tracks).
pub(super) fn cause_at(gaps: &[GapRecord], tracks: &[String], t: WallUs) -> Option<GapCause> {
    gaps.iter()
        .filter(|g| g.track_id.as_ref().is_none_or(|id| tracks.contains(id)))
        .find(|g| datetime_us(&g.from) <= t && t < datetime_us(&g.to))
        .map(|g| g.cause)
}
