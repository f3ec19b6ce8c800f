//! The soak: a realistic hearing held for a long time with participants leaving and
//! rejoining all along, to find what grows — memory, descriptors, media ports, audit
//! rows that do not match what happened, sessions the server dropped.
//!
//! Shape of a run ([`soak`]):
//! 1. Start the server (recording on), create the hearing through the admin API and
//!    take it to `in_session` there, so the recorder's archive is open before anyone
//!    joins. The server's descriptors and media ports now are the **baseline**.
//! 2. The presiding judge joins and stays (it admits everyone, as a clerk would); the
//!    five other publishers and the observers join.
//! 3. For `duration`: every `churn_every` the next participant in turn (never the
//!    judge) leaves and rejoins `away_for` later — through the lobby again when the
//!    server puts it there. The server is sampled every `sample_every`; the RSS at the
//!    end of `warmup` is the reference for growth.
//! 4. Everyone leaves. Descriptors (not counting those on the database files, which
//!    follow the size of the server's connection pool) and media ports must come back to the baseline
//!    (within `settle_timeout`, as must the audit); the audit must hold one `join` per join and one
//!    `leave` (reason `left`) per leave, and verify. A `leave` with any other reason,
//!    or a session the client saw closed without leaving, is a dropped session.
//!
//! Why here and not in `run`: a measurement window is seconds of steady state; a soak
//! is the opposite — change all the time, and compare the end with the beginning. It
//! reuses the OpenHearing target's hearing creation, join and pacing.

mod probe;
mod report;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use openhearing_peer::Participant;
use openhearing_signaling::{Admission, ClientMessage, Role, SignalingSender};
use tokio::task::{JoinHandle, JoinSet};

use crate::media::{Clip, ClipSpec, SendCounters};
use crate::metrics::{Collector, ReceiverTap};
use crate::run::openhearing::{create_hearing, join_one, roster, start_pacing};
use crate::run::Scenario;
use crate::server::{Server, ServerOptions};

pub use probe::{Probe, Sample};
pub use report::{AuditCheck, SoakReport};

/// What a soak is asked to do.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// How long participants keep leaving and rejoining.
    pub duration: Duration,
    /// The RSS reference is taken this long after everyone first joined.
    pub warmup: Duration,
    /// View-only observers besides the six publishing roles.
    pub observers: usize,
    /// A participant leaves this often...
    pub churn_every: Duration,
    /// ...and rejoins this long after.
    pub away_for: Duration,
    pub sample_every: Duration,
    /// How long descriptors and ports may take to come back after everyone left.
    pub settle_timeout: Duration,
    pub clip: ClipSpec,
    pub clip_dir: std::path::PathBuf,
    pub server: ServerOptions,
    pub progress: bool,
}

/// One seat of the hearing and who sits in it now.
struct Seat {
    role: Role,
    publish: bool,
    token: String,
    live: Option<Live>,
}

/// A joined participant and what it runs.
struct Live {
    participant: Participant,
    pacers: Vec<JoinHandle<()>>,
    tap: Arc<ReceiverTap>,
}

/// What every join needs.
struct Ctx {
    ws_url: String,
    fixtures: Arc<openhearing_peer::MediaFixtures>,
    clip: Arc<Clip>,
    collector: Arc<Collector>,
    counters: Arc<SendCounters>,
    judge: SignalingSender,
}

/// How a participant's leave went, from its own side.
struct LeaveOutcome {
    /// The socket had closed before the participant left (the server ended it).
    dropped: Option<String>,
    failures: Vec<String>,
    packets: u64,
}

/// Runs a soak; `Err` only when it could not be set up. Everything found on the way
/// is in the report.
pub async fn soak(cfg: &SoakConfig) -> Result<SoakReport> {
    let clip = {
        let (dir, spec) = (cfg.clip_dir.clone(), cfg.clip);
        Arc::new(tokio::task::spawn_blocking(move || crate::media::load_clip(&dir, spec)).await??)
    };
    let server = Server::start(&cfg.server).await?;
    let result = hold(cfg, &server, clip).await;
    server.stop().await;
    result
}

async fn hold(cfg: &SoakConfig, server: &Server, clip: Arc<Clip>) -> Result<SoakReport> {
    let probe = Probe {
        pid: server.pid,
        port_min: cfg.server.port_min,
        port_max: cfg.server.port_max,
        started: Instant::now(),
    };
    let roster = roster(Scenario::Hearing, cfg.observers);
    let (created, ws_url) = create_hearing(server, "Soak", &roster).await?;
    for state in ["open", "in_session"] {
        set_state(server, created.hearing_id, state).await?;
    }
    let baseline = probe.sample().context("reading the server's /proc")?;
    let mut report = SoakReport::new(cfg, baseline);

    let mut seats = Vec::new();
    for ((role, publish), entry) in roster.iter().zip(&created.participants) {
        seats.push(Seat {
            role: *role,
            publish: *publish,
            token: entry.token()?,
            live: None,
        });
    }
    let collector = Arc::new(Collector::default());
    collector.set_measuring(true);
    let counters = Arc::new(SendCounters::default());
    let fixtures = Arc::new(clip.fixtures());
    // The judge first, and for good: it admits everyone else.
    let judge_live = join_seat(
        None, &ws_url, &seats[0], &fixtures, &clip, &collector, &counters,
    )
    .await
    .context("the presiding judge joins")?;
    report.joins += 1;
    let judge = judge_live
        .participant
        .signaling_sender()
        .ok_or_else(|| anyhow!("judge's signaling closed"))?;
    seats[0].live = Some(judge_live);
    let ctx = Arc::new(Ctx {
        ws_url,
        fixtures,
        clip,
        collector,
        counters,
        judge,
    });
    let mut first = JoinSet::new();
    for (i, seat) in seats.iter().enumerate().skip(1) {
        let (ctx, role, publish, token) =
            (ctx.clone(), seat.role, seat.publish, seat.token.clone());
        first.spawn(async move { (i, rejoin(&ctx, role, publish, &token, Duration::ZERO).await) });
    }
    while let Some(done) = first.join_next().await {
        let (i, joined) = done.map_err(|e| anyhow!("join task: {e}"))?;
        seat_back(&mut seats[i], joined, &mut report);
    }

    // Churn: one participant leaves every `churn_every`, back `away_for` later.
    let started = Instant::now();
    let warm_at = started + cfg.warmup;
    let mut next_churn = started + cfg.churn_every;
    let mut next_sample = started;
    let mut turn = 0usize;
    let mut away: JoinSet<(usize, LeaveOutcome, Result<Live>)> = JoinSet::new();
    let bar = crate::run::progress(cfg.progress, cfg.duration.as_secs(), "soak");
    while started.elapsed() < cfg.duration {
        let wake = next_churn.min(next_sample).min(started + cfg.duration);
        tokio::select! {
            _ = tokio::time::sleep_until(wake.into()) => {}
            Some(done) = away.join_next() => {
                let (i, outcome, joined) = done.map_err(|e| anyhow!("rejoin task: {e}"))?;
                report.left(outcome);
                seat_back(&mut seats[i], joined, &mut report);
                continue;
            }
        }
        let now = Instant::now();
        if now >= next_sample {
            if let Ok(s) = probe.sample() {
                if report.rss_warm_kb.is_none() && now >= warm_at {
                    report.rss_warm_kb = Some(s.rss_kb);
                }
                report.samples.push(s);
            }
            next_sample += cfg.sample_every;
            bar.set_position(started.elapsed().as_secs());
        }
        if now >= next_churn {
            next_churn += cfg.churn_every;
            // The next seat in turn that is present (never the judge's, seat 0).
            let candidates = seats.len() - 1;
            let pick = (0..candidates)
                .map(|k| 1 + (turn + k) % candidates)
                .find(|&i| seats[i].live.is_some());
            turn += 1;
            if let Some(i) = pick {
                let live = seats[i]
                    .live
                    .take()
                    .ok_or_else(|| anyhow!("seat {i} empty"))?;
                let (ctx, away_for) = (ctx.clone(), cfg.away_for);
                let (role, publish, token) =
                    (seats[i].role, seats[i].publish, seats[i].token.clone());
                away.spawn(async move {
                    let outcome = leave(live).await;
                    (
                        i,
                        outcome,
                        rejoin(&ctx, role, publish, &token, away_for).await,
                    )
                });
            }
        }
    }
    while let Some(done) = away.join_next().await {
        let (i, outcome, joined) = done.map_err(|e| anyhow!("rejoin task: {e}"))?;
        report.left(outcome);
        seat_back(&mut seats[i], joined, &mut report);
    }
    bar.finish_and_clear();
    report.churn_s = started.elapsed().as_secs_f64();
    report.before_leaving = probe.sample().ok();

    // Everyone leaves; the server must give back what it took.
    let mut leaving = JoinSet::new();
    for seat in seats.iter_mut() {
        if let Some(live) = seat.live.take() {
            leaving.spawn(leave(live));
        }
    }
    while let Some(done) = leaving.join_next().await {
        report.left(done.map_err(|e| anyhow!("leave task: {e}"))?);
    }
    // Sessions end asynchronously (socket close, then the hearing's audit write), so
    // wait — up to `settle_timeout` — for the readings and the audit to come back.
    let settle_start = Instant::now();
    let deadline = settle_start + cfg.settle_timeout;
    loop {
        let s = probe.sample()?;
        let a = audit(server, created.hearing_id).await?;
        let back = s.fds - s.db_fds <= baseline.fds - baseline.db_fds
            && s.media_ports <= baseline.media_ports;
        let audited = a.joins == report.joins && a.leaves == report.leaves;
        report.settled = Some(s);
        report.audit = Some(a);
        if (back && audited) || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    report.settle_s = settle_start.elapsed().as_secs_f64();
    report.send_errors = ctx
        .counters
        .errors
        .load(std::sync::atomic::Ordering::Relaxed);
    report.send_unbound = ctx
        .counters
        .unbound
        .load(std::sync::atomic::Ordering::Relaxed);
    report.finish();
    Ok(report)
}

fn seat_back(seat: &mut Seat, joined: Result<Live>, report: &mut SoakReport) {
    match joined {
        Ok(live) => {
            report.joins += 1;
            seat.live = Some(live);
        }
        Err(e) => report
            .failures
            .push(format!("{:?} could not (re)join: {e:#}", seat.role)),
    }
}

/// Waits `after`, joins the seat, and has the judge admit (or call in) the new session
/// if the server put it in the lobby.
async fn rejoin(
    ctx: &Ctx,
    role: Role,
    publish: bool,
    token: &str,
    after: Duration,
) -> Result<Live> {
    tokio::time::sleep(after).await;
    let seat = Seat {
        role,
        publish,
        token: token.to_owned(),
        live: None,
    };
    join_seat(
        Some(&ctx.judge),
        &ctx.ws_url,
        &seat,
        &ctx.fixtures,
        &ctx.clip,
        &ctx.collector,
        &ctx.counters,
    )
    .await
}

/// The seat's tab id: the same for every join with its link.
fn seat_tab(token: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    token.hash(&mut h);
    format!("soak-{:016x}", h.finish())
}

async fn join_seat(
    judge: Option<&SignalingSender>,
    ws_url: &str,
    seat: &Seat,
    fixtures: &Arc<openhearing_peer::MediaFixtures>,
    clip: &Arc<Clip>,
    collector: &Arc<Collector>,
    counters: &Arc<SendCounters>,
) -> Result<Live> {
    // Like a browser tab reconnecting, each seat rejoins as the same tab, so a rejoin
    // that reaches the hearing before the old session's goodbye takes the seat back
    // instead of waiting for the court as a second device.
    let tab = seat_tab(&seat.token);
    let (participant, tap) = join_one(
        ws_url,
        &seat.token,
        seat.publish,
        fixtures,
        collector,
        true,
        Some(&tab),
    )
    .await?;
    if participant.welcome().you.admission != Admission::Admitted {
        let judge = judge.ok_or_else(|| anyhow!("the judge was put in the lobby"))?;
        let participant_id = participant.id();
        let msg = match seat.role {
            Role::Witness | Role::Expert => ClientMessage::CallIn { participant_id },
            _ => ClientMessage::Admit { participant_id },
        };
        judge.send(&msg).map_err(|e| anyhow!("judge admits: {e}"))?;
    }
    let mut pacers = Vec::new();
    if seat.publish {
        participant
            .wait_connected(Duration::from_secs(30))
            .await
            .map_err(|e| anyhow!("{:?} connects: {e}", seat.role))?;
        pacers = start_pacing(&participant, clip, counters).await?;
    }
    Ok(Live {
        participant,
        pacers,
        tap,
    })
}

async fn leave(live: Live) -> LeaveOutcome {
    for h in &live.pacers {
        h.abort();
    }
    let p = &live.participant;
    let dropped = p.is_closed().then(|| match p.close_info() {
        Some((code, reason)) => format!("closed by the server: {code} {reason}"),
        None => "closed by the server".to_owned(),
    });
    let mut failures = p.failures();
    if let Err(e) = p.leave().await {
        failures.push(format!("leave: {e}"));
    }
    LeaveOutcome {
        dropped,
        failures,
        packets: live.tap.totals().0,
    }
}

async fn set_state(server: &Server, hearing: uuid::Uuid, state: &str) -> Result<()> {
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/api/v1/hearings/{hearing}/state",
            server.base_url
        ))
        .bearer_auth(&server.admin_key)
        .json(&serde_json::json!({ "state": state }))
        .send()
        .await
        .context("admin API: set state")?;
    if !resp.status().is_success() {
        bail!("admin API refused state {state}: {}", resp.status());
    }
    Ok(())
}

/// The hearing's audit trail, counted.
async fn audit(server: &Server, hearing: uuid::Uuid) -> Result<AuditCheck> {
    let resp = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/hearings/{hearing}/audit",
            server.base_url
        ))
        .bearer_auth(&server.admin_key)
        .send()
        .await
        .context("admin API: audit")?;
    if !resp.status().is_success() {
        bail!("admin API refused the audit trail: {}", resp.status());
    }
    let trail: serde_json::Value = resp.json().await?;
    AuditCheck::from_trail(&trail)
}
