//! The pre-join self-test, headless: what the web client's network test does
//! (PROTOCOL.md, *Self-test*), with the crate's clips as the test stream. The
//! server sends the stream straight back, and what comes back is checked by content
//! like any received media ([`ReceiveStats`]).

use std::sync::Arc;
use std::time::Duration;

use openhearing_signaling::client::SignalingClient;
use openhearing_signaling::protocol::{ClientMessage, SelfTestReport, ServerMessage};

use crate::fixtures::MediaFixtures;
use crate::media_peer::MediaPeer;
use crate::participant::{from_wire, to_wire};
use crate::stats::ReceiveStats;
use crate::PeerError;

/// How long to wait for `self_test_ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long past the granted seconds to wait for the report.
const REPORT_GRACE: Duration = Duration::from_secs(10);

/// What a finished self-test produced.
#[derive(Debug)]
pub struct SelfTestOutcome {
    /// The seconds the server granted (`self_test_ready`).
    pub seconds: u32,
    pub report: SelfTestReport,
    /// What came back on the test connection (its stream id is the participant's id).
    pub stats: ReceiveStats,
    /// Everything else the server sent (errors, offers, answers).
    pub events: Vec<ServerMessage>,
    /// The close frame that followed the report.
    pub close: Option<(u16, String)>,
}

/// Runs a self-test with `token` at `ws_url`, publishing `fixtures` once the test
/// connection is up, until the server's report (and close). A refusal is
/// [`PeerError::Signaling`] with the server's code.
pub async fn run_self_test(
    ws_url: &str,
    token: &str,
    seconds: Option<u32>,
    fixtures: Arc<MediaFixtures>,
) -> Result<SelfTestOutcome, PeerError> {
    let mut client = SignalingClient::connect(ws_url).await?;
    let granted = client.self_test(token, seconds, READY_TIMEOUT).await?;
    let peer = MediaPeer::new().await?;
    peer.set_known_hashes(fixtures.hashes());
    let mut candidates = peer
        .take_candidates()
        .ok_or_else(|| PeerError::State("candidate channel already taken".into()))?;
    peer.add_media_tracks("self-test").await?;
    client.send(&ClientMessage::Offer {
        sdp: peer.create_offer().await?,
    })?;
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs(u64::from(granted)) + REPORT_GRACE;
    let mut events = Vec::new();
    let mut report = None;
    let mut publishing = false;
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            msg = client.recv() => match msg {
                None => break,
                Some(ServerMessage::Candidate { candidate }) => {
                    peer.add_remote_candidate(from_wire(candidate)).await?;
                }
                Some(ServerMessage::Answer { sdp }) => peer.apply_answer(sdp).await?,
                Some(ServerMessage::Offer { sdp }) => {
                    let answer = peer.answer_offer(sdp.clone()).await?;
                    client.send(&ClientMessage::Answer { sdp: answer })?;
                    events.push(ServerMessage::Offer { sdp });
                }
                Some(ServerMessage::SelfTestReport(r)) => report = Some(r),
                Some(other) => events.push(other),
            },
            Some(c) = candidates.recv() => {
                client.send(&ClientMessage::Candidate { candidate: to_wire(c) })?;
            }
            _ = tick.tick() => {
                if !publishing
                    && peer.connection_state()
                        == webrtc::peer_connection::RTCPeerConnectionState::Connected
                {
                    peer.start_publishing(fixtures.clone()).await?;
                    publishing = true;
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                let _ = peer.close().await;
                return Err(PeerError::Timeout {
                    what: "the self-test report".into(),
                    after: Duration::from_secs(u64::from(granted)) + REPORT_GRACE,
                });
            }
        }
    }
    let stats = peer.stats();
    let _ = peer.close().await;
    let report = report.ok_or_else(|| {
        PeerError::State(format!(
            "the socket closed without a self-test report ({:?}; {events:?})",
            client.close_info()
        ))
    })?;
    Ok(SelfTestOutcome {
        seconds: granted,
        report,
        stats,
        events,
        close: client.close_info(),
    })
}
