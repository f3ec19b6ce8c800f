//! Plain data the server hands to the recorder: configuration, hearing and track
//! descriptions, RTP packets and hearing events. Nothing here does I/O.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How a [`crate::HearingRecorder`] records.
#[derive(Debug, Clone)]
pub struct RecorderConfig {
    /// The recordings folder: one sub-folder per hearing is created in it.
    pub root: PathBuf,
    /// Target segment length in seconds (a video segment closes at the first
    /// keyframe after this, an audio segment at this boundary). Clamped to 1..=3600.
    pub segment_seconds: u32,
    /// Capacity of the bounded packet queue between `push_rtp` and the writer
    /// thread; when full, packets are dropped and journaled as a `queue_overflow` gap.
    pub queue_packets: usize,
    /// At most one keyframe request per track per this interval.
    pub keyframe_throttle: Duration,
}

impl RecorderConfig {
    /// Defaults: 10 s segments, 4096 queued packets, one keyframe request per second.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            segment_seconds: 10,
            queue_packets: 4096,
            keyframe_throttle: Duration::from_secs(1),
        }
    }
}

/// The hearing an archive belongs to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HearingMeta {
    /// The hearing's id; also the archive folder's name (sanitised).
    pub hearing_id: String,
    /// The court's case number, e.g. `HS-1/2026`.
    pub case_number: String,
    /// Human title.
    pub title: String,
    /// The court or site that hosts the hearing, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub court: Option<String>,
    /// When the hearing was scheduled to start, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_start: Option<DateTime<Utc>>,
}

/// Audio or video.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    Audio,
    Video,
}

/// The codecs the recorder writes without transcoding.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Codec {
    /// RFC 7587, one Opus packet per RTP packet; written to WebM.
    Opus,
    /// RFC 7741; written to WebM.
    Vp8,
    /// RFC 6184 (packetization-mode 0 or 1); written to Matroska.
    H264,
}

impl Codec {
    /// The media kind this codec carries.
    pub fn kind(self) -> MediaKind {
        match self {
            Codec::Opus => MediaKind::Audio,
            Codec::Vp8 | Codec::H264 => MediaKind::Video,
        }
    }
    /// File extension of this codec's segments.
    pub fn extension(self) -> &'static str {
        match self {
            Codec::Opus | Codec::Vp8 => "webm",
            Codec::H264 => "mkv",
        }
    }
}

/// One published track to record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TrackMeta {
    /// Unique within the hearing; used (sanitised) in segment file names.
    pub track_id: String,
    /// The publishing participant; their segments go in a folder of this name (sanitised).
    pub participant_id: String,
    /// Display name, used for render labels.
    pub name: String,
    /// Court role, e.g. `presiding_judge`.
    pub role: String,
    /// The site (điểm cầu) the participant is at.
    pub site: String,
    /// Audio or video; must match `codec`.
    pub kind: MediaKind,
    pub codec: Codec,
    /// RTP clock rate (48000 for Opus, 90000 for video).
    pub clock_rate: u32,
}

/// One RTP packet as the SFU received it (header fields already parsed; header
/// extensions are not needed). Push every packet of the track, including
/// padding-only ones (empty `payload`): they are ignored, but a missing sequence
/// number counts as loss.
#[derive(Debug, Clone)]
pub struct RtpPacket {
    pub ssrc: u32,
    pub seq: u16,
    pub timestamp: u32,
    pub marker: bool,
    pub payload_type: u8,
    /// The RTP payload (after the header, extensions and padding are removed; may be empty).
    pub payload: Bytes,
    /// When the SFU received it; used as the wall clock until a sender report arrives,
    /// and to bound how long the reorder buffer waits.
    pub arrival: SystemTime,
}

/// What a hearing event is about.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The hearing's state changed (`details` names from/to).
    StateChanged,
    Joined,
    Left,
    Muted,
    Unmuted,
    PrivateRoomEntered,
    PrivateRoomExited,
    /// A (publisher -> subscriber) pair's media health changed (`details`: publisher,
    /// subscriber, kind, from, to, cause).
    MediaHealth,
    /// Anything else the server wants in the record.
    Other(String),
}

/// A hearing event to put in the journal.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HearingEvent {
    pub at: DateTime<Utc>,
    pub kind: EventKind,
    /// Who did it (participant id or `system`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Whom it concerns (participant id), if anyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Free-form details (e.g. `{"from":"lobby","to":"in_session"}`).
    #[serde(default)]
    pub details: serde_json::Value,
}

/// Why part of a track is missing from the record.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum GapCause {
    /// The writer fell behind and the bounded queue dropped packets.
    QueueOverflow,
    /// Packets never arrived; the frames they belonged to were dropped.
    PacketLoss,
    /// Writing a segment failed (disk full, unwritable folder, ...).
    DiskError,
    /// Recording was paused (hearing suspended).
    Paused,
    PrivateRoom,
    Lobby,
    Muted,
    /// The server stopped (crash) and the archive was sealed later.
    Interrupted,
}

impl GapCause {
    pub fn as_str(self) -> &'static str {
        match self {
            GapCause::QueueOverflow => "queue_overflow",
            GapCause::PacketLoss => "packet_loss",
            GapCause::DiskError => "disk_error",
            GapCause::Paused => "paused",
            GapCause::PrivateRoom => "private_room",
            GapCause::Lobby => "lobby",
            GapCause::Muted => "muted",
            GapCause::Interrupted => "interrupted",
        }
    }
}

/// What the server says when it closes the archive.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CloseSummary {
    /// Why recording ended, e.g. `hearing_closed`, `postponed`.
    pub reason: String,
    /// Anything else worth keeping in the manifest.
    #[serde(default)]
    pub details: serde_json::Value,
}

/// Something the presiding judge should know about the recording.
#[derive(Debug, Clone, PartialEq)]
pub struct RecorderAlert {
    pub at: DateTime<Utc>,
    pub kind: AlertKind,
    /// A sentence for humans.
    pub message: String,
}

/// The kinds of [`RecorderAlert`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertKind {
    /// Packets were dropped because the writer fell behind.
    QueueOverflow { track_id: String, dropped: u64 },
    /// A segment could not be written; media for this track is not being recorded.
    DiskError { track_id: String },
    /// The journal could not be written; entries are held in memory and retried.
    JournalError,
    /// Writing works again after an error.
    Recovered { track_id: Option<String> },
}
