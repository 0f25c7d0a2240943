//! Benchmarks only (cargo feature `bench-native`): `GET /bench/static-config`,
//! the base configuration serialised once and served through the same
//! [`ServedDocument`] as `/v1/config` (gzip negotiation and ETags included),
//! on any host, with no tenant, token, rate or cache lookup. It is the floor of
//! the stack for a JSON body of that size, beside `/healthz`'s 15 bytes
//! (docs/performance.md). A build without the feature has no such route.

use std::sync::OnceLock;

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::response::Response;
use axum::{Router, routing::get};

use crate::http::ServedDocument;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/bench/static-config", get(static_config))
}

async fn static_config(State(app): State<AppState>, request: Request) -> Response {
    static DOCUMENT: OnceLock<ServedDocument> = OnceLock::new();
    DOCUMENT
        .get_or_init(|| {
            // Serialising the loaded base cannot fail.
            let json = serde_json::to_vec(&*app.base()).unwrap_or_default();
            let etag = HeaderValue::from_str(&format!("\"base-{}\"", app.base().version))
                .unwrap_or_else(|_| HeaderValue::from_static("\"base\""));
            ServedDocument::new(json, etag)
        })
        .respond(request.headers())
}
