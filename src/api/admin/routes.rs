//! The admin API's router: which handler answers which method and path. The
//! OpenAPI document ([`super::openapi::ApiDoc`]) lists the same routes; a test
//! compares the two, and both with the README's route table.

use axum::extract::{DefaultBodyLimit, FromRef};
use axum::routing::{get, post, put};
use axum::Router;

use super::handlers;
use super::openapi::openapi_json;
use super::{AdminState, MAX_BODY_BYTES};

/// The admin routes, for merging into the server's router. Keep [`ApiDoc`] and the
/// README's route table in step (a test checks both).
pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    AdminState: FromRef<S>,
{
    use handlers::*;
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
