//! What a session sends its client: a bounded queue to the socket's writer task, and,
//! once the session may be resumed, the [`Journal`] every message is numbered in.
//!
//! Apart from `ws.rs` because a session outlives its socket when it parks: the queue
//! belongs to one socket, the journal to the session, and a resumed session gets a
//! new queue with the same journal ([`Outbox::journaled`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openhearing_signaling::{ErrorCode, ServerMessage};
use tokio::sync::mpsc;

use super::resume::Journal;

/// Queue of frames waiting to be written to one client; a client that lets it fill
/// up is too slow to follow the hearing and is disconnected.
pub(super) const OUTBOX: usize = 1024;

pub(super) enum Out {
    Msg(ServerMessage),
    Close(u16, String),
}

#[derive(Clone)]
pub(crate) struct Outbox {
    tx: mpsc::Sender<Out>,
    /// Set when the socket failed on an oversize frame (see `run_session`).
    linger: Arc<AtomicBool>,
    journal: Option<Arc<Mutex<Journal>>>,
}

impl Outbox {
    pub(super) fn new(tx: mpsc::Sender<Out>) -> Outbox {
        Outbox {
            tx,
            linger: Arc::new(AtomicBool::new(false)),
            journal: None,
        }
    }

    /// A queue nobody reads, for a parked session: what it queues waits in the
    /// journal for a resume (the receiver is kept so sending does not fail).
    pub(super) fn parked(journal: Arc<Mutex<Journal>>) -> (Outbox, mpsc::Receiver<Out>) {
        let (tx, rx) = mpsc::channel(OUTBOX);
        (Outbox::new(tx).journaled(journal), rx)
    }

    /// This queue, numbering what is sent on it in `journal`.
    pub(super) fn journaled(mut self, journal: Arc<Mutex<Journal>>) -> Outbox {
        self.journal = Some(journal);
        self
    }

    pub(super) fn journal(&self) -> Option<&Arc<Mutex<Journal>>> {
        self.journal.as_ref()
    }

    /// How many messages the journal numbered so far (0 without one).
    pub(super) fn sent(&self) -> u64 {
        self.journal
            .as_ref()
            .map_or(0, |j| j.lock().unwrap_or_else(|e| e.into_inner()).sent())
    }

    pub(super) fn linger(&self) -> Arc<AtomicBool> {
        self.linger.clone()
    }

    /// Whether the socket's writer is gone.
    pub(super) fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Queues a message; false when the client is not keeping up (or gone). A
    /// journaled message is kept for a replay either way.
    pub(super) fn send(&self, m: ServerMessage) -> bool {
        if let Some(j) = &self.journal {
            j.lock().unwrap_or_else(|e| e.into_inner()).record(&m);
        }
        self.raw(m)
    }

    /// Queues a message outside the journal (`resumed`, and the replay itself).
    pub(super) fn raw(&self, m: ServerMessage) -> bool {
        self.tx.try_send(Out::Msg(m)).is_ok()
    }

    pub(super) fn error(&self, code: ErrorCode, message: impl Into<String>) -> bool {
        let message = message.into();
        tracing::debug!(code = ?code, "error sent to the client: {message}");
        self.send(ServerMessage::error(code, message))
    }

    /// Closes the socket with 1009 ("message too big"), as PROTOCOL.md documents for
    /// frames beyond what the WebSocket layer reads (4x `max_message_bytes`).
    pub(super) fn close_too_big(&self) {
        self.linger.store(true, Ordering::Relaxed);
        let _ = self
            .tx
            .try_send(Out::Close(1009, "message_too_large".to_owned()));
    }

    /// Closes the socket normally (1000) after what is queued, e.g. once a self-test
    /// sent its report.
    pub(super) fn close_normal(&self, reason: &str) {
        let _ = self.tx.try_send(Out::Close(1000, reason.to_owned()));
    }

    /// Reports a fatal error and closes the socket.
    pub(super) fn fatal(&self, code: ErrorCode, message: impl Into<String>) {
        self.fatal_retry(code, message, None);
    }

    /// [`Outbox::fatal`] with a hint when to try again.
    pub(super) fn fatal_retry(
        &self,
        code: ErrorCode,
        message: impl Into<String>,
        retry: Option<Duration>,
    ) {
        let _ = self.tx.try_send(Out::Msg(ServerMessage::Error {
            code,
            message: message.into(),
            fatal: true,
            // Rounded up: a hint of 0 ms would invite an immediate retry.
            retry_after_ms: retry.map(|d| {
                u64::try_from(d.as_micros().div_ceil(1000))
                    .unwrap_or(u64::MAX)
                    .max(1)
            }),
        }));
        let _ = self
            .tx
            .try_send(Out::Close(code.close_code(), code.to_string()));
    }
}
