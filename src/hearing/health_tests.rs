//! Unit tests of the media-health matrix: given counters and reports, the verdicts,
//! their transitions, the alerts, and what is not believed of a report.

use super::*;
use openhearing_signaling::{AudioReception, VideoReception};

const PUB: Uuid = Uuid::from_u128(1);
const SUB: Uuid = Uuid::from_u128(2);

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T08:00:00Z")
        .expect("a time")
        .with_timezone(&Utc)
}

fn at(secs: i64) -> DateTime<Utc> {
    t0() + chrono::TimeDelta::seconds(secs)
}

fn key(kind: MediaKind) -> CellKey {
    CellKey {
        publisher: PUB,
        subscriber: SUB,
        kind,
    }
}

fn expected(kind: MediaKind) -> Expected {
    Expected {
        key: key(kind),
        track: Some(format!("{PUB}-{}-1", kind.as_str())),
        alerting: true,
    }
}

fn counters(kind: MediaKind, received: u64, leg: Option<(u64, u64)>) -> TrackCounters {
    TrackCounters {
        track: format!("{PUB}-{}-1", kind.as_str()),
        publisher: PUB,
        kind,
        received,
        legs: leg
            .map(|(forwarded, dropped)| {
                (
                    SUB,
                    LegCounters {
                        forwarded,
                        dropped,
                        ..LegCounters::default()
                    },
                )
            })
            .into_iter()
            .collect(),
    }
}

fn grade_of(m: &Matrix, kind: MediaKind) -> Option<HealthGrade> {
    m.grades().find(|(k, _)| *k == key(kind)).map(|(_, g)| g)
}

fn transitions(changes: &[Change]) -> Vec<(Option<HealthGrade>, Option<HealthGrade>, &str)> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::Transition {
                from, to, cause, ..
            } => Some((*from, *to, *cause)),
            _ => None,
        })
        .collect()
}

fn alerts(changes: &[Change]) -> Vec<(bool, &str)> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::Alert { raised, cause, .. } => Some((*raised, *cause)),
            _ => None,
        })
        .collect()
}

/// Samples audio every 2 s from `start` with the given counters.
fn feed(m: &mut Matrix, start: i64, steps: &[(u64, Option<(u64, u64)>)]) -> Vec<Change> {
    let e = [expected(MediaKind::Audio)];
    let mut all = Vec::new();
    for (i, (received, leg)) in steps.iter().enumerate() {
        let c = [counters(MediaKind::Audio, *received, *leg)];
        all.extend(m.sample(at(start + 2 * i as i64), &e, &c));
    }
    all
}

#[test]
fn the_first_sample_is_a_baseline_and_flowing_media_is_ok() {
    let mut m = Matrix::new(Thresholds::default());
    let first = feed(&mut m, 0, &[(100, Some((100, 0)))]);
    assert!(first.is_empty(), "no verdict from one sample: {first:?}");
    assert_eq!(grade_of(&m, MediaKind::Audio), None);
    let next = feed(&mut m, 2, &[(200, Some((200, 0)))]);
    assert_eq!(
        transitions(&next),
        vec![(None, Some(HealthGrade::Ok), "flowing")]
    );
    // No change, no transition.
    assert!(feed(&mut m, 4, &[(300, Some((300, 0)))]).is_empty());
}

#[test]
fn the_subscribers_own_rtcp_reports_of_loss_and_jitter_degrade_a_flowing_pair() {
    let mut m = Matrix::new(Thresholds::default());
    let e = [expected(MediaKind::Audio)];
    let with = |received: u64, loss: Option<f64>, jitter: Option<f64>| {
        let mut c = counters(MediaKind::Audio, received, Some((received, 0)));
        c.legs[0].1.reported_loss = loss;
        c.legs[0].1.reported_jitter_ms = jitter;
        [c]
    };
    m.sample(at(0), &e, &with(100, None, None));
    let c = m.sample(at(2), &e, &with(200, Some(0.02), Some(20.0)));
    assert_eq!(
        transitions(&c),
        vec![(None, Some(HealthGrade::Ok), "flowing")]
    );
    // The site's stack reports 30 % loss on the leg: degraded, from the server's view.
    let c = m.sample(at(4), &e, &with(300, Some(0.3), Some(20.0)));
    assert_eq!(
        transitions(&c),
        vec![(
            Some(HealthGrade::Ok),
            Some(HealthGrade::Degraded),
            "receiver_loss"
        )]
    );
    // Loss gone, jitter of 400 ms: still degraded, for another cause.
    let c = m.sample(at(6), &e, &with(400, Some(0.0), Some(400.0)));
    assert!(transitions(&c).is_empty(), "the grade stays: {c:?}");
    assert_eq!(grade_of(&m, MediaKind::Audio), Some(HealthGrade::Degraded));
    // No fresh report (an older stack, or reports stopped): the counters alone.
    let c = m.sample(at(8), &e, &with(500, None, None));
    assert_eq!(
        transitions(&c),
        vec![(
            Some(HealthGrade::Degraded),
            Some(HealthGrade::Ok),
            "flowing"
        )]
    );
}

#[test]
fn server_counters_grade_silence_missing_legs_and_drops() {
    let mut m = Matrix::new(Thresholds::default());
    feed(&mut m, 0, &[(100, Some((100, 0))), (200, Some((200, 0)))]);
    // The publisher sends nothing.
    let c = feed(&mut m, 4, &[(200, Some((200, 0)))]);
    assert_eq!(
        transitions(&c),
        vec![(
            Some(HealthGrade::Ok),
            Some(HealthGrade::Lost),
            "publisher_silent"
        )]
    );
    // It sends, the leg forwards nothing.
    let c = feed(&mut m, 6, &[(300, Some((200, 0)))]);
    assert!(transitions(&c).is_empty(), "still lost");
    assert_eq!(grade_of(&m, MediaKind::Audio), Some(HealthGrade::Lost));
    // 10 % dropped is over the 5 % threshold.
    let c = feed(&mut m, 8, &[(400, Some((290, 10)))]);
    assert_eq!(
        transitions(&c),
        vec![(
            Some(HealthGrade::Lost),
            Some(HealthGrade::Degraded),
            "sfu_dropped"
        )]
    );
    // 1 % is not.
    let c = feed(&mut m, 10, &[(500, Some((389, 11)))]);
    assert_eq!(
        transitions(&c),
        vec![(
            Some(HealthGrade::Degraded),
            Some(HealthGrade::Ok),
            "flowing"
        )]
    );
    // The leg is gone while the publisher sends.
    let c = feed(&mut m, 12, &[(600, None)]);
    assert_eq!(
        transitions(&c),
        vec![(Some(HealthGrade::Ok), Some(HealthGrade::Lost), "no_leg")]
    );
}

#[test]
fn a_drop_threshold_from_the_configuration_is_honoured() {
    let mut m = Matrix::new(Thresholds {
        drop_degraded: 0.2,
        ..Thresholds::default()
    });
    feed(&mut m, 0, &[(100, Some((100, 0)))]);
    let c = feed(&mut m, 2, &[(200, Some((190, 10)))]);
    assert_eq!(
        transitions(&c),
        vec![(None, Some(HealthGrade::Ok), "flowing")]
    );
}

#[test]
fn an_alert_is_raised_after_the_threshold_and_cleared_on_recovery() {
    let mut m = Matrix::new(Thresholds::default());
    feed(&mut m, 0, &[(100, Some((100, 0))), (200, Some((200, 0)))]);
    // Lost at 4 s: no alert at 4 s or 6 s (2 s lost), none at 8 s (4 s lost).
    let c = feed(&mut m, 4, &[(200, Some((200, 0))), (200, Some((200, 0)))]);
    assert!(alerts(&c).is_empty(), "{c:?}");
    let c = feed(&mut m, 8, &[(200, Some((200, 0)))]);
    assert!(alerts(&c).is_empty(), "4 s lost is under 5 s: {c:?}");
    let c = feed(&mut m, 10, &[(200, Some((200, 0)))]);
    assert_eq!(alerts(&c), vec![(true, "publisher_silent")]);
    // Raised once only.
    let c = feed(&mut m, 12, &[(200, Some((200, 0)))]);
    assert!(alerts(&c).is_empty());
    let c = feed(&mut m, 14, &[(300, Some((300, 0)))]);
    assert_eq!(alerts(&c), vec![(false, "recovered")]);
    match c.iter().find(|c| matches!(c, Change::Alert { .. })) {
        Some(Change::Alert { since, .. }) => assert_eq!(*since, at(4)),
        other => panic!("an alert: {other:?}"),
    }
}

#[test]
fn a_cell_not_alerting_raises_nothing_and_auto_suspend_asks_once() {
    let mut m = Matrix::new(Thresholds::default());
    let mut e = expected(MediaKind::Audio);
    e.alerting = false;
    for i in 0..8 {
        let c = [counters(MediaKind::Audio, 100, Some((100, 0)))];
        let changes = m.sample(at(2 * i), std::slice::from_ref(&e), &c);
        assert!(alerts(&changes).is_empty(), "not a party ↔ judge cell");
    }

    let mut m = Matrix::new(Thresholds {
        auto_suspend_after: Some(Duration::from_secs(8)),
        ..Thresholds::default()
    });
    let mut suspends = 0;
    feed(&mut m, 0, &[(100, Some((100, 0))), (200, Some((200, 0)))]);
    for i in 0..8 {
        let c = feed(&mut m, 4 + 2 * i, &[(200, Some((200, 0)))]);
        suspends += c
            .iter()
            .filter(|c| matches!(c, Change::Suspend { .. }))
            .count();
    }
    assert_eq!(suspends, 1, "one suspension per outage");
}

#[test]
fn a_cell_no_longer_expected_clears_its_alert() {
    let mut m = Matrix::new(Thresholds::default());
    feed(&mut m, 0, &[(100, Some((100, 0)))]);
    for i in 1..6 {
        feed(&mut m, 2 * i, &[(100, Some((100, 0)))]);
    }
    assert_eq!(grade_of(&m, MediaKind::Audio), Some(HealthGrade::Lost));
    // The publisher muted (or went to a private room): the core stops expecting it.
    let c = m.sample(at(12), &[], &[]);
    assert_eq!(alerts(&c), vec![(false, "not_expected")]);
    assert_eq!(
        transitions(&c),
        vec![(Some(HealthGrade::Lost), None, "not_expected")]
    );
    assert_eq!(grade_of(&m, MediaKind::Audio), None);
}

fn video_report(packets: u64, frames: u64, freeze_ms: u64) -> RemoteReception {
    RemoteReception {
        participant_id: PUB,
        audio: None,
        video: Some(VideoReception {
            packets_received: packets,
            frames_decoded: frames,
            freeze_ms,
        }),
    }
}

fn video_sample(m: &mut Matrix, secs: i64, received: u64) -> Vec<Change> {
    let c = [counters(MediaKind::Video, received, Some((received, 0)))];
    m.sample(at(secs), &[expected(MediaKind::Video)], &c)
}

#[test]
fn the_subscribers_report_can_make_a_cell_worse() {
    let mut m = Matrix::new(Thresholds::default());
    video_sample(&mut m, 0, 100);
    assert!(m.report(at(1), SUB, &[video_report(90, 30, 0)]).is_empty());
    video_sample(&mut m, 2, 200);
    assert!(m.report(at(3), SUB, &[video_report(190, 90, 0)]).is_empty());
    video_sample(&mut m, 4, 300);
    assert_eq!(grade_of(&m, MediaKind::Video), Some(HealthGrade::Ok));
    // Packets arrive, the decoder shows nothing: lost though the SFU forwards.
    m.absorb(&[counters(MediaKind::Video, 350, Some((350, 0)))]);
    assert!(m.report(at(5), SUB, &[video_report(290, 90, 0)]).is_empty());
    let c = video_sample(&mut m, 6, 400);
    assert_eq!(
        transitions(&c),
        vec![(
            Some(HealthGrade::Ok),
            Some(HealthGrade::Lost),
            "not_decoded"
        )]
    );
    // Frames again, but the picture stood still half the time: degraded.
    assert!(m
        .report(at(7), SUB, &[video_report(390, 150, 1000)])
        .is_empty());
    let c = video_sample(&mut m, 8, 500);
    assert_eq!(
        transitions(&c),
        vec![(
            Some(HealthGrade::Lost),
            Some(HealthGrade::Degraded),
            "frozen"
        )]
    );
    // The subscriber stops reporting: after the timeout it receives nothing.
    video_sample(&mut m, 10, 600);
    let c = video_sample(&mut m, 14, 700);
    assert_eq!(
        transitions(&c),
        vec![(
            Some(HealthGrade::Degraded),
            Some(HealthGrade::Lost),
            "reports_stopped"
        )]
    );
}

#[test]
fn audio_concealment_grades_audio() {
    let mut m = Matrix::new(Thresholds::default());
    let audio = |packets, samples, concealed| RemoteReception {
        participant_id: PUB,
        audio: Some(AudioReception {
            packets_received: packets,
            samples_received: samples,
            concealed_samples: concealed,
        }),
        video: None,
    };
    feed(&mut m, 0, &[(100, Some((100, 0)))]);
    assert!(m.report(at(1), SUB, &[audio(90, 90_000, 0)]).is_empty());
    m.absorb(&[counters(MediaKind::Audio, 200, Some((200, 0)))]);
    assert!(m
        .report(at(3), SUB, &[audio(190, 186_000, 30_000)])
        .is_empty());
    let c = feed(&mut m, 4, &[(300, Some((300, 0)))]);
    assert_eq!(
        transitions(&c),
        vec![(None, Some(HealthGrade::Degraded), "concealed")]
    );
}

#[test]
fn a_report_for_media_never_forwarded_is_flagged_and_changes_nothing() {
    let mut m = Matrix::new(Thresholds::default());
    // Nothing was ever forwarded from PUB to SUB.
    let flags = m.report(at(1), SUB, &[video_report(0, 120, 0)]);
    assert_eq!(flags.len(), 1);
    assert_eq!(flags[0].why, "never_forwarded");
    assert_eq!(flags[0].key, key(MediaKind::Video));
    // The SFU forwards nothing on the leg; a lying report cannot make it ok.
    for (secs, received) in [(0, 100), (2, 200)] {
        let c = [counters(MediaKind::Video, received, Some((0, 0)))];
        m.sample(at(secs), &[expected(MediaKind::Video)], &c);
    }
    assert_eq!(grade_of(&m, MediaKind::Video), Some(HealthGrade::Lost));
    let flags = m.report(at(3), SUB, &[video_report(500, 300, 0)]);
    assert_eq!(flags[0].why, "never_forwarded");
    let c = [counters(MediaKind::Video, 300, Some((0, 0)))];
    m.sample(at(4), &[expected(MediaKind::Video)], &c);
    assert_eq!(grade_of(&m, MediaKind::Video), Some(HealthGrade::Lost));
}

#[test]
fn a_report_of_more_packets_than_forwarded_is_flagged_within_a_slack() {
    let mut m = Matrix::new(Thresholds::default());
    m.absorb(&[counters(MediaKind::Video, 1000, Some((1000, 0)))]);
    // 1000 forwarded: 50 + 1000/50 = 70 packets of slack.
    assert!(m
        .report(at(1), SUB, &[video_report(1070, 300, 0)])
        .is_empty());
    let flags = m.report(at(3), SUB, &[video_report(1071, 300, 0)]);
    assert_eq!(flags.len(), 1);
    assert_eq!(flags[0].why, "more_than_forwarded");
    assert_eq!((flags[0].claimed_packets, flags[0].forwarded), (1071, 1000));
}

#[test]
fn a_new_leg_adds_to_the_pairs_total() {
    let mut m = Matrix::new(Thresholds::default());
    m.absorb(&[counters(MediaKind::Video, 500, Some((500, 0)))]);
    // The leg was replaced (renegotiation): its counter starts again from zero.
    m.absorb(&[counters(MediaKind::Video, 800, Some((300, 0)))]);
    assert!(m
        .report(at(1), SUB, &[video_report(800, 200, 0)])
        .is_empty());
}

#[test]
fn a_side_that_lost_its_connection_is_lost_at_once_and_keeps_the_outage() {
    let mut m = Matrix::new(Thresholds::default());
    feed(&mut m, 0, &[(100, Some((100, 0))), (200, Some((200, 0)))]);
    // The subscriber's connection is lost: its leg goes, then its session.
    feed(&mut m, 4, &[(300, None)]);
    let mut gone = expected(MediaKind::Audio);
    gone.track = None;
    let c = m.sample(at(6), std::slice::from_ref(&gone), &[]);
    assert!(transitions(&c).is_empty(), "already lost: {c:?}");
    let c = m.sample(at(10), std::slice::from_ref(&gone), &[]);
    assert_eq!(alerts(&c), vec![(true, "disconnected")]);
    // Back: a new session, a new leg.
    feed(&mut m, 12, &[(400, Some((10, 0)))]);
    let c = feed(&mut m, 14, &[(500, Some((110, 0)))]);
    assert_eq!(alerts(&c), vec![(false, "recovered")]);
}
