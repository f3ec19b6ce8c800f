//! The admin API's OpenAPI 3.1 document, served at `GET /api/v1/openapi.json`.
//!
//! Each handler names its own operation in a one-line `#[utoipa::path]`: method,
//! path, body and its set of answers, which [`answers`] declares, all in one table,
//! so the whole API's answers can be read (and reviewed) in one place. What all
//! operations share is described once, here, by [`Shared`]:
//! - the tag (`hearings`) and, for every route but the document itself, the
//!   `admin_key` bearer requirement — as [`AdminAuth`](super::AdminAuth) is the
//!   first extractor of every such handler;
//! - the path parameters, which mean the same in every route: `{id}` a hearing,
//!   `{pid}` a participant, `{name}` a site;
//! - one `401` response component, `Unauthorized`, and one `429`, `TooManyAttempts`
//!   (wrong keys are throttled per address, see [`super::guard`]), that every route needing the key
//!   refers to, and the few named sets of error answers many routes have in common
//!   ([`HearingErrors`], [`ParticipantErrors`], [`ChangeErrors`], ...), each
//!   including those two; a route's set in [`answers`] names one of them next to
//!   its own answers.
//!
//! The document is the same as when every operation spelled all of this out,
//! except that the `401`s are references to the one component.

use std::collections::BTreeMap;

use axum::Json;
use utoipa::openapi::path::{Operation, Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{KnownFormat, Object, SchemaFormat, Type};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{Content, Ref, RefOr, Required};
use utoipa::OpenApi;

use super::handlers;

/// The OpenAPI document of the admin API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "OpenHearing admin API",
        description = "Create and run online court hearings: hearings, sites, participants, join links, lifecycle and the audit trail. Every route except this document needs `Authorization: Bearer <admin key>`."
    ),
    paths(
        openapi_json,
        handlers::list_hearings,
        handlers::create_hearing,
        handlers::get_hearing,
        handlers::update_hearing,
        handlers::set_state,
        handlers::list_sites,
        handlers::upsert_site,
        handlers::add_participant,
        handlers::get_participant,
        handlers::remove_participant,
        handlers::revoke_link,
        handlers::hearing_links,
        handlers::audit_trail
    ),
    components(schemas(
        super::HearingLinks,
        super::HearingList,
        super::HearingDetail,
        super::SiteList,
        super::IssuedLink,
        super::AuditTrail,
        super::ErrorBody,
        crate::model::Site,
        crate::model::Participant
    )),
    modifiers(&Shared),
    tags((name = "hearings", description = "Hearings, sites, participants and join links"))
)]
pub struct ApiDoc;

/// The name of the shared `401` response component.
const UNAUTHORIZED: &str = "Unauthorized";

/// The name of the shared `429` response component (admin-key guessing throttled).
const TOO_MANY_ATTEMPTS: &str = "TooManyAttempts";

/// The one route anyone may call.
const PUBLIC_PATH: &str = "/api/v1/openapi.json";

/// What every operation shares (see the module docs); also declares the `admin_key`
/// bearer security scheme and the `Unauthorized` response component.
struct Shared;

impl utoipa::Modify for Shared {
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
        components.responses.insert(
            UNAUTHORIZED.to_owned(),
            error_response("Missing or wrong admin key"),
        );
        components.responses.insert(
            TOO_MANY_ATTEMPTS.to_owned(),
            error_response("`too_many_attempts`: too many wrong keys from this address; `Retry-After` says when to try again"),
        );
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                share(path, operation);
            }
        }
    }
}

/// Gives the operation on `path` what all operations share.
fn share(path: &str, operation: &mut Operation) {
    operation.tags = Some(vec!["hearings".to_owned()]);
    if path != PUBLIC_PATH {
        let key = SecurityRequirement::new("admin_key", Vec::<String>::new());
        operation.security = Some(vec![key]);
    }
    let mut parameters: Vec<Parameter> = path
        .split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .filter_map(path_parameter)
        .collect();
    parameters.extend(operation.parameters.take().unwrap_or_default());
    operation.parameters = (!parameters.is_empty()).then_some(parameters);
}

/// The `{name}` placeholder of a route's path (a test checks each is known).
fn path_parameter(name: &str) -> Option<Parameter> {
    let uuid = || {
        let format = SchemaFormat::KnownFormat(KnownFormat::Uuid);
        Object::builder()
            .schema_type(Type::String)
            .format(Some(format))
    };
    let (schema, description) = match name {
        "id" => (uuid(), "Hearing id"),
        "pid" => (uuid(), "Participant id"),
        "name" => (
            Object::builder().schema_type(Type::String),
            "Site name (URL-encoded)",
        ),
        _ => return None,
    };
    let parameter = ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(description))
        .schema(Some(schema));
    Some(parameter.build())
}

/// An error answer: `description`, with an [`ErrorBody`](super::ErrorBody) as JSON.
fn error_response(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            Content::new(Some(Ref::from_schema_name("ErrorBody"))),
        )
        .build()
        .into()
}

/// Declares the named sets of error answers: each is the shared `401` and `429` plus the
/// `(status, description)` pairs listed, for a route's `responses(...)`.
macro_rules! error_sets {
    ($($(#[$doc:meta])* $name:ident: [$(($status:literal, $description:literal)),*];)*) => {$(
        $(#[$doc])*
        pub struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                let unauthorized = RefOr::Ref(Ref::from_response_name(UNAUTHORIZED));
                let throttled = RefOr::Ref(Ref::from_response_name(TOO_MANY_ATTEMPTS));
                [("401".to_owned(), unauthorized), ("429".to_owned(), throttled)]
                    .into_iter()
                    .chain([$(($status.to_string(), error_response($description))),*])
                    .collect()
            }
        }
    )*};
}

error_sets! {
    /// A route with nothing in its path: only the key can be wrong.
    KeyErrors: [];
    /// Creating a hearing: a body that is no JSON, or too large.
    CreateErrors: [(400, "Malformed JSON"), (413, "Body over 256 KiB"), (503, "The database cannot take writes now (`store_unavailable`); nothing was stored")];
    /// Reading what `/hearings/{id}` names.
    HearingErrors: [(400, "The id is not a UUID"), (404, "No such hearing")];
    /// Reading or changing what `/hearings/{id}/participants/{pid}` names.
    ParticipantErrors: [(400, "An id is not a UUID"), (404, "No such hearing or participant")];
    /// Changing `/hearings/{id}...` with a JSON body.
    ChangeErrors: [(400, "Malformed JSON or id"), (404, "No such hearing"), (413, "Body over 256 KiB"), (503, "The database cannot take writes now (`store_unavailable`); nothing changed")];
}

/// Declares, for each route, its set of answers: the successes (status,
/// description, the JSON body's schema), the route's own error answers, and the
/// shared error set it also has (which brings the `401` and `429`).
macro_rules! route_answers {
    ($($(#[$doc:meta])* $name:ident:
        [$(($ok:literal, $said:literal, $body:ty)),+]
        [$(($status:literal, $description:literal)),*] + $shared:ty;)*) => {$(
        $(#[$doc])*
        pub struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                let mut answers = <$shared as utoipa::IntoResponses>::responses();
                $(answers.insert($ok.to_string(), success::<$body>($said));)+
                $(answers.insert($status.to_string(), error_response($description));)*
                answers
            }
        }
    )*};
}

/// A success answer: `description`, with a `T` as JSON.
fn success<T: utoipa::ToSchema>(description: &str) -> RefOr<Response> {
    let schema = Ref::from_schema_name(T::name());
    ResponseBuilder::new()
        .description(description)
        .content("application/json", Content::new(Some(schema)))
        .build()
        .into()
}

/// Every route's answers, named after the route (see [`route_answers`]).
pub mod answers {
    use super::super::dto::{
        AuditTrail, HearingDetail, HearingLinks, HearingList, IssuedLink, SiteList,
    };
    use super::*;
    use crate::model::{Participant, Site};

    #[rustfmt::skip]
    route_answers! {
        /// `POST /api/v1/hearings`.
        CreateHearing: [(201, "Created; the join links", HearingLinks)]
            [(422, "A field is missing or invalid; the message names it")] + CreateErrors;
        /// `GET /api/v1/hearings`.
        ListHearings: [(200, "The hearings", HearingList)] [] + KeyErrors;
        /// `GET /api/v1/hearings/{id}`.
        GetHearing: [(200, "The hearing", HearingDetail)] [] + HearingErrors;
        /// `PATCH /api/v1/hearings/{id}`.
        UpdateHearing: [(200, "The changed hearing", HearingDetail)]
            [(422, "A field is invalid; the message names it")] + ChangeErrors;
        /// `POST /api/v1/hearings/{id}/state`.
        SetState: [(200, "The hearing in its new state", HearingDetail)] [
            (409, "`invalid_transition`: the lifecycle does not allow this move"),
            (422, "`reason_required`, `malformed_message` (bad reason) or `validation_failed`")
        ] + ChangeErrors;
        /// `GET /api/v1/hearings/{id}/sites`.
        ListSites: [(200, "The sites", SiteList)] [] + HearingErrors;
        /// `PUT /api/v1/hearings/{id}/sites/{name}`.
        UpsertSite: [(200, "The site's kind was changed", Site), (201, "The site was added", Site)]
            [(422, "Bad name or kind; the message names the field")] + ChangeErrors;
        /// `POST /api/v1/hearings/{id}/participants`.
        AddParticipant: [(201, "Added; the participant and their join link", IssuedLink)] [
            (409, "`hearing_closed`, or `not_applicable` (participant limit reached)"),
            (422, "A field is missing or invalid; the message names it")
        ] + ChangeErrors;
        /// `GET /api/v1/hearings/{id}/participants/{pid}`.
        GetParticipant: [(200, "The participant", Participant)] [] + ParticipantErrors;
        /// `DELETE /api/v1/hearings/{id}/participants/{pid}`.
        RemoveParticipant: [(200, "The participant, now removed", Participant)]
            [(409, "`not_applicable`: already removed"), (422, "Bad reason or query")]
            + ParticipantErrors;
        /// `POST /api/v1/hearings/{id}/participants/{pid}/revoke`.
        RevokeLink: [(200, "The participant with their new link version, and the new link", IssuedLink)]
            [(409, "`not_applicable`: the participant was removed")] + ParticipantErrors;
        /// `GET /api/v1/hearings/{id}/links`.
        HearingLinksAnswers: [(200, "The join links", HearingLinks)] [] + HearingErrors;
        /// `GET /api/v1/hearings/{id}/audit`.
        Audit: [(200, "The entries, the recorded head and the verification", AuditTrail)] []
            + HearingErrors;
    }
}

/// The OpenAPI document of this API. Public: it describes the routes, holds no data.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json"))
)]
pub(super) async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
