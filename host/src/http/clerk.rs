//! Clerk's webhooks, on the platform's own host: `POST /v1/clerk/webhooks`,
//! unauthenticated by token — each delivery proves itself with its Svix
//! signature (checked by [`crate::app::clerk`], which also acts on it). The
//! endpoint has one rate for everyone, checked before any signature, and a
//! small body limit: Clerk's events are a few KiB.

use axum::extract::{DefaultBodyLimit, State};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};

use crate::app;
use crate::http::body::Sorted;
use crate::http::context::{PlatformHost, RawBody};
use crate::http::{ApiError, ApiResult};
use crate::state::AppState;

/// The largest delivery taken, in bytes.
const MAX_BODY: usize = 256 << 10;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route(
        "/v1/clerk/webhooks",
        post(webhook).layer(DefaultBodyLimit::max(MAX_BODY)),
    )
}

/// `{"event", "status": "processed"|"ignored"|"duplicate", "svix_id", …}`.
async fn webhook(
    State(app): State<AppState>,
    _platform: PlatformHost,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Json<Sorted<app::clerk::Accepted>>> {
    if let Err(not_until) = app.clerk_rate.check() {
        let wait = not_until.wait_time_from(governor::clock::Clock::now(app.clerk_rate.clock()));
        return Err(ApiError::rate_limited(
            wait.as_secs_f64().ceil().max(1.0) as u64
        ));
    }
    Ok(Json(Sorted(
        app::clerk::accept_webhook(&app, &headers, &body).await?,
    )))
}
