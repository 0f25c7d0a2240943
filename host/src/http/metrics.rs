//! The metrics listener's one route, `GET /metrics`: the Prometheus
//! exposition ([`crate::app::metrics`]). Served on `--metrics-listen` only,
//! never on the API's listener, so it needs no token: bind it to a private
//! address.

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::http::{ApiError, Code};
use crate::state::AppState;

/// The metrics listener's router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .fallback(|| async {
            ApiError::new(
                Code::NoRoute,
                "the metrics listener serves GET /metrics only",
            )
        })
        .with_state(state)
}

async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        crate::app::metrics::exposition(&app).await,
    )
}
