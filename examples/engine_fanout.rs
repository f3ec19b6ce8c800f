//! The media engine's worker under load (issue 14, BENCHMARKS.md "The engine's worker
//! under load"): ONE worker (one thread, one UDP socket, ICE-lite), one publisher (a
//! webrtc 0.21 peer sending the load generator's stamped 720p VP8 + Opus loop), N lite
//! observers (`openhearing_loadgen::lite`, all on one thread), each given an audio and a
//! video leg the way the hearing side will give them (the worker's offer, the
//! observer's answer). Over a window it reads the **worker thread's own CPU**
//! (`/proc/self/task/<tid>/stat`), so the publisher and the observers, in the same
//! process, are not counted against it; loss and latency come from the observers'
//! sequence and stamp counting, batching from the worker's counters.
//!
//! What the worker does per packet is what the engine will do (SRTP through rtc's
//! `write_rtp`, its interceptors, `sendmmsg` and GSO trains), but not yet the layer
//! selection, RTX and RED of today's forwarding (`sfu/forward.rs`), which move there
//! later: the figure is the new I/O's cost, not a finished engine's.
//!
//! ```sh
//! cargo run --release --example engine_fanout -- 100 15
//! ```
//! (observers, window in seconds).

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use openhearing::sfu::engine::worker::{Worker, WorkerConfig, WorkerStats};
use openhearing_loadgen::lite::LiteHost;
use openhearing_loadgen::media::{
    load_clip, pace_audio, pace_video, ClipSpec, PacketSink, SendCounters,
};
use openhearing_loadgen::metrics::{thread_cpu, Collector, ReceiverTap};
use openhearing_peer::{MediaKind, MediaPeer};
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use tokio::task::JoinSet;

async fn stats(worker: &Worker) -> Result<WorkerStats> {
    Ok(tokio::time::timeout(Duration::from_secs(10), worker.stats()).await??)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(Ok(100), |a| a.parse())?;
    let window = Duration::from_secs(args.next().map_or(Ok(15), |a| a.parse())?);
    let spec = ClipSpec {
        video_kbps: 1500,
        fps: 30,
        width: 1280,
        height: 720,
    };
    let dir = std::env::temp_dir().join("openhearing-loadgen-clips");
    let clip = Arc::new(tokio::task::spawn_blocking(move || load_clip(&dir, spec)).await??);

    let worker = Worker::spawn(WorkerConfig::new(0, "127.0.0.1:0".parse()?))?;

    // The publisher.
    let publisher = MediaPeer::new().await?;
    publisher.add_media_tracks("publisher").await?;
    let answer = worker.answer(publisher.create_offer().await?).await?;
    publisher.apply_answer(answer.sdp).await?;
    publisher
        .wait_connected(Duration::from_secs(20))
        .await
        .context("the publisher connects")?;
    let publisher_conn = answer.conn;
    let counters = Arc::new(SendCounters::default());
    let mut pacers = Vec::new();
    for kind in [MediaKind::Video, MediaKind::Audio] {
        let w = publisher.rtp_writer(kind).await?;
        let (ssrc, pt) = (w.ssrc, w.payload_type);
        let sink = Arc::new(w) as Arc<dyn PacketSink>;
        pacers.push(match kind {
            MediaKind::Video => {
                tokio::spawn(pace_video(clip.clone(), sink, ssrc, pt, counters.clone()))
            }
            MediaKind::Audio => {
                tokio::spawn(pace_audio(clip.clone(), sink, ssrc, pt, counters.clone()))
            }
        });
    }

    // The observers, 16 joining at a time.
    let host = LiteHost::spawn("127.0.0.1".parse()?)?;
    let collector = Arc::new(Collector::default());
    let worker = Arc::new(worker);
    let mut taps = Vec::new();
    let mut set = JoinSet::new();
    let sem = Arc::new(tokio::sync::Semaphore::new(16));
    let joins_started = Instant::now();
    for _ in 0..n {
        let tap = ReceiverTap::new(collector.clone());
        taps.push(tap.clone());
        let (host, worker, sem) = (host.clone(), worker.clone(), sem.clone());
        set.spawn(async move {
            let _permit = sem.acquire_owned().await?;
            let local = host.offer(tap, Arc::default()).await?;
            let answer = worker.answer(local.sdp).await?;
            host.apply_answer(local.id, answer.sdp).await?;
            for c in answer.candidates {
                host.add_candidate(local.id, c)?;
            }
            for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
                let offer = worker
                    .add_leg(answer.conn, publisher_conn, kind, "publisher")
                    .await?;
                let reply = host.renegotiate(local.id, offer.sdp).await?;
                worker.apply_answer(answer.conn, reply).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    eprintln!(
        "{n} observers joined in {:.1} s",
        joins_started.elapsed().as_secs_f64()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let flowing = taps.iter().filter(|t| t.tracks_flowing() >= 2).count();
        if flowing == n {
            break;
        }
        if Instant::now() > deadline {
            let s = stats(&worker).await?;
            return Err(anyhow!(
                "{} of {n} observers without media; lite host: {} connected of {}; worker: \
                 {} connected, {} legs flowing, drops {:?}",
                n - flowing,
                host.stats().connected.load(Ordering::Relaxed),
                host.stats().connections.load(Ordering::Relaxed),
                s.connected,
                s.legs_flowing,
                s.drops
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The window.
    let totals = || {
        taps.iter()
            .map(|t| t.totals())
            .fold((0u64, 0u64), |(a, b), (r, e)| (a + r, b + e))
    };
    let s0 = stats(&worker).await?;
    let (rx0, ex0) = totals();
    let cpu0 = thread_cpu("media-worker-0")?;
    let lite0 = thread_cpu("lite-observers")?;
    collector.set_measuring(true);
    let t0 = Instant::now();
    tokio::time::sleep(window).await;
    collector.set_measuring(false);
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu = (thread_cpu("media-worker-0")? - cpu0).as_secs_f64();
    let lite = (thread_cpu("lite-observers")? - lite0).as_secs_f64();
    let (rx1, ex1) = totals();
    let s1 = stats(&worker).await?;
    let forwarded = collector.packets.load(Ordering::Relaxed);
    let (rx, ex) = (rx1 - rx0, ex1 - ex0);
    let sends = s1.send_syscalls - s0.send_syscalls;
    let out = s1.datagrams_out - s0.datagrams_out;
    let recvs = s1.recv_syscalls - s0.recv_syscalls;
    let inn = s1.datagrams_in - s0.datagrams_in;
    let ports: HashSet<u16> = [worker.local_addr().port()].into_iter().collect();
    println!(
        "engine worker, broadcast to {n} lite observers, {elapsed:.1} s window:\n  \
         forwarded {:.0} pkt/s ({forwarded} packets), worker thread {:.1} % of a core, \
         {:.2} µs CPU per forwarded packet\n  \
         loss {:.3} %, latency p50 {:.2} ms p99 {:.2} ms\n  \
         egress {:.1} datagrams per send call ({} GSO trains holding {}), {} dropped; \
         ingress {:.1} datagrams per recvmmsg\n  \
         lite observers' thread {:.1} % of a core; server UDP ports: {ports:?}",
        forwarded as f64 / elapsed,
        cpu / elapsed * 100.0,
        cpu * 1e6 / forwarded.max(1) as f64,
        if ex > 0 {
            (1.0 - rx as f64 / ex as f64).max(0.0) * 100.0
        } else {
            0.0
        },
        collector.latency_ms(0.5).unwrap_or(0.0),
        collector.latency_ms(0.99).unwrap_or(0.0),
        out as f64 / sends.max(1) as f64,
        s1.gso_trains - s0.gso_trains,
        s1.gso_datagrams - s0.gso_datagrams,
        s1.egress_dropped - s0.egress_dropped,
        inn as f64 / recvs.max(1) as f64,
        lite / elapsed * 100.0,
    );
    for p in pacers {
        p.abort();
    }
    drop(host);
    publisher.close().await?;
    if let Ok(w) = Arc::try_unwrap(worker) {
        w.shutdown();
    }
    Ok(())
}
