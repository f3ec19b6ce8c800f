//! The hearing actor: the single owner of one live hearing's state.
//!
//! It loads the hearing from the store when it starts, then alone changes it: joins
//! and leaves, the lobby, court mutes, lock, spotlight and the lifecycle. Each change
//! is checked against the permission table, applied, queued for storage and audit
//! ([`Writer`]), told to the participants, and followed by [`Actor::reconcile`], which
//! makes the SFU's forwarding legs match [`policy::may_forward`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use openhearing_signaling::{
    Action, Admission, ClientMessage, Connection, ConsultationRequest, ErrorCode, HearingInfo,
    HearingState, ParticipantInfo, Role, RoomInfo, RoomKind, ServerMessage, StateChange, Welcome,
    PROTOCOL_VERSION,
};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::policy::{self, Member as PolicyMember, Source};
use super::recording::{self, ActiveRecording, RecorderNews, RecordingSettings};
use super::writer::{WriteOp, Writer};
use super::{
    AdminOp, AdminOutcome, HearingHandle, Hearings, JoinRequest, SessionCommand, SessionLink,
};
use crate::model::{rfc3339, AuditRecord, Hearing, Participant, Status};
use crate::permissions::Permissions;
use crate::sfu::{Downstream, MediaKind, PublishedTrack};
use crate::store::Store;
use openhearing_recorder::GapCause;

/// Longest reason (suspension, adjournment, denial, removal), in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// Commands a hearing actor accepts (see [`HearingHandle`] for the senders).
#[derive(Debug)]
pub enum Command {
    Join {
        req: JoinRequest,
        reply: oneshot::Sender<Result<ServerMessage, JoinRefused>>,
    },
    Leave {
        participant: Uuid,
        session: u64,
        reason: String,
    },
    TrackPublished {
        participant: Uuid,
        session: u64,
        track: Arc<PublishedTrack>,
    },
    TrackEnded {
        participant: Uuid,
        session: u64,
        track_id: String,
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
    LegReady {
        subscriber: Uuid,
        session: u64,
        track_id: String,
        leg: Arc<Downstream>,
    },
    /// A court action from a participant's client (admit, mute, set_state, ...).
    Act {
        participant: Uuid,
        session: u64,
        action: ClientMessage,
    },
    /// Answers once everything the actor queued for storage is stored.
    Flush(oneshot::Sender<()>),
    /// The server stops: close the open archive (signed, reason `server_stopped`)
    /// and store everything queued, then answer.
    Shutdown(oneshot::Sender<()>),
    /// An operator's change through the admin API.
    Admin {
        op: AdminOp,
        actor: String,
        reply: oneshot::Sender<Result<AdminOutcome, Refusal>>,
    },
}

#[derive(Debug)]
pub enum JoinRefused {
    /// The hearing does not exist (or could not be loaded: `unavailable`).
    NotFound,
    Unavailable,
    Refused(Refusal),
    /// The actor is stopping; the request is handed back to retry on a new actor.
    Stopping(Box<JoinRequest>),
}

/// A refused request: the error code and a message for the person who asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

impl Refusal {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
        }
    }
}

struct Member {
    p: Participant,
    session: Option<SessionLink>,
    /// Published tracks in publication order, with what each carries.
    tracks: Vec<(Arc<PublishedTrack>, Source)>,
    audio: bool,
    video: bool,
    connection: Connection,
    lobby_since: Option<DateTime<Utc>>,
    /// The court asked this (muted) participant to unmute; only then may they.
    unmute_requested: bool,
}

impl Member {
    fn new(p: Participant) -> Member {
        Member {
            p,
            session: None,
            tracks: Vec::new(),
            audio: false,
            video: false,
            connection: Connection::Offline,
            lobby_since: None,
            unmute_requested: false,
        }
    }

    fn info(&self) -> ParticipantInfo {
        ParticipantInfo {
            id: self.p.id,
            name: self.p.name.clone(),
            role: self.p.role,
            site: self.p.site.clone(),
            site_kind: self.p.site_kind,
            present: self.session.is_some(),
            admission: self.p.admission,
            lobby_since: self.lobby_since.map(rfc3339),
            audio: self.audio,
            video: self.video,
            muted: self.p.muted,
            connection: self.connection,
            party: self.p.party.clone(),
        }
    }

    fn policy(&self, room: Option<Uuid>) -> PolicyMember {
        PolicyMember {
            id: self.p.id,
            role: self.p.role,
            present: self.session.is_some(),
            admission: self.p.admission,
            muted: self.p.muted,
            room,
        }
    }

    fn is_session(&self, session: u64) -> bool {
        self.session.as_ref().is_some_and(|s| s.session == session)
    }

    fn tell(&self, cmd: SessionCommand) {
        if let Some(s) = &self.session {
            let _ = s.tx.send(cmd);
        }
    }

    fn take_tracks(&mut self) {
        for (t, _) in std::mem::take(&mut self.tracks) {
            stop_forwarding(&t);
        }
    }
}

struct Actor {
    id: Uuid,
    store: Arc<dyn Store>,
    perms: Arc<Permissions>,
    writer: Writer,
    hearing: HearingInfo,
    status: Status,
    members: BTreeMap<Uuid, Member>,
    /// (subscriber, track id) pairs the policy allows and sessions were told about.
    subscribed: HashSet<(Uuid, String)>,
    /// Audit records of the command being handled. They are queued after the state
    /// changes of that command, so an audit entry is only ever stored after what it
    /// records.
    audit_pending: Vec<AuditRecord>,
    /// How the server records, if it does.
    recording: Option<Arc<RecordingSettings>>,
    /// Whether this hearing is recorded (chosen at creation).
    record_this: bool,
    /// The open archive while the hearing is in session or suspended.
    active: Option<ActiveRecording>,
    news_tx: mpsc::UnboundedSender<RecorderNews>,
}

pub(super) fn spawn(
    handle: HearingHandle,
    mut rx: mpsc::UnboundedReceiver<Command>,
    registry: Weak<Hearings>,
    idle: Duration,
    store: Arc<dyn Store>,
    perms: Arc<Permissions>,
    recording: Option<Arc<RecordingSettings>>,
) {
    tokio::spawn(async move {
        let loaded = store.get_hearing(handle.id).await;
        match loaded {
            Ok(Some(hearing)) => {
                let (news_tx, mut news_rx) = mpsc::unbounded_channel();
                let mut actor = Actor::new(hearing, store, perms, recording, news_tx);
                // A hearing that was in session when the server stopped records on.
                actor.resume_recording_after_restart();
                loop {
                    // An actor with nobody connected and no open archive stops after
                    // `idle`; an open archive keeps it (the record must be closed).
                    let wait = if actor.anyone_present() || actor.active.is_some() {
                        Duration::from_secs(365 * 24 * 3600)
                    } else {
                        idle
                    };
                    tokio::select! {
                        cmd = rx.recv() => {
                            let Some(cmd) = cmd else { break };
                            actor.handle(cmd).await;
                        }
                        Some(news) = news_rx.recv() => actor.recorder_news(news),
                        _ = tokio::time::sleep(wait) => break, // idle
                    }
                }
                if let Some(active) = actor.active.take() {
                    let _ = active.close("server_stopped", false).await;
                }
            }
            Ok(None) => refuse_all(&mut rx, JoinRefusal::NotFound),
            Err(e) => {
                tracing::error!(hearing = %handle.id, "cannot load hearing: {e}");
                refuse_all(&mut rx, JoinRefusal::Unavailable);
            }
        }
        if let Some(reg) = registry.upgrade() {
            reg.retire(&handle);
        }
        // Hand back joins that raced with the shutdown so they retry on a new actor.
        rx.close();
        while let Ok(cmd) = rx.try_recv() {
            match cmd {
                Command::Join { req, reply } => {
                    let _ = reply.send(Err(JoinRefused::Stopping(Box::new(req))));
                }
                Command::Admin { reply, .. } => {
                    let _ = reply.send(Err(Refusal::new(
                        ErrorCode::Internal,
                        "the hearing was restarting; try again",
                    )));
                }
                _ => {}
            }
        }
        tracing::debug!(hearing = %handle.id, "hearing actor stopped");
    });
}

#[derive(Clone, Copy)]
enum JoinRefusal {
    NotFound,
    Unavailable,
}

/// Answers everything queued for a hearing that could not be loaded.
fn refuse_all(rx: &mut mpsc::UnboundedReceiver<Command>, why: JoinRefusal) {
    rx.close();
    while let Ok(cmd) = rx.try_recv() {
        match cmd {
            Command::Join { reply, .. } => {
                let _ = reply.send(Err(match why {
                    JoinRefusal::NotFound => JoinRefused::NotFound,
                    JoinRefusal::Unavailable => JoinRefused::Unavailable,
                }));
            }
            Command::Admin { reply, .. } => {
                let _ = reply.send(Err(match why {
                    JoinRefusal::NotFound => {
                        Refusal::new(ErrorCode::HearingNotFound, "this hearing does not exist")
                    }
                    JoinRefusal::Unavailable => Refusal::new(
                        ErrorCode::Internal,
                        "the hearing could not be loaded; try again",
                    ),
                }));
            }
            _ => {}
        }
    }
}

fn participant_subject(id: Uuid) -> Option<String> {
    Some(format!("participant:{id}"))
}

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

impl Actor {
    fn new(
        hearing: Hearing,
        store: Arc<dyn Store>,
        perms: Arc<Permissions>,
        recording: Option<Arc<RecordingSettings>>,
        news_tx: mpsc::UnboundedSender<RecorderNews>,
    ) -> Actor {
        let writer = Writer::spawn(hearing.id, store.clone());
        Actor {
            id: hearing.id,
            store,
            perms,
            writer,
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
            audit_pending: Vec::new(),
            recording,
            record_this: hearing.recording,
            active: None,
            news_tx,
        }
    }

    /// The hearing's status as participants see it (with whether it is recorded).
    fn wire_status(&self) -> openhearing_signaling::HearingStatus {
        let mut w = self.status.to_wire();
        w.recording = self.active.is_some();
        w
    }

    fn resume_recording_after_restart(&mut self) {
        if matches!(
            self.status.state,
            HearingState::InSession | HearingState::Suspended
        ) {
            self.start_recording();
            if self.status.state == HearingState::Suspended {
                if let Some(a) = &self.active {
                    a.pause("suspended");
                }
            }
        }
    }

    /// Opens the archive when the hearing is recorded and none is open.
    fn start_recording(&mut self) {
        if self.active.is_some() || !self.record_this {
            return;
        }
        let Some(settings) = self.recording.clone() else {
            return;
        };
        let meta = recording::meta(
            self.id,
            &self.hearing.case_number,
            &self.hearing.title,
            self.hearing
                .scheduled_at
                .as_deref()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|d| d.with_timezone(&Utc)),
        );
        match ActiveRecording::open(&settings, meta, self.news_tx.clone()) {
            Ok(a) => {
                tracing::info!(hearing = %self.id, archive = %a.dir.display(), "recording");
                self.active = Some(a);
            }
            Err(e) => {
                // The hearing goes on; the court must know it is not being recorded.
                tracing::error!(hearing = %self.id, "cannot start recording: {e}");
                self.alert_bench(&format!("the hearing cannot be recorded: {e}"));
            }
        }
    }

    /// Tells everyone who controls the hearing (the presiding judge) about a
    /// recording problem, and audits it.
    fn alert_bench(&mut self, message: &str) {
        for m in self.members.values() {
            if self.perms.allows(m.p.role, Action::ControlLifecycle) {
                m.tell(SessionCommand::Send(ServerMessage::RecordingAlert {
                    message: message.to_owned(),
                }));
            }
        }
        self.audit(
            "system",
            None,
            "recording_alert",
            json!({ "message": message }),
        );
    }

    fn recorder_news(&mut self, news: RecorderNews) {
        match news {
            RecorderNews::Alert(alert) => {
                tracing::warn!(hearing = %self.id, "recorder: {}", alert.message);
                self.alert_bench(&alert.message);
                self.commit_audit();
            }
        }
    }

    /// Records an audit event of the command being handled (stamped now).
    fn audit(
        &mut self,
        actor: &str,
        subject: Option<String>,
        action: &str,
        details: serde_json::Value,
    ) {
        if let Some(a) = &self.active {
            let kind = recording::event_kind(action);
            a.event(kind, actor, subject.as_deref(), details.clone());
        }
        let details = details.to_string();
        self.audit_pending.push(AuditRecord {
            at: Utc::now(),
            actor: actor.to_owned(),
            subject,
            action: action.to_owned(),
            details,
        });
    }

    /// Queues the command's audit records behind its state changes.
    fn commit_audit(&mut self) {
        for record in std::mem::take(&mut self.audit_pending) {
            self.writer.send(WriteOp::Audit(record));
        }
    }

    fn anyone_present(&self) -> bool {
        self.members.values().any(|m| m.session.is_some())
    }

    async fn handle(&mut self, cmd: Command) {
        self.dispatch(cmd).await;
        self.commit_audit();
    }

    async fn dispatch(&mut self, cmd: Command) {
        match cmd {
            Command::Join { req, reply } => {
                let _ = reply.send(self.join(req));
            }
            Command::Leave {
                participant,
                session,
                reason,
            } => self.leave(participant, session, &reason),
            Command::TrackPublished {
                participant,
                session,
                track,
            } => {
                let Some(m) = self.members.get_mut(&participant) else {
                    return;
                };
                if !m.is_session(session) {
                    return;
                }
                let source = match track.kind {
                    MediaKind::Audio => Source::Microphone,
                    MediaKind::Video if m.tracks.iter().any(|(_, s)| *s == Source::Camera) => {
                        Source::Screen
                    }
                    MediaKind::Video => Source::Camera,
                };
                if !self.perms.allows(m.p.role, source.action()) {
                    // Accepted by the transport but forwarded to nobody (policy rule 5).
                    m.tell(SessionCommand::Send(ServerMessage::error(
                        ErrorCode::PermissionDenied,
                        format!(
                            "your role may not {}; that track reaches nobody",
                            source.action().as_str().replace('_', " ")
                        ),
                    )));
                }
                m.tracks.push((track, source));
                self.reconcile();
            }
            Command::TrackEnded {
                participant,
                session,
                track_id,
            } => {
                let Some(m) = self.members.get_mut(&participant) else {
                    return;
                };
                if !m.is_session(session) {
                    return;
                }
                if let Some(i) = m.tracks.iter().position(|(t, _)| t.id == track_id) {
                    let (t, _) = m.tracks.remove(i);
                    stop_forwarding(&t);
                }
                self.reconcile();
            }
            Command::MediaState {
                participant,
                session,
                audio,
                video,
            } => {
                let Some(m) = self.members.get_mut(&participant) else {
                    return;
                };
                if !m.is_session(session) || (m.audio == audio && m.video == video) {
                    return;
                }
                m.audio = audio;
                m.video = video;
                self.announce(participant);
            }
            Command::Connection {
                participant,
                session,
                connection,
            } => {
                let Some(m) = self.members.get_mut(&participant) else {
                    return;
                };
                if !m.is_session(session) || m.connection == connection {
                    return;
                }
                m.connection = connection;
                self.announce(participant);
            }
            Command::LegReady {
                subscriber,
                session,
                track_id,
                leg,
            } => {
                let current = self
                    .members
                    .get(&subscriber)
                    .is_some_and(|m| m.is_session(session));
                if !current || !self.subscribed.contains(&(subscriber, track_id.clone())) {
                    return; // no longer allowed; the session was told to unsubscribe
                }
                if let Some(track) = self.find_track(&track_id) {
                    track.add_downstream(leg);
                }
            }
            Command::Act {
                participant,
                session,
                action,
            } => self.act(participant, session, action),
            Command::Flush(reply) => {
                self.writer.flush().await;
                let _ = reply.send(());
            }
            Command::Shutdown(reply) => {
                if let Some(a) = self.active.take() {
                    let _ = a.close("server_stopped", false).await;
                }
                self.writer.flush().await;
                let _ = reply.send(());
            }
            Command::Admin { op, actor, reply } => {
                let result = self.admin(op, &actor).await;
                self.commit_audit();
                // Answer only once the change is stored, so the caller reads it back.
                self.writer.flush().await;
                let _ = reply.send(result);
            }
        }
    }

    fn find_track(&self, id: &str) -> Option<Arc<PublishedTrack>> {
        self.members
            .values()
            .flat_map(|m| m.tracks.iter())
            .find(|(t, _)| t.id == id)
            .map(|(t, _)| t.clone())
    }

    fn welcome(&self, pid: Uuid) -> Option<ServerMessage> {
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
            can_publish: self.perms.may_publish_any(me.p.role),
            permissions: self.perms.actions(me.p.role),
        })))
    }

    fn join(&mut self, req: JoinRequest) -> Result<ServerMessage, JoinRefused> {
        let pid = req.participant;
        let refuse = |code, msg: &str| Err(JoinRefused::Refused(Refusal::new(code, msg)));
        if self.status.state == HearingState::Closed {
            return refuse(
                ErrorCode::HearingClosed,
                "this hearing is closed; its links no longer work",
            );
        }
        let auto = self
            .members
            .get(&pid)
            .map(|m| self.perms.auto_admitted(m.p.role));
        let Some(member) = self.members.get_mut(&pid) else {
            return refuse(
                ErrorCode::ParticipantUnknown,
                "you are no longer a participant of this hearing",
            );
        };
        if member.p.admission == Admission::Removed {
            return refuse(
                ErrorCode::Removed,
                "the court removed you from this hearing",
            );
        }
        if req.link_version != member.p.link_version {
            return refuse(
                ErrorCode::LinkRevoked,
                "this join link was revoked; ask the court for a new one",
            );
        }
        // The same participant joining again (new tab, reconnect) replaces the old
        // session; its tracks go with it.
        if let Some(old) = member.session.take() {
            let _ = old.tx.send(SessionCommand::Kick {
                code: ErrorCode::Replaced,
                message: "you joined this hearing from another window or device".into(),
            });
            member.take_tracks();
        }
        member.session = Some(req.link);
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
                member.lobby_since = Some(Utc::now());
            }
        }
        let (role, site, admission) = (member.p.role, member.p.site.clone(), member.p.admission);
        if admitted_now {
            self.persist_participant(pid);
        }
        self.audit(
            "system",
            participant_subject(pid),
            "join",
            json!({ "role": role, "site": site, "admission": admission }),
        );
        self.reconcile();
        let you = self.members[&pid].info();
        self.broadcast_except(pid, || ServerMessage::ParticipantJoined {
            participant: you.clone(),
        });
        self.welcome(pid).ok_or(JoinRefused::NotFound)
    }

    fn leave(&mut self, pid: Uuid, session: u64, reason: &str) {
        let Some(m) = self.members.get_mut(&pid) else {
            return;
        };
        if !m.is_session(session) {
            return; // a replaced or already disconnected session's late goodbye
        }
        self.disconnect(pid, reason);
    }

    /// Marks a participant gone: tracks stop, legs go, everyone is told.
    fn disconnect(&mut self, pid: Uuid, reason: &str) {
        let Some(m) = self.members.get_mut(&pid) else {
            return;
        };
        m.session = None;
        m.connection = Connection::Offline;
        m.audio = false;
        m.video = false;
        m.take_tracks();
        self.audit(
            "system",
            participant_subject(pid),
            "leave",
            json!({ "reason": reason }),
        );
        self.reconcile();
        self.broadcast_except(pid, || ServerMessage::ParticipantLeft {
            participant_id: pid,
            reason: reason.to_owned(),
        });
    }

    /// Closes a participant's session with `code` and treats them as gone at once.
    fn kick(&mut self, pid: Uuid, code: ErrorCode, message: String, reason: &str) {
        let Some(m) = self.members.get(&pid) else {
            return;
        };
        if m.session.is_none() {
            return;
        }
        m.tell(SessionCommand::Kick { code, message });
        self.disconnect(pid, reason);
    }

    fn broadcast(&self, msg: impl Fn() -> ServerMessage) {
        for m in self.members.values() {
            m.tell(SessionCommand::Send(msg()));
        }
    }

    fn broadcast_except(&self, except: Uuid, msg: impl Fn() -> ServerMessage) {
        for m in self.members.values() {
            if m.p.id != except {
                m.tell(SessionCommand::Send(msg()));
            }
        }
    }

    /// Tells everyone (the participant included) a participant's current state.
    fn announce(&self, pid: Uuid) {
        if let Some(m) = self.members.get(&pid) {
            let info = m.info();
            self.broadcast(|| ServerMessage::ParticipantUpdated {
                participant: info.clone(),
            });
        }
    }

    fn announce_status(&self) {
        let status = self.wire_status();
        self.broadcast(|| ServerMessage::HearingStatus {
            status: status.clone(),
        });
    }

    fn persist_participant(&self, pid: Uuid) {
        if let Some(m) = self.members.get(&pid) {
            self.writer.send(WriteOp::Participant {
                id: pid,
                admission: m.p.admission,
                muted: m.p.muted,
            });
        }
    }

    fn persist_status(&self, history: Option<(String, DateTime<Utc>)>) {
        self.writer.send(WriteOp::Status {
            status: self.status.clone(),
            history,
        });
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
                    json!({ "request": kind, "role": role }),
                );
            }
            if let Some(m) = self.members.get(&pid) {
                m.tell(SessionCommand::Send(ServerMessage::error(
                    refusal.code,
                    refusal.message,
                )));
            }
        }
    }

    fn require(&self, who: Option<(Uuid, Role)>, action: Action) -> Result<(), Refusal> {
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
        self.members.get(&id).ok_or_else(|| {
            Refusal::new(
                ErrorCode::UnknownParticipant,
                format!("participant {id} is not part of this hearing"),
            )
        })
    }

    fn not_locked(&self) -> Result<(), Refusal> {
        if self.status.locked {
            return Err(Refusal::new(
                ErrorCode::HearingLocked,
                "the hearing is locked; unlock it to admit anyone",
            ));
        }
        Ok(())
    }

    /// Applies one court action. `who` is the acting participant and their role, or
    /// `None` for the operator. Nothing changes when it returns an error.
    fn court_action(
        &mut self,
        actor: &str,
        who: Option<(Uuid, Role)>,
        action: ClientMessage,
    ) -> Result<(), Refusal> {
        match action {
            ClientMessage::Admit { participant_id } => {
                self.require(who, Action::Admit)?;
                let t = self.target(participant_id)?;
                if t.p.admission != Admission::Lobby {
                    return Err(Refusal::new(
                        ErrorCode::NotApplicable,
                        format!("{} is not waiting in the lobby", t.p.name),
                    ));
                }
                if self.perms.waits_for_call(t.p.role) {
                    return Err(Refusal::new(
                        ErrorCode::NotApplicable,
                        format!("{} is a {}: call them in instead", t.p.name, t.p.role),
                    ));
                }
                self.not_locked()?;
                self.set_admission(actor, participant_id, Admission::Admitted, "admit");
                Ok(())
            }
            ClientMessage::AdmitAll => {
                self.require(who, Action::Admit)?;
                self.not_locked()?;
                let waiting: Vec<Uuid> = self
                    .members
                    .values()
                    .filter(|m| {
                        m.session.is_some()
                            && m.p.admission == Admission::Lobby
                            && !self.perms.waits_for_call(m.p.role)
                    })
                    .map(|m| m.p.id)
                    .collect();
                for id in waiting {
                    self.set_admission(actor, id, Admission::Admitted, "admit");
                }
                Ok(())
            }
            ClientMessage::Deny {
                participant_id,
                reason,
            } => {
                self.require(who, Action::Deny)?;
                let reason = trimmed_reason(reason)?;
                let t = self.target(participant_id)?;
                if t.p.admission != Admission::Lobby || t.session.is_none() {
                    return Err(Refusal::new(
                        ErrorCode::NotApplicable,
                        format!("{} is not waiting in the lobby", t.p.name),
                    ));
                }
                self.audit(
                    actor,
                    participant_subject(participant_id),
                    "deny",
                    json!({ "reason": reason }),
                );
                let message = match &reason {
                    Some(r) => format!("the court refused your admission: {r}"),
                    None => "the court refused your admission".to_owned(),
                };
                self.kick(
                    participant_id,
                    ErrorCode::AdmissionDenied,
                    message,
                    "denied",
                );
                Ok(())
            }
            ClientMessage::CallIn { participant_id } => {
                self.require(who, Action::CallWitness)?;
                let t = self.target(participant_id)?;
                if !self.perms.waits_for_call(t.p.role) {
                    return Err(Refusal::new(
                        ErrorCode::NotApplicable,
                        format!(
                            "{} is a {}, not someone who is called in",
                            t.p.name, t.p.role
                        ),
                    ));
                }
                if t.p.admission != Admission::Lobby {
                    return Err(Refusal::new(
                        ErrorCode::NotApplicable,
                        format!("{} is not waiting in the lobby", t.p.name),
                    ));
                }
                self.not_locked()?;
                self.set_admission(actor, participant_id, Admission::Admitted, "call_in");
                Ok(())
            }
            ClientMessage::Dismiss { participant_id } => {
                self.require(who, Action::CallWitness)?;
                let t = self.target(participant_id)?;
                if !self.perms.waits_for_call(t.p.role) || t.p.admission != Admission::Admitted {
                    return Err(Refusal::new(
                        ErrorCode::NotApplicable,
                        format!("{} is not a called-in witness or expert", t.p.name),
                    ));
                }
                if self.status.spotlight == Some(participant_id) {
                    self.status.spotlight = None;
                    self.persist_status(None);
                    self.announce_status();
                }
                self.set_admission(actor, participant_id, Admission::Lobby, "dismiss");
                Ok(())
            }
            ClientMessage::Mute { participant_id } => {
                self.require(who, Action::MuteOthers)?;
                let t = self.target(participant_id)?;
                if t.p.muted {
                    return Err(Refusal::new(
                        ErrorCode::NotApplicable,
                        format!("{} is already muted", t.p.name),
                    ));
                }
                self.set_muted(actor, participant_id, true, "mute");
                Ok(())
            }
            ClientMessage::MuteAll => {
                self.require(who, Action::MuteOthers)?;
                let targets: Vec<Uuid> = self
                    .members
                    .values()
                    .filter(|m| {
                        !m.p.muted
                            && !self.perms.is_bench(m.p.role)
                            && m.p.admission != Admission::Removed
                            && Some(m.p.id) != who.map(|w| w.0)
                    })
                    .map(|m| m.p.id)
                    .collect();
                self.audit(actor, None, "mute_all", json!({ "muted": targets.len() }));
                for id in targets {
                    self.set_muted(actor, id, true, "mute");
                }
                Ok(())
            }
            ClientMessage::RequestUnmute { participant_id } => {
                self.require(who, Action::MuteOthers)?;
                let t = self.target(participant_id)?;
                if !t.p.muted {
                    return Err(Refusal::new(
                        ErrorCode::NotApplicable,
                        format!("{} is not muted", t.p.name),
                    ));
                }
                let by = who.map(|w| w.0).unwrap_or(Uuid::nil());
                t.tell(SessionCommand::Send(ServerMessage::UnmuteRequested { by }));
                if let Some(m) = self.members.get_mut(&participant_id) {
                    m.unmute_requested = true;
                }
                self.audit(
                    actor,
                    participant_subject(participant_id),
                    "unmute_requested",
                    json!({}),
                );
                Ok(())
            }
            ClientMessage::AcceptUnmute => {
                let Some((me, _)) = who else {
                    return Err(Refusal::new(
                        ErrorCode::NotApplicable,
                        "only the muted participant can accept",
                    ));
                };
                let t = self.target(me)?;
                if !t.p.muted || !t.unmute_requested {
                    return Err(Refusal::new(
                        ErrorCode::NotApplicable,
                        "the court has not asked you to unmute",
                    ));
                }
                self.set_muted(actor, me, false, "unmute_accepted");
                Ok(())
            }
            ClientMessage::Remove {
                participant_id,
                reason,
            } => {
                self.require(who, Action::Remove)?;
                let reason = trimmed_reason(reason)?;
                let t = self.target(participant_id)?;
                if t.p.admission == Admission::Removed {
                    return Err(Refusal::new(
                        ErrorCode::NotApplicable,
                        format!("{} was already removed", t.p.name),
                    ));
                }
                if who.map(|w| w.0) == Some(participant_id) {
                    return Err(Refusal::new(
                        ErrorCode::NotApplicable,
                        "you cannot remove yourself; leave the hearing instead",
                    ));
                }
                if self.status.spotlight == Some(participant_id) {
                    self.status.spotlight = None;
                    self.persist_status(None);
                    self.announce_status();
                }
                self.audit(
                    actor,
                    participant_subject(participant_id),
                    "remove",
                    json!({ "reason": reason }),
                );
                self.leave_rooms(actor, participant_id);
                self.status
                    .consultation_requests
                    .retain(|r| r.from != participant_id && r.with != participant_id);
                if let Some(m) = self.members.get_mut(&participant_id) {
                    m.p.admission = Admission::Removed;
                    m.lobby_since = None;
                }
                self.persist_participant(participant_id);
                let message = match &reason {
                    Some(r) => format!("the court removed you from the hearing: {r}"),
                    None => "the court removed you from the hearing".to_owned(),
                };
                self.kick(participant_id, ErrorCode::Removed, message, "removed");
                self.announce(participant_id);
                Ok(())
            }
            ClientMessage::Lock { locked } => {
                self.require(who, Action::Lock)?;
                if self.status.locked == locked {
                    return Ok(());
                }
                self.status.locked = locked;
                self.audit(
                    actor,
                    None,
                    if locked { "lock" } else { "unlock" },
                    json!({}),
                );
                self.persist_status(None);
                self.announce_status();
                Ok(())
            }
            ClientMessage::Spotlight { participant_id } => {
                self.require(who, Action::Spotlight)?;
                if let Some(id) = participant_id {
                    let t = self.target(id)?;
                    if t.p.admission != Admission::Admitted {
                        return Err(Refusal::new(
                            ErrorCode::NotApplicable,
                            format!("{} is not in the hearing room", t.p.name),
                        ));
                    }
                }
                if self.status.spotlight == participant_id {
                    return Ok(());
                }
                self.status.spotlight = participant_id;
                self.audit(
                    actor,
                    participant_id.and_then(participant_subject),
                    "spotlight",
                    json!({ "participant": participant_id }),
                );
                self.persist_status(None);
                self.announce_status();
                Ok(())
            }
            ClientMessage::SetState { change } => {
                self.require(who, Action::ControlLifecycle)?;
                self.set_state(actor, change)
            }
            ClientMessage::RequestConsultation { participant_id } => {
                self.require(who, Action::RequestConsultation)?;
                let Some((me, _)) = who else {
                    return Err(Refusal::new(
                        ErrorCode::NotApplicable,
                        "only a defendant or their counsel can ask for a consultation",
                    ));
                };
                self.check_consultation_pair(me, participant_id)?;
                if self.status.consultation_requests.iter().any(|r| {
                    (r.from == me && r.with == participant_id)
                        || (r.from == participant_id && r.with == me)
                }) {
                    return Err(Refusal::new(
                        ErrorCode::NotApplicable,
                        "this consultation was already requested; the presiding judge will answer",
                    ));
                }
                let request = ConsultationRequest {
                    id: Uuid::new_v4(),
                    from: me,
                    with: participant_id,
                    since: rfc3339(Utc::now()),
                };
                self.audit(
                    actor,
                    participant_subject(participant_id),
                    "consultation_requested",
                    json!({ "request": request.id }),
                );
                if self.perms.workflow().auto_approve_consultation {
                    self.open_consultation(actor, request.id, [me, participant_id]);
                } else {
                    self.status.consultation_requests.push(request);
                    self.persist_status(None);
                    self.announce_status();
                }
                Ok(())
            }
            ClientMessage::AnswerConsultation {
                request_id,
                approve,
            } => {
                self.require(who, Action::ApproveConsultation)?;
                let Some(i) = self
                    .status
                    .consultation_requests
                    .iter()
                    .position(|r| r.id == request_id)
                else {
                    return Err(Refusal::new(
                        ErrorCode::NotApplicable,
                        "there is no such consultation request (answered or withdrawn)",
                    ));
                };
                let request = self.status.consultation_requests[i].clone();
                if approve {
                    // The pair must still qualify (admitted, not in another room).
                    self.check_consultation_pair(request.from, request.with)?;
                }
                self.status.consultation_requests.remove(i);
                for id in [request.from, request.with] {
                    if let Some(m) = self.members.get(&id) {
                        m.tell(SessionCommand::Send(ServerMessage::ConsultationAnswered {
                            request_id,
                            approved: approve,
                        }));
                    }
                }
                if approve {
                    self.open_consultation(actor, request_id, [request.from, request.with]);
                } else {
                    self.audit(
                        actor,
                        participant_subject(request.from),
                        "consultation_refused",
                        json!({ "request": request_id }),
                    );
                    self.persist_status(None);
                    self.announce_status();
                }
                Ok(())
            }
            ClientMessage::EndConsultation { room_id } => {
                let Some(room) = self
                    .status
                    .rooms
                    .iter()
                    .find(|r| r.id == room_id && r.kind == RoomKind::Consultation)
                    .cloned()
                else {
                    return Err(Refusal::new(
                        ErrorCode::NotApplicable,
                        "there is no such consultation (it has ended)",
                    ));
                };
                let me = who.map(|w| w.0);
                let reason = if me.is_some_and(|m| room.members.contains(&m)) {
                    "ended"
                } else {
                    self.require(who, Action::ApproveConsultation)?;
                    "recalled"
                };
                self.close_room(actor, room_id, reason, me);
                Ok(())
            }
            ClientMessage::StartDeliberation => {
                self.require(who, Action::Deliberate)?;
                if self
                    .status
                    .rooms
                    .iter()
                    .any(|r| r.kind == RoomKind::Deliberation)
                {
                    return Err(Refusal::new(
                        ErrorCode::NotApplicable,
                        "the panel is already deliberating",
                    ));
                }
                let members: Vec<Uuid> = self
                    .members
                    .values()
                    .filter(|m| {
                        self.perms.deliberates(m.p.role) && m.p.admission == Admission::Admitted
                    })
                    .map(|m| m.p.id)
                    .collect();
                if members.is_empty() {
                    return Err(Refusal::new(
                        ErrorCode::NotApplicable,
                        "nobody of the panel is in the hearing room",
                    ));
                }
                let room = RoomInfo {
                    id: Uuid::new_v4(),
                    kind: RoomKind::Deliberation,
                    members,
                    since: rfc3339(Utc::now()),
                };
                self.enter_room(actor, room);
                Ok(())
            }
            ClientMessage::EndDeliberation => {
                self.require(who, Action::Deliberate)?;
                let Some(room) = self
                    .status
                    .rooms
                    .iter()
                    .find(|r| r.kind == RoomKind::Deliberation)
                    .map(|r| r.id)
                else {
                    return Err(Refusal::new(
                        ErrorCode::NotApplicable,
                        "the panel is not deliberating",
                    ));
                };
                self.close_room(actor, room, "ended", who.map(|w| w.0));
                Ok(())
            }
            other => Err(Refusal::new(
                ErrorCode::NotApplicable,
                format!("`{}` is not a court action", other.kind()),
            )),
        }
    }

    /// The private room `pid` is in, if any.
    fn room_of(&self, pid: Uuid) -> Option<Uuid> {
        self.status
            .rooms
            .iter()
            .find(|r| r.members.contains(&pid))
            .map(|r| r.id)
    }

    /// Whether `a` and `b` may consult in private: a defendant and defence counsel of
    /// the same party, both in the hearing room (admitted, in no private room).
    fn check_consultation_pair(&self, a: Uuid, b: Uuid) -> Result<(), Refusal> {
        let pa = &self.target(a)?.p;
        let pb = &self.target(b)?.p;
        let pair = matches!(
            (pa.role, pb.role),
            (Role::Defendant, Role::DefenceCounsel) | (Role::DefenceCounsel, Role::Defendant)
        );
        let same_party = pa.party.is_some() && pa.party == pb.party;
        if !pair || !same_party {
            return Err(Refusal::new(
                ErrorCode::NotApplicable,
                format!(
                    "a private consultation is only between a defendant and their own defence counsel; {} and {} are not",
                    pa.name, pb.name
                ),
            ));
        }
        for p in [pa, pb] {
            if p.admission != Admission::Admitted {
                return Err(Refusal::new(
                    ErrorCode::NotApplicable,
                    format!("{} is not in the hearing room", p.name),
                ));
            }
            if self.room_of(p.id).is_some() {
                return Err(Refusal::new(
                    ErrorCode::NotApplicable,
                    format!("{} is already in a private room", p.name),
                ));
            }
        }
        Ok(())
    }

    fn open_consultation(&mut self, actor: &str, request: Uuid, members: [Uuid; 2]) {
        let room = RoomInfo {
            id: Uuid::new_v4(),
            kind: RoomKind::Consultation,
            members: members.to_vec(),
            since: rfc3339(Utc::now()),
        };
        self.audit(
            actor,
            None,
            "consultation_approved",
            json!({ "request": request, "room": room.id }),
        );
        self.enter_room(actor, room);
    }

    /// Opens a private room: forwarding across its wall stops before anyone is told.
    fn enter_room(&mut self, actor: &str, room: RoomInfo) {
        for m in &room.members {
            // Who entered and when — never what was said.
            self.audit(
                actor,
                participant_subject(*m),
                "room_entered",
                json!({ "room": room.id, "kind": room.kind }),
            );
            if self.status.spotlight == Some(*m) {
                self.status.spotlight = None;
            }
        }
        self.status.rooms.push(room);
        self.persist_status(None);
        self.reconcile();
        self.announce_status();
    }

    fn close_room(&mut self, actor: &str, room_id: Uuid, reason: &str, by: Option<Uuid>) {
        let Some(i) = self.status.rooms.iter().position(|r| r.id == room_id) else {
            return;
        };
        let room = self.status.rooms.remove(i);
        for m in &room.members {
            self.audit(
                actor,
                participant_subject(*m),
                "room_left",
                json!({ "room": room.id, "kind": room.kind, "reason": reason }),
            );
            if let Some(member) = self.members.get(m) {
                member.tell(SessionCommand::Send(ServerMessage::RoomEnded {
                    room_id,
                    kind: room.kind,
                    reason: reason.to_owned(),
                    by,
                }));
            }
        }
        self.persist_status(None);
        self.reconcile();
        self.announce_status();
    }

    /// Takes `pid` out of any private room (they left the hearing room); a
    /// consultation left with one member ends.
    fn leave_rooms(&mut self, actor: &str, pid: Uuid) {
        let Some(room_id) = self.room_of(pid) else {
            return;
        };
        let Some(room) = self.status.rooms.iter_mut().find(|r| r.id == room_id) else {
            return;
        };
        room.members.retain(|m| *m != pid);
        let (kind, left) = (room.kind, room.members.len());
        self.audit(
            actor,
            participant_subject(pid),
            "room_left",
            json!({ "room": room_id, "kind": kind, "reason": "left_hearing_room" }),
        );
        if (kind == RoomKind::Consultation && left < 2) || left == 0 {
            self.close_room(actor, room_id, "dissolved", None);
        } else {
            self.persist_status(None);
            self.announce_status();
        }
    }

    fn set_admission(&mut self, actor: &str, pid: Uuid, to: Admission, action: &str) {
        if to != Admission::Admitted {
            self.leave_rooms(actor, pid);
        }
        let Some(m) = self.members.get_mut(&pid) else {
            return;
        };
        m.p.admission = to;
        m.lobby_since = (to == Admission::Lobby && m.session.is_some()).then(Utc::now);
        self.audit(actor, participant_subject(pid), action, json!({}));
        self.persist_participant(pid);
        self.reconcile();
        self.announce(pid);
    }

    fn set_muted(&mut self, actor: &str, pid: Uuid, muted: bool, action: &str) {
        let Some(m) = self.members.get_mut(&pid) else {
            return;
        };
        m.p.muted = muted;
        m.unmute_requested = false;
        self.audit(actor, participant_subject(pid), action, json!({}));
        self.persist_participant(pid);
        // Forwarding of their audio stops here, before anyone is told.
        self.reconcile();
        self.announce(pid);
    }

    fn set_state(&mut self, actor: &str, change: StateChange) -> Result<(), Refusal> {
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
                    .map(|d| crate::model::micros(d.with_timezone(&Utc)))
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
        let now = crate::model::micros(Utc::now());
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
                if let Some(a) = &self.active {
                    a.resume();
                } else {
                    self.start_recording();
                }
            }
            HearingState::Suspended => {
                if let Some(a) = &self.active {
                    a.pause("suspended");
                }
            }
            HearingState::Closed | HearingState::Adjourned => {
                if let Some(a) = self.active.take() {
                    let render = self
                        .recording
                        .as_ref()
                        .is_some_and(|r| r.render_after_close);
                    // Closing finishes off the actor; the hearing goes on.
                    drop(a.close(to.as_str(), render));
                }
            }
            _ => {}
        }
        // Media stops or starts before anyone is told, so nothing leaks in between.
        self.reconcile();
        self.announce_status();
        if to == HearingState::Closed {
            let present: Vec<Uuid> = self
                .members
                .values()
                .filter(|m| m.session.is_some())
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
        Ok(())
    }

    async fn admin(&mut self, op: AdminOp, actor: &str) -> Result<AdminOutcome, Refusal> {
        let internal = |e: crate::store::StoreError| {
            tracing::error!(hearing = %self.id, "store: {e}");
            Refusal::new(
                ErrorCode::Internal,
                "the change could not be stored; try again",
            )
        };
        match op {
            AdminOp::SetState(change) => {
                self.set_state(actor, change)?;
                Ok(AdminOutcome::Done)
            }
            AdminOp::Remove {
                participant,
                reason,
            } => {
                self.court_action(
                    actor,
                    None,
                    ClientMessage::Remove {
                        participant_id: participant,
                        reason,
                    },
                )?;
                Ok(AdminOutcome::Done)
            }
            AdminOp::Update(update) => {
                let Some(h) = self
                    .store
                    .update_hearing(self.id, update.clone())
                    .await
                    .map_err(internal)?
                else {
                    return Err(Refusal::new(
                        ErrorCode::HearingNotFound,
                        "this hearing does not exist",
                    ));
                };
                self.hearing.case_number = h.case_number;
                self.hearing.title = h.title;
                self.hearing.scheduled_at = h.scheduled_at.map(rfc3339);
                self.audit(
                    actor,
                    None,
                    "hearing_updated",
                    serde_json::to_value(&update).unwrap_or_default(),
                );
                Ok(AdminOutcome::Done)
            }
            AdminOp::AddParticipant(new) => {
                if self.status.state == HearingState::Closed {
                    return Err(Refusal::new(
                        ErrorCode::HearingClosed,
                        "the hearing is closed; nobody can be added",
                    ));
                }
                let admission = if self.perms.auto_admitted(new.role) {
                    Admission::Admitted
                } else {
                    Admission::Lobby
                };
                let p = self
                    .store
                    .add_participant(self.id, new, admission)
                    .await
                    .map_err(internal)?;
                self.audit(
                    actor,
                    participant_subject(p.id),
                    "participant_added",
                    json!({ "name": p.name, "role": p.role, "site": p.site }),
                );
                let id = p.id;
                self.members.insert(id, Member::new(p.clone()));
                self.announce(id);
                Ok(AdminOutcome::Participant(p))
            }
            AdminOp::RevokeLink(pid) => {
                self.target(pid)?;
                let Some(version) = self
                    .store
                    .revoke_link(self.id, pid)
                    .await
                    .map_err(internal)?
                else {
                    return Err(Refusal::new(
                        ErrorCode::UnknownParticipant,
                        format!("participant {pid} is not part of this hearing"),
                    ));
                };
                if let Some(m) = self.members.get_mut(&pid) {
                    m.p.link_version = version;
                }
                self.audit(
                    actor,
                    participant_subject(pid),
                    "link_revoked",
                    json!({ "link_version": version }),
                );
                self.kick(
                    pid,
                    ErrorCode::LinkRevoked,
                    "your join link was revoked; ask the court for a new one".into(),
                    "link_revoked",
                );
                Ok(AdminOutcome::LinkVersion(version))
            }
            AdminOp::UpsertSite(site) => {
                self.store
                    .upsert_site(self.id, site.clone())
                    .await
                    .map_err(internal)?;
                self.audit(
                    actor,
                    None,
                    "site_updated",
                    json!({ "name": site.name, "kind": site.kind }),
                );
                let changed: Vec<Uuid> = self
                    .members
                    .values_mut()
                    .filter(|m| m.p.site == site.name && m.p.site_kind != site.kind)
                    .map(|m| {
                        m.p.site_kind = site.kind;
                        m.p.id
                    })
                    .collect();
                for id in changed {
                    self.announce(id);
                }
                Ok(AdminOutcome::Done)
            }
        }
    }

    /// Makes the forwarding legs match the policy. Removals take effect in the SFU
    /// at once (before the subscriber's renegotiation); additions are requested from
    /// the subscriber's session and take effect when it reports the leg ready.
    fn reconcile(&mut self) {
        let ctx = policy::Context {
            state: self.status.state,
            permissions: &self.perms,
        };
        let policy: HashMap<Uuid, PolicyMember> = self
            .members
            .iter()
            .map(|(id, m)| (*id, m.policy(self.room_of(*id))))
            .collect();
        let mut desired: HashSet<(Uuid, String)> = HashSet::new();
        let mut tracks: HashMap<String, Arc<PublishedTrack>> = HashMap::new();
        for publisher in self.members.values() {
            for (track, source) in &publisher.tracks {
                if track.is_ended() {
                    continue;
                }
                tracks.insert(track.id.clone(), track.clone());
                for sub in self.members.values() {
                    if policy::may_forward(
                        ctx,
                        &policy[&publisher.p.id],
                        &policy[&sub.p.id],
                        *source,
                    ) {
                        desired.insert((sub.p.id, track.id.clone()));
                    }
                }
            }
        }
        let removed: Vec<(Uuid, String)> = self.subscribed.difference(&desired).cloned().collect();
        let added: Vec<(Uuid, String)> = desired.difference(&self.subscribed).cloned().collect();
        for (sub, track_id) in removed {
            if let Some(track) = tracks.get(&track_id) {
                track.remove_downstream(sub);
            }
            if let Some(m) = self.members.get(&sub) {
                m.tell(SessionCommand::Unsubscribe(track_id));
            }
        }
        for (sub, track_id) in added {
            if let (Some(m), Some(track)) = (self.members.get(&sub), tracks.get(&track_id)) {
                m.tell(SessionCommand::Subscribe(track.clone()));
            }
        }
        self.subscribed = desired;

        // The recorder: the same policy decides; the time a track is held back is
        // marked in the record with its cause.
        if let Some(active) = self.active.as_mut() {
            for gone in active.track_ids() {
                if !tracks.contains_key(&gone) {
                    active.track_ended(&gone, "ended");
                }
            }
            for publisher in self.members.values() {
                let pm = &policy[&publisher.p.id];
                for (track, source) in &publisher.tracks {
                    if track.is_ended() {
                        continue;
                    }
                    let record = policy::may_record(ctx, pm, *source);
                    let cause = if pm.room.is_some() {
                        Some(GapCause::PrivateRoom)
                    } else if pm.admission == Admission::Lobby {
                        Some(GapCause::Lobby)
                    } else if pm.muted && *source == Source::Microphone {
                        Some(GapCause::Muted)
                    } else {
                        None
                    };
                    active.set(track, &publisher.p, record, cause);
                }
            }
        }
    }
}

/// Cuts every leg of a track that is leaving the hearing, at once.
fn stop_forwarding(track: &PublishedTrack) {
    for sub in track.subscribers() {
        track.remove_downstream(sub);
    }
}
