//! The admin REST API: create hearings and hand out participants' join links.
//!
//! Every route requires `Authorization: Bearer <admin key>`. Errors are JSON
//! `{"error": {"code": "...", "message": "..."}}`.
//!
//! | method & path | answer |
//! |---|---|
//! | `POST /api/v1/hearings` | 201 [`HearingLinks`] |
//! | `GET /api/v1/hearings` | 200 [`HearingList`] |
//! | `GET /api/v1/hearings/{id}` | 200 [`Hearing`] |
//! | `GET /api/v1/hearings/{id}/links` | 200 [`HearingLinks`] with fresh tokens |

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, FromRef, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::{AdminKey, AuthError, JoinTokens};
use crate::hearing::Hearings;
use crate::model::{Hearing, NewHearing, NewParticipant, Participant, Role, Site, ValidationError};
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

/// The admin routes, for merging into the server's router.
pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    AdminState: FromRef<S>,
{
    Router::new()
        .route("/api/v1/hearings", get(list_hearings).post(create_hearing))
        .route("/api/v1/hearings/{id}", get(get_hearing))
        .route("/api/v1/hearings/{id}/links", get(hearing_links))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// Body of `POST /api/v1/hearings`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateHearingRequest {
    pub case_number: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sites: Vec<Site>,
    pub participants: Vec<CreateParticipantRequest>,
}

/// One participant in a [`CreateHearingRequest`]. `role` is a role's wire name.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateParticipantRequest {
    pub name: String,
    pub role: String,
    pub site: String,
}

impl CreateHearingRequest {
    /// The validated, trimmed hearing to store.
    pub fn into_new_hearing(self) -> Result<NewHearing, ValidationError> {
        let participants = self
            .participants
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                let role: Role = p.role.trim().parse().map_err(|_| {
                    ValidationError::new(
                        format!("participants[{i}].role"),
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
            participants: h
                .participants
                .iter()
                .map(|p| CreateParticipantRequest {
                    name: p.name.clone(),
                    role: p.role.as_str().to_owned(),
                    site: p.site.clone(),
                })
                .collect(),
        }
    }
}

/// A hearing with every participant's join link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HearingLinks {
    pub hearing_id: Uuid,
    pub case_number: String,
    pub title: String,
    pub participants: Vec<ParticipantLink>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantLink {
    pub participant_id: Uuid,
    pub name: String,
    pub role: Role,
    pub site: String,
    /// `{public_url}/join/{hearing_id}#token={jwt}`.
    pub join_url: String,
}

/// Answer of `GET /api/v1/hearings`, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HearingList {
    pub hearings: Vec<Hearing>,
}

/// The JSON body of every error answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
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
    #[error("request body is larger than {MAX_BODY_BYTES} bytes")]
    PayloadTooLarge,
    #[error("storage failure: {0}")]
    Store(#[from] StoreError),
    #[error("cannot issue join token: {0}")]
    Token(#[from] AuthError),
}

impl AdminError {
    pub fn status(&self) -> StatusCode {
        match self {
            AdminError::Unauthorized => StatusCode::UNAUTHORIZED,
            AdminError::BadRequest(_) | AdminError::MalformedJson(_) => StatusCode::BAD_REQUEST,
            AdminError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AdminError::HearingNotFound(_) => StatusCode::NOT_FOUND,
            AdminError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AdminError::Store(_) | AdminError::Token(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            AdminError::Unauthorized => "unauthorized",
            AdminError::BadRequest(_) => "bad_request",
            AdminError::MalformedJson(_) => "malformed_json",
            AdminError::Validation(_) => "validation_failed",
            AdminError::HearingNotFound(_) => "hearing_not_found",
            AdminError::PayloadTooLarge => "payload_too_large",
            AdminError::Store(_) | AdminError::Token(_) => "internal",
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self, "admin API request failed");
            "internal server error; see the server log".to_owned()
        } else {
            self.to_string()
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code().to_owned(),
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

/// Proof that the request carried the admin key. Extract it before anything else.
pub struct AdminAuth;

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
        if state.admin_key.verify(presented) {
            Ok(AdminAuth)
        } else {
            Err(AdminError::Unauthorized)
        }
    }
}

fn parse_id(text: &str) -> Result<Uuid, AdminError> {
    Uuid::parse_str(text).map_err(|_| {
        AdminError::BadRequest(format!(
            "`{text}` is not a valid hearing id; expected a UUID like 67e55044-10b1-426f-9247-bb680e5fe0c8"
        ))
    })
}

fn parse_body(body: Result<Bytes, BytesRejection>) -> Result<CreateHearingRequest, AdminError> {
    let bytes = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AdminError::PayloadTooLarge
        } else {
            AdminError::BadRequest(rejection.body_text())
        }
    })?;
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    let request: CreateHearingRequest =
        serde_path_to_error::deserialize(&mut de).map_err(|e| json_error(&e))?;
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

/// `{public_url}/join/{hearing_id}#token={jwt}`: the token is in the fragment so it
/// never reaches server or proxy logs.
pub fn join_url(public_url: &str, hearing_id: Uuid, token: &str) -> String {
    format!(
        "{}/join/{hearing_id}#token={token}",
        public_url.trim_end_matches('/')
    )
}

async fn create_hearing(
    _auth: AdminAuth,
    State(state): State<AdminState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<HearingLinks>), AdminError> {
    let new = parse_body(body)?.into_new_hearing()?;
    let auto_admit = state.hearings.permissions().workflow().auto_admit.clone();
    let hearing = state.store.create_hearing(new, &auto_admit).await?;
    tracing::info!(hearing_id = %hearing.id, case_number = %hearing.case_number, participants = hearing.participants.len(), "hearing created");
    Ok((StatusCode::CREATED, Json(links(&state, &hearing)?)))
}

async fn list_hearings(
    _auth: AdminAuth,
    State(state): State<AdminState>,
) -> Result<Json<HearingList>, AdminError> {
    Ok(Json(HearingList {
        hearings: state.store.list_hearings().await?,
    }))
}

async fn load(state: &AdminState, id: &str) -> Result<Hearing, AdminError> {
    let id = parse_id(id)?;
    state
        .store
        .get_hearing(id)
        .await?
        .ok_or(AdminError::HearingNotFound(id))
}

async fn get_hearing(
    _auth: AdminAuth,
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Json<Hearing>, AdminError> {
    Ok(Json(load(&state, &id).await?))
}

async fn hearing_links(
    _auth: AdminAuth,
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Json<HearingLinks>, AdminError> {
    let hearing = load(&state, &id).await?;
    Ok(Json(links(&state, &hearing)?))
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
            hearings: Hearings::new(
                Duration::from_secs(60),
                store.clone(),
                Arc::new(crate::permissions::Permissions::defaults()),
            ),
            store,
            tokens: Arc::new(JoinTokens::new(&[9u8; 32], Duration::from_secs(3600))),
            admin_key: Arc::new(AdminKey::from_plaintext(KEY)),
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
        let got: Hearing = serde_json::from_value(got).unwrap();
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
}
