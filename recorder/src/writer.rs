//! The recorder's writer thread: one per hearing, and all of its blocking work
//! (ffmpeg muxing, hashing, `fsync`, the journal) happens here, never on the media
//! path.
//!
//! Its input is one ordered channel of [`Msg`]s from the front end ([`crate::live`]):
//! packets and control messages together, so everything is applied in the order the
//! server called it. The loop wakes per batch, not per packet (see [`BATCH_PAUSE`]),
//! and runs housekeeping on a fixed tick even under a flood: held journal entries and
//! batched loss gaps are written, quiet tracks' reorder buffers flushed, orphaned
//! temporary files retried.
//!
//! This file holds the per-archive side (messages, batching, journal, alerts,
//! pause/resume, close); [`track`] holds one track's path from packets to segment
//! files. Everything the writer reports goes out through the callbacks the server
//! gave: alerts through [`OnAlert`] (given at open), keyframe requests through each
//! track's [`OnKeyframe`] (given at `add_track`, throttled here per
//! `keyframe_throttle`). They run on this thread and must not block.

mod track;

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use tracing::{error, info, warn};

use self::track::TrackState;
use crate::journal::{Entry, GapRecord, Journal, JournalError};
use crate::key::ArchiveKey;
use crate::live::{RecorderError, RecorderStats};
use crate::manifest::{self, Manifest};
use crate::timing::{system_time_us, us_to_datetime, WallUs};
use crate::types::{
    AlertKind, CloseSummary, GapCause, HearingEvent, MediaKind, RecorderAlert, RecorderConfig,
    RtpPacket, TrackMeta,
};

/// Asks one video track's publisher for a keyframe (a PLI). Called on the writer
/// thread, at most once per `keyframe_throttle`; must not block.
pub(crate) type OnKeyframe = Box<dyn Fn() + Send>;

/// Receives what the presiding judge must know. Called on the writer thread; must
/// not block.
pub(crate) type OnAlert = Box<dyn Fn(RecorderAlert) + Send>;

/// Packets the front end dropped in a row for one track (queue full).
#[derive(Debug, Clone, Copy)]
pub(crate) struct DropRun {
    pub(crate) first: SystemTime,
    pub(crate) last: SystemTime,
    pub(crate) count: u64,
}

/// What the front end sends the writer, in call order.
pub(crate) enum Msg {
    Data(DataMsg),
    Ctl(Ctl),
}

/// One queued packet (counted against `queue_packets`).
pub(crate) struct DataMsg {
    pub(crate) track: Arc<str>,
    pub(crate) pkt: RtpPacket,
    /// The drop run this packet ends, if packets of its track were dropped before it.
    pub(crate) drops_before: Option<DropRun>,
}

/// Control messages: never dropped.
pub(crate) enum Ctl {
    AddTrack {
        meta: TrackMeta,
        on_keyframe: OnKeyframe,
    },
    /// Packets dropped at the end, with no later packet to carry the news.
    Drops {
        track: Arc<str>,
        run: DropRun,
    },
    RemoveTrack {
        track_id: String,
        reason: String,
    },
    SenderReport {
        track: Arc<str>,
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

/// How often the writer flushes pending loss gaps and quiet tracks.
const HOUSEKEEPING: Duration = Duration::from_millis(250);
/// The writer's pause after each batch of messages, so it wakes per batch rather than
/// per packet.
const BATCH_PAUSE: Duration = Duration::from_millis(20);
/// Messages handled per batch at most, so housekeeping still runs under a flood.
const MAX_BATCH: usize = 8192;

/// The writer thread's state: the archive, its journal and every track's pipeline.
pub(crate) struct Writer {
    cfg: RecorderConfig,
    dir: PathBuf,
    key: ArchiveKey,
    journal: Journal,
    pending: VecDeque<(DateTime<Utc>, Entry)>,
    journal_failing: bool,
    tracks: HashMap<String, TrackState>,
    stems: HashSet<String>,
    on_alert: OnAlert,
    stats: Arc<RecorderStats>,
    paused: Option<WallUs>,
    /// Temporary files of failed segments that could not be removed yet (retried).
    orphans: Vec<PathBuf>,
    queued: Arc<AtomicUsize>,
}

/// Entries held in memory while the journal cannot be written.
const MAX_PENDING: usize = 100_000;

impl Writer {
    /// The writer of a freshly opened archive (`journal` holds its first entry).
    pub(crate) fn new(
        cfg: RecorderConfig,
        dir: PathBuf,
        key: ArchiveKey,
        journal: Journal,
        on_alert: OnAlert,
        stats: Arc<RecorderStats>,
        queued: Arc<AtomicUsize>,
    ) -> Writer {
        Writer {
            cfg,
            dir,
            key,
            journal,
            pending: VecDeque::new(),
            journal_failing: false,
            tracks: HashMap::new(),
            stems: HashSet::new(),
            on_alert,
            stats,
            paused: None,
            orphans: Vec::new(),
            queued,
        }
    }

    /// Starts the thread; it ends on close, abandon, or when every sender is gone.
    pub(crate) fn spawn(
        self,
        name: String,
        rx: Receiver<Msg>,
    ) -> Result<JoinHandle<()>, RecorderError> {
        std::thread::Builder::new()
            .name(name)
            .spawn(move || self.run(rx))
            .map_err(RecorderError::Spawn)
    }

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
            Ctl::AddTrack { meta, on_keyframe } => self.add_track(meta, on_keyframe),
            Ctl::Drops { track, run } => {
                if let Some(t) = self.tracks.get(&*track) {
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
                track,
                ssrc,
                ntp,
                rtp,
            } => {
                if let Some(t) = self.tracks.get_mut(&*track) {
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
        (self.on_alert)(RecorderAlert {
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

    fn add_track(&mut self, meta: TrackMeta, on_keyframe: OnKeyframe) {
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
        let state = TrackState::new(meta.clone(), folder, stem, on_keyframe);
        self.tracks.insert(meta.track_id.clone(), state);
        self.record(Entry::TrackAdded { track: meta });
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

    fn request_keyframe(&mut self, id: &str) {
        if let Some(mut t) = self.tracks.remove(id) {
            self.request_keyframe_for(&mut t);
            self.tracks.insert(id.to_string(), t);
        }
    }
}

/// Keeps file and folder names to `[A-Za-z0-9._-]`, at most 80 bytes, never `.`/`..`.
pub(crate) fn sanitize_name(s: &str) -> String {
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
