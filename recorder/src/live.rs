//! The live recorder's front end: what the server and the media path call. It never
//! does blocking work itself; everything is queued, in call order, to the hearing's
//! writer thread ([`crate::writer`]).
//!
//! Two kinds of caller, two kinds of object:
//! - the hearing (one owner) holds the [`HearingRecorder`]: tracks, pause and resume,
//!   events, gaps, close;
//! - each SFU reader task holds the [`TrackPush`] that `add_track` returned for its
//!   track. Pushing a packet through it takes no lock shared between tracks and no
//!   map lookup: a paused flag, the track's own (uncontended) mutex, one atomic for
//!   the queue bound, and the channel send. Past `queue_packets` the packet is dropped
//!   and counted in the track's drop run, which the next packet (or `remove_track`,
//!   or `close`) carries to the writer, so the journal gets one exact
//!   `queue_overflow` gap per run.
//!
//! Keyframe requests and alerts come back through callbacks given here (at
//! `add_track` and at `open`), called on the writer thread: no channel for the server
//! to drain, no thread of its own to drain it.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::SystemTime;

use chrono::Utc;
use crossbeam_channel::{bounded, unbounded, Sender};
use tracing::{error, info};

use crate::journal::{Entry, GapRecord, Journal, JournalError};
use crate::key::ArchiveKey;
use crate::manifest::{Manifest, ManifestError, MANIFEST_FILE};
use crate::seal;
use crate::types::{
    CloseSummary, Codec, HearingEvent, HearingMeta, MediaKind, RecorderAlert, RecorderConfig,
    RtpPacket, TrackMeta,
};
use crate::writer::{sanitize_name, Ctl, DataMsg, DropRun, Msg, Writer};

/// Errors of [`HearingRecorder`]'s methods (never of the media path).
#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    #[error("cannot create archive folder {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("ffmpeg could not be initialised: {0}")]
    Ffmpeg(String),
    #[error("track {0} is already being recorded")]
    DuplicateTrack(String),
    #[error("track {0}: codec {1:?} is not a {2:?} codec, or clock rate is 0")]
    InvalidTrack(String, Codec, MediaKind),
    #[error("the recorder's writer thread has stopped")]
    WriterStopped,
    #[error("cannot start the writer thread: {0}")]
    Spawn(std::io::Error),
}

/// Why a push did not queue a packet. None of these is serious for the caller: the
/// packet is simply not recorded (and, for `QueueFull`, journaled as a
/// `queue_overflow` gap).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// No such track, or (for a [`TrackPush`]) the track was removed since.
    #[error("no such track")]
    UnknownTrack,
    #[error("recorder queue full; packet dropped")]
    QueueFull,
    #[error("recording is paused")]
    Paused,
    #[error("the writer thread has stopped")]
    WriterStopped,
}

/// Counters, readable at any time.
#[derive(Debug, Default)]
pub struct RecorderStats {
    pub packets_queued: AtomicU64,
    pub packets_dropped_queue_full: AtomicU64,
    pub packets_dropped_paused: AtomicU64,
    pub segments_written: AtomicU64,
    pub write_errors: AtomicU64,
    pub journal_errors: AtomicU64,
    pub frames_dropped_incomplete: AtomicU64,
    pub keyframe_requests: AtomicU64,
}

/// Records one hearing. Everything is queued to the writer thread in call order;
/// packets go through the [`TrackPush`] each `add_track` returns.
pub struct HearingRecorder {
    dir: PathBuf,
    front: Arc<Front>,
    /// The tracks being recorded, for the control calls (and [`Self::push_rtp`]);
    /// the media path never looks here.
    tracks: Mutex<HashMap<String, TrackPush>>,
    /// One ordered channel for packets and control, so every message is applied in
    /// the order the server sent it; packets are bounded by `queued`, control is never dropped.
    tx: Option<Sender<Msg>>,
    thread: Option<JoinHandle<()>>,
}

/// What the recorder and every track's push handle share.
#[derive(Debug)]
struct Front {
    /// Packets in the channel now (the writer counts them down).
    queued: Arc<AtomicUsize>,
    capacity: usize,
    paused: AtomicBool,
    stats: Arc<RecorderStats>,
}

impl Front {
    fn refuse_if_paused(&self) -> Result<(), PushError> {
        if self.paused.load(Ordering::Relaxed) {
            self.stats
                .packets_dropped_paused
                .fetch_add(1, Ordering::Relaxed);
            return Err(PushError::Paused);
        }
        Ok(())
    }
}

/// Pushes one track's packets and sender reports into the recorder: the handle the
/// media path keeps per track (one per SFU reader task). Cheap to clone, `Send +
/// Sync`, never blocks. It does not keep the recorder open: after
/// [`HearingRecorder::close`] (or drop) its pushes return `WriterStopped`, and after
/// [`HearingRecorder::remove_track`] `UnknownTrack` (a track added again under the
/// same id gets a new handle).
#[derive(Debug, Clone)]
pub struct TrackPush {
    input: Arc<TrackInput>,
}

#[derive(Debug)]
struct TrackInput {
    id: Arc<str>,
    front: Arc<Front>,
    tx: Sender<Msg>,
    /// Held while a packet is queued, so `remove_track` (which retires the input under
    /// it) is ordered after every packet that got past the check.
    state: Mutex<InputState>,
}

#[derive(Debug, Default)]
struct InputState {
    drops: Option<DropRun>,
    removed: bool,
}

impl TrackInput {
    fn state(&self) -> std::sync::MutexGuard<'_, InputState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a packet (the paused check is the caller's).
    fn queue(&self, pkt: RtpPacket) -> Result<(), PushError> {
        let mut state = self.state();
        if state.removed {
            return Err(PushError::UnknownTrack);
        }
        let front = &self.front;
        if front.queued.fetch_add(1, Ordering::AcqRel) >= front.capacity {
            front.queued.fetch_sub(1, Ordering::AcqRel);
            front
                .stats
                .packets_dropped_queue_full
                .fetch_add(1, Ordering::Relaxed);
            let arrival = pkt.arrival;
            let run = state.drops.get_or_insert(DropRun {
                first: arrival,
                last: arrival,
                count: 0,
            });
            run.last = arrival;
            run.count += 1;
            return Err(PushError::QueueFull);
        }
        let msg = DataMsg {
            track: self.id.clone(),
            pkt,
            drops_before: state.drops.take(),
        };
        match self.tx.send(Msg::Data(msg)) {
            Ok(()) => {
                front.stats.packets_queued.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(_) => {
                front.queued.fetch_sub(1, Ordering::AcqRel);
                Err(PushError::WriterStopped)
            }
        }
    }

    /// The drop run not yet carried to the writer, as a control message.
    fn take_drops(&self, retire: bool) -> Option<Ctl> {
        let mut state = self.state();
        state.removed |= retire;
        let run = state.drops.take()?;
        Some(Ctl::Drops {
            track: self.id.clone(),
            run,
        })
    }
}

impl TrackPush {
    /// The track this handle pushes for.
    pub fn track_id(&self) -> &str {
        &self.input.id
    }

    /// Queues one RTP packet. Never blocks: when the queue is full the packet is
    /// dropped and counted, and a `queue_overflow` gap is journaled.
    pub fn push_rtp(&self, pkt: RtpPacket) -> Result<(), PushError> {
        self.input.front.refuse_if_paused()?;
        self.input.queue(pkt)
    }

    /// An RTCP sender report for the track (NTP time as the 64-bit 32.32 value).
    pub fn push_sender_report(&self, ssrc: u32, ntp_time: u64, rtp_time: u32) {
        let input = &self.input;
        if input.state().removed {
            return;
        }
        let _ = input.tx.send(Msg::Ctl(Ctl::SenderReport {
            track: input.id.clone(),
            ssrc,
            ntp: ntp_time,
            rtp: rtp_time,
        }));
    }
}

impl std::fmt::Debug for HearingRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HearingRecorder")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl HearingRecorder {
    /// Creates `<root>/<hearing_id>/` (or, if that holds an earlier archive of the
    /// same hearing, `<hearing_id>.partN/`; an earlier unsealed one is sealed first),
    /// writes the first journal entry and starts the writer thread.
    ///
    /// `on_alert` receives the problems the presiding judge should see (queue
    /// overflow, disk and journal errors, recovery). It is called on the writer
    /// thread and must not block (send on a channel and return).
    pub fn open(
        cfg: RecorderConfig,
        key: ArchiveKey,
        meta: HearingMeta,
        on_alert: impl Fn(RecorderAlert) + Send + 'static,
    ) -> Result<Self, RecorderError> {
        ff_init()?;
        let mut cfg = cfg;
        cfg.segment_seconds = cfg.segment_seconds.clamp(1, 3600);
        cfg.queue_packets = cfg.queue_packets.max(16);
        fs::create_dir_all(&cfg.root).map_err(|source| RecorderError::CreateDir {
            path: cfg.root.clone(),
            source,
        })?;
        let base = sanitize_name(&meta.hearing_id);
        let mut continues = None;
        let mut dir = cfg.root.join(&base);
        let mut part = 1u32;
        // Bounded: at most 10_000 parts of one hearing.
        while part < 10_000 && dir.join(crate::journal::JOURNAL_FILE).exists() {
            if !dir.join(MANIFEST_FILE).exists() {
                // An archive this server left open: seal it. If it cannot be sealed
                // it stays as it is for a human to look at; recording goes on in the
                // next part either way.
                if let Err(e) = seal::seal_interrupted(&dir, &key) {
                    error!(dir = %dir.display(), error = %e, "cannot seal an earlier archive of this hearing");
                }
            }
            continues = dir.file_name().map(|n| n.to_string_lossy().into_owned());
            part += 1;
            dir = cfg.root.join(format!("{base}.part{part}"));
        }
        fs::create_dir_all(&dir).map_err(|source| RecorderError::CreateDir {
            path: dir.clone(),
            source,
        })?;
        let journal = Journal::create(
            &dir,
            Utc::now(),
            Entry::ArchiveOpened {
                hearing: meta.clone(),
                recorder_version: env!("CARGO_PKG_VERSION").to_string(),
                public_key: key.public_hex(),
                segment_seconds: cfg.segment_seconds,
                continues,
            },
        )?;
        info!(dir = %dir.display(), hearing = %meta.hearing_id, "recording archive opened");

        let (tx, rx) = unbounded();
        let queued = Arc::new(AtomicUsize::new(0));
        let capacity = cfg.queue_packets;
        let stats = Arc::new(RecorderStats::default());
        let writer = Writer::new(
            cfg,
            dir.clone(),
            key,
            journal,
            Box::new(on_alert),
            stats.clone(),
            queued.clone(),
        );
        let thread = writer.spawn(format!("recorder-{}", &base[..base.len().min(20)]), rx)?;
        Ok(Self {
            dir,
            front: Arc::new(Front {
                queued,
                capacity,
                paused: AtomicBool::new(false),
                stats,
            }),
            tracks: Mutex::new(HashMap::new()),
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// The archive folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn stats(&self) -> &RecorderStats {
        &self.front.stats
    }

    /// Packets waiting in the queue to the writer thread now.
    pub fn queued(&self) -> usize {
        self.front.queued.load(Ordering::Relaxed)
    }

    fn ctl(&self, c: Ctl) -> Result<(), RecorderError> {
        self.tx
            .as_ref()
            .ok_or(RecorderError::WriterStopped)?
            .send(Msg::Ctl(c))
            .map_err(|_| RecorderError::WriterStopped)
    }

    fn tracks(&self) -> std::sync::MutexGuard<'_, HashMap<String, TrackPush>> {
        self.tracks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts recording a track and returns its push handle; packets may be pushed
    /// as soon as this returns.
    ///
    /// `on_keyframe` asks the track's publisher for a keyframe (sends a PLI); the
    /// recorder calls it for video when a segment must start or a frame was lost, at
    /// most once per `keyframe_throttle`, on the writer thread — it must not block.
    pub fn add_track(
        &self,
        meta: TrackMeta,
        on_keyframe: impl Fn() + Send + 'static,
    ) -> Result<TrackPush, RecorderError> {
        if meta.codec.kind() != meta.kind || meta.clock_rate == 0 {
            return Err(RecorderError::InvalidTrack(
                meta.track_id,
                meta.codec,
                meta.kind,
            ));
        }
        let tx = self.tx.as_ref().ok_or(RecorderError::WriterStopped)?;
        let mut tracks = self.tracks();
        if tracks.contains_key(&meta.track_id) {
            return Err(RecorderError::DuplicateTrack(meta.track_id));
        }
        let push = TrackPush {
            input: Arc::new(TrackInput {
                id: Arc::from(meta.track_id.as_str()),
                front: self.front.clone(),
                tx: tx.clone(),
                state: Mutex::default(),
            }),
        };
        tracks.insert(meta.track_id.clone(), push.clone());
        drop(tracks);
        self.ctl(Ctl::AddTrack {
            meta,
            on_keyframe: Box::new(on_keyframe),
        })?;
        Ok(push)
    }

    /// Queues one RTP packet by track id, for callers that do not keep the
    /// [`TrackPush`] (tools, tests): one map lookup per call. Otherwise as
    /// [`TrackPush::push_rtp`].
    pub fn push_rtp(&self, track_id: &str, pkt: RtpPacket) -> Result<(), PushError> {
        self.front.refuse_if_paused()?;
        let push = self
            .tracks()
            .get(track_id)
            .cloned()
            .ok_or(PushError::UnknownTrack)?;
        push.input.queue(pkt)
    }

    /// A sender report by track id; see [`Self::push_rtp`] and
    /// [`TrackPush::push_sender_report`].
    pub fn push_sender_report(&self, track_id: &str, ssrc: u32, ntp_time: u64, rtp_time: u32) {
        let push = self.tracks().get(track_id).cloned();
        if let Some(push) = push {
            push.push_sender_report(ssrc, ntp_time, rtp_time);
        }
    }

    /// Stops recording a track: its open segment is closed and journaled, and its
    /// [`TrackPush`] refuses further packets.
    pub fn remove_track(&self, track_id: &str, reason: &str) -> Result<(), RecorderError> {
        let push = self.tracks().remove(track_id);
        if let Some(drops) = push.and_then(|p| p.input.take_drops(true)) {
            self.ctl(drops)?;
        }
        self.ctl(Ctl::RemoveTrack {
            track_id: track_id.to_string(),
            reason: reason.to_string(),
        })
    }

    /// Pauses recording (hearing suspended): open segments close, a `paused` entry is
    /// journaled, packets are ignored until [`resume`](Self::resume).
    pub fn pause(&self, reason: &str) -> Result<(), RecorderError> {
        self.front.paused.store(true, Ordering::Relaxed);
        self.ctl(Ctl::Pause {
            reason: reason.to_string(),
            at: SystemTime::now(),
        })
    }

    /// Resumes after [`pause`](Self::pause); the pause is journaled as a `paused` gap
    /// for every track, and video waits for (and requests) a keyframe.
    pub fn resume(&self) -> Result<(), RecorderError> {
        self.ctl(Ctl::Resume {
            at: SystemTime::now(),
        })?;
        self.front.paused.store(false, Ordering::Relaxed);
        Ok(())
    }

    /// Journals a hearing event (state change, join, leave, mute, private room...).
    pub fn event(&self, event: HearingEvent) -> Result<(), RecorderError> {
        self.ctl(Ctl::Event(event))
    }

    /// Journals a gap the server knows about (a participant in a private room or the
    /// lobby, muted by the judge, ...): `track_id: None` means every track.
    pub fn gap(&self, gap: GapRecord) -> Result<(), RecorderError> {
        self.ctl(Ctl::Gap(gap))
    }

    /// Finishes every segment, journals `archive_closed`, writes and signs the manifest.
    pub fn close(mut self, summary: CloseSummary) -> Result<Manifest, RecorderError> {
        let inputs: Vec<TrackPush> = self.tracks().values().cloned().collect();
        for push in inputs {
            if let Some(drops) = push.input.take_drops(false) {
                self.ctl(drops)?;
            }
        }
        let (tx, rx) = bounded(1);
        self.ctl(Ctl::Close { summary, reply: tx })?;
        let res = rx.recv().unwrap_or(Err(RecorderError::WriterStopped));
        self.shutdown();
        res
    }

    fn shutdown(&mut self) {
        if let Some(tx) = self.tx.take() {
            // Push handles keep the channel open: stop the writer explicitly (after
            // close it has already stopped and this is a no-op).
            let _ = tx.send(Msg::Ctl(Ctl::Abandon));
        }
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                error!("recorder writer thread panicked");
            }
        }
    }
}

impl Drop for HearingRecorder {
    /// Without `close`: the writer finishes and journals the open segments but writes
    /// no manifest, so the archive is sealed as interrupted on the next start.
    fn drop(&mut self) {
        self.shutdown();
    }
}

pub(crate) fn ff_init() -> Result<(), RecorderError> {
    ffmpeg_next::init().map_err(|e| RecorderError::Ffmpeg(e.to_string()))?;
    ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Error);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::RecorderConfig;

    fn audio(id: &str) -> TrackMeta {
        TrackMeta {
            track_id: id.into(),
            participant_id: "p".into(),
            name: "P".into(),
            role: "witness".into(),
            site: "Room 1".into(),
            kind: MediaKind::Audio,
            codec: Codec::Opus,
            clock_rate: 48_000,
        }
    }

    fn packet(seq: u16) -> RtpPacket {
        RtpPacket {
            ssrc: 1,
            seq,
            timestamp: u32::from(seq) * 960,
            marker: true,
            payload_type: 111,
            payload: bytes::Bytes::from_static(&[0xfc, 0, 0]),
            arrival: SystemTime::now(),
        }
    }

    fn meta() -> HearingMeta {
        HearingMeta {
            hearing_id: "push".into(),
            case_number: "HS-1/2026".into(),
            title: "Push handles".into(),
            court: None,
            scheduled_start: None,
        }
    }

    /// A removed track's handle refuses packets, also once a track of the same id is
    /// added again: the new one gets its own handle, and nothing of the old leaks in.
    #[test]
    fn a_removed_tracks_handle_refuses_even_after_the_id_is_added_again() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let key = ArchiveKey::from_seed([9u8; 32]);
        let rec = HearingRecorder::open(RecorderConfig::new(tmp.path()), key, meta(), |_| {})
            .expect("open");
        let first = rec.add_track(audio("mic"), || {}).expect("add");
        assert_eq!(first.track_id(), "mic");
        assert!(matches!(
            rec.add_track(audio("mic"), || {}),
            Err(RecorderError::DuplicateTrack(_))
        ));
        first.push_rtp(packet(1)).expect("push");
        first
            .clone()
            .push_rtp(packet(2))
            .expect("push through a clone");
        rec.remove_track("mic", "unpublished").expect("remove");
        assert_eq!(first.push_rtp(packet(3)), Err(PushError::UnknownTrack));
        assert_eq!(rec.push_rtp("mic", packet(3)), Err(PushError::UnknownTrack));

        let second = rec.add_track(audio("mic"), || {}).expect("add again");
        second.push_rtp(packet(4)).expect("push to the new track");
        assert_eq!(first.push_rtp(packet(5)), Err(PushError::UnknownTrack));
        assert_eq!(rec.stats().packets_queued.load(Ordering::Relaxed), 3);

        rec.pause("recess").expect("pause");
        assert_eq!(second.push_rtp(packet(6)), Err(PushError::Paused));
        rec.resume().expect("resume");
        rec.close(CloseSummary::default()).expect("close");
        assert_eq!(second.push_rtp(packet(7)), Err(PushError::WriterStopped));
    }
}
