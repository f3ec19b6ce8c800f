//! H.264 (RFC 6184: STAP-A for parameter sets, FU-A for big NALs) into Matroska.

mod support;

use std::process::Command;
use std::time::Duration;

use openhearing_recorder::{verify, ArchiveKey, Codec, GapCause, HearingRecorder, RecorderConfig};
use support::*;

fn probe_size(path: &std::path::Path) -> String {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn h264_is_recorded_to_decodable_matroska_with_and_without_loss() {
    let mut tmp = tempfile::tempdir().expect("tempdir");
    if std::env::var_os("RECORDER_KEEP_TMP").is_some() {
        eprintln!("keeping {}", tmp.path().display());
        tmp.disable_cleanup(true);
    }
    let clip = read_clip(&make_h264(tmp.path(), "v", "testsrc=s=320x240:r=30:d=6"));
    assert!(clip.iter().filter(|f| f.key).count() >= 2);
    let key = ArchiveKey::from_seed([2u8; 32]);
    for (hearing_id, loss) in [("h264", 0.0), ("h264-loss", 0.05)] {
        let mut cfg = RecorderConfig::new(tmp.path().join("rec"));
        cfg.segment_seconds = 2;
        let rec =
            HearingRecorder::open(cfg, key.clone(), hearing(hearing_id), |_| {}).expect("open");
        rec.add_track(track("cam", "p", "P", "witness", Codec::H264), || {})
            .expect("add");
        let plan = SendPlan {
            track: "cam".into(),
            codec: Codec::H264,
            frames: clip.clone(),
            capture_start_us: now_us() - 10_000_000,
            delay: Duration::from_millis(20),
            ssrc: 9,
            ts_base: 77,
            seq_base: 65_000,
        };
        let mut items = schedule(&[plan]);
        let mut rng = Rng(42);
        items.retain(|it| !matches!(it.what, Item::Rtp(_)) || rng.next_f64() >= loss);
        deliver(&rec, items);
        let dir = rec.dir().to_path_buf();
        rec.close(Default::default()).expect("close");
        let lines = journal_lines(&dir);
        let segs = segments(&lines);
        assert!(!segs.is_empty(), "{hearing_id}: no segments");
        let mut total = 0.0;
        for s in &segs {
            assert!(s.file.ends_with(".mkv"), "{}", s.file);
            let path = dir.join(&s.file);
            let errs = decode_errors(&path);
            assert!(errs.trim().is_empty(), "{hearing_id} {}: {errs}", s.file);
            assert_eq!(probe_size(&path), "h264,320,240");
            total += probe_duration(&path);
        }
        if loss == 0.0 {
            assert!(segs.len() >= 3);
            assert!((total - 6.0).abs() <= 0.5, "recorded {total} s of 6 s");
        } else {
            assert!(gaps(&lines).iter().any(|g| g.cause == GapCause::PacketLoss));
        }
        let report = verify(&dir, Some(&key.verifying_key()));
        assert!(report.ok(), "{report}");
    }
}
