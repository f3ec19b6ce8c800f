//! The wire protocol: JSON text frames over one WebSocket per participant.
//!
//! Every frame is one JSON object with a `"type"` field naming the message. The first
//! message a client sends is [`ClientMessage::Join`], carrying [`PROTOCOL_VERSION`] and the
//! participant's join token; the server answers [`ServerMessage::Welcome`] or an
//! [`ServerMessage::Error`] followed by a close. `signaling/PROTOCOL.md` documents every
//! message with an example; keep the two in step.
//!
//! Negotiation is deliberately one-sided to avoid glare: the client sends exactly one
//! offer first (its own tracks), the server answers, and from then on every
//! renegotiation (participants arriving or leaving) is an offer *from the server* that
//! the client answers. A client offer while a server offer is outstanding is refused
//! with [`ErrorCode::NegotiationConflict`].

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The protocol version this crate speaks. A server refuses a `join` with another
/// version with [`ErrorCode::UnsupportedVersion`].
pub const PROTOCOL_VERSION: u32 = 1;

/// What a participant is in the hearing. Its meaning (what they may do, whether they
/// wait in the lobby) comes from the server's permission table; the client only
/// displays it.
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    PresidingJudge,
    Judge,
    Assessor,
    Clerk,
    Prosecutor,
    Defendant,
    DefenceCounsel,
    Victim,
    Litigant,
    Representative,
    Witness,
    Expert,
    Interpreter,
    DetentionOfficer,
    Observer,
}

impl Role {
    /// Every role, in the order a court lists them.
    pub const ALL: [Role; 15] = [
        Role::PresidingJudge,
        Role::Judge,
        Role::Assessor,
        Role::Clerk,
        Role::Prosecutor,
        Role::Defendant,
        Role::DefenceCounsel,
        Role::Victim,
        Role::Litigant,
        Role::Representative,
        Role::Witness,
        Role::Expert,
        Role::Interpreter,
        Role::DetentionOfficer,
        Role::Observer,
    ];

    /// The wire name (`presiding_judge`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::PresidingJudge => "presiding_judge",
            Role::Judge => "judge",
            Role::Assessor => "assessor",
            Role::Clerk => "clerk",
            Role::Prosecutor => "prosecutor",
            Role::Defendant => "defendant",
            Role::DefenceCounsel => "defence_counsel",
            Role::Victim => "victim",
            Role::Litigant => "litigant",
            Role::Representative => "representative",
            Role::Witness => "witness",
            Role::Expert => "expert",
            Role::Interpreter => "interpreter",
            Role::DetentionOfficer => "detention_officer",
            Role::Observer => "observer",
        }
    }

    /// Members of the trial panel (presiding judge, judges, people's assessors).
    pub fn is_panel(self) -> bool {
        matches!(self, Role::PresidingJudge | Role::Judge | Role::Assessor)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for [`Role::from_str`](std::str::FromStr::from_str).
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown role `{0}`; expected one of: presiding_judge, judge, assessor, clerk, prosecutor, defendant, defence_counsel, victim, litigant, representative, witness, expert, interpreter, detention_officer, observer")]
pub struct UnknownRole(pub String);

impl std::str::FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

/// What kind of place a site (điểm cầu) is: the courtroom (central site) or a
/// component site.
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum SiteKind {
    /// The courtroom (điểm cầu trung tâm).
    Central,
    /// A detention facility or prison.
    Detention,
    /// A law office or other office.
    Office,
    /// Another court.
    Court,
    /// Anywhere else (home, hospital, ...).
    Remote,
}

impl SiteKind {
    pub const ALL: [SiteKind; 5] = [
        SiteKind::Central,
        SiteKind::Detention,
        SiteKind::Office,
        SiteKind::Court,
        SiteKind::Remote,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SiteKind::Central => "central",
            SiteKind::Detention => "detention",
            SiteKind::Office => "office",
            SiteKind::Court => "court",
            SiteKind::Remote => "remote",
        }
    }
}

impl std::fmt::Display for SiteKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for [`SiteKind::from_str`](std::str::FromStr::from_str).
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown site kind `{0}`; expected one of: central, detention, office, court, remote")]
pub struct UnknownSiteKind(pub String);

impl std::str::FromStr for SiteKind {
    type Err = UnknownSiteKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SiteKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownSiteKind(s.to_owned()))
    }
}

/// Something a participant may do, as named in the permission table
/// (`[permissions]` in the server configuration). The server checks every one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Send microphone audio to the hearing.
    PublishAudio,
    /// Send camera video to the hearing.
    PublishVideo,
    /// Send a second video track (screen or document camera).
    PublishScreen,
    /// Receive the hearing's audio and video.
    Subscribe,
    /// Let a participant in from the lobby (one, or everyone waiting).
    Admit,
    /// Refuse a participant waiting in the lobby (they are disconnected).
    Deny,
    /// Mute another participant, mute everyone except the bench, ask to unmute.
    MuteOthers,
    /// Remove a participant from the hearing (their link stops working).
    Remove,
    /// Lock or unlock the hearing (no admissions while locked).
    Lock,
    /// Move the hearing through its lifecycle (open, start, suspend, resume, adjourn, close).
    ControlLifecycle,
    /// Call a witness or expert in from the lobby, and dismiss them back.
    CallWitness,
    /// Give a participant the floor (spotlight them for everyone).
    Spotlight,
    /// Ask for a private consultation between a defendant and their defence counsel.
    RequestConsultation,
    /// Approve or refuse consultation requests, and recall a consultation.
    ApproveConsultation,
    /// Take the trial panel into deliberation and back.
    Deliberate,
}

impl Action {
    pub const ALL: [Action; 15] = [
        Action::PublishAudio,
        Action::PublishVideo,
        Action::PublishScreen,
        Action::Subscribe,
        Action::Admit,
        Action::Deny,
        Action::MuteOthers,
        Action::Remove,
        Action::Lock,
        Action::ControlLifecycle,
        Action::CallWitness,
        Action::Spotlight,
        Action::RequestConsultation,
        Action::ApproveConsultation,
        Action::Deliberate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::PublishAudio => "publish_audio",
            Action::PublishVideo => "publish_video",
            Action::PublishScreen => "publish_screen",
            Action::Subscribe => "subscribe",
            Action::Admit => "admit",
            Action::Deny => "deny",
            Action::MuteOthers => "mute_others",
            Action::Remove => "remove",
            Action::Lock => "lock",
            Action::ControlLifecycle => "control_lifecycle",
            Action::CallWitness => "call_witness",
            Action::Spotlight => "spotlight",
            Action::RequestConsultation => "request_consultation",
            Action::ApproveConsultation => "approve_consultation",
            Action::Deliberate => "deliberate",
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for [`Action::from_str`](std::str::FromStr::from_str).
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown action `{0}`; expected one of: publish_audio, publish_video, publish_screen, subscribe, admit, deny, mute_others, remove, lock, control_lifecycle, call_witness, spotlight, request_consultation, approve_consultation, deliberate")]
pub struct UnknownAction(pub String);

impl std::str::FromStr for Action {
    type Err = UnknownAction;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnknownAction(s.to_owned()))
    }
}

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

/// One ICE candidate, in the browser's `RTCIceCandidateInit` shape (camelCase on the
/// wire so a browser can pass `candidate.toJSON()` straight through).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IceCandidate {
    pub candidate: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    #[serde(
        default,
        rename = "sdpMLineIndex",
        skip_serializing_if = "Option::is_none"
    )]
    pub sdp_mline_index: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_fragment: Option<String>,
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

/// Messages a client sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Must be the first message. `v` is the protocol version the client speaks.
    Join { v: u32, token: String },
    /// The client's SDP offer (its own tracks). Sent once after `welcome`; may be sent
    /// again to change what the client publishes, but only when no server offer is
    /// outstanding.
    Offer { sdp: String },
    /// The client's answer to a server `offer`.
    Answer { sdp: String },
    /// A trickled ICE candidate of the client's.
    Candidate { candidate: IceCandidate },
    /// The client's own microphone/camera state, shown to others.
    MediaState { audio: bool, video: bool },
    /// Keep-alive; the server answers `pong` with the same `id`.
    Ping {
        #[serde(default)]
        id: u64,
    },
    /// The participant leaves the hearing; the server closes the socket.
    Leave,
    /// Let one participant in from the lobby (`admit`). Witnesses and experts are
    /// called in with `call_in` instead.
    Admit { participant_id: Uuid },
    /// Let everyone waiting in the lobby in, except witnesses and experts (`admit`).
    AdmitAll,
    /// Refuse a participant waiting in the lobby; they are disconnected (`deny`).
    Deny {
        participant_id: Uuid,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Call a witness or expert in from the lobby (`call_witness`).
    CallIn { participant_id: Uuid },
    /// Send a called-in witness or expert back to the lobby (`call_witness`).
    Dismiss { participant_id: Uuid },
    /// Mute a participant: the server stops forwarding their audio at once
    /// (`mute_others`).
    Mute { participant_id: Uuid },
    /// Mute everyone except the bench (`mute_others`).
    MuteAll,
    /// Ask a muted participant to unmute; they decide (`mute_others`).
    RequestUnmute { participant_id: Uuid },
    /// The muted participant accepts the court's unmute request.
    AcceptUnmute,
    /// Remove a participant from the hearing; their link stops working (`remove`).
    Remove {
        participant_id: Uuid,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Lock (no admissions) or unlock the hearing (`lock`).
    Lock { locked: bool },
    /// Give a participant the floor, or take it back with `null` (`spotlight`).
    Spotlight { participant_id: Option<Uuid> },
    /// Move the hearing through its lifecycle (`control_lifecycle`).
    SetState {
        #[serde(flatten)]
        change: StateChange,
    },
    /// Ask for a private consultation with `participant_id` (a defendant with their
    /// own counsel, or counsel with their client) (`request_consultation`).
    RequestConsultation { participant_id: Uuid },
    /// Approve or refuse a pending consultation request (`approve_consultation`).
    AnswerConsultation { request_id: Uuid, approve: bool },
    /// End a private consultation: a member ends it, or the presiding judge recalls
    /// its members to the hearing (`approve_consultation`).
    EndConsultation { room_id: Uuid },
    /// Take the panel into deliberation (`deliberate`).
    StartDeliberation,
    /// Bring the panel back to the hearing (`deliberate`).
    EndDeliberation,
}

impl ClientMessage {
    /// The `type` tag of this message, for logs and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientMessage::Join { .. } => "join",
            ClientMessage::Offer { .. } => "offer",
            ClientMessage::Answer { .. } => "answer",
            ClientMessage::Candidate { .. } => "candidate",
            ClientMessage::MediaState { .. } => "media_state",
            ClientMessage::Ping { .. } => "ping",
            ClientMessage::Leave => "leave",
            ClientMessage::Admit { .. } => "admit",
            ClientMessage::AdmitAll => "admit_all",
            ClientMessage::Deny { .. } => "deny",
            ClientMessage::CallIn { .. } => "call_in",
            ClientMessage::Dismiss { .. } => "dismiss",
            ClientMessage::Mute { .. } => "mute",
            ClientMessage::MuteAll => "mute_all",
            ClientMessage::RequestUnmute { .. } => "request_unmute",
            ClientMessage::AcceptUnmute => "accept_unmute",
            ClientMessage::Remove { .. } => "remove",
            ClientMessage::Lock { .. } => "lock",
            ClientMessage::Spotlight { .. } => "spotlight",
            ClientMessage::SetState { .. } => "set_state",
            ClientMessage::RequestConsultation { .. } => "request_consultation",
            ClientMessage::AnswerConsultation { .. } => "answer_consultation",
            ClientMessage::EndConsultation { .. } => "end_consultation",
            ClientMessage::StartDeliberation => "start_deliberation",
            ClientMessage::EndDeliberation => "end_deliberation",
        }
    }
}

/// The body of `welcome`: the accepted join (boxed in [`ServerMessage`], being much
/// larger than every other message).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    pub v: u32,
    /// The joining participant, as others see them.
    pub you: ParticipantInfo,
    pub hearing: HearingInfo,
    /// The hearing's live state.
    pub status: HearingStatus,
    /// Every participant of the hearing except `you`, present or not.
    pub participants: Vec<ParticipantInfo>,
    /// The largest text frame the server accepts, in bytes.
    pub max_message_bytes: usize,
    /// Whether this participant may publish audio or video at all.
    pub can_publish: bool,
    /// What this participant's role may do (from the permission table), so the
    /// client shows only the controls that will work. The server checks anyway.
    pub permissions: Vec<Action>,
}

/// Messages the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The join was accepted.
    Welcome(Box<Welcome>),
    /// The hearing's state, lock or spotlight changed. Sent to everyone, lobby
    /// included.
    HearingStatus { status: HearingStatus },
    /// The court asks you to unmute; answer with `accept_unmute` (or ignore it).
    UnmuteRequested { by: Uuid },
    /// Your consultation request was answered (sent to both would-be members).
    ConsultationAnswered { request_id: Uuid, approved: bool },
    /// The private room you were in ended: `ended` by a member, `recalled` by the
    /// presiding judge, or `dissolved` (a member left the hearing or the lobby took
    /// them). You are back in the hearing room.
    RoomEnded {
        room_id: Uuid,
        kind: RoomKind,
        reason: String,
        by: Option<Uuid>,
    },
    /// A participant connected.
    ParticipantJoined { participant: ParticipantInfo },
    /// A participant's state changed (presence, admission, microphone, camera, court
    /// mute, connection). Also sent to the participant themselves.
    ParticipantUpdated { participant: ParticipantInfo },
    /// A participant disconnected; their tracks have been removed.
    ParticipantLeft {
        participant_id: Uuid,
        /// `left`, `connection_lost`, `replaced`, `denied`, `removed`,
        /// `hearing_closed` or `link_revoked`.
        reason: String,
    },
    /// The server's answer to the client's offer.
    Answer { sdp: String },
    /// A server-initiated offer (tracks added or removed); answer it with `answer`.
    Offer { sdp: String },
    /// A trickled ICE candidate of the server's.
    Candidate { candidate: IceCandidate },
    /// Reply to `ping`.
    Pong { id: u64 },
    /// Something the client sent was refused. When `fatal` is true the server closes
    /// the socket right after this message.
    Error {
        code: ErrorCode,
        message: String,
        fatal: bool,
    },
}

impl ServerMessage {
    /// The `type` tag of this message, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            ServerMessage::Welcome(_) => "welcome",
            ServerMessage::HearingStatus { .. } => "hearing_status",
            ServerMessage::UnmuteRequested { .. } => "unmute_requested",
            ServerMessage::ConsultationAnswered { .. } => "consultation_answered",
            ServerMessage::RoomEnded { .. } => "room_ended",
            ServerMessage::ParticipantJoined { .. } => "participant_joined",
            ServerMessage::ParticipantUpdated { .. } => "participant_updated",
            ServerMessage::ParticipantLeft { .. } => "participant_left",
            ServerMessage::Answer { .. } => "answer",
            ServerMessage::Offer { .. } => "offer",
            ServerMessage::Candidate { .. } => "candidate",
            ServerMessage::Pong { .. } => "pong",
            ServerMessage::Error { .. } => "error",
        }
    }

    /// Shorthand for an error message.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerMessage::Error {
            code,
            fatal: code.is_fatal(),
            message: message.into(),
        }
    }
}

/// Every error the server reports, as a stable snake_case code. `PROTOCOL.md` lists
/// what each means and what the client should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// `join.v` is not a version this server speaks.
    UnsupportedVersion,
    /// The first message was not `join`, or the token was empty.
    TokenMissing,
    /// The token is not a well-formed JWT.
    TokenMalformed,
    /// The token's signature does not verify (forged or from another server).
    TokenInvalid,
    /// The token has expired.
    TokenExpired,
    /// The token is for another hearing than the one in the URL.
    TokenWrongHearing,
    /// The hearing does not exist (any more).
    HearingNotFound,
    /// The participant was removed from the hearing or their link revoked.
    ParticipantUnknown,
    /// No `join` within the allowed time after the socket opened.
    JoinTimeout,
    /// A message other than `join` arrived before joining.
    NotJoined,
    /// A second `join` on an already joined socket.
    AlreadyJoined,
    /// The frame is not valid JSON, or a known message with missing/invalid fields.
    MalformedMessage,
    /// The `type` field names no message of this protocol.
    UnknownMessageType,
    /// The frame is larger than `max_message_bytes`.
    MessageTooLarge,
    /// Binary frames are not part of the protocol.
    BinaryNotSupported,
    /// The client sent messages faster than allowed; the socket is closed.
    RateLimited,
    /// The SDP could not be parsed or applied.
    InvalidSdp,
    /// The ICE candidate could not be parsed or applied.
    InvalidCandidate,
    /// An `answer` arrived while no server offer was outstanding.
    NoOfferPending,
    /// A client `offer` arrived while a server offer is outstanding; retry after
    /// answering it.
    NegotiationConflict,
    /// The client did not answer a server offer in time; the socket is closed.
    NegotiationTimeout,
    /// This participant's role may not publish media; the offered tracks are refused.
    PublishNotAllowed,
    /// The same participant joined from another socket; this one is closed.
    Replaced,
    /// The participant's role may not do this (permission table); nothing changed.
    PermissionDenied,
    /// The hearing cannot move from its current state to the requested one.
    InvalidTransition,
    /// Suspending or adjourning needs a reason (and adjourning a new date).
    ReasonRequired,
    /// The hearing is locked: nobody can be admitted or called in.
    HearingLocked,
    /// The hearing is closed; its links no longer work.
    HearingClosed,
    /// The court refused your admission from the lobby.
    AdmissionDenied,
    /// The court removed you from the hearing; your link no longer works.
    Removed,
    /// This join link was revoked; ask the court for a new one.
    LinkRevoked,
    /// The participant named in the request is not part of this hearing.
    UnknownParticipant,
    /// The request does not apply to that participant now (e.g. admitting someone
    /// who is not in the lobby, calling in someone who is not a witness or expert).
    NotApplicable,
    /// The server is shutting down.
    ServerShutdown,
    /// Something failed inside the server; the message says what.
    Internal,
}

impl ErrorCode {
    /// Every error code, in declaration order (the web client mirrors this list).
    pub const ALL: [ErrorCode; 35] = [
        ErrorCode::UnsupportedVersion,
        ErrorCode::TokenMissing,
        ErrorCode::TokenMalformed,
        ErrorCode::TokenInvalid,
        ErrorCode::TokenExpired,
        ErrorCode::TokenWrongHearing,
        ErrorCode::HearingNotFound,
        ErrorCode::ParticipantUnknown,
        ErrorCode::JoinTimeout,
        ErrorCode::NotJoined,
        ErrorCode::AlreadyJoined,
        ErrorCode::MalformedMessage,
        ErrorCode::UnknownMessageType,
        ErrorCode::MessageTooLarge,
        ErrorCode::BinaryNotSupported,
        ErrorCode::RateLimited,
        ErrorCode::InvalidSdp,
        ErrorCode::InvalidCandidate,
        ErrorCode::NoOfferPending,
        ErrorCode::NegotiationConflict,
        ErrorCode::NegotiationTimeout,
        ErrorCode::PublishNotAllowed,
        ErrorCode::Replaced,
        ErrorCode::PermissionDenied,
        ErrorCode::InvalidTransition,
        ErrorCode::ReasonRequired,
        ErrorCode::HearingLocked,
        ErrorCode::HearingClosed,
        ErrorCode::AdmissionDenied,
        ErrorCode::Removed,
        ErrorCode::LinkRevoked,
        ErrorCode::UnknownParticipant,
        ErrorCode::NotApplicable,
        ErrorCode::ServerShutdown,
        ErrorCode::Internal,
    ];

    /// Whether the server closes the socket after reporting this error.
    pub fn is_fatal(self) -> bool {
        matches!(
            self,
            ErrorCode::UnsupportedVersion
                | ErrorCode::TokenMissing
                | ErrorCode::TokenMalformed
                | ErrorCode::TokenInvalid
                | ErrorCode::TokenExpired
                | ErrorCode::TokenWrongHearing
                | ErrorCode::HearingNotFound
                | ErrorCode::ParticipantUnknown
                | ErrorCode::JoinTimeout
                | ErrorCode::NotJoined
                | ErrorCode::RateLimited
                | ErrorCode::NegotiationTimeout
                | ErrorCode::Replaced
                | ErrorCode::HearingClosed
                | ErrorCode::AdmissionDenied
                | ErrorCode::Removed
                | ErrorCode::LinkRevoked
                | ErrorCode::ServerShutdown
        )
    }

    /// The WebSocket close code the server uses after a fatal error of this kind.
    /// 4401: authentication, 4404: not found, 4408: timeout, 4400: protocol, 4429:
    /// rate limit, 4409: replaced, 4403: refused or removed by the court, 4410: hearing
    /// closed, 1001: going away, 1011: internal.
    pub fn close_code(self) -> u16 {
        match self {
            ErrorCode::TokenMissing
            | ErrorCode::TokenMalformed
            | ErrorCode::TokenInvalid
            | ErrorCode::TokenExpired
            | ErrorCode::TokenWrongHearing
            | ErrorCode::ParticipantUnknown
            | ErrorCode::LinkRevoked => 4401,
            ErrorCode::AdmissionDenied | ErrorCode::Removed => 4403,
            ErrorCode::HearingClosed => 4410,
            ErrorCode::HearingNotFound => 4404,
            ErrorCode::JoinTimeout | ErrorCode::NegotiationTimeout => 4408,
            ErrorCode::RateLimited => 4429,
            ErrorCode::Replaced => 4409,
            ErrorCode::ServerShutdown => 1001,
            ErrorCode::Internal => 1011,
            _ => 4400,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::String(s)) => f.write_str(&s),
            _ => f.write_str("internal"),
        }
    }
}

/// Why a client frame could not be read as a [`ClientMessage`].
#[derive(Debug, Clone, thiserror::Error)]
pub enum DecodeError {
    #[error("frame is not valid JSON: {0}")]
    NotJson(String),
    #[error("frame has no string `type` field")]
    MissingType,
    #[error("unknown message type `{0}`")]
    UnknownType(String),
    #[error("invalid `{kind}` message: {detail}")]
    Invalid { kind: String, detail: String },
}

impl DecodeError {
    /// The error code the server reports for this decode failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::UnknownType(_) => ErrorCode::UnknownMessageType,
            _ => ErrorCode::MalformedMessage,
        }
    }
}

const CLIENT_TYPES: [&str; 25] = [
    "join",
    "offer",
    "answer",
    "candidate",
    "media_state",
    "ping",
    "leave",
    "admit",
    "admit_all",
    "deny",
    "call_in",
    "dismiss",
    "mute",
    "mute_all",
    "request_unmute",
    "accept_unmute",
    "remove",
    "lock",
    "spotlight",
    "set_state",
    "request_consultation",
    "answer_consultation",
    "end_consultation",
    "start_deliberation",
    "end_deliberation",
];

/// Parses a client frame, telling apart bad JSON, an unknown type and bad fields so
/// that each gets its own error code.
pub fn decode_client(text: &str) -> Result<ClientMessage, DecodeError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| DecodeError::NotJson(e.to_string()))?;
    let kind = value
        .get("type")
        .and_then(|t| t.as_str())
        .ok_or(DecodeError::MissingType)?
        .to_owned();
    if !CLIENT_TYPES.contains(&kind.as_str()) {
        return Err(DecodeError::UnknownType(kind));
    }
    serde_json::from_value(value).map_err(|e| DecodeError::Invalid {
        kind,
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_round_trip() {
        let msgs = vec![
            ClientMessage::Join {
                v: 1,
                token: "t".into(),
            },
            ClientMessage::Offer { sdp: "v=0".into() },
            ClientMessage::Answer { sdp: "v=0".into() },
            ClientMessage::Candidate {
                candidate: IceCandidate {
                    candidate: "candidate:1 1 udp 1 127.0.0.1 5000 typ host".into(),
                    sdp_mid: Some("0".into()),
                    sdp_mline_index: Some(0),
                    username_fragment: None,
                },
            },
            ClientMessage::MediaState {
                audio: true,
                video: false,
            },
            ClientMessage::Ping { id: 7 },
            ClientMessage::Leave,
            ClientMessage::Admit {
                participant_id: Uuid::nil(),
            },
            ClientMessage::AdmitAll,
            ClientMessage::Deny {
                participant_id: Uuid::nil(),
                reason: Some("r".into()),
            },
            ClientMessage::CallIn {
                participant_id: Uuid::nil(),
            },
            ClientMessage::Dismiss {
                participant_id: Uuid::nil(),
            },
            ClientMessage::Mute {
                participant_id: Uuid::nil(),
            },
            ClientMessage::MuteAll,
            ClientMessage::RequestUnmute {
                participant_id: Uuid::nil(),
            },
            ClientMessage::AcceptUnmute,
            ClientMessage::Remove {
                participant_id: Uuid::nil(),
                reason: None,
            },
            ClientMessage::Lock { locked: true },
            ClientMessage::Spotlight {
                participant_id: None,
            },
            ClientMessage::SetState {
                change: StateChange {
                    state: HearingState::Suspended,
                    reason: Some("mất kết nối với trại tạm giam".into()),
                    adjourned_to: None,
                },
            },
            ClientMessage::RequestConsultation {
                participant_id: Uuid::nil(),
            },
            ClientMessage::AnswerConsultation {
                request_id: Uuid::nil(),
                approve: true,
            },
            ClientMessage::EndConsultation {
                room_id: Uuid::nil(),
            },
            ClientMessage::StartDeliberation,
            ClientMessage::EndDeliberation,
        ];
        assert_eq!(msgs.len(), CLIENT_TYPES.len());
        for m in msgs {
            let text = serde_json::to_string(&m).unwrap();
            assert_eq!(decode_client(&text).unwrap(), m, "{text}");
            let tag = serde_json::from_str::<serde_json::Value>(&text).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned();
            assert_eq!(tag, m.kind());
        }
    }

    #[test]
    fn decode_errors_are_distinguished() {
        assert!(matches!(
            decode_client("{not json"),
            Err(DecodeError::NotJson(_))
        ));
        assert!(matches!(
            decode_client(r#"{"x":1}"#),
            Err(DecodeError::MissingType)
        ));
        let e = decode_client(r#"{"type":"teleport"}"#).unwrap_err();
        assert_eq!(e.code(), ErrorCode::UnknownMessageType);
        let e = decode_client(r#"{"type":"offer"}"#).unwrap_err();
        assert_eq!(e.code(), ErrorCode::MalformedMessage);
        let e = decode_client(r#"{"type":"media_state","audio":"yes","video":true}"#).unwrap_err();
        assert_eq!(e.code(), ErrorCode::MalformedMessage);
        // Unknown extra fields are ignored so that newer clients stay compatible.
        assert_eq!(
            decode_client(r#"{"type":"leave","extra":1}"#).unwrap(),
            ClientMessage::Leave
        );
    }

    #[test]
    fn candidate_uses_browser_field_names() {
        let text =
            r#"{"type":"candidate","candidate":{"candidate":"c","sdpMid":"0","sdpMLineIndex":0}}"#;
        match decode_client(text).unwrap() {
            ClientMessage::Candidate { candidate } => {
                assert_eq!(candidate.sdp_mid.as_deref(), Some("0"));
                assert_eq!(candidate.sdp_mline_index, Some(0));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn error_codes_serialize_snake_case() {
        let m = ServerMessage::error(ErrorCode::TokenWrongHearing, "x");
        let text = serde_json::to_string(&m).unwrap();
        assert!(text.contains(r#""code":"token_wrong_hearing""#), "{text}");
        assert!(text.contains(r#""fatal":true"#), "{text}");
        assert_eq!(ErrorCode::InvalidSdp.to_string(), "invalid_sdp");
        assert!(!ErrorCode::InvalidSdp.is_fatal());
    }

    #[test]
    fn roles_parse_and_print() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
            assert_eq!(
                serde_json::to_string(&r).unwrap(),
                format!("\"{}\"", r.as_str())
            );
        }
        assert!("king".parse::<Role>().is_err());
        for k in SiteKind::ALL {
            assert_eq!(k.as_str().parse::<SiteKind>().unwrap(), k);
        }
        for a in Action::ALL {
            assert_eq!(a.as_str().parse::<Action>().unwrap(), a);
            assert_eq!(
                serde_json::to_string(&a).unwrap(),
                format!("\"{}\"", a.as_str())
            );
        }
        for st in HearingState::ALL {
            assert_eq!(st.as_str().parse::<HearingState>().unwrap(), st);
            assert_eq!(
                serde_json::to_string(&st).unwrap(),
                format!("\"{}\"", st.as_str())
            );
        }
    }

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

    #[test]
    fn error_code_list_is_complete() {
        // A new variant makes this match non-exhaustive: add it to ErrorCode::ALL too.
        fn position(c: ErrorCode) -> usize {
            match c {
                ErrorCode::UnsupportedVersion => 0,
                ErrorCode::TokenMissing => 1,
                ErrorCode::TokenMalformed => 2,
                ErrorCode::TokenInvalid => 3,
                ErrorCode::TokenExpired => 4,
                ErrorCode::TokenWrongHearing => 5,
                ErrorCode::HearingNotFound => 6,
                ErrorCode::ParticipantUnknown => 7,
                ErrorCode::JoinTimeout => 8,
                ErrorCode::NotJoined => 9,
                ErrorCode::AlreadyJoined => 10,
                ErrorCode::MalformedMessage => 11,
                ErrorCode::UnknownMessageType => 12,
                ErrorCode::MessageTooLarge => 13,
                ErrorCode::BinaryNotSupported => 14,
                ErrorCode::RateLimited => 15,
                ErrorCode::InvalidSdp => 16,
                ErrorCode::InvalidCandidate => 17,
                ErrorCode::NoOfferPending => 18,
                ErrorCode::NegotiationConflict => 19,
                ErrorCode::NegotiationTimeout => 20,
                ErrorCode::PublishNotAllowed => 21,
                ErrorCode::Replaced => 22,
                ErrorCode::PermissionDenied => 23,
                ErrorCode::InvalidTransition => 24,
                ErrorCode::ReasonRequired => 25,
                ErrorCode::HearingLocked => 26,
                ErrorCode::HearingClosed => 27,
                ErrorCode::AdmissionDenied => 28,
                ErrorCode::Removed => 29,
                ErrorCode::LinkRevoked => 30,
                ErrorCode::UnknownParticipant => 31,
                ErrorCode::NotApplicable => 32,
                ErrorCode::ServerShutdown => 33,
                ErrorCode::Internal => 34,
            }
        }
        for (i, c) in ErrorCode::ALL.into_iter().enumerate() {
            assert_eq!(position(c), i, "{c}");
        }
    }
}
