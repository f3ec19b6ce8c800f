//! The forwarding policy: the **one** function that decides whether a subscriber may
//! receive a publisher's media. The hearing actor evaluates it for every (publisher,
//! subscriber, kind) after every change of hearing state and makes the SFU's
//! forwarding legs match; nothing else adds a leg. The browser is never trusted with
//! this decision.
//!
//! Today's rules (court workflow, private rooms and recording extend them here):
//! 1. nobody receives their own media back;
//! 2. both sides must be connected to the hearing;
//! 3. the publisher's role must be allowed to publish — observers never are, so a
//!    track an observer somehow sends reaches no one.

use openhearing_signaling::Role;
use uuid::Uuid;

use crate::sfu::MediaKind;

/// What the policy needs to know about one participant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    pub id: Uuid,
    pub role: Role,
    /// Connected to the hearing (has a live signaling session).
    pub present: bool,
}

/// Whether `role` may publish audio and video at all.
pub fn may_publish(role: Role) -> bool {
    !matches!(role, Role::Observer)
}

/// Whether `subscriber` may receive `publisher`'s media of `kind`.
pub fn may_forward(publisher: &Member, subscriber: &Member, kind: MediaKind) -> bool {
    let _ = kind; // audio and video follow the same rules until muting exists
    publisher.id != subscriber.id
        && publisher.present
        && subscriber.present
        && may_publish(publisher.role)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(role: Role, present: bool) -> Member {
        Member {
            id: Uuid::new_v4(),
            role,
            present,
        }
    }

    #[test]
    fn exhaustive_over_roles_presence_and_kinds() {
        for pub_role in Role::ALL {
            for sub_role in Role::ALL {
                for pub_present in [false, true] {
                    for sub_present in [false, true] {
                        for kind in [MediaKind::Audio, MediaKind::Video] {
                            let p = member(pub_role, pub_present);
                            let s = member(sub_role, sub_present);
                            let expected = pub_present && sub_present && pub_role != Role::Observer;
                            assert_eq!(
                                may_forward(&p, &s, kind),
                                expected,
                                "{pub_role} (present {pub_present}) -> {sub_role} (present {sub_present}) {kind:?}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn nobody_receives_themselves() {
        let m = member(Role::PresidingJudge, true);
        assert!(!may_forward(&m, &m, MediaKind::Video));
    }

    #[test]
    fn only_observers_may_not_publish() {
        for role in Role::ALL {
            assert_eq!(may_publish(role), role != Role::Observer, "{role}");
        }
    }
}
