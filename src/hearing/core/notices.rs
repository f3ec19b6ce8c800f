//! Join and leave notices to the other participants, coalesced while someone flaps.
//!
//! A participant whose connection drops and comes back every few seconds (or a
//! script rejoining on one link) would fill the judge's screen with
//! `participant_left` / `participant_joined` pairs. So a leave that comes within
//! `notice_window` of the participant's previous leave is *held*: the others keep
//! seeing them as present (their media is gone at once all the same, the forwarding
//! legs do not wait), and
//!
//! * if they rejoin before the window passes, the held leave is dropped and the
//!   others get a `participant_updated` (the participant never looked gone);
//! * otherwise the others get the `participant_left` when the window passes.
//!
//! A flapping participant therefore produces at most one leave and one join notice
//! per window, and the protocol's messages stay the ones the web client knows. Only
//! leaves of their own (`left`, `connection_lost`) are held; the court's decisions
//! (removed, denied, replaced, revoked) are told at once. Deadlines are core time:
//! the actor wakes the core with `Input::Tick` at [`HearingCore::next_wakeup`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use openhearing_signaling::ServerMessage;
use uuid::Uuid;

use super::HearingCore;

/// One participant's notice state.
#[derive(Debug, Clone, Default)]
pub struct Notices {
    /// When their last leave happened (told or held).
    last_leave: Option<DateTime<Utc>>,
    /// A leave the others have not been told yet: its reason and when to tell it.
    held: Option<(String, DateTime<Utc>)>,
}

/// Leaves that may be held: the participant's own, not the court's decisions.
fn holdable(reason: &str) -> bool {
    matches!(reason, "left" | "connection_lost")
}

impl HearingCore {
    /// Tells the others that `pid` left, or holds the notice while they flap.
    pub(super) fn notice_left(&mut self, pid: Uuid, reason: &str) {
        let window = chrono::Duration::from_std(self.policy.notice_window)
            .unwrap_or(chrono::Duration::zero());
        let now = self.now;
        let Some(m) = self.members.get_mut(&pid) else {
            return;
        };
        let flapping = holdable(reason)
            && window > chrono::Duration::zero()
            && m.notices.last_leave.is_some_and(|t| now - t < window);
        m.notices.last_leave = Some(now);
        if flapping {
            m.notices.held = Some((reason.to_owned(), now + window));
            return;
        }
        m.notices.held = None;
        self.broadcast_except(
            Some(pid),
            &ServerMessage::ParticipantLeft {
                participant_id: pid,
                reason: reason.to_owned(),
            },
        );
    }

    /// Tells the others that `pid` joined: `participant_joined`, or
    /// `participant_updated` when their leave was still held.
    pub(super) fn notice_joined(&mut self, pid: Uuid) {
        let Some(m) = self.members.get_mut(&pid) else {
            return;
        };
        let held = m.notices.held.take().is_some();
        let participant = m.info();
        let message = if held {
            ServerMessage::ParticipantUpdated { participant }
        } else {
            ServerMessage::ParticipantJoined { participant }
        };
        self.broadcast_except(Some(pid), &message);
    }

    /// Tells the held leaves whose window has passed; true when it told any.
    pub(super) fn flush_notices(&mut self) -> bool {
        let now = self.now;
        let due: Vec<(Uuid, String)> = self
            .members
            .values_mut()
            .filter_map(|m| {
                let due = m.notices.held.as_ref().is_some_and(|(_, at)| *at <= now);
                due.then(|| m.notices.held.take())
                    .flatten()
                    .map(|(reason, _)| (m.p.id, reason))
            })
            .collect();
        for (pid, reason) in &due {
            self.broadcast_except(
                Some(*pid),
                &ServerMessage::ParticipantLeft {
                    participant_id: *pid,
                    reason: reason.clone(),
                },
            );
        }
        !due.is_empty()
    }

    /// The earliest held notice's deadline.
    pub(super) fn next_notice(&self) -> Option<DateTime<Utc>> {
        self.members
            .values()
            .filter_map(|m| m.notices.held.as_ref().map(|(_, at)| *at))
            .min()
    }

    /// How long the actor may wait before handing in [`super::Input::Tick`]: until
    /// the next held notice is due, else the idle timeout.
    pub fn next_wakeup(&self) -> Option<Duration> {
        match self.next_notice() {
            Some(at) => Some((at - self.now).to_std().unwrap_or(Duration::ZERO)),
            None => self.idle_timeout(),
        }
    }
}
