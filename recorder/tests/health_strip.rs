//! `archive render --health-strip` (issue 15): an archive whose journal says A's
//! picture reached B `ok` and then was `lost` 3 s in, and B's sound reached A `ok`
//! throughout. The rendered MP4 is decoded and the strip's pixels read: before the
//! loss the row shows green up to the cursor and nothing beyond it; after the loss
//! the same row shows red from the loss on while B's sound row stays green; without
//! the option the picture has no strip at all.

mod support;

use chrono::{DateTime, Utc};
use ffmpeg_next as ff;
use openhearing_recorder::render::strip::HealthStrip;
use openhearing_recorder::render::{render, Progress, RenderOptions, RenderReport};
use openhearing_recorder::{verify, Codec, EventKind, HearingEvent};
use support::*;

/// Decoded frames as (seconds from the start, Y plane, V plane, width, strides).
struct Frame {
    t: f64,
    y: Vec<u8>,
    v: Vec<u8>,
    w: usize,
    h: usize,
    ys: usize,
    vs: usize,
}

impl Frame {
    /// Mean luma and red-difference chroma of the 4×4 block at (`x`, `y`).
    fn at(&self, x: u32, y: u32) -> (f64, f64) {
        let (x, y) = (x as usize, y as usize);
        let (mut ly, mut lv) = (0.0, 0.0);
        for dy in 0..4 {
            for dx in 0..4 {
                ly += f64::from(self.y[(y + dy) * self.ys + x + dx]);
                lv += f64::from(self.v[((y + dy) / 2) * self.vs + (x + dx) / 2]);
            }
        }
        (ly / 16.0, lv / 16.0)
    }
}

fn frames(path: &std::path::Path) -> Vec<Frame> {
    ff::init().expect("init");
    let mut ictx = ff::format::input(path).expect("open render");
    let vst = ictx.streams().best(ff::media::Type::Video).expect("video");
    let (vi, tb) = (vst.index(), vst.time_base());
    let tb = f64::from(tb.numerator()) / f64::from(tb.denominator());
    let mut dec = ff::codec::context::Context::from_parameters(vst.parameters())
        .expect("ctx")
        .decoder()
        .video()
        .expect("vdec");
    let mut out = Vec::new();
    let take = |dec: &mut ff::decoder::Video, out: &mut Vec<Frame>| {
        let mut f = ff::frame::Video::empty();
        while dec.receive_frame(&mut f).is_ok() {
            assert_eq!(f.format(), ff::format::Pixel::YUV420P);
            out.push(Frame {
                t: f.timestamp().unwrap_or(0) as f64 * tb,
                y: f.data(0).to_vec(),
                v: f.data(2).to_vec(),
                w: f.width() as usize,
                h: f.height() as usize,
                ys: f.stride(0),
                vs: f.stride(2),
            });
        }
    };
    for (st, pkt) in ictx.packets() {
        if st.index() == vi {
            dec.send_packet(&pkt).expect("send");
            take(&mut dec, &mut out);
        }
    }
    dec.send_eof().expect("eof");
    take(&mut dec, &mut out);
    out.sort_by(|a, b| a.t.total_cmp(&b.t));
    out
}

fn at_us(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).expect("a time")
}

fn health(at: i64, publisher: &str, subscriber: &str, kind: &str, to: &str) -> HearingEvent {
    HearingEvent {
        at: at_us(at),
        kind: EventKind::MediaHealth,
        actor: Some("system".into()),
        subject: Some(subscriber.into()),
        details: serde_json::json!({
            "publisher": publisher, "subscriber": subscriber, "kind": kind,
            "from": null, "to": to, "cause": "test",
        }),
    }
}

/// Records A and B for 6 s with the health events above; renders with and without
/// the strip.
fn record_and_render(m: &std::path::Path) -> (std::path::PathBuf, RenderReport, RenderReport) {
    let gray = "color=c=0x404040:s=320x240:r=30:d=6";
    let va = read_clip(&make_vp8(m, "va", gray));
    let vb = read_clip(&make_vp8(m, "vb", gray));
    let aa = read_clip(&make_opus(m, "aa", "anullsrc=r=48000:cl=mono:d=6"));
    let ab = read_clip(&make_opus(m, "ab", "anullsrc=r=48000:cl=mono:d=6"));
    let (key, rec) = two_party_recorder(m, 3, "strip");
    let start = now_us() - 100_000_000;
    rec.event(health(start + 200_000, "a", "b", "video", "ok"))
        .expect("event");
    rec.event(health(start + 200_000, "b", "a", "audio", "ok"))
        .expect("event");
    rec.event(health(start + 3_000_000, "a", "b", "video", "lost"))
        .expect("event");
    let plan = |track: &str, codec, frames: &Vec<ClipFrame>, ssrc: u32| SendPlan {
        track: track.into(),
        codec,
        frames: frames.clone(),
        capture_start_us: start,
        delay: std::time::Duration::from_millis(20),
        ssrc,
        ts_base: ssrc.wrapping_mul(2_654_435_761),
        seq_base: ssrc as u16,
    };
    deliver(
        &rec,
        schedule(&[
            plan("a-cam", Codec::Vp8, &va, 1),
            plan("a-mic", Codec::Opus, &aa, 2),
            plan("b-cam", Codec::Vp8, &vb, 3),
            plan("b-mic", Codec::Opus, &ab, 4),
        ]),
    );
    let dir = rec.dir().to_path_buf();
    rec.close(Default::default()).expect("close");
    assert!(verify(&dir, Some(&key.verifying_key())).ok());
    let opts = |health_strip| RenderOptions {
        width: 640,
        height: 240,
        fps: 30,
        progress: Progress::Hidden,
        health_strip,
    };
    let with = render(&dir, &m.join("strip.mp4"), &opts(true)).expect("render with strip");
    let without = render(&dir, &m.join("plain.mp4"), &opts(false)).expect("render");
    (dir, with, without)
}

#[test]
fn the_health_strip_shows_the_loss_from_its_instant() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let m = tmp.path();
    let (_dir, with, without) = record_and_render(m);
    assert!(without.strip.is_none());
    let plain = frames(&m.join("plain.mp4"));
    assert_eq!(
        (plain[0].w, plain[0].h),
        (640, 240),
        "no strip without the option"
    );

    let strip: &HealthStrip = with.strip.as_ref().expect("the journal has health events");
    assert_eq!(strip.rows.len(), 2);
    assert_eq!(strip.rows[0].label, "Nguyễn Văn A → Trần Văn B · video");
    assert_eq!(strip.rows[1].label, "Trần Văn B → Nguyễn Văn A · audio");
    let errs = decode_errors(&m.join("strip.mp4"));
    assert!(errs.trim().is_empty(), "{errs}");
    if let Ok(keep) = std::env::var("RECORDER_KEEP_RENDER") {
        std::fs::copy(m.join("strip.mp4"), keep).expect("keep render");
    }
    let fs = frames(&m.join("strip.mp4"));
    let (w, h) = (fs[0].w, fs[0].h);
    assert_eq!(w, 640);
    assert_eq!(
        h as u32,
        with.grid_height + strip.height(),
        "the strip is under the grid"
    );
    assert_eq!(with.grid_height, 240);

    let t0 = with.start_us;
    // The wall time of the render's `s` seconds, and where the strip shows it.
    let x = |s: f64| strip.x_of(t0 + (s * 1e6) as i64);
    let row = |i: usize| with.grid_height + HealthStrip::row_y(i) + 4;
    let frame_at = |s: f64| {
        fs.iter()
            .min_by(|a, b| (a.t - s).abs().total_cmp(&(b.t - s).abs()))
            .expect("frames")
    };
    let start = 0.0; // the capture started at the render's start (20 ms later at most)
    let (lost_at, before, after) = (start + 3.0, frame_at(2.2), frame_at(5.2));
    let red = |(y, v): (f64, f64)| v > 180.0 && y < 110.0;
    let green = |(y, v): (f64, f64)| v < 110.0 && y > 80.0;
    let future = |(y, v): (f64, f64)| y < 45.0 && (v - 128.0).abs() < 12.0;

    // Before the loss: green up to the cursor, dark after it.
    let p = before.at(x(1.8), row(0));
    assert!(green(p), "A→B video before the loss, at 1.8 s: {p:?}");
    let p = before.at(x(4.0), row(0));
    assert!(
        future(p),
        "not yet painted at 4 s in the frame of 2.2 s: {p:?}"
    );
    // After it: red from the loss on, green before it; B's sound green all along.
    let p = after.at(x(lost_at + 1.0), row(0));
    assert!(
        red(p),
        "A→B video lost at 4 s, in the frame of 5.2 s: {p:?}"
    );
    let p = after.at(x(1.8), row(0));
    assert!(green(p), "A→B video still ok at 1.8 s: {p:?}");
    let p = after.at(x(lost_at + 1.0), row(1));
    assert!(green(p), "B→A audio ok at 4 s: {p:?}");
    eprintln!(
        "strip {}x{} under a {}-high grid; rows: {:?}",
        w,
        strip.height(),
        with.grid_height,
        strip.rows.iter().map(|r| &r.label).collect::<Vec<_>>()
    );
}
