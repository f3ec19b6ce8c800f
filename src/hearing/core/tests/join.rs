//! Joins, reconnects, tracks, legs and idleness.

use super::*;

#[test]
fn an_auto_admitted_role_enters_and_others_wait_in_the_lobby_from_now() {
    let mut c = Court::new(HearingState::Open);
    let effects = c.join("judge");
    assert_eq!(audits(&effects), ["join"]);
    assert_eq!(c.member("judge").p.admission, Admission::Admitted);
    assert!(
        participant_writes(&effects).is_empty(),
        "stored as admitted already"
    );

    let effects = c.join("defendant");
    let defendant = c.member("defendant");
    assert_eq!(defendant.p.admission, Admission::Lobby);
    assert_eq!(defendant.lobby_since, Some(c.now));
    let told = sent_to(&effects, c.session("judge"));
    assert!(matches!(
        told[..],
        [ServerMessage::ParticipantJoined { participant }] if participant.id == c.id("defendant")
    ));
    assert!(sent_to(&effects, c.session("defendant")).is_empty());
    assert!(c.core.idle_timeout().is_none(), "someone is connected");
}

#[test]
fn a_role_admitted_at_once_by_the_configuration_is_stored_as_admitted_on_join() {
    let mut c = Court::new(HearingState::Open);
    // Stored in the lobby when created, but the configuration admits clerks now.
    c.core.members.get_mut(&c.id("clerk")).unwrap().p.admission = Admission::Lobby;
    let effects = c.join("clerk");
    assert_eq!(
        participant_writes(&effects),
        [(c.id("clerk"), Admission::Admitted, false)]
    );
    assert_eq!(c.member("clerk").lobby_since, None);
}

#[test]
fn joins_are_refused_with_their_own_codes() {
    let mut c = Court::new(HearingState::Open);
    let counsel = c.id("counsel");
    c.core.members.get_mut(&counsel).unwrap().p.link_version = 2;
    let request = c.request();
    let mut effects = c.handle(Input::Join {
        request,
        participant: counsel,
        link_version: 1,
        session: 99,
        device: Default::default(),
    });
    assert!(matches!(
        take_reply(&mut effects, request),
        Reply::Join(Err(JoinError::Refused(Refusal {
            code: ErrorCode::LinkRevoked,
            ..
        })))
    ));
    assert!(
        effects.is_empty(),
        "a refused join changes nothing: {effects:?}"
    );

    let request = c.request();
    let mut effects = c.handle(Input::Join {
        request,
        participant: Uuid::new_v4(),
        link_version: 1,
        session: 100,
        device: Default::default(),
    });
    assert!(matches!(
        take_reply(&mut effects, request),
        Reply::Join(Err(JoinError::Refused(Refusal {
            code: ErrorCode::ParticipantUnknown,
            ..
        })))
    ));

    c.core
        .members
        .get_mut(&c.id("witness"))
        .unwrap()
        .p
        .admission = Admission::Removed;
    let (_, r) = c.try_join("witness");
    assert_eq!(
        r.unwrap_err().refusal(),
        Refusal::new(
            ErrorCode::Removed,
            "the court removed you from this hearing"
        )
    );

    c.core.status.state = HearingState::Closed;
    let (_, r) = c.try_join("judge");
    assert_eq!(r.unwrap_err().refusal().code, ErrorCode::HearingClosed);
}

#[test]
fn a_second_session_replaces_the_first_and_keeps_the_private_room() {
    let mut c = session_with_defence();
    let defendant = c.id("defendant");
    let id = request_consultation(&mut c);
    answer(&mut c, id, true);
    let room = c.core.status.rooms[0].clone();
    let old = c.session("defendant");

    let effects = c.join("defendant");
    let new = c.session("defendant");
    assert_ne!(old, new);
    assert_eq!(
        kicks(&effects),
        [(
            old,
            ErrorCode::Replaced,
            "you joined this hearing from another window or device".to_owned()
        )]
    );
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::Release(s) if *s == old)));
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::DropTrack(t) if t == "defendant-mic")));
    assert!(
        sent_to(&effects, old).is_empty(),
        "nothing more for the old session"
    );
    assert_eq!(c.core.status.rooms, [room], "still in the consultation");
    assert!(c.member("defendant").tracks.is_empty());

    // The old session's late goodbye and tracks do not touch the new one.
    let effects = c.handle(Input::Leave {
        participant: defendant,
        session: old,
        reason: "left".into(),
    });
    assert!(effects.is_empty());
    let effects = c.handle(Input::TrackPublished {
        participant: defendant,
        session: old,
        track: "late".into(),
        kind: MediaKind::Audio,
    });
    assert!(effects.is_empty() && !c.core.has_track("late"));
    assert!(c.member("defendant").session == Some(new));
}

#[test]
fn a_leave_drops_tracks_and_legs_and_tells_the_others() {
    let mut c = session_with_defence();
    assert!(c.subscribed("judge", "defendant-mic"));
    let session = c.session("defendant");
    let effects = c.handle(Input::Leave {
        participant: c.id("defendant"),
        session,
        reason: "left".into(),
    });
    assert_eq!(audits(&effects), ["leave"]);
    assert!(!c.subscribed("judge", "defendant-mic"));
    assert!(!c.subscribed("defendant", "judge-mic"));
    let judge = c.session("judge");
    assert!(effects.iter().any(
        |e| matches!(e, Effect::Unsubscribe { session, track } if *session == judge && track == "defendant-mic")
    ));
    assert!(matches!(
        sent_to(&effects, judge)[..],
        [ServerMessage::ParticipantLeft { participant_id, .. }] if *participant_id == c.id("defendant")
    ));
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::Release(s) if *s == session)));
    assert!(!c.member("defendant").tracks.iter().any(|_| true));
}

#[test]
fn legs_are_subscribed_then_attached_only_while_allowed() {
    let mut c = Court::new(HearingState::InSession);
    c.join("judge");
    c.join("clerk");
    let effects = c.publish("judge", "judge-cam", MediaKind::Video);
    let clerk = c.session("clerk");
    assert!(effects.iter().any(
        |e| matches!(e, Effect::Subscribe { session, track } if *session == clerk && track == "judge-cam")
    ));
    let ready = |c: &mut Court, session| {
        c.handle(Input::LegReady {
            subscriber: c.id("clerk"),
            session,
            track: "judge-cam".into(),
        })
    };
    let effects = ready(&mut c, clerk);
    assert!(matches!(
        effects[..],
        [Effect::AttachLeg { ref track, subscriber }] if track == "judge-cam" && subscriber == c.id("clerk")
    ));
    assert!(
        ready(&mut c, clerk + 100).is_empty(),
        "not the current session"
    );

    // Adjourned: nothing flows; a leg reported ready afterwards is not attached.
    let effects = c.set_state("judge", HearingState::Adjourned, Some("the expert is ill"));
    assert!(effects.iter().any(
        |e| matches!(e, Effect::CutLeg { track, subscriber } if track == "judge-cam" && *subscriber == c.id("clerk"))
    ));
    assert!(ready(&mut c, clerk).is_empty());
}

#[test]
fn a_track_the_role_may_not_publish_reaches_nobody() {
    let mut c = Court::new(HearingState::InSession);
    c.join("judge");
    c.join("observer");
    let effects = c.publish("observer", "observer-mic", MediaKind::Audio);
    assert_eq!(
        errors_to(&effects, c.session("observer")),
        [(
            ErrorCode::PermissionDenied,
            "your role may not publish audio; that track reaches nobody".to_owned()
        )]
    );
    assert!(!effects
        .iter()
        .any(|e| matches!(e, Effect::Subscribe { .. })));
    assert!(
        c.core.has_track("observer-mic"),
        "accepted, forwarded to nobody"
    );
    // A second video track is the screen.
    c.publish("judge", "cam", MediaKind::Video);
    c.publish("judge", "screen", MediaKind::Video);
    let sources: Vec<_> = c.member("judge").tracks.iter().map(|t| t.source).collect();
    assert_eq!(
        sources,
        [
            crate::hearing::policy::Source::Camera,
            crate::hearing::policy::Source::Screen
        ]
    );
    assert!(c.core.is_screen("screen") && !c.core.is_screen("cam"));
}

#[test]
fn a_second_video_track_is_a_screen_share_only_for_a_role_with_publish_screen() {
    let mut c = session_with_defence();
    let subscribes = |effects: &[Effect], track: &str| {
        effects
            .iter()
            .filter(|e| matches!(e, Effect::Subscribe { track: t, .. } if t == track))
            .count()
    };
    // Defence counsel may share a screen: the judge and the defendant receive it.
    c.publish("counsel", "counsel-cam", MediaKind::Video);
    let effects = c.publish("counsel", "counsel-screen", MediaKind::Video);
    assert!(errors_to(&effects, c.session("counsel")).is_empty());
    assert_eq!(subscribes(&effects, "counsel-screen"), 2);
    assert!(c.subscribed("judge", "counsel-screen"));
    assert!(c.core.is_screen("counsel-screen") && !c.core.is_screen("counsel-cam"));
    // The defendant may not: the second video track is refused and reaches nobody,
    // while the camera flows.
    c.publish("defendant", "defendant-cam", MediaKind::Video);
    assert!(c.subscribed("judge", "defendant-cam"));
    let effects = c.publish("defendant", "defendant-screen", MediaKind::Video);
    assert_eq!(
        errors_to(&effects, c.session("defendant")),
        [(
            ErrorCode::PermissionDenied,
            "your role may not publish screen; that track reaches nobody".to_owned()
        )]
    );
    assert_eq!(subscribes(&effects, "defendant-screen"), 0);
    assert!(!c.subscribed("judge", "defendant-screen"));
    // Sharing stopped (the track ended): its legs go, the camera's stay.
    let effects = c.handle(Input::TrackEnded {
        participant: c.id("counsel"),
        session: c.session("counsel"),
        track: "counsel-screen".into(),
    });
    assert!(!c.subscribed("judge", "counsel-screen"));
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::Unsubscribe { track, .. } if track == "counsel-screen")));
    assert!(c.subscribed("judge", "counsel-cam"));
}

#[test]
fn a_track_the_sfu_saw_end_is_skipped_until_removed() {
    let mut c = session_with_defence();
    c.core.note_ended("judge-mic");
    assert!(
        c.subscribed("defendant", "judge-mic"),
        "nothing happens at once"
    );
    // The next decision drops its legs without cutting them (the SFU did).
    let id = c.id("counsel");
    let effects = c.act("judge", ClientMessage::Mute { participant_id: id });
    assert!(!c.subscribed("defendant", "judge-mic"));
    assert!(!effects
        .iter()
        .any(|e| matches!(e, Effect::CutLeg { track, .. } if track == "judge-mic")));
    let effects = c.handle(Input::TrackEnded {
        participant: c.id("judge"),
        session: c.session("judge"),
        track: "judge-mic".into(),
    });
    assert!(matches!(effects[..], [Effect::DropTrack(ref t)] if t == "judge-mic"));
    assert!(!c.core.has_track("judge-mic"));
}

#[test]
fn media_and_connection_changes_are_announced_once() {
    let mut c = Court::new(HearingState::Open);
    c.join("judge");
    c.join("clerk");
    let input = |c: &Court| Input::Connection {
        participant: c.id("clerk"),
        session: c.session("clerk"),
        connection: openhearing_signaling::Connection::Connected,
    };
    let effects = c.handle(input(&c));
    assert_eq!(sent_to(&effects, c.session("judge")).len(), 1);
    assert_eq!(sent_to(&effects, c.session("clerk")).len(), 1);
    assert!(c.handle(input(&c)).is_empty(), "no change, no news");
}

#[test]
fn an_idle_hearing_stops_on_the_tick_and_a_present_one_does_not() {
    let mut c = Court::new(HearingState::Open);
    assert_eq!(c.core.idle_timeout(), Some(Duration::from_secs(30)));
    assert!(matches!(c.handle(Input::Tick)[..], [Effect::Stop]));
    c.join("judge");
    assert_eq!(c.core.idle_timeout(), None);
    assert!(c.handle(Input::Tick).is_empty());
    let session = c.session("judge");
    c.handle(Input::Leave {
        participant: c.id("judge"),
        session,
        reason: "left".into(),
    });
    assert!(c.core.idle_timeout().is_some());
}

#[test]
fn a_refused_sending_offer_is_audited_for_the_current_session_only() {
    let mut c = Court::new(HearingState::Open);
    c.join("observer");
    let (observer, session) = (c.id("observer"), c.session("observer"));
    let effects = c.handle(Input::PublishRefused {
        participant: observer,
        session,
    });
    assert_eq!(audits(&effects), ["publish_refused"]);
    // A stale session (already replaced) leaves no record in the new one's name.
    let effects = c.handle(Input::PublishRefused {
        participant: observer,
        session: session + 1000,
    });
    assert!(audits(&effects).is_empty());
}
