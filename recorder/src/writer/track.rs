//! One track's path through the writer thread: reorder buffer → depacketiser →
//! RTP→wall clock → segment files, and the gaps found on the way (packet loss, queue
//! overflow, disk errors, discontinuities).
//!
//! It is an `impl Writer` block beside [`super`] rather than a type of its own because
//! every step may journal an entry or raise an alert through the writer; keeping the
//! per-track state ([`TrackState`]) separate from the per-archive state (journal,
//! pending entries, alerts) is what this file is for.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tracing::{debug, error};

use super::{DataMsg, OnKeyframe, Writer};
use crate::depack::{opus_samples, DepackEvent, Depacketizer, Frame, ReorderBuffer, SeqEvent};
use crate::journal::{hash_file, sync_dir, Entry, GapRecord, SegmentRecord};
use crate::segment::{SegmentError, SegmentWriter, StreamSetup};
use crate::timing::{us_to_datetime, TrackClock, WallUs};
use crate::types::{AlertKind, Codec, GapCause, MediaKind, TrackMeta};

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

/// What the writer knows of one recorded track.
pub(super) struct TrackState {
    pub(super) meta: TrackMeta,
    folder: String,
    stem: String,
    pub(super) reorder: ReorderBuffer,
    depack: Depacketizer,
    pub(super) clock: TrackClock,
    seg: Option<OpenSegment>,
    next_index: u32,
    pub(super) need_keyframe: bool,
    /// Asks the publisher for a keyframe (the server's callback from `add_track`).
    on_keyframe: OnKeyframe,
    last_kf_request: Option<Instant>,
    loss: Option<Run>,
    /// Loss following a queue overflow is the overflow's, not the network's.
    overflow_pending: bool,
    disk: Option<(Run, Instant)>,
    last_ext: Option<i64>,
    last_end: Option<WallUs>,
    pub(super) last_packet: Instant,
    pub(super) discontinuity: bool,
    ssrc_seen: bool,
}

impl TrackState {
    /// A track just added, stored as `<folder>/<stem>-NNNNN.<ext>`.
    pub(super) fn new(
        meta: TrackMeta,
        folder: String,
        stem: String,
        on_keyframe: OnKeyframe,
    ) -> Self {
        TrackState {
            clock: TrackClock::new(meta.clock_rate),
            reorder: ReorderBuffer::new(96, Duration::from_millis(150)),
            depack: Depacketizer::new(meta.codec),
            need_keyframe: meta.kind == MediaKind::Video,
            on_keyframe,
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
            meta,
        }
    }
}

impl Writer {
    pub(super) fn data(&mut self, m: DataMsg) {
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

    pub(super) fn seq_events(&mut self, t: &mut TrackState, seq: Vec<SeqEvent>) {
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

    pub(super) fn request_keyframe_for(&mut self, t: &mut TrackState) {
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
        (t.on_keyframe)();
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
    pub(super) fn flush_track(&mut self, t: &mut TrackState) {
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
