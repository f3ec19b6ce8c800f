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
//!
//! The types are split by concern, each re-exported here at its old path
//! (`openhearing_signaling::protocol::Role`, `openhearing_signaling::Role`):
//!
//! * `roles`: who takes part and what they may do ([`Role`], [`SiteKind`], [`Action`]).
//! * `state`: the hearing and its participants as the server shows them
//!   ([`HearingState`], [`HearingStatus`], [`ParticipantInfo`], private rooms).
//! * `client`: [`ClientMessage`] and [`decode_client`], the one decoder of client frames.
//! * `server`: [`ServerMessage`] and the [`Welcome`] it opens with.
//! * `health`: the client's reception report and the server's media-health verdicts
//!   ([`RemoteReception`], [`HealthCell`], [`IntegrityAlert`]).
//! * `error`: [`ErrorCode`], the stable codes of every refusal and what each closes with.

mod client;
mod error;
mod health;
mod roles;
mod server;
mod state;

pub use client::{decode_client, ClientMessage, DecodeError, IceCandidate};
pub use error::ErrorCode;
pub use health::{
    AlertState, AudioReception, HealthCell, HealthGrade, IntegrityAlert, MediaKind,
    RemoteReception, VideoReception,
};
pub use roles::{Action, Role, SiteKind, UnknownAction, UnknownRole, UnknownSiteKind};
pub use server::{
    DeviceEvent, ResumeTicket, SelfTestReport, SelfTestTrack, ServerMessage, Welcome,
};
pub use state::{
    Admission, Connection, ConsultationRequest, HearingInfo, HearingState, HearingStatus,
    ParticipantInfo, RoomInfo, RoomKind, StateChange, UnknownState,
};

/// The protocol version this crate speaks. A server refuses a `join` with another
/// version with [`ErrorCode::UnsupportedVersion`].
pub const PROTOCOL_VERSION: u32 = 1;
