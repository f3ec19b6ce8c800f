//! Taking back a decision the store would not keep.
//!
//! The core decides first and the actor stores afterwards, so a decision whose
//! changes the store refuses (a full disk) has already changed the core. The actor
//! then puts the core back as it was before the input: [`HearingCore::snapshot`]
//! before handing over a request, [`HearingCore::restore`] if its batch was not
//! stored. Nothing of that input was carried out either — persists and audits come
//! first in the effect list, and the actor stops at the failed batch — so the core,
//! the store and what every participant was told agree again, and the requester is
//! answered `store_unavailable`.
//!
//! Why a snapshot, and not reloading the hearing or an inverse per change: a reload
//! reads the store (which may fail too) and loses what only the live hearing knows
//! (sessions, tracks, legs); inverses would be one more piece of code per court
//! action to keep right. A snapshot is a clone of a few dozen members, taken only for
//! inputs that may be refused (joins, court actions, operator's changes); a fact
//! (a leave, a track that ended, a recorder alert) is never taken back, its records
//! wait for the store instead (`super::super::writer`).
//!
//! Only the state an input can change is kept; the settings never change, and the
//! effect list is empty between inputs.

use std::collections::{BTreeMap, HashSet};

use openhearing_signaling::HearingInfo;
use uuid::Uuid;

use super::{ArchiveState, HearingCore, Member, Pending};
use crate::model::Status;

/// The core's state before an input (see the module docs).
#[derive(Debug, Clone)]
pub struct Snapshot {
    hearing: HearingInfo,
    status: Status,
    members: BTreeMap<Uuid, Member>,
    subscribed: HashSet<(Uuid, String)>,
    archive: Option<ArchiveState>,
    pending: Option<Pending>,
}

impl HearingCore {
    /// The state an input may change, to [`restore`](Self::restore) if its changes
    /// are not stored.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            hearing: self.hearing.clone(),
            status: self.status.clone(),
            members: self.members.clone(),
            subscribed: self.subscribed.clone(),
            archive: self.archive.clone(),
            pending: self.pending.clone(),
        }
    }

    /// Puts the state back as it was when `snapshot` was taken, forgetting the
    /// effects of the inputs since.
    pub fn restore(&mut self, snapshot: Snapshot) {
        self.hearing = snapshot.hearing;
        self.status = snapshot.status;
        self.members = snapshot.members;
        self.subscribed = snapshot.subscribed;
        self.archive = snapshot.archive;
        self.pending = snapshot.pending;
        self.effects.clear();
    }
}
