//! A headless OpenHearing participant.
//!
//! The server's integration tests (and, later, the load generator) need participants
//! that behave like a browser on the wire but run inside a Rust test: they join through
//! the real signaling protocol, negotiate a real WebRTC session (webrtc 0.21, loopback
//! only), publish real media (a VP8 clip and an Opus clip produced once by the `ffmpeg`
//! CLI) and check what they receive *by content*: every VP8 frame reassembled from RTP
//! and every Opus payload is hashed, and a test can ask how many of those hashes are
//! among the frames the other participants actually sent.
//!
//! The crate has three layers:
//! - [`fixtures`]: generates and loads the media clips ([`MediaFixtures`]).
//! - [`media_peer`]: one PeerConnection configured like a real client ([`MediaPeer`]):
//!   publishes the clips in real time, reassembles and counts what it receives
//!   ([`ReceiveStats`]). It knows nothing about signaling, so two of them can be wired
//!   together by hand (the crate's own tests do that).
//! - [`participant`]: [`Participant`] glues a [`SignalingClient`] and a [`MediaPeer`]:
//!   join, offer, answer server offers, trickle ICE, record server events.
//!
//! Network rule: every socket binds 127.0.0.1 only.
//!
//! [`SignalingClient`]: openhearing_signaling::client::SignalingClient

#![forbid(unsafe_code)]

pub mod fixtures;
pub mod hash;
pub mod media_peer;
pub mod participant;
pub mod sdp;
pub mod selftest;
pub mod stats;

pub use fixtures::{MediaFixtures, VideoFrame};
pub use media_peer::{MediaKind, MediaPeer, ReceiveOptions, RtpTap, RtpWriter};
pub use participant::{JoinOptions, JoinTiming, Participant};
pub use selftest::{run_self_test, SelfTestOutcome};
pub use stats::{EndSignal, KindStats, ReceiveStats, StreamStats};

use std::time::Duration;

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The `ffmpeg` CLI is not installed or not on `PATH`.
    #[error("the ffmpeg CLI was not found on PATH ({0}); install ffmpeg with libvpx and libopus")]
    FfmpegMissing(std::io::Error),
    /// `ffmpeg` ran but failed.
    #[error("ffmpeg failed making {what}: {detail}")]
    Ffmpeg { what: String, detail: String },
    /// A media file could not be parsed.
    #[error("could not parse {what}: {detail}")]
    Media { what: String, detail: String },
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// An error from webrtc/rtc.
    #[error("webrtc: {0}")]
    WebRtc(#[from] webrtc::error::Error),
    /// An error from the signaling client (connect, join refused, closed ...).
    #[error("signaling: {0}")]
    Signaling(#[from] openhearing_signaling::client::ClientError),
    /// A bounded wait ran out.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout { what: String, after: Duration },
    /// The peer or participant is in a state where the call makes no sense.
    #[error("{0}")]
    State(String),
    /// The peer connection failed or closed.
    #[error("peer connection {0}")]
    Connection(String),
}
