//! # openhearing-recorder
//!
//! A crash-safe, tamper-evident archive of every hearing (issue 5). Courts keep the
//! record for years and must show it was not altered, so the recorder keeps every
//! participant's own tracks without transcoding, aligned on one wall clock, in
//! independently decodable segments, listed in a hash-chained journal and summed up
//! in an Ed25519-signed manifest. This crate knows nothing about WebRTC: the server
//! hands it parsed RTP ([`RtpPacket`]) and RTCP sender reports.
//!
//! ## Data flow
//!
//! ```text
//!  SFU reader task ── TrackPush::push_rtp, push_sender_report ────────────┐
//!                     (never blocks; drops past queue_packets)            │ one ordered
//!  hearing actor ── HearingRecorder: add_track, remove_track, pause, … ───┤ channel
//!                                                                         ▼
//!                  writer thread (one per hearing; all blocking work lives here)
//!   reorder buffer ─▶ depacketiser ─▶ RTP→wall clock ─▶ segmenter ─▶ ffmpeg mux ─▶ fsync,
//!   (seq order,       (VP8/Opus/H.264,  (sender reports,  (~N s, video    rename, SHA-256
//!    bounded wait)     drop incomplete)  else arrival)     on keyframes)   ─▶ journal entry
//!        │                   │                                  │
//!        └─ loss ─▶ gap entry, keyframe request ◀─ waiting for a keyframe
//!   per track: on_keyframe() (given at add_track; throttled)
//!   per archive: on_alert(RecorderAlert) (given at open)
//! ```
//!
//! [`live`] is the front end ([`HearingRecorder`], and the per-track [`TrackPush`]
//! that `add_track` returns, so the media path pushes without any map lookup or
//! shared lock); `writer` is the thread. Packets and control messages travel in one
//! ordered channel, so the writer applies everything in the order the server called
//! it (`add_track` then `push_rtp`, packets then `pause`, ...). Only packets count
//! against `queue_packets`; control messages are never dropped. What the writer has
//! to tell the server goes through callbacks it calls on its own thread (they must
//! not block): each track's keyframe request, and the archive's alerts.
//!
//! ## API the server calls
//!
//! ```no_run
//! use std::time::{Duration, SystemTime};
//! use openhearing_recorder::*;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // At server start: the signing key, then seal what a crash left open.
//! let (key, _created) = ArchiveKey::load_or_create(std::path::Path::new("data"))?;
//! for (dir, result) in scan_and_seal(std::path::Path::new("data/recordings"), &key) {
//!     println!("{}: {:?}", dir.display(), result.map(|o| o.cut_at));
//! }
//! // When the hearing goes in_session:
//! let cfg = RecorderConfig { root: "data/recordings".into(), segment_seconds: 10,
//!                            queue_packets: 4096, keyframe_throttle: Duration::from_secs(1) };
//! // Alerts (tell the judge) arrive on the writer thread: hand them on, do not block.
//! let (alert_tx, alerts) = crossbeam_channel::unbounded::<RecorderAlert>();
//! let rec = HearingRecorder::open(cfg, key, HearingMeta {
//!     hearing_id: "67e55044".into(), case_number: "HS-1/2026".into(),
//!     title: "Demo".into(), court: None, scheduled_start: None },
//!     move |alert| { let _ = alert_tx.send(alert); })?;
//! // The second argument asks the publisher for a keyframe (send a PLI).
//! let media = rec.add_track(TrackMeta { track_id: "t1".into(), participant_id: "p1".into(),
//!     name: "Nguyễn Văn A".into(), role: "presiding_judge".into(), site: "Phòng 1".into(),
//!     kind: MediaKind::Video, codec: Codec::Vp8, clock_rate: 90_000 }, || { /* PLI */ })?;
//! // For every RTP packet of that track (hot path; Err only means "not recorded").
//! // The SFU reader task keeps the track's `TrackPush`; the hearing actor keeps `rec`.
//! let _ = media.push_rtp(RtpPacket { ssrc: 1, seq: 1, timestamp: 0, marker: true,
//!     payload_type: 96, payload: bytes::Bytes::from_static(&[0x10, 0]), arrival: SystemTime::now() });
//! media.push_sender_report(1, 0xe000_0000_0000_0000, 0);
//! rec.pause("suspended")?;  rec.resume()?;
//! rec.event(HearingEvent { at: chrono::Utc::now(), kind: EventKind::Joined,
//!     actor: Some("p1".into()), subject: None, details: serde_json::Value::Null })?;
//! rec.gap(GapRecord { track_id: None, from: chrono::Utc::now(), to: chrono::Utc::now(),
//!     cause: GapCause::PrivateRoom, count: 0 })?;
//! rec.remove_track("t1", "unpublished")?;
//! let manifest = rec.close(CloseSummary { reason: "hearing_closed".into(), details: serde_json::Value::Null })?;
//! # let _ = (alerts, manifest); Ok(()) }
//! ```
//!
//! Offline: [`verify()`], [`info::info`], [`render::render`], and the CLI entry points
//! in [`cli`] (`verify_command`, `info_command`, `render_command`) which print their
//! text to a writer and return the exit code.
//!
//! ## Archive layout
//!
//! ```text
//! <root>/<hearing_id>/                 (a later part after a crash: <hearing_id>.part2/)
//!   journal.jsonl                       hash-chained entries, one JSON object per line
//!   <participant_id>/<track_id>-00001.webm   VP8 or Opus (…mkv for H.264)
//!   <participant_id>/<track_id>-00002.webm
//!   manifest.json, manifest.sig         written at close (or when sealed)
//!   *.partial, journal.torn             only in archives sealed after a crash: evidence
//! ```
//!
//! Names are sanitised to `[A-Za-z0-9._-]`. Journal entries (`type`): `archive_opened`
//! (hearing, signer's public key), `track_added`, `segment` (file, track, participant,
//! role, site, wall-clock start/end, duration, frames, size, SHA-256, discontinuity),
//! `gap` (track or all, from, to, cause: `queue_overflow`, `packet_loss`,
//! `disk_error`, `paused`, `private_room`, `lobby`, `muted`, `interrupted`),
//! `paused`/`resumed`, `event`, `track_removed`, `archive_closed`,
//! `archive_sealed_interrupted` (cut_at, last_seq, partial files, torn tail). See
//! [`journal`] for the hash rule and [`manifest`] for the signature.
//!
//! ## Timing
//!
//! Each track's RTP timestamps map to wall-clock time through its latest RTCP sender
//! report (fallback: the first packet's arrival until one arrives). Inside a segment
//! the pts are RTP time relative to the segment's first frame (Matroska's 1/1000 time
//! base, read back after the header); the journal records each segment's wall-clock
//! start and end, which `render` uses to align tracks across participants.
//!
//! ## Segments
//!
//! A segment is opened on the first frame (video: only a keyframe; the recorder asks
//! for one through the track's `on_keyframe`, at most once per `keyframe_throttle`), closed
//! after `segment_seconds` at the next keyframe (audio: at the boundary), at a
//! discontinuity (SSRC change, timestamp jump > 5 s or backwards, sequence restart),
//! on pause, on `remove_track` and on `close`. It is written as `*.partial`, finished
//! (trailer, `fsync`), renamed, the folder `fsync`ed, hashed, and only then journaled.
//!
//! ## Error and panic policy
//!
//! - The media path never blocks and never fails loudly: `push_rtp` (on a
//!   [`TrackPush`], or by id on the recorder) counts queued packets with an atomic and
//!   sends on an unbounded channel; past `queue_packets` it drops and counts the
//!   packet, and the drop run is journaled as a `queue_overflow` gap and alerted. Packet loss
//!   gaps are written in batches (one `fsync` per 250 ms at most).
//! - Nothing from the network is trusted: every length is checked, frames with a
//!   missing packet are dropped (never written), video then waits for a keyframe.
//!   There is no `unwrap` on input; the library does not panic on any packet.
//! - I/O errors never panic. A segment that cannot be written or closed is dropped
//!   (its temp file removed, or retried for removal), the track is marked
//!   `disk_error` until writing works again (retried every second, at a keyframe),
//!   then the gap is journaled; an alert goes out at the start and on recovery. A
//!   journal write that fails is rolled back to the last good line and the entries
//!   are held in memory (up to 100 000) and retried in order, so the chain never
//!   breaks; `close` then fails and the archive is sealed on the next start.
//! - Each module has its own `thiserror` enum ([`journal::JournalError`],
//!   [`key::KeyError`], [`manifest::ManifestError`], [`segment::SegmentError`],
//!   [`seal::SealError`], [`render::RenderError`], [`info::InfoError`],
//!   [`RecorderError`], [`PushError`]). Methods return them; nothing is logged and
//!   swallowed except on the writer thread, where errors become journal entries,
//!   counters ([`RecorderStats`]) and alerts.
//! - `HearingRecorder::open` sets FFmpeg's global log level to `error`.
//!
//! ## What a crash costs
//!
//! The segment each track was writing (up to `segment_seconds` per track) and any
//! entry not yet journaled. Everything journaled before verifies; see [`seal`]. The
//! journal is created with its first entry atomically, so an archive folder never
//! has a journal that cannot be sealed.

pub mod cli;
pub mod depack;
pub mod health;
pub mod info;
pub mod journal;
pub mod key;
pub mod live;
pub mod manifest;
pub mod render;
pub mod seal;
pub mod segment;
pub mod timing;
pub mod types;
pub mod verify;
mod writer;

pub use journal::{GapRecord, SegmentRecord};
pub use key::ArchiveKey;
pub use live::{HearingRecorder, PushError, RecorderError, RecorderStats, TrackPush};
pub use manifest::Manifest;
pub use seal::{scan_and_seal, seal_interrupted, SealError, SealOutcome};
pub use types::*;
pub use verify::{verify, Problem, VerifyReport};
