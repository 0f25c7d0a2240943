//! A tenant's background jobs: list them with state and last error, and retry a
//! dead one.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::body::Sorted;
use crate::http::context::{ApiQuery, Member, TenantAdmin};
use crate::http::openapi::{MEMBER, QUERY, TENANT_HOST, TOKEN, errors};
use crate::http::{ApiError, ApiResult, Code};
use crate::state::AppState;
use crate::storage::{JobRecord, JobState};

/// `GET /v1/jobs` (nested records sorted: see `http::body`).
#[derive(Serialize, ToSchema)]
struct JobsBody {
    #[schema(value_type = Vec<JobRecord>)]
    jobs: Sorted<Vec<JobRecord>>,
}

/// `GET /v1/jobs/{id}`, `POST /v1/jobs/{id}/retry`.
#[derive(Serialize, ToSchema)]
struct JobBody {
    #[schema(value_type = JobRecord)]
    job: Sorted<JobRecord>,
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show))
        .routes(routes!(retry))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only jobs in this state: `queued`, `running`, `done` or `dead`.
    state: Option<String>,
    /// At most this many (default 50, at most 500).
    limit: Option<u32>,
}

/// The tenant's background jobs, newest first, with state and last error.
#[utoipa::path(
    get,
    path = "/v1/jobs",
    tag = "jobs",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, body = JobsBody),
    ),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, QUERY, &[Code::InvalidState]])))),
)]
async fn list(
    State(app): State<AppState>,
    member: Member,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<JobsBody>> {
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

/// One job.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}",
    tag = "jobs",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The job's id")),
    responses(
        (status = 200, body = JobBody),
    ),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, &[Code::NotFound]])))),
)]
async fn show(
    State(app): State<AppState>,
    member: Member,
    Path(id): Path<i64>,
) -> ApiResult<Json<JobBody>> {
    let job = app
        .storage
        .tenant(member.tenant.id())
        .job(id)
        .await?
        .ok_or_else(|| ApiError::not_found("this tenant has no job with that id"))?;
    Ok(Json(JobBody { job: Sorted(job) }))
}

/// Queues a dead job again (admins).
#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/retry",
    tag = "jobs",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The job's id")),
    responses(
        (status = 200, body = JobBody),
    ),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, &[Code::NotFound, Code::Conflict]])))),
)]
async fn retry(
    State(app): State<AppState>,
    admin: TenantAdmin,
    Path(id): Path<i64>,
) -> ApiResult<Json<JobBody>> {
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
