//! Safe rollout over HTTP: a draft release in shadow
//! (`PUT`/`DELETE /v1/installations/{name}/shadow`), the report on a
//! release's shadow runs (`GET …/releases/{id}/shadow`), and the tenant's
//! rollout settings (`GET`/`PUT /v1/rollout`: the shadow gate, its own
//! automatic rollback thresholds, recording), and the recorded calls as
//! JSONL (`GET /v1/records`). The use cases are
//! [`crate::app::shadow`]'s and [`crate::app::rollout`]'s.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Json, Router, routing::get, routing::put};
use serde::{Deserialize, Serialize};

use super::installations::{name, release_id};
use crate::app;
use crate::http::body::Sorted;
use crate::http::context::{JsonBody, Member, TenantAdmin};
use crate::http::{ApiError, ApiResult, Code};
use crate::rollout_settings::{Bounds, RollbackThresholds, RolloutSettings};
use crate::state::AppState;
use crate::storage::ShadowRecord;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/installations/{name}/shadow", put(start).delete(stop))
        .route("/v1/installations/{name}/releases/{id}/shadow", get(report))
        .route("/v1/rollout", get(settings).put(set_settings))
        .route("/v1/records", get(records))
}

/// `PUT /v1/installations/{name}/shadow`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartShadow {
    /// The draft release to shadow.
    release: i64,
    /// The share of live calls that also run it, 0 to 1.
    rate: f64,
}

#[derive(Serialize)]
struct ShadowBody {
    shadow: Sorted<ShadowRecord>,
}

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
#[derive(Serialize)]
struct RolloutBody {
    /// The tenant's own settings.
    settings: Sorted<RolloutSettings>,
    /// What applies: the higher shadow gate, the rollback thresholds in force.
    effective: Effective,
    /// What the platform allows.
    bounds: BoundsBody,
}

#[derive(Serialize)]
struct Effective {
    shadow_gate: u32,
    rollback: Sorted<RollbackThresholds>,
}

#[derive(Serialize)]
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

async fn settings(State(app): State<AppState>, member: Member) -> ApiResult<Json<RolloutBody>> {
    let state = member.tenant.state(&app).await?;
    Ok(Json(body(&app, state.rollout.clone())))
}

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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordsQuery {
    #[serde(default)]
    after: i64,
    #[serde(default = "default_limit")]
    limit: u32,
}

fn default_limit() -> u32 {
    1_000
}

/// The tenant's recorded calls, oldest first, one JSON object per line
/// (`application/x-ndjson`); the next page is `?after=` the last id.
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
