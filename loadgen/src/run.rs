//! One measured run: start (or attach to) a server, convene a hearing, join synthetic
//! participants with real media, measure a fixed window, report.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use openhearing_peer::{JoinOptions, MediaKind, Participant, ReceiveOptions};
use openhearing_signaling::{
    Admission, ClientMessage, HearingState, Role, ServerMessage, StateChange,
};
use serde::Serialize;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::media::{pace_audio, pace_video, Clip, ClipSpec, PacketSink, SendCounters, UdpSink};
use crate::metrics::{process_cpu, process_rss, quantile_ms, Collector, ReceiverTap};
use crate::server::{Server, ServerOptions};

/// Which server is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The OpenHearing SFU (the release binary, as its own process).
    Openhearing,
    /// Janus's streaming plugin (already running; see bench/janus-netns.sh).
    Janus,
    /// A minimal UDP relay: receive one, send N. The cost of the syscalls alone.
    Floor,
}

/// What the hearing looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// One publisher (the presiding judge), N view-only observers.
    Broadcast,
    /// N participants, all publishing and subscribing.
    Conference,
    /// Judge, clerk, prosecutor, defendant, counsel and witness publishing, plus N observers.
    Hearing,
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub target: Target,
    pub scenario: Scenario,
    /// Observers (broadcast, hearing) or participants (conference).
    pub n: usize,
    pub clip: ClipSpec,
    pub clip_dir: PathBuf,
    /// After everyone receives media, before the window.
    pub warmup: Duration,
    pub window: Duration,
    /// How many participants join at the same time.
    pub join_concurrency: usize,
    /// Joins started per second (0: as fast as `join_concurrency` allows).
    pub join_rate: f64,
    /// How long every receiver may take to get its first packets.
    pub media_timeout: Duration,
    pub progress: bool,
    pub server: ServerOptions,
    pub janus: JanusOptions,
}

/// Where Janus is.
#[derive(Debug, Clone)]
pub struct JanusOptions {
    pub url: String,
    pub pid: Option<u32>,
    pub mountpoint: u64,
    pub video_feed: SocketAddr,
    pub audio_feed: SocketAddr,
    pub video_pt: u8,
    pub audio_pt: u8,
    /// The address the subscribers' sockets bind (see `--janus-peer-ip`).
    pub peer_ip: std::net::IpAddr,
}

impl Default for JanusOptions {
    fn default() -> Self {
        JanusOptions {
            url: "http://127.0.0.1:8088/janus".into(),
            pid: None,
            mountpoint: 1,
            video_feed: "127.0.0.1:5004".parse().expect("addr"),
            audio_feed: "127.0.0.1:5002".parse().expect("addr"),
            video_pt: 100,
            audio_pt: 111,
            peer_ip: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        }
    }
}

/// The result of one run. Times in milliseconds, CPU in microseconds per packet.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub target: Target,
    pub scenario: Scenario,
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

fn progress(enabled: bool, len: u64, msg: &str) -> ProgressBar {
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
            let r = setup_openhearing(
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
            let r = setup_janus(
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
        Target::Floor => {
            let s = Server::start_relay(cfg.n).await?;
            let pid = s.pid;
            let r = setup_floor(
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
    let mut joins: Vec<Duration> = receivers
        .iter()
        .flat_map(|r| {
            let opened = r.opened;
            r.tap
                .first_packets()
                .into_iter()
                .map(move |(_, _, t)| t.saturating_duration_since(opened))
        })
        .collect();

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

#[derive(Debug, serde::Deserialize)]
struct Created {
    hearing_id: Uuid,
    participants: Vec<CreatedParticipant>,
}

#[derive(Debug, serde::Deserialize)]
struct CreatedParticipant {
    role: Role,
    join_url: String,
}

impl CreatedParticipant {
    fn token(&self) -> Result<String> {
        self.join_url
            .split_once("#token=")
            .map(|(_, t)| t.to_owned())
            .ok_or_else(|| anyhow!("join url without token: {}", self.join_url))
    }
}

/// The roles of a scenario's hearing: (role, publishes).
fn roster(scenario: Scenario, n: usize) -> Vec<(Role, bool)> {
    let mut r = vec![(Role::PresidingJudge, true)];
    match scenario {
        Scenario::Broadcast => r.extend(std::iter::repeat_n((Role::Observer, false), n)),
        Scenario::Conference => r.extend(std::iter::repeat_n(
            (Role::Judge, true),
            n.saturating_sub(1),
        )),
        Scenario::Hearing => {
            for role in [
                Role::Clerk,
                Role::Prosecutor,
                Role::Defendant,
                Role::DefenceCounsel,
                Role::Witness,
            ] {
                r.push((role, true));
            }
            r.extend(std::iter::repeat_n((Role::Observer, false), n));
        }
    }
    r
}

fn role_str(role: Role) -> Result<String> {
    Ok(serde_json::to_value(role)?
        .as_str()
        .ok_or_else(|| anyhow!("role is not a string"))?
        .to_owned())
}

#[allow(clippy::too_many_arguments)]
async fn setup_openhearing(
    cfg: &RunConfig,
    server: &Server,
    clip: &Arc<Clip>,
    collector: &Arc<Collector>,
    counters: &Arc<SendCounters>,
    alive: &mut Alive,
    receivers: &mut Vec<Receiver>,
    failures: &mut Vec<String>,
) -> Result<(usize, Ramp)> {
    let roster = roster(cfg.scenario, cfg.n);
    let publishers = roster.iter().filter(|(_, p)| *p).count();
    let body = serde_json::json!({
        "case_number": "LG-1/2026",
        "title": format!("Load test {:?} {}", cfg.scenario, cfg.n),
        "participants": roster.iter().enumerate().map(|(i, (role, _))| Ok(serde_json::json!({
            "name": format!("Synthetic {i}"),
            "role": role_str(*role)?,
            "site": format!("Site {i}"),
        }))).collect::<Result<Vec<_>>>()?,
    });
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/hearings", server.base_url))
        .bearer_auth(&server.admin_key)
        .json(&body)
        .send()
        .await
        .context("admin API: create hearing")?;
    if resp.status() != 201 {
        bail!(
            "admin API refused the hearing: {} {}",
            resp.status(),
            resp.text().await.unwrap_or_default()
        );
    }
    let created: Created = resp.json().await?;
    if created.participants.len() != roster.len() {
        bail!(
            "the server created {} participants, asked for {}",
            created.participants.len(),
            roster.len()
        );
    }
    let ws_url = format!(
        "{}/ws/hearings/{}",
        server.base_url.replacen("http", "ws", 1),
        created.hearing_id
    );
    let fixtures = Arc::new(clip.fixtures());
    let rss_before = process_rss(server.pid).unwrap_or(0);
    let ramp_start = Instant::now();

    // The presiding judge first: it publishes and convenes the hearing.
    let judge_entry = &created.participants[0];
    let (judge, judge_tap) = join_one(
        &ws_url,
        &judge_entry.token()?,
        true,
        &fixtures,
        collector,
        cfg.scenario != Scenario::Broadcast,
    )
    .await?;
    judge
        .wait_connected(Duration::from_secs(20))
        .await
        .map_err(|e| anyhow!("judge connects: {e}"))?;
    open_session(&judge).await?;
    alive
        .pacers
        .extend(start_pacing(&judge, clip, counters).await?);
    if cfg.scenario != Scenario::Broadcast {
        receivers.push(Receiver {
            tap: judge_tap,
            opened: judge.join_timing().ws_opened,
            expect_tracks: 2 * (publishers - 1),
        });
    }
    let judge_sender = judge
        .signaling_sender()
        .ok_or_else(|| anyhow!("judge's signaling closed"))?;

    let pb = progress(cfg.progress, (roster.len() - 1) as u64, "joining");
    let sem = Arc::new(tokio::sync::Semaphore::new(cfg.join_concurrency.max(1)));
    let joins_start = Instant::now();
    let join_rate = cfg.join_rate;
    let mut set = JoinSet::new();
    for (i, ((role, publish), entry)) in roster
        .iter()
        .zip(created.participants.iter())
        .enumerate()
        .skip(1)
    {
        let token = entry.token()?;
        let (role, publish) = (*role, *publish);
        if entry.role != role {
            bail!(
                "participant {i}: created as {:?}, expected {role:?}",
                entry.role
            );
        }
        let ws_url = ws_url.clone();
        let fixtures = fixtures.clone();
        let collector = collector.clone();
        let sem = sem.clone();
        let judge_sender = judge_sender.clone();
        let clip = clip.clone();
        let counters = counters.clone();
        let slot = join_slot(joins_start, i - 1, join_rate);
        set.spawn(async move {
            tokio::time::sleep_until(slot.into()).await;
            let _permit = sem.acquire_owned().await?;
            let (p, tap) = join_one(&ws_url, &token, publish, &fixtures, &collector, true).await?;
            if p.welcome().you.admission != Admission::Admitted {
                let id = p.id();
                let msg = match role {
                    Role::Witness | Role::Expert => ClientMessage::CallIn { participant_id: id },
                    _ => ClientMessage::Admit { participant_id: id },
                };
                judge_sender
                    .send(&msg)
                    .map_err(|e| anyhow!("judge admits: {e}"))?;
            }
            let mut pacers = Vec::new();
            if publish {
                p.wait_connected(Duration::from_secs(30))
                    .await
                    .map_err(|e| anyhow!("{role:?} connects: {e}"))?;
                pacers = start_pacing(&p, &clip, &counters).await?;
            }
            anyhow::Ok((p, tap, publish, pacers))
        });
    }
    let mut joined = 1;
    while let Some(r) = set.join_next().await {
        match r.map_err(|e| anyhow!("join task: {e}")).and_then(|r| r) {
            Ok((p, tap, publish, pacers)) => {
                receivers.push(Receiver {
                    tap,
                    opened: p.join_timing().ws_opened,
                    expect_tracks: 2 * (publishers - usize::from(publish)),
                });
                alive.participants.push(Arc::new(p));
                alive.pacers.extend(pacers);
                joined += 1;
                pb.inc(1);
            }
            Err(e) => failures.push(format!("join: {e:#}")),
        }
    }
    pb.finish_and_clear();
    let duration = ramp_start.elapsed();
    // A sweep, as a clerk would do: anyone still in the lobby (not witnesses) comes in.
    let _ = judge_sender.send(&ClientMessage::AdmitAll);
    alive.participants.push(Arc::new(judge));
    Ok((
        publishers,
        Ramp {
            rss_before,
            joined,
            duration: Some(duration),
        },
    ))
}

async fn join_one(
    ws_url: &str,
    token: &str,
    publish: bool,
    fixtures: &Arc<openhearing_peer::MediaFixtures>,
    collector: &Arc<Collector>,
    receives: bool,
) -> Result<(Participant, Arc<ReceiverTap>)> {
    let tap = ReceiverTap::new(collector.clone());
    let p = Participant::join(
        ws_url,
        token,
        JoinOptions {
            publish,
            fixtures: publish.then(|| fixtures.clone()),
            receive: ReceiveOptions {
                tap: receives.then(|| tap.clone() as Arc<dyn openhearing_peer::RtpTap>),
                tap_only: true,
                ..Default::default()
            },
        },
    )
    .await
    .map_err(|e| anyhow!("join: {e}"))?;
    Ok((p, tap))
}

async fn start_pacing(
    p: &Participant,
    clip: &Arc<Clip>,
    counters: &Arc<SendCounters>,
) -> Result<Vec<tokio::task::JoinHandle<()>>> {
    let video = p
        .peer()
        .rtp_writer(MediaKind::Video)
        .await
        .map_err(|e| anyhow!("video writer: {e}"))?;
    let audio = p
        .peer()
        .rtp_writer(MediaKind::Audio)
        .await
        .map_err(|e| anyhow!("audio writer: {e}"))?;
    let (vs, vpt, as_, apt) = (
        video.ssrc,
        video.payload_type,
        audio.ssrc,
        audio.payload_type,
    );
    Ok(vec![
        tokio::spawn(pace_video(
            clip.clone(),
            Arc::new(video) as Arc<dyn PacketSink>,
            vs,
            vpt,
            counters.clone(),
        )),
        tokio::spawn(pace_audio(
            clip.clone(),
            Arc::new(audio) as Arc<dyn PacketSink>,
            as_,
            apt,
            counters.clone(),
        )),
    ])
}

/// The judge opens the hearing and starts the session.
async fn open_session(judge: &Participant) -> Result<()> {
    let sender = judge
        .signaling_sender()
        .ok_or_else(|| anyhow!("judge's signaling closed"))?;
    for state in [HearingState::Open, HearingState::InSession] {
        sender
            .send(&ClientMessage::SetState {
                change: StateChange {
                    state,
                    reason: None,
                    adjourned_to: None,
                },
            })
            .map_err(|e| anyhow!("set_state: {e}"))?;
        let start = Instant::now();
        loop {
            let seen = judge.events().iter().any(
                |m| matches!(m, ServerMessage::HearingStatus { status } if status.state == state),
            );
            if seen {
                break;
            }
            if let Some(err) = judge.events().iter().find_map(|m| match m {
                ServerMessage::Error { code, message, .. } => Some(format!("{code}: {message}")),
                _ => None,
            }) {
                bail!("set_state {state}: {err}");
            }
            if start.elapsed() > Duration::from_secs(10) {
                bail!("the hearing did not become {state}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(())
}

async fn setup_janus(
    cfg: &RunConfig,
    clip: &Arc<Clip>,
    collector: &Arc<Collector>,
    counters: &Arc<SendCounters>,
    alive: &mut Alive,
    receivers: &mut Vec<Receiver>,
    failures: &mut Vec<String>,
) -> Result<Ramp> {
    if cfg.scenario != Scenario::Broadcast {
        bail!("the janus target runs the broadcast scenario only");
    }
    let pid = cfg.janus.pid.unwrap_or(0);
    let rss_before = process_rss(pid).unwrap_or(0);
    // The feed: the same packets as our publisher sends, as plain RTP to the mountpoint.
    let sock = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await?);
    let ssrc_v = 0x1000_0001;
    let ssrc_a = 0x1000_0002;
    alive.pacers.push(tokio::spawn(pace_video(
        clip.clone(),
        Arc::new(UdpSink {
            socket: sock.clone(),
            to: cfg.janus.video_feed,
        }),
        ssrc_v,
        cfg.janus.video_pt,
        counters.clone(),
    )));
    alive.pacers.push(tokio::spawn(pace_audio(
        clip.clone(),
        Arc::new(UdpSink {
            socket: sock,
            to: cfg.janus.audio_feed,
        }),
        ssrc_a,
        cfg.janus.audio_pt,
        counters.clone(),
    )));
    let ramp_start = Instant::now();
    let pb = progress(cfg.progress, cfg.n as u64, "joining");
    let sem = Arc::new(tokio::sync::Semaphore::new(cfg.join_concurrency.max(1)));
    let mut set = JoinSet::new();
    for i in 0..cfg.n {
        let sem = sem.clone();
        let tap = ReceiverTap::new(collector.clone());
        let opts = cfg.janus.clone();
        let slot = join_slot(ramp_start, i, cfg.join_rate);
        set.spawn(async move {
            tokio::time::sleep_until(slot.into()).await;
            let _permit = sem.acquire_owned().await?;
            let opened = Instant::now();
            let sub = crate::janus::JanusSubscriber::watch(&opts, tap.clone()).await?;
            anyhow::Ok((sub, tap, opened))
        });
    }
    let mut joined = 0;
    while let Some(r) = set.join_next().await {
        match r.map_err(|e| anyhow!("join task: {e}")).and_then(|r| r) {
            Ok((sub, tap, opened)) => {
                receivers.push(Receiver {
                    tap,
                    opened,
                    expect_tracks: 2,
                });
                alive.janus.push(sub);
                joined += 1;
                pb.inc(1);
            }
            Err(e) => failures.push(format!("janus watch: {e:#}")),
        }
    }
    pb.finish_and_clear();
    Ok(Ramp {
        rss_before,
        joined,
        duration: Some(ramp_start.elapsed()),
    })
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

async fn setup_floor(
    cfg: &RunConfig,
    relay: &Server,
    clip: &Arc<Clip>,
    collector: &Arc<Collector>,
    counters: &Arc<SendCounters>,
    alive: &mut Alive,
    receivers: &mut Vec<Receiver>,
) -> Result<Ramp> {
    if cfg.scenario != Scenario::Broadcast {
        bail!("the floor target runs the broadcast scenario only");
    }
    let rss_before = process_rss(relay.pid).unwrap_or(0);
    // Receivers: plain UDP sockets; their addresses go to the relay.
    let mut addrs = Vec::new();
    for _ in 0..cfg.n {
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
        addrs.push(sock.local_addr()?);
        let tap = ReceiverTap::new(collector.clone());
        receivers.push(Receiver {
            tap: tap.clone(),
            opened: Instant::now(),
            expect_tracks: 2,
        });
        let audio_pt = cfg.janus.audio_pt;
        alive.udp_tasks.push(tokio::spawn(async move {
            use rtc::shared::marshal::Unmarshal;
            let mut buf = vec![0u8; 2048];
            loop {
                let Ok(n) = sock.recv(&mut buf).await else {
                    break;
                };
                let mut b = &buf[..n];
                if let Ok(p) = rtc::rtp::Packet::unmarshal(&mut b) {
                    let kind = if p.header.payload_type == audio_pt {
                        MediaKind::Audio
                    } else {
                        MediaKind::Video
                    };
                    tap.record("feed", kind, &p, Instant::now());
                }
            }
        }));
    }
    relay.send_destinations(&addrs).await?;
    let to = relay
        .relay_addr
        .ok_or_else(|| anyhow!("relay without an address"))?;
    let sock = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await?);
    alive.pacers.push(tokio::spawn(pace_video(
        clip.clone(),
        Arc::new(UdpSink {
            socket: sock.clone(),
            to,
        }),
        0x2000_0001,
        cfg.janus.video_pt,
        counters.clone(),
    )));
    alive.pacers.push(tokio::spawn(pace_audio(
        clip.clone(),
        Arc::new(UdpSink { socket: sock, to }),
        0x2000_0002,
        cfg.janus.audio_pt,
        counters.clone(),
    )));
    Ok(Ramp {
        rss_before,
        joined: cfg.n,
        duration: None,
    })
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
