//! Media health on the wire: what a client reports of its own reception
//! ([`RemoteReception`], in `media_report`), and what the server decides of every
//! (publisher → subscriber) pair ([`HealthCell`], in `media_health`) and tells the
//! bench when a party and the presiding judge lose each other ([`IntegrityAlert`]).
//!
//! The client's counters are **cumulative** (as the browser's `getStats()` gives
//! them, summed over the receivers of one remote participant), so the server can
//! compare them with what it forwarded on those legs; it never takes them on trust.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How well one kind of media reaches a subscriber from a publisher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthGrade {
    Ok,
    /// Arrives, impaired (the SFU drops packets for the leg, audio is concealed,
    /// video freezes).
    Degraded,
    /// Does not arrive.
    Lost,
}

impl HealthGrade {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthGrade::Ok => "ok",
            HealthGrade::Degraded => "degraded",
            HealthGrade::Lost => "lost",
        }
    }
}

/// Audio or video, as health cells and alerts name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    Audio,
    Video,
}

impl MediaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
        }
    }
}

/// A client's reception of one remote participant's audio, cumulative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AudioReception {
    /// RTP packets of the forwarded stream received, repairs not counted
    /// (`inbound-rtp.packetsReceived − retransmittedPacketsReceived`): the server
    /// compares it with the packets it forwarded, and a retransmission is a second
    /// copy of one of those.
    pub packets_received: u64,
    /// Audio samples played out (`totalSamplesReceived`).
    pub samples_received: u64,
    /// Of those, samples the decoder had to invent (`concealedSamples`).
    pub concealed_samples: u64,
}

/// A client's reception of one remote participant's camera, cumulative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VideoReception {
    /// RTP packets of the forwarded stream received, repairs not counted
    /// (`inbound-rtp.packetsReceived − retransmittedPacketsReceived`): the server
    /// compares it with the packets it forwarded, and a retransmission is a second
    /// copy of one of those.
    pub packets_received: u64,
    /// Frames decoded (`framesDecoded`).
    pub frames_decoded: u64,
    /// Time the picture stood frozen, in milliseconds (`totalFreezesDuration`).
    pub freeze_ms: u64,
}

/// What a client receives of one remote participant (one entry of `media_report`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteReception {
    pub participant_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<AudioReception>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<VideoReception>,
}

/// The server's verdict on one (publisher → subscriber) pair. A kind is absent
/// when no media of it is expected (camera or microphone off, court mute, a private
/// room: media the policy withholds is not an outage).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCell {
    pub publisher: Uuid,
    pub subscriber: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<HealthGrade>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<HealthGrade>,
}

/// Whether an integrity alert starts or ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// The media has been lost for longer than `integrity.alert_after_seconds`.
    Raised,
    /// It arrives again, or is no longer expected (`cause` says which).
    Cleared,
}

/// The body of `integrity_alert`: a party and the presiding judge cannot see or
/// hear each other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntegrityAlert {
    /// The party concerned (never the presiding judge).
    pub participant_id: Uuid,
    pub publisher: Uuid,
    pub subscriber: Uuid,
    pub kind: MediaKind,
    pub state: AlertState,
    /// Since when the media has been lost (RFC 3339).
    pub since: String,
    /// Why: `publisher_silent`, `not_forwarded`, `no_leg`, `reports_stopped`,
    /// `not_received`, `not_decoded`, `concealed`; on clearing `recovered` or
    /// `not_expected`.
    pub cause: String,
}
