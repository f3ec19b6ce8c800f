//! Live hearings: one actor task per hearing owns its state.
//!
//! A participant's signaling session talks to its hearing only through a
//! [`HearingHandle`] (a command channel); the actor answers on the session's own
//! channel ([`SessionCommand`]). The actor alone decides — through
//! [`policy::may_forward`] — which forwarding legs exist, and alone adds and removes
//! them in the SFU. There is no lock around hearing state: it has one owner.
//!
//! The actor stops when nobody has been connected for a while; the registry spawns a
//! fresh one on the next join (state that must outlive it lives in the store).

pub mod actor;
pub mod policy;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openhearing_signaling::{ErrorCode, HearingInfo, ParticipantInfo, ServerMessage};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::sfu::{Downstream, PublishedTrack};

pub use actor::Command;

/// What a hearing tells one participant's session to do.
#[derive(Debug)]
pub enum SessionCommand {
    /// Send this message to the client.
    Send(ServerMessage),
    /// Start receiving this track (add a leg, renegotiate, then report `leg_ready`).
    Subscribe(Arc<PublishedTrack>),
    /// Stop receiving the track with this id (forwarding has already stopped).
    Unsubscribe(String),
    /// Close the session with this error (e.g. the participant joined elsewhere).
    Kick { code: ErrorCode, message: String },
}

/// A session as its hearing knows it.
#[derive(Debug, Clone)]
pub struct SessionLink {
    /// Unique per signaling connection, so a late message from a replaced session
    /// cannot affect its successor.
    pub session: u64,
    pub tx: mpsc::UnboundedSender<SessionCommand>,
}

/// A join, as the signaling layer hands it over after checking the token.
#[derive(Debug)]
pub struct JoinRequest {
    pub hearing: HearingInfo,
    /// Every participant of the hearing (from the store), presence flags ignored.
    pub roster: Vec<ParticipantInfo>,
    pub participant: Uuid,
    pub link: SessionLink,
}

/// The hearing accepted the join.
#[derive(Debug)]
pub struct Joined {
    pub handle: HearingHandle,
    /// The `welcome` to send to the client.
    pub welcome: ServerMessage,
}

#[derive(Debug, thiserror::Error)]
pub enum HearingError {
    #[error("participant {0} is not part of this hearing")]
    NotAParticipant(Uuid),
    #[error("the hearing is restarting; try again")]
    Unavailable,
}

/// Sending half of a hearing actor's command channel.
#[derive(Debug, Clone)]
pub struct HearingHandle {
    pub id: Uuid,
    generation: u64,
    tx: mpsc::UnboundedSender<Command>,
}

impl HearingHandle {
    fn send(&self, c: Command) {
        // A closed channel means the actor is gone; the session ends soon after.
        let _ = self.tx.send(c);
    }

    pub fn leave(&self, participant: Uuid, session: u64, reason: &str) {
        self.send(Command::Leave {
            participant,
            session,
            reason: reason.to_owned(),
        });
    }

    pub fn track_published(&self, participant: Uuid, session: u64, track: Arc<PublishedTrack>) {
        self.send(Command::TrackPublished {
            participant,
            session,
            track,
        });
    }

    pub fn track_ended(&self, participant: Uuid, session: u64, track_id: String) {
        self.send(Command::TrackEnded {
            participant,
            session,
            track_id,
        });
    }

    pub fn media_state(&self, participant: Uuid, session: u64, audio: bool, video: bool) {
        self.send(Command::MediaState {
            participant,
            session,
            audio,
            video,
        });
    }

    pub fn leg_ready(
        &self,
        subscriber: Uuid,
        session: u64,
        track_id: String,
        leg: Arc<Downstream>,
    ) {
        self.send(Command::LegReady {
            subscriber,
            session,
            track_id,
            leg,
        });
    }
}

/// The registry of live hearing actors.
#[derive(Debug)]
pub struct Hearings {
    live: Mutex<HashMap<Uuid, HearingHandle>>,
    generation: AtomicU64,
    sessions: AtomicU64,
    idle: Duration,
}

impl Hearings {
    /// `idle`: how long an actor with nobody connected lives on.
    pub fn new(idle: Duration) -> Arc<Hearings> {
        Arc::new(Hearings {
            live: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            sessions: AtomicU64::new(0),
            idle,
        })
    }

    /// A fresh session number.
    pub fn next_session(&self) -> u64 {
        self.sessions.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Joins a participant, spawning the hearing's actor if it is not running.
    pub async fn join(self: &Arc<Self>, mut req: JoinRequest) -> Result<Joined, HearingError> {
        // One retry covers the race with an actor that is shutting down for idleness.
        for _ in 0..2 {
            let handle = self.get_or_spawn(req.hearing.id);
            let (reply, rx) = oneshot::channel();
            handle.send(Command::Join { req, reply });
            match rx.await {
                Ok(Ok(welcome)) => return Ok(Joined { handle, welcome }),
                Ok(Err(actor::JoinRefused::NotAParticipant(id))) => {
                    return Err(HearingError::NotAParticipant(id))
                }
                Ok(Err(actor::JoinRefused::Stopping(back))) => req = *back,
                Err(_) => return Err(HearingError::Unavailable),
            }
        }
        Err(HearingError::Unavailable)
    }

    fn get_or_spawn(self: &Arc<Self>, id: Uuid) -> HearingHandle {
        let Ok(mut live) = self.live.lock() else {
            // A poisoned registry means a panic elsewhere; spawn an unregistered actor
            // rather than failing every join.
            return self.spawn(id);
        };
        if let Some(h) = live.get(&id) {
            if !h.tx.is_closed() {
                return h.clone();
            }
        }
        let h = self.spawn(id);
        live.insert(id, h.clone());
        h
    }

    fn spawn(self: &Arc<Self>, id: Uuid) -> HearingHandle {
        let (tx, rx) = mpsc::unbounded_channel();
        let handle = HearingHandle {
            id,
            generation: self.generation.fetch_add(1, Ordering::Relaxed),
            tx,
        };
        actor::spawn(handle.clone(), rx, Arc::downgrade(self), self.idle);
        handle
    }

    /// Called by an actor that stops: unregisters it if it is still the live one.
    fn retire(&self, handle: &HearingHandle) {
        if let Ok(mut live) = self.live.lock() {
            if live
                .get(&handle.id)
                .is_some_and(|h| h.generation == handle.generation)
            {
                live.remove(&handle.id);
            }
        }
    }
}
