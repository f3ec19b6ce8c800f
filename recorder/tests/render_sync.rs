//! Sync: participant A's camera shows a white frame and participant B's microphone
//! a tone burst at the same wall-clock instant (their captures started 0.5 s apart,
//! with different RTP bases and network delays). After `render`, the brightness jump
//! and the audio onset in the MP4 must be at most 40 ms apart.

mod support;

use std::time::Duration;

use ffmpeg_next as ff;
use openhearing_recorder::render::{render, Progress, RenderOptions};
use openhearing_recorder::{verify, ArchiveKey, Codec, HearingRecorder, RecorderConfig};
use support::*;

fn measure(path: &std::path::Path) -> (f64, f64, f64) {
    ff::init().expect("init");
    let mut ictx = ff::format::input(path).expect("open render");
    let vst = ictx.streams().best(ff::media::Type::Video).expect("video");
    let ast = ictx.streams().best(ff::media::Type::Audio).expect("audio");
    let (vi, vtb) = (vst.index(), vst.time_base());
    let (ai, atb) = (ast.index(), ast.time_base());
    let mut vdec = ff::codec::context::Context::from_parameters(vst.parameters())
        .expect("ctx")
        .decoder()
        .video()
        .expect("vdec");
    let mut adec = ff::codec::context::Context::from_parameters(ast.parameters())
        .expect("ctx")
        .decoder()
        .audio()
        .expect("adec");
    let tb = |r: ff::Rational| f64::from(r.numerator()) / f64::from(r.denominator());
    let mut lumas: Vec<(f64, f64)> = Vec::new();
    let mut onset: Option<f64> = None;
    let mut duration = 0.0f64;
    let handle_v = |dec: &mut ff::decoder::Video, lumas: &mut Vec<(f64, f64)>| {
        let mut f = ff::frame::Video::empty();
        while dec.receive_frame(&mut f).is_ok() {
            let t = f.timestamp().unwrap_or(0) as f64 * tb(vtb);
            let (w, h, s) = (f.width() as usize, f.height() as usize, f.stride(0));
            let data = f.data(0);
            let mut sum = 0u64;
            for y in 0..h {
                sum += data[y * s..y * s + w]
                    .iter()
                    .map(|&b| u64::from(b))
                    .sum::<u64>();
            }
            lumas.push((t, sum as f64 / (w * h) as f64));
        }
    };
    let handle_a = |dec: &mut ff::decoder::Audio, onset: &mut Option<f64>, duration: &mut f64| {
        let mut f = ff::frame::Audio::empty();
        while dec.receive_frame(&mut f).is_ok() {
            let t = f.timestamp().unwrap_or(0) as f64 * tb(atb);
            let n = f.samples();
            *duration = duration.max(t + n as f64 / 48_000.0);
            if onset.is_none() {
                let l = &f.plane::<f32>(0)[..n];
                if let Some(i) = l.iter().position(|x| x.abs() > 0.2) {
                    *onset = Some(t + i as f64 / 48_000.0);
                }
            }
        }
    };
    for (st, pkt) in ictx.packets() {
        if st.index() == vi {
            vdec.send_packet(&pkt).expect("send");
            handle_v(&mut vdec, &mut lumas);
        } else if st.index() == ai {
            adec.send_packet(&pkt).expect("send");
            handle_a(&mut adec, &mut onset, &mut duration);
        }
    }
    vdec.send_eof().expect("eof");
    handle_v(&mut vdec, &mut lumas);
    adec.send_eof().expect("eof");
    handle_a(&mut adec, &mut onset, &mut duration);
    lumas.sort_by(|a, b| a.0.total_cmp(&b.0));
    let base = lumas.get(5).map(|l| l.1).expect("frames");
    let flash = lumas
        .iter()
        .find(|(_, l)| *l > base + 25.0)
        .map(|(t, _)| *t)
        .expect("no brightness jump found in the render");
    (
        flash,
        onset.expect("no audio onset found in the render"),
        lumas.len() as f64,
    )
}

#[test]
fn white_frame_and_tone_burst_stay_within_40_ms_after_render() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let m = tmp.path();
    let gray = "color=c=0x404040:s=320x240:r=30:d=6";
    let va = read_clip(&make_vp8(
        m,
        "va",
        &format!("{gray},drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='between(t,3,3.2)'"),
    ));
    let vb = read_clip(&make_vp8(m, "vb", gray));
    let aa = read_clip(&make_opus(m, "aa", "anullsrc=r=48000:cl=mono:d=6"));
    // B started capturing 0.5 s after A, so B's burst at clip time 2.5 s is A's 3.0 s.
    let ab = read_clip(&make_opus(
        m,
        "ab",
        "aevalsrc='if(between(t,2.5,2.7),0.8*sin(2*PI*1000*t),0)':s=48000:d=6",
    ));
    let (key, rec) = two_party_recorder(m, 1, "sync");
    let start_a = now_us() - 100_000_000;
    let start_b = start_a + 500_000;
    let plan = |track: &str, codec, frames: &Vec<ClipFrame>, start, delay_ms, ssrc: u32| SendPlan {
        track: track.into(),
        codec,
        frames: frames.clone(),
        capture_start_us: start,
        delay: Duration::from_millis(delay_ms),
        ssrc,
        ts_base: ssrc.wrapping_mul(2_654_435_761),
        seq_base: ssrc as u16,
    };
    let items = schedule(&[
        plan("a-cam", Codec::Vp8, &va, start_a, 120, 1),
        plan("a-mic", Codec::Opus, &aa, start_a, 40, 2),
        plan("b-cam", Codec::Vp8, &vb, start_b, 70, 3),
        plan("b-mic", Codec::Opus, &ab, start_b, 15, 4),
    ]);
    deliver(&rec, items);
    let dir = rec.dir().to_path_buf();
    rec.close(Default::default()).expect("close");
    assert!(verify(&dir, Some(&key.verifying_key())).ok());

    let out = m.join("hearing.mp4");
    let report = render(
        &dir,
        &out,
        &RenderOptions {
            width: 640,
            height: 240,
            fps: 30,
            progress: Progress::Hidden,
            health_strip: false,
        },
    )
    .expect("render");
    assert_eq!(report.cells, 2);
    assert_eq!(report.audio_tracks, 2);
    if let Ok(keep) = std::env::var("RECORDER_KEEP_RENDER") {
        std::fs::copy(&out, keep).expect("keep render");
    }
    let errs = decode_errors(&out);
    assert!(errs.trim().is_empty(), "{errs}");
    let (flash, onset, frames) = measure(&out);
    eprintln!("flash at {flash:.3} s, tone at {onset:.3} s, {frames} frames");
    // The flash is 3.0 s after A's start, which is where the render starts.
    assert!((flash - 3.0).abs() <= 0.05, "flash at {flash}");
    assert!(
        (flash - onset).abs() <= 0.040,
        "A/V offset {:.1} ms (flash {flash:.3} s, tone {onset:.3} s)",
        (flash - onset) * 1000.0
    );
    // Whole hearing: from A's start to B's end (0.5 s later), at 30 fps.
    let d = probe_duration(&out);
    assert!((d - 6.5).abs() <= 0.2, "render duration {d}");
}

/// CPU time of this process so far (Linux /proc), in seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// Not a pass/fail test: prints recorder CPU per stream and render speed for four
/// 720p participants. Run with
/// `cargo test --release -p openhearing-recorder --test render_sync -- --ignored --nocapture`.
#[test]
#[ignore = "benchmark; prints numbers, asserts nothing about speed"]
fn bench_four_party_720p() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let m = tmp.path();
    let secs = 20;
    let v = read_clip(&make_vp8_rate(
        m,
        "v",
        &format!("testsrc2=s=1280x720:r=30:d={secs}"),
        "1500k",
    ));
    let a = read_clip(&make_opus(m, "a", &format!("sine=f=440:r=48000:d={secs}")));
    let key = ArchiveKey::from_seed([8u8; 32]);
    let rec = HearingRecorder::open(
        RecorderConfig::new(m.join("rec")),
        key,
        hearing("bench"),
        |_| {},
    )
    .expect("open");
    let start = now_us() - 100_000_000;
    let mut plans = Vec::new();
    for p in 0..4u32 {
        for (codec, frames) in [(Codec::Vp8, &v), (Codec::Opus, &a)] {
            let id = format!("p{p}-{codec:?}");
            rec.add_track(
                track(
                    &id,
                    &format!("p{p}"),
                    &format!("Person {p}"),
                    "witness",
                    codec,
                ),
                || {},
            )
            .expect("add");
            plans.push(SendPlan {
                track: id,
                codec,
                frames: frames.clone(),
                capture_start_us: start,
                delay: Duration::from_millis(20),
                ssrc: 100 + plans.len() as u32,
                ts_base: 0,
                seq_base: 0,
            });
        }
    }
    let items = schedule(&plans);
    let cpu0 = cpu_seconds();
    let t0 = std::time::Instant::now();
    deliver(&rec, items);
    let dir = rec.dir().to_path_buf();
    rec.close(Default::default()).expect("close");
    let cpu = cpu_seconds() - cpu0;
    eprintln!(
        "record: 4 x (VP8 1.5 Mbps + Opus), {secs} s of media: {cpu:.2} s CPU, {:.2} s wall; \
         {:.2}% of a core per VP8+Opus stream",
        t0.elapsed().as_secs_f64(),
        cpu / f64::from(secs) / 4.0 * 100.0
    );
    let cpu0 = cpu_seconds();
    let t0 = std::time::Instant::now();
    let r = render(
        &dir,
        &m.join("b.mp4"),
        &RenderOptions {
            progress: Progress::Hidden,
            ..Default::default()
        },
    )
    .expect("render");
    let el = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    eprintln!(
        "render: {:.1} s of 1280x720 with {} cells in {el:.1} s = {:.2}x real time ({}); \
         {cpu:.1} CPU-s, i.e. {:.2}x real time if 2 cores were free",
        r.duration_s,
        r.cells,
        r.duration_s / el,
        r.video_encoder,
        r.duration_s / (cpu / 2.0)
    );
}
