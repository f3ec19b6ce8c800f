//! The web client, served from `web-client/dist`.
//!
//! In release builds the files are embedded in the binary (one file to deploy); in
//! debug builds rust-embed reads them from disk, so `npm run build` is picked up
//! without recompiling. Any path that is not a file gets `index.html`, so the
//! client's own routes (`/join/{hearing}`) work on reload.

use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "$CARGO_MANIFEST_DIR/web-client/dist"]
#[allow_missing = true]
struct Assets;

/// Fallback handler: a static file, or the client's index page.
pub async fn static_or_index(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    if path.starts_with("api/") || path.starts_with("ws/") {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    }
    if !path.is_empty() {
        if let Some(file) = Assets::get(path) {
            let mime = mime_guess::from_path(path).first_or_octet_stream();
            // Vite names assets by content hash: they never change under one name.
            let cache = if path.starts_with("assets/") {
                "public, max-age=31536000, immutable"
            } else {
                "no-cache"
            };
            return (
                [
                    (header::CONTENT_TYPE, mime.as_ref().to_owned()),
                    (header::CACHE_CONTROL, cache.to_owned()),
                ],
                file.data.into_owned(),
            )
                .into_response();
        }
    }
    match Assets::get("index.html") {
        Some(index) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8".to_owned()),
                (header::CACHE_CONTROL, "no-cache".to_owned()),
            ],
            index.data.into_owned(),
        )
            .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "The web client is not built. Run `npm --prefix web-client ci && npm --prefix web-client run build`, then rebuild the server.",
        )
            .into_response(),
    }
}
