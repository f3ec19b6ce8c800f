//! Media health in the hearing: which cells the core expects media on, and what a
//! health sample or a client's report changes — transitions audited (and so
//! journaled while recording), the matrix told to the bench and each participant
//! their own reception, integrity alerts to the presiding judge and the clerk, and
//! the optional suspension when an outage lasts.
//!
//! The verdicts themselves are [`crate::hearing::health`]'s; this file only knows
//! the hearing: who is present, what the policy lets through (`subscribed`), whose
//! microphone and camera are on, who is a party and who the bench.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use openhearing_signaling::{
    AlertState, HealthCell, HealthGrade, HearingState, IntegrityAlert, MediaKind, RemoteReception,
    Role, ServerMessage, StateChange,
};
use serde_json::json;
use uuid::Uuid;

use super::super::health::{CellKey, Change, Expected, Matrix, Thresholds, TrackCounters};
use super::super::policy::Source;
use super::{participant_subject, HearingCore};
use crate::model::rfc3339;

/// Most entries of one report looked at (a hearing has fewer participants).
const MAX_REPORT_ENTRIES: usize = 256;

/// The core's media-health state.
#[derive(Debug, Default)]
pub struct Health {
    matrix: Matrix,
    /// What each participant was last told (`media_health`), by participant.
    told: HashMap<Uuid, Vec<HealthCell>>,
    /// Sessions whose report was flagged (audited once per session).
    flagged_sessions: HashSet<u64>,
    /// Report entries flagged, ever (the actor counts them in `/metrics`).
    flagged: u64,
    /// Parties and the presiding judge whose connection was lost in session and who
    /// have not come back: their cells with the judge stay, `lost`.
    dropped: BTreeSet<Uuid>,
}

impl Health {
    pub fn new(t: Thresholds) -> Health {
        Health {
            matrix: Matrix::new(t),
            ..Health::default()
        }
    }
}

/// Who sees the whole matrix: the trial panel and the clerk.
fn is_bench(role: Role) -> bool {
    matches!(
        role,
        Role::PresidingJudge | Role::Judge | Role::Assessor | Role::Clerk
    )
}

/// Whose link with the presiding judge raises alerts: everyone taking part who is
/// neither of the court's own staff nor watching.
fn is_party(role: Role) -> bool {
    !is_bench(role) && !matches!(role, Role::Observer | Role::DetentionOfficer)
}

fn kind_name(kind: MediaKind) -> &'static str {
    kind.as_str()
}

impl HearingCore {
    /// How often the actor should sample the SFU's counters: only while someone
    /// publishes (nothing to judge otherwise, and the idle timer must run).
    pub fn health_interval(&self) -> Option<std::time::Duration> {
        let judged =
            self.members.values().any(|m| !m.tracks.is_empty()) || !self.health.dropped.is_empty();
        (judged && self.anyone_present()).then(|| self.health.matrix.thresholds().sample)
    }

    /// A participant's session ended for `reason`: one whose connection was lost in
    /// session stays in the matrix as lost (until they come back, leave or are
    /// removed), and their reports start afresh next time.
    pub(super) fn health_disconnected(&mut self, pid: Uuid, reason: &str) {
        self.health.matrix.forget_reporter(pid);
        self.health.told.remove(&pid);
        let watched = self.members.get(&pid).is_some_and(|m| {
            m.p.admission == openhearing_signaling::Admission::Admitted
                && (is_party(m.p.role) || m.p.role == Role::PresidingJudge)
        });
        if reason == "connection_lost" && watched && self.status.state == HearingState::InSession {
            self.health.dropped.insert(pid);
        } else {
            self.health.dropped.remove(&pid);
        }
    }

    /// The current verdict of one cell, if it has one.
    pub fn health_grade(&self, key: CellKey) -> Option<HealthGrade> {
        self.health
            .matrix
            .grades()
            .find(|(k, _)| *k == key)
            .map(|(_, g)| g)
    }

    /// Graded cells by (kind, grade), for `/metrics`.
    pub fn health_cells(&self) -> BTreeMap<(&'static str, &'static str), usize> {
        let mut out = BTreeMap::new();
        for (key, grade) in self.health.matrix.grades() {
            *out.entry((key.kind.as_str(), grade.as_str())).or_insert(0) += 1;
        }
        out
    }

    /// Report entries flagged so far (see [`crate::hearing::health::Flag`]).
    pub fn flagged_reports(&self) -> u64 {
        self.health.flagged
    }

    /// The cells media is expected on now: every leg the policy allows, of a
    /// microphone or camera its publisher has on.
    fn expected_cells(&self) -> Vec<Expected> {
        let tracks: HashMap<&str, (&super::Member, &super::Track)> = self
            .members
            .values()
            .flat_map(|m| m.tracks.iter().map(move |t| (t.id.as_str(), (m, t))))
            .collect();
        let mut out = Vec::new();
        for (sub, track) in &self.subscribed {
            let Some(subscriber) = self.members.get(sub) else {
                continue;
            };
            if let Some((publisher, t)) = tracks.get(track.as_str()).filter(|(_, t)| !t.ended) {
                let kind = match t.source {
                    Source::Microphone if publisher.audio => MediaKind::Audio,
                    Source::Camera if publisher.video => MediaKind::Video,
                    _ => continue,
                };
                let (a, b) = (publisher.p.role, subscriber.p.role);
                let alerting = (a == Role::PresidingJudge && is_party(b))
                    || (b == Role::PresidingJudge && is_party(a));
                out.push(Expected {
                    key: CellKey {
                        publisher: publisher.p.id,
                        subscriber: *sub,
                        kind,
                    },
                    track: Some(t.id.clone()),
                    alerting,
                });
            }
        }
        if self.status.state == HearingState::InSession {
            // Until the participant is back and their own cells judged, the cells
            // their lost connection left stay lost.
            let real: HashSet<CellKey> = out.iter().map(|e| e.key).collect();
            let dropped = self.dropped_cells();
            out.extend(dropped.into_iter().filter(|e| !real.contains(&e.key)));
        }
        out.sort_by_key(|e| e.key);
        out
    }

    /// The cells between the presiding judge and the parties of whom one side lost
    /// its connection: lost, both ways, audio and video.
    fn dropped_cells(&self) -> Vec<Expected> {
        let present = |m: &&super::Member| {
            m.session.is_some() && m.p.admission == openhearing_signaling::Admission::Admitted
        };
        let mut pairs = Vec::new();
        for id in &self.health.dropped {
            let Some(m) = self.members.get(id) else {
                continue;
            };
            if m.p.role == Role::PresidingJudge {
                for p in self.members.values().filter(present) {
                    if is_party(p.p.role) {
                        pairs.push((*id, p.p.id));
                    }
                }
            } else if let Some(j) = self
                .members
                .values()
                .filter(present)
                .find(|j| j.p.role == Role::PresidingJudge)
            {
                pairs.push((*id, j.p.id));
            }
        }
        let mut out = Vec::new();
        for (a, b) in pairs {
            for (publisher, subscriber) in [(a, b), (b, a)] {
                for kind in [MediaKind::Audio, MediaKind::Video] {
                    out.push(Expected {
                        key: CellKey {
                            publisher,
                            subscriber,
                            kind,
                        },
                        track: None,
                        alerting: true,
                    });
                }
            }
        }
        out
    }

    /// A sample of the SFU's counters (every `integrity.sample_seconds`).
    pub(super) fn health_sample(&mut self, counters: Vec<TrackCounters>) {
        let expected = self.expected_cells();
        let changes = self.health.matrix.sample(self.now, &expected, &counters);
        for change in changes {
            match change {
                Change::Transition {
                    key,
                    from,
                    to,
                    cause,
                } => {
                    tracing::debug!(publisher = %key.publisher, subscriber = %key.subscriber,
                        kind = kind_name(key.kind), from = from.map(HealthGrade::as_str),
                        to = to.map(HealthGrade::as_str), cause, "media health changed");
                    self.audit(
                        "system",
                        participant_subject(key.subscriber),
                        "media_health",
                        json!({
                            "publisher": key.publisher,
                            "subscriber": key.subscriber,
                            "kind": kind_name(key.kind),
                            "from": from.map(HealthGrade::as_str),
                            "to": to.map(HealthGrade::as_str),
                            "cause": cause,
                        }),
                    )
                }
                Change::Alert {
                    key,
                    raised,
                    since,
                    cause,
                } => self.integrity_alert(key, raised, since, cause),
                Change::Suspend { key, .. } => self.auto_suspend(key),
            }
        }
        self.tell_matrix();
        // Back, and something of theirs flows again: their own cells alone count.
        let back: Vec<Uuid> = self
            .health
            .dropped
            .iter()
            .filter(|id| {
                self.members.get(id).is_some_and(|m| m.session.is_some())
                    && self.health.matrix.grades().any(|(k, g)| {
                        g == HealthGrade::Ok && (k.publisher == **id || k.subscriber == **id)
                    })
            })
            .copied()
            .collect();
        for id in back {
            self.health.dropped.remove(&id);
        }
    }

    /// A participant's `media_report`, with the SFU's counters taken when it came.
    pub(super) fn media_report(
        &mut self,
        pid: Uuid,
        session: u64,
        mut remotes: Vec<RemoteReception>,
        counters: Vec<TrackCounters>,
    ) {
        if !self
            .members
            .get(&pid)
            .is_some_and(|m| m.is_session(session))
        {
            return;
        }
        remotes.truncate(MAX_REPORT_ENTRIES);
        self.health.matrix.absorb(&counters);
        let flags = self.health.matrix.report(self.now, pid, &remotes);
        let Some(first) = flags.first() else {
            return;
        };
        self.health.flagged += flags.len() as u64;
        for f in &flags {
            tracing::debug!(publisher = %f.key.publisher, subscriber = %pid,
                kind = kind_name(f.key.kind), why = f.why, claimed_packets = f.claimed_packets,
                forwarded = f.forwarded, "media report entry flagged");
        }
        if self.health.flagged_sessions.insert(session) {
            // A modified client (or a broken one): evidence for the record, once.
            let details = json!({
                "publisher": first.key.publisher,
                "kind": kind_name(first.key.kind),
                "why": first.why,
                "claimed_packets": first.claimed_packets,
                "forwarded": first.forwarded,
            });
            self.audit(
                &format!("participant:{pid}"),
                participant_subject(pid),
                "media_report_flagged",
                details,
            );
        }
    }

    fn integrity_alert(
        &mut self,
        key: CellKey,
        raised: bool,
        since: chrono::DateTime<chrono::Utc>,
        cause: &str,
    ) {
        let party = match self.members.get(&key.publisher) {
            Some(m) if m.p.role == Role::PresidingJudge => key.subscriber,
            _ => key.publisher,
        };
        let alert = IntegrityAlert {
            participant_id: party,
            publisher: key.publisher,
            subscriber: key.subscriber,
            kind: key.kind,
            state: if raised {
                AlertState::Raised
            } else {
                AlertState::Cleared
            },
            since: rfc3339(since),
            cause: cause.to_owned(),
        };
        self.audit(
            "system",
            participant_subject(party),
            "integrity_alert",
            serde_json::to_value(&alert).unwrap_or_default(),
        );
        let to: Vec<Uuid> = self
            .members
            .values()
            .filter(|m| matches!(m.p.role, Role::PresidingJudge | Role::Clerk))
            .map(|m| m.p.id)
            .collect();
        for pid in to {
            self.tell(pid, ServerMessage::IntegrityAlert(alert.clone()));
        }
    }

    /// `integrity.auto_suspend_after_seconds` passed on an outage: suspend, naming
    /// whom the court lost.
    fn auto_suspend(&mut self, key: CellKey) {
        if self.status.state != HearingState::InSession {
            return;
        }
        let party = match self.members.get(&key.publisher) {
            Some(m) if m.p.role == Role::PresidingJudge => key.subscriber,
            _ => key.publisher,
        };
        let name = self
            .members
            .get(&party)
            .map(|m| {
                if m.p.site.trim().is_empty() {
                    m.p.name.clone()
                } else {
                    m.p.site.clone()
                }
            })
            .unwrap_or_default();
        let change = StateChange {
            state: HearingState::Suspended,
            reason: Some(format!("Mất kết nối với {name}")),
            adjourned_to: None,
        };
        // Only refused if the state cannot move, which was checked above.
        let _ = self.set_state("system", change);
    }

    /// Tells everyone whose view of the matrix changed: the bench all of it, anyone
    /// else the cells of what they receive.
    fn tell_matrix(&mut self) {
        let mut cells: BTreeMap<(Uuid, Uuid), HealthCell> = BTreeMap::new();
        for (key, grade) in self.health.matrix.grades() {
            let cell = cells
                .entry((key.publisher, key.subscriber))
                .or_insert(HealthCell {
                    publisher: key.publisher,
                    subscriber: key.subscriber,
                    audio: None,
                    video: None,
                });
            match key.kind {
                MediaKind::Audio => cell.audio = Some(grade),
                MediaKind::Video => cell.video = Some(grade),
            }
        }
        let present: Vec<(Uuid, Role)> = self
            .members
            .values()
            .filter(|m| m.session.is_some())
            .map(|m| (m.p.id, m.p.role))
            .collect();
        for (pid, role) in present {
            let view: Vec<HealthCell> = cells
                .values()
                .filter(|c| is_bench(role) || c.subscriber == pid)
                .copied()
                .collect();
            if self.health.told.get(&pid) == Some(&view) {
                continue;
            }
            if view.is_empty() && !self.health.told.contains_key(&pid) {
                continue; // nothing to say yet
            }
            self.health.told.insert(pid, view.clone());
            self.tell(pid, ServerMessage::MediaHealth { cells: view });
        }
    }
}
