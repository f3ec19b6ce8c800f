//! Three participants' real VP8 + Opus through RTP into the recorder; durations by
//! ffprobe, every segment decodes, verify passes, and every kind of tampering is
//! detected and named.

mod support;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use openhearing_recorder::journal::{canonical_json, entry_hash, JOURNAL_FILE};
use openhearing_recorder::manifest::{MANIFEST_FILE, SIGNATURE_FILE};
use openhearing_recorder::{
    verify, ArchiveKey, CloseSummary, Codec, EventKind, HearingEvent, HearingRecorder, Problem,
    RecorderConfig,
};
use support::*;

const SECONDS: f64 = 8.0;

struct Recorded {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    key: ArchiveKey,
    sent: Vec<(String, f64)>,
}

fn key() -> ArchiveKey {
    ArchiveKey::from_seed([7u8; 32])
}

/// One recording shared by the tests of this file (they copy it before changing it).
fn recorded() -> &'static Recorded {
    static R: OnceLock<Recorded> = OnceLock::new();
    R.get_or_init(|| {
        let tmp = tempfile::tempdir().expect("tempdir");
        let media = tmp.path().join("media");
        std::fs::create_dir_all(&media).expect("mkdir");
        let d = format!("d={SECONDS}");
        let video = read_clip(&make_vp8(
            &media,
            "v",
            &format!("testsrc=s=320x240:r=30:{d}"),
        ));
        let audio = read_clip(&make_opus(&media, "a", &format!("sine=f=440:r=48000:{d}")));
        let mut cfg = RecorderConfig::new(tmp.path().join("rec"));
        cfg.segment_seconds = 3;
        let rec = HearingRecorder::open(cfg, key(), hearing("h-1"), |_| {}).expect("open");
        let start = now_us() - 30_000_000;
        let people = [
            ("judge", "presiding_judge"),
            ("def", "defendant"),
            ("law", "defence_counsel"),
        ];
        let mut plans = Vec::new();
        let mut sent = Vec::new();
        for (i, (p, role)) in people.iter().enumerate() {
            for (codec, frames) in [(Codec::Vp8, &video), (Codec::Opus, &audio)] {
                let id = format!("{p}-{codec:?}").to_lowercase();
                rec.add_track(track(&id, p, &format!("Person {p}"), role, codec), || {})
                    .expect("add");
                let last = frames.last().expect("frames");
                let frame_dur = if codec == Codec::Opus {
                    0.02
                } else {
                    1.0 / 30.0
                };
                sent.push((id.clone(), last.pts + frame_dur));
                plans.push(SendPlan {
                    track: id,
                    codec,
                    frames: frames.clone(),
                    capture_start_us: start + i as i64 * 100_000,
                    delay: Duration::from_millis(20 + 15 * i as u64),
                    ssrc: 1000 + plans.len() as u32,
                    ts_base: 4_294_000_000u32.wrapping_add(plans.len() as u32 * 977),
                    seq_base: 65_500,
                });
            }
        }
        rec.event(HearingEvent {
            at: chrono::Utc::now(),
            kind: EventKind::StateChanged,
            actor: Some("judge".into()),
            subject: None,
            details: serde_json::json!({"from": "lobby", "to": "in_session"}),
        })
        .expect("event");
        let refused = deliver(&rec, schedule(&plans));
        assert_eq!(refused, 0, "queue must not overflow in this test");
        let dir = rec.dir().to_path_buf();
        let m = rec
            .close(CloseSummary {
                reason: "hearing_closed".into(),
                details: serde_json::Value::Null,
            })
            .expect("close");
        assert!(!m.interrupted);
        Recorded {
            _tmp: tmp,
            dir,
            key: key(),
            sent,
        }
    })
}

#[test]
fn every_track_is_recorded_with_its_duration_and_every_segment_decodes() {
    let r = recorded();
    let lines = journal_lines(&r.dir);
    let segs = segments(&lines);
    for (track, sent) in &r.sent {
        let mine: Vec<_> = segs.iter().filter(|s| &s.track_id == track).collect();
        assert!(
            mine.len() >= 2,
            "{track}: expected several segments, got {}",
            mine.len()
        );
        let mut probed = 0.0;
        for s in &mine {
            let path = r.dir.join(&s.file);
            let errs = decode_errors(&path);
            assert!(errs.trim().is_empty(), "{}: {errs}", s.file);
            probed += probe_duration(&path);
        }
        assert!(
            (probed - sent).abs() <= 0.5,
            "{track}: ffprobe says {probed:.3} s over {} segments, sent {sent:.3} s",
            mine.len()
        );
        eprintln!(
            "{track}: probed {probed:.3} sent {sent:.3} segs {}",
            mine.len()
        );
        let journaled: f64 = mine.iter().map(|s| s.duration_ms as f64 / 1000.0).sum();
        assert!(
            (journaled - sent).abs() <= 0.5,
            "{track}: journal {journaled} vs {sent}"
        );
    }
    // Cross-track alignment: participant i's capture started i*100 ms later.
    let first = |t: &str| {
        segs.iter()
            .find(|s| s.track_id == t)
            .map(|s| s.start)
            .expect("seg")
    };
    let d = (first("def-vp8") - first("judge-vp8")).num_milliseconds();
    assert!(
        (d - 100).abs() <= 5,
        "judge→defendant start offset {d} ms, want 100"
    );
    let av = (first("judge-opus") - first("judge-vp8")).num_milliseconds();
    assert!(av.abs() <= 25, "judge audio/video start offset {av} ms");
    // Paths follow <participant>/<track>-NNNNN.webm.
    assert!(
        segs.iter().any(|s| s.file == "judge/judge-vp8-00001.webm"),
        "{:?}",
        segs[0].file
    );
}

#[test]
fn intact_archive_verifies_with_the_trusted_key() {
    let r = recorded();
    let report = verify(&r.dir, Some(&r.key.verifying_key()));
    assert!(report.ok(), "{report}");
    assert!(report.segments_checked >= 12);
}

fn tampered(name: &str) -> (tempfile::TempDir, PathBuf) {
    let r = recorded();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join(name);
    copy_dir(&r.dir, &dir);
    (tmp, dir)
}

fn problems(dir: &Path) -> Vec<Problem> {
    verify(dir, Some(&recorded().key.verifying_key())).problems
}

fn journal(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join(JOURNAL_FILE))
        .expect("journal")
        .lines()
        .map(str::to_string)
        .collect()
}

fn write_journal(dir: &Path, lines: &[String]) {
    std::fs::write(dir.join(JOURNAL_FILE), lines.join("\n") + "\n").expect("write");
}

#[test]
fn flipped_byte_in_a_segment_is_file_altered() {
    let (_t, dir) = tampered("flip");
    let seg = segments(&journal_lines(&dir))[3].file.clone();
    let p = dir.join(&seg);
    let mut bytes = std::fs::read(&p).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&p, bytes).expect("write");
    assert_eq!(problems(&dir), vec![Problem::FileAltered(seg)]);
}

#[test]
fn deleted_and_added_segments_are_named() {
    let (_t, dir) = tampered("del");
    let seg = segments(&journal_lines(&dir))[0].file.clone();
    std::fs::remove_file(dir.join(&seg)).expect("rm");
    std::fs::write(dir.join("judge/judge-vp8-00099.webm"), b"not a segment").expect("add");
    let p = problems(&dir);
    assert_eq!(
        p,
        vec![
            Problem::FileMissing(seg),
            Problem::ExtraFile("judge/judge-vp8-00099.webm".into())
        ]
    );
    assert!(
        p[0].to_string().starts_with("file missing: judge/"),
        "{}",
        p[0]
    );
}

#[test]
fn edited_journal_entry_is_entry_altered_with_or_without_rehash() {
    let (_t, dir) = tampered("edit");
    let mut lines = journal(&dir);
    let k = lines
        .iter()
        .position(|l| l.contains("\"type\":\"segment\""))
        .expect("segment line");
    let original = lines[k].clone();
    // Edit without fixing the hash.
    lines[k] = original.replace("\"frames\":", "\"frames\":1");
    assert_ne!(lines[k], original);
    write_journal(&dir, &lines);
    assert_eq!(problems(&dir), vec![Problem::EntryAltered(k as u64)]);
    // Edit and recompute this entry's hash: the next entry's link breaks.
    let mut v: serde_json::Value = serde_json::from_str(&original).expect("json");
    v["role"] = "witness".into();
    let h = entry_hash(&v);
    v["hash"] = h.into();
    lines[k] = canonical_json(&v);
    write_journal(&dir, &lines);
    assert_eq!(problems(&dir), vec![Problem::EntryAltered(k as u64)]);
}

#[test]
fn removed_entries_are_named_including_the_last() {
    let (_t, dir) = tampered("rm");
    let mut lines = journal(&dir);
    let n = lines.len();
    lines.remove(4);
    write_journal(&dir, &lines);
    assert_eq!(
        problems(&dir),
        vec![Problem::EntryRemoved { from: 4, to: 4 }]
    );
    let (_t2, dir2) = tampered("rmlast");
    let mut lines = journal(&dir2);
    lines.pop();
    write_journal(&dir2, &lines);
    let p = problems(&dir2);
    assert_eq!(
        p,
        vec![Problem::EntryRemoved {
            from: n as u64 - 1,
            to: n as u64 - 1
        }]
    );
    assert_eq!(
        p[0].to_string(),
        format!("journal entry {} was removed", n - 1)
    );
}

#[test]
fn reordered_entries_are_named() {
    let (_t, dir) = tampered("swap");
    let mut lines = journal(&dir);
    lines.swap(5, 6);
    write_journal(&dir, &lines);
    let p = problems(&dir);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        matches!(
            p[0],
            Problem::EntryReordered(5) | Problem::EntryReordered(6)
        ),
        "{p:?}"
    );
}

#[test]
fn manifest_signed_by_another_key_or_edited_fails_signature() {
    let (_t, dir) = tampered("resign");
    let bytes = std::fs::read(dir.join(MANIFEST_FILE)).expect("manifest");
    let other = ArchiveKey::from_seed([9u8; 32]);
    std::fs::write(dir.join(SIGNATURE_FILE), other.sign_hex(&bytes) + "\n").expect("sig");
    assert_eq!(problems(&dir), vec![Problem::SignatureInvalid]);
    // A forger who also rewrites the manifest's key is named as another signer.
    let mut m: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
    m["public_key"] = other.public_hex().into();
    let forged = serde_json::to_vec_pretty(&m).expect("json");
    std::fs::write(dir.join(MANIFEST_FILE), &forged).expect("write");
    std::fs::write(dir.join(SIGNATURE_FILE), other.sign_hex(&forged) + "\n").expect("sig");
    let p = problems(&dir);
    assert!(
        p.contains(&Problem::SignedByOtherKey {
            signer: other.public_hex()
        }),
        "{p:?}"
    );
    // Without a trusted key, the archive's own first entry still names the real signer.
    let p = verify(&dir, None).problems;
    assert!(
        p.contains(&Problem::SignedByOtherKey {
            signer: other.public_hex()
        }),
        "{p:?}"
    );
    // An edited manifest with the original signature.
    let (_t2, dir2) = tampered("editmanifest");
    let text = std::fs::read_to_string(dir2.join(MANIFEST_FILE)).expect("manifest");
    std::fs::write(
        dir2.join(MANIFEST_FILE),
        text.replace("HS-1/2026", "HS-2/2026"),
    )
    .expect("w");
    let p = problems(&dir2);
    assert!(p.contains(&Problem::SignatureInvalid), "{p:?}");
}

#[test]
fn cli_commands_print_and_exit_as_documented() {
    use openhearing_recorder::cli::{info_command, verify_command};
    let r = recorded();
    let tmp = tempfile::tempdir().expect("tempdir");
    let pubfile = tmp.path().join("archive-signing.pub");
    std::fs::write(&pubfile, r.key.public_hex() + "\n").expect("pub");
    let mut out = Vec::new();
    assert_eq!(verify_command(&r.dir, Some(&pubfile), &mut out), 0);
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(text.starts_with("OK: "), "{text}");
    assert!(text.contains("trusted key"), "{text}");

    let (_t, dir) = tampered("cli");
    let seg = segments(&journal_lines(&dir))[1].file.clone();
    std::fs::remove_file(dir.join(&seg)).expect("rm");
    let mut out = Vec::new();
    assert_eq!(verify_command(&dir, Some(&pubfile), &mut out), 1);
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(text.starts_with("FAILED: "), "{text}");
    assert!(text.contains(&format!("file missing: {seg}")), "{text}");

    let mut out = Vec::new();
    assert_eq!(
        verify_command(&r.dir, Some(&tmp.path().join("nope.pub")), &mut out),
        2
    );

    let mut out = Vec::new();
    assert_eq!(info_command(&r.dir, Some(&pubfile), &mut out), 0);
    let text = String::from_utf8_lossy(&out).into_owned();
    eprintln!("{text}");
    for needle in [
        "HS-1/2026",
        "Person judge",
        "presiding_judge",
        "judge-vp8",
        "0:00:08",
        "closed and signed",
        "Gaps      none",
        "OK: ",
    ] {
        assert!(text.contains(needle), "info lacks {needle:?}:\n{text}");
    }
}
