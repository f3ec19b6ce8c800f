//! RTP timestamps to one wall clock.
//!
//! Each track's 32-bit RTP timestamps are extended to 64 bits (wrap-around safe),
//! then mapped to wall-clock microseconds since the Unix epoch through an anchor
//! (an RTP time and the wall time it corresponds to). The anchor is the latest RTCP
//! sender report for the current SSRC (its NTP time is the publisher's capture
//! clock, shared by its audio and video); until one arrives, the first packet's
//! arrival time. Segment start/end times in the journal come from this mapping, so
//! tracks from different participants line up on one time line.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};

/// Seconds between 1900-01-01 (NTP epoch) and 1970-01-01.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// Microseconds since the Unix epoch.
pub type WallUs = i64;

/// Converts a 64-bit NTP timestamp (32.32 fixed point) to Unix microseconds.
pub fn ntp_to_unix_us(ntp: u64) -> Option<WallUs> {
    let secs = (ntp >> 32).checked_sub(NTP_UNIX_OFFSET)?;
    let frac_us = ((ntp & 0xffff_ffff) * 1_000_000) >> 32;
    i64::try_from(secs)
        .ok()?
        .checked_mul(1_000_000)?
        .checked_add(frac_us as i64)
}

/// Converts Unix microseconds to an NTP timestamp (for tests and tools).
pub fn unix_us_to_ntp(us: WallUs) -> u64 {
    let us = us.max(0) as u64;
    let secs = us / 1_000_000 + NTP_UNIX_OFFSET;
    let frac = ((us % 1_000_000) << 32) / 1_000_000;
    (secs << 32) | frac
}

pub fn system_time_us(t: SystemTime) -> WallUs {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_micros() as i64,
        Err(e) => -(e.duration().as_micros() as i64),
    }
}

pub fn us_to_datetime(us: WallUs) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_micros(us).unwrap_or_default()
}

pub fn datetime_us(t: &DateTime<Utc>) -> WallUs {
    t.timestamp_micros()
}

/// Extends 32-bit RTP timestamps to 64 bits.
#[derive(Debug, Default, Clone)]
pub struct TsUnwrapper {
    last: Option<i64>,
}

impl TsUnwrapper {
    /// The extended value nearest to the last one, without updating state.
    pub fn peek(&self, ts: u32) -> i64 {
        match self.last {
            None => i64::from(ts),
            Some(last) => last + i64::from(ts.wrapping_sub(last as u32) as i32),
        }
    }
    /// Extends and remembers `ts` (only moves forward).
    pub fn unwrap(&mut self, ts: u32) -> i64 {
        let v = self.peek(ts);
        self.last = Some(self.last.map_or(v, |l| l.max(v)));
        v
    }
    pub fn reset(&mut self) {
        self.last = None;
    }
}

#[derive(Debug, Clone, Copy)]
struct Anchor {
    rtp: i64,
    wall: WallUs,
    from_sr: bool,
}

/// One track's RTP-to-wall-clock mapping.
#[derive(Debug)]
pub struct TrackClock {
    rate: i64,
    ssrc: Option<u32>,
    pub unwrapper: TsUnwrapper,
    anchor: Option<Anchor>,
    /// Latest sender report per SSRC (NTP µs, RTP ts), kept for an SSRC that has not
    /// sent media yet; bounded to a few entries.
    reports: HashMap<u32, (WallUs, u32)>,
}

impl TrackClock {
    pub fn new(clock_rate: u32) -> Self {
        Self {
            rate: i64::from(clock_rate.max(1)),
            ssrc: None,
            unwrapper: TsUnwrapper::default(),
            anchor: None,
            reports: HashMap::new(),
        }
    }

    pub fn rate(&self) -> i64 {
        self.rate
    }

    /// Switches to a new SSRC (a discontinuity): forget the old mapping.
    pub fn set_ssrc(&mut self, ssrc: u32) {
        if self.ssrc != Some(ssrc) {
            self.ssrc = Some(ssrc);
            self.unwrapper.reset();
            self.anchor = None;
        }
    }

    pub fn ssrc(&self) -> Option<u32> {
        self.ssrc
    }

    /// Records an RTCP sender report.
    pub fn sender_report(&mut self, ssrc: u32, ntp: u64, rtp: u32) {
        let Some(wall) = ntp_to_unix_us(ntp) else {
            return;
        };
        if self.reports.len() >= 8 && !self.reports.contains_key(&ssrc) {
            self.reports.clear();
        }
        self.reports.insert(ssrc, (wall, rtp));
        if self.ssrc == Some(ssrc) && self.anchor.is_some() {
            let rtp = self.unwrapper.peek(rtp);
            self.anchor = Some(Anchor {
                rtp,
                wall,
                from_sr: true,
            });
        }
    }

    /// Extends a media packet's timestamp, anchoring on first use.
    pub fn on_packet(&mut self, ts: u32, arrival: SystemTime) -> i64 {
        let ext = self.unwrapper.unwrap(ts);
        if self.anchor.is_none() {
            let sr = self.ssrc.and_then(|s| self.reports.get(&s).copied());
            self.anchor = Some(match sr {
                Some((wall, rtp)) => Anchor {
                    rtp: self.unwrapper.peek(rtp),
                    wall,
                    from_sr: true,
                },
                None => Anchor {
                    rtp: ext,
                    wall: system_time_us(arrival),
                    from_sr: false,
                },
            });
        }
        ext
    }

    /// Extended timestamp of `ts` without updating state.
    pub fn extend(&self, ts: u32) -> i64 {
        self.unwrapper.peek(ts)
    }

    /// Wall time of an extended RTP timestamp.
    pub fn wall(&self, ext: i64) -> Option<WallUs> {
        let a = self.anchor?;
        Some(a.wall + (ext - a.rtp) * 1_000_000 / self.rate)
    }

    /// Whether the mapping comes from a sender report.
    pub fn synced(&self) -> bool {
        self.anchor.is_some_and(|a| a.from_sr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn ntp_round_trip() {
        let us = 1_790_000_000_123_456;
        let back = ntp_to_unix_us(unix_us_to_ntp(us)).expect("ntp");
        assert!((back - us).abs() <= 1);
    }

    #[test]
    fn unwrap_across_wrap() {
        let mut u = TsUnwrapper::default();
        assert_eq!(u.unwrap(u32::MAX - 10), i64::from(u32::MAX - 10));
        assert_eq!(u.unwrap(5), i64::from(u32::MAX) + 6);
        assert_eq!(u.unwrap(u32::MAX - 20), i64::from(u32::MAX) - 20);
    }

    #[test]
    fn sender_report_overrides_arrival_anchor() {
        let mut c = TrackClock::new(90_000);
        c.set_ssrc(7);
        let arrival = UNIX_EPOCH + Duration::from_secs(1000);
        let e = c.on_packet(90_000, arrival);
        assert_eq!(c.wall(e), Some(1_000_000_000));
        assert!(!c.synced());
        // SR says rtp 0 was at t = 2000 s, so rtp 90000 is 2001 s.
        c.sender_report(7, unix_us_to_ntp(2_000_000_000), 0);
        assert!(c.synced());
        let w = c.wall(e).expect("wall");
        assert!((w - 2_001_000_000).abs() <= 1, "{w}");
    }
}
