//! The HTTP API (axum): JSON under `/v1` with one error shape,
//! `{"error":{"code","message"}}`. One router per area, merged here; request
//! context (tenant from host, token, role, rate) comes from the extractors in
//! `context`. Handlers call `storage`, `runtime` (through `resolve`) and the
//! caches; they run no SQL and touch no wasmtime type themselves.

mod admin;
#[cfg(feature = "bench-native")]
mod bench;
mod context;
pub mod email;
mod error;
mod health;
mod jobs;
mod served;
pub mod shopify;
mod tenant;
pub(crate) mod traffic;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

pub use context::{Member, PlatformAdmin, TenantAdmin, TenantCtx};
pub use error::{ApiError, ApiResult};
pub use served::ServedDocument;
pub(crate) use traffic::SECTION_COUNT;
pub use traffic::{INLINE_DEADLINE_MS, INLINE_FUEL};

use crate::state::AppState;

/// The whole API.
pub fn app(state: AppState) -> Router {
    let max_body = state.config.max_body_bytes;
    let router = Router::new();
    #[cfg(feature = "bench-native")]
    let router = router.merge(bench::routes());
    router
        .merge(health::routes())
        .merge(traffic::routes())
        .merge(tenant::routes())
        .merge(admin::routes())
        .merge(jobs::routes())
        .merge(shopify::routes())
        .merge(email::routes())
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no_route",
                "there is no such endpoint; see the API list in README.md",
            )
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method",
            )
        })
        .layer(DefaultBodyLimit::max(max_body))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::internal("a handler panicked").into_response()
        }))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
