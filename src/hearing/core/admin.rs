//! The operator's changes through the admin API, applied by the hearing so live
//! participants see them at once and they are audited like any other change.
//!
//! A state change and a removal are court actions by the operator. Editing the
//! hearing, adding a participant, revoking a link and changing a site need the
//! store to act first (it assigns ids and link versions and owns the sites), so they
//! take two steps: the core checks what it can, asks with [`Effect::Call`], and
//! finishes on [`Input::Stored`](super::Input::Stored). Every admin op is answered
//! with [`Reply::Admin`], which the actor sends only once its changes are stored.

use openhearing_signaling::{Admission, ClientMessage, ErrorCode, HearingState};
use serde_json::json;

use super::{
    participant_subject, unknown_participant, Effect, HearingCore, Member, Pending, Reply,
    RequestId, StoreAnswer, StoreCall, StoreFailed,
};
use crate::hearing::{AdminOp, AdminOutcome, Refusal};
use crate::model::rfc3339;

fn not_stored(failure: StoreFailed) -> Refusal {
    match failure {
        StoreFailed::Unavailable => Refusal::store_unavailable(),
        StoreFailed::Failed => Refusal::new(
            ErrorCode::Internal,
            "the change could not be stored; try again",
        ),
    }
}

impl HearingCore {
    pub(super) fn admin(&mut self, request: RequestId, op: AdminOp, actor: &str) {
        match self.admin_op(request, op, actor) {
            Ok(Some(outcome)) => self.reply_admin(request, Ok(outcome)),
            Ok(None) => {} // answered when the pending step completes
            Err(r) => self.reply_admin(request, Err(r)),
        }
    }

    fn reply_admin(&mut self, request: RequestId, result: Result<AdminOutcome, Refusal>) {
        self.emit(Effect::Reply {
            request,
            reply: Reply::Admin(result),
        });
    }

    /// `Ok(None)`: the op waits for a pending step.
    fn admin_op(
        &mut self,
        request: RequestId,
        op: AdminOp,
        actor: &str,
    ) -> Result<Option<AdminOutcome>, Refusal> {
        let call = match op {
            AdminOp::SetState(change) => {
                self.set_state(actor, change)?;
                if let Some(Pending::Archive { reply, .. }) = &mut self.pending {
                    *reply = Some(request);
                    return Ok(None);
                }
                return Ok(Some(AdminOutcome::Done));
            }
            AdminOp::Remove {
                participant,
                reason,
            } => {
                let remove = ClientMessage::Remove {
                    participant_id: participant,
                    reason,
                };
                self.court_action(actor, None, remove)?;
                return Ok(Some(AdminOutcome::Done));
            }
            AdminOp::Update(update) => StoreCall::UpdateHearing(update),
            AdminOp::AddParticipant(new) => {
                if self.status.state == HearingState::Closed {
                    return Err(Refusal::new(
                        ErrorCode::HearingClosed,
                        "the hearing is closed; nobody can be added",
                    ));
                }
                let admission = if self.perms.auto_admitted(new.role) {
                    Admission::Admitted
                } else {
                    Admission::Lobby
                };
                StoreCall::AddParticipant(new, admission)
            }
            AdminOp::RevokeLink(pid) => {
                self.target(pid)?;
                StoreCall::RevokeLink(pid)
            }
            AdminOp::UpsertSite(site) => StoreCall::UpsertSite(site),
        };
        self.pending = Some(Pending::Store {
            request,
            actor: actor.to_owned(),
            call: call.clone(),
        });
        self.emit(Effect::Call(call));
        Ok(None)
    }

    /// The store answered the pending admin op's call.
    pub(super) fn stored(&mut self, answer: Result<StoreAnswer, StoreFailed>) {
        let Some(Pending::Store {
            request,
            actor,
            call,
        }) = self.pending.take()
        else {
            return; // nothing was asked (cannot happen: the actor answers at once)
        };
        let result = answer
            .map_err(not_stored)
            .and_then(|answer| self.finish_admin(&actor, call, answer));
        self.reply_admin(request, result);
    }

    fn finish_admin(
        &mut self,
        actor: &str,
        call: StoreCall,
        answer: StoreAnswer,
    ) -> Result<AdminOutcome, Refusal> {
        match (call, answer) {
            (StoreCall::UpdateHearing(update), StoreAnswer::Hearing(h)) => {
                let Some(h) = h else {
                    return Err(Refusal::new(
                        ErrorCode::HearingNotFound,
                        "this hearing does not exist",
                    ));
                };
                self.hearing.case_number = h.case_number;
                self.hearing.title = h.title;
                self.hearing.scheduled_at = h.scheduled_at.map(rfc3339);
                self.audit(
                    actor,
                    None,
                    "hearing_updated",
                    serde_json::to_value(&update).unwrap_or_default(),
                );
                Ok(AdminOutcome::Done)
            }
            (StoreCall::AddParticipant(..), StoreAnswer::Participant(p)) => {
                self.audit(
                    actor,
                    participant_subject(p.id),
                    "participant_added",
                    json!({ "name": p.name, "role": p.role, "site": p.site }),
                );
                let id = p.id;
                self.members.insert(id, Member::new(p.clone()));
                self.announce(id);
                Ok(AdminOutcome::Participant(p))
            }
            (StoreCall::RevokeLink(pid), StoreAnswer::LinkVersion(version)) => {
                let Some(version) = version else {
                    return Err(unknown_participant(pid));
                };
                if let Some(m) = self.members.get_mut(&pid) {
                    m.p.link_version = version;
                }
                self.audit(
                    actor,
                    participant_subject(pid),
                    "link_revoked",
                    json!({ "link_version": version }),
                );
                self.kick(
                    pid,
                    ErrorCode::LinkRevoked,
                    "your join link was revoked; ask the court for a new one".into(),
                    "link_revoked",
                );
                Ok(AdminOutcome::LinkVersion(version))
            }
            (StoreCall::UpsertSite(site), StoreAnswer::Done) => {
                self.audit(
                    actor,
                    None,
                    "site_updated",
                    json!({ "name": site.name, "kind": site.kind }),
                );
                let changed: Vec<_> = self
                    .members
                    .values_mut()
                    .filter(|m| m.p.site == site.name && m.p.site_kind != site.kind)
                    .map(|m| {
                        m.p.site_kind = site.kind;
                        m.p.id
                    })
                    .collect();
                for id in changed {
                    self.announce(id);
                }
                Ok(AdminOutcome::Done)
            }
            // The actor answers each call with its own kind; anything else is a bug.
            _ => Err(not_stored(StoreFailed::Failed)),
        }
    }
}
