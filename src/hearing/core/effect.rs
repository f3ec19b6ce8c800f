//! What the hearing core asks the world to do, and in which order.
//!
//! Every decision of [`super::HearingCore::handle`] comes back as a list of
//! [`Effect`]s. The list is sorted by [`Phase`] (a stable sort, so effects of one
//! phase keep the order in which the core decided them):
//!
//! 1. [`Phase::Persist`] — state changes for the store;
//! 2. [`Phase::Audit`] — audit records (always after the state they record);
//! 3. [`Phase::Media`] — forwarding legs cut or attached, tracks dropped, and the
//!    archive's own journal and track switches. These only stop media, start it on a
//!    leg the policy already allowed, or write the separate archive;
//! 4. [`Phase::Announce`] — what sessions are told, kicks, and replies;
//! 5. [`Phase::Continue`] — a step the core cannot take itself (a store call, opening
//!    the archive, stopping). The actor carries it out and hands the outcome back as
//!    the next input at once, before any other input.
//!
//! So nothing is announced before it is stored. The actor splits each list at the
//! first effect whose phase is [`Phase::Media`] or later: the part before it (the
//! persists and audits) is stored as one batch, in one transaction, and only when
//! that succeeded is the rest carried out. If the batch of a request (a join, a court
//! action, an operator's change) fails, the rest is dropped, the core is put back as
//! it was before the input (`super::undo`), and the requester is answered
//! `store_unavailable`. A fact (a leave, an ended track, a recorder alert, a
//! continuation after the archive opened or the store acted) cannot be refused: its
//! media effects are carried out without waiting, its batch waits in the writer's
//! backlog if the store refuses it, and its announcements follow (see
//! `super::super::writer`). A
//! list that ends in a [`Phase::Continue`] effect is split the same way — its
//! writes are stored before the archive is opened or the store called — and its
//! continuation is a list of its own.

use openhearing_recorder::{EventKind, GapCause};
use openhearing_signaling::{ErrorCode, HearingInfo, ServerMessage};
use uuid::Uuid;

use super::super::writer::WriteOp;
use super::super::{AdminOutcome, JoinError, Refusal};
use crate::model::{
    Admission, AuditRecord, Hearing, HearingUpdate, NewParticipant, Participant, Site,
};

/// An id the actor gives a request that wants an answer (a join, an admin op, a
/// shutdown), carried back in [`Effect::Reply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// Where an effect goes in the ordered list (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Persist,
    Audit,
    Media,
    Announce,
    Continue,
}

/// One thing the actor must do for the core.
#[derive(Debug)]
pub enum Effect {
    /// Store a state change (`WriteOp::Status` or `WriteOp::Participant`; the core
    /// never builds the other kind).
    Persist(WriteOp),
    /// Store an audit record.
    Audit(AuditRecord),
    /// Stop forwarding `track` to `subscriber` now (before the subscriber's session
    /// renegotiates it away).
    CutLeg { track: String, subscriber: Uuid },
    /// The track leaves the hearing: cut every leg of it now. The actor may forget
    /// the track once the whole list is carried out.
    DropTrack(String),
    /// Forward `track` on the leg `subscriber`'s session just reported ready.
    AttachLeg { track: String, subscriber: Uuid },
    /// Something for the open archive.
    Archive(ArchiveOp),
    /// Send this message to one session.
    Send {
        session: u64,
        message: ServerMessage,
    },
    /// Tell a session to add a leg for `track` (then report it ready).
    Subscribe { session: u64, track: String },
    /// Tell a session to drop its leg of `track` (forwarding has already stopped).
    Unsubscribe { session: u64, track: String },
    /// Close a session with this error.
    Kick {
        session: u64,
        code: ErrorCode,
        message: String,
    },
    /// The session is no longer the participant's current one; nothing more will be
    /// sent to it.
    Release(u64),
    /// Answer a request.
    Reply { request: RequestId, reply: Reply },
    /// Open the archive for this hearing; answer with `Input::ArchiveOpened`.
    OpenArchive(HearingInfo),
    /// Call the store; answer with `Input::Stored`.
    Call(StoreCall),
    /// The hearing is idle: stop the actor.
    Stop,
}

impl Effect {
    pub fn phase(&self) -> Phase {
        match self {
            Effect::Persist(_) => Phase::Persist,
            Effect::Audit(_) => Phase::Audit,
            Effect::CutLeg { .. }
            | Effect::DropTrack(_)
            | Effect::AttachLeg { .. }
            | Effect::Archive(_) => Phase::Media,
            Effect::Send { .. }
            | Effect::Subscribe { .. }
            | Effect::Unsubscribe { .. }
            | Effect::Kick { .. }
            | Effect::Release(_)
            | Effect::Reply { .. } => Phase::Announce,
            Effect::OpenArchive(_) | Effect::Call(_) | Effect::Stop => Phase::Continue,
        }
    }
}

/// Puts effects in phase order, keeping the decided order within a phase.
pub(super) fn ordered(mut effects: Vec<Effect>) -> Vec<Effect> {
    effects.sort_by_key(Effect::phase);
    effects
}

/// An operation on the hearing's open archive (`super::super::recording`).
#[derive(Debug, Clone, PartialEq)]
pub enum ArchiveOp {
    /// Journal a hearing event (the audit record's twin; details are JSON text).
    Event {
        kind: EventKind,
        actor: String,
        subject: Option<String>,
        details: serde_json::Value,
    },
    /// Record `track` now (`record`) or not, marking a gap with `cause` while not.
    Set {
        track: String,
        owner: Participant,
        record: bool,
        cause: Option<GapCause>,
    },
    /// The track left the hearing.
    TrackEnded(String),
    Pause(&'static str),
    Resume,
    /// Close (finalise and sign) the archive. `wait`: the actor waits until it is
    /// signed before going on (the server is stopping); otherwise it closes off the
    /// actor. `render`: render the hearing to one file afterwards.
    Close {
        reason: String,
        render: bool,
        wait: bool,
    },
}

/// The answer to a request.
#[derive(Debug)]
pub enum Reply {
    /// The `welcome` for the joining session, or why it may not join.
    Join(Result<ServerMessage, JoinError>),
    /// The outcome of an admin op (sent after its changes were stored).
    Admin(Result<AdminOutcome, Refusal>),
    /// Everything is done (shutdown); sent once the writer's backlog is stored or
    /// given up on.
    Stored,
}

/// A store call an admin op needs before it can decide.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreCall {
    UpdateHearing(HearingUpdate),
    AddParticipant(NewParticipant, Admission),
    RevokeLink(Uuid),
    UpsertSite(Site),
}

/// What a [`StoreCall`] returned.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreAnswer {
    /// `UpdateHearing`: the updated hearing, or `None` if it no longer exists.
    Hearing(Option<Box<Hearing>>),
    /// `AddParticipant`: the participant as stored.
    Participant(Participant),
    /// `RevokeLink`: the new link version, or `None` if the participant is gone.
    LinkVersion(Option<u32>),
    /// `UpsertSite`.
    Done,
}

/// A store call failed (the actor has logged why).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StoreFailed {
    /// The store cannot write now (a full disk, an I/O error, locked too long, or
    /// records still waiting to be stored): answered `store_unavailable`.
    #[error("the store cannot take writes now")]
    Unavailable,
    /// The store refused the call (a bug or damaged data): answered `internal`.
    #[error("the store call failed")]
    Failed,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    #[test]
    fn ordering_is_by_phase_and_stable_within_a_phase() {
        let effects = vec![
            Effect::Send {
                session: 1,
                message: ServerMessage::Pong { id: 1 },
            },
            Effect::Archive(ArchiveOp::Resume),
            Effect::Audit(AuditRecord {
                at: Utc::now(),
                actor: "system".into(),
                subject: None,
                action: "a".into(),
                details: "{}".into(),
            }),
            Effect::Release(1),
            Effect::Persist(WriteOp::Participant {
                id: Uuid::nil(),
                admission: Admission::Lobby,
                muted: false,
            }),
            Effect::Stop,
            Effect::Send {
                session: 2,
                message: ServerMessage::Pong { id: 2 },
            },
        ];
        let effects = ordered(effects);
        let phases: Vec<Phase> = effects.iter().map(Effect::phase).collect();
        assert_eq!(
            phases,
            [
                Phase::Persist,
                Phase::Audit,
                Phase::Media,
                Phase::Announce,
                Phase::Announce,
                Phase::Announce,
                Phase::Continue
            ]
        );
        assert!(matches!(effects[3], Effect::Send { session: 1, .. }));
        assert!(matches!(effects[4], Effect::Release(1)));
        assert!(matches!(effects[5], Effect::Send { session: 2, .. }));
    }
}
