//! The admin REST API: the operator's view of hearings, their sites, participants,
//! join links, lifecycle and audit trail.
//!
//! Every route except the OpenAPI document requires `Authorization: Bearer <admin
//! key>` (see [`crate::auth::AdminKey`]). Changes to a hearing go through its actor
//! ([`Hearings::admin`]) so that connected participants see them at once and they are
//! audited with the actor `admin:<key name>`. Errors are JSON
//! `{"error": {"code": "...", "message": "..."}}`.
//!
//! | method & path | answer |
//! |---|---|
//! | `GET /api/v1/openapi.json` | 200 the OpenAPI 3.1 document (no key needed) |
//! | `POST /api/v1/hearings` | 201 [`HearingLinks`] |
//! | `GET /api/v1/hearings` | 200 [`HearingList`] |
//! | `GET /api/v1/hearings/{id}` | 200 [`HearingDetail`] |
//! | `PATCH /api/v1/hearings/{id}` | 200 [`HearingDetail`] |
//! | `POST /api/v1/hearings/{id}/state` | 200 [`HearingDetail`] |
//! | `GET /api/v1/hearings/{id}/sites` | 200 [`SiteList`] |
//! | `PUT /api/v1/hearings/{id}/sites/{name}` | 201 or 200 [`Site`] |
//! | `POST /api/v1/hearings/{id}/participants` | 201 [`IssuedLink`] |
//! | `GET /api/v1/hearings/{id}/participants/{pid}` | 200 [`Participant`] |
//! | `DELETE /api/v1/hearings/{id}/participants/{pid}` | 200 [`Participant`] (removed) |
//! | `POST /api/v1/hearings/{id}/participants/{pid}/revoke` | 200 [`IssuedLink`] |
//! | `GET /api/v1/hearings/{id}/links` | 200 [`HearingLinks`] with fresh tokens |
//! | `GET /api/v1/hearings/{id}/audit` | 200 [`AuditTrail`] |

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRef, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use openhearing_signaling::{ErrorCode, StateChange};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::OpenApi;
use uuid::Uuid;

use crate::auth::{AdminKey, AuthError, JoinTokens};
use crate::hearing::{AdminOp, AdminOutcome, Hearings, Refusal};
use crate::model::{
    rfc3339, Admission, AuditRecord, Hearing, HearingState, HearingUpdate, NewHearing,
    NewParticipant, Participant, Role, Site, SiteKind, StateRecord, ValidationError,
    MAX_PARTICIPANTS,
};
use crate::store::{Store, StoreError};

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// What the admin routes need.
#[derive(Clone)]
pub struct AdminState {
    pub store: Arc<dyn Store>,
    /// Live hearings: changes to a hearing go through its actor.
    pub hearings: Arc<Hearings>,
    pub tokens: Arc<JoinTokens>,
    pub admin_key: Arc<AdminKey>,
    /// Base of join links, without a trailing slash.
    pub public_url: String,
}

/// The admin routes, for merging into the server's router. Keep [`ApiDoc`] and the
/// README's route table in step (a test checks both).
pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    AdminState: FromRef<S>,
{
    Router::new()
        .route("/api/v1/openapi.json", get(openapi_json))
        .route("/api/v1/hearings", get(list_hearings).post(create_hearing))
        .route(
            "/api/v1/hearings/{id}",
            get(get_hearing).patch(update_hearing),
        )
        .route("/api/v1/hearings/{id}/state", post(set_state))
        .route("/api/v1/hearings/{id}/sites", get(list_sites))
        .route("/api/v1/hearings/{id}/sites/{name}", put(upsert_site))
        .route("/api/v1/hearings/{id}/participants", post(add_participant))
        .route(
            "/api/v1/hearings/{id}/participants/{pid}",
            get(get_participant).delete(remove_participant),
        )
        .route(
            "/api/v1/hearings/{id}/participants/{pid}/revoke",
            post(revoke_link),
        )
        .route("/api/v1/hearings/{id}/links", get(hearing_links))
        .route("/api/v1/hearings/{id}/audit", get(audit_trail))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// The OpenAPI document of the admin API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "OpenHearing admin API",
        description = "Create and run online court hearings: hearings, sites, participants, join links, lifecycle and the audit trail. Every route except this document needs `Authorization: Bearer <admin key>`."
    ),
    paths(
        openapi_json,
        list_hearings,
        create_hearing,
        get_hearing,
        update_hearing,
        set_state,
        list_sites,
        upsert_site,
        add_participant,
        get_participant,
        remove_participant,
        revoke_link,
        hearing_links,
        audit_trail
    ),
    modifiers(&BearerKey),
    tags((name = "hearings", description = "Hearings, sites, participants and join links"))
)]
pub struct ApiDoc;

/// Declares the `admin_key` bearer security scheme the routes refer to.
struct BearerKey;

impl utoipa::Modify for BearerKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An admin API key: generated at the server's first start (printed once) or made with `openhearing admin-key create`",
                    ))
                    .build(),
            ),
        );
    }
}

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
    fn into_new(self, path: &str) -> Result<NewParticipant, ValidationError> {
        let field = |f: &str| {
            if path.is_empty() {
                f.to_owned()
            } else {
                format!("{path}.{f}")
            }
        };
        let role: Role = self.role.trim().parse().map_err(|_| {
            ValidationError::new(
                field("role"),
                format!(
                    "unknown role {:?}; expected one of: {}",
                    self.role,
                    Role::ALL.map(Role::as_str).join(", ")
                ),
            )
        })?;
        let new = NewParticipant {
            name: self.name,
            role,
            site: self.site,
            party: self.party,
        };
        new.validate(path).map_err(|e| {
            ValidationError::new(e.field.trim_start_matches('.').to_owned(), e.message)
        })?;
        Ok(new.trimmed())
    }
}

impl CreateHearingRequest {
    /// The validated, trimmed hearing to store.
    pub fn into_new_hearing(self) -> Result<NewHearing, ValidationError> {
        let participants = self
            .participants
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                let path = format!("participants[{i}]");
                let role: Role = p.role.trim().parse().map_err(|_| {
                    ValidationError::new(
                        format!("{path}.role"),
                        format!(
                            "unknown role {:?}; expected one of: {}",
                            p.role,
                            Role::ALL.map(Role::as_str).join(", ")
                        ),
                    )
                })?;
                Ok(NewParticipant {
                    name: p.name,
                    role,
                    site: p.site,
                    party: p.party,
                })
            })
            .collect::<Result<Vec<_>, ValidationError>>()?;
        let new = NewHearing {
            case_number: self.case_number,
            title: self.title,
            scheduled_at: self.scheduled_at,
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

/// Everything an admin request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("missing or wrong admin API key; send `Authorization: Bearer <key>`")]
    Unauthorized,
    #[error("{0}")]
    BadRequest(String),
    #[error("request body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("{0}")]
    Validation(#[from] ValidationError),
    #[error("no hearing with id {0}")]
    HearingNotFound(Uuid),
    #[error("participant {0} is not part of this hearing")]
    ParticipantNotFound(Uuid),
    #[error("request body is larger than {MAX_BODY_BYTES} bytes")]
    PayloadTooLarge,
    /// The hearing refused the change (its code is the protocol's error code).
    #[error("{}", .0.message)]
    Refused(Refusal),
    #[error("storage failure: {0}")]
    Store(#[from] StoreError),
    #[error("cannot issue join token: {0}")]
    Token(#[from] AuthError),
}

impl From<Refusal> for AdminError {
    fn from(r: Refusal) -> Self {
        AdminError::Refused(r)
    }
}

impl AdminError {
    pub fn status(&self) -> StatusCode {
        match self {
            AdminError::Unauthorized => StatusCode::UNAUTHORIZED,
            AdminError::BadRequest(_) | AdminError::MalformedJson(_) => StatusCode::BAD_REQUEST,
            AdminError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AdminError::HearingNotFound(_) | AdminError::ParticipantNotFound(_) => {
                StatusCode::NOT_FOUND
            }
            AdminError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AdminError::Refused(r) => match r.code {
                ErrorCode::InvalidTransition
                | ErrorCode::NotApplicable
                | ErrorCode::HearingClosed => StatusCode::CONFLICT,
                ErrorCode::ReasonRequired | ErrorCode::MalformedMessage => {
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                ErrorCode::HearingNotFound | ErrorCode::UnknownParticipant => StatusCode::NOT_FOUND,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
            AdminError::Store(_) | AdminError::Token(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> String {
        match self {
            AdminError::Unauthorized => "unauthorized".into(),
            AdminError::BadRequest(_) => "bad_request".into(),
            AdminError::MalformedJson(_) => "malformed_json".into(),
            AdminError::Validation(_) => "validation_failed".into(),
            AdminError::HearingNotFound(_) => "hearing_not_found".into(),
            AdminError::ParticipantNotFound(_) => "unknown_participant".into(),
            AdminError::PayloadTooLarge => "payload_too_large".into(),
            AdminError::Refused(r) => r.code.to_string(),
            AdminError::Store(_) | AdminError::Token(_) => "internal".into(),
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = if matches!(self, AdminError::Store(_) | AdminError::Token(_)) {
            tracing::error!(error = %self, "admin API request failed");
            "internal server error; see the server log".to_owned()
        } else {
            if status == StatusCode::INTERNAL_SERVER_ERROR {
                tracing::warn!(error = %self, "admin API request refused by the hearing");
            }
            self.to_string()
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Proof that the request carried an admin key, and which. Extract it before
/// anything else.
#[derive(Debug, Clone)]
pub struct AdminAuth {
    /// The key's name (`config` for `auth.admin_api_key`).
    pub key_name: String,
}

impl AdminAuth {
    /// The audit actor: `admin:<key name>`.
    pub fn actor(&self) -> String {
        format!("admin:{}", self.key_name)
    }
}

impl<S> FromRequestParts<S> for AdminAuth
where
    S: Send + Sync,
    AdminState: FromRef<S>,
{
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AdminState::from_ref(state);
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, key) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
            })
            .ok_or(AdminError::Unauthorized)?;
        match state.admin_key.verify(presented).await? {
            Some(key_name) => Ok(AdminAuth { key_name }),
            None => Err(AdminError::Unauthorized),
        }
    }
}

fn parse_uuid(text: &str, what: &str) -> Result<Uuid, AdminError> {
    Uuid::parse_str(text).map_err(|_| {
        AdminError::BadRequest(format!(
            "`{text}` is not a valid {what} id; expected a UUID like 67e55044-10b1-426f-9247-bb680e5fe0c8"
        ))
    })
}

fn path_error(rejection: PathRejection) -> AdminError {
    AdminError::BadRequest(format!("bad path: {}", rejection.body_text()))
}

/// Reads a JSON body of type `T`; errors name the offending field.
fn parse_body<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, AdminError> {
    let bytes = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AdminError::PayloadTooLarge
        } else {
            AdminError::BadRequest(rejection.body_text())
        }
    })?;
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    let request: T = serde_path_to_error::deserialize(&mut de).map_err(|e| json_error(&e))?;
    de.end()
        .map_err(|e| AdminError::MalformedJson(e.to_string()))?;
    Ok(request)
}

fn json_error(e: &serde_path_to_error::Error<serde_json::Error>) -> AdminError {
    let inner = e.inner();
    match inner.classify() {
        serde_json::error::Category::Data => {
            let path = e.path().to_string();
            let field = if path == "." { "body".to_owned() } else { path };
            AdminError::Validation(ValidationError::new(field, inner.to_string()))
        }
        _ => AdminError::MalformedJson(inner.to_string()),
    }
}

fn links(state: &AdminState, hearing: &Hearing) -> Result<HearingLinks, AdminError> {
    let participants = hearing
        .participants
        .iter()
        .filter(|p| p.admission != Admission::Removed)
        .map(|p: &Participant| {
            let token = state.tokens.issue(hearing, p)?;
            Ok(ParticipantLink {
                participant_id: p.id,
                name: p.name.clone(),
                role: p.role,
                site: p.site.clone(),
                join_url: join_url(&state.public_url, hearing.id, &token),
            })
        })
        .collect::<Result<Vec<_>, AdminError>>()?;
    Ok(HearingLinks {
        hearing_id: hearing.id,
        case_number: hearing.case_number.clone(),
        title: hearing.title.clone(),
        participants,
    })
}

fn issued(
    state: &AdminState,
    hearing: &Hearing,
    participant: Participant,
) -> Result<IssuedLink, AdminError> {
    let token = state.tokens.issue(hearing, &participant)?;
    Ok(IssuedLink {
        join_url: join_url(&state.public_url, hearing.id, &token),
        participant,
    })
}

/// `{public_url}/join/{hearing_id}#token={jwt}`: the token is in the fragment so it
/// never reaches server or proxy logs.
pub fn join_url(public_url: &str, hearing_id: Uuid, token: &str) -> String {
    format!(
        "{}/join/{hearing_id}#token={token}",
        public_url.trim_end_matches('/')
    )
}

async fn load(state: &AdminState, id: &str) -> Result<Hearing, AdminError> {
    let id = parse_uuid(id, "hearing")?;
    state
        .store
        .get_hearing(id)
        .await?
        .ok_or(AdminError::HearingNotFound(id))
}

/// The hearing and one of its participants, from the path.
async fn load_participant(
    state: &AdminState,
    id: &str,
    pid: &str,
) -> Result<(Hearing, Participant), AdminError> {
    let hearing = load(state, id).await?;
    let pid = parse_uuid(pid, "participant")?;
    let p = hearing
        .participants
        .iter()
        .find(|p| p.id == pid)
        .cloned()
        .ok_or(AdminError::ParticipantNotFound(pid))?;
    Ok((hearing, p))
}

async fn detail(state: &AdminState, id: Uuid) -> Result<HearingDetail, AdminError> {
    let hearing = state
        .store
        .get_hearing(id)
        .await?
        .ok_or(AdminError::HearingNotFound(id))?;
    let state_history = state.store.state_history(id).await?;
    Ok(HearingDetail {
        hearing,
        state_history,
    })
}

/// The OpenAPI document of this API. Public: it describes the routes, holds no data.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "hearings",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json"))
)]
async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// Creates a hearing with its sites and participants and returns every join link.
#[utoipa::path(
    post,
    path = "/api/v1/hearings",
    tag = "hearings",
    request_body = CreateHearingRequest,
    security(("admin_key" = [])),
    responses(
        (status = 201, description = "Created; the join links", body = HearingLinks),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin key", body = ErrorBody),
        (status = 413, description = "Body over 256 KiB", body = ErrorBody),
        (status = 422, description = "A field is missing or invalid; the message names it", body = ErrorBody),
    )
)]
async fn create_hearing(
    auth: AdminAuth,
    State(state): State<AdminState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<HearingLinks>), AdminError> {
    let new = parse_body::<CreateHearingRequest>(body)?.into_new_hearing()?;
    let auto_admit = state.hearings.permissions().workflow().auto_admit.clone();
    let hearing = state.store.create_hearing(new, &auto_admit).await?;
    let details = serde_json::json!({
        "case_number": hearing.case_number,
        "title": hearing.title,
        "scheduled_at": hearing.scheduled_at.map(rfc3339),
        "sites": hearing.sites,
        "participants": hearing.participants.iter().map(|p| serde_json::json!({
            "id": p.id, "name": p.name, "role": p.role, "site": p.site,
        })).collect::<Vec<_>>(),
    });
    state
        .store
        .append_audit(
            hearing.id,
            AuditRecord {
                at: Utc::now(),
                actor: auth.actor(),
                subject: None,
                action: "hearing_created".into(),
                details: details.to_string(),
            },
        )
        .await?;
    tracing::info!(hearing_id = %hearing.id, case_number = %hearing.case_number, participants = hearing.participants.len(), actor = %auth.actor(), "hearing created");
    Ok((StatusCode::CREATED, Json(links(&state, &hearing)?)))
}

/// Every hearing, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/hearings",
    tag = "hearings",
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The hearings", body = HearingList),
        (status = 401, description = "Missing or wrong admin key", body = ErrorBody),
    )
)]
async fn list_hearings(
    _auth: AdminAuth,
    State(state): State<AdminState>,
) -> Result<Json<HearingList>, AdminError> {
    Ok(Json(HearingList {
        hearings: state.store.list_hearings().await?,
    }))
}

/// One hearing: status, sites, participants (admission, court mute, link version)
/// and its state history.
#[utoipa::path(
    get,
    path = "/api/v1/hearings/{id}",
    tag = "hearings",
    params(("id" = Uuid, Path, description = "Hearing id")),
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The hearing", body = HearingDetail),
        (status = 400, description = "The id is not a UUID", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin key", body = ErrorBody),
        (status = 404, description = "No such hearing", body = ErrorBody),
    )
)]
async fn get_hearing(
    _auth: AdminAuth,
    State(state): State<AdminState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<HearingDetail>, AdminError> {
    let Path(id) = path.map_err(path_error)?;
    let id = parse_uuid(&id, "hearing")?;
    Ok(Json(detail(&state, id).await?))
}

/// Changes the case number, title or scheduled start (absent fields stay).
#[utoipa::path(
    patch,
    path = "/api/v1/hearings/{id}",
    tag = "hearings",
    params(("id" = Uuid, Path, description = "Hearing id")),
    request_body = HearingUpdate,
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The changed hearing", body = HearingDetail),
        (status = 400, description = "Malformed JSON or id", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin key", body = ErrorBody),
        (status = 404, description = "No such hearing", body = ErrorBody),
        (status = 413, description = "Body over 256 KiB", body = ErrorBody),
        (status = 422, description = "A field is invalid; the message names it", body = ErrorBody),
    )
)]
async fn update_hearing(
    auth: AdminAuth,
    State(state): State<AdminState>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<HearingDetail>, AdminError> {
    let Path(id) = path.map_err(path_error)?;
    let id = load(&state, &id).await?.id;
    let update: HearingUpdate = parse_body(body)?;
    update.validate().map_err(|e| {
        if e.field.is_empty() {
            ValidationError::new("body", e.message)
        } else {
            e
        }
    })?;
    let update = HearingUpdate {
        case_number: update.case_number.map(|c| c.trim().to_owned()),
        title: update.title.map(|t| t.trim().to_owned()),
        scheduled_at: update.scheduled_at,
    };
    state
        .hearings
        .admin(id, AdminOp::Update(update), auth.actor())
        .await?;
    Ok(Json(detail(&state, id).await?))
}

/// Moves the hearing through its lifecycle: `open`, `in_session`, `suspended`
/// (reason), `adjourned` (reason and `adjourned_to`), `closed`. Connected
/// participants are told at once; closing disconnects everyone and ends every link.
#[utoipa::path(
    post,
    path = "/api/v1/hearings/{id}/state",
    tag = "hearings",
    params(("id" = Uuid, Path, description = "Hearing id")),
    request_body = StateRequest,
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The hearing in its new state", body = HearingDetail),
        (status = 400, description = "Malformed JSON or id", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin key", body = ErrorBody),
        (status = 404, description = "No such hearing", body = ErrorBody),
        (status = 409, description = "`invalid_transition`: the lifecycle does not allow this move", body = ErrorBody),
        (status = 413, description = "Body over 256 KiB", body = ErrorBody),
        (status = 422, description = "`reason_required`, `malformed_message` (bad reason) or `validation_failed`", body = ErrorBody),
    )
)]
async fn set_state(
    auth: AdminAuth,
    State(state): State<AdminState>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<HearingDetail>, AdminError> {
    let Path(id) = path.map_err(path_error)?;
    let id = load(&state, &id).await?.id;
    let req: StateRequest = parse_body(body)?;
    let change = StateChange {
        state: req.state,
        reason: req.reason,
        adjourned_to: req.adjourned_to.map(rfc3339),
    };
    state
        .hearings
        .admin(id, AdminOp::SetState(change), auth.actor())
        .await?;
    Ok(Json(detail(&state, id).await?))
}

/// The hearing's sites.
#[utoipa::path(
    get,
    path = "/api/v1/hearings/{id}/sites",
    tag = "hearings",
    params(("id" = Uuid, Path, description = "Hearing id")),
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The sites", body = SiteList),
        (status = 400, description = "The id is not a UUID", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin key", body = ErrorBody),
        (status = 404, description = "No such hearing", body = ErrorBody),
    )
)]
async fn list_sites(
    _auth: AdminAuth,
    State(state): State<AdminState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<SiteList>, AdminError> {
    let Path(id) = path.map_err(path_error)?;
    let hearing = load(&state, &id).await?;
    Ok(Json(SiteList {
        sites: hearing.sites,
    }))
}

/// Adds a site or changes its kind; participants of that site see the new kind.
#[utoipa::path(
    put,
    path = "/api/v1/hearings/{id}/sites/{name}",
    tag = "hearings",
    params(
        ("id" = Uuid, Path, description = "Hearing id"),
        ("name" = String, Path, description = "Site name (URL-encoded)"),
    ),
    request_body = SiteKindRequest,
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The site's kind was changed", body = Site),
        (status = 201, description = "The site was added", body = Site),
        (status = 400, description = "Malformed JSON or id", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin key", body = ErrorBody),
        (status = 404, description = "No such hearing", body = ErrorBody),
        (status = 413, description = "Body over 256 KiB", body = ErrorBody),
        (status = 422, description = "Bad name or kind; the message names the field", body = ErrorBody),
    )
)]
async fn upsert_site(
    auth: AdminAuth,
    State(state): State<AdminState>,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Site>), AdminError> {
    let Path((id, name)) = path.map_err(path_error)?;
    let hearing = load(&state, &id).await?;
    let req: SiteKindRequest = parse_body(body)?;
    let site = Site {
        name: name.trim().to_owned(),
        kind: req.kind,
    };
    site.validate("site")?;
    let exists = hearing.sites.iter().any(|s| s.name == site.name);
    state
        .hearings
        .admin(hearing.id, AdminOp::UpsertSite(site.clone()), auth.actor())
        .await?;
    let status = if exists {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(site)))
}

/// Invites a participant (their site is created as `remote` if new) and returns
/// their join link. Connected participants see them at once.
#[utoipa::path(
    post,
    path = "/api/v1/hearings/{id}/participants",
    tag = "hearings",
    params(("id" = Uuid, Path, description = "Hearing id")),
    request_body = CreateParticipantRequest,
    security(("admin_key" = [])),
    responses(
        (status = 201, description = "Added; the participant and their join link", body = IssuedLink),
        (status = 400, description = "Malformed JSON or id", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin key", body = ErrorBody),
        (status = 404, description = "No such hearing", body = ErrorBody),
        (status = 409, description = "`hearing_closed`, or `not_applicable` (participant limit reached)", body = ErrorBody),
        (status = 413, description = "Body over 256 KiB", body = ErrorBody),
        (status = 422, description = "A field is missing or invalid; the message names it", body = ErrorBody),
    )
)]
async fn add_participant(
    auth: AdminAuth,
    State(state): State<AdminState>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<IssuedLink>), AdminError> {
    let Path(id) = path.map_err(path_error)?;
    let hearing = load(&state, &id).await?;
    let new = parse_body::<CreateParticipantRequest>(body)?.into_new("")?;
    if hearing.status.state == HearingState::Closed {
        return Err(Refusal::new(
            ErrorCode::HearingClosed,
            "the hearing is closed; nobody can be added to it",
        )
        .into());
    }
    if hearing.participants.len() >= MAX_PARTICIPANTS {
        return Err(Refusal::new(
            ErrorCode::NotApplicable,
            format!("the hearing already has {MAX_PARTICIPANTS} participants, the most allowed"),
        )
        .into());
    }
    let outcome = state
        .hearings
        .admin(hearing.id, AdminOp::AddParticipant(new), auth.actor())
        .await?;
    let AdminOutcome::Participant(p) = outcome else {
        return Err(Refusal::new(
            ErrorCode::Internal,
            "the hearing did not return the new participant",
        )
        .into());
    };
    Ok((StatusCode::CREATED, Json(issued(&state, &hearing, p)?)))
}

/// One participant: role, site, admission, court mute and link version.
#[utoipa::path(
    get,
    path = "/api/v1/hearings/{id}/participants/{pid}",
    tag = "hearings",
    params(
        ("id" = Uuid, Path, description = "Hearing id"),
        ("pid" = Uuid, Path, description = "Participant id"),
    ),
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The participant", body = Participant),
        (status = 400, description = "An id is not a UUID", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin key", body = ErrorBody),
        (status = 404, description = "No such hearing or participant", body = ErrorBody),
    )
)]
async fn get_participant(
    _auth: AdminAuth,
    State(state): State<AdminState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<Participant>, AdminError> {
    let Path((id, pid)) = path.map_err(path_error)?;
    let (_, p) = load_participant(&state, &id, &pid).await?;
    Ok(Json(p))
}

/// Removes a participant: they are disconnected at once and their link stops
/// working. The record stays (admission `removed`) for the audit trail.
#[utoipa::path(
    delete,
    path = "/api/v1/hearings/{id}/participants/{pid}",
    tag = "hearings",
    params(
        ("id" = Uuid, Path, description = "Hearing id"),
        ("pid" = Uuid, Path, description = "Participant id"),
        RemoveQuery,
    ),
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The participant, now removed", body = Participant),
        (status = 400, description = "An id is not a UUID", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin key", body = ErrorBody),
        (status = 404, description = "No such hearing or participant", body = ErrorBody),
        (status = 409, description = "`not_applicable`: already removed", body = ErrorBody),
        (status = 422, description = "Bad reason or query", body = ErrorBody),
    )
)]
async fn remove_participant(
    auth: AdminAuth,
    State(state): State<AdminState>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<RemoveQuery>, QueryRejection>,
) -> Result<Json<Participant>, AdminError> {
    let Path((id, pid)) = path.map_err(path_error)?;
    let (hearing, p) = load_participant(&state, &id, &pid).await?;
    let Query(query) =
        query.map_err(|e| AdminError::Validation(ValidationError::new("query", e.body_text())))?;
    state
        .hearings
        .admin(
            hearing.id,
            AdminOp::Remove {
                participant: p.id,
                reason: query.reason,
            },
            auth.actor(),
        )
        .await?;
    let p = state
        .store
        .get_participant(hearing.id, p.id)
        .await?
        .ok_or(AdminError::ParticipantNotFound(p.id))?;
    Ok(Json(p))
}

/// Revokes a participant's join link: every earlier link stops working (a
/// connected participant is disconnected) and a new link is returned.
#[utoipa::path(
    post,
    path = "/api/v1/hearings/{id}/participants/{pid}/revoke",
    tag = "hearings",
    params(
        ("id" = Uuid, Path, description = "Hearing id"),
        ("pid" = Uuid, Path, description = "Participant id"),
    ),
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The participant with their new link version, and the new link", body = IssuedLink),
        (status = 400, description = "An id is not a UUID", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin key", body = ErrorBody),
        (status = 404, description = "No such hearing or participant", body = ErrorBody),
        (status = 409, description = "`not_applicable`: the participant was removed", body = ErrorBody),
    )
)]
async fn revoke_link(
    auth: AdminAuth,
    State(state): State<AdminState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<IssuedLink>, AdminError> {
    let Path((id, pid)) = path.map_err(path_error)?;
    let (hearing, mut p) = load_participant(&state, &id, &pid).await?;
    if p.admission == Admission::Removed {
        return Err(Refusal::new(
            ErrorCode::NotApplicable,
            format!(
                "{} was removed from the hearing; their link cannot be renewed",
                p.name
            ),
        )
        .into());
    }
    let outcome = state
        .hearings
        .admin(hearing.id, AdminOp::RevokeLink(p.id), auth.actor())
        .await?;
    let AdminOutcome::LinkVersion(version) = outcome else {
        return Err(Refusal::new(
            ErrorCode::Internal,
            "the hearing did not return the new link version",
        )
        .into());
    };
    p.link_version = version;
    Ok(Json(issued(&state, &hearing, p)?))
}

/// Fresh join links for every participant who was not removed.
#[utoipa::path(
    get,
    path = "/api/v1/hearings/{id}/links",
    tag = "hearings",
    params(("id" = Uuid, Path, description = "Hearing id")),
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The join links", body = HearingLinks),
        (status = 400, description = "The id is not a UUID", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin key", body = ErrorBody),
        (status = 404, description = "No such hearing", body = ErrorBody),
    )
)]
async fn hearing_links(
    _auth: AdminAuth,
    State(state): State<AdminState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<HearingLinks>, AdminError> {
    let Path(id) = path.map_err(path_error)?;
    let hearing = load(&state, &id).await?;
    Ok(Json(links(&state, &hearing)?))
}

/// The hearing's audit trail, with the result of verifying its hash chain.
#[utoipa::path(
    get,
    path = "/api/v1/hearings/{id}/audit",
    tag = "hearings",
    params(("id" = Uuid, Path, description = "Hearing id")),
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The entries, the recorded head and the verification", body = AuditTrail),
        (status = 400, description = "The id is not a UUID", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin key", body = ErrorBody),
        (status = 404, description = "No such hearing", body = ErrorBody),
    )
)]
async fn audit_trail(
    _auth: AdminAuth,
    State(state): State<AdminState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<AuditTrail>, AdminError> {
    let Path(id) = path.map_err(path_error)?;
    let id = parse_uuid(&id, "hearing")?;
    let (entries, count, head) = state
        .store
        .audit_log(id)
        .await?
        .ok_or(AdminError::HearingNotFound(id))?;
    let verification = match crate::audit::verify_chain(id, &entries, count, &head) {
        Ok(()) => Verification {
            ok: true,
            problem: None,
        },
        Err(problem) => Verification {
            ok: false,
            problem: Some(problem.to_string()),
        },
    };
    let entries = entries
        .into_iter()
        .map(|e| AuditEntryView {
            details: serde_json::from_str(&e.details)
                .unwrap_or(serde_json::Value::String(e.details)),
            seq: e.seq,
            at: e.at,
            actor: e.actor,
            subject: e.subject,
            action: e.action,
            prev_hash: e.prev_hash,
            hash: e.hash,
        })
        .collect();
    Ok(Json(AuditTrail {
        hearing_id: id,
        entries,
        head: AuditHead { count, hash: head },
        verification,
    }))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::store::SqliteStore;
    use axum::body::Body;
    use axum::http::Request;
    use std::time::Duration;
    use tower::ServiceExt;

    pub(crate) const KEY: &str = "test-admin-key-0123456789";

    pub(crate) async fn state(dir: &std::path::Path) -> AdminState {
        let url = format!("sqlite://{}", dir.join("db/openhearing.db").display());
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&url).await.unwrap());
        AdminState {
            admin_key: Arc::new(AdminKey::new(store.clone(), Some(KEY))),
            hearings: Hearings::new(
                Duration::from_secs(60),
                store.clone(),
                Arc::new(crate::permissions::Permissions::defaults()),
            ),
            store,
            tokens: Arc::new(JoinTokens::new(&[9u8; 32], Duration::from_secs(3600))),
            public_url: "https://court.example:8443".into(),
        }
    }

    fn app(state: AdminState) -> Router {
        routes::<AdminState>().with_state(state)
    }

    async fn call(
        app: &Router,
        method: &str,
        uri: &str,
        key: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> (StatusCode, serde_json::Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(k) = key {
            req = req.header(header::AUTHORIZATION, format!("Bearer {k}"));
        }
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b)),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let json = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (status, json)
    }

    fn create_body() -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "case_number": "HS-123/2026",
            "title": "Vụ án trộm cắp tài sản",
            "participants": [
                {"name": "Nguyễn Văn A", "role": "presiding_judge", "site": "Phòng xử án 1"},
                {"name": "Trần Thị B", "role": "defendant", "site": "Trại tạm giam số 1"}
            ]
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn auth_is_required() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(state(dir.path()).await);
        for (method, uri) in [
            ("GET", "/api/v1/hearings"),
            ("POST", "/api/v1/hearings"),
            ("GET", "/api/v1/hearings/not-a-uuid"),
            (
                "GET",
                "/api/v1/hearings/67e55044-10b1-426f-9247-bb680e5fe0c8/links",
            ),
        ] {
            for key in [None, Some("wrong-key")] {
                let (status, json) = call(&app, method, uri, key, None).await;
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {uri}");
                assert_eq!(json["error"]["code"], "unauthorized");
            }
        }
    }

    #[tokio::test]
    async fn create_list_get_links() {
        let dir = tempfile::tempdir().unwrap();
        let st = state(dir.path()).await;
        let tokens = st.tokens.clone();
        let app = app(st);

        let (status, created) = call(
            &app,
            "POST",
            "/api/v1/hearings",
            Some(KEY),
            Some(create_body()),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let created: HearingLinks = serde_json::from_value(created).unwrap();
        assert_eq!(created.case_number, "HS-123/2026");
        assert_eq!(created.participants.len(), 2);
        let p = &created.participants[1];
        assert_eq!(p.role, Role::Defendant);
        let prefix = format!(
            "https://court.example:8443/join/{}#token=",
            created.hearing_id
        );
        assert!(p.join_url.starts_with(&prefix), "{}", p.join_url);
        let claims = tokens.verify(&p.join_url[prefix.len()..]).unwrap();
        assert_eq!(claims.sub, p.participant_id);
        assert_eq!(claims.hearing_id, created.hearing_id);
        assert_eq!(claims.site, "Trại tạm giam số 1");

        let (status, list) = call(&app, "GET", "/api/v1/hearings", Some(KEY), None).await;
        assert_eq!(status, StatusCode::OK);
        let list: HearingList = serde_json::from_value(list).unwrap();
        assert_eq!(list.hearings.len(), 1);
        assert_eq!(list.hearings[0].id, created.hearing_id);

        let uri = format!("/api/v1/hearings/{}", created.hearing_id);
        let (status, got) = call(&app, "GET", &uri, Some(KEY), None).await;
        assert_eq!(status, StatusCode::OK);
        let got: HearingDetail = serde_json::from_value(got).unwrap();
        let got = got.hearing;
        assert_eq!(got.participants[0].name, "Nguyễn Văn A");
        assert_eq!(
            got.participants[0].id,
            created.participants[0].participant_id
        );

        let (status, links) = call(&app, "GET", &format!("{uri}/links"), Some(KEY), None).await;
        assert_eq!(status, StatusCode::OK);
        let links: HearingLinks = serde_json::from_value(links).unwrap();
        assert_eq!(links.hearing_id, created.hearing_id);
        assert_eq!(links.participants.len(), 2);
        assert!(links.participants[0].join_url.starts_with(&prefix));
    }

    #[tokio::test]
    async fn error_statuses() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(state(dir.path()).await);
        let post = |body: Vec<u8>| {
            let app = app.clone();
            async move { call(&app, "POST", "/api/v1/hearings", Some(KEY), Some(body)).await }
        };

        let (s, j) = post(b"{not json".to_vec()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{j}");
        assert_eq!(j["error"]["code"], "malformed_json");

        let mut body: serde_json::Value = serde_json::from_slice(&create_body()).unwrap();
        body["participants"][1]["role"] = "king".into();
        let (s, j) = post(serde_json::to_vec(&body).unwrap()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(j["error"]["code"], "validation_failed");
        let msg = j["error"]["message"].as_str().unwrap();
        assert!(
            msg.starts_with("participants[1].role: unknown role \"king\""),
            "{msg}"
        );

        let mut body: serde_json::Value = serde_json::from_slice(&create_body()).unwrap();
        body["participants"][0]["name"] = "  ".into();
        let (s, j) = post(serde_json::to_vec(&body).unwrap()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            j["error"]["message"],
            "participants[0].name: must not be empty"
        );

        let (s, j) = post(br#"{"case_number": "x", "title": "y"}"#.to_vec()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            j["error"]["message"]
                .as_str()
                .unwrap()
                .contains("participants"),
            "{j}"
        );

        let (s, j) =
            post(br#"{"case_number": 5, "title": "y", "participants": []}"#.to_vec()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            j["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("case_number:"),
            "{j}"
        );

        let big = vec![b' '; MAX_BODY_BYTES + 10];
        let (s, j) = post(big).await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(j["error"]["code"], "payload_too_large");

        let (s, j) = call(&app, "GET", "/api/v1/hearings/nope", Some(KEY), None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(j["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`nope` is not a valid hearing id"));

        let missing = Uuid::new_v4();
        for uri in [
            format!("/api/v1/hearings/{missing}"),
            format!("/api/v1/hearings/{missing}/links"),
        ] {
            let (s, j) = call(&app, "GET", &uri, Some(KEY), None).await;
            assert_eq!(s, StatusCode::NOT_FOUND);
            assert_eq!(j["error"]["code"], "hearing_not_found");
        }
    }

    #[tokio::test]
    async fn store_failure_is_500_with_generic_message() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("x.db").display());
        let store = SqliteStore::open(&url).await.unwrap();
        store.close().await;
        let mut st = state(dir.path()).await;
        st.store = Arc::new(store);
        let app = app(st);
        let (s, j) = call(&app, "GET", "/api/v1/hearings", Some(KEY), None).await;
        assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(j["error"]["code"], "internal");
        assert!(!j["error"]["message"].as_str().unwrap().contains("closed"));
    }

    /// Percent-encodes a path segment.
    fn enc(text: &str) -> String {
        text.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    }

    fn json(v: serde_json::Value) -> Option<Vec<u8>> {
        Some(serde_json::to_vec(&v).unwrap())
    }

    fn msg(j: &serde_json::Value) -> &str {
        j["error"]["message"].as_str().unwrap_or_default()
    }

    async fn create(app: &Router) -> HearingLinks {
        let (status, created) = call(
            app,
            "POST",
            "/api/v1/hearings",
            Some(KEY),
            Some(create_body()),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        serde_json::from_value(created).unwrap()
    }

    /// Every route of [`routes`]: (method, path). The OpenAPI document and the README
    /// must list exactly these.
    const ROUTES: &[(&str, &str)] = &[
        ("GET", "/api/v1/openapi.json"),
        ("GET", "/api/v1/hearings"),
        ("POST", "/api/v1/hearings"),
        ("GET", "/api/v1/hearings/{id}"),
        ("PATCH", "/api/v1/hearings/{id}"),
        ("POST", "/api/v1/hearings/{id}/state"),
        ("GET", "/api/v1/hearings/{id}/sites"),
        ("PUT", "/api/v1/hearings/{id}/sites/{name}"),
        ("POST", "/api/v1/hearings/{id}/participants"),
        ("GET", "/api/v1/hearings/{id}/participants/{pid}"),
        ("DELETE", "/api/v1/hearings/{id}/participants/{pid}"),
        ("POST", "/api/v1/hearings/{id}/participants/{pid}/revoke"),
        ("GET", "/api/v1/hearings/{id}/links"),
        ("GET", "/api/v1/hearings/{id}/audit"),
    ];

    fn concrete(path: &str) -> String {
        path.replace("{id}", "67e55044-10b1-426f-9247-bb680e5fe0c8")
            .replace("{pid}", "67e55044-10b1-426f-9247-bb680e5fe0c9")
            .replace("{name}", "Ph%C3%B2ng%201")
    }

    #[tokio::test]
    async fn every_route_needs_the_key_except_the_openapi_document() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(state(dir.path()).await);
        for (method, path) in ROUTES {
            let uri = concrete(path);
            for key in [None, Some("wrong-key"), Some("")] {
                let (status, json) = call(&app, method, &uri, key, None).await;
                if *path == "/api/v1/openapi.json" {
                    assert_eq!(status, StatusCode::OK, "the document is public");
                    continue;
                }
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {uri} {key:?}");
                assert_eq!(json["error"]["code"], "unauthorized");
            }
        }
        // Another scheme than Bearer is refused too.
        let req = Request::builder()
            .uri("/api/v1/hearings")
            .header(header::AUTHORIZATION, format!("Basic {KEY}"))
            .body(Body::empty())
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(resp.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }

    #[tokio::test]
    async fn openapi_document_covers_every_route_and_the_readme_too() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(state(dir.path()).await);
        let (status, doc) = call(&app, "GET", "/api/v1/openapi.json", None, None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
        let paths = doc["paths"].as_object().unwrap();
        let mut documented: Vec<(String, String)> = paths
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .unwrap()
                    .keys()
                    .filter(|m| ["get", "post", "put", "patch", "delete"].contains(&m.as_str()))
                    .map(move |m| (m.to_uppercase(), path.clone()))
            })
            .collect();
        documented.sort();
        let mut expected: Vec<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        expected.sort();
        assert_eq!(documented, expected, "OpenAPI paths differ from the routes");

        // Every listed route exists in the router (401, not 404/405), and no path
        // has methods the document does not name.
        for (method, path) in ROUTES {
            let (status, _) = call(&app, method, &concrete(path), None, None).await;
            assert!(
                status == StatusCode::UNAUTHORIZED || status == StatusCode::OK,
                "{method} {path} is routed: {status}"
            );
            for other in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
                if ROUTES.contains(&(other, path)) {
                    continue;
                }
                let (status, _) = call(&app, other, &concrete(path), Some(KEY), None).await;
                assert_eq!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{other} {path} is not a route"
                );
            }
        }

        // Protected operations declare the bearer key; schemas are present.
        assert_eq!(
            doc["components"]["securitySchemes"]["admin_key"]["scheme"],
            "bearer"
        );
        assert!(doc["paths"]["/api/v1/hearings"]["post"]["security"][0]
            .get("admin_key")
            .is_some());
        for schema in [
            "CreateHearingRequest",
            "HearingDetail",
            "StateRequest",
            "AuditTrail",
            "ErrorBody",
            "Role",
            "HearingState",
            "SiteKind",
            "Admission",
        ] {
            assert!(
                doc["components"]["schemas"].get(schema).is_some(),
                "schema {schema}"
            );
        }
        let states = doc["components"]["schemas"]["HearingState"]["enum"].to_string();
        assert!(states.contains("in_session"), "{states}");

        let readme = include_str!("../../README.md");
        for (method, path) in ROUTES {
            let row = format!("| `{method} {path}` |");
            assert!(readme.contains(&row), "README.md lacks the row {row}");
        }
    }

    #[tokio::test]
    async fn sites_and_schedule_at_creation() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(state(dir.path()).await);
        let mut body: serde_json::Value = serde_json::from_slice(&create_body()).unwrap();
        body["scheduled_at"] = "2026-12-01T08:00:00+07:00".into();
        body["sites"] = serde_json::json!([{"name": "Phòng xử án 1", "kind": "central"}]);
        let (s, created) = call(
            &app,
            "POST",
            "/api/v1/hearings",
            Some(KEY),
            json(body.clone()),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{created}");
        let id = created["hearing_id"].as_str().unwrap().to_owned();
        let (s, got) = call(
            &app,
            "GET",
            &format!("/api/v1/hearings/{id}"),
            Some(KEY),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(got["scheduled_at"], "2026-12-01T01:00:00Z");
        assert_eq!(got["status"]["state"], "scheduled");
        assert_eq!(got["state_history"], serde_json::json!([]));
        assert_eq!(
            got["sites"],
            serde_json::json!([
                {"name": "Phòng xử án 1", "kind": "central"},
                {"name": "Trại tạm giam số 1", "kind": "remote"}
            ])
        );
        assert_eq!(got["participants"][0]["site_kind"], "central");
        assert_eq!(got["participants"][0]["admission"], "admitted");
        assert_eq!(got["participants"][1]["admission"], "lobby");
        assert_eq!(got["participants"][1]["muted"], false);
        assert_eq!(got["participants"][1]["link_version"], 0);

        let mut bad = body.clone();
        bad["sites"][0]["kind"] = "castle".into();
        let (s, j) = call(&app, "POST", "/api/v1/hearings", Some(KEY), json(bad)).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(msg(&j).starts_with("sites[0].kind:"), "{j}");
        let mut bad = body.clone();
        bad["scheduled_at"] = "next tuesday".into();
        let (s, j) = call(&app, "POST", "/api/v1/hearings", Some(KEY), json(bad)).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(msg(&j).starts_with("scheduled_at:"), "{j}");
        let mut bad = body;
        bad["sites"] =
            serde_json::json!([{"name": "A", "kind": "central"}, {"name": "A", "kind": "office"}]);
        let (s, j) = call(&app, "POST", "/api/v1/hearings", Some(KEY), json(bad)).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(msg(&j).starts_with("sites[1].name:"), "{j}");
    }

    #[tokio::test]
    async fn update_hearing_through_the_actor() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(state(dir.path()).await);
        let h = create(&app).await;
        let uri = format!("/api/v1/hearings/{}", h.hearing_id);

        let (s, j) = call(
            &app,
            "PATCH",
            &uri,
            Some(KEY),
            json(serde_json::json!({"title": "  Phiên tòa phúc thẩm  ", "scheduled_at": "2026-12-02T09:30:00Z"})),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{j}");
        assert_eq!(j["title"], "Phiên tòa phúc thẩm");
        assert_eq!(j["case_number"], "HS-123/2026", "absent fields stay");
        assert_eq!(j["scheduled_at"], "2026-12-02T09:30:00Z");
        let (_, got) = call(&app, "GET", &uri, Some(KEY), None).await;
        assert_eq!(got["title"], "Phiên tòa phúc thẩm");

        for (body, status, needle) in [
            (
                b"{}".to_vec(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "body: nothing to change",
            ),
            (
                br#"{"title": " "}"#.to_vec(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "title: must not be empty",
            ),
            (
                br#"{"colour": "red"}"#.to_vec(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown field `colour`",
            ),
            (
                br#"{"scheduled_at": 5}"#.to_vec(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "scheduled_at:",
            ),
            (
                br#"{"title": "x""#.to_vec(),
                StatusCode::BAD_REQUEST,
                "not valid JSON",
            ),
            (
                vec![b' '; MAX_BODY_BYTES + 1],
                StatusCode::PAYLOAD_TOO_LARGE,
                "larger than",
            ),
        ] {
            let (s, j) = call(&app, "PATCH", &uri, Some(KEY), Some(body)).await;
            assert_eq!(s, status, "{j}");
            assert!(msg(&j).contains(needle), "{needle}: {j}");
        }
        let missing = format!("/api/v1/hearings/{}", Uuid::new_v4());
        let (s, j) = call(
            &app,
            "PATCH",
            &missing,
            Some(KEY),
            json(serde_json::json!({"title": "t"})),
        )
        .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{j}");
        assert_eq!(j["error"]["code"], "hearing_not_found");

        // Audited under the key's name.
        let (_, audit) = call(&app, "GET", &format!("{uri}/audit"), Some(KEY), None).await;
        let last = audit["entries"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["action"], "hearing_updated");
        assert_eq!(last["actor"], "admin:config");
        assert_eq!(last["details"]["title"], "Phiên tòa phúc thẩm");
    }

    #[tokio::test]
    async fn lifecycle_through_the_api() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(state(dir.path()).await);
        let h = create(&app).await;
        let uri = format!("/api/v1/hearings/{}/state", h.hearing_id);
        let set = |body: serde_json::Value| {
            let app = app.clone();
            let uri = uri.clone();
            async move { call(&app, "POST", &uri, Some(KEY), json(body)).await }
        };

        let (s, j) = set(serde_json::json!({"state": "in_session"})).await;
        assert_eq!(s, StatusCode::CONFLICT, "{j}");
        assert_eq!(j["error"]["code"], "invalid_transition");
        assert!(msg(&j).contains("possible: open"), "{j}");

        let (s, j) = set(serde_json::json!({"state": "open"})).await;
        assert_eq!(s, StatusCode::OK, "{j}");
        assert_eq!(j["status"]["state"], "open");
        let (s, j) = set(serde_json::json!({"state": "in_session"})).await;
        assert_eq!(s, StatusCode::OK, "{j}");

        let (s, j) = set(serde_json::json!({"state": "suspended"})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{j}");
        assert_eq!(j["error"]["code"], "reason_required");
        let (s, j) =
            set(serde_json::json!({"state": "suspended", "reason": "x".repeat(501)})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{j}");
        assert_eq!(j["error"]["code"], "malformed_message");
        assert!(msg(&j).contains("reason"), "{j}");
        let (s, j) =
            set(serde_json::json!({"state": "suspended", "reason": "Nghỉ giải lao"})).await;
        assert_eq!(s, StatusCode::OK, "{j}");
        assert_eq!(j["status"]["reason"], "Nghỉ giải lao");

        let (s, j) = set(serde_json::json!({"state": "adjourned", "reason": "Vắng bị cáo"})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{j}");
        assert_eq!(j["error"]["code"], "reason_required");
        assert!(msg(&j).contains("adjourned_to"), "{j}");
        let (s, j) =
            set(serde_json::json!({"state": "adjourned", "reason": "r", "adjourned_to": "soon"}))
                .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{j}");
        assert_eq!(j["error"]["code"], "validation_failed");
        assert!(msg(&j).starts_with("adjourned_to:"), "{j}");
        let (s, j) = set(serde_json::json!({"state": "paused"})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{j}");
        assert!(msg(&j).starts_with("state:"), "{j}");
        let (s, j) = set(serde_json::json!({"state": "open", "why": "x"})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{j}");
        assert!(msg(&j).contains("unknown field `why`"), "{j}");

        let (s, j) = set(serde_json::json!({"state": "in_session"})).await;
        assert_eq!(s, StatusCode::OK, "{j}");
        let (s, j) = set(serde_json::json!({"state": "closed"})).await;
        assert_eq!(s, StatusCode::OK, "{j}");
        assert_eq!(j["status"]["state"], "closed");
        let history: Vec<(String, String)> = j["state_history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["state"].as_str().unwrap().to_owned(),
                    r["actor"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let states: Vec<&str> = history.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(
            states,
            ["open", "in_session", "suspended", "in_session", "closed"]
        );
        assert!(
            history.iter().all(|(_, a)| a == "admin:config"),
            "{history:?}"
        );
        assert_eq!(j["state_history"][2]["reason"], "Nghỉ giải lao");

        let (s, j) = set(serde_json::json!({"state": "open"})).await;
        assert_eq!(s, StatusCode::CONFLICT, "{j}");
        assert!(msg(&j).contains("cannot change any more"), "{j}");

        let missing = format!("/api/v1/hearings/{}/state", Uuid::new_v4());
        let (s, _) = call(
            &app,
            "POST",
            &missing,
            Some(KEY),
            json(serde_json::json!({"state": "open"})),
        )
        .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn sites_route() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(state(dir.path()).await);
        let h = create(&app).await;
        let base = format!("/api/v1/hearings/{}", h.hearing_id);

        let (s, j) = call(&app, "GET", &format!("{base}/sites"), Some(KEY), None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(j["sites"].as_array().unwrap().len(), 2);

        let detention = format!("{base}/sites/{}", enc("Trại tạm giam số 1"));
        let (s, j) = call(
            &app,
            "PUT",
            &detention,
            Some(KEY),
            json(serde_json::json!({"kind": "detention"})),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{j}");
        assert_eq!(
            j,
            serde_json::json!({"name": "Trại tạm giam số 1", "kind": "detention"})
        );
        let (_, got) = call(&app, "GET", &base, Some(KEY), None).await;
        assert_eq!(got["participants"][1]["site_kind"], "detention");

        let office = format!("{base}/sites/{}", enc("Văn phòng luật sư"));
        let (s, j) = call(
            &app,
            "PUT",
            &office,
            Some(KEY),
            json(serde_json::json!({"kind": "office"})),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{j}");
        let (_, j) = call(&app, "GET", &format!("{base}/sites"), Some(KEY), None).await;
        assert_eq!(j["sites"][2]["name"], "Văn phòng luật sư");

        let (s, j) = call(
            &app,
            "PUT",
            &office,
            Some(KEY),
            json(serde_json::json!({"kind": "palace"})),
        )
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(msg(&j).starts_with("kind:"), "{j}");
        let blank = format!("{base}/sites/%20");
        let (s, j) = call(
            &app,
            "PUT",
            &blank,
            Some(KEY),
            json(serde_json::json!({"kind": "office"})),
        )
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(msg(&j), "site.name: must not be empty");
        let missing = format!("/api/v1/hearings/{}/sites/x", Uuid::new_v4());
        let (s, _) = call(
            &app,
            "PUT",
            &missing,
            Some(KEY),
            json(serde_json::json!({"kind": "office"})),
        )
        .await;
        assert_eq!(s, StatusCode::NOT_FOUND);

        let (_, audit) = call(&app, "GET", &format!("{base}/audit"), Some(KEY), None).await;
        let actions: Vec<&str> = audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        assert_eq!(actions, ["hearing_created", "site_updated", "site_updated"]);
    }

    #[tokio::test]
    async fn participants_add_get_revoke_remove() {
        let dir = tempfile::tempdir().unwrap();
        let st = state(dir.path()).await;
        let tokens = st.tokens.clone();
        let app = app(st);
        let h = create(&app).await;
        let base = format!("/api/v1/hearings/{}", h.hearing_id);

        let (s, added) = call(
            &app,
            "POST",
            &format!("{base}/participants"),
            Some(KEY),
            json(serde_json::json!({"name": " Lê Thị C ", "role": "defence_counsel", "site": "Văn phòng luật sư"})),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{added}");
        let added: IssuedLink = serde_json::from_value(added).unwrap();
        assert_eq!(added.participant.name, "Lê Thị C");
        assert_eq!(added.participant.site_kind, SiteKind::Remote);
        assert_eq!(added.participant.admission, Admission::Lobby);
        let pid = added.participant.id;
        let claims = tokens
            .verify(added.join_url.split_once("#token=").unwrap().1)
            .unwrap();
        assert_eq!((claims.sub, claims.ver), (pid, 0));

        for (body, needle) in [
            (
                serde_json::json!({"name": "A", "role": "king", "site": "S"}),
                "role: unknown role \"king\"",
            ),
            (
                serde_json::json!({"name": "", "role": "judge", "site": "S"}),
                "name: must not be empty",
            ),
            (
                serde_json::json!({"name": "A", "role": "judge", "site": "S\u{7}"}),
                "site: must not contain control characters",
            ),
            (
                serde_json::json!({"name": "A", "role": "judge"}),
                "missing field `site`",
            ),
        ] {
            let (s, j) = call(
                &app,
                "POST",
                &format!("{base}/participants"),
                Some(KEY),
                json(body),
            )
            .await;
            assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{j}");
            assert!(msg(&j).contains(needle), "{needle}: {j}");
        }

        let p_uri = format!("{base}/participants/{pid}");
        let (s, got) = call(&app, "GET", &p_uri, Some(KEY), None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(got["role"], "defence_counsel");

        let (s, revoked) = call(&app, "POST", &format!("{p_uri}/revoke"), Some(KEY), None).await;
        assert_eq!(s, StatusCode::OK, "{revoked}");
        let revoked: IssuedLink = serde_json::from_value(revoked).unwrap();
        assert_eq!(revoked.participant.link_version, 1);
        let claims = tokens
            .verify(revoked.join_url.split_once("#token=").unwrap().1)
            .unwrap();
        assert_eq!(claims.ver, 1);
        let (_, got) = call(&app, "GET", &p_uri, Some(KEY), None).await;
        assert_eq!(got["link_version"], 1);

        let (s, removed) = call(
            &app,
            "DELETE",
            &format!("{p_uri}?reason=V%E1%BA%AFng"),
            Some(KEY),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{removed}");
        assert_eq!(removed["admission"], "removed");
        let (s, j) = call(&app, "DELETE", &p_uri, Some(KEY), None).await;
        assert_eq!(s, StatusCode::CONFLICT, "{j}");
        assert_eq!(j["error"]["code"], "not_applicable");
        let (s, j) = call(&app, "POST", &format!("{p_uri}/revoke"), Some(KEY), None).await;
        assert_eq!(s, StatusCode::CONFLICT, "{j}");
        let (s, j) = call(
            &app,
            "DELETE",
            &format!("{p_uri}?colour=red"),
            Some(KEY),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{j}");

        // Links leave the removed participant out.
        let (_, links) = call(&app, "GET", &format!("{base}/links"), Some(KEY), None).await;
        let ids: Vec<&str> = links["participants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["participant_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids.len(), 2);
        assert!(!ids.contains(&pid.to_string().as_str()));

        let unknown = format!("{base}/participants/{}", Uuid::new_v4());
        for (method, uri) in [
            ("GET", unknown.clone()),
            ("DELETE", unknown.clone()),
            ("POST", format!("{unknown}/revoke")),
        ] {
            let (s, j) = call(&app, method, &uri, Some(KEY), None).await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{method} {uri}");
            assert_eq!(j["error"]["code"], "unknown_participant");
        }
        let (s, j) = call(
            &app,
            "GET",
            &format!("{base}/participants/nope"),
            Some(KEY),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(msg(&j).contains("not a valid participant id"), "{j}");

        let (_, audit) = call(&app, "GET", &format!("{base}/audit"), Some(KEY), None).await;
        let actions: Vec<&str> = audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        assert_eq!(
            actions,
            [
                "hearing_created",
                "participant_added",
                "link_revoked",
                "remove"
            ]
        );
        assert_eq!(audit["entries"][3]["details"]["reason"], "Vắng");
        assert_eq!(audit["entries"][3]["subject"], format!("participant:{pid}"));

        // Nobody can be added to a closed hearing.
        for st in ["open", "closed"] {
            let (s, _) = call(
                &app,
                "POST",
                &format!("{base}/state"),
                Some(KEY),
                json(serde_json::json!({"state": st})),
            )
            .await;
            assert_eq!(s, StatusCode::OK);
        }
        let (s, j) = call(
            &app,
            "POST",
            &format!("{base}/participants"),
            Some(KEY),
            json(serde_json::json!({"name": "A", "role": "witness", "site": "S"})),
        )
        .await;
        assert_eq!(s, StatusCode::CONFLICT, "{j}");
        assert_eq!(j["error"]["code"], "hearing_closed");
    }

    #[tokio::test]
    async fn audit_route_verifies_the_chain_and_names_a_tampered_entry() {
        let dir = tempfile::tempdir().unwrap();
        let st = state(dir.path()).await;
        let key = "ops-key-0123456789abcdef";
        st.store
            .add_admin_key("ops", &crate::auth::admin_key_sha256(key))
            .await
            .unwrap();
        let app = app(st);
        let h = create(&app).await;
        let base = format!("/api/v1/hearings/{}", h.hearing_id);
        // A key from the database works and is the audit actor.
        let (s, _) = call(
            &app,
            "POST",
            &format!("{base}/state"),
            Some(key),
            json(serde_json::json!({"state": "open"})),
        )
        .await;
        assert_eq!(s, StatusCode::OK);

        let (s, audit) = call(&app, "GET", &format!("{base}/audit"), Some(KEY), None).await;
        assert_eq!(s, StatusCode::OK, "{audit}");
        let trail: AuditTrail = serde_json::from_value(audit).unwrap();
        assert_eq!(trail.hearing_id, h.hearing_id);
        assert!(trail.verification.ok, "{:?}", trail.verification);
        assert_eq!(trail.entries.len(), 2);
        assert_eq!(trail.head.count, 2);
        assert_eq!(trail.head.hash, trail.entries[1].hash);
        assert_eq!(trail.entries[0].action, "hearing_created");
        assert_eq!(trail.entries[0].actor, "admin:config");
        assert_eq!(
            trail.entries[0].details["participants"][1]["role"],
            "defendant"
        );
        assert_eq!(trail.entries[1].action, "state_change");
        assert_eq!(trail.entries[1].actor, "admin:ops");
        assert_eq!(trail.entries[1].details["to"], "open");
        assert_eq!(trail.entries[1].prev_hash, trail.entries[0].hash);

        // Tamper with the first entry's details directly in the database.
        let url = format!(
            "sqlite://{}",
            dir.path().join("db/openhearing.db").display()
        );
        let raw = crate::store::SqliteStore::open(&url).await.unwrap();
        sqlx::query("UPDATE audit SET details = 'not json' WHERE hearing_id = ? AND seq = 1")
            .bind(h.hearing_id.to_string())
            .execute(raw.pool())
            .await
            .unwrap();
        let (s, audit) = call(&app, "GET", &format!("{base}/audit"), Some(KEY), None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(audit["verification"]["ok"], false);
        assert!(
            audit["verification"]["problem"]
                .as_str()
                .unwrap()
                .starts_with("entry #1 was modified"),
            "{audit}"
        );
        assert_eq!(audit["entries"][0]["details"], "not json", "shown as text");

        let missing = format!("/api/v1/hearings/{}/audit", Uuid::new_v4());
        let (s, j) = call(&app, "GET", &missing, Some(KEY), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_eq!(j["error"]["code"], "hearing_not_found");
    }
}
