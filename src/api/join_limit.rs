//! Token buckets for the signaling endpoint: one per connection for its messages,
//! and the [`JoinLimiter`] shared by all connections for joins per source address
//! and per participant.
//!
//! Joins are limited because each one costs a PeerConnection, a media port, an
//! audit row and notices to everyone in the hearing: one link rejoining in a loop
//! (or one address trying many links) must run out of tokens long before it runs
//! the server out of ports or the judge out of patience. The limiter is charged
//! before any of that is spent, so a refused join costs a map lookup. A bucket
//! refills continuously; a full bucket is the same as no bucket, so the maps forget
//! full ones and cannot grow beyond the keys active within one refill time (they
//! are also capped: a flood of fresh keys evicts full and then the oldest buckets).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use uuid::Uuid;

/// A token bucket: `rate` tokens per second on average, bursts up to `burst`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket refilling `rate` tokens per second, holding at most `burst`.
    pub fn new(rate: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            rate: if rate > 0.0 { rate } else { f64::MIN_POSITIVE },
            burst,
            tokens: burst,
            last: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
    }

    /// Takes a token; `Err(wait)` with the time until one is available.
    pub fn take_at(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        let missing = 1.0 - self.tokens;
        Err(Duration::from_secs_f64((missing / self.rate).min(86_400.0)))
    }

    /// Takes a token now; false when none is left.
    pub fn take(&mut self) -> bool {
        self.take_at(Instant::now()).is_ok()
    }

    fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.burst
    }
}

/// Limits of one kind of join key: a burst, then one join per `every`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinRate {
    pub burst: u32,
    pub per_minute: u32,
}

impl JoinRate {
    fn bucket(self) -> TokenBucket {
        TokenBucket::new(f64::from(self.per_minute) / 60.0, self.burst)
    }
}

/// Most keys one map keeps; beyond, full buckets and then the stalest go first.
const MAX_KEYS: usize = 65_536;

/// Buckets per key.
#[derive(Debug)]
struct Buckets<K> {
    rate: JoinRate,
    map: HashMap<K, TokenBucket>,
}

impl<K: Hash + Eq + Copy> Buckets<K> {
    fn take(&mut self, key: K, now: Instant) -> Result<(), Duration> {
        if self.map.len() >= MAX_KEYS && !self.map.contains_key(&key) {
            self.map.retain(|_, b| !b.is_full(now));
            if self.map.len() >= MAX_KEYS {
                if let Some(oldest) = self.map.iter().min_by_key(|(_, b)| b.last).map(|(k, _)| *k) {
                    self.map.remove(&oldest);
                }
            }
        }
        let rate = self.rate;
        self.map
            .entry(key)
            .or_insert_with(|| rate.bucket())
            .take_at(now)
    }
}

/// Which limit refused a join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    Source,
    Participant,
}

/// Join rate limits shared by every signaling connection.
#[derive(Debug)]
pub struct JoinLimiter {
    sources: Mutex<Buckets<IpAddr>>,
    participants: Mutex<Buckets<Uuid>>,
}

impl JoinLimiter {
    pub fn new(per_source: JoinRate, per_participant: JoinRate) -> JoinLimiter {
        JoinLimiter {
            sources: Mutex::new(Buckets {
                rate: per_source,
                map: HashMap::new(),
            }),
            participants: Mutex::new(Buckets {
                rate: per_participant,
                map: HashMap::new(),
            }),
        }
    }

    /// The limits `[signaling]` configures.
    pub fn from_config(s: &crate::config::SignalingConfig) -> JoinLimiter {
        JoinLimiter::new(
            JoinRate {
                burst: s.join_burst_per_source,
                per_minute: s.joins_per_minute_per_source,
            },
            JoinRate {
                burst: s.join_burst_per_participant,
                per_minute: s.joins_per_minute_per_participant,
            },
        )
    }

    /// Charges a join attempt from `source` (every attempt, valid token or not).
    pub fn source(&self, source: IpAddr) -> Result<(), Duration> {
        let mut b = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        b.take(source, Instant::now())
    }

    /// Charges a join of `participant` (after their token verified).
    pub fn participant(&self, participant: Uuid) -> Result<(), Duration> {
        let mut b = self.participants.lock().unwrap_or_else(|p| p.into_inner());
        b.take(participant, Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_limits() {
        let mut b = TokenBucket::new(1.0, 5);
        for _ in 0..5 {
            assert!(b.take());
        }
        assert!(!b.take());
    }

    #[test]
    fn a_refused_join_says_when_to_retry_and_the_bucket_refills() {
        let mut b = JoinRate {
            burst: 2,
            per_minute: 6,
        }
        .bucket();
        let t = Instant::now();
        assert!(b.take_at(t).is_ok());
        assert!(b.take_at(t).is_ok());
        let wait = b.take_at(t).unwrap_err();
        assert!(
            wait > Duration::from_secs(9) && wait <= Duration::from_secs(10),
            "{wait:?}"
        );
        assert!(b.take_at(t + Duration::from_secs(5)).is_err());
        assert!(b.take_at(t + Duration::from_secs(11)).is_ok());
    }

    #[test]
    fn keys_are_limited_apart_and_the_map_stays_bounded() {
        let rate = JoinRate {
            burst: 1,
            per_minute: 1,
        };
        let l = JoinLimiter::new(rate, rate);
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        assert!(l.participant(a).is_ok());
        assert!(l.participant(a).is_err());
        assert!(l.participant(b).is_ok(), "another participant has its own");
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(l.source(ip).is_ok());
        assert!(l.source(ip).is_err());

        let mut buckets = Buckets {
            rate,
            map: HashMap::new(),
        };
        let now = Instant::now();
        for i in 0..(MAX_KEYS as u32 + 10) {
            let _ = buckets.take(i, now);
        }
        assert!(buckets.map.len() <= MAX_KEYS);
    }
}
