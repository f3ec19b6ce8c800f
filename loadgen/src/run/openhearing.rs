//! The OpenHearing target: a real hearing created through the admin API, the
//! presiding judge joining first to open and start the session, then everyone else
//! joining in parallel (paced by `--join-rate`), admitted or called in by the judge
//! as a clerk would, publishers sending the pre-encoded loops.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use openhearing_peer::{JoinOptions, MediaKind, Participant, ReceiveOptions};
use openhearing_signaling::{
    Admission, ClientMessage, HearingState, Role, ServerMessage, StateChange,
};
use tokio::task::JoinSet;
use uuid::Uuid;

use super::{join_slot, progress, Alive, Observers, Ramp, Receiver, RunConfig, Scenario};
use crate::lite::{LiteHost, LiteObserver};
use crate::media::{pace_audio, pace_video, Clip, PacketSink, SendCounters};
use crate::metrics::{process_rss, Collector, ReceiverTap};
use crate::server::Server;

#[derive(Debug, serde::Deserialize)]
pub(crate) struct Created {
    pub(crate) hearing_id: Uuid,
    pub(crate) participants: Vec<CreatedParticipant>,
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct CreatedParticipant {
    pub(crate) role: Role,
    join_url: String,
}

impl CreatedParticipant {
    pub(crate) fn token(&self) -> Result<String> {
        self.join_url
            .split_once("#token=")
            .map(|(_, t)| t.to_owned())
            .ok_or_else(|| anyhow!("join url without token: {}", self.join_url))
    }
}

/// The roles of a scenario's hearing: (role, publishes).
pub(crate) fn roster(scenario: Scenario, n: usize) -> Vec<(Role, bool)> {
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

/// Creates the hearing with these roles through the admin API; returns it and the
/// hearing's WebSocket URL.
pub(crate) async fn create_hearing(
    server: &Server,
    title: &str,
    roster: &[(Role, bool)],
) -> Result<(Created, String)> {
    let body = serde_json::json!({
        "case_number": "LG-1/2026",
        "title": title,
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
    Ok((created, ws_url))
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn setup(
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
    let title = format!("Load test {:?} {}", cfg.scenario, cfg.n);
    let (created, ws_url) = create_hearing(server, &title, &roster).await?;
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
        None,
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

    let lite_host = match cfg.observers {
        Observers::Lite => Some(LiteHost::spawn(std::net::IpAddr::V4(
            std::net::Ipv4Addr::LOCALHOST,
        ))?),
        Observers::Full => None,
    };
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
        let lite = lite_host.clone().filter(|_| !publish);
        set.spawn(async move {
            tokio::time::sleep_until(slot.into()).await;
            let _permit = sem.acquire_owned().await?;
            if let Some(host) = lite {
                let tap = ReceiverTap::new(collector.clone());
                let o = LiteObserver::join(&host, &ws_url, &token, tap.clone()).await?;
                if o.welcome().you.admission != Admission::Admitted {
                    judge_sender
                        .send(&ClientMessage::Admit {
                            participant_id: o.welcome().you.id,
                        })
                        .map_err(|e| anyhow!("judge admits: {e}"))?;
                }
                return anyhow::Ok(Joined::Lite(o, tap));
            }
            let (p, tap) =
                join_one(&ws_url, &token, publish, &fixtures, &collector, true, None).await?;
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
            anyhow::Ok(Joined::Full(p, tap, publish, pacers))
        });
    }
    let mut joined = 1;
    while let Some(r) = set.join_next().await {
        match r.map_err(|e| anyhow!("join task: {e}")).and_then(|r| r) {
            Ok(Joined::Lite(o, tap)) => {
                receivers.push(Receiver {
                    tap,
                    opened: o.ws_opened(),
                    expect_tracks: 2 * publishers,
                });
                alive.lite.push(o);
                joined += 1;
                pb.inc(1);
            }
            Ok(Joined::Full(p, tap, publish, pacers)) => {
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

/// A participant that joined: a full peer (with its pacers if it publishes) or a
/// lite observer.
enum Joined {
    Full(
        Participant,
        Arc<ReceiverTap>,
        bool,
        Vec<tokio::task::JoinHandle<()>>,
    ),
    Lite(LiteObserver, Arc<ReceiverTap>),
}

pub(crate) async fn join_one(
    ws_url: &str,
    token: &str,
    publish: bool,
    fixtures: &Arc<openhearing_peer::MediaFixtures>,
    collector: &Arc<Collector>,
    receives: bool,
    tab: Option<&str>,
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
            tab: tab.map(str::to_owned),
        },
    )
    .await
    .map_err(|e| anyhow!("join: {e}"))?;
    Ok((p, tap))
}

pub(crate) async fn start_pacing(
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
