//! The short soak (`make soak` is the long one): the real server binary, a hearing
//! in session with recording on, six publishers and observers, one participant
//! leaving and rejoining every two seconds for two minutes (SOAK_TEST_SECS to
//! change). Asserts that nothing leaks: after everyone left, the server's descriptors
//! and media ports are back at their baseline, the audit holds exactly one `join` and
//! one `leave` per session, and no session was dropped. RSS is printed, not asserted
//! (over two minutes it is noise; BENCHMARKS.md has the long run).

use std::time::Duration;

use openhearing_loadgen::media::ClipSpec;
use openhearing_loadgen::server::ServerOptions;
use openhearing_loadgen::soak::{soak, SoakConfig};

fn secs(var: &str, default: u64) -> Duration {
    Duration::from_secs(
        std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_minutes_of_leaving_and_rejoining_leak_nothing() {
    let cfg = SoakConfig {
        duration: secs("SOAK_TEST_SECS", 120),
        warmup: Duration::from_secs(30),
        // Debug builds on two shared cores: fewer observers and a small clip than
        // `make soak`; the churn, the roles and the checks are the same.
        observers: 6,
        churn_every: Duration::from_secs(2),
        away_for: Duration::from_secs(1),
        sample_every: Duration::from_secs(5),
        settle_timeout: Duration::from_secs(30),
        clip: ClipSpec {
            video_kbps: 150,
            fps: 10,
            width: 320,
            height: 180,
        },
        clip_dir: std::env::temp_dir().join("openhearing-loadgen-clips"),
        server: ServerOptions {
            bin: env!("CARGO_BIN_EXE_openhearing").into(),
            port_min: 45000,
            port_max: 45199,
            ..ServerOptions::default()
        },
        progress: false,
    };
    let report = soak(&cfg).await.expect("the soak runs");
    eprint!("{report}");
    assert!(report.joins > 12 + 40, "too few rejoins: {report}");
    assert_eq!(report.problems(), Vec::<String>::new(), "{report}");
}
