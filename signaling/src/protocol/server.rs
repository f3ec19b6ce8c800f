//! What the server sends: every [`ServerMessage`], opening with the [`Welcome`] that
//! accepts a join and carries everything the client needs to draw the hearing.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    Action, ErrorCode, HealthCell, HearingInfo, HearingStatus, IceCandidate, IntegrityAlert,
    MediaKind, ParticipantInfo, RoomKind,
};

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
    /// The largest `offer` or `answer` the server accepts, in bytes (at least
    /// `max_message_bytes`). 0 from a server that predates it: `max_message_bytes`.
    #[serde(default)]
    pub max_sdp_bytes: usize,
    /// Whether this participant may publish audio or video at all.
    pub can_publish: bool,
    /// What this participant's role may do (from the permission table), so the
    /// client shows only the controls that will work. The server checks anyway.
    pub permissions: Vec<Action>,
    /// How to take this session back over a new socket if this one drops (`resume`).
    /// Absent: the server keeps no session for a reconnect; join again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<ResumeTicket>,
}

/// What a client needs to resume its session (`welcome.resume`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeTicket {
    /// The secret that names the session: 64 hex digits, never logged or stored.
    pub token: String,
    /// How long the server keeps the session after its socket dropped.
    pub window_ms: u64,
}

/// What happened with a second device on one participant's link, as
/// [`ServerMessage::SecondDevice`] tells the court.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceEvent {
    /// A second device waits for the court (`admit_device` / `refuse_device`); the
    /// first keeps the seat.
    Waiting,
    /// The second device took the seat and the first was closed (`replace` mode, or
    /// the court admitted the waiting device).
    Replaced,
    /// The second device was turned away (`refuse` mode, or the court refused it).
    Refused,
    /// The waiting device went away (closed, or replaced by yet another device).
    Withdrawn,
}

/// What the server saw of one test track in a self-test (`self_test_report`): the
/// packets it received from the client, and those it sent back (forwarded) or could
/// not (dropped, the connection's queue was full). The client compares them with its
/// own `getStats()` counters: sent by it vs received here is the upstream loss,
/// forwarded here vs received by it the downstream loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelfTestTrack {
    pub kind: MediaKind,
    pub received_packets: u64,
    pub forwarded_packets: u64,
    pub dropped_packets: u64,
}

/// The end of a self-test (`self_test_report`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelfTestReport {
    /// From `self_test_ready` to this report.
    pub duration_ms: u64,
    /// Whether the test connection's ICE and DTLS came up at all.
    pub connected: bool,
    /// From the client's offer to the connection being up, when it came up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_ms: Option<u64>,
    /// Every track the client published on the test connection.
    pub tracks: Vec<SelfTestTrack>,
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
    /// A recording problem the presiding judge must know about (the disk failed, the
    /// recorder fell behind, recording could not start). Sent to participants whose
    /// role may `control_lifecycle`.
    RecordingAlert { message: String },
    /// Who sees and hears whom: the presiding judge, judges, assessors and the clerk
    /// get every cell; anyone else the cells of what they receive. Sent when a cell
    /// changes (the whole list each time).
    MediaHealth { cells: Vec<HealthCell> },
    /// A party and the presiding judge have not seen or heard each other for longer
    /// than `integrity.alert_after_seconds` (`raised`), or do again (`cleared`). Sent
    /// to the presiding judge and the clerk.
    IntegrityAlert(IntegrityAlert),
    /// This device opened a link that is in use on another device: it waits until the
    /// court admits it (then `welcome` follows) or refuses it (`second_device_refused`).
    /// Nothing else is sent to it meanwhile.
    DeviceWaiting { message: String },
    /// A participant's link was used on a second device. Sent to participants whose
    /// role may `admit` (the presiding judge, the clerk), also right after their own
    /// `welcome` for every device still waiting.
    SecondDevice {
        participant_id: Uuid,
        event: DeviceEvent,
        /// The second device's browser, as it introduced itself (shortened).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_agent: Option<String>,
        /// When it happened (RFC 3339).
        at: String,
    },
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
    /// The server stopped (`paused: true`) or resumed sending you a participant's
    /// video because your connection cannot carry it (its bandwidth estimate is below
    /// what the smallest layer needs after everyone's audio). Audio is never paused.
    VideoPaused { participant_id: Uuid, paused: bool },
    /// The server's answer to the client's offer.
    Answer { sdp: String },
    /// A server-initiated offer (tracks added or removed); answer it with `answer`.
    Offer { sdp: String },
    /// A trickled ICE candidate of the server's.
    Candidate { candidate: IceCandidate },
    /// Reply to `ping`.
    Pong { id: u64 },
    /// The `self_test` was accepted: offer the test stream now; the server reports
    /// after `seconds` and closes the socket.
    SelfTestReady { seconds: u32 },
    /// The self-test's end: what the server received and sent back. The socket
    /// closes right after it (1000).
    SelfTestReport(SelfTestReport),
    /// The session was resumed on this socket (reply to `resume`); the `replayed`
    /// messages the client had missed follow, in their order.
    Resumed { replayed: u64 },
    /// Something the client sent was refused. When `fatal` is true the server closes
    /// the socket right after this message.
    Error {
        code: ErrorCode,
        message: String,
        fatal: bool,
        /// With `join_rate_limited`: milliseconds until a join will be accepted again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
}

impl ServerMessage {
    /// The `type` tag of this message, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            ServerMessage::Welcome(_) => "welcome",
            ServerMessage::HearingStatus { .. } => "hearing_status",
            ServerMessage::UnmuteRequested { .. } => "unmute_requested",
            ServerMessage::DeviceWaiting { .. } => "device_waiting",
            ServerMessage::SecondDevice { .. } => "second_device",
            ServerMessage::ConsultationAnswered { .. } => "consultation_answered",
            ServerMessage::RecordingAlert { .. } => "recording_alert",
            ServerMessage::MediaHealth { .. } => "media_health",
            ServerMessage::IntegrityAlert(_) => "integrity_alert",
            ServerMessage::RoomEnded { .. } => "room_ended",
            ServerMessage::ParticipantJoined { .. } => "participant_joined",
            ServerMessage::ParticipantUpdated { .. } => "participant_updated",
            ServerMessage::ParticipantLeft { .. } => "participant_left",
            ServerMessage::VideoPaused { .. } => "video_paused",
            ServerMessage::Answer { .. } => "answer",
            ServerMessage::Offer { .. } => "offer",
            ServerMessage::Candidate { .. } => "candidate",
            ServerMessage::Pong { .. } => "pong",
            ServerMessage::SelfTestReady { .. } => "self_test_ready",
            ServerMessage::SelfTestReport(_) => "self_test_report",
            ServerMessage::Resumed { .. } => "resumed",
            ServerMessage::Error { .. } => "error",
        }
    }

    /// Shorthand for an error message.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerMessage::Error {
            code,
            fatal: code.is_fatal(),
            message: message.into(),
            retry_after_ms: None,
        }
    }
}
