//! One measured run: start (or attach to) a server, convene a hearing, join synthetic
//! participants with real media, measure a fixed window, report.
//!
//! [`run`] here is the measurement itself (wait for media everywhere, warm up, measure
//! the window, tear down); how the participants get there depends on the target and
//! lives beside it: `openhearing` (a real hearing through the admin API and the
//! signaling protocol), `baselines` (Janus's streaming plugin and the UDP-relay floor).
//! `config` holds what a run is asked to do, `report` what it found.

mod baselines;
mod config;
pub(crate) mod openhearing;
mod report;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use openhearing_peer::Participant;

use crate::media::SendCounters;
use crate::metrics::{process_cpu, process_rss, quantile_ms, Collector, ReceiverTap};
use crate::server::Server;

pub use config::{JanusOptions, Observers, RunConfig, Scenario, Target};
pub use report::{median, table, Report};

struct Receiver {
    tap: Arc<ReceiverTap>,
    /// When its join started (WebSocket open / Janus session request).
    opened: Instant,
    /// Remote tracks it should receive.
    expect_tracks: usize,
}

/// Keeps everything alive until the run ends.
#[derive(Default)]
struct Alive {
    participants: Vec<Arc<Participant>>,
    lite: Vec<crate::lite::LiteObserver>,
    janus: Vec<crate::janus::JanusSubscriber>,
    udp_tasks: Vec<tokio::task::JoinHandle<()>>,
    pacers: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Alive {
    fn drop(&mut self) {
        for h in self.pacers.iter().chain(self.udp_tasks.iter()) {
            h.abort();
        }
    }
}

pub(crate) fn progress(enabled: bool, len: u64, msg: &str) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} {elapsed_precise}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_message(msg.to_owned());
    pb
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Runs one measurement.
pub async fn run(cfg: &RunConfig) -> Result<Report> {
    let loadavg_at_start = loadavg();
    let clip = {
        let dir = cfg.clip_dir.clone();
        let spec = cfg.clip;
        Arc::new(tokio::task::spawn_blocking(move || crate::media::load_clip(&dir, spec)).await??)
    };
    let collector = Arc::new(Collector::default());
    let counters = Arc::new(SendCounters::default());
    let mut alive = Alive::default();
    let mut receivers: Vec<Receiver> = Vec::new();
    let mut failures: Vec<String> = Vec::new();

    // Start the server under test; keep it until the end of the run.
    let mut server: Option<Server> = None;
    let (pid, publishers, ramp) = match cfg.target {
        Target::Openhearing => {
            let s = Server::start(&cfg.server).await?;
            let pid = s.pid;
            let r = openhearing::setup(
                cfg,
                &s,
                &clip,
                &collector,
                &counters,
                &mut alive,
                &mut receivers,
                &mut failures,
            )
            .await;
            server = Some(s);
            let (publishers, ramp) = r?;
            (pid, publishers, ramp)
        }
        Target::Janus => {
            let pid = cfg.janus.pid.ok_or_else(|| {
                anyhow!("--server-pid (Janus's pid) is needed for the janus target")
            })?;
            let r = baselines::setup_janus(
                cfg,
                &clip,
                &collector,
                &counters,
                &mut alive,
                &mut receivers,
                &mut failures,
            )
            .await?;
            (pid, 1, r)
        }
        Target::Floor | Target::FloorBatch => {
            let s = Server::start_relay(cfg.n, cfg.target == Target::FloorBatch).await?;
            let pid = s.pid;
            let r = baselines::setup_floor(
                cfg,
                &s,
                &clip,
                &collector,
                &counters,
                &mut alive,
                &mut receivers,
            )
            .await;
            server = Some(s);
            (pid, 1, r?)
        }
    };
    let rss_before = ramp.rss_before;

    // Wait for media at every receiver.
    let pb = progress(cfg.progress, receivers.len() as u64, "media");
    let deadline = Instant::now() + cfg.media_timeout;
    loop {
        let ok = receivers
            .iter()
            .filter(|r| r.tap.tracks_flowing() >= r.expect_tracks)
            .count();
        pb.set_position(ok as u64);
        if ok == receivers.len() || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pb.finish_and_clear();
    let receivers_without_media = receivers
        .iter()
        .filter(|r| r.tap.tracks_flowing() < r.expect_tracks)
        .count();
    if receivers_without_media > 0 {
        failures.push(format!(
            "{receivers_without_media} of {} receivers did not get all their tracks within {:?}",
            receivers.len(),
            cfg.media_timeout
        ));
    }
    let firsts: Vec<(openhearing_peer::MediaKind, Duration)> = receivers
        .iter()
        .flat_map(|r| {
            let opened = r.opened;
            r.tap
                .first_packets()
                .into_iter()
                .map(move |(_, kind, t)| (kind, t.saturating_duration_since(opened)))
        })
        .collect();
    let mut joins: Vec<Duration> = firsts.iter().map(|(_, d)| *d).collect();
    let joins_of = |kind| -> Vec<Duration> {
        firsts
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, d)| *d)
            .collect()
    };
    // Lite observers mark their join's steps: the median time of each since the
    // WebSocket opened.
    let mut steps: std::collections::BTreeMap<String, Vec<Duration>> = Default::default();
    for o in &alive.lite {
        for (step, at) in o.marks() {
            steps
                .entry(step.to_owned())
                .or_default()
                .push(at.saturating_duration_since(o.ws_opened()));
        }
    }
    let join_steps_p50_ms = steps
        .into_iter()
        .filter_map(|(step, mut d)| Some((step, quantile_ms(&mut d, 0.5)?)))
        .collect();
    let mut audio_joins = joins_of(openhearing_peer::MediaKind::Audio);
    let mut video_joins = joins_of(openhearing_peer::MediaKind::Video);

    let totals = |rs: &[Receiver]| {
        rs.iter()
            .map(|r| r.tap.totals())
            .fold((0u64, 0u64), |(a, b), (r, e)| (a + r, b + e))
    };
    let (ramp_rx, ramp_ex) = totals(&receivers);

    tokio::time::sleep(cfg.warmup).await;

    // The measurement window.
    let me = std::process::id();
    let (rx0, ex0) = totals(&receivers);
    let cpu0 = process_cpu(pid).context("reading the server's /proc/<pid>/stat")?;
    let own0 = process_cpu(me)?;
    let t0 = Instant::now();
    collector.set_measuring(true);
    let pb = progress(cfg.progress, cfg.window.as_secs(), "measuring");
    while t0.elapsed() < cfg.window {
        tokio::time::sleep(Duration::from_millis(250).min(cfg.window)).await;
        pb.set_position(t0.elapsed().as_secs());
    }
    collector.set_measuring(false);
    let elapsed = t0.elapsed();
    let cpu1 = process_cpu(pid)?;
    let own1 = process_cpu(me)?;
    let (rx1, ex1) = totals(&receivers);
    pb.finish_and_clear();
    let rss_after = process_rss(pid).unwrap_or(0);

    let window_s = elapsed.as_secs_f64();
    let server_cpu = (cpu1 - cpu0).as_secs_f64();
    let forwarded = collector.packets.load(Ordering::Relaxed);
    let fwd_bytes = collector.bytes.load(Ordering::Relaxed);
    let (rx, ex) = (rx1 - rx0, ex1 - ex0);
    let participants = receivers.len() + publishers
        - match cfg.scenario {
            // Publishers that also receive are counted in `receivers`.
            Scenario::Conference => publishers,
            Scenario::Hearing if cfg.target == Target::Openhearing => publishers,
            _ => 0,
        };
    let report = Report {
        target: cfg.target,
        scenario: cfg.scenario,
        observers: cfg.observers,
        publishers,
        receivers: receivers.len(),
        participants,
        video_kbps_target: cfg.clip.video_kbps,
        video_kbps_actual: clip.video_kbps_actual(),
        fps: cfg.clip.fps,
        window_s,
        server_pid: pid,
        server_cpu_s: server_cpu,
        server_cpu_pct: server_cpu / window_s * 100.0,
        forwarded_packets: forwarded,
        forwarded_pps: forwarded as f64 / window_s,
        forwarded_mbps: fwd_bytes as f64 * 8.0 / window_s / 1e6,
        cpu_us_per_packet: (forwarded > 0).then(|| server_cpu * 1e6 / forwarded as f64),
        loss_pct: (ex > 0).then(|| (1.0 - rx as f64 / ex as f64).max(0.0) * 100.0),
        latency_p50_ms: collector.latency_ms(0.5),
        latency_p99_ms: collector.latency_ms(0.99),
        join_p50_ms: quantile_ms(&mut joins, 0.5),
        join_p99_ms: quantile_ms(&mut joins, 0.99),
        join_audio_p50_ms: quantile_ms(&mut audio_joins, 0.5),
        join_video_p50_ms: quantile_ms(&mut video_joins, 0.5),
        join_steps_p50_ms,
        join_rate_per_s: ramp
            .duration
            .filter(|d| !d.is_zero())
            .map(|d| ramp.joined as f64 / d.as_secs_f64()),
        ramp_loss_pct: (ramp_ex > 0)
            .then(|| (1.0 - ramp_rx as f64 / ramp_ex as f64).max(0.0) * 100.0),
        rss_before_mb: rss_before as f64 / 1048576.0,
        rss_after_mb: rss_after as f64 / 1048576.0,
        rss_per_participant_kb: (participants > 0 && rss_after > 0)
            .then(|| (rss_after as f64 - rss_before as f64) / 1024.0 / participants as f64),
        loadgen_cpu_pct: (own1 - own0).as_secs_f64() / window_s * 100.0,
        send_errors: counters.errors.load(Ordering::Relaxed),
        unstamped_packets: collector.unstamped.load(Ordering::Relaxed),
        receivers_without_media,
        failures,
        loadavg_at_start,
    };

    // Tear down: participants first (so the server sees them leave), then the server.
    for p in &alive.participants {
        let _ = tokio::time::timeout(Duration::from_secs(2), p.close_abruptly()).await;
    }
    for o in &alive.lite {
        o.close();
    }
    for j in alive.janus.drain(..) {
        j.destroy().await;
    }
    drop(alive);
    if let Some(s) = server {
        s.stop().await;
    }
    Ok(report)
}

/// What the ramp-up did.
struct Ramp {
    rss_before: u64,
    joined: usize,
    duration: Option<Duration>,
}

/// When the `i`-th joiner (0-based) may start: `i / rate` seconds after `start`, or
/// at once without a rate.
fn join_slot(start: Instant, i: usize, rate: f64) -> Instant {
    if rate > 0.0 {
        start + Duration::from_secs_f64(i as f64 / rate)
    } else {
        start
    }
}
