//! A link used on a second device (`lobby`, `refuse`, `replace`), when links work,
//! and join/leave notices coalesced while a participant flaps.

use std::time::Duration;

use openhearing_signaling::DeviceEvent;

use super::*;

fn court(second_device: SecondDevice) -> Court {
    let joins = JoinPolicy {
        second_device,
        ..JoinPolicy::default()
    };
    Court::with_policy(HearingState::Open, false, Recording::Off, joins)
}

fn device(n: u8, ua: &str) -> Device {
    Device::new(Some(format!("192.0.2.{n}:40000")), Some(ua))
}

/// The `second_device` notices sent to `session`.
fn device_notices(effects: &[Effect], session: u64) -> Vec<(Uuid, DeviceEvent, Option<String>)> {
    sent_to(effects, session)
        .into_iter()
        .filter_map(|m| match m {
            ServerMessage::SecondDevice {
                participant_id,
                event,
                user_agent,
                ..
            } => Some((*participant_id, *event, user_agent.clone())),
            _ => None,
        })
        .collect()
}

/// Just the events of [`device_notices`].
fn events_to(effects: &[Effect], session: u64) -> Vec<DeviceEvent> {
    device_notices(effects, session)
        .into_iter()
        .map(|(_, e, _)| e)
        .collect()
}

/// The audit details of the first entry named `action`.
fn audit_details(effects: &[Effect], action: &str) -> serde_json::Value {
    effects
        .iter()
        .find_map(|e| match e {
            Effect::Audit(r) if r.action == action => serde_json::from_str(&r.details).ok(),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no {action} audit in {effects:?}"))
}

/// Judge, clerk and counsel present; the defendant admitted and connected from
/// device 1.
fn seated(second_device: SecondDevice) -> Court {
    let mut c = court(second_device);
    c.join("judge");
    c.join("clerk");
    c.join("counsel");
    let (_, r) = c.try_join_from("defendant", device(1, "Firefox on the detention PC"));
    assert!(matches!(r, Ok(ServerMessage::Welcome(_))), "{r:?}");
    let defendant = c.id("defendant");
    c.act(
        "judge",
        ClientMessage::Admit {
            participant_id: defendant,
        },
    );
    c
}

#[test]
fn by_default_a_second_device_waits_and_the_first_keeps_its_seat() {
    let mut c = seated(SecondDevice::Lobby);
    let defendant = c.id("defendant");
    let first = c.session("defendant");
    let (effects, r) = c.try_join_from("defendant", device(9, "Chrome elsewhere"));
    assert!(
        matches!(r, Ok(ServerMessage::DeviceWaiting { .. })),
        "{r:?}"
    );
    let waiting = c.session("defendant");
    assert!(kicks(&effects).is_empty(), "nobody is closed: {effects:?}");
    assert_eq!(c.member("defendant").session, Some(first));
    assert_eq!(audits(&effects), ["second_device_waiting"]);
    let d = audit_details(&effects, "second_device_waiting");
    assert_eq!(d["first"]["source"], "192.0.2.1:40000");
    assert_eq!(d["first"]["user_agent"], "Firefox on the detention PC");
    assert_eq!(d["second"]["source"], "192.0.2.9:40000");
    assert_eq!(d["second"]["user_agent"], "Chrome elsewhere");
    let told = (
        defendant,
        DeviceEvent::Waiting,
        Some("Chrome elsewhere".to_owned()),
    );
    for court in ["judge", "clerk"] {
        assert_eq!(
            device_notices(&effects, c.session(court)),
            std::slice::from_ref(&told)
        );
    }
    assert!(device_notices(&effects, c.session("counsel")).is_empty());
    assert!(
        sent_to(&effects, c.session("counsel")).is_empty(),
        "the others see nothing"
    );

    // The waiting device is not the participant: what it sends is ignored.
    let effects = c.handle(Input::MediaState {
        participant: defendant,
        session: waiting,
        audio: true,
        video: true,
    });
    assert!(effects.is_empty());

    // A judge joining later learns of it after their welcome.
    let judge_session = c.session("judge");
    c.handle(Input::Leave {
        participant: c.id("judge"),
        session: judge_session,
        reason: "left".into(),
    });
    let effects = c.join("judge");
    assert_eq!(
        events_to(&effects, c.session("judge")),
        [DeviceEvent::Waiting]
    );

    // Refused: it is closed; the first device stays.
    let effects = c.act(
        "judge",
        ClientMessage::RefuseDevice {
            participant_id: defendant,
        },
    );
    assert_eq!(kicks(&effects).len(), 1);
    assert_eq!(kicks(&effects)[0].0, waiting);
    assert_eq!(kicks(&effects)[0].1, ErrorCode::SecondDeviceRefused);
    assert_eq!(audits(&effects), ["second_device_refused"]);
    assert_eq!(c.member("defendant").session, Some(first));
    assert!(c.member("defendant").waiting.is_none());
    let (code, _) = c.refused(
        "judge",
        ClientMessage::RefuseDevice {
            participant_id: defendant,
        },
    );
    assert_eq!(code, ErrorCode::NotApplicable, "nothing waits any more");
}

#[test]
fn admitting_the_waiting_device_replaces_the_first() {
    let mut c = seated(SecondDevice::Lobby);
    let defendant = c.id("defendant");
    let first = c.session("defendant");
    let _ = c.try_join_from("defendant", device(9, "Chrome elsewhere"));
    let second = c.session("defendant");
    let (code, _) = c.refused(
        "counsel",
        ClientMessage::AdmitDevice {
            participant_id: defendant,
        },
    );
    assert_eq!(code, ErrorCode::PermissionDenied);

    let effects = c.act(
        "judge",
        ClientMessage::AdmitDevice {
            participant_id: defendant,
        },
    );
    assert_eq!(kicks(&effects).len(), 1);
    assert_eq!(
        (kicks(&effects)[0].0, kicks(&effects)[0].1),
        (first, ErrorCode::Replaced)
    );
    assert_eq!(c.member("defendant").session, Some(second));
    assert_eq!(c.member("defendant").p.admission, Admission::Admitted);
    assert!(audits(&effects).contains(&"session_replaced"));
    let d = audit_details(&effects, "session_replaced");
    assert_eq!(d["first"]["source"], "192.0.2.1:40000");
    assert_eq!(d["second"]["source"], "192.0.2.9:40000");
    assert!(
        sent_to(&effects, second)
            .iter()
            .any(|m| matches!(m, ServerMessage::Welcome(_))),
        "the seated device gets its welcome"
    );
    assert_eq!(
        events_to(&effects, c.session("judge")),
        [DeviceEvent::Replaced]
    );
}

#[test]
fn a_waiting_device_that_goes_away_is_withdrawn_and_a_third_replaces_it() {
    let mut c = seated(SecondDevice::Lobby);
    let defendant = c.id("defendant");
    let _ = c.try_join_from("defendant", device(9, "B"));
    let second = c.session("defendant");
    let (effects, _) = c.try_join_from("defendant", device(10, "C"));
    let third = c.session("defendant");
    assert_eq!(kicks(&effects).len(), 1);
    assert_eq!(
        (kicks(&effects)[0].0, kicks(&effects)[0].1),
        (second, ErrorCode::Replaced)
    );
    assert_eq!(
        events_to(&effects, c.session("judge")),
        [DeviceEvent::Withdrawn, DeviceEvent::Waiting]
    );
    let effects = c.handle(Input::Leave {
        participant: defendant,
        session: third,
        reason: "connection_lost".into(),
    });
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::Release(s) if *s == third)));
    assert!(
        audits(&effects).is_empty(),
        "the seated device did not leave"
    );
    assert_eq!(
        events_to(&effects, c.session("judge")),
        [DeviceEvent::Withdrawn]
    );
    assert!(c.member("defendant").session.is_some());
}

#[test]
fn the_seated_tab_reconnecting_takes_its_seat_back_at_once() {
    let mut c = court(SecondDevice::Lobby);
    c.join("judge");
    let tab = Some("4f1c2a9be07d4c55a1b2c3d4e5f60718".to_owned());
    let (_, r) = c.try_join_from("defendant", device(1, "Firefox").with_tab(tab.clone()));
    assert!(matches!(r, Ok(ServerMessage::Welcome(_))));
    let first = c.session("defendant");
    // The same tab again (its old connection not yet seen gone): no waiting.
    let (effects, r) = c.try_join_from("defendant", device(1, "Firefox").with_tab(tab));
    assert!(matches!(r, Ok(ServerMessage::Welcome(_))), "{r:?}");
    assert_eq!(kicks(&effects)[0].0, first);
    assert_eq!(audits(&effects), ["session_replaced", "join"]);
    assert_eq!(
        audit_details(&effects, "session_replaced")["same_tab"],
        true
    );
    assert!(
        device_notices(&effects, c.session("judge")).is_empty(),
        "not the court's business"
    );
    // Another tab id, or none, or a short guessable one, is a second device.
    for other in [
        Some("0000000000000000000000000000000a".to_owned()),
        None,
        Some("4f1c".to_owned()),
    ] {
        let (_, r) = c.try_join_from("defendant", device(1, "Firefox").with_tab(other));
        assert!(
            matches!(r, Ok(ServerMessage::DeviceWaiting { .. })),
            "{r:?}"
        );
    }
}

#[test]
fn refuse_mode_turns_the_second_device_away() {
    let mut c = seated(SecondDevice::Refuse);
    let first = c.session("defendant");
    let (effects, r) = c.try_join_from("defendant", device(9, "B"));
    assert_eq!(
        r.unwrap_err().refusal().code,
        ErrorCode::SecondDeviceRefused
    );
    assert!(kicks(&effects).is_empty());
    assert_eq!(c.member("defendant").session, Some(first));
    assert_eq!(audits(&effects), ["second_device_refused"]);
    assert_eq!(
        events_to(&effects, c.session("judge")),
        [DeviceEvent::Refused]
    );
}

#[test]
fn replace_mode_replaces_but_audits_both_devices_and_tells_the_court() {
    let mut c = seated(SecondDevice::Replace);
    let first = c.session("defendant");
    let (effects, r) = c.try_join_from("defendant", device(9, "B"));
    assert!(matches!(r, Ok(ServerMessage::Welcome(_))));
    assert_eq!(kicks(&effects)[0].0, first);
    assert_eq!(audits(&effects), ["session_replaced", "join"]);
    let d = audit_details(&effects, "session_replaced");
    assert_eq!(d["first"]["user_agent"], "Firefox on the detention PC");
    assert_eq!(d["second"]["user_agent"], "B");
    assert_eq!(
        audit_details(&effects, "join")["device"]["source"],
        "192.0.2.9:40000"
    );
    assert_eq!(
        events_to(&effects, c.session("judge")),
        [DeviceEvent::Replaced]
    );
}

#[test]
fn removing_a_participant_also_closes_their_waiting_device() {
    let mut c = seated(SecondDevice::Lobby);
    let defendant = c.id("defendant");
    let _ = c.try_join_from("defendant", device(9, "B"));
    let waiting = c.session("defendant");
    let effects = c.act(
        "judge",
        ClientMessage::Remove {
            participant_id: defendant,
            reason: None,
        },
    );
    assert!(kicks(&effects)
        .iter()
        .any(|(s, code, _)| *s == waiting && *code == ErrorCode::Removed));
    assert!(c.member("defendant").waiting.is_none());
}

#[test]
fn links_open_shortly_before_the_hearing_date_and_follow_an_adjournment() {
    let mut c = court(SecondDevice::Lobby);
    c.core.status.state = HearingState::Scheduled;
    let in_two_hours = c.now + chrono::Duration::hours(2);
    c.core.hearing.scheduled_at = Some(crate::model::rfc3339(in_two_hours));
    let (effects, r) = c.try_join("judge");
    let refusal = r.unwrap_err().refusal();
    assert_eq!(refusal.code, ErrorCode::LinkNotYetValid);
    assert!(
        refusal.message.contains("60 minutes"),
        "{}",
        refusal.message
    );
    assert!(audits(&effects).is_empty(), "a refused join is not audited");

    // An hour before, it works.
    c.now = in_two_hours - chrono::Duration::minutes(60) - chrono::Duration::seconds(1);
    assert!(matches!(
        c.try_join("judge").1,
        Ok(ServerMessage::Welcome(_))
    ));

    // Adjourned to a later date: links wait for that date.
    c.core.status.state = HearingState::Adjourned;
    c.core.status.adjourned_to = Some(in_two_hours + chrono::Duration::days(7));
    let r = c.try_join("clerk").1;
    assert_eq!(r.unwrap_err().refusal().code, ErrorCode::LinkNotYetValid);

    // Once the hearing is open it takes its links at any time.
    c.core.status.state = HearingState::Open;
    assert!(matches!(
        c.try_join("clerk").1,
        Ok(ServerMessage::Welcome(_))
    ));
}

#[test]
fn a_flapping_participant_costs_the_others_one_leave_and_one_join() {
    let mut c = court(SecondDevice::Lobby);
    c.join("judge");
    let judge = c.session("judge");
    let counsel = c.id("counsel");
    let flap = |c: &mut Court| {
        let mut all = c.join("counsel");
        let session = c.session("counsel");
        all.extend(c.handle(Input::Leave {
            participant: counsel,
            session,
            reason: "connection_lost".into(),
        }));
        all
    };
    let mut told = Vec::new();
    for _ in 0..4 {
        told.extend(flap(&mut c));
    }
    let kinds = |effects: &[Effect]| -> Vec<&'static str> {
        sent_to(effects, judge)
            .into_iter()
            .filter(|m| {
                matches!(
                    m,
                    ServerMessage::ParticipantJoined { .. } | ServerMessage::ParticipantLeft { .. }
                )
            })
            .map(ServerMessage::kind)
            .collect()
    };
    assert_eq!(
        kinds(&told),
        [
            "participant_joined",
            "participant_left",
            "participant_joined"
        ],
        "after the first pair the next leave is held, and rejoins are updates"
    );
    // Nothing more is due before the window passes; then the held leave is told.
    assert!(c.core.next_wakeup().unwrap() <= Duration::from_secs(10));
    c.now += chrono::Duration::seconds(10);
    let effects = c.handle(Input::Tick);
    assert_eq!(kinds(&effects), ["participant_left"]);
    assert!(!effects.iter().any(|e| matches!(e, Effect::Stop)));
    assert!(c.core.next_notice().is_none());
}

#[test]
fn closing_the_hearing_closes_a_waiting_device_too() {
    let mut c = seated(SecondDevice::Lobby);
    let defendant = c.id("defendant");
    let first = c.session("defendant");
    let _ = c.try_join_from("defendant", device(9, "B"));
    let waiting = c.session("defendant");
    c.handle(Input::Leave {
        participant: defendant,
        session: first,
        reason: "left".into(),
    });
    assert!(c.member("defendant").waiting.is_some(), "it still waits");
    let effects = c.set_state("judge", HearingState::Closed, None);
    assert!(kicks(&effects)
        .iter()
        .any(|(s, code, _)| *s == waiting && *code == ErrorCode::HearingClosed));
}
