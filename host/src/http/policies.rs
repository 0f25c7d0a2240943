//! Output policies over HTTP: platform admins set, read and remove the policy
//! for every tenant (`/v1/admin/policies`) or for one
//! (`/v1/admin/tenants/{id}/policy`); a tenant's members read the policies its
//! plugins' results must keep (`/v1/policy`). The use cases are
//! [`crate::app::policies`]'.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::admin::tenant_id;
use crate::app;
use crate::http::body::Sorted;
use crate::http::context::{JsonBody, Member, PlatformAdmin};
use crate::http::openapi::{HOST, JSON, MEMBER, PLATFORM_ADMIN, TENANT_HOST, TOKEN, errors};
use crate::http::{ApiError, ApiResult, Code};
use crate::policy::Policy;
use crate::state::AppState;
use crate::tenancy::TenantId;

/// One policy and its scope (`*` for every tenant, else the tenant id).
#[derive(Serialize, ToSchema)]
struct PolicyBody {
    /// The policy; null when none is set.
    #[schema(value_type = Option<Policy>)]
    policy: Sorted<Option<Policy>>,
    scope: String,
}

/// `GET /v1/policy`: every policy that applies to the tenant.
#[derive(Serialize, ToSchema)]
struct PoliciesBody {
    #[schema(value_type = Vec<Policy>)]
    policies: Sorted<Vec<Policy>>,
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(applying))
        .routes(routes!(get_all, put_all, delete_all))
        .routes(routes!(get_one, put_one, delete_one))
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

/// Every output policy that applies to the tenant's plugins' results.
#[utoipa::path(get, path = "/v1/policy", tag = "policies", security(("bearer" = [])),
    responses((status = 200, body = PoliciesBody)),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER])))))]
async fn applying(State(app): State<AppState>, member: Member) -> ApiResult<Json<PoliciesBody>> {
    let state = member.tenant.state(&app).await?;
    Ok(Json(PoliciesBody {
        policies: Sorted(state.policies.to_vec()),
    }))
}

/// The output policy for every tenant (platform admins).
#[utoipa::path(get, path = "/v1/admin/policies", tag = "policies", security(("bearer" = [])),
    responses((status = 200, body = PolicyBody)),
    extensions(("x-veneer-errors" = json!(errors(&[HOST, TOKEN, PLATFORM_ADMIN])))))]
async fn get_all(
    State(app): State<AppState>,
    _admin: PlatformAdmin,
) -> ApiResult<Json<PolicyBody>> {
    Ok(Json(read(&app, None).await?))
}

/// Sets the output policy for every tenant (platform admins).
#[utoipa::path(put, path = "/v1/admin/policies", tag = "policies", security(("bearer" = [])),
    request_body = Policy,
    responses((status = 200, body = PolicyBody)),
    extensions(("x-veneer-errors" = json!(errors(&[HOST, TOKEN, PLATFORM_ADMIN, JSON, &[Code::InvalidPolicy]])))))]
async fn put_all(
    State(app): State<AppState>,
    admin: PlatformAdmin,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<Json<PolicyBody>> {
    let policy = parse(body)?;
    app::policies::set(&app, &admin.0.subject, None, &policy).await?;
    Ok(Json(read(&app, None).await?))
}

/// Removes the output policy for every tenant (platform admins).
#[utoipa::path(delete, path = "/v1/admin/policies", tag = "policies", security(("bearer" = [])),
    responses((status = 204, description = "Removed")),
    extensions(("x-veneer-errors" = json!(errors(&[HOST, TOKEN, PLATFORM_ADMIN, &[Code::NotFound]])))))]
async fn delete_all(State(app): State<AppState>, admin: PlatformAdmin) -> ApiResult<StatusCode> {
    if app::policies::remove(&app, &admin.0.subject, None).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("no policy is set for every tenant"))
    }
}

/// One tenant's own output policy (platform admins).
#[utoipa::path(get, path = "/v1/admin/tenants/{id}/policy", tag = "policies", security(("bearer" = [])),
    params(("id" = String, Path, description = "The tenant's id")),
    responses((status = 200, body = PolicyBody)),
    extensions(("x-veneer-errors" = json!(errors(&[HOST, TOKEN, PLATFORM_ADMIN, &[Code::InvalidTenantId]])))))]
async fn get_one(
    State(app): State<AppState>,
    _admin: PlatformAdmin,
    Path(id): Path<String>,
) -> ApiResult<Json<PolicyBody>> {
    let id = tenant_id(&id)?;
    Ok(Json(read(&app, Some(&id)).await?))
}

/// Sets one tenant's own output policy (platform admins).
#[utoipa::path(put, path = "/v1/admin/tenants/{id}/policy", tag = "policies", security(("bearer" = [])),
    params(("id" = String, Path, description = "The tenant's id")),
    request_body = Policy,
    responses((status = 200, body = PolicyBody)),
    extensions(("x-veneer-errors" = json!(errors(&[HOST, TOKEN, PLATFORM_ADMIN, JSON, &[Code::InvalidTenantId, Code::InvalidPolicy, Code::NotFound]])))))]
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

/// Removes one tenant's own output policy (platform admins).
#[utoipa::path(delete, path = "/v1/admin/tenants/{id}/policy", tag = "policies", security(("bearer" = [])),
    params(("id" = String, Path, description = "The tenant's id")),
    responses((status = 204, description = "Removed")),
    extensions(("x-veneer-errors" = json!(errors(&[HOST, TOKEN, PLATFORM_ADMIN, &[Code::InvalidTenantId, Code::NotFound]])))))]
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
