//! A tenant's background jobs: list them with state and last error, and retry a
//! dead one.

use axum::extract::{Path, State};
use axum::{
    Json, Router,
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::http::body::Sorted;
use crate::http::context::{ApiQuery, Member, TenantAdmin};
use crate::http::{ApiError, ApiResult, Code};
use crate::state::AppState;
use crate::storage::JobState;

/// `GET /v1/jobs` (nested records sorted: see `http::body`).
#[derive(Serialize)]
struct JobsBody<T> {
    jobs: Sorted<T>,
}

/// `GET /v1/jobs/{id}`, `POST /v1/jobs/{id}/retry`.
#[derive(Serialize)]
struct JobBody<T> {
    job: Sorted<T>,
}

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
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<JobsBody<impl Serialize>>> {
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
    Ok(Json(JobsBody { jobs: Sorted(jobs) }))
}

async fn show(
    State(app): State<AppState>,
    member: Member,
    Path(id): Path<i64>,
) -> ApiResult<Json<JobBody<impl Serialize>>> {
    let job = app
        .storage
        .tenant(member.tenant.id())
        .job(id)
        .await?
        .ok_or_else(|| ApiError::not_found("this tenant has no job with that id"))?;
    Ok(Json(JobBody { job: Sorted(job) }))
}

async fn retry(
    State(app): State<AppState>,
    admin: TenantAdmin,
    Path(id): Path<i64>,
) -> ApiResult<Json<JobBody<impl Serialize>>> {
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
    Ok(Json(JobBody { job: Sorted(job) }))
}
