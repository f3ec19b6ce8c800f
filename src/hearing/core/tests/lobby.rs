//! The lobby: admit, admit all, deny, call in, dismiss, remove.

use super::*;

#[test]
fn the_judge_admits_from_the_lobby_and_it_is_stored_before_it_is_announced() {
    let mut c = Court::new(HearingState::InSession);
    c.join("judge");
    c.join("defendant");
    c.publish("judge", "judge-mic", MediaKind::Audio);
    assert!(
        !c.subscribed("defendant", "judge-mic"),
        "the lobby receives nothing"
    );
    let id = c.id("defendant");
    let effects = c.act("judge", ClientMessage::Admit { participant_id: id });
    assert_eq!(c.member("defendant").p.admission, Admission::Admitted);
    assert_eq!(c.member("defendant").lobby_since, None);
    assert_eq!(
        participant_writes(&effects),
        [(id, Admission::Admitted, false)]
    );
    assert_eq!(audits(&effects), ["admit"]);
    assert!(c.subscribed("defendant", "judge-mic"));
    let stored = first(&effects, |e| matches!(e, Effect::Persist(_)));
    let audited = first(&effects, |e| matches!(e, Effect::Audit(_)));
    let subscribed = first(&effects, |e| matches!(e, Effect::Subscribe { .. }));
    let announced = first(&effects, |e| matches!(e, Effect::Send { .. }));
    assert!(stored < audited && audited < subscribed && subscribed < announced);
    for name in ["judge", "defendant"] {
        assert!(matches!(
            sent_to(&effects, c.session(name))[..],
            [ServerMessage::ParticipantUpdated { participant }] if participant.admission == Admission::Admitted
        ));
    }
}

#[test]
fn admitting_is_refused_when_it_does_not_apply() {
    let mut c = Court::new(HearingState::Open);
    c.join("judge");
    c.join("defendant");
    c.join("witness");
    let judge = c.id("judge");
    let (code, message) = c.refused(
        "judge",
        ClientMessage::Admit {
            participant_id: judge,
        },
    );
    assert_eq!(
        (code, message.as_str()),
        (
            ErrorCode::NotApplicable,
            "judge is not waiting in the lobby"
        )
    );
    let witness = c.id("witness");
    let (_, message) = c.refused(
        "judge",
        ClientMessage::Admit {
            participant_id: witness,
        },
    );
    assert_eq!(message, "witness is a witness: call them in instead");
    let nobody = Uuid::new_v4();
    let (code, _) = c.refused(
        "judge",
        ClientMessage::Admit {
            participant_id: nobody,
        },
    );
    assert_eq!(code, ErrorCode::UnknownParticipant);

    c.act("judge", ClientMessage::Lock { locked: true });
    let defendant = c.id("defendant");
    let (code, _) = c.refused(
        "judge",
        ClientMessage::Admit {
            participant_id: defendant,
        },
    );
    assert_eq!(code, ErrorCode::HearingLocked);
    assert_eq!(
        c.refused("judge", ClientMessage::AdmitAll).0,
        ErrorCode::HearingLocked
    );
    assert_eq!(c.member("defendant").p.admission, Admission::Lobby);
}

#[test]
fn a_permission_denial_is_told_and_audited() {
    let mut c = Court::new(HearingState::Open);
    c.join("defendant");
    let id = c.id("defendant");
    let effects = c.act("defendant", ClientMessage::Admit { participant_id: id });
    assert_eq!(audits(&effects), ["permission_denied"]);
    assert_eq!(
        errors_to(&effects, c.session("defendant")),
        [(
            ErrorCode::PermissionDenied,
            "the role defendant may not admit".to_owned()
        )]
    );
    assert!(participant_writes(&effects).is_empty());
}

#[test]
fn admit_all_admits_who_waits_present_but_not_those_called_in() {
    let mut c = Court::new(HearingState::Open);
    for name in ["clerk", "defendant", "witness", "observer"] {
        c.join(name);
    }
    let effects = c.act("clerk", ClientMessage::AdmitAll);
    assert_eq!(audits(&effects), ["admit", "admit"]);
    assert_eq!(c.member("defendant").p.admission, Admission::Admitted);
    assert_eq!(c.member("observer").p.admission, Admission::Admitted);
    assert_eq!(c.member("witness").p.admission, Admission::Lobby);
    assert_eq!(
        c.member("counsel").p.admission,
        Admission::Lobby,
        "not present"
    );
}

#[test]
fn a_denial_closes_the_session_with_the_reason() {
    let mut c = Court::new(HearingState::Open);
    c.join("judge");
    c.join("observer");
    let session = c.session("observer");
    let id = c.id("observer");
    let effects = c.act(
        "judge",
        ClientMessage::Deny {
            participant_id: id,
            reason: Some("  not a party  ".into()),
        },
    );
    assert_eq!(audits(&effects), ["deny", "leave"]);
    assert_eq!(
        kicks(&effects),
        [(
            session,
            ErrorCode::AdmissionDenied,
            "the court refused your admission: not a party".to_owned()
        )]
    );
    assert!(c.member("observer").session.is_none());
    assert_eq!(
        c.member("observer").p.admission,
        Admission::Lobby,
        "may try again"
    );
    // Not waiting any more.
    let (code, _) = c.refused(
        "judge",
        ClientMessage::Deny {
            participant_id: id,
            reason: None,
        },
    );
    assert_eq!(code, ErrorCode::NotApplicable);
    let long = "x".repeat(super::super::MAX_REASON_CHARS + 1);
    c.join("observer");
    let (code, _) = c.refused(
        "judge",
        ClientMessage::Deny {
            participant_id: id,
            reason: Some(long),
        },
    );
    assert_eq!(code, ErrorCode::MalformedMessage);
}

#[test]
fn a_witness_is_called_in_and_dismissed_back_to_the_lobby() {
    let mut c = Court::new(HearingState::InSession);
    c.join("clerk");
    c.join("witness");
    let id = c.id("witness");
    let effects = c.act("clerk", ClientMessage::CallIn { participant_id: id });
    assert_eq!(audits(&effects), ["call_in"]);
    assert_eq!(c.member("witness").p.admission, Admission::Admitted);
    let defendant = c.id("defendant");
    let (_, message) = c.refused(
        "clerk",
        ClientMessage::CallIn {
            participant_id: defendant,
        },
    );
    assert_eq!(
        message,
        "defendant is a defendant, not someone who is called in"
    );

    c.join("judge");
    c.act(
        "judge",
        ClientMessage::Spotlight {
            participant_id: Some(id),
        },
    );
    let effects = c.act("clerk", ClientMessage::Dismiss { participant_id: id });
    assert_eq!(c.member("witness").p.admission, Admission::Lobby);
    assert_eq!(c.member("witness").lobby_since, Some(c.now));
    assert_eq!(c.core.status.spotlight, None, "the floor goes with them");
    assert_eq!(status_writes(&effects).len(), 1);
    assert_eq!(audits(&effects), ["dismiss"]);
    let (_, message) = c.refused("clerk", ClientMessage::Dismiss { participant_id: id });
    assert_eq!(message, "witness is not a called-in witness or expert");
}

#[test]
fn a_removed_participant_is_closed_out_and_cannot_come_back() {
    let mut c = session_with_defence();
    let (defendant, counsel) = (c.id("defendant"), c.id("counsel"));
    c.act(
        "counsel",
        ClientMessage::RequestConsultation {
            participant_id: defendant,
        },
    );
    let judge = c.id("judge");
    let (_, message) = c.refused(
        "judge",
        ClientMessage::Remove {
            participant_id: judge,
            reason: None,
        },
    );
    assert_eq!(
        message,
        "you cannot remove yourself; leave the hearing instead"
    );
    let session = c.session("counsel");
    let effects = c.act(
        "judge",
        ClientMessage::Remove {
            participant_id: counsel,
            reason: Some("contempt".into()),
        },
    );
    assert_eq!(audits(&effects), ["remove", "leave"]);
    assert_eq!(
        kicks(&effects),
        [(
            session,
            ErrorCode::Removed,
            "the court removed you from the hearing: contempt".to_owned()
        )]
    );
    assert_eq!(c.member("counsel").p.admission, Admission::Removed);
    assert!(
        c.core.status.consultation_requests.is_empty(),
        "their request goes"
    );
    assert!(participant_writes(&effects).contains(&(counsel, Admission::Removed, false)));
    let (_, r) = c.try_join("counsel");
    assert_eq!(r.unwrap_err().refusal().code, ErrorCode::Removed);
    let (_, message) = c.refused(
        "judge",
        ClientMessage::Remove {
            participant_id: counsel,
            reason: None,
        },
    );
    assert_eq!(message, "counsel was already removed");
}
