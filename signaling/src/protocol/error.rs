//! Every refusal the server reports, as a stable [`ErrorCode`]: whether it ends the
//! connection and with which WebSocket close code. The list is in declaration order
//! because the web client mirrors it (`ALL_ERROR_CODES` in `protocol.ts`).

use serde::{Deserialize, Serialize};

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
    /// Too many joins from this link or this network address in a short time; the
    /// socket is closed before anything is set up. `retry_after_ms` says when a join
    /// will be accepted again.
    JoinRateLimited,
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
    /// This link is already in use on another device and the server (or the court)
    /// does not let a second device take the seat; the socket is closed.
    SecondDeviceRefused,
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
    /// The hearing's links open only shortly before its scheduled time (or the new
    /// date of an adjournment); the message says from when.
    LinkNotYetValid,
    /// The participant named in the request is not part of this hearing.
    UnknownParticipant,
    /// The request does not apply to that participant now (e.g. admitting someone
    /// who is not in the lobby, calling in someone who is not a witness or expert).
    NotApplicable,
    /// The server is shutting down.
    ServerShutdown,
    /// The server cannot store changes right now (e.g. its disk is full), so it
    /// refused the request and nothing changed; retry later.
    StoreUnavailable,
    /// Something failed inside the server; the message says what.
    Internal,
    /// A `resume` names no session the server still keeps (it ended, its window
    /// passed, or it missed more messages than the server keeps); join again.
    ResumeFailed,
    /// A self-test of this participant is already running; wait for its report.
    SelfTestBusy,
}

impl ErrorCode {
    /// Every error code, in declaration order (the web client mirrors this list).
    pub const ALL: [ErrorCode; 41] = [
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
        ErrorCode::JoinRateLimited,
        ErrorCode::InvalidSdp,
        ErrorCode::InvalidCandidate,
        ErrorCode::NoOfferPending,
        ErrorCode::NegotiationConflict,
        ErrorCode::NegotiationTimeout,
        ErrorCode::PublishNotAllowed,
        ErrorCode::Replaced,
        ErrorCode::SecondDeviceRefused,
        ErrorCode::PermissionDenied,
        ErrorCode::InvalidTransition,
        ErrorCode::ReasonRequired,
        ErrorCode::HearingLocked,
        ErrorCode::HearingClosed,
        ErrorCode::AdmissionDenied,
        ErrorCode::Removed,
        ErrorCode::LinkRevoked,
        ErrorCode::LinkNotYetValid,
        ErrorCode::UnknownParticipant,
        ErrorCode::NotApplicable,
        ErrorCode::ServerShutdown,
        ErrorCode::StoreUnavailable,
        ErrorCode::Internal,
        ErrorCode::ResumeFailed,
        ErrorCode::SelfTestBusy,
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
                | ErrorCode::JoinRateLimited
                | ErrorCode::NegotiationTimeout
                | ErrorCode::Replaced
                | ErrorCode::SecondDeviceRefused
                | ErrorCode::HearingClosed
                | ErrorCode::AdmissionDenied
                | ErrorCode::Removed
                | ErrorCode::LinkRevoked
                | ErrorCode::LinkNotYetValid
                | ErrorCode::ServerShutdown
                | ErrorCode::ResumeFailed
                | ErrorCode::SelfTestBusy
        )
    }

    /// The WebSocket close code the server uses after a fatal error of this kind.
    /// 4401: authentication, 4404: not found, 4408: timeout, 4400: protocol, 4429:
    /// rate limit, 4409: replaced, second device refused or a self-test running, 4403: refused or removed
    /// by the court, 4410: hearing closed, 4425: link not yet valid (too early), 1001:
    /// going away, 1013: try again later, 1011: internal.
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
            ErrorCode::HearingNotFound | ErrorCode::ResumeFailed => 4404,
            ErrorCode::JoinTimeout | ErrorCode::NegotiationTimeout => 4408,
            ErrorCode::RateLimited | ErrorCode::JoinRateLimited => 4429,
            ErrorCode::Replaced | ErrorCode::SecondDeviceRefused | ErrorCode::SelfTestBusy => 4409,
            ErrorCode::LinkNotYetValid => 4425,
            ErrorCode::ServerShutdown => 1001,
            ErrorCode::StoreUnavailable => 1013,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ServerMessage;

    #[test]
    fn error_codes_serialize_snake_case() {
        let m = ServerMessage::error(ErrorCode::TokenWrongHearing, "x");
        let text = serde_json::to_string(&m).unwrap();
        assert!(text.contains(r#""code":"token_wrong_hearing""#), "{text}");
        assert!(text.contains(r#""fatal":true"#), "{text}");
        assert_eq!(ErrorCode::InvalidSdp.to_string(), "invalid_sdp");
        assert!(!ErrorCode::InvalidSdp.is_fatal());
        // A refused court action leaves the session as it was; a refused join
        // closes with "try again later".
        assert!(!ErrorCode::StoreUnavailable.is_fatal());
        assert_eq!(ErrorCode::StoreUnavailable.close_code(), 1013);
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
                ErrorCode::JoinRateLimited => 16,
                ErrorCode::InvalidSdp => 17,
                ErrorCode::InvalidCandidate => 18,
                ErrorCode::NoOfferPending => 19,
                ErrorCode::NegotiationConflict => 20,
                ErrorCode::NegotiationTimeout => 21,
                ErrorCode::PublishNotAllowed => 22,
                ErrorCode::Replaced => 23,
                ErrorCode::SecondDeviceRefused => 24,
                ErrorCode::PermissionDenied => 25,
                ErrorCode::InvalidTransition => 26,
                ErrorCode::ReasonRequired => 27,
                ErrorCode::HearingLocked => 28,
                ErrorCode::HearingClosed => 29,
                ErrorCode::AdmissionDenied => 30,
                ErrorCode::Removed => 31,
                ErrorCode::LinkRevoked => 32,
                ErrorCode::LinkNotYetValid => 33,
                ErrorCode::UnknownParticipant => 34,
                ErrorCode::NotApplicable => 35,
                ErrorCode::ServerShutdown => 36,
                ErrorCode::StoreUnavailable => 37,
                ErrorCode::Internal => 38,
                ErrorCode::ResumeFailed => 39,
                ErrorCode::SelfTestBusy => 40,
            }
        }
        for (i, c) in ErrorCode::ALL.into_iter().enumerate() {
            assert_eq!(position(c), i, "{c}");
        }
    }
}
