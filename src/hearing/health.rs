//! Media health: whether each (publisher → subscriber) pair of a hearing gets the
//! other's audio and video, graded `ok | degraded | lost`, with no I/O.
//!
//! The law wants everyone to "directly follow the full image and sound …
//! continuously"; the court must know when that stops. The [`Matrix`] is a plain
//! value fed two kinds of evidence, both as inputs with the time they happened:
//!
//! * **the SFU's own counters** ([`Matrix::absorb`]): per published track, RTP
//!   packets received from the publisher; per leg, packets forwarded to the
//!   subscriber's connection and dropped because it could not keep up, and the loss
//!   and jitter the subscriber's WebRTC stack last reported on it in RTCP
//!   (`sfu/reception.rs`: sent by the browser on its own, so not the page's word).
//!   The actor samples them every `integrity.sample_seconds` and whenever a report
//!   arrives;
//! * **the subscriber's own report** ([`Matrix::report`]), sent by the web client
//!   every 2 s from `getStats()`: per remote participant, packets, decoded frames and
//!   freeze time, audio samples and concealment. The browser is untrusted: a report
//!   claiming more packets than the SFU forwarded on that pair (beyond a slack for
//!   packets in flight), or frames and samples for a pair the SFU never forwarded, is
//!   **flagged** ([`Flag`]) and takes no part in the verdict. A report can only make a
//!   cell worse than the server's counters say, never better, so a lying client
//!   cannot turn a `lost` cell `ok`.
//!
//! Which cells exist is not decided here: the hearing core passes, at each
//! [`Matrix::sample`], the pairs the forwarding policy allows and whose publisher
//! has that medium on ([`Expected`]). Media the policy withholds (court mute, a
//! private room, the lobby) or that the participant switched off is therefore never
//! an outage. A cell is graded from the change of the counters between two samples,
//! so its first sample only sets its baseline.
//!
//! A cell marked `alerting` (a party and the presiding judge) that stays `lost` for
//! `alert_after` raises an alert, and clears it when it is no longer lost or no
//! longer expected; one lost for `auto_suspend_after` asks once for a suspension.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use openhearing_signaling::{HealthGrade, MediaKind, RemoteReception};
use uuid::Uuid;

use crate::sfu::LegCounters;

/// The thresholds of the verdicts (`[integrity]` in the configuration).
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// How often the SFU's counters are sampled.
    pub sample: Duration,
    /// A subscriber that has reported and then sends nothing for this long is taken
    /// to receive nothing.
    pub report_timeout: Duration,
    /// Share of a leg's packets the SFU dropped above which the cell is `degraded`.
    pub drop_degraded: f64,
    /// Loss the subscriber's RTCP reports on a leg above which the cell is
    /// `degraded`.
    pub receiver_loss_degraded: f64,
    /// Jitter (ms) the subscriber's RTCP reports on a leg above which the cell is
    /// `degraded`.
    pub receiver_jitter_degraded_ms: f64,
    /// Share of concealed audio samples above which audio is `degraded`.
    pub concealment_degraded: f64,
    /// ... and above which it is `lost`.
    pub concealment_lost: f64,
    /// Share of the interval the picture stood frozen above which video is `degraded`.
    pub freeze_degraded: f64,
    /// Decoded frames per second below which video is `lost`.
    pub min_fps: f64,
    /// Packets a report may claim beyond what was forwarded (in flight, counted at a
    /// different instant).
    pub report_slack_packets: u64,
    /// How long a party ↔ presiding judge cell is lost before the bench is alerted.
    pub alert_after: Duration,
    /// How long before the hearing is suspended without waiting for the bench.
    pub auto_suspend_after: Option<Duration>,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            sample: Duration::from_secs(2),
            report_timeout: Duration::from_secs(6),
            drop_degraded: 0.05,
            receiver_loss_degraded: 0.15,
            receiver_jitter_degraded_ms: 150.0,
            concealment_degraded: 0.10,
            concealment_lost: 0.90,
            freeze_degraded: 0.20,
            min_fps: 1.0,
            report_slack_packets: 50,
            alert_after: Duration::from_secs(5),
            auto_suspend_after: None,
        }
    }
}

impl Thresholds {
    pub fn from_config(c: &crate::config::IntegrityConfig) -> Thresholds {
        Thresholds {
            sample: Duration::from_millis((c.sample_seconds * 1000.0) as u64),
            report_timeout: Duration::from_millis((c.report_timeout_seconds * 1000.0) as u64),
            drop_degraded: c.drop_ratio_degraded,
            receiver_loss_degraded: c.receiver_loss_degraded,
            receiver_jitter_degraded_ms: c.receiver_jitter_degraded_ms,
            concealment_degraded: c.concealment_degraded,
            concealment_lost: c.concealment_lost,
            freeze_degraded: c.freeze_ratio_degraded,
            min_fps: c.min_frames_per_second,
            report_slack_packets: c.report_slack_packets,
            alert_after: Duration::from_millis((c.alert_after_seconds * 1000.0) as u64),
            auto_suspend_after: c
                .auto_suspend_after_seconds
                .filter(|s| *s > 0.0)
                .map(|s| Duration::from_millis((s * 1000.0) as u64)),
        }
    }
}

/// One cell: `publisher`'s `kind` as `subscriber` gets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CellKey {
    pub publisher: Uuid,
    pub subscriber: Uuid,
    pub kind: MediaKind,
}

/// A cell the core expects media on at this sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub key: CellKey,
    /// The SFU track it comes from; `None`: one side lost its connection to the
    /// hearing (and has not come back), so nothing can flow.
    pub track: Option<String>,
    /// A party and the presiding judge: raise alerts on it.
    pub alerting: bool,
}

/// The SFU's counters of one published track at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackCounters {
    pub track: String,
    pub publisher: Uuid,
    pub kind: MediaKind,
    /// Packets received from the publisher.
    pub received: u64,
    /// Every current leg's counters, by subscriber.
    pub legs: Vec<(Uuid, LegCounters)>,
}

/// Why a verdict is what it is (audited with each transition).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    Flowing,
    /// The SFU received nothing from the publisher.
    PublisherSilent,
    /// The subscriber has no leg of the track.
    NoLeg,
    /// The publisher sends, the SFU forwarded nothing on the leg.
    NotForwarded,
    /// The SFU dropped packets for the leg (the subscriber's link is short).
    SfuDropped,
    /// The subscriber's own RTCP reports heavy loss on the leg.
    ReceiverLoss,
    /// ... or heavy jitter.
    ReceiverJitter,
    /// The subscriber, who reported before, stopped reporting.
    ReportsStopped,
    /// The subscriber reports receiving nothing.
    NotReceived,
    /// Video packets arrive, too few frames are decoded.
    NotDecoded,
    Frozen,
    Concealed,
    /// One side's connection to the hearing was lost.
    Disconnected,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Flowing => "flowing",
            Cause::PublisherSilent => "publisher_silent",
            Cause::NoLeg => "no_leg",
            Cause::NotForwarded => "not_forwarded",
            Cause::SfuDropped => "sfu_dropped",
            Cause::ReceiverLoss => "receiver_loss",
            Cause::ReceiverJitter => "receiver_jitter",
            Cause::ReportsStopped => "reports_stopped",
            Cause::NotReceived => "not_received",
            Cause::NotDecoded => "not_decoded",
            Cause::Frozen => "frozen",
            Cause::Concealed => "concealed",
            Cause::Disconnected => "disconnected",
        }
    }
}

/// A report entry that was not believed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    pub key: CellKey,
    /// `never_forwarded` or `more_than_forwarded`.
    pub why: &'static str,
    pub claimed_packets: u64,
    pub forwarded: u64,
}

/// What a sample changed.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A cell's verdict changed (`from: None`: its first verdict; `to: None`: no
    /// longer expected).
    Transition {
        key: CellKey,
        from: Option<HealthGrade>,
        to: Option<HealthGrade>,
        cause: &'static str,
    },
    /// An alerting cell has been lost for `alert_after` (`raised`), or recovered or
    /// is no longer expected (`!raised`).
    Alert {
        key: CellKey,
        raised: bool,
        since: DateTime<Utc>,
        cause: &'static str,
    },
    /// An alerting cell has been lost for `auto_suspend_after` (once per outage).
    Suspend { key: CellKey, since: DateTime<Utc> },
}

/// The subscriber's last believed report entry for one cell.
#[derive(Debug, Clone, Copy)]
struct Reported {
    at: DateTime<Utc>,
    /// packets, frames or samples, impaired (freeze ms or concealed samples).
    packets: u64,
    units: u64,
    impaired: u64,
}

#[derive(Debug, Clone)]
struct Cell {
    /// The counters at the previous sample: (received, forwarded, dropped), `None`
    /// without a leg.
    last: Option<(u64, Option<LegCounters>)>,
    grade: Option<HealthGrade>,
    lost_since: Option<DateTime<Utc>>,
    alerted: bool,
    suspended: bool,
    alerting: bool,
}

/// A subscriber's reporting, for the staleness rule.
#[derive(Debug, Clone, Default)]
struct Reporter {
    last: Option<DateTime<Utc>>,
    /// The previous and latest entry per cell.
    entries: HashMap<CellKey, (Option<Reported>, Reported)>,
}

/// The health of every pair of one hearing (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct Matrix {
    t: Thresholds,
    cells: BTreeMap<CellKey, Cell>,
    /// Packets forwarded per pair and kind, summed over the pair's legs, ever.
    forwarded: HashMap<CellKey, u64>,
    /// The last forwarded count of each leg (track, subscriber) seen.
    legs: HashMap<(String, Uuid), u64>,
    reporters: HashMap<Uuid, Reporter>,
}

impl Matrix {
    pub fn new(t: Thresholds) -> Matrix {
        Matrix {
            t,
            ..Matrix::default()
        }
    }

    pub fn thresholds(&self) -> &Thresholds {
        &self.t
    }

    /// Adds what the legs forwarded since the last look to each pair's total.
    pub fn absorb(&mut self, counters: &[TrackCounters]) {
        for tc in counters {
            for (sub, c) in &tc.legs {
                let last = self
                    .legs
                    .insert((tc.track.clone(), *sub), c.forwarded)
                    .unwrap_or(0);
                // A counter that went back is a new leg (it starts at zero).
                let delta = c.forwarded.checked_sub(last).unwrap_or(c.forwarded);
                let key = CellKey {
                    publisher: tc.publisher,
                    subscriber: *sub,
                    kind: tc.kind,
                };
                *self.forwarded.entry(key).or_default() += delta;
            }
        }
    }

    /// Takes a subscriber's report (after [`Matrix::absorb`] of counters taken when
    /// it arrived). Returns the entries not believed; the others are kept for the
    /// next sample.
    pub fn report(
        &mut self,
        now: DateTime<Utc>,
        subscriber: Uuid,
        remotes: &[RemoteReception],
    ) -> Vec<Flag> {
        let mut flags = Vec::new();
        let mut believed = Vec::new();
        for r in remotes {
            let entries = [
                r.audio.map(|a| {
                    let units = a.samples_received;
                    (
                        MediaKind::Audio,
                        a.packets_received,
                        units,
                        a.concealed_samples,
                    )
                }),
                r.video.map(|v| {
                    (
                        MediaKind::Video,
                        v.packets_received,
                        v.frames_decoded,
                        v.freeze_ms,
                    )
                }),
            ];
            for (kind, packets, units, impaired) in entries.into_iter().flatten() {
                let key = CellKey {
                    publisher: r.participant_id,
                    subscriber,
                    kind,
                };
                let forwarded = self.forwarded.get(&key).copied().unwrap_or(0);
                let why = if forwarded == 0 && (packets > 0 || units > 0) {
                    Some("never_forwarded")
                } else if packets > forwarded.saturating_add(self.slack(forwarded)) {
                    Some("more_than_forwarded")
                } else {
                    None
                };
                match why {
                    Some(why) => flags.push(Flag {
                        key,
                        why,
                        claimed_packets: packets,
                        forwarded,
                    }),
                    None => believed.push((
                        key,
                        Reported {
                            at: now,
                            packets,
                            units,
                            impaired,
                        },
                    )),
                }
            }
        }
        let reporter = self.reporters.entry(subscriber).or_default();
        reporter.last = Some(now);
        for (key, rep) in believed {
            let prev = reporter.entries.get(&key).map(|(_, latest)| *latest);
            reporter.entries.insert(key, (prev, rep));
        }
        flags
    }

    fn slack(&self, forwarded: u64) -> u64 {
        self.t.report_slack_packets + forwarded / 50
    }

    /// The subscriber left: forget their reports (a new session starts afresh).
    pub fn forget_reporter(&mut self, subscriber: Uuid) {
        self.reporters.remove(&subscriber);
    }

    /// Grades every expected cell from the counters (absorbed first) and the
    /// reports; returns what changed, in cell order.
    pub fn sample(
        &mut self,
        now: DateTime<Utc>,
        expected: &[Expected],
        counters: &[TrackCounters],
    ) -> Vec<Change> {
        self.absorb(counters);
        let mut changes = Vec::new();
        let mut seen = Vec::with_capacity(expected.len());
        for e in expected {
            seen.push(e.key);
            let now_counts = counters
                .iter()
                .find(|c| Some(&c.track) == e.track.as_ref())
                .map(|c| {
                    let leg = c.legs.iter().find(|(s, _)| *s == e.key.subscriber);
                    (c.received, leg.map(|(_, l)| *l))
                });
            let verdict = self.verdict(now, e, now_counts);
            let cell = self.cells.entry(e.key).or_insert(Cell {
                last: None,
                grade: None,
                lost_since: None,
                alerted: false,
                suspended: false,
                alerting: e.alerting,
            });
            cell.alerting = e.alerting;
            cell.last = now_counts;
            let Some((grade, cause)) = verdict else {
                continue; // its first sample: the baseline
            };
            if cell.grade != Some(grade) {
                changes.push(Change::Transition {
                    key: e.key,
                    from: cell.grade,
                    to: Some(grade),
                    cause: cause.as_str(),
                });
                cell.grade = Some(grade);
            }
            if grade == HealthGrade::Lost {
                let since = *cell.lost_since.get_or_insert(now);
                let lost_for = (now - since).to_std().unwrap_or_default();
                if cell.alerting && !cell.alerted && lost_for >= self.t.alert_after {
                    cell.alerted = true;
                    changes.push(Change::Alert {
                        key: e.key,
                        raised: true,
                        since,
                        cause: cause.as_str(),
                    });
                }
                if let Some(after) = self.t.auto_suspend_after {
                    if cell.alerting && !cell.suspended && lost_for >= after {
                        cell.suspended = true;
                        changes.push(Change::Suspend { key: e.key, since });
                    }
                }
            } else if let Some(since) = cell.lost_since.take() {
                cell.suspended = false;
                if std::mem::take(&mut cell.alerted) {
                    changes.push(Change::Alert {
                        key: e.key,
                        raised: false,
                        since,
                        cause: "recovered",
                    });
                }
            }
        }
        let gone: Vec<CellKey> = self
            .cells
            .keys()
            .filter(|k| !seen.contains(k))
            .copied()
            .collect();
        for key in gone {
            let Some(cell) = self.cells.remove(&key) else {
                continue;
            };
            if cell.alerted {
                changes.push(Change::Alert {
                    key,
                    raised: false,
                    since: cell.lost_since.unwrap_or(now),
                    cause: "not_expected",
                });
            }
            if cell.grade.is_some() {
                changes.push(Change::Transition {
                    key,
                    from: cell.grade,
                    to: None,
                    cause: "not_expected",
                });
            }
        }
        changes
    }

    /// The current verdict of every graded cell.
    pub fn grades(&self) -> impl Iterator<Item = (CellKey, HealthGrade)> + '_ {
        self.cells
            .iter()
            .filter_map(|(k, c)| c.grade.map(|g| (*k, g)))
    }

    /// The verdict of one expected cell now; `None` on its first sample.
    fn verdict(
        &self,
        now: DateTime<Utc>,
        e: &Expected,
        counts: Option<(u64, Option<LegCounters>)>,
    ) -> Option<(HealthGrade, Cause)> {
        if e.track.is_none() {
            return Some((HealthGrade::Lost, Cause::Disconnected));
        }
        let previous = self.cells.get(&e.key)?.last;
        let server = server_verdict(&self.t, previous, counts);
        let client = self.client_verdict(now, e.key);
        Some(match client {
            Some(c) if c.0 > server.0 => c,
            _ => server,
        })
    }

    /// What the subscriber's reports say, if it reports at all.
    fn client_verdict(&self, now: DateTime<Utc>, key: CellKey) -> Option<(HealthGrade, Cause)> {
        let reporter = self.reporters.get(&key.subscriber)?;
        let last = reporter.last?;
        if (now - last).to_std().unwrap_or_default() > self.t.report_timeout {
            return Some((HealthGrade::Lost, Cause::ReportsStopped));
        }
        let (Some(prev), latest) = reporter.entries.get(&key).copied()? else {
            return None; // one entry only: no interval yet
        };
        if latest.at - prev.at <= chrono::TimeDelta::zero() {
            return None;
        }
        let secs = (latest.at - prev.at).as_seconds_f64();
        let packets = latest.packets.saturating_sub(prev.packets);
        let units = latest.units.saturating_sub(prev.units);
        let impaired = latest.impaired.saturating_sub(prev.impaired);
        if packets == 0 {
            return Some((HealthGrade::Lost, Cause::NotReceived));
        }
        Some(match key.kind {
            MediaKind::Video => {
                let fps = units as f64 / secs;
                let frozen = impaired as f64 / (secs * 1000.0);
                if fps < self.t.min_fps {
                    (HealthGrade::Lost, Cause::NotDecoded)
                } else if frozen > self.t.freeze_degraded {
                    (HealthGrade::Degraded, Cause::Frozen)
                } else {
                    (HealthGrade::Ok, Cause::Flowing)
                }
            }
            MediaKind::Audio => {
                let concealed = if units == 0 {
                    1.0
                } else {
                    impaired as f64 / units as f64
                };
                if concealed > self.t.concealment_lost {
                    (HealthGrade::Lost, Cause::Concealed)
                } else if concealed > self.t.concealment_degraded {
                    (HealthGrade::Degraded, Cause::Concealed)
                } else {
                    (HealthGrade::Ok, Cause::Flowing)
                }
            }
        })
    }
}

/// What the SFU's counters say between two samples.
fn server_verdict(
    t: &Thresholds,
    previous: Option<(u64, Option<LegCounters>)>,
    now: Option<(u64, Option<LegCounters>)>,
) -> (HealthGrade, Cause) {
    let Some((received, leg)) = now else {
        return (HealthGrade::Lost, Cause::PublisherSilent); // the track is gone
    };
    let (was_received, was_leg) = previous.unwrap_or((received, None));
    if received.saturating_sub(was_received) == 0 {
        return (HealthGrade::Lost, Cause::PublisherSilent);
    }
    let Some(leg) = leg else {
        return (HealthGrade::Lost, Cause::NoLeg);
    };
    let was = was_leg
        .filter(|w| w.forwarded <= leg.forwarded)
        .unwrap_or_default();
    let forwarded = leg.forwarded - was.forwarded;
    let dropped = leg.dropped.saturating_sub(was.dropped);
    if forwarded == 0 {
        return (HealthGrade::Lost, Cause::NotForwarded);
    }
    if dropped as f64 / (forwarded + dropped) as f64 > t.drop_degraded {
        return (HealthGrade::Degraded, Cause::SfuDropped);
    }
    if leg
        .reported_loss
        .is_some_and(|l| l > t.receiver_loss_degraded)
    {
        return (HealthGrade::Degraded, Cause::ReceiverLoss);
    }
    if leg
        .reported_jitter_ms
        .is_some_and(|j| j > t.receiver_jitter_degraded_ms)
    {
        return (HealthGrade::Degraded, Cause::ReceiverJitter);
    }
    (HealthGrade::Ok, Cause::Flowing)
}

#[cfg(test)]
#[path = "health_tests.rs"]
mod tests;
