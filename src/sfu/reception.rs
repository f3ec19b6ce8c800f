//! What a subscriber says it receives: the reception report blocks of its RTCP
//! receiver (and sender) reports, per SSRC the SFU sends it, for media health.
//!
//! Media health (`hearing/health.rs`) judges each publisher → subscriber pair first
//! from the SFU's own counters. Those show what left the server, not what reached the
//! site; the client's `media_report` shows that, but the browser is untrusted and an
//! older client sends none. The subscriber's RTCP reports are in between: sent by its
//! WebRTC stack on its own, every second or so, and they carry the loss and jitter it
//! measured on each stream. The keyframe-request tap (`rtcp.rs`) records them here as
//! they pass; each leg ([`super::forward::Downstream`]) reads the latest for its SSRC.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rtc::rtcp::reception_report::ReceptionReport;

/// A report older than this says nothing about now (browsers report about every
/// second; five missed ones is a silent subscriber, which other signs show).
pub const FRESH_FOR: Duration = Duration::from_secs(5);
/// SSRCs remembered at most per connection (a subscriber gets a few per publisher; a
/// misbehaving one cannot make this grow).
const MAX_STREAMS: usize = 256;

/// The latest report about one stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reception {
    /// Share of the packets expected since the previous report that did not arrive
    /// (RFC 3550's fraction lost, 0 to 1).
    pub fraction_lost: f64,
    /// Interarrival jitter, in RTP timestamp units of the stream.
    pub jitter: u32,
}

/// One connection's latest reception reports, by the SSRC they are about.
#[derive(Debug, Default)]
pub struct ReceptionReports {
    latest: Mutex<HashMap<u32, (Reception, Instant)>>,
}

impl ReceptionReports {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, (Reception, Instant)>> {
        // Every update completes before the lock is released.
        self.latest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A report block arrived at `now`.
    pub fn record(&self, now: Instant, block: &ReceptionReport) {
        let mut latest = self.lock();
        if latest.len() >= MAX_STREAMS && !latest.contains_key(&block.ssrc) {
            latest.retain(|_, (_, at)| now.saturating_duration_since(*at) < FRESH_FOR);
            if latest.len() >= MAX_STREAMS {
                return;
            }
        }
        let reception = Reception {
            fraction_lost: f64::from(block.fraction_lost) / 256.0,
            jitter: block.jitter,
        };
        latest.insert(block.ssrc, (reception, now));
    }

    /// The latest report about `ssrc`, if it is fresh at `now`.
    pub fn latest(&self, ssrc: u32, now: Instant) -> Option<Reception> {
        let latest = self.lock();
        let &(reception, at) = latest.get(&ssrc)?;
        (now.saturating_duration_since(at) < FRESH_FOR).then_some(reception)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(ssrc: u32, fraction_lost: u8, jitter: u32) -> ReceptionReport {
        ReceptionReport {
            ssrc,
            fraction_lost,
            jitter,
            ..Default::default()
        }
    }

    #[test]
    fn the_latest_fresh_report_per_stream_is_kept() {
        let r = ReceptionReports::default();
        let t0 = Instant::now();
        assert_eq!(r.latest(1, t0), None);
        r.record(t0, &block(1, 64, 900));
        r.record(t0, &block(2, 0, 10));
        assert_eq!(
            r.latest(1, t0),
            Some(Reception {
                fraction_lost: 0.25,
                jitter: 900
            })
        );
        // A newer one replaces it; an old one is not believed.
        r.record(t0 + Duration::from_secs(1), &block(1, 0, 30));
        assert_eq!(
            r.latest(1, t0 + Duration::from_secs(1))
                .map(|x| x.fraction_lost),
            Some(0.0)
        );
        assert_eq!(r.latest(2, t0 + FRESH_FOR), None);
    }

    #[test]
    fn a_flood_of_ssrcs_is_bounded() {
        let r = ReceptionReports::default();
        let t0 = Instant::now();
        for ssrc in 0..(MAX_STREAMS as u32 + 100) {
            r.record(t0, &block(ssrc, 0, 0));
        }
        assert_eq!(r.lock().len(), MAX_STREAMS);
        // Once the old ones are stale, new streams are remembered again.
        r.record(t0 + FRESH_FOR, &block(9_999, 0, 0));
        assert!(r.latest(9_999, t0 + FRESH_FOR).is_some());
    }
}
