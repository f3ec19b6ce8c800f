//! The court workflow through the real server: the permission table for every role
//! and action, the lobby and court mutes at the media level (webrtc 0.21 clients,
//! packets counted per stream), suspension reaching the lobby, and closing.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cast::*;
use common::*;
use openhearing::model::Hearing;
use openhearing::permissions::Permissions;
use openhearing::store::{SqliteStore, Store};
use openhearing_signaling::{
    Action, Admission, ClientError, ClientMessage, ErrorCode, HearingState, Role, ServerMessage,
    SignalingClient, StateChange,
};
use uuid::Uuid;

const STEP: Duration = Duration::from_secs(10);

async fn store_of(server: &TestServer) -> Arc<SqliteStore> {
    let url = format!("sqlite://{}", server.dir.join("openhearing.db").display());
    Arc::new(
        SqliteStore::open(&url)
            .await
            .expect("open the server's database"),
    )
}

async fn hearing_of(store: &SqliteStore, id: Uuid) -> Hearing {
    store
        .get_hearing(id)
        .await
        .expect("store answers")
        .expect("hearing exists")
}

async fn audit_actions(store: &SqliteStore, id: Uuid) -> Vec<(String, Option<String>, String)> {
    let (entries, _, _) = store
        .audit_log(id)
        .await
        .expect("store answers")
        .expect("hearing exists");
    entries
        .into_iter()
        .map(|e| (e.actor, e.subject, e.action))
        .collect()
}

/// Waits until the audit log holds more than `len` entries and the entry at `len`
/// onwards contains `action` by `actor`; returns the new length.
async fn wait_audit(store: &SqliteStore, id: Uuid, len: usize, actor: &str, action: &str) -> usize {
    let start = Instant::now();
    loop {
        let log = audit_actions(store, id).await;
        if log
            .iter()
            .skip(len)
            .any(|(a, _, act)| a == actor && act == action)
        {
            return log.len();
        }
        assert!(
            start.elapsed() < STEP,
            "audit entry `{action}` by {actor} never appeared; log after #{len}: {:?}",
            &log[len.min(log.len())..]
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

/// A signaling-only participant (no media), reading its messages on demand.
struct Client {
    id: Uuid,
    role: Role,
    c: SignalingClient,
}

impl Client {
    async fn join(server: &TestServer, hearing: &CreatedHearing, p: &CreatedParticipant) -> Client {
        let mut c = SignalingClient::connect(&server.ws_url(hearing.hearing_id))
            .await
            .expect("connect");
        let w = c.join(&p.token(), STEP).await.expect("join accepted");
        Client {
            id: w.you.id,
            role: w.you.role,
            c,
        }
    }

    fn send(&self, m: ClientMessage) {
        self.c.send(&m).expect("send");
    }

    /// Drains what has arrived; returns the error codes among it.
    async fn drain_errors(&mut self) -> Vec<ErrorCode> {
        let mut codes = Vec::new();
        while let Ok(m) = self.c.recv_timeout(Duration::from_millis(20)).await {
            if let ServerMessage::Error { code, .. } = m {
                codes.push(code);
            }
        }
        codes
    }

    async fn next_error(&mut self) -> ErrorCode {
        let start = Instant::now();
        while start.elapsed() < STEP {
            match self.c.recv_timeout(STEP).await {
                Ok(ServerMessage::Error { code, .. }) => return code,
                Ok(_) => continue,
                Err(e) => panic!("{}: no error arrived: {e}", self.role),
            }
        }
        panic!("{}: no error arrived", self.role);
    }
}

/// What the store says about the things court actions change.
fn snapshot(h: &Hearing) -> String {
    let mut s = format!(
        "{:?} {:?} locked={} spotlight={:?}\n",
        h.status.state, h.status.reason, h.status.locked, h.status.spotlight
    );
    for p in &h.participants {
        s.push_str(&format!(
            "{} {:?} muted={} v{}\n",
            p.id, p.admission, p.muted, p.link_version
        ));
    }
    s
}

/// Test 1: for every role and every control action of the permission table, an
/// allowed action works (effect stored and audited) and a denied one gets
/// `permission_denied`, is audited as a denial, and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permission_table_for_every_role_and_action() {
    let server = TestServer::start(42800, 42899).await;
    let perms = Permissions::defaults();
    let control = [
        Action::Admit,
        Action::Deny,
        Action::MuteOthers,
        Action::Remove,
        Action::Lock,
        Action::ControlLifecycle,
        Action::CallWitness,
        Action::Spotlight,
    ];
    let allowed = |a: Action| Role::ALL.iter().filter(|r| perms.allows(**r, a)).count();
    // One actor per role, plus targets: a lobby participant per allowed admitter, one
    // per allowed remover, one for deny, one witness, one participant to mute.
    let mut people: Vec<(String, Role, String)> = Role::ALL
        .iter()
        .map(|r| (format!("Actor {r}"), *r, format!("Site {r}")))
        .collect();
    for i in 0..allowed(Action::Admit) {
        people.push((
            format!("Admit target {i}"),
            Role::Victim,
            "Nhà riêng".into(),
        ));
    }
    for i in 0..allowed(Action::Remove) {
        people.push((
            format!("Remove target {i}"),
            Role::Litigant,
            "Văn phòng".into(),
        ));
    }
    people.push((
        "Deny target".into(),
        Role::Representative,
        "Văn phòng".into(),
    ));
    people.push(("Witness target".into(), Role::Witness, "Nhà riêng".into()));
    people.push((
        "Mute target".into(),
        Role::Interpreter,
        "Tòa án huyện".into(),
    ));
    let spec: Vec<(&str, &str, &str)> = people
        .iter()
        .map(|(n, r, s)| (n.as_str(), r.as_str(), s.as_str()))
        .collect();
    let hearing = server.create_hearing(&spec).await;
    let store = store_of(&server).await;
    let hid = hearing.hearing_id;

    let find = |name: &str| {
        hearing
            .participants
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("{name}"))
    };
    let mut actors: BTreeMap<Role, Client> = BTreeMap::new();
    for r in Role::ALL {
        let c = Client::join(&server, &hearing, find(&format!("Actor {r}"))).await;
        actors.insert(r, c);
    }
    let mut targets = BTreeMap::new();
    for p in &hearing.participants {
        if !p.name.starts_with("Actor ") {
            targets.insert(p.name.clone(), Client::join(&server, &hearing, p).await);
        }
    }
    let judge_id = actors[&Role::PresidingJudge].id;
    let judge_actor = format!("participant:{judge_id}");

    // The judge opens the hearing and admits every actor who waits.
    actors[&Role::PresidingJudge].send(set_state(HearingState::Open, None));
    actors[&Role::PresidingJudge].send(set_state(HearingState::InSession, None));
    let mut len = wait_audit(&store, hid, 0, &judge_actor, "state_change").await;
    for r in Role::ALL {
        let c = &actors[&r];
        if perms.auto_admitted(r) {
            continue;
        }
        let msg = if perms.waits_for_call(r) {
            ClientMessage::CallIn {
                participant_id: c.id,
            }
        } else {
            ClientMessage::Admit {
                participant_id: c.id,
            }
        };
        actors[&Role::PresidingJudge].send(msg);
        len = wait_audit(
            &store,
            hid,
            len,
            &judge_actor,
            if perms.waits_for_call(r) {
                "call_in"
            } else {
                "admit"
            },
        )
        .await;
    }
    let h = hearing_of(&store, hid).await;
    assert_eq!(h.status.state, HearingState::InSession);
    for p in &h.participants {
        if p.name.starts_with("Actor ") {
            assert_eq!(p.admission, Admission::Admitted, "{}", p.name);
        }
    }
    for c in actors.values_mut() {
        assert!(
            c.drain_errors().await.is_empty(),
            "setup raised errors for {}",
            c.role
        );
    }

    let mut admit_targets: Vec<Uuid> = (0..allowed(Action::Admit))
        .map(|i| targets[&format!("Admit target {i}")].id)
        .collect();
    let mut remove_targets: Vec<Uuid> = (0..allowed(Action::Remove))
        .map(|i| targets[&format!("Remove target {i}")].id)
        .collect();
    let deny_target = targets["Deny target"].id;
    let witness = targets["Witness target"].id;
    let mute_target = targets["Mute target"].id;

    let mut checked = 0;
    for action in control {
        for role in Role::ALL {
            let actor_id = actors[&role].id;
            let who = format!("participant:{actor_id}");
            // The request that exercises `action`, and the audit entry it leaves.
            let (request, audited): (ClientMessage, &str) = match action {
                Action::Admit => (
                    ClientMessage::Admit {
                        // Once every admitter had its own target, denied roles try the
                        // deny target (also waiting in the lobby).
                        participant_id: admit_targets.last().copied().unwrap_or(deny_target),
                    },
                    "admit",
                ),
                Action::Deny => (
                    ClientMessage::Deny {
                        participant_id: deny_target,
                        reason: Some("không đúng người".into()),
                    },
                    "deny",
                ),
                Action::MuteOthers => (
                    ClientMessage::Mute {
                        participant_id: mute_target,
                    },
                    "mute",
                ),
                Action::Remove => (
                    ClientMessage::Remove {
                        participant_id: remove_targets.last().copied().unwrap_or(mute_target),
                        reason: None,
                    },
                    "remove",
                ),
                Action::Lock => (ClientMessage::Lock { locked: true }, "lock"),
                Action::ControlLifecycle => (
                    set_state(
                        HearingState::Suspended,
                        Some("mất kết nối với trại tạm giam"),
                    ),
                    "state_change",
                ),
                Action::CallWitness => (
                    ClientMessage::CallIn {
                        participant_id: witness,
                    },
                    "call_in",
                ),
                Action::Spotlight => (
                    ClientMessage::Spotlight {
                        participant_id: Some(judge_id),
                    },
                    "spotlight",
                ),
                _ => unreachable!(),
            };
            let before = snapshot(&hearing_of(&store, hid).await);
            actors[&role].send(request);
            if !perms.allows(role, action) {
                let code = actors.get_mut(&role).expect("actor").next_error().await;
                assert_eq!(code, ErrorCode::PermissionDenied, "{role} {action}");
                len = wait_audit(&store, hid, len, &who, "permission_denied").await;
                assert_eq!(
                    snapshot(&hearing_of(&store, hid).await),
                    before,
                    "a denied {action} by {role} changed nothing"
                );
                checked += 1;
                continue;
            }
            len = wait_audit(&store, hid, len, &who, audited).await;
            let h = hearing_of(&store, hid).await;
            let p = |id: Uuid| {
                h.participants
                    .iter()
                    .find(|p| p.id == id)
                    .expect("participant")
            };
            // The effect is stored; then the state is put back for the next role.
            match action {
                Action::Admit => {
                    let t = admit_targets.pop().expect("target");
                    assert_eq!(p(t).admission, Admission::Admitted, "{role} admits");
                }
                Action::Deny => {
                    // The denied participant was disconnected; they may try again.
                    let mut denied = targets.remove("Deny target").expect("deny target");
                    assert_eq!(denied.next_error().await, ErrorCode::AdmissionDenied);
                    let again = Client::join(&server, &hearing, find("Deny target")).await;
                    targets.insert("Deny target".into(), again);
                    len = audit_actions(&store, hid).await.len();
                }
                Action::MuteOthers => {
                    assert!(p(mute_target).muted, "{role} mutes");
                    actors[&role].send(ClientMessage::RequestUnmute {
                        participant_id: mute_target,
                    });
                    len = wait_audit(&store, hid, len, &who, "unmute_requested").await;
                    targets["Mute target"].send(ClientMessage::AcceptUnmute);
                    len = wait_audit(
                        &store,
                        hid,
                        len,
                        &format!("participant:{mute_target}"),
                        "unmute_accepted",
                    )
                    .await;
                }
                Action::Remove => {
                    let t = remove_targets.pop().expect("target");
                    assert_eq!(p(t).admission, Admission::Removed, "{role} removes");
                }
                Action::Lock => {
                    assert!(h.status.locked, "{role} locks");
                    actors[&role].send(ClientMessage::Lock { locked: false });
                    len = wait_audit(&store, hid, len, &who, "unlock").await;
                }
                Action::ControlLifecycle => {
                    assert_eq!(h.status.state, HearingState::Suspended, "{role} suspends");
                    actors[&role].send(set_state(HearingState::InSession, None));
                    len = wait_audit(&store, hid, len, &who, "state_change").await;
                }
                Action::CallWitness => {
                    assert_eq!(p(witness).admission, Admission::Admitted, "{role} calls in");
                    actors[&role].send(ClientMessage::Dismiss {
                        participant_id: witness,
                    });
                    len = wait_audit(&store, hid, len, &who, "dismiss").await;
                }
                Action::Spotlight => {
                    assert_eq!(h.status.spotlight, Some(judge_id), "{role} spotlights");
                    actors[&role].send(ClientMessage::Spotlight {
                        participant_id: None,
                    });
                    len = wait_audit(&store, hid, len, &who, "spotlight").await;
                }
                _ => unreachable!(),
            }
            let errors = actors.get_mut(&role).expect("actor").drain_errors().await;
            assert!(
                errors.is_empty(),
                "{role} {action}: unexpected errors {errors:?}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, control.len() * Role::ALL.len());
    let h = hearing_of(&store, hid).await;
    assert_eq!(h.status.state, HearingState::InSession);
    assert!(!h.status.locked);

    // Publish and subscribe are media permissions: observers' welcome says so, and
    // the media tests below and the policy's exhaustive unit test enforce them.
    for (role, c) in &actors {
        let _ = c;
        assert_eq!(
            perms.may_publish_any(*role),
            *role != Role::Observer,
            "{role}"
        );
    }

    // Refusals that are not about permissions: each gets its own code.
    let judge = actors.get_mut(&Role::PresidingJudge).expect("judge");
    for (request, code) in [
        (
            set_state(HearingState::Scheduled, None),
            ErrorCode::InvalidTransition,
        ),
        (
            set_state(HearingState::Suspended, Some("   ")),
            ErrorCode::ReasonRequired,
        ),
        (
            ClientMessage::SetState {
                change: StateChange {
                    state: HearingState::Adjourned,
                    reason: Some("vắng bị cáo".into()),
                    adjourned_to: None,
                },
            },
            ErrorCode::ReasonRequired,
        ),
        (
            ClientMessage::Mute {
                participant_id: Uuid::new_v4(),
            },
            ErrorCode::UnknownParticipant,
        ),
        (
            ClientMessage::Admit {
                participant_id: judge_id,
            },
            ErrorCode::NotApplicable,
        ),
        (
            ClientMessage::Admit {
                participant_id: witness,
            },
            ErrorCode::NotApplicable,
        ),
    ] {
        let before = snapshot(&hearing_of(&store, hid).await);
        judge.send(request.clone());
        assert_eq!(judge.next_error().await, code, "{request:?}");
        assert_eq!(
            snapshot(&hearing_of(&store, hid).await),
            before,
            "{request:?}"
        );
    }
    // A muted participant cannot unmute themselves without being asked.
    judge.send(ClientMessage::Mute {
        participant_id: mute_target,
    });
    wait_audit(&store, hid, len, &judge_actor, "mute").await;
    let mt = targets.get_mut("Mute target").expect("mute target");
    mt.send(ClientMessage::AcceptUnmute);
    assert_eq!(mt.next_error().await, ErrorCode::NotApplicable);
    assert!(hearing_of(&store, hid)
        .await
        .participants
        .iter()
        .any(|p| p.id == mute_target && p.muted));
    // Locked: nobody can be admitted.
    let judge = actors.get_mut(&Role::PresidingJudge).expect("judge");
    judge.send(ClientMessage::Lock { locked: true });
    judge.send(ClientMessage::Admit {
        participant_id: deny_target,
    });
    assert_eq!(judge.next_error().await, ErrorCode::HearingLocked);
    server.stop().await;
}

/// Test 2: a participant in the lobby receives no RTP of the hearing and the hearing
/// none of theirs; after admission both directions flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lobby_is_isolated_at_the_media_level() {
    let server = TestServer::start(42900, 42949).await;
    let (_hearing, [judge, prosecutor, defendant]) =
        server.seat([JUDGE, PROSECUTOR, DEFENDANT]).await;
    assert_eq!(judge.welcome().you.admission, Admission::Admitted);
    assert_eq!(prosecutor.welcome().you.admission, Admission::Admitted);
    assert_eq!(defendant.welcome().you.admission, Admission::Lobby);
    assert!(defendant.welcome().you.lobby_since.is_some());
    open_session(&judge).await;
    publish(&[&judge, &prosecutor, &defendant]).await;

    // The admitted two exchange media while the defendant waits ...
    wait_exchange(&[&judge, &prosecutor], &[&judge, &prosecutor], 20, 50).await;
    // ... over a further window of media flowing, nothing crosses the lobby line.
    let before = received_from(&judge, prosecutor.id());
    eventually(MEDIA_WAIT, "media flows among the admitted", || {
        let now = received_from(&judge, prosecutor.id());
        now.0 >= before.0 + 30 && now.1 >= before.1 + 75
    })
    .await;
    for p in [&judge, &prosecutor] {
        assert_eq!(
            packets_from(&defendant, p.id()),
            (0, 0),
            "lobby receives nothing"
        );
        assert_eq!(
            packets_from(p, defendant.id()),
            (0, 0),
            "lobby sends nothing"
        );
    }

    admit(&judge, &defendant).await;
    wait_exchange(
        &[&judge, &prosecutor, &defendant],
        &[&judge, &prosecutor, &defendant],
        20,
        50,
    )
    .await;
    for p in [&judge, &prosecutor, &defendant] {
        assert_integrity(p);
    }
    server.stop().await;
}

/// Test 3: after the judge mutes a participant no more of their audio reaches anyone
/// (their video still does); after they accept an unmute request audio flows again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn court_mute_stops_audio_at_the_server() {
    let server = TestServer::start(42950, 42999).await;
    let (_hearing, [judge, defendant, counsel]) = server.seat([JUDGE, DEFENDANT, COUNSEL]).await;
    convene(&judge, &[&defendant, &counsel]).await;
    publish(&[&judge, &defendant, &counsel]).await;
    let all = [&judge, &defendant, &counsel];
    wait_exchange(&all, &all, 20, 50).await;

    let skip = event_count(&counsel);
    send(
        &judge,
        ClientMessage::Mute {
            participant_id: counsel.id(),
        },
    );
    // Counsel's client is told.
    wait_new_event(&counsel, skip, "counsel learns they are muted", |m| {
        matches!(m, ServerMessage::ParticipantUpdated { participant } if participant.id == counsel.id() && participant.muted)
    })
    .await;
    // Packets already on the wire drain; then the count must stay put.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let frozen: Vec<(u64, u64)> = [&judge, &defendant]
        .iter()
        .map(|p| packets_from(p, counsel.id()))
        .collect();
    let video_before = received_from(&defendant, counsel.id()).0;
    eventually(MEDIA_WAIT, "counsel's video keeps flowing", || {
        received_from(&defendant, counsel.id()).0 >= video_before + 40
    })
    .await;
    for (p, f) in [&judge, &defendant].iter().zip(&frozen) {
        assert_eq!(
            packets_from(p, counsel.id()).1,
            f.1,
            "no audio packet of the muted counsel reaches {}",
            p.welcome().you.role
        );
    }
    // Counsel may not unmute on their own.
    let skip = event_count(&counsel);
    send(&counsel, ClientMessage::AcceptUnmute);
    assert_eq!(next_error(&counsel, skip).await, ErrorCode::NotApplicable);

    // The judge asks; counsel accepts; audio flows again.
    let skip = event_count(&counsel);
    send(
        &judge,
        ClientMessage::RequestUnmute {
            participant_id: counsel.id(),
        },
    );
    wait_new_event(
        &counsel,
        skip,
        "unmute request",
        |m| matches!(m, ServerMessage::UnmuteRequested { by } if *by == judge.id()),
    )
    .await;
    send(&counsel, ClientMessage::AcceptUnmute);
    let audio_before = received_from(&defendant, counsel.id()).1;
    eventually(
        MEDIA_WAIT,
        "counsel's audio flows again after unmuting",
        || {
            received_from(&defendant, counsel.id()).1 >= audio_before + 50
                && received_from(&judge, counsel.id()).1 >= frozen[0].1 + 50
        },
    )
    .await;
    for p in all {
        assert_integrity(p);
    }
    server.stop().await;
}

/// Test 4: suspension with a reason reaches everyone, the lobby included; resume
/// works; closing disconnects everyone and the old links are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspension_reaches_the_lobby_and_closing_ends_everything() {
    let server = TestServer::start(43200, 43249).await;
    let (hearing, [judge, defendant, witness, observer]) =
        server.seat([JUDGE, DEFENDANT, WITNESS, OBSERVER]).await;
    convene(&judge, &[&defendant, &observer]).await;
    assert!(
        sees_self(&witness, Admission::Lobby),
        "the witness waits to be called"
    );
    publish(&[&judge, &defendant]).await;
    wait_exchange(
        &[&judge, &defendant, &observer],
        &[&judge, &defendant],
        10,
        25,
    )
    .await;

    let reason = "Mất kết nối với trại tạm giam số 1";
    send(&judge, set_state(HearingState::Suspended, Some(reason)));
    for p in [&judge, &defendant, &witness, &observer] {
        wait_event(p, "the suspension and its reason", |m| {
            matches!(m, ServerMessage::HearingStatus { status }
                if status.state == HearingState::Suspended && status.reason.as_deref() == Some(reason))
        })
        .await;
    }
    // Resume: the state reaches everyone, and media still flows.
    send(&judge, set_state(HearingState::InSession, None));
    for p in [&judge, &defendant, &witness, &observer] {
        eventually(MEDIA_WAIT, "resumed", || {
            p.events().iter().rev().find_map(|m| match m {
                ServerMessage::HearingStatus { status } => Some(status.state),
                _ => None,
            }) == Some(HearingState::InSession)
        })
        .await;
    }
    let before = received_from(&observer, defendant.id());
    eventually(MEDIA_WAIT, "media flows after resuming", || {
        received_from(&observer, defendant.id()).0 >= before.0 + 10
    })
    .await;

    // Close: everyone is told, then disconnected with hearing_closed.
    send(&judge, set_state(HearingState::Closed, None));
    for p in [&judge, &defendant, &witness, &observer] {
        eventually(MEDIA_WAIT, "closed socket", || p.is_closed()).await;
        let (code, _) = p.close_info().expect("close frame");
        assert_eq!(code, ErrorCode::HearingClosed.close_code());
        assert!(p.events().iter().any(|m| matches!(m,
            ServerMessage::HearingStatus { status } if status.state == HearingState::Closed)));
    }
    // Old links no longer join.
    for role in ["presiding_judge", "defendant", "witness"] {
        let mut c = SignalingClient::connect(&server.ws_url(hearing.hearing_id))
            .await
            .expect("connect");
        match c.join(&hearing.by_role(role).token(), STEP).await {
            Err(ClientError::Refused { code, .. }) => assert_eq!(code, ErrorCode::HearingClosed),
            other => panic!(
                "{role}: a closed hearing's link joined: {:?}",
                other.map(|w| w.you.id)
            ),
        }
    }
    let store = store_of(&server).await;
    let history = store
        .state_history(hearing.hearing_id)
        .await
        .expect("history");
    let states: Vec<HearingState> = history.iter().map(|s| s.state).collect();
    assert_eq!(
        states,
        [
            HearingState::Open,
            HearingState::InSession,
            HearingState::Suspended,
            HearingState::InSession,
            HearingState::Closed
        ]
    );
    assert_eq!(history[2].reason.as_deref(), Some(reason));
    server.stop().await;
}
