//! The output side: the filter graphs that compose the picture ([`video_graph`]:
//! `buffer` sources → `drawtext` labels → `xstack`) and mix the sound
//! ([`audio_graph`]: `abuffer` sources → `amix` → `aformat`), and the MP4 output with
//! its encoders ([`Encoders`]: libx264, or MPEG-4 Part 2 when libx264 is missing, and
//! AAC). Built once before the time line is stepped; `render` feeds them frame by frame.

use std::path::Path;

use ff::{format::Pixel, format::Sample, frame, ChannelLayout, Rational};
use ffmpeg_next as ff;

use super::layout::{Cell, Grid};
use super::slate::TextFiles;
use super::strip::HealthStrip;
use super::{ffe, RenderError};

/// The video graph: one `buffer` source `v{i}` per grid slot, each cell's label drawn
/// on its source, all stacked into the sink `vout`; with a health strip, its source
/// `strip` (rows labelled here) stacked under the grid.
pub(super) fn video_graph(
    grid: &Grid,
    fps: u32,
    cells: &[Cell],
    strip: Option<&HealthStrip>,
    font: &str,
    texts: &mut TextFiles,
) -> Result<ff::filter::Graph, RenderError> {
    let (cols, cw, ch, slots) = (grid.cols, grid.cw, grid.ch, grid.slots);
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
    if let Some(s) = strip {
        let sargs = format!(
            "video_size={}x{}:pix_fmt={}:time_base=1/{fps}:pixel_aspect=1/1",
            s.w,
            s.height(),
            ff::ffi::AVPixelFormat::AV_PIX_FMT_YUV420P as i32
        );
        vg.add(&buffer, "strip", &sargs)
            .map_err(ffe("strip source"))?;
    }
    vg.add(&buffersink, "vout", "").map_err(ffe("video sink"))?;
    // The grid's own output: the sink, or the strip's stack.
    let grid_out = if strip.is_some() { "grid" } else { "vout" };
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
        spec.push_str(&format!("[c0]format=yuv420p[{grid_out}]"));
    } else {
        let layout: Vec<String> = (0..slots as u32)
            .map(|i| format!("{}_{}", (i % cols) * cw, (i / cols) * ch))
            .collect();
        for i in 0..slots {
            spec.push_str(&format!("[c{i}]"));
        }
        spec.push_str(&format!(
            "xstack=inputs={slots}:layout={},format=yuv420p[{grid_out}]",
            layout.join("|")
        ));
    }
    if let Some(s) = strip {
        spec.push_str(";[strip]");
        let fs = (HealthStrip::row_height() - 3).max(8);
        for (i, row) in s.rows.iter().enumerate() {
            let tf = texts.file(&row.label)?;
            let y = HealthStrip::row_y(i) + 1;
            spec.push_str(&format!(
                "drawtext=fontfile='{font}':textfile='{tf}':expansion=none:fontcolor=white:fontsize={fs}:x=6:y={y},"
            ));
        }
        spec.push_str("null[st];[grid][st]vstack=inputs=2,format=yuv420p[vout]");
    }
    {
        let mut p = vg.output("v0", 0).map_err(ffe("video graph"))?;
        for i in 1..slots {
            p = p.output(&format!("v{i}"), 0).map_err(ffe("video graph"))?;
        }
        if strip.is_some() {
            p = p.output("strip", 0).map_err(ffe("video graph"))?;
        }
        p.input("vout", 0)
            .and_then(|p| p.parse(&spec))
            .map_err(ffe(format!("video graph {spec}")))?;
    }
    vg.validate().map_err(ffe("video graph"))?;
    Ok(vg)
}

/// The audio graph: one `abuffer` source `a{i}` per audio track, mixed into the sink
/// `aout` (empty when there is no audio).
pub(super) fn audio_graph(na: usize) -> Result<ff::filter::Graph, RenderError> {
    let mut ag = ff::filter::Graph::new();
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
    Ok(ag)
}

/// The MP4 output and its opened encoders, streams added, header not yet written.
pub(super) struct Encoders {
    pub(super) octx: ff::format::context::Output,
    pub(super) venc: ff::encoder::Video,
    /// Which video encoder was found (`libx264` or `mpeg4`).
    pub(super) vname: &'static str,
    pub(super) vidx: usize,
    /// The AAC encoder and its stream, when there is audio.
    pub(super) aenc_opt: Option<(ff::encoder::Audio, usize)>,
}

impl Encoders {
    /// Creates `out` with a `w`x`h` video stream at `fps`, and a stereo 48 kHz audio
    /// stream when `audio`.
    pub(super) fn open(
        out: &Path,
        w: u32,
        h: u32,
        fps: u32,
        audio: bool,
    ) -> Result<Self, RenderError> {
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
        let venc = venc
            .open_as_with(vcodec, vopts)
            .map_err(ffe("open video encoder"))?;
        let vidx = {
            let mut st = octx.add_stream(vcodec).map_err(ffe("video stream"))?;
            st.set_parameters(&venc);
            st.set_time_base(Rational::new(1, fps as i32));
            st.index()
        };
        let mut aenc_opt = None;
        if audio {
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
        Ok(Encoders {
            octx,
            venc,
            vname,
            vidx,
            aenc_opt,
        })
    }
}

/// Gives a buffer source a new reference to `f`, leaving `f` intact
/// (`Source::add` uses `av_buffersrc_add_frame`, which takes the frame's data away).
pub(super) fn push_ref(src: &mut ff::filter::Context, f: &frame::Video) -> Result<(), ff::Error> {
    // SAFETY: both pointers are live for the call; av_buffersrc_write_frame only
    // reads `f` and adds a reference to its buffers (copying if not ref-counted).
    let r = unsafe { ff::ffi::av_buffersrc_write_frame(src.as_mut_ptr(), f.as_ptr()) };
    if r < 0 {
        Err(ff::Error::from(r))
    } else {
        Ok(())
    }
}
