//! Metrics for the court's IT person: `GET /metrics` in the Prometheus text format,
//! behind the admin key (Prometheus sends it with `authorization: {credentials: …}`).
//!
//! Built on the `metrics` crate: the parts of the server that count something call
//! its macros through the handles here, and `metrics-exporter-prometheus` renders
//! them. The recorder is installed once per process by [`install`], before anything
//! counts (a handle taken earlier would count into nothing); the server does that
//! when it prepares, and in a test process several servers share it.
//!
//! What is counted where it happens (cheap atomic adds, no lock, nothing the media
//! path waits for):
//! - `openhearing_rtp_packets_forwarded_total`, `…_bytes_forwarded_total`,
//!   `…_packets_dropped_total` (a slow subscriber's queue was full), and the gauge
//!   `openhearing_sfu_legs` and `openhearing_sfu_simulcast_legs{layer}` — in
//!   `sfu/forward.rs`;
//! - `openhearing_sessions{role}`: signaling sessions that were welcomed and have not
//!   ended — in `api/ws.rs`;
//! - `openhearing_admin_key_failures_total` — wrong admin keys;
//! - `openhearing_media_reports_flagged_total` — client media reports claiming more
//!   than the server forwarded (`hearing/health.rs`), counted by the hearing actor.
//! - `openhearing_media_health_cells{kind,state}`, `openhearing_participants{role,state}`
//!   and `openhearing_recorder_queue_packets`: what each live hearing's actor holds,
//!   set after every step it takes as that hearing's [`Contribution`] (its share of
//!   the gauge, withdrawn when the actor stops), so the gauges add up over hearings;
//!   `openhearing_recorder_gaps_total{cause}` where the actor journals a gap, and
//!   `openhearing_recorder_packets_dropped_total` from the recorder's own counter;
//! - `openhearing_store_seconds{op}` (histogram) and `openhearing_store_errors_total{op}`
//!   — every database call, timed by [`crate::store::Timed`].
//!
//! What is read when scraped ([`Snapshot`]): live hearings, media ports in use, and
//! the process's resident memory, open file descriptors and CPU time (from
//! `/proc/self`).

use std::sync::OnceLock;

use metrics::{Counter, Gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// The process's Prometheus recorder.
static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder (once; later calls return the same handle).
/// `None` if another recorder was installed first by someone else.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            // Database calls take from under a millisecond to seconds on a failing disk.
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(STORE_SECONDS.to_owned()),
                    &[
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                        5.0,
                    ],
                )
                .ok()?
                .install_recorder()
                .ok()?;
            describe();
            Some(handle)
        })
        .clone()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        PACKETS_FORWARDED,
        "RTP packets handed to subscribers' connections"
    );
    describe_counter!(
        BYTES_FORWARDED,
        Unit::Bytes,
        "RTP payload bytes handed to subscribers' connections"
    );
    describe_counter!(
        PACKETS_DROPPED,
        "RTP packets dropped because a subscriber's connection could not keep up"
    );
    describe_gauge!(
        LEGS,
        "Forwarding legs (one publisher track to one subscriber)"
    );
    describe_gauge!(
        SESSIONS,
        "Signaling sessions welcomed into a hearing and not ended, by role"
    );
    describe_counter!(
        ADMIN_KEY_FAILURES,
        "Requests to the admin API with a wrong key"
    );
    describe_counter!(
        REPORTS_FLAGGED,
        "Entries of clients' media reports not believed (more than the server forwarded)"
    );
    describe_gauge!(
        HEARINGS_LIVE,
        "Hearings with a live actor (someone connected recently)"
    );
    describe_gauge!(
        MEDIA_PORTS,
        "Media ports (UDP, and TCP for ICE-TCP) held by connections"
    );
    describe_gauge!(
        SIMULCAST_LEGS,
        "Simulcast video legs by the spatial layer each subscriber's allocator chose (0 = lowest) or paused"
    );
    describe_gauge!(
        HEALTH_CELLS,
        "Media-health cells (publisher to subscriber, per kind) of live hearings, by kind and state"
    );
    describe_gauge!(
        PARTICIPANTS,
        "Participants of live hearings by role and state (absent, lobby, admitted, in_room)"
    );
    describe_gauge!(
        RECORDER_QUEUE,
        "RTP packets waiting in the recorders' queues of live hearings"
    );
    describe_counter!(
        RECORDER_GAPS,
        "Gaps journaled in archives (time missing from the record), by cause"
    );
    describe_counter!(
        RECORDER_DROPPED,
        "RTP packets a recorder dropped because its queue was full"
    );
    describe_histogram!(
        STORE_SECONDS,
        Unit::Seconds,
        "Duration of database calls, by operation"
    );
    describe_counter!(STORE_ERRORS, "Failed database calls, by operation");
    describe_gauge!(RSS, Unit::Bytes, "Resident memory of the server process");
    describe_gauge!(FDS, "Open file descriptors of the server process");
    describe_gauge!(
        CPU,
        Unit::Seconds,
        "CPU time of the server process (user + system)"
    );
}

pub const PACKETS_FORWARDED: &str = "openhearing_rtp_packets_forwarded_total";
pub const BYTES_FORWARDED: &str = "openhearing_rtp_bytes_forwarded_total";
pub const PACKETS_DROPPED: &str = "openhearing_rtp_packets_dropped_total";
pub const LEGS: &str = "openhearing_sfu_legs";
pub const SESSIONS: &str = "openhearing_sessions";
pub const SIMULCAST_LEGS: &str = "openhearing_sfu_simulcast_legs";
pub const ADMIN_KEY_FAILURES: &str = "openhearing_admin_key_failures_total";
pub const REPORTS_FLAGGED: &str = "openhearing_media_reports_flagged_total";
pub const HEARINGS_LIVE: &str = "openhearing_hearings_live";
pub const MEDIA_PORTS: &str = "openhearing_media_ports_in_use";
pub const HEALTH_CELLS: &str = "openhearing_media_health_cells";
pub const PARTICIPANTS: &str = "openhearing_participants";
pub const RECORDER_QUEUE: &str = "openhearing_recorder_queue_packets";
pub const RECORDER_GAPS: &str = "openhearing_recorder_gaps_total";
pub const RECORDER_DROPPED: &str = "openhearing_recorder_packets_dropped_total";
pub const STORE_SECONDS: &str = "openhearing_store_seconds";
pub const STORE_ERRORS: &str = "openhearing_store_errors_total";
pub const RSS: &str = "openhearing_process_resident_memory_bytes";
pub const FDS: &str = "openhearing_process_open_fds";
pub const CPU: &str = "openhearing_process_cpu_seconds";

/// Every metric the server exports (`packaging/grafana-openhearing.json` uses only
/// these; tests/metrics.rs checks it).
pub const ALL: [&str; 20] = [
    PACKETS_FORWARDED,
    BYTES_FORWARDED,
    PACKETS_DROPPED,
    LEGS,
    SESSIONS,
    SIMULCAST_LEGS,
    ADMIN_KEY_FAILURES,
    REPORTS_FLAGGED,
    HEARINGS_LIVE,
    MEDIA_PORTS,
    HEALTH_CELLS,
    PARTICIPANTS,
    RECORDER_QUEUE,
    RECORDER_GAPS,
    RECORDER_DROPPED,
    STORE_SECONDS,
    STORE_ERRORS,
    RSS,
    FDS,
    CPU,
];

/// The media path's counters, taken once (after [`install`]).
pub struct Media {
    pub packets_forwarded: Counter,
    pub bytes_forwarded: Counter,
    pub packets_dropped: Counter,
    pub legs: Gauge,
    /// Simulcast legs by the layer the allocator chose: `[q, h, f, paused]`.
    pub simulcast_legs: [Gauge; 4],
}

/// The label of [`Media::simulcast_legs`]`[i]`.
pub const SIMULCAST_LAYERS: [&str; 4] = ["0", "1", "2", "paused"];

/// The media path's counters.
pub fn media() -> &'static Media {
    static MEDIA: OnceLock<Media> = OnceLock::new();
    MEDIA.get_or_init(|| Media {
        packets_forwarded: metrics::counter!(PACKETS_FORWARDED),
        bytes_forwarded: metrics::counter!(BYTES_FORWARDED),
        packets_dropped: metrics::counter!(PACKETS_DROPPED),
        legs: metrics::gauge!(LEGS),
        simulcast_legs: SIMULCAST_LAYERS.map(|l| metrics::gauge!(SIMULCAST_LEGS, "layer" => l)),
    })
}

/// `openhearing_media_reports_flagged_total`.
pub fn reports_flagged() -> Counter {
    metrics::counter!(REPORTS_FLAGGED)
}

/// One session counted in `openhearing_sessions{role}` for as long as it lives.
pub struct SessionCount(Gauge);

impl SessionCount {
    pub fn new(role: String) -> SessionCount {
        let gauge = metrics::gauge!(SESSIONS, "role" => role);
        gauge.increment(1.0);
        SessionCount(gauge)
    }
}

impl Drop for SessionCount {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// The labels of one series of a gauge, e.g. `[("kind", "audio"), ("state", "ok")]`.
pub type Labels = Vec<(&'static str, String)>;

/// One hearing's share of a labelled gauge: [`Contribution::set`] gives its current
/// counts, and the gauge moves by the difference to what it gave before, so the
/// shares of all live hearings add up. Dropping it (the actor stops) withdraws the
/// share.
pub struct Contribution {
    name: &'static str,
    current: std::collections::BTreeMap<Labels, f64>,
}

impl Contribution {
    pub fn new(name: &'static str) -> Contribution {
        Contribution {
            name,
            current: Default::default(),
        }
    }

    fn gauge(&self, labels: &Labels) -> Gauge {
        let labels: Vec<metrics::Label> = labels
            .iter()
            .map(|(k, v)| metrics::Label::new(*k, v.clone()))
            .collect();
        metrics::gauge!(self.name, labels)
    }

    /// This hearing's counts now (series it no longer has count 0).
    pub fn set(&mut self, next: std::collections::BTreeMap<Labels, f64>) {
        let keys: std::collections::BTreeSet<Labels> =
            self.current.keys().chain(next.keys()).cloned().collect();
        for k in keys {
            let was = self.current.get(&k).copied().unwrap_or(0.0);
            let now = next.get(&k).copied().unwrap_or(0.0);
            if now != was {
                self.gauge(&k).increment(now - was);
            }
        }
        self.current = next.into_iter().filter(|(_, v)| *v != 0.0).collect();
    }
}

impl Drop for Contribution {
    fn drop(&mut self) {
        self.set(Default::default());
    }
}

/// `openhearing_recorder_gaps_total{cause}`.
pub fn recorder_gap(cause: &str) {
    metrics::counter!(RECORDER_GAPS, "cause" => cause.to_owned()).increment(1);
}

/// `openhearing_recorder_packets_dropped_total`.
pub fn recorder_dropped() -> Counter {
    metrics::counter!(RECORDER_DROPPED)
}

/// Times one database call: `openhearing_store_seconds{op}`, and
/// `openhearing_store_errors_total{op}` when it failed.
pub fn store_call(op: &'static str, elapsed: std::time::Duration, failed: bool) {
    metrics::histogram!(STORE_SECONDS, "op" => op).record(elapsed.as_secs_f64());
    if failed {
        metrics::counter!(STORE_ERRORS, "op" => op).increment(1);
    }
}

/// What is read at scrape time.
pub struct Snapshot {
    pub hearings_live: usize,
    pub media_ports_in_use: usize,
}

/// The Prometheus text of every metric, with `snapshot` and the process's own
/// figures set just before.
pub fn render(handle: &PrometheusHandle, snapshot: Snapshot) -> String {
    metrics::gauge!(HEARINGS_LIVE).set(snapshot.hearings_live as f64);
    metrics::gauge!(MEDIA_PORTS).set(snapshot.media_ports_in_use as f64);
    let process = Process::read();
    if let Some(rss) = process.rss_bytes {
        metrics::gauge!(RSS).set(rss as f64);
    }
    if let Some(fds) = process.open_fds {
        metrics::gauge!(FDS).set(fds as f64);
    }
    if let Some(cpu) = process.cpu_seconds {
        metrics::gauge!(CPU).set(cpu);
    }
    handle.render()
}

/// The process's figures from `/proc/self` (Linux; `None` elsewhere).
#[derive(Debug, Default)]
struct Process {
    rss_bytes: Option<u64>,
    open_fds: Option<usize>,
    cpu_seconds: Option<f64>,
}

impl Process {
    fn read() -> Process {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let rss_bytes = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024);
        let open_fds = std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count());
        // Fields 14 and 15 of /proc/self/stat (after the command in parentheses)
        // are user and system time in clock ticks, 100 a second on Linux.
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let cpu_seconds = stat.rsplit_once(')').and_then(|(_, rest)| {
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let user: f64 = fields.get(11)?.parse().ok()?;
            let system: f64 = fields.get(12)?.parse().ok()?;
            Some((user + system) / 100.0)
        });
        Process {
            rss_bytes,
            open_fds,
            cpu_seconds,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_figures_are_read_from_proc() {
        let p = Process::read();
        assert!(p.rss_bytes.is_some_and(|b| b > 1024 * 1024), "{p:?}");
        assert!(p.open_fds.is_some_and(|n| n >= 3), "{p:?}");
        assert!(p.cpu_seconds.is_some_and(|s| s >= 0.0), "{p:?}");
    }
}
