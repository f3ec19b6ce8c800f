//! Test 2 of the recorder, through the server: two participants send a sync pattern
//! (a white frame and a tone burst at the same instants of their clips) over WebRTC;
//! the hearing is recorded, the archive rendered to one MP4, and in that MP4 the
//! white frame and the tone stay within 40 ms of each other, and the two
//! participants' white frames within 80 ms.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use ffmpeg_next as ff;
use openhearing_peer::{JoinOptions, MediaFixtures, Participant};
use openhearing_signaling::HearingState;

/// (first flash in the left cell, in the right cell, first tone onset), seconds.
fn measure(path: &Path) -> (f64, f64, f64) {
    ff::init().expect("ffmpeg");
    let mut ictx = ff::format::input(path).expect("open the render");
    let vst = ictx
        .streams()
        .best(ff::media::Type::Video)
        .expect("video stream");
    let ast = ictx
        .streams()
        .best(ff::media::Type::Audio)
        .expect("audio stream");
    let (vi, vtb, ai, atb) = (vst.index(), vst.time_base(), ast.index(), ast.time_base());
    let mut vdec = ff::codec::context::Context::from_parameters(vst.parameters())
        .and_then(|c| c.decoder().video())
        .expect("video decoder");
    let mut adec = ff::codec::context::Context::from_parameters(ast.parameters())
        .and_then(|c| c.decoder().audio())
        .expect("audio decoder");
    let secs = |ts: i64, tb: ff::Rational| {
        ts as f64 * f64::from(tb.numerator()) / f64::from(tb.denominator())
    };
    // (time, mean luma of the left half, of the right half)
    let mut lumas: Vec<(f64, f64, f64)> = Vec::new();
    let mut onset: Option<f64> = None;
    let on_video = |dec: &mut ff::decoder::Video, lumas: &mut Vec<(f64, f64, f64)>| {
        let mut f = ff::frame::Video::empty();
        while dec.receive_frame(&mut f).is_ok() {
            let t = secs(f.timestamp().unwrap_or(0), vtb);
            let (w, h, stride) = (f.width() as usize, f.height() as usize, f.stride(0));
            let data = f.data(0);
            let (mut l, mut r) = (0u64, 0u64);
            for y in 0..h {
                let row = &data[y * stride..y * stride + w];
                l += row[..w / 2].iter().map(|&b| u64::from(b)).sum::<u64>();
                r += row[w / 2..].iter().map(|&b| u64::from(b)).sum::<u64>();
            }
            let half = ((w / 2) * h) as f64;
            lumas.push((t, l as f64 / half, r as f64 / half));
        }
    };
    let on_audio = |dec: &mut ff::decoder::Audio, onset: &mut Option<f64>| {
        let mut f = ff::frame::Audio::empty();
        while dec.receive_frame(&mut f).is_ok() {
            if onset.is_some() {
                continue;
            }
            let t = secs(f.timestamp().unwrap_or(0), atb);
            let n = f.samples();
            let rate = f64::from(f.rate());
            let samples = &f.plane::<f32>(0)[..n];
            if let Some(i) = samples.iter().position(|x| x.abs() > 0.2) {
                *onset = Some(t + i as f64 / rate);
            }
        }
    };
    for (st, pkt) in ictx.packets() {
        if st.index() == vi {
            vdec.send_packet(&pkt).expect("video packet");
            on_video(&mut vdec, &mut lumas);
        } else if st.index() == ai {
            adec.send_packet(&pkt).expect("audio packet");
            on_audio(&mut adec, &mut onset);
        }
    }
    let _ = vdec.send_eof();
    on_video(&mut vdec, &mut lumas);
    let _ = adec.send_eof();
    on_audio(&mut adec, &mut onset);
    lumas.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Baseline: the darkest the cells get (black video, labels included).
    let base_l = lumas.iter().map(|x| x.1).fold(f64::MAX, f64::min);
    let base_r = lumas.iter().map(|x| x.2).fold(f64::MAX, f64::min);
    let flash = |pick: &dyn Fn(&(f64, f64, f64)) -> f64, base: f64| {
        lumas
            .iter()
            .find(|x| pick(x) > base + 40.0)
            .map(|x| x.0)
            .expect("a white frame in the render")
    };
    (
        flash(&|x| x.1, base_l),
        flash(&|x| x.2, base_r),
        onset.expect("a tone burst in the render"),
    )
}

/// The render at `path` once it is complete (the server writes it after closing).
fn measure_if_ready(path: &Path) -> Option<()> {
    (ffprobe_duration(path)? > 5.0).then_some(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_and_video_stay_in_sync_through_the_server() {
    // The server also renders the archive itself once the hearing closes.
    let server =
        TestServer::start_with(43800, 43849, "[recording]\nrender_after_close = true\n").await;
    let hearing = server
        .create_hearing(&[
            ("Nguyễn Văn A", "presiding_judge", "Phòng xử án 1"),
            ("Hoàng E", "prosecutor", "Viện kiểm sát"),
        ])
        .await;
    let sync = Arc::new(
        MediaFixtures::generate_sync(&std::env::temp_dir().join("openhearing-test-fixtures"))
            .expect("ffmpeg makes the sync clips"),
    );
    let mut people: Vec<Participant> = Vec::new();
    for role in ["presiding_judge", "prosecutor"] {
        let p = Participant::join(
            &server.ws_url(hearing.hearing_id),
            &hearing.by_role(role).token(),
            JoinOptions {
                publish: true,
                fixtures: Some(sync.clone()),
                ..Default::default()
            },
        )
        .await
        .expect("join");
        people.push(p);
    }
    let judge = &people[0];
    open_session(judge).await;
    // Recording is running before anything is sent, so the first flash (1 s into
    // the clip) is in the record.
    wait_event(judge, "recording", |m| {
        matches!(m, openhearing_signaling::ServerMessage::HearingStatus { status } if status.recording)
    })
    .await;
    for p in &people {
        p.start_publishing().await.expect("publish");
    }
    tokio::time::sleep(Duration::from_secs(7)).await;
    send(judge, set_state(HearingState::Closed, None));
    let dir = server
        .dir
        .join("recordings")
        .join(hearing.hearing_id.to_string());
    let start = Instant::now();
    while !dir.join("manifest.sig").exists() {
        assert!(start.elapsed() < MEDIA_WAIT, "archive not closed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = server.dir.join("render.mp4");
    let status = Command::new(env!("CARGO_BIN_EXE_openhearing"))
        .args(["archive", "render"])
        .arg(&dir)
        .arg("-o")
        .arg(&out)
        .args(["--width", "640", "--height", "360"])
        .status()
        .expect("openhearing runs");
    assert!(status.success(), "render");
    let (left, right, tone) = measure(&out);
    // The automatic render (next to the archive) is there too, and shows the same.
    let auto = dir.with_extension("mp4");
    let start = Instant::now();
    while measure_if_ready(&auto).is_none() {
        assert!(
            start.elapsed() < MEDIA_WAIT,
            "no automatic render at {}",
            auto.display()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (al, ar, at) = measure(&auto);
    assert!((al.min(ar) - at).abs() <= 0.040, "automatic render in sync");
    let first_flash = left.min(right);
    eprintln!("render: flash left {left:.3} s, right {right:.3} s, tone {tone:.3} s");
    assert!(
        (first_flash - tone).abs() <= 0.040,
        "A/V offset {:.1} ms (flash {first_flash:.3} s, tone {tone:.3} s)",
        (first_flash - tone) * 1000.0
    );
    assert!(
        (left - right).abs() <= 0.080,
        "participants {:.1} ms apart (left {left:.3} s, right {right:.3} s)",
        (left - right) * 1000.0
    );
    server.stop().await;
}
