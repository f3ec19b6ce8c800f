//! The lobby and the door of the hearing room: admit, admit all, deny, call in and
//! dismiss a witness or expert, remove a participant.
//!
//! Admission is stored per participant and outlives sessions: a participant admitted
//! once comes back admitted; a removed one cannot come back at all. A locked hearing
//! admits nobody.

use openhearing_signaling::{Action, Admission, ErrorCode};
use serde_json::json;
use uuid::Uuid;

use super::{participant_subject, trimmed_reason, HearingCore, Member, Who};
use crate::hearing::Refusal;

fn not_waiting(name: &str) -> Refusal {
    Refusal::new(
        ErrorCode::NotApplicable,
        format!("{name} is not waiting in the lobby"),
    )
}

/// Whom the court acts against when it denies admission or removes someone, and the
/// reason it gives (both actions carry one).
pub(super) struct Against {
    pub id: Uuid,
    pub reason: Option<String>,
}

impl HearingCore {
    fn not_locked(&self) -> Result<(), Refusal> {
        if self.status.locked {
            return Err(Refusal::new(
                ErrorCode::HearingLocked,
                "the hearing is locked; unlock it to admit anyone",
            ));
        }
        Ok(())
    }

    pub(super) fn admit(&mut self, actor: &str, who: Who, id: Uuid) -> Result<(), Refusal> {
        self.require(who, Action::Admit)?;
        let t = self.target(id)?;
        if t.p.admission != Admission::Lobby {
            return Err(not_waiting(&t.p.name));
        }
        if self.perms.waits_for_call(t.p.role) {
            return Err(Refusal::new(
                ErrorCode::NotApplicable,
                format!("{} is a {}: call them in instead", t.p.name, t.p.role),
            ));
        }
        self.not_locked()?;
        self.set_admission(actor, id, Admission::Admitted, "admit");
        Ok(())
    }

    pub(super) fn admit_all(&mut self, actor: &str, who: Who) -> Result<(), Refusal> {
        self.require(who, Action::Admit)?;
        self.not_locked()?;
        let waiting: Vec<Uuid> = self
            .members
            .values()
            .filter(|m| {
                m.session.is_some()
                    && m.p.admission == Admission::Lobby
                    && !self.perms.waits_for_call(m.p.role)
            })
            .map(|m| m.p.id)
            .collect();
        for id in waiting {
            self.set_admission(actor, id, Admission::Admitted, "admit");
        }
        Ok(())
    }

    pub(super) fn deny(&mut self, actor: &str, who: Who, of: Against) -> Result<(), Refusal> {
        let (t, reason) = self.reasoned_target(who, Action::Deny, of)?;
        let id = t.p.id;
        if t.p.admission != Admission::Lobby || t.session.is_none() {
            return Err(not_waiting(&t.p.name));
        }
        self.audit(
            actor,
            participant_subject(id),
            "deny",
            json!({ "reason": reason }),
        );
        let message = with_reason("the court refused your admission", &reason);
        self.kick(id, ErrorCode::AdmissionDenied, message, "denied");
        Ok(())
    }

    pub(super) fn call_in(&mut self, actor: &str, who: Who, id: Uuid) -> Result<(), Refusal> {
        self.require(who, Action::CallWitness)?;
        let t = self.target(id)?;
        if !self.perms.waits_for_call(t.p.role) {
            return Err(Refusal::new(
                ErrorCode::NotApplicable,
                format!(
                    "{} is a {}, not someone who is called in",
                    t.p.name, t.p.role
                ),
            ));
        }
        if t.p.admission != Admission::Lobby {
            return Err(not_waiting(&t.p.name));
        }
        self.not_locked()?;
        self.set_admission(actor, id, Admission::Admitted, "call_in");
        Ok(())
    }

    pub(super) fn dismiss(&mut self, actor: &str, who: Who, id: Uuid) -> Result<(), Refusal> {
        self.require(who, Action::CallWitness)?;
        let t = self.target(id)?;
        if !self.perms.waits_for_call(t.p.role) || t.p.admission != Admission::Admitted {
            return Err(Refusal::new(
                ErrorCode::NotApplicable,
                format!("{} is not a called-in witness or expert", t.p.name),
            ));
        }
        self.clear_spotlight_of(id);
        self.set_admission(actor, id, Admission::Lobby, "dismiss");
        Ok(())
    }

    pub(super) fn remove(&mut self, actor: &str, who: Who, of: Against) -> Result<(), Refusal> {
        let (t, reason) = self.reasoned_target(who, Action::Remove, of)?;
        let id = t.p.id;
        if t.p.admission == Admission::Removed {
            return Err(Refusal::new(
                ErrorCode::NotApplicable,
                format!("{} was already removed", t.p.name),
            ));
        }
        if who.map(|w| w.0) == Some(id) {
            return Err(Refusal::new(
                ErrorCode::NotApplicable,
                "you cannot remove yourself; leave the hearing instead",
            ));
        }
        self.clear_spotlight_of(id);
        self.audit(
            actor,
            participant_subject(id),
            "remove",
            json!({ "reason": reason }),
        );
        self.leave_rooms(actor, id);
        self.status
            .consultation_requests
            .retain(|r| r.from != id && r.with != id);
        if let Some(m) = self.members.get_mut(&id) {
            m.p.admission = Admission::Removed;
            m.lobby_since = None;
        }
        self.persist_participant(id);
        let message = with_reason("the court removed you from the hearing", &reason);
        self.kick(id, ErrorCode::Removed, message, "removed");
        self.announce(id);
        Ok(())
    }

    /// The common start of deny and remove: the permission, a clean reason, and the
    /// participant it applies to.
    fn reasoned_target(
        &self,
        who: Who,
        action: Action,
        of: Against,
    ) -> Result<(&Member, Option<String>), Refusal> {
        self.require(who, action)?;
        let reason = trimmed_reason(of.reason)?;
        Ok((self.target(of.id)?, reason))
    }

    /// A participant leaving the hearing room loses the floor (stored and announced
    /// at once).
    fn clear_spotlight_of(&mut self, id: Uuid) {
        if self.status.spotlight == Some(id) {
            self.status.spotlight = None;
            self.persist_status(None);
            self.announce_status();
        }
    }

    /// Moves a participant to `to`: out of any private room first when leaving the
    /// hearing room, then stored, legs reconciled, and announced.
    pub(super) fn set_admission(&mut self, actor: &str, pid: Uuid, to: Admission, action: &str) {
        if to != Admission::Admitted {
            self.leave_rooms(actor, pid);
        }
        let now = self.now;
        let Some(m) = self.members.get_mut(&pid) else {
            return;
        };
        m.p.admission = to;
        m.lobby_since = (to == Admission::Lobby && m.session.is_some()).then_some(now);
        self.audit(actor, participant_subject(pid), action, json!({}));
        self.persist_participant(pid);
        self.reconcile();
        self.announce(pid);
    }
}

/// What the court tells the participant it sends away, with its reason if it gave one.
fn with_reason(what: &str, reason: &Option<String>) -> String {
    match reason {
        Some(r) => format!("{what}: {r}"),
        None => what.to_owned(),
    }
}
