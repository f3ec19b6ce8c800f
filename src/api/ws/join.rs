//! The join phase of a signaling session: what the upgrade request says about the
//! device, reading and checking the `join` message (join rate limits first, then
//! the token) or a `resume` of a kept session, and a second device's wait for the
//! court.
//!
//! Apart from `ws.rs` because it is everything that happens before a session has a
//! PeerConnection: a join refused here (rate limited, bad token) or left waiting
//! costs no media port, no audit row and no notice.

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::USER_AGENT;
use axum::http::request::Parts;
use futures_util::StreamExt;
use openhearing_signaling::{
    decode_client, ClientMessage, ErrorCode, ServerMessage, PROTOCOL_VERSION,
};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::resume::Resumption;
use super::{is_oversize, too_large, EndReason, Outbox, SignalingState};
use crate::api::join_limit::TokenBucket;
use crate::hearing::{Device, Refusal, SessionCommand};

/// The connection's device as the upgrade request shows it: the peer address when
/// the server is served with connect info, and the `User-Agent` header.
pub struct SeenDevice(pub Device);

impl<S: Send + Sync> FromRequestParts<S> for SeenDevice {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let source = parts
            .extensions
            .get::<ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.to_string());
        let ua = parts.headers.get(USER_AGENT).and_then(|v| v.to_str().ok());
        Ok(SeenDevice(Device::new(source, ua)))
    }
}

/// A verified join.
pub(super) struct Authenticated {
    pub hearing_id: Uuid,
    pub participant: Uuid,
    pub link_version: u32,
    pub device: Device,
    /// `join.resumable`: keep the session for a `resume` when its socket breaks.
    pub resumable: bool,
}

/// What the first message asked for.
pub(super) enum Opening {
    /// A verified join.
    Join(Authenticated),
    /// A verified `self_test` (the same checks as a join so far), for `seconds`.
    SelfTest { auth: Authenticated, seconds: u32 },
    /// A kept session to take over, and how many of its messages the client has.
    Resume {
        target: mpsc::Sender<Resumption>,
        received: u64,
    },
}

/// Why no join: the refusal, and for a rate limit when to try again.
pub(super) struct JoinRefused(pub Refusal, pub Option<Duration>);

impl From<Refusal> for JoinRefused {
    fn from(r: Refusal) -> Self {
        JoinRefused(r, None)
    }
}

fn join_rate_limited(what: &str, retry: Duration) -> JoinRefused {
    JoinRefused(
        Refusal::new(
            ErrorCode::JoinRateLimited,
            format!(
                "too many joins {what}; try again in {} s",
                retry.as_secs_f64().ceil()
            ),
        ),
        Some(retry),
    )
}

pub(super) async fn await_join(
    stream: &mut futures_util::stream::SplitStream<WebSocket>,
    hearing: &str,
    st: &SignalingState,
    out: &Outbox,
    mut device: Device,
) -> Result<Opening, JoinRefused> {
    // Every attempt from an address counts, whatever its token: checked before the
    // token is even read.
    let ip = device
        .source
        .as_deref()
        .and_then(|s| s.parse::<std::net::SocketAddr>().ok())
        .map(|a| a.ip());
    if let Some(ip) = ip {
        if let Err(retry) = st.joins.source(ip) {
            tracing::info!(source = %ip, "join refused: rate limit of the source address");
            return Err(join_rate_limited("from this network address", retry));
        }
    }
    let text = loop {
        match stream.next().await {
            Some(Ok(Message::Text(t))) => break t,
            Some(Ok(Message::Binary(_))) => {
                return Err(Refusal::new(
                    ErrorCode::NotJoined,
                    "the first message must be a JSON `join` text frame",
                )
                .into())
            }
            Some(Err(e)) if is_oversize(&e) => {
                out.close_too_big();
                return Err(Refusal::new(
                    ErrorCode::MessageTooLarge,
                    "a frame larger than the WebSocket limit (4x max_message_bytes or 2x max_sdp_bytes)",
                )
                .into());
            }
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                return Err(
                    Refusal::new(ErrorCode::NotJoined, "connection closed before joining").into(),
                )
            }
            Some(Ok(_)) => continue, // ping/pong
        }
    };
    if text.len() > st.limits.max_message_bytes {
        return Err(Refusal::new(
            ErrorCode::MessageTooLarge,
            too_large(text.len(), st.limits.max_message_bytes),
        )
        .into());
    }
    // `Some(seconds)`: a self-test rather than a join.
    let (v, token, resumable, self_test) = match decode_client(&text) {
        Ok(ClientMessage::Join {
            v,
            token,
            tab,
            resumable,
        }) => {
            device = device.with_tab(tab);
            (v, token, resumable, None)
        }
        Ok(ClientMessage::SelfTest { v, token, seconds }) => (
            v,
            token,
            false,
            Some(super::selftest::granted_seconds(seconds)),
        ),
        Ok(ClientMessage::Resume {
            v,
            resume,
            received,
        }) => {
            check_version(v)?;
            let target = st
                .resumes
                .claim(&resume)
                .map_err(|e| Refusal::new(ErrorCode::ResumeFailed, e.to_string()))?;
            return Ok(Opening::Resume { target, received });
        }
        Ok(other) => {
            return Err(Refusal::new(
                ErrorCode::NotJoined,
                format!(
                    "the first message must be `join` (or `resume`, `self_test`), not `{}`",
                    other.kind()
                ),
            )
            .into())
        }
        Err(e) => return Err(Refusal::new(e.code(), e.to_string()).into()),
    };
    check_version(v)?;
    if token.trim().is_empty() {
        return Err(
            Refusal::new(ErrorCode::TokenMissing, "the join message carries no token").into(),
        );
    }
    let claims = st
        .tokens
        .verify(&token)
        .map_err(|e| Refusal::new(e.code(), e.to_string()))?;
    let hearing_id: Uuid = hearing.parse().map_err(|_| {
        Refusal::new(
            ErrorCode::HearingNotFound,
            format!("`{hearing}` is not a hearing id"),
        )
    })?;
    if claims.hearing_id != hearing_id {
        return Err(Refusal::new(
            ErrorCode::TokenWrongHearing,
            "this join link belongs to another hearing",
        )
        .into());
    }
    if let Err(retry) = st.joins.participant(claims.sub) {
        tracing::info!(participant = %claims.sub, "join refused: rate limit of the link");
        return Err(join_rate_limited("with this link", retry));
    }
    // Whether the hearing exists, the participant is still part of it, the link is
    // current and the hearing open to joins is the hearing actor's decision.
    let auth = Authenticated {
        hearing_id,
        participant: claims.sub,
        link_version: claims.ver,
        device,
        resumable,
    };
    Ok(match self_test {
        Some(seconds) => Opening::SelfTest { auth, seconds },
        None => Opening::Join(auth),
    })
}

fn check_version(v: u32) -> Result<(), JoinRefused> {
    if v != PROTOCOL_VERSION {
        return Err(Refusal::new(
            ErrorCode::UnsupportedVersion,
            format!("this server speaks protocol version {PROTOCOL_VERSION}, the client sent {v}"),
        )
        .into());
    }
    Ok(())
}

/// Fills in what the hearing cannot know (the message limit); returns whether the
/// participant may publish.
pub(super) fn fill_welcome(welcome: &mut ServerMessage, st: &SignalingState) -> bool {
    match welcome {
        ServerMessage::Welcome(w) => {
            w.max_message_bytes = st.limits.max_message_bytes;
            w.max_sdp_bytes = st.limits.max_sdp_bytes;
            w.can_publish
        }
        _ => false,
    }
}

/// A second device waits (no PeerConnection yet) until the hearing seats it (a
/// `welcome` arrives) or closes it. Commands that arrive with or before the welcome
/// are kept in `early` for the session to carry out once it runs.
pub(super) async fn wait_for_seat(
    stream: &mut futures_util::stream::SplitStream<WebSocket>,
    commands: &mut mpsc::UnboundedReceiver<SessionCommand>,
    early: &mut Vec<SessionCommand>,
    st: &SignalingState,
    out: &Outbox,
) -> Result<ServerMessage, EndReason> {
    let mut shutdown = st.shutdown.clone();
    let mut bucket = TokenBucket::new(f64::from(st.limits.rate_per_second), st.limits.burst);
    loop {
        tokio::select! {
            cmd = commands.recv() => match cmd {
                Some(SessionCommand::Send(w @ ServerMessage::Welcome(_))) => return Ok(w),
                Some(SessionCommand::Send(m)) => { out.send(m); }
                Some(SessionCommand::Kick { code, message }) => {
                    out.fatal(code, message);
                    return Err(EndReason::Kicked(code));
                }
                Some(other) => early.push(other),
                None => return Err(EndReason::ConnectionLost),
            },
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(t))) => {
                    if !bucket.take() {
                        out.fatal(ErrorCode::RateLimited, "too many messages; the connection is closed");
                        return Err(EndReason::ConnectionLost);
                    }
                    match decode_client(&t) {
                        Ok(ClientMessage::Leave) => return Err(EndReason::Left),
                        Ok(ClientMessage::Ping { id }) => { out.send(ServerMessage::Pong { id }); }
                        Ok(_) => {
                            out.error(ErrorCode::NotApplicable, "this device is waiting for the court; only `ping` and `leave` are accepted");
                        }
                        Err(e) => { out.error(e.code(), e.to_string()); }
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Err(EndReason::ConnectionLost),
                Some(Ok(_)) => {}
            },
            _ = shutdown.changed() => {
                out.fatal(ErrorCode::ServerShutdown, "the server is shutting down; rejoin in a moment");
                return Err(EndReason::Shutdown);
            }
        }
    }
}
