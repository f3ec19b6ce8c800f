//! Test 3 of the recorder: the real `openhearing` server process is killed with
//! SIGKILL mid-recording. Every segment that closed before the kill decodes and is
//! intact; on the next start the server seals the interrupted archive, and
//! `archive verify` reports exactly that it was interrupted (and nothing else), and
//! the hearing's audit trail names the sessions the kill cut off (`server_restarted`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{fixtures, free_port, ADMIN_KEY, MEDIA_WAIT};
use openhearing_peer::{JoinOptions, Participant};
use openhearing_signaling::{ClientMessage, HearingState, ServerMessage, StateChange};
use serde_json::Value;

struct Server {
    child: Child,
    base: String,
}

fn start_server(dir: &Path, port: u16) -> Server {
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        common::config_text(
            &dir.join("data"),
            port,
            43700,
            43749,
            "[recording]\nsegment_seconds = 2",
        ),
    )
    .expect("config");
    let child = Command::new(env!("CARGO_BIN_EXE_openhearing"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("server starts");
    Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
    }
}

async fn ready(s: &Server) {
    let start = Instant::now();
    loop {
        if let Ok(r) = reqwest::get(format!("{}/readyz", s.base)).await {
            if r.status().is_success() {
                return;
            }
        }
        assert!(
            start.elapsed() < MEDIA_WAIT,
            "the server never became ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn journal(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("journal.jsonl"))
        .expect("journal")
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn verify(data: &Path, archive: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_openhearing"))
        .args(["archive", "verify"])
        .arg(archive)
        .arg("--public-key")
        .arg(data.join("archive-signing.pub"))
        .output()
        .expect("openhearing runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_leaves_a_verifiable_archive_sealed_as_interrupted() {
    common::init_tracing();
    let tmp = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let mut server = start_server(tmp.path(), port);
    ready(&server).await;

    let body = serde_json::json!({
        "case_number": "HS-9/2026",
        "title": "Phiên tòa ghi hình",
        "participants": [
            {"name": "Nguyễn Văn A", "role": "presiding_judge", "site": "Phòng xử án 1"},
            {"name": "Hoàng E", "role": "prosecutor", "site": "Viện kiểm sát"},
        ],
    });
    let created = common::CreatedHearing::create_at(&server.base, &body).await;
    let hearing = created.hearing_id.to_string();
    let ws = format!("ws://127.0.0.1:{port}/ws/hearings/{hearing}");
    let mut joined: Vec<Participant> = Vec::new();
    for p in &created.participants {
        let token = p.token();
        let part = Participant::join(
            &ws,
            &token,
            JoinOptions {
                publish: true,
                fixtures: Some(fixtures()),
                ..Default::default()
            },
        )
        .await
        .expect("join");
        joined.push(part);
    }
    let judge = &joined[0];
    for state in [HearingState::Open, HearingState::InSession] {
        judge
            .signaling_sender()
            .expect("socket")
            .send(&ClientMessage::SetState {
                change: StateChange {
                    state,
                    reason: None,
                    adjourned_to: None,
                },
            })
            .expect("send");
    }
    for p in &joined {
        p.start_publishing().await.expect("publish");
    }
    let start = Instant::now();
    while !judge
        .events()
        .iter()
        .any(|m| matches!(m, ServerMessage::HearingStatus { status } if status.recording))
    {
        assert!(start.elapsed() < MEDIA_WAIT, "recording never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Wait until a few 2-second segments have closed, then kill -9.
    let data = tmp.path().join("data");
    let archive: PathBuf = data.join("recordings").join(&hearing);
    let start = Instant::now();
    loop {
        let segments = if archive.join("journal.jsonl").exists() {
            journal(&archive)
                .iter()
                .filter(|e| e["type"] == "segment")
                .count()
        } else {
            0
        };
        if segments >= 6 {
            break;
        }
        assert!(
            start.elapsed() < MEDIA_WAIT,
            "segments never closed ({segments})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.child.kill().expect("SIGKILL");
    let _ = server.child.wait();
    for p in &joined {
        let _ = p.close_abruptly().await;
    }

    // Everything that closed before the kill decodes and matches its hash.
    let entries = journal(&archive);
    let segments: Vec<&Value> = entries.iter().filter(|e| e["type"] == "segment").collect();
    assert!(segments.len() >= 6);
    for s in &segments {
        let file = archive.join(s["file"].as_str().expect("file"));
        let bytes = std::fs::read(&file).expect("segment exists");
        use sha2::Digest;
        assert_eq!(
            hex::encode(sha2::Sha256::digest(&bytes)),
            s["sha256"].as_str().expect("hash"),
            "{} matches its journaled hash",
            file.display()
        );
        let out = Command::new("ffmpeg")
            .args(["-v", "error", "-nostdin", "-i"])
            .arg(&file)
            .args(["-f", "null", "-"])
            .output()
            .expect("ffmpeg");
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{} decodes: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(
        !archive.join("manifest.json").exists(),
        "no manifest before sealing"
    );

    // The next start seals it; verify reports the interruption and nothing else.
    let mut server = start_server(tmp.path(), port);
    ready(&server).await;
    let start = Instant::now();
    while !archive.join("manifest.sig").exists() {
        assert!(
            start.elapsed() < MEDIA_WAIT,
            "the interrupted archive was not sealed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, text) = verify(&data, &archive);
    let problems: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("- "))
        .collect();
    assert_eq!(code, 1, "an interrupted archive is not a clean one: {text}");
    assert_eq!(problems.len(), 1, "exactly one finding: {text}");
    assert!(
        problems[0].contains("interrupted at"),
        "the finding is the interruption: {text}"
    );
    assert!(
        journal(&archive)
            .iter()
            .any(|e| e["type"] == "archive_sealed_interrupted"),
        "the journal marks where it was cut"
    );

    // The audit trail says the server, not the participants, ended their sessions:
    // one `server_restarted` entry naming both, and the chain still verifies.
    let trail: Value = reqwest::Client::new()
        .get(format!("{}/api/v1/hearings/{hearing}/audit", server.base))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("admin API")
        .json()
        .await
        .expect("JSON");
    assert_eq!(trail["verification"]["ok"], true, "{trail}");
    let restarts: Vec<&Value> = trail["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["action"] == "server_restarted")
        .collect();
    assert_eq!(
        restarts.len(),
        1,
        "one entry for the one unclean stop: {trail}"
    );
    let mut lost: Vec<&str> = restarts[0]["details"]["sessions_lost"]
        .as_array()
        .expect("sessions_lost")
        .iter()
        .filter_map(|s| s["participant_id"].as_str())
        .collect();
    lost.sort_unstable();
    let mut everyone: Vec<String> = created
        .participants
        .iter()
        .map(|p| p.participant_id.to_string())
        .collect();
    everyone.sort_unstable();
    assert_eq!(lost, everyone, "both sessions were cut off by the kill");
    let _ = server.child.kill();
    let _ = server.child.wait();
}
