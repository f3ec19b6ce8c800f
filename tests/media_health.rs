//! Media health through the real server with headless webrtc peers: the presiding
//! judge and the clerk are alerted when the defendant stops getting the judge (its
//! reports stop, as when a site's link is cut) and when the judge stops getting the
//! defendant (the defendant's media stops), and told when each recovers; a client's
//! report claiming media the server did not forward is flagged and does not make a
//! cell `ok`; every transition is in the audit trail.

mod common;

use std::time::{Duration, Instant};

use common::cast::*;
use common::*;
use openhearing::store::{SqliteStore, Store};
use openhearing_peer::Participant;
use openhearing_signaling::{
    AlertState, AudioReception, ClientMessage, HealthCell, HealthGrade, IntegrityAlert, MediaKind,
    RemoteReception, ServerMessage, VideoReception,
};
use uuid::Uuid;

const CLERK: Person = Person::new("Vũ Thị K", "clerk", "Phòng xử án 1");

/// Fast thresholds so the test takes seconds, not minutes.
const INTEGRITY: &str =
    "[integrity]\nsample_seconds = 0.5\nreport_timeout_seconds = 2.0\nalert_after_seconds = 1.5\n";

/// How long a state may take to appear (it takes its thresholds, then some).
const STATE_WAIT: Duration = Duration::from_secs(45);

/// `rx`'s own reception of each publisher, as the web client reports it.
fn honest_report(rx: &Participant, publishers: &[Uuid]) -> ClientMessage {
    let stats = rx.stats();
    let remotes = publishers
        .iter()
        .filter(|p| **p != rx.id())
        .filter_map(|p| {
            let s = stats.stream(&p.to_string())?;
            Some(RemoteReception {
                participant_id: *p,
                audio: Some(AudioReception {
                    packets_received: s.audio.rtp_packets,
                    samples_received: s.audio.frames * 960,
                    concealed_samples: 0,
                }),
                video: Some(VideoReception {
                    packets_received: s.video.rtp_packets,
                    frames_decoded: s.video.frames,
                    freeze_ms: 0,
                }),
            })
        })
        .collect();
    ClientMessage::MediaReport { remotes }
}

/// The integrity alerts `p` got, in order.
fn alerts(p: &Participant) -> Vec<IntegrityAlert> {
    p.events()
        .into_iter()
        .filter_map(|m| match m {
            ServerMessage::IntegrityAlert(a) => Some(a),
            _ => None,
        })
        .collect()
}

/// The cell of `publisher → subscriber` in the last `media_health` `p` got.
fn cell(p: &Participant, publisher: Uuid, subscriber: Uuid) -> Option<HealthCell> {
    p.events().into_iter().rev().find_map(|m| match m {
        ServerMessage::MediaHealth { cells } => Some(
            cells
                .into_iter()
                .find(|c| c.publisher == publisher && c.subscriber == subscriber),
        ),
        _ => None,
    })?
}

fn both(c: Option<HealthCell>, g: HealthGrade) -> bool {
    c.is_some_and(|c| c.audio == Some(g) && c.video == Some(g))
}

/// Sends the reports of `reporters` every 250 ms until `cond` holds (bounded).
async fn reporting_until(
    reporters: &[(&Participant, Option<ClientMessage>)],
    publishers: &[Uuid],
    what: &str,
    mut cond: impl FnMut() -> bool,
) {
    let start = Instant::now();
    while start.elapsed() < STATE_WAIT {
        for (p, fixed) in reporters {
            let msg = fixed
                .clone()
                .unwrap_or_else(|| honest_report(p, publishers));
            send(p, msg);
        }
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("timed out after {STATE_WAIT:?} waiting for: {what}");
}

fn raised(a: &IntegrityAlert, publisher: Uuid, subscriber: Uuid, cause: &str) -> bool {
    a.state == AlertState::Raised
        && a.publisher == publisher
        && a.subscriber == subscriber
        && a.cause == cause
}

/// Whether the last alert of (publisher, subscriber, kind) `p` got is a recovery.
fn recovered(p: &Participant, publisher: Uuid, subscriber: Uuid, kind: MediaKind) -> bool {
    alerts(p)
        .into_iter()
        .rev()
        .find(|a| a.publisher == publisher && a.subscriber == subscriber && a.kind == kind)
        .is_some_and(|a| a.state == AlertState::Cleared && a.cause == "recovered")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bench_is_alerted_when_a_party_and_the_judge_lose_each_other_and_when_it_recovers() {
    let server = TestServer::start_with(47100, 47199, INTEGRITY).await;
    let hearing = server.hearing_of(&[JUDGE, DEFENDANT, COUNSEL, CLERK]).await;
    let judge = join(&server, &hearing, "presiding_judge", true).await;
    let defendant = join(&server, &hearing, "defendant", true).await;
    let counsel = join(&server, &hearing, "defence_counsel", true).await;
    let clerk = join(&server, &hearing, "clerk", false).await;
    convene(&judge, &[&defendant, &counsel, &clerk]).await;
    publish(&[&judge, &defendant, &counsel]).await;
    for p in [&judge, &defendant, &counsel] {
        send(
            p,
            ClientMessage::MediaState {
                audio: true,
                video: true,
            },
        );
    }
    let (j, d, c) = (judge.id(), defendant.id(), counsel.id());
    let publishers = [j, d, c];
    wait_exchange(
        &[&judge, &defendant, &counsel],
        &[&judge, &defendant, &counsel],
        10,
        25,
    )
    .await;

    // Everyone reports honestly: the judge's matrix shows the defendant's pairs ok.
    let everyone = [(&judge, None), (&defendant, None), (&counsel, None)];
    reporting_until(
        &everyone,
        &publishers,
        "the judge's matrix shows ok both ways",
        || both(cell(&judge, j, d), HealthGrade::Ok) && both(cell(&judge, d, j), HealthGrade::Ok),
    )
    .await;
    assert!(
        both(cell(&clerk, j, d), HealthGrade::Ok),
        "the clerk sees the matrix"
    );
    assert!(
        alerts(&judge).is_empty(),
        "no alert while media flows: {:?}",
        alerts(&judge)
    );

    // The defendant's site stops reporting (as when its link is cut): the bench learns
    // that the defendant does not get the judge.
    let without_defendant = [(&judge, None), (&counsel, None)];
    reporting_until(
        &without_defendant,
        &publishers,
        "an alert: the defendant lost the judge",
        || {
            alerts(&judge)
                .iter()
                .any(|a| raised(a, j, d, "reports_stopped"))
        },
    )
    .await;
    let alert = alerts(&judge)
        .into_iter()
        .find(|a| raised(a, j, d, "reports_stopped"))
        .expect("raised");
    assert_eq!(alert.participant_id, d, "the alert names the defendant");
    assert!(both(cell(&judge, j, d), HealthGrade::Lost));
    eventually(STATE_WAIT, "the clerk gets the alert too", || {
        alerts(&clerk)
            .iter()
            .any(|a| raised(a, j, d, "reports_stopped"))
    })
    .await;
    assert!(
        alerts(&counsel).is_empty(),
        "only the judge and the clerk are alerted"
    );
    assert!(alerts(&defendant).is_empty());

    // The site is back: the alert clears.
    reporting_until(&everyone, &publishers, "the alert clears", || {
        recovered(&judge, j, d, MediaKind::Audio) && recovered(&judge, j, d, MediaKind::Video)
    })
    .await;

    // The defendant's media stops: the judge does not get the defendant. Counsel's
    // client claims to get the defendant perfectly, and the (non-publishing) clerk's
    // video: both claims are flagged and counsel's cell is lost all the same.
    defendant.stop_publishing().await;
    let lie = ClientMessage::MediaReport {
        remotes: vec![
            RemoteReception {
                participant_id: d,
                audio: Some(AudioReception {
                    packets_received: 1_000_000,
                    samples_received: 960_000_000,
                    concealed_samples: 0,
                }),
                video: Some(VideoReception {
                    packets_received: 1_000_000,
                    frames_decoded: 100_000,
                    freeze_ms: 0,
                }),
            },
            RemoteReception {
                participant_id: clerk.id(),
                audio: None,
                video: Some(VideoReception {
                    packets_received: 0,
                    frames_decoded: 500,
                    freeze_ms: 0,
                }),
            },
        ],
    };
    let lying = [(&judge, None), (&defendant, None), (&counsel, Some(lie))];
    reporting_until(
        &lying,
        &publishers,
        "an alert: the judge lost the defendant",
        || {
            alerts(&judge)
                .iter()
                .any(|a| raised(a, d, j, "publisher_silent"))
        },
    )
    .await;
    assert!(
        cell(&judge, d, c).is_some_and(|x| x.audio == Some(HealthGrade::Lost)),
        "a lying report does not make a cell ok: {:?}",
        cell(&judge, d, c)
    );
    defendant.start_publishing().await.expect("publishes again");
    reporting_until(
        &everyone,
        &publishers,
        "the judge gets the defendant again",
        || recovered(&judge, d, j, MediaKind::Audio) && recovered(&judge, d, j, MediaKind::Video),
    )
    .await;

    // The record: every transition, the alerts and the flagged report are audited.
    let url = format!("sqlite://{}", server.dir.join("openhearing.db").display());
    let store = SqliteStore::open(&url).await.expect("open the database");
    let (entries, _, _) = store
        .audit_log(hearing.hearing_id)
        .await
        .expect("store answers")
        .expect("hearing exists");
    let count = |action: &str| entries.iter().filter(|e| e.action == action).count();
    assert!(
        count("media_health") >= 8,
        "transitions audited: {}",
        count("media_health")
    );
    assert!(count("integrity_alert") >= 4, "alerts audited");
    assert_eq!(
        count("media_report_flagged"),
        1,
        "counsel's session flagged once"
    );
    let lost = entries
        .iter()
        .filter(|e| e.action == "media_health")
        .filter_map(|e| serde_json::from_str::<serde_json::Value>(&e.details).ok())
        .any(|v| {
            v["publisher"] == serde_json::json!(j)
                && v["subscriber"] == serde_json::json!(d)
                && v["to"] == "lost"
                && v["cause"] == "reports_stopped"
        });
    assert!(
        lost,
        "the outage's transition names pair, kind, to and cause"
    );

    // The archive journals the transitions, still verifies, and `archive info` shows
    // the outage of the pair.
    send(
        &judge,
        set_state(openhearing_signaling::HearingState::Closed, None),
    );
    let dir = server
        .dir
        .join("recordings")
        .join(hearing.hearing_id.to_string());
    eventually(MEDIA_WAIT, "the archive is closed and signed", || {
        dir.join("manifest.sig").exists()
    })
    .await;
    let journal = std::fs::read_to_string(dir.join("journal.jsonl")).expect("journal");
    let journaled = journal
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["type"] == "event" && e["event"]["kind"] == "media_health")
        .count();
    assert!(journaled >= 8, "transitions journaled: {journaled}");
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_openhearing"))
            .args(args)
            .arg(&dir)
            .arg("--public-key")
            .arg(server.dir.join("archive-signing.pub"))
            .output()
            .expect("openhearing runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (ok, text) = cli(&["archive", "verify"]);
    assert!(ok, "archive verify: {text}");
    let (ok, text) = cli(&["archive", "info"]);
    assert!(ok, "archive info: {text}");
    let line = text
        .lines()
        .find(|l| l.contains(JUDGE.name) && l.contains(DEFENDANT.name) && l.contains("% ok"))
        .unwrap_or_else(|| panic!("archive info names the judge → defendant pair: {text}"));
    assert!(
        !line.contains("(0 outages)"),
        "the outage is counted: {line}"
    );
    assert!(
        text.contains("reports_stopped"),
        "the outage's cause is shown: {text}"
    );

    for p in [&defendant, &counsel, &clerk] {
        let _ = p.leave().await;
    }
    server.stop().await;
}
