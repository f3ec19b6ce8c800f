//! HTTP surface: the admin REST API, the signaling WebSocket, health probes and the
//! web client. Handlers translate between HTTP/JSON and the domain; they hold no
//! hearing state themselves.

pub mod admin;
pub mod join_limit;
pub mod web;
pub mod ws;

use axum::extract::{FromRef, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;

use admin::AdminState;
use ws::SignalingState;

/// Everything request handlers share: each handler extracts only its part
/// ([`AdminState`] or [`SignalingState`]) through `FromRef`.
#[derive(Clone)]
pub struct AppState {
    pub admin: AdminState,
    pub signaling: SignalingState,
}

impl FromRef<AppState> for AdminState {
    fn from_ref(s: &AppState) -> Self {
        s.admin.clone()
    }
}

impl FromRef<AppState> for SignalingState {
    fn from_ref(s: &AppState) -> Self {
        s.signaling.clone()
    }
}

/// The Content-Security-Policy of every response. The client is one bundle of our
/// own scripts and styles: nothing inline, nothing from elsewhere, never framed (a
/// hearing page inside another site's frame could be overlaid), signaling only to
/// this origin (`'self'` covers `ws:`/`wss:` to the same host and port).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob: mediastream:; \
connect-src 'self' wss:; object-src 'none'; base-uri 'none'; form-action 'self'; \
frame-ancestors 'none'";

/// The whole HTTP application. `tls`: the server itself terminates TLS, so browsers
/// are told to use HTTPS only from now on (HSTS).
pub fn app(state: AppState, tls: bool) -> Router {
    let router = Router::new()
        .merge(admin::routes())
        .route("/ws/hearings/{hearing}", get(ws::handler::<AppState>))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(web::static_or_index)
        .with_state(state);
    security_headers(router, tls)
}

/// `GET /metrics`: every metric in the Prometheus text format, behind the admin key
/// (see [`crate::metrics`]).
async fn metrics(
    _auth: admin::AdminAuth,
    State(st): State<SignalingState>,
) -> axum::response::Response {
    let Some(handle) = crate::metrics::install() else {
        let message = "metrics are unavailable: another metrics recorder was installed";
        return (StatusCode::SERVICE_UNAVAILABLE, message).into_response();
    };
    let snapshot = crate::metrics::Snapshot {
        hearings_live: st.hearings.live_count(),
        media_ports_in_use: st.sfu.ports_in_use(),
    };
    let text = crate::metrics::render(&handle, snapshot);
    let content_type = "text/plain; version=0.0.4; charset=utf-8";
    ([(header::CONTENT_TYPE, content_type)], text).into_response()
}

/// Headers a browser needs to keep a hearing page safe: the CSP above, no MIME
/// sniffing, no referrer (join links carry tokens in their fragment, but the path
/// names the hearing), no framing, camera and microphone only for this origin.
fn security_headers(router: Router, tls: bool) -> Router {
    let fixed: [(HeaderName, &'static str); 5] = [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            HeaderName::from_static("permissions-policy"),
            "camera=(self), microphone=(self), display-capture=(self), geolocation=()",
        ),
    ];
    let mut router = router;
    for (name, value) in fixed {
        router = router.layer(SetResponseHeaderLayer::overriding(
            name,
            HeaderValue::from_static(value),
        ));
    }
    if tls {
        router = router.layer(SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        ));
    }
    router
}

/// Liveness: the process answers HTTP.
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the database answers and takes writes (a full disk leaves reads
/// working, so only a write tells; see [`crate::store::readiness`]), and the server
/// is not shutting down. Back to 200 on its own once writes succeed again.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if *state.signaling.shutdown.borrow() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down".to_owned());
    }
    if let Err(e) = state.signaling.store.ping().await {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("database unavailable: {e}"),
        );
    }
    match state.signaling.store.writable().await {
        Ok(()) => (StatusCode::OK, "ready".to_owned()),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn headers_of(tls: bool) -> axum::http::HeaderMap {
        let router = security_headers(Router::new().route("/x", get(|| async { "x" })), tls);
        let resp = router
            .oneshot(Request::get("/x").body(Body::empty()).expect("request"))
            .await
            .expect("answers");
        resp.headers().clone()
    }

    #[tokio::test]
    async fn hsts_only_when_the_server_terminates_tls() {
        let plain = headers_of(false).await;
        assert!(plain.get(header::STRICT_TRANSPORT_SECURITY).is_none());
        assert_eq!(plain[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        let tls = headers_of(true).await;
        assert_eq!(tls[header::STRICT_TRANSPORT_SECURITY], "max-age=31536000");
        assert_eq!(
            tls[header::CONTENT_SECURITY_POLICY],
            CONTENT_SECURITY_POLICY
        );
    }
}
