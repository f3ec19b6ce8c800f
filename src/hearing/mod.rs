//! Live hearings: one actor task per hearing owns its state.
//!
//! A participant's signaling session talks to its hearing only through a
//! [`HearingHandle`] (a command channel); the actor answers on the session's own
//! channel ([`SessionCommand`]). Every decision about a hearing — who may join, the
//! lobby, the floor, private rooms, the lifecycle, and, through
//! [`policy::may_forward`], which forwarding legs exist — is taken by its
//! [`core::HearingCore`], a state machine without I/O; the [`actor`] is the thin
//! tokio task around it that loads the hearing, feeds the core its inputs and
//! carries out its effects (store, SFU legs, archive, sessions). There is no lock
//! around hearing state: it has one owner.
//!
//! The actor stops when nobody has been connected for a while; the registry spawns a
//! fresh one on the next join (state that must outlive it lives in the store).

pub mod actor;
pub mod core;
mod create;
pub mod health;
pub mod policy;
pub mod recording;
pub mod refusal;
mod restart;
pub mod writer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openhearing_signaling::{ClientMessage, Connection, ErrorCode, ServerMessage, StateChange};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use self::core::Input;
use crate::model::{HearingUpdate, NewParticipant, Participant, Site};
use crate::permissions::Permissions;
use crate::sfu::{Downstream, PublishedTrack};
use crate::store::Store;

pub use self::core::{Device, JoinPolicy, SecondDevice, MAX_REASON_CHARS};
pub use actor::Command;
pub use create::create_hearing;
pub use refusal::{JoinError, Refusal};
pub use restart::audit_unclean_stop;

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
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub participant: Uuid,
    /// The link version the token carries; a revoked link has an older one.
    pub link_version: u32,
    pub link: SessionLink,
    /// Where the session comes from (source address, user agent), for the audit.
    pub device: Device,
}

/// The hearing accepted the join.
#[derive(Debug)]
pub struct Joined {
    pub handle: HearingHandle,
    /// The `welcome` to send to the client.
    pub welcome: ServerMessage,
}

/// An operator's change to a hearing, applied by its actor (so live participants see
/// it at once and it is audited like any other change).
#[derive(Debug, Clone)]
pub enum AdminOp {
    SetState(StateChange),
    Update(HearingUpdate),
    AddParticipant(NewParticipant),
    Remove {
        participant: Uuid,
        reason: Option<String>,
    },
    RevokeLink(Uuid),
    UpsertSite(Site),
}

/// What an [`AdminOp`] produced.
#[derive(Debug, Clone)]
pub enum AdminOutcome {
    Done,
    Participant(Participant),
    LinkVersion(u32),
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
        self.send(Command::Session(Input::Leave {
            participant,
            session,
            reason: reason.to_owned(),
        }));
    }

    pub fn track_published(&self, participant: Uuid, session: u64, track: Arc<PublishedTrack>) {
        self.send(Command::TrackPublished {
            participant,
            session,
            track,
        });
    }

    pub fn track_ended(&self, participant: Uuid, session: u64, track_id: String) {
        self.send(Command::Session(Input::TrackEnded {
            participant,
            session,
            track: track_id,
        }));
    }

    pub fn media_state(&self, participant: Uuid, session: u64, audio: bool, video: bool) {
        self.send(Command::Session(Input::MediaState {
            participant,
            session,
            audio,
            video,
        }));
    }

    /// The session's sending offer was refused (its role may not publish).
    pub fn publish_refused(&self, participant: Uuid, session: u64) {
        self.send(Command::Session(Input::PublishRefused {
            participant,
            session,
        }));
    }

    pub fn connection(&self, participant: Uuid, session: u64, connection: Connection) {
        self.send(Command::Session(Input::Connection {
            participant,
            session,
            connection,
        }));
    }

    /// The client's `media_report` (the actor adds the SFU's counters).
    pub fn media_report(
        &self,
        participant: Uuid,
        session: u64,
        remotes: Vec<openhearing_signaling::RemoteReception>,
    ) {
        self.send(Command::Session(Input::MediaReport {
            participant,
            session,
            remotes,
            counters: Vec::new(),
        }));
    }

    /// A court action (admit, mute, set_state, ...) from the participant's client.
    pub fn act(&self, participant: Uuid, session: u64, action: ClientMessage) {
        self.send(Command::Session(Input::Act {
            participant,
            session,
            action,
        }));
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
pub struct Hearings {
    live: Mutex<HashMap<Uuid, HearingHandle>>,
    generation: AtomicU64,
    sessions: AtomicU64,
    idle: Duration,
    store: Arc<dyn Store>,
    permissions: Arc<Permissions>,
    recording: Option<Arc<recording::RecordingSettings>>,
    record_by_default: bool,
    joins: JoinPolicy,
    integrity: health::Thresholds,
}

impl std::fmt::Debug for Hearings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hearings")
            .field("idle", &self.idle)
            .finish()
    }
}

impl Hearings {
    /// `idle`: how long an actor with nobody connected lives on.
    /// `recording`: how hearings are recorded (`None`: recording is off on this
    /// server); `record_by_default`: whether a hearing created without saying is.
    pub fn new(
        idle: Duration,
        store: Arc<dyn Store>,
        permissions: Arc<Permissions>,
        recording: Option<recording::RecordingSettings>,
        record_by_default: bool,
    ) -> Arc<Hearings> {
        Hearings::with_policies(
            idle,
            store,
            permissions,
            recording,
            record_by_default,
            JoinPolicy::default(),
            health::Thresholds::default(),
        )
    }

    /// [`Hearings::new`] with policies of its own instead of the defaults: joins
    /// (second devices, when links work, notice coalescing) and media-health
    /// thresholds (`[integrity]`).
    pub fn with_policies(
        idle: Duration,
        store: Arc<dyn Store>,
        permissions: Arc<Permissions>,
        recording: Option<recording::RecordingSettings>,
        record_by_default: bool,
        joins: JoinPolicy,
        integrity: health::Thresholds,
    ) -> Arc<Hearings> {
        Arc::new(Hearings {
            live: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            sessions: AtomicU64::new(0),
            idle,
            store,
            permissions,
            recording: recording.map(Arc::new),
            record_by_default,
            joins,
            integrity,
        })
    }

    /// Whether a hearing created without saying is recorded.
    pub fn record_by_default(&self) -> bool {
        self.record_by_default
    }

    /// Spawns the actors of recorded hearings that were in session (or suspended)
    /// when the server last stopped, so their recording goes on without waiting for
    /// someone to join.
    pub async fn resume_sessions(self: &Arc<Self>) {
        if self.recording.is_none() {
            return;
        }
        match self.store.list_hearings().await {
            Ok(list) => {
                for h in list {
                    if h.recording
                        && matches!(
                            h.status.state,
                            openhearing_signaling::HearingState::InSession
                                | openhearing_signaling::HearingState::Suspended
                        )
                    {
                        self.get_or_spawn(h.id);
                    }
                }
            }
            Err(e) => tracing::error!("cannot list hearings to resume recording: {e}"),
        }
    }

    /// How many hearings have a live actor now.
    pub fn live_count(&self) -> usize {
        self.live.lock().map(|l| l.len()).unwrap_or(0)
    }

    /// The permission table in force.
    pub fn permissions(&self) -> &Arc<Permissions> {
        &self.permissions
    }

    /// Applies an operator's change through the hearing's actor (spawning it if
    /// needed); returns once the change is stored.
    pub async fn admin(
        self: &Arc<Self>,
        hearing: Uuid,
        op: AdminOp,
        actor: String,
    ) -> Result<AdminOutcome, Refusal> {
        for _ in 0..2 {
            let handle = self.get_or_spawn(hearing);
            let (reply, rx) = oneshot::channel();
            handle.send(Command::Admin {
                op: op.clone(),
                actor: actor.clone(),
                reply,
            });
            match rx.await {
                Ok(r) => return r,
                Err(_) => continue, // the actor stopped meanwhile; once more on a new one
            }
        }
        Err(Refusal::new(
            ErrorCode::Internal,
            "the hearing is restarting; try again",
        ))
    }

    /// A fresh session number.
    pub fn next_session(&self) -> u64 {
        self.sessions.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Joins a participant, spawning the hearing's actor if it is not running.
    pub async fn join(
        self: &Arc<Self>,
        hearing: Uuid,
        req: JoinRequest,
    ) -> Result<Joined, JoinError> {
        // One retry covers the race with an actor that is shutting down for idleness.
        for _ in 0..2 {
            let handle = self.get_or_spawn(hearing);
            let (reply, rx) = oneshot::channel();
            handle.send(Command::Join {
                req: req.clone(),
                reply,
            });
            match rx.await {
                Ok(Ok(welcome)) => return Ok(Joined { handle, welcome }),
                Ok(Err(JoinError::Restarting)) => continue,
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(JoinError::Unavailable),
            }
        }
        Err(JoinError::Unavailable)
    }

    /// Whether `participant` may run a pre-join self-test with a link at
    /// `link_version`: the hearing's join checks, without joining (see
    /// `api::ws::selftest`).
    pub async fn self_test_allowed(
        self: &Arc<Self>,
        hearing: Uuid,
        participant: Uuid,
        link_version: u32,
    ) -> Result<(), JoinError> {
        for _ in 0..2 {
            let handle = self.get_or_spawn(hearing);
            let (reply, rx) = oneshot::channel();
            handle.send(Command::SelfTest {
                participant,
                link_version,
                reply,
            });
            match rx.await {
                Ok(Err(JoinError::Restarting)) => continue,
                Ok(r) => return r,
                Err(_) => return Err(JoinError::Unavailable),
            }
        }
        Err(JoinError::Unavailable)
    }

    /// Waits (up to `timeout`) until every live hearing has closed its archive and
    /// stored what it queued; called at shutdown so no audit entry, state change or
    /// recorded segment is lost.
    pub async fn close_all(&self, timeout: Duration) {
        let handles: Vec<HearingHandle> = match self.live.lock() {
            Ok(live) => live.values().cloned().collect(),
            Err(_) => return,
        };
        let waits = handles.into_iter().map(|h| {
            let (tx, rx) = oneshot::channel();
            h.send(Command::Shutdown(tx));
            rx
        });
        let all = futures_util::future::join_all(waits);
        if tokio::time::timeout(timeout, all).await.is_err() {
            tracing::warn!("some hearings had not stored everything at shutdown");
        }
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
        actor::spawn(
            handle.clone(),
            rx,
            Arc::downgrade(self),
            self.idle,
            self.store.clone(),
            self.permissions.clone(),
            self.recording.clone(),
        );
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
