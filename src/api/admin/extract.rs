//! The admin API's extractors: everything a handler takes from the request, each
//! failing with an [`AdminError`] so a handler never sees an axum rejection.
//!
//! A handler takes one [`Call<P, B>`]: the key ([`AdminAuth`]), the API's state, the
//! path resolved into what it names (`P`: [`Target`]) and the body or query (`B`:
//! [`Body`]). So the parsing and loading every handler once did first happens here,
//! in one order — key, path (id, hearing, participant id, participant), body — and a
//! request with several faults gets the same answer everywhere: 401 before any path
//! error, a path or lookup error before a body error.
//!
//! What a path can name ([`FromPath`]): a [`HearingId`], a stored [`Hearing`], or
//! the hearing and what the rest of the path names in it ([`InHearing`], [`Within`]:
//! a [`HearingSite`] or a [`HearingParticipant`]).
//!
//! The body does not go through `axum::Json`, which insists on a `Content-Type:
//! application/json` header and words its errors differently from the field-naming
//! messages this API has always given: [`AdminJson`] reads the bytes and parses them
//! itself (axum's `AppJson` idea, written out because the crate does not build
//! axum's `macros` feature).

use std::future::Future;
use std::net::SocketAddr;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRef, FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::{AdminError, AdminState};
use crate::model::{Hearing, Participant, ValidationError};

/// Proof that the request carried an admin key, and which. Extract it before
/// anything else. A wrong key counts against the source address, which after a few
/// is throttled ([`super::guard`]); a missing one does not count (it is no guess).
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
        let source = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let now = Instant::now();
        let guard = &state.key_guard;
        guard
            .check(source, now)
            .map_err(AdminError::TooManyAttempts)?;
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
            None => {
                guard.failed(source, now);
                Err(AdminError::Unauthorized)
            }
        }
    }
}

/// One admin request, checked and resolved before its handler runs: the key that
/// allowed it, the API's state, what its path names (`P`, see [`Target`]) and what it
/// carries (`B`, see [`Body`]). Every handler takes exactly one of these.
///
/// The parts are taken in the order the API has always answered faults in: the key
/// first (401 before anything else), then the path (400 or 404), then the body.
pub struct Call<P = (), B = ()> {
    pub auth: AdminAuth,
    pub state: AdminState,
    pub target: P,
    pub body: B,
}

impl<S, P, B> FromRequest<S> for Call<P, B>
where
    S: Send + Sync,
    AdminState: FromRef<S>,
    P: Target,
    B: Body,
{
    type Rejection = AdminError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let auth = AdminAuth::from_request_parts(&mut parts, state).await?;
        let state = AdminState::from_ref(state);
        let target = P::resolve_path(&mut parts, &state).await?;
        let body = B::read(Request::from_parts(parts, body)).await?;
        Ok(Call {
            auth,
            state,
            target,
            body,
        })
    }
}

/// What a request carries besides its path: nothing (`()`), a JSON body
/// ([`AdminJson`]) or a query string ([`AdminQuery`]).
pub trait Body: Sized + Send {
    fn read(req: Request) -> impl Future<Output = Result<Self, AdminError>> + Send;
}

impl Body for () {
    async fn read(_: Request) -> Result<Self, AdminError> {
        Ok(())
    }
}

/// The query string as `T`; one that does not fit is `422 validation_failed` on the
/// field `query`.
#[derive(Debug)]
pub struct AdminQuery<T>(pub T);

impl<T: DeserializeOwned + Send> Body for AdminQuery<T> {
    async fn read(req: Request) -> Result<Self, AdminError> {
        Ok(AdminQuery(Query::try_from_uri(req.uri())?.0))
    }
}

/// A JSON body of type `T`, whatever its `Content-Type`. A body over the limit is
/// `413 payload_too_large`; broken JSON `400 malformed_json`; JSON of the wrong shape
/// `422 validation_failed`, naming the offending field (`body` for the whole).
#[derive(Debug)]
pub struct AdminJson<T>(pub T);

impl<T: DeserializeOwned + Send> Body for AdminJson<T> {
    async fn read(req: Request) -> Result<Self, AdminError> {
        let bytes = Bytes::from_request(req, &()).await?;
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| json_error(&e))?;
        de.end()
            .map_err(|e| AdminError::MalformedJson(e.to_string()))?;
        Ok(AdminJson(value))
    }
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

fn parse_uuid(text: &str, what: &str) -> Result<Uuid, AdminError> {
    Uuid::parse_str(text).map_err(|_| {
        AdminError::BadRequest(format!(
            "`{text}` is not a valid {what} id; expected a UUID like 67e55044-10b1-426f-9247-bb680e5fe0c8"
        ))
    })
}

/// What a request's path names: nothing (`()`, a route without parameters) or,
/// for any [`FromPath`] type, the thing itself: `Call<Hearing>` carries the stored
/// hearing of `/api/v1/hearings/{id}...`.
pub trait Target: Sized + Send {
    fn resolve_path(
        parts: &mut Parts,
        state: &AdminState,
    ) -> impl Future<Output = Result<Self, AdminError>> + Send;
}

impl Target for () {
    async fn resolve_path(_: &mut Parts, _: &AdminState) -> Result<Self, AdminError> {
        Ok(())
    }
}

/// The path is read as `T::Params` (a bad one is `400` "bad path: ..."), then
/// [`FromPath::resolve`] turns it into `T`.
impl<T: FromPath + Send> Target for T {
    async fn resolve_path(parts: &mut Parts, state: &AdminState) -> Result<Self, AdminError> {
        let Path(params) = Path::<T::Params>::from_request_parts(parts, &()).await?;
        T::resolve(state, params).await
    }
}

/// Something a request path can name.
pub trait FromPath: Sized {
    /// The path parameters, in route order.
    type Params: DeserializeOwned + Send;

    fn resolve(
        state: &AdminState,
        params: Self::Params,
    ) -> impl Future<Output = Result<Self, AdminError>> + Send;
}

/// The `{id}` of `/api/v1/hearings/{id}...`, parsed but not looked up.
#[derive(Debug, Clone, Copy)]
pub struct HearingId(pub Uuid);

impl FromPath for HearingId {
    type Params = String;

    async fn resolve(_: &AdminState, id: String) -> Result<Self, AdminError> {
        Ok(HearingId(parse_uuid(&id, "hearing")?))
    }
}

/// The hearing `{id}` names (`400` if it is no UUID, `404` if there is none).
impl FromPath for Hearing {
    type Params = String;

    async fn resolve(state: &AdminState, id: String) -> Result<Self, AdminError> {
        let id = parse_uuid(&id, "hearing")?;
        state
            .store
            .get_hearing(id)
            .await?
            .ok_or(AdminError::HearingNotFound(id))
    }
}

/// `/api/v1/hearings/{id}/.../{key}`: the stored hearing and what `key` names in it
/// ([`Within`]), looked up in that order.
#[derive(Debug, Clone)]
pub struct InHearing<T> {
    pub hearing: Hearing,
    pub item: T,
}

/// What the last parameter of a hearing's path can name within that hearing.
pub trait Within: Sized {
    fn find(hearing: &Hearing, key: String) -> Result<Self, AdminError>;
}

impl<T: Within + Send> FromPath for InHearing<T> {
    type Params = (String, String);

    async fn resolve(state: &AdminState, (id, key): (String, String)) -> Result<Self, AdminError> {
        let hearing = Hearing::resolve(state, id).await?;
        let item = T::find(&hearing, key)?;
        Ok(InHearing { hearing, item })
    }
}

/// `/api/v1/hearings/{id}/sites/{name}`: the stored hearing and the site name.
pub type HearingSite = InHearing<SiteName>;

/// A site name as the path gives it (not trimmed, not checked).
#[derive(Debug, Clone)]
pub struct SiteName(pub String);

impl Within for SiteName {
    fn find(_: &Hearing, name: String) -> Result<Self, AdminError> {
        Ok(SiteName(name))
    }
}

/// `/api/v1/hearings/{id}/participants/{pid}...`: the stored hearing and that
/// participant of it.
pub type HearingParticipant = InHearing<Participant>;

/// The participant `{pid}` names (`400` if it is no UUID, `404 unknown_participant`
/// if the hearing has none such).
impl Within for Participant {
    fn find(hearing: &Hearing, pid: String) -> Result<Self, AdminError> {
        let pid = parse_uuid(&pid, "participant")?;
        hearing
            .participants
            .iter()
            .find(|p| p.id == pid)
            .cloned()
            .ok_or(AdminError::ParticipantNotFound(pid))
    }
}
