//! Checking an archive: every file, hash, chain link and the signature.
//!
//! What is checked, in order:
//! 1. the journal: each line's hash against its content (`EntryAltered`), sequence
//!    numbers for gaps (`EntryRemoved`), order (`EntryReordered`: entries outside the
//!    longest in-order run), duplicates, and each `prev_hash` link (an entry edited
//!    and re-hashed breaks its successor's link);
//! 2. the manifest: its signature (against `--public-key` when given, else the key in
//!    the archive, which only proves consistency), the journal head hash and entry
//!    count it records (catches deleted or appended last lines), and that it equals
//!    the manifest rebuilt from the journal;
//! 3. the files: every segment the journal lists exists with its size and SHA-256,
//!    and no other file is in the folder.

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use ed25519_dalek::VerifyingKey;
use serde_json::Value;

use crate::journal::{entry_hash, hash_file, Entry, Line, GENESIS_HASH, JOURNAL_FILE};
use crate::key::{parse_public_hex, verify_hex};
use crate::manifest::{self, Manifest, MANIFEST_FILE, SIGNATURE_FILE};
use crate::seal::{walk_files, PARTIAL_SUFFIX};

/// One thing wrong with an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A listed file's content differs from its recorded SHA-256 or size.
    FileAltered(String),
    /// A listed file is not there.
    FileMissing(String),
    /// A file that the archive does not list.
    ExtraFile(String),
    /// A segment still being written when the server stopped (unsealed archive).
    UnclosedSegment(String),
    /// The journal entry with this `seq` was changed.
    EntryAltered(u64),
    /// Entries `from..=to` are missing from the journal.
    EntryRemoved { from: u64, to: u64 },
    /// The entry with this `seq` is not where it was written.
    EntryReordered(u64),
    /// Two entries carry this `seq`.
    EntryDuplicated(u64),
    /// Entries after the manifest was signed (`seq` of the first).
    EntryAppended(u64),
    /// Line `line` (1-based) of the journal cannot be read.
    EntryUnreadable { line: usize },
    /// The journal file is missing.
    JournalMissing,
    /// The manifest does not match the journal (what differs).
    ManifestMismatch(String),
    /// There is no manifest: the archive was never closed or sealed.
    NotSealed,
    /// `manifest.sig` is missing or unreadable.
    SignatureMissing,
    /// The signature does not verify.
    SignatureInvalid,
    /// The manifest is validly signed, but by another key than the trusted one.
    SignedByOtherKey { signer: String },
    /// The archive was sealed after the server stopped mid-recording.
    Interrupted {
        cut_at: DateTime<Utc>,
        last_seq: u64,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::FileAltered(p) => write!(f, "file altered: {p} does not match its recorded SHA-256"),
            Problem::FileMissing(p) => write!(f, "file missing: {p} is listed in the journal but not present"),
            Problem::ExtraFile(p) => write!(f, "extra file: {p} is not part of the archive"),
            Problem::UnclosedSegment(p) => write!(f, "unclosed segment: {p} was being written when recording stopped"),
            Problem::EntryAltered(s) => write!(f, "journal entry {s} was altered"),
            Problem::EntryRemoved { from, to } if from == to => write!(f, "journal entry {from} was removed"),
            Problem::EntryRemoved { from, to } => write!(f, "journal entries {from} to {to} were removed"),
            Problem::EntryReordered(s) => write!(f, "journal entry {s} was moved out of order"),
            Problem::EntryDuplicated(s) => write!(f, "journal entry {s} appears more than once"),
            Problem::EntryAppended(s) => write!(f, "journal entries from {s} on were added after the archive was signed"),
            Problem::EntryUnreadable { line } => write!(f, "journal line {line} is not a readable entry"),
            Problem::JournalMissing => write!(f, "file missing: {JOURNAL_FILE}"),
            Problem::ManifestMismatch(what) => write!(f, "manifest does not match the journal: {what}"),
            Problem::NotSealed => write!(f, "archive not sealed: no manifest (still recording, or the server stopped and has not restarted)"),
            Problem::SignatureMissing => write!(f, "signature missing: {SIGNATURE_FILE} absent or unreadable"),
            Problem::SignatureInvalid => write!(f, "signature invalid: the manifest was changed or not signed by its key"),
            Problem::SignedByOtherKey { signer } => write!(f, "signature invalid: the manifest is signed by another key ({signer}), not the trusted one"),
            Problem::Interrupted { cut_at, last_seq } => write!(
                f,
                "archive interrupted at {}: recording stopped without closing (last entry {last_seq}); sealed afterwards",
                cut_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            ),
        }
    }
}

/// How the signature was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureCheck {
    /// Against the public key the caller trusts.
    TrustedKey,
    /// Only against the key written in the archive itself (proves consistency, not origin).
    ArchiveKey,
    /// Not checked (no manifest or signature).
    NotChecked,
}

/// An interruption, as recorded when the archive was sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interruption {
    pub cut_at: DateTime<Utc>,
    pub last_seq: u64,
}

/// The result of [`verify`].
#[derive(Debug, Clone)]
pub struct VerifyReport {
    pub dir: PathBuf,
    pub problems: Vec<Problem>,
    pub interrupted: Option<Interruption>,
    pub signature: SignatureCheck,
    pub journal_entries: usize,
    pub segments_checked: usize,
}

impl VerifyReport {
    /// True when nothing at all is wrong (an interrupted archive is not ok).
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ok() {
            writeln!(
                f,
                "OK: {}: {} journal entries, {} segments, chain intact, signature valid ({})",
                self.dir.display(),
                self.journal_entries,
                self.segments_checked,
                match self.signature {
                    SignatureCheck::TrustedKey => "trusted key",
                    SignatureCheck::ArchiveKey =>
                        "key in the archive only; pass --public-key to check who signed",
                    SignatureCheck::NotChecked => "not checked",
                }
            )
        } else {
            writeln!(
                f,
                "FAILED: {}: {} problem(s)",
                self.dir.display(),
                self.problems.len()
            )?;
            for p in &self.problems {
                writeln!(f, "  - {p}")?;
            }
            Ok(())
        }
    }
}

struct Parsed {
    pos: usize,
    seq: u64,
    prev: String,
    hash: String,
    line: Option<Line>,
}

/// Positions (indices into `seqs`) that form a longest strictly increasing run.
fn longest_increasing(seqs: &[u64]) -> HashSet<usize> {
    // Patience sorting with back-pointers: O(n log n).
    let mut tails: Vec<usize> = Vec::new();
    let mut back: Vec<Option<usize>> = vec![None; seqs.len()];
    for i in 0..seqs.len() {
        let k = tails.partition_point(|&t| seqs[t] < seqs[i]);
        back[i] = if k > 0 { Some(tails[k - 1]) } else { None };
        if k == tails.len() {
            tails.push(i);
        } else {
            tails[k] = i;
        }
    }
    let mut keep = HashSet::new();
    let mut cur = tails.last().copied();
    while let Some(i) = cur {
        keep.insert(i);
        cur = back[i];
    }
    keep
}

/// Verifies the archive in `dir`. With `public_key`, the manifest must be signed by
/// it; without, by the key recorded in the archive.
pub fn verify(dir: &Path, public_key: Option<&VerifyingKey>) -> VerifyReport {
    let mut problems: Vec<Problem> = Vec::new();
    let mut report = VerifyReport {
        dir: dir.to_path_buf(),
        problems: Vec::new(),
        interrupted: None,
        signature: SignatureCheck::NotChecked,
        journal_entries: 0,
        segments_checked: 0,
    };

    // 1. Journal.
    let mut parsed: Vec<Parsed> = Vec::new();
    let mut altered: BTreeSet<u64> = BTreeSet::new();
    match fs::read(dir.join(JOURNAL_FILE)) {
        Err(_) => problems.push(Problem::JournalMissing),
        Ok(data) => {
            for (i, raw) in data.split(|&b| b == b'\n').enumerate() {
                if raw.is_empty() {
                    continue;
                }
                let Ok(v) = serde_json::from_slice::<Value>(raw) else {
                    problems.push(Problem::EntryUnreadable { line: i + 1 });
                    continue;
                };
                let (Some(seq), Some(prev), Some(hash)) = (
                    v.get("seq").and_then(Value::as_u64),
                    v.get("prev_hash").and_then(Value::as_str),
                    v.get("hash").and_then(Value::as_str),
                ) else {
                    problems.push(Problem::EntryUnreadable { line: i + 1 });
                    continue;
                };
                if entry_hash(&v) != hash {
                    altered.insert(seq);
                }
                parsed.push(Parsed {
                    pos: parsed.len(),
                    seq,
                    prev: prev.to_string(),
                    hash: hash.to_string(),
                    line: serde_json::from_value(v).ok(),
                });
            }
        }
    }
    report.journal_entries = parsed.len();
    let seqs: Vec<u64> = parsed.iter().map(|p| p.seq).collect();
    let in_order = longest_increasing(&seqs);
    for (i, p) in parsed.iter().enumerate() {
        if !in_order.contains(&i) {
            problems.push(Problem::EntryReordered(p.seq));
        }
    }
    let mut by_seq: Vec<&Parsed> = parsed.iter().collect();
    by_seq.sort_by_key(|p| (p.seq, p.pos));
    let mut dup: BTreeSet<u64> = BTreeSet::new();
    for w in by_seq.windows(2) {
        if w[0].seq == w[1].seq {
            dup.insert(w[0].seq);
        }
    }
    problems.extend(dup.iter().map(|&s| Problem::EntryDuplicated(s)));
    by_seq.dedup_by_key(|p| p.seq);
    let mut expected = 0u64;
    for p in &by_seq {
        if p.seq > expected {
            problems.push(Problem::EntryRemoved {
                from: expected,
                to: p.seq - 1,
            });
        }
        expected = p.seq + 1;
    }
    if let Some(first) = by_seq.first() {
        if first.seq == 0 && first.prev != GENESIS_HASH {
            altered.insert(0);
        }
    }
    for w in by_seq.windows(2) {
        let (a, b) = (w[0], w[1]);
        if b.seq == a.seq + 1 && b.prev != a.hash && !altered.contains(&b.seq) {
            // `a` was changed and given a fresh hash: its successor no longer links to it.
            altered.insert(a.seq);
        }
    }

    // 2. Manifest and signature.
    let lines: Vec<Line> = by_seq.iter().filter_map(|p| p.line.clone()).collect();
    let opened_key = lines.first().and_then(|l| match &l.entry {
        Entry::ArchiveOpened { public_key, .. } => Some(public_key.clone()),
        _ => None,
    });
    let manifest_bytes = fs::read(dir.join(MANIFEST_FILE)).ok();
    let mut manifest: Option<Manifest> = None;
    match &manifest_bytes {
        None => {
            problems.push(Problem::NotSealed);
        }
        Some(bytes) => match serde_json::from_slice::<Manifest>(bytes) {
            Err(e) => problems.push(Problem::ManifestMismatch(format!(
                "manifest unreadable ({e})"
            ))),
            Ok(m) => {
                let sig = fs::read_to_string(dir.join(SIGNATURE_FILE)).ok();
                match sig {
                    None => problems.push(Problem::SignatureMissing),
                    Some(sig) => {
                        let embedded = parse_public_hex(&m.public_key);
                        match public_key {
                            Some(trusted) => {
                                report.signature = SignatureCheck::TrustedKey;
                                if !verify_hex(trusted, bytes, &sig) {
                                    if embedded.is_some_and(|k| verify_hex(&k, bytes, &sig)) {
                                        problems.push(Problem::SignedByOtherKey {
                                            signer: m.public_key.clone(),
                                        });
                                    } else {
                                        problems.push(Problem::SignatureInvalid);
                                    }
                                }
                            }
                            None => {
                                report.signature = SignatureCheck::ArchiveKey;
                                if !embedded.is_some_and(|k| verify_hex(&k, bytes, &sig)) {
                                    problems.push(Problem::SignatureInvalid);
                                } else if opened_key.as_deref().is_some_and(|k| k != m.public_key) {
                                    problems.push(Problem::SignedByOtherKey {
                                        signer: m.public_key.clone(),
                                    });
                                }
                            }
                        }
                    }
                }
                // Journal head and count as signed.
                let n = m.journal.entries;
                let max_seq = by_seq.last().map(|p| p.seq);
                match max_seq {
                    Some(ms) if ms + 1 < n => problems.push(Problem::EntryRemoved {
                        from: ms + 1,
                        to: n - 1,
                    }),
                    None if n > 0 => problems.push(Problem::EntryRemoved { from: 0, to: n - 1 }),
                    Some(ms) if ms + 1 > n => problems.push(Problem::EntryAppended(n)),
                    _ => {}
                }
                if n > 0 {
                    if let Some(head) = by_seq.iter().find(|p| p.seq == n - 1) {
                        if head.hash != m.journal.head_hash {
                            altered.insert(head.seq);
                        }
                    }
                }
                if m.interrupted {
                    let last_seq = lines
                        .iter()
                        .find_map(|l| match &l.entry {
                            Entry::ArchiveSealedInterrupted { last_seq, .. } => Some(*last_seq),
                            _ => None,
                        })
                        .unwrap_or(0);
                    let cut_at = m.cut_at.unwrap_or(m.closed_at);
                    report.interrupted = Some(Interruption { cut_at, last_seq });
                    problems.push(Problem::Interrupted { cut_at, last_seq });
                }
                manifest = Some(m);
            }
        },
    }
    problems.extend(altered.iter().map(|&s| Problem::EntryAltered(s)));
    let journal_clean = !problems.iter().any(|p| {
        matches!(
            p,
            Problem::EntryAltered(_)
                | Problem::EntryRemoved { .. }
                | Problem::EntryReordered(_)
                | Problem::EntryDuplicated(_)
                | Problem::EntryAppended(_)
                | Problem::EntryUnreadable { .. }
        )
    });
    if let Some(m) = &manifest {
        if journal_clean && lines.len() == by_seq.len() {
            match manifest::build(&lines) {
                Ok(rebuilt) => {
                    let a = serde_json::to_value(&rebuilt).ok();
                    let b = serde_json::to_value(m).ok();
                    if a != b {
                        problems.push(Problem::ManifestMismatch(describe_difference(&rebuilt, m)));
                    }
                }
                Err(e) => problems.push(Problem::ManifestMismatch(e.to_string())),
            }
        }
    }

    // 3. Files.
    let mut known: HashSet<String> = [JOURNAL_FILE, MANIFEST_FILE, SIGNATURE_FILE]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut listed: Vec<(String, u64, String)> = Vec::new();
    for l in &lines {
        match &l.entry {
            Entry::Segment(s) => listed.push((s.file.clone(), s.size, s.sha256.clone())),
            Entry::ArchiveSealedInterrupted {
                partial_files,
                torn_tail,
                ..
            } => {
                for f in partial_files.iter().chain(torn_tail.iter()) {
                    listed.push((f.file.clone(), f.size, f.sha256.clone()));
                }
            }
            _ => {}
        }
    }
    for (file, size, sha) in &listed {
        known.insert(file.clone());
        if file.split('/').any(|c| c == ".." || c.is_empty()) || file.starts_with('/') {
            problems.push(Problem::ManifestMismatch(format!(
                "unsafe file name {file}"
            )));
            continue;
        }
        let path = dir.join(file);
        if !path.is_file() {
            problems.push(Problem::FileMissing(file.clone()));
            continue;
        }
        match hash_file(&path) {
            Ok((h, n)) if &h == sha && n == *size => {}
            _ => problems.push(Problem::FileAltered(file.clone())),
        }
    }
    report.segments_checked = lines
        .iter()
        .filter(|l| matches!(l.entry, Entry::Segment(_)))
        .count();
    for f in walk_files(dir) {
        if known.contains(&f) {
            continue;
        }
        if manifest.is_none() && f.ends_with(PARTIAL_SUFFIX) {
            problems.push(Problem::UnclosedSegment(f));
        } else {
            problems.push(Problem::ExtraFile(f));
        }
    }
    report.problems = problems;
    report
}

fn describe_difference(rebuilt: &Manifest, m: &Manifest) -> String {
    if rebuilt.segments != m.segments {
        "segment list differs".into()
    } else if rebuilt.journal != m.journal {
        "journal head differs".into()
    } else if rebuilt.gaps != m.gaps {
        "gap list differs".into()
    } else if rebuilt.tracks != m.tracks {
        "track list differs".into()
    } else if rebuilt.participants != m.participants {
        "participant list differs".into()
    } else {
        "hearing details differ".into()
    }
}
