//! A participant as the hearing core knows them: the stored participant plus what
//! only a live hearing knows (their current session, published tracks, media and
//! connection state, since when they wait in the lobby).
//!
//! Sessions and tracks are plain ids here. The actor keeps the session channels and
//! the SFU's `PublishedTrack`s keyed by these ids, so the core stays free of channels
//! and of webrtc, and a test can build members from nothing.

use chrono::{DateTime, Utc};
use openhearing_signaling::{Connection, ParticipantInfo};
use uuid::Uuid;

use super::super::policy::{Member as PolicyMember, Source};
use crate::model::{rfc3339, Participant};

/// A published track: its SFU id, what it carries, and whether the SFU has seen it
/// end (an ended track is skipped by every decision until it is removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Track {
    pub id: String,
    pub source: Source,
    pub ended: bool,
}

#[derive(Debug, Clone)]
pub struct Member {
    pub p: Participant,
    /// The current signaling session, if connected.
    pub session: Option<u64>,
    /// Published tracks in publication order.
    pub tracks: Vec<Track>,
    pub audio: bool,
    pub video: bool,
    pub connection: Connection,
    pub lobby_since: Option<DateTime<Utc>>,
    /// The court asked this (muted) participant to unmute; only then may they.
    pub unmute_requested: bool,
}

impl Member {
    pub fn new(p: Participant) -> Member {
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

    /// The participant as others see them.
    pub fn info(&self) -> ParticipantInfo {
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

    /// What the forwarding policy needs to know of them.
    pub fn policy(&self, room: Option<Uuid>) -> PolicyMember {
        PolicyMember {
            id: self.p.id,
            role: self.p.role,
            present: self.session.is_some(),
            admission: self.p.admission,
            muted: self.p.muted,
            room,
        }
    }

    /// Whether `session` is their current one (a replaced session's late messages
    /// must not affect its successor).
    pub fn is_session(&self, session: u64) -> bool {
        self.session == Some(session)
    }
}
