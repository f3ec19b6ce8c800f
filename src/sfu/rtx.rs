//! Retransmissions (RTX, RFC 4588) arriving from publishers, turned back into media
//! before anything reads a sequence number.
//!
//! What webrtc 0.21 does and does not do here (read from rtc 0.21.1):
//! * It **answers** NACKs with RTX (`NackResponderInterceptor`, on the RTX SSRC and
//!   payload type the sender's stream was bound with), so the subscriber side needs no
//!   code of ours beyond naming each leg's RTX SSRC (see `Peer::add_leg`).
//! * It **unwraps** RTX for the application only for an RTX SSRC the publisher declared
//!   with `a=ssrc-group:FID` (its endpoint handler), and only *after* the interceptor
//!   chain. So its NACK generator never learns that a repair arrived (the packet still
//!   carries the RTX SSRC there) and asks for the same packet every 100 ms until it
//!   leaves the 512-packet window; and it keeps a receive log for the RTX SSRC itself,
//!   whose gaps (the repairs it did not need) it would NACK as if they were media.
//! * It does **not** resolve RTX of a simulcast layer at all: Chrome declares no SSRCs
//!   for simulcast, names a layer's repair flow only by the `repaired-rtp-stream-id`
//!   header extension, and rtc 0.21 leaves that case as a TODO and drops the packets.
//!
//! So the SFU puts its own NACK generator in the chain, [`RepairingNackGenerator`]: it
//! wraps webrtc's generator and, before it, rewrites every RTX packet it can attribute
//! into the packet it repairs ([`unwrap`]), learning RTX SSRCs from the bound streams
//! (FID groups) and from the repaired-rid extension ([`RepairMap`], pure, tested). The
//! repair flows are never bound to the wrapped generator. Everything after it — TWCC
//! and receiver reports, webrtc's endpoint, the track reader, the recorder's tap — sees
//! the repaired media packet with the primary SSRC, payload type and sequence number.
//! A packet that still carries an RTX payload type after this (one that could not be
//! attributed) is dropped by the track reader, never forwarded as media.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use rtc::interceptor::{Interceptor, NackGeneratorInterceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtp;
use rtc::sansio::Protocol;
use rtc::sdp::extmap::{SDES_MID_URI, SDES_REPAIR_RTP_STREAM_ID_URI, SDES_RTP_STREAM_ID_URI};
use rtc::shared::error::Error;

use super::sdp::RepairFormats;

/// The most repair flows one connection's map keeps (a publisher has at most a few
/// tracks of three layers each; the cap only bounds what a misbehaving one can cost).
const MAX_REPAIR_FLOWS: usize = 64;

/// Why an RTX packet could not be unwrapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtxError {
    /// Shorter than the 2-byte original sequence number: a padding-only bandwidth
    /// probe (RFC 4588 §4), nothing to recover.
    #[error("RTX packet without an original sequence number")]
    NoOriginalSequenceNumber,
}

/// RFC 4588 §4: turns an RTX packet back into the packet it repeats. The payload is
/// `[OSN: u16 big-endian][original payload]`; the result carries `primary_ssrc`,
/// `primary_pt` and the OSN as its sequence number, timestamp and marker unchanged.
/// Header extensions stay (the transport-wide sequence number belongs to this
/// transmission). On error the packet is left untouched.
pub fn unwrap(packet: &mut rtp::Packet, primary_ssrc: u32, primary_pt: u8) -> Result<(), RtxError> {
    let Some(osn) = packet.payload.get(..2) else {
        return Err(RtxError::NoOriginalSequenceNumber);
    };
    packet.header.sequence_number = u16::from_be_bytes([osn[0], osn[1]]);
    packet.header.ssrc = primary_ssrc;
    packet.header.payload_type = primary_pt;
    // The retransmitter removed any padding of the original (RFC 4588 §4).
    packet.header.padding = false;
    packet.payload = packet.payload.slice(2..);
    Ok(())
}

/// One media stream bound on the receive side.
#[derive(Debug, Clone, Default)]
struct Primary {
    payload_type: u8,
    /// The `mid` and `rid` its packets named (simulcast layers), once seen.
    mid: Option<Vec<u8>>,
    rid: Option<Vec<u8>>,
}

/// Header extension ids of the SDES items that name streams, from the bound streams.
#[derive(Debug, Clone, Copy, Default)]
struct SdesIds {
    mid: Option<u8>,
    rid: Option<u8>,
    repaired_rid: Option<u8>,
}

/// Which receive-side SSRC repairs which: from `a=ssrc-group:FID` (via the bound
/// streams' `ssrc_rtx`) and, for simulcast layers, from the `repaired-rtp-stream-id`
/// extension matched against the `rtp-stream-id` the layer's own packets carried.
#[derive(Debug, Default)]
pub struct RepairMap {
    primaries: HashMap<u32, Primary>,
    /// RTX SSRC → the primary SSRC it repairs.
    repairs: HashMap<u32, u32>,
    ids: SdesIds,
}

impl RepairMap {
    /// A stream was bound (webrtc binds a declared repair flow both as the primary's
    /// `ssrc_rtx` and as a stream of its own; the latter is not media).
    pub fn bind(&mut self, info: &StreamInfo) {
        for ext in &info.rtp_header_extensions {
            let id = u8::try_from(ext.id).ok();
            match ext.uri.as_str() {
                SDES_MID_URI => self.ids.mid = id,
                SDES_RTP_STREAM_ID_URI => self.ids.rid = id,
                SDES_REPAIR_RTP_STREAM_ID_URI => self.ids.repaired_rid = id,
                _ => {}
            }
        }
        if self.repairs.contains_key(&info.ssrc) {
            return;
        }
        if let Some(rtx) = info.ssrc_rtx {
            self.primaries.remove(&rtx);
            self.insert_repair(rtx, info.ssrc);
        }
        if self.primaries.len() < MAX_REPAIR_FLOWS {
            self.primaries.insert(
                info.ssrc,
                Primary {
                    payload_type: info.payload_type,
                    ..Primary::default()
                },
            );
        }
    }

    /// A stream was unbound: forget it and the flows repairing it.
    pub fn unbind(&mut self, info: &StreamInfo) {
        if self.primaries.remove(&info.ssrc).is_some() {
            self.repairs.retain(|_, primary| *primary != info.ssrc);
        }
        self.repairs.remove(&info.ssrc);
    }

    /// Whether `ssrc` is a known repair flow (not to be bound as media).
    pub fn is_repair(&self, ssrc: u32) -> bool {
        self.repairs.contains_key(&ssrc)
    }

    fn insert_repair(&mut self, rtx: u32, primary: u32) {
        if self.repairs.len() < MAX_REPAIR_FLOWS || self.repairs.contains_key(&rtx) {
            self.repairs.insert(rtx, primary);
        }
    }

    /// What an arriving packet repairs: `Some((primary SSRC, primary payload type))`
    /// for an RTX packet this map can attribute, `None` for media and for what it
    /// cannot. Learns simulcast layers' rids from their media packets and repair flows
    /// from their repaired-rid as it goes.
    pub fn repairs(&mut self, header: &rtp::Header, formats: &RepairFormats) -> Option<(u32, u8)> {
        let ssrc = header.ssrc;
        if let Some(&primary) = self.repairs.get(&ssrc) {
            let payload_type = formats
                .apt(header.payload_type)
                .or_else(|| self.primaries.get(&primary).map(|p| p.payload_type))?;
            return Some((primary, payload_type));
        }
        if let Some(p) = self.primaries.get_mut(&ssrc) {
            // Media of a bound stream: remember which layer it is while it says so.
            if let Some(rid) = sdes(header, self.ids.rid) {
                p.rid = Some(rid);
                p.mid = sdes(header, self.ids.mid).or(p.mid.take());
            }
            return None;
        }
        // An SSRC nobody declared: a simulcast layer's repair flow names the layer.
        let apt = formats.apt(header.payload_type)?;
        let rrid = sdes(header, self.ids.repaired_rid)?;
        let mid = sdes(header, self.ids.mid);
        let mut candidates = self.primaries.iter().filter(|(_, p)| {
            p.rid.as_deref() == Some(rrid.as_slice())
                && (mid.is_none() || p.mid.is_none() || p.mid == mid)
        });
        let (&primary, _) = candidates.next()?;
        if candidates.next().is_some() {
            // The same rid in two sections and no mid to tell them apart.
            return None;
        }
        self.insert_repair(ssrc, primary);
        Some((primary, apt))
    }
}

/// The value of the SDES header extension `id`, if the packet carries it.
fn sdes(header: &rtp::Header, id: Option<u8>) -> Option<Vec<u8>> {
    let value = header.get_extension(id?)?;
    (!value.is_empty()).then(|| value.to_vec())
}

/// webrtc's NACK generator, fed with repaired media: RTX packets are unwrapped into
/// the packets they repeat before the generator (and everything after it) sees them,
/// and repair flows are never bound to it. See the module docs for why.
pub struct RepairingNackGenerator {
    inner: NackGeneratorInterceptor,
    map: RepairMap,
    formats: Arc<ArcSwap<RepairFormats>>,
}

impl RepairingNackGenerator {
    /// `formats`: the connection's negotiated repair payload types, kept current by
    /// its [`super::Peer`] after each negotiation.
    pub fn new(inner: NackGeneratorInterceptor, formats: Arc<ArcSwap<RepairFormats>>) -> Self {
        RepairingNackGenerator {
            inner,
            map: RepairMap::default(),
            formats,
        }
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for RepairingNackGenerator {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtp(packet) = &mut msg.message.packet {
            let formats = self.formats.load();
            if let Some((ssrc, payload_type)) = self.map.repairs(&packet.header, &formats) {
                // A padding-only probe stays as it is: it still counts for the
                // transport-wide feedback, and webrtc drops it before the application.
                let _ = unwrap(packet, ssrc, payload_type);
            }
        }
        self.inner.handle_read(msg)
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.inner.poll_read()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.inner.handle_write(msg)
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.inner.poll_write()
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), Self::Error> {
        self.inner.handle_timeout(now)
    }

    fn poll_timeout(&mut self) -> Option<Self::Time> {
        self.inner.poll_timeout()
    }

    fn close(&mut self) -> Result<(), Self::Error> {
        self.inner.close()
    }
}

impl Interceptor for RepairingNackGenerator {
    fn bind_local_stream(&mut self, info: &StreamInfo) {
        self.inner.bind_local_stream(info);
    }

    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        self.inner.unbind_local_stream(info);
    }

    fn bind_remote_stream(&mut self, info: &StreamInfo) {
        self.map.bind(info);
        if !self.map.is_repair(info.ssrc) {
            self.inner.bind_remote_stream(info);
        }
    }

    fn unbind_remote_stream(&mut self, info: &StreamInfo) {
        let repair = self.map.is_repair(info.ssrc);
        self.map.unbind(info);
        if !repair {
            self.inner.unbind_remote_stream(info);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::interceptor::{
        AttributedPacket, NackGeneratorBuilder, RTCPFeedback, RTPHeaderExtension,
    };
    use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
    use rtc::shared::TransportContext;
    use std::time::Duration;

    const MID: u8 = 1;
    const RID: u8 = 2;
    const RRID: u8 = 3;

    fn formats() -> RepairFormats {
        RepairFormats {
            rtx: vec![(97, 96), (103, 102)],
            red: None,
        }
    }

    fn extensions() -> Vec<RTPHeaderExtension> {
        [
            (SDES_MID_URI, MID),
            (SDES_RTP_STREAM_ID_URI, RID),
            (SDES_REPAIR_RTP_STREAM_ID_URI, RRID),
        ]
        .into_iter()
        .map(|(uri, id)| RTPHeaderExtension {
            uri: uri.to_owned(),
            id: u16::from(id),
        })
        .collect()
    }

    fn stream(ssrc: u32, pt: u8, rtx: Option<(u32, u8)>) -> StreamInfo {
        StreamInfo {
            ssrc,
            payload_type: pt,
            ssrc_rtx: rtx.map(|r| r.0),
            payload_type_rtx: rtx.map(|r| r.1),
            rtp_header_extensions: extensions(),
            rtcp_feedback: vec![RTCPFeedback {
                typ: "nack".to_owned(),
                parameter: String::new(),
            }],
            mime_type: "video/VP8".to_owned(),
            clock_rate: 90000,
            ..Default::default()
        }
    }

    fn media(ssrc: u32, pt: u8, seq: u16) -> rtp::Packet {
        let mut p = rtp::Packet::default();
        p.header.version = 2;
        p.header.ssrc = ssrc;
        p.header.payload_type = pt;
        p.header.sequence_number = seq;
        p.header.timestamp = 9000;
        p.header.marker = true;
        p.payload = bytes::Bytes::from_static(b"frame");
        p
    }

    /// What webrtc's NACK responder sends for `original`.
    fn rtx_of(original: &rtp::Packet, ssrc: u32, pt: u8, rtx_seq: u16) -> rtp::Packet {
        let mut payload = original.header.sequence_number.to_be_bytes().to_vec();
        payload.extend_from_slice(&original.payload);
        let mut p = rtp::Packet::default();
        p.header.version = 2;
        p.header.ssrc = ssrc;
        p.header.payload_type = pt;
        p.header.sequence_number = rtx_seq;
        p.header.timestamp = original.header.timestamp;
        p.header.marker = original.header.marker;
        p.payload = payload.into();
        p
    }

    fn with_sdes(mut p: rtp::Packet, items: &[(u8, &'static [u8])]) -> rtp::Packet {
        for &(id, value) in items {
            p.header
                .set_extension(id, bytes::Bytes::from_static(value))
                .expect("extension");
        }
        p
    }

    #[test]
    fn unwrap_restores_the_original_packet() {
        let original = media(1000, 96, 4242);
        let mut p = rtx_of(&original, 2000, 97, 7);
        unwrap(&mut p, 1000, 96).expect("unwraps");
        assert_eq!(p.header.ssrc, 1000);
        assert_eq!(p.header.payload_type, 96);
        assert_eq!(p.header.sequence_number, 4242);
        assert_eq!(p.header.timestamp, original.header.timestamp);
        assert!(p.header.marker);
        assert_eq!(p.payload, original.payload);
    }

    #[test]
    fn unwrap_of_garbage_never_panics_and_keeps_the_packet() {
        for len in 0..2 {
            let mut p = media(2000, 97, 1);
            p.payload = bytes::Bytes::from(vec![0xff; len]);
            let before = p.clone();
            assert_eq!(
                unwrap(&mut p, 1, 96),
                Err(RtxError::NoOriginalSequenceNumber)
            );
            assert_eq!(p, before);
        }
        // Just an OSN: an empty original payload is still a packet.
        let mut p = media(2000, 97, 1);
        p.payload = bytes::Bytes::from_static(&[0x12, 0x34]);
        unwrap(&mut p, 1, 96).expect("unwraps");
        assert_eq!(p.header.sequence_number, 0x1234);
        assert!(p.payload.is_empty());
    }

    #[test]
    fn a_declared_repair_flow_maps_to_its_primary() {
        let mut map = RepairMap::default();
        map.bind(&stream(1000, 96, Some((2000, 97))));
        // webrtc binds the repair flow as a stream too.
        map.bind(&stream(2000, 97, None));
        assert!(map.is_repair(2000));
        assert!(!map.is_repair(1000));
        let rtx = rtx_of(&media(1000, 96, 5), 2000, 97, 0);
        assert_eq!(map.repairs(&rtx.header, &formats()), Some((1000, 96)));
        assert_eq!(map.repairs(&media(1000, 96, 6).header, &formats()), None);
        // Without negotiated formats the primary's own payload type is used.
        assert_eq!(
            map.repairs(&rtx.header, &RepairFormats::default()),
            Some((1000, 96))
        );
        map.unbind(&stream(1000, 96, Some((2000, 97))));
        assert_eq!(map.repairs(&rtx.header, &formats()), None);
    }

    #[test]
    fn a_simulcast_repair_flow_is_learnt_from_its_repaired_rid() {
        let mut map = RepairMap::default();
        for ssrc in [10, 20, 30] {
            map.bind(&stream(ssrc, 96, None));
        }
        for (ssrc, rid) in [(10, &b"q"[..]), (20, b"h"), (30, b"f")] {
            let p = with_sdes(media(ssrc, 96, 1), &[(MID, b"1"), (RID, rid)]);
            assert_eq!(map.repairs(&p.header, &formats()), None);
        }
        let rtx = with_sdes(
            rtx_of(&media(20, 96, 1), 777, 97, 0),
            &[(MID, b"1"), (RRID, b"h")],
        );
        assert_eq!(map.repairs(&rtx.header, &formats()), Some((20, 96)));
        // Later repairs of that layer no longer carry the extension.
        let later = rtx_of(&media(20, 96, 9), 777, 97, 1);
        assert_eq!(map.repairs(&later.header, &formats()), Some((20, 96)));
        assert!(map.is_repair(777));
    }

    #[test]
    fn unattributable_packets_are_left_alone() {
        let mut map = RepairMap::default();
        map.bind(&stream(10, 96, None));
        let p = with_sdes(media(10, 96, 1), &[(MID, b"1"), (RID, b"h")]);
        map.repairs(&p.header, &formats());
        // Unknown SSRC, RTX payload type, but a rid no layer has.
        let rtx = with_sdes(rtx_of(&media(10, 96, 1), 5, 97, 0), &[(RRID, b"x")]);
        assert_eq!(map.repairs(&rtx.header, &formats()), None);
        // Unknown SSRC, repaired-rid of a layer, but not an RTX payload type.
        let other = with_sdes(media(6, 96, 0), &[(RRID, b"h")]);
        assert_eq!(map.repairs(&other.header, &formats()), None);
        // Unknown SSRC, no extensions at all.
        assert_eq!(map.repairs(&media(7, 97, 0).header, &formats()), None);
        assert!(!map.is_repair(5) && !map.is_repair(6) && !map.is_repair(7));
    }

    #[test]
    fn the_same_rid_in_two_sections_needs_a_mid() {
        let mut map = RepairMap::default();
        map.bind(&stream(10, 96, None));
        map.bind(&stream(11, 96, None));
        for (ssrc, mid) in [(10, &b"1"[..]), (11, b"2")] {
            map.repairs(
                &with_sdes(media(ssrc, 96, 1), &[(MID, mid), (RID, b"h")]).header,
                &formats(),
            );
        }
        let no_mid = with_sdes(rtx_of(&media(11, 96, 1), 5, 97, 0), &[(RRID, b"h")]);
        assert_eq!(map.repairs(&no_mid.header, &formats()), None);
        let with_mid = with_sdes(no_mid, &[(MID, b"2")]);
        assert_eq!(map.repairs(&with_mid.header, &formats()), Some((11, 96)));
    }

    #[test]
    fn a_flood_of_streams_is_bounded() {
        let mut map = RepairMap::default();
        for ssrc in 0..1000 {
            map.bind(&stream(ssrc, 96, Some((ssrc + 100_000, 97))));
        }
        assert!(map.primaries.len() <= MAX_REPAIR_FLOWS);
        assert!(map.repairs.len() <= MAX_REPAIR_FLOWS);
    }

    fn tagged(p: rtp::Packet, now: Instant) -> TaggedPacket {
        TaggedPacket {
            now,
            transport: TransportContext::default(),
            message: AttributedPacket::new(Packet::Rtp(p)),
        }
    }

    /// The NACKs the generator sends at `now`: the sequence numbers asked for.
    fn nacked(g: &mut RepairingNackGenerator, now: Instant) -> Vec<u16> {
        g.handle_timeout(now).expect("timeout");
        let mut seqs = Vec::new();
        while let Some(msg) = g.poll_write() {
            if let Packet::Rtcp(packets) = &msg.message.packet {
                for p in packets {
                    if let Some(n) = p.as_any().downcast_ref::<TransportLayerNack>() {
                        assert_eq!(n.media_ssrc, 1000, "a NACK about the repair flow");
                        for pair in &n.nacks {
                            seqs.extend(pair.packet_list());
                        }
                    }
                }
            }
        }
        seqs
    }

    /// The failure this module exists for: a repair that arrived stops the NACKs for
    /// that packet, and the repair flow's own numbering is never NACKed. Loss,
    /// reordering and a garbage RTX packet on the way.
    #[test]
    fn the_generator_stops_asking_once_the_repair_arrived() {
        let formats = Arc::new(ArcSwap::from_pointee(formats()));
        let mut g = RepairingNackGenerator::new(
            NackGeneratorBuilder::new()
                .with_interval(Duration::from_millis(100))
                .build(),
            formats,
        );
        g.bind_remote_stream(&stream(1000, 96, Some((2000, 97))));
        g.bind_remote_stream(&stream(2000, 97, None));
        let t0 = Instant::now();
        // 0..=9 with 3 and 6 lost, 8 before 7.
        for seq in [0u16, 1, 2, 4, 5, 8, 7, 9] {
            g.handle_read(tagged(media(1000, 96, seq), t0))
                .expect("read");
        }
        while g.poll_read().is_some() {}
        let first = nacked(&mut g, t0 + Duration::from_millis(100));
        assert_eq!(first, vec![3, 6]);
        // The repair of 3 (RTX seq 50) and a garbage RTX packet; 6 stays lost, and
        // RTX seqs 51.. never come (the gap in the repair flow is not media).
        let repaired = rtx_of(&media(1000, 96, 3), 2000, 97, 50);
        let mut garbage = rtx_of(&media(1000, 96, 3), 2000, 97, 52);
        garbage.payload = bytes::Bytes::from_static(&[7]);
        for p in [repaired, garbage] {
            g.handle_read(tagged(p, t0)).expect("read");
        }
        let out: Vec<rtp::Packet> = std::iter::from_fn(|| g.poll_read())
            .filter_map(|m| match m.message.packet {
                Packet::Rtp(p) => Some(p),
                _ => None,
            })
            .collect();
        assert_eq!(
            (out[0].header.ssrc, out[0].header.sequence_number),
            (1000, 3)
        );
        assert_eq!(out[0].header.payload_type, 96);
        assert_eq!(out[1].header.ssrc, 2000, "garbage passed on untouched");
        let second = nacked(&mut g, t0 + Duration::from_millis(200));
        assert_eq!(second, vec![6]);
    }
}
