//! Liveness and readiness, on any host, without authentication.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::openapi::errors;
use crate::http::{ApiError, Code};
use crate::state::AppState;

/// `GET /healthz`.
#[derive(Serialize, ToSchema)]
struct Live {
    /// Always `ok`.
    status: &'static str,
}

/// `GET /readyz` (fields in alphabetical order: see `http::body`).
#[derive(Serialize, ToSchema)]
struct Ready {
    /// The version of the base configuration served.
    base_version: String,
    /// The database backend: `sqlite` or `postgres`.
    database: String,
    /// Always `ready`.
    status: &'static str,
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(live))
        .routes(routes!(ready))
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "health", security(()),
    responses((status = 200, body = Live)),
    extensions(("x-veneer-errors" = json!(errors(&[])))))]
async fn live() -> Json<Live> {
    Json(Live { status: "ok" })
}

/// Readiness: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "health", security(()),
    responses((status = 200, body = Ready)),
    extensions(("x-veneer-errors" = json!(errors(&[&[Code::DatabaseUnavailable]])))))]
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
