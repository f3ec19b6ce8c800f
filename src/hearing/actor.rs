//! The hearing actor: the single owner of one live hearing's state.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Weak};
use std::time::Duration;

use openhearing_signaling::{
    ErrorCode, HearingInfo, ParticipantInfo, ServerMessage, PROTOCOL_VERSION,
};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::policy::{self, Member as PolicyMember};
use super::{HearingHandle, Hearings, JoinRequest, SessionCommand, SessionLink};
use crate::sfu::{Downstream, PublishedTrack};

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
    LegReady {
        subscriber: Uuid,
        session: u64,
        track_id: String,
        leg: Arc<Downstream>,
    },
}

#[derive(Debug)]
pub enum JoinRefused {
    NotAParticipant(Uuid),
    /// The actor is stopping; the request is handed back to retry on a new actor.
    Stopping(Box<JoinRequest>),
}

struct Member {
    info: ParticipantInfo,
    session: Option<SessionLink>,
    tracks: BTreeMap<String, Arc<PublishedTrack>>,
}

impl Member {
    fn policy(&self) -> PolicyMember {
        PolicyMember {
            id: self.info.id,
            role: self.info.role,
            present: self.session.is_some(),
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
}

struct Actor {
    hearing: HearingInfo,
    members: BTreeMap<Uuid, Member>,
    /// (subscriber, track id) pairs the policy allows and sessions were told about.
    subscribed: HashSet<(Uuid, String)>,
}

pub(super) fn spawn(
    handle: HearingHandle,
    mut rx: mpsc::UnboundedReceiver<Command>,
    registry: Weak<Hearings>,
    idle: Duration,
) {
    tokio::spawn(async move {
        let mut actor = Actor {
            hearing: HearingInfo {
                id: handle.id,
                case_number: String::new(),
                title: String::new(),
            },
            members: BTreeMap::new(),
            subscribed: HashSet::new(),
        };
        loop {
            let cmd = if actor.anyone_present() {
                rx.recv().await
            } else {
                match tokio::time::timeout(idle, rx.recv()).await {
                    Ok(c) => c,
                    Err(_) => break, // idle: nobody connected for `idle`
                }
            };
            let Some(cmd) = cmd else { break };
            actor.handle(cmd);
        }
        if let Some(reg) = registry.upgrade() {
            reg.retire(&handle);
        }
        // Hand back joins that raced with the shutdown so they retry on a new actor.
        rx.close();
        while let Ok(cmd) = rx.try_recv() {
            if let Command::Join { req, reply } = cmd {
                let _ = reply.send(Err(JoinRefused::Stopping(Box::new(req))));
            }
        }
        tracing::debug!(hearing = %handle.id, "hearing actor stopped");
    });
}

impl Actor {
    fn anyone_present(&self) -> bool {
        self.members.values().any(|m| m.session.is_some())
    }

    fn handle(&mut self, cmd: Command) {
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
                m.tracks.insert(track.id.clone(), track);
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
                if let Some(t) = m.tracks.remove(&track_id) {
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
                if !m.is_session(session) || (m.info.audio == audio && m.info.video == video) {
                    return;
                }
                m.info.audio = audio;
                m.info.video = video;
                let info = m.info.clone();
                self.broadcast_except(participant, || ServerMessage::ParticipantUpdated {
                    participant: info.clone(),
                });
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
        }
    }

    fn find_track(&self, id: &str) -> Option<Arc<PublishedTrack>> {
        self.members
            .values()
            .find_map(|m| m.tracks.get(id))
            .cloned()
    }

    fn join(&mut self, req: JoinRequest) -> Result<ServerMessage, JoinRefused> {
        self.hearing = req.hearing;
        // Merge the roster: new participants appear, known ones keep their live state.
        for p in req.roster {
            let entry = self.members.entry(p.id).or_insert_with(|| Member {
                info: p.clone(),
                session: None,
                tracks: BTreeMap::new(),
            });
            entry.info.name = p.name;
            entry.info.role = p.role;
            entry.info.site = p.site;
        }
        let pid = req.participant;
        let Some(member) = self.members.get_mut(&pid) else {
            return Err(JoinRefused::NotAParticipant(pid));
        };
        // The same participant joining again (new tab, reconnect) replaces the old
        // session; its tracks go with it.
        if let Some(old) = member.session.take() {
            let _ = old.tx.send(SessionCommand::Kick {
                code: ErrorCode::Replaced,
                message: "you joined this hearing from another window or device".into(),
            });
            for t in std::mem::take(&mut member.tracks).into_values() {
                stop_forwarding(&t);
            }
        }
        member.session = Some(req.link);
        member.info.present = true;
        member.info.audio = policy::may_publish(member.info.role);
        member.info.video = policy::may_publish(member.info.role);
        let you = member.info.clone();
        let can_publish = policy::may_publish(you.role);
        self.reconcile();
        self.broadcast_except(pid, || ServerMessage::ParticipantJoined {
            participant: you.clone(),
        });
        Ok(ServerMessage::Welcome {
            v: PROTOCOL_VERSION,
            you,
            hearing: self.hearing.clone(),
            participants: self
                .members
                .values()
                .filter(|m| m.info.id != pid)
                .map(|m| m.info.clone())
                .collect(),
            max_message_bytes: 0, // filled in by the signaling layer, which knows the limit
            can_publish,
        })
    }

    fn leave(&mut self, pid: Uuid, session: u64, reason: &str) {
        let Some(m) = self.members.get_mut(&pid) else {
            return;
        };
        if !m.is_session(session) {
            return; // a replaced session's late goodbye
        }
        m.session = None;
        m.info.present = false;
        for t in std::mem::take(&mut m.tracks).into_values() {
            stop_forwarding(&t);
        }
        self.reconcile();
        self.broadcast_except(pid, || ServerMessage::ParticipantLeft {
            participant_id: pid,
            reason: reason.to_owned(),
        });
    }

    fn broadcast_except(&self, except: Uuid, msg: impl Fn() -> ServerMessage) {
        for m in self.members.values() {
            if m.info.id != except {
                m.tell(SessionCommand::Send(msg()));
            }
        }
    }

    /// Makes the forwarding legs match the policy. Removals take effect in the SFU
    /// at once (before the subscriber's renegotiation); additions are requested from
    /// the subscriber's session and take effect when it reports the leg ready.
    fn reconcile(&mut self) {
        let policy: HashMap<Uuid, PolicyMember> = self
            .members
            .iter()
            .map(|(id, m)| (*id, m.policy()))
            .collect();
        let mut desired: HashSet<(Uuid, String)> = HashSet::new();
        let mut tracks: HashMap<String, Arc<PublishedTrack>> = HashMap::new();
        for publisher in self.members.values() {
            for track in publisher.tracks.values() {
                if track.is_ended() {
                    continue;
                }
                tracks.insert(track.id.clone(), track.clone());
                for sub in self.members.values() {
                    if policy::may_forward(
                        &policy[&publisher.info.id],
                        &policy[&sub.info.id],
                        track.kind,
                    ) {
                        desired.insert((sub.info.id, track.id.clone()));
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
    }
}

/// Cuts every leg of a track that is leaving the hearing, at once.
fn stop_forwarding(track: &PublishedTrack) {
    for sub in track.subscribers() {
        track.remove_downstream(sub);
    }
}
