//! A tenant's background jobs: list them with state and last error, and retry a
//! dead one.

use axum::extract::{Path, Query, State};
use axum::{
    Json, Router,
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::http::context::{Member, TenantAdmin};
use crate::http::{ApiError, ApiResult, Code};
use crate::state::AppState;
use crate::storage::JobState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/jobs", get(list))
        .route("/v1/jobs/{id}", get(show))
        .route("/v1/jobs/{id}/retry", post(retry))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    state: Option<String>,
    limit: Option<u32>,
}

async fn list(
    State(app): State<AppState>,
    member: Member,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let state = match q.state.as_deref() {
        Some(s) => Some(s.parse::<JobState>().map_err(|_| {
            ApiError::new(
                Code::InvalidState,
                "state is one of queued, running, done, dead",
            )
        })?),
        None => None,
    };
    let jobs = app
        .storage
        .tenant(member.tenant.id())
        .jobs(state, q.limit.unwrap_or(50).min(500))
        .await?;
    Ok(Json(json!({ "jobs": jobs })))
}

async fn show(
    State(app): State<AppState>,
    member: Member,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    let job = app
        .storage
        .tenant(member.tenant.id())
        .job(id)
        .await?
        .ok_or_else(|| ApiError::not_found("this tenant has no job with that id"))?;
    Ok(Json(json!({ "job": job })))
}

async fn retry(
    State(app): State<AppState>,
    admin: TenantAdmin,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    let db = app.storage.tenant(admin.tenant.id());
    let job = db.retry_job(id).await?;
    db.audit(
        &admin.principal.subject,
        "job.retry",
        None,
        None,
        Some(&json!({ "job": id }).to_string()),
    )
    .await?;
    Ok(Json(json!({ "job": job })))
}
