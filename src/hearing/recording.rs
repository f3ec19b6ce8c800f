//! The hearing actor's side of recording: one [`HearingRecorder`] per hearing while it
//! is in session, fed through SFU taps that the forwarding policy
//! ([`super::policy::may_record`]) switches on and off — so the lobby, private rooms
//! and muted audio never reach the archive, and the time they are missing is marked
//! in the record with its cause.
//!
//! Everything here runs on the actor; the packets themselves go from the SFU's reader
//! tasks straight into the recorder's bounded queue ([`RecordTap`]), never through
//! the actor, and never block the media path.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use openhearing_recorder::{
    ArchiveKey, CloseSummary, Codec, EventKind, GapCause, GapRecord, HearingEvent, HearingMeta,
    HearingRecorder, MediaKind as RecKind, RecorderAlert, RecorderConfig, RecorderHandle,
    RtpPacket, TrackMeta,
};
use rtc::rtp;
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

/// Hands one published track's packets to the recorder (on the SFU reader task).
struct RecordTap {
    handle: RecorderHandle,
    track_id: String,
}

impl MediaTap for RecordTap {
    fn rtp(&self, packet: &rtp::Packet, arrival: SystemTime) {
        // A full queue or a stopped writer is counted and journaled by the recorder;
        // the media path never waits for it.
        let _ = self.handle.push_rtp(
            &self.track_id,
            RtpPacket {
                ssrc: packet.header.ssrc,
                seq: packet.header.sequence_number,
                timestamp: packet.header.timestamp,
                marker: packet.header.marker,
                payload_type: packet.header.payload_type,
                payload: packet.payload.clone(),
                arrival,
            },
        );
    }

    fn sender_report(&self, ssrc: u32, ntp_time: u64, rtp_time: u32) {
        self.handle
            .push_sender_report(&self.track_id, ssrc, ntp_time, rtp_time);
    }
}

/// What the recorder tells the actor (from its own threads).
#[derive(Debug)]
pub enum RecorderNews {
    /// Ask this track's publisher for a keyframe.
    Keyframe(String),
    /// Something the presiding judge must know.
    Alert(RecorderAlert),
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
    handle: RecorderHandle,
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
    /// Opens (or continues) the hearing's archive and starts relaying the recorder's
    /// keyframe requests and alerts to the actor.
    pub fn open(
        settings: &RecordingSettings,
        meta: HearingMeta,
        news: mpsc::UnboundedSender<RecorderNews>,
    ) -> Result<ActiveRecording, openhearing_recorder::RecorderError> {
        let mut cfg = RecorderConfig::new(settings.root.clone());
        cfg.segment_seconds = settings.segment_seconds;
        cfg.queue_packets = settings.queue_packets;
        let recorder = HearingRecorder::open(cfg, settings.key.clone(), meta)?;
        let handle = recorder
            .handle()
            .ok_or(openhearing_recorder::RecorderError::WriterStopped)?;
        // The recorder's channels are blocking (crossbeam); one small thread each
        // forwards them until the recorder closes.
        let keyframes = recorder.keyframe_requests();
        let tx = news.clone();
        std::thread::spawn(move || {
            for id in keyframes.iter() {
                if tx.send(RecorderNews::Keyframe(id)).is_err() {
                    break;
                }
            }
        });
        let alerts = recorder.alerts();
        std::thread::spawn(move || {
            for a in alerts.iter() {
                if news.send(RecorderNews::Alert(a)).is_err() {
                    break;
                }
            }
        });
        Ok(ActiveRecording {
            dir: recorder.dir().to_owned(),
            recorder,
            handle,
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
            if let Err(e) = self.recorder.add_track(state.owner.clone()) {
                tracing::error!(track = %track.id, "recorder cannot add track: {e}");
                return;
            }
            if let Some((from, cause)) = state.gap.take() {
                let _ = self.recorder.gap(GapRecord {
                    track_id: Some(track.id.clone()),
                    from,
                    to: Utc::now(),
                    cause,
                    count: 0,
                });
            }
            state.recording = true;
            track.set_tap(Some(Arc::new(RecordTap {
                handle: self.handle.clone(),
                track_id: track.id.clone(),
            })));
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
            let _ = self.recorder.gap(GapRecord {
                track_id: Some(track_id.to_owned()),
                from,
                to: Utc::now(),
                cause,
                count: 0,
            });
        }
    }

    /// Ids of the tracks known to the archive.
    pub fn track_ids(&self) -> Vec<String> {
        self.tracks.keys().cloned().collect()
    }

    pub fn request_keyframe(&self, track_id: &str) {
        if let Some(s) = self.tracks.get(track_id) {
            s.track.request_keyframe();
        }
    }

    pub fn pause(&self, reason: &str) {
        let _ = self.recorder.pause(reason);
    }

    pub fn resume(&self) {
        let _ = self.recorder.resume();
    }

    /// Journals a hearing event (joins, leaves, mutes, state changes, rooms).
    pub fn event(&self, action: &str, actor: &str, subject: Option<&str>, details: &str) {
        let kind = match action {
            "state_change" => EventKind::StateChanged,
            "join" => EventKind::Joined,
            "leave" => EventKind::Left,
            "mute" => EventKind::Muted,
            "unmute_accepted" => EventKind::Unmuted,
            "room_entered" => EventKind::PrivateRoomEntered,
            "room_left" => EventKind::PrivateRoomExited,
            other => EventKind::Other(other.to_owned()),
        };
        let _ = self.recorder.event(HearingEvent {
            at: Utc::now(),
            kind,
            actor: Some(actor.to_owned()),
            subject: subject.map(str::to_owned),
            details: serde_json::from_str(details).unwrap_or(serde_json::Value::Null),
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
