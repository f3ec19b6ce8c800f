//! Packet loss and reordering, SSRC change with a publisher that leaves and comes
//! back, an unwritable folder, and a writer that falls behind.

mod support;

use std::time::{Duration, Instant};

use openhearing_recorder::types::AlertKind;
use openhearing_recorder::{verify, ArchiveKey, Codec, GapCause, HearingRecorder, RecorderConfig};
use support::*;

fn key() -> ArchiveKey {
    ArchiveKey::from_seed([5u8; 32])
}

fn plan(track: &str, codec: Codec, frames: Vec<ClipFrame>, start: i64, ssrc: u32) -> SendPlan {
    SendPlan {
        track: track.into(),
        codec,
        frames,
        capture_start_us: start,
        delay: Duration::from_millis(30),
        ssrc,
        ts_base: 123_456 * ssrc,
        seq_base: (ssrc as u16).wrapping_mul(7919),
    }
}

fn media(dir: &std::path::Path, secs: u32) -> (Vec<ClipFrame>, Vec<ClipFrame>) {
    let v = read_clip(&make_vp8(
        dir,
        "v",
        &format!("testsrc=s=320x240:r=30:d={secs}"),
    ));
    let a = read_clip(&make_opus(
        dir,
        "a",
        &format!("sine=f=440:r=48000:d={secs}"),
    ));
    (v, a)
}

fn all_segments_decode(dir: &std::path::Path) -> usize {
    let segs = segments(&journal_lines(dir));
    for s in &segs {
        let errs = decode_errors(&dir.join(&s.file));
        assert!(errs.trim().is_empty(), "{}: {errs}", s.file);
    }
    segs.len()
}

#[test]
fn five_percent_loss_and_reordering_still_decode_and_gaps_are_journaled() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (v, a) = media(tmp.path(), 10);
    let mut cfg = RecorderConfig::new(tmp.path().join("rec"));
    cfg.segment_seconds = 3;
    let rec = HearingRecorder::open(cfg, key(), hearing("loss"), |_| {}).expect("open");
    let (kf_tx, kf) = crossbeam_channel::unbounded();
    rec.add_track(track("cam", "p", "P", "witness", Codec::Vp8), move || {
        let _ = kf_tx.send("cam");
    })
    .expect("add");
    rec.add_track(track("mic", "p", "P", "witness", Codec::Opus), || {})
        .expect("add");
    let start = now_us() - 20_000_000;
    let mut items = schedule(&[
        plan("cam", Codec::Vp8, v, start, 11),
        plan("mic", Codec::Opus, a, start, 12),
    ]);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut lost = 0;
    // Swap some neighbours (reordering), then drop 5%.
    for i in 1..items.len() {
        if rng.next_f64() < 0.03 {
            items.swap(i - 1, i);
        }
    }
    items.retain(|it| match it.what {
        Item::Rtp(_) if rng.next_f64() < 0.05 => {
            lost += 1;
            false
        }
        _ => true,
    });
    assert!(lost > 20);
    deliver(&rec, items);
    let dir = rec.dir().to_path_buf();
    rec.close(Default::default()).expect("close");
    assert!(all_segments_decode(&dir) >= 4);
    let gaps = gaps(&journal_lines(&dir));
    for t in ["cam", "mic"] {
        let n = gaps
            .iter()
            .filter(|g| g.track_id.as_deref() == Some(t) && g.cause == GapCause::PacketLoss)
            .count();
        assert!(n > 0, "{t}: no packet_loss gap journaled");
    }
    for g in &gaps {
        assert!(g.to > g.from, "{g:?}");
    }
    assert!(
        kf.try_iter().any(|t| t == "cam"),
        "a keyframe was requested after video loss"
    );
    let report = verify(&dir, Some(&key().verifying_key()));
    assert!(report.ok(), "{report}");
}

#[test]
fn ssrc_change_and_return_after_absence_start_new_aligned_segments() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (v, a) = media(tmp.path(), 4);
    let mut cfg = RecorderConfig::new(tmp.path().join("rec"));
    cfg.segment_seconds = 10;
    let rec = HearingRecorder::open(cfg, key(), hearing("ssrc"), |_| {}).expect("open");
    rec.add_track(track("cam", "p", "P", "witness", Codec::Vp8), || {})
        .expect("add");
    rec.add_track(track("mic", "p", "P", "witness", Codec::Opus), || {})
        .expect("add");
    let start = now_us() - 60_000_000;
    // First 4 s, then the publisher is gone 3 s and returns with new SSRCs.
    let back = start + 7_000_000;
    let items = schedule(&[
        plan("cam", Codec::Vp8, v.clone(), start, 21),
        plan("mic", Codec::Opus, a.clone(), start, 22),
        plan("cam", Codec::Vp8, v, back, 31),
        plan("mic", Codec::Opus, a, back, 32),
    ]);
    deliver(&rec, items);
    let dir = rec.dir().to_path_buf();
    rec.close(Default::default()).expect("close");
    assert_eq!(all_segments_decode(&dir), 4);
    let segs = segments(&journal_lines(&dir));
    for t in ["cam", "mic"] {
        let mine: Vec<_> = segs.iter().filter(|s| s.track_id == t).collect();
        assert_eq!(mine.len(), 2, "{t}");
        assert!(!mine[0].discontinuity && mine[1].discontinuity);
        // Each part is ~4 s and the second starts 7 s after the first (wall clock via SR).
        let offset = (mine[1].start - mine[0].start).num_milliseconds();
        assert!(
            (offset - 7000).abs() <= 30,
            "{t}: second part at +{offset} ms"
        );
        for s in &mine {
            assert!(
                (s.duration_ms - 4000).abs() <= 100,
                "{t}: {} ms",
                s.duration_ms
            );
        }
    }
    assert!(verify(&dir, Some(&key().verifying_key())).ok());
}

#[test]
fn unwritable_folder_alerts_journals_a_disk_gap_and_never_blocks_push() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (v, a) = media(tmp.path(), 9);
    let mut cfg = RecorderConfig::new(tmp.path().join("rec"));
    cfg.segment_seconds = 1;
    let (alert_tx, alerts) = crossbeam_channel::unbounded();
    let rec = HearingRecorder::open(cfg, key(), hearing("disk"), move |a| {
        let _ = alert_tx.send(a);
    })
    .expect("open");
    rec.add_track(track("cam", "p", "P", "witness", Codec::Vp8), || {})
        .expect("add");
    rec.add_track(track("mic", "p", "P", "witness", Codec::Opus), || {})
        .expect("add");
    let dir = rec.dir().to_path_buf();
    let start = now_us() - 60_000_000;
    let items = schedule(&[
        plan("cam", Codec::Vp8, v, start, 41),
        plan("mic", Codec::Opus, a, start, 42),
    ]);
    let at = |t: &Timed| {
        t.arrival
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64)
            - start
    };
    let (first, rest): (Vec<_>, Vec<_>) = items.into_iter().partition(|t| at(t) < 3_000_000);
    let (middle, last): (Vec<_>, Vec<_>) = rest.into_iter().partition(|t| at(t) < 6_000_000);
    let mut slowest = Duration::ZERO;
    let mut push_all = |items: Vec<Timed>| {
        for t in items {
            let t0 = Instant::now();
            deliver(&rec, vec![t]);
            slowest = slowest.max(t0.elapsed());
        }
    };
    push_all(first);
    let deadline = Instant::now() + Duration::from_secs(30);
    while segments(&journal_lines(&dir)).len() < 2 {
        assert!(Instant::now() < deadline, "no segment closed");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The participant's folder becomes a plain file: nothing can be written there
    // (even as root, unlike a chmod).
    let folder = dir.join("p");
    let moved = dir.join("p.moved");
    std::fs::rename(&folder, &moved).expect("move folder away");
    std::fs::write(&folder, b"in the way").expect("file in the way");
    push_all(middle);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut got_disk_alert = false;
    while !got_disk_alert {
        assert!(Instant::now() < deadline, "no disk alert");
        if let Ok(a) = alerts.recv_timeout(Duration::from_millis(100)) {
            got_disk_alert |= matches!(a.kind, AlertKind::DiskError { .. });
        }
    }
    // Repair, wait past the retry interval, and send the rest.
    std::fs::remove_file(&folder).expect("rm");
    std::fs::rename(&moved, &folder).expect("move back");
    std::thread::sleep(Duration::from_millis(1300));
    push_all(last);
    rec.close(Default::default()).expect("close");
    assert!(
        slowest < Duration::from_secs(1),
        "push_rtp blocked for {slowest:?}"
    );
    let recovered = alerts
        .try_iter()
        .any(|a| matches!(a.kind, AlertKind::Recovered { .. }));
    assert!(recovered, "no recovery alert");
    let lines = journal_lines(&dir);
    let disk_gaps: Vec<_> = gaps(&lines)
        .into_iter()
        .filter(|g| g.cause == GapCause::DiskError)
        .collect();
    assert!(!disk_gaps.is_empty(), "no disk_error gap journaled");
    for g in &disk_gaps {
        assert!(g.to > g.from, "{g:?}");
    }
    all_segments_decode(&dir);
    let report = verify(&dir, Some(&key().verifying_key()));
    assert!(report.ok(), "{report}");
}

#[test]
fn queue_overflow_drops_without_blocking_and_is_journaled_exactly() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (v, a) = media(tmp.path(), 10);
    let mut cfg = RecorderConfig::new(tmp.path().join("rec"));
    cfg.queue_packets = 16;
    let (alert_tx, alerts) = crossbeam_channel::unbounded();
    let rec = HearingRecorder::open(cfg, key(), hearing("overflow"), move |a| {
        let _ = alert_tx.send(a);
    })
    .expect("open");
    rec.add_track(track("cam", "p", "P", "witness", Codec::Vp8), || {})
        .expect("add");
    rec.add_track(track("mic", "p", "P", "witness", Codec::Opus), || {})
        .expect("add");
    let start = now_us() - 60_000_000;
    let refused = deliver(
        &rec,
        schedule(&[
            plan("cam", Codec::Vp8, v, start, 51),
            plan("mic", Codec::Opus, a, start, 52),
        ]),
    );
    let dropped = rec
        .stats()
        .packets_dropped_queue_full
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(refused as u64, dropped);
    assert!(
        dropped > 0,
        "a 16-packet queue fed without pause must overflow"
    );
    let dir = rec.dir().to_path_buf();
    rec.close(Default::default()).expect("close");
    let journaled: u64 = gaps(&journal_lines(&dir))
        .iter()
        .filter(|g| g.cause == GapCause::QueueOverflow)
        .map(|g| g.count)
        .sum();
    assert_eq!(journaled, dropped);
    assert!(alerts
        .try_iter()
        .any(|a| matches!(a.kind, AlertKind::QueueOverflow { .. })));
    all_segments_decode(&dir);
    assert!(verify(&dir, Some(&key().verifying_key())).ok());
}

/// Loss gaps are journaled at the next housekeeping tick even while media keeps
/// flowing: the writer must not wait for a quiet moment (or a segment's end) to
/// write them, or a crash during a busy hearing would lose them.
#[test]
fn loss_gaps_reach_the_journal_while_media_keeps_flowing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = read_clip(&make_opus(tmp.path(), "a", "sine=f=440:r=48000:d=5"));
    let mut cfg = RecorderConfig::new(tmp.path().join("rec"));
    // No segment ends during the test: only housekeeping can write the gap.
    cfg.segment_seconds = 60;
    let rec = HearingRecorder::open(cfg, key(), hearing("busy"), |_| {}).expect("open");
    rec.add_track(track("mic", "p", "P", "witness", Codec::Opus), || {})
        .expect("add");
    let start = now_us();
    let items = schedule(&[plan("mic", Codec::Opus, a, start, 21)]);
    let dir = rec.dir().to_path_buf();
    let loss_gap_journaled = |dir: &std::path::Path| {
        gaps(&journal_lines(dir))
            .iter()
            .any(|g| g.track_id.as_deref() == Some("mic") && g.cause == GapCause::PacketLoss)
    };
    // 20 ms apart, as a live Opus track: the writer always has a packet within its
    // 250 ms housekeeping tick. Packets 50..55 (1 s in) are lost.
    let mut rtp_index = 0;
    let mut seen_while_flowing = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    for t in items {
        assert!(Instant::now() < deadline, "delivery took too long");
        match t.what {
            Item::Rtp(p) => {
                rtp_index += 1;
                if (50..55).contains(&rtp_index) {
                    continue;
                }
                rec.push_rtp(&t.track, p).expect("push");
                std::thread::sleep(Duration::from_millis(20));
                // 2 s after the loss, with media still flowing.
                if rtp_index == 155 {
                    seen_while_flowing = loss_gap_journaled(&dir);
                }
            }
            Item::Sr(ssrc, ntp, rtp) => rec.push_sender_report(&t.track, ssrc, ntp, rtp),
        }
    }
    assert!(rtp_index > 200, "clip too short: {rtp_index} packets");
    rec.close(Default::default()).expect("close");
    assert!(
        seen_while_flowing,
        "the packet_loss gap was not in the journal 2 s after the loss, while media flowed"
    );
    assert!(loss_gap_journaled(&dir));
}
