//! The `openhearing-loadgen` command line.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};
use openhearing_loadgen::media::ClipSpec;
use openhearing_loadgen::run::{
    median, table, JanusOptions, Observers, RunConfig, Scenario, Target,
};
use openhearing_loadgen::server::{default_server_bin, ServerOptions};
use openhearing_loadgen::soak::SoakConfig;

#[derive(Parser)]
#[command(
    name = "openhearing-loadgen",
    about = "Load generator and benchmarks for OpenHearing"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs a scenario against a target and reports (table on stderr, JSON to --json).
    Run(Box<RunArgs>),
    /// Holds a hearing (6 publishers, N observers, recording on) for --secs while
    /// participants leave and rejoin, then checks for leaks; exits 1 on a problem.
    Soak(Box<SoakArgs>),
    /// The UDP-relay floor (started by `run --target floor`, or `floor-batch` with
    /// --batch): receives RTP on --listen (port 0: any; the address bound is printed
    /// on stdout) and sends each packet to every address read from stdin.
    Relay {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long, default_value_t = 0)]
        expect: usize,
        /// recvmmsg + sendmmsg instead of one recv and one sendto per copy.
        #[arg(long)]
        batch: bool,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    #[arg(long, value_enum, default_value = "openhearing")]
    target: Target,
    #[arg(long, value_enum, default_value = "broadcast")]
    scenario: Scenario,
    /// Observers (broadcast, hearing) or participants (conference).
    #[arg(short = 'n', long, default_value_t = 10)]
    n: usize,
    /// VP8 bitrate of the pre-encoded loop, kbit/s.
    #[arg(long, default_value_t = 1500)]
    video_kbps: u32,
    #[arg(long, default_value_t = 30)]
    fps: u32,
    #[arg(long, default_value_t = 1280)]
    width: u32,
    #[arg(long, default_value_t = 720)]
    height: u32,
    /// Seconds of measurement after ramp-up and warm-up.
    #[arg(long, default_value_t = 20)]
    window: u64,
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// Repeat the whole run (a fresh server each time) and report the median too.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Participants joining at the same time.
    #[arg(long, default_value_t = 8)]
    join_concurrency: usize,
    /// Joins started per second, e.g. 10 for the join-time goal (0: as fast as
    /// --join-concurrency allows).
    #[arg(long, default_value_t = 0.0)]
    join_rate: f64,
    /// Seconds every receiver may take to get its first packets.
    #[arg(long, default_value_t = 60)]
    media_timeout: u64,
    /// Observers as full webrtc peers (~100 fit on a small machine) or lite
    /// receive-only connections, many on one thread (several hundred fit).
    #[arg(long, value_enum, default_value_t = Observers::Full)]
    observers: Observers,
    /// The openhearing binary (default: next to this one).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Media UDP port range of the started server, e.g. 43000-44999.
    #[arg(long, default_value = "43000-44999")]
    ports: String,
    /// TOML appended to the started server's configuration, e.g.
    /// '[recording]\nenabled = false' to measure without the recorder.
    #[arg(long, default_value = "")]
    server_config_extra: String,
    /// The started server's log filter (tracing directives).
    #[arg(long, default_value = "warn")]
    server_log_filter: String,
    /// Keep the started server's log in this file.
    #[arg(long)]
    server_log: Option<PathBuf>,
    /// Attach to a running OpenHearing server (http URL) instead of starting one.
    #[arg(long)]
    server_url: Option<String>,
    /// pid of the attached server, or of Janus for --target janus.
    #[arg(long)]
    server_pid: Option<u32>,
    #[arg(long, default_value = "loadgen-admin-key-0123456789abcdef")]
    admin_key: String,
    #[arg(long, default_value = "http://127.0.0.1:8088/janus")]
    janus_url: String,
    #[arg(long, default_value_t = 1)]
    janus_mountpoint: u64,
    #[arg(long, default_value = "127.0.0.1:5004")]
    janus_video: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:5002")]
    janus_audio: SocketAddr,
    /// The address Janus subscribers bind. libnice (Janus) ignores loopback
    /// candidates, so in bench/janus-netns.sh this is the veth peer 127.0.10.2
    /// (the script exports it).
    #[arg(long, env = "LOADGEN_JANUS_PEER_IP", default_value = "127.0.0.1")]
    janus_peer_ip: std::net::IpAddr,
    /// Where the clips are cached.
    #[arg(long)]
    clip_dir: Option<PathBuf>,
    /// Write the reports (every run and the median) as JSON here ("-" for stdout).
    #[arg(long)]
    json: Option<String>,
    /// A label stored in the JSON (e.g. the machine load).
    #[arg(long, default_value = "")]
    label: String,
    #[arg(long)]
    no_progress: bool,
}

#[derive(clap::Args)]
struct SoakArgs {
    /// Seconds of leaving and rejoining.
    #[arg(long, env = "SOAK_SECS", default_value_t = 1800)]
    secs: u64,
    /// Seconds after everyone joined before the RSS reference is read.
    #[arg(long, env = "SOAK_WARMUP", default_value_t = 120)]
    warmup: u64,
    #[arg(long, default_value_t = 20)]
    observers: usize,
    /// Seconds between two participants leaving.
    #[arg(long, default_value_t = 2.0)]
    churn_every: f64,
    /// Seconds a participant stays away before rejoining.
    #[arg(long, default_value_t = 1.0)]
    away: f64,
    /// Goal: RSS growth after the warm-up, percent (exit 1 beyond it).
    #[arg(long, default_value_t = 5.0)]
    max_rss_growth: f64,
    #[arg(long, default_value_t = 600)]
    video_kbps: u32,
    #[arg(long, default_value_t = 20)]
    fps: u32,
    #[arg(long, default_value_t = 640)]
    width: u32,
    #[arg(long, default_value_t = 360)]
    height: u32,
    #[arg(long)]
    server_bin: Option<PathBuf>,
    #[arg(long, default_value = "43000-44999")]
    ports: String,
    #[arg(long)]
    clip_dir: Option<PathBuf>,
    /// Write the report with every sample as JSON here ("-" for stdout).
    #[arg(long)]
    json: Option<String>,
    /// The started server's log filter (tracing directives).
    #[arg(long, default_value = "warn")]
    server_log_filter: String,
    /// Keep the started server's log in this file.
    #[arg(long)]
    server_log: Option<PathBuf>,
    #[arg(long)]
    no_progress: bool,
}

fn parse_ports(ports: &str) -> Result<(u16, u16)> {
    ports
        .split_once('-')
        .and_then(|(l, h)| Some((l.parse().ok()?, h.parse().ok()?)))
        .ok_or_else(|| anyhow::anyhow!("--ports: expected MIN-MAX"))
}

fn write_json(path: &str, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    if path == "-" {
        println!("{text}");
    } else {
        std::fs::write(path, text)?;
    }
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Relay {
            listen,
            expect,
            batch,
        } => openhearing_loadgen::server::relay_main(listen, expect, batch),
        Cmd::Run(a) => runtime()?.block_on(run(*a)),
        Cmd::Soak(a) => runtime()?.block_on(soak(*a)),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // rtc's ICE agent logs a success response that arrives for a pair it
                // has already replaced (a retransmitted check answered twice) at ERROR;
                // nothing fails, and with hundreds of observers it buries real errors.
                .unwrap_or_else(|_| "error,rtc_ice::agent::agent_selector=off".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

async fn soak(a: SoakArgs) -> Result<()> {
    let (port_min, port_max) = parse_ports(&a.ports)?;
    let cfg = SoakConfig {
        duration: Duration::from_secs(a.secs),
        warmup: Duration::from_secs(a.warmup),
        observers: a.observers,
        churn_every: Duration::from_secs_f64(a.churn_every),
        away_for: Duration::from_secs_f64(a.away),
        sample_every: Duration::from_secs(5),
        settle_timeout: Duration::from_secs(30),
        clip: ClipSpec {
            video_kbps: a.video_kbps,
            fps: a.fps,
            width: a.width,
            height: a.height,
        },
        clip_dir: a
            .clip_dir
            .unwrap_or_else(|| std::env::temp_dir().join("openhearing-loadgen-clips")),
        server: ServerOptions {
            bin: a.server_bin.unwrap_or_else(default_server_bin),
            port_min,
            port_max,
            log_filter: a.server_log_filter,
            log_file: a.server_log,
            ..ServerOptions::default()
        },
        progress: !a.no_progress,
    };
    let report = openhearing_loadgen::soak::soak(&cfg).await?;
    eprint!("{report}");
    if let Some(path) = &a.json {
        write_json(path, &report)?;
    }
    let growth_ok = report.rss_growth_pct.is_none_or(|g| g < a.max_rss_growth);
    if !growth_ok {
        eprintln!("  RSS grew more than the goal of {} %", a.max_rss_growth);
    }
    if !report.problems().is_empty() || !growth_ok {
        std::process::exit(1);
    }
    Ok(())
}

async fn run(a: RunArgs) -> Result<()> {
    let (pmin, pmax) = parse_ports(&a.ports)?;
    let cfg = RunConfig {
        target: a.target,
        scenario: a.scenario,
        n: a.n,
        clip: ClipSpec {
            video_kbps: a.video_kbps,
            fps: a.fps,
            width: a.width,
            height: a.height,
        },
        clip_dir: a
            .clip_dir
            .unwrap_or_else(|| std::env::temp_dir().join("openhearing-loadgen-clips")),
        warmup: Duration::from_secs(a.warmup),
        window: Duration::from_secs(a.window),
        join_concurrency: a.join_concurrency,
        join_rate: a.join_rate,
        media_timeout: Duration::from_secs(a.media_timeout),
        progress: !a.no_progress,
        observers: a.observers,
        server: ServerOptions {
            bin: a.server_bin.unwrap_or_else(default_server_bin),
            port_min: pmin,
            port_max: pmax,
            attach_url: a.server_url,
            attach_pid: a.server_pid,
            admin_key: a.admin_key,
            extra_config: a.server_config_extra,
            log_filter: a.server_log_filter,
            log_file: a.server_log,
        },
        janus: JanusOptions {
            url: a.janus_url,
            pid: a.server_pid,
            mountpoint: a.janus_mountpoint,
            video_feed: a.janus_video,
            audio_feed: a.janus_audio,
            peer_ip: a.janus_peer_ip,
            ..JanusOptions::default()
        },
    };
    let mut reports = Vec::new();
    for i in 0..a.runs.max(1) {
        if a.runs > 1 {
            eprintln!("run {}/{}", i + 1, a.runs);
        }
        let r = openhearing_loadgen::run(&cfg).await?;
        eprint!("{}", table(std::slice::from_ref(&r)));
        for f in &r.failures {
            eprintln!("  failure: {f}");
        }
        reports.push(r);
    }
    let med = median(&reports);
    if a.runs > 1 {
        if let Some(m) = &med {
            eprintln!("median of {} runs:", reports.len());
            eprint!("{}", table(std::slice::from_ref(m)));
        }
    }
    if let Some(path) = a.json {
        let out = serde_json::json!({
            "label": a.label,
            "n": a.n,
            "runs": reports,
            "median": med,
        });
        write_json(&path, &out)?;
    }
    Ok(())
}
