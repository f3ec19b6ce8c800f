//! Privileged rooms through the real server with webrtc 0.21 peers: per-SSRC packet
//! counts prove that nothing crosses a consultation's or the deliberation's wall in
//! either direction (the presiding judge and an observer included), that members
//! still hear each other, and that flows return when the room ends.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::cast::*;
use common::*;
use openhearing_peer::Participant;
use openhearing_signaling::{ClientMessage, ErrorCode, RoomKind, ServerMessage, SignalingClient};
use uuid::Uuid;

/// Per-SSRC packet counters of everything `rx` received from `tx`.
fn per_ssrc(rx: &Participant, tx: Uuid) -> (HashMap<u32, u64>, HashMap<u32, u64>) {
    rx.stats()
        .stream(&tx.to_string())
        .map(|s| {
            (
                s.audio.packets_per_ssrc.clone(),
                s.video.packets_per_ssrc.clone(),
            )
        })
        .unwrap_or_default()
}

/// Waits until `status` shows a room of `kind` holding exactly `members`.
async fn wait_room(p: &Participant, kind: RoomKind, members: &[Uuid]) -> Uuid {
    let mut want: Vec<Uuid> = members.to_vec();
    want.sort();
    match wait_event(p, "the private room opens", |m| match m {
        ServerMessage::HearingStatus { status } => status.rooms.iter().any(|r| {
            let mut got = r.members.clone();
            got.sort();
            r.kind == kind && got == want
        }),
        _ => false,
    })
    .await
    {
        ServerMessage::HearingStatus { status } => status
            .rooms
            .iter()
            .find(|r| {
                r.kind == kind && {
                    let mut got = r.members.clone();
                    got.sort();
                    got == want
                }
            })
            .map(|r| r.id)
            .expect("room"),
        _ => unreachable!(),
    }
}

/// Asserts that over a window in which media visibly keeps flowing inside and
/// outside the wall, not one packet crosses it in either direction.
async fn assert_sealed(inside: &[&Participant], outside: &[&Participant]) {
    // Packets already queued when the wall went up drain first.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mut frozen = Vec::new();
    for a in inside {
        for b in outside {
            frozen.push((a.id(), b.id(), per_ssrc(b, a.id())));
            frozen.push((b.id(), a.id(), per_ssrc(a, b.id())));
        }
    }
    // Inside, members keep hearing and seeing each other; outside the rest goes on.
    let mut pairs = Vec::new();
    for group in [inside, outside] {
        for rx in group.iter() {
            for tx in group.iter() {
                if rx.id() != tx.id() && tx.welcome().can_publish {
                    pairs.push((*rx, *tx));
                }
            }
        }
    }
    wait_fresh_media(&pairs, "media keeps flowing on each side of the wall").await;
    let find = |id: Uuid| {
        inside
            .iter()
            .chain(outside.iter())
            .find(|p| p.id() == id)
            .expect("participant")
    };
    for (from, to, counts) in frozen {
        let rx = find(to);
        assert_eq!(
            per_ssrc(rx, from),
            counts,
            "packets crossed the wall: {} -> {}",
            find(from).welcome().you.role,
            rx.welcome().you.role
        );
    }
}

/// Waits until every (receiver, publisher) pair has received fresh media — at least
/// 15 more video frames and 40 more audio packets than when called — all pairs at
/// once, so the wait costs about one second whatever the number of pairs.
async fn wait_fresh_media(pairs: &[(&Participant, &Participant)], what: &str) {
    let before: Vec<(u64, u64)> = pairs
        .iter()
        .map(|(rx, tx)| received_from(rx, tx.id()))
        .collect();
    let lagging = || {
        pairs
            .iter()
            .zip(&before)
            .filter(|((rx, tx), b)| {
                let now = received_from(rx, tx.id());
                now.0 < b.0 + 15 || now.1 < b.1 + 40
            })
            .map(|((rx, tx), _)| format!("{} <- {}", rx.welcome().you.role, tx.welcome().you.role))
            .collect::<Vec<_>>()
    };
    let start = std::time::Instant::now();
    while start.elapsed() < MEDIA_WAIT {
        if lagging().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: no fresh media for {:?}", lagging());
}

/// Waits until every receiver gets fresh media from every publisher again.
async fn assert_all_flow(all: &[&Participant]) {
    let mut pairs = Vec::new();
    for rx in all {
        for tx in all {
            if rx.id() != tx.id() && tx.welcome().can_publish {
                pairs.push((*rx, *tx));
            }
        }
    }
    wait_fresh_media(&pairs, "everyone receives everyone again").await;
}

/// Test 1: consultation and deliberation, both directions, judge and observer
/// included; flows return to normal afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consultation_and_deliberation_are_sealed_both_ways() {
    let server = TestServer::start(43250, 43299).await;
    let (hearing, [judge, judge2, prosecutor, defendant, counsel, observer]) = server
        .seat([
            JUDGE,
            PANEL_JUDGE,
            PROSECUTOR,
            DEFENDANT.of_party(PARTY),
            COUNSEL.of_party(PARTY),
            OBSERVER,
        ])
        .await;
    let all = [
        &judge,
        &judge2,
        &prosecutor,
        &defendant,
        &counsel,
        &observer,
    ];
    convene(&judge, &[&defendant, &counsel, &observer]).await;
    publish(&[&judge, &judge2, &prosecutor, &defendant, &counsel]).await;
    wait_exchange(
        &all,
        &[&judge, &judge2, &prosecutor, &defendant, &counsel],
        15,
        40,
    )
    .await;

    // The defendant asks; the presiding judge sees the request and approves it.
    send(
        &defendant,
        ClientMessage::RequestConsultation {
            participant_id: counsel.id(),
        },
    );
    let request = match wait_event(&judge, "the consultation request", |m| {
        matches!(m, ServerMessage::HearingStatus { status } if !status.consultation_requests.is_empty())
    })
    .await
    {
        ServerMessage::HearingStatus { status } => status.consultation_requests[0].clone(),
        _ => unreachable!(),
    };
    assert_eq!((request.from, request.with), (defendant.id(), counsel.id()));
    send(
        &judge,
        ClientMessage::AnswerConsultation {
            request_id: request.id,
            approve: true,
        },
    );
    let room = wait_room(
        &observer,
        RoomKind::Consultation,
        &[defendant.id(), counsel.id()],
    )
    .await;
    wait_event(&counsel, "approval", |m| {
        matches!(
            m,
            ServerMessage::ConsultationAnswered { approved: true, .. }
        )
    })
    .await;
    assert_sealed(
        &[&defendant, &counsel],
        &[&judge, &judge2, &prosecutor, &observer],
    )
    .await;

    // Counsel ends it: everyone receives everyone again.
    send(&counsel, ClientMessage::EndConsultation { room_id: room });
    wait_event(&defendant, "the room ends", |m| {
        matches!(m, ServerMessage::RoomEnded { room_id, reason, .. } if *room_id == room && reason == "ended")
    })
    .await;
    assert_all_flow(&all).await;

    // Deliberation: the panel (presiding judge and judge) alone.
    send(&judge, ClientMessage::StartDeliberation);
    let room = wait_room(
        &defendant,
        RoomKind::Deliberation,
        &[judge.id(), judge2.id()],
    )
    .await;
    assert_sealed(
        &[&judge, &judge2],
        &[&prosecutor, &defendant, &counsel, &observer],
    )
    .await;
    send(&judge, ClientMessage::EndDeliberation);
    wait_event(
        &judge2,
        "deliberation ends",
        |m| matches!(m, ServerMessage::RoomEnded { room_id, .. } if *room_id == room),
    )
    .await;
    assert_all_flow(&all).await;
    for p in all {
        assert_integrity(p);
    }

    // The audit trail has who entered and left, and when — nothing else.
    let store = openhearing::store::SqliteStore::open(&format!(
        "sqlite://{}",
        server.dir.join("openhearing.db").display()
    ))
    .await
    .expect("database");
    let log = eventually_audit(&store, hearing.hearing_id, "room_left", 4).await;
    let entered = log.iter().filter(|e| e.action == "room_entered").count();
    assert_eq!(
        entered, 4,
        "2 consultation members + 2 panel members entered"
    );
    server.stop().await;
}

async fn eventually_audit(
    store: &openhearing::store::SqliteStore,
    id: Uuid,
    action: &str,
    n: usize,
) -> Vec<openhearing::model::AuditEntry> {
    use openhearing::store::Store;
    let start = std::time::Instant::now();
    loop {
        let (entries, _, _) = store.audit_log(id).await.expect("audit").expect("hearing");
        if entries.iter().filter(|e| e.action == action).count() >= n {
            return entries;
        }
        assert!(start.elapsed() < MEDIA_WAIT, "{n} `{action}` audit entries");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Test 2: two consultations at once do not hear each other (auto-approved).
/// Test 3: a member who drops and reconnects comes back into the consultation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_consultations_are_apart_and_reconnecting_returns_to_the_room() {
    let server = TestServer::start_with(
        43300,
        43349,
        "[workflow]\nauto_approve_consultation = true\n",
    )
    .await;
    let hearing = server
        .create_hearing_with(
            &[
                ("Nguyễn Văn A", "presiding_judge", "Phòng xử án 1", None),
                (
                    "Bị cáo Một",
                    "defendant",
                    "Trại tạm giam số 1",
                    Some("Bị cáo 1"),
                ),
                (
                    "Luật sư Một",
                    "defence_counsel",
                    "Văn phòng 1",
                    Some("Bị cáo 1"),
                ),
                (
                    "Bị cáo Hai",
                    "defendant",
                    "Trại tạm giam số 2",
                    Some("Bị cáo 2"),
                ),
                (
                    "Luật sư Hai",
                    "defence_counsel",
                    "Văn phòng 2",
                    Some("Bị cáo 2"),
                ),
            ],
            &[],
        )
        .await;
    let by_name = |n: &str| {
        hearing
            .participants
            .iter()
            .find(|p| p.name == n)
            .expect("participant")
            .clone()
    };
    let judge = join(&server, &hearing, "presiding_judge", true).await;
    let d1 = join_as(&server, &hearing, &by_name("Bị cáo Một"), true).await;
    let c1 = join_as(&server, &hearing, &by_name("Luật sư Một"), true).await;
    let d2 = join_as(&server, &hearing, &by_name("Bị cáo Hai"), true).await;
    let c2 = join_as(&server, &hearing, &by_name("Luật sư Hai"), true).await;
    convene(&judge, &[&d1, &c1, &d2, &c2]).await;
    publish(&[&judge, &d1, &c1, &d2, &c2]).await;
    let all = [&judge, &d1, &c1, &d2, &c2];
    wait_exchange(&all, &all, 15, 40).await;

    send(
        &d1,
        ClientMessage::RequestConsultation {
            participant_id: c1.id(),
        },
    );
    send(
        &c2,
        ClientMessage::RequestConsultation {
            participant_id: d2.id(),
        },
    );
    let room1 = wait_room(&judge, RoomKind::Consultation, &[d1.id(), c1.id()]).await;
    wait_room(&judge, RoomKind::Consultation, &[d2.id(), c2.id()]).await;
    // Each pair is sealed from the other pair and from the judge.
    assert_sealed(&[&d1, &c1], &[&d2, &c2]).await;
    assert_sealed(&[&d1, &c1], &[&judge]).await;
    assert_sealed(&[&d2, &c2], &[&judge]).await;

    // Counsel 1 drops and comes back: into the consultation, not the hearing room.
    c1.close_abruptly().await.expect("drop");
    eventually(MEDIA_WAIT, "the server notices counsel left", || {
        d1.events().iter().any(|m| {
            matches!(m, ServerMessage::ParticipantLeft { participant_id, .. } if *participant_id == c1.id())
        })
    })
    .await;
    let c1 = join_as(&server, &hearing, &by_name("Luật sư Một"), true).await;
    assert!(
        c1.welcome()
            .status
            .rooms
            .iter()
            .any(|r| r.id == room1 && r.members.contains(&c1.id())),
        "the welcome shows counsel still in their consultation"
    );
    publish(&[&c1]).await;
    wait_exchange(&[&c1, &d1], &[&c1, &d1], 15, 40).await;
    assert_sealed(&[&d1, &c1], &[&d2, &c2]).await;
    assert_sealed(&[&d1, &c1], &[&judge]).await;
    assert_eq!(
        per_ssrc(&c1, judge.id()),
        Default::default(),
        "nothing of the judge reached the returning member"
    );
    server.stop().await;
}

/// A signaling-only client, for permission checks.
async fn client(
    server: &TestServer,
    hearing: &CreatedHearing,
    p: &CreatedParticipant,
) -> SignalingClient {
    let mut c = SignalingClient::connect(&server.ws_url(hearing.hearing_id))
        .await
        .expect("connect");
    c.join(&p.token(), Duration::from_secs(10))
        .await
        .expect("join");
    c
}

async fn error_of(c: &mut SignalingClient) -> ErrorCode {
    for _ in 0..200 {
        match c.recv_timeout(Duration::from_secs(10)).await {
            Ok(ServerMessage::Error { code, .. }) => return code,
            Ok(_) => continue,
            Err(e) => panic!("no error arrived: {e}"),
        }
    }
    panic!("no error arrived");
}

/// Test 4: a witness cannot ask for a consultation with another party's counsel, a
/// defendant not with another party's counsel, and an observer enters no private
/// room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_may_enter_private_rooms() {
    let server = TestServer::start(43350, 43399).await;
    let hearing = server
        .create_hearing_with(
            &[
                ("Nguyễn Văn A", "presiding_judge", "Phòng xử án 1", None),
                ("Đỗ Thị J", "judge", "Phòng xử án 1", None),
                (
                    "Bị cáo Một",
                    "defendant",
                    "Trại tạm giam số 1",
                    Some("Bị cáo 1"),
                ),
                (
                    "Luật sư Hai",
                    "defence_counsel",
                    "Văn phòng 2",
                    Some("Bị cáo 2"),
                ),
                ("Phạm F", "witness", "Nhà riêng", None),
                ("Phạm D", "observer", "Tòa án tỉnh", None),
            ],
            &[],
        )
        .await;
    let find = |role: &str| hearing.by_role(role).clone();
    let mut judge = client(&server, &hearing, &find("presiding_judge")).await;
    let mut judge2 = client(&server, &hearing, &find("judge")).await;
    let mut defendant = client(&server, &hearing, &find("defendant")).await;
    let mut witness = client(&server, &hearing, &find("witness")).await;
    let mut observer = client(&server, &hearing, &find("observer")).await;
    let counsel2 = find("defence_counsel").participant_id;
    use openhearing_signaling::{HearingState, StateChange};
    for state in [HearingState::Open, HearingState::InSession] {
        judge
            .send(&ClientMessage::SetState {
                change: StateChange {
                    state,
                    reason: None,
                    adjourned_to: None,
                },
            })
            .expect("send");
    }
    for who in ["defendant", "observer", "defence_counsel"] {
        judge
            .send(&ClientMessage::Admit {
                participant_id: find(who).participant_id,
            })
            .expect("send");
    }
    judge
        .send(&ClientMessage::CallIn {
            participant_id: find("witness").participant_id,
        })
        .expect("send");

    let request = ClientMessage::RequestConsultation {
        participant_id: counsel2,
    };
    witness.send(&request).expect("send");
    assert_eq!(
        error_of(&mut witness).await,
        ErrorCode::PermissionDenied,
        "witness"
    );
    defendant.send(&request).expect("send");
    assert_eq!(
        error_of(&mut defendant).await,
        ErrorCode::NotApplicable,
        "another party's counsel"
    );
    observer.send(&request).expect("send");
    assert_eq!(
        error_of(&mut observer).await,
        ErrorCode::PermissionDenied,
        "observer asks"
    );
    observer
        .send(&ClientMessage::StartDeliberation)
        .expect("send");
    assert_eq!(
        error_of(&mut observer).await,
        ErrorCode::PermissionDenied,
        "observer deliberates"
    );
    judge2
        .send(&ClientMessage::StartDeliberation)
        .expect("send");
    assert_eq!(
        error_of(&mut judge2).await,
        ErrorCode::PermissionDenied,
        "only the presiding judge"
    );

    // The presiding judge's deliberation takes the panel, never the observer.
    judge.send(&ClientMessage::StartDeliberation).expect("send");
    let rooms = loop {
        match observer
            .recv_timeout(Duration::from_secs(10))
            .await
            .expect("status")
        {
            ServerMessage::HearingStatus { status } if !status.rooms.is_empty() => {
                break status.rooms
            }
            _ => continue,
        }
    };
    let mut members = rooms[0].members.clone();
    members.sort();
    let mut panel = vec![
        find("presiding_judge").participant_id,
        find("judge").participant_id,
    ];
    panel.sort();
    assert_eq!(members, panel);
    let _ = judge.recv_timeout(Duration::from_millis(10)).await;
    server.stop().await;
}
