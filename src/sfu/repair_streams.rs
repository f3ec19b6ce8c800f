//! [`WithRepairStreams`]: an interceptor that also binds each outgoing stream's RTX
//! repair stream as a stream of its own, for the interceptors that only act on bound
//! SSRCs.
//!
//! rtc 0.21's transport-cc sender stamps the transport-wide sequence number only on
//! packets of bound local streams, and the congestion controller's send history
//! records only those; the RTX SSRC of a stream is never bound by itself. So every
//! retransmission left unnumbered and unrecorded: the subscriber could not report it,
//! the estimate never saw the bytes a lossy link costs, and a probe (`probe.rs`, sent
//! as RTX) could not be measured at all. Wrapping those two interceptors in this one
//! binds `ssrc_rtx` too, with the stream's header extensions (the transport-cc id
//! among them), so both treat a repair flow as what it is: packets on the wire.

use std::time::Instant;

use rtc::interceptor::{Interceptor, StreamInfo, TaggedPacket};
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

/// See the module docs.
pub struct WithRepairStreams<I>(pub I);

/// The repair stream of `info` as a stream of its own, if it has one.
fn repair_of(info: &StreamInfo) -> Option<StreamInfo> {
    let ssrc = info.ssrc_rtx?;
    Some(StreamInfo {
        ssrc,
        payload_type: info.payload_type_rtx.unwrap_or(info.payload_type),
        ssrc_rtx: None,
        payload_type_rtx: None,
        ..info.clone()
    })
}

impl<I: Interceptor> Protocol<TaggedPacket, TaggedPacket, ()> for WithRepairStreams<I> {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Error> {
        self.0.handle_read(msg)
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.0.poll_read()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Error> {
        self.0.handle_write(msg)
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.0.poll_write()
    }

    fn handle_event(&mut self, evt: ()) -> Result<(), Error> {
        self.0.handle_event(evt)
    }

    fn poll_event(&mut self) -> Option<()> {
        self.0.poll_event()
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), Error> {
        self.0.handle_timeout(now)
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        self.0.poll_timeout()
    }

    fn close(&mut self) -> Result<(), Error> {
        self.0.close()
    }
}

impl<I: Interceptor> Interceptor for WithRepairStreams<I> {
    fn bind_local_stream(&mut self, info: &StreamInfo) {
        self.0.bind_local_stream(info);
        if let Some(repair) = repair_of(info) {
            self.0.bind_local_stream(&repair);
        }
    }

    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        if let Some(repair) = repair_of(info) {
            self.0.unbind_local_stream(&repair);
        }
        self.0.unbind_local_stream(info);
    }

    fn bind_remote_stream(&mut self, info: &StreamInfo) {
        self.0.bind_remote_stream(info);
    }

    fn unbind_remote_stream(&mut self, info: &StreamInfo) {
        self.0.unbind_remote_stream(info);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::interceptor::{Packet, TwccSenderBuilder};
    use rtc::rtp;
    use rtc::shared::TransportMessage;

    const TWCC_URI: &str =
        "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";

    fn info() -> StreamInfo {
        StreamInfo {
            ssrc: 10,
            ssrc_rtx: Some(11),
            payload_type: 96,
            payload_type_rtx: Some(97),
            mime_type: "video/VP8".to_owned(),
            rtp_header_extensions: vec![rtc::interceptor::RTPHeaderExtension {
                uri: TWCC_URI.to_owned(),
                id: 3,
            }],
            ..Default::default()
        }
    }

    fn stamped(chain: &mut impl Interceptor, ssrc: u32) -> bool {
        let header = rtp::header::Header {
            version: 2,
            ssrc,
            ..Default::default()
        };
        chain
            .handle_write(TransportMessage {
                now: Instant::now(),
                transport: Default::default(),
                message: Packet::Rtp(rtp::Packet {
                    header,
                    payload: bytes::Bytes::from_static(&[1, 2, 3]),
                })
                .into(),
            })
            .expect("write");
        match chain.poll_write().map(|m| m.message.packet) {
            Some(Packet::Rtp(p)) => p.header.get_extension(3).is_some(),
            _ => panic!("nothing written"),
        }
    }

    #[test]
    fn retransmissions_get_the_transport_wide_number_once_wrapped() {
        // rtc's TWCC sender alone leaves the repair stream unnumbered ...
        let mut bare = TwccSenderBuilder::new().build();
        bare.bind_local_stream(&info());
        assert!(stamped(&mut bare, 10));
        assert!(
            !stamped(&mut bare, 11),
            "rtc 0.21 numbers RTX packets now: drop the wrapper?"
        );
        // ... wrapped, it numbers it, and forgets it with its stream.
        let mut wrapped = WithRepairStreams(TwccSenderBuilder::new().build());
        wrapped.bind_local_stream(&info());
        assert!(stamped(&mut wrapped, 10));
        assert!(stamped(&mut wrapped, 11));
        wrapped.unbind_local_stream(&info());
        assert!(!stamped(&mut wrapped, 11));
    }
}
