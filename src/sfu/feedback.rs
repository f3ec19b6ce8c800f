//! Which packets a subscriber's transport-cc feedback described, so a lost feedback
//! packet is not taken for lost media.
//!
//! A browser's transport-wide congestion-control feedback (`TransportLayerCc`) covers
//! a range of transport sequence numbers, `base .. base + count`, each received or
//! not, and the next feedback starts where that one ended: a feedback lost on the way
//! back is never sent again. rtc 0.21's send history (`rtpfb/history.rs`) reports
//! every packet older than the highest one acknowledged as **lost** once a later
//! feedback arrives, so on a site's link with 10 % random loss each lost feedback
//! turned the ten or twenty packets it described into losses: GCC saw about twice the
//! link's loss (over the 20 % at which `budget.rs` lets the loss-based estimate cut),
//! and a probe whose feedback was lost was judged "saturated" (a fifth of it lost),
//! so the estimate fell to its floor and the site got the judge's smallest picture at
//! 5–11 frames/s where a browser calling directly kept 20 (netbench `loss10`).
//! libwebrtc's feedback adapter instead forgets packets no feedback described.
//!
//! [`FeedbackTap`] sits wire-most in the connection's interceptor chain, before the
//! congestion-control interceptor reads the feedback, and records each feedback's
//! range in a [`FeedbackCoverage`]; the estimator (`budget.rs`) then hands GCC and
//! the prober only the reports of packets a feedback described
//! ([`FeedbackCoverage::described`]): a packet reported lost stays lost, one that
//! merely went unreported is left out.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rtc::interceptor::{Interceptor, Packet, PacketReport, StreamInfo, TaggedPacket};
use rtc::rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc;
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

/// How many feedback ranges are kept. Reports are taken right after each feedback
/// (rtc's history hands them over as it reads one), so only the last few ranges are
/// ever asked about; at a browser's 10–20 feedbacks a second this is several
/// seconds' worth.
const RANGES: usize = 64;

/// The transport sequence-number ranges recent feedback described.
#[derive(Debug, Default)]
pub struct FeedbackCoverage {
    ranges: Mutex<VecDeque<(u16, u16)>>,
}

impl FeedbackCoverage {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(u16, u16)>> {
        self.ranges
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A feedback described `count` packets from `base` on.
    pub fn record(&self, base: u16, count: u16) {
        if count == 0 {
            return;
        }
        let mut ranges = self.lock();
        if ranges.len() == RANGES {
            ranges.pop_front();
        }
        ranges.push_back((base, count));
    }

    /// The reports a feedback described: every packet reported received, every one
    /// reported lost, and none that no feedback named (their feedback was lost). A
    /// report without a transport sequence number is kept as it is. Borrowed when
    /// all are kept (no feedback was lost: the usual case).
    pub fn described<'a>(&self, reports: &'a [PacketReport]) -> Cow<'a, [PacketReport]> {
        let ranges = self.lock();
        let keep = |r: &PacketReport| {
            r.arrived
                || !r.is_twcc
                || ranges
                    .iter()
                    .rev()
                    .any(|&(base, count)| r.twcc_sequence_number.wrapping_sub(base) < count)
        };
        if reports.iter().all(keep) {
            return Cow::Borrowed(reports);
        }
        Cow::Owned(reports.iter().filter(|r| keep(r)).cloned().collect())
    }
}

/// Records the range of every inbound transport-cc feedback in a [`FeedbackCoverage`];
/// passes everything on unchanged. Belongs wire-most (before
/// `Slot::CongestionControl` on the read walk): see [`FeedbackTap::SLOT`].
pub struct FeedbackTap {
    coverage: Arc<FeedbackCoverage>,
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
}

impl FeedbackTap {
    /// Closer to the wire than the congestion-control interceptor (1,000), so the
    /// range is recorded before the estimator is handed the feedback's reports.
    pub const SLOT: usize = 500;

    pub fn new(coverage: Arc<FeedbackCoverage>) -> Self {
        FeedbackTap {
            coverage,
            read_queue: VecDeque::new(),
            write_queue: VecDeque::new(),
        }
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for FeedbackTap {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            for p in packets {
                if let Some(cc) = p.as_any().downcast_ref::<TransportLayerCc>() {
                    self.coverage
                        .record(cc.base_sequence_number, cc.packet_status_count);
                }
            }
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

impl Interceptor for FeedbackTap {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::shared::TransportMessage;

    fn report(twcc: u16, arrived: bool) -> PacketReport {
        PacketReport {
            ssrc: 1,
            id: u64::from(twcc),
            rtp_sequence_number: twcc,
            is_twcc: true,
            twcc_sequence_number: twcc,
            size: 1200,
            arrived,
            departure: Instant::now(),
            arrival: None,
            ecn: Default::default(),
        }
    }

    #[test]
    fn packets_of_a_lost_feedback_are_left_out_and_reported_losses_kept() {
        let coverage = Arc::new(FeedbackCoverage::default());
        let mut tap = FeedbackTap::new(coverage.clone());
        // Feedback for 65530..65540 (across the wrap) came; the one for the next ten
        // was lost; the one after names 4..14.
        let feedback = |base, count| TransportMessage {
            now: Instant::now(),
            transport: Default::default(),
            message: Packet::Rtcp(vec![Box::new(TransportLayerCc {
                base_sequence_number: base,
                packet_status_count: count,
                ..Default::default()
            })])
            .into(),
        };
        tap.handle_read(feedback(65530, 10)).expect("read");
        assert!(tap.poll_read().is_some(), "the feedback goes on");
        tap.handle_read(feedback(14, 10)).expect("read");
        assert!(tap.poll_read().is_some());

        let reports: Vec<PacketReport> = (0..30u16)
            .map(|i| 65530u16.wrapping_add(i))
            .map(|seq| report(seq, seq % 3 != 0))
            .collect();
        let kept: Vec<(u16, bool)> = coverage
            .described(&reports)
            .iter()
            .map(|r| (r.twcc_sequence_number, r.arrived))
            .collect();
        let expected: Vec<(u16, bool)> = (0..30u16)
            .map(|i| 65530u16.wrapping_add(i))
            .filter(|&seq| {
                let covered = !(4..14).contains(&seq);
                seq % 3 != 0 || covered
            })
            .map(|seq| (seq, seq % 3 != 0))
            .collect();
        assert_eq!(kept, expected);
        // Received packets in the lost feedback's range stay (rtc cannot have marked
        // them received without a feedback, but nothing is lost by keeping them).
        assert!(kept.contains(&(5, true)));
        assert!(!kept.contains(&(6, false)), "unreported, not lost");
        assert!(kept.contains(&(15, false)), "reported lost");
    }

    #[test]
    fn only_the_recent_ranges_are_kept() {
        let coverage = FeedbackCoverage::default();
        for i in 0..(RANGES as u16 + 1) {
            coverage.record(i * 10, 10);
        }
        let reports = [report(5, false), report(15, false)];
        let kept = coverage.described(&reports);
        assert_eq!(
            kept.iter()
                .map(|r| r.twcc_sequence_number)
                .collect::<Vec<_>>(),
            vec![15]
        );
        coverage.record(1000, 0);
        assert!(coverage.described(&[report(1000, false)]).is_empty());
        // Nothing to leave out: the reports themselves, not a copy.
        let all = [report(15, false), report(1000, true)];
        assert!(matches!(coverage.described(&all), Cow::Borrowed(_)));
    }
}
