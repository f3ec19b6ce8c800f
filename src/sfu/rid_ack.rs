//! Keeps simulcast layers identifiable across renegotiation: an interceptor that
//! withholds the SFU's reception reports about SSRCs a publisher labels with a rid.
//!
//! # Why
//!
//! A browser sends each simulcast layer on an SSRC the SDP never declares; the layer is
//! known by the `mid`/`rid` RTP header extensions on its packets. rtc 0.21 learns the
//! SSRC of each rid from those extensions (`bind_by_rid`), but forgets it on every
//! remote description it applies (`start_rtp` resets the receiver's codings to "rid,
//! SSRC unknown"). Chromium, for its part, stops putting `mid`/`rid` on a stream's
//! packets once the receiver has acknowledged that SSRC — a receiver report block about
//! it (libwebrtc's `OnReceivedAckOnSsrc`). So after the first renegotiation of a
//! publisher's connection (every join of someone it receives causes one) its layers
//! arrive unlabelled, rtc cannot bind them, and they are dropped: seen in the browser
//! tests as layers vanishing for good.
//!
//! Withholding the report blocks about those SSRCs keeps Chromium labelling every
//! packet (a few bytes each), so a reset binding is re-learnt from the next packet.
//! What the publisher loses is the loss and round-trip figures of those blocks; its
//! congestion control runs on transport-wide feedback (TWCC), which is untouched, as
//! are NACKs and keyframe requests. Streams without a rid (audio, a screen share, an
//! H.264 or a non-browser publisher) keep their reports.
//!
//! # Where
//!
//! At [`SLOT`]: below the receiver-report generator (10 000) on the write leg, so the
//! reports it makes pass here on their way to the wire; on the read leg it sees the
//! publisher's RTP before anything above it, to note which SSRCs carry a rid.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;

use rtc::interceptor::{Interceptor, Packet, Slot, StreamInfo, TaggedPacket};
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

/// The registry position: just below the receiver-report generator.
pub const SLOT: usize = 9_500;

/// The header extension that names a simulcast layer.
const RID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";

/// See the module docs.
#[derive(Default)]
pub struct WithholdRidAcks {
    /// The rid extension's id per bound remote SSRC (the ids are per connection, but a
    /// stream's binding is where they are given).
    rid_ext: HashMap<u32, u16>,
    /// SSRCs whose packets carried a rid.
    labelled: HashSet<u32>,
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
}

impl WithholdRidAcks {
    /// The slot to register it at.
    pub fn slot() -> Slot {
        Slot::from(SLOT)
    }

    fn note(&mut self, packet: &rtc::rtp::Packet) {
        let ssrc = packet.header.ssrc;
        if self.labelled.contains(&ssrc) {
            return;
        }
        // The first packets of a layer arrive before rtc binds it (it binds from them),
        // so the id may not be known from a binding yet: any bound stream's id serves,
        // the id is one per connection.
        let id = self
            .rid_ext
            .get(&ssrc)
            .or_else(|| self.rid_ext.values().next())
            .copied();
        if let Some(id) = id {
            if packet
                .header
                .get_extension(id as u8)
                .is_some_and(|rid| !rid.is_empty())
            {
                self.labelled.insert(ssrc);
            }
        }
    }

    /// The batch without report blocks about labelled SSRCs; `None` when nothing is
    /// left to send.
    fn filter(
        &self,
        packets: Vec<Box<dyn rtc::rtcp::Packet>>,
    ) -> Option<Vec<Box<dyn rtc::rtcp::Packet>>> {
        if self.labelled.is_empty() {
            return Some(packets);
        }
        let mut kept: Vec<Box<dyn rtc::rtcp::Packet>> = Vec::with_capacity(packets.len());
        for p in packets {
            match p.as_any().downcast_ref::<ReceiverReport>() {
                Some(rr) if rr.reports.iter().any(|r| self.labelled.contains(&r.ssrc)) => {
                    let mut rr = rr.clone();
                    rr.reports.retain(|r| !self.labelled.contains(&r.ssrc));
                    if !rr.reports.is_empty() {
                        kept.push(Box::new(rr));
                    }
                }
                _ => kept.push(p),
            }
        }
        (!kept.is_empty()).then_some(kept)
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for WithholdRidAcks {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtp(packet) = &msg.message.packet {
            self.note(packet);
        }
        self.read_queue.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read_queue.pop_front()
    }

    fn handle_write(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &mut msg.message.packet {
            // An empty batch only carries attributes: pass it on as it is.
            if !packets.is_empty() {
                match self.filter(std::mem::take(packets)) {
                    Some(kept) => *packets = kept,
                    None => return Ok(()),
                }
            }
        }
        self.write_queue.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write_queue.pop_front()
    }
}

impl Interceptor for WithholdRidAcks {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}

    fn bind_remote_stream(&mut self, info: &StreamInfo) {
        if let Some(ext) = info.rtp_header_extensions.iter().find(|e| e.uri == RID_URI) {
            self.rid_ext.insert(info.ssrc, ext.id);
        }
    }

    fn unbind_remote_stream(&mut self, info: &StreamInfo) {
        self.rid_ext.remove(&info.ssrc);
        self.labelled.remove(&info.ssrc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::interceptor::RTPHeaderExtension;
    use rtc::rtcp::reception_report::ReceptionReport;
    use rtc::rtp::header::Header;
    use rtc::shared::TransportMessage;

    fn info(ssrc: u32) -> StreamInfo {
        StreamInfo {
            ssrc,
            rtp_header_extensions: vec![RTPHeaderExtension {
                uri: RID_URI.to_owned(),
                id: 10,
            }],
            ..Default::default()
        }
    }

    fn tagged(packet: Packet) -> TaggedPacket {
        TransportMessage {
            now: Instant::now(),
            transport: Default::default(),
            message: packet.into(),
        }
    }

    fn rtp(ssrc: u32, rid: Option<&str>) -> TaggedPacket {
        let mut header = Header {
            ssrc,
            ..Default::default()
        };
        if let Some(rid) = rid {
            header
                .set_extension(10, bytes::Bytes::copy_from_slice(rid.as_bytes()))
                .expect("extension");
        }
        tagged(Packet::Rtp(rtc::rtp::Packet {
            header,
            payload: bytes::Bytes::from_static(&[1, 2, 3]),
        }))
    }

    fn rr(ssrcs: &[u32]) -> TaggedPacket {
        tagged(Packet::Rtcp(vec![Box::new(ReceiverReport {
            ssrc: 1,
            reports: ssrcs
                .iter()
                .map(|&ssrc| ReceptionReport {
                    ssrc,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })]))
    }

    fn written(t: &mut WithholdRidAcks, msg: TaggedPacket) -> Vec<Vec<u32>> {
        t.handle_write(msg).expect("write");
        let mut out = Vec::new();
        while let Some(m) = t.poll_write() {
            if let Packet::Rtcp(ps) = m.message.packet {
                for p in ps {
                    let rr = p
                        .as_any()
                        .downcast_ref::<ReceiverReport>()
                        .expect("a receiver report");
                    out.push(rr.reports.iter().map(|r| r.ssrc).collect());
                }
            }
        }
        out
    }

    #[test]
    fn reports_about_labelled_layers_are_withheld_and_the_rest_kept() {
        let mut t = WithholdRidAcks::default();
        t.bind_remote_stream(&info(111));
        t.bind_remote_stream(&info(222));
        // 111 is a simulcast layer (its packets carry a rid); 222 never does (audio).
        for msg in [rtp(111, Some("f")), rtp(222, None), rtp(333, Some("q"))] {
            t.handle_read(msg).expect("read");
            assert!(t.poll_read().is_some(), "every packet is passed on");
        }
        // 333 was unbound when its first packet came: still recognised by the id.
        assert_eq!(written(&mut t, rr(&[111, 222, 333])), vec![vec![222]]);
        // A report only about layers is not sent at all.
        assert!(written(&mut t, rr(&[111])).is_empty());
        // Unbinding (the stream ended) forgets the layer.
        t.unbind_remote_stream(&info(111));
        assert_eq!(written(&mut t, rr(&[111])), vec![vec![111]]);
    }

    #[test]
    fn without_a_rid_extension_nothing_is_withheld() {
        let mut t = WithholdRidAcks::default();
        t.bind_remote_stream(&StreamInfo {
            ssrc: 5,
            ..Default::default()
        });
        t.handle_read(rtp(5, Some("f"))).expect("read");
        assert_eq!(written(&mut t, rr(&[5])), vec![vec![5]]);
    }
}
