//! The forwarding policy: the **one** function that decides whether a subscriber may
//! receive a publisher's media. The hearing actor evaluates it for every (publisher,
//! subscriber, source) after every change of hearing state and makes the SFU's
//! forwarding legs match; nothing else adds a leg. The browser is never trusted with
//! this decision.
//!
//! Rules, all of which must hold:
//! 1. nobody receives their own media back;
//! 2. both sides are connected to the hearing;
//! 3. the hearing is in a state where media flows (`open`, `in_session`,
//!    `suspended`) — before it opens, once adjourned or closed, nobody receives;
//! 4. both sides are admitted — the lobby neither sends nor receives;
//! 5. the publisher's role may publish this source (permission table) — so a track
//!    an observer somehow sends reaches no one;
//! 6. microphone audio of a participant muted by the court reaches no one;
//! 7. the subscriber's role may receive (`subscribe`);
//! 8. both are in the same room: the hearing room, or the same private room
//!    (consultation, deliberation). A member of a private room receives only fellow
//!    members and is received only by them — not by the judge, not by observers, not
//!    by the recorder, and not by a subscriber who was receiving the track before the
//!    room opened (the actor removes that leg the moment membership changes).
//!
//! **Outside the policy: the pre-join self-test** (`api::ws::selftest`,
//! `sfu::loopback`). A participant testing their network before joining publishes a
//! test stream on a connection of its own, and the SFU sends it straight back to that
//! connection — an exception to rule 1 that is not a hearing decision at all: the
//! test's tracks are never announced to the hearing actor, so this function is never
//! asked about them, no other participant can be given a leg of them and no recorder
//! taps them; the participant is not present (rule 2 does not apply to anyone else
//! because nobody else is involved). The loopback carries only the participant's own
//! media to the participant's own connection, which is why it needs no decision
//! here; it is bounded in time (15 s) and to one test per participant, and the link
//! must pass the same checks as a join.

use openhearing_recorder::GapCause;
use openhearing_signaling::{Action, Admission, HearingState, Role};
use uuid::Uuid;

use crate::permissions::Permissions;

/// What a published track carries, as far as permissions go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    Microphone,
    Camera,
    /// A participant's second video track (screen, document camera).
    Screen,
}

impl Source {
    pub const ALL: [Source; 3] = [Source::Microphone, Source::Camera, Source::Screen];

    /// The permission needed to publish this source.
    pub fn action(self) -> Action {
        match self {
            Source::Microphone => Action::PublishAudio,
            Source::Camera => Action::PublishVideo,
            Source::Screen => Action::PublishScreen,
        }
    }
}

/// What the policy needs to know about one participant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    pub id: Uuid,
    pub role: Role,
    /// Connected to the hearing (has a live signaling session).
    pub present: bool,
    pub admission: Admission,
    /// Muted by the court.
    pub muted: bool,
    /// The private room they are in, or `None` for the hearing room.
    pub room: Option<Uuid>,
}

/// The hearing-wide part of the decision.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub state: HearingState,
    pub permissions: &'a Permissions,
}

/// The receiving side of a decision: a participant, or the recorder.
#[derive(Debug, Clone, Copy)]
struct Receiver {
    id: Option<Uuid>,
    present: bool,
    admission: Admission,
    may_subscribe: bool,
    room: Option<Uuid>,
}

/// The rules, for any receiver.
fn decide(ctx: Context<'_>, publisher: &Member, receiver: Receiver, source: Source) -> bool {
    receiver.id != Some(publisher.id)
        && publisher.present
        && receiver.present
        && ctx.state.media_flows()
        && publisher.admission == Admission::Admitted
        && receiver.admission == Admission::Admitted
        && ctx.permissions.allows(publisher.role, source.action())
        && !(source == Source::Microphone && publisher.muted)
        && receiver.may_subscribe
        && publisher.room == receiver.room
}

/// Whether `subscriber` may receive `publisher`'s `source`.
pub fn may_forward(
    ctx: Context<'_>,
    publisher: &Member,
    subscriber: &Member,
    source: Source,
) -> bool {
    decide(
        ctx,
        publisher,
        Receiver {
            id: Some(subscriber.id),
            present: subscriber.present,
            admission: subscriber.admission,
            may_subscribe: ctx.permissions.allows(subscriber.role, Action::Subscribe),
            room: subscriber.room,
        },
        source,
    )
}

/// What the recorder is given of one track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recording {
    /// Record it.
    Record,
    /// Hold it back; the record marks the time with this cause when the rule that
    /// withheld it is one the court's record must explain (rule 8: a private room,
    /// rule 4: the lobby, rule 6: a court mute), `None` otherwise (e.g. not connected).
    Withhold(Option<GapCause>),
}

impl Recording {
    pub fn records(self) -> bool {
        self == Recording::Record
    }
}

/// Whether the recorder may record `publisher`'s `source`, and if not, why. The
/// recorder is judged by the same rules as a participant who is connected, admitted,
/// allowed to receive and in the hearing room — so the lobby, private rooms and
/// court-muted audio never reach the archive. (Whether recording is running at all —
/// the hearing in session, not suspended — is the recorder's own state.)
pub fn may_record(ctx: Context<'_>, publisher: &Member, source: Source) -> Recording {
    let allowed = decide(
        ctx,
        publisher,
        Receiver {
            id: None,
            present: true,
            admission: Admission::Admitted,
            may_subscribe: true,
            room: None,
        },
        source,
    );
    if allowed {
        return Recording::Record;
    }
    // The cause, named after the rule that withheld the track (checked in this order
    // because a member of a private room is also admitted, and a muted one may be in
    // the lobby).
    Recording::Withhold(if publisher.room.is_some() {
        Some(GapCause::PrivateRoom)
    } else if publisher.admission == Admission::Lobby {
        Some(GapCause::Lobby)
    } else if publisher.muted && source == Source::Microphone {
        Some(GapCause::Muted)
    } else {
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const ADMISSIONS: [Admission; 3] = [Admission::Lobby, Admission::Admitted, Admission::Removed];

    fn member(role: Role, present: bool, admission: Admission, muted: bool) -> Member {
        Member {
            id: Uuid::new_v4(),
            role,
            present,
            admission,
            muted,
            room: None,
        }
    }

    /// The rules restated independently, from the shipped table's meaning.
    fn expected(
        p: &Permissions,
        state: HearingState,
        publisher: &Member,
        subscriber: &Member,
        source: Source,
    ) -> bool {
        let flows = matches!(
            state,
            HearingState::Open | HearingState::InSession | HearingState::Suspended
        );
        let may_send = match source {
            Source::Microphone => {
                p.allows(publisher.role, Action::PublishAudio) && !publisher.muted
            }
            Source::Camera => p.allows(publisher.role, Action::PublishVideo),
            Source::Screen => p.allows(publisher.role, Action::PublishScreen),
        };
        flows
            && publisher.present
            && subscriber.present
            && publisher.admission == Admission::Admitted
            && subscriber.admission == Admission::Admitted
            && may_send
            && p.allows(subscriber.role, Action::Subscribe)
            && publisher.room == subscriber.room
    }

    /// Every role pair × presence × admission × court mute × state × source × rooms
    /// (hearing room, private room A, private room B on each side).
    #[test]
    fn exhaustive_over_roles_states_admission_mute_rooms_and_sources() {
        let perms = Permissions::defaults();
        let (room_a, room_b) = (Some(Uuid::new_v4()), Some(Uuid::new_v4()));
        let rooms = [None, room_a, room_b];
        let mut checked = 0u64;
        for state in HearingState::ALL {
            let ctx = Context {
                state,
                permissions: &perms,
            };
            for pr in Role::ALL {
                for sr in Role::ALL {
                    for pa in ADMISSIONS {
                        for sa in ADMISSIONS {
                            for (pp, sp) in [(true, true), (true, false), (false, true)] {
                                for muted in [false, true] {
                                    for source in Source::ALL {
                                        for (proom, sroom) in rooms
                                            .iter()
                                            .flat_map(|a| rooms.iter().map(move |b| (*a, *b)))
                                        {
                                            let p = Member {
                                                room: proom,
                                                ..member(pr, pp, pa, muted)
                                            };
                                            let s = Member {
                                                room: sroom,
                                                ..member(sr, sp, sa, false)
                                            };
                                            assert_eq!(
                                                may_forward(ctx, &p, &s, source),
                                                expected(&perms, state, &p, &s, source),
                                                "{state}: {pr} ({pa:?}, present {pp}, muted {muted}, room {proom:?}) -> {sr} ({sa:?}, present {sp}, room {sroom:?}) {source:?}"
                                            );
                                            checked += 1;
                                        }
                                        // The recorder: an admitted, connected receiver in the
                                        // hearing room that may subscribe.
                                        let p = member(pr, pp, pa, muted);
                                        let rec = Member {
                                            role: Role::PresidingJudge,
                                            ..member(pr, true, Admission::Admitted, false)
                                        };
                                        let want = expected(&perms, state, &p, &rec, source);
                                        assert_eq!(
                                            may_record(ctx, &p, source).records(),
                                            want,
                                            "record {state} {pr} {pa:?} {pp} {muted} {source:?}"
                                        );
                                        let in_room = Member { room: room_a, ..p };
                                        assert_eq!(
                                            may_record(ctx, &in_room, source),
                                            Recording::Withhold(Some(GapCause::PrivateRoom)),
                                            "a private room is never recorded, and the record says why"
                                        );
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(checked, 6 * 15 * 15 * 3 * 3 * 3 * 2 * 3 * 9);
    }

    #[test]
    fn nobody_receives_themselves() {
        let perms = Permissions::defaults();
        let ctx = Context {
            state: HearingState::InSession,
            permissions: &perms,
        };
        let m = member(Role::PresidingJudge, true, Admission::Admitted, false);
        for s in Source::ALL {
            assert!(!may_forward(ctx, &m, &m, s));
        }
    }

    #[test]
    fn key_court_cases() {
        let perms = Permissions::defaults();
        let ctx = Context {
            state: HearingState::InSession,
            permissions: &perms,
        };
        let judge = member(Role::PresidingJudge, true, Admission::Admitted, false);
        let lobby = member(Role::Defendant, true, Admission::Lobby, false);
        let observer = member(Role::Observer, true, Admission::Admitted, false);
        let muted = member(Role::DefenceCounsel, true, Admission::Admitted, true);
        // The lobby neither sends nor receives.
        assert!(!may_forward(ctx, &lobby, &judge, Source::Camera));
        assert!(!may_forward(ctx, &judge, &lobby, Source::Microphone));
        // Observers receive but never send.
        assert!(may_forward(ctx, &judge, &observer, Source::Camera));
        assert!(!may_forward(ctx, &observer, &judge, Source::Camera));
        assert!(!may_forward(ctx, &observer, &judge, Source::Microphone));
        // A muted participant's video still flows; their audio does not.
        assert!(may_forward(ctx, &muted, &judge, Source::Camera));
        assert!(!may_forward(ctx, &muted, &judge, Source::Microphone));
        // Before opening nothing flows.
        let scheduled = Context {
            state: HearingState::Scheduled,
            permissions: &perms,
        };
        assert!(!may_forward(scheduled, &judge, &observer, Source::Camera));
    }

    #[test]
    fn private_rooms_are_sealed_both_ways() {
        let perms = Permissions::defaults();
        let ctx = Context {
            state: HearingState::InSession,
            permissions: &perms,
        };
        let room = Some(Uuid::new_v4());
        let other_room = Some(Uuid::new_v4());
        let defendant = Member {
            room,
            ..member(Role::Defendant, true, Admission::Admitted, false)
        };
        let counsel = Member {
            room,
            ..member(Role::DefenceCounsel, true, Admission::Admitted, false)
        };
        let judge = member(Role::PresidingJudge, true, Admission::Admitted, false);
        let observer = member(Role::Observer, true, Admission::Admitted, false);
        let second = Member {
            room: other_room,
            ..member(Role::Defendant, true, Admission::Admitted, false)
        };
        for s in Source::ALL {
            // Members hear each other ...
            assert!(may_forward(ctx, &defendant, &counsel, s) || s == Source::Screen);
            assert!(may_forward(ctx, &counsel, &defendant, s));
            // ... and nobody else, in either direction: not the judge, not an
            // observer, not another consultation.
            for outsider in [&judge, &observer, &second] {
                for member in [&defendant, &counsel] {
                    assert!(!may_forward(ctx, member, outsider, s), "{s:?} leaks out");
                    assert!(!may_forward(ctx, outsider, member, s), "{s:?} leaks in");
                }
            }
        }
    }

    #[test]
    fn a_deployment_table_is_honoured() {
        // A deployment that forbids witnesses' video and observers' subscription.
        let mut table: BTreeMap<Role, Vec<Action>> = Role::ALL
            .into_iter()
            .map(|r| (r, Permissions::defaults().actions(r)))
            .collect();
        table.insert(Role::Witness, vec![Action::PublishAudio, Action::Subscribe]);
        table.insert(Role::Observer, vec![]);
        let perms = Permissions::new(&table, Permissions::defaults().workflow());
        let ctx = Context {
            state: HearingState::InSession,
            permissions: &perms,
        };
        let judge = member(Role::PresidingJudge, true, Admission::Admitted, false);
        let witness = member(Role::Witness, true, Admission::Admitted, false);
        let observer = member(Role::Observer, true, Admission::Admitted, false);
        assert!(may_forward(ctx, &witness, &judge, Source::Microphone));
        assert!(!may_forward(ctx, &witness, &judge, Source::Camera));
        assert!(!may_forward(ctx, &judge, &observer, Source::Camera));
    }
}
