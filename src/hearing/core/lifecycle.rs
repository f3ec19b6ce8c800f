//! The hearing's lifecycle: scheduled → open → in session ⇄ suspended → adjourned or
//! closed, as [`HearingState::can_move_to`] allows.
//!
//! A change is validated completely before anything changes (a suspension and an
//! adjournment need a reason, an adjournment its new date), then stored with its
//! history entry, audited, carried to the archive (opened when the hearing goes in
//! session, paused while suspended, closed at adjournment or close), reconciled —
//! media stops or starts before anyone is told — and announced. Closing ends every
//! private room and every session.

use chrono::{DateTime, Utc};
use openhearing_signaling::{ErrorCode, HearingState, StateChange};
use serde_json::json;
use uuid::Uuid;

use super::{trimmed_reason, AfterArchive, ArchiveOp, Effect, HearingCore};
use crate::hearing::Refusal;
use crate::model::{micros, rfc3339};

impl HearingCore {
    pub(super) fn set_state(&mut self, actor: &str, change: StateChange) -> Result<(), Refusal> {
        let from = self.status.state;
        let to = change.state;
        if !from.can_move_to(to) {
            let allowed: Vec<&str> = HearingState::ALL
                .into_iter()
                .filter(|s| from.can_move_to(*s))
                .map(HearingState::as_str)
                .collect();
            return Err(Refusal::new(
                ErrorCode::InvalidTransition,
                if allowed.is_empty() {
                    format!("the hearing is {from}; it cannot change any more")
                } else {
                    format!(
                        "the hearing is {from}; it cannot become {to} (possible: {})",
                        allowed.join(", ")
                    )
                },
            ));
        }
        let reason = trimmed_reason(change.reason)?;
        if matches!(to, HearingState::Suspended | HearingState::Adjourned) && reason.is_none() {
            return Err(Refusal::new(
                ErrorCode::ReasonRequired,
                format!("becoming {to} needs a reason"),
            ));
        }
        let adjourned_to = match (to, change.adjourned_to) {
            (HearingState::Adjourned, Some(text)) => Some(
                DateTime::parse_from_rfc3339(text.trim())
                    .map(|d| micros(d.with_timezone(&Utc)))
                    .map_err(|e| {
                        Refusal::new(
                            ErrorCode::MalformedMessage,
                            format!("adjourned_to `{text}` is not an RFC 3339 date and time: {e}"),
                        )
                    })?,
            ),
            (HearingState::Adjourned, None) => {
                return Err(Refusal::new(
                    ErrorCode::ReasonRequired,
                    "adjourning needs the new date (adjourned_to, RFC 3339)",
                ))
            }
            _ => None,
        };
        let now = micros(self.now);
        self.status.state = to;
        self.status.reason = reason.clone();
        self.status.since = now;
        self.status.adjourned_to = adjourned_to;
        if to == HearingState::Closed {
            self.status.spotlight = None;
            self.status.consultation_requests.clear();
            let rooms: Vec<Uuid> = self.status.rooms.iter().map(|r| r.id).collect();
            for r in rooms {
                self.close_room(actor, r, "hearing_closed", None);
            }
        }
        self.audit(
            actor,
            None,
            "state_change",
            json!({
                "from": from,
                "to": to,
                "reason": reason,
                "adjourned_to": adjourned_to.map(rfc3339),
            }),
        );
        self.persist_status(Some((actor.to_owned(), now)));
        match to {
            HearingState::InSession => {
                if self.archive.is_some() {
                    self.emit(Effect::Archive(ArchiveOp::Resume));
                } else if self.start_recording(AfterArchive::StateChange) {
                    // The rest (reconcile, announce) follows once the archive is
                    // open or has failed to open: the status says which.
                    return Ok(());
                }
            }
            HearingState::Suspended if self.archive.is_some() => {
                self.emit(Effect::Archive(ArchiveOp::Pause("suspended")));
            }
            HearingState::Closed | HearingState::Adjourned => {
                let render = matches!(
                    self.recording,
                    super::Recording::On {
                        render_after_close: true
                    }
                );
                // Closing finishes off the actor; the hearing goes on.
                self.close_archive(to.as_str(), render, false);
            }
            _ => {}
        }
        self.after_state_change();
        Ok(())
    }

    /// The end of a state change: media stops or starts before anyone is told, so
    /// nothing leaks in between; a closed hearing ends every session.
    pub(super) fn after_state_change(&mut self) {
        self.reconcile();
        self.announce_status();
        if self.status.state == HearingState::Closed {
            // A device waiting for the court goes too (`kick` closes both).
            let present: Vec<Uuid> = self
                .members
                .values()
                .filter(|m| m.session.is_some() || m.waiting.is_some())
                .map(|m| m.p.id)
                .collect();
            for id in present {
                self.kick(
                    id,
                    ErrorCode::HearingClosed,
                    "the hearing is closed".into(),
                    "hearing_closed",
                );
            }
        }
    }
}
