//! Media health in the hearing: which cells exist, who is told, the integrity
//! alerts to the presiding judge and the clerk, media the court withholds, a lost
//! connection, the optional suspension, and a report that is not believed.

use openhearing_signaling::{AlertState, HealthGrade, IntegrityAlert, RemoteReception};

use super::*;
use crate::hearing::core::health::Health;
use crate::hearing::health::{Thresholds, TrackCounters};
use crate::sfu::LegCounters;

/// The publishers of `session_with_defence` and their microphone tracks.
const MICS: [&str; 3] = ["judge", "defendant", "counsel"];

/// What the SFU would count: every microphone received `n * 50` packets and forwarded
/// them on every leg the core allows, except the legs in `stalled` (publisher,
/// subscriber), which stay at `stalled_at`.
struct Sfu {
    n: u64,
    stalled: Vec<(&'static str, &'static str)>,
    stalled_at: u64,
    silent: Vec<&'static str>,
}

impl Sfu {
    fn new() -> Sfu {
        Sfu {
            n: 0,
            stalled: Vec::new(),
            stalled_at: 0,
            silent: Vec::new(),
        }
    }

    fn counters(&mut self, c: &Court) -> Vec<TrackCounters> {
        self.n += 1;
        let mut out = Vec::new();
        for publisher in MICS {
            let track = format!("{publisher}-mic");
            if !c.core.has_track(&track) {
                continue;
            }
            let received = if self.silent.contains(&publisher) {
                self.stalled_at
            } else {
                self.n * 50
            };
            let legs = PEOPLE
                .iter()
                .map(|(name, ..)| *name)
                .filter(|sub| c.subscribed(sub, &track))
                .map(|sub| {
                    let stalled = self.stalled.contains(&(publisher, sub))
                        || self.silent.contains(&publisher);
                    let forwarded = if stalled { self.stalled_at } else { received };
                    (
                        c.id(sub),
                        LegCounters {
                            forwarded,
                            dropped: 0,
                            ..LegCounters::default()
                        },
                    )
                })
                .collect();
            out.push(TrackCounters {
                track,
                publisher: c.id(publisher),
                kind: openhearing_signaling::MediaKind::Audio,
                received,
                legs,
            });
        }
        out
    }
}

fn sample(c: &mut Court, sfu: &mut Sfu) -> Vec<Effect> {
    let counters = sfu.counters(c);
    c.handle(Input::HealthSample(counters))
}

/// The defence hearing with the clerk present and every microphone on.
fn hearing() -> Court {
    let mut c = session_with_defence();
    c.join("clerk");
    for name in MICS {
        let (participant, session) = (c.id(name), c.session(name));
        c.handle(Input::MediaState {
            participant,
            session,
            audio: true,
            video: false,
        });
    }
    c
}

fn alerts_to(effects: &[Effect], session: u64) -> Vec<IntegrityAlert> {
    sent_to(effects, session)
        .into_iter()
        .filter_map(|m| match m {
            ServerMessage::IntegrityAlert(a) => Some(a.clone()),
            _ => None,
        })
        .collect()
}

/// Samples (a second apart) until an effect list holds an alert to `session`.
fn until_alert(
    c: &mut Court,
    sfu: &mut Sfu,
    session: u64,
    max: usize,
) -> Option<(usize, IntegrityAlert)> {
    for i in 0..max {
        let effects = sample(c, sfu);
        if let Some(a) = alerts_to(&effects, session).into_iter().next() {
            return Some((i, a));
        }
    }
    None
}

fn grade(c: &Court, publisher: &str, subscriber: &str) -> Option<HealthGrade> {
    let key = crate::hearing::health::CellKey {
        publisher: c.id(publisher),
        subscriber: c.id(subscriber),
        kind: openhearing_signaling::MediaKind::Audio,
    };
    c.core.health_grade(key)
}

#[test]
fn flowing_media_is_ok_and_the_bench_sees_every_cell_the_others_their_own() {
    let mut c = hearing();
    let mut sfu = Sfu::new();
    assert!(
        c.core.health_interval().is_some(),
        "someone publishes: sample"
    );
    sample(&mut c, &mut sfu);
    let effects = sample(&mut c, &mut sfu);
    assert_eq!(grade(&c, "judge", "defendant"), Some(HealthGrade::Ok));
    assert_eq!(grade(&c, "defendant", "judge"), Some(HealthGrade::Ok));
    assert!(audits(&effects).contains(&"media_health"));
    let cells = |name: &str| {
        sent_to(&effects, c.session(name))
            .into_iter()
            .find_map(|m| match m {
                ServerMessage::MediaHealth { cells } => Some(cells.clone()),
                _ => None,
            })
            .unwrap_or_default()
    };
    // Three publishers to everyone else present (the clerk receives too): 3 * 3.
    assert_eq!(cells("judge").len(), 9);
    assert_eq!(cells("clerk").len(), 9, "the clerk is of the bench");
    let own = cells("defendant");
    assert_eq!(
        own.len(),
        2,
        "the defendant gets what they receive: {own:?}"
    );
    assert!(own.iter().all(|x| x.subscriber == c.id("defendant")));
    // Nothing changed: nobody is told again.
    let effects = sample(&mut c, &mut sfu);
    assert!(sent_to(&effects, c.session("judge")).is_empty());
}

#[test]
fn a_party_who_stops_getting_the_judge_alerts_the_judge_and_the_clerk_then_recovers() {
    let mut c = hearing();
    let mut sfu = Sfu::new();
    for _ in 0..3 {
        sample(&mut c, &mut sfu);
    }
    sfu.stalled_at = sfu.n * 50;
    sfu.stalled.push(("judge", "defendant"));
    let judge = c.session("judge");
    let (waited, alert) = until_alert(&mut c, &mut sfu, judge, 12).expect("an alert");
    assert!(
        waited >= 4,
        "not before alert_after (5 s at 1 s a sample): {waited}"
    );
    assert_eq!(alert.state, AlertState::Raised);
    assert_eq!(alert.participant_id, c.id("defendant"));
    assert_eq!(
        (alert.publisher, alert.subscriber),
        (c.id("judge"), c.id("defendant"))
    );
    assert_eq!(alert.cause, "not_forwarded");
    assert_eq!(grade(&c, "judge", "defendant"), Some(HealthGrade::Lost));
    // Counsel, whose legs flow, is not a cell of the alert; nor is counsel told.
    assert_eq!(grade(&c, "judge", "counsel"), Some(HealthGrade::Ok));

    sfu.stalled.clear();
    let clerk = c.session("clerk");
    let effects = sample(&mut c, &mut sfu);
    let cleared = alerts_to(&effects, clerk);
    assert_eq!(cleared.len(), 1, "{effects:?}");
    assert_eq!(
        (cleared[0].state, cleared[0].cause.as_str()),
        (AlertState::Cleared, "recovered")
    );
    assert!(alerts_to(&effects, c.session("counsel")).is_empty());
    assert!(audits(&effects).contains(&"integrity_alert"));
}

#[test]
fn media_the_court_withholds_is_not_an_outage() {
    let mut c = hearing();
    let mut sfu = Sfu::new();
    for _ in 0..3 {
        sample(&mut c, &mut sfu);
    }
    // The court mutes the defendant: their microphone reaches no one, and sends nothing.
    let defendant = c.id("defendant");
    c.act(
        "judge",
        ClientMessage::Mute {
            participant_id: defendant,
        },
    );
    sfu.stalled_at = sfu.n * 50;
    sfu.silent.push("defendant");
    assert_eq!(
        grade(&c, "defendant", "judge"),
        Some(HealthGrade::Ok),
        "not judged yet"
    );
    let judge = c.session("judge");
    assert!(
        until_alert(&mut c, &mut sfu, judge, 10).is_none(),
        "a court mute is no outage"
    );
    assert_eq!(grade(&c, "defendant", "judge"), None, "no cell while muted");

    // A consultation: the defendant and counsel are apart from the judge.
    let mut c = hearing();
    let mut sfu = Sfu::new();
    for _ in 0..3 {
        sample(&mut c, &mut sfu);
    }
    let id = request_consultation(&mut c);
    answer(&mut c, id, true);
    sfu.stalled_at = sfu.n * 50;
    for (p, s) in [
        ("judge", "defendant"),
        ("judge", "counsel"),
        ("defendant", "judge"),
        ("counsel", "judge"),
    ] {
        sfu.stalled.push((p, s));
    }
    let judge = c.session("judge");
    assert!(
        until_alert(&mut c, &mut sfu, judge, 10).is_none(),
        "a private room is no outage"
    );
    assert_eq!(grade(&c, "judge", "defendant"), None);
    assert_eq!(
        grade(&c, "defendant", "counsel"),
        Some(HealthGrade::Ok),
        "the room's own media is judged"
    );
}

#[test]
fn a_party_whose_connection_is_lost_stays_lost_until_back() {
    let mut c = hearing();
    let mut sfu = Sfu::new();
    for _ in 0..3 {
        sample(&mut c, &mut sfu);
    }
    let (defendant, session) = (c.id("defendant"), c.session("defendant"));
    c.handle(Input::Leave {
        participant: defendant,
        session,
        reason: "connection_lost".into(),
    });
    let judge = c.session("judge");
    let (_, alert) = until_alert(&mut c, &mut sfu, judge, 8).expect("an alert");
    assert_eq!(
        (alert.participant_id, alert.cause.as_str()),
        (defendant, "disconnected")
    );

    // Counsel leaves on purpose: no alert for counsel.
    let (counsel, session) = (c.id("counsel"), c.session("counsel"));
    c.handle(Input::Leave {
        participant: counsel,
        session,
        reason: "left".into(),
    });
    for _ in 0..8 {
        let effects = sample(&mut c, &mut sfu);
        assert!(
            alerts_to(&effects, judge)
                .iter()
                .all(|a| a.participant_id != counsel),
            "leaving is no outage"
        );
    }

    // The defendant comes back and publishes: the outage ends.
    c.join("defendant");
    c.publish("defendant", "defendant-mic", MediaKind::Audio);
    let (participant, session) = (c.id("defendant"), c.session("defendant"));
    c.handle(Input::MediaState {
        participant,
        session,
        audio: true,
        video: false,
    });
    let mut cleared = Vec::new();
    for _ in 0..4 {
        let effects = sample(&mut c, &mut sfu);
        cleared.extend(
            alerts_to(&effects, judge)
                .into_iter()
                .filter(|a| a.state == AlertState::Cleared),
        );
    }
    assert!(
        cleared
            .iter()
            .any(|a| a.participant_id == defendant && a.cause == "recovered"),
        "{cleared:?}"
    );
}

#[test]
fn an_outage_can_suspend_the_hearing_by_itself() {
    let mut c = hearing();
    c.core.health = Health::new(Thresholds {
        auto_suspend_after: Some(Duration::from_secs(8)),
        ..Thresholds::default()
    });
    let mut sfu = Sfu::new();
    for _ in 0..3 {
        sample(&mut c, &mut sfu);
    }
    sfu.stalled_at = sfu.n * 50;
    sfu.silent.push("defendant");
    for _ in 0..12 {
        sample(&mut c, &mut sfu);
        if c.core.status.state == HearingState::Suspended {
            break;
        }
    }
    assert_eq!(c.core.status.state, HearingState::Suspended);
    assert_eq!(
        c.core.status.reason.as_deref(),
        Some("Mất kết nối với Courtroom")
    );
}

#[test]
fn a_report_claiming_media_never_forwarded_is_flagged_audited_once_and_ignored() {
    let mut c = hearing();
    let mut sfu = Sfu::new();
    for _ in 0..3 {
        sample(&mut c, &mut sfu);
    }
    // The defendant's microphone stops reaching counsel; counsel's client claims it
    // hears the defendant, and the (silent) observer too.
    sfu.stalled_at = sfu.n * 50;
    sfu.stalled.push(("defendant", "counsel"));
    let lie = |c: &Court, packets: u64| {
        vec![
            RemoteReception {
                participant_id: c.id("defendant"),
                audio: Some(openhearing_signaling::AudioReception {
                    packets_received: packets,
                    samples_received: packets * 960,
                    concealed_samples: 0,
                }),
                video: None,
            },
            RemoteReception {
                participant_id: c.id("observer"),
                audio: None,
                video: Some(openhearing_signaling::VideoReception {
                    packets_received: 0,
                    frames_decoded: 300,
                    freeze_ms: 0,
                }),
            },
        ]
    };
    let mut audited = 0;
    for i in 0..4 {
        let counters = sfu.counters(&c);
        let (participant, session) = (c.id("counsel"), c.session("counsel"));
        let effects = c.handle(Input::MediaReport {
            participant,
            session,
            remotes: lie(&c, 10_000 + i * 1000),
            counters,
        });
        audited += audits(&effects)
            .iter()
            .filter(|a| **a == "media_report_flagged")
            .count();
        sample(&mut c, &mut sfu);
    }
    assert_eq!(audited, 1, "audited once per session");
    assert_eq!(c.core.flagged_reports(), 8, "both entries of four reports");
    assert_eq!(
        grade(&c, "defendant", "counsel"),
        Some(HealthGrade::Lost),
        "the server's counters win"
    );
}
