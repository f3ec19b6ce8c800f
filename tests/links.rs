//! Issue 12, items 3 and 5, as an attacker would try them against a real server:
//! a stolen join link used from a second client, links re-issued and used before
//! their time, and one link rejoining in a loop. The seated participants are real
//! webrtc peers; the attacker is a bare WebSocket with a browser's `User-Agent`.

mod common;

use std::time::{Duration, Instant};

use common::{cast, TestServer, ADMIN_KEY};
use futures_util::{SinkExt, StreamExt};
use openhearing::hearing::SecondDevice;
use openhearing_signaling::{ClientMessage, DeviceEvent, ErrorCode, ServerMessage};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const CLERK: cast::Person = cast::Person::new("Vũ Thị K", "clerk", "Phòng xử án 1");
const THIEF_UA: &str = "Mozilla/5.0 (X11; Linux x86_64) Thief/1.0";

/// A bare client joins with `token`, introducing itself as `ua`: the socket and the
/// server's first message.
async fn raw_join(
    server: &TestServer,
    hearing: Uuid,
    token: &str,
    ua: &str,
) -> (Ws, ServerMessage) {
    raw_join_tab(server, hearing, token, ua, None).await
}

/// [`raw_join`] presenting a `join.tab` of its own.
async fn raw_join_tab(
    server: &TestServer,
    hearing: Uuid,
    token: &str,
    ua: &str,
    tab: Option<&str>,
) -> (Ws, ServerMessage) {
    let mut req = server
        .ws_url(hearing)
        .into_client_request()
        .expect("a ws request");
    req.headers_mut()
        .insert("user-agent", HeaderValue::from_str(ua).expect("a header"));
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("websocket connects");
    let mut join = json!({"type": "join", "v": 1, "token": token});
    if let Some(tab) = tab {
        join["tab"] = json!(tab);
    }
    let join = join.to_string();
    ws.send(Message::Text(join.into()))
        .await
        .expect("join sent");
    let first = next_message(&mut ws)
        .await
        .expect("the server answers the join");
    (ws, first)
}

/// The next protocol message on `ws` (None when it closed first).
async fn next_message(ws: &mut Ws) -> Option<ServerMessage> {
    let read = async {
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Text(t) = m {
                return serde_json::from_str(&t).ok();
            }
            if matches!(m, Message::Close(_)) {
                return None;
            }
        }
        None
    };
    tokio::time::timeout(Duration::from_secs(15), read)
        .await
        .expect("a message within 15 s")
}

async fn audit(server: &TestServer, hearing: Uuid) -> Vec<Value> {
    let v: Value = reqwest::Client::new()
        .get(format!("{}/api/v1/hearings/{hearing}/audit", server.base()))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("audit answers")
        .json()
        .await
        .expect("audit JSON");
    v["entries"].as_array().cloned().unwrap_or_default()
}

/// Waits for an audit entry `action` about participant `pid`.
async fn audited(server: &TestServer, hearing: Uuid, pid: Uuid, action: &str) -> Value {
    let subject = format!("participant:{pid}");
    let start = Instant::now();
    loop {
        let found = audit(server, hearing)
            .await
            .into_iter()
            .find(|e| e["action"] == action && e["subject"] == subject.as_str());
        if let Some(e) = found {
            return e;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no `{action}` audit entry for {pid}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `m` is the fatal error `want`.
fn assert_fatal(m: Option<ServerMessage>, want: ErrorCode) {
    match m {
        Some(ServerMessage::Error { code, fatal, .. }) => {
            assert_eq!(code, want);
            assert!(fatal, "{code} is fatal");
        }
        other => panic!("expected {want}: {other:?}"),
    }
}

fn is_device_event(m: &ServerMessage, pid: Uuid, want: DeviceEvent) -> bool {
    matches!(m, ServerMessage::SecondDevice { participant_id, event, .. }
        if *participant_id == pid && *event == want)
}

/// Both devices of an audit entry: distinct loopback sources, the thief's browser.
fn assert_both_devices(entry: &Value) {
    let d = &entry["details"];
    let (first, second) = (&d["first"]["source"], &d["second"]["source"]);
    assert!(
        first.as_str().is_some_and(|s| s.starts_with("127.0.0.1:")),
        "{d}"
    );
    assert!(
        second.as_str().is_some_and(|s| s.starts_with("127.0.0.1:")),
        "{d}"
    );
    assert_ne!(first, second, "two connections, two source ports: {d}");
    assert_eq!(d["second"]["user_agent"], THIEF_UA, "{d}");
}

async fn server_with(
    port_min: u16,
    second_device: SecondDevice,
) -> (TestServer, tempfile::TempDir) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut config = common::test_config(tmp.path(), port_min, port_min + 49, "");
    config.auth.second_device = second_device;
    (TestServer::start_config(tmp.path(), config).await, tmp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stolen_link_waits_in_the_lobby_while_the_defendant_keeps_the_seat() {
    let server = TestServer::start(45000, 45049).await;
    let (hearing, [judge, clerk, defendant]) =
        server.seat([cast::JUDGE, CLERK, cast::DEFENDANT]).await;
    common::admit(&judge, &defendant).await;
    let did = defendant.id();
    let token = hearing.by_role("defendant").token();

    let (mut thief, first) = raw_join(&server, hearing.hearing_id, &token, THIEF_UA).await;
    assert!(
        matches!(first, ServerMessage::DeviceWaiting { .. }),
        "the second device waits: {first:?}"
    );
    for court in [&judge, &clerk] {
        let told = common::wait_event(court, "the court is told", |m| {
            is_device_event(m, did, DeviceEvent::Waiting)
        })
        .await;
        let ServerMessage::SecondDevice { user_agent, .. } = told else {
            unreachable!()
        };
        assert_eq!(user_agent.as_deref(), Some(THIEF_UA));
    }
    assert_both_devices(&audited(&server, hearing.hearing_id, did, "second_device_waiting").await);
    let join = audited(&server, hearing.hearing_id, did, "join").await;
    assert!(join["details"]["device"]["source"].is_string(), "{join}");

    // Meanwhile the defendant keeps the seat: not replaced, still receiving media.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !defendant
            .events()
            .iter()
            .any(|m| matches!(m, ServerMessage::Error { .. })),
        "the defendant was not disturbed"
    );
    common::open_session(&judge).await;
    common::publish(&[&defendant]).await;
    common::wait_exchange(&[&judge], &[&defendant], 3, 3).await;

    // The judge refuses it: the thief is closed, the defendant stays.
    common::send(
        &judge,
        ClientMessage::RefuseDevice {
            participant_id: did,
        },
    );
    assert_fatal(
        next_message(&mut thief).await,
        ErrorCode::SecondDeviceRefused,
    );
    audited(&server, hearing.hearing_id, did, "second_device_refused").await;

    // A second device the judge admits takes the seat; the first is replaced.
    let skip = common::event_count(&defendant);
    let (mut phone, first) = raw_join(&server, hearing.hearing_id, &token, THIEF_UA).await;
    assert!(matches!(first, ServerMessage::DeviceWaiting { .. }));
    common::wait_event(&judge, "the new device is announced", |m| {
        is_device_event(m, did, DeviceEvent::Waiting)
    })
    .await;
    common::send(
        &judge,
        ClientMessage::AdmitDevice {
            participant_id: did,
        },
    );
    match next_message(&mut phone).await {
        Some(ServerMessage::Welcome(w)) => assert_eq!(w.you.id, did),
        other => panic!("the admitted device is welcomed: {other:?}"),
    }
    assert_eq!(
        common::next_error(&defendant, skip).await,
        ErrorCode::Replaced
    );
    assert_both_devices(&audited(&server, hearing.hearing_id, did, "session_replaced").await);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refuse_mode_turns_a_second_device_away() {
    let (server, _tmp) = server_with(45050, SecondDevice::Refuse).await;
    let (hearing, [judge, defendant]) = server.seat([cast::JUDGE, cast::DEFENDANT]).await;
    let did = defendant.id();
    let token = hearing.by_role("defendant").token();
    let (_ws, first) = raw_join(&server, hearing.hearing_id, &token, THIEF_UA).await;
    assert_fatal(Some(first), ErrorCode::SecondDeviceRefused);
    common::wait_event(&judge, "the court is told", |m| {
        is_device_event(m, did, DeviceEvent::Refused)
    })
    .await;
    assert_both_devices(&audited(&server, hearing.hearing_id, did, "second_device_refused").await);
    assert!(!defendant
        .events()
        .iter()
        .any(|m| matches!(m, ServerMessage::Error { .. })));

    // The seated tab reconnecting (same `join.tab`) is no second device; another is.
    defendant.leave().await.expect("the defendant leaves");
    let tab = "7c0ffee0a11ce5e1f00dfacade123456";
    let (mut a, first) =
        raw_join_tab(&server, hearing.hearing_id, &token, THIEF_UA, Some(tab)).await;
    assert!(matches!(first, ServerMessage::Welcome(_)), "{first:?}");
    let (_b, again) = raw_join_tab(&server, hearing.hearing_id, &token, THIEF_UA, Some(tab)).await;
    assert!(
        matches!(again, ServerMessage::Welcome(_)),
        "the same tab: {again:?}"
    );
    let mut replaced = false;
    while let Some(m) = next_message(&mut a).await {
        if matches!(
            m,
            ServerMessage::Error {
                code: ErrorCode::Replaced,
                ..
            }
        ) {
            replaced = true;
            break;
        }
    }
    assert!(replaced, "the tab's old connection is replaced");
    let (_c, other) = raw_join_tab(&server, hearing.hearing_id, &token, THIEF_UA, None).await;
    assert!(
        matches!(
            other,
            ServerMessage::Error {
                code: ErrorCode::SecondDeviceRefused,
                ..
            }
        ),
        "{other:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replace_mode_replaces_but_the_audit_and_the_court_see_both_devices() {
    let (server, _tmp) = server_with(45100, SecondDevice::Replace).await;
    let (hearing, [judge, defendant]) = server.seat([cast::JUDGE, cast::DEFENDANT]).await;
    let did = defendant.id();
    let skip = common::event_count(&defendant);
    let token = hearing.by_role("defendant").token();
    let (_ws, first) = raw_join(&server, hearing.hearing_id, &token, THIEF_UA).await;
    assert!(matches!(first, ServerMessage::Welcome(_)), "{first:?}");
    assert_eq!(
        common::next_error(&defendant, skip).await,
        ErrorCode::Replaced
    );
    common::wait_event(&judge, "the court is told", |m| {
        is_device_event(m, did, DeviceEvent::Replaced)
    })
    .await;
    assert_both_devices(&audited(&server, hearing.hearing_id, did, "session_replaced").await);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn links_are_issued_once_per_version_and_work_only_from_shortly_before_the_hearing() {
    let server = TestServer::start(45150, 45199).await;
    let http = reqwest::Client::new();
    let in_three_hours = chrono::Utc::now() + chrono::Duration::hours(3);
    let created: common::CreatedHearing = http
        .post(format!("{}/api/v1/hearings", server.base()))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({
            "case_number": "HS-9/2026",
            "title": "Phiên tòa hẹn giờ",
            "scheduled_at": in_three_hours,
            "sites": [],
            "participants": [{"name": "Trần Văn B", "role": "defendant", "site": "Trại tạm giam số 1"}],
        }))
        .send()
        .await
        .expect("created")
        .json()
        .await
        .expect("JSON");
    let hid = created.hearing_id;
    let p = &created.participants[0];

    // Asking for the links again hands out the same link, not a second valid one.
    let links = |http: reqwest::Client| {
        let url = format!("{}/api/v1/hearings/{hid}/links", server.base());
        async move {
            let v: Value = http
                .get(url)
                .bearer_auth(ADMIN_KEY)
                .send()
                .await
                .expect("links")
                .json()
                .await
                .expect("JSON");
            v["participants"][0]["join_url"]
                .as_str()
                .expect("a join url")
                .to_owned()
        }
    };
    assert_eq!(links(http.clone()).await, p.join_url);
    assert_eq!(links(http.clone()).await, p.join_url);

    // Three hours early: refused, saying when it opens.
    let (_ws, first) = raw_join(&server, hid, &p.token(), THIEF_UA).await;
    match first {
        ServerMessage::Error { code, message, .. } => {
            assert_eq!(code, ErrorCode::LinkNotYetValid);
            assert!(message.contains("60 minutes"), "{message}");
        }
        other => panic!("too early: {other:?}"),
    }
    assert!(
        !audit(&server, hid)
            .await
            .iter()
            .any(|e| e["action"] == "join"),
        "a refused join leaves no join entry"
    );

    // Rescheduled to half an hour from now: the same link works, no re-issue needed.
    let resp = http
        .patch(format!("{}/api/v1/hearings/{hid}", server.base()))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"scheduled_at": chrono::Utc::now() + chrono::Duration::minutes(30)}))
        .send()
        .await
        .expect("patched");
    assert!(resp.status().is_success(), "{:?}", resp.text().await);
    let (ws, first) = raw_join(&server, hid, &p.token(), THIEF_UA).await;
    assert!(matches!(first, ServerMessage::Welcome(_)), "{first:?}");
    drop(ws);

    // Revoking issues a new link and the old one stops working.
    let revoked: Value = http
        .post(format!(
            "{}/api/v1/hearings/{hid}/participants/{}/revoke",
            server.base(),
            p.participant_id
        ))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("revoked")
        .json()
        .await
        .expect("JSON");
    let new_url = revoked["join_url"].as_str().expect("a new link").to_owned();
    assert_ne!(new_url, p.join_url);
    assert_eq!(
        links(http.clone()).await,
        new_url,
        "the links now give the new one"
    );
    let (_ws, first) = raw_join(&server, hid, &p.token(), THIEF_UA).await;
    assert!(
        matches!(
            first,
            ServerMessage::Error {
                code: ErrorCode::LinkRevoked,
                ..
            }
        ),
        "{first:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_hundred_rejoins_from_one_link_are_rate_limited_and_coalesced() {
    let server = TestServer::start(45200, 45249).await;
    let hearing = server.hearing_of(&[cast::JUDGE, cast::DEFENDANT]).await;
    let judge = common::join(&server, &hearing, "presiding_judge", true).await;
    let did = hearing.by_role("defendant").participant_id;
    let token = hearing.by_role("defendant").token();
    let ports_before = server.sfu.ports_in_use();

    let start = Instant::now();
    let (mut welcomed, mut limited) = (0u32, 0u32);
    for _ in 0..300 {
        let (mut ws, first) = raw_join(&server, hearing.hearing_id, &token, THIEF_UA).await;
        match first {
            ServerMessage::Welcome(_) => {
                welcomed += 1;
                // Offer nothing and abort; the next join comes once the server has
                // let this session go (else it would be a second device).
                let _ = ws.close(None).await;
                drop(ws);
                common::eventually(Duration::from_secs(10), "the session ends", || {
                    server.sfu.ports_in_use() <= ports_before
                })
                .await;
            }
            ServerMessage::Error {
                code: ErrorCode::JoinRateLimited,
                retry_after_ms,
                fatal,
                ..
            } => {
                assert!(fatal);
                assert!(retry_after_ms.is_some_and(|ms| ms > 0), "a retry hint");
                limited += 1;
            }
            other => panic!("unexpected answer: {other:?}"),
        }
    }
    let elapsed = start.elapsed().as_secs();
    // Burst 5, then 6 per minute (one per 10 s).
    let bound = 5 + u32::try_from(elapsed / 10).unwrap_or(u32::MAX) + 1;
    assert!(
        welcomed <= bound,
        "{welcomed} joins got through in {elapsed} s"
    );
    assert!(
        welcomed >= 1 && limited >= 300 - bound,
        "{welcomed}/{limited}"
    );

    // What the joins cost: one audit row and one PeerConnection (port) each, all freed.
    let joins = audit(&server, hearing.hearing_id)
        .await
        .iter()
        .filter(|e| e["action"] == "join" && e["subject"] == format!("participant:{did}").as_str())
        .count();
    assert_eq!(
        joins, welcomed as usize,
        "one join entry per admitted join only"
    );
    common::eventually(Duration::from_secs(15), "the media ports are freed", || {
        server.sfu.ports_in_use() <= ports_before
    })
    .await;

    // The judge's screen: at most one leave and one join notice per window after the
    // first pair, and the defendant shown gone in the end.
    common::eventually(Duration::from_secs(20), "the held leave is told", || {
        judge.events().iter().rev().find_map(|m| match m {
            ServerMessage::ParticipantLeft { participant_id, .. } if *participant_id == did => {
                Some(true)
            }
            ServerMessage::ParticipantJoined { participant }
            | ServerMessage::ParticipantUpdated { participant }
                if participant.id == did && participant.present =>
            {
                Some(false)
            }
            _ => None,
        }) == Some(true)
    })
    .await;
    let notices = judge
        .events()
        .iter()
        .filter(|m| match m {
            ServerMessage::ParticipantJoined { participant } => participant.id == did,
            ServerMessage::ParticipantLeft { participant_id, .. } => *participant_id == did,
            _ => false,
        })
        .count();
    eprintln!("{welcomed} joins admitted, {limited} refused in {elapsed} s; the judge got {notices} join/leave notices");
    let windows = 1 + elapsed / 10 + 1;
    assert!(
        notices as u64 <= 2 + 2 * windows,
        "{notices} join/leave notices for {welcomed} joins in {elapsed} s"
    );
    server.stop().await;
}
