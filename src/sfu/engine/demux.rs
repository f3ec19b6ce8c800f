//! Routing one socket's datagrams to connections: classification (RFC 7983), the
//! USERNAME of a STUN binding request (read without trusting it), the ufrag and
//! 4-tuple tables with expiry, per-source rate limiting with drop counters, and a
//! log gate. Pure: no socket, no clock (every `now` is an argument), no panics on
//! input.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::crypto::{HmacAlgorithm, RTCCryptoProvider};

/// What a datagram is, by its first byte (RFC 7983 §7, as updated by RFC 9443).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// 0..=3, at least a STUN header long.
    Stun,
    /// 20..=63, at least a DTLS record header long.
    Dtls,
    /// 128..=191 (RTP version 2) with a payload type outside 64..=95.
    Rtp,
    /// 128..=191 with the second byte in 192..=223 (RFC 5761: SR, RR, SDES, BYE, APP,
    /// RTPFB, PSFB, XR ...).
    Rtcp,
    /// Anything else: ZRTP, TURN channel data, QUIC, junk, or too short for its kind.
    Other,
}

/// STUN header length.
pub const STUN_HEADER: usize = 20;
const STUN_MAGIC: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const STUN_BINDING_REQUEST: u16 = 0x0001;
const ATTR_USERNAME: u16 = 0x0006;
const ATTR_MESSAGE_INTEGRITY: u16 = 0x0008;
const MESSAGE_INTEGRITY_LEN: usize = 20;
/// RFC 8489 §14.3: USERNAME is less than 513 bytes.
const MAX_USERNAME: usize = 512;

/// Classifies a datagram (RFC 7983). Lengths are checked so a class means "long
/// enough to be parsed as one".
pub fn classify(data: &[u8]) -> Class {
    let Some(&first) = data.first() else {
        return Class::Other;
    };
    match first {
        0..=3 if data.len() >= STUN_HEADER => Class::Stun,
        // DTLS record header: type, version (2), epoch (2), sequence (6), length (2).
        20..=63 if data.len() >= 13 => Class::Dtls,
        128..=191 => match data.get(1) {
            Some(192..=223) if data.len() >= 8 => Class::Rtcp,
            Some(_) if data.len() >= 12 => Class::Rtp,
            _ => Class::Other,
        },
        _ => Class::Other,
    }
}

/// Why a STUN message was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StunError {
    #[error("shorter than a STUN header")]
    Short,
    #[error("not a STUN header (top bits or magic cookie)")]
    NotStun,
    #[error("STUN length {declared} does not fit the {available} bytes after the header")]
    Length { declared: usize, available: usize },
    #[error("STUN attribute {attr:#06x} runs past the message")]
    Attribute { attr: u16 },
    #[error("USERNAME of {0} bytes (at most 512)")]
    UsernameTooLong(usize),
    #[error("USERNAME is not UTF-8")]
    UsernameNotUtf8,
}

/// The USERNAME of a STUN binding request, `Ok(None)` for another STUN message or a
/// request without one. Every length is checked against the buffer; the message
/// must fill `data` exactly (one datagram, or one RFC 4571 frame). Nothing is
/// verified: the caller treats the result as a claim to look up, never as an identity.
pub fn binding_username(data: &[u8]) -> Result<Option<&str>, StunError> {
    let header = stun_header(data)?;
    if u16::from_be_bytes([header[0], header[1]]) != STUN_BINDING_REQUEST {
        return Ok(None);
    }
    for attribute in attributes(data) {
        let (_, attr, value) = attribute?;
        if attr == ATTR_USERNAME {
            if value.len() > MAX_USERNAME {
                return Err(StunError::UsernameTooLong(value.len()));
            }
            return std::str::from_utf8(value)
                .map(Some)
                .map_err(|_| StunError::UsernameNotUtf8);
        }
    }
    Ok(None)
}

/// The 20-byte header of a STUN message that fills `data` exactly: first two bits
/// zero, the magic cookie, and a declared length (a multiple of 4) equal to what
/// follows.
fn stun_header(data: &[u8]) -> Result<&[u8], StunError> {
    let header = data.get(..STUN_HEADER).ok_or(StunError::Short)?;
    if header[0] & 0xC0 != 0 || header[4..8] != STUN_MAGIC {
        return Err(StunError::NotStun);
    }
    let declared = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let available = data.len() - STUN_HEADER;
    if declared != available || declared % 4 != 0 {
        return Err(StunError::Length {
            declared,
            available,
        });
    }
    Ok(header)
}

/// The attributes of a STUN message whose header [`stun_header`] accepted: (offset,
/// type, value) each, its value and padding inside `data`; the first malformed one
/// ends the walk with its error.
fn attributes(data: &[u8]) -> impl Iterator<Item = Result<(usize, u16, &[u8]), StunError>> {
    let mut at = STUN_HEADER;
    std::iter::from_fn(move || {
        if at >= data.len() {
            return None;
        }
        let start = at;
        // Whatever happens, this attribute is the last one looked at if it is bad.
        at = data.len();
        let (Some(t), Some(l)) = (data.get(start..start + 2), data.get(start + 2..start + 4))
        else {
            return Some(Err(StunError::Attribute { attr: 0 }));
        };
        let attr = u16::from_be_bytes([t[0], t[1]]);
        let len = usize::from(u16::from_be_bytes([l[0], l[1]]));
        let next = start + 4 + len.div_ceil(4) * 4;
        let Some(value) = data
            .get(start + 4..start + 4 + len)
            .filter(|_| next <= data.len())
        else {
            return Some(Err(StunError::Attribute { attr }));
        };
        at = next;
        Some(Ok((start, attr, value)))
    })
}

/// What MESSAGE-INTEGRITY covers (RFC 8489 §14.5): the header with its length field
/// as if MESSAGE-INTEGRITY were the last attribute, the attributes before it, and the
/// 20-byte HMAC-SHA1 tag itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegrityParts<'a> {
    pub header: [u8; STUN_HEADER],
    pub body: &'a [u8],
    pub tag: &'a [u8],
}

/// Finds MESSAGE-INTEGRITY in a STUN message (`Ok(None)` if it has none), bounds
/// checked like [`binding_username`].
pub fn integrity_parts(data: &[u8]) -> Result<Option<IntegrityParts<'_>>, StunError> {
    let header = stun_header(data)?;
    for attribute in attributes(data) {
        let (at, attr, tag) = attribute?;
        if attr == ATTR_MESSAGE_INTEGRITY {
            if tag.len() != MESSAGE_INTEGRITY_LEN {
                return Err(StunError::Attribute { attr });
            }
            let mut h = [0u8; STUN_HEADER];
            h.copy_from_slice(header);
            // The length counts everything up to and including this attribute.
            let covered = u16::try_from(at + 4 + MESSAGE_INTEGRITY_LEN - STUN_HEADER)
                .map_err(|_| StunError::Attribute { attr })?;
            h[2..4].copy_from_slice(&covered.to_be_bytes());
            return Ok(Some(IntegrityParts {
                header: h,
                body: &data[STUN_HEADER..at],
                tag,
            }));
        }
    }
    Ok(None)
}

/// Whether `data` carries a MESSAGE-INTEGRITY made with `key` (ICE short-term
/// credentials: the key is the receiver's password). Constant-time comparison; false
/// for a message without one, a malformed one, or a crypto error.
pub fn has_valid_integrity(data: &[u8], key: &[u8], crypto: &dyn RTCCryptoProvider) -> bool {
    let Ok(Some(parts)) = integrity_parts(data) else {
        return false;
    };
    let Ok(mut mac) = crypto.crypto().new_hmac(HmacAlgorithm::Sha1, key) else {
        return false;
    };
    mac.verify(&[&parts.header, parts.body], parts.tag).is_ok()
}

/// The receiver's part of an ICE USERNAME (`receiver:sender`, RFC 8445 §7.2.2): the
/// ufrag *we* chose, when the request is addressed to us. `None` if malformed.
pub fn local_ufrag(username: &str) -> Option<&str> {
    let (ours, theirs) = username.split_once(':')?;
    let ice_char = |c: char| c.is_ascii_alphanumeric() || c == '+' || c == '/';
    (!ours.is_empty() && !theirs.is_empty() && ours.len() <= 256 && ours.chars().all(ice_char))
        .then_some(ours)
}

/// A connection on one worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u32);

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "c{:08x}", self.0)
    }
}

/// A server-chosen ICE ufrag naming the worker and the connection:
/// `w<worker, 2 hex>c<conn, 8 hex><nonce>`, all ICE characters. The nonce keeps a
/// reused connection number from being guessable and from matching an old session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ufrag {
    pub worker: u8,
    pub conn: ConnId,
    text: String,
}

impl Ufrag {
    /// Length of the nonce (ICE characters).
    pub const NONCE_LEN: usize = 8;

    /// Builds a ufrag from a nonce of [`Self::NONCE_LEN`] alphanumeric characters
    /// (anything else in it is replaced by `0`, so the result is always valid).
    pub fn new(worker: u8, conn: ConnId, nonce: &str) -> Ufrag {
        let mut n: String = nonce
            .chars()
            .take(Self::NONCE_LEN)
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '0' })
            .collect();
        while n.len() < Self::NONCE_LEN {
            n.push('0');
        }
        Ufrag {
            worker,
            conn,
            text: format!("w{worker:02x}c{:08x}{n}", conn.0),
        }
    }

    /// Reads the worker and connection a ufrag claims. Only a hint (which worker to
    /// hand a TCP stream to, or a "wrong worker" count): the routing table decides.
    pub fn parse(s: &str) -> Option<Ufrag> {
        let b = s.as_bytes();
        if b.len() != 12 + Self::NONCE_LEN || b[0] != b'w' || b[3] != b'c' {
            return None;
        }
        let worker = u8::from_str_radix(s.get(1..3)?, 16).ok()?;
        let conn = u32::from_str_radix(s.get(4..12)?, 16).ok()?;
        s.get(12..)?
            .bytes()
            .all(|c| c.is_ascii_alphanumeric())
            .then(|| Ufrag {
                worker,
                conn: ConnId(conn),
                text: s.to_owned(),
            })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Why a datagram was not handed to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The source sent more than its rate allows.
    RateLimited,
    /// STUN that could not be read (bad header, length, attribute).
    MalformedStun,
    /// A binding request without a USERNAME for us, or STUN other than a binding
    /// request, from an unknown flow.
    StunNoUsername,
    /// A binding request whose ufrag is not one of this worker's connections.
    UnknownUfrag,
    /// A binding request for one of our ufrags without a MESSAGE-INTEGRITY made
    /// with that connection's password (forged, or a stale session's).
    BadIntegrity,
    /// DTLS or RTP/RTCP from a 4-tuple no binding request has opened.
    UnknownFlow,
    /// The connection already holds its maximum number of flows.
    FlowLimit,
    /// Source port 5353: rtc's ICE agent takes it for mDNS, never for a connection.
    MdnsPort,
    /// Not STUN, DTLS, RTP or RTCP (RFC 7983), or too short for its kind.
    Unclassified,
}

impl DropReason {
    pub const ALL: [DropReason; 9] = [
        DropReason::RateLimited,
        DropReason::MalformedStun,
        DropReason::StunNoUsername,
        DropReason::UnknownUfrag,
        DropReason::BadIntegrity,
        DropReason::UnknownFlow,
        DropReason::FlowLimit,
        DropReason::MdnsPort,
        DropReason::Unclassified,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::RateLimited => "rate_limited",
            DropReason::MalformedStun => "malformed_stun",
            DropReason::StunNoUsername => "stun_no_username",
            DropReason::UnknownUfrag => "unknown_ufrag",
            DropReason::BadIntegrity => "bad_integrity",
            DropReason::UnknownFlow => "unknown_flow",
            DropReason::FlowLimit => "flow_limit",
            DropReason::MdnsPort => "mdns_port",
            DropReason::Unclassified => "unclassified",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Datagrams dropped, by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DropCounters {
    counts: [u64; 9],
}

impl DropCounters {
    pub fn add(&mut self, reason: DropReason) {
        self.counts[reason.index()] += 1;
    }

    pub fn get(&self, reason: DropReason) -> u64 {
        self.counts[reason.index()]
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// A token bucket: `rate` tokens a second, at most `burst`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Token buckets per key (a source IP, a 4-tuple), at most `max_keys` of them: when
/// full, buckets idle long enough to have refilled are forgotten (they would allow a
/// burst anyway); if none is, a new key is refused — under a flood of spoofed sources
/// memory stays bounded and the flood, not the known sources, pays.
#[derive(Debug)]
pub struct RateLimiter<K> {
    rate: Rate,
    max_keys: usize,
    buckets: HashMap<K, Bucket>,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    pub fn new(rate: Rate, max_keys: usize) -> Self {
        RateLimiter {
            rate,
            max_keys: max_keys.max(1),
            buckets: HashMap::new(),
        }
    }

    /// Takes one token for `key`; false if it has none left (or cannot be tracked).
    pub fn allow(&mut self, key: &K, now: Instant) -> bool {
        if !self.buckets.contains_key(key) && self.buckets.len() >= self.max_keys {
            self.forget_refilled(now);
            if self.buckets.len() >= self.max_keys {
                return false;
            }
        }
        let rate = self.rate;
        let b = self.buckets.entry(key.clone()).or_insert(Bucket {
            tokens: rate.burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate.per_second).min(rate.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether `key` has a token left at `now`, taking none (an untracked key has a
    /// full bucket).
    pub fn has_tokens(&self, key: &K, now: Instant) -> bool {
        self.buckets.get(key).is_none_or(|b| {
            let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
            b.tokens + elapsed * self.rate.per_second >= 1.0
        })
    }

    /// Forgets buckets that would be full again by `now`.
    pub fn forget_refilled(&mut self, now: Instant) {
        let rate = self.rate;
        self.buckets.retain(|_, b| {
            let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
            b.tokens + elapsed * rate.per_second < rate.burst
        });
    }

    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

/// One log line per key per interval: [`LogGate::check`] says whether to log now and
/// how many lines were suppressed since the last one; [`LogGate::flush`] reports the
/// keys whose interval ended with suppressed lines (so a short burst is still
/// reported once). At most `max_keys` keys; beyond that everything is counted under
/// one overflow figure.
#[derive(Debug)]
pub struct LogGate<K> {
    interval: Duration,
    max_keys: usize,
    entries: HashMap<K, (Instant, u64)>,
    overflow: u64,
}

impl<K: Hash + Eq + Clone> LogGate<K> {
    pub fn new(interval: Duration, max_keys: usize) -> Self {
        LogGate {
            interval,
            max_keys: max_keys.max(1),
            entries: HashMap::new(),
            overflow: 0,
        }
    }

    /// `Some(suppressed)`: log a line now, mentioning the `suppressed` lines not
    /// logged since the previous one. `None`: counted, not logged.
    pub fn check(&mut self, key: &K, now: Instant) -> Option<u64> {
        if let Some((since, suppressed)) = self.entries.get_mut(key) {
            if now.saturating_duration_since(*since) >= self.interval {
                let n = *suppressed;
                *since = now;
                *suppressed = 0;
                Some(n)
            } else {
                *suppressed += 1;
                None
            }
        } else if self.entries.len() >= self.max_keys {
            self.overflow += 1;
            None
        } else {
            self.entries.insert(key.clone(), (now, 0));
            Some(0)
        }
    }

    /// Keys whose interval has ended: those with suppressed lines are returned with
    /// their count (log one summary line each); all are forgotten. The second value
    /// is the overflow count (lines of keys beyond `max_keys`), reset.
    pub fn flush(&mut self, now: Instant) -> (Vec<(K, u64)>, u64) {
        let mut out = Vec::new();
        let interval = self.interval;
        self.entries.retain(|k, (since, suppressed)| {
            if now.saturating_duration_since(*since) < interval {
                return true;
            }
            if *suppressed > 0 {
                out.push((k.clone(), *suppressed));
            }
            false
        });
        (out, std::mem::take(&mut self.overflow))
    }
}

/// A flow as the socket sees it: who sent, to which of our addresses, over UDP or
/// over an ICE-TCP stream (a UDP and a TCP port may share a number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub tcp: bool,
}

#[derive(Debug, Clone, Copy)]
struct FlowEntry {
    conn: ConnId,
    last_seen: Instant,
}

#[derive(Debug, Clone)]
struct ConnEntry {
    ufrag: String,
    /// The ICE password binding requests must be signed with, if checked here.
    key: Option<Vec<u8>>,
    flows: usize,
    created: Instant,
}

/// The worker's routing table: ufrag → connection for new flows, 4-tuple →
/// connection for known ones.
#[derive(Debug)]
pub struct Router {
    ufrags: HashMap<String, ConnId>,
    conns: HashMap<ConnId, ConnEntry>,
    flows: HashMap<Flow, FlowEntry>,
    max_flows_per_conn: usize,
}

impl Router {
    pub fn new(max_flows_per_conn: usize) -> Router {
        Router {
            ufrags: HashMap::new(),
            conns: HashMap::new(),
            flows: HashMap::new(),
            max_flows_per_conn: max_flows_per_conn.max(1),
        }
    }

    /// Registers a connection under the ufrag it was given (replacing any previous
    /// registration of that connection).
    pub fn insert_conn(&mut self, ufrag: &str, conn: ConnId, now: Instant) {
        self.remove_conn(conn);
        self.ufrags.insert(ufrag.to_owned(), conn);
        self.conns.insert(
            conn,
            ConnEntry {
                ufrag: ufrag.to_owned(),
                key: None,
                flows: 0,
                created: now,
            },
        );
    }

    /// Sets the password a connection's binding requests are checked against before
    /// a new flow is bound to it (a [`Demux`] built with [`Demux::verifying`]).
    pub fn set_key(&mut self, conn: ConnId, key: &[u8]) {
        if let Some(e) = self.conns.get_mut(&conn) {
            e.key = Some(key.to_vec());
        }
    }

    fn key(&self, conn: ConnId) -> Option<&[u8]> {
        self.conns.get(&conn).and_then(|e| e.key.as_deref())
    }

    /// Forgets a connection, its ufrag and every flow bound to it.
    pub fn remove_conn(&mut self, conn: ConnId) {
        if let Some(e) = self.conns.remove(&conn) {
            self.ufrags.remove(&e.ufrag);
            self.flows.retain(|_, f| f.conn != conn);
        }
    }

    /// The connection a known flow is bound to (its last use refreshed).
    pub fn by_flow(&mut self, flow: &Flow, now: Instant) -> Option<ConnId> {
        let e = self.flows.get_mut(flow)?;
        e.last_seen = now;
        Some(e.conn)
    }

    pub fn by_ufrag(&self, ufrag: &str) -> Option<ConnId> {
        self.ufrags.get(ufrag).copied()
    }

    /// Binds a flow to a connection (a binding request for its ufrag came from it).
    pub fn bind(&mut self, flow: Flow, conn: ConnId, now: Instant) -> Result<(), DropReason> {
        if !self.conns.contains_key(&conn) {
            return Err(DropReason::UnknownUfrag);
        }
        if let Some(f) = self.flows.get_mut(&flow) {
            if f.conn == conn {
                f.last_seen = now;
                return Ok(());
            }
            // The 4-tuple moved to another connection (a client reusing its port for
            // a new session): the old binding goes.
            let old = f.conn;
            self.flows.remove(&flow);
            if let Some(o) = self.conns.get_mut(&old) {
                o.flows = o.flows.saturating_sub(1);
            }
        }
        let max = self.max_flows_per_conn;
        let entry = self.conns.get_mut(&conn).ok_or(DropReason::UnknownUfrag)?;
        if entry.flows >= max {
            return Err(DropReason::FlowLimit);
        }
        entry.flows += 1;
        self.flows.insert(
            flow,
            FlowEntry {
                conn,
                last_seen: now,
            },
        );
        Ok(())
    }

    /// Forgets one flow (a TCP stream that closed).
    pub fn unbind(&mut self, flow: &Flow) {
        if let Some(f) = self.flows.remove(flow) {
            if let Some(c) = self.conns.get_mut(&f.conn) {
                c.flows = c.flows.saturating_sub(1);
            }
        }
    }

    /// Removes flows idle for `flow_idle` and connections that never got a flow within
    /// `ufrag_idle` of being registered; returns the connections removed.
    pub fn expire(
        &mut self,
        now: Instant,
        flow_idle: Duration,
        ufrag_idle: Duration,
    ) -> Vec<ConnId> {
        let conns = &mut self.conns;
        self.flows.retain(|_, f| {
            let keep = now.saturating_duration_since(f.last_seen) < flow_idle;
            if !keep {
                if let Some(c) = conns.get_mut(&f.conn) {
                    c.flows = c.flows.saturating_sub(1);
                }
            }
            keep
        });
        let stale: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.flows == 0 && now.saturating_duration_since(c.created) >= ufrag_idle)
            .map(|(id, _)| *id)
            .collect();
        for id in &stale {
            self.remove_conn(*id);
        }
        stale
    }

    pub fn flows(&self) -> usize {
        self.flows.len()
    }

    pub fn conns(&self) -> usize {
        self.conns.len()
    }

    /// Flows bound to `conn`.
    pub fn flows_of(&self, conn: ConnId) -> usize {
        self.conns.get(&conn).map_or(0, |c| c.flows)
    }
}

/// Limits of a [`Demux`].
#[derive(Debug, Clone, Copy)]
pub struct DemuxLimits {
    /// Datagrams per source IP that match no known flow (STUN probes, junk).
    pub unknown_per_ip: Rate,
    /// Datagrams per known flow (4-tuple).
    pub per_flow: Rate,
    /// Sources tracked by each limiter.
    pub max_sources: usize,
    /// Flows (candidate pairs) one connection may hold.
    pub max_flows_per_conn: usize,
}

impl Default for DemuxLimits {
    fn default() -> Self {
        DemuxLimits {
            // A browser's ICE checks: a few per candidate pair and second.
            unknown_per_ip: Rate {
                per_second: 50.0,
                burst: 100.0,
            },
            // ~20 Mbit/s of 1200-byte packets: above any publisher a court sees.
            per_flow: Rate {
                per_second: 2000.0,
                burst: 4000.0,
            },
            max_sources: 65_536,
            max_flows_per_conn: 8,
        }
    }
}

/// Where a datagram goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Hand it to this connection (`new_flow`: a binding request just bound it).
    Conn {
        conn: ConnId,
        new_flow: bool,
    },
    Drop(DropReason),
}

/// One socket's demultiplexer: rate limits, classification, the routing table, and
/// the counters of what it dropped.
pub struct Demux {
    pub router: Router,
    /// With it, a new flow is bound only by a binding request whose
    /// MESSAGE-INTEGRITY matches its connection's key (when one is set).
    crypto: Option<Arc<dyn RTCCryptoProvider>>,
    unknown: RateLimiter<IpAddr>,
    known: RateLimiter<Flow>,
    drops: DropCounters,
    routed: u64,
}

impl std::fmt::Debug for Demux {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Demux")
            .field("router", &self.router)
            .field("verifying", &self.crypto.is_some())
            .field("drops", &self.drops)
            .field("routed", &self.routed)
            .finish()
    }
}

impl Demux {
    pub fn new(limits: DemuxLimits) -> Demux {
        Demux {
            router: Router::new(limits.max_flows_per_conn),
            crypto: None,
            unknown: RateLimiter::new(limits.unknown_per_ip, limits.max_sources),
            known: RateLimiter::new(limits.per_flow, limits.max_sources),
            drops: DropCounters::default(),
            routed: 0,
        }
    }

    /// Like [`new`](Self::new), checking MESSAGE-INTEGRITY before binding a flow to a
    /// connection that has a key ([`Router::set_key`]), so a forged request carrying
    /// a sniffed ufrag never binds a flow or reaches the core.
    pub fn verifying(limits: DemuxLimits, crypto: Arc<dyn RTCCryptoProvider>) -> Demux {
        Demux {
            crypto: Some(crypto),
            ..Demux::new(limits)
        }
    }

    /// Decides where `data`, received on `flow` at `now`, goes (and counts drops).
    pub fn route(&mut self, flow: Flow, data: &[u8], now: Instant) -> Route {
        let route = self.decide(flow, data, now);
        match route {
            Route::Conn { .. } => self.routed += 1,
            Route::Drop(r) => self.drops.add(r),
        }
        route
    }

    fn decide(&mut self, flow: Flow, data: &[u8], now: Instant) -> Route {
        if flow.remote.port() == 5353 {
            return Route::Drop(DropReason::MdnsPort);
        }
        if let Some(conn) = self.router.by_flow(&flow, now) {
            if !self.known.allow(&flow, now) {
                return Route::Drop(DropReason::RateLimited);
            }
            return match classify(data) {
                Class::Other => Route::Drop(DropReason::Unclassified),
                _ => Route::Conn {
                    conn,
                    new_flow: false,
                },
            };
        }
        // An unknown flow. What fails to open a flow is charged to its source IP, and a
        // source out of budget is dropped before anything is parsed or verified; an
        // authentic binding request is not charged: a court's or a prison's sites
        // join from one NAT address, many at once, each repeating its checks until
        // one is answered (300 joining within 4 s overran a per-IP budget of all
        // datagrams). Once bound, the flow has its own budget (`per_flow`).
        let ip = flow.remote.ip();
        if !self.unknown.has_tokens(&ip, now) {
            return Route::Drop(DropReason::RateLimited);
        }
        match self.open_flow(flow, data, now) {
            Ok(conn) => Route::Conn {
                conn,
                new_flow: true,
            },
            Err(reason) => {
                self.unknown.allow(&ip, now);
                Route::Drop(reason)
            }
        }
    }

    /// A datagram of an unknown flow: a binding request naming one of our ufrags,
    /// signed with its connection's key, binds its flow; anything else says why not.
    fn open_flow(&mut self, flow: Flow, data: &[u8], now: Instant) -> Result<ConnId, DropReason> {
        match classify(data) {
            Class::Stun => {}
            Class::Dtls | Class::Rtp | Class::Rtcp => return Err(DropReason::UnknownFlow),
            Class::Other => return Err(DropReason::Unclassified),
        }
        let username = match binding_username(data) {
            Ok(Some(u)) => u,
            Ok(None) => return Err(DropReason::StunNoUsername),
            Err(_) => return Err(DropReason::MalformedStun),
        };
        let ours = local_ufrag(username).ok_or(DropReason::StunNoUsername)?;
        let conn = self.router.by_ufrag(ours).ok_or(DropReason::UnknownUfrag)?;
        if !self.authentic(conn, data) {
            return Err(DropReason::BadIntegrity);
        }
        self.router.bind(flow, conn, now)?;
        Ok(conn)
    }

    /// Whether a binding request may open a flow to `conn`: it carries a valid
    /// MESSAGE-INTEGRITY for the connection's key, or nothing is checked here (no
    /// crypto provider, or no key set). Also for ICE-TCP's first frame.
    pub fn authentic(&self, conn: ConnId, data: &[u8]) -> bool {
        match (&self.crypto, self.router.key(conn)) {
            (Some(crypto), Some(key)) => has_valid_integrity(data, key, crypto.as_ref()),
            _ => true,
        }
    }

    pub fn drops(&self) -> &DropCounters {
        &self.drops
    }

    /// Datagrams handed to a connection.
    pub fn routed(&self) -> u64 {
        self.routed
    }

    /// Forgets rate-limiter state that no longer limits anything (call now and then).
    pub fn tidy(&mut self, now: Instant) {
        self.unknown.forget_refilled(now);
        self.known.forget_refilled(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::stun::message::{Message, Setter, BINDING_REQUEST, BINDING_SUCCESS};
    use rtc::stun::textattrs::TextAttribute;

    fn stun(username: Option<&str>, typ: rtc::stun::message::MessageType) -> Vec<u8> {
        let mut m = Message::new();
        let mut setters: Vec<Box<dyn Setter>> = vec![Box::new(typ)];
        if let Some(u) = username {
            setters.push(Box::new(TextAttribute::new(
                rtc::stun::attributes::ATTR_USERNAME,
                u.to_owned(),
            )));
        }
        m.build(&setters).expect("builds");
        m.raw
    }

    fn flow(port: u16) -> Flow {
        Flow {
            local: "127.0.0.1:40000".parse().expect("addr"),
            remote: SocketAddr::from(([127, 0, 0, 2], port)),
            tcp: false,
        }
    }

    #[test]
    fn classifies_by_first_byte_and_length() {
        let s = stun(Some("a:b"), BINDING_REQUEST);
        assert_eq!(classify(&s), Class::Stun);
        assert_eq!(
            classify(&s[..19]),
            Class::Other,
            "shorter than a STUN header"
        );
        let mut dtls = vec![22u8, 0xfe, 0xfd];
        dtls.resize(13, 0);
        assert_eq!(classify(&dtls), Class::Dtls);
        assert_eq!(classify(&dtls[..12]), Class::Other);
        let mut rtp = vec![0x80u8, 96];
        rtp.resize(12, 0);
        assert_eq!(classify(&rtp), Class::Rtp);
        let mut marker = vec![0x80u8, 0x80 | 96];
        marker.resize(12, 0);
        assert_eq!(classify(&marker), Class::Rtp, "marker bit set, PT 96");
        let mut rr = vec![0x81u8, 201];
        rr.resize(8, 0);
        assert_eq!(classify(&rr), Class::Rtcp);
        assert_eq!(classify(&rr[..7]), Class::Other);
        assert_eq!(classify(&rtp[..11]), Class::Other);
        assert_eq!(classify(&[]), Class::Other);
        assert_eq!(classify(&[17u8; 40]), Class::Other, "ZRTP");
        assert_eq!(classify(&[64u8; 40]), Class::Other, "TURN channel");
        assert_eq!(classify(&[0xc0u8; 40]), Class::Other, "QUIC long header");
    }

    #[test]
    fn reads_the_username_rtc_wrote() {
        let s = stun(Some("w00c00000001abcdefgh:peer"), BINDING_REQUEST);
        assert_eq!(binding_username(&s), Ok(Some("w00c00000001abcdefgh:peer")));
        // Odd length: the value is padded on the wire.
        let s = stun(Some("abc:d"), BINDING_REQUEST);
        assert_eq!(binding_username(&s), Ok(Some("abc:d")));
        assert_eq!(binding_username(&stun(None, BINDING_REQUEST)), Ok(None));
        assert_eq!(
            binding_username(&stun(Some("x:y"), BINDING_SUCCESS)),
            Ok(None),
            "only requests are routed by USERNAME"
        );
    }

    #[test]
    fn a_username_after_other_attributes_is_found() {
        let mut m = Message::new();
        m.build(&[
            Box::new(BINDING_REQUEST) as Box<dyn Setter>,
            Box::new(TextAttribute::new(
                rtc::stun::attributes::ATTR_SOFTWARE,
                "x".to_owned(),
            )),
            Box::new(TextAttribute::new(
                rtc::stun::attributes::ATTR_USERNAME,
                "us:them".to_owned(),
            )),
        ])
        .expect("builds");
        assert_eq!(binding_username(&m.raw), Ok(Some("us:them")));
    }

    #[test]
    fn every_truncation_and_corruption_is_an_error_not_a_panic() {
        let s = stun(Some("w00c00000001abcdefgh:peer"), BINDING_REQUEST);
        for n in 0..s.len() {
            assert!(binding_username(&s[..n]).is_err(), "truncated to {n}");
        }
        // Declared length larger than the datagram.
        let mut long = s.clone();
        long[3] = long[3].wrapping_add(4);
        assert!(matches!(
            binding_username(&long),
            Err(StunError::Length { .. })
        ));
        // An attribute length running past the end (length field consistent).
        let mut bad = s.clone();
        bad[STUN_HEADER + 2] = 0xff;
        assert!(matches!(
            binding_username(&bad),
            Err(StunError::Attribute { .. })
        ));
        // Wrong magic cookie, top bits set.
        let mut magic = s.clone();
        magic[4] ^= 1;
        assert_eq!(binding_username(&magic), Err(StunError::NotStun));
        let mut top = s.clone();
        top[0] |= 0x80;
        assert_eq!(binding_username(&top), Err(StunError::NotStun));
        // Not UTF-8.
        let mut utf = s.clone();
        utf[STUN_HEADER + 4] = 0xff;
        assert_eq!(binding_username(&utf), Err(StunError::UsernameNotUtf8));
        // Every single-byte corruption and random junk: never a panic.
        for i in 0..s.len() {
            for v in [0u8, 0x7f, 0xff] {
                let mut c = s.clone();
                c[i] = v;
                let _ = binding_username(&c);
            }
        }
        let mut x: u32 = 1;
        for len in 0..300 {
            let junk: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let _ = binding_username(&junk);
            let _ = classify(&junk);
        }
    }

    #[test]
    fn an_oversize_username_is_refused() {
        // rtc refuses to build one: written by hand.
        let u = format!("{}:b", "a".repeat(601));
        let mut s = vec![0x00, 0x01, 0, 0, 0x21, 0x12, 0xA4, 0x42];
        s.extend_from_slice(&[7u8; 12]);
        s.extend_from_slice(&[0x00, 0x06]);
        s.extend_from_slice(&(u.len() as u16).to_be_bytes());
        s.extend_from_slice(u.as_bytes());
        s.push(0); // padding to 4
        let len = (s.len() - STUN_HEADER) as u16;
        s[2..4].copy_from_slice(&len.to_be_bytes());
        assert_eq!(binding_username(&s), Err(StunError::UsernameTooLong(603)));
    }

    fn signed(username: &str, password: &str) -> Vec<u8> {
        use rtc::stun::fingerprint::FINGERPRINT;
        use rtc::stun::integrity::MessageIntegrity;
        let provider = rtc::crypto::default_provider().expect("a crypto provider");
        let mut m = Message::new();
        m.build(&[
            Box::new(BINDING_REQUEST) as Box<dyn Setter>,
            Box::new(TextAttribute::new(
                rtc::stun::attributes::ATTR_USERNAME,
                username.to_owned(),
            )),
            Box::new(MessageIntegrity::new_short_term_integrity_with_provider(
                password.to_owned(),
                provider.crypto(),
            )),
            Box::new(FINGERPRINT),
        ])
        .expect("builds");
        m.raw
    }

    #[test]
    fn message_integrity_is_checked_with_the_connections_password() {
        let provider = rtc::crypto::default_provider().expect("a crypto provider");
        let p = provider.as_ref();
        let req = signed("w00c00000001aaaaaaaa:peer", "the-password-of-conn-1");
        assert!(has_valid_integrity(&req, b"the-password-of-conn-1", p));
        assert!(!has_valid_integrity(&req, b"another-password", p));
        // Any changed byte before the tag breaks it (the fingerprint after it does not count).
        let tag_at = integrity_parts(&req)
            .expect("ok")
            .expect("present")
            .body
            .len()
            + STUN_HEADER;
        for i in (0..tag_at + 24).filter(|i| !(2..4).contains(i)) {
            let mut c = req.clone();
            c[i] ^= 0x01;
            assert!(
                !has_valid_integrity(&c, b"the-password-of-conn-1", p),
                "byte {i}"
            );
        }
        // No MESSAGE-INTEGRITY at all; truncations.
        let plain = stun(Some("w00c00000001aaaaaaaa:peer"), BINDING_REQUEST);
        assert_eq!(integrity_parts(&plain), Ok(None));
        assert!(!has_valid_integrity(&plain, b"the-password-of-conn-1", p));
        for n in 0..req.len() {
            assert!(!has_valid_integrity(
                &req[..n],
                b"the-password-of-conn-1",
                p
            ));
        }
    }

    #[test]
    fn a_verifying_demux_binds_only_signed_requests() {
        let t0 = Instant::now();
        let provider = rtc::crypto::default_provider().expect("a crypto provider");
        let mut d = Demux::verifying(DemuxLimits::default(), provider);
        d.router.insert_conn("w00c00000001aaaaaaaa", ConnId(1), t0);
        d.router.set_key(ConnId(1), b"pwd-one-xxxxxxxxxxxxxxxx");
        let forged = signed("w00c00000001aaaaaaaa:peer", "guessed");
        assert_eq!(
            d.route(flow(1), &forged, t0),
            Route::Drop(DropReason::BadIntegrity)
        );
        let unsigned = stun(Some("w00c00000001aaaaaaaa:peer"), BINDING_REQUEST);
        assert_eq!(
            d.route(flow(1), &unsigned, t0),
            Route::Drop(DropReason::BadIntegrity)
        );
        assert_eq!(d.router.flows(), 0, "nothing bound");
        let good = signed("w00c00000001aaaaaaaa:peer", "pwd-one-xxxxxxxxxxxxxxxx");
        assert_eq!(
            d.route(flow(1), &good, t0),
            Route::Conn {
                conn: ConnId(1),
                new_flow: true
            }
        );
        assert_eq!(d.drops().get(DropReason::BadIntegrity), 2);
    }

    #[test]
    fn local_ufrag_is_the_receivers_part() {
        assert_eq!(local_ufrag("ours:theirs"), Some("ours"));
        assert_eq!(local_ufrag("ours"), None);
        assert_eq!(local_ufrag(":theirs"), None);
        assert_eq!(local_ufrag("ours:"), None);
        assert_eq!(local_ufrag("o u:t"), None, "not ICE characters");
        assert_eq!(local_ufrag("a+b/c:t"), Some("a+b/c"));
    }

    #[test]
    fn ufrags_round_trip_and_strangers_do_not_parse() {
        let u = Ufrag::new(3, ConnId(0x2a), "AbCd1234");
        assert_eq!(u.as_str(), "w03c0000002aAbCd1234");
        let p = Ufrag::parse(u.as_str()).expect("parses");
        assert_eq!((p.worker, p.conn), (3, ConnId(0x2a)));
        assert_eq!(
            Ufrag::new(0, ConnId(1), "x!").as_str(),
            "w00c00000001x0000000"
        );
        for bad in [
            "",
            "w03c0000002a",
            "w03c0000002aAbCd123",
            "x03c0000002aAbCd1234",
            "w0gc0000002aAbCd1234",
            "w03c0000002aAbCd12+4",
            "w03c0000002aAbCd1234extra",
        ] {
            assert!(Ufrag::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn new_flows_by_username_known_flows_by_four_tuple() {
        let t0 = Instant::now();
        let mut d = Demux::new(DemuxLimits::default());
        let u = Ufrag::new(0, ConnId(7), "nonce123");
        d.router.insert_conn(u.as_str(), ConnId(7), t0);
        let mut rtp = vec![0x80u8, 96];
        rtp.resize(100, 0);

        // Media before any binding request: unknown flow.
        assert_eq!(
            d.route(flow(5000), &rtp, t0),
            Route::Drop(DropReason::UnknownFlow)
        );
        // A binding request for someone else.
        let other = stun(Some("w00c00000008nonce123:p"), BINDING_REQUEST);
        assert_eq!(
            d.route(flow(5000), &other, t0),
            Route::Drop(DropReason::UnknownUfrag)
        );
        // Ours binds the flow.
        let ours = stun(Some(&format!("{}:peer", u.as_str())), BINDING_REQUEST);
        assert_eq!(
            d.route(flow(5000), &ours, t0),
            Route::Conn {
                conn: ConnId(7),
                new_flow: true
            }
        );
        // Now media from that 4-tuple goes to it, and only that 4-tuple.
        assert_eq!(
            d.route(flow(5000), &rtp, t0),
            Route::Conn {
                conn: ConnId(7),
                new_flow: false
            }
        );
        assert_eq!(
            d.route(flow(5001), &rtp, t0),
            Route::Drop(DropReason::UnknownFlow)
        );
        // Junk on a known flow is still junk.
        assert_eq!(
            d.route(flow(5000), &[0xffu8; 30], t0),
            Route::Drop(DropReason::Unclassified)
        );
        let c = d.drops();
        assert_eq!(c.get(DropReason::UnknownFlow), 2);
        assert_eq!(c.get(DropReason::UnknownUfrag), 1);
        assert_eq!(c.get(DropReason::Unclassified), 1);
        assert_eq!(c.total(), 4);
        assert_eq!(d.routed(), 2);

        // Closing the connection removes its ufrag and flows.
        d.router.remove_conn(ConnId(7));
        assert_eq!(d.router.flows(), 0);
        assert_eq!(
            d.route(flow(5000), &rtp, t0),
            Route::Drop(DropReason::UnknownFlow)
        );
        assert_eq!(
            d.route(flow(5000), &ours, t0),
            Route::Drop(DropReason::UnknownUfrag)
        );
    }

    #[test]
    fn stun_without_a_username_for_us_and_mdns_sources_are_dropped() {
        let t0 = Instant::now();
        let mut d = Demux::new(DemuxLimits::default());
        d.router.insert_conn("w00c00000001aaaaaaaa", ConnId(1), t0);
        let no_user = stun(None, BINDING_REQUEST);
        assert_eq!(
            d.route(flow(6000), &no_user, t0),
            Route::Drop(DropReason::StunNoUsername)
        );
        let one_part = stun(Some("w00c00000001aaaaaaaa"), BINDING_REQUEST);
        assert_eq!(
            d.route(flow(6000), &one_part, t0),
            Route::Drop(DropReason::StunNoUsername)
        );
        let ok = stun(Some("w00c00000001aaaaaaaa:x"), BINDING_REQUEST);
        assert_eq!(
            d.route(flow(5353), &ok, t0),
            Route::Drop(DropReason::MdnsPort)
        );
        let mut truncated = ok.clone();
        truncated.truncate(ok.len() - 4);
        assert_eq!(
            d.route(flow(6000), &truncated, t0),
            Route::Drop(DropReason::MalformedStun)
        );
    }

    #[test]
    fn a_connection_holds_a_bounded_number_of_flows() {
        let t0 = Instant::now();
        let mut d = Demux::new(DemuxLimits {
            max_flows_per_conn: 3,
            ..DemuxLimits::default()
        });
        d.router.insert_conn("w00c00000001aaaaaaaa", ConnId(1), t0);
        let req = stun(Some("w00c00000001aaaaaaaa:x"), BINDING_REQUEST);
        for p in 0..3 {
            assert!(matches!(
                d.route(flow(7000 + p), &req, t0),
                Route::Conn { .. }
            ));
        }
        assert_eq!(
            d.route(flow(7100), &req, t0),
            Route::Drop(DropReason::FlowLimit)
        );
        // The same flow again is not a new one.
        assert_eq!(
            d.route(flow(7000), &req, t0),
            Route::Conn {
                conn: ConnId(1),
                new_flow: false
            }
        );
        assert_eq!(d.router.flows_of(ConnId(1)), 3);
    }

    #[test]
    fn a_four_tuple_reused_for_another_connection_moves() {
        let t0 = Instant::now();
        let mut r = Router::new(4);
        r.insert_conn("a", ConnId(1), t0);
        r.insert_conn("b", ConnId(2), t0);
        r.bind(flow(1), ConnId(1), t0).expect("binds");
        r.bind(flow(1), ConnId(2), t0).expect("moves");
        assert_eq!(r.by_flow(&flow(1), t0), Some(ConnId(2)));
        assert_eq!((r.flows_of(ConnId(1)), r.flows_of(ConnId(2))), (0, 1));
        assert_eq!(
            r.bind(flow(2), ConnId(9), t0),
            Err(DropReason::UnknownUfrag)
        );
    }

    #[test]
    fn idle_flows_and_unused_ufrags_expire() {
        let t0 = Instant::now();
        let idle = Duration::from_secs(30);
        let mut r = Router::new(4);
        r.insert_conn("used", ConnId(1), t0);
        r.insert_conn("unused", ConnId(2), t0);
        r.bind(flow(1), ConnId(1), t0).expect("binds");
        r.bind(flow(2), ConnId(1), t0).expect("binds");
        // flow 2 keeps being used, flow 1 goes quiet.
        assert_eq!(
            r.by_flow(&flow(2), t0 + Duration::from_secs(20)),
            Some(ConnId(1))
        );
        let gone = r.expire(t0 + Duration::from_secs(10), idle, idle);
        assert!(gone.is_empty());
        assert_eq!(r.flows(), 2);
        let gone = r.expire(t0 + Duration::from_secs(31), idle, idle);
        assert_eq!(gone, vec![ConnId(2)], "the ufrag nobody used");
        assert_eq!(r.by_flow(&flow(1), t0 + Duration::from_secs(31)), None);
        assert_eq!(
            r.by_flow(&flow(2), t0 + Duration::from_secs(31)),
            Some(ConnId(1))
        );
        assert_eq!(r.by_ufrag("unused"), None);
        assert_eq!(r.by_ufrag("used"), Some(ConnId(1)));
        // When its last flow expires, the connection goes too.
        let gone = r.expire(t0 + Duration::from_secs(62), idle, idle);
        assert_eq!(gone, vec![ConnId(1)]);
        assert_eq!((r.conns(), r.flows()), (0, 0));
    }

    #[test]
    fn a_flood_from_one_source_is_limited_and_counted_others_pass() {
        let t0 = Instant::now();
        let mut d = Demux::new(DemuxLimits::default());
        d.router.insert_conn("w00c00000001aaaaaaaa", ConnId(1), t0);
        let junk = stun(Some("w00c000000ffzzzzzzzz:x"), BINDING_REQUEST);
        let mut limited = 0;
        for _ in 0..1000 {
            if d.route(flow(9000), &junk, t0) == Route::Drop(DropReason::RateLimited) {
                limited += 1;
            }
        }
        assert_eq!(
            limited, 900,
            "a burst of 100, then nothing within the same instant"
        );
        assert_eq!(d.drops().get(DropReason::UnknownUfrag), 100);
        // Another source is not affected.
        let req = stun(Some("w00c00000001aaaaaaaa:x"), BINDING_REQUEST);
        let other = Flow {
            local: flow(0).local,
            remote: "127.0.0.3:9000".parse().expect("addr"),
            tcp: false,
        };
        assert!(matches!(d.route(other, &req, t0), Route::Conn { .. }));
        // Half a second later the flooder has 25 more tokens.
        let t1 = t0 + Duration::from_millis(500);
        let passed = (0..100)
            .filter(|_| d.route(flow(9000), &junk, t1) != Route::Drop(DropReason::RateLimited))
            .count();
        assert_eq!(passed, 25);
    }

    #[test]
    fn many_joins_from_one_address_are_not_limited_but_its_junk_is() {
        let t0 = Instant::now();
        let mut d = Demux::new(DemuxLimits::default());
        // 300 participants behind one NAT address join within the same instant, each
        // repeating its first check 5 times: three times the junk budget's burst.
        for i in 0..300u32 {
            d.router
                .insert_conn(&format!("w00c{i:08x}aaaaaaaa"), ConnId(i + 1), t0);
        }
        let mut bound = 0;
        for i in 0..300u32 {
            let req = stun(Some(&format!("w00c{i:08x}aaaaaaaa:x")), BINDING_REQUEST);
            for _ in 0..5 {
                if matches!(
                    d.route(flow(10_000 + i as u16), &req, t0),
                    Route::Conn { .. }
                ) {
                    bound += 1;
                }
            }
        }
        assert_eq!(bound, 1500, "every check reached its connection");
        assert_eq!(d.drops().total(), 0);
        // Junk from the same address still has its budget: a burst of 100 counted by
        // what it is, then rate-limited, and the flows already bound keep working.
        let junk = stun(Some("w00cffffffffzzzzzzzz:x"), BINDING_REQUEST);
        for _ in 0..150 {
            d.route(flow(9000), &junk, t0);
        }
        assert_eq!(d.drops().get(DropReason::UnknownUfrag), 100);
        assert_eq!(d.drops().get(DropReason::RateLimited), 50);
        let req = stun(Some("w00c00000000aaaaaaaa:x"), BINDING_REQUEST);
        assert!(matches!(
            d.route(flow(10_000), &req, t0),
            Route::Conn { .. }
        ));
    }

    #[test]
    fn a_known_flow_has_its_own_larger_budget() {
        let t0 = Instant::now();
        let mut d = Demux::new(DemuxLimits {
            per_flow: Rate {
                per_second: 10.0,
                burst: 20.0,
            },
            ..DemuxLimits::default()
        });
        d.router.insert_conn("w00c00000001aaaaaaaa", ConnId(1), t0);
        let req = stun(Some("w00c00000001aaaaaaaa:x"), BINDING_REQUEST);
        assert!(matches!(d.route(flow(1), &req, t0), Route::Conn { .. }));
        let mut rtp = vec![0x80u8, 96];
        rtp.resize(50, 0);
        let ok = (0..50)
            .filter(|_| matches!(d.route(flow(1), &rtp, t0), Route::Conn { .. }))
            .count();
        assert_eq!(ok, 20);
        assert_eq!(d.drops().get(DropReason::RateLimited), 30);
    }

    #[test]
    fn the_limiter_stays_bounded_under_many_sources() {
        let t0 = Instant::now();
        let rate = Rate {
            per_second: 1.0,
            burst: 2.0,
        };
        let mut l: RateLimiter<u32> = RateLimiter::new(rate, 100);
        for k in 0..100 {
            assert!(l.allow(&k, t0));
        }
        assert!(!l.allow(&1000, t0), "full, nobody refilled yet: refused");
        assert_eq!(l.len(), 100);
        // Two seconds on, the old buckets are full again and can be forgotten.
        assert!(l.allow(&1000, t0 + Duration::from_secs(2)));
        assert!(l.len() <= 100);
        l.forget_refilled(t0 + Duration::from_secs(10));
        assert!(l.is_empty());
    }

    #[test]
    fn the_log_gate_logs_once_per_interval_with_the_count() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut g: LogGate<IpAddr> = LogGate::new(Duration::from_secs(10), 2);
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        let c: IpAddr = "10.0.0.3".parse().expect("ip");
        assert_eq!(g.check(&a, t0), Some(0));
        for i in 1..=9 {
            assert_eq!(g.check(&a, t0 + s * i), None);
        }
        assert_eq!(g.check(&b, t0), Some(0), "another source logs its own line");
        assert_eq!(g.check(&c, t0), None, "beyond max_keys: counted");
        assert_eq!(
            g.check(&a, t0 + s * 10),
            Some(9),
            "the next line says 9 were suppressed"
        );
        assert_eq!(g.check(&a, t0 + s * 11), None);
        let (summaries, overflow) = g.flush(t0 + s * 21);
        assert_eq!(summaries, vec![(a, 1)], "b had nothing suppressed");
        assert_eq!(overflow, 1);
        assert_eq!(
            g.check(&a, t0 + s * 22),
            Some(0),
            "forgotten after the flush"
        );
    }
}
