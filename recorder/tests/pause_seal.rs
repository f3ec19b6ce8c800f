//! Pause/resume and server-declared gaps (with the render's gap slate), hearing
//! events, a recorder dropped without close, and a torn journal line at sealing.

mod support;

use std::io::Write;
use std::time::Duration;

use openhearing_recorder::journal::Entry;
use openhearing_recorder::render::{render, Progress, RenderOptions};
use openhearing_recorder::{
    seal_interrupted, verify, ArchiveKey, Codec, EventKind, GapCause, GapRecord, HearingEvent,
    HearingRecorder, Problem, PushError, RecorderConfig,
};
use support::*;

fn key() -> ArchiveKey {
    ArchiveKey::from_seed([4u8; 32])
}

fn plan_packet() -> openhearing_recorder::RtpPacket {
    openhearing_recorder::RtpPacket {
        ssrc: 3,
        seq: 1,
        timestamp: 0,
        marker: true,
        payload_type: 111,
        payload: bytes::Bytes::from_static(&[0xfc, 0, 0]),
        arrival: std::time::SystemTime::now(),
    }
}

#[test]
fn recorder_and_handle_can_be_shared_across_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<HearingRecorder>();
    send_sync::<openhearing_recorder::TrackPush>();
}

fn split_at(items: Vec<Timed>, start: i64, cut_us: i64) -> (Vec<Timed>, Vec<Timed>) {
    items.into_iter().partition(|t| {
        t.arrival
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64)
            - start
            < cut_us
    })
}

#[test]
fn pause_resume_events_and_a_private_room_gap_are_journaled_and_rendered() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let m = tmp.path();
    let video = read_clip(&make_vp8(m, "v", "color=c=white:s=320x240:r=30:d=6"));
    let audio = read_clip(&make_opus(m, "a", "sine=f=300:r=48000:d=6"));
    let mut cfg = RecorderConfig::new(m.join("rec"));
    cfg.segment_seconds = 10;
    let rec = HearingRecorder::open(cfg, key(), hearing("pause"), |_| {}).expect("open");
    rec.add_track(
        track("cam", "p", "Lê Thị C", "defence_counsel", Codec::Vp8),
        || {},
    )
    .expect("add");
    rec.add_track(
        track("mic", "p", "Lê Thị C", "defence_counsel", Codec::Opus),
        || {},
    )
    .expect("add");
    let start = now_us() - 50_000_000;
    let plan = |track: &str, codec, frames: &Vec<ClipFrame>, ssrc| SendPlan {
        track: track.into(),
        codec,
        frames: frames.clone(),
        capture_start_us: start,
        delay: Duration::from_millis(25),
        ssrc,
        ts_base: 1_000 * ssrc,
        seq_base: 100,
    };
    let cam = plan("cam", Codec::Vp8, &video, 1).packets();
    let mic = plan("mic", Codec::Opus, &audio, 2).packets();
    let (cam_a, cam_rest) = split_at(cam, start, 2_000_000);
    let (_cam_private, cam_c) = split_at(cam_rest, start, 4_000_000);
    let (mic_a, mic_c) = split_at(mic, start, 2_000_000);
    let mut first: Vec<Timed> = cam_a.into_iter().chain(mic_a).collect();
    first.sort_by_key(|t| t.arrival);
    deliver(&rec, first);
    // The participant goes into a private room for 2 s: the SFU stops forwarding
    // their camera to the recorder (remove, then add again) and the server says why.
    rec.remove_track("cam", "private_room").expect("remove");
    let at = |us: i64| openhearing_recorder::timing::us_to_datetime(us);
    rec.gap(GapRecord {
        track_id: Some("cam".into()),
        from: at(start + 2_000_000),
        to: at(start + 4_000_000),
        cause: GapCause::PrivateRoom,
        count: 0,
    })
    .expect("gap");
    rec.event(HearingEvent {
        at: at(start + 2_000_000),
        kind: EventKind::PrivateRoomEntered,
        actor: Some("p".into()),
        subject: None,
        details: serde_json::json!({"room": "counsel"}),
    })
    .expect("event");
    rec.add_track(
        track("cam", "p", "Lê Thị C", "defence_counsel", Codec::Vp8),
        || {},
    )
    .expect("re-add");
    let mut rest: Vec<Timed> = cam_c.into_iter().chain(mic_c).collect();
    rest.sort_by_key(|t| t.arrival);
    deliver(&rec, rest);
    // Suspended: packets are refused while paused.
    rec.pause("recess").expect("pause");
    let p = plan("mic", Codec::Opus, &audio, 2)
        .packets()
        .into_iter()
        .next()
        .expect("pkt");
    if let Item::Rtp(pkt) = p.what {
        assert_eq!(rec.push_rtp("mic", pkt), Err(PushError::Paused));
    }
    rec.resume().expect("resume");
    let dir = rec.dir().to_path_buf();
    rec.close(Default::default()).expect("close");

    let lines = journal_lines(&dir);
    let types: Vec<&str> = lines.iter().map(|l| l.entry.type_name()).collect();
    for t in [
        "track_removed",
        "event",
        "paused",
        "resumed",
        "archive_closed",
    ] {
        assert!(types.contains(&t), "no {t} entry: {types:?}");
    }
    let g = gaps(&lines);
    assert!(g.iter().any(|g| g.cause == GapCause::PrivateRoom));
    assert!(g
        .iter()
        .any(|g| g.cause == GapCause::Paused && g.track_id.is_none()));
    let segs = segments(&lines);
    let cams: Vec<_> = segs.iter().filter(|s| s.track_id == "cam").collect();
    assert_eq!(cams.len(), 2, "camera before and after the private room");
    assert_ne!(cams[0].file, cams[1].file);
    assert!(verify(&dir, Some(&key().verifying_key())).ok());

    // In the render the camera's cell is white, then the dark slate, then white.
    let out = m.join("r.mp4");
    render(
        &dir,
        &out,
        &RenderOptions {
            width: 320,
            height: 240,
            fps: 10,
            progress: Progress::Hidden,
            health_strip: false,
        },
    )
    .expect("render");
    if let Ok(keep) = std::env::var("RECORDER_KEEP_RENDER") {
        std::fs::copy(&out, keep).expect("keep");
    }
    let luma_at = |t: &str| -> f64 {
        let png = m.join(format!("f{t}.gray"));
        let st = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-ss", t, "-i"])
            .arg(&out)
            .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray"])
            .arg(&png)
            .status()
            .expect("ffmpeg");
        assert!(st.success());
        let data = std::fs::read(&png).expect("frame");
        // Upper half only: the label sits at the bottom.
        let half = &data[..data.len() / 2];
        half.iter().map(|&b| f64::from(b)).sum::<f64>() / half.len() as f64
    };
    let (before, during, after) = (luma_at("1.0"), luma_at("3.0"), luma_at("5.0"));
    assert!(
        before > 200.0 && after > 200.0,
        "video luma {before} / {after}"
    );
    assert!(during < 80.0, "gap slate luma {during}");
}

#[test]
fn dropped_recorder_and_torn_journal_line_seal_and_verify_as_interrupted() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let audio = read_clip(&make_opus(tmp.path(), "a", "sine=f=440:r=48000:d=3"));
    let mut cfg = RecorderConfig::new(tmp.path().join("rec"));
    cfg.segment_seconds = 1;
    let rec = HearingRecorder::open(cfg, key(), hearing("torn"), |_| {}).expect("open");
    let handle = rec
        .add_track(track("mic", "p", "P", "witness", Codec::Opus), || {})
        .expect("add");
    let plan = SendPlan {
        track: "mic".into(),
        codec: Codec::Opus,
        frames: audio,
        capture_start_us: now_us() - 10_000_000,
        delay: Duration::from_millis(5),
        ssrc: 3,
        ts_base: 0,
        seq_base: 0,
    };
    deliver(&rec, schedule(&[plan]));
    let dir = rec.dir().to_path_buf();
    // A media-path handle still alive must not keep the writer (or the drop) waiting.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(rec); // no close: open segments are finished, no manifest is written
        let _ = done_tx.send(());
    });
    done_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("dropping the recorder finished");
    let late = plan_packet();
    assert_eq!(handle.push_rtp(late), Err(PushError::WriterStopped));
    let before = verify(&dir, Some(&key().verifying_key()));
    assert_eq!(before.problems, vec![Problem::NotSealed], "{before}");
    // A write cut in the middle of a line, as a power loss would leave it.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("journal.jsonl"))
        .expect("open");
    f.write_all(b"{\"at\":\"2026-01-01T00:00:00Z\",\"seq\":99,\"ty")
        .expect("write");
    drop(f);
    let outcome = seal_interrupted(&dir, &key()).expect("seal");
    let lines = journal_lines(&dir);
    let Some(Entry::ArchiveSealedInterrupted { torn_tail, .. }) = lines.last().map(|l| &l.entry)
    else {
        panic!("last entry is not the seal");
    };
    assert_eq!(
        torn_tail.as_ref().map(|t| t.file.as_str()),
        Some("journal.torn")
    );
    assert!(segments(&lines).len() >= 3);
    let after = verify(&dir, Some(&key().verifying_key()));
    assert_eq!(
        after.problems,
        vec![Problem::Interrupted {
            cut_at: outcome.cut_at,
            last_seq: outcome.last_seq
        }],
        "{after}"
    );
    // The torn bytes are evidence: changing them is detected.
    std::fs::write(dir.join("journal.torn"), b"something else").expect("write");
    let p = verify(&dir, Some(&key().verifying_key())).problems;
    assert!(
        p.contains(&Problem::FileAltered("journal.torn".into())),
        "{p:?}"
    );
}
