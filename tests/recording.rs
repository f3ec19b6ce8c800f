//! The recorder inside the server: a hearing of webrtc 0.21 clients sending real VP8
//! and Opus is recorded while in session; the archive's segments decode (ffmpeg),
//! their durations match what was recorded, the archive verifies with the server's
//! key, and media the policy withholds (lobby, court mute, private room) never
//! reaches it — the time is marked as a gap with its cause instead.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::cast::*;
use common::*;
use openhearing_signaling::{ClientMessage, HearingState, ServerMessage};
use serde_json::Value;
use uuid::Uuid;

/// Waits (bounded) until the archive of `hearing` is closed and signed.
async fn closed_archive(server: &TestServer, hearing: Uuid) -> PathBuf {
    let dir = server.dir.join("recordings").join(hearing.to_string());
    let start = Instant::now();
    while !dir.join("manifest.sig").exists() {
        assert!(
            start.elapsed() < MEDIA_WAIT,
            "the archive {} was not closed and signed",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    dir
}

fn journal(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("journal.jsonl"))
        .expect("journal")
        .lines()
        .map(|l| serde_json::from_str(l).expect("journal line is JSON"))
        .collect()
}

fn of_type<'a>(entries: &'a [Value], t: &str) -> Vec<&'a Value> {
    entries.iter().filter(|e| e["type"] == t).collect()
}

/// Decodes a whole file; any decoder error fails.
fn assert_decodes(file: &Path) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{} does not decode cleanly: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sum of ffprobe durations of a track's segments.
fn track_seconds(dir: &Path, entries: &[Value], track: &str) -> f64 {
    of_type(entries, "segment")
        .iter()
        .filter(|s| s["track_id"] == track)
        .map(|s| {
            let file = dir.join(s["file"].as_str().expect("file"));
            ffprobe_duration(&file)
                .unwrap_or_else(|| panic!("ffprobe duration of {}", file.display()))
        })
        .sum()
}

fn verify_cli(server: &TestServer, dir: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_openhearing"))
        .args(["archive", "verify"])
        .arg(dir)
        .arg("--public-key")
        .arg(server.dir.join("archive-signing.pub"))
        .output()
        .expect("openhearing runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Test 1: three participants' real VP8 and Opus recorded for ~20 s; every segment
/// decodes; every track's duration (ffprobe) is within 0.5 s of the time it was sent
/// while in session; the archive verifies with the server's public key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_recorded_decodable_and_verifiable() {
    let server = TestServer::start(43600, 43649).await;
    let (hearing, [judge, prosecutor, defendant]) =
        server.seat([JUDGE, PROSECUTOR, DEFENDANT]).await;
    send(&judge, set_state(HearingState::Open, None));
    admit(&judge, &defendant).await;
    let all = [&judge, &prosecutor, &defendant];
    publish(&all).await;
    wait_exchange(&all, &all, 10, 25).await;

    // Recording starts with the session and is announced to everyone.
    send(&judge, set_state(HearingState::InSession, None));
    let started = Instant::now();
    for p in all {
        wait_event(
            p,
            "the recording indicator",
            |m| matches!(m, ServerMessage::HearingStatus { status } if status.recording),
        )
        .await;
    }
    tokio::time::sleep(Duration::from_secs(20)).await;
    send(&judge, set_state(HearingState::Closed, None));
    let recorded = started.elapsed().as_secs_f64();
    let dir = closed_archive(&server, hearing.hearing_id).await;

    let entries = journal(&dir);
    let tracks = of_type(&entries, "track_added");
    assert_eq!(tracks.len(), 6, "audio and video of three participants");
    for t in &tracks {
        let id = t["track"]["track_id"].as_str().expect("track id");
        let kind = t["track"]["kind"].as_str().expect("kind");
        let secs = track_seconds(&dir, &entries, id);
        assert!(
            (secs - recorded).abs() <= 0.5,
            "{kind} track {id}: {secs:.2} s recorded vs {recorded:.2} s sent in session"
        );
    }
    for s in of_type(&entries, "segment") {
        assert_decodes(&dir.join(s["file"].as_str().expect("file")));
    }
    let (ok, text) = verify_cli(&server, &dir);
    assert!(ok, "archive verify: {text}");
    server.stop().await;
}

/// Test 6: while a participant waits in the lobby, is muted by the court or is in a
/// private consultation, none of their withheld media reaches the archive, and the
/// record marks the time with the cause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withheld_media_never_reaches_the_archive() {
    let server = TestServer::start(43650, 43699).await;
    let (hearing, [judge, defendant, counsel]) = server
        .seat([JUDGE, DEFENDANT.of_party(PARTY), COUNSEL.of_party(PARTY)])
        .await;
    open_session(&judge).await;
    admit(&judge, &counsel).await;
    publish(&[&judge, &defendant, &counsel]).await;
    wait_exchange(&[&judge, &counsel], &[&judge, &counsel], 10, 25).await;
    // The defendant publishes from the lobby for a while: nothing of theirs may be
    // recorded until they are admitted.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let admitted_at = chrono::Utc::now();
    admit(&judge, &defendant).await;
    wait_exchange(&[&judge], &[&defendant], 10, 25).await;

    // Counsel is muted for a while, then unmuted on request.
    send(
        &judge,
        ClientMessage::Mute {
            participant_id: counsel.id(),
        },
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    send(
        &judge,
        ClientMessage::RequestUnmute {
            participant_id: counsel.id(),
        },
    );
    wait_event(&counsel, "unmute request", |m| {
        matches!(m, ServerMessage::UnmuteRequested { .. })
    })
    .await;
    send(&counsel, ClientMessage::AcceptUnmute);

    // A private consultation (approved by the judge), then back.
    send(
        &defendant,
        ClientMessage::RequestConsultation {
            participant_id: counsel.id(),
        },
    );
    let request = match wait_event(&judge, "request", |m| {
        matches!(m, ServerMessage::HearingStatus { status } if !status.consultation_requests.is_empty())
    })
    .await
    {
        ServerMessage::HearingStatus { status } => status.consultation_requests[0].id,
        _ => unreachable!(),
    };
    send(
        &judge,
        ClientMessage::AnswerConsultation {
            request_id: request,
            approve: true,
        },
    );
    let room = match wait_event(
        &counsel,
        "room",
        |m| matches!(m, ServerMessage::HearingStatus { status } if !status.rooms.is_empty()),
    )
    .await
    {
        ServerMessage::HearingStatus { status } => status.rooms[0].id,
        _ => unreachable!(),
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    send(&counsel, ClientMessage::EndConsultation { room_id: room });
    tokio::time::sleep(Duration::from_secs(2)).await;
    send(&judge, set_state(HearingState::Closed, None));
    let dir = closed_archive(&server, hearing.hearing_id).await;
    let entries = journal(&dir);

    // A track withheld and recorded again is re-added: count distinct ids.
    let tracks_of = |who: Uuid| -> Vec<String> {
        let ids: std::collections::BTreeSet<String> = of_type(&entries, "track_added")
            .iter()
            .filter(|t| t["track"]["participant_id"] == who.to_string())
            .map(|t| t["track"]["track_id"].as_str().expect("id").to_owned())
            .collect();
        ids.into_iter().collect()
    };
    // Lobby: the defendant's first recorded media is after their admission.
    let defendant_tracks = tracks_of(defendant.id());
    assert_eq!(defendant_tracks.len(), 2);
    for s in of_type(&entries, "segment") {
        if defendant_tracks.iter().any(|t| s["track_id"] == t.as_str()) {
            let start: chrono::DateTime<chrono::Utc> =
                s["start"].as_str().expect("start").parse().expect("time");
            assert!(
                start >= admitted_at - chrono::Duration::milliseconds(200),
                "a segment of the defendant starts at {start}, before their admission at {admitted_at}"
            );
        }
    }
    // Mute and private room: marked gaps with their cause, for the right tracks.
    let gaps = of_type(&entries, "gap");
    let gap_causes = |track: &str| -> Vec<String> {
        gaps.iter()
            .filter(|g| g["track_id"] == track)
            .map(|g| g["cause"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    let counsel_tracks = tracks_of(counsel.id());
    let counsel_audio = of_type(&entries, "track_added")
        .iter()
        .find(|t| {
            t["track"]["participant_id"] == counsel.id().to_string()
                && t["track"]["kind"] == "audio"
        })
        .map(|t| t["track"]["track_id"].as_str().expect("id").to_owned())
        .expect("counsel's audio track");
    assert!(
        gap_causes(&counsel_audio).contains(&"muted".to_owned()),
        "muted gap: {:?}",
        gap_causes(&counsel_audio)
    );
    for t in counsel_tracks.iter().chain(&defendant_tracks) {
        assert!(
            gap_causes(t).contains(&"private_room".to_owned()),
            "private_room gap for {t}: {:?}",
            gap_causes(t)
        );
    }
    // No segment of a member overlaps their time in the private room.
    for g in gaps
        .iter()
        .filter(|g| g["cause"] == "private_room" || g["cause"] == "muted")
    {
        let (from, to): (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) = (
            g["from"].as_str().expect("from").parse().expect("time"),
            g["to"].as_str().expect("to").parse().expect("time"),
        );
        for s in of_type(&entries, "segment")
            .iter()
            .filter(|s| s["track_id"] == g["track_id"])
        {
            let (start, end): (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) = (
                s["start"].as_str().expect("start").parse().expect("time"),
                s["end"].as_str().expect("end").parse().expect("time"),
            );
            let slack = chrono::Duration::milliseconds(300);
            assert!(
                end <= from + slack || start >= to - slack,
                "segment {} ({start}..{end}) overlaps a {} gap ({from}..{to})",
                s["file"],
                g["cause"]
            );
        }
    }
    for s in of_type(&entries, "segment") {
        assert_decodes(&dir.join(s["file"].as_str().expect("file")));
    }
    let (ok, text) = verify_cli(&server, &dir);
    assert!(ok, "archive verify: {text}");
    server.stop().await;
}

/// Test 7: the recordings folder becomes unwritable mid-hearing: media to the
/// participants goes on, the presiding judge is alerted, the record marks the gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_disk_alerts_the_judge_and_never_stops_the_hearing() {
    let server = TestServer::start_with(43750, 43799, "[recording]\nsegment_seconds = 1\n").await;
    let (hearing, [judge, prosecutor]) = server.seat([JUDGE, PROSECUTOR]).await;
    open_session(&judge).await;
    publish(&[&judge, &prosecutor]).await;
    wait_exchange(&[&judge, &prosecutor], &[&judge, &prosecutor], 10, 25).await;

    // The prosecutor's folder in the archive turns into a file: every further
    // segment of theirs fails to be written.
    let archive = server
        .dir
        .join("recordings")
        .join(hearing.hearing_id.to_string());
    let folder = archive.join(prosecutor.id().to_string());
    let start = Instant::now();
    while !folder.is_dir() {
        assert!(
            start.elapsed() < MEDIA_WAIT,
            "the prosecutor's folder never appeared"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let moved = server.dir.join("moved-away");
    std::fs::rename(&folder, &moved).expect("move the folder away");
    std::fs::write(&folder, b"not a folder").expect("a file in its place");

    let alert = wait_event(&judge, "a recording alert for the judge", |m| {
        matches!(m, ServerMessage::RecordingAlert { .. })
    })
    .await;
    if let ServerMessage::RecordingAlert { message } = alert {
        assert!(!message.is_empty());
    }
    assert!(
        !prosecutor
            .events()
            .iter()
            .any(|m| matches!(m, ServerMessage::RecordingAlert { .. })),
        "only those who run the hearing are alerted"
    );
    // Media between the participants goes on.
    let before = received_from(&judge, prosecutor.id());
    eventually(MEDIA_WAIT, "media keeps flowing despite the disk", || {
        let now = received_from(&judge, prosecutor.id());
        now.0 >= before.0 + 20 && now.1 >= before.1 + 50
    })
    .await;
    send(&judge, set_state(HearingState::Closed, None));
    let dir = closed_archive(&server, hearing.hearing_id).await;
    let entries = journal(&dir);
    assert!(
        of_type(&entries, "gap")
            .iter()
            .any(|g| g["cause"] == "disk_error"),
        "the record marks the disk error as a gap"
    );
    server.stop().await;
}
