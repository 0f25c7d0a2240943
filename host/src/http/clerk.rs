//! Clerk's webhooks, on the platform's own host: `POST /v1/clerk/webhooks`,
//! unauthenticated by token — each delivery proves itself with its Svix
//! signature (checked by [`crate::app::clerk`], which also acts on it). The
//! endpoint has one rate for everyone, checked before any signature, and a
//! small body limit: Clerk's events are a few KiB.

use axum::Json;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::HeaderMap;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use crate::app;
use crate::http::body::Sorted;
use crate::http::context::{PlatformHost, RawBody};
use crate::http::openapi::{HOST, RAW, errors};
use crate::http::{ApiError, ApiResult, Code};
use crate::state::AppState;

/// The largest delivery taken, in bytes.
const MAX_BODY: usize = 256 << 10;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(webhook).layer(DefaultBodyLimit::max(MAX_BODY)))
}

/// `{"event", "status": "processed"|"ignored"|"duplicate", "svix_id", …}`.
#[utoipa::path(
    post,
    path = "/v1/clerk/webhooks",
    tag = "webhooks",
    security(("clerk_svix" = [])),
    request_body(content = Object, description = "A Clerk webhook event (organization.*, organizationMembership.*)", content_type = "application/json"),
    responses(
        (status = 200, body = app::clerk::Accepted),
    ),
    extensions(("x-veneer-errors" = json!(errors(&[HOST, RAW, &[Code::RateLimited, Code::ClerkWebhooksDisabled, Code::InvalidClerkWebhook, Code::InvalidJson, Code::DatabaseUnavailable, Code::Conflict]])))),
)]
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
