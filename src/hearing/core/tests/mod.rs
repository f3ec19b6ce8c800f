//! Unit tests of the hearing core: whole hearings driven input by input, with no
//! sockets, no store and no clock. Every input the harness hands in is also checked
//! for the ordering rule (persist, audit, media, announce, continue).

mod admin;
mod floor;
mod health;
mod join;
mod lifecycle;
mod links;
mod lobby;
mod rooms;
mod undo;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use openhearing_signaling::{
    Admission, ClientMessage, ErrorCode, HearingState, Role, ServerMessage, SiteKind, StateChange,
};
use uuid::Uuid;

use super::{
    Device, Effect, HearingCore, Input, JoinPolicy, Recording, Reply, RequestId, SecondDevice,
    Settings,
};
use crate::hearing::writer::WriteOp;
use crate::hearing::{AdminOp, AdminOutcome, JoinError, Refusal};
use crate::model::{Hearing, Participant, Status};
use crate::permissions::Permissions;
use crate::sfu::MediaKind;

fn permissions() -> Arc<Permissions> {
    static P: OnceLock<Arc<Permissions>> = OnceLock::new();
    P.get_or_init(|| Arc::new(Permissions::defaults())).clone()
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).unwrap()
}

/// One hearing under test: the core plus the names of its participants.
struct Court {
    core: HearingCore,
    now: DateTime<Utc>,
    ids: HashMap<&'static str, Uuid>,
    sessions: HashMap<&'static str, u64>,
    next_session: u64,
    next_request: u64,
}

/// The people of the standard hearing: (name, role, party).
const PEOPLE: [(&str, Role, Option<&str>); 7] = [
    ("judge", Role::PresidingJudge, None),
    ("clerk", Role::Clerk, None),
    ("defendant", Role::Defendant, Some("Bị cáo 1")),
    ("counsel", Role::DefenceCounsel, Some("Bị cáo 1")),
    ("other_counsel", Role::DefenceCounsel, Some("Bị cáo 2")),
    ("witness", Role::Witness, None),
    ("observer", Role::Observer, None),
];

impl Court {
    fn new(state: HearingState) -> Court {
        Court::with(state, false, Recording::Off)
    }

    fn with(state: HearingState, record_this: bool, recording: Recording) -> Court {
        // The tests written before second devices and notice coalescing existed
        // describe `replace` with every notice at once; `links.rs` tests the rest.
        let joins = JoinPolicy {
            second_device: SecondDevice::Replace,
            notice_window: Duration::ZERO,
            ..JoinPolicy::default()
        };
        Court::with_policy(state, record_this, recording, joins)
    }

    fn with_policy(
        state: HearingState,
        record_this: bool,
        recording: Recording,
        joins: JoinPolicy,
    ) -> Court {
        let id = Uuid::new_v4();
        let perms = permissions();
        let mut ids = HashMap::new();
        let participants = PEOPLE
            .iter()
            .map(|(name, role, party)| {
                let p = Participant {
                    id: Uuid::new_v4(),
                    hearing_id: id,
                    name: (*name).to_owned(),
                    role: *role,
                    site: "Courtroom".into(),
                    site_kind: SiteKind::Central,
                    admission: if perms.auto_admitted(*role) {
                        Admission::Admitted
                    } else {
                        Admission::Lobby
                    },
                    muted: false,
                    link_version: 1,
                    party: party.map(str::to_owned),
                };
                ids.insert(*name, p.id);
                p
            })
            .collect();
        let mut status = Status::scheduled(t0());
        status.state = state;
        let hearing = Hearing {
            id,
            case_number: "HS-1/2026".into(),
            title: "A v. B".into(),
            created_at: t0(),
            scheduled_at: Some(t0()),
            status,
            recording: record_this,
            sites: Vec::new(),
            participants,
        };
        let settings = Settings {
            permissions: perms,
            idle: Duration::from_secs(30),
            recording,
            joins,
            integrity: Default::default(),
        };
        let mut court = Court {
            core: HearingCore::new(hearing, settings, t0()),
            now: t0(),
            ids,
            sessions: HashMap::new(),
            next_session: 0,
            next_request: 0,
        };
        court.handle(Input::Start);
        court
    }

    fn id(&self, name: &str) -> Uuid {
        self.ids[name]
    }

    fn session(&self, name: &str) -> u64 {
        self.sessions[name]
    }

    fn member(&self, name: &str) -> &super::Member {
        self.core.member(self.id(name)).expect("a participant")
    }

    fn request(&mut self) -> RequestId {
        self.next_request += 1;
        RequestId(self.next_request)
    }

    /// Hands one input in (a second later than the last) and checks the order of
    /// its effects.
    fn handle(&mut self, input: Input) -> Vec<Effect> {
        self.now += chrono::Duration::seconds(1);
        let effects = self.core.handle(self.now, input);
        assert_ordered(&effects);
        effects
    }

    /// A new session of `name` joins; returns the effects and the join's answer.
    fn try_join(&mut self, name: &'static str) -> (Vec<Effect>, Result<ServerMessage, JoinError>) {
        let device = Device::new(
            Some(format!("127.0.0.1:{}", 5000 + self.next_session)),
            Some("test"),
        );
        self.try_join_from(name, device)
    }

    /// A join of `name` from `device`.
    fn try_join_from(
        &mut self,
        name: &'static str,
        device: Device,
    ) -> (Vec<Effect>, Result<ServerMessage, JoinError>) {
        self.next_session += 1;
        let session = self.next_session;
        let request = self.request();
        let participant = self.id(name);
        let mut effects = self.handle(Input::Join {
            request,
            participant,
            link_version: self.member(name).p.link_version,
            session,
            device,
        });
        let reply = take_reply(&mut effects, request);
        let Reply::Join(result) = reply else {
            panic!("a join is answered with a join reply, not {reply:?}");
        };
        if result.is_ok() {
            self.sessions.insert(name, session);
        }
        (effects, result)
    }

    fn join(&mut self, name: &'static str) -> Vec<Effect> {
        let (effects, result) = self.try_join(name);
        match result {
            Ok(ServerMessage::Welcome(_)) => effects,
            other => panic!("{name} should have joined: {other:?}"),
        }
    }

    fn act(&mut self, name: &str, action: ClientMessage) -> Vec<Effect> {
        let participant = self.id(name);
        let session = self.session(name);
        self.handle(Input::Act {
            participant,
            session,
            action,
        })
    }

    /// A court action that must be refused: the refusal sent to the actor.
    fn refused(&mut self, name: &str, action: ClientMessage) -> (ErrorCode, String) {
        let session = self.session(name);
        let effects = self.act(name, action);
        let errors = errors_to(&effects, session);
        assert_eq!(errors.len(), 1, "one error for {name}: {effects:?}");
        errors[0].clone()
    }

    fn set_state(&mut self, name: &str, state: HearingState, reason: Option<&str>) -> Vec<Effect> {
        let change = StateChange {
            state,
            reason: reason.map(str::to_owned),
            adjourned_to: (state == HearingState::Adjourned).then(|| "2026-12-01T09:00:00Z".into()),
        };
        self.act(name, ClientMessage::SetState { change })
    }

    fn publish(&mut self, name: &str, track: &str, kind: MediaKind) -> Vec<Effect> {
        let participant = self.id(name);
        let session = self.session(name);
        self.handle(Input::TrackPublished {
            participant,
            session,
            track: track.to_owned(),
            kind,
        })
    }

    fn admin(&mut self, op: AdminOp) -> (RequestId, Vec<Effect>) {
        let request = self.request();
        let effects = self.handle(Input::Admin {
            request,
            op,
            actor: "admin:ops".into(),
        });
        (request, effects)
    }

    fn subscribed(&self, name: &str, track: &str) -> bool {
        self.core
            .subscribed
            .contains(&(self.id(name), track.to_owned()))
    }
}

fn assert_ordered(effects: &[Effect]) {
    let phases: Vec<_> = effects.iter().map(Effect::phase).collect();
    assert!(
        phases.windows(2).all(|w| w[0] <= w[1]),
        "effects out of phase order: {phases:?}"
    );
}

/// Removes and returns the reply to `request`.
fn take_reply(effects: &mut Vec<Effect>, request: RequestId) -> Reply {
    let i = effects
        .iter()
        .position(|e| matches!(e, Effect::Reply { request: r, .. } if *r == request))
        .expect("a reply");
    match effects.remove(i) {
        Effect::Reply { reply, .. } => reply,
        _ => unreachable!(),
    }
}

fn admin_reply(effects: &mut Vec<Effect>, request: RequestId) -> Result<AdminOutcome, Refusal> {
    match take_reply(effects, request) {
        Reply::Admin(r) => r,
        other => panic!("an admin reply, not {other:?}"),
    }
}

/// The messages sent to `session`.
fn sent_to(effects: &[Effect], session: u64) -> Vec<&ServerMessage> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send {
                session: s,
                message,
            } if *s == session => Some(message),
            _ => None,
        })
        .collect()
}

fn errors_to(effects: &[Effect], session: u64) -> Vec<(ErrorCode, String)> {
    sent_to(effects, session)
        .into_iter()
        .filter_map(|m| match m {
            ServerMessage::Error { code, message, .. } => Some((*code, message.clone())),
            _ => None,
        })
        .collect()
}

/// The audited actions, in order.
fn audits(effects: &[Effect]) -> Vec<&str> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Audit(r) => Some(r.action.as_str()),
            _ => None,
        })
        .collect()
}

fn kicks(effects: &[Effect]) -> Vec<(u64, ErrorCode, String)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Kick {
                session,
                code,
                message,
            } => Some((*session, *code, message.clone())),
            _ => None,
        })
        .collect()
}

fn participant_writes(effects: &[Effect]) -> Vec<(Uuid, Admission, bool)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Persist(WriteOp::Participant {
                id,
                admission,
                muted,
            }) => Some((*id, *admission, *muted)),
            _ => None,
        })
        .collect()
}

fn status_writes(effects: &[Effect]) -> Vec<&Status> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Persist(WriteOp::Status { status, .. }) => Some(status),
            _ => None,
        })
        .collect()
}

/// The status broadcast to `session`, if any.
fn status_to(effects: &[Effect], session: u64) -> Option<&openhearing_signaling::HearingStatus> {
    sent_to(effects, session).into_iter().find_map(|m| match m {
        ServerMessage::HearingStatus { status } => Some(status),
        _ => None,
    })
}

/// Position of the first effect matching `f`.
fn first(effects: &[Effect], f: impl Fn(&Effect) -> bool) -> usize {
    effects
        .iter()
        .position(f)
        .unwrap_or_else(|| panic!("no such effect in {effects:?}"))
}

/// A hearing in session with the judge, the defendant and their counsel admitted
/// and present, each publishing a microphone.
fn session_with_defence() -> Court {
    let mut c = Court::new(HearingState::InSession);
    for name in ["judge", "defendant", "counsel"] {
        c.join(name);
    }
    for name in ["defendant", "counsel"] {
        let id = c.id(name);
        c.act("judge", ClientMessage::Admit { participant_id: id });
    }
    for name in ["judge", "defendant", "counsel"] {
        c.publish(name, &format!("{name}-mic"), MediaKind::Audio);
    }
    c
}

/// The defendant asks to consult their counsel; returns the request's id.
fn request_consultation(c: &mut Court) -> Uuid {
    let counsel = c.id("counsel");
    let effects = c.act(
        "defendant",
        ClientMessage::RequestConsultation {
            participant_id: counsel,
        },
    );
    assert_eq!(audits(&effects), ["consultation_requested"]);
    let judge = status_to(&effects, c.session("judge")).expect("the judge sees the request");
    assert_eq!(judge.consultation_requests.len(), 1);
    c.core.status.consultation_requests[0].id
}

/// The judge answers consultation request `id`.
fn answer(c: &mut Court, id: Uuid, approve: bool) -> Vec<Effect> {
    c.act(
        "judge",
        ClientMessage::AnswerConsultation {
            request_id: id,
            approve,
        },
    )
}
