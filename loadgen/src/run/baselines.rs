//! The two baselines the SFU is measured against, broadcast scenario only: Janus's
//! streaming plugin (a mountpoint fed plain RTP, watched by N subscribers over its HTTP
//! API) and the floor (a bare UDP relay to N plain sockets: the syscalls alone).

use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, Result};
use openhearing_peer::MediaKind;
use tokio::task::JoinSet;

use super::{join_slot, progress, Alive, Observers, Ramp, Receiver, RunConfig, Scenario};
use crate::lite::LiteHost;
use crate::media::{pace_audio, pace_video, Clip, SendCounters, UdpSink};
use crate::metrics::{process_rss, Collector, ReceiverTap};
use crate::server::Server;

pub(super) async fn setup_janus(
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
    let lite = match cfg.observers {
        Observers::Lite => Some(LiteHost::spawn(cfg.janus.peer_ip)?),
        Observers::Full => None,
    };
    let mut set = JoinSet::new();
    for i in 0..cfg.n {
        let sem = sem.clone();
        let lite = lite.clone();
        let tap = ReceiverTap::new(collector.clone());
        let opts = cfg.janus.clone();
        let slot = join_slot(ramp_start, i, cfg.join_rate);
        set.spawn(async move {
            tokio::time::sleep_until(slot.into()).await;
            let _permit = sem.acquire_owned().await?;
            let opened = Instant::now();
            let sub =
                crate::janus::JanusSubscriber::watch(&opts, tap.clone(), lite.as_ref()).await?;
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

pub(super) async fn setup_floor(
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
