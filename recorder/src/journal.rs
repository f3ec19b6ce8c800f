//! The append-only, hash-chained journal (`journal.jsonl`).
//!
//! One JSON object per line. Every line carries `seq` (0, 1, 2, ...), `prev_hash`
//! (the previous line's `hash`; 64 zeros for the first) and `hash`: the SHA-256, in
//! lower-case hex, of the line's *canonical form without `hash`*: keys sorted by byte
//! order at every level, no whitespace, numbers and strings as `serde_json` prints
//! them. Hashing the canonical form (not the raw bytes) means a verifier can
//! recompute it from the parsed object alone. Each append is written with one
//! `write` call and `fsync`ed before the next one starts, so after a crash the file
//! ends in at most one torn line, which sealing removes and records.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::types::{CloseSummary, GapCause, HearingEvent, HearingMeta, TrackMeta};

/// The journal's file name inside an archive folder.
pub const JOURNAL_FILE: &str = "journal.jsonl";
/// `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("journal {path} line {line}: {reason}")]
    Corrupt {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("journal entry could not be serialised: {0}")]
    Serialize(#[from] serde_json::Error),
}

/// A closed segment, as journaled (and listed in the manifest).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SegmentRecord {
    /// Path relative to the archive folder, with `/` separators.
    pub file: String,
    pub track_id: String,
    pub participant_id: String,
    pub role: String,
    pub site: String,
    /// Wall-clock time of the first frame.
    pub start: DateTime<Utc>,
    /// Wall-clock time of the end of the last frame.
    pub end: DateTime<Utc>,
    pub duration_ms: i64,
    pub frames: u64,
    pub size: u64,
    pub sha256: String,
    /// True when this segment follows a discontinuity (SSRC change, timestamp jump,
    /// publisher returned): its first frame does not continue the previous segment.
    #[serde(default)]
    pub discontinuity: bool,
}

/// A stretch of a track (or, with `track_id: None`, of every track) that is not in the record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GapRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track_id: Option<String>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub cause: GapCause,
    /// Packets or frames lost in it, when counted.
    #[serde(default)]
    pub count: u64,
}

/// A file recorded as evidence rather than as a segment (an unclosed partial segment
/// found when sealing an interrupted archive).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileRecord {
    pub file: String,
    pub size: u64,
    pub sha256: String,
}

/// The body of a journal entry (`type` tells which).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Entry {
    ArchiveOpened {
        hearing: HearingMeta,
        recorder_version: String,
        /// Hex Ed25519 public key of the key that will sign the manifest.
        public_key: String,
        segment_seconds: u32,
        /// When this archive continues an earlier, interrupted one of the same hearing.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        continues: Option<String>,
    },
    TrackAdded {
        track: TrackMeta,
    },
    Segment(SegmentRecord),
    Gap(GapRecord),
    Paused {
        reason: String,
    },
    Resumed,
    Event {
        event: HearingEvent,
    },
    TrackRemoved {
        track_id: String,
        reason: String,
    },
    ArchiveClosed {
        summary: CloseSummary,
    },
    ArchiveSealedInterrupted {
        /// The last moment known to be recorded (the latest journaled time).
        cut_at: DateTime<Utc>,
        /// The last intact entry before this one.
        last_seq: u64,
        /// Unclosed partial segments kept as evidence (not segments).
        partial_files: Vec<FileRecord>,
        /// Bytes of a torn last line removed from the journal, with their hash.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        torn_tail: Option<FileRecord>,
    },
}

impl Entry {
    /// The entry's `type` string.
    pub fn type_name(&self) -> &'static str {
        match self {
            Entry::ArchiveOpened { .. } => "archive_opened",
            Entry::TrackAdded { .. } => "track_added",
            Entry::Segment(_) => "segment",
            Entry::Gap(_) => "gap",
            Entry::Paused { .. } => "paused",
            Entry::Resumed => "resumed",
            Entry::Event { .. } => "event",
            Entry::TrackRemoved { .. } => "track_removed",
            Entry::ArchiveClosed { .. } => "archive_closed",
            Entry::ArchiveSealedInterrupted { .. } => "archive_sealed_interrupted",
        }
    }
}

/// One journal line, parsed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Line {
    pub seq: u64,
    pub prev_hash: String,
    /// When the entry was written.
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub entry: Entry,
    pub hash: String,
}

/// Canonical JSON: keys sorted at every level, no whitespace.
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                if let Some(val) = map.get(*k) {
                    write_canonical(val, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The hash a line must carry: SHA-256 of its canonical form without `hash`.
pub fn entry_hash(obj: &Value) -> String {
    let mut v = obj.clone();
    if let Value::Object(map) = &mut v {
        map.remove("hash");
    }
    hex::encode(Sha256::digest(canonical_json(&v).as_bytes()))
}

/// SHA-256 of a file, streamed, plus its size.
pub fn hash_file(path: &Path) -> io::Result<(String, u64)> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((hex::encode(h.finalize()), size))
}

/// `fsync` a directory so a rename or create inside it is durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Builds the serialised line (with its hash) for `entry` following `prev`.
pub fn make_line(
    seq: u64,
    prev_hash: &str,
    at: DateTime<Utc>,
    entry: Entry,
) -> Result<(Line, String), JournalError> {
    let mut line = Line {
        seq,
        prev_hash: prev_hash.to_string(),
        at,
        entry,
        hash: String::new(),
    };
    let v = serde_json::to_value(&line)?;
    line.hash = entry_hash(&v);
    let mut v = v;
    if let Value::Object(map) = &mut v {
        map.insert("hash".into(), Value::String(line.hash.clone()));
    }
    // Written canonically too, so the file is byte-for-byte reproducible.
    let text = canonical_json(&v);
    Ok((line, text))
}

/// An open journal being appended to.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    /// Length of the file up to the last fully written line.
    good_len: u64,
    next_seq: u64,
    head: String,
}

impl Journal {
    /// Creates a new journal whose first entry is `first`, atomically: the line is
    /// written and `fsync`ed under a temporary name which is then renamed, so a
    /// journal never exists without its opening entry. Fails if a journal exists.
    pub fn create(dir: &Path, at: DateTime<Utc>, first: Entry) -> Result<Self, JournalError> {
        let path = dir.join(JOURNAL_FILE);
        let io_err = |p: &Path| {
            let p = p.to_path_buf();
            move |source| JournalError::Io { path: p, source }
        };
        if path.exists() {
            return Err(JournalError::Io {
                path,
                source: io::Error::from(io::ErrorKind::AlreadyExists),
            });
        }
        let tmp = dir.join(format!("{JOURNAL_FILE}.tmp"));
        let (_, mut text) = make_line(0, GENESIS_HASH, at, first)?;
        text.push('\n');
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&tmp)
            .map_err(io_err(&tmp))?;
        f.write_all(text.as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(io_err(&tmp))?;
        drop(f);
        std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
        sync_dir(dir).map_err(io_err(dir))?;
        let (journal, _) = Self::open_append(dir)?;
        Ok(journal)
    }

    /// Opens an existing journal to append to it, after checking that its lines parse.
    /// A torn last line is cut off and returned (for sealing to record).
    pub fn open_append(dir: &Path) -> Result<(Self, JournalRead), JournalError> {
        let path = dir.join(JOURNAL_FILE);
        let read = read_lines_lenient(&path)?;
        let (lines, good_len, torn) = (&read.lines, read.good_len, &read.torn);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|source| JournalError::Io {
                path: path.clone(),
                source,
            })?;
        if torn.is_some() {
            file.set_len(good_len).map_err(|source| JournalError::Io {
                path: path.clone(),
                source,
            })?;
            file.sync_all().map_err(|source| JournalError::Io {
                path: path.clone(),
                source,
            })?;
        }
        let (next_seq, head) = match lines.last() {
            Some(l) => (l.seq + 1, l.hash.clone()),
            None => (0, GENESIS_HASH.to_string()),
        };
        Ok((
            Self {
                path,
                file,
                good_len,
                next_seq,
                head,
            },
            read,
        ))
    }

    /// Appends one entry and `fsync`s. On failure the file is cut back to its last
    /// good length and the chain is unchanged, so the same entry can be retried.
    pub fn append(&mut self, at: DateTime<Utc>, entry: Entry) -> Result<Line, JournalError> {
        let (line, mut text) = make_line(self.next_seq, &self.head, at, entry)?;
        text.push('\n');
        let res = (|| -> io::Result<()> {
            self.file.seek(SeekFrom::Start(self.good_len))?;
            self.file.write_all(text.as_bytes())?;
            self.file.sync_data()
        })();
        if let Err(source) = res {
            let _ = self.file.set_len(self.good_len);
            return Err(JournalError::Io {
                path: self.path.clone(),
                source,
            });
        }
        self.good_len += text.len() as u64;
        self.next_seq += 1;
        self.head = line.hash.clone();
        Ok(line)
    }

    /// Appends several entries with one write and one `fsync` (all or nothing: on
    /// failure the file is cut back and the chain is unchanged).
    pub fn append_batch(
        &mut self,
        entries: &[(DateTime<Utc>, Entry)],
    ) -> Result<Vec<Line>, JournalError> {
        let mut text = String::new();
        let mut lines = Vec::with_capacity(entries.len());
        let (mut seq, mut head) = (self.next_seq, self.head.clone());
        for (at, entry) in entries {
            let (line, t) = make_line(seq, &head, *at, entry.clone())?;
            text.push_str(&t);
            text.push('\n');
            seq += 1;
            head = line.hash.clone();
            lines.push(line);
        }
        if lines.is_empty() {
            return Ok(lines);
        }
        let res = (|| -> io::Result<()> {
            self.file.seek(SeekFrom::Start(self.good_len))?;
            self.file.write_all(text.as_bytes())?;
            self.file.sync_data()
        })();
        if let Err(source) = res {
            let _ = self.file.set_len(self.good_len);
            return Err(JournalError::Io {
                path: self.path.clone(),
                source,
            });
        }
        self.good_len += text.len() as u64;
        self.next_seq = seq;
        self.head = head;
        Ok(lines)
    }

    /// Hash of the last entry (the head of the chain).
    pub fn head(&self) -> &str {
        &self.head
    }

    /// Number of entries written.
    pub fn len(&self) -> u64 {
        self.next_seq
    }

    pub fn is_empty(&self) -> bool {
        self.next_seq == 0
    }
}

/// A journal as read from disk.
#[derive(Debug, Clone)]
pub struct JournalRead {
    pub lines: Vec<Line>,
    /// Byte length of the complete lines.
    pub good_len: u64,
    /// An unterminated last line (a torn write), if any.
    pub torn: Option<Vec<u8>>,
}

/// Reads the journal for appending, sealing, rendering: every complete line must
/// parse as a [`Line`]; an unterminated last line (a torn write) is returned separately.
pub fn read_lines_lenient(path: &Path) -> Result<JournalRead, JournalError> {
    let data = std::fs::read(path).map_err(|source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_lines_lenient(path, &data)
}

/// [`read_lines_lenient`] on a journal already in memory (`path` only names it in
/// errors). The parsing half on its own, so the fuzz targets reach it without a file.
pub fn parse_lines_lenient(path: &Path, data: &[u8]) -> Result<JournalRead, JournalError> {
    let complete = match data.iter().rposition(|&b| b == b'\n') {
        Some(i) => i + 1,
        None => 0,
    };
    let torn = if complete < data.len() {
        Some(data[complete..].to_vec())
    } else {
        None
    };
    let mut lines = Vec::new();
    for (i, raw) in data[..complete].split(|&b| b == b'\n').enumerate() {
        if raw.is_empty() {
            continue;
        }
        let line: Line = serde_json::from_slice(raw).map_err(|e| JournalError::Corrupt {
            path: path.to_path_buf(),
            line: i + 1,
            reason: e.to_string(),
        })?;
        lines.push(line);
    }
    Ok(JournalRead {
        lines,
        good_len: complete as u64,
        torn,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_sorts_keys_and_hash_ignores_hash_field() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":{"d":[1,"x"],"c":null},"hash":"zz"}"#)
            .expect("json");
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"c":null,"d":[1,"x"]},"b":1,"hash":"zz"}"#
        );
        let b: Value = serde_json::from_str(r#"{"a":{"c":null,"d":[1,"x"]},"b":1}"#).expect("json");
        assert_eq!(entry_hash(&a), entry_hash(&b));
    }

    #[test]
    fn append_chains_and_reopen_cuts_torn_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut j = Journal::create(dir.path(), Utc::now(), Entry::Resumed).expect("create");
        let l0 = read_lines_lenient(&dir.path().join(JOURNAL_FILE))
            .expect("read")
            .lines
            .remove(0);
        let l1 = j
            .append(
                Utc::now(),
                Entry::Paused {
                    reason: "recess".into(),
                },
            )
            .expect("append");
        assert_eq!(l0.prev_hash, GENESIS_HASH);
        assert_eq!(l1.prev_hash, l0.hash);
        drop(j);
        let p = dir.path().join(JOURNAL_FILE);
        let mut f = OpenOptions::new().append(true).open(&p).expect("open");
        f.write_all(b"{\"seq\":2,\"prev").expect("write");
        drop(f);
        let (j, read) = Journal::open_append(dir.path()).expect("reopen");
        assert_eq!(read.lines.len(), 2);
        assert_eq!(read.torn.as_deref(), Some(&b"{\"seq\":2,\"prev"[..]));
        assert!(Journal::create(dir.path(), Utc::now(), Entry::Resumed).is_err());
        assert_eq!(j.head(), l1.hash);
        assert_eq!(j.len(), 2);
        let text = std::fs::read_to_string(&p).expect("read");
        assert!(text.ends_with("}\n"));
    }
}
