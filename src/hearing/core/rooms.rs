//! Private rooms: a defendant's consultation with their own defence counsel
//! (requested, answered by the presiding judge unless the configuration approves at
//! once, ended by its members or recalled by the judge), and the panel's
//! deliberation.
//!
//! A room's wall is a forwarding rule (policy rule 8): opening or closing a room
//! reconciles the legs before anyone is told, so nothing said inside leaks out for
//! even a moment. The audit says who entered and left which room, and when — never
//! what was said.

use openhearing_signaling::{
    Action, Admission, ConsultationRequest, ErrorCode, Role, RoomInfo, RoomKind, ServerMessage,
};
use serde_json::json;
use uuid::Uuid;

use super::{participant_subject, HearingCore, Who};
use crate::hearing::Refusal;
use crate::model::rfc3339;

fn not_applicable(message: impl Into<String>) -> Refusal {
    Refusal::new(ErrorCode::NotApplicable, message)
}

impl HearingCore {
    pub(super) fn request_consultation(
        &mut self,
        actor: &str,
        who: Who,
        with: Uuid,
    ) -> Result<(), Refusal> {
        self.require(who, Action::RequestConsultation)?;
        let Some((me, _)) = who else {
            return Err(not_applicable(
                "only a defendant or their counsel can ask for a consultation",
            ));
        };
        self.check_consultation_pair(me, with)?;
        if self
            .status
            .consultation_requests
            .iter()
            .any(|r| (r.from == me && r.with == with) || (r.from == with && r.with == me))
        {
            return Err(not_applicable(
                "this consultation was already requested; the presiding judge will answer",
            ));
        }
        let request = ConsultationRequest {
            id: Uuid::new_v4(),
            from: me,
            with,
            since: rfc3339(self.now),
        };
        self.audit(
            actor,
            participant_subject(with),
            "consultation_requested",
            json!({ "request": request.id }),
        );
        if self.perms.workflow().auto_approve_consultation {
            self.open_consultation(actor, request.id, [me, with]);
        } else {
            self.status.consultation_requests.push(request);
            self.persist_status(None);
            self.announce_status();
        }
        Ok(())
    }

    pub(super) fn answer_consultation(
        &mut self,
        actor: &str,
        who: Who,
        request_id: Uuid,
        approve: bool,
    ) -> Result<(), Refusal> {
        self.require(who, Action::ApproveConsultation)?;
        let Some(i) = self
            .status
            .consultation_requests
            .iter()
            .position(|r| r.id == request_id)
        else {
            return Err(not_applicable(
                "there is no such consultation request (answered or withdrawn)",
            ));
        };
        let request = self.status.consultation_requests[i].clone();
        if approve {
            // The pair must still qualify (admitted, not in another room).
            self.check_consultation_pair(request.from, request.with)?;
        }
        self.status.consultation_requests.remove(i);
        for id in [request.from, request.with] {
            self.tell(
                id,
                ServerMessage::ConsultationAnswered {
                    request_id,
                    approved: approve,
                },
            );
        }
        if approve {
            self.open_consultation(actor, request_id, [request.from, request.with]);
        } else {
            self.audit(
                actor,
                participant_subject(request.from),
                "consultation_refused",
                json!({ "request": request_id }),
            );
            self.persist_status(None);
            self.announce_status();
        }
        Ok(())
    }

    /// Ended by a member of the consultation, or recalled by whoever may approve one.
    pub(super) fn end_consultation(
        &mut self,
        actor: &str,
        who: Who,
        room_id: Uuid,
    ) -> Result<(), Refusal> {
        let Some(room) = self
            .status
            .rooms
            .iter()
            .find(|r| r.id == room_id && r.kind == RoomKind::Consultation)
            .cloned()
        else {
            return Err(not_applicable(
                "there is no such consultation (it has ended)",
            ));
        };
        let me = who.map(|w| w.0);
        let reason = if me.is_some_and(|m| room.members.contains(&m)) {
            "ended"
        } else {
            self.require(who, Action::ApproveConsultation)?;
            "recalled"
        };
        self.close_room(actor, room_id, reason, me);
        Ok(())
    }

    pub(super) fn start_deliberation(&mut self, actor: &str, who: Who) -> Result<(), Refusal> {
        self.require(who, Action::Deliberate)?;
        if self
            .status
            .rooms
            .iter()
            .any(|r| r.kind == RoomKind::Deliberation)
        {
            return Err(not_applicable("the panel is already deliberating"));
        }
        let members: Vec<Uuid> = self
            .members
            .values()
            .filter(|m| self.perms.deliberates(m.p.role) && m.p.admission == Admission::Admitted)
            .map(|m| m.p.id)
            .collect();
        if members.is_empty() {
            return Err(not_applicable("nobody of the panel is in the hearing room"));
        }
        let room = RoomInfo {
            id: Uuid::new_v4(),
            kind: RoomKind::Deliberation,
            members,
            since: rfc3339(self.now),
        };
        self.enter_room(actor, room);
        Ok(())
    }

    pub(super) fn end_deliberation(&mut self, actor: &str, who: Who) -> Result<(), Refusal> {
        self.require(who, Action::Deliberate)?;
        let Some(room) = self
            .status
            .rooms
            .iter()
            .find(|r| r.kind == RoomKind::Deliberation)
            .map(|r| r.id)
        else {
            return Err(not_applicable("the panel is not deliberating"));
        };
        self.close_room(actor, room, "ended", who.map(|w| w.0));
        Ok(())
    }

    /// Whether `a` and `b` may consult in private: a defendant and defence counsel of
    /// the same party, both in the hearing room (admitted, in no private room).
    fn check_consultation_pair(&self, a: Uuid, b: Uuid) -> Result<(), Refusal> {
        let pa = &self.target(a)?.p;
        let pb = &self.target(b)?.p;
        let pair = matches!(
            (pa.role, pb.role),
            (Role::Defendant, Role::DefenceCounsel) | (Role::DefenceCounsel, Role::Defendant)
        );
        let same_party = pa.party.is_some() && pa.party == pb.party;
        if !pair || !same_party {
            return Err(not_applicable(format!(
                "a private consultation is only between a defendant and their own defence counsel; {} and {} are not",
                pa.name, pb.name
            )));
        }
        for p in [pa, pb] {
            if p.admission != Admission::Admitted {
                return Err(not_applicable(format!(
                    "{} is not in the hearing room",
                    p.name
                )));
            }
            if self.room_of(p.id).is_some() {
                return Err(not_applicable(format!(
                    "{} is already in a private room",
                    p.name
                )));
            }
        }
        Ok(())
    }

    fn open_consultation(&mut self, actor: &str, request: Uuid, members: [Uuid; 2]) {
        let room = RoomInfo {
            id: Uuid::new_v4(),
            kind: RoomKind::Consultation,
            members: members.to_vec(),
            since: rfc3339(self.now),
        };
        self.audit(
            actor,
            None,
            "consultation_approved",
            json!({ "request": request, "room": room.id }),
        );
        self.enter_room(actor, room);
    }

    /// Opens a private room: forwarding across its wall stops before anyone is told.
    fn enter_room(&mut self, actor: &str, room: RoomInfo) {
        for m in &room.members {
            // Who entered and when — never what was said.
            self.audit(
                actor,
                participant_subject(*m),
                "room_entered",
                json!({ "room": room.id, "kind": room.kind }),
            );
            if self.status.spotlight == Some(*m) {
                self.status.spotlight = None;
            }
        }
        self.status.rooms.push(room);
        self.persist_status(None);
        self.reconcile();
        self.announce_status();
    }

    pub(super) fn close_room(
        &mut self,
        actor: &str,
        room_id: Uuid,
        reason: &str,
        by: Option<Uuid>,
    ) {
        let Some(i) = self.status.rooms.iter().position(|r| r.id == room_id) else {
            return;
        };
        let room = self.status.rooms.remove(i);
        for m in &room.members {
            self.audit(
                actor,
                participant_subject(*m),
                "room_left",
                json!({ "room": room.id, "kind": room.kind, "reason": reason }),
            );
            self.tell(
                *m,
                ServerMessage::RoomEnded {
                    room_id,
                    kind: room.kind,
                    reason: reason.to_owned(),
                    by,
                },
            );
        }
        self.persist_status(None);
        self.reconcile();
        self.announce_status();
    }

    /// Takes `pid` out of any private room (they left the hearing room); a
    /// consultation left with one member ends.
    pub(super) fn leave_rooms(&mut self, actor: &str, pid: Uuid) {
        let Some(room_id) = self.room_of(pid) else {
            return;
        };
        let Some(room) = self.status.rooms.iter_mut().find(|r| r.id == room_id) else {
            return;
        };
        room.members.retain(|m| *m != pid);
        let (kind, left) = (room.kind, room.members.len());
        self.audit(
            actor,
            participant_subject(pid),
            "room_left",
            json!({ "room": room_id, "kind": kind, "reason": "left_hearing_room" }),
        );
        if (kind == RoomKind::Consultation && left < 2) || left == 0 {
            self.close_room(actor, room_id, "dissolved", None);
        } else {
            self.persist_status(None);
            self.announce_status();
        }
    }
}
