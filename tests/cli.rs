//! The real `openhearing` binary: `config check` names the bad key (or environment
//! variable) and the file, and `hearing create` against a running server prints join
//! links that actually let participants into the hearing with media.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::*;
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_openhearing");
/// Bound on one CLI run; the commands answer in well under a second.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// The binary with a clean environment: no OPENHEARING_* variable of the caller's
/// leaks in, and the working directory is a scratch folder.
fn openhearing(cwd: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("OPENHEARING_") {
            cmd.env_remove(&k);
        }
    }
    cmd.current_dir(cwd)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true);
    cmd
}

async fn run(mut cmd: Command) -> Output {
    tokio::time::timeout(RUN_LIMIT, cmd.output())
        .await
        .expect("the CLI finishes")
        .expect("the CLI starts")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_check_names_the_bad_key_and_where_it_came_from() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();

    // Unknown key (a typo): exit 1, naming the full key and the file.
    let typo = dir.join("typo.toml");
    std::fs::write(&typo, "[media]\nudp_port_mn = 1\n").unwrap();
    let mut cmd = openhearing(dir);
    cmd.args(["config", "check"]).arg(&typo);
    let out = run(cmd).await;
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "unknown key fails: {all}");
    assert!(all.contains("media.udp_port_mn"), "names the key: {all}");
    assert!(all.contains("typo.toml"), "names the file: {all}");

    // Invalid value: exit 1, naming the key and the file.
    let bad = dir.join("bad-value.toml");
    std::fs::write(&bad, "[media]\nudp_port_min = \"abc\"\n").unwrap();
    let mut cmd = openhearing(dir);
    cmd.args(["config", "check"]).arg(&bad);
    let out = run(cmd).await;
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "invalid value fails: {all}");
    assert!(all.contains("media.udp_port_min"), "names the key: {all}");
    assert!(all.contains("bad-value.toml"), "names the file: {all}");

    // A valid file passes.
    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        "[media]\nudp_port_min = 42600\nudp_port_max = 42799\n[signaling]\nmax_message_bytes = 32768\n",
    )
    .unwrap();
    let mut cmd = openhearing(dir);
    cmd.args(["config", "check"]).arg(&good);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "valid file: {}", text(&out));
    assert!(text(&out).contains("good.toml"), "{}", text(&out));

    // The built-in defaults alone pass.
    let mut cmd = openhearing(dir);
    cmd.args(["config", "check"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "defaults: {}", text(&out));

    // A bad environment override fails naming the variable, even with a good file.
    let mut cmd = openhearing(dir);
    cmd.args(["config", "check"])
        .arg(&good)
        .env("OPENHEARING_MEDIA__UDP_PORT_MIN", "abc");
    let out = run(cmd).await;
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "bad env value fails: {all}");
    assert!(
        all.contains("OPENHEARING_MEDIA__UDP_PORT_MIN"),
        "names the variable: {all}"
    );

    // A good environment override passes.
    let mut cmd = openhearing(dir);
    cmd.args(["config", "check"])
        .arg(&good)
        .env("OPENHEARING_MEDIA__UDP_PORT_MIN", "42610");
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "good env value: {}", text(&out));

    // A missing file is an error naming it.
    let mut cmd = openhearing(dir);
    cmd.args(["config", "check"]).arg(dir.join("missing.toml"));
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(1), "missing file: {}", text(&out));
    assert!(text(&out).contains("missing.toml"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hearing_create_prints_join_links_that_work() {
    let server = TestServer::start(42600, 42799).await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let cwd = tmp.path();

    let mut cmd = openhearing(cwd);
    cmd.args([
        "hearing",
        "create",
        "--server",
        &server.base(),
        "--api-key",
        ADMIN_KEY,
        "--case",
        "HS-123/2026",
        "--title",
        "Xét xử vụ án hình sự sơ thẩm",
        "--participant",
        "Nguyễn Văn A:presiding_judge:Phòng xử án 1",
        "--participant",
        "Trần Văn B:defendant:Trại tạm giam số 1",
        "--participant",
        "Lê Thị C:defence_counsel:Văn phòng luật sư",
        "--json",
    ]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "hearing create: {}", text(&out));
    let stdout = String::from_utf8(out.stdout.clone()).expect("UTF-8 output");
    let raw: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("stdout is JSON ({e}): {stdout}"));
    assert_eq!(raw["case_number"], "HS-123/2026", "{raw}");
    assert_eq!(raw["title"], "Xét xử vụ án hình sự sơ thẩm", "{raw}");
    let hearing: CreatedHearing = serde_json::from_value(raw.clone()).expect("hearing links");
    let expected = [
        ("Nguyễn Văn A", "presiding_judge", "Phòng xử án 1"),
        ("Trần Văn B", "defendant", "Trại tạm giam số 1"),
        ("Lê Thị C", "defence_counsel", "Văn phòng luật sư"),
    ];
    assert_eq!(hearing.participants.len(), 3, "{raw}");
    for (name, role, site) in expected {
        let p = hearing.by_role(role);
        assert_eq!(p.name, name);
        assert_eq!(p.site, site);
        assert!(
            p.join_url.contains(&hearing.hearing_id.to_string()),
            "join url names the hearing: {}",
            p.join_url
        );
        assert!(!p.token().is_empty(), "join url carries a token");
    }

    // The hearing is really stored on the server.
    let resp = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/hearings/{}",
            server.base(),
            hearing.hearing_id
        ))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("admin API");
    assert_eq!(resp.status(), 200);

    // `hearing get` shows it too.
    let mut cmd = openhearing(cwd);
    cmd.args(["hearing", "get", "--server", &server.base()])
        .args(["--api-key", ADMIN_KEY, "--json"])
        .arg(hearing.hearing_id.to_string());
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "hearing get: {}", text(&out));
    assert!(text(&out).contains("Trại tạm giam số 1"), "{}", text(&out));

    // The printed join links let the judge and the defendant in, with media.
    let judge = join(&server, &hearing, "presiding_judge", true).await;
    let defendant = join(&server, &hearing, "defendant", true).await;
    assert_eq!(judge.welcome().hearing.case_number, "HS-123/2026");
    assert_eq!(judge.welcome().you.name, "Nguyễn Văn A");
    convene(&judge, &[&defendant]).await;
    publish(&[&judge, &defendant]).await;
    wait_exchange(&[&judge, &defendant], &[&judge, &defendant], 10, 25).await;
    for p in [&judge, &defendant] {
        let _ = p.leave().await;
    }

    // Bad participant specs fail clearly, before anything is sent.
    for (spec, needle) in [
        ("Nguyễn Văn A:king:Phòng xử án 1", "unknown role `king`"),
        ("only-a-name", "NAME:ROLE:SITE"),
        (":defendant:Trại tạm giam số 1", "name"),
    ] {
        let mut cmd = openhearing(cwd);
        cmd.args(["hearing", "create", "--server", &server.base()])
            .args(["--api-key", ADMIN_KEY, "--case", "HS-1/2026"])
            .args(["--title", "t", "--participant", spec]);
        let out = run(cmd).await;
        let all = text(&out);
        assert!(!out.status.success(), "spec {spec:?} is refused: {all}");
        assert!(
            all.contains(needle),
            "spec {spec:?}: message says {needle:?}: {all}"
        );
    }

    // A wrong API key is refused by the server and reported.
    let mut cmd = openhearing(cwd);
    cmd.args(["hearing", "create", "--server", &server.base()])
        .args(["--api-key", "wrong-key-wrong-key-wrong-key-0000"])
        .args(["--case", "HS-2/2026", "--title", "t"])
        .args(["--participant", "A:presiding_judge:Phòng 1"]);
    let out = run(cmd).await;
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "wrong key fails: {all}");
    assert!(all.contains("401"), "the refusal is reported: {all}");

    // Only the one hearing was created.
    let resp = reqwest::Client::new()
        .get(format!("{}/api/v1/hearings", server.base()))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("admin API");
    let list: serde_json::Value = resp.json().await.expect("list");
    assert_eq!(
        list["hearings"].as_array().map(Vec::len),
        Some(1),
        "failed commands created nothing: {list}"
    );

    server.stop().await;
}

/// A configuration file for the CLI that names the server's data folder (and so its
/// database).
fn cli_config(cwd: &Path, data_dir: &Path) -> std::path::PathBuf {
    let path = cwd.join("cli.toml");
    std::fs::write(
        &path,
        format!("[data]\ndir = {:?}\n", data_dir.display().to_string()),
    )
    .expect("write config");
    path
}

fn stdout_json(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("stdout is JSON ({e}): {stdout}"))
}

/// Runs `openhearing hearing ARGS --server … --api-key KEY`.
async fn hearing_cmd(cwd: &Path, server: &TestServer, key: &str, args: &[&str]) -> Output {
    let mut cmd = openhearing(cwd);
    cmd.arg("hearing")
        .args(args)
        .args(["--server", &server.base(), "--api-key", key]);
    run(cmd).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hearing_workflow_commands_and_admin_keys() {
    let server = TestServer::start(42600, 42799).await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let cwd = tmp.path();
    let config = cli_config(cwd, &server.dir);

    let out = hearing_cmd(
        cwd,
        &server,
        ADMIN_KEY,
        &[
            "create",
            "--case",
            "HS-7/2026",
            "--title",
            "Phiên tòa",
            "--site",
            "Phòng xử án 1=central",
            "--site",
            "Trại tạm giam số 1=detention",
            "--scheduled-at",
            "2026-12-01T08:00:00+07:00",
            "--participant",
            "Nguyễn Văn A:presiding_judge:Phòng xử án 1",
            "--participant",
            "Trần Văn B:defendant:Trại tạm giam số 1",
            "--json",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "create: {}", text(&out));
    let id = stdout_json(&out)["hearing_id"]
        .as_str()
        .expect("hearing_id")
        .to_owned();

    let out = hearing_cmd(cwd, &server, ADMIN_KEY, &["get", &id, "--json"]).await;
    let got = stdout_json(&out);
    assert_eq!(got["scheduled_at"], "2026-12-01T01:00:00Z");
    assert_eq!(got["sites"][1]["kind"], "detention");

    let out = hearing_cmd(
        cwd,
        &server,
        ADMIN_KEY,
        &["update", &id, "--title", "Phiên tòa phúc thẩm", "--json"],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "update: {}", text(&out));
    assert_eq!(stdout_json(&out)["title"], "Phiên tòa phúc thẩm");
    let out = hearing_cmd(cwd, &server, ADMIN_KEY, &["update", &id]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("nothing to change"), "{}", text(&out));

    // Lifecycle: a refused move says why.
    let out = hearing_cmd(cwd, &server, ADMIN_KEY, &["state", &id, "in_session"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("invalid_transition"), "{}", text(&out));
    for state in ["open", "in_session"] {
        let out = hearing_cmd(cwd, &server, ADMIN_KEY, &["state", &id, state]).await;
        assert_eq!(out.status.code(), Some(0), "{state}: {}", text(&out));
    }
    let out = hearing_cmd(cwd, &server, ADMIN_KEY, &["state", &id, "suspended"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("reason_required"), "{}", text(&out));
    let out = hearing_cmd(
        cwd,
        &server,
        ADMIN_KEY,
        &["state", &id, "suspended", "--reason", "Nghỉ giải lao"],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("suspended"), "{}", text(&out));
    let out = hearing_cmd(cwd, &server, ADMIN_KEY, &["state", &id, "paused"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("unknown hearing state"),
        "{}",
        text(&out)
    );

    // Participants: add, revoke, remove.
    let out = hearing_cmd(
        cwd,
        &server,
        ADMIN_KEY,
        &[
            "add-participant",
            &id,
            "--participant",
            "Phạm Văn D:witness:Nhà riêng",
            "--json",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "add: {}", text(&out));
    let added = stdout_json(&out);
    let pid = added["participant"]["id"].as_str().expect("id").to_owned();
    assert!(added["join_url"].as_str().expect("url").contains("#token="));
    let out = hearing_cmd(
        cwd,
        &server,
        ADMIN_KEY,
        &["revoke-link", &id, &pid, "--json"],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "revoke: {}", text(&out));
    assert_eq!(stdout_json(&out)["participant"]["link_version"], 1);
    let out = hearing_cmd(
        cwd,
        &server,
        ADMIN_KEY,
        &["remove-participant", &id, &pid, "--reason", "Không cần"],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "remove: {}", text(&out));
    assert!(text(&out).contains("was removed"), "{}", text(&out));
    let out = hearing_cmd(cwd, &server, ADMIN_KEY, &["remove-participant", &id, &pid]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("not_applicable"), "{}", text(&out));

    let out = hearing_cmd(cwd, &server, ADMIN_KEY, &["audit", &id]).await;
    assert_eq!(out.status.code(), Some(0), "audit: {}", text(&out));
    let all = text(&out);
    assert!(all.contains("chain intact"), "{all}");
    assert!(all.contains("admin:config"), "{all}");
    assert!(all.contains("link_revoked"), "{all}");

    // Admin keys: made on the database, usable at once by the running server.
    let mut cmd = openhearing(cwd);
    cmd.args(["admin-key", "create", "--name", "clerk-pc", "--config"])
        .arg(&config);
    let out = run(cmd).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "admin-key create: {}",
        text(&out)
    );
    let key = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(key.starts_with("ohk_"), "stdout is the key: {key}");
    assert!(text(&out).contains("shown only now"), "{}", text(&out));
    let out = hearing_cmd(cwd, &server, &key, &["state", &id, "in_session"]).await;
    assert_eq!(out.status.code(), Some(0), "new key works: {}", text(&out));
    let out = hearing_cmd(cwd, &server, ADMIN_KEY, &["audit", &id, "--json"]).await;
    let audit = stdout_json(&out);
    let last = audit["entries"]
        .as_array()
        .expect("entries")
        .last()
        .cloned();
    assert_eq!(last.expect("an entry")["actor"], "admin:clerk-pc");

    let mut cmd = openhearing(cwd);
    cmd.args(["admin-key", "list", "--config"]).arg(&config);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("clerk-pc"), "{}", text(&out));
    assert!(!text(&out).contains(&key), "the key is never listed");
    let mut cmd = openhearing(cwd);
    cmd.args(["admin-key", "create", "--name", "clerk-pc", "--config"])
        .arg(&config);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("exists already"), "{}", text(&out));
    let mut cmd = openhearing(cwd);
    cmd.args(["admin-key", "create", "--name", "clerk pc"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("may contain only"), "{}", text(&out));

    // Without a key the CLI says how to give one (there is no key file any more).
    let mut cmd = openhearing(cwd);
    cmd.args(["hearing", "list", "--server", &server.base()]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("OPENHEARING_API_KEY"), "{}", text(&out));

    server.stop().await;
}

/// Creates a hearing through the API and moves it to `in_session`: three audit
/// entries (hearing_created, two state changes).
async fn hearing_with_three_entries(server: &TestServer) -> String {
    let h = server
        .create_hearing(&[("Nguyễn Văn A", "presiding_judge", "Phòng xử án 1")])
        .await;
    for state in ["open", "in_session"] {
        let resp = reqwest::Client::new()
            .post(format!(
                "{}/api/v1/hearings/{}/state",
                server.base(),
                h.hearing_id
            ))
            .bearer_auth(ADMIN_KEY)
            .json(&serde_json::json!({ "state": state }))
            .send()
            .await
            .expect("admin API");
        assert_eq!(resp.status(), 200, "{state}");
    }
    h.hearing_id.to_string()
}

async fn audit_verify(cwd: &Path, config: &Path, id: &str) -> Output {
    let mut cmd = openhearing(cwd);
    cmd.args(["audit", "verify", "--hearing", id, "--config"])
        .arg(config);
    run(cmd).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_names_the_tampered_entry() {
    // The data folder outlives the server, to verify with the server stopped.
    let data = tempfile::tempdir().expect("temp dir");
    let server = TestServer::start_in(data.path(), 42600, 42799, "").await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let cwd = tmp.path();
    let config = cli_config(cwd, &server.dir);
    let modified = hearing_with_three_entries(&server).await;
    let removed = hearing_with_three_entries(&server).await;
    let swapped = hearing_with_three_entries(&server).await;

    // Intact, with the server running.
    for id in [&modified, &removed, &swapped] {
        let out = audit_verify(cwd, &config, id).await;
        assert_eq!(out.status.code(), Some(0), "intact: {}", text(&out));
        let all = text(&out);
        assert!(
            all.contains(&format!("audit chain of hearing {id} intact: 3 entries")),
            "{all}"
        );
    }

    // Tamper directly in the database, as someone with file access could.
    let url = format!("sqlite://{}", server.dir.join("openhearing.db").display());
    let db = openhearing::store::SqliteStore::open(&url)
        .await
        .expect("open the database");
    let pool = db.pool();
    sqlx::query(
        "UPDATE audit SET details = '{\"to\":\"closed\"}' WHERE hearing_id = ? AND seq = 2",
    )
    .bind(&modified)
    .execute(pool)
    .await
    .expect("modify");
    sqlx::query("DELETE FROM audit WHERE hearing_id = ? AND seq = 2")
        .bind(&removed)
        .execute(pool)
        .await
        .expect("delete");
    // Swap the contents of rows 2 and 3 (their numbers stay).
    for (from, to) in [(2, -1), (3, 2), (-1, 3)] {
        sqlx::query("UPDATE audit SET seq = ? WHERE hearing_id = ? AND seq = ?")
            .bind(to)
            .bind(&swapped)
            .bind(from)
            .execute(pool)
            .await
            .expect("swap");
    }
    db.close().await;

    for (id, expected) in [
        (&modified, "entry #2 was modified"),
        (&removed, "entry #2 was removed"),
        (&swapped, "entry #2 is out of order"),
    ] {
        let out = audit_verify(cwd, &config, id).await;
        let all = text(&out);
        assert_eq!(out.status.code(), Some(1), "tampered: {all}");
        assert!(all.contains(expected), "says {expected:?}: {all}");
        assert!(all.contains(id.as_str()), "names the hearing: {all}");
    }
    // The API and `hearing audit` see it too.
    let mut cmd = openhearing(cwd);
    cmd.args(["hearing", "audit", &modified, "--server", &server.base()])
        .args(["--api-key", ADMIN_KEY]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("entry #2 was modified"),
        "{}",
        text(&out)
    );

    // Also with the server stopped.
    server.stop().await;
    let out = audit_verify(cwd, &config, &removed).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("entry #2 was removed"),
        "{}",
        text(&out)
    );
    let out = audit_verify(cwd, &config, &uuid::Uuid::new_v4().to_string()).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("no hearing with id"), "{}", text(&out));
    let out = audit_verify(cwd, &config, "not-an-id").await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("not a hearing id"), "{}", text(&out));

    // No database there: said clearly, and none is created.
    let empty = cwd.join("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let other = cli_config(&empty, &empty.join("data"));
    let out = audit_verify(cwd, &other, &modified).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("no database at"), "{}", text(&out));
    assert!(!empty.join("data").join("openhearing.db").exists());
}
