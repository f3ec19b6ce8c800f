//! Sessions coming and going: joins (within the link's time window; a second
//! device on a link in use is `devices.rs`'s), leaves, kicks, the welcome, and what
//! a session reports about its media and connection.
//!
//! A session is known by its number only. Everything a session sends is checked
//! against the participant's *current* session, so a replaced session's late
//! goodbye or track cannot touch its successor.

use chrono::{DateTime, Utc};
use openhearing_signaling::{
    Admission, Connection, ErrorCode, HearingState, ServerMessage, Welcome, PROTOCOL_VERSION,
};
use serde_json::json;
use uuid::Uuid;

use super::members::Device;
use super::{participant_subject, Effect, HearingCore, Member};
use crate::hearing::{JoinError, Refusal};
use crate::model::rfc3339;

impl HearingCore {
    /// A participant's session joins; returns the `welcome` for it (or
    /// `device_waiting` for a second device, see `devices.rs`), or why not.
    pub(super) fn join(
        &mut self,
        pid: Uuid,
        link_version: u32,
        session: u64,
        device: Device,
    ) -> Result<ServerMessage, JoinError> {
        self.admissible(pid, link_version)
            .map_err(JoinError::Refused)?;
        if let Some(reply) = self.second_device(pid, session, &device) {
            return reply;
        }
        // The same participant joining again (new tab, reconnect) replaces the old
        // session; its tracks go with it.
        if let Some(old) = self.members.get(&pid).and_then(|m| m.session) {
            self.emit(Effect::Kick {
                session: old,
                code: ErrorCode::Replaced,
                message: "you joined this hearing from another window or device".into(),
            });
        }
        self.seat(pid, session, device);
        let welcome = self.welcome(pid).ok_or(JoinError::NotFound);
        self.tell_waiting_devices(pid);
        welcome
    }

    /// Whether `pid`'s link (at `link_version`) may be used now: the hearing is not
    /// closed, the participant is still part of it and not removed, the link is
    /// current and its time window open. What a join checks before seating anyone,
    /// and all a pre-join self-test checks (`api::ws::selftest`).
    fn admissible(&self, pid: Uuid, link_version: u32) -> Result<(), Refusal> {
        if self.status.state == HearingState::Closed {
            return Err(Refusal::new(
                ErrorCode::HearingClosed,
                "this hearing is closed; its links no longer work",
            ));
        }
        let Some(member) = self.members.get(&pid) else {
            return Err(Refusal::new(
                ErrorCode::ParticipantUnknown,
                "you are no longer a participant of this hearing",
            ));
        };
        if member.p.admission == Admission::Removed {
            return Err(Refusal::new(
                ErrorCode::Removed,
                "the court removed you from this hearing",
            ));
        }
        if link_version != member.p.link_version {
            return Err(Refusal::new(
                ErrorCode::LinkRevoked,
                "this join link was revoked; ask the court for a new one",
            ));
        }
        self.link_window()
    }

    /// A pre-join self-test may run for `pid` at `now`: the checks of a join, and
    /// nothing changes (no seat, no audit, no notice: the participant is not present).
    pub fn self_test_allowed(
        &mut self,
        now: DateTime<Utc>,
        pid: Uuid,
        link_version: u32,
    ) -> Result<(), Refusal> {
        self.now = now;
        self.admissible(pid, link_version)
    }

    /// Refuses joins before the links of a scheduled or adjourned hearing open:
    /// `valid_before` ahead of its date (the new date of an adjournment, else the
    /// scheduled time), read at the moment of the join, so a rescheduled hearing's
    /// links move with it. An open, running or suspended hearing takes its links at
    /// any time; a closed one never.
    fn link_window(&self) -> Result<(), Refusal> {
        let scheduled = self
            .hearing
            .scheduled_at
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc));
        let date = match self.status.state {
            HearingState::Scheduled => scheduled,
            HearingState::Adjourned => self.status.adjourned_to.or(scheduled),
            _ => None,
        };
        let Some(date) = date else {
            return Ok(());
        };
        let before = chrono::Duration::from_std(self.policy.valid_before)
            .unwrap_or(chrono::Duration::zero());
        let opens = date - before;
        if self.now >= opens {
            return Ok(());
        }
        Err(Refusal::new(
            ErrorCode::LinkNotYetValid,
            format!(
                "this hearing's links open at {} ({} minutes before the hearing); try again then",
                rfc3339(opens),
                before.num_minutes()
            ),
        ))
    }

    /// Makes `session` (on `device`) the participant's current one: an older
    /// session is released with its tracks, a role the configuration admits at once
    /// enters, the join is audited, legs reconciled and the others told.
    pub(super) fn seat(&mut self, pid: Uuid, session: u64, device: Device) {
        let auto = self
            .members
            .get(&pid)
            .map(|m| self.perms.auto_admitted(m.p.role));
        let now = self.now;
        let Some(member) = self.members.get_mut(&pid) else {
            return;
        };
        let replaced = member.session.take();
        let dropped = std::mem::take(&mut member.tracks);
        member.session = Some(session);
        member.device = device;
        member.connection = Connection::Connecting;
        member.audio = false;
        member.video = false;
        let mut admitted_now = false;
        if member.p.admission == Admission::Lobby {
            // A role the configuration admits at once (perhaps changed since the
            // hearing was created) enters; everyone else waits, from now.
            if auto == Some(true) {
                member.p.admission = Admission::Admitted;
                member.lobby_since = None;
                admitted_now = true;
            } else {
                member.lobby_since = Some(now);
            }
        }
        let (role, site, admission) = (member.p.role, member.p.site.clone(), member.p.admission);
        let seen = member.device.audit();
        if let Some(old) = replaced {
            self.emit(Effect::Release(old));
            for t in dropped {
                self.emit(Effect::DropTrack(t.id));
            }
        }
        if admitted_now {
            self.persist_participant(pid);
        }
        self.audit(
            "system",
            participant_subject(pid),
            "join",
            json!({ "role": role, "site": site, "admission": admission, "device": seen }),
        );
        self.reconcile();
        self.notice_joined(pid);
    }

    pub(super) fn welcome(&self, pid: Uuid) -> Option<ServerMessage> {
        let me = self.members.get(&pid)?;
        Some(ServerMessage::Welcome(Box::new(Welcome {
            v: PROTOCOL_VERSION,
            you: me.info(),
            hearing: self.hearing.clone(),
            status: self.wire_status(),
            participants: self
                .members
                .values()
                .filter(|m| m.p.id != pid)
                .map(Member::info)
                .collect(),
            max_message_bytes: 0, // filled in by the signaling layer, which knows the limit
            max_sdp_bytes: 0,
            can_publish: self.perms.may_publish_any(me.p.role),
            permissions: self.perms.actions(me.p.role),
            resume: None, // filled in by the signaling layer, which keeps the session
        })))
    }

    pub(super) fn leave(&mut self, pid: Uuid, session: u64, reason: &str) {
        if self.waiting_left(pid, session) {
            return; // a second device that stopped waiting
        }
        let Some(m) = self.members.get(&pid) else {
            return;
        };
        if !m.is_session(session) {
            return; // a replaced or already disconnected session's late goodbye
        }
        self.disconnect(pid, reason);
    }

    /// Marks a participant gone: tracks stop, legs go, everyone is told.
    pub(super) fn disconnect(&mut self, pid: Uuid, reason: &str) {
        let Some(m) = self.members.get_mut(&pid) else {
            return;
        };
        let session = m.session.take();
        m.connection = Connection::Offline;
        m.audio = false;
        m.video = false;
        let dropped = std::mem::take(&mut m.tracks);
        for t in dropped {
            self.emit(Effect::DropTrack(t.id));
        }
        if let Some(s) = session {
            self.emit(Effect::Release(s));
        }
        self.health_disconnected(pid, reason);
        self.audit(
            "system",
            participant_subject(pid),
            "leave",
            json!({ "reason": reason }),
        );
        self.reconcile();
        self.notice_left(pid, reason);
    }

    /// Closes a participant's session with `code` and treats them as gone at once. A
    /// second device waiting on their link is closed the same way.
    pub(super) fn kick(&mut self, pid: Uuid, code: ErrorCode, message: String, reason: &str) {
        if let Some(w) = self.members.get_mut(&pid).and_then(|m| m.waiting.take()) {
            self.emit(Effect::Kick {
                session: w.session,
                code,
                message: message.clone(),
            });
            self.emit(Effect::Release(w.session));
        }
        let Some(session) = self.members.get(&pid).and_then(|m| m.session) else {
            return;
        };
        self.emit(Effect::Kick {
            session,
            code,
            message,
        });
        self.disconnect(pid, reason);
    }

    pub(super) fn media_state(&mut self, pid: Uuid, session: u64, audio: bool, video: bool) {
        let Some(m) = self.members.get_mut(&pid) else {
            return;
        };
        if !m.is_session(session) || (m.audio == audio && m.video == video) {
            return;
        }
        m.audio = audio;
        m.video = video;
        self.announce(pid);
    }

    /// A refused sending offer is evidence of a modified client: it goes in the
    /// audit trail with who sent it.
    pub(super) fn publish_refused(&mut self, pid: Uuid, session: u64) {
        let Some(m) = self.members.get(&pid) else {
            return;
        };
        if !m.is_session(session) {
            return;
        }
        let actor = m.p.name.clone();
        let role = m.p.role;
        self.audit(
            &actor,
            participant_subject(pid),
            "publish_refused",
            json!({ "role": role, "why": "the offer sends media this role may not publish" }),
        );
    }

    pub(super) fn connection(&mut self, pid: Uuid, session: u64, connection: Connection) {
        let Some(m) = self.members.get_mut(&pid) else {
            return;
        };
        if !m.is_session(session) || m.connection == connection {
            return;
        }
        m.connection = connection;
        self.announce(pid);
    }
}
