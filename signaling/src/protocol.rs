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

/// What a participant is in the hearing. Its meaning (who may publish, who waits in
/// the lobby) is decided by the server; the client only displays it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    PresidingJudge,
    Judge,
    Clerk,
    Prosecutor,
    Defendant,
    DefenceCounsel,
    Witness,
    Interpreter,
    Observer,
}

impl Role {
    /// Every role, in the order a court lists them.
    pub const ALL: [Role; 9] = [
        Role::PresidingJudge,
        Role::Judge,
        Role::Clerk,
        Role::Prosecutor,
        Role::Defendant,
        Role::DefenceCounsel,
        Role::Witness,
        Role::Interpreter,
        Role::Observer,
    ];

    /// The wire name (`presiding_judge`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::PresidingJudge => "presiding_judge",
            Role::Judge => "judge",
            Role::Clerk => "clerk",
            Role::Prosecutor => "prosecutor",
            Role::Defendant => "defendant",
            Role::DefenceCounsel => "defence_counsel",
            Role::Witness => "witness",
            Role::Interpreter => "interpreter",
            Role::Observer => "observer",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for [`Role::from_str`](std::str::FromStr::from_str).
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown role `{0}`; expected one of: presiding_judge, judge, clerk, prosecutor, defendant, defence_counsel, witness, interpreter, observer")]
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
}

/// A participant as others see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantInfo {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    /// The site (điểm cầu) the participant joins from, e.g. "Trại tạm giam số 1".
    pub site: String,
    /// Whether the participant is connected to the hearing now.
    pub present: bool,
    /// Self-reported microphone state (`true` = sending audio).
    pub audio: bool,
    /// Self-reported camera state (`true` = sending video).
    pub video: bool,
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
        }
    }
}

/// Messages the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The join was accepted.
    Welcome {
        v: u32,
        /// The joining participant, as others see them.
        you: ParticipantInfo,
        hearing: HearingInfo,
        /// Every participant of the hearing except `you`, present or not.
        participants: Vec<ParticipantInfo>,
        /// The largest text frame the server accepts, in bytes.
        max_message_bytes: usize,
        /// Whether this participant may publish audio and video.
        can_publish: bool,
    },
    /// A participant connected.
    ParticipantJoined { participant: ParticipantInfo },
    /// A participant's state (presence, microphone, camera) changed.
    ParticipantUpdated { participant: ParticipantInfo },
    /// A participant disconnected; their tracks have been removed.
    ParticipantLeft {
        participant_id: Uuid,
        /// `left`, `connection_lost` or `replaced`.
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
            ServerMessage::Welcome { .. } => "welcome",
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
    /// The server is shutting down.
    ServerShutdown,
    /// Something failed inside the server; the message says what.
    Internal,
}

impl ErrorCode {
    /// Every error code, in declaration order (the web client mirrors this list).
    pub const ALL: [ErrorCode; 25] = [
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
                | ErrorCode::ServerShutdown
        )
    }

    /// The WebSocket close code the server uses after a fatal error of this kind.
    /// 4401: authentication, 4404: not found, 4408: timeout, 4400: protocol, 4429:
    /// rate limit, 4409: replaced, 1001: going away, 1011: internal.
    pub fn close_code(self) -> u16 {
        match self {
            ErrorCode::TokenMissing
            | ErrorCode::TokenMalformed
            | ErrorCode::TokenInvalid
            | ErrorCode::TokenExpired
            | ErrorCode::TokenWrongHearing
            | ErrorCode::ParticipantUnknown => 4401,
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

const CLIENT_TYPES: [&str; 7] = [
    "join",
    "offer",
    "answer",
    "candidate",
    "media_state",
    "ping",
    "leave",
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
        ];
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
                ErrorCode::ServerShutdown => 23,
                ErrorCode::Internal => 24,
            }
        }
        for (i, c) in ErrorCode::ALL.into_iter().enumerate() {
            assert_eq!(position(c), i, "{c}");
        }
    }
}
