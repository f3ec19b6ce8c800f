//! Who takes part in a hearing and what they may do: the [`Role`] a participant has,
//! the [`SiteKind`] of the place they join from, and the [`Action`]s the server's
//! permission table grants. Each is a closed enum with its wire name, its `ALL` list
//! (the web client mirrors it) and a `FromStr` whose error names every valid value,
//! because configuration files and the admin API name them as text.

use serde::{Deserialize, Serialize};

/// What a participant is in the hearing. Its meaning (what they may do, whether they
/// wait in the lobby) comes from the server's permission table; the client only
/// displays it.
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    PresidingJudge,
    Judge,
    Assessor,
    Clerk,
    Prosecutor,
    Defendant,
    DefenceCounsel,
    Victim,
    Litigant,
    Representative,
    Witness,
    Expert,
    Interpreter,
    DetentionOfficer,
    Observer,
}

impl Role {
    /// Every role, in the order a court lists them.
    pub const ALL: [Role; 15] = [
        Role::PresidingJudge,
        Role::Judge,
        Role::Assessor,
        Role::Clerk,
        Role::Prosecutor,
        Role::Defendant,
        Role::DefenceCounsel,
        Role::Victim,
        Role::Litigant,
        Role::Representative,
        Role::Witness,
        Role::Expert,
        Role::Interpreter,
        Role::DetentionOfficer,
        Role::Observer,
    ];

    /// The wire name (`presiding_judge`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::PresidingJudge => "presiding_judge",
            Role::Judge => "judge",
            Role::Assessor => "assessor",
            Role::Clerk => "clerk",
            Role::Prosecutor => "prosecutor",
            Role::Defendant => "defendant",
            Role::DefenceCounsel => "defence_counsel",
            Role::Victim => "victim",
            Role::Litigant => "litigant",
            Role::Representative => "representative",
            Role::Witness => "witness",
            Role::Expert => "expert",
            Role::Interpreter => "interpreter",
            Role::DetentionOfficer => "detention_officer",
            Role::Observer => "observer",
        }
    }

    /// Members of the trial panel (presiding judge, judges, people's assessors).
    pub fn is_panel(self) -> bool {
        matches!(self, Role::PresidingJudge | Role::Judge | Role::Assessor)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for [`Role::from_str`](std::str::FromStr::from_str).
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown role `{0}`; expected one of: presiding_judge, judge, assessor, clerk, prosecutor, defendant, defence_counsel, victim, litigant, representative, witness, expert, interpreter, detention_officer, observer")]
pub struct UnknownRole(pub String);

impl std::str::FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

/// What kind of place a site (điểm cầu) is: the courtroom (central site) or a
/// component site.
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum SiteKind {
    /// The courtroom (điểm cầu trung tâm).
    Central,
    /// A detention facility or prison.
    Detention,
    /// A law office or other office.
    Office,
    /// Another court.
    Court,
    /// Anywhere else (home, hospital, ...).
    Remote,
}

impl SiteKind {
    pub const ALL: [SiteKind; 5] = [
        SiteKind::Central,
        SiteKind::Detention,
        SiteKind::Office,
        SiteKind::Court,
        SiteKind::Remote,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SiteKind::Central => "central",
            SiteKind::Detention => "detention",
            SiteKind::Office => "office",
            SiteKind::Court => "court",
            SiteKind::Remote => "remote",
        }
    }
}

impl std::fmt::Display for SiteKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for [`SiteKind::from_str`](std::str::FromStr::from_str).
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown site kind `{0}`; expected one of: central, detention, office, court, remote")]
pub struct UnknownSiteKind(pub String);

impl std::str::FromStr for SiteKind {
    type Err = UnknownSiteKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SiteKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownSiteKind(s.to_owned()))
    }
}

/// Something a participant may do, as named in the permission table
/// (`[permissions]` in the server configuration). The server checks every one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Send microphone audio to the hearing.
    PublishAudio,
    /// Send camera video to the hearing.
    PublishVideo,
    /// Send a second video track (screen or document camera).
    PublishScreen,
    /// Receive the hearing's audio and video.
    Subscribe,
    /// Let a participant in from the lobby (one, or everyone waiting).
    Admit,
    /// Refuse a participant waiting in the lobby (they are disconnected).
    Deny,
    /// Mute another participant, mute everyone except the bench, ask to unmute.
    MuteOthers,
    /// Remove a participant from the hearing (their link stops working).
    Remove,
    /// Lock or unlock the hearing (no admissions while locked).
    Lock,
    /// Move the hearing through its lifecycle (open, start, suspend, resume, adjourn, close).
    ControlLifecycle,
    /// Call a witness or expert in from the lobby, and dismiss them back.
    CallWitness,
    /// Give a participant the floor (spotlight them for everyone).
    Spotlight,
    /// Ask for a private consultation between a defendant and their defence counsel.
    RequestConsultation,
    /// Approve or refuse consultation requests, and recall a consultation.
    ApproveConsultation,
    /// Take the trial panel into deliberation and back.
    Deliberate,
}

impl Action {
    pub const ALL: [Action; 15] = [
        Action::PublishAudio,
        Action::PublishVideo,
        Action::PublishScreen,
        Action::Subscribe,
        Action::Admit,
        Action::Deny,
        Action::MuteOthers,
        Action::Remove,
        Action::Lock,
        Action::ControlLifecycle,
        Action::CallWitness,
        Action::Spotlight,
        Action::RequestConsultation,
        Action::ApproveConsultation,
        Action::Deliberate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::PublishAudio => "publish_audio",
            Action::PublishVideo => "publish_video",
            Action::PublishScreen => "publish_screen",
            Action::Subscribe => "subscribe",
            Action::Admit => "admit",
            Action::Deny => "deny",
            Action::MuteOthers => "mute_others",
            Action::Remove => "remove",
            Action::Lock => "lock",
            Action::ControlLifecycle => "control_lifecycle",
            Action::CallWitness => "call_witness",
            Action::Spotlight => "spotlight",
            Action::RequestConsultation => "request_consultation",
            Action::ApproveConsultation => "approve_consultation",
            Action::Deliberate => "deliberate",
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for [`Action::from_str`](std::str::FromStr::from_str).
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown action `{0}`; expected one of: publish_audio, publish_video, publish_screen, subscribe, admit, deny, mute_others, remove, lock, control_lifecycle, call_witness, spotlight, request_consultation, approve_consultation, deliberate")]
pub struct UnknownAction(pub String);

impl std::str::FromStr for Action {
    type Err = UnknownAction;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnknownAction(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::HearingState;

    #[test]
    fn roles_parse_and_print() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
            assert_eq!(
                serde_json::to_string(&r).unwrap(),
                format!("\"{}\"", r.as_str())
            );
        }
        assert!("king".parse::<Role>().is_err());
        for k in SiteKind::ALL {
            assert_eq!(k.as_str().parse::<SiteKind>().unwrap(), k);
        }
        for a in Action::ALL {
            assert_eq!(a.as_str().parse::<Action>().unwrap(), a);
            assert_eq!(
                serde_json::to_string(&a).unwrap(),
                format!("\"{}\"", a.as_str())
            );
        }
        for st in HearingState::ALL {
            assert_eq!(st.as_str().parse::<HearingState>().unwrap(), st);
            assert_eq!(
                serde_json::to_string(&st).unwrap(),
                format!("\"{}\"", st.as_str())
            );
        }
    }
}
