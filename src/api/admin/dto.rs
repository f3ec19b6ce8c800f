//! The admin API's wire types: request bodies, answers and the error body.
//!
//! These are the JSON contract, shared by the server's handlers and the command
//! line's API client (`crate::cli`), so the two cannot drift apart. They hold no
//! behaviour beyond turning a request into the domain's validated input; the OpenAPI
//! schemas are derived from them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::model::{
    Hearing, HearingState, NewHearing, NewParticipant, Participant, Role, Site, SiteKind,
    StateRecord, ValidationError,
};

/// Body of `POST /api/v1/hearings`.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateHearingRequest {
    pub case_number: String,
    pub title: String,
    /// When the hearing is to start (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_at: Option<DateTime<Utc>>,
    /// The hearing's sites; a site a participant names that is not listed is created
    /// with kind `remote`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sites: Vec<Site>,
    /// Whether to record the hearing; absent: the server's default
    /// (`[recording] enabled_by_default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording: Option<bool>,
    pub participants: Vec<CreateParticipantRequest>,
}

/// A participant to invite (in [`CreateHearingRequest`] and `POST
/// .../participants`). `role` is a role's wire name; `site` names a site.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateParticipantRequest {
    pub name: String,
    #[schema(example = "defendant")]
    pub role: String,
    pub site: String,
    /// The party (a defendant and their counsel share one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub party: Option<String>,
}

impl CreateParticipantRequest {
    /// The participant to store; `path` prefixes field names in errors (empty for a
    /// participant that is the whole body).
    pub fn into_new(self, path: &str) -> Result<NewParticipant, ValidationError> {
        let field = if path.is_empty() {
            "role".to_owned()
        } else {
            format!("{path}.role")
        };
        let new = self.into_unchecked(field)?;
        new.validate(path).map_err(|e| {
            ValidationError::new(e.field.trim_start_matches('.').to_owned(), e.message)
        })?;
        Ok(new.trimmed())
    }

    /// The participant with its role parsed (an unknown role is an error on
    /// `role_field`) but nothing else checked yet.
    fn into_unchecked(self, role_field: String) -> Result<NewParticipant, ValidationError> {
        let role: Role = self.role.trim().parse().map_err(|_| {
            ValidationError::new(
                role_field,
                format!(
                    "unknown role {:?}; expected one of: {}",
                    self.role,
                    Role::ALL.map(Role::as_str).join(", ")
                ),
            )
        })?;
        Ok(NewParticipant {
            name: self.name,
            role,
            site: self.site,
            party: self.party,
        })
    }
}

impl CreateHearingRequest {
    /// The validated, trimmed hearing to store.
    pub fn into_new_hearing(self) -> Result<NewHearing, ValidationError> {
        let participants = self
            .participants
            .into_iter()
            .enumerate()
            .map(|(i, p)| p.into_unchecked(format!("participants[{i}].role")))
            .collect::<Result<Vec<_>, ValidationError>>()?;
        let new = NewHearing {
            case_number: self.case_number,
            title: self.title,
            scheduled_at: self.scheduled_at,
            recording: self.recording,
            sites: self.sites,
            participants,
        };
        new.validate()?;
        Ok(new.trimmed())
    }
}

impl From<&NewHearing> for CreateHearingRequest {
    fn from(h: &NewHearing) -> Self {
        CreateHearingRequest {
            case_number: h.case_number.clone(),
            title: h.title.clone(),
            scheduled_at: h.scheduled_at,
            recording: h.recording,
            sites: h.sites.clone(),
            participants: h.participants.iter().map(Into::into).collect(),
        }
    }
}

impl From<&NewParticipant> for CreateParticipantRequest {
    fn from(p: &NewParticipant) -> Self {
        CreateParticipantRequest {
            name: p.name.clone(),
            role: p.role.as_str().to_owned(),
            site: p.site.clone(),
            party: p.party.clone(),
        }
    }
}

/// Body of `POST /api/v1/hearings/{id}/state`: a lifecycle move.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StateRequest {
    pub state: HearingState,
    /// Required for `suspended` and `adjourned`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Required for `adjourned`: the new date (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adjourned_to: Option<DateTime<Utc>>,
}

/// Body of `PUT /api/v1/hearings/{id}/sites/{name}`.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SiteKindRequest {
    pub kind: SiteKind,
}

/// Query of `DELETE /api/v1/hearings/{id}/participants/{pid}`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RemoveQuery {
    /// Why the participant is removed; shown to them and audited.
    pub reason: Option<String>,
}

/// A hearing with every (not removed) participant's join link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HearingLinks {
    pub hearing_id: Uuid,
    pub case_number: String,
    pub title: String,
    pub participants: Vec<ParticipantLink>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ParticipantLink {
    pub participant_id: Uuid,
    pub name: String,
    pub role: Role,
    pub site: String,
    /// `{public_url}/join/{hearing_id}#token={jwt}`.
    pub join_url: String,
}

/// A participant with a freshly issued join link (after adding them or revoking
/// their old link).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IssuedLink {
    pub participant: Participant,
    pub join_url: String,
}

/// Answer of `GET /api/v1/hearings`, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HearingList {
    pub hearings: Vec<Hearing>,
}

/// A hearing with its state history (oldest first).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HearingDetail {
    #[serde(flatten)]
    pub hearing: Hearing,
    pub state_history: Vec<StateRecord>,
}

/// Answer of `GET /api/v1/hearings/{id}/sites`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SiteList {
    pub sites: Vec<Site>,
}

/// Answer of `GET /api/v1/hearings/{id}/audit`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditTrail {
    pub hearing_id: Uuid,
    /// The entries in `seq` order, as stored.
    pub entries: Vec<AuditEntryView>,
    /// The chain head recorded with the hearing.
    pub head: AuditHead,
    /// Whether the chain verifies against itself and the head.
    pub verification: Verification,
}

/// One audit entry. `details` is the stored JSON text parsed (or, if it no longer
/// parses, the text as a string).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntryView {
    pub seq: u64,
    pub at: DateTime<Utc>,
    /// `participant:<id>`, `admin:<key name>` or `system`.
    pub actor: String,
    pub subject: Option<String>,
    pub action: String,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditHead {
    pub count: u64,
    pub hash: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Verification {
    pub ok: bool,
    /// The first problem found, e.g. `entry #5 was modified: ...`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// The JSON body of every error answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `validation_failed`, `invalid_transition`.
    pub code: String,
    pub message: String,
}
