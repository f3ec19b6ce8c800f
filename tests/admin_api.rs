//! The admin API against the whole server over real HTTP and WebSockets: revoking a
//! link, removing a participant and closing the hearing take effect for connected
//! participants at once and refuse later joins; admin keys exist only as hashes.
//!
//! Media port range of this test binary: 43000-43199 (no test here sends media).

mod common;

use std::path::Path;
use std::time::Duration;

use common::cast::*;
use common::*;
use openhearing::config::Config;
use openhearing::server;
use openhearing_signaling::client::{ClientError, SignalingClient};
use openhearing_signaling::{ErrorCode, ServerMessage};
use serde_json::{json, Value};
use uuid::Uuid;

const STEP: Duration = Duration::from_secs(10);

async fn connect(url: &str) -> SignalingClient {
    SignalingClient::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"))
}

fn token_of(join_url: &str) -> String {
    join_url
        .split_once("#token=")
        .map(|(_, t)| t.to_owned())
        .expect("join url carries a token")
}

/// Joins with `token`; the join must be accepted.
async fn joined(url: &str, token: &str, what: &str) -> SignalingClient {
    let mut c = connect(url).await;
    c.join(token, STEP)
        .await
        .unwrap_or_else(|e| panic!("{what}: join accepted: {e}"));
    c
}

/// Joins with `token`; the join must be refused with `code` and the socket closed
/// with its close code.
async fn join_refused(url: &str, token: &str, code: ErrorCode, what: &str) {
    let mut c = connect(url).await;
    match c.join(token, STEP).await {
        Err(ClientError::Refused { code: got, message }) => {
            assert_eq!(got, code, "{what}: refusal code ({message})");
            assert!(!message.is_empty(), "{what}: the refusal explains itself");
        }
        Ok(_) => panic!("{what}: the join was accepted"),
        Err(e) => panic!("{what}: expected refusal {code}, got {e}"),
    }
    let (close, _) = wait_closed(&mut c, what).await;
    assert_eq!(close, code.close_code(), "{what}: close code");
}

async fn wait_closed(c: &mut SignalingClient, what: &str) -> (u16, String) {
    for _ in 0..10_000 {
        match c.recv_timeout(STEP).await {
            Ok(_) => continue,
            Err(ClientError::Closed) => break,
            Err(e) => panic!("{what}: socket not closed: {e}"),
        }
    }
    c.close_info()
        .unwrap_or_else(|| panic!("{what}: the server sent no close frame"))
}

/// A connected client must be told `code` (fatally) and then closed.
async fn kicked(c: &mut SignalingClient, code: ErrorCode, what: &str) {
    for _ in 0..1000 {
        match c.recv_timeout(STEP).await {
            Ok(ServerMessage::Error {
                code: got, fatal, ..
            }) if got == code => {
                assert!(fatal, "{what}: {code} is fatal");
                let (close, _) = wait_closed(c, what).await;
                assert_eq!(close, code.close_code(), "{what}: close code");
                return;
            }
            Ok(_) => continue,
            Err(e) => panic!("{what}: expected error {code}, got {e}"),
        }
    }
    panic!("{what}: no {code} error");
}

async fn api(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(method, format!("{}{path}", server.base()))
        .bearer_auth(ADMIN_KEY);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("admin API answers");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revoke_remove_and_close_take_effect_at_once() {
    let server = TestServer::start(43000, 43099).await;
    let h = server.hearing_of(&[JUDGE, DEFENDANT, COUNSEL]).await;
    let url = server.ws_url(h.hearing_id);
    let base = format!("/api/v1/hearings/{}", h.hearing_id);
    let judge = h.by_role("presiding_judge");
    let defendant = h.by_role("defendant");
    let counsel = h.by_role("defence_counsel");

    // Revoke: the connected defendant is disconnected with `link_revoked`, the old
    // token is refused from then on, and the new link works.
    let mut d = joined(&url, &defendant.token(), "defendant").await;
    let (s, revoked) = api(
        &server,
        reqwest::Method::POST,
        &format!("{base}/participants/{}/revoke", defendant.participant_id),
        None,
    )
    .await;
    assert_eq!(s, 200, "{revoked}");
    assert_eq!(revoked["participant"]["link_version"], 1);
    kicked(&mut d, ErrorCode::LinkRevoked, "revoked while connected").await;
    join_refused(
        &url,
        &defendant.token(),
        ErrorCode::LinkRevoked,
        "old link after revoke",
    )
    .await;
    let new_token = token_of(revoked["join_url"].as_str().expect("join_url"));
    let mut d = joined(&url, &new_token, "defendant with the new link").await;
    // Revoking again invalidates the second link too.
    let (s, again) = api(
        &server,
        reqwest::Method::POST,
        &format!("{base}/participants/{}/revoke", defendant.participant_id),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(again["participant"]["link_version"], 2);
    kicked(&mut d, ErrorCode::LinkRevoked, "second link revoked").await;
    join_refused(&url, &new_token, ErrorCode::LinkRevoked, "second link").await;

    // Remove: the connected counsel is disconnected with `removed` and stays out.
    let mut c = joined(&url, &counsel.token(), "counsel").await;
    let (s, removed) = api(
        &server,
        reqwest::Method::DELETE,
        &format!("{base}/participants/{}?reason=test", counsel.participant_id),
        None,
    )
    .await;
    assert_eq!(s, 200, "{removed}");
    assert_eq!(removed["admission"], "removed");
    kicked(&mut c, ErrorCode::Removed, "removed while connected").await;
    join_refused(
        &url,
        &counsel.token(),
        ErrorCode::Removed,
        "removed counsel",
    )
    .await;

    // A participant added through the API can join with the link it returns.
    let (s, added) = api(
        &server,
        reqwest::Method::POST,
        &format!("{base}/participants"),
        Some(json!({"name": "Phạm Văn D", "role": "witness", "site": "Nhà riêng"})),
    )
    .await;
    assert_eq!(s, 201, "{added}");
    let witness_token = token_of(added["join_url"].as_str().expect("join_url"));
    let w = joined(&url, &witness_token, "added witness").await;
    w.close();

    // Close: everyone connected is disconnected with `hearing_closed`; every link,
    // fresh or old, is refused afterwards.
    let mut j = joined(&url, &judge.token(), "judge").await;
    for state in ["open", "closed"] {
        let (s, body) = api(
            &server,
            reqwest::Method::POST,
            &format!("{base}/state"),
            Some(json!({ "state": state })),
        )
        .await;
        assert_eq!(s, 200, "{state}: {body}");
    }
    kicked(
        &mut j,
        ErrorCode::HearingClosed,
        "judge when the hearing closes",
    )
    .await;
    join_refused(
        &url,
        &judge.token(),
        ErrorCode::HearingClosed,
        "join after close",
    )
    .await;
    let (s, links) = api(
        &server,
        reqwest::Method::GET,
        &format!("{base}/links"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let fresh = links["participants"][0]["join_url"].as_str().expect("link");
    join_refused(
        &url,
        &token_of(fresh),
        ErrorCode::HearingClosed,
        "fresh link after close",
    )
    .await;

    // The audit trail has all of it, by the configured key, and verifies.
    let (s, audit) = api(
        &server,
        reqwest::Method::GET,
        &format!("{base}/audit"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(audit["verification"]["ok"], true, "{audit}");
    let admin_actions: Vec<&str> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["actor"] == "admin:config")
        .map(|e| e["action"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        admin_actions,
        [
            "hearing_created",
            "link_revoked",
            "link_revoked",
            "remove",
            "participant_added",
            "state_change",
            "state_change"
        ]
    );
    let (_, detail) = api(&server, reqwest::Method::GET, &base, None).await;
    assert_eq!(detail["status"]["state"], "closed");
    assert_eq!(detail["state_history"][1]["state"], "closed");
    assert_eq!(detail["state_history"][1]["actor"], "admin:config");

    server.stop().await;
}

/// A configuration without `auth.admin_api_key`, so the server manages its keys.
fn keyless_config(dir: &Path, port_min: u16, port_max: u16) -> Config {
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
public_url = "http://127.0.0.1:1"
[server.tls]
enabled = false
[data]
dir = "{}"
[media]
bind_address = "127.0.0.1"
udp_port_min = {port_min}
udp_port_max = {port_max}
"#,
        dir.display()
    );
    Config::from_toml_str(&text, "keyless test config").expect("config is valid")
}

/// Serves `config` until the returned sender is dropped or fired.
async fn serve(
    config: &Config,
) -> (
    String,
    Option<String>,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let prepared = server::prepare(config).await.expect("server prepares");
    let generated = prepared.generated_admin_key.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = server::run(listener, prepared, async {
            let _ = stopped.await;
        })
        .await;
    });
    (base, generated, stop, task)
}

async fn list_status(base: &str, key: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{base}/api/v1/hearings"))
        .bearer_auth(key)
        .send()
        .await
        .expect("admin API answers")
        .status()
        .as_u16()
}

/// Every file of the database (main file, WAL, shared memory) as bytes.
fn database_bytes(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for name in ["openhearing.db", "openhearing.db-wal", "openhearing.db-shm"] {
        if let Ok(bytes) = std::fs::read(dir.join(name)) {
            all.extend(bytes);
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_keys_are_stored_only_as_hashes() {
    init_tracing();
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    let config = keyless_config(dir, 43100, 43149);

    // First start: a key is generated, works, and is nowhere on disk in plaintext.
    let (base, generated, stop, task) = serve(&config).await;
    let key = generated.expect("a key is generated at the first start");
    assert_eq!(list_status(&base, &key).await, 200);
    assert_eq!(list_status(&base, "ohk_wrong").await, 401);
    let db = database_bytes(dir);
    assert!(!db.is_empty(), "the database exists");
    assert!(
        !contains(&db, &key),
        "the plaintext key is not in the database"
    );
    let hash = openhearing::auth::admin_key_sha256(&key);
    assert!(contains(&db, &hash), "its SHA-256 is");
    assert!(
        !dir.join("admin-api-key").exists(),
        "no key file is written"
    );
    for entry in std::fs::read_dir(dir).expect("data dir") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            let bytes = std::fs::read(&path).expect("read");
            assert!(
                !contains(&bytes, &key),
                "{} holds the plaintext key",
                path.display()
            );
        }
    }
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(15), task).await;

    // Second start: no new key; the first one still works.
    let (base, generated, stop, task) = serve(&config).await;
    assert_eq!(generated, None, "no key is generated when one is stored");
    assert_eq!(list_status(&base, &key).await, 200);
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_plaintext_key_file_is_imported_and_deleted() {
    init_tracing();
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    let legacy = format!("ohk_{}", Uuid::new_v4().simple());
    std::fs::write(dir.join("admin-api-key"), format!("{legacy}\n")).expect("write");
    let config = keyless_config(dir, 43150, 43199);

    let (base, generated, stop, task) = serve(&config).await;
    assert_eq!(generated, None, "the imported key is the key");
    assert!(!dir.join("admin-api-key").exists(), "the file is deleted");
    assert_eq!(list_status(&base, &legacy).await, 200, "the old key works");
    assert!(!contains(&database_bytes(dir), &legacy));
    // The import is named `initial` and creating a hearing audits it as such.
    let resp = reqwest::Client::new()
        .post(format!("{base}/api/v1/hearings"))
        .bearer_auth(&legacy)
        .json(&json!({
            "case_number": "HS-9/2026",
            "title": "t",
            "participants": [{"name": "A", "role": "presiding_judge", "site": "P1"}]
        }))
        .send()
        .await
        .expect("create");
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await.expect("json");
    let audit: Value = reqwest::Client::new()
        .get(format!(
            "{base}/api/v1/hearings/{}/audit",
            created["hearing_id"].as_str().expect("id")
        ))
        .bearer_auth(&legacy)
        .send()
        .await
        .expect("audit")
        .json()
        .await
        .expect("json");
    assert_eq!(audit["entries"][0]["actor"], "admin:initial", "{audit}");
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
}
