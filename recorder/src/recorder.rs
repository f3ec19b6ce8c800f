//! The live recorder: a cheap, non-blocking front end the SFU calls for every packet,
//! and one writer thread per hearing that does all blocking work (ffmpeg muxing,
//! hashing, fsync, journal).

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use crossbeam_channel::{bounded, unbounded, Receiver, RecvTimeoutError, Sender};
use tracing::{debug, error, info, warn};

use crate::depack::{opus_samples, DepackEvent, Depacketizer, Frame, ReorderBuffer, SeqEvent};
use crate::journal::{hash_file, sync_dir, Entry, GapRecord, Journal, JournalError, SegmentRecord};
use crate::key::ArchiveKey;
use crate::manifest::{self, Manifest, ManifestError, MANIFEST_FILE};
use crate::seal;
use crate::segment::{SegmentError, SegmentWriter, StreamSetup};
use crate::timing::{system_time_us, us_to_datetime, TrackClock, WallUs};
use crate::types::{
    AlertKind, CloseSummary, Codec, GapCause, HearingEvent, HearingMeta, MediaKind, RecorderAlert,
    RecorderConfig, RtpPacket, TrackMeta,
};

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

/// Why [`HearingRecorder::push_rtp`] did not queue a packet. None of these is
/// serious for the caller: the packet is simply not recorded (and, for
/// `QueueFull`, journaled as a `queue_overflow` gap).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
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

#[derive(Debug, Clone, Copy)]
struct DropRun {
    first: SystemTime,
    last: SystemTime,
    count: u64,
}

#[derive(Debug)]
struct TrackInput {
    id: Arc<str>,
    drops: Mutex<Option<DropRun>>,
}

enum Msg {
    Data(DataMsg),
    Ctl(Ctl),
}

struct DataMsg {
    track: Arc<str>,
    pkt: RtpPacket,
    drops_before: Option<DropRun>,
}

enum Ctl {
    AddTrack(TrackMeta),
    /// Packets dropped at the end, with no later packet to carry the news.
    Drops {
        track_id: String,
        run: DropRun,
    },
    RemoveTrack {
        track_id: String,
        reason: String,
    },
    SenderReport {
        track_id: String,
        ssrc: u32,
        ntp: u64,
        rtp: u32,
    },
    Pause {
        reason: String,
        at: SystemTime,
    },
    Resume {
        at: SystemTime,
    },
    Event(HearingEvent),
    Gap(GapRecord),
    /// The front end was dropped without close.
    Abandon,
    Close {
        summary: CloseSummary,
        reply: Sender<Result<Manifest, RecorderError>>,
    },
}

/// Records one hearing. Cheap methods (`push_rtp`, `push_sender_report`) never block;
/// everything else is queued to the writer thread in call order.
pub struct HearingRecorder {
    dir: PathBuf,
    shared: Arc<Shared>,
    /// One ordered channel for packets and control, so every message is applied in
    /// the order the server sent it; packets are bounded by `queued`, control is never dropped.
    tx: Option<Sender<Msg>>,
    keyframes: Receiver<String>,
    alerts: Receiver<RecorderAlert>,
    thread: Option<JoinHandle<()>>,
}

/// What the front end and its handles share.
#[derive(Debug)]
struct Shared {
    tracks: RwLock<HashMap<String, Arc<TrackInput>>>,
    queued: Arc<AtomicUsize>,
    capacity: usize,
    paused: AtomicBool,
    stats: Arc<RecorderStats>,
}

/// A cheap, cloneable handle for the media path (one per SFU reader task): it can
/// only push packets and sender reports. It does not keep the recorder open: after
/// [`HearingRecorder::close`] (or drop) its pushes return `WriterStopped`.
#[derive(Debug, Clone)]
pub struct RecorderHandle {
    shared: Arc<Shared>,
    tx: Sender<Msg>,
}

impl RecorderHandle {
    /// Same as [`HearingRecorder::push_rtp`].
    pub fn push_rtp(&self, track_id: &str, pkt: RtpPacket) -> Result<(), PushError> {
        self.shared.push_rtp(&self.tx, track_id, pkt)
    }

    /// Same as [`HearingRecorder::push_sender_report`].
    pub fn push_sender_report(&self, track_id: &str, ssrc: u32, ntp_time: u64, rtp_time: u32) {
        let _ = self.tx.send(Msg::Ctl(Ctl::SenderReport {
            track_id: track_id.to_string(),
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

/// How often the writer flushes pending loss gaps and quiet tracks.
const HOUSEKEEPING: Duration = Duration::from_millis(250);
/// The writer's pause after each batch of messages, so it wakes per batch rather than
/// per packet.
const BATCH_PAUSE: Duration = Duration::from_millis(20);
/// Messages handled per batch at most, so housekeeping still runs under a flood.
const MAX_BATCH: usize = 8192;

impl Shared {
    fn push_rtp(&self, tx: &Sender<Msg>, track_id: &str, pkt: RtpPacket) -> Result<(), PushError> {
        if self.paused.load(Ordering::Relaxed) {
            self.stats
                .packets_dropped_paused
                .fetch_add(1, Ordering::Relaxed);
            return Err(PushError::Paused);
        }
        let input = {
            let tracks = self.tracks.read().unwrap_or_else(|p| p.into_inner());
            tracks
                .get(track_id)
                .cloned()
                .ok_or(PushError::UnknownTrack)?
        };
        let mut drops = input.drops.lock().unwrap_or_else(|p| p.into_inner());
        if self.queued.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            self.stats
                .packets_dropped_queue_full
                .fetch_add(1, Ordering::Relaxed);
            let arrival = pkt.arrival;
            let run = drops.get_or_insert(DropRun {
                first: arrival,
                last: arrival,
                count: 0,
            });
            run.last = arrival;
            run.count += 1;
            return Err(PushError::QueueFull);
        }
        let msg = DataMsg {
            track: input.id.clone(),
            pkt,
            drops_before: drops.take(),
        };
        match tx.send(Msg::Data(msg)) {
            Ok(()) => {
                self.stats.packets_queued.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(_) => {
                self.queued.fetch_sub(1, Ordering::AcqRel);
                Err(PushError::WriterStopped)
            }
        }
    }
}

/// Keeps file and folder names to `[A-Za-z0-9._-]`, at most 80 bytes, never `.`/`..`.
pub fn sanitize_name(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    if out.is_empty() || out.chars().all(|c| c == '.') {
        out = format!("_{}", out.len());
    }
    out
}

impl HearingRecorder {
    /// Creates `<root>/<hearing_id>/` (or, if that holds an earlier archive of the
    /// same hearing, `<hearing_id>.partN/`; an earlier unsealed one is sealed first),
    /// writes the first journal entry and starts the writer thread.
    pub fn open(
        cfg: RecorderConfig,
        key: ArchiveKey,
        meta: HearingMeta,
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
        let (kf_tx, kf_rx) = bounded(256);
        let (alert_tx, alert_rx) = bounded(1024);
        let stats = Arc::new(RecorderStats::default());
        let writer = Writer {
            cfg,
            dir: dir.clone(),
            key,
            journal,
            pending: VecDeque::new(),
            journal_failing: false,
            tracks: HashMap::new(),
            stems: HashSet::new(),
            kf_tx,
            alert_tx,
            stats: stats.clone(),
            paused: None,
            orphans: Vec::new(),
            queued: queued.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("recorder-{}", &base[..base.len().min(20)]))
            .spawn(move || writer.run(rx))
            .map_err(RecorderError::Spawn)?;
        Ok(Self {
            dir,
            shared: Arc::new(Shared {
                tracks: RwLock::new(HashMap::new()),
                queued,
                capacity,
                paused: AtomicBool::new(false),
                stats,
            }),
            tx: Some(tx),
            keyframes: kf_rx,
            alerts: alert_rx,
            thread: Some(thread),
        })
    }

    /// The archive folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Track ids for which the recorder needs a keyframe: send the publisher a PLI.
    /// Already throttled per track by `keyframe_throttle`.
    pub fn keyframe_requests(&self) -> Receiver<String> {
        self.keyframes.clone()
    }

    /// Problems the presiding judge should see (queue overflow, disk errors, ...).
    pub fn alerts(&self) -> Receiver<RecorderAlert> {
        self.alerts.clone()
    }

    pub fn stats(&self) -> &RecorderStats {
        &self.shared.stats
    }

    /// A handle for the media path (see [`RecorderHandle`]); `None` after close.
    pub fn handle(&self) -> Option<RecorderHandle> {
        Some(RecorderHandle {
            shared: self.shared.clone(),
            tx: self.tx.clone()?,
        })
    }

    fn ctl(&self, c: Ctl) -> Result<(), RecorderError> {
        self.tx
            .as_ref()
            .ok_or(RecorderError::WriterStopped)?
            .send(Msg::Ctl(c))
            .map_err(|_| RecorderError::WriterStopped)
    }

    /// Starts recording a track. Packets for it may be pushed as soon as this returns.
    pub fn add_track(&self, meta: TrackMeta) -> Result<(), RecorderError> {
        if meta.codec.kind() != meta.kind || meta.clock_rate == 0 {
            return Err(RecorderError::InvalidTrack(
                meta.track_id,
                meta.codec,
                meta.kind,
            ));
        }
        let mut tracks = self
            .shared
            .tracks
            .write()
            .unwrap_or_else(|p| p.into_inner());
        if tracks.contains_key(&meta.track_id) {
            return Err(RecorderError::DuplicateTrack(meta.track_id));
        }
        tracks.insert(
            meta.track_id.clone(),
            Arc::new(TrackInput {
                id: Arc::from(meta.track_id.as_str()),
                drops: Mutex::new(None),
            }),
        );
        drop(tracks);
        self.ctl(Ctl::AddTrack(meta))
    }

    /// Queues one RTP packet. Never blocks: when the queue is full the packet is
    /// dropped and counted, and a `queue_overflow` gap is journaled.
    pub fn push_rtp(&self, track_id: &str, pkt: RtpPacket) -> Result<(), PushError> {
        let tx = self.tx.as_ref().ok_or(PushError::WriterStopped)?;
        self.shared.push_rtp(tx, track_id, pkt)
    }

    /// An RTCP sender report for a track (NTP time as the 64-bit 32.32 value).
    pub fn push_sender_report(&self, track_id: &str, ssrc: u32, ntp_time: u64, rtp_time: u32) {
        let _ = self.ctl(Ctl::SenderReport {
            track_id: track_id.to_string(),
            ssrc,
            ntp: ntp_time,
            rtp: rtp_time,
        });
    }

    /// Stops recording a track: its open segment is closed and journaled.
    pub fn remove_track(&self, track_id: &str, reason: &str) -> Result<(), RecorderError> {
        let input = self
            .shared
            .tracks
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(track_id);
        if let Some(input) = input {
            self.flush_drops(&input)?;
        }
        self.ctl(Ctl::RemoveTrack {
            track_id: track_id.to_string(),
            reason: reason.to_string(),
        })
    }

    /// Pauses recording (hearing suspended): open segments close, a `paused` entry is
    /// journaled, packets are ignored until [`resume`](Self::resume).
    pub fn pause(&self, reason: &str) -> Result<(), RecorderError> {
        self.shared.paused.store(true, Ordering::Relaxed);
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
        self.shared.paused.store(false, Ordering::Relaxed);
        Ok(())
    }

    /// Journals a hearing event (state change, join, leave, mute, private room...).
    pub fn event(&self, event: HearingEvent) -> Result<(), RecorderError> {
        self.ctl(Ctl::Event(event))
    }

    fn flush_drops(&self, input: &TrackInput) -> Result<(), RecorderError> {
        let run = input.drops.lock().unwrap_or_else(|p| p.into_inner()).take();
        match run {
            Some(run) => self.ctl(Ctl::Drops {
                track_id: input.id.to_string(),
                run,
            }),
            None => Ok(()),
        }
    }

    /// Journals a gap the server knows about (a participant in a private room or the
    /// lobby, muted by the judge, ...): `track_id: None` means every track.
    pub fn gap(&self, gap: GapRecord) -> Result<(), RecorderError> {
        self.ctl(Ctl::Gap(gap))
    }

    /// Finishes every segment, journals `archive_closed`, writes and signs the manifest.
    pub fn close(mut self, summary: CloseSummary) -> Result<Manifest, RecorderError> {
        let inputs: Vec<Arc<TrackInput>> = self
            .shared
            .tracks
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for input in inputs {
            self.flush_drops(&input)?;
        }
        let (tx, rx) = bounded(1);
        self.ctl(Ctl::Close { summary, reply: tx })?;
        let res = rx.recv().unwrap_or(Err(RecorderError::WriterStopped));
        self.shutdown();
        res
    }

    fn shutdown(&mut self) {
        if let Some(tx) = self.tx.take() {
            // Handles may keep the channel open: stop the writer explicitly (after
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

// ---------------------------------------------------------------------------
// Writer thread

struct OpenSegment {
    writer: SegmentWriter,
    tmp: PathBuf,
    rel: String,
    discontinuity: bool,
}

struct Run {
    from: WallUs,
    /// Latest wall time known to be missing (disk errors).
    to: WallUs,
    count: u64,
}

struct TrackState {
    meta: TrackMeta,
    folder: String,
    stem: String,
    reorder: ReorderBuffer,
    depack: Depacketizer,
    clock: TrackClock,
    seg: Option<OpenSegment>,
    next_index: u32,
    need_keyframe: bool,
    last_kf_request: Option<Instant>,
    loss: Option<Run>,
    /// Loss following a queue overflow is the overflow's, not the network's.
    overflow_pending: bool,
    disk: Option<(Run, Instant)>,
    last_ext: Option<i64>,
    last_end: Option<WallUs>,
    last_packet: Instant,
    discontinuity: bool,
    ssrc_seen: bool,
}

struct Writer {
    cfg: RecorderConfig,
    dir: PathBuf,
    key: ArchiveKey,
    journal: Journal,
    pending: VecDeque<(DateTime<Utc>, Entry)>,
    journal_failing: bool,
    tracks: HashMap<String, TrackState>,
    stems: HashSet<String>,
    kf_tx: Sender<String>,
    alert_tx: Sender<RecorderAlert>,
    stats: Arc<RecorderStats>,
    paused: Option<WallUs>,
    /// Temporary files of failed segments that could not be removed yet (retried).
    orphans: Vec<PathBuf>,
    queued: Arc<AtomicUsize>,
}

/// Entries held in memory while the journal cannot be written.
const MAX_PENDING: usize = 100_000;

impl Writer {
    fn run(mut self, rx: Receiver<Msg>) {
        let mut next_housekeeping = Instant::now() + HOUSEKEEPING;
        loop {
            let wait = next_housekeeping.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(msg) => {
                    if self.handle(msg) {
                        return;
                    }
                    // Then everything queued meanwhile, in one go.
                    for _ in 0..MAX_BATCH {
                        let Ok(msg) = rx.try_recv() else { break };
                        if self.handle(msg) {
                            return;
                        }
                    }
                    // Let the next packets accumulate. Waking for every packet cost
                    // the server more than the recording itself (thread switches:
                    // about 5 % of a server's CPU in a 5-way conference); the recorder
                    // is off the media path, so 20 ms later changes nothing.
                    std::thread::sleep(BATCH_PAUSE);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.abandon();
                    return;
                }
            }
            // On time even while packets keep coming: quiet tracks' reorder buffers
            // and pending loss gaps must not wait for the whole hearing to go quiet.
            if Instant::now() >= next_housekeeping {
                self.housekeeping();
                next_housekeeping = Instant::now() + HOUSEKEEPING;
            }
        }
    }

    /// Handles one message; returns true when the thread must stop.
    fn handle(&mut self, msg: Msg) -> bool {
        match msg {
            Msg::Data(m) => {
                self.queued.fetch_sub(1, Ordering::AcqRel);
                self.data(m);
                false
            }
            Msg::Ctl(c) => self.ctl(c).is_some(),
        }
    }

    /// Handles a control message; returns Some(()) when the thread must stop.
    fn ctl(&mut self, c: Ctl) -> Option<()> {
        match c {
            Ctl::AddTrack(meta) => self.add_track(meta),
            Ctl::Drops { track_id, run } => {
                if let Some(t) = self.tracks.get(&track_id) {
                    let (id, name) = (t.meta.track_id.clone(), t.meta.name.clone());
                    self.overflow(&id, &name, run);
                }
            }
            Ctl::RemoveTrack { track_id, reason } => {
                if let Some(mut t) = self.tracks.remove(&track_id) {
                    self.flush_track(&mut t);
                    self.record(Entry::TrackRemoved { track_id, reason });
                }
            }
            Ctl::SenderReport {
                track_id,
                ssrc,
                ntp,
                rtp,
            } => {
                if let Some(t) = self.tracks.get_mut(&track_id) {
                    t.clock.sender_report(ssrc, ntp, rtp);
                }
            }
            Ctl::Pause { reason, at } => {
                if self.paused.is_none() {
                    let ids: Vec<String> = self.tracks.keys().cloned().collect();
                    for id in ids {
                        if let Some(mut t) = self.tracks.remove(&id) {
                            self.flush_track(&mut t);
                            t.need_keyframe = t.meta.kind == MediaKind::Video;
                            t.discontinuity = true;
                            self.tracks.insert(id, t);
                        }
                    }
                    self.paused = Some(system_time_us(at));
                    self.record(Entry::Paused { reason });
                }
            }
            Ctl::Resume { at } => {
                if let Some(from) = self.paused.take() {
                    self.record(Entry::Gap(GapRecord {
                        track_id: None,
                        from: us_to_datetime(from),
                        to: us_to_datetime(system_time_us(at)),
                        cause: GapCause::Paused,
                        count: 0,
                    }));
                    self.record(Entry::Resumed);
                    let ids: Vec<String> = self.tracks.keys().cloned().collect();
                    for id in ids {
                        self.request_keyframe(&id);
                    }
                }
            }
            Ctl::Event(event) => self.record(Entry::Event { event }),
            Ctl::Gap(gap) => self.record(Entry::Gap(gap)),
            Ctl::Abandon => {
                self.abandon();
                return Some(());
            }
            Ctl::Close { summary, reply } => {
                let res = self.close(summary);
                let _ = reply.send(res);
                return Some(());
            }
        }
        None
    }

    fn close(&mut self, summary: CloseSummary) -> Result<Manifest, RecorderError> {
        self.finish_all_tracks();
        self.orphans
            .retain(|p| fs::remove_file(p).is_err() && p.exists());
        if let Some(from) = self.paused.take() {
            self.record(Entry::Gap(GapRecord {
                track_id: None,
                from: us_to_datetime(from),
                to: Utc::now(),
                cause: GapCause::Paused,
                count: 0,
            }));
        }
        self.record(Entry::ArchiveClosed { summary });
        if !self.pending.is_empty() {
            return Err(RecorderError::Journal(JournalError::Io {
                path: self.dir.join(crate::journal::JOURNAL_FILE),
                source: std::io::Error::other(
                    "journal entries could not be written; archive left for sealing",
                ),
            }));
        }
        let lines =
            crate::journal::read_lines_lenient(&self.dir.join(crate::journal::JOURNAL_FILE))?.lines;
        let m = manifest::build(&lines)?;
        manifest::write_signed(&self.dir, &m, &self.key)?;
        info!(dir = %self.dir.display(), segments = m.segments.len(), "recording archive closed and signed");
        Ok(m)
    }

    /// The front end went away without `close` (server dropping the recorder):
    /// finish what is open so it is not lost; no manifest (sealed on next start).
    fn abandon(&mut self) {
        self.finish_all_tracks();
        warn!(dir = %self.dir.display(), "recorder dropped without close; archive will be sealed as interrupted");
    }

    fn finish_all_tracks(&mut self) {
        let ids: Vec<String> = self.tracks.keys().cloned().collect();
        for id in ids {
            if let Some(mut t) = self.tracks.remove(&id) {
                self.flush_track(&mut t);
                self.tracks.insert(id, t);
            }
        }
    }

    fn alert(&self, kind: AlertKind, message: String) {
        let _ = self.alert_tx.try_send(RecorderAlert {
            at: Utc::now(),
            kind,
            message,
        });
    }

    /// Journals an entry, or keeps it (in order) until the journal can be written.
    fn record(&mut self, entry: Entry) {
        if self.pending.len() >= MAX_PENDING {
            self.pending.pop_front();
        }
        self.pending.push_back((Utc::now(), entry));
        self.flush_pending();
    }

    /// Queues an entry to go out with the next journal write (at most one
    /// housekeeping tick, 250 ms, later): loss gaps are batched this way so heavy
    /// loss does not cost one `fsync` per lost packet.
    fn record_deferred(&mut self, entry: Entry) {
        if self.pending.len() >= MAX_PENDING {
            self.pending.pop_front();
        }
        self.pending.push_back((Utc::now(), entry));
    }

    fn flush_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let batch: Vec<(DateTime<Utc>, Entry)> = self.pending.iter().cloned().collect();
        match self.journal.append_batch(&batch) {
            Ok(_) => {
                self.pending.clear();
                if self.journal_failing {
                    self.journal_failing = false;
                    self.alert(
                        AlertKind::Recovered { track_id: None },
                        "the recording journal can be written again".into(),
                    );
                }
            }
            Err(e) => {
                self.stats.journal_errors.fetch_add(1, Ordering::Relaxed);
                if !self.journal_failing {
                    self.journal_failing = true;
                    error!(error = %e, "recording journal write failed");
                    self.alert(
                        AlertKind::JournalError,
                        format!("the recording journal cannot be written ({e}); entries are held and retried"),
                    );
                }
            }
        }
    }

    fn housekeeping(&mut self) {
        if !self.pending.is_empty() {
            self.flush_pending();
        }
        self.orphans.retain(|p| match fs::remove_file(p) {
            Ok(()) => false,
            Err(e) => e.kind() != std::io::ErrorKind::NotFound,
        });
        // A track that went quiet must not keep packets waiting in its reorder buffer.
        let quiet: Vec<String> = self
            .tracks
            .iter()
            .filter(|(_, t)| t.last_packet.elapsed() > Duration::from_secs(1))
            .map(|(k, _)| k.clone())
            .collect();
        for id in quiet {
            if let Some(mut t) = self.tracks.remove(&id) {
                let mut seq = Vec::new();
                t.reorder.flush(&mut seq);
                self.seq_events(&mut t, seq);
                self.tracks.insert(id, t);
            }
        }
    }

    fn add_track(&mut self, meta: TrackMeta) {
        if self.tracks.contains_key(&meta.track_id) {
            return;
        }
        let folder = sanitize_name(&meta.participant_id);
        let base = sanitize_name(&meta.track_id);
        let mut stem = base.clone();
        let mut n = 2;
        while self.stems.contains(&format!("{folder}/{stem}")) && n < 10_000 {
            stem = format!("{base}~{n}");
            n += 1;
        }
        self.stems.insert(format!("{folder}/{stem}"));
        if let Err(e) = fs::create_dir_all(self.dir.join(&folder)) {
            warn!(error = %e, "cannot create participant folder");
        }
        let state = TrackState {
            clock: TrackClock::new(meta.clock_rate),
            reorder: ReorderBuffer::new(96, Duration::from_millis(150)),
            depack: Depacketizer::new(meta.codec),
            need_keyframe: meta.kind == MediaKind::Video,
            folder,
            stem,
            seg: None,
            next_index: 1,
            last_kf_request: None,
            loss: None,
            overflow_pending: false,
            disk: None,
            last_ext: None,
            last_end: None,
            last_packet: Instant::now(),
            discontinuity: false,
            ssrc_seen: false,
            meta: meta.clone(),
        };
        self.tracks.insert(meta.track_id.clone(), state);
        self.record(Entry::TrackAdded { track: meta });
    }

    fn data(&mut self, m: DataMsg) {
        let Some(mut t) = self.tracks.remove(&*m.track) else {
            return;
        };
        t.last_packet = Instant::now();
        if self.paused.is_some() {
            self.tracks.insert(t.meta.track_id.clone(), t);
            return;
        }
        if let Some(run) = m.drops_before {
            let (id, name) = (t.meta.track_id.clone(), t.meta.name.clone());
            self.overflow(&id, &name, run);
            t.overflow_pending = true;
            let mut seq = Vec::new();
            t.reorder.flush(&mut seq);
            self.seq_events(&mut t, seq);
            t.reorder.reset();
            t.depack.lost();
        }
        if t.ssrc_seen && t.clock.ssrc() != Some(m.pkt.ssrc) {
            debug!(track = %t.meta.track_id, "SSRC changed: new segment");
            self.flush_track(&mut t);
            t.reorder.reset();
            t.discontinuity = true;
        }
        t.ssrc_seen = true;
        t.clock.set_ssrc(m.pkt.ssrc);
        let mut seq = Vec::new();
        t.reorder.push(m.pkt, &mut seq);
        self.seq_events(&mut t, seq);
        self.tracks.insert(t.meta.track_id.clone(), t);
    }

    fn overflow(&mut self, track_id: &str, name: &str, run: DropRun) {
        self.record(Entry::Gap(GapRecord {
            track_id: Some(track_id.to_string()),
            from: us_to_datetime(system_time_us(run.first)),
            to: us_to_datetime(system_time_us(run.last)),
            cause: GapCause::QueueOverflow,
            count: run.count,
        }));
        self.alert(
            AlertKind::QueueOverflow {
                track_id: track_id.to_string(),
                dropped: run.count,
            },
            format!(
                "recorder fell behind: {} packets of track {track_id} ({name}) not recorded",
                run.count
            ),
        );
    }

    fn seq_events(&mut self, t: &mut TrackState, seq: Vec<SeqEvent>) {
        let mut frames = Vec::new();
        for ev in seq {
            match ev {
                SeqEvent::Packet(p) => t.depack.push(&p, &mut frames),
                SeqEvent::Lost { count } => {
                    t.depack.lost();
                    if !t.overflow_pending {
                        match &mut t.loss {
                            Some(run) => run.count += count,
                            None => {
                                t.loss = Some(Run {
                                    from: t.last_end.unwrap_or(WallUs::MIN),
                                    to: WallUs::MIN,
                                    count,
                                })
                            }
                        }
                    }
                }
                SeqEvent::Reset => {
                    t.depack.reset(&mut frames);
                    self.handle_frames(t, std::mem::take(&mut frames));
                    self.close_segment(t);
                    t.discontinuity = true;
                    t.need_keyframe = t.meta.kind == MediaKind::Video;
                }
            }
        }
        self.handle_frames(t, frames);
    }

    fn handle_frames(&mut self, t: &mut TrackState, frames: Vec<DepackEvent>) {
        for ev in frames {
            match ev {
                DepackEvent::Frame(f) => self.frame(t, f),
                DepackEvent::Dropped { .. } => {
                    self.stats
                        .frames_dropped_incomplete
                        .fetch_add(1, Ordering::Relaxed);
                    if t.meta.kind == MediaKind::Video {
                        t.need_keyframe = true;
                        self.request_keyframe_for(t);
                    }
                    if t.loss.is_none() && !t.overflow_pending {
                        t.loss = Some(Run {
                            from: t.last_end.unwrap_or(WallUs::MIN),
                            to: WallUs::MIN,
                            count: 0,
                        });
                    }
                }
            }
        }
    }

    fn request_keyframe(&mut self, id: &str) {
        if let Some(mut t) = self.tracks.remove(id) {
            self.request_keyframe_for(&mut t);
            self.tracks.insert(id.to_string(), t);
        }
    }

    fn request_keyframe_for(&mut self, t: &mut TrackState) {
        if t.meta.kind != MediaKind::Video {
            return;
        }
        if t.last_kf_request
            .is_some_and(|at| at.elapsed() < self.cfg.keyframe_throttle)
        {
            return;
        }
        t.last_kf_request = Some(Instant::now());
        self.stats.keyframe_requests.fetch_add(1, Ordering::Relaxed);
        let _ = self.kf_tx.try_send(t.meta.track_id.clone());
    }

    fn frame(&mut self, t: &mut TrackState, f: Frame) {
        let ext = t.clock.on_packet(f.rtp_ts, f.arrival);
        let rate = t.clock.rate();
        if let Some(last) = t.last_ext {
            if ext <= last - rate / 2 || ext > last + 5 * rate {
                debug!(track = %t.meta.track_id, "timestamp jump: new segment");
                self.close_segment(t);
                t.discontinuity = true;
                // Packets missing across a jump are the publisher's absence, not loss.
                t.loss = None;
                t.need_keyframe = t.meta.kind == MediaKind::Video;
            } else if ext <= last {
                return; // duplicate or out-of-order frame: never give it to the muxer
            }
        }
        let video = t.meta.kind == MediaKind::Video;
        if video && t.need_keyframe {
            if !f.keyframe {
                self.request_keyframe_for(t);
                return;
            }
            t.need_keyframe = false;
        }
        if let Some((run, retry_at)) = &mut t.disk {
            if let Some(w) = t.clock.wall(ext) {
                run.to = run.to.max(w);
            }
            if Instant::now() < *retry_at {
                if video {
                    t.need_keyframe = true;
                }
                return;
            }
        }
        let seg_ticks = i64::from(self.cfg.segment_seconds) * rate;
        if let Some(seg) = &t.seg {
            if ext - seg.writer.first_ext() >= seg_ticks {
                if !video || f.keyframe {
                    self.close_segment(t);
                } else {
                    self.request_keyframe_for(t);
                }
            }
        }
        if t.seg.is_none() {
            let Some(setup) =
                StreamSetup::from_first_frame(t.meta.codec, t.meta.clock_rate, &f.data)
            else {
                if video {
                    t.need_keyframe = true;
                    self.request_keyframe_for(t);
                }
                return;
            };
            let rel = format!(
                "{}/{}-{:05}.{}",
                t.folder,
                t.stem,
                t.next_index,
                t.meta.codec.extension()
            );
            let tmp = self.dir.join(format!("{rel}.partial"));
            if let Some(parent) = tmp.parent() {
                let _ = fs::create_dir_all(parent);
            }
            match SegmentWriter::create(&tmp, &setup, ext) {
                Ok(writer) => {
                    t.next_index += 1;
                    t.seg = Some(OpenSegment {
                        writer,
                        tmp,
                        rel,
                        discontinuity: std::mem::take(&mut t.discontinuity),
                    });
                }
                Err(e) => {
                    self.remove_tmp(&tmp);
                    let w = t.clock.wall(ext);
                    self.disk_error(t, &e, w, w);
                    return;
                }
            }
        }
        let wall = t.clock.wall(ext);
        let dur = if t.meta.codec == Codec::Opus {
            opus_samples(&f.data).map_or(960, i64::from)
        } else {
            t.last_ext.map_or(rate / 30, |l| (ext - l).clamp(1, rate))
        };
        let res = match &mut t.seg {
            Some(seg) => seg.writer.write(ext, f.data, f.keyframe),
            None => return,
        };
        match res {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                // Everything in the abandoned segment is lost, not just this frame.
                let lost_from = self.abandon_segment(t);
                self.disk_error(t, &e, lost_from.or(wall), wall);
                return;
            }
        }
        t.last_ext = Some(ext);
        if let Some(w) = wall {
            if let Some(run) = t.loss.take() {
                let from = if run.from == WallUs::MIN { w } else { run.from };
                if w > from {
                    self.record_deferred(Entry::Gap(GapRecord {
                        track_id: Some(t.meta.track_id.clone()),
                        from: us_to_datetime(from),
                        to: us_to_datetime(w),
                        cause: GapCause::PacketLoss,
                        count: run.count,
                    }));
                }
            }
            if let Some((run, _)) = t.disk.take() {
                let from = if run.from == WallUs::MIN { w } else { run.from };
                self.record(Entry::Gap(GapRecord {
                    track_id: Some(t.meta.track_id.clone()),
                    from: us_to_datetime(from),
                    to: us_to_datetime(w.max(from)),
                    cause: GapCause::DiskError,
                    count: run.count,
                }));
                self.alert(
                    AlertKind::Recovered {
                        track_id: Some(t.meta.track_id.clone()),
                    },
                    format!(
                        "track {} ({}) is being recorded again",
                        t.meta.track_id, t.meta.name
                    ),
                );
            }
            t.last_end = Some(w + dur * 1_000_000 / rate);
        }
        t.overflow_pending = false;
    }

    /// A segment could not be created, written or closed: media from `from` to `to`
    /// (wall clock) is not in the record.
    fn disk_error(
        &mut self,
        t: &mut TrackState,
        e: &SegmentError,
        from: Option<WallUs>,
        to: Option<WallUs>,
    ) {
        self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
        if t.meta.kind == MediaKind::Video {
            t.need_keyframe = true;
        }
        let retry = Instant::now() + Duration::from_secs(1);
        match &mut t.disk {
            Some((run, at)) => {
                run.count += 1;
                *at = retry;
                if let Some(f) = from {
                    run.from = if run.from == WallUs::MIN {
                        f
                    } else {
                        run.from.min(f)
                    };
                }
                if let Some(w) = to {
                    run.to = run.to.max(w);
                }
            }
            None => {
                error!(track = %t.meta.track_id, error = %e, "recording segment write failed");
                self.alert(
                    AlertKind::DiskError {
                        track_id: t.meta.track_id.clone(),
                    },
                    format!(
                        "track {} ({}) is NOT being recorded: {e}",
                        t.meta.track_id, t.meta.name
                    ),
                );
                let from = from.or(t.last_end).unwrap_or(WallUs::MIN);
                let to = to.unwrap_or(from).max(from);
                t.disk = Some((Run { from, to, count: 1 }, retry));
            }
        }
    }

    /// Drops the open segment after a write error; returns the wall time it started.
    fn abandon_segment(&mut self, t: &mut TrackState) -> Option<WallUs> {
        let seg = t.seg.take()?;
        let start = t.clock.wall(seg.writer.first_ext());
        drop(seg.writer);
        self.remove_tmp(&seg.tmp);
        start
    }

    /// Removes a failed segment's temporary file, or remembers to retry (it would
    /// otherwise show up as an extra file when the archive is verified).
    fn remove_tmp(&mut self, tmp: &Path) {
        match fs::remove_file(tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => self.orphans.push(tmp.to_path_buf()),
        }
    }

    /// Closes the open segment: trailer, fsync, rename into place, hash, journal.
    fn close_segment(&mut self, t: &mut TrackState) {
        let Some(seg) = t.seg.take() else { return };
        let start_wall = t.clock.wall(seg.writer.first_ext());
        let fin = match seg.writer.finish() {
            Ok(f) => f,
            Err(e) => {
                self.remove_tmp(&seg.tmp);
                let end = t.last_end;
                self.disk_error(t, &e, start_wall, end);
                return;
            }
        };
        let final_path = self.dir.join(&seg.rel);
        let res = fs::rename(&seg.tmp, &final_path)
            .and_then(|_| final_path.parent().map_or(Ok(()), sync_dir))
            .and_then(|_| hash_file(&final_path));
        let (sha256, size) = match res {
            Ok(v) => v,
            Err(source) => {
                self.remove_tmp(&seg.tmp);
                self.remove_tmp(&final_path);
                let e = SegmentError::Io {
                    path: final_path,
                    source,
                };
                let end = t.clock.wall(fin.end_ext);
                self.disk_error(t, &e, start_wall, end);
                return;
            }
        };
        let (Some(start), Some(end)) = (t.clock.wall(fin.first_ext), t.clock.wall(fin.end_ext))
        else {
            return;
        };
        self.stats.segments_written.fetch_add(1, Ordering::Relaxed);
        self.record(Entry::Segment(SegmentRecord {
            file: seg.rel,
            track_id: t.meta.track_id.clone(),
            participant_id: t.meta.participant_id.clone(),
            role: t.meta.role.clone(),
            site: t.meta.site.clone(),
            start: us_to_datetime(start),
            end: us_to_datetime(end),
            duration_ms: (end - start) / 1000,
            frames: fin.frames,
            size,
            sha256,
            discontinuity: seg.discontinuity,
        }));
    }

    /// Hands on everything buffered for a track and closes its segment.
    fn flush_track(&mut self, t: &mut TrackState) {
        let mut seq = Vec::new();
        t.reorder.flush(&mut seq);
        self.seq_events(t, seq);
        let mut frames = Vec::new();
        t.depack.reset(&mut frames);
        // An unterminated frame at the end is incomplete: dropped, not a loss gap.
        self.close_segment(t);
        if let Some((run, _)) = t.disk.take() {
            if run.from != WallUs::MIN && run.to > run.from {
                self.record(Entry::Gap(GapRecord {
                    track_id: Some(t.meta.track_id.clone()),
                    from: us_to_datetime(run.from),
                    to: us_to_datetime(run.to),
                    cause: GapCause::DiskError,
                    count: run.count,
                }));
            }
        }
        t.loss = None;
        t.last_ext = None;
        t.need_keyframe = t.meta.kind == MediaKind::Video;
    }
}
