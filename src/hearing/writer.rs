//! Write-behind persistence for one hearing actor.
//!
//! The hearing core decides without any I/O, and the actor does not wait for the
//! database on a participant's account (joins, court actions, media): it queues
//! every state change and audit record here, and one task applies them in order.
//! Order matters (a `join` must precede its `leave` in the audit chain; a lock
//! followed by an unlock must end unlocked), so there is exactly one writer per actor
//! and one queue. A `Flush` answers once everything queued before it is stored.
//!
//! The actor does wait for the database in three places, and handles no other input
//! meanwhile: loading the hearing when it starts; the store calls an operator's
//! change needs before the core can decide (editing the hearing, adding a
//! participant, revoking a link, changing a site — made directly on the store, not
//! through this queue); and a `Flush` before it answers an admin op or a shutdown,
//! which is how the admin API returns only after its change is durable.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::model::{Admission, AuditRecord, Status};
use crate::store::Store;

#[derive(Debug)]
pub enum WriteOp {
    Audit(AuditRecord),
    Status {
        status: Status,
        /// `(actor, at)` when the lifecycle state changed (appends to the history).
        history: Option<(String, DateTime<Utc>)>,
    },
    Participant {
        id: Uuid,
        admission: Admission,
        muted: bool,
    },
    Flush(oneshot::Sender<()>),
}

#[derive(Debug, Clone)]
pub struct Writer {
    tx: mpsc::UnboundedSender<WriteOp>,
}

impl Writer {
    /// Spawns the writer task for hearing `id`. It ends when every `Writer` is dropped
    /// and its queue is drained.
    pub fn spawn(id: Uuid, store: Arc<dyn Store>) -> Writer {
        let (tx, mut rx) = mpsc::unbounded_channel::<WriteOp>();
        tokio::spawn(async move {
            while let Some(op) = rx.recv().await {
                let result = match op {
                    WriteOp::Audit(record) => {
                        let action = record.action.clone();
                        store
                            .append_audit(id, record)
                            .await
                            .map(|_| ())
                            .map_err(|e| format!("audit `{action}`: {e}"))
                    }
                    WriteOp::Status { status, history } => store
                        .save_status(id, &status, history)
                        .await
                        .map_err(|e| format!("status: {e}")),
                    WriteOp::Participant {
                        id: p,
                        admission,
                        muted,
                    } => store
                        .save_participant_state(id, p, admission, muted)
                        .await
                        .map_err(|e| format!("participant {p}: {e}")),
                    WriteOp::Flush(reply) => {
                        let _ = reply.send(());
                        Ok(())
                    }
                };
                if let Err(e) = result {
                    // Nothing to hand the error back to: the hearing goes on, and the
                    // operator learns from the log that the record has a hole.
                    tracing::error!(hearing = %id, "cannot store {e}");
                }
            }
        });
        Writer { tx }
    }

    pub fn send(&self, op: WriteOp) {
        if self.tx.send(op).is_err() {
            tracing::error!("hearing writer is gone; a change was not stored");
        }
    }

    /// Resolves when everything queued so far is stored.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        self.send(WriteOp::Flush(tx));
        let _ = rx.await;
    }
}
