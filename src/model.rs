//! Domain types: hearings and their participants.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use openhearing_signaling::{
    Admission, ConsultationRequest, HearingState, Role, RoomInfo, RoomKind, SiteKind,
};

/// Longest case number, in characters.
pub const MAX_CASE_NUMBER_CHARS: usize = 100;
/// Longest hearing title, in characters.
pub const MAX_TITLE_CHARS: usize = 500;
/// Longest participant name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest site name, in characters.
pub const MAX_SITE_CHARS: usize = 200;
/// Most participants in one hearing.
pub const MAX_PARTICIPANTS: usize = 500;

/// A hearing with its sites and everyone invited to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Hearing {
    pub id: Uuid,
    pub case_number: String,
    pub title: String,
    pub created_at: DateTime<Utc>,
    /// When the hearing is scheduled to start.
    pub scheduled_at: Option<DateTime<Utc>>,
    /// Lifecycle state, lock and spotlight.
    pub status: Status,
    pub sites: Vec<Site>,
    pub participants: Vec<Participant>,
}

/// The live state of a hearing as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Status {
    pub state: HearingState,
    /// Why the hearing is in this state (suspension, adjournment).
    pub reason: Option<String>,
    pub since: DateTime<Utc>,
    /// The new date of an adjourned hearing.
    pub adjourned_to: Option<DateTime<Utc>>,
    /// No admissions while locked.
    pub locked: bool,
    /// The participant who has the floor.
    pub spotlight: Option<Uuid>,
    /// Private rooms in use.
    pub rooms: Vec<RoomInfo>,
    /// Consultation requests awaiting the presiding judge.
    pub consultation_requests: Vec<ConsultationRequest>,
}

impl Status {
    /// A new hearing's status: scheduled, unlocked, nobody spotlighted.
    pub fn scheduled(at: DateTime<Utc>) -> Status {
        Status {
            state: HearingState::Scheduled,
            reason: None,
            since: at,
            adjourned_to: None,
            locked: false,
            spotlight: None,
            rooms: Vec::new(),
            consultation_requests: Vec::new(),
        }
    }

    /// The wire form.
    pub fn to_wire(&self) -> openhearing_signaling::HearingStatus {
        openhearing_signaling::HearingStatus {
            state: self.state,
            reason: self.reason.clone(),
            since: rfc3339(self.since),
            adjourned_to: self.adjourned_to.map(rfc3339),
            locked: self.locked,
            spotlight: self.spotlight,
            rooms: self.rooms.clone(),
            consultation_requests: self.consultation_requests.clone(),
        }
    }
}

/// RFC 3339 with microseconds, UTC (`2026-11-24T09:00:00.000000Z`): the one text
/// form of times in the database, the API and the protocol.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// `t` rounded to what [`rfc3339`] keeps, so a stored time reads back equal.
pub fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&rfc3339(t))
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or(t)
}

/// A site (điểm cầu) of a hearing: the courtroom or a component site.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Site {
    pub name: String,
    pub kind: SiteKind,
}

/// One invited person (or site endpoint standing for several people) of a hearing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Participant {
    pub id: Uuid,
    pub hearing_id: Uuid,
    pub name: String,
    pub role: Role,
    /// The name of the site (điểm cầu) the participant joins from.
    pub site: String,
    pub site_kind: SiteKind,
    /// Lobby, admitted or removed (kept across reconnects and restarts).
    pub admission: Admission,
    /// Muted by the court.
    pub muted: bool,
    /// Join tokens carry this number; revoking the link increments it.
    pub link_version: u32,
    /// The party the participant belongs to: a defendant and their defence counsel
    /// share one (e.g. "Bị cáo 1"), which is what allows their private consultation.
    pub party: Option<String>,
}

/// A hearing to create.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewHearing {
    pub case_number: String,
    pub title: String,
    #[serde(default)]
    pub scheduled_at: Option<DateTime<Utc>>,
    /// The hearing's sites. A site a participant names that is not listed here is
    /// created with kind `remote`.
    #[serde(default)]
    pub sites: Vec<Site>,
    pub participants: Vec<NewParticipant>,
}

/// A participant to create.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewParticipant {
    pub name: String,
    pub role: Role,
    /// The name of their site.
    pub site: String,
    /// Their party, e.g. "Bị cáo 1" for a defendant and their counsel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub party: Option<String>,
}

/// Changes to a hearing's description (absent fields stay as they are).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HearingUpdate {
    #[serde(default)]
    pub case_number: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub scheduled_at: Option<DateTime<Utc>>,
}

/// One step of a hearing's state history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StateRecord {
    pub seq: u64,
    pub state: HearingState,
    pub reason: Option<String>,
    pub adjourned_to: Option<DateTime<Utc>>,
    /// Who moved it (see [`AuditRecord::actor`]).
    pub actor: String,
    pub at: DateTime<Utc>,
}

/// An audit event to append.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub at: DateTime<Utc>,
    /// `participant:<id>`, `admin:<key name>` or `system`.
    pub actor: String,
    /// Whom the action concerns: `participant:<id>`, or none for the hearing itself.
    pub subject: Option<String>,
    /// e.g. `join`, `admit`, `mute`, `state_change`, `permission_denied`.
    pub action: String,
    /// A JSON object with the details, stored and hashed as this exact text.
    pub details: String,
}

/// An appended audit entry: the record, its position and its chain links.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub subject: Option<String>,
    pub action: String,
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

/// A field of a [`NewHearing`] that is not acceptable. `field` is the path, e.g.
/// `participants[1].name`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationError {
            field: field.into(),
            message: message.into(),
        }
    }
}

fn check_text(field: &str, value: &str, max: usize) -> Result<(), ValidationError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    let n = trimmed.chars().count();
    if n > max {
        return Err(ValidationError::new(
            field,
            format!("is {n} characters long; at most {max} are allowed"),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

impl NewHearing {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ValidationError> {
        check_text("case_number", &self.case_number, MAX_CASE_NUMBER_CHARS)?;
        check_text("title", &self.title, MAX_TITLE_CHARS)?;
        if self.participants.is_empty() {
            return Err(ValidationError::new(
                "participants",
                "a hearing needs at least one participant",
            ));
        }
        if self.participants.len() > MAX_PARTICIPANTS {
            return Err(ValidationError::new(
                "participants",
                format!(
                    "{} participants; at most {MAX_PARTICIPANTS} are allowed",
                    self.participants.len()
                ),
            ));
        }
        let mut names = std::collections::HashSet::new();
        for (i, s) in self.sites.iter().enumerate() {
            check_text(&format!("sites[{i}].name"), &s.name, MAX_SITE_CHARS)?;
            if !names.insert(s.name.trim()) {
                return Err(ValidationError::new(
                    format!("sites[{i}].name"),
                    format!("site `{}` is listed twice", s.name.trim()),
                ));
            }
        }
        for (i, p) in self.participants.iter().enumerate() {
            p.validate(&format!("participants[{i}]"))?;
        }
        Ok(())
    }

    /// Every site of the hearing: the listed ones, then sites participants name that
    /// are not listed (kind `remote`), in order of first mention.
    pub fn all_sites(&self) -> Vec<Site> {
        let mut sites = self.sites.clone();
        for p in &self.participants {
            if !sites.iter().any(|s| s.name == p.site) {
                sites.push(Site {
                    name: p.site.clone(),
                    kind: SiteKind::Remote,
                });
            }
        }
        sites
    }

    /// A copy with surrounding whitespace removed from every text field.
    pub fn trimmed(&self) -> NewHearing {
        NewHearing {
            case_number: self.case_number.trim().to_owned(),
            title: self.title.trim().to_owned(),
            participants: self
                .participants
                .iter()
                .map(NewParticipant::trimmed)
                .collect(),
            scheduled_at: self.scheduled_at,
            sites: self
                .sites
                .iter()
                .map(|s| Site {
                    name: s.name.trim().to_owned(),
                    kind: s.kind,
                })
                .collect(),
        }
    }
}

impl NewParticipant {
    /// Checks every field; `path` prefixes the field names in the error.
    pub fn validate(&self, path: &str) -> Result<(), ValidationError> {
        check_text(&format!("{path}.name"), &self.name, MAX_NAME_CHARS)?;
        check_text(&format!("{path}.site"), &self.site, MAX_SITE_CHARS)?;
        if let Some(party) = &self.party {
            check_text(&format!("{path}.party"), party, MAX_NAME_CHARS)?;
        }
        Ok(())
    }

    pub fn trimmed(&self) -> NewParticipant {
        NewParticipant {
            name: self.name.trim().to_owned(),
            role: self.role,
            site: self.site.trim().to_owned(),
            party: self.party.as_ref().map(|p| p.trim().to_owned()),
        }
    }
}

impl Site {
    pub fn validate(&self, path: &str) -> Result<(), ValidationError> {
        check_text(&format!("{path}.name"), &self.name, MAX_SITE_CHARS)
    }
}

impl HearingUpdate {
    pub fn validate(&self) -> Result<(), ValidationError> {
        if let Some(c) = &self.case_number {
            check_text("case_number", c, MAX_CASE_NUMBER_CHARS)?;
        }
        if let Some(t) = &self.title {
            check_text("title", t, MAX_TITLE_CHARS)?;
        }
        if self.case_number.is_none() && self.title.is_none() && self.scheduled_at.is_none() {
            return Err(ValidationError::new(
                "",
                "nothing to change: give case_number, title or scheduled_at",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> NewHearing {
        NewHearing {
            case_number: "HS-123/2026".into(),
            title: "Vụ án trộm cắp tài sản".into(),
            scheduled_at: None,
            sites: vec![Site {
                name: "Phòng xử án 1".into(),
                kind: SiteKind::Central,
            }],
            participants: vec![
                NewParticipant {
                    name: "Nguyễn Văn A".into(),
                    role: Role::PresidingJudge,
                    site: "Phòng xử án 1".into(),
                    party: None,
                },
                NewParticipant {
                    name: "Trần Thị B".into(),
                    role: Role::Defendant,
                    site: "Trại tạm giam số 1".into(),
                    party: Some("Bị cáo 1".into()),
                },
            ],
        }
    }

    #[test]
    fn valid_hearing_passes() {
        sample().validate().unwrap();
        // No presiding judge is fine: the court may add one later.
        let mut h = sample();
        h.participants.remove(0);
        h.validate().unwrap();
    }

    #[test]
    fn errors_name_the_field() {
        let mut h = sample();
        h.case_number = "   ".into();
        assert_eq!(h.validate().unwrap_err().field, "case_number");

        let mut h = sample();
        h.title = "x".repeat(MAX_TITLE_CHARS + 1);
        assert_eq!(h.validate().unwrap_err().field, "title");

        let mut h = sample();
        h.participants[1].site = "".into();
        let e = h.validate().unwrap_err();
        assert_eq!(e.to_string(), "participants[1].site: must not be empty");

        let mut h = sample();
        h.participants[0].name = "a\u{7}b".into();
        assert_eq!(h.validate().unwrap_err().field, "participants[0].name");

        let mut h = sample();
        h.sites.push(h.sites[0].clone());
        assert_eq!(h.validate().unwrap_err().field, "sites[1].name");

        let mut h = sample();
        h.participants.clear();
        assert_eq!(h.validate().unwrap_err().field, "participants");

        let mut h = sample();
        h.participants = vec![h.participants[0].clone(); MAX_PARTICIPANTS + 1];
        assert_eq!(h.validate().unwrap_err().field, "participants");
    }

    #[test]
    fn unlisted_sites_are_remote() {
        let sites = sample().all_sites();
        assert_eq!(sites.len(), 2);
        assert_eq!(sites[0].kind, SiteKind::Central);
        assert_eq!(sites[1].name, "Trại tạm giam số 1");
        assert_eq!(sites[1].kind, SiteKind::Remote);
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        let mut h = sample();
        // Vietnamese letters are several bytes each; 200 of them are still allowed.
        h.participants[0].name = "Ễ".repeat(MAX_NAME_CHARS);
        h.validate().unwrap();
    }

    #[test]
    fn trimmed_strips_whitespace() {
        let mut h = sample();
        h.title = "  T  ".into();
        h.participants[0].name = " A ".into();
        let t = h.trimmed();
        assert_eq!(t.title, "T");
        assert_eq!(t.participants[0].name, "A");
    }
}
