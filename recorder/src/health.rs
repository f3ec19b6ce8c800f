//! Media health in the record: from the journal's `media_health` events (one per
//! change of a (publisher → subscriber) cell's verdict, written by the server while
//! recording), per pair and kind, the share of in-session time it was `ok` and the
//! outages with their times — what `archive info` prints to show, afterwards, who
//! could see and hear whom.
//!
//! In-session time is the archive's own: from the verdict's first event to its last
//! (or the end of the journal), less the time recording was paused (the hearing was
//! suspended). Only what the journal holds is used, so this works on any archive; one
//! without such events has no pairs.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::journal::{Entry, Line};
use crate::types::EventKind;

/// A time a cell was not `ok`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outage {
    /// `lost` or `degraded`.
    pub grade: String,
    pub cause: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// One (publisher → subscriber, kind) over the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairHealth {
    pub publisher: String,
    pub subscriber: String,
    pub kind: String,
    /// In-session milliseconds with a verdict, and of those `ok`.
    pub judged_ms: i64,
    pub ok_ms: i64,
    pub outages: Vec<Outage>,
}

impl PairHealth {
    /// The share of judged in-session time that was `ok`, in percent.
    pub fn ok_percent(&self) -> f64 {
        if self.judged_ms <= 0 {
            return 100.0;
        }
        100.0 * self.ok_ms as f64 / self.judged_ms as f64
    }
}

/// A verdict that holds from `since`.
struct Open {
    grade: String,
    cause: String,
    since: DateTime<Utc>,
}

/// Milliseconds of `[a, b)` outside every pause.
fn active_ms(a: DateTime<Utc>, b: DateTime<Utc>, pauses: &[(DateTime<Utc>, DateTime<Utc>)]) -> i64 {
    let mut ms = (b - a).num_milliseconds().max(0);
    for (p, q) in pauses {
        let (lo, hi) = ((*p).max(a), (*q).min(b));
        if hi > lo {
            ms -= (hi - lo).num_milliseconds();
        }
    }
    ms.max(0)
}

/// The pairs' health from a journal's lines, in the order they first appear.
pub fn summarize(lines: &[Line]) -> Vec<PairHealth> {
    let end = lines.last().map(|l| l.at).unwrap_or_default();
    let mut pauses = Vec::new();
    let mut paused: Option<DateTime<Utc>> = None;
    for l in lines {
        match &l.entry {
            Entry::Paused { .. } => paused = paused.or(Some(l.at)),
            Entry::Resumed => {
                if let Some(p) = paused.take() {
                    pauses.push((p, l.at));
                }
            }
            _ => {}
        }
    }
    if let Some(p) = paused {
        pauses.push((p, end));
    }

    let mut pairs: Vec<(PairHealth, Option<Open>)> = Vec::new();
    for l in lines {
        let Entry::Event { event } = &l.entry else {
            continue;
        };
        if event.kind != EventKind::MediaHealth {
            continue;
        }
        let d = &event.details;
        let text = |k: &str| d.get(k).and_then(Value::as_str).map(str::to_owned);
        let (Some(publisher), Some(subscriber), Some(kind)) =
            (text("publisher"), text("subscriber"), text("kind"))
        else {
            continue;
        };
        let at = event.at;
        let i = match pairs.iter().position(|(p, _)| {
            p.publisher == publisher && p.subscriber == subscriber && p.kind == kind
        }) {
            Some(i) => i,
            None => {
                pairs.push((
                    PairHealth {
                        publisher,
                        subscriber,
                        kind,
                        judged_ms: 0,
                        ok_ms: 0,
                        outages: Vec::new(),
                    },
                    None,
                ));
                pairs.len() - 1
            }
        };
        let (pair, open) = &mut pairs[i];
        if let Some(o) = open.take() {
            close(pair, o, at, &pauses);
        }
        if let Some(grade) = text("to") {
            let cause = text("cause").unwrap_or_default();
            *open = Some(Open {
                grade,
                cause,
                since: at,
            });
        }
    }
    pairs
        .into_iter()
        .map(|(mut pair, open)| {
            if let Some(o) = open {
                close(&mut pair, o, end, &pauses);
            }
            pair
        })
        .collect()
}

/// Adds the verdict `o`, held until `to`, to the pair's totals.
fn close(
    pair: &mut PairHealth,
    o: Open,
    to: DateTime<Utc>,
    pauses: &[(DateTime<Utc>, DateTime<Utc>)],
) {
    let ms = active_ms(o.since, to, pauses);
    pair.judged_ms += ms;
    if o.grade == "ok" {
        pair.ok_ms += ms;
    } else {
        pair.outages.push(Outage {
            grade: o.grade,
            cause: o.cause,
            from: o.since,
            to,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::HearingEvent;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_780_000_000 + secs, 0).expect("a time")
    }

    fn line(secs: i64, entry: Entry) -> Line {
        Line {
            seq: secs as u64,
            prev_hash: String::new(),
            at: t(secs),
            entry,
            hash: String::new(),
        }
    }

    fn health(secs: i64, kind: &str, from: Option<&str>, to: Option<&str>, cause: &str) -> Line {
        line(
            secs,
            Entry::Event {
                event: HearingEvent {
                    at: t(secs),
                    kind: EventKind::MediaHealth,
                    actor: Some("system".into()),
                    subject: None,
                    details: serde_json::json!({
                        "publisher": "p", "subscriber": "s", "kind": kind,
                        "from": from, "to": to, "cause": cause,
                    }),
                },
            },
        )
    }

    #[test]
    fn shares_and_outages_leave_out_the_suspended_time() {
        let lines = vec![
            health(0, "audio", None, Some("ok"), "flowing"),
            health(60, "audio", Some("ok"), Some("lost"), "reports_stopped"),
            line(
                70,
                Entry::Paused {
                    reason: "suspended".into(),
                },
            ),
            line(100, Entry::Resumed),
            health(110, "audio", Some("lost"), Some("ok"), "flowing"),
            health(140, "audio", Some("ok"), None, "not_expected"),
            health(150, "video", None, Some("degraded"), "frozen"),
            line(160, Entry::Resumed),
        ];
        let pairs = summarize(&lines);
        assert_eq!(pairs.len(), 2);
        let audio = &pairs[0];
        // 0-60 ok, 60-110 lost less 30 s paused, 110-140 ok.
        assert_eq!((audio.ok_ms, audio.judged_ms), (90_000, 110_000));
        assert_eq!(audio.outages.len(), 1);
        let o = &audio.outages[0];
        assert_eq!(
            (o.grade.as_str(), o.cause.as_str(), o.from, o.to),
            ("lost", "reports_stopped", t(60), t(110))
        );
        assert!((audio.ok_percent() - 81.8).abs() < 0.1);
        // The video verdict holds to the end of the journal.
        let video = &pairs[1];
        assert_eq!((video.ok_ms, video.judged_ms), (0, 10_000));
        assert_eq!(video.outages[0].to, t(160));
    }

    #[test]
    fn an_archive_without_health_events_has_no_pairs() {
        assert!(summarize(&[line(0, Entry::Resumed)]).is_empty());
    }
}
