//! The manifest (`manifest.json`) and its signature (`manifest.sig`).
//!
//! The manifest is derived from the journal alone (the same function serves a
//! normal close and the sealing of an interrupted archive), so it can never say
//! something the journal does not. `manifest.sig` holds the Ed25519 signature over the
//! exact bytes of `manifest.json`, as 128 hex digits and a newline; the signature is
//! kept out of the manifest so the signed bytes are simply the file.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::journal::{sync_dir, Entry, FileRecord, GapRecord, Line, SegmentRecord};
use crate::key::ArchiveKey;
use crate::types::{CloseSummary, Codec, HearingMeta, MediaKind};

pub const MANIFEST_FILE: &str = "manifest.json";
pub const SIGNATURE_FILE: &str = "manifest.sig";
/// Format tag written into every manifest.
pub const FORMAT: &str = "openhearing-archive/1";

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the journal has no archive_opened entry; cannot build a manifest")]
    NoOpening,
    #[error("manifest JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// One participant, as it appears in the manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ParticipantSummary {
    pub participant_id: String,
    pub name: String,
    pub role: String,
    pub site: String,
}

/// One track, with totals over its segments.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TrackSummary {
    pub track_id: String,
    pub participant_id: String,
    pub kind: MediaKind,
    pub codec: Codec,
    pub segments: u64,
    pub frames: u64,
    /// Sum of segment durations.
    pub duration_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_start: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_end: Option<DateTime<Utc>>,
}

/// The journal's head at the time the manifest was made.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct JournalHead {
    pub entries: u64,
    pub head_hash: String,
}

/// The signed summary of a closed (or sealed) archive.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: String,
    pub hearing: HearingMeta,
    /// Hex Ed25519 public key of the signer.
    pub public_key: String,
    pub opened_at: DateTime<Utc>,
    pub closed_at: DateTime<Utc>,
    /// True when the server stopped without closing and the archive was sealed later.
    pub interrupted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<CloseSummary>,
    pub participants: Vec<ParticipantSummary>,
    pub tracks: Vec<TrackSummary>,
    pub segments: Vec<SegmentRecord>,
    pub gaps: Vec<GapRecord>,
    /// Unclosed partial segments kept as evidence after a crash.
    pub partial_files: Vec<FileRecord>,
    pub journal: JournalHead,
}

/// Builds the manifest from the journal's lines (which must end with
/// `archive_closed` or `archive_sealed_interrupted` for a final manifest).
pub fn build(lines: &[Line]) -> Result<Manifest, ManifestError> {
    let first = lines.first().ok_or(ManifestError::NoOpening)?;
    let Entry::ArchiveOpened {
        hearing,
        public_key,
        ..
    } = &first.entry
    else {
        return Err(ManifestError::NoOpening);
    };
    let mut participants: BTreeMap<String, ParticipantSummary> = BTreeMap::new();
    let mut tracks: BTreeMap<String, TrackSummary> = BTreeMap::new();
    let mut segments = Vec::new();
    let mut gaps = Vec::new();
    let mut partial_files = Vec::new();
    let mut interrupted = false;
    let mut cut_at = None;
    let mut summary = None;
    for line in lines {
        match &line.entry {
            Entry::TrackAdded { track } => {
                participants
                    .entry(track.participant_id.clone())
                    .or_insert_with(|| ParticipantSummary {
                        participant_id: track.participant_id.clone(),
                        name: track.name.clone(),
                        role: track.role.clone(),
                        site: track.site.clone(),
                    });
                tracks
                    .entry(track.track_id.clone())
                    .or_insert_with(|| TrackSummary {
                        track_id: track.track_id.clone(),
                        participant_id: track.participant_id.clone(),
                        kind: track.kind,
                        codec: track.codec,
                        segments: 0,
                        frames: 0,
                        duration_ms: 0,
                        first_start: None,
                        last_end: None,
                    });
            }
            Entry::Segment(s) => {
                if let Some(t) = tracks.get_mut(&s.track_id) {
                    t.segments += 1;
                    t.frames += s.frames;
                    t.duration_ms += s.duration_ms;
                    t.first_start = Some(t.first_start.map_or(s.start, |v| v.min(s.start)));
                    t.last_end = Some(t.last_end.map_or(s.end, |v| v.max(s.end)));
                }
                segments.push(s.clone());
            }
            Entry::Gap(g) => gaps.push(g.clone()),
            Entry::ArchiveClosed { summary: s } => summary = Some(s.clone()),
            Entry::ArchiveSealedInterrupted {
                cut_at: c,
                partial_files: p,
                ..
            } => {
                interrupted = true;
                cut_at = Some(*c);
                partial_files.extend(p.iter().cloned());
            }
            _ => {}
        }
    }
    let last = lines.last().unwrap_or(first);
    Ok(Manifest {
        format: FORMAT.to_string(),
        hearing: hearing.clone(),
        public_key: public_key.clone(),
        opened_at: first.at,
        closed_at: last.at,
        interrupted,
        cut_at,
        summary,
        participants: participants.into_values().collect(),
        tracks: tracks.into_values().collect(),
        segments,
        gaps,
        partial_files,
        journal: JournalHead {
            entries: lines.len() as u64,
            head_hash: last.hash.clone(),
        },
    })
}

/// Writes `manifest.json` and `manifest.sig` durably (temp file, fsync, rename,
/// directory fsync). The signature is renamed into place first: a crash between the
/// two renames leaves a signature without a manifest, which reads as "not sealed" and
/// is sealed again on the next start.
pub fn write_signed(
    dir: &Path,
    manifest: &Manifest,
    key: &ArchiveKey,
) -> Result<Vec<u8>, ManifestError> {
    let mut bytes = serde_json::to_vec_pretty(manifest)?;
    bytes.push(b'\n');
    let sig = format!("{}\n", key.sign_hex(&bytes));
    write_durable(&dir.join(SIGNATURE_FILE), sig.as_bytes())?;
    write_durable(&dir.join(MANIFEST_FILE), &bytes)?;
    sync_dir(dir).map_err(|source| ManifestError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    Ok(bytes)
}

fn write_durable(path: &Path, bytes: &[u8]) -> Result<(), ManifestError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!("{name}.tmp"));
    let io_err = |source| ManifestError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = fs::File::create(&tmp).map_err(io_err)?;
    f.write_all(bytes).map_err(io_err)?;
    f.sync_all().map_err(io_err)?;
    drop(f);
    fs::rename(&tmp, path).map_err(io_err)
}
