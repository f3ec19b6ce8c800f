//! Storing one hearing actor's changes, in order, before anyone is told of them.
//!
//! The hearing core hands every input's state changes and audit records to the
//! actor first ([`Phase::Persist`](super::core::Phase::Persist) and
//! [`Phase::Audit`](super::core::Phase::Audit) come before media and announcements).
//! The actor gives them to this writer as one batch, which the store applies in one
//! transaction ([`Store::apply`]): the state change and the entry that records it
//! land together or not at all. Only then does the actor carry out the rest.
//!
//! A batch that fails is handled by what kind of input it came from:
//! - **a request** (a join, a court action, an operator's change): [`Writer::store`]
//!   returns [`Unstored`]; the actor undoes the core's decision and answers
//!   `store_unavailable`. Nothing was stored, nothing is announced, the requester
//!   may try again.
//! - **a fact** (a participant left, a track ended, the recorder raised an alert,
//!   the archive opened, the store already carried out an operator's change): it
//!   cannot be refused, it happened. [`Writer::record`] keeps the batch in a
//!   backlog, in order, and the actor goes on; the backlog is retried with a
//!   backoff that doubles from [`FIRST_RETRY`] up to [`MAX_RETRY`] until the store
//!   takes it, so no audit entry is lost while the process lives. While anything
//!   waits, requests are refused (their batch would land out of order), the actor
//!   does not stop for idleness, and at shutdown it keeps trying for
//!   [`DRAIN_AT_STOP`]; whatever is still left then is logged entry by entry as
//!   lost, never dropped silently.
//!
//! There is one writer per actor and one order: a `join` precedes its `leave` in the
//! audit chain, a lock followed by an unlock ends unlocked.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;

use crate::store::Store;

/// What the hearing core asks to store (the store's own type).
pub use crate::store::Write as WriteOp;

/// The first wait before the backlog is retried.
pub const FIRST_RETRY: Duration = Duration::from_millis(200);
/// The longest wait between two retries of the backlog.
pub const MAX_RETRY: Duration = Duration::from_secs(5);
/// How long a stopping actor keeps trying to store its backlog (within the 5 s the
/// server waits for its hearings at shutdown).
pub const DRAIN_AT_STOP: Duration = Duration::from_secs(3);
/// The most batches the backlog holds; beyond, a fact's records are logged as lost.
pub const MAX_BACKLOG: usize = 10_000;

/// A request's batch was not stored (nothing of it was).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the change was not stored: {0}")]
pub struct Unstored(pub String);

/// The writer of one hearing actor (see the module docs).
pub struct Writer {
    hearing: Uuid,
    store: Arc<dyn Store>,
    /// Facts the store has not taken yet, oldest first.
    backlog: VecDeque<Vec<WriteOp>>,
    /// The wait before the next retry after this one fails.
    backoff: Duration,
    retry_at: Option<Instant>,
}

impl Writer {
    pub fn new(hearing: Uuid, store: Arc<dyn Store>) -> Writer {
        Writer {
            hearing,
            store,
            backlog: VecDeque::new(),
            backoff: FIRST_RETRY,
            retry_at: None,
        }
    }

    /// Stores a request's batch, after the backlog; on error nothing of it is
    /// stored.
    pub async fn store(&mut self, batch: Vec<WriteOp>) -> Result<(), Unstored> {
        if !self.retry().await {
            return Err(Unstored(format!(
                "{} earlier changes still wait for the store",
                self.backlog.len()
            )));
        }
        self.store
            .apply(self.hearing, &batch)
            .await
            .map_err(|e| {
                tracing::warn!(hearing = %self.hearing, "refused a change the store could not take: {e}");
                Unstored(e.to_string())
            })
    }

    /// Stores a fact's batch, or keeps it in the backlog behind what already waits.
    pub async fn record(&mut self, batch: Vec<WriteOp>) {
        if self.backlog.len() >= MAX_BACKLOG {
            lost(self.hearing, &batch, "the backlog is full");
            return;
        }
        self.backlog.push_back(batch);
        self.retry().await;
    }

    /// When the backlog is due to be retried; `None` when nothing waits.
    pub fn retry_at(&self) -> Option<Instant> {
        self.retry_at.filter(|_| !self.backlog.is_empty())
    }

    /// Whether nothing waits for the store.
    pub fn is_drained(&self) -> bool {
        self.backlog.is_empty()
    }

    /// Stores what waits, oldest first, up to the first failure; true when nothing
    /// waits any more.
    pub async fn retry(&mut self) -> bool {
        while let Some(batch) = self.backlog.front() {
            match self.store.apply(self.hearing, batch).await {
                Ok(()) => {
                    self.backlog.pop_front();
                }
                Err(e) => {
                    tracing::warn!(
                        hearing = %self.hearing,
                        waiting = self.backlog.len(),
                        retry_in = ?self.backoff,
                        "the store cannot take this hearing's records yet: {e}"
                    );
                    self.retry_at = Some(Instant::now() + self.backoff);
                    self.backoff = (self.backoff * 2).min(MAX_RETRY);
                    return false;
                }
            }
        }
        if self.retry_at.take().is_some() {
            tracing::info!(hearing = %self.hearing, "every waiting record is stored");
        }
        self.backoff = FIRST_RETRY;
        true
    }

    /// At stop: retries for up to [`DRAIN_AT_STOP`], then logs what is left as lost.
    pub async fn drain(&mut self) {
        let deadline = Instant::now() + DRAIN_AT_STOP;
        while !self.retry().await {
            let next = self.retry_at.unwrap_or(deadline).min(deadline);
            if next >= deadline {
                break;
            }
            tokio::time::sleep_until(next).await;
        }
        for batch in self.backlog.drain(..) {
            lost(
                self.hearing,
                &batch,
                "the hearing stopped before the store took it",
            );
        }
    }
}

/// Logs every record of a batch that will never be stored.
fn lost(hearing: Uuid, batch: &[WriteOp], why: &str) {
    for write in batch {
        match write {
            WriteOp::Audit(r) => tracing::error!(
                %hearing, action = %r.action, actor = %r.actor, subject = ?r.subject,
                details = %r.details, at = %r.at, "audit entry LOST ({why})"
            ),
            other => tracing::error!(%hearing, change = ?other, "state change LOST ({why})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NewHearing;
    use crate::store::SqliteStore;

    fn record(action: &str) -> WriteOp {
        WriteOp::Audit(crate::store::test_support::record(action))
    }

    /// A fact that the store refuses waits in order and lands once the store takes
    /// writes again; a request meanwhile is refused rather than stored out of order.
    #[tokio::test]
    async fn facts_wait_in_order_and_requests_are_refused_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("w.db").display());
        let sqlite = SqliteStore::open(&url).await.unwrap();
        let store: Arc<dyn Store> = Arc::new(sqlite.clone());
        let h = store
            .create_hearing(
                NewHearing {
                    case_number: "HS-8/2026".into(),
                    title: "Vụ án".into(),
                    scheduled_at: None,
                    recording: Some(false),
                    sites: Vec::new(),
                    participants: Vec::new(),
                },
                &[],
            )
            .await
            .unwrap();
        // The database refuses every audit entry until the trigger is dropped.
        sqlx::query(
            "CREATE TRIGGER refuse BEFORE INSERT ON audit \
             BEGIN SELECT RAISE(ABORT, 'refused by test'); END",
        )
        .execute(sqlite.pool())
        .await
        .unwrap();
        let mut w = Writer::new(h.id, store.clone());
        w.record(vec![record("leave")]).await;
        w.record(vec![record("recording_alert")]).await;
        assert!(!w.is_drained());
        assert!(w.retry_at().is_some());
        let e = w.store(vec![record("state_change")]).await.unwrap_err();
        assert!(e.0.contains("2 earlier changes"), "{e}");

        sqlx::query("DROP TRIGGER refuse")
            .execute(sqlite.pool())
            .await
            .unwrap();
        w.store(vec![record("state_change")]).await.unwrap();
        assert!(w.is_drained() && w.retry_at().is_none());
        let (entries, _, _) = store.audit_log(h.id).await.unwrap().unwrap();
        let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["leave", "recording_alert", "state_change"]);
    }
}
