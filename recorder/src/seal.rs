//! Sealing archives the server left open (crash, kill -9, power loss).
//!
//! What a crash costs: the segments that were still being written (at most one
//! per track, i.e. up to `segment_seconds` of each track) and entries not yet
//! journaled. Everything closed before the crash stays verifiable: segments are
//! renamed into place only after they are complete and `fsync`ed, and journaled only
//! after that. Sealing keeps the unclosed `*.partial` files as evidence (recorded by
//! hash, never counted as segments), moves a torn last journal line to
//! `journal.torn`, appends `archive_sealed_interrupted` with the last time known to
//! be recorded, and writes and signs the manifest with `interrupted: true`.

use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use crate::journal::{hash_file, sync_dir, Entry, FileRecord, Journal, JournalError, JOURNAL_FILE};
use crate::key::ArchiveKey;
use crate::manifest::{self, Manifest, ManifestError, MANIFEST_FILE};

/// Where a torn last journal line is kept.
pub const TORN_FILE: &str = "journal.torn";
/// Suffix of segments still being written.
pub const PARTIAL_SUFFIX: &str = ".partial";

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("{0} is already sealed (it has a manifest)")]
    AlreadySealed(PathBuf),
    #[error("{0} has no usable journal (no archive_opened entry); left untouched")]
    NoJournal(PathBuf),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What sealing did.
#[derive(Debug, Clone)]
pub struct SealOutcome {
    pub dir: PathBuf,
    pub cut_at: DateTime<Utc>,
    pub last_seq: u64,
    pub partial_files: Vec<FileRecord>,
    pub manifest: Manifest,
}

/// Lists `*.partial` files under `dir` (relative paths, `/`-separated), sorted.
pub fn partial_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for rel in walk_files(dir) {
        if rel.ends_with(PARTIAL_SUFFIX) {
            out.push(rel);
        }
    }
    out
}

/// Every file under `dir`, relative, `/`-separated, sorted. Depth-bounded (4 levels).
pub fn walk_files(dir: &Path) -> Vec<String> {
    fn go(base: &Path, rel: &str, depth: u32, out: &mut Vec<String>) {
        if depth > 4 {
            return;
        }
        let here = if rel.is_empty() {
            base.to_path_buf()
        } else {
            base.join(rel)
        };
        let Ok(rd) = fs::read_dir(&here) else { return };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let r = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            match e.file_type() {
                Ok(ft) if ft.is_dir() => go(base, &r, depth + 1, out),
                Ok(_) => out.push(r),
                Err(_) => {}
            }
        }
    }
    let mut out = Vec::new();
    go(dir, "", 0, &mut out);
    out.sort();
    out
}

/// Seals one archive that has a journal but no manifest.
pub fn seal_interrupted(dir: &Path, key: &ArchiveKey) -> Result<SealOutcome, SealError> {
    if dir.join(MANIFEST_FILE).exists() {
        return Err(SealError::AlreadySealed(dir.to_path_buf()));
    }
    if !dir.join(JOURNAL_FILE).exists() {
        return Err(SealError::NoJournal(dir.to_path_buf()));
    }
    let (mut journal, read) = Journal::open_append(dir)?;
    let (lines, torn) = (read.lines, read.torn);
    let Some(first) = lines.first() else {
        return Err(SealError::NoJournal(dir.to_path_buf()));
    };
    if !matches!(first.entry, Entry::ArchiveOpened { .. }) {
        return Err(SealError::NoJournal(dir.to_path_buf()));
    }
    let torn_tail = match torn {
        Some(bytes) => {
            let path = dir.join(TORN_FILE);
            fs::write(&path, &bytes)
                .and_then(|_| fs::File::open(&path)?.sync_all())
                .map_err(|source| SealError::Io {
                    path: path.clone(),
                    source,
                })?;
            let (sha256, size) =
                hash_file(&path).map_err(|source| SealError::Io { path, source })?;
            Some(FileRecord {
                file: TORN_FILE.to_string(),
                size,
                sha256,
            })
        }
        None => None,
    };
    let mut partials = Vec::new();
    for rel in partial_files(dir) {
        let path = dir.join(&rel);
        match hash_file(&path) {
            Ok((sha256, size)) => partials.push(FileRecord {
                file: rel,
                size,
                sha256,
            }),
            Err(e) => warn!(file = %path.display(), error = %e, "cannot hash partial segment"),
        }
    }
    // The last moment known to be in the record: the latest journaled time or
    // segment end.
    let mut cut_at = first.at;
    for l in &lines {
        cut_at = cut_at.max(l.at);
        if let Entry::Segment(s) = &l.entry {
            cut_at = cut_at.max(s.end);
        }
    }
    let last_seq = lines.last().map_or(0, |l| l.seq);
    journal.append(
        Utc::now(),
        Entry::ArchiveSealedInterrupted {
            cut_at,
            last_seq,
            partial_files: partials.clone(),
            torn_tail,
        },
    )?;
    let _ = sync_dir(dir);
    let lines = crate::journal::read_lines_lenient(&dir.join(JOURNAL_FILE))?.lines;
    let m = manifest::build(&lines)?;
    manifest::write_signed(dir, &m, key)?;
    info!(dir = %dir.display(), %cut_at, "interrupted recording archive sealed");
    Ok(SealOutcome {
        dir: dir.to_path_buf(),
        cut_at,
        last_seq,
        partial_files: partials,
        manifest: m,
    })
}

/// At server start: seals every archive under `root` that has a journal but no
/// manifest. Only call this before any recorder of this process is open.
pub fn scan_and_seal(
    root: &Path,
    key: &ArchiveKey,
) -> Vec<(PathBuf, Result<SealOutcome, SealError>)> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(root) else {
        return out;
    };
    let mut dirs: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() && p.join(JOURNAL_FILE).exists() && !p.join(MANIFEST_FILE).exists())
        .collect();
    dirs.sort();
    for d in dirs {
        let r = seal_interrupted(&d, key);
        out.push((d, r));
    }
    out
}
