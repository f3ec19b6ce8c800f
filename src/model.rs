//! Domain types: hearings and their participants.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use openhearing_signaling::Role;

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

/// A scheduled hearing with everyone invited to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hearing {
    pub id: Uuid,
    pub case_number: String,
    pub title: String,
    pub created_at: DateTime<Utc>,
    pub participants: Vec<Participant>,
}

/// One invited person (or site endpoint) of a hearing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    pub id: Uuid,
    pub hearing_id: Uuid,
    pub name: String,
    pub role: Role,
    /// The site (điểm cầu) the participant joins from.
    pub site: String,
}

/// A hearing to create.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewHearing {
    pub case_number: String,
    pub title: String,
    pub participants: Vec<NewParticipant>,
}

/// A participant to create.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewParticipant {
    pub name: String,
    pub role: Role,
    pub site: String,
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
        for (i, p) in self.participants.iter().enumerate() {
            check_text(&format!("participants[{i}].name"), &p.name, MAX_NAME_CHARS)?;
            check_text(&format!("participants[{i}].site"), &p.site, MAX_SITE_CHARS)?;
        }
        Ok(())
    }

    /// A copy with surrounding whitespace removed from every text field.
    pub fn trimmed(&self) -> NewHearing {
        NewHearing {
            case_number: self.case_number.trim().to_owned(),
            title: self.title.trim().to_owned(),
            participants: self
                .participants
                .iter()
                .map(|p| NewParticipant {
                    name: p.name.trim().to_owned(),
                    role: p.role,
                    site: p.site.trim().to_owned(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> NewHearing {
        NewHearing {
            case_number: "HS-123/2026".into(),
            title: "Vụ án trộm cắp tài sản".into(),
            participants: vec![
                NewParticipant {
                    name: "Nguyễn Văn A".into(),
                    role: Role::PresidingJudge,
                    site: "Phòng xử án 1".into(),
                },
                NewParticipant {
                    name: "Trần Thị B".into(),
                    role: Role::Defendant,
                    site: "Trại tạm giam số 1".into(),
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
        h.participants.clear();
        assert_eq!(h.validate().unwrap_err().field, "participants");

        let mut h = sample();
        h.participants = vec![h.participants[0].clone(); MAX_PARTICIPANTS + 1];
        assert_eq!(h.validate().unwrap_err().field, "participants");
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
