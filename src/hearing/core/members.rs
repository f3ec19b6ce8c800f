//! A participant as the hearing core knows them: the stored participant plus what
//! only a live hearing knows (their current session and the device it runs on, a
//! second device waiting for the court, published tracks, media and connection
//! state, since when they wait in the lobby, held join/leave notices).
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

/// Where a session comes from, as its WebSocket upgrade saw it: kept for the audit
/// trail (who joined from where) and shown to the court when a link is used twice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Device {
    /// The peer's address (`ip:port`), when the server knows it.
    pub source: Option<String>,
    /// The `User-Agent` header, shortened to [`Device::MAX_USER_AGENT`] characters.
    pub user_agent: Option<String>,
    /// The id the client chose for itself (`join.tab`): the same tab reconnecting
    /// presents it again; a copied link does not carry it. Never audited.
    pub tab: Option<String>,
}

impl Device {
    /// Longest user agent kept, in characters (headers can be 8 KiB).
    pub const MAX_USER_AGENT: usize = 200;

    pub fn new(source: Option<String>, user_agent: Option<&str>) -> Device {
        Device {
            source,
            user_agent: user_agent
                .map(|ua| {
                    ua.chars()
                        .filter(|c| !c.is_control())
                        .take(Self::MAX_USER_AGENT)
                        .collect::<String>()
                })
                .filter(|ua| !ua.trim().is_empty()),
            tab: None,
        }
    }

    /// Shortest and longest `join.tab` taken; others are ignored (a short one could
    /// be guessed).
    pub const TAB_CHARS: std::ops::RangeInclusive<usize> = 16..=128;

    /// The device with the client's own `tab` id, when it is a plausible one.
    pub fn with_tab(mut self, tab: Option<String>) -> Device {
        self.tab = tab.filter(|t| {
            Self::TAB_CHARS.contains(&t.len()) && t.bytes().all(|b| b.is_ascii_graphic())
        });
        self
    }

    /// Whether `other` is this device's own tab again (both presented the same id).
    pub fn same_tab(&self, other: &Device) -> bool {
        use subtle::ConstantTimeEq;
        match (&self.tab, &other.tab) {
            (Some(a), Some(b)) => bool::from(a.as_bytes().ct_eq(b.as_bytes())),
            _ => false,
        }
    }

    /// The device as an audit entry shows it.
    pub fn audit(&self) -> serde_json::Value {
        serde_json::json!({ "source": self.source, "user_agent": self.user_agent })
    }
}

/// A second device that opened the participant's link while the first was
/// connected, waiting for the court (`auth.second_device = "lobby"`).
#[derive(Debug, Clone)]
pub struct WaitingDevice {
    pub session: u64,
    pub device: Device,
    pub since: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct Member {
    pub p: Participant,
    /// The current signaling session, if connected.
    pub session: Option<u64>,
    /// The device of the current (or last) session.
    pub device: Device,
    /// A second device waiting for the court to seat or refuse it.
    pub waiting: Option<WaitingDevice>,
    /// Join/leave notices held back while the participant flaps (`notices.rs`).
    pub notices: super::notices::Notices,
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
            device: Device::default(),
            waiting: None,
            notices: Default::default(),
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
