//! The hearing core: one live hearing's state and every decision about it, with no
//! I/O — the `Rtc` idea of str0m applied to the court.
//!
//! The core is a plain value. Its one entry point, [`HearingCore::handle`], takes the
//! current time and an [`Input`] (a participant joins or leaves, a court action, an
//! operator's change, a track, a leg, the recorder's news, the answer to a store call
//! the core asked for, a timer tick) and returns the [`Effect`]s of that input in the
//! order they must be carried out. It never awaits, never reads the clock (`now` is
//! an input), holds no channel, and knows tracks, sessions and legs only by id; the
//! tokio actor ([`super::actor`]) owns the channels, the SFU's tracks, the store
//! writer and the open archive, feeds inputs in, and carries effects out. That split
//! is what lets the unit tests (`tests/`) drive a whole hearing in a millisecond.
//!
//! `handle` returns the whole list rather than being drained through a
//! `poll_effect()`: one input's effects belong together (they are sorted by phase as
//! a list, and the actor may later want to split that list at the announcement
//! boundary, see [`effect`]), and a list is what a test wants to look at.
//!
//! # What the core decides
//!
//! Each change is checked against the permission table, applied to the state,
//! emitted for storage ([`Effect::Persist`]) and audit ([`Effect::Audit`]), told to
//! the participants, and followed by `reconcile` (`legs.rs`), which
//! makes the forwarding legs — and what the archive records — match
//! [`super::policy::may_forward`] / [`super::policy::may_record`]. One file per
//! concern, each an `impl HearingCore` block:
//!
//! * `join.rs` — joins (and when a link works), leaves, kicks, the welcome, media
//!   and connection state;
//! * `devices.rs` — a second device on a link in use (`auth.second_device`);
//! * `notices.rs` — join and leave notices, held while a participant flaps;
//! * `legs.rs` — published tracks, ready legs and `reconcile`;
//! * `lobby.rs` — admit, admit all, deny, call in, dismiss, remove;
//! * `floor.rs` — mute, mute all, request and accept unmute, lock, spotlight;
//! * `rooms.rs` — consultations and deliberation;
//! * `lifecycle.rs` — the state machine (open, start, suspend, resume, adjourn, close);
//! * `health.rs` — media health: the cells expected, samples and client reports,
//!   alerts to the bench (the verdicts are [`super::health`]'s);
//! * `archive.rs` — opening, pausing and closing the archive, the recorder's news;
//! * `admin.rs` — the operator's changes through the admin API;
//! * `undo.rs` — taking back a decision whose changes the store did not take.
//!
//! `HearingCore::court_action` below only routes a client's action to its file.
//!
//! # Steps the core cannot take itself
//!
//! Some decisions need an answer from the world first: an operator's change that
//! the store must carry out (the store assigns a participant's id, a link's new
//! version), or opening the archive when the hearing starts (whether it opened
//! decides what the status says). The core then ends its list with a
//! [`Phase::Continue`] effect ([`Effect::Call`], [`Effect::OpenArchive`]), keeps
//! what it still has to do in `pending`, and finishes when the actor hands back the
//! outcome ([`Input::Stored`], [`Input::ArchiveOpened`]). The actor does so at once,
//! before any other input, so the two steps behave exactly as one decision that
//! awaited the store in the middle.

mod admin;
mod archive;
mod devices;
pub mod effect;
mod floor;
mod health;
mod join;
mod legs;
mod lifecycle;
mod lobby;
pub mod members;
mod notices;
mod rooms;
#[cfg(test)]
mod tests;
mod undo;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use openhearing_signaling::{
    Action, Admission, ClientMessage, Connection, ErrorCode, HearingInfo, Role, ServerMessage,
};
use uuid::Uuid;

use super::policy::Source;
use super::recording::{self, RecorderNews};
use super::writer::WriteOp;
use super::{AdminOp, Refusal};
use crate::model::{rfc3339, AuditRecord, Hearing, Status};
use crate::permissions::Permissions;
use crate::sfu::MediaKind;

pub use devices::{JoinPolicy, SecondDevice};
pub use effect::{ArchiveOp, Effect, Phase, Reply, RequestId, StoreAnswer, StoreCall, StoreFailed};
pub use members::{Device, Member, Track};
pub use undo::Snapshot;

/// Longest reason (suspension, adjournment, denial, removal), in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// Whether and how this server records hearings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recording {
    Off,
    On {
        /// Render the hearing to one file after its archive closes.
        render_after_close: bool,
    },
}

/// What a core is configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub permissions: Arc<Permissions>,
    /// How long a hearing with nobody connected and no open archive lives on.
    pub idle: Duration,
    pub recording: Recording,
    /// Second devices, when links work, notice coalescing.
    pub joins: JoinPolicy,
    /// Media health thresholds (`[integrity]`).
    pub integrity: super::health::Thresholds,
}

/// Everything that can happen to a hearing.
#[derive(Debug)]
pub enum Input {
    /// The actor has loaded the hearing: a hearing that was in session when the
    /// server stopped records on.
    Start,
    Join {
        request: RequestId,
        participant: Uuid,
        /// The link version the join token carries.
        link_version: u32,
        session: u64,
        /// Where the session comes from (audited).
        device: Device,
    },
    Leave {
        participant: Uuid,
        session: u64,
        reason: String,
    },
    TrackPublished {
        participant: Uuid,
        session: u64,
        track: String,
        kind: MediaKind,
    },
    TrackEnded {
        participant: Uuid,
        session: u64,
        track: String,
    },
    MediaState {
        participant: Uuid,
        session: u64,
        audio: bool,
        video: bool,
    },
    Connection {
        participant: Uuid,
        session: u64,
        connection: Connection,
    },
    /// The session's offer asked to send media its role may not publish; it was
    /// refused before webrtc saw it (audited as `publish_refused`).
    PublishRefused { participant: Uuid, session: u64 },
    /// The subscriber's session has negotiated its leg of `track`.
    LegReady {
        subscriber: Uuid,
        session: u64,
        track: String,
    },
    /// A court action from a participant's client (admit, mute, set_state, ...).
    Act {
        participant: Uuid,
        session: u64,
        action: ClientMessage,
    },
    /// An operator's change through the admin API.
    Admin {
        request: RequestId,
        op: AdminOp,
        actor: String,
    },
    /// The answer to the last [`Effect::Call`].
    Stored(Result<StoreAnswer, StoreFailed>),
    /// The answer to [`Effect::OpenArchive`]: opened, or why not.
    ArchiveOpened(Result<(), String>),
    /// The recorder asks for a keyframe or raises an alert.
    Recorder(RecorderNews),
    /// The server stops: close the archive, then answer once everything is stored.
    Shutdown { request: RequestId },
    /// The SFU's counters of every published track (every
    /// [`HearingCore::health_interval`]).
    HealthSample(Vec<super::health::TrackCounters>),
    /// A participant's `media_report`, with the SFU's counters taken when it came.
    MediaReport {
        participant: Uuid,
        session: u64,
        remotes: Vec<openhearing_signaling::RemoteReception>,
        counters: Vec<super::health::TrackCounters>,
    },
    /// The wait the core asked for ([`HearingCore::next_wakeup`]: a held notice is
    /// due, or the idle timeout) passed with no other input.
    Tick,
}

/// What the core still has to do when the actor hands back an outcome.
#[derive(Debug, Clone)]
enum Pending {
    /// Waiting for [`Input::ArchiveOpened`].
    Archive {
        after: AfterArchive,
        /// The admin request to answer when done.
        reply: Option<RequestId>,
    },
    /// Waiting for [`Input::Stored`].
    Store {
        request: RequestId,
        actor: String,
        call: StoreCall,
    },
}

#[derive(Debug, Clone, Copy)]
enum AfterArchive {
    /// The hearing went in session: reconcile and announce the status.
    StateChange,
    /// The actor started on a hearing that was in session (or suspended).
    Restart,
}

/// The state of the open archive as the core sees it.
#[derive(Debug, Default, Clone)]
struct ArchiveState {
    /// Tracks the archive was told to record at some point (it may know them).
    tracks: HashSet<String>,
}

/// One live hearing (see the module docs).
#[derive(Debug)]
pub struct HearingCore {
    id: Uuid,
    perms: Arc<Permissions>,
    idle: Duration,
    recording: Recording,
    policy: JoinPolicy,
    /// Whether this hearing is recorded (chosen at creation).
    record_this: bool,
    hearing: HearingInfo,
    status: Status,
    members: BTreeMap<Uuid, Member>,
    /// (subscriber, track id) pairs the policy allows and sessions were told about.
    subscribed: HashSet<(Uuid, String)>,
    /// `Some` while the archive is open (in session or suspended).
    archive: Option<ArchiveState>,
    pending: Option<Pending>,
    /// Media health of every pair (`health.rs`).
    health: health::Health,
    /// The time of the input being handled.
    now: DateTime<Utc>,
    /// The effects of the input being handled, in decision order.
    effects: Vec<Effect>,
}

/// Who acts: the acting participant and their role, or `None` for the operator.
type Who = Option<(Uuid, Role)>;

fn participant_subject(id: Uuid) -> Option<String> {
    Some(format!("participant:{id}"))
}

fn unknown_participant(id: Uuid) -> Refusal {
    Refusal::new(
        ErrorCode::UnknownParticipant,
        format!("participant {id} is not part of this hearing"),
    )
}

/// A reason as given, trimmed; empty means none. Too long or with control
/// characters is refused.
fn trimmed_reason(reason: Option<String>) -> Result<Option<String>, Refusal> {
    let r = reason
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty());
    if let Some(r) = &r {
        let n = r.chars().count();
        if n > MAX_REASON_CHARS {
            return Err(Refusal::new(
                ErrorCode::MalformedMessage,
                format!(
                    "the reason is {n} characters long; at most {MAX_REASON_CHARS} are allowed"
                ),
            ));
        }
        if r.chars().any(char::is_control) {
            return Err(Refusal::new(
                ErrorCode::MalformedMessage,
                "the reason must not contain control characters",
            ));
        }
    }
    Ok(r)
}

impl HearingCore {
    /// A core for a hearing as loaded from the store, nobody connected yet. `now` is
    /// only a placeholder until the first input.
    pub fn new(hearing: Hearing, settings: Settings, now: DateTime<Utc>) -> HearingCore {
        HearingCore {
            id: hearing.id,
            perms: settings.permissions,
            idle: settings.idle,
            recording: settings.recording,
            policy: settings.joins,
            record_this: hearing.recording,
            hearing: HearingInfo {
                id: hearing.id,
                case_number: hearing.case_number,
                title: hearing.title,
                scheduled_at: hearing.scheduled_at.map(rfc3339),
            },
            status: hearing.status,
            members: hearing
                .participants
                .into_iter()
                .map(|p| (p.id, Member::new(p)))
                .collect(),
            subscribed: HashSet::new(),
            archive: None,
            pending: None,
            health: health::Health::new(settings.integrity),
            now,
            effects: Vec::new(),
        }
    }

    /// Handles one input; returns its effects in the order to carry them out.
    pub fn handle(&mut self, now: DateTime<Utc>, input: Input) -> Vec<Effect> {
        self.now = now;
        // Held leave notices go out on the first input after their window; a tick
        // that told some is not also an idle tick.
        let flushed = self.flush_notices();
        if !(flushed && matches!(input, Input::Tick)) {
            self.dispatch(input);
        }
        effect::ordered(std::mem::take(&mut self.effects))
    }

    /// The SFU saw this track end. Nothing happens now; every later decision skips
    /// the track until its publisher's session reports it gone.
    pub fn note_ended(&mut self, track: &str) {
        for m in self.members.values_mut() {
            for t in m.tracks.iter_mut().filter(|t| t.id == track) {
                t.ended = true;
            }
        }
    }

    /// How long the actor may wait for the next input before the hearing stops
    /// ([`Input::Tick`]); `None` while someone is connected or the archive is open
    /// (the record must be closed first).
    pub fn idle_timeout(&self) -> Option<Duration> {
        (!self.anyone_present()
            && self.archive.is_none()
            && self.pending.is_none()
            && self.next_notice().is_none())
        .then_some(self.idle)
    }

    /// Whether a participant publishes this track (the actor forgets tracks the core
    /// did not take).
    pub fn has_track(&self, track: &str) -> bool {
        self.members
            .values()
            .any(|m| m.tracks.iter().any(|t| t.id == track))
    }

    /// Whether this track is its publisher's screen share ([`Source::Screen`]): its
    /// legs are named so that receivers show it apart from the camera.
    pub fn is_screen(&self, track: &str) -> bool {
        self.members.values().any(|m| {
            m.tracks
                .iter()
                .any(|t| t.id == track && t.source == Source::Screen)
        })
    }

    /// Whose media comes first where a link is short (the SFU's allocators rank
    /// tracks this way): per live track, whether its publisher is the presiding judge
    /// (the bench) and whether they have the floor (the spotlight).
    pub fn track_ranks(&self) -> impl Iterator<Item = (&str, bool, bool)> + '_ {
        self.members.values().flat_map(move |m| {
            let bench = m.p.role == Role::PresidingJudge;
            let floor = self.status.spotlight == Some(m.p.id);
            m.tracks.iter().map(move |t| (t.id.as_str(), bench, floor))
        })
    }

    pub fn id(&self) -> Uuid {
        self.id
    }

    pub fn status(&self) -> &Status {
        &self.status
    }

    /// Participants by (role, state), for `/metrics`: `absent` when not connected,
    /// else `lobby`, `in_room` (admitted, in a private room) or `admitted`.
    pub fn participant_states(&self) -> BTreeMap<(&'static str, &'static str), usize> {
        let mut out = BTreeMap::new();
        for (id, m) in &self.members {
            let state = if m.session.is_none() {
                "absent"
            } else if m.p.admission != Admission::Admitted {
                m.p.admission.as_str()
            } else if self.room_of(*id).is_some() {
                "in_room"
            } else {
                "admitted"
            };
            *out.entry((m.p.role.as_str(), state)).or_insert(0) += 1;
        }
        out
    }

    pub fn member(&self, id: Uuid) -> Option<&Member> {
        self.members.get(&id)
    }

    /// Whether the archive is open.
    pub fn recording(&self) -> bool {
        self.archive.is_some()
    }

    fn dispatch(&mut self, input: Input) {
        match input {
            Input::Start => self.resume_recording_after_restart(),
            Input::Join {
                request,
                participant,
                link_version,
                session,
                device,
            } => {
                let reply = self.join(participant, link_version, session, device);
                self.emit(Effect::Reply {
                    request,
                    reply: Reply::Join(reply),
                });
            }
            Input::Leave {
                participant,
                session,
                reason,
            } => self.leave(participant, session, &reason),
            Input::TrackPublished {
                participant,
                session,
                track,
                kind,
            } => self.track_published(participant, session, track, kind),
            Input::TrackEnded {
                participant,
                session,
                track,
            } => self.track_ended(participant, session, &track),
            Input::MediaState {
                participant,
                session,
                audio,
                video,
            } => self.media_state(participant, session, audio, video),
            Input::Connection {
                participant,
                session,
                connection,
            } => self.connection(participant, session, connection),
            Input::PublishRefused {
                participant,
                session,
            } => self.publish_refused(participant, session),
            Input::LegReady {
                subscriber,
                session,
                track,
            } => self.leg_ready(subscriber, session, track),
            Input::Act {
                participant,
                session,
                action,
            } => self.act(participant, session, action),
            Input::Admin { request, op, actor } => self.admin(request, op, &actor),
            Input::Stored(answer) => self.stored(answer),
            Input::ArchiveOpened(result) => self.archive_opened(result),
            Input::Recorder(news) => self.recorder_news(news),
            Input::Shutdown { request } => {
                self.close_archive("server_stopped", false, true);
                self.emit(Effect::Reply {
                    request,
                    reply: Reply::Stored,
                });
            }
            Input::HealthSample(counters) => self.health_sample(counters),
            Input::MediaReport {
                participant,
                session,
                remotes,
                counters,
            } => self.media_report(participant, session, remotes, counters),
            Input::Tick => {
                if self.idle_timeout().is_some() {
                    self.emit(Effect::Stop);
                }
            }
        }
    }

    fn emit(&mut self, effect: Effect) {
        self.effects.push(effect);
    }

    /// Someone is connected (a device waiting for the court counts).
    fn anyone_present(&self) -> bool {
        self.members
            .values()
            .any(|m| m.session.is_some() || m.waiting.is_some())
    }

    /// The hearing's status as participants see it (with whether it is recorded).
    fn wire_status(&self) -> openhearing_signaling::HearingStatus {
        let mut w = self.status.to_wire();
        w.recording = self.archive.is_some();
        w
    }

    /// Records an audit event of the input being handled (stamped now), and
    /// journals it in the open archive.
    fn audit(
        &mut self,
        actor: &str,
        subject: Option<String>,
        action: &str,
        details: serde_json::Value,
    ) {
        if self.archive.is_some() {
            self.emit(Effect::Archive(ArchiveOp::Event {
                kind: recording::event_kind(action),
                actor: actor.to_owned(),
                subject: subject.clone(),
                details: details.clone(),
            }));
        }
        let details = details.to_string();
        self.emit(Effect::Audit(AuditRecord {
            at: self.now,
            actor: actor.to_owned(),
            subject,
            action: action.to_owned(),
            details,
        }));
    }

    /// Sends a message to a participant's current session, if any.
    fn tell(&mut self, pid: Uuid, message: ServerMessage) {
        if let Some(session) = self.members.get(&pid).and_then(|m| m.session) {
            self.emit(Effect::Send { session, message });
        }
    }

    fn broadcast(&mut self, message: &ServerMessage) {
        self.broadcast_except(None, message);
    }

    fn broadcast_except(&mut self, except: Option<Uuid>, message: &ServerMessage) {
        for m in self.members.values() {
            if let Some(session) = m.session.filter(|_| Some(m.p.id) != except) {
                self.effects.push(Effect::Send {
                    session,
                    message: message.clone(),
                });
            }
        }
    }

    /// Tells everyone (the participant included) a participant's current state.
    fn announce(&mut self, pid: Uuid) {
        if let Some(m) = self.members.get(&pid) {
            let participant = m.info();
            self.broadcast(&ServerMessage::ParticipantUpdated { participant });
        }
    }

    fn announce_status(&mut self) {
        let status = self.wire_status();
        self.broadcast(&ServerMessage::HearingStatus { status });
    }

    fn persist_participant(&mut self, pid: Uuid) {
        if let Some(m) = self.members.get(&pid) {
            let op = WriteOp::Participant {
                id: pid,
                admission: m.p.admission,
                muted: m.p.muted,
            };
            self.emit(Effect::Persist(op));
        }
    }

    /// `history`: `(actor, at)` when the lifecycle state changed.
    fn persist_status(&mut self, history: Option<(String, DateTime<Utc>)>) {
        self.emit(Effect::Persist(WriteOp::Status {
            status: self.status.clone(),
            history,
        }));
    }

    /// A court action from a participant's client: checked, applied, or refused with
    /// an error to that client (a permission denial is also audited).
    fn act(&mut self, pid: Uuid, session: u64, action: ClientMessage) {
        let Some(m) = self.members.get(&pid) else {
            return;
        };
        if !m.is_session(session) {
            return;
        }
        let role = m.p.role;
        let actor = format!("participant:{pid}");
        let kind = action.kind();
        if let Err(refusal) = self.court_action(&actor, Some((pid, role)), action) {
            if refusal.code == ErrorCode::PermissionDenied {
                self.audit(
                    &actor,
                    None,
                    "permission_denied",
                    serde_json::json!({ "request": kind, "role": role }),
                );
            }
            self.tell(pid, ServerMessage::error(refusal.code, refusal.message));
        }
    }

    /// Applies one court action. `who` is the acting participant and their role, or
    /// `None` for the operator. Nothing changes when it returns an error.
    fn court_action(
        &mut self,
        actor: &str,
        who: Who,
        action: ClientMessage,
    ) -> Result<(), Refusal> {
        use ClientMessage as M;
        match action {
            M::Admit { participant_id } => self.admit(actor, who, participant_id),
            M::AdmitAll => self.admit_all(actor, who),
            M::AdmitDevice { participant_id } => self.admit_device(actor, who, participant_id),
            M::RefuseDevice { participant_id } => self.refuse_device(actor, who, participant_id),
            M::Deny {
                participant_id: id,
                reason,
            } => self.deny(actor, who, lobby::Against { id, reason }),
            M::CallIn { participant_id } => self.call_in(actor, who, participant_id),
            M::Dismiss { participant_id } => self.dismiss(actor, who, participant_id),
            M::Remove {
                participant_id: id,
                reason,
            } => self.remove(actor, who, lobby::Against { id, reason }),
            M::Mute { participant_id } => self.mute(actor, who, participant_id),
            M::MuteAll => self.mute_all(actor, who),
            M::RequestUnmute { participant_id } => self.request_unmute(actor, who, participant_id),
            M::AcceptUnmute => self.accept_unmute(actor, who),
            M::Lock { locked } => self.lock(actor, who, locked),
            M::Spotlight { participant_id } => self.spotlight(actor, who, participant_id),
            M::SetState { change } => {
                self.require(who, Action::ControlLifecycle)?;
                self.set_state(actor, change)
            }
            M::RequestConsultation { participant_id } => {
                self.request_consultation(actor, who, participant_id)
            }
            M::AnswerConsultation {
                request_id,
                approve,
            } => self.answer_consultation(actor, who, request_id, approve),
            M::EndConsultation { room_id } => self.end_consultation(actor, who, room_id),
            M::StartDeliberation => self.start_deliberation(actor, who),
            M::EndDeliberation => self.end_deliberation(actor, who),
            other => Err(Refusal::new(
                ErrorCode::NotApplicable,
                format!("`{}` is not a court action", other.kind()),
            )),
        }
    }

    /// Refuses unless `who` may do `action` (the operator may do anything).
    fn require(&self, who: Who, action: Action) -> Result<(), Refusal> {
        match who {
            // The operator (admin API) is not a role in the hearing.
            None => Ok(()),
            Some((_, role)) if self.perms.allows(role, action) => Ok(()),
            Some((_, role)) => Err(Refusal::new(
                ErrorCode::PermissionDenied,
                format!(
                    "the role {role} may not {}",
                    action.as_str().replace('_', " ")
                ),
            )),
        }
    }

    fn target(&self, id: Uuid) -> Result<&Member, Refusal> {
        self.members.get(&id).ok_or_else(|| unknown_participant(id))
    }
}
