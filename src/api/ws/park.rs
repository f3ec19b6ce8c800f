//! A resumable session between sockets: parking when its socket breaks, and taking
//! a new socket over on `resume` (PROTOCOL.md, *Resuming a session*).
//!
//! Apart from `ws.rs`, which runs a session on one socket, because everything here
//! is about the session outliving that socket: which stream is read, what happens to
//! the messages queued meanwhile ([`super::resume::Journal`]), and what a resumed
//! client must be sent again. The PeerConnection, the legs and the seat in the
//! hearing are untouched throughout.

use std::time::Instant;

use axum::extract::ws::Message;
use futures_util::StreamExt;
use openhearing_signaling::{Connection, ErrorCode, ServerMessage};
use tokio::sync::oneshot;

use super::outbox::Outbox;
use super::resume::{Registration, Resumption};
use super::{EndReason, Session, SocketStream};
use crate::sfu::LinkState;

/// The next frame of the socket the session reads now: the last resumed one, else
/// the join's own; none while parked (pending for ever).
pub(super) async fn next_frame(
    parked: bool,
    first_gone: bool,
    resumed: &mut Option<(SocketStream, oneshot::Sender<SocketStream>)>,
    first: &mut SocketStream,
) -> Option<Result<Message, axum::Error>> {
    if parked {
        return std::future::pending().await;
    }
    match resumed {
        Some((stream, _)) => stream.next().await,
        None if first_gone => std::future::pending().await,
        None => first.next().await,
    }
}

/// The next socket handed over for a resume (pending for ever when not resumable).
pub(super) async fn next_resumption(reg: &mut Option<Registration>) -> Option<Resumption> {
    match reg {
        Some(r) => r.rx.recv().await,
        None => std::future::pending().await,
    }
}

impl Session {
    /// The socket broke. A resumable session parks (`None`); any other ends.
    pub(super) fn socket_lost(&mut self) -> Option<EndReason> {
        if self.parked.is_some() {
            // Even the parked queue is full: the client missed too much to resume.
            return Some(EndReason::ConnectionLost);
        }
        let journal = match (&self.registration, self.out.journal()) {
            (Some(_), Some(j)) => j.clone(),
            _ => return Some(EndReason::ConnectionLost),
        };
        let (out, queue) = Outbox::parked(journal);
        self.out = out;
        self.parked = Some((Instant::now(), queue));
        if let Some((stream, done)) = self.resumed.take() {
            let _ = done.send(stream);
        }
        self.first_socket_gone = true;
        tracing::info!(participant = %self.me, "socket lost; keeping the session {} s for a resume", self.resume_window.as_secs());
        self.hearing
            .connection(self.me, self.session, Connection::Unstable);
        None
    }

    /// A new socket takes this session: replays what the client missed, or refuses
    /// (the client joins again) and leaves the session as it was.
    pub(super) async fn on_resume(&mut self, r: Resumption) {
        let Some(journal) = self.out.journal().cloned() else {
            r.out
                .fatal(ErrorCode::ResumeFailed, "this session cannot be resumed");
            let _ = r.done.send(r.stream);
            return;
        };
        let missed = journal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .missed_by(r.received);
        let missed = match missed {
            Ok(m) => m,
            Err(e) => {
                tracing::info!(participant = %self.me, "resume refused: {e}");
                r.out.fatal(ErrorCode::ResumeFailed, e.to_string());
                let _ = r.done.send(r.stream);
                return;
            }
        };
        // The socket read so far (if any) is done with: its task drains and closes it.
        if let Some((stream, done)) = self.resumed.take() {
            let _ = done.send(stream);
        }
        self.first_socket_gone = true;
        self.parked = None;
        self.out = r.out.journaled(journal);
        let replayed = missed.len() as u64;
        self.out.raw(ServerMessage::Resumed { replayed });
        for m in missed {
            self.out.raw(m);
        }
        self.resumed = Some((r.stream, r.done));
        if self.offer_sent_at.is_some() {
            self.offer_sent_at = Some(Instant::now());
            // The client had our offer before the socket broke, so its answer was lost
            // with it: the same offer again (answering it twice is harmless).
            if self.offer_seq <= r.received {
                match self.peer.local_sdp().await {
                    Ok(sdp) => {
                        self.out.send(ServerMessage::Offer { sdp });
                        self.offer_seq = self.out.sent();
                    }
                    Err(e) => {
                        tracing::warn!(participant = %self.me, "cannot repeat the offer: {e}")
                    }
                }
            }
        }
        tracing::info!(participant = %self.me, replayed, "session resumed on a new socket");
        let c = if self.link == LinkState::Connected {
            Connection::Connected
        } else {
            Connection::Unstable
        };
        self.hearing.connection(self.me, self.session, c);
    }
}
