//! HTTP surface: the admin REST API, the signaling WebSocket, health probes and the
//! web client. Handlers translate between HTTP/JSON and the domain; they hold no
//! hearing state themselves.

pub mod admin;
pub mod web;
pub mod ws;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::server::AppState;

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(admin::routes())
        .route("/ws/hearings/{hearing}", get(ws::handler::<AppState>))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(web::static_or_index)
        .with_state(state)
}

/// Liveness: the process answers HTTP.
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the database answers and the server is not shutting down.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if *state.signaling.shutdown.borrow() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down".to_owned());
    }
    match state.signaling.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready".to_owned()),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("database unavailable: {e}"),
        ),
    }
}
