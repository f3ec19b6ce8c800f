//! The hearing actor's side of recording: one [`HearingRecorder`] per hearing while it
//! is in session, fed through SFU taps that the forwarding policy
//! ([`super::policy::may_record`]) switches on and off — so the lobby, private rooms
//! and muted audio never reach the archive, and the time they are missing is marked
//! in the record with its cause.
//!
//! Everything here runs on the actor; the packets themselves go from the SFU's reader
//! tasks straight into the recorder's bounded queue, through the per-track
//! [`TrackPush`] the recorder returned for the track (it is the track's [`MediaTap`]),
//! never through the actor, and never block the media path. What the recorder has
//! to say comes back by callbacks on its writer thread, without a thread of ours: a
//! keyframe request goes straight to the track's publisher (`keyframe_request`),
//! an alert to the actor's channel ([`RecorderNews`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use openhearing_recorder::{
    ArchiveKey, CloseSummary, Codec, EventKind, GapCause, GapRecord, HearingEvent, HearingMeta,
    HearingRecorder, MediaKind as RecKind, RecorderAlert, RecorderConfig, RtpPacket, TrackMeta,
    TrackPush,
};
use rtc::rtp;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::model::Participant;
use crate::sfu::{MediaKind, MediaTap, PublishedTrack};

/// What the server records with (`[recording]` in the configuration).
#[derive(Clone)]
pub struct RecordingSettings {
    /// The recordings folder (one archive folder per hearing).
    pub root: PathBuf,
    pub segment_seconds: u32,
    pub queue_packets: usize,
    /// Signs every archive's manifest.
    pub key: ArchiveKey,
    /// Render `<recordings>/<archive>.mp4` after an archive closes.
    pub render_after_close: bool,
}

impl std::fmt::Debug for RecordingSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingSettings")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// The recorder's push handle of a track is its tap: it hands the track's packets to
/// the recorder on the SFU reader task.
impl MediaTap for TrackPush {
    fn rtp(&self, packet: &rtp::Packet, arrival: SystemTime) {
        // A full queue or a stopped writer is counted and journaled by the recorder;
        // the media path never waits for it.
        let _ = self.push_rtp(RtpPacket {
            ssrc: packet.header.ssrc,
            seq: packet.header.sequence_number,
            timestamp: packet.header.timestamp,
            marker: packet.header.marker,
            payload_type: packet.header.payload_type,
            payload: packet.payload.clone(),
            arrival,
        });
    }

    fn sender_report(&self, ssrc: u32, ntp_time: u64, rtp_time: u32) {
        self.push_sender_report(ssrc, ntp_time, rtp_time);
    }
}

/// What the recorder tells the actor (sent from the recorder's writer thread).
#[derive(Debug)]
pub enum RecorderNews {
    /// Something the presiding judge must know.
    Alert(RecorderAlert),
}

/// The recorder's keyframe request for `track`: a PLI through the SFU. The recorder
/// calls it on its writer thread; the request is handed to a small task on the
/// actor's runtime (the SFU's keyframe throttle and PLI writes are tokio code), so
/// the writer never runs SFU code itself. The task holds the track weakly, so an
/// archive does not keep an ended track alive, and ends when the recorder drops the
/// callback (the track leaves the archive).
fn keyframe_request(track: &Arc<PublishedTrack>, runtime: &Handle) -> impl Fn() + Send + 'static {
    let track: Weak<PublishedTrack> = Arc::downgrade(track);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    runtime.spawn(async move {
        while rx.recv().await.is_some() {
            match track.upgrade() {
                Some(track) => track.request_keyframe(),
                None => break,
            }
        }
    });
    move || {
        let _ = tx.send(());
    }
}

/// A track the archive knows: being recorded now (`recording`), or held back since
/// `gap` for a cause (its recorder track is removed meanwhile, so the record resumes
/// in a new segment rather than bridging the gap).
struct TrackState {
    track: Arc<PublishedTrack>,
    owner: TrackMeta,
    recording: bool,
    gap: Option<(DateTime<Utc>, GapCause)>,
}

/// A hearing's open archive.
pub struct ActiveRecording {
    recorder: HearingRecorder,
    /// The actor's runtime, for the keyframe requests the writer thread makes.
    runtime: Handle,
    tracks: HashMap<String, TrackState>,
    pub dir: PathBuf,
}

fn codec_of(track: &PublishedTrack) -> Option<Codec> {
    let mime = track.codec.mime_type.to_ascii_lowercase();
    if mime.ends_with("/opus") {
        Some(Codec::Opus)
    } else if mime.ends_with("/vp8") {
        Some(Codec::Vp8)
    } else if mime.ends_with("/h264") {
        Some(Codec::H264)
    } else {
        None
    }
}

impl ActiveRecording {
    /// Opens (or continues) the hearing's archive; the recorder's alerts go to the
    /// actor as `news`. Runs on the actor (inside the tokio runtime).
    pub fn open(
        settings: &RecordingSettings,
        meta: HearingMeta,
        news: mpsc::UnboundedSender<RecorderNews>,
    ) -> Result<ActiveRecording, openhearing_recorder::RecorderError> {
        let mut cfg = RecorderConfig::new(settings.root.clone());
        cfg.segment_seconds = settings.segment_seconds;
        cfg.queue_packets = settings.queue_packets;
        // Called on the writer thread: an unbounded tokio send never blocks it. The
        // actor gone means the hearing is over; the alert has no one to reach.
        let recorder = HearingRecorder::open(cfg, settings.key.clone(), meta, move |alert| {
            let _ = news.send(RecorderNews::Alert(alert));
        })?;
        Ok(ActiveRecording {
            dir: recorder.dir().to_owned(),
            recorder,
            runtime: Handle::current(),
            tracks: HashMap::new(),
        })
    }

    /// Makes `track` recorded (`record`) or not, marking a gap with `cause` while it
    /// is not. `owner` describes the publisher for the archive.
    pub fn set(
        &mut self,
        track: &Arc<PublishedTrack>,
        owner: &Participant,
        record: bool,
        cause: Option<GapCause>,
    ) {
        if !self.tracks.contains_key(&track.id) {
            if !record {
                return; // never recorded yet: nothing of it is in the archive
            }
            let Some(codec) = codec_of(track) else {
                tracing::warn!(track = %track.id, mime = %track.codec.mime_type, "codec cannot be recorded");
                return;
            };
            let meta = TrackMeta {
                track_id: track.id.clone(),
                participant_id: owner.id.to_string(),
                name: owner.name.clone(),
                role: owner.role.as_str().to_owned(),
                site: owner.site.clone(),
                kind: match track.kind {
                    MediaKind::Audio => RecKind::Audio,
                    MediaKind::Video => RecKind::Video,
                },
                codec,
                clock_rate: track.codec.clock_rate,
            };
            self.tracks.insert(
                track.id.clone(),
                TrackState {
                    track: track.clone(),
                    owner: meta,
                    recording: false,
                    gap: None,
                },
            );
        }
        let Some(state) = self.tracks.get_mut(&track.id) else {
            return;
        };
        if record && !state.recording {
            let on_keyframe = keyframe_request(track, &self.runtime);
            let push = match self.recorder.add_track(state.owner.clone(), on_keyframe) {
                Ok(push) => push,
                Err(e) => {
                    tracing::error!(track = %track.id, "recorder cannot add track: {e}");
                    return;
                }
            };
            if let Some((from, cause)) = state.gap.take() {
                crate::metrics::recorder_gap(cause.as_str());
                let _ = self.recorder.gap(GapRecord {
                    track_id: Some(track.id.clone()),
                    from,
                    to: Utc::now(),
                    cause,
                    count: 0,
                });
            }
            state.recording = true;
            track.set_tap(Some(Arc::new(push)));
        } else if !record && state.recording {
            track.set_tap(None);
            state.recording = false;
            let reason = cause.map_or("withheld", GapCause::as_str);
            let _ = self.recorder.remove_track(&track.id, reason);
            if let Some(cause) = cause {
                state.gap = Some((Utc::now(), cause));
            }
        }
    }

    /// The track left the hearing (publisher gone or renegotiated away).
    pub fn track_ended(&mut self, track_id: &str, reason: &str) {
        if let Some(state) = self.tracks.remove(track_id) {
            self.finish(track_id, state, reason);
        }
    }

    fn finish(&self, track_id: &str, state: TrackState, reason: &str) {
        state.track.set_tap(None);
        if state.recording {
            let _ = self.recorder.remove_track(track_id, reason);
        }
        if let Some((from, cause)) = state.gap {
            crate::metrics::recorder_gap(cause.as_str());
            let _ = self.recorder.gap(GapRecord {
                track_id: Some(track_id.to_owned()),
                from,
                to: Utc::now(),
                cause,
                count: 0,
            });
        }
    }

    /// Packets waiting in the recorder's queue now.
    pub fn queued(&self) -> usize {
        self.recorder.queued()
    }

    /// Packets the recorder dropped so far because its queue was full.
    pub fn dropped_queue_full(&self) -> u64 {
        self.recorder
            .stats()
            .packets_dropped_queue_full
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Ids of the tracks known to the archive.
    pub fn track_ids(&self) -> Vec<String> {
        self.tracks.keys().cloned().collect()
    }

    pub fn pause(&self, reason: &str) {
        let _ = self.recorder.pause(reason);
    }

    pub fn resume(&self) {
        let _ = self.recorder.resume();
    }

    /// Journals a hearing event (joins, leaves, mutes, state changes, rooms): the
    /// audit record's action as a journal [`EventKind`] (see [`event_kind`]) and its
    /// details as they are, a JSON value.
    pub fn event(
        &self,
        kind: EventKind,
        actor: &str,
        subject: Option<&str>,
        details: serde_json::Value,
    ) {
        let _ = self.recorder.event(HearingEvent {
            at: Utc::now(),
            kind,
            actor: Some(actor.to_owned()),
            subject: subject.map(str::to_owned),
            details,
        });
    }

    /// Closes the archive (segments finalised, manifest written and signed) off the
    /// actor: closing waits for the writer thread.
    pub fn close(mut self, reason: &str, render: bool) -> tokio::task::JoinHandle<()> {
        for (id, state) in std::mem::take(&mut self.tracks) {
            self.finish(&id, state, reason);
        }
        let reason = reason.to_owned();
        let dir = self.dir.clone();
        let recorder = self.recorder;
        tokio::task::spawn_blocking(move || {
            match recorder.close(CloseSummary {
                reason,
                details: serde_json::Value::Null,
            }) {
                Ok(_) => {
                    tracing::info!(archive = %dir.display(), "recording closed and signed");
                    if render {
                        // Next to the archive, not in it: the archive holds only what
                        // its manifest lists.
                        let out = dir.with_extension("mp4");
                        let opts = openhearing_recorder::render::RenderOptions {
                            progress: openhearing_recorder::render::Progress::Hidden,
                            ..Default::default()
                        };
                        match openhearing_recorder::render::render(&dir, &out, &opts) {
                            Ok(_) => tracing::info!(file = %out.display(), "hearing rendered"),
                            Err(e) => {
                                tracing::error!(archive = %dir.display(), "render failed: {e}")
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(archive = %dir.display(), "closing the recording failed: {e}")
                }
            }
        })
    }
}

/// The journal's kind of event for an audit action: the ones the archive names
/// (state changes, joins and leaves, mutes, private rooms), anything else by its
/// audit name.
pub fn event_kind(action: &str) -> EventKind {
    match action {
        "state_change" => EventKind::StateChanged,
        "join" => EventKind::Joined,
        "leave" => EventKind::Left,
        "mute" => EventKind::Muted,
        "unmute_accepted" => EventKind::Unmuted,
        "room_entered" => EventKind::PrivateRoomEntered,
        "room_left" => EventKind::PrivateRoomExited,
        "media_health" => EventKind::MediaHealth,
        other => EventKind::Other(other.to_owned()),
    }
}

/// The archive description of a hearing.
pub fn meta(
    id: Uuid,
    case_number: &str,
    title: &str,
    scheduled: Option<DateTime<Utc>>,
) -> HearingMeta {
    HearingMeta {
        hearing_id: id.to_string(),
        case_number: case_number.to_owned(),
        title: title.to_owned(),
        court: None,
        scheduled_start: scheduled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_actions_map_to_the_journals_event_kinds() {
        assert_eq!(event_kind("state_change"), EventKind::StateChanged);
        assert_eq!(event_kind("join"), EventKind::Joined);
        assert_eq!(event_kind("leave"), EventKind::Left);
        assert_eq!(event_kind("mute"), EventKind::Muted);
        assert_eq!(event_kind("unmute_accepted"), EventKind::Unmuted);
        assert_eq!(event_kind("room_entered"), EventKind::PrivateRoomEntered);
        assert_eq!(event_kind("media_health"), EventKind::MediaHealth);
        assert_eq!(event_kind("room_left"), EventKind::PrivateRoomExited);
        assert_eq!(event_kind("admit"), EventKind::Other("admit".into()));
    }
}
