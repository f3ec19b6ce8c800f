//! Resuming a signaling session over a new WebSocket (issue 13, "Reconnection that
//! keeps the seat").
//!
//! A session whose socket drops is not ended at once: it *parks* for
//! `SignalingLimits::resume_window`, keeping its seat, its PeerConnection and its
//! forwarding legs, while a new socket may take it back with `resume` (the secret
//! token of `welcome.resume`). Two pieces, both free of sockets so they test alone:
//!
//! * [`Journal`]: every message the session queued after `welcome`, numbered. The
//!   client says how many it received; what it missed (lost with the old socket, or
//!   queued while parked) is replayed in order. Only the last [`JOURNAL_KEPT`] are
//!   kept: a client that missed more joins again.
//! * [`Resumes`]: the live sessions by the SHA-256 of their token, each with the
//!   channel a resuming socket is handed over on. A [`Registration`] removes its
//!   entry when the session ends, so a token never outlives its session.
//!
//! The token is 32 random bytes, looked up by its hash, never logged, audited or
//! stored.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};

use axum::extract::ws::WebSocket;
use futures_util::stream::SplitStream;
use openhearing_signaling::ServerMessage;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use super::Outbox;

/// Messages a session keeps for a replay.
pub const JOURNAL_KEPT: usize = 512;

/// Why a `resume` was refused (the client joins again).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResumeError {
    #[error("no session is kept for this resume token (it ended or its window passed)")]
    UnknownSession,
    #[error("the client says it received {received} messages, the server sent {sent}")]
    Ahead { received: u64, sent: u64 },
    #[error("the client missed {missed} messages, more than the {kept} the server keeps")]
    TooFarBehind { missed: u64, kept: usize },
}

/// The numbered messages of one session since its `welcome`.
#[derive(Debug, Default)]
pub struct Journal {
    /// Messages queued so far (the next one's number).
    sent: u64,
    recent: VecDeque<ServerMessage>,
}

impl Journal {
    /// Records a message the session queues; returns its number (from 1).
    pub fn record(&mut self, m: &ServerMessage) -> u64 {
        self.sent += 1;
        if self.recent.len() == JOURNAL_KEPT {
            self.recent.pop_front();
        }
        self.recent.push_back(m.clone());
        self.sent
    }

    /// Messages queued so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// What a client that received the first `received` messages missed, in order.
    pub fn missed_by(&self, received: u64) -> Result<Vec<ServerMessage>, ResumeError> {
        if received > self.sent {
            return Err(ResumeError::Ahead {
                received,
                sent: self.sent,
            });
        }
        let missed = self.sent - received;
        if missed > self.recent.len() as u64 {
            return Err(ResumeError::TooFarBehind {
                missed,
                kept: JOURNAL_KEPT,
            });
        }
        let skip = self.recent.len() - missed as usize;
        Ok(self.recent.iter().skip(skip).cloned().collect())
    }
}

/// A new socket handed to a parked (or still running) session.
pub(crate) struct Resumption {
    pub stream: SplitStream<WebSocket>,
    pub out: Outbox,
    /// Messages the client received after `welcome`.
    pub received: u64,
    /// The socket's stream goes back here when the session is done with it, so the
    /// socket's task can drain and close it.
    pub done: oneshot::Sender<SplitStream<WebSocket>>,
}

type Key = [u8; 32];

fn key_of(token: &str) -> Key {
    Sha256::digest(token.as_bytes()).into()
}

/// The sessions that can be resumed, by token hash.
#[derive(Default)]
pub struct Resumes {
    sessions: Mutex<HashMap<Key, mpsc::Sender<Resumption>>>,
}

impl std::fmt::Debug for Resumes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resumes")
            .field("sessions", &self.len())
            .finish()
    }
}

/// A session's entry in [`Resumes`]: resumptions arrive on `rx`; dropping it removes
/// the entry.
pub(crate) struct Registration {
    pub token: String,
    pub rx: mpsc::Receiver<Resumption>,
    key: Key,
    owner: Weak<Resumes>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(owner) = self.owner.upgrade() {
            owner.lock().remove(&self.key);
        }
    }
}

impl Resumes {
    pub fn new() -> Arc<Resumes> {
        Arc::new(Resumes::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, mpsc::Sender<Resumption>>> {
        // A panic elsewhere while holding the map leaves it usable: it holds no invariant
        // beyond its entries.
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sessions that can be resumed now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Registers a session under a fresh random token.
    pub(crate) fn register(self: &Arc<Self>) -> Registration {
        let token = hex::encode(rand::random::<[u8; 32]>());
        let key = key_of(&token);
        let (tx, rx) = mpsc::channel(1);
        self.lock().insert(key, tx);
        Registration {
            token,
            rx,
            key,
            owner: Arc::downgrade(self),
        }
    }

    /// The channel of the session `token` names.
    pub(crate) fn claim(&self, token: &str) -> Result<mpsc::Sender<Resumption>, ResumeError> {
        // Keyed by the token's hash: the lookup's timing can only tell about hashes,
        // which give nothing away about another session's token.
        self.lock()
            .get(&key_of(token))
            .cloned()
            .ok_or(ResumeError::UnknownSession)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pong(id: u64) -> ServerMessage {
        ServerMessage::Pong { id }
    }

    #[test]
    fn a_client_gets_exactly_what_it_missed_in_order() {
        let mut j = Journal::default();
        for id in 1..=5 {
            assert_eq!(j.record(&pong(id)), id);
        }
        assert_eq!(j.missed_by(5).unwrap(), vec![]);
        assert_eq!(j.missed_by(3).unwrap(), vec![pong(4), pong(5)]);
        assert_eq!(j.missed_by(0).unwrap().len(), 5);
    }

    #[test]
    fn a_client_ahead_of_the_server_is_refused() {
        let mut j = Journal::default();
        j.record(&pong(1));
        assert_eq!(
            j.missed_by(2),
            Err(ResumeError::Ahead {
                received: 2,
                sent: 1
            })
        );
    }

    #[test]
    fn only_the_last_messages_are_kept() {
        let mut j = Journal::default();
        let total = JOURNAL_KEPT as u64 + 10;
        for id in 1..=total {
            j.record(&pong(id));
        }
        assert_eq!(j.sent(), total);
        // Missing exactly what is kept still works, from the right message.
        let all = j.missed_by(10).unwrap();
        assert_eq!(all.len(), JOURNAL_KEPT);
        assert_eq!(all[0], pong(11));
        assert_eq!(
            j.missed_by(9),
            Err(ResumeError::TooFarBehind {
                missed: JOURNAL_KEPT as u64 + 1,
                kept: JOURNAL_KEPT
            })
        );
    }

    #[test]
    fn a_token_names_its_session_until_the_session_ends() {
        let resumes = Resumes::new();
        let a = resumes.register();
        let b = resumes.register();
        assert_ne!(a.token, b.token);
        assert_eq!(a.token.len(), 64);
        assert_eq!(resumes.len(), 2);
        let tx = resumes.claim(&a.token).expect("a is registered");
        assert!(tx.same_channel(&resumes.claim(&a.token).unwrap()));
        assert!(!tx.same_channel(&resumes.claim(&b.token).unwrap()));
        assert_eq!(
            resumes.claim("0".repeat(64).as_str()).err(),
            Some(ResumeError::UnknownSession)
        );
        drop(a);
        assert_eq!(resumes.len(), 1);
        assert!(resumes.claim(&b.token).is_ok(), "the other session stays");
        drop(b);
        assert!(resumes.is_empty());
    }
}
