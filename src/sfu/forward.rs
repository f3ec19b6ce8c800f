//! The media hot path: one published track fanned out to N subscriber legs.
//!
//! Design (why it looks like this):
//! * One reader task per published track pulls RTP from webrtc and, per packet, loads
//!   the current subscriber list through an [`ArcSwap`] — no lock is taken per packet.
//!   The list is replaced (copy on write) only when a subscriber is added or removed,
//!   which is rare next to packets.
//! * Each subscriber leg ([`Downstream`]) is written from the reader task itself,
//!   without waiting: webrtc's `write_rtp` only queues the packet on the subscriber
//!   connection's bounded driver channel, and when that channel is full the packet is
//!   dropped and counted. A slow subscriber loses packets; it never delays the
//!   publisher or the other subscribers. (An earlier design had a queue and a writer
//!   task per leg: one more channel hop and task wake-up per packet per subscriber,
//!   for a queue that sat in front of webrtc's own.)
//! * Header extensions are stripped once, before the fan-out: their ids differ
//!   between legs and webrtc drops a packet with an unknown one. Stripping first also
//!   makes each per-subscriber clone cheap (payload is a refcounted `Bytes`).
//! * Each leg rewrites SSRC and payload type to the subscriber leg's values, which
//!   only exist after that leg's negotiation completed.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use futures_util::FutureExt;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::RTCRtpCodec;
use uuid::Uuid;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

use super::MediaKind;

/// A participant's connection, as the SFU knows it: just an id.
pub type PeerId = Uuid;

/// An internal consumer of a published track's packets (the recorder): no
/// PeerConnection, no renegotiation. It is called on the track's reader task for
/// every packet, so it must not block — queue and return.
pub trait MediaTap: Send + Sync {
    /// One RTP packet as the publisher sent it (header extensions stripped).
    fn rtp(&self, packet: &rtp::Packet, arrival: std::time::SystemTime);
    /// A sender report from the publisher: `ntp_time` (NTP format) is the wall-clock
    /// instant of `rtp_time` on the track's RTP clock.
    fn sender_report(&self, ssrc: u32, ntp_time: u64, rtp_time: u32);
}

/// One track a peer publishes, with its current subscribers.
pub struct PublishedTrack {
    /// Unique within the server: `<publisher>-<kind>-<n>`.
    pub id: String,
    pub publisher: PeerId,
    pub kind: MediaKind,
    pub codec: RTCRtpCodec,
    remote: Arc<dyn TrackRemote>,
    media_ssrc: AtomicU32,
    downstreams: ArcSwap<Vec<Arc<Downstream>>>,
    /// The recorder's tap, when the policy lets it record this track now.
    tap: ArcSwap<Option<Arc<dyn MediaTap>>>,
    keyframes: KeyframeRequester,
    ended: AtomicBool,
}

impl std::fmt::Debug for PublishedTrack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishedTrack")
            .field("id", &self.id)
            .field("publisher", &self.publisher)
            .field("kind", &self.kind)
            .finish()
    }
}

impl PublishedTrack {
    pub(crate) fn new(
        id: String,
        publisher: PeerId,
        kind: MediaKind,
        codec: RTCRtpCodec,
        ssrc: u32,
        remote: Arc<dyn TrackRemote>,
        pli_throttle: Duration,
    ) -> Arc<Self> {
        Arc::new(PublishedTrack {
            id,
            publisher,
            kind,
            codec,
            remote,
            media_ssrc: AtomicU32::new(ssrc),
            downstreams: ArcSwap::from_pointee(Vec::new()),
            tap: ArcSwap::from_pointee(None),
            keyframes: KeyframeRequester::new(pli_throttle),
            ended: AtomicBool::new(false),
        })
    }

    /// Reads the publisher's RTP until the track ends, fanning every packet out.
    /// Returns when the remote track ended (publisher left or renegotiated it away).
    pub(crate) async fn run_reader(self: Arc<Self>) {
        while let Some(event) = self.remote.poll().await {
            match event {
                TrackRemoteEvent::OnRtpPacket(mut packet) => {
                    self.media_ssrc.store(packet.header.ssrc, Ordering::Relaxed);
                    strip_extensions(&mut packet);
                    forward(&self.downstreams.load(), &packet);
                    if let Some(tap) = self.tap.load().as_ref() {
                        tap.rtp(&packet, std::time::SystemTime::now());
                    }
                }
                TrackRemoteEvent::OnRtcpPacket(packets) => {
                    // The interceptor delivers sender reports on the receive side (rtcp.rs).
                    if let Some(tap) = self.tap.load().as_ref() {
                        for p in &packets {
                            if let Some(sr) = p.as_any().downcast_ref::<SenderReport>() {
                                tap.sender_report(sr.ssrc, sr.ntp_time, sr.rtp_time);
                            }
                        }
                    }
                }
                TrackRemoteEvent::OnEnded => break,
                _ => {}
            }
        }
        self.ended.store(true, Ordering::Release);
        // Release every leg and the tap: nothing is forwarded from an ended track.
        self.downstreams.store(Arc::new(Vec::new()));
        self.tap.store(Arc::new(None));
    }

    /// Starts (`Some`) or stops (`None`) handing this track's packets to a tap. Video
    /// taps get a keyframe requested so they can start a decodable file at once.
    pub fn set_tap(self: &Arc<Self>, tap: Option<Arc<dyn MediaTap>>) {
        let starting = tap.is_some();
        self.tap.store(Arc::new(tap));
        if starting && self.kind == MediaKind::Video {
            self.request_keyframe();
        }
    }

    /// Whether a tap receives this track now.
    pub fn is_tapped(&self) -> bool {
        self.tap.load().is_some()
    }

    /// Whether the publisher's track has ended.
    pub fn is_ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    /// Starts forwarding to `leg` (replacing an earlier leg of the same subscriber)
    /// and, for video, asks the publisher for a keyframe so the new subscriber can
    /// start decoding at once.
    pub fn add_downstream(self: &Arc<Self>, leg: Arc<Downstream>) {
        self.downstreams.rcu(|cur| {
            let mut next: Vec<Arc<Downstream>> = cur
                .iter()
                .filter(|d| d.subscriber != leg.subscriber)
                .cloned()
                .collect();
            next.push(leg.clone());
            next
        });
        if self.kind == MediaKind::Video {
            self.request_keyframe();
        }
    }

    /// Stops forwarding to `subscriber` at once. Returns whether a leg was removed.
    pub fn remove_downstream(&self, subscriber: PeerId) -> bool {
        let mut removed = false;
        self.downstreams.rcu(|cur| {
            let next: Vec<Arc<Downstream>> = cur
                .iter()
                .filter(|d| d.subscriber != subscriber)
                .cloned()
                .collect();
            removed = next.len() != cur.len();
            next
        });
        removed
    }

    /// The subscribers currently forwarded to.
    pub fn subscribers(&self) -> Vec<PeerId> {
        self.downstreams
            .load()
            .iter()
            .map(|d| d.subscriber)
            .collect()
    }

    /// Asks the publisher for a keyframe (PLI), at most once per throttle window; a
    /// request inside the window is sent when the window ends, never lost.
    pub fn request_keyframe(self: &Arc<Self>) {
        if self.kind != MediaKind::Video || self.is_ended() {
            return;
        }
        match self.keyframes.decide() {
            KeyframeDecision::SendNow => self.send_pli(),
            KeyframeDecision::Later(delay) => {
                let me = self.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    me.keyframes.deferred_done();
                    if !me.is_ended() {
                        me.keyframes.mark_sent();
                        me.send_pli();
                    }
                });
            }
            KeyframeDecision::AlreadyScheduled => {}
        }
    }

    fn send_pli(self: &Arc<Self>) {
        let media_ssrc = self.media_ssrc.load(Ordering::Relaxed);
        let remote = self.remote.clone();
        tokio::spawn(async move {
            let pli = PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc,
            };
            if let Err(e) = remote.write_rtcp(vec![Box::new(pli)]).await {
                tracing::debug!("PLI to publisher failed: {e}");
            }
        });
    }
}

/// Hands one packet (extensions already stripped) to every leg. The whole per-packet
/// work of the SFU besides webrtc's own; public for the micro-benchmarks.
pub fn forward(legs: &[Arc<Downstream>], packet: &rtp::Packet) {
    for leg in legs {
        leg.offer(packet);
    }
}

/// Removes RTP header extensions before the fan-out: their ids are negotiated per
/// connection, and webrtc drops a packet carrying an id its leg did not negotiate.
/// Public for the micro-benchmarks.
pub fn strip_extensions(packet: &mut rtp::Packet) {
    if packet.header.extension {
        packet.header.extension = false;
        packet.header.extension_profile = 0;
        packet.header.extensions.clear();
    }
}

/// What became of a packet handed to a [`LegSink`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkWrite {
    /// Queued for sending.
    Queued,
    /// No room: the packet was dropped.
    Full,
    /// The leg's connection is gone.
    Closed,
}

/// Where a leg's packets go: the subscriber connection's webrtc track in the server.
/// Must never wait.
pub trait LegSink: Send + Sync {
    fn try_write(&self, packet: rtp::Packet) -> SinkWrite;
}

impl LegSink for TrackLocalStaticRTP {
    fn try_write(&self, packet: rtp::Packet) -> SinkWrite {
        // `write_rtp` takes an uncontended lock and sends on the connection driver's
        // bounded channel: both complete on the first poll unless the channel is full.
        // Polling once and dropping the future is a `try_send`, so the publisher's
        // reader never waits. (webrtc's channel and lock are not tokio's, so no
        // cooperative budget makes a send with room in the channel report "pending".)
        match self.write_rtp(packet).now_or_never() {
            Some(Ok(())) => SinkWrite::Queued,
            None => SinkWrite::Full,
            Some(Err(_)) => SinkWrite::Closed,
        }
    }
}

/// One subscriber's leg of a published track.
///
/// Written straight from the publisher's reader task: the packet is rewritten to the
/// leg's SSRC and payload type and handed to webrtc's driver channel of the
/// subscriber's connection without waiting. When that channel is full (the
/// subscriber's connection cannot keep up) the packet is dropped and counted: a slow
/// subscriber never delays the publisher or the other subscribers.
pub struct Downstream {
    pub subscriber: PeerId,
    sink: Arc<dyn LegSink>,
    ssrc: u32,
    payload_type: u8,
    dropped: AtomicU64,
    closed: AtomicBool,
}

impl std::fmt::Debug for Downstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Downstream")
            .field("subscriber", &self.subscriber)
            .field("ssrc", &self.ssrc)
            .field("payload_type", &self.payload_type)
            .finish()
    }
}

impl Downstream {
    /// Creates the leg that rewrites each packet to the subscriber leg's `ssrc` and
    /// `payload_type` and writes it to `sink` (the leg's webrtc track).
    pub fn start(
        subscriber: PeerId,
        sink: Arc<dyn LegSink>,
        ssrc: u32,
        payload_type: u8,
    ) -> Arc<Downstream> {
        crate::metrics::media().legs.increment(1.0);
        Arc::new(Downstream {
            subscriber,
            sink,
            ssrc,
            payload_type,
            dropped: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        })
    }

    fn offer(&self, packet: &rtp::Packet) {
        if self.closed.load(Ordering::Relaxed) {
            return;
        }
        let mut packet = packet.clone();
        packet.header.ssrc = self.ssrc;
        packet.header.payload_type = self.payload_type;
        let bytes = packet.payload.len() as u64;
        let counters = crate::metrics::media();
        match self.sink.try_write(packet) {
            SinkWrite::Queued => {
                counters.packets_forwarded.increment(1);
                counters.bytes_forwarded.increment(bytes);
            }
            SinkWrite::Full => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                counters.packets_dropped.increment(1);
            }
            SinkWrite::Closed => {
                // The subscriber's connection is gone; the owner removes the leg.
                self.closed.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Packets dropped because this subscriber's connection could not keep up.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for Downstream {
    fn drop(&mut self) {
        crate::metrics::media().legs.decrement(1.0);
        // The operator's sign that a site's link or machine could not keep up (and
        // `openhearing_rtp_packets_dropped_total`).
        let dropped = self.dropped();
        if dropped > 0 {
            tracing::warn!(subscriber = %self.subscriber, dropped, "subscriber too slow: packets dropped for it");
        }
    }
}

/// Relays keyframe requests (PLI/FIR) a subscriber sends about its leg to the
/// publisher, through the publisher track's throttle. Ends with the local track.
pub(crate) fn relay_keyframe_requests(
    local: Arc<TrackLocalStaticRTP>,
    source: Arc<PublishedTrack>,
) {
    tokio::spawn(async move {
        while let Some(event) = local.poll().await {
            let TrackLocalEvent::OnRtcpPacket(packets) = event else {
                continue;
            };
            // The interceptor delivers keyframe requests and sender reports (rtcp.rs);
            // only the former concern a subscriber's leg.
            if packets.iter().any(|p| !p.as_any().is::<SenderReport>()) {
                source.request_keyframe();
            }
        }
    });
}

enum KeyframeDecision {
    SendNow,
    Later(Duration),
    AlreadyScheduled,
}

/// Throttle state for keyframe requests of one published track.
struct KeyframeRequester {
    throttle: Duration,
    epoch: Instant,
    /// Milliseconds since `epoch` of the last PLI sent, plus one (0 = never).
    last_sent_ms: AtomicU64,
    deferred: AtomicBool,
}

impl KeyframeRequester {
    fn new(throttle: Duration) -> Self {
        KeyframeRequester {
            throttle,
            epoch: Instant::now(),
            last_sent_ms: AtomicU64::new(0),
            deferred: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    fn mark_sent(&self) {
        self.last_sent_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    fn deferred_done(&self) {
        self.deferred.store(false, Ordering::Release);
    }

    fn decide(&self) -> KeyframeDecision {
        let now = self.now_ms();
        let last = self.last_sent_ms.load(Ordering::Relaxed);
        let throttle = self.throttle.as_millis() as u64;
        if last == 0 || now.saturating_sub(last) >= throttle {
            if self
                .last_sent_ms
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return KeyframeDecision::SendNow;
            }
            return KeyframeDecision::AlreadyScheduled;
        }
        if self.deferred.swap(true, Ordering::AcqRel) {
            return KeyframeDecision::AlreadyScheduled;
        }
        KeyframeDecision::Later(Duration::from_millis(throttle - (now - last)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyframe_requests_are_throttled_but_not_lost() {
        let k = KeyframeRequester::new(Duration::from_millis(10_000));
        assert!(matches!(k.decide(), KeyframeDecision::SendNow));
        // Inside the window: one deferred request, further ones fold into it.
        assert!(matches!(k.decide(), KeyframeDecision::Later(_)));
        assert!(matches!(k.decide(), KeyframeDecision::AlreadyScheduled));
        k.deferred_done();
        assert!(matches!(k.decide(), KeyframeDecision::Later(_)));
    }

    #[test]
    fn zero_throttle_always_sends() {
        let k = KeyframeRequester::new(Duration::ZERO);
        for _ in 0..3 {
            assert!(matches!(k.decide(), KeyframeDecision::SendNow));
        }
    }

    /// A sink with room for `room` packets that records what it got.
    struct TestSink {
        room: usize,
        closed: AtomicBool,
        got: std::sync::Mutex<Vec<rtp::Packet>>,
        calls: AtomicU64,
    }

    impl TestSink {
        fn new(room: usize) -> Arc<TestSink> {
            Arc::new(TestSink {
                room,
                closed: AtomicBool::new(false),
                got: std::sync::Mutex::new(Vec::new()),
                calls: AtomicU64::new(0),
            })
        }
    }

    impl LegSink for TestSink {
        fn try_write(&self, packet: rtp::Packet) -> SinkWrite {
            self.calls.fetch_add(1, Ordering::Relaxed);
            if self.closed.load(Ordering::Relaxed) {
                return SinkWrite::Closed;
            }
            let mut got = self.got.lock().expect("lock");
            if got.len() >= self.room {
                return SinkWrite::Full;
            }
            got.push(packet);
            SinkWrite::Queued
        }
    }

    fn packet(seq: u16) -> rtp::Packet {
        let mut p = rtp::Packet::default();
        p.header.ssrc = 1;
        p.header.payload_type = 96;
        p.header.sequence_number = seq;
        p.payload = bytes::Bytes::from_static(b"media");
        p
    }

    #[test]
    fn each_leg_gets_its_own_ssrc_and_payload_type() {
        let (a, b) = (TestSink::new(10), TestSink::new(10));
        let legs = vec![
            Downstream::start(Uuid::new_v4(), a.clone(), 0xAAAA, 111),
            Downstream::start(Uuid::new_v4(), b.clone(), 0xBBBB, 100),
        ];
        forward(&legs, &packet(7));
        let a = a.got.lock().expect("lock");
        let b = b.got.lock().expect("lock");
        assert_eq!((a[0].header.ssrc, a[0].header.payload_type), (0xAAAA, 111));
        assert_eq!((b[0].header.ssrc, b[0].header.payload_type), (0xBBBB, 100));
        assert_eq!(a[0].header.sequence_number, 7);
        assert_eq!(&a[0].payload[..], b"media");
    }

    #[test]
    fn a_full_leg_drops_and_counts_without_touching_the_others() {
        let (slow, fast) = (TestSink::new(2), TestSink::new(100));
        let legs = vec![
            Downstream::start(Uuid::new_v4(), slow.clone(), 1, 96),
            Downstream::start(Uuid::new_v4(), fast.clone(), 2, 96),
        ];
        for seq in 0..10 {
            forward(&legs, &packet(seq));
        }
        assert_eq!(legs[0].dropped(), 8);
        assert_eq!(legs[1].dropped(), 0);
        assert_eq!(fast.got.lock().expect("lock").len(), 10);
    }

    #[test]
    fn a_closed_leg_is_not_written_again() {
        let sink = TestSink::new(100);
        let leg = Downstream::start(Uuid::new_v4(), sink.clone(), 1, 96);
        forward(std::slice::from_ref(&leg), &packet(1));
        sink.closed.store(true, Ordering::Relaxed);
        for seq in 2..10 {
            forward(std::slice::from_ref(&leg), &packet(seq));
        }
        // One write saw the closed connection; after it the leg stops trying.
        assert_eq!(sink.calls.load(Ordering::Relaxed), 2);
        assert_eq!(leg.dropped(), 0);
    }

    #[test]
    fn stripping_extensions_clears_them() {
        let mut p = rtp::Packet::default();
        p.header.extension = true;
        p.header.extension_profile = 0xBEDE;
        p.header.extensions.push(rtp::header::Extension {
            id: 3,
            payload: bytes::Bytes::from_static(&[1, 2]),
        });
        strip_extensions(&mut p);
        assert!(!p.header.extension);
        assert!(p.header.extensions.is_empty());
    }
}
