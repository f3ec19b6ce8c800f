//! Published tracks and forwarding legs: the only place that decides who receives
//! whose media, by making the legs match [`policy::may_forward`] after every change
//! ([`HearingCore::reconcile`]), and what the archive records, by
//! [`policy::may_record`].
//!
//! A leg is added in two steps: the subscriber's session is told to subscribe (it
//! adds the leg and renegotiates), and when it reports the leg ready the core lets
//! forwarding start only if the policy still allows it. A leg is removed in one:
//! forwarding is cut at once ([`Effect::CutLeg`]) and the session is told afterwards.

use std::collections::{HashMap, HashSet};

use openhearing_signaling::{ErrorCode, ServerMessage};
use uuid::Uuid;

use super::super::policy::{self, Member as PolicyMember, Source};
use super::{ArchiveOp, Effect, HearingCore, Track};
use crate::sfu::MediaKind;

impl HearingCore {
    pub(super) fn track_published(
        &mut self,
        pid: Uuid,
        session: u64,
        track: String,
        kind: MediaKind,
    ) {
        let Some(m) = self.members.get_mut(&pid) else {
            return;
        };
        if !m.is_session(session) {
            return;
        }
        let source = match kind {
            MediaKind::Audio => Source::Microphone,
            MediaKind::Video if m.tracks.iter().any(|t| t.source == Source::Camera) => {
                Source::Screen
            }
            MediaKind::Video => Source::Camera,
        };
        let allowed = self.perms.allows(m.p.role, source.action());
        m.tracks.push(Track {
            id: track,
            source,
            ended: false,
        });
        if !allowed {
            // Accepted by the transport but forwarded to nobody (policy rule 5).
            self.tell(
                pid,
                ServerMessage::error(
                    ErrorCode::PermissionDenied,
                    format!(
                        "your role may not {}; that track reaches nobody",
                        source.action().as_str().replace('_', " ")
                    ),
                ),
            );
        }
        self.reconcile();
    }

    pub(super) fn track_ended(&mut self, pid: Uuid, session: u64, track: &str) {
        let Some(m) = self.members.get_mut(&pid) else {
            return;
        };
        if !m.is_session(session) {
            return;
        }
        if let Some(i) = m.tracks.iter().position(|t| t.id == track) {
            let t = m.tracks.remove(i);
            self.emit(Effect::DropTrack(t.id));
        }
        self.reconcile();
    }

    pub(super) fn leg_ready(&mut self, subscriber: Uuid, session: u64, track: String) {
        let current = self
            .members
            .get(&subscriber)
            .is_some_and(|m| m.is_session(session));
        if !current || !self.subscribed.contains(&(subscriber, track.clone())) {
            return; // no longer allowed; the session was told to unsubscribe
        }
        self.emit(Effect::AttachLeg { track, subscriber });
    }

    /// The private room `pid` is in, if any.
    pub(super) fn room_of(&self, pid: Uuid) -> Option<Uuid> {
        self.status
            .rooms
            .iter()
            .find(|r| r.members.contains(&pid))
            .map(|r| r.id)
    }

    /// Makes the forwarding legs match the policy. Removals take effect at once
    /// (before the subscriber's renegotiation); additions are requested from the
    /// subscriber's session and take effect when it reports the leg ready.
    pub(super) fn reconcile(&mut self) {
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
        let mut live: HashSet<&str> = HashSet::new();
        for publisher in self.members.values() {
            for track in publisher.tracks.iter().filter(|t| !t.ended) {
                live.insert(&track.id);
                for sub in self.members.values() {
                    if policy::may_forward(
                        ctx,
                        &policy[&publisher.p.id],
                        &policy[&sub.p.id],
                        track.source,
                    ) {
                        desired.insert((sub.p.id, track.id.clone()));
                    }
                }
            }
        }
        let mut effects = Vec::new();
        for (sub, track) in self.subscribed.difference(&desired) {
            if live.contains(track.as_str()) {
                effects.push(Effect::CutLeg {
                    track: track.clone(),
                    subscriber: *sub,
                });
            }
            if let Some(session) = self.members.get(sub).and_then(|m| m.session) {
                effects.push(Effect::Unsubscribe {
                    session,
                    track: track.clone(),
                });
            }
        }
        for (sub, track) in desired.difference(&self.subscribed) {
            if let Some(session) = self.members.get(sub).and_then(|m| m.session) {
                if live.contains(track.as_str()) {
                    effects.push(Effect::Subscribe {
                        session,
                        track: track.clone(),
                    });
                }
            }
        }

        // The recorder: the same policy decides; the time a track is held back is
        // marked in the record with its cause.
        if let Some(archive) = self.archive.as_mut() {
            let gone: Vec<String> = archive
                .tracks
                .iter()
                .filter(|t| !live.contains(t.as_str()))
                .cloned()
                .collect();
            for t in gone {
                archive.tracks.remove(&t);
                effects.push(Effect::Archive(ArchiveOp::TrackEnded(t)));
            }
            for publisher in self.members.values() {
                let pm = &policy[&publisher.p.id];
                for track in publisher.tracks.iter().filter(|t| !t.ended) {
                    let (record, cause) = match policy::may_record(ctx, pm, track.source) {
                        policy::Recording::Record => (true, None),
                        policy::Recording::Withhold(cause) => (false, cause),
                    };
                    if record {
                        archive.tracks.insert(track.id.clone());
                    }
                    effects.push(Effect::Archive(ArchiveOp::Set {
                        track: track.id.clone(),
                        owner: publisher.p.clone(),
                        record,
                        cause,
                    }));
                }
            }
        }
        self.subscribed = desired;
        self.effects.append(&mut effects);
    }
}
