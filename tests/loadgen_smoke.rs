//! Smoke test of the load generator against the real server binary (a separate
//! process, as in a benchmark): a few participants for a few seconds. It asserts that
//! media flowed and nothing failed, never how fast (see BENCHMARKS.md for numbers).

use std::time::Duration;

use openhearing_loadgen::media::ClipSpec;
use openhearing_loadgen::server::ServerOptions;
use openhearing_loadgen::{run, JanusOptions, Observers, Report, RunConfig, Scenario, Target};

fn config(scenario: Scenario, n: usize, port_min: u16, port_max: u16) -> RunConfig {
    config_with(scenario, n, port_min, port_max, Observers::Full)
}

fn config_with(
    scenario: Scenario,
    n: usize,
    port_min: u16,
    port_max: u16,
    observers: Observers,
) -> RunConfig {
    RunConfig {
        target: Target::Openhearing,
        scenario,
        n,
        // A small clip keeps the test light; the benchmark uses 1.5 Mbit/s at 30 fps.
        clip: ClipSpec {
            video_kbps: 300,
            fps: 15,
            width: 320,
            height: 240,
        },
        clip_dir: std::env::temp_dir().join("openhearing-loadgen-clips"),
        warmup: Duration::from_millis(500),
        window: Duration::from_secs(3),
        join_concurrency: 4,
        join_rate: 0.0,
        media_timeout: Duration::from_secs(30),
        progress: false,
        observers,
        server: ServerOptions {
            bin: env!("CARGO_BIN_EXE_openhearing").into(),
            port_min,
            port_max,
            ..ServerOptions::default()
        },
        janus: JanusOptions::default(),
    }
}

fn assert_media_flowed(r: &Report, receivers: usize) {
    assert!(r.failures.is_empty(), "failures: {:?}", r.failures);
    assert_eq!(r.receivers, receivers, "{r:#?}");
    assert_eq!(r.receivers_without_media, 0, "{r:#?}");
    assert!(r.forwarded_packets > 0, "nothing forwarded: {r:#?}");
    assert_eq!(
        r.unstamped_packets, 0,
        "payload stamps survive the SFU: {r:#?}"
    );
    assert!(
        r.latency_p50_ms.is_some() && r.join_p50_ms.is_some(),
        "{r:#?}"
    );
    assert!(
        r.cpu_us_per_packet.is_some() && r.loss_pct.is_some(),
        "{r:#?}"
    );
    assert_eq!(r.send_errors, 0, "{r:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_to_a_few_observers() {
    let r = run(&config(Scenario::Broadcast, 3, 43400, 43479))
        .await
        .expect("load generator runs");
    assert_media_flowed(&r, 3);
    assert_eq!(r.publishers, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hearing_with_lobby_admission_and_a_witness() {
    // Judge, clerk, prosecutor, defendant, counsel, witness publish; 2 observers watch.
    // Defendant, counsel and observers are admitted, the witness is called in.
    let r = run(&config(Scenario::Hearing, 2, 43480, 43599))
        .await
        .expect("load generator runs");
    assert_media_flowed(&r, 8);
    assert_eq!(r.publishers, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_to_lite_observers() {
    // Lite observers (rtc's sans-IO core, all on one thread of the load generator):
    // each does ICE, DTLS and SRTP with the server and counts what it decrypts.
    let r = run(&config_with(
        Scenario::Broadcast,
        12,
        43900,
        43979,
        Observers::Lite,
    ))
    .await
    .expect("load generator runs");
    assert_media_flowed(&r, 12);
    assert_eq!(r.observers, Observers::Lite);
    // Every observer's own sequence counting saw both tracks and the window's packets.
    assert!(r.loss_pct.is_some_and(|l| l < 50.0), "{r:#?}");
}
