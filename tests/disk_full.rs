//! Item 2 of the hardening review: a full disk mid-hearing. The server's data folder
//! is a small tmpfs the test mounts (the test must run as root, as CI does); a
//! hearing runs, the filesystem is filled to the last byte, and then:
//! - an operator's state change answers 503 `store_unavailable` (it used to answer
//!   200 and store nothing), the judge's gets the `store_unavailable` error, and
//!   nobody else is told of either; a join is refused the same way;
//! - `/readyz` answers 503;
//! - a participant who leaves meanwhile is a fact: the others are told, and its
//!   audit entry waits for the store instead of being dropped.
//!
//! Then the space is freed and, without a restart, `/readyz` answers 200 again and
//! the same change succeeds (it used to fail for good with `database is locked`).
//! At the end the audit chain verifies and holds exactly what the participants were
//! told, and the stored state is what they last saw.

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{cast, event_count, join, next_error, send, set_state, wait_new_event, TestServer};
use openhearing_signaling::client::{ClientError, SignalingClient};
use openhearing_signaling::{ErrorCode, HearingState, ServerMessage};
use serde_json::{json, Value};

/// A tmpfs mounted on a fresh temporary folder, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let uid = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Uid:"))
                    .and_then(|l| l.split_whitespace().next().map(str::to_owned))
            })
            .unwrap_or_default();
        assert_eq!(
            uid, "0",
            "tests/disk_full.rs mounts a tmpfs and must run as root (CI does: sudo ./scripts/test.sh)"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "mount -t tmpfs on {}",
            dir.path().display()
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy, so a failing test with files still open does not leave the mount.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Fills the filesystem of `path` to the last byte; the file is the filler.
fn fill(path: &Path) -> PathBuf {
    let file = path.join("filler");
    let mut f = std::fs::File::create(&file).expect("filler file");
    for chunk in [1 << 20, 4096, 1] {
        let block = vec![0xA5u8; chunk];
        loop {
            match f.write(&block) {
                Ok(n) if n == block.len() => {}
                Ok(_) => break, // short write: this size no longer fits
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => panic!("filling {}: {e}", file.display()),
            }
        }
    }
    let _ = f.sync_all();
    file
}

async fn readyz(server: &TestServer) -> u16 {
    reqwest::get(format!("{}/readyz", server.base()))
        .await
        .expect("readyz answers")
        .status()
        .as_u16()
}

async fn post_state(server: &TestServer, hearing: uuid::Uuid, body: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/hearings/{hearing}/state", server.base()))
        .bearer_auth(common::ADMIN_KEY)
        .json(&body)
        .send()
        .await
        .expect("admin API answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn get(server: &TestServer, path: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{}{path}", server.base()))
        .bearer_auth(common::ADMIN_KEY)
        .send()
        .await
        .expect("admin API answers")
        .json()
        .await
        .expect("JSON")
}

/// The lifecycle states a participant was told, in order, from its welcome on.
fn states_told(p: &openhearing_peer::Participant) -> Vec<HearingState> {
    let mut states = vec![p.welcome().status.state];
    for m in p.events() {
        if let ServerMessage::HearingStatus { status } = m {
            if states.last() != Some(&status.state) {
                states.push(status.state);
            }
        }
    }
    states
}

fn is_state(m: &ServerMessage, state: HearingState) -> bool {
    matches!(m, ServerMessage::HearingStatus { status } if status.state == state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_refuses_changes_tells_nobody_and_recovers_without_restart() {
    let tmpfs = Tmpfs::mount("16m");
    let server =
        TestServer::start_in(tmpfs.path(), 44500, 44549, "[recording]\nenabled = false\n").await;
    let hearing = server
        .hearing_of(&[cast::JUDGE, cast::DEFENDANT, cast::OBSERVER, cast::COUNSEL])
        .await;
    let id = hearing.hearing_id;
    let judge = join(&server, &hearing, "presiding_judge", false).await;
    let defendant = join(&server, &hearing, "defendant", false).await;
    let observer = join(&server, &hearing, "observer", false).await;
    assert_eq!(readyz(&server).await, 200);

    // Stored while there is space.
    let seen = event_count(&defendant);
    send(&judge, set_state(HearingState::Open, None));
    wait_new_event(&defendant, seen, "the hearing opens", |m| {
        is_state(m, HearingState::Open)
    })
    .await;

    let filler = fill(tmpfs.path());

    // The operator's change is refused, not acknowledged.
    let (status, body) = post_state(&server, id, json!({"state": "in_session"})).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "store_unavailable", "{body}");

    // So is the judge's, and the defendant is told of neither.
    let (j0, d0) = (event_count(&judge), event_count(&defendant));
    send(&judge, set_state(HearingState::InSession, None));
    assert_eq!(next_error(&judge, j0).await, ErrorCode::StoreUnavailable);

    // A join is refused too: the joiner is not let in, nobody is told.
    let mut counsel = SignalingClient::connect(&server.ws_url(id))
        .await
        .expect("socket opens");
    match counsel
        .join(
            &hearing.by_role("defence_counsel").token(),
            Duration::from_secs(10),
        )
        .await
    {
        Err(ClientError::Refused { code, .. }) => assert_eq!(code, ErrorCode::StoreUnavailable),
        other => panic!("a join on a full disk: {other:?}"),
    }
    assert_eq!(readyz(&server).await, 503, "not ready while writes fail");

    // A leave cannot be refused: the others are told, its record waits.
    observer.leave().await.expect("observer leaves");
    let observer_id = observer.id();
    wait_new_event(&judge, j0, "the judge learns the observer left", |m| {
        matches!(m, ServerMessage::ParticipantLeft { participant_id, .. } if *participant_id == observer_id)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (p, skip) in [(&judge, j0), (&defendant, d0)] {
        let told: Vec<&str> = p.events()[skip..]
            .iter()
            .filter(|m| {
                matches!(
                    m,
                    ServerMessage::HearingStatus { .. } | ServerMessage::ParticipantJoined { .. }
                )
            })
            .map(|m| m.kind())
            .collect();
        assert!(
            told.is_empty(),
            "told of a change that was not stored: {told:?}"
        );
    }

    // Space returns: ready again, without a restart.
    std::fs::remove_file(&filler).expect("free the space");
    let start = Instant::now();
    while readyz(&server).await != 200 {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "/readyz still 503 15 s after the space was freed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let d1 = event_count(&defendant);
    let (status, body) = post_state(&server, id, json!({"state": "in_session"})).await;
    assert_eq!(
        status, 200,
        "the same change after the space returned: {body}"
    );
    wait_new_event(&defendant, d1, "the session starts", |m| {
        is_state(m, HearingState::InSession)
    })
    .await;
    let d2 = event_count(&defendant);
    send(
        &judge,
        set_state(HearingState::Suspended, Some("nghỉ giải lao")),
    );
    wait_new_event(&defendant, d2, "the session is suspended", |m| {
        is_state(m, HearingState::Suspended)
    })
    .await;

    // What is stored is what the participants were told.
    let told = [
        HearingState::Scheduled,
        HearingState::Open,
        HearingState::InSession,
        HearingState::Suspended,
    ];
    assert_eq!(states_told(&defendant), told);
    assert_eq!(states_told(&judge), told);
    let stored = get(&server, &format!("/api/v1/hearings/{id}")).await;
    assert_eq!(stored["status"]["state"], "suspended", "{stored}");
    let history: Vec<&str> = stored["state_history"]
        .as_array()
        .expect("state history")
        .iter()
        .filter_map(|s| s["state"].as_str())
        .collect();
    assert_eq!(history, ["open", "in_session", "suspended"], "{stored}");

    let audit = get(&server, &format!("/api/v1/hearings/{id}/audit")).await;
    assert_eq!(audit["verification"]["ok"], true, "{audit}");
    let entries = audit["entries"].as_array().expect("entries");
    let changes: Vec<String> = entries
        .iter()
        .filter(|e| e["action"] == "state_change")
        .filter_map(|e| e["details"]["to"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(changes, ["open", "in_session", "suspended"], "{audit}");
    let of = |action: &str, who: &str| {
        let subject = format!("participant:{who}");
        entries
            .iter()
            .filter(|e| e["action"] == action && e["subject"].as_str() == Some(&subject))
            .count()
    };
    assert_eq!(
        of("leave", &observer_id.to_string()),
        1,
        "the observer's leave, recorded during the full disk, was stored later: {audit}"
    );
    let counsel_id = hearing.by_role("defence_counsel").participant_id;
    assert_eq!(
        of("join", &counsel_id.to_string()),
        0,
        "the refused join left no trace: {audit}"
    );

    server.stop().await;
    drop(tmpfs);
}
