//! The health strip (`archive render --health-strip`): a band under the grid with a
//! row per (publisher → subscriber, kind) of the journal's `media_health` events —
//! who could see and hear whom. Each row is a time line of the whole render, filled
//! up to the current instant in the verdict's colour (green `ok`, amber `degraded`,
//! red `lost`, grey before any verdict or when none is expected), with a white
//! cursor at the current instant; what is still to come stays dark. The rows' labels
//! ("Name → Name · audio") are drawn by the video graph (`encode.rs`); the colours are
//! painted here, into a YUV 4:2:0 frame pushed with every tick.

use std::collections::HashMap;

use ff::{format::Pixel, frame};
use ffmpeg_next as ff;

use crate::journal::{Entry, Line};
use crate::timing::{datetime_us, WallUs};
use crate::types::EventKind;

/// Height of one row and the space under it, in pixels.
const ROW_H: u32 = 14;
const ROW_GAP: u32 = 2;
/// Space above the first row and under the last.
const MARGIN: u32 = 4;
/// At most this many rows (a hearing of many sites: the first pairs to appear).
pub const MAX_ROWS: usize = 16;

/// A cell's verdict from an instant on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grade {
    /// No verdict: not judged yet, or nothing expected.
    None,
    Ok,
    Degraded,
    Lost,
}

impl Grade {
    fn of(s: Option<&str>) -> Grade {
        match s {
            Some("ok") => Grade::Ok,
            Some("degraded") => Grade::Degraded,
            Some("lost") => Grade::Lost,
            _ => Grade::None,
        }
    }

    /// The colour as (Y, U, V), BT.601 limited range (what the encoder gets).
    pub fn yuv(self) -> (u8, u8, u8) {
        match self {
            Grade::Ok => rgb_to_yuv(22, 163, 74),
            Grade::Degraded => rgb_to_yuv(245, 158, 11),
            Grade::Lost => rgb_to_yuv(220, 38, 38),
            Grade::None => rgb_to_yuv(90, 90, 90),
        }
    }
}

/// The future part of a row, the background and the cursor.
const FUTURE: (u8, u8, u8) = (30, 128, 128);
const BACKGROUND: (u8, u8, u8) = (16, 128, 128);
const CURSOR: (u8, u8, u8) = (235, 128, 128);

fn rgb_to_yuv(r: u8, g: u8, b: u8) -> (u8, u8, u8) {
    let (r, g, b) = (f64::from(r), f64::from(g), f64::from(b));
    let y = 16.0 + 0.257 * r + 0.504 * g + 0.098 * b;
    let u = 128.0 - 0.148 * r - 0.291 * g + 0.439 * b;
    let v = 128.0 + 0.439 * r - 0.368 * g - 0.071 * b;
    let c = |x: f64| x.round().clamp(0.0, 255.0) as u8;
    (c(y), c(u), c(v))
}

/// One row: its label and its verdicts, each from its instant on, in time order.
#[derive(Debug, Clone)]
pub struct Row {
    pub label: String,
    pub changes: Vec<(WallUs, Grade)>,
}

impl Row {
    /// The verdict at `t`.
    pub fn grade_at(&self, t: WallUs) -> Grade {
        self.changes
            .iter()
            .take_while(|(at, _)| *at <= t)
            .last()
            .map_or(Grade::None, |(_, g)| *g)
    }
}

/// The strip of a render `w` pixels wide from `t0` to `t1`.
#[derive(Debug, Clone)]
pub struct HealthStrip {
    pub rows: Vec<Row>,
    pub w: u32,
    /// Where the time lines start (the labels are left of it).
    pub x0: u32,
    t0: WallUs,
    t1: WallUs,
}

impl HealthStrip {
    /// The strip of the journal's `media_health` events, participants named from
    /// `names` (participant id → name); `None` when the journal has none.
    pub fn from_lines(
        lines: &[Line],
        names: &HashMap<String, String>,
        w: u32,
        t0: WallUs,
        t1: WallUs,
    ) -> Option<HealthStrip> {
        let mut rows: Vec<((String, String, String), Row)> = Vec::new();
        for l in lines {
            let Entry::Event { event } = &l.entry else {
                continue;
            };
            if event.kind != EventKind::MediaHealth {
                continue;
            }
            let text = |k: &str| event.details.get(k).and_then(|v| v.as_str());
            let (Some(p), Some(s), Some(kind)) =
                (text("publisher"), text("subscriber"), text("kind"))
            else {
                continue;
            };
            let key = (p.to_owned(), s.to_owned(), kind.to_owned());
            let at = datetime_us(&event.at);
            let grade = Grade::of(text("to"));
            let count = rows.len();
            match rows.iter_mut().find(|(k, _)| *k == key) {
                Some((_, row)) => row.changes.push((at, grade)),
                None if count < MAX_ROWS => {
                    let name = |id: &str| {
                        names
                            .get(id)
                            .cloned()
                            .unwrap_or_else(|| id.chars().take(8).collect())
                    };
                    let label = format!("{} → {} · {kind}", name(p), name(s));
                    rows.push((
                        key,
                        Row {
                            label,
                            changes: vec![(at, grade)],
                        },
                    ));
                }
                None => {}
            }
        }
        if rows.is_empty() {
            return None;
        }
        let mut rows: Vec<Row> = rows.into_iter().map(|(_, r)| r).collect();
        for r in &mut rows {
            r.changes.sort_by_key(|(at, _)| *at);
        }
        Some(HealthStrip {
            rows,
            w,
            x0: (w / 3).min(360) & !1,
            t0,
            t1: t1.max(t0 + 1),
        })
    }

    /// The strip's height (even, for 4:2:0).
    pub fn height(&self) -> u32 {
        let h = 2 * MARGIN + self.rows.len() as u32 * (ROW_H + ROW_GAP);
        (h + 1) & !1
    }

    /// The top of row `i`.
    pub fn row_y(i: usize) -> u32 {
        MARGIN + i as u32 * (ROW_H + ROW_GAP)
    }

    pub fn row_height() -> u32 {
        ROW_H
    }

    /// The x of instant `t` on the time lines.
    pub fn x_of(&self, t: WallUs) -> u32 {
        let span = (self.w.saturating_sub(self.x0 + 8)).max(1);
        let f = (t - self.t0) as f64 / (self.t1 - self.t0) as f64;
        self.x0 + (f.clamp(0.0, 1.0) * f64::from(span - 1)).round() as u32
    }

    /// The instant at column `x` of the time lines.
    fn t_of(&self, x: u32) -> WallUs {
        let span = (self.w.saturating_sub(self.x0 + 8)).max(1);
        let f = f64::from(x.saturating_sub(self.x0)) / f64::from((span - 1).max(1));
        self.t0 + (f * (self.t1 - self.t0) as f64).round() as WallUs
    }

    /// A new frame of the strip at instant `t`.
    pub fn frame(&self, t: WallUs) -> frame::Video {
        let (w, h) = (self.w, self.height());
        let mut f = frame::Video::new(Pixel::YUV420P, w, h);
        fill(&mut f, 0, 0, w, h, BACKGROUND);
        let end = self.x0 + (self.w.saturating_sub(self.x0 + 8)).max(1);
        let cursor = self.x_of(t);
        for (i, row) in self.rows.iter().enumerate() {
            let y = Self::row_y(i);
            // Runs of one colour, column by column.
            let mut x = self.x0;
            while x < end {
                let colour = if x > cursor {
                    FUTURE
                } else {
                    row.grade_at(self.t_of(x)).yuv()
                };
                let mut x1 = x + 1;
                while x1 < end
                    && (if x1 > cursor {
                        FUTURE
                    } else {
                        row.grade_at(self.t_of(x1)).yuv()
                    }) == colour
                {
                    x1 += 1;
                }
                fill(&mut f, x, y, x1 - x, ROW_H, colour);
                x = x1;
            }
        }
        // The cursor: two pixels wide so it survives the chroma subsampling.
        fill(&mut f, cursor & !1, 0, 2, h, CURSOR);
        f
    }
}

/// Fills the rectangle (`x`, `y`, `w`, `h`) of a YUV 4:2:0 frame with `yuv`.
fn fill(f: &mut frame::Video, x: u32, y: u32, w: u32, h: u32, (cy, cu, cv): (u8, u8, u8)) {
    let (fw, fh) = (f.width(), f.height());
    let (x1, y1) = ((x + w).min(fw), (y + h).min(fh));
    let stride = f.stride(0);
    let luma = f.data_mut(0);
    for row in y..y1 {
        let start = row as usize * stride;
        luma[start + x as usize..start + x1 as usize].fill(cy);
    }
    for (plane, v) in [(1usize, cu), (2, cv)] {
        let stride = f.stride(plane);
        let data = f.data_mut(plane);
        for row in (y / 2)..y1.div_ceil(2) {
            let start = row as usize * stride;
            data[start + (x / 2) as usize..start + x1.div_ceil(2) as usize].fill(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_holds_each_verdict_from_its_instant() {
        let row = Row {
            label: "A → B · video".into(),
            changes: vec![(1_000, Grade::Ok), (5_000, Grade::Lost), (8_000, Grade::Ok)],
        };
        assert_eq!(row.grade_at(500), Grade::None);
        assert_eq!(row.grade_at(1_000), Grade::Ok);
        assert_eq!(row.grade_at(4_999), Grade::Ok);
        assert_eq!(row.grade_at(5_000), Grade::Lost);
        assert_eq!(row.grade_at(9_000), Grade::Ok);
    }

    #[test]
    fn the_strip_is_painted_up_to_the_cursor_in_the_verdicts_colours() {
        let strip = HealthStrip {
            rows: vec![Row {
                label: "r".into(),
                changes: vec![(0, Grade::Ok), (5_000_000, Grade::Lost)],
            }],
            w: 400,
            x0: 100,
            t0: 0,
            t1: 10_000_000,
        };
        let f = strip.frame(7_000_000);
        let y = (HealthStrip::row_y(0) + 4) as usize;
        let luma = |x: u32| f.data(0)[y * f.stride(0) + x as usize];
        let v = |x: u32| f.data(2)[(y / 2) * f.stride(2) + (x / 2) as usize];
        let (ok, lost) = (Grade::Ok.yuv(), Grade::Lost.yuv());
        let at = |s: f64| strip.x_of((s * 1e6) as i64);
        assert_eq!(
            (luma(at(2.0)), v(at(2.0))),
            (ok.0, ok.2),
            "ok before the loss"
        );
        assert_eq!(
            (luma(at(6.0)), v(at(6.0))),
            (lost.0, lost.2),
            "lost after it"
        );
        assert_eq!(luma(at(9.0)), FUTURE.0, "not yet painted");
        assert!(
            lost.2 > 200 && ok.2 < 110,
            "red and green tell apart: {ok:?} {lost:?}"
        );
    }
}
