//! The state machine, and the archive that follows it.

use super::*;
use crate::hearing::core::ArchiveOp;

/// A state change to `to` that passes every check other than the transition.
fn change(to: HearingState) -> StateChange {
    StateChange {
        state: to,
        reason: matches!(to, HearingState::Suspended | HearingState::Adjourned)
            .then(|| "a reason".into()),
        adjourned_to: (to == HearingState::Adjourned).then(|| "2026-12-01T09:00:00Z".into()),
    }
}

#[test]
fn every_transition_is_allowed_exactly_when_the_state_machine_says() {
    for from in HearingState::ALL {
        for to in HearingState::ALL {
            let mut c = Court::new(from);
            let (request, mut effects) = c.admin(AdminOp::SetState(change(to)));
            let result = admin_reply(&mut effects, request);
            if from.can_move_to(to) {
                assert!(result.is_ok(), "{from} -> {to}: {result:?}");
                assert_eq!(c.core.status.state, to);
                assert_eq!(audits(&effects), ["state_change"], "{from} -> {to}");
                let history = effects.iter().find_map(|e| match e {
                    Effect::Persist(WriteOp::Status { history, .. }) => Some(history.clone()),
                    _ => None,
                });
                assert_eq!(
                    history,
                    Some(Some(("admin:ops".to_owned(), c.now))),
                    "{from} -> {to}: stored with its history entry"
                );
            } else {
                let r = result.expect_err("refused");
                assert_eq!(r.code, ErrorCode::InvalidTransition, "{from} -> {to}");
                assert_eq!(c.core.status.state, from);
                assert!(effects.is_empty(), "{from} -> {to}: {effects:?}");
            }
        }
    }
}

#[test]
fn an_invalid_transition_says_what_is_possible() {
    let mut c = Court::new(HearingState::Scheduled);
    c.join("judge");
    let (code, message) = c.refused(
        "judge",
        ClientMessage::SetState {
            change: change(HearingState::InSession),
        },
    );
    assert_eq!(code, ErrorCode::InvalidTransition);
    assert_eq!(
        message,
        "the hearing is scheduled; it cannot become in_session (possible: open, adjourned)"
    );
    c.core.status.state = HearingState::Closed;
    let (_, r) = c.try_join("judge");
    assert!(r.is_err());
    let (request, mut effects) = c.admin(AdminOp::SetState(change(HearingState::Open)));
    assert_eq!(
        admin_reply(&mut effects, request).unwrap_err().message,
        "the hearing is closed; it cannot change any more"
    );
}

#[test]
fn suspending_and_adjourning_need_a_reason_and_adjourning_a_date() {
    let mut c = Court::new(HearingState::InSession);
    c.join("judge");
    for (state, reason) in [
        (HearingState::Suspended, None),
        (HearingState::Suspended, Some("   ")),
        (HearingState::Adjourned, None),
    ] {
        let (code, _) = c.refused(
            "judge",
            ClientMessage::SetState {
                change: StateChange {
                    state,
                    reason: reason.map(str::to_owned),
                    adjourned_to: Some("2026-12-01T09:00:00Z".into()),
                },
            },
        );
        assert_eq!(code, ErrorCode::ReasonRequired, "{state} {reason:?}");
    }
    let mut adjourn = change(HearingState::Adjourned);
    adjourn.adjourned_to = None;
    let (code, message) = c.refused(
        "judge",
        ClientMessage::SetState {
            change: adjourn.clone(),
        },
    );
    assert_eq!(
        (code, message.as_str()),
        (
            ErrorCode::ReasonRequired,
            "adjourning needs the new date (adjourned_to, RFC 3339)"
        )
    );
    adjourn.adjourned_to = Some("next week".into());
    let (code, _) = c.refused("judge", ClientMessage::SetState { change: adjourn });
    assert_eq!(code, ErrorCode::MalformedMessage);
    let mut suspend = change(HearingState::Suspended);
    suspend.reason = Some("a\u{7}bell".into());
    let (code, _) = c.refused("judge", ClientMessage::SetState { change: suspend });
    assert_eq!(code, ErrorCode::MalformedMessage);
    assert_eq!(c.core.status.state, HearingState::InSession);

    let effects = c.set_state("judge", HearingState::Suspended, Some("  a break "));
    assert_eq!(c.core.status.reason.as_deref(), Some("a break"));
    assert!(status_to(&effects, c.session("judge"))
        .is_some_and(|s| s.reason.as_deref() == Some("a break")));
    c.join("defendant");
    let (code, _) = c.refused(
        "defendant",
        ClientMessage::SetState {
            change: change(HearingState::InSession),
        },
    );
    assert_eq!(code, ErrorCode::PermissionDenied);
}

#[test]
fn closing_ends_every_room_and_every_session_after_telling_the_status() {
    let mut c = session_with_defence();
    let counsel = c.id("counsel");
    c.act(
        "defendant",
        ClientMessage::RequestConsultation {
            participant_id: counsel,
        },
    );
    c.act("judge", ClientMessage::StartDeliberation);
    let sessions: Vec<u64> = ["judge", "defendant", "counsel"]
        .iter()
        .map(|n| c.session(n))
        .collect();
    let effects = c.set_state("judge", HearingState::Closed, None);
    assert!(c.core.status.rooms.is_empty());
    assert!(c.core.status.consultation_requests.is_empty());
    assert!(c.core.subscribed.is_empty(), "no media in a closed hearing");
    let a = audits(&effects);
    assert_eq!(a[..2], ["room_left", "state_change"]);
    assert_eq!(a.iter().filter(|x| **x == "leave").count(), 3);
    let kicked: Vec<u64> = kicks(&effects).iter().map(|k| k.0).collect();
    assert_eq!(kicked.len(), 3);
    for s in &sessions {
        assert!(kicked.contains(s));
        let closed_status = first(&effects, |e| {
            matches!(e, Effect::Send { session, message: ServerMessage::HearingStatus { status } }
                if session == s && status.state == HearingState::Closed)
        });
        let kick = first(
            &effects,
            |e| matches!(e, Effect::Kick { session, .. } if session == s),
        );
        assert!(closed_status < kick);
    }
    assert!(kicks(&effects)
        .iter()
        .all(|k| k.1 == ErrorCode::HearingClosed));
    assert!(!c.core.anyone_present());
}

#[test]
fn going_in_session_opens_the_archive_before_the_status_is_told() {
    let mut c = Court::with(
        HearingState::Open,
        true,
        Recording::On {
            render_after_close: true,
        },
    );
    c.join("judge");
    c.publish("judge", "judge-mic", MediaKind::Audio);
    let (request, effects) = c.admin(AdminOp::SetState(change(HearingState::InSession)));
    assert!(
        matches!(effects.last(), Some(Effect::OpenArchive(info)) if info.case_number == "HS-1/2026")
    );
    assert!(
        !effects
            .iter()
            .any(|e| matches!(e, Effect::Send { .. } | Effect::Reply { .. })),
        "nothing is told before the archive is open: {effects:?}"
    );
    assert_eq!(c.core.idle_timeout(), None);

    let mut effects = c.handle(Input::ArchiveOpened(Ok(())));
    assert!(c.core.recording());
    assert!(status_to(&effects, c.session("judge")).is_some_and(|s| s.recording));
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::Archive(ArchiveOp::Set { track, record: true, cause: None, .. }) if track == "judge-mic"
    )));
    assert!(matches!(
        admin_reply(&mut effects, request),
        Ok(AdminOutcome::Done)
    ));

    // Journalled from now on; paused while suspended; resumed; closed at the end.
    let effects = c.set_state("judge", HearingState::Suspended, Some("a break"));
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::Archive(ArchiveOp::Event {
            kind: openhearing_recorder::EventKind::StateChanged,
            ..
        })
    )));
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::Archive(ArchiveOp::Pause("suspended")))));
    let effects = c.set_state("judge", HearingState::InSession, None);
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::Archive(ArchiveOp::Resume))));
    let effects = c.set_state("judge", HearingState::Closed, None);
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::Archive(ArchiveOp::Close { reason, render: true, wait: false }) if reason == "closed"
    )));
    assert!(!c.core.recording());
}

#[test]
fn an_archive_that_cannot_open_alerts_the_bench_and_the_hearing_goes_on() {
    let mut c = Court::with(
        HearingState::Open,
        true,
        Recording::On {
            render_after_close: false,
        },
    );
    c.join("judge");
    c.join("clerk");
    c.set_state("judge", HearingState::InSession, None);
    let effects = c.handle(Input::ArchiveOpened(Err("disk full".into())));
    assert!(!c.core.recording());
    assert_eq!(audits(&effects), ["recording_alert"]);
    let judge = sent_to(&effects, c.session("judge"));
    assert!(matches!(
        judge[0],
        ServerMessage::RecordingAlert { message } if message == "the hearing cannot be recorded: disk full"
    ));
    assert!(status_to(&effects, c.session("judge")).is_some_and(|s| !s.recording));
    assert!(!sent_to(&effects, c.session("clerk"))
        .iter()
        .any(|m| matches!(m, ServerMessage::RecordingAlert { .. })));
    assert_eq!(c.core.status.state, HearingState::InSession);
}

#[test]
fn a_restart_records_on_and_a_hearing_not_recorded_never_opens_an_archive() {
    let c = Court::with(
        HearingState::Suspended,
        true,
        Recording::On {
            render_after_close: false,
        },
    );
    let mut c = c;
    let effects = c.handle(Input::ArchiveOpened(Ok(())));
    assert!(matches!(
        effects[..],
        [Effect::Archive(ArchiveOp::Pause("suspended"))]
    ));
    let effects = c.handle(Input::Shutdown {
        request: RequestId(7),
    });
    assert!(matches!(
        &effects[..],
        [
            Effect::Archive(ArchiveOp::Close { reason, render: false, wait: true }),
            Effect::Reply { request: RequestId(7), reply: Reply::Stored }
        ] if reason == "server_stopped"
    ));

    for (record_this, recording) in [
        (
            false,
            Recording::On {
                render_after_close: false,
            },
        ),
        (true, Recording::Off),
    ] {
        let mut c = Court::with(HearingState::Open, record_this, recording);
        c.join("judge");
        let effects = c.set_state("judge", HearingState::InSession, None);
        assert!(!effects.iter().any(|e| matches!(e, Effect::OpenArchive(_))));
        assert!(status_to(&effects, c.session("judge")).is_some_and(|s| !s.recording));
    }
}
