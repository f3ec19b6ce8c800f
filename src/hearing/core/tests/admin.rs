//! The operator's changes, including those that wait for the store.

use super::*;
use crate::hearing::core::{StoreAnswer, StoreCall, StoreFailed};
use crate::model::{HearingUpdate, NewParticipant, Site};

fn new_participant() -> NewParticipant {
    NewParticipant {
        name: "interpreter".into(),
        role: Role::Interpreter,
        site: "Courtroom".into(),
        party: None,
    }
}

#[test]
fn adding_a_participant_waits_for_the_store_then_announces_them() {
    let mut c = Court::new(HearingState::Open);
    c.join("judge");
    let (request, effects) = c.admin(AdminOp::AddParticipant(new_participant()));
    assert!(matches!(
        &effects[..],
        [Effect::Call(StoreCall::AddParticipant(n, Admission::Lobby))] if n.name == "interpreter"
    ));
    assert!(
        c.core.idle_timeout().is_none(),
        "busy until the store answers"
    );
    let stored = Participant {
        id: Uuid::new_v4(),
        hearing_id: c.core.id(),
        name: "interpreter".into(),
        role: Role::Interpreter,
        site: "Courtroom".into(),
        site_kind: SiteKind::Central,
        admission: Admission::Lobby,
        muted: false,
        link_version: 1,
        party: None,
    };
    let mut effects = c.handle(Input::Stored(Ok(StoreAnswer::Participant(stored.clone()))));
    assert_eq!(audits(&effects), ["participant_added"]);
    assert!(matches!(
        sent_to(&effects, c.session("judge"))[..],
        [ServerMessage::ParticipantUpdated { participant }] if participant.id == stored.id
    ));
    assert!(matches!(
        admin_reply(&mut effects, request),
        Ok(AdminOutcome::Participant(p)) if p == stored
    ));
    assert!(c.core.member(stored.id).is_some());
}

#[test]
fn a_failed_store_call_is_refused_and_changes_nothing() {
    let mut c = Court::new(HearingState::Open);
    let (request, _) = c.admin(AdminOp::UpsertSite(Site {
        name: "Courtroom".into(),
        kind: SiteKind::Detention,
    }));
    let mut effects = c.handle(Input::Stored(Err(StoreFailed::Failed)));
    assert_eq!(
        admin_reply(&mut effects, request).unwrap_err(),
        Refusal::new(
            ErrorCode::Internal,
            "the change could not be stored; try again"
        )
    );
    assert!(effects.is_empty());
    assert_eq!(c.member("judge").p.site_kind, SiteKind::Central);
    assert!(
        c.handle(Input::Stored(Ok(StoreAnswer::Done))).is_empty(),
        "nothing pending"
    );
}

#[test]
fn a_site_change_reaches_its_participants() {
    let mut c = Court::new(HearingState::Open);
    c.join("judge");
    let site = Site {
        name: "Courtroom".into(),
        kind: SiteKind::Detention,
    };
    let (request, effects) = c.admin(AdminOp::UpsertSite(site.clone()));
    assert!(matches!(&effects[..], [Effect::Call(StoreCall::UpsertSite(s))] if *s == site));
    let mut effects = c.handle(Input::Stored(Ok(StoreAnswer::Done)));
    assert_eq!(audits(&effects), ["site_updated"]);
    assert_eq!(sent_to(&effects, c.session("judge")).len(), PEOPLE.len());
    assert!(admin_reply(&mut effects, request).is_ok());
    assert_eq!(c.member("witness").p.site_kind, SiteKind::Detention);
}

#[test]
fn revoking_a_link_closes_the_session_and_old_links_stop_working() {
    let mut c = Court::new(HearingState::Open);
    c.join("clerk");
    let session = c.session("clerk");
    let nobody = Uuid::new_v4();
    let (request, mut effects) = c.admin(AdminOp::RevokeLink(nobody));
    assert_eq!(
        admin_reply(&mut effects, request).unwrap_err().code,
        ErrorCode::UnknownParticipant
    );
    let (request, effects) = c.admin(AdminOp::RevokeLink(c.id("clerk")));
    assert!(matches!(
        &effects[..],
        [Effect::Call(StoreCall::RevokeLink(_))]
    ));
    let mut effects = c.handle(Input::Stored(Ok(StoreAnswer::LinkVersion(Some(2)))));
    assert_eq!(audits(&effects), ["link_revoked", "leave"]);
    assert_eq!(kicks(&effects)[0].0, session);
    assert_eq!(kicks(&effects)[0].1, ErrorCode::LinkRevoked);
    assert!(matches!(
        admin_reply(&mut effects, request),
        Ok(AdminOutcome::LinkVersion(2))
    ));
    let request = c.request();
    let mut effects = c.handle(Input::Join {
        request,
        participant: c.id("clerk"),
        link_version: 1,
        session: 50,
        device: Default::default(),
    });
    assert_eq!(
        match take_reply(&mut effects, request) {
            Reply::Join(r) => r.unwrap_err().refusal().code,
            other => panic!("{other:?}"),
        },
        ErrorCode::LinkRevoked
    );
}

#[test]
fn an_update_of_a_hearing_that_vanished_is_not_found() {
    let mut c = Court::new(HearingState::Open);
    let update = HearingUpdate {
        title: Some("New title".into()),
        ..Default::default()
    };
    let (request, _) = c.admin(AdminOp::Update(update.clone()));
    let mut effects = c.handle(Input::Stored(Ok(StoreAnswer::Hearing(None))));
    assert_eq!(
        admin_reply(&mut effects, request).unwrap_err().code,
        ErrorCode::HearingNotFound
    );
    let (request, _) = c.admin(AdminOp::Update(update));
    let mut effects = c.handle(Input::Stored(Ok(StoreAnswer::Done)));
    assert_eq!(
        admin_reply(&mut effects, request).unwrap_err().code,
        ErrorCode::Internal,
        "an answer that does not fit the call"
    );
}

#[test]
fn the_operator_may_do_what_no_role_needs_to_and_adding_to_a_closed_hearing_fails() {
    let mut c = Court::new(HearingState::InSession);
    c.join("defendant");
    let (request, mut effects) = c.admin(AdminOp::Remove {
        participant: c.id("defendant"),
        reason: None,
    });
    assert!(admin_reply(&mut effects, request).is_ok());
    assert_eq!(c.member("defendant").p.admission, Admission::Removed);
    assert!(audits(&effects).iter().all(|a| *a != "permission_denied"));
    c.core.status.state = HearingState::Closed;
    let (request, mut effects) = c.admin(AdminOp::AddParticipant(new_participant()));
    assert_eq!(
        admin_reply(&mut effects, request).unwrap_err().code,
        ErrorCode::HearingClosed
    );
}
