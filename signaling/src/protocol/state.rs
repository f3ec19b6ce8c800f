//! The hearing and its participants as the server shows them: the lifecycle
//! ([`HearingState`] and its allowed moves), the live [`HearingStatus`] with its
//! private rooms and consultation requests, and each [`ParticipantInfo`]. These are
//! the bodies of messages, not messages; `client` and `server` carry them.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Role, SiteKind};

/// Where a hearing is in its lifecycle:
/// `scheduled → open → in_session ⇄ suspended → closed`, and `adjourned` (postponed
/// to a new date) from any state but `closed`; an adjourned hearing is opened again on
/// its new date. Media flows only while `open`, `in_session` or `suspended`.
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum HearingState {
    Scheduled,
    Open,
    InSession,
    Suspended,
    Adjourned,
    Closed,
}

impl HearingState {
    pub const ALL: [HearingState; 6] = [
        HearingState::Scheduled,
        HearingState::Open,
        HearingState::InSession,
        HearingState::Suspended,
        HearingState::Adjourned,
        HearingState::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HearingState::Scheduled => "scheduled",
            HearingState::Open => "open",
            HearingState::InSession => "in_session",
            HearingState::Suspended => "suspended",
            HearingState::Adjourned => "adjourned",
            HearingState::Closed => "closed",
        }
    }

    /// Whether `self → to` is a move the lifecycle allows.
    pub fn can_move_to(self, to: HearingState) -> bool {
        use HearingState::*;
        matches!(
            (self, to),
            (Scheduled, Open)
                | (Open, InSession)
                | (InSession, Suspended)
                | (Suspended, InSession)
                | (Open | InSession | Suspended, Closed)
                | (Scheduled | Open | InSession | Suspended, Adjourned)
                | (Adjourned, Open)
        )
    }

    /// Whether media is forwarded among admitted participants in this state.
    pub fn media_flows(self) -> bool {
        matches!(
            self,
            HearingState::Open | HearingState::InSession | HearingState::Suspended
        )
    }
}

impl std::fmt::Display for HearingState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for [`HearingState::from_str`](std::str::FromStr::from_str).
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown hearing state `{0}`; expected one of: scheduled, open, in_session, suspended, adjourned, closed")]
pub struct UnknownState(pub String);

impl std::str::FromStr for HearingState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HearingState::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

/// Whether a participant is in the hearing room.
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Admission {
    /// Waiting in the lobby: sees their own preview and the hearing's state, sends and
    /// receives no media of the hearing.
    Lobby,
    /// In the hearing room.
    Admitted,
    /// Removed by the court; their link no longer works.
    Removed,
}

impl Admission {
    pub fn as_str(self) -> &'static str {
        match self {
            Admission::Lobby => "lobby",
            Admission::Admitted => "admitted",
            Admission::Removed => "removed",
        }
    }
}

impl std::str::FromStr for Admission {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "lobby" => Ok(Admission::Lobby),
            "admitted" => Ok(Admission::Admitted),
            "removed" => Ok(Admission::Removed),
            _ => Err(format!("unknown admission `{s}`")),
        }
    }
}

/// A participant's connection as the server sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Connection {
    /// No signaling connection.
    Offline,
    /// Signaling connected, media not (yet) connected.
    Connecting,
    /// Media connected.
    Connected,
    /// Media connection interrupted; it may recover.
    Unstable,
}

/// The hearing as a participant sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HearingInfo {
    pub id: Uuid,
    pub case_number: String,
    pub title: String,
    /// When the hearing is scheduled to start (RFC 3339), if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_at: Option<String>,
}

/// What a private room is for.
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum RoomKind {
    /// A defendant with their defence counsel.
    Consultation,
    /// The trial panel deliberating (nghị án).
    Deliberation,
}

impl RoomKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RoomKind::Consultation => "consultation",
            RoomKind::Deliberation => "deliberation",
        }
    }
}

impl std::fmt::Display for RoomKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A private room: its members hear and see only each other, and nobody else
/// (participants, observers, the recorder) receives their media.
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomInfo {
    pub id: Uuid,
    pub kind: RoomKind,
    /// Who is in it.
    pub members: Vec<Uuid>,
    /// Since when (RFC 3339).
    pub since: String,
}

/// A consultation a defendant or their counsel asked for, awaiting the presiding
/// judge's decision.
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsultationRequest {
    pub id: Uuid,
    /// Who asked.
    pub from: Uuid,
    /// With whom.
    pub with: Uuid,
    /// Since when (RFC 3339).
    pub since: String,
}

/// The live state of a hearing, sent to every participant (lobby included) in
/// `welcome` and again in `hearing_status` whenever any of it changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HearingStatus {
    pub state: HearingState,
    /// Why the hearing is in this state (required for `suspended` and `adjourned`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Since when (RFC 3339).
    pub since: String,
    /// The new date of an adjourned hearing (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adjourned_to: Option<String>,
    /// No admissions while locked.
    pub locked: bool,
    /// The participant who has the floor, if the presiding judge gave it to someone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spotlight: Option<Uuid>,
    /// Private rooms in use (consultations, the panel's deliberation).
    #[serde(default)]
    pub rooms: Vec<RoomInfo>,
    /// Consultation requests awaiting the presiding judge.
    #[serde(default)]
    pub consultation_requests: Vec<ConsultationRequest>,
    /// The hearing is being recorded (the archive is open; it pauses while
    /// suspended). Every participant is shown this.
    #[serde(default)]
    pub recording: bool,
}

/// A participant as others see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantInfo {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    /// The site (điểm cầu) the participant joins from, e.g. "Trại tạm giam số 1".
    pub site: String,
    /// What kind of site that is.
    pub site_kind: SiteKind,
    /// Whether the participant is connected to the hearing now.
    pub present: bool,
    /// Lobby, admitted or removed.
    pub admission: Admission,
    /// Since when the participant waits in the lobby (RFC 3339), when they do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lobby_since: Option<String>,
    /// Self-reported microphone state (`true` = sending audio).
    pub audio: bool,
    /// Self-reported camera state (`true` = sending video).
    pub video: bool,
    /// Muted by the court: the server forwards none of their audio until they accept
    /// an unmute request.
    pub muted: bool,
    /// The server's view of their connection.
    pub connection: Connection,
    /// The party they belong to (a defendant and their counsel share one), if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub party: Option<String>,
}

/// A lifecycle move requested with `set_state`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateChange {
    pub state: HearingState,
    /// Required for `suspended` and `adjourned`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Required for `adjourned`: the new date (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adjourned_to: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_moves() {
        use HearingState::*;
        let allowed = [
            (Scheduled, Open),
            (Open, InSession),
            (InSession, Suspended),
            (Suspended, InSession),
            (Open, Closed),
            (InSession, Closed),
            (Suspended, Closed),
            (Scheduled, Adjourned),
            (Open, Adjourned),
            (InSession, Adjourned),
            (Suspended, Adjourned),
            (Adjourned, Open),
        ];
        for from in HearingState::ALL {
            for to in HearingState::ALL {
                assert_eq!(
                    from.can_move_to(to),
                    allowed.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
        assert!(!Closed.media_flows() && !Scheduled.media_flows() && !Adjourned.media_flows());
        assert!(Open.media_flows() && InSession.media_flows() && Suspended.media_flows());
    }
}
