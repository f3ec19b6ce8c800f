//! `archive info`: who was recorded, for how long, the gaps, who could see and hear
//! whom ([`crate::health`]), and whether it verifies.

use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use ed25519_dalek::VerifyingKey;

use crate::health::{self, PairHealth};
use crate::journal::{read_lines_lenient, GapRecord, JournalError, JOURNAL_FILE};
use crate::manifest::{self, ManifestError, ParticipantSummary, TrackSummary};
use crate::types::HearingMeta;
use crate::verify::{verify, VerifyReport};

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum InfoError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
}

/// A summary of one archive.
#[derive(Debug, Clone)]
pub struct ArchiveInfo {
    pub dir: PathBuf,
    pub hearing: HearingMeta,
    pub opened_at: DateTime<Utc>,
    pub last_entry_at: DateTime<Utc>,
    pub sealed: bool,
    pub interrupted: bool,
    pub participants: Vec<ParticipantSummary>,
    pub tracks: Vec<TrackSummary>,
    pub gaps: Vec<GapRecord>,
    /// Per (publisher → subscriber, kind): share of in-session time `ok`, outages.
    pub health: Vec<PairHealth>,
    pub journal_entries: u64,
    pub verification: VerifyReport,
}

/// Reads the archive's journal (and verifies it) for a summary.
pub fn info(dir: &Path, public_key: Option<&VerifyingKey>) -> Result<ArchiveInfo, InfoError> {
    let lines = read_lines_lenient(&dir.join(JOURNAL_FILE))?.lines;
    let m = manifest::build(&lines)?;
    let health = health::summarize(&lines);
    Ok(ArchiveInfo {
        dir: dir.to_path_buf(),
        hearing: m.hearing,
        opened_at: m.opened_at,
        last_entry_at: m.closed_at,
        sealed: dir.join(manifest::MANIFEST_FILE).exists(),
        interrupted: m.interrupted,
        participants: m.participants,
        tracks: m.tracks,
        gaps: m.gaps,
        health,
        journal_entries: m.journal.entries,
        verification: verify(dir, public_key),
    })
}

fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn dur(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    format!(
        "{}:{:02}:{:02}.{:03}",
        s / 3600,
        (s / 60) % 60,
        s % 60,
        ms.max(0) % 1000
    )
}

impl fmt::Display for ArchiveInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Archive   {}", self.dir.display())?;
        writeln!(
            f,
            "Hearing   {} — {} ({})",
            self.hearing.case_number, self.hearing.title, self.hearing.hearing_id
        )?;
        writeln!(
            f,
            "Journal   {} → {}",
            ts(&self.opened_at),
            ts(&self.last_entry_at)
        )?;
        let first = self.tracks.iter().filter_map(|t| t.first_start).min();
        let last = self.tracks.iter().filter_map(|t| t.last_end).max();
        if let (Some(a), Some(b)) = (first, last) {
            writeln!(
                f,
                "Media     {} → {} ({})",
                ts(&a),
                ts(&b),
                dur((b - a).num_milliseconds())
            )?;
        }
        let state = match (self.sealed, self.interrupted) {
            (false, _) => "not sealed (recording, or the server stopped)",
            (true, true) => "sealed after an interruption",
            (true, false) => "closed and signed",
        };
        writeln!(
            f,
            "State     {state}; {} journal entries",
            self.journal_entries
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "{:<24} {:<18} {:<20} {:<6} {:<5} {:>5} {:>13}",
            "PARTICIPANT", "ROLE", "TRACK", "KIND", "CODEC", "SEGS", "DURATION"
        )?;
        for p in &self.participants {
            for t in self
                .tracks
                .iter()
                .filter(|t| t.participant_id == p.participant_id)
            {
                writeln!(
                    f,
                    "{:<24} {:<18} {:<20} {:<6} {:<5} {:>5} {:>13}",
                    truncate(&p.name, 24),
                    truncate(&p.role, 18),
                    truncate(&t.track_id, 20),
                    format!("{:?}", t.kind).to_lowercase(),
                    format!("{:?}", t.codec).to_lowercase(),
                    t.segments,
                    dur(t.duration_ms)
                )?;
            }
        }
        writeln!(f)?;
        if self.gaps.is_empty() {
            writeln!(f, "Gaps      none")?;
        } else {
            writeln!(f, "Gaps      {}", self.gaps.len())?;
            for g in self.gaps.iter().take(50) {
                writeln!(
                    f,
                    "  {:<14} {:<20} {} → {} ({} ms){}",
                    g.cause.as_str(),
                    g.track_id.as_deref().unwrap_or("(all tracks)"),
                    ts(&g.from),
                    ts(&g.to),
                    (g.to - g.from).num_milliseconds(),
                    if g.count > 0 {
                        format!(", {} lost", g.count)
                    } else {
                        String::new()
                    }
                )?;
            }
            if self.gaps.len() > 50 {
                writeln!(f, "  ... and {} more", self.gaps.len() - 50)?;
            }
        }
        writeln!(f)?;
        self.fmt_health(f)?;
        writeln!(f)?;
        write!(f, "Verify    {}", self.verification)
    }
}

impl ArchiveInfo {
    /// The media-health section: one line per pair and kind, then its outages.
    fn fmt_health(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.health.is_empty() {
            return writeln!(f, "Health    no media-health events");
        }
        let name = |id: &str| {
            self.participants
                .iter()
                .find(|p| p.participant_id == id)
                .map(|p| p.name.clone())
                .unwrap_or_else(|| id.chars().take(8).collect())
        };
        writeln!(f, "Health    share of in-session time ok, per pair")?;
        for p in &self.health {
            writeln!(
                f,
                "  {:<24} → {:<24} {:<6} {:>6.1} % ok of {} ({} outages)",
                truncate(&name(&p.publisher), 24),
                truncate(&name(&p.subscriber), 24),
                p.kind,
                p.ok_percent(),
                dur(p.judged_ms),
                p.outages.len()
            )?;
            for o in p.outages.iter().take(20) {
                writeln!(
                    f,
                    "      {:<8} {} → {} ({}) {}",
                    o.grade,
                    ts(&o.from),
                    ts(&o.to),
                    dur((o.to - o.from).num_milliseconds()),
                    o.cause
                )?;
            }
        }
        Ok(())
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}
