//! One link, two devices: what happens when a participant's join link is opened
//! while a session of theirs is connected, and how the court decides.
//!
//! A join link is a bearer token, so a second device on the same link is either the
//! participant (a new tab, a phone) or someone who has their link. The server cannot
//! tell which, so it never lets the second device act unseen: every case is audited
//! with both devices' source address and user agent, and the participants who may
//! `admit` (the presiding judge, the clerk) are told with `second_device`.
//! `auth.second_device` chooses the rest ([`SecondDevice`]):
//!
//! * `lobby` (the default): the new device waits (`device_waiting`, no media, no
//!   hearing state) and the first keeps the seat until the court sends
//!   `admit_device` (the waiting device takes the seat, the first is closed with
//!   `replaced`) or `refuse_device` (the waiting one is closed);
//! * `refuse`: the new device is closed with `second_device_refused`;
//! * `replace`: the new device takes the seat at once, as before.
//!
//! A client reconnecting from the tab that holds the seat (the same `join.tab`, an
//! id it chose and keeps in `sessionStorage`, which a copied link does not carry) is
//! no second device: it takes its seat back at once, audited as `session_replaced`
//! with `same_tab`, without troubling the court. Without that, a defendant on a
//! weak link whose old connection the server has not yet seen drop would wait for
//! the judge after every reconnect.
//!
//! Kept apart from `join.rs` because it is a policy of its own with its own court
//! actions; `join.rs` only asks [`HearingCore::second_device`] first.

use std::time::Duration;

use openhearing_signaling::{Action, DeviceEvent, ErrorCode, ServerMessage};
use serde_json::json;
use uuid::Uuid;

use super::members::{Device, WaitingDevice};
use super::{participant_subject, Effect, HearingCore, Who};
use crate::hearing::{JoinError, Refusal};
use crate::model::rfc3339;

/// What a second device on a link in use gets (`auth.second_device`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecondDevice {
    /// It takes the seat at once; the first device is closed with `replaced`.
    Replace,
    /// It waits until the court admits or refuses it; the first keeps the seat.
    #[default]
    Lobby,
    /// It is closed with `second_device_refused`.
    Refuse,
}

/// How a hearing treats joins (`[auth]` and `[signaling]` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinPolicy {
    pub second_device: SecondDevice,
    /// Links of a scheduled (or adjourned) hearing open this long before its date.
    pub valid_before: Duration,
    /// A participant who leaves again within this time of their last leave is
    /// flapping: others are told once the window passes (`notices.rs`). Zero: never.
    pub notice_window: Duration,
}

impl JoinPolicy {
    /// The policy the configuration sets: `auth.second_device`,
    /// `auth.link_valid_before_minutes`, `signaling.notice_coalesce_seconds`.
    pub fn from_config(c: &crate::config::Config) -> JoinPolicy {
        JoinPolicy {
            second_device: c.auth.second_device,
            valid_before: Duration::from_secs(c.auth.link_valid_before_minutes.saturating_mul(60)),
            notice_window: Duration::from_secs(c.signaling.notice_coalesce_seconds),
        }
    }
}

impl Default for JoinPolicy {
    fn default() -> Self {
        JoinPolicy {
            second_device: SecondDevice::Lobby,
            valid_before: Duration::from_secs(60 * 60),
            notice_window: Duration::from_secs(10),
        }
    }
}

/// The reply a waiting device gets instead of `welcome`.
fn waiting_message() -> ServerMessage {
    ServerMessage::DeviceWaiting {
        message: "this link is in use on another device; wait for the court to let this device in"
            .into(),
    }
}

impl HearingCore {
    /// A join of `pid` while they have a live session: `None` when the join goes on
    /// (no live session, or `replace` mode, audited here), else the reply to give
    /// the new session (waiting, or refused).
    pub(super) fn second_device(
        &mut self,
        pid: Uuid,
        session: u64,
        device: &Device,
    ) -> Option<Result<ServerMessage, JoinError>> {
        let m = self.members.get(&pid)?;
        let first = m.session.map(|_| m.device.clone())?;
        let both = json!({ "first": first.audit(), "second": device.audit() });
        if first.same_tab(device) {
            let mut details = both;
            details["same_tab"] = json!(true);
            self.audit(
                "system",
                participant_subject(pid),
                "session_replaced",
                details,
            );
            return None;
        }
        match self.policy.second_device {
            SecondDevice::Replace => {
                self.audit("system", participant_subject(pid), "session_replaced", both);
                self.tell_court(pid, DeviceEvent::Replaced, device);
                None
            }
            SecondDevice::Refuse => {
                self.audit(
                    "system",
                    participant_subject(pid),
                    "second_device_refused",
                    both,
                );
                self.tell_court(pid, DeviceEvent::Refused, device);
                Some(Err(JoinError::Refused(Refusal::new(
                    ErrorCode::SecondDeviceRefused,
                    "this link is in use on another device; close it there first",
                ))))
            }
            SecondDevice::Lobby => {
                self.withdraw_waiting(pid, "this link was opened on yet another device");
                self.audit(
                    "system",
                    participant_subject(pid),
                    "second_device_waiting",
                    both,
                );
                let since = self.now;
                if let Some(m) = self.members.get_mut(&pid) {
                    m.waiting = Some(WaitingDevice {
                        session,
                        device: device.clone(),
                        since,
                    });
                }
                self.tell_court(pid, DeviceEvent::Waiting, device);
                Some(Ok(waiting_message()))
            }
        }
    }

    /// Closes the device waiting for `pid`, if any (replaced by another one).
    fn withdraw_waiting(&mut self, pid: Uuid, why: &str) {
        let Some(w) = self.members.get_mut(&pid).and_then(|m| m.waiting.take()) else {
            return;
        };
        self.emit(Effect::Kick {
            session: w.session,
            code: ErrorCode::Replaced,
            message: why.to_owned(),
        });
        self.emit(Effect::Release(w.session));
        self.tell_court(pid, DeviceEvent::Withdrawn, &w.device);
    }

    /// The waiting device's session ended on its own; true when `session` was one.
    pub(super) fn waiting_left(&mut self, pid: Uuid, session: u64) -> bool {
        let Some(m) = self.members.get_mut(&pid) else {
            return false;
        };
        if m.waiting.as_ref().map(|w| w.session) != Some(session) {
            return false;
        }
        let Some(w) = m.waiting.take() else {
            return false;
        };
        self.emit(Effect::Release(session));
        self.tell_court(pid, DeviceEvent::Withdrawn, &w.device);
        true
    }

    /// `admit_device`: the waiting device takes the seat; the first is closed.
    pub(super) fn admit_device(&mut self, actor: &str, who: Who, id: Uuid) -> Result<(), Refusal> {
        self.require(who, Action::Admit)?;
        let t = self.target(id)?;
        let Some(w) = t.waiting.clone() else {
            return Err(no_device_waiting(&t.p.name));
        };
        let first = t.device.clone();
        self.audit(
            actor,
            participant_subject(id),
            "session_replaced",
            json!({ "first": first.audit(), "second": w.device.audit(), "admitted_by": actor }),
        );
        if let Some(m) = self.members.get_mut(&id) {
            m.waiting = None;
        }
        if let Some(old) = self.members.get(&id).and_then(|m| m.session) {
            self.emit(Effect::Kick {
                session: old,
                code: ErrorCode::Replaced,
                message: "the court let your other device take your place in the hearing".into(),
            });
        }
        self.seat(id, w.session, w.device.clone());
        self.tell_court(id, DeviceEvent::Replaced, &w.device);
        if let Some(welcome) = self.welcome(id) {
            self.emit(Effect::Send {
                session: w.session,
                message: welcome,
            });
        }
        Ok(())
    }

    /// `refuse_device`: the waiting device is closed; the first keeps the seat.
    pub(super) fn refuse_device(&mut self, actor: &str, who: Who, id: Uuid) -> Result<(), Refusal> {
        self.require(who, Action::Admit)?;
        let t = self.target(id)?;
        let Some(w) = t.waiting.clone() else {
            return Err(no_device_waiting(&t.p.name));
        };
        self.audit(
            actor,
            participant_subject(id),
            "second_device_refused",
            json!({ "first": t.device.audit(), "second": w.device.audit(), "refused_by": actor }),
        );
        if let Some(m) = self.members.get_mut(&id) {
            m.waiting = None;
        }
        self.emit(Effect::Kick {
            session: w.session,
            code: ErrorCode::SecondDeviceRefused,
            message: "the court did not let this device into the hearing".into(),
        });
        self.emit(Effect::Release(w.session));
        self.tell_court(id, DeviceEvent::Refused, &w.device);
        Ok(())
    }

    /// Tells every connected participant who may `admit` what a second device did.
    fn tell_court(&mut self, pid: Uuid, event: DeviceEvent, device: &Device) {
        let message = ServerMessage::SecondDevice {
            participant_id: pid,
            event,
            user_agent: device.user_agent.clone(),
            at: rfc3339(self.now),
        };
        let court: Vec<u64> = self
            .members
            .values()
            .filter(|m| self.perms.allows(m.p.role, Action::Admit))
            .filter_map(|m| m.session)
            .collect();
        for session in court {
            self.emit(Effect::Send {
                session,
                message: message.clone(),
            });
        }
    }

    /// After a court member's `welcome`: every device still waiting.
    pub(super) fn tell_waiting_devices(&mut self, to: Uuid) {
        let Some(role) = self.members.get(&to).map(|m| m.p.role) else {
            return;
        };
        if !self.perms.allows(role, Action::Admit) {
            return;
        }
        let waiting: Vec<ServerMessage> = self
            .members
            .values()
            .filter_map(|m| {
                let w = m.waiting.as_ref()?;
                Some(ServerMessage::SecondDevice {
                    participant_id: m.p.id,
                    event: DeviceEvent::Waiting,
                    user_agent: w.device.user_agent.clone(),
                    at: rfc3339(w.since),
                })
            })
            .collect();
        for message in waiting {
            self.tell(to, message);
        }
    }
}

fn no_device_waiting(name: &str) -> Refusal {
    Refusal::new(
        ErrorCode::NotApplicable,
        format!("no second device of {name} is waiting"),
    )
}
