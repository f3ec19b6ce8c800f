//! The audit trail: an append-only, hash-chained log per hearing.
//!
//! Every entry stores the hash of the entry before it, and its own hash covers its
//! content and that link. The hearing row keeps the chain's head (entry count and
//! last hash) apart from the entries, so that removing the *last* entry is detected
//! as well as changing, removing or reordering any other.
//!
//! The hash is SHA-256 over a length-prefixed encoding of the hearing id, the previous
//! hash and every field of the record. The details are hashed as the exact JSON text
//! that is stored, so no JSON canonicalisation is involved. The position (`seq`) is
//! not hashed: order is what the chain itself proves, which is what lets
//! [`verify_chain`] tell a reordered entry from a modified one.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::model::{rfc3339, AuditEntry, AuditRecord};

/// The `prev_hash` of a hearing's first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hash of an entry with this content whose predecessor has hash `prev_hash`.
pub fn entry_hash(
    hearing_id: Uuid,
    prev_hash: &str,
    at: DateTime<Utc>,
    actor: &str,
    subject: Option<&str>,
    action: &str,
    details: &str,
) -> String {
    let mut h = Sha256::new();
    h.update(b"openhearing-audit-v1\n");
    let at = rfc3339(at);
    for field in [
        hearing_id.to_string().as_str(),
        prev_hash,
        at.as_str(),
        actor,
        subject.unwrap_or(""),
        action,
        details,
    ] {
        h.update(field.len().to_string().as_bytes());
        h.update(b":");
        h.update(field.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

/// Links `record` after an entry with hash `prev_hash` at position `seq`.
pub fn link(hearing_id: Uuid, seq: u64, prev_hash: &str, record: AuditRecord) -> AuditEntry {
    let hash = entry_hash(
        hearing_id,
        prev_hash,
        record.at,
        &record.actor,
        record.subject.as_deref(),
        &record.action,
        &record.details,
    );
    AuditEntry {
        seq,
        at: record.at,
        actor: record.actor,
        subject: record.subject,
        action: record.action,
        details: record.details,
        prev_hash: prev_hash.to_owned(),
        hash,
    }
}

/// Recomputes an entry's hash from its content.
pub fn recompute(hearing_id: Uuid, e: &AuditEntry) -> String {
    entry_hash(
        hearing_id,
        &e.prev_hash,
        e.at,
        &e.actor,
        e.subject.as_deref(),
        &e.action,
        &e.details,
    )
}

/// The first thing wrong with a hearing's audit chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainProblem {
    #[error("entry #{seq} was modified: its content no longer matches its hash")]
    Modified { seq: u64 },
    #[error("entry #{seq} was removed")]
    Removed { seq: u64 },
    #[error("entry #{seq} is out of order: it was moved from its place in the chain")]
    Reordered { seq: u64 },
    #[error("the chain should hold {expected} entries but holds {found}: the entries after #{found} were removed")]
    Truncated { expected: u64, found: u64 },
    #[error("the last entry #{seq} does not match the chain head recorded for the hearing: it was modified or replaced")]
    HeadMismatch { seq: u64 },
    #[error("the chain holds {found} entries but the hearing records only {expected}: entries were added")]
    Extended { expected: u64, found: u64 },
}

/// Checks a hearing's entries (in stored `seq` order) against each other and against
/// the recorded head (`count`, `head_hash`). Returns the first problem.
pub fn verify_chain(
    hearing_id: Uuid,
    entries: &[AuditEntry],
    count: u64,
    head_hash: &str,
) -> Result<(), ChainProblem> {
    let hashes: std::collections::HashMap<&str, u64> =
        entries.iter().map(|e| (e.hash.as_str(), e.seq)).collect();
    let mut prev = GENESIS.to_owned();
    let mut expected_seq = 1u64;
    for e in entries {
        if e.seq > expected_seq {
            return Err(ChainProblem::Removed { seq: expected_seq });
        }
        if recompute(hearing_id, e) != e.hash {
            return Err(ChainProblem::Modified { seq: e.seq });
        }
        if e.prev_hash != prev {
            // The entry is genuine (its hash verifies) but does not follow its
            // predecessor: either it points to an entry that is elsewhere in the log
            // (moved), or to one that is gone (removed before it).
            return Err(
                if hashes.contains_key(e.prev_hash.as_str()) || e.prev_hash == GENESIS {
                    ChainProblem::Reordered { seq: e.seq }
                } else {
                    ChainProblem::Removed {
                        seq: e.seq.saturating_sub(1).max(1),
                    }
                },
            );
        }
        prev = e.hash.clone();
        expected_seq = e.seq + 1;
    }
    let found = entries.len() as u64;
    if found < count {
        return Err(ChainProblem::Truncated {
            expected: count,
            found,
        });
    }
    if found > count {
        return Err(ChainProblem::Extended {
            expected: count,
            found,
        });
    }
    if count > 0 && prev != head_hash {
        return Err(ChainProblem::HeadMismatch { seq: count });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u64) -> (Uuid, Vec<AuditEntry>) {
        let id = Uuid::new_v4();
        let mut prev = GENESIS.to_owned();
        let mut out = Vec::new();
        for seq in 1..=n {
            let e = link(
                id,
                seq,
                &prev,
                AuditRecord {
                    at: crate::model::micros(Utc::now()),
                    actor: "system".into(),
                    subject: Some(format!("participant:{seq}")),
                    action: "join".into(),
                    details: format!("{{\"n\":{seq}}}"),
                },
            );
            prev = e.hash.clone();
            out.push(e);
        }
        (id, out)
    }

    fn head(es: &[AuditEntry]) -> (u64, String) {
        (
            es.len() as u64,
            es.last().map(|e| e.hash.clone()).unwrap_or_default(),
        )
    }

    #[test]
    fn intact_chain_verifies() {
        let (id, es) = chain(5);
        let (n, h) = head(&es);
        verify_chain(id, &es, n, &h).unwrap();
        verify_chain(id, &[], 0, "").unwrap();
    }

    #[test]
    fn modification_is_named() {
        let (id, mut es) = chain(5);
        let (n, h) = head(&es);
        es[2].details = "{\"n\":99}".into();
        assert_eq!(
            verify_chain(id, &es, n, &h),
            Err(ChainProblem::Modified { seq: 3 })
        );
    }

    #[test]
    fn removal_is_named() {
        let (id, mut es) = chain(5);
        let (n, h) = head(&es);
        es.remove(1);
        assert_eq!(
            verify_chain(id, &es, n, &h),
            Err(ChainProblem::Removed { seq: 2 })
        );
        // Removal with renumbering of the rest: still found, by the chain link.
        let (id, mut es) = chain(5);
        es.remove(1);
        for (i, e) in es.iter_mut().enumerate() {
            e.seq = i as u64 + 1;
        }
        assert_eq!(
            verify_chain(id, &es, n, &h),
            Err(ChainProblem::Removed { seq: 1 })
        );
    }

    #[test]
    fn removing_the_last_entry_is_caught_by_the_head() {
        let (id, mut es) = chain(5);
        let (n, h) = head(&es);
        es.pop();
        assert_eq!(
            verify_chain(id, &es, n, &h),
            Err(ChainProblem::Truncated {
                expected: 5,
                found: 4
            })
        );
    }

    #[test]
    fn swap_is_named_as_reordering() {
        let (id, mut es) = chain(5);
        let (n, h) = head(&es);
        // Swap the contents of rows 2 and 3, keeping the row numbers.
        let (a, b) = (es[1].clone(), es[2].clone());
        es[1] = AuditEntry { seq: 2, ..b };
        es[2] = AuditEntry { seq: 3, ..a };
        assert_eq!(
            verify_chain(id, &es, n, &h),
            Err(ChainProblem::Reordered { seq: 2 })
        );
    }

    #[test]
    fn entries_of_another_hearing_do_not_verify() {
        let (_, es) = chain(3);
        let (n, h) = head(&es);
        assert_eq!(
            verify_chain(Uuid::new_v4(), &es, n, &h),
            Err(ChainProblem::Modified { seq: 1 })
        );
    }
}
