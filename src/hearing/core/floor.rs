//! The floor: court mutes (one, or everyone but the bench), the unmute handshake,
//! the lock on admissions, and the spotlight.
//!
//! A court mute is not the participant's own microphone switch: it stops forwarding
//! (and recording) of their microphone in the SFU before anyone is told. Only the
//! court lifts it, by asking; the muted participant then accepts — they cannot
//! unmute themselves otherwise.

use openhearing_signaling::{Action, Admission, ErrorCode, ServerMessage};
use serde_json::json;
use uuid::Uuid;

use super::{participant_subject, HearingCore, Who};
use crate::hearing::Refusal;

impl HearingCore {
    pub(super) fn mute(&mut self, actor: &str, who: Who, id: Uuid) -> Result<(), Refusal> {
        self.require(who, Action::MuteOthers)?;
        let t = self.target(id)?;
        if t.p.muted {
            return Err(Refusal::new(
                ErrorCode::NotApplicable,
                format!("{} is already muted", t.p.name),
            ));
        }
        self.set_muted(actor, id, true, "mute");
        Ok(())
    }

    pub(super) fn mute_all(&mut self, actor: &str, who: Who) -> Result<(), Refusal> {
        self.require(who, Action::MuteOthers)?;
        let targets: Vec<Uuid> = self
            .members
            .values()
            .filter(|m| {
                !m.p.muted
                    && !self.perms.is_bench(m.p.role)
                    && m.p.admission != Admission::Removed
                    && Some(m.p.id) != who.map(|w| w.0)
            })
            .map(|m| m.p.id)
            .collect();
        self.audit(actor, None, "mute_all", json!({ "muted": targets.len() }));
        for id in targets {
            self.set_muted(actor, id, true, "mute");
        }
        Ok(())
    }

    pub(super) fn request_unmute(
        &mut self,
        actor: &str,
        who: Who,
        id: Uuid,
    ) -> Result<(), Refusal> {
        self.require(who, Action::MuteOthers)?;
        let t = self.target(id)?;
        if !t.p.muted {
            return Err(Refusal::new(
                ErrorCode::NotApplicable,
                format!("{} is not muted", t.p.name),
            ));
        }
        let by = who.map(|w| w.0).unwrap_or(Uuid::nil());
        self.tell(id, ServerMessage::UnmuteRequested { by });
        if let Some(m) = self.members.get_mut(&id) {
            m.unmute_requested = true;
        }
        self.audit(
            actor,
            participant_subject(id),
            "unmute_requested",
            json!({}),
        );
        Ok(())
    }

    pub(super) fn accept_unmute(&mut self, actor: &str, who: Who) -> Result<(), Refusal> {
        let Some((me, _)) = who else {
            return Err(Refusal::new(
                ErrorCode::NotApplicable,
                "only the muted participant can accept",
            ));
        };
        let t = self.target(me)?;
        if !t.p.muted || !t.unmute_requested {
            return Err(Refusal::new(
                ErrorCode::NotApplicable,
                "the court has not asked you to unmute",
            ));
        }
        self.set_muted(actor, me, false, "unmute_accepted");
        Ok(())
    }

    pub(super) fn lock(&mut self, actor: &str, who: Who, locked: bool) -> Result<(), Refusal> {
        self.require(who, Action::Lock)?;
        if self.status.locked == locked {
            return Ok(());
        }
        self.status.locked = locked;
        let action = if locked { "lock" } else { "unlock" };
        self.audit(actor, None, action, json!({}));
        self.persist_status(None);
        self.announce_status();
        Ok(())
    }

    pub(super) fn spotlight(
        &mut self,
        actor: &str,
        who: Who,
        id: Option<Uuid>,
    ) -> Result<(), Refusal> {
        self.require(who, Action::Spotlight)?;
        if let Some(id) = id {
            let t = self.target(id)?;
            if t.p.admission != Admission::Admitted {
                return Err(Refusal::new(
                    ErrorCode::NotApplicable,
                    format!("{} is not in the hearing room", t.p.name),
                ));
            }
        }
        if self.status.spotlight == id {
            return Ok(());
        }
        self.status.spotlight = id;
        self.audit(
            actor,
            id.and_then(participant_subject),
            "spotlight",
            json!({ "participant": id }),
        );
        self.persist_status(None);
        self.announce_status();
        Ok(())
    }

    fn set_muted(&mut self, actor: &str, pid: Uuid, muted: bool, action: &str) {
        let Some(m) = self.members.get_mut(&pid) else {
            return;
        };
        m.p.muted = muted;
        m.unmute_requested = false;
        self.audit(actor, participant_subject(pid), action, json!({}));
        self.persist_participant(pid);
        // Forwarding of their audio stops here, before anyone is told.
        self.reconcile();
        self.announce(pid);
    }
}
