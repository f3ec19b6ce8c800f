//! The hearing's side of its archive: when it is open (in session and suspended,
//! also after a server restart), paused and closed, and what the recorder's news
//! means for the court.
//!
//! The archive itself does I/O (files, a writer thread) and lives in the actor; the
//! core asks for it to be opened ([`Effect::OpenArchive`]) and learns the outcome
//! ([`Input::ArchiveOpened`](super::Input::ArchiveOpened)) before it announces the
//! status, since the status tells everyone whether the hearing is recorded. A
//! hearing whose archive cannot be opened goes on, and the bench is alerted.

use openhearing_signaling::{Action, HearingState, ServerMessage};
use serde_json::json;

use super::super::recording::RecorderNews;
use super::{
    AfterArchive, ArchiveOp, ArchiveState, Effect, HearingCore, Pending, Recording, Reply,
};
use crate::hearing::AdminOutcome;

impl HearingCore {
    /// After a restart, a hearing that was in session (or suspended) records on.
    pub(super) fn resume_recording_after_restart(&mut self) {
        if matches!(
            self.status.state,
            HearingState::InSession | HearingState::Suspended
        ) {
            self.start_recording(AfterArchive::Restart);
        }
    }

    /// Asks for the archive to be opened when the hearing is recorded and none is
    /// open; returns whether it did (then `after` follows the outcome).
    pub(super) fn start_recording(&mut self, after: AfterArchive) -> bool {
        if self.archive.is_some() || !self.record_this || self.recording == Recording::Off {
            return false;
        }
        self.pending = Some(Pending::Archive { after, reply: None });
        self.emit(Effect::OpenArchive(self.hearing.clone()));
        true
    }

    pub(super) fn archive_opened(&mut self, result: Result<(), String>) {
        let pending = match self.pending.take() {
            Some(Pending::Archive { after, reply }) => Some((after, reply)),
            other => {
                self.pending = other;
                None
            }
        };
        match result {
            Ok(()) => self.archive = Some(ArchiveState::default()),
            // The hearing goes on; the court must know it is not being recorded.
            Err(e) => self.alert_bench(&format!("the hearing cannot be recorded: {e}")),
        }
        if let Some((after, reply)) = pending {
            self.after_archive(after);
            if let Some(request) = reply {
                self.emit(Effect::Reply {
                    request,
                    reply: Reply::Admin(Ok(AdminOutcome::Done)),
                });
            }
        }
    }

    fn after_archive(&mut self, after: AfterArchive) {
        match after {
            AfterArchive::StateChange => self.after_state_change(),
            AfterArchive::Restart => {
                if self.status.state == HearingState::Suspended && self.archive.is_some() {
                    self.emit(Effect::Archive(ArchiveOp::Pause("suspended")));
                }
            }
        }
    }

    /// Closes the open archive, if any (see [`ArchiveOp::Close`]).
    pub(super) fn close_archive(&mut self, reason: &str, render: bool, wait: bool) {
        if self.archive.take().is_some() {
            self.emit(Effect::Archive(ArchiveOp::Close {
                reason: reason.to_owned(),
                render,
                wait,
            }));
        }
    }

    /// Tells everyone who controls the hearing (the presiding judge) about a
    /// recording problem, and audits it.
    fn alert_bench(&mut self, message: &str) {
        let bench: Vec<_> = self
            .members
            .values()
            .filter(|m| self.perms.allows(m.p.role, Action::ControlLifecycle))
            .map(|m| m.p.id)
            .collect();
        for id in bench {
            self.tell(
                id,
                ServerMessage::RecordingAlert {
                    message: message.to_owned(),
                },
            );
        }
        self.audit(
            "system",
            None,
            "recording_alert",
            json!({ "message": message }),
        );
    }

    pub(super) fn recorder_news(&mut self, news: RecorderNews) {
        match news {
            RecorderNews::Alert(alert) => self.alert_bench(&alert.message),
        }
    }
}
