//! What a soak found: the server's readings at the baseline, after warm-up, at the
//! end and after everyone left, the audit counted against what the participants did,
//! and the verdicts ([`SoakReport::problems`]) against the goals (no leaked descriptor
//! or port, audit rows as expected, no dropped session; RSS growth is reported, and
//! judged only by the caller, since it is noisy over short runs).

use std::fmt;

use anyhow::{anyhow, Result};
use serde::Serialize;

use super::{LeaveOutcome, Sample, SoakConfig};

/// The audit trail, counted.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AuditCheck {
    pub rows: usize,
    pub joins: usize,
    /// `leave` rows, plus same-tab takeovers (below).
    pub leaves: usize,
    /// `session_replaced` rows with `same_tab`: a rejoin from the same tab reached the
    /// hearing before the old session's goodbye, so that session ended by being taken
    /// over (its late `leave` is ignored) — one ended session all the same.
    pub same_tab_takeovers: usize,
    /// `leave` rows whose reason is not `left`: sessions the server ended.
    pub leaves_not_left: Vec<String>,
    /// The server's own verification of the hash chain.
    pub chain_ok: bool,
}

impl AuditCheck {
    /// Counts `GET /api/v1/hearings/{id}/audit`'s answer.
    pub fn from_trail(trail: &serde_json::Value) -> Result<AuditCheck> {
        let entries = trail["entries"]
            .as_array()
            .ok_or_else(|| anyhow!("audit trail without entries: {trail}"))?;
        let mut check = AuditCheck {
            rows: entries.len(),
            chain_ok: trail["verification"]["ok"].as_bool() == Some(true),
            ..AuditCheck::default()
        };
        for e in entries {
            match e["action"].as_str() {
                Some("join") => check.joins += 1,
                Some("session_replaced") if e["details"]["same_tab"] == true => {
                    check.leaves += 1;
                    check.same_tab_takeovers += 1;
                }
                Some("leave") => {
                    check.leaves += 1;
                    let reason = e["details"]["reason"].as_str().unwrap_or("?");
                    if reason != "left" {
                        check.leaves_not_left.push(format!(
                            "#{} {}: {reason}",
                            e["seq"],
                            e["subject"].as_str().unwrap_or("?")
                        ));
                    }
                }
                _ => {}
            }
        }
        Ok(check)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    pub duration_s: u64,
    pub observers: usize,
    pub publishers: usize,
    pub churn_every_s: f64,
    pub video_kbps: u32,
    /// How long the churn phase really took.
    pub churn_s: f64,
    /// Successful joins (first joins and rejoins) and leaves.
    pub joins: usize,
    pub leaves: usize,
    /// RTP packets the participants received, over all their sessions.
    pub packets_received: u64,
    pub send_errors: u64,
    /// Packets the publishers' own webrtc stack refused while it had a track unbound
    /// for a renegotiation (`SendCounters::unbound`): reported, not a problem.
    pub send_unbound: u64,
    /// Sessions the clients saw closed before they left.
    pub dropped_sessions: Vec<String>,
    /// Everything else that went wrong on the way (joins that failed, peer errors).
    pub failures: Vec<String>,
    /// The server with the hearing in session and nobody in it.
    pub baseline: Sample,
    /// RSS at the end of the warm-up.
    pub rss_warm_kb: Option<u64>,
    /// The last reading with everyone present.
    pub before_leaving: Option<Sample>,
    /// After everyone left (and descriptors had time to close).
    pub settled: Option<Sample>,
    /// How long that took.
    pub settle_s: f64,
    pub rss_growth_pct: Option<f64>,
    pub audit: Option<AuditCheck>,
    pub samples: Vec<Sample>,
}

impl SoakReport {
    pub(super) fn new(cfg: &SoakConfig, baseline: Sample) -> SoakReport {
        SoakReport {
            duration_s: cfg.duration.as_secs(),
            observers: cfg.observers,
            publishers: 6,
            churn_every_s: cfg.churn_every.as_secs_f64(),
            video_kbps: cfg.clip.video_kbps,
            churn_s: 0.0,
            joins: 0,
            leaves: 0,
            packets_received: 0,
            send_errors: 0,
            send_unbound: 0,
            dropped_sessions: Vec::new(),
            failures: Vec::new(),
            baseline,
            rss_warm_kb: None,
            before_leaving: None,
            settled: None,
            settle_s: 0.0,
            rss_growth_pct: None,
            audit: None,
            samples: Vec::new(),
        }
    }

    pub(super) fn left(&mut self, outcome: LeaveOutcome) {
        self.leaves += 1;
        self.packets_received += outcome.packets;
        self.dropped_sessions.extend(outcome.dropped);
        self.failures.extend(outcome.failures);
    }

    pub(super) fn finish(&mut self) {
        if let (Some(warm), Some(end)) = (self.rss_warm_kb, self.before_leaving) {
            if warm > 0 {
                self.rss_growth_pct = Some((end.rss_kb as f64 / warm as f64 - 1.0) * 100.0);
            }
        }
    }

    /// What broke a goal: leaked descriptors or ports, audit rows that do not match
    /// what the participants did, dropped sessions, failures. Empty when it held.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        match self.settled {
            None => p.push("no reading after everyone left".to_owned()),
            Some(s) => {
                if s.fds - s.db_fds > self.baseline.fds - self.baseline.db_fds {
                    p.push(format!(
                        "descriptors leaked: {} open after everyone left ({} on the database), {} at the baseline ({} on the database)",
                        s.fds, s.db_fds, self.baseline.fds, self.baseline.db_fds
                    ));
                }
                if s.media_ports > self.baseline.media_ports {
                    p.push(format!(
                        "media ports leaked: {} bound after everyone left, {} at the baseline",
                        s.media_ports, self.baseline.media_ports
                    ));
                }
            }
        }
        match &self.audit {
            None => p.push("no audit trail".to_owned()),
            Some(a) => {
                if a.joins != self.joins || a.leaves != self.leaves {
                    p.push(format!(
                        "audit holds {} joins and {} leaves; the participants made {} and {}",
                        a.joins, a.leaves, self.joins, self.leaves
                    ));
                }
                if !a.chain_ok {
                    p.push("the audit chain does not verify".to_owned());
                }
                for l in &a.leaves_not_left {
                    p.push(format!("session dropped (audit {l})"));
                }
            }
        }
        p.extend(
            self.dropped_sessions
                .iter()
                .map(|d| format!("session dropped: {d}")),
        );
        p.extend(self.failures.iter().cloned());
        if self.packets_received == 0 {
            p.push("no media reached any participant".to_owned());
        }
        if self.send_errors > 0 {
            p.push(format!(
                "{} RTP packets could not be sent",
                self.send_errors
            ));
        }
        p
    }
}

impl fmt::Display for SoakReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mb = |kb: u64| kb as f64 / 1024.0;
        writeln!(
            f,
            "soak: {} publishers + {} observers, {:.0} s of churn (one leave/rejoin every {} s), video {} kbit/s",
            self.publishers, self.observers, self.churn_s, self.churn_every_s, self.video_kbps
        )?;
        writeln!(
            f,
            "  sessions: {} joins, {} leaves, {} RTP packets received, {} written while a track was unbound for a renegotiation",
            self.joins, self.leaves, self.packets_received, self.send_unbound
        )?;
        writeln!(
            f,
            "  {:<22} {:>9} {:>6} {:>8} {:>11}",
            "server", "RSS MB", "fds", "threads", "media ports"
        )?;
        let rows = [
            ("baseline (empty)", Some(self.baseline)),
            ("everyone present", self.before_leaving),
            ("everyone left", self.settled),
        ];
        for (name, s) in rows {
            if let Some(s) = s {
                writeln!(
                    f,
                    "  {name:<22} {:>9.1} {:>6} {:>8} {:>11}",
                    mb(s.rss_kb),
                    s.fds,
                    s.threads,
                    s.media_ports
                )?;
            }
        }
        if let Some(peak) = self.samples.iter().map(|s| s.rss_kb).max() {
            writeln!(
                f,
                "  RSS peak {:.1} MB; back at the baseline {:.1} s after everyone left",
                mb(peak),
                self.settle_s
            )?;
        }
        match (self.rss_warm_kb, self.rss_growth_pct) {
            (Some(w), Some(g)) => writeln!(
                f,
                "  RSS after warm-up {:.1} MB, growth to the end {g:+.1} %",
                mb(w)
            )?,
            _ => writeln!(
                f,
                "  RSS growth: no reading after the warm-up (run longer than it)"
            )?,
        }
        if let Some(a) = &self.audit {
            writeln!(
                f,
                "  audit: {} rows, {} join, {} leave ({} not `left`), chain {}",
                a.rows,
                a.joins,
                a.leaves,
                a.leaves_not_left.len(),
                if a.chain_ok { "verifies" } else { "BROKEN" }
            )?;
        }
        let problems = self.problems();
        if problems.is_empty() {
            writeln!(
                f,
                "  verdict: no leak, audit as expected, 0 sessions dropped"
            )
        } else {
            writeln!(f, "  verdict: {} problem(s)", problems.len())?;
            for p in problems {
                writeln!(f, "    - {p}")?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod audit_tests {
    use super::*;

    #[test]
    fn a_same_tab_takeover_ends_a_session_and_a_server_leave_is_flagged() {
        let trail = serde_json::json!({
            "verification": {"ok": true},
            "entries": [
                {"seq": 1, "action": "join", "subject": "participant:a", "details": {}},
                {"seq": 2, "action": "join", "subject": "participant:a", "details": {}},
                {"seq": 3, "action": "session_replaced", "subject": "participant:a", "details": {"same_tab": true}},
                {"seq": 4, "action": "session_replaced", "subject": "participant:a", "details": {}},
                {"seq": 5, "action": "leave", "subject": "participant:a", "details": {"reason": "left"}},
                {"seq": 6, "action": "leave", "subject": "participant:b", "details": {"reason": "connection_lost"}},
            ],
        });
        let check = AuditCheck::from_trail(&trail).expect("counted");
        assert_eq!(check.joins, 2);
        assert_eq!(check.leaves, 3, "two leaves and one same-tab takeover");
        assert_eq!(check.same_tab_takeovers, 1);
        assert_eq!(check.leaves_not_left, ["#6 participant:b: connection_lost"]);
        assert!(check.chain_ok);
    }
}
