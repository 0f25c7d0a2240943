//! Liveness and readiness, on any host, without authentication.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Json, Router, routing::get};
use serde::Serialize;

use crate::http::ApiError;
use crate::state::AppState;

/// `GET /healthz`.
#[derive(Serialize)]
struct Live {
    status: &'static str,
}

/// `GET /readyz` (fields in alphabetical order: see `http::body`).
#[derive(Serialize)]
struct Ready {
    base_version: String,
    database: String,
    status: &'static str,
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(live))
        .route("/readyz", get(ready))
}

async fn live() -> Json<Live> {
    Json(Live { status: "ok" })
}

async fn ready(State(app): State<AppState>) -> Result<(StatusCode, Json<Ready>), ApiError> {
    app.storage.ping().await?;
    Ok((
        StatusCode::OK,
        Json(Ready {
            base_version: app.base().version.clone(),
            database: format!("{:?}", app.storage.backend()).to_lowercase(),
            status: "ready",
        }),
    ))
}
