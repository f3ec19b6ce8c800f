//! Whether the database takes writes now, as `/readyz` reports it.
//!
//! Reads keep working on a full disk, so a `SELECT 1` says nothing about writes; only
//! a write does. Every write the store makes is noted here ([`Readiness::note`]),
//! and a readiness check younger than [`MAX_AGE`] is answered from the last note.
//! Otherwise one probe write (supplied by the store) is made, and concurrent checks
//! wait for that one instead of each writing: an unauthenticated `/readyz` flood
//! costs at most one small write a second. A change between writable and not is
//! logged once, so the operator sees when the disk filled and when it recovered.

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long the outcome of a write answers for the next checks.
pub const MAX_AGE: Duration = Duration::from_secs(1);

/// The database refused a write; the text says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the database cannot take writes: {0}")]
pub struct NotWritable(pub String);

#[derive(Debug)]
struct Seen {
    at: Instant,
    outcome: Result<(), NotWritable>,
}

/// The last known write outcome of one database (see the module docs).
#[derive(Debug, Default)]
pub struct Readiness {
    last: Mutex<Option<Seen>>,
    /// Held while a probe write runs, so only one runs at a time.
    probing: tokio::sync::Mutex<()>,
}

impl Readiness {
    /// Records the outcome of a write (`Err`: it failed for want of the database,
    /// not because it was wrong).
    pub fn note(&self, outcome: Result<(), NotWritable>) {
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        let was = last.as_ref().map(|s| s.outcome.is_ok());
        match (&outcome, was) {
            (Err(e), Some(true) | None) => {
                tracing::error!("{e}; /readyz answers 503 until a write succeeds again");
            }
            (Ok(()), Some(false)) => tracing::warn!("the database takes writes again"),
            _ => {}
        }
        *last = Some(Seen {
            at: Instant::now(),
            outcome,
        });
    }

    fn fresh(&self) -> Option<Result<(), NotWritable>> {
        let last = self.last.lock().ok()?;
        last.as_ref()
            .filter(|s| s.at.elapsed() < MAX_AGE)
            .map(|s| s.outcome.clone())
    }

    /// Whether the database takes writes: the last outcome if fresh, else what
    /// `probe` (one write) returns.
    pub async fn check<F>(&self, probe: impl FnOnce() -> F) -> Result<(), NotWritable>
    where
        F: Future<Output = Result<(), NotWritable>>,
    {
        if let Some(outcome) = self.fresh() {
            return outcome;
        }
        let _one = self.probing.lock().await;
        if let Some(outcome) = self.fresh() {
            return outcome; // another check probed meanwhile
        }
        let outcome = probe().await;
        self.note(outcome.clone());
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn a_fresh_outcome_answers_and_a_stale_one_probes_once() {
        let r = Readiness::default();
        let probes = &AtomicUsize::new(0);
        let probe = move || async move {
            probes.fetch_add(1, Ordering::SeqCst);
            Err(NotWritable("disk full".into()))
        };
        assert!(r.check(probe).await.is_err());
        assert!(r.check(probe).await.is_err(), "answered from the probe");
        assert_eq!(probes.load(Ordering::SeqCst), 1);
        r.note(Ok(()));
        assert_eq!(r.check(probe).await, Ok(()), "a write succeeded since");
        assert_eq!(probes.load(Ordering::SeqCst), 1);
    }
}
