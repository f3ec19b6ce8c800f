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
