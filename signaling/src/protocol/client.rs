//! What a client sends: every [`ClientMessage`], the [`IceCandidate`] shape both sides
//! trickle, and [`decode_client`], which the server uses so that bad JSON, an unknown
//! `type` and a known type with bad fields each get their own [`ErrorCode`].

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{ErrorCode, RemoteReception, StateChange};

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

/// Messages a client sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Must be the first message. `v` is the protocol version the client speaks.
    /// `tab`: an unguessable id the client chose for itself and keeps across its own
    /// reconnects (a browser tab: `sessionStorage`); a rejoin with the `tab` of the
    /// seated session takes the seat back without waiting as a second device.
    /// `resumable`: the client can `resume` this session over a new socket, so the
    /// server keeps it for a while when its socket drops (PROTOCOL.md, *Resuming*).
    Join {
        v: u32,
        token: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tab: Option<String>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        resumable: bool,
    },
    /// Instead of `join`, as the first message of a new socket: takes the session
    /// whose `welcome.resume.token` this is back, with its PeerConnection, without a
    /// new join. `received`: how many messages the client got after `welcome` (not
    /// counting `resumed`); the server replays the rest.
    Resume {
        v: u32,
        resume: String,
        received: u64,
    },
    /// Instead of `join`, as the first message of a new socket: a pre-join network
    /// test (PROTOCOL.md, *Self-test*). The same token and checks as `join`, but the
    /// participant does not enter the hearing: the server answers `self_test_ready`,
    /// the client offers a test stream, the server sends it straight back on the same
    /// connection and after `seconds` (1 to 15, default 8) sends `self_test_report`
    /// and closes the socket.
    SelfTest {
        v: u32,
        token: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seconds: Option<u32>,
    },
    /// The client's SDP offer (its own tracks). Sent once after `welcome`; may be sent
    /// again to change what the client publishes or to restart ICE, but only when no
    /// server offer is outstanding.
    Offer { sdp: String },
    /// The client's answer to a server `offer`.
    Answer { sdp: String },
    /// A trickled ICE candidate of the client's.
    Candidate { candidate: IceCandidate },
    /// The client's own microphone/camera state, shown to others.
    MediaState { audio: bool, video: bool },
    /// What this client receives of each remote participant, cumulative, sent every
    /// 2 s while media flows. The server checks it against what it forwarded.
    MediaReport { remotes: Vec<RemoteReception> },
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
    /// Seat the device waiting for this participant (their link was opened on a
    /// second device while the first was connected): the first device is closed with
    /// `replaced` and the waiting one takes the seat (`admit`).
    AdmitDevice { participant_id: Uuid },
    /// Send away the device waiting for this participant; it is closed with
    /// `second_device_refused` and the first device keeps the seat (`admit`).
    RefuseDevice { participant_id: Uuid },
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
            ClientMessage::Resume { .. } => "resume",
            ClientMessage::SelfTest { .. } => "self_test",
            ClientMessage::Offer { .. } => "offer",
            ClientMessage::Answer { .. } => "answer",
            ClientMessage::Candidate { .. } => "candidate",
            ClientMessage::MediaState { .. } => "media_state",
            ClientMessage::MediaReport { .. } => "media_report",
            ClientMessage::Ping { .. } => "ping",
            ClientMessage::Leave => "leave",
            ClientMessage::Admit { .. } => "admit",
            ClientMessage::AdmitAll => "admit_all",
            ClientMessage::AdmitDevice { .. } => "admit_device",
            ClientMessage::RefuseDevice { .. } => "refuse_device",
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

const CLIENT_TYPES: [&str; 30] = [
    "join",
    "offer",
    "answer",
    "candidate",
    "media_state",
    "media_report",
    "ping",
    "leave",
    "admit",
    "admit_all",
    "admit_device",
    "refuse_device",
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
    "resume",
    "self_test",
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
    use crate::protocol::{AudioReception, HearingState};

    #[test]
    fn client_messages_round_trip() {
        let msgs = vec![
            ClientMessage::Join {
                v: 1,
                token: "t".into(),
                tab: None,
                resumable: false,
            },
            ClientMessage::Join {
                v: 1,
                token: "t".into(),
                tab: Some("0123456789abcdef0123".into()),
                resumable: true,
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
            ClientMessage::MediaReport {
                remotes: vec![RemoteReception {
                    participant_id: Uuid::nil(),
                    audio: Some(AudioReception {
                        packets_received: 100,
                        samples_received: 96_000,
                        concealed_samples: 480,
                    }),
                    video: None,
                }],
            },
            ClientMessage::Ping { id: 7 },
            ClientMessage::Leave,
            ClientMessage::Admit {
                participant_id: Uuid::nil(),
            },
            ClientMessage::AdmitAll,
            ClientMessage::AdmitDevice {
                participant_id: Uuid::nil(),
            },
            ClientMessage::RefuseDevice {
                participant_id: Uuid::nil(),
            },
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
            ClientMessage::Resume {
                v: 1,
                resume: "ab".repeat(32),
                received: 17,
            },
            ClientMessage::SelfTest {
                v: 1,
                token: "t".into(),
                seconds: Some(5),
            },
        ];
        assert_eq!(
            msgs.len(),
            CLIENT_TYPES.len() + 1,
            "join twice: with and without a tab"
        );
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
}
