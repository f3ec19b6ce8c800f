//! What a cell shows when it has no video, and the text on it: a [`slate`] (dark frame
//! with centred text, e.g. `gap: packet_loss`), a [`black`] frame, the label font
//! ([`find_font`]) and the [`TextFiles`] drawtext reads its text from, so that names
//! and reasons need no filter-graph escaping.

use std::fs;
use std::path::{Path, PathBuf};

use ff::{format::Pixel, frame};
use ffmpeg_next as ff;

use super::{ffe, RenderError};
use crate::types::GapCause;

const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

pub(super) fn find_font() -> Option<&'static str> {
    FONTS.iter().copied().find(|p| Path::new(p).is_file())
}

/// Escapes a value for a filter graph description (inside '...').
fn escape_path(p: &str) -> String {
    p.replace('\\', "\\\\\\\\")
        .replace('\'', "\\\\\\'")
        .replace(':', "\\\\:")
}

pub(super) struct TextFiles {
    dir: PathBuf,
    n: usize,
}

impl TextFiles {
    pub(super) fn new() -> Result<Self, RenderError> {
        let dir = std::env::temp_dir().join(format!("openhearing-render-{}", uuid::Uuid::new_v4()));
        fs::create_dir_all(&dir).map_err(|source| RenderError::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(Self { dir, n: 0 })
    }
    /// Writes `text` to a file for drawtext's `textfile=` (no escaping needed).
    pub(super) fn file(&mut self, text: &str) -> Result<String, RenderError> {
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

pub(super) fn black(w: u32, h: u32) -> frame::Video {
    let mut f = frame::Video::new(Pixel::YUV420P, w, h);
    for (plane, v) in [(0usize, 16u8), (1, 128), (2, 128)] {
        for b in f.data_mut(plane).iter_mut() {
            *b = v;
        }
    }
    f
}

/// Renders a slate (dark frame with centred text) through a one-off filter graph.
pub(super) fn slate(
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

pub(super) fn gap_label(cause: GapCause) -> String {
    format!("gap: {}", cause.as_str())
}
