//! Safe rollout over HTTP: a draft release in shadow
//! (`PUT`/`DELETE /v1/installations/{name}/shadow`), the report on a
//! release's shadow runs (`GET …/releases/{id}/shadow`), and the tenant's
//! rollout settings (`GET`/`PUT /v1/rollout`: the shadow gate, its own
//! automatic rollback thresholds, recording), and the recorded calls as
//! JSONL (`GET /v1/records`). The use cases are
//! [`crate::app::shadow`]'s and [`crate::app::rollout`]'s.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::installations::{name, release_id};
use crate::app;
use crate::http::body::Sorted;
use crate::http::context::{JsonBody, Member, TenantAdmin};
use crate::http::openapi::{JSON, MEMBER, TENANT_HOST, TOKEN, errors};
use crate::http::{ApiError, ApiResult, Code};
use crate::rollout_settings::{Bounds, RollbackThresholds, RolloutSettings};
use crate::state::AppState;
use crate::storage::ShadowRecord;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start, stop))
        .routes(routes!(report))
        .routes(routes!(settings, set_settings))
        .routes(routes!(records))
}

/// `PUT /v1/installations/{name}/shadow`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct StartShadow {
    /// The draft release to shadow.
    release: i64,
    /// The share of live calls that also run it, 0 to 1.
    rate: f64,
}

#[derive(Serialize, ToSchema)]
struct ShadowBody {
    #[schema(value_type = ShadowRecord)]
    shadow: Sorted<ShadowRecord>,
}

/// Puts a draft release in shadow: a share of live calls also run it, and
/// their answers are compared (admins).
#[utoipa::path(put, path = "/v1/installations/{name}/shadow", tag = "rollout", security(("bearer" = [])),
    params(("name" = String, Path, description = "The installation's name")),
    request_body = StartShadow,
    responses((status = 200, body = ShadowBody)),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, JSON, &[Code::InvalidInstallation, Code::InvalidRollout, Code::NotFound, Code::Conflict, Code::Invalid]])))))]
async fn start(
    State(app): State<AppState>,
    admin: TenantAdmin,
    Path(installation): Path<String>,
    JsonBody(body): JsonBody<StartShadow>,
) -> ApiResult<(StatusCode, Json<ShadowBody>)> {
    let installation = name(&installation)?;
    let shadow = app::shadow::start(
        &app,
        admin.tenant.id(),
        &admin.principal.subject,
        installation,
        body.release,
        body.rate,
    )
    .await?;
    Ok((
        StatusCode::OK,
        Json(ShadowBody {
            shadow: Sorted(shadow),
        }),
    ))
}

/// Ends an installation's shadow (admins).
#[utoipa::path(delete, path = "/v1/installations/{name}/shadow", tag = "rollout", security(("bearer" = [])),
    params(("name" = String, Path, description = "The installation's name")),
    responses((status = 204, description = "Stopped")),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, &[Code::InvalidInstallation, Code::NotFound]])))))]
async fn stop(
    State(app): State<AppState>,
    admin: TenantAdmin,
    Path(installation): Path<String>,
) -> ApiResult<StatusCode> {
    let installation = name(&installation)?;
    app::shadow::stop(
        &app,
        admin.tenant.id(),
        &admin.principal.subject,
        installation,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What a release's shadow runs found, and its activation gate.
#[utoipa::path(get, path = "/v1/installations/{name}/releases/{id}/shadow", tag = "rollout", security(("bearer" = [])),
    params(("name" = String, Path, description = "The installation's name"), ("id" = String, Path, description = "The release's id (a positive number)")),
    responses((status = 200, body = app::shadow::Report)),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, &[Code::InvalidInstallation, Code::InvalidReleaseId, Code::NotFound]])))))]
async fn report(
    State(app): State<AppState>,
    member: Member,
    Path((installation, id)): Path<(String, String)>,
) -> ApiResult<Json<Sorted<app::shadow::Report>>> {
    let (installation, id) = (name(&installation)?, release_id(&id)?);
    let state = member.tenant.state(&app).await?;
    let report = app::shadow::report(&app, &state, installation, id).await?;
    Ok(Json(Sorted(report)))
}

/// `GET /v1/rollout`: what the tenant set, and what applies.
#[derive(Serialize, ToSchema)]
struct RolloutBody {
    /// The tenant's own settings.
    #[schema(value_type = RolloutSettings)]
    settings: Sorted<RolloutSettings>,
    /// What applies: the higher shadow gate, the rollback thresholds in force.
    effective: Effective,
    /// What the platform allows.
    bounds: BoundsBody,
}

#[derive(Serialize, ToSchema)]
struct Effective {
    shadow_gate: u32,
    #[schema(value_type = RollbackThresholds)]
    rollback: Sorted<RollbackThresholds>,
}

#[derive(Serialize, ToSchema)]
struct BoundsBody {
    max_recording_rate: f64,
    max_retention_days: u32,
    platform_shadow_gate: u32,
}

fn body(app: &AppState, settings: RolloutSettings) -> RolloutBody {
    let Bounds {
        max_recording_rate,
        max_retention_days,
    } = app::rollout::bounds(app);
    RolloutBody {
        effective: Effective {
            shadow_gate: app
                .config
                .shadow_gate
                .max(settings.shadow_gate.unwrap_or(0)),
            rollback: Sorted(
                settings
                    .rollback
                    .unwrap_or_else(|| app::rollout::platform_thresholds(app)),
            ),
        },
        settings: Sorted(settings),
        bounds: BoundsBody {
            max_recording_rate,
            max_retention_days,
            platform_shadow_gate: app.config.shadow_gate,
        },
    }
}

/// The tenant's rollout settings, what applies and what the platform allows.
#[utoipa::path(get, path = "/v1/rollout", tag = "rollout", security(("bearer" = [])),
    responses((status = 200, body = RolloutBody)),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER])))))]
async fn settings(State(app): State<AppState>, member: Member) -> ApiResult<Json<RolloutBody>> {
    let state = member.tenant.state(&app).await?;
    Ok(Json(body(&app, state.rollout.clone())))
}

/// Sets the tenant's rollout settings (admins).
#[utoipa::path(put, path = "/v1/rollout", tag = "rollout", security(("bearer" = [])),
    request_body = RolloutSettings,
    responses((status = 200, body = RolloutBody)),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, JSON, &[Code::InvalidRollout]])))))]
async fn set_settings(
    State(app): State<AppState>,
    admin: TenantAdmin,
    JsonBody(value): JsonBody<serde_json::Value>,
) -> ApiResult<Json<RolloutBody>> {
    let settings: RolloutSettings = serde_json::from_value(value).map_err(|err| {
        ApiError::new(
            Code::InvalidRollout,
            format!("the body is not rollout settings: {err}"),
        )
    })?;
    app::rollout::set_settings(&app, admin.tenant.id(), &admin.principal.subject, &settings)
        .await?;
    Ok(Json(body(&app, settings)))
}

/// `GET /v1/records?after=ID&limit=N`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct RecordsQuery {
    /// The last record id of the previous page.
    #[serde(default)]
    after: i64,
    /// Records per page (default 1000).
    #[serde(default = "default_limit")]
    limit: u32,
}

fn default_limit() -> u32 {
    1_000
}

/// The tenant's recorded calls, oldest first, one JSON object per line
/// (`application/x-ndjson`); the next page is `?after=` the last id (admins).
#[utoipa::path(get, path = "/v1/records", tag = "rollout", security(("bearer" = [])),
    params(RecordsQuery),
    responses((status = 200, description = "One recorded call per line", content_type = "application/x-ndjson", body = String)),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, &[Code::InvalidLimit]])))))]
async fn records(
    State(app): State<AppState>,
    admin: TenantAdmin,
    query: Result<axum::extract::Query<RecordsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<axum::response::Response> {
    let axum::extract::Query(query) = query.map_err(|err| {
        ApiError::new(
            Code::InvalidLimit,
            format!(
                "use ?after=<record id>&limit=<1 to {}>: {err}",
                app::records::MAX_EXPORT
            ),
        )
    })?;
    if query.limit == 0 || query.limit > app::records::MAX_EXPORT {
        return Err(ApiError::new(
            Code::InvalidLimit,
            format!("limit must be 1 to {}", app::records::MAX_EXPORT),
        ));
    }
    let lines = app::records::export(
        &app,
        admin.tenant.id(),
        &admin.principal.subject,
        query.after,
        query.limit,
    )
    .await?;
    let mut body = String::new();
    for line in &lines {
        body.push_str(&serde_json::to_string(&Sorted(line)).map_err(ApiError::internal)?);
        body.push('\n');
    }
    Ok(axum::response::IntoResponse::into_response((
        [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
        body,
    )))
}
