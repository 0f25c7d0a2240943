//! Liveness and readiness, on any host, without authentication.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Json, Router, routing::get};
use serde_json::{Value, json};

use crate::http::ApiError;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(live))
        .route("/readyz", get(ready))
}

async fn live() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn ready(State(app): State<AppState>) -> Result<(StatusCode, Json<Value>), ApiError> {
    app.storage.ping().await?;
    Ok((
        StatusCode::OK,
        Json(
            json!({ "status": "ready", "base_version": app.base.version, "database": format!("{:?}", app.storage.backend()).to_lowercase() }),
        ),
    ))
}
