//! The pre-join self-test (issue 15): a socket whose first message is `self_test`
//! instead of `join` (PROTOCOL.md, *Self-test*).
//!
//! The same token and the same checks as a join — join rate limits of the address
//! and the link, the token, the hearing, the participant, the link's version and
//! time window — but the hearing only *answers* whether the link may be used
//! ([`Hearings::self_test_allowed`](crate::hearing::Hearings::self_test_allowed)):
//! nobody is seated, the participant is not present, nobody is told, nothing is
//! audited or recorded. The client publishes a test stream on a connection of its
//! own, the SFU sends it straight back on that connection ([`Loopback`]), and after
//! the granted seconds (at most [`MAX_SECONDS`]) the server reports what it received
//! and sent back (`self_test_report`) and closes the socket. One self-test at a
//! time per participant ([`SelfTests`]); its socket and media port count in the
//! server's connection limits like any other.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::Message;
use futures_util::StreamExt;
use openhearing_signaling::{
    decode_client, ClientMessage, ErrorCode, MediaKind, SelfTestReport, SelfTestTrack,
    ServerMessage,
};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::join::Authenticated;
use super::{charge, keep_early, to_sfu, to_wire, Outbox, SignalingState, SocketStream};
use crate::api::join_limit::TokenBucket;
use crate::sfu::{Candidate, LinkState, Loopback, PeerEvent, SfuError};

/// The longest self-test the server runs.
pub const MAX_SECONDS: u32 = 15;
/// A self-test's length when the client names none.
pub const DEFAULT_SECONDS: u32 = 8;

/// The seconds granted for a request of `asked`.
pub fn granted_seconds(asked: Option<u32>) -> u32 {
    asked.unwrap_or(DEFAULT_SECONDS).clamp(1, MAX_SECONDS)
}

/// The participants whose self-test is running now (one each at a time).
#[derive(Debug, Default)]
pub struct SelfTests {
    running: Mutex<HashSet<Uuid>>,
}

impl SelfTests {
    pub fn new() -> Arc<SelfTests> {
        Arc::new(SelfTests::default())
    }

    /// Claims `participant`'s one slot; `None` while another self-test of theirs
    /// runs. The slot is released when the returned guard drops.
    fn claim(self: &Arc<Self>, participant: Uuid) -> Option<SelfTestSlot> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.insert(participant).then(|| SelfTestSlot {
            tests: self.clone(),
            participant,
        })
    }

    /// How many self-tests run now.
    pub fn running(&self) -> usize {
        self.running.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

struct SelfTestSlot {
    tests: Arc<SelfTests>,
    participant: Uuid,
}

impl Drop for SelfTestSlot {
    fn drop(&mut self) {
        self.tests
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.participant);
    }
}

/// Runs one self-test on a socket whose `self_test` was verified, until its report
/// is sent or the client goes. Refusals are told to the client (fatal).
pub(super) async fn run(
    auth: Authenticated,
    seconds: u32,
    stream: &mut SocketStream,
    st: &SignalingState,
    out: &Outbox,
) {
    let Some(_slot) = st.self_tests.claim(auth.participant) else {
        out.fatal(
            ErrorCode::SelfTestBusy,
            "a self-test of this participant is already running; wait for its report",
        );
        return;
    };
    if let Err(e) = st
        .hearings
        .self_test_allowed(auth.hearing_id, auth.participant, auth.link_version)
        .await
    {
        let r = e.refusal();
        out.fatal(r.code, r.message);
        return;
    }
    let (ev_tx, events) = mpsc::unbounded_channel();
    let peer = match st.sfu.create_peer(auth.participant, ev_tx).await {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(participant = %auth.participant, "cannot create self-test peer: {e}");
            out.fatal(
                ErrorCode::Internal,
                format!("the server cannot accept media now: {e}"),
            );
            return;
        }
    };
    tracing::info!(participant = %auth.participant, hearing = %auth.hearing_id, seconds, "self-test started");
    let mut test = SelfTest {
        me: auth.participant,
        out: out.clone(),
        loopback: Loopback::new(peer),
        events,
        bucket: TokenBucket::new(f64::from(st.limits.rate_per_second), st.limits.burst),
        offered: false,
        offer_outstanding: false,
        early: Vec::new(),
        offered_at: None,
        connected_at: None,
    };
    out.send(ServerMessage::SelfTestReady { seconds });
    let started = Instant::now();
    let end = test
        .drive(
            stream,
            st,
            started + Duration::from_secs(u64::from(seconds)),
        )
        .await;
    if end == End::Report {
        let report = test.report(started);
        tracing::info!(participant = %auth.participant, connected = report.connected, tracks = ?report.tracks, "self-test report");
        test.out.send(ServerMessage::SelfTestReport(report));
        test.out.close_normal("self_test_done");
    }
    test.loopback.close().await;
}

/// How a self-test ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// Its time is up (or the connection failed): report.
    Report,
    /// The client left, the socket is gone, or it was refused: nothing to report.
    Gone,
}

struct SelfTest {
    me: Uuid,
    out: Outbox,
    loopback: Loopback,
    events: mpsc::UnboundedReceiver<PeerEvent>,
    bucket: TokenBucket,
    /// The client's offer has been answered.
    offered: bool,
    offer_outstanding: bool,
    early: Vec<Candidate>,
    offered_at: Option<Instant>,
    connected_at: Option<Instant>,
}

impl SelfTest {
    async fn drive(
        &mut self,
        stream: &mut SocketStream,
        st: &SignalingState,
        deadline: Instant,
    ) -> End {
        let mut shutdown = st.shutdown.clone();
        let deadline = tokio::time::Instant::from_std(deadline);
        loop {
            let end = tokio::select! {
                frame = stream.next() => self.on_frame(frame).await,
                Some(ev) = self.events.recv() => self.on_peer(ev).await,
                _ = tokio::time::sleep_until(deadline) => Some(End::Report),
                _ = shutdown.changed() => {
                    self.out.fatal(ErrorCode::ServerShutdown, "the server is shutting down; test again in a moment");
                    Some(End::Gone)
                }
            };
            if let Some(end) = end {
                return end;
            }
            if self.out.is_closed() {
                return End::Gone;
            }
        }
    }

    async fn on_frame(&mut self, frame: Option<Result<Message, axum::Error>>) -> Option<End> {
        let text = match frame {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Binary(_))) => {
                if !self.charge() {
                    return Some(End::Gone);
                }
                self.out.error(
                    ErrorCode::BinaryNotSupported,
                    "binary frames are not part of the protocol; send JSON text",
                );
                return None;
            }
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Some(End::Gone),
            Some(Ok(_)) => return None, // ping/pong
        };
        if !self.charge() {
            return Some(End::Gone);
        }
        match decode_client(&text) {
            Ok(m) => self.on_client(m).await,
            Err(e) => {
                self.out.error(e.code(), e.to_string());
                None
            }
        }
    }

    /// Rate limit, as in a hearing session: false (and closing) when the client floods.
    fn charge(&mut self) -> bool {
        charge(&mut self.bucket, &self.out)
    }

    async fn on_client(&mut self, msg: ClientMessage) -> Option<End> {
        match msg {
            ClientMessage::Offer { sdp } => {
                if self.offered {
                    self.out.error(
                        ErrorCode::NotApplicable,
                        "a self-test takes one offer; test again for another stream",
                    );
                    return None;
                }
                // The client's own media, sent back to it alone: any participant may
                // test, whatever their role may publish in the hearing.
                match self.loopback.peer().answer_offer(sdp, true).await {
                    Ok(answer) => {
                        self.offered = true;
                        self.offered_at = Some(Instant::now());
                        self.out.send(ServerMessage::Answer { sdp: answer });
                        for c in std::mem::take(&mut self.early) {
                            if let Err(e) = self.loopback.peer().add_candidate(c).await {
                                self.out.error(ErrorCode::InvalidCandidate, e.to_string());
                            }
                        }
                        self.offer().await;
                    }
                    Err(SfuError::InvalidSdp(e)) => {
                        self.out.error(
                            ErrorCode::InvalidSdp,
                            format!("the offer could not be applied: {e}"),
                        );
                    }
                    Err(e) => {
                        self.out.error(ErrorCode::Internal, e.to_string());
                    }
                }
            }
            ClientMessage::Answer { sdp } => {
                if !self.offer_outstanding {
                    self.out.error(
                        ErrorCode::NoOfferPending,
                        "there is no server offer to answer",
                    );
                    return None;
                }
                match self.loopback.answered(sdp).await {
                    Ok(()) => {
                        self.offer_outstanding = false;
                        self.offer().await;
                    }
                    Err(e) => {
                        self.out.error(
                            ErrorCode::InvalidSdp,
                            format!("the answer could not be applied: {e}"),
                        );
                    }
                }
            }
            ClientMessage::Candidate { candidate } => {
                let candidate = to_sfu(candidate);
                if !self.offered {
                    keep_early(&mut self.early, candidate, &self.out);
                } else if let Err(e) = self.loopback.peer().add_candidate(candidate).await {
                    self.out.error(ErrorCode::InvalidCandidate, e.to_string());
                }
            }
            ClientMessage::Ping { id } => {
                self.out.send(ServerMessage::Pong { id });
            }
            ClientMessage::Leave => return Some(End::Gone),
            ClientMessage::Join { .. }
            | ClientMessage::Resume { .. }
            | ClientMessage::SelfTest { .. } => {
                self.out.error(
                    ErrorCode::AlreadyJoined,
                    "this connection is running a self-test; open another to join",
                );
            }
            other => {
                self.out.error(
                    ErrorCode::NotApplicable,
                    format!(
                        "`{}` does not apply to a self-test (only offer, answer, candidate, ping and leave)",
                        other.kind()
                    ),
                );
            }
        }
        None
    }

    async fn on_peer(&mut self, ev: PeerEvent) -> Option<End> {
        match ev {
            PeerEvent::LocalCandidate(c) => {
                self.out.send(ServerMessage::Candidate {
                    candidate: to_wire(c),
                });
            }
            PeerEvent::State(s) => {
                tracing::debug!(participant = %self.me, "self-test connection {s}");
                match s {
                    LinkState::Connected => {
                        self.connected_at.get_or_insert_with(Instant::now);
                    }
                    // A failed test is a result too: report it at once.
                    LinkState::Failed | LinkState::Closed => return Some(End::Report),
                    _ => {}
                }
            }
            PeerEvent::TrackPublished(t) => {
                if let Err(e) = self.loopback.track_published(t).await {
                    tracing::warn!(participant = %self.me, "self-test leg not added: {e}");
                }
                self.offer().await;
            }
            PeerEvent::TrackEnded(_) | PeerEvent::VideoPaused { .. } => {}
        }
        None
    }

    /// Sends a server offer for the pending legs when negotiation allows.
    async fn offer(&mut self) {
        if !self.offered || self.offer_outstanding || !self.loopback.has_pending() {
            return;
        }
        match self.loopback.offer().await {
            Ok(sdp) => {
                self.offer_outstanding = true;
                self.out.send(ServerMessage::Offer { sdp });
            }
            Err(e) => {
                tracing::error!(participant = %self.me, "cannot create self-test offer: {e}");
                self.out
                    .error(ErrorCode::Internal, format!("renegotiation failed: {e}"));
            }
        }
    }

    fn report(&self, started: Instant) -> SelfTestReport {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let connect_ms = match (self.offered_at, self.connected_at) {
            (Some(o), Some(c)) => Some(ms(c.saturating_duration_since(o))),
            _ => None,
        };
        // One entry per kind: a client that sent two of one kind gets them summed.
        let mut by_kind: HashMap<MediaKind, SelfTestTrack> = HashMap::new();
        for c in self.loopback.counters() {
            let kind = match c.kind {
                crate::sfu::MediaKind::Audio => MediaKind::Audio,
                crate::sfu::MediaKind::Video => MediaKind::Video,
            };
            let t = by_kind.entry(kind).or_insert(SelfTestTrack {
                kind,
                received_packets: 0,
                forwarded_packets: 0,
                dropped_packets: 0,
            });
            t.received_packets += c.received;
            t.forwarded_packets += c.forwarded;
            t.dropped_packets += c.dropped;
        }
        let mut tracks: Vec<SelfTestTrack> = by_kind.into_values().collect();
        tracks.sort_by_key(|t| t.kind);
        SelfTestReport {
            duration_ms: ms(started.elapsed()),
            connected: self.connected_at.is_some(),
            connect_ms,
            tracks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_granted_length_is_bounded() {
        assert_eq!(granted_seconds(None), DEFAULT_SECONDS);
        assert_eq!(granted_seconds(Some(0)), 1);
        assert_eq!(granted_seconds(Some(5)), 5);
        assert_eq!(granted_seconds(Some(600)), MAX_SECONDS);
    }

    #[test]
    fn one_self_test_at_a_time_per_participant() {
        let tests = SelfTests::new();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let first = tests.claim(a).expect("the first claim succeeds");
        assert!(
            tests.claim(a).is_none(),
            "a second one while the first runs"
        );
        let other = tests.claim(b).expect("another participant is not affected");
        assert_eq!(tests.running(), 2);
        drop(first);
        assert!(tests.claim(a).is_some(), "free again once the first ended");
        drop(other);
        assert_eq!(tests.running(), 0);
    }
}
