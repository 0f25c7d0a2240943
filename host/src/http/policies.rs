//! Output policies over HTTP: platform admins set, read and remove the policy
//! for every tenant (`/v1/admin/policies`) or for one
//! (`/v1/admin/tenants/{id}/policy`); a tenant's members read the policies its
//! plugins' results must keep (`/v1/policy`). The use cases are
//! [`crate::app::policies`]'.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Json, Router, routing::get};
use serde::Serialize;
use serde_json::Value;

use super::admin::tenant_id;
use crate::app;
use crate::http::body::Sorted;
use crate::http::context::{JsonBody, Member, PlatformAdmin};
use crate::http::{ApiError, ApiResult, Code};
use crate::policy::Policy;
use crate::state::AppState;
use crate::tenancy::TenantId;

/// One policy and its scope (`*` for every tenant, else the tenant id).
#[derive(Serialize)]
struct PolicyBody {
    policy: Sorted<Option<Policy>>,
    scope: String,
}

/// `GET /v1/policy`: every policy that applies to the tenant.
#[derive(Serialize)]
struct PoliciesBody {
    policies: Sorted<Vec<Policy>>,
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/policy", get(applying))
        .route(
            "/v1/admin/policies",
            get(get_all).put(put_all).delete(delete_all),
        )
        .route(
            "/v1/admin/tenants/{id}/policy",
            get(get_one).put(put_one).delete(delete_one),
        )
}

fn parse(value: Value) -> ApiResult<Policy> {
    serde_json::from_value(value).map_err(|err| {
        ApiError::new(
            Code::InvalidPolicy,
            format!("the body is not an output policy: {err}"),
        )
    })
}

async fn read(app: &AppState, tenant: Option<&TenantId>) -> ApiResult<PolicyBody> {
    let stored = app.storage.platform().output_policy(tenant).await?;
    let policy = stored
        .map(|json| serde_json::from_str::<Policy>(&json))
        .transpose()
        .map_err(ApiError::internal)?;
    Ok(PolicyBody {
        policy: Sorted(policy),
        scope: tenant.map_or("*", TenantId::as_str).to_owned(),
    })
}

async fn applying(State(app): State<AppState>, member: Member) -> ApiResult<Json<PoliciesBody>> {
    let state = member.tenant.state(&app).await?;
    Ok(Json(PoliciesBody {
        policies: Sorted(state.policies.to_vec()),
    }))
}

async fn get_all(
    State(app): State<AppState>,
    _admin: PlatformAdmin,
) -> ApiResult<Json<PolicyBody>> {
    Ok(Json(read(&app, None).await?))
}

async fn put_all(
    State(app): State<AppState>,
    admin: PlatformAdmin,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<Json<PolicyBody>> {
    let policy = parse(body)?;
    app::policies::set(&app, &admin.0.subject, None, &policy).await?;
    Ok(Json(read(&app, None).await?))
}

async fn delete_all(State(app): State<AppState>, admin: PlatformAdmin) -> ApiResult<StatusCode> {
    if app::policies::remove(&app, &admin.0.subject, None).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("no policy is set for every tenant"))
    }
}

async fn get_one(
    State(app): State<AppState>,
    _admin: PlatformAdmin,
    Path(id): Path<String>,
) -> ApiResult<Json<PolicyBody>> {
    let id = tenant_id(&id)?;
    Ok(Json(read(&app, Some(&id)).await?))
}

async fn put_one(
    State(app): State<AppState>,
    admin: PlatformAdmin,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<Json<PolicyBody>> {
    let id = tenant_id(&id)?;
    let policy = parse(body)?;
    app::policies::set(&app, &admin.0.subject, Some(&id), &policy).await?;
    Ok(Json(read(&app, Some(&id)).await?))
}

async fn delete_one(
    State(app): State<AppState>,
    admin: PlatformAdmin,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = tenant_id(&id)?;
    if app::policies::remove(&app, &admin.0.subject, Some(&id)).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "no policy is set for tenant `{id}`"
        )))
    }
}
