//! An interceptor that hands subscribers' keyframe requests and publishers' sender
//! reports to the application.
//!
//! Inbound RTCP stops at the end of webrtc 0.21's interceptor chain unless an
//! interceptor marks it `DeliverToApplication`. A keyframe request (PLI or FIR) from a
//! subscriber is about media the SFU relays, so only the application can answer it (by
//! asking the publisher). A publisher's sender report maps its RTP clock to wall-clock
//! time, which the recorder needs to align tracks. Everything else inbound — receiver
//! reports, NACKs, TWCC — is the interceptors' business and is consumed here, but the
//! reception report blocks a subscriber sends (in its receiver and sender reports) are
//! recorded on the way ([`super::reception`]): media health reads each leg's loss and
//! jitter from them.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::sender_report::SenderReport;
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

/// Keeps only PLI/FIR and sender reports of inbound RTCP and marks them for the
/// application. Must sit last in the chain so every other interceptor has seen the
/// whole inbound RTCP.
#[derive(Default)]
pub struct KeyframeRequestTap {
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
    /// Where the subscriber's reception reports are recorded, if anywhere.
    reception: Option<Arc<super::reception::ReceptionReports>>,
}

impl KeyframeRequestTap {
    /// Records the reception report blocks of inbound RTCP in `reception`.
    pub fn recording(reception: Arc<super::reception::ReceptionReports>) -> Self {
        KeyframeRequestTap {
            reception: Some(reception),
            ..KeyframeRequestTap::default()
        }
    }

    fn record(&self, now: Instant, packet: &dyn rtc::rtcp::Packet) {
        let Some(reception) = &self.reception else {
            return;
        };
        let any = packet.as_any();
        let blocks = if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
            &rr.reports
        } else if let Some(sr) = any.downcast_ref::<SenderReport>() {
            &sr.reports
        } else {
            return;
        };
        for block in blocks {
            reception.record(now, block);
        }
    }
}

fn is_for_application(packet: &dyn rtc::rtcp::Packet) -> bool {
    let any = packet.as_any();
    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>() || any.is::<SenderReport>()
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for KeyframeRequestTap {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            for p in packets {
                self.record(msg.now, p.as_ref());
            }
            let requests: Vec<Box<dyn rtc::rtcp::Packet>> = packets
                .iter()
                .filter(|p| is_for_application(p.as_ref()))
                .cloned()
                .collect();
            if requests.is_empty() {
                return Ok(());
            }
            msg.message.packet = Packet::Rtcp(requests);
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.read_queue.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read_queue.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write_queue.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write_queue.pop_front()
    }
}

impl Interceptor for KeyframeRequestTap {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::rtcp::reception_report::ReceptionReport;
    use rtc::shared::TransportMessage;

    fn inbound(packets: Vec<Box<dyn rtc::rtcp::Packet>>) -> TaggedPacket {
        TransportMessage {
            now: Instant::now(),
            transport: Default::default(),
            message: Packet::Rtcp(packets).into(),
        }
    }

    #[test]
    fn reception_blocks_of_receiver_and_sender_reports_are_recorded_and_consumed() {
        let reception = Arc::new(super::super::reception::ReceptionReports::default());
        let mut tap = KeyframeRequestTap::recording(reception.clone());
        let block = |ssrc, fraction_lost| ReceptionReport {
            ssrc,
            fraction_lost,
            jitter: 450,
            ..Default::default()
        };
        let rr = ReceiverReport {
            ssrc: 9,
            reports: vec![block(1, 128)],
            ..Default::default()
        };
        let sr = SenderReport {
            ssrc: 9,
            reports: vec![block(2, 0)],
            ..Default::default()
        };
        tap.handle_read(inbound(vec![Box::new(rr)])).expect("read");
        // The receiver report is the interceptors' business: it goes no further.
        assert!(tap.poll_read().is_none());
        tap.handle_read(inbound(vec![Box::new(sr)])).expect("read");
        assert!(
            tap.poll_read().is_some(),
            "a sender report goes to the application"
        );
        let now = Instant::now();
        let one = reception.latest(1, now).expect("stream 1 reported");
        assert_eq!((one.fraction_lost, one.jitter), (0.5, 450));
        assert_eq!(reception.latest(2, now).map(|r| r.fraction_lost), Some(0.0));
        assert!(reception.latest(3, now).is_none());
    }
}
