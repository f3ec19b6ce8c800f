//! Consultations and deliberation.

use super::*;
use openhearing_signaling::RoomKind;

#[test]
fn an_approved_consultation_walls_the_pair_off_before_anyone_is_told() {
    let mut c = session_with_defence();
    let id = request_consultation(&mut c);
    let counsel = c.id("counsel");
    let (_, message) = c.refused(
        "counsel",
        ClientMessage::RequestConsultation {
            participant_id: c.id("defendant"),
        },
    );
    assert_eq!(
        message,
        "this consultation was already requested; the presiding judge will answer"
    );
    let effects = answer(&mut c, id, true);
    assert_eq!(
        audits(&effects),
        ["consultation_approved", "room_entered", "room_entered"]
    );
    let room = &c.core.status.rooms[0];
    assert_eq!(room.kind, RoomKind::Consultation);
    assert_eq!(room.members, [c.id("defendant"), counsel]);
    assert!(c.core.status.consultation_requests.is_empty());
    // The judge no longer hears them, they still hear each other.
    assert!(!c.subscribed("judge", "defendant-mic"));
    assert!(!c.subscribed("judge", "counsel-mic"));
    assert!(!c.subscribed("defendant", "judge-mic"));
    assert!(c.subscribed("defendant", "counsel-mic"));
    let cut = first(&effects, |e| matches!(e, Effect::CutLeg { .. }));
    let told = first(&effects, |e| matches!(e, Effect::Send { .. }));
    assert!(cut < told);
    for name in ["defendant", "counsel"] {
        assert!(sent_to(&effects, c.session(name)).iter().any(|m| matches!(
            m,
            ServerMessage::ConsultationAnswered { approved: true, .. }
        )));
    }
}

#[test]
fn a_refused_consultation_is_answered_and_withdrawn() {
    let mut c = session_with_defence();
    let id = request_consultation(&mut c);
    let effects = answer(&mut c, id, false);
    assert_eq!(audits(&effects), ["consultation_refused"]);
    assert!(c.core.status.rooms.is_empty() && c.core.status.consultation_requests.is_empty());
    assert!(sent_to(&effects, c.session("defendant"))
        .iter()
        .any(|m| matches!(
            m,
            ServerMessage::ConsultationAnswered {
                approved: false,
                ..
            }
        )));
    let (_, message) = c.refused(
        "judge",
        ClientMessage::AnswerConsultation {
            request_id: id,
            approve: true,
        },
    );
    assert_eq!(
        message,
        "there is no such consultation request (answered or withdrawn)"
    );
    let (code, _) = c.refused(
        "defendant",
        ClientMessage::AnswerConsultation {
            request_id: id,
            approve: true,
        },
    );
    assert_eq!(code, ErrorCode::PermissionDenied);
}

#[test]
fn a_consultation_is_only_between_a_defendant_and_their_own_counsel() {
    let mut c = session_with_defence();
    c.join("other_counsel");
    let id = c.id("other_counsel");
    c.act("judge", ClientMessage::Admit { participant_id: id });
    let (_, message) = c.refused(
        "defendant",
        ClientMessage::RequestConsultation { participant_id: id },
    );
    assert!(message.starts_with(
        "a private consultation is only between a defendant and their own defence counsel"
    ));
    let judge = c.id("judge");
    let (code, _) = c.refused(
        "judge",
        ClientMessage::RequestConsultation {
            participant_id: judge,
        },
    );
    assert_eq!(code, ErrorCode::PermissionDenied);
}

#[test]
fn a_consultation_ends_by_its_members_or_is_recalled_by_the_judge() {
    for (by, reason) in [("counsel", "ended"), ("judge", "recalled")] {
        let mut c = session_with_defence();
        let id = request_consultation(&mut c);
        answer(&mut c, id, true);
        let room_id = c.core.status.rooms[0].id;
        let effects = c.act(by, ClientMessage::EndConsultation { room_id });
        assert_eq!(audits(&effects), ["room_left", "room_left"]);
        assert!(c.core.status.rooms.is_empty());
        assert!(
            c.subscribed("judge", "defendant-mic"),
            "back in the hearing room"
        );
        let ended = sent_to(&effects, c.session("defendant"));
        assert!(ended.iter().any(|m| matches!(
            m,
            ServerMessage::RoomEnded { reason: r, by: b, .. } if r == reason && *b == Some(c.id(by))
        )));
        let (_, message) = c.refused(by, ClientMessage::EndConsultation { room_id });
        assert_eq!(message, "there is no such consultation (it has ended)");
    }
}

#[test]
fn a_consultation_left_with_one_member_dissolves() {
    let mut c = session_with_defence();
    let id = request_consultation(&mut c);
    answer(&mut c, id, true);
    let counsel = c.id("counsel");
    let effects = c.act(
        "judge",
        ClientMessage::Remove {
            participant_id: counsel,
            reason: None,
        },
    );
    assert_eq!(audits(&effects)[..3], ["remove", "room_left", "room_left"]);
    assert!(c.core.status.rooms.is_empty());
    assert!(sent_to(&effects, c.session("defendant"))
        .iter()
        .any(|m| matches!(
            m,
            ServerMessage::RoomEnded { reason, by: None, .. } if reason == "dissolved"
        )));
}

#[test]
fn the_panel_deliberates_alone() {
    let mut c = session_with_defence();
    let (code, _) = c.refused("defendant", ClientMessage::StartDeliberation);
    assert_eq!(code, ErrorCode::PermissionDenied);
    let (_, message) = c.refused("judge", ClientMessage::EndDeliberation);
    assert_eq!(message, "the panel is not deliberating");
    let judge = c.id("judge");
    c.act(
        "judge",
        ClientMessage::Spotlight {
            participant_id: Some(judge),
        },
    );
    let effects = c.act("judge", ClientMessage::StartDeliberation);
    assert_eq!(audits(&effects), ["room_entered"]);
    let room = &c.core.status.rooms[0];
    assert_eq!(
        (room.kind, room.members.clone()),
        (RoomKind::Deliberation, vec![judge])
    );
    assert_eq!(c.core.status.spotlight, None);
    assert!(!c.subscribed("defendant", "judge-mic"));
    let (_, message) = c.refused("judge", ClientMessage::StartDeliberation);
    assert_eq!(message, "the panel is already deliberating");
    let effects = c.act("judge", ClientMessage::EndDeliberation);
    assert_eq!(audits(&effects), ["room_left"]);
    assert!(c.subscribed("defendant", "judge-mic"));
}
