//! What receivers measure (packets, sequence gaps, one-way latency, first packet) and
//! what the load generator reads about a server process (CPU time, RSS).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openhearing_peer::{MediaKind, RtpTap};
use rtc::rtp;

use crate::media::{now_unix_ns, read_stamp};

/// Latency histogram resolution.
const BUCKET_NS: u64 = 10_000;
/// Buckets: 10 µs each up to 500 ms; later samples go to the last bucket.
const BUCKETS: usize = 50_000;

/// Shared by every receiver of a run: totals inside the measurement window.
pub struct Collector {
    measuring: AtomicBool,
    pub packets: AtomicU64,
    pub bytes: AtomicU64,
    /// Packets without a readable send stamp (should stay 0).
    pub unstamped: AtomicU64,
    latency: Vec<AtomicU64>,
}

impl Default for Collector {
    fn default() -> Self {
        Collector {
            measuring: AtomicBool::new(false),
            packets: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            unstamped: AtomicU64::new(0),
            latency: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl Collector {
    pub fn set_measuring(&self, on: bool) {
        self.measuring.store(on, Ordering::SeqCst);
    }

    fn record(&self, payload: &[u8]) {
        if !self.measuring.load(Ordering::Relaxed) {
            return;
        }
        self.packets.fetch_add(1, Ordering::Relaxed);
        self.bytes
            .fetch_add(payload.len() as u64, Ordering::Relaxed);
        match read_stamp(payload) {
            Some(sent) => {
                let ns = now_unix_ns().saturating_sub(sent);
                let b = ((ns / BUCKET_NS) as usize).min(BUCKETS - 1);
                self.latency[b].fetch_add(1, Ordering::Relaxed);
            }
            None => {
                self.unstamped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Latency quantile `q` (0..=1) in milliseconds (bucket upper bound), `None` when
    /// nothing was recorded.
    pub fn latency_ms(&self, q: f64) -> Option<f64> {
        let counts: Vec<u64> = self
            .latency
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(((i as u64 + 1) * BUCKET_NS) as f64 / 1e6);
            }
        }
        None
    }
}

/// Sequence bookkeeping for one received track.
#[derive(Debug, Clone, Default)]
pub struct SeqState {
    pub first_at: Option<Instant>,
    pub received: u64,
    /// Extended highest sequence number (starts at 2^16 + first, so earlier packets
    /// that arrive late do not underflow).
    highest: u64,
    base: u64,
}

impl SeqState {
    fn push(&mut self, seq: u16, at: Instant) {
        if self.first_at.is_none() {
            self.first_at = Some(at);
            self.highest = (1 << 16) + seq as u64;
            self.base = self.highest;
            self.received = 1;
            return;
        }
        self.received += 1;
        let cur = self.highest as u16;
        let diff = seq.wrapping_sub(cur);
        if diff != 0 && diff < 0x8000 {
            self.highest += diff as u64;
        }
    }

    /// Packets the sender sent on this track since our first one (by sequence numbers).
    pub fn expected(&self) -> u64 {
        if self.first_at.is_none() {
            0
        } else {
            self.highest - self.base + 1
        }
    }
}

/// One receiver's view, per remote stream and kind.
pub struct ReceiverTap {
    collector: Arc<Collector>,
    streams: Mutex<HashMap<String, [SeqState; 2]>>,
}

impl ReceiverTap {
    pub fn new(collector: Arc<Collector>) -> Arc<Self> {
        Arc::new(ReceiverTap {
            collector,
            streams: Mutex::new(HashMap::new()),
        })
    }

    /// Records a packet (also used by the plain-UDP receivers of the floor run).
    pub fn record(&self, stream: &str, kind: MediaKind, packet: &rtp::Packet, at: Instant) {
        {
            let mut s = self.streams.lock().unwrap_or_else(|p| p.into_inner());
            let entry = match s.get_mut(stream) {
                Some(e) => e,
                None => s.entry(stream.to_owned()).or_default(),
            };
            entry[kind_index(kind)].push(packet.header.sequence_number, at);
        }
        self.collector.record(&packet.payload);
    }

    /// (received, expected) over every track so far.
    pub fn totals(&self) -> (u64, u64) {
        let s = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        s.values()
            .flat_map(|k| k.iter())
            .fold((0, 0), |(r, e), k| (r + k.received, e + k.expected()))
    }

    /// When the first packet of each remote track arrived.
    pub fn first_packets(&self) -> Vec<(String, MediaKind, Instant)> {
        let s = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for (id, k) in s.iter() {
            for (i, kind) in [MediaKind::Audio, MediaKind::Video].into_iter().enumerate() {
                if let Some(t) = k[i].first_at {
                    out.push((id.clone(), kind, t));
                }
            }
        }
        out
    }

    /// Remote tracks that have delivered at least one packet.
    pub fn tracks_flowing(&self) -> usize {
        let s = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        s.values()
            .flat_map(|k| k.iter())
            .filter(|k| k.first_at.is_some())
            .count()
    }
}

fn kind_index(k: MediaKind) -> usize {
    match k {
        MediaKind::Audio => 0,
        MediaKind::Video => 1,
    }
}

impl RtpTap for ReceiverTap {
    fn on_rtp(&self, stream: &str, kind: MediaKind, packet: &rtp::Packet, at: Instant) {
        self.record(stream, kind, packet, at);
    }
}

/// Clock ticks per second for /proc/<pid>/stat.
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// User + system CPU time of process `pid` (all threads), from /proc/<pid>/stat.
pub fn process_cpu(pid: u32) -> std::io::Result<Duration> {
    stat_cpu(&std::path::PathBuf::from(format!("/proc/{pid}/stat")))
}

/// User + system CPU time of this process's thread named `name` (its
/// /proc/self/task/<tid>/stat), e.g. one media worker measured apart from the peers
/// that share its process.
pub fn thread_cpu(name: &str) -> std::io::Result<Duration> {
    for task in std::fs::read_dir("/proc/self/task")? {
        let dir = task?.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim() == name {
            return stat_cpu(&dir.join("stat"));
        }
    }
    Err(std::io::Error::other(format!("no thread named {name}")))
}

/// utime + stime of a /proc `stat` file.
fn stat_cpu(path: &std::path::Path) -> std::io::Result<Duration> {
    let text = std::fs::read_to_string(path)?;
    // The command name may contain spaces; fields restart after the last ')'.
    let rest = text
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| std::io::Error::other("malformed stat"))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3, so utime (14) is index 11 and stime (15) index 12.
    let parse = |i: usize| -> std::io::Result<u64> {
        f.get(i)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| std::io::Error::other("malformed stat"))
    };
    let ticks = parse(11)? + parse(12)?;
    Ok(Duration::from_nanos(ticks * 1_000_000_000 / clock_ticks()))
}

/// Resident set size of process `pid` in bytes, from /proc/<pid>/status.
pub fn process_rss(pid: u32) -> std::io::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("VmRSS:") {
            let kb: u64 = v
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .map_err(|_| std::io::Error::other("malformed VmRSS"))?;
            return Ok(kb * 1024);
        }
    }
    Err(std::io::Error::other("no VmRSS"))
}

/// Quantile of a list of durations, in milliseconds.
pub fn quantile_ms(samples: &mut [Duration], q: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    samples.sort();
    let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
    Some(samples[rank - 1].as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_tracking_counts_gaps_and_wraps() {
        let mut s = SeqState::default();
        let t = Instant::now();
        for seq in [65533u16, 65534, 65535, 0, 2, 3] {
            s.push(seq, t);
        }
        // 65533..=3 is 7 numbers; 1 is missing.
        assert_eq!(s.expected(), 7);
        assert_eq!(s.received, 6);
        // A late (reordered) packet counts as received without moving `highest`.
        s.push(1, t);
        assert_eq!((s.received, s.expected()), (7, 7));
    }

    #[test]
    fn latency_quantiles() {
        let c = Collector::default();
        assert_eq!(c.latency_ms(0.5), None);
        c.set_measuring(true);
        for _ in 0..10 {
            c.record(&crate::media::stamp(b"x"));
        }
        let p50 = c.latency_ms(0.5).expect("samples");
        assert!(p50 > 0.0 && p50 < 1000.0);
        assert_eq!(c.packets.load(Ordering::Relaxed), 10);
    }

    #[test]
    fn a_named_threads_own_cpu() {
        let busy = std::thread::Builder::new()
            .name("metrics-busy".into())
            .spawn(|| {
                let mut x = 0u64;
                for i in 0..50_000_000u64 {
                    x = x.wrapping_mul(31).wrapping_add(i);
                }
                std::hint::black_box(x);
                thread_cpu("metrics-busy").expect("its own stat")
            })
            .expect("thread");
        assert!(busy.join().expect("joins") > Duration::ZERO);
        assert!(thread_cpu("no-such-thread").is_err());
    }

    #[test]
    fn own_process_cpu_and_rss() {
        let pid = std::process::id();
        let before = process_cpu(pid).expect("stat");
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(process_cpu(pid).expect("stat") >= before);
        assert!(process_rss(pid).expect("rss") > 1024 * 1024);
    }
}
