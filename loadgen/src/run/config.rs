//! What a run is asked to do: the [`Target`] measured, the [`Scenario`] of the
//! hearing, and every knob of a run ([`RunConfig`], [`JanusOptions`]), as the CLI
//! fills them in.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::media::ClipSpec;
use crate::server::ServerOptions;

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
    /// The same relay batched: `recvmmsg` in, `sendmmsg` of up to 64 copies out.
    FloorBatch,
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

/// What the view-only receivers (observers) are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Observers {
    /// Full webrtc 0.21 peers, one each (~100 fit on this machine).
    Full,
    /// Receive-only connections on rtc's sans-IO core, many on one thread
    /// ([`crate::lite`]): several hundred fit. Publishers stay full peers.
    Lite,
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
    /// Observers as full peers or lite ones (OpenHearing and Janus targets).
    pub observers: Observers,
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
