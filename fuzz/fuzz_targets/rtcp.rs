//! The RTCP the SFU handles itself: an inbound compound packet, as webrtc's RTCP
//! parser makes it, through the interceptor that keeps keyframe requests and sender
//! reports for the application (`sfu::rtcp::KeyframeRequestTap`), then each sender
//! report into the recorder's RTP-to-wall-clock mapping (`timing::TrackClock`), as the
//! SFU's reader task and the recorder's writer do. Input: four bytes of an RTP
//! timestamp to map, then the RTCP datagram.
#![no_main]

use std::time::{Duration, Instant, SystemTime};

use libfuzzer_sys::fuzz_target;
use openhearing::sfu::rtcp::KeyframeRequestTap;
use openhearing_recorder::timing::{us_to_datetime, TrackClock};
use rtc::interceptor::{AttributedPacket, Packet, TaggedPacket};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::sender_report::SenderReport;
use rtc::sansio::Protocol;
use rtc::shared::{TransportContext, TransportMessage};

fuzz_target!(|data: &[u8]| {
    let [a, b, c, d, datagram @ ..] = data else {
        return;
    };
    let ts = u32::from_be_bytes([*a, *b, *c, *d]);
    let mut raw = datagram;
    let Ok(packets) = rtc::rtcp::packet::unmarshal(&mut raw) else {
        return;
    };
    let mut tap = KeyframeRequestTap::default();
    let msg: TaggedPacket = TransportMessage {
        now: Instant::now(),
        transport: TransportContext::default(),
        message: AttributedPacket::new(Packet::Rtcp(packets)),
    };
    tap.handle_read(msg).expect("the tap never fails");
    let mut reports = Vec::new();
    while let Some(out) = tap.poll_read() {
        let Packet::Rtcp(kept) = &out.message.packet else {
            panic!("RTCP in, RTP out");
        };
        assert!(
            !kept.is_empty(),
            "an empty compound packet means something else"
        );
        for p in kept {
            let any = p.as_any();
            assert!(
                any.is::<PictureLossIndication>()
                    || any.is::<FullIntraRequest>()
                    || any.is::<SenderReport>(),
                "the tap let through {p:?}"
            );
            if let Some(sr) = any.downcast_ref::<SenderReport>() {
                reports.push((sr.ssrc, sr.ntp_time, sr.rtp_time));
            }
        }
    }
    // As the recorder's writer: the track's SSRC from its first packet, a report
    // before it (kept until media starts) and after it (re-anchors).
    let mut clock = TrackClock::new(90_000);
    let arrival = SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000);
    clock.set_ssrc(reports.first().map_or(1, |r| r.0));
    if let Some(&(ssrc, ntp, rtp)) = reports.first() {
        clock.sender_report(ssrc, ntp, rtp);
    }
    let first = clock.on_packet(ts, arrival);
    for &(ssrc, ntp, rtp) in &reports {
        clock.sender_report(ssrc, ntp, rtp);
    }
    let later = clock.on_packet(ts.wrapping_add(3000), arrival);
    for ext in [first, later, clock.extend(ts.wrapping_sub(90_000))] {
        if let Some(wall) = clock.wall(ext) {
            let _ = us_to_datetime(wall);
        }
    }
    let _ = clock.synced();
});
