//! "Hearings and participants are stored in SQLite and survive a restart": a server
//! is stopped and a new one started on the same data folder; the hearing is still
//! there, and join links issued before the restart still work, media included.

mod common;

use common::cast::*;
use common::*;
use openhearing::audit::{verify_chain, ChainProblem};
use openhearing::store::{SqliteStore, Store};
use openhearing_signaling::{Admission, ClientMessage, HearingState, ServerMessage};
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
    let hearing = first.hearing_of(&[JUDGE, DEFENDANT, COUNSEL]).await;
    let path = format!("/api/v1/hearings/{}", hearing.hearing_id);
    let before = get_json(&first, &path).await;
    let secret_before = std::fs::read(dir.join(openhearing::auth::SECRET_FILE))
        .expect("the server wrote its join-token secret");
    let reason = "Mất kết nối với trại tạm giam số 1";
    {
        // The hearing is live in the first server: the judge opens it, admits the
        // defendant, mutes counsel and suspends it.
        let judge = join(&first, &hearing, "presiding_judge", false).await;
        let defendant = join(&first, &hearing, "defendant", false).await;
        let counsel = join(&first, &hearing, "defence_counsel", false).await;
        convene(&judge, &[&defendant]).await;
        send(
            &judge,
            ClientMessage::Mute {
                participant_id: counsel.id(),
            },
        );
        send(&judge, set_state(HearingState::Suspended, Some(reason)));
        wait_event(&defendant, "suspension", |m| {
            matches!(m, ServerMessage::HearingStatus { status } if status.state == HearingState::Suspended)
        })
        .await;
        for p in [&judge, &defendant, &counsel] {
            p.leave().await.expect("leave");
        }
    }
    first.stop().await;

    // Second life on the same folder.
    let second = TestServer::start_in(&dir, PORT_MIN, PORT_MAX, "").await;
    let after = get_json(&second, &path).await;
    assert_eq!(after["id"], hearing.hearing_id.to_string());
    assert_eq!(after["case_number"], "HS-123/2026");
    assert_eq!(after["title"], "Phiên tòa thử nghiệm");
    assert_eq!(after["created_at"], before["created_at"]);
    // The state the first server reached survived: suspended with its reason, the
    // defendant admitted, counsel muted.
    assert_eq!(after["status"]["state"], "suspended", "{after}");
    assert_eq!(after["status"]["reason"], reason);
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
        let (admission, muted) = match p.role.as_str() {
            "presiding_judge" | "defendant" => ("admitted", false),
            "defence_counsel" => ("lobby", true),
            other => panic!("unexpected role {other}"),
        };
        assert_eq!(s["admission"], admission, "{}", p.role);
        assert_eq!(s["muted"], muted, "{}", p.role);
    }
    // The audit trail survived and its chain verifies.
    let url = format!("sqlite://{}", dir.join("openhearing.db").display());
    let store = SqliteStore::open(&url).await.expect("database");
    let (entries, count, head) = store
        .audit_log(hearing.hearing_id)
        .await
        .expect("audit")
        .expect("hearing");
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    for needed in ["join", "state_change", "admit", "mute", "leave"] {
        assert!(actions.contains(&needed), "{needed} in {actions:?}");
    }
    verify_chain(hearing.hearing_id, &entries, count, &head).expect("the chain verifies");
    let history = store
        .state_history(hearing.hearing_id)
        .await
        .expect("history");
    assert_eq!(
        history.iter().map(|h| h.state).collect::<Vec<_>>(),
        [
            HearingState::Open,
            HearingState::InSession,
            HearingState::Suspended
        ]
    );
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
    assert_eq!(judge.welcome().status.state, HearingState::Suspended);
    // Admitted before the restart, the defendant does not wait in the lobby again.
    assert_eq!(defendant.welcome().you.admission, Admission::Admitted);
    send(&judge, set_state(HearingState::InSession, None));
    publish(&[&judge, &defendant]).await;
    wait_exchange(&[&judge, &defendant], &[&judge, &defendant], 20, 50).await;
    assert_integrity(&judge);
    assert_integrity(&defendant);

    for p in [&judge, &defendant] {
        let _ = p.leave().await;
    }
    second.stop().await;

    // Tampering with the stored trail is named: one modified, removed or swapped row.
    let chain = |store: SqliteStore| async move {
        let (e, c, h) = store.audit_log(hearing.hearing_id).await.unwrap().unwrap();
        verify_chain(hearing.hearing_id, &e, c, &h)
    };
    chain(SqliteStore::open(&url).await.unwrap())
        .await
        .expect("intact after the second life");
    // Each tampering on its own copy of the database (VACUUM INTO makes a clean one).
    let original = SqliteStore::open(&url).await.unwrap();
    let cases: [(&str, &str, ChainProblem); 3] = [
        (
            "modify",
            "UPDATE audit SET details = '{\"reason\":\"edited\"}' WHERE hearing_id = ?1 AND seq = 3",
            ChainProblem::Modified { seq: 3 },
        ),
        (
            "delete",
            "DELETE FROM audit WHERE hearing_id = ?1 AND seq = 4",
            ChainProblem::Removed { seq: 4 },
        ),
        (
            "swap",
            "UPDATE audit SET seq = -5 WHERE hearing_id = ?1 AND seq = 5; \
             UPDATE audit SET seq = 5 WHERE hearing_id = ?1 AND seq = 6; \
             UPDATE audit SET seq = 6 WHERE hearing_id = ?1 AND seq = -5",
            ChainProblem::Reordered { seq: 5 },
        ),
    ];
    for (i, (what, sql, expected)) in cases.into_iter().enumerate() {
        let copy = dir.join(format!("tampered-{i}.db"));
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "VACUUM INTO '{}'",
            copy.display()
        )))
        .execute(original.pool())
        .await
        .expect("copy database");
        let tampered = SqliteStore::open(&format!("sqlite://{}", copy.display()))
            .await
            .expect("open copy");
        for statement in sql.split(';') {
            sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
                .bind(hearing.hearing_id.to_string())
                .execute(tampered.pool())
                .await
                .expect("tamper");
        }
        assert_eq!(chain(tampered).await, Err(expected), "{what}");
    }
    drop(tmp);
}
