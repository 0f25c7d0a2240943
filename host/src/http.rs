//! The HTTP API (axum): JSON under `/v1` with one error shape,
//! `{"error":{"code","message"}}`, and the web console at `/console`
//! (server-rendered HTML over the same application layer: [`console`]). One router per area, merged here; request
//! context (tenant from host, token, role, rate) comes from the extractors in
//! `context`. Handlers are adapters: they extract, call a use case of
//! [`crate::app`] (or `storage` directly for plain reads and writes), and map
//! results and errors to responses; they run no SQL and touch no wasmtime type
//! themselves. Each handler carries its OpenAPI operation (`#[utoipa::path]`)
//! and is registered through utoipa-axum's `routes!`, so the router and the
//! document at `GET /v1/openapi.json` ([`openapi`]) come from one list.
//! Nothing outside this module imports it (but `server`, which mounts
//! [`router`], and the tests' contract check, which reads the document).
//!
//! Every request has a time limit (`--request-timeout-ms`, default 30 s; plugin
//! uploads get the compile timeout on top): past it the handler is dropped and
//! the answer is 503 `request_timeout` — 503 rather than 408, because the time
//! is nearly always the server's own work (a slow body is the exception), and
//! clients and proxies retry a 503.

mod access;
mod admin;
#[cfg(feature = "bench-native")]
mod bench;
mod body;
mod clerk;
mod console;
mod context;
mod domains;
pub mod email;
mod error;
mod health;
mod installations;
mod jobs;
mod metrics;
pub mod openapi;
mod policies;
mod rollout;
mod sending_domains;
mod served;
pub mod shopify;
mod tenant;
mod tls;
mod traffic;

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use context::{
    Member, PlatformAdmin, PlatformHost, TenantAdmin, TenantCtx, TenantHost, request_host,
};
pub use error::{ApiError, ApiResult, Code};
pub use metrics::router as metrics_router;
pub use served::ServedDocument;
pub use tls::{redirect_router, with_hsts};

use crate::state::AppState;

/// Every route of the API with its OpenAPI operation, each module's routes
/// merged (registered through utoipa-axum's `routes!`, so a route cannot be
/// served without being in the document); `max_import` bounds an archive
/// import's body, in bytes.
pub(crate) fn routes(max_import: usize) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(openapi::openapi_json))
        .merge(health::routes())
        .merge(traffic::routes())
        .merge(tenant::routes())
        .merge(installations::routes())
        .merge(policies::routes())
        .merge(rollout::routes())
        .merge(admin::routes(max_import))
        .merge(domains::routes())
        .merge(tls::routes())
        .merge(jobs::routes())
        .merge(shopify::routes())
        .merge(clerk::routes())
        .merge(email::routes())
        .merge(sending_domains::routes())
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    let max_body = state.config.max_body_bytes;
    let timeouts = Timeouts {
        default: state.config.request_timeout(),
        upload: state.config.request_timeout()
            + Duration::from_secs(state.config.compile_timeout_secs),
    };
    let (router, _) = routes(
        usize::try_from(state.config.backups.max_import_mib.saturating_mul(1 << 20))
            .unwrap_or(usize::MAX),
    )
    .split_for_parts();
    #[cfg(feature = "bench-native")]
    let router = router.merge(bench::routes());
    router
        .merge(console::routes())
        .fallback(|| async {
            ApiError::new(
                Code::NoRoute,
                "there is no such endpoint; see the API list in README.md",
            )
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                Code::MethodNotAllowed,
                "this endpoint does not take that method",
            )
        })
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(
            timeouts,
            request_timeout,
        ))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::internal("a handler panicked").into_response()
        }))
        .layer(TraceLayer::new_for_http())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            access::access_log,
        ))
        .with_state(state)
}

/// The time limits of requests.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Every request but plugin uploads.
    pub default: Duration,
    /// Plugin uploads (`POST /v1/plugins`), which compile.
    pub upload: Duration,
}

/// Middleware: answers 503 `request_timeout` when the rest of the stack takes
/// longer than its limit (the handler's future, body reading included, is
/// dropped; blocking work it started ends under its own bounds).
pub async fn request_timeout(
    State(timeouts): State<Timeouts>,
    request: Request,
    next: Next,
) -> Response {
    let limit = if request.method() == Method::POST && request.uri().path() == "/v1/plugins" {
        timeouts.upload
    } else {
        timeouts.default
    };
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(Code::RequestTimeout,
            format!(
                "the request took longer than the server's limit of {} ms and was stopped; retry, or send less work per request",
                limit.as_millis()
            ),
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::routing::get;
    use tower::ServiceExt as _;

    use super::*;

    #[tokio::test]
    async fn a_slow_request_is_answered_503_request_timeout_in_the_house_shape() {
        let timeouts = Timeouts {
            default: Duration::from_millis(50),
            upload: Duration::from_secs(5),
        };
        let app = Router::new()
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "done"
                }),
            )
            .route("/fast", get(|| async { "done" }))
            .layer(axum::middleware::from_fn_with_state(
                timeouts,
                request_timeout,
            ));
        let started = std::time::Instant::now();
        let response = app
            .clone()
            .oneshot(Request::get("/slow").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()["retry-after"], "1");
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "request_timeout");
        assert!(
            body["error"]["message"].as_str().unwrap().contains("50 ms"),
            "{body}"
        );
        let response = app
            .oneshot(Request::get("/fast").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
}
