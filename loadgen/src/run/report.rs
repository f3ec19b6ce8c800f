//! What a run found ([`Report`]), the [`median`] of repeated runs of one
//! configuration, and the fixed-width [`table`] the CLI prints. `--json` writes
//! reports as they are serialized here, so their field names are the output format.

use serde::Serialize;

use super::{Observers, Scenario, Target};

/// The result of one run. Times in milliseconds, CPU in microseconds per packet.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub target: Target,
    pub scenario: Scenario,
    /// Full webrtc peers or lite ones as observers.
    pub observers: Observers,
    pub publishers: usize,
    pub receivers: usize,
    pub participants: usize,
    pub video_kbps_target: u32,
    pub video_kbps_actual: f64,
    pub fps: u32,
    pub window_s: f64,
    pub server_pid: u32,
    pub server_cpu_s: f64,
    /// Server CPU as a share of one core over the window.
    pub server_cpu_pct: f64,
    pub forwarded_packets: u64,
    pub forwarded_pps: f64,
    pub forwarded_mbps: f64,
    /// Server user+system CPU time per forwarded (received) packet.
    pub cpu_us_per_packet: Option<f64>,
    /// 1 - received/expected by RTP sequence numbers, over the window, in percent.
    pub loss_pct: Option<f64>,
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    /// WebSocket (or Janus session) open → first RTP of each remote track.
    pub join_p50_ms: Option<f64>,
    pub join_p99_ms: Option<f64>,
    /// The same for audio tracks only, and for video only (a video track's first
    /// packet may wait for a keyframe).
    pub join_audio_p50_ms: Option<f64>,
    pub join_video_p50_ms: Option<f64>,
    /// Lite observers only: the median time from WebSocket open to each step of the
    /// join (`welcome`, `answer` applied, ICE+DTLS `connected`, the server's first
    /// `server_offer` answered, the first `remote_candidate`, `ice_connected`).
    pub join_steps_p50_ms: std::collections::BTreeMap<String, f64>,
    /// Participants joined per second during ramp-up (everyone, joins in parallel).
    pub join_rate_per_s: Option<f64>,
    /// Loss on the streams already flowing while the others joined: every receiver
    /// from its first packet until every receiver had media, in percent.
    pub ramp_loss_pct: Option<f64>,
    pub rss_before_mb: f64,
    pub rss_after_mb: f64,
    pub rss_per_participant_kb: Option<f64>,
    /// The load generator's own CPU over the window, share of one core.
    pub loadgen_cpu_pct: f64,
    pub send_errors: u64,
    pub unstamped_packets: u64,
    pub receivers_without_media: usize,
    pub failures: Vec<String>,
    pub loadavg_at_start: String,
}

/// Median of each numeric field over several reports of the same configuration.
pub fn median(reports: &[Report]) -> Option<Report> {
    let mut base = reports.first()?.clone();
    fn med(mut v: Vec<f64>) -> f64 {
        v.sort_by(|a, b| a.total_cmp(b));
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    }
    let m = |f: &dyn Fn(&Report) -> f64| med(reports.iter().map(f).collect());
    let mo = |f: &dyn Fn(&Report) -> Option<f64>| {
        let v: Vec<f64> = reports.iter().filter_map(f).collect();
        (!v.is_empty()).then(|| med(v))
    };
    base.window_s = m(&|r| r.window_s);
    base.server_cpu_s = m(&|r| r.server_cpu_s);
    base.server_cpu_pct = m(&|r| r.server_cpu_pct);
    base.forwarded_packets = m(&|r| r.forwarded_packets as f64) as u64;
    base.forwarded_pps = m(&|r| r.forwarded_pps);
    base.forwarded_mbps = m(&|r| r.forwarded_mbps);
    base.cpu_us_per_packet = mo(&|r| r.cpu_us_per_packet);
    base.loss_pct = mo(&|r| r.loss_pct);
    base.latency_p50_ms = mo(&|r| r.latency_p50_ms);
    base.latency_p99_ms = mo(&|r| r.latency_p99_ms);
    base.join_p50_ms = mo(&|r| r.join_p50_ms);
    base.join_p99_ms = mo(&|r| r.join_p99_ms);
    base.join_audio_p50_ms = mo(&|r| r.join_audio_p50_ms);
    base.join_video_p50_ms = mo(&|r| r.join_video_p50_ms);
    base.join_rate_per_s = mo(&|r| r.join_rate_per_s);
    base.ramp_loss_pct = mo(&|r| r.ramp_loss_pct);
    base.rss_before_mb = m(&|r| r.rss_before_mb);
    base.rss_after_mb = m(&|r| r.rss_after_mb);
    base.rss_per_participant_kb = mo(&|r| r.rss_per_participant_kb);
    base.loadgen_cpu_pct = m(&|r| r.loadgen_cpu_pct);
    base.failures = reports.iter().flat_map(|r| r.failures.clone()).collect();
    base.receivers_without_media = reports.iter().map(|r| r.receivers_without_media).max()?;
    Some(base)
}

/// A fixed-width table, one row per report.
pub fn table(reports: &[Report]) -> String {
    let f = |v: Option<f64>, p: usize| v.map_or("-".to_owned(), |v| format!("{v:.p$}"));
    let mut out = String::new();
    out.push_str(&format!(
        "{:<12} {:<10} {:>5} {:>6} {:>9} {:>8} {:>8} {:>7} {:>7} {:>7} {:>7} {:>7} {:>8} {:>7} {:>8}\n",
        "target",
        "scenario",
        "recv",
        "cpu%",
        "fwd pkt/s",
        "Mbit/s",
        "µs/pkt",
        "loss%",
        "lat50",
        "lat99",
        "join50",
        "join99",
        "rampls%",
        "KB/part",
        "lg cpu%"
    ));
    for r in reports {
        out.push_str(&format!(
            "{:<12} {:<10} {:>5} {:>6.1} {:>9.0} {:>8.1} {:>8} {:>7} {:>7} {:>7} {:>7} {:>7} {:>8} {:>7} {:>8.1}\n",
            format!("{:?}", r.target).to_lowercase(),
            format!("{:?}", r.scenario).to_lowercase(),
            r.receivers,
            r.server_cpu_pct,
            r.forwarded_pps,
            r.forwarded_mbps,
            f(r.cpu_us_per_packet, 2),
            f(r.loss_pct, 3),
            f(r.latency_p50_ms, 2),
            f(r.latency_p99_ms, 2),
            f(r.join_p50_ms, 0),
            f(r.join_p99_ms, 0),
            f(r.ramp_loss_pct, 3),
            f(r.rss_per_participant_kb, 0),
            r.loadgen_cpu_pct,
        ));
    }
    out
}
