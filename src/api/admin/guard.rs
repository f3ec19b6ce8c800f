//! Throttling admin-key guessing: each source address may present a few wrong keys,
//! then it waits.
//!
//! An admin key is 52 random characters, so guessing it is hopeless — but a guesser
//! costs a database lookup per try and fills nothing but the log, and an operator
//! should learn that someone is trying. So every source address has a bucket of
//! [`BURST`] wrong keys that refills at one per [`REFILL`]; a wrong key takes one
//! out. With the bucket empty, every request from that address — even one with the
//! right key, which would otherwise tell the guesser it has won — is answered
//! `429 too_many_attempts` with `Retry-After` until a wrong key's worth has
//! refilled. A right key costs nothing, so an operator with a working script never
//! notices.
//!
//! Each address's first wrong key, and the moment it is throttled, are logged as
//! warnings with the address (never the key presented): two lines per guesser, not
//! one per guess. Failed keys concern no hearing, so they are not in a hearing's
//! audit trail; the log is where an operator sees them.
//!
//! Behind a reverse proxy every request comes from the proxy's address: one
//! guesser then throttles everyone for a while, which errs on the safe side.
//! The table is bounded ([`MAX_ADDRESSES`]): addresses whose bucket is full again
//! are forgotten first, and a table full of throttled addresses throttles newcomers
//! too rather than growing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Wrong keys an address may present before it has to wait.
pub const BURST: f64 = 10.0;

/// How long one wrong key takes to be forgiven.
pub const REFILL: Duration = Duration::from_secs(6);

/// Most addresses remembered at once.
pub const MAX_ADDRESSES: usize = 10_000;

/// The source of a request whose address is unknown (no connection info: e.g. a
/// router driven directly in tests). Such requests share one bucket.
const UNKNOWN: IpAddr = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);

/// Wrong keys presented, per source address (see the module docs).
#[derive(Debug, Default)]
pub struct KeyGuard {
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Wrong keys still allowed (refilled lazily on each look).
    tokens: f64,
    at: Instant,
    /// Whether the throttling of this address was logged already.
    warned: bool,
}

impl Bucket {
    fn refill(&mut self, now: Instant) {
        let earned = now.saturating_duration_since(self.at).as_secs_f64() / REFILL.as_secs_f64();
        self.tokens = (self.tokens + earned).min(BURST);
        self.at = now;
        if self.tokens >= 1.0 {
            self.warned = false;
        }
    }

    /// How long until one more wrong key is allowed.
    fn wait(&self) -> Duration {
        REFILL.mul_f64((1.0 - self.tokens).max(0.0))
    }
}

impl KeyGuard {
    /// Before checking a key from `source`: `Err(wait)` while the address is
    /// throttled.
    pub fn check(&self, source: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        let source = source.unwrap_or(UNKNOWN);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = buckets.get_mut(&source) {
            b.refill(now);
            if b.tokens < 1.0 {
                return Err(b.wait());
            }
        } else if buckets.len() >= MAX_ADDRESSES && !make_room(&mut buckets, now) {
            return Err(REFILL);
        }
        Ok(())
    }

    /// A wrong key came from `source`.
    pub fn failed(&self, source: Option<IpAddr>, now: Instant) {
        metrics::counter!(crate::metrics::ADMIN_KEY_FAILURES).increment(1);
        let address = source.unwrap_or(UNKNOWN);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let b = buckets.entry(address).or_insert(Bucket {
            tokens: BURST,
            at: now,
            warned: false,
        });
        b.refill(now);
        if b.tokens >= BURST {
            tracing::warn!(source = %address, "wrong admin API key");
        }
        b.tokens = (b.tokens - 1.0).max(0.0);
        if b.tokens < 1.0 && !b.warned {
            b.warned = true;
            tracing::warn!(
                source = %address,
                wrong_keys = BURST as u32,
                retry_after_seconds = b.wait().as_secs_f64().ceil() as u64,
                "throttling the admin API for this address: too many wrong keys"
            );
        }
    }
}

#[cfg(test)]
impl KeyGuard {
    /// Forgets every address (for tests that make many wrong tries on purpose).
    pub(crate) fn forget_all(&self) {
        self.buckets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

/// Forgets the addresses that have been forgiven entirely; whether that freed room.
fn make_room(buckets: &mut HashMap<IpAddr, Bucket>, now: Instant) -> bool {
    buckets.retain(|_, b| {
        b.refill(now);
        b.tokens < BURST
    });
    buckets.len() < MAX_ADDRESSES
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([127, 0, 0, last]))
    }

    #[test]
    fn a_guesser_waits_after_the_burst_and_is_forgiven_over_time() {
        let guard = KeyGuard::default();
        let t0 = Instant::now();
        for _ in 0..BURST as u32 {
            assert!(guard.check(ip(1), t0).is_ok());
            guard.failed(ip(1), t0);
        }
        let wait = guard
            .check(ip(1), t0)
            .expect_err("throttled after the burst");
        assert_eq!(wait, REFILL);
        assert!(guard.check(ip(2), t0).is_ok(), "another address is not");
        // One refill period later, exactly one more guess.
        let t1 = t0 + REFILL;
        assert!(guard.check(ip(1), t1).is_ok());
        guard.failed(ip(1), t1);
        assert!(guard.check(ip(1), t1).is_err());
        // After BURST periods, fully forgiven.
        let t2 = t1 + REFILL * BURST as u32;
        for _ in 0..BURST as u32 {
            assert!(guard.check(ip(1), t2).is_ok());
            guard.failed(ip(1), t2);
        }
        assert!(guard.check(ip(1), t2).is_err());
    }

    #[test]
    fn the_table_stays_bounded() {
        let guard = KeyGuard::default();
        let t0 = Instant::now();
        for i in 0..MAX_ADDRESSES as u32 {
            let source = Some(IpAddr::from(i.to_be_bytes()));
            assert!(guard.check(source, t0).is_ok());
            for _ in 0..BURST as u32 {
                guard.failed(source, t0);
            }
        }
        let newcomer = Some(IpAddr::from([10, 255, 255, 255]));
        assert!(
            guard.check(newcomer, t0).is_err(),
            "a table full of throttled addresses does not grow"
        );
        let later = t0 + REFILL * (BURST as u32 + 1);
        assert!(
            guard.check(newcomer, later).is_ok(),
            "forgiven ones make room"
        );
        assert!(guard.buckets.lock().unwrap().len() < MAX_ADDRESSES);
    }
}
