//! Court mutes, the unmute handshake, lock and spotlight.

use super::*;

#[test]
fn a_mute_is_stored_then_audited_then_cut_then_announced() {
    let mut c = session_with_defence();
    let id = c.id("defendant");
    let effects = c.act("judge", ClientMessage::Mute { participant_id: id });
    assert!(c.member("defendant").p.muted);
    let kinds: Vec<&str> = effects
        .iter()
        .map(|e| match e {
            Effect::Persist(_) => "persist",
            Effect::Audit(_) => "audit",
            Effect::CutLeg { .. } => "cut",
            Effect::Unsubscribe { .. } => "unsubscribe",
            Effect::Send { .. } => "send",
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "persist",
            "audit",
            "cut",
            "cut",
            "unsubscribe",
            "unsubscribe",
            "send",
            "send",
            "send"
        ]
    );
    assert!(!c.subscribed("judge", "defendant-mic"));
    assert!(!c.subscribed("counsel", "defendant-mic"));
    assert!(
        c.subscribed("defendant", "judge-mic"),
        "a muted participant still hears"
    );
    let (code, message) = c.refused("judge", ClientMessage::Mute { participant_id: id });
    assert_eq!(
        (code, message.as_str()),
        (ErrorCode::NotApplicable, "defendant is already muted")
    );
}

#[test]
fn unmuting_needs_the_courts_request_and_the_participants_acceptance() {
    let mut c = session_with_defence();
    let id = c.id("defendant");
    c.act("judge", ClientMessage::Mute { participant_id: id });
    let (code, message) = c.refused("defendant", ClientMessage::AcceptUnmute);
    assert_eq!(
        (code, message.as_str()),
        (
            ErrorCode::NotApplicable,
            "the court has not asked you to unmute"
        )
    );
    let (code, _) = c.refused(
        "defendant",
        ClientMessage::RequestUnmute { participant_id: id },
    );
    assert_eq!(code, ErrorCode::PermissionDenied, "no unmuting oneself");

    let effects = c.act("judge", ClientMessage::RequestUnmute { participant_id: id });
    assert_eq!(audits(&effects), ["unmute_requested"]);
    assert!(matches!(
        sent_to(&effects, c.session("defendant"))[..],
        [ServerMessage::UnmuteRequested { by }] if *by == c.id("judge")
    ));
    assert!(c.member("defendant").p.muted, "still muted until accepted");

    let effects = c.act("defendant", ClientMessage::AcceptUnmute);
    assert_eq!(audits(&effects), ["unmute_accepted"]);
    assert!(!c.member("defendant").p.muted);
    assert_eq!(
        participant_writes(&effects),
        [(id, Admission::Admitted, false)]
    );
    assert!(c.subscribed("judge", "defendant-mic"));
    assert!(!c.member("defendant").unmute_requested);
    let (_, message) = c.refused("judge", ClientMessage::RequestUnmute { participant_id: id });
    assert_eq!(message, "defendant is not muted");
}

#[test]
fn mute_all_leaves_the_bench_and_the_actor_unmuted() {
    let mut c = session_with_defence();
    c.join("clerk");
    let effects = c.act("judge", ClientMessage::MuteAll);
    assert_eq!(audits(&effects)[0], "mute_all");
    for (name, muted) in [
        ("judge", false),
        ("defendant", true),
        ("counsel", true),
        ("clerk", true),
        ("observer", true),
    ] {
        assert_eq!(c.member(name).p.muted, muted, "{name}");
    }
}

#[test]
fn lock_and_spotlight_are_stored_and_announced_only_when_they_change() {
    let mut c = session_with_defence();
    let effects = c.act("judge", ClientMessage::Lock { locked: true });
    assert_eq!(audits(&effects), ["lock"]);
    assert!(status_writes(&effects)[0].locked);
    assert!(status_to(&effects, c.session("defendant")).is_some_and(|s| s.locked));
    assert!(c
        .act("judge", ClientMessage::Lock { locked: true })
        .is_empty());

    let id = c.id("counsel");
    let effects = c.act(
        "judge",
        ClientMessage::Spotlight {
            participant_id: Some(id),
        },
    );
    assert_eq!(audits(&effects), ["spotlight"]);
    assert_eq!(c.core.status.spotlight, Some(id));
    let witness = c.id("witness");
    let (_, message) = c.refused(
        "judge",
        ClientMessage::Spotlight {
            participant_id: Some(witness),
        },
    );
    assert_eq!(message, "witness is not in the hearing room");
    let (code, _) = c.refused(
        "counsel",
        ClientMessage::Spotlight {
            participant_id: None,
        },
    );
    assert_eq!(code, ErrorCode::PermissionDenied);
}
