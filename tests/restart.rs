//! "Hearings and participants are stored in SQLite and survive a restart": a server
//! is stopped and a new one started on the same data folder; the hearing is still
//! there, and join links issued before the restart still work, media included.

mod common;

use common::*;
use serde_json::Value;

const PORT_MIN: u16 = 42400;
const PORT_MAX: u16 = 42599;

async fn get_json(server: &TestServer, path: &str) -> Value {
    let resp = reqwest::Client::new()
        .get(format!("{}{path}", server.base()))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("admin API answers");
    assert_eq!(resp.status(), 200, "GET {path}");
    resp.json().await.expect("JSON body")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hearings_and_join_links_survive_a_restart() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().to_owned();

    // First life: create the hearing, use it briefly, stop.
    let first = TestServer::start_in(&dir, PORT_MIN, PORT_MAX, "").await;
    let hearing = first
        .create_hearing(&[
            ("Nguyễn Văn A", "presiding_judge", "Phòng xử án 1"),
            ("Trần Văn B", "defendant", "Trại tạm giam số 1"),
            ("Lê Thị C", "defence_counsel", "Văn phòng luật sư"),
        ])
        .await;
    let path = format!("/api/v1/hearings/{}", hearing.hearing_id);
    let before = get_json(&first, &path).await;
    let secret_before = std::fs::read(dir.join(openhearing::auth::SECRET_FILE))
        .expect("the server wrote its join-token secret");
    {
        // The hearing is live in the first server too.
        let judge = join(&first, &hearing, "presiding_judge", false).await;
        judge.leave().await.expect("leave");
    }
    first.stop().await;

    // Second life on the same folder.
    let second = TestServer::start_in(&dir, PORT_MIN, PORT_MAX, "").await;
    let after = get_json(&second, &path).await;
    assert_eq!(
        after, before,
        "the stored hearing is unchanged by the restart"
    );
    assert_eq!(after["id"], hearing.hearing_id.to_string());
    assert_eq!(after["case_number"], "HS-123/2026");
    assert_eq!(after["title"], "Phiên tòa thử nghiệm");
    let stored = after["participants"].as_array().expect("participants");
    assert_eq!(stored.len(), hearing.participants.len());
    for p in &hearing.participants {
        let s = stored
            .iter()
            .find(|s| s["id"] == p.participant_id.to_string())
            .unwrap_or_else(|| panic!("participant {} survives", p.participant_id));
        assert_eq!(s["name"], p.name.as_str());
        assert_eq!(s["role"], p.role.as_str());
        assert_eq!(s["site"], p.site.as_str());
        assert_eq!(s["hearing_id"], hearing.hearing_id.to_string());
    }
    let list = get_json(&second, "/api/v1/hearings").await;
    assert!(
        list["hearings"]
            .as_array()
            .expect("hearing list")
            .iter()
            .any(|h| h["id"] == hearing.hearing_id.to_string()),
        "the hearing is listed after the restart: {list}"
    );
    assert_eq!(
        std::fs::read(dir.join(openhearing::auth::SECRET_FILE)).expect("secret"),
        secret_before,
        "the join-token secret is reused, not regenerated"
    );

    // Join links issued before the restart still join, and media flows.
    let judge = join(&second, &hearing, "presiding_judge", true).await;
    let defendant = join(&second, &hearing, "defendant", true).await;
    assert_eq!(
        judge.id(),
        hearing.by_role("presiding_judge").participant_id
    );
    assert_eq!(judge.welcome().hearing.id, hearing.hearing_id);
    publish(&[&judge, &defendant]).await;
    wait_exchange(&[&judge, &defendant], &[&judge, &defendant], 20, 50).await;
    assert_integrity(&judge);
    assert_integrity(&defendant);

    for p in [&judge, &defendant] {
        let _ = p.leave().await;
    }
    second.stop().await;
    drop(tmp);
}
