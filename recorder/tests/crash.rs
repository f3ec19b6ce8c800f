//! kill -9 mid-recording: the test re-runs its own binary as a child that records,
//! kills it with SIGKILL once segments are closed, then checks that what was closed
//! verifies, that the archive is sealed as interrupted, and that verify says exactly that.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use openhearing_recorder::{
    scan_and_seal, verify, ArchiveKey, Codec, HearingRecorder, Problem, RecorderConfig,
};
use support::*;

const ENV_DIR: &str = "RECORDER_CRASH_CHILD_ROOT";

fn key() -> ArchiveKey {
    ArchiveKey::from_seed([3u8; 32])
}

/// The child: records paced media until killed. Run only by the test below.
#[test]
#[ignore = "child process of killed_mid_recording_is_sealed_as_interrupted"]
fn crash_child() {
    let Ok(root) = std::env::var(ENV_DIR) else {
        return;
    };
    let root = PathBuf::from(root);
    let media = root.join("media");
    std::fs::create_dir_all(&media).expect("mkdir");
    let video = read_clip(&make_vp8(&media, "v", "testsrc=s=320x240:r=30:d=20"));
    let audio = read_clip(&make_opus(&media, "a", "sine=f=440:r=48000:d=20"));
    let mut cfg = RecorderConfig::new(root.join("rec"));
    cfg.segment_seconds = 1;
    let rec = HearingRecorder::open(cfg, key(), hearing("crash-1"), |_| {}).expect("open");
    rec.add_track(
        track("cam", "judge", "Judge", "presiding_judge", Codec::Vp8),
        || {},
    )
    .expect("add");
    rec.add_track(
        track("mic", "judge", "Judge", "presiding_judge", Codec::Opus),
        || {},
    )
    .expect("add");
    let start = now_us();
    let plans = vec![
        SendPlan {
            track: "cam".into(),
            codec: Codec::Vp8,
            frames: video,
            capture_start_us: start,
            delay: Duration::from_millis(10),
            ssrc: 1,
            ts_base: 1000,
            seq_base: 1,
        },
        SendPlan {
            track: "mic".into(),
            codec: Codec::Opus,
            frames: audio,
            capture_start_us: start,
            delay: Duration::from_millis(10),
            ssrc: 2,
            ts_base: 5000,
            seq_base: 1,
        },
    ];
    println!("CHILD_READY");
    // Paced at 4x real time; the parent kills us long before the end.
    let t0 = Instant::now();
    for item in schedule(&plans) {
        let due_us = item
            .arrival
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64)
            - start;
        let due = Duration::from_micros((due_us.max(0) / 4) as u64);
        if let Some(wait) = due.checked_sub(t0.elapsed()) {
            std::thread::sleep(wait);
        }
        deliver(&rec, vec![item]);
    }
    // Not reached when killed in time; if it is, the parent's test fails (no interruption).
    std::thread::sleep(Duration::from_secs(30));
}

fn segment_count(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("journal.jsonl"))
        .map(|t| {
            t.lines()
                .filter(|l| l.contains("\"type\":\"segment\""))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn killed_mid_recording_is_sealed_as_interrupted() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("exe");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "crash_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENV_DIR, tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let dir = tmp.path().join("rec").join("crash-1");
    let deadline = Instant::now() + Duration::from_secs(90);
    while segment_count(&dir) < 4 {
        assert!(
            Instant::now() < deadline,
            "child closed no segments in 90 s"
        );
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "child exited early"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL"); // std sends SIGKILL on Unix
    let status = child.wait().expect("wait");
    assert!(!status.success());

    // Before sealing: closed segments and the chain verify; only "not sealed" and
    // the unclosed segments are reported.
    let before = verify(&dir, Some(&key().verifying_key()));
    assert!(before.problems.contains(&Problem::NotSealed), "{before}");
    for p in &before.problems {
        assert!(
            matches!(p, Problem::NotSealed | Problem::UnclosedSegment(_)),
            "unexpected problem before sealing: {p}"
        );
    }
    let closed = segments(&journal_lines(&dir));
    assert!(closed.len() >= 4);
    for s in &closed {
        let errs = decode_errors(&dir.join(&s.file));
        assert!(errs.trim().is_empty(), "{}: {errs}", s.file);
    }

    // Server start: seal.
    let sealed = scan_and_seal(&tmp.path().join("rec"), &key());
    assert_eq!(sealed.len(), 1);
    let outcome = sealed[0].1.as_ref().expect("sealed");
    let last_end = closed.iter().map(|s| s.end).max().expect("end");
    assert!(outcome.cut_at >= last_end);
    assert!(outcome.manifest.interrupted);
    let after = verify(&dir, Some(&key().verifying_key()));
    assert_eq!(
        after.problems,
        vec![Problem::Interrupted {
            cut_at: outcome.cut_at,
            last_seq: outcome.last_seq
        }],
        "{after}"
    );
    assert!(after.problems[0]
        .to_string()
        .starts_with("archive interrupted at "));
    assert_eq!(
        after.interrupted.as_ref().map(|i| i.cut_at),
        Some(outcome.cut_at)
    );
    // The manifest lists only closed segments; partial files are evidence.
    assert_eq!(outcome.manifest.segments.len(), closed.len());
    for p in &outcome.partial_files {
        assert!(p.file.ends_with(".partial"));
    }
    // Sealing twice does nothing.
    assert!(scan_and_seal(&tmp.path().join("rec"), &key()).is_empty());

    // The hearing continues after the restart in a new part that names the old one.
    let mut cfg = RecorderConfig::new(tmp.path().join("rec"));
    cfg.segment_seconds = 1;
    let rec = HearingRecorder::open(cfg, key(), hearing("crash-1"), |_| {}).expect("reopen");
    assert!(
        rec.dir().ends_with("crash-1.part2"),
        "{}",
        rec.dir().display()
    );
    let m = rec.close(Default::default()).expect("close");
    assert!(!m.interrupted);
    let text =
        std::fs::read_to_string(tmp.path().join("rec/crash-1.part2/journal.jsonl")).expect("j");
    assert!(text.contains("\"continues\":\"crash-1\""));
}
