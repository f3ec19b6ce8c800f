//! Taking back a decision the store did not keep: after `restore`, the core is as it
//! was, and deciding the same input again gives the same changes.

use super::*;
use crate::hearing::core::{StoreAnswer, StoreFailed};
use crate::model::Site;

fn statuses(effects: &[Effect]) -> Vec<Status> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Persist(WriteOp::Status { status, .. }) => Some(status.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_restored_state_change_is_decided_again_alike() {
    let mut c = Court::new(HearingState::Open);
    c.join("judge");
    c.join("defendant");
    let before = c.core.snapshot();
    let first = c.set_state("judge", HearingState::InSession, None);
    assert_eq!(c.core.status().state, HearingState::InSession);
    c.core.restore(before);
    assert_eq!(c.core.status().state, HearingState::Open, "taken back");
    c.now -= chrono::Duration::seconds(1); // the retry at the same instant
    let again = c.set_state("judge", HearingState::InSession, None);
    assert_eq!(audits(&first), audits(&again));
    assert_eq!(statuses(&first), statuses(&again));
    assert_eq!(
        sent_to(&first, c.session("defendant")),
        sent_to(&again, c.session("defendant"))
    );
}

#[test]
fn a_restored_join_and_admission_leave_no_trace() {
    let mut c = Court::new(HearingState::Open);
    c.join("judge");
    let before = c.core.snapshot();
    c.join("defendant");
    let defendant = c.id("defendant");
    c.act(
        "judge",
        ClientMessage::Admit {
            participant_id: defendant,
        },
    );
    assert_eq!(c.member("defendant").p.admission, Admission::Admitted);
    c.core.restore(before);
    assert_eq!(c.member("defendant").session, None, "not joined");
    assert_eq!(c.member("defendant").p.admission, Admission::Lobby);
    // Joining again is a first join, announced to the judge as one.
    let effects = c.join("defendant");
    assert_eq!(audits(&effects), ["join"]);
}

#[test]
fn a_store_call_that_cannot_write_is_answered_store_unavailable() {
    let mut c = Court::new(HearingState::Open);
    let (request, _) = c.admin(AdminOp::UpsertSite(Site {
        name: "Courtroom".into(),
        kind: SiteKind::Detention,
    }));
    let mut effects = c.handle(Input::Stored(Err(StoreFailed::Unavailable)));
    assert_eq!(
        admin_reply(&mut effects, request).unwrap_err(),
        Refusal::store_unavailable()
    );
    assert_eq!(c.member("judge").p.site_kind, SiteKind::Central);
    assert!(c.handle(Input::Stored(Ok(StoreAnswer::Done))).is_empty());
}
