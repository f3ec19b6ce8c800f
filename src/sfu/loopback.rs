//! A self-test connection (issue 15, the pre-join network test): one peer whose own
//! published tracks are forwarded straight back to itself, so a client measures the
//! whole path through the SFU — its uplink, the server's reader and fan-out, its
//! downlink — before it joins.
//!
//! Built from the ordinary parts: a [`Peer`] from [`Sfu::create_peer`](super::Sfu::create_peer),
//! a leg per published track ([`Peer::add_leg`] / [`Peer::activate`]) and the
//! track's fan-out ([`PublishedTrack::add_downstream`]), with the peer as both
//! publisher and subscriber. Nothing here knows a hearing: the tracks are never
//! announced to one, so no other participant can be given a leg of them and no
//! recorder taps them (see `hearing::policy`, *Outside the policy*).

use std::sync::Arc;

use super::forward::PublishedTrack;
use super::peer::{ActiveLeg, Peer, PendingLeg};
use super::{MediaKind, SfuError};

/// The most tracks a self-test carries back (a camera or canvas, and perhaps a
/// microphone): more would only cost the server.
pub const MAX_LOOPBACK_TRACKS: usize = 2;

/// What the SFU saw of one looped-back track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoopbackCounters {
    pub kind: MediaKind,
    /// RTP packets received from the client on this track.
    pub received: u64,
    /// Packets sent back to the client on its leg.
    pub forwarded: u64,
    /// Packets not sent back (the connection's queue was full).
    pub dropped: u64,
}

/// A peer that receives what it publishes. Owned by one task (the self-test
/// session), like every [`Peer`].
pub struct Loopback {
    peer: Peer,
    tracks: Vec<Arc<PublishedTrack>>,
    /// Legs added since the last server offer.
    pending: Vec<PendingLeg>,
    /// Legs carried by the outstanding server offer.
    inflight: Vec<PendingLeg>,
    active: Vec<ActiveLeg>,
}

impl Loopback {
    pub fn new(peer: Peer) -> Loopback {
        Loopback {
            peer,
            tracks: Vec::new(),
            pending: Vec::new(),
            inflight: Vec::new(),
            active: Vec::new(),
        }
    }

    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// The client started publishing `track` on this connection: a leg back to it is
    /// added, to go out with the next server offer. Tracks beyond
    /// [`MAX_LOOPBACK_TRACKS`] (and tracks of another peer) are not looped back.
    pub async fn track_published(&mut self, track: Arc<PublishedTrack>) -> Result<(), SfuError> {
        if track.publisher != self.peer.id || self.tracks.len() >= MAX_LOOPBACK_TRACKS {
            return Ok(());
        }
        let leg = self.peer.add_leg(track.clone()).await?;
        self.tracks.push(track);
        self.pending.push(leg);
        Ok(())
    }

    /// Whether legs wait for a server offer.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Creates the server offer carrying the pending legs.
    pub async fn offer(&mut self) -> Result<String, SfuError> {
        let sdp = self.peer.create_offer().await?;
        self.inflight.append(&mut self.pending);
        Ok(sdp)
    }

    /// The client answered the server offer: its legs start flowing back.
    pub async fn answered(&mut self, sdp: String) -> Result<(), SfuError> {
        self.peer.apply_answer(sdp).await?;
        for leg in std::mem::take(&mut self.inflight) {
            let source = leg.source.clone();
            match self.peer.activate(leg).await {
                Ok(active) => {
                    source.add_downstream(active.downstream.clone());
                    self.active.push(active);
                }
                Err(e) => {
                    tracing::warn!(peer = %self.peer.id, track = %source.id, "self-test leg not activated: {e}");
                }
            }
        }
        Ok(())
    }

    /// The counters of every looped-back track so far.
    pub fn counters(&self) -> Vec<LoopbackCounters> {
        self.tracks
            .iter()
            .map(|t| {
                let leg = self
                    .active
                    .iter()
                    .find(|l| l.source.id == t.id)
                    .map(|l| l.downstream.counters(t.codec.clock_rate))
                    .unwrap_or_default();
                LoopbackCounters {
                    kind: t.kind,
                    received: t.received(),
                    forwarded: leg.forwarded,
                    dropped: leg.dropped,
                }
            })
            .collect()
    }

    /// Stops the flow back and closes the connection (its port is freed).
    pub async fn close(self) {
        for t in &self.tracks {
            t.remove_downstream(self.peer.id);
        }
        self.peer.close().await;
    }
}
