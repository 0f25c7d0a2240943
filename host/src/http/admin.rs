//! Platform administration, on the platform's own host with a platform-admin
//! token: tenants and their status and limits, their deletion, restoration and
//! purge, custom domains, per-plugin quotas, and the audit log of every tenant. Input shapes are checked here; the
//! changes themselves (audit, invalidation) are [`crate::app::admin`]'s.

use axum::Json;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use crate::app;
use crate::http::body::Sorted;
use crate::http::context::{ApiQuery, JsonBody, PlatformAdmin, RawBody};
use crate::http::openapi::{HOST, JSON, PLATFORM_ADMIN, QUERY, RAW, TOKEN, errors};
use crate::http::{ApiError, ApiResult, Code};
use crate::runtime::Quota;
use crate::state::AppState;
use crate::storage::{AuditRecord, PurgeReport, TenantPatch, TenantRecord, TenantStatus};
use crate::tenancy::TenantId;

// Response bodies: fields in alphabetical order, nested records sorted (see
// `http::body`).

/// One tenant.
#[derive(Serialize, ToSchema)]
struct TenantBody {
    #[schema(value_type = TenantRecord)]
    tenant: Sorted<TenantRecord>,
}

/// `GET /v1/admin/tenants`.
#[derive(Serialize, ToSchema)]
struct TenantsBody {
    #[schema(value_type = Vec<TenantRecord>)]
    tenants: Sorted<Vec<TenantRecord>>,
}

/// `GET /v1/admin/tenants/{id}`.
#[derive(Serialize, ToSchema)]
struct ShowBody {
    domains: Vec<app::domains::DomainView>,
    /// The tenant's quota, when a platform admin set one.
    #[schema(value_type = Option<Quota>)]
    quota: Option<Value>,
    #[schema(value_type = TenantRecord)]
    tenant: Sorted<TenantRecord>,
}

/// `POST /v1/admin/tenants/{id}/purge`.
#[derive(Serialize, ToSchema)]
struct PurgedBody {
    #[schema(value_type = PurgeReport)]
    purged: Sorted<PurgeReport>,
}

/// A tenant's quota.
#[derive(Serialize, ToSchema)]
struct TenantQuotaBody {
    #[schema(value_type = Quota)]
    quota: Sorted<Quota>,
    #[schema(value_type = String)]
    tenant: Sorted<TenantId>,
}

/// `GET /v1/admin/audit`.
#[derive(Serialize, ToSchema)]
struct AdminAuditBody {
    #[schema(value_type = Vec<AuditRecord>)]
    audit: Sorted<Vec<AuditRecord>>,
    /// The cursor of the next (older) page: `?before=<next>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<i64>,
}

/// The routes; `max_import` bounds an import's body, in bytes.
pub(crate) fn routes(max_import: usize) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update, delete))
        .routes(routes!(restore))
        .routes(routes!(purge))
        .routes(routes!(export))
        .routes(routes!(import).layer(DefaultBodyLimit::max(max_import)))
        .routes(routes!(get_quota, set_quota))
        .routes(routes!(audit))
        .routes(routes!(check_base))
        .routes(routes!(reload_base))
}

/// `POST /v1/admin/base/check` and `…/reload`.
#[derive(Serialize, ToSchema)]
struct BaseBody {
    #[schema(value_type = app::base::BaseReport)]
    base: Sorted<app::base::BaseReport>,
}

/// What the base configuration on disk would change, tenant by tenant;
/// nothing is swapped.
#[utoipa::path(
    post,
    path = "/v1/admin/base/check",
    tag = "admin",
    security(("bearer" = [])),
    responses((status = 200, body = BaseBody)),
    extensions(("x-veneer-errors" = json!(errors(&[HOST, TOKEN, PLATFORM_ADMIN, &[Code::InvalidBase]])))),
)]
async fn check_base(
    State(app): State<AppState>,
    _admin: PlatformAdmin,
) -> ApiResult<Json<BaseBody>> {
    let candidate = app::base::load_candidate(&app)?;
    Ok(Json(BaseBody {
        base: Sorted(app::base::check(&app, candidate).await?),
    }))
}

/// Swaps in the base configuration on disk (on every node) and reports what
/// it changed.
#[utoipa::path(
    post,
    path = "/v1/admin/base/reload",
    tag = "admin",
    security(("bearer" = [])),
    responses((status = 200, body = BaseBody)),
    extensions(("x-veneer-errors" = json!(errors(&[HOST, TOKEN, PLATFORM_ADMIN, &[Code::InvalidBase, Code::Conflict]])))),
)]
async fn reload_base(
    State(app): State<AppState>,
    admin: PlatformAdmin,
) -> ApiResult<Json<BaseBody>> {
    Ok(Json(BaseBody {
        base: Sorted(app::base::reload(&app, &admin.0.subject).await?),
    }))
}

/// A tenant id from a path, or 400 `invalid_tenant_id`.
pub(crate) fn tenant_id(id: &str) -> ApiResult<TenantId> {
    TenantId::new(id).map_err(|err| ApiError::new(Code::InvalidTenantId, err.to_string()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateTenant {
    id: String,
    name: String,
    org_id: Option<String>,
    rate_limit_per_sec: Option<u32>,
    rate_limit_burst: Option<u32>,
    max_concurrency: Option<u32>,
}

/// Creates a tenant.
#[utoipa::path(
    post,
    path = "/v1/admin/tenants",
    tag = "admin",
    security(("bearer" = [])),
    request_body = CreateTenant,
    responses((status = 201, body = TenantBody)),
    extensions(("x-veneer-errors" = json!(errors(&[HOST, TOKEN, PLATFORM_ADMIN, JSON, &[Code::InvalidTenantId, Code::InvalidName, Code::InvalidLimit, Code::Invalid, Code::Conflict]])))),
)]
async fn create(
    State(app): State<AppState>,
    admin: PlatformAdmin,
    JsonBody(body): JsonBody<CreateTenant>,
) -> ApiResult<(StatusCode, Json<TenantBody>)> {
    let new = app::admin::new_tenant(app::admin::TenantSpec {
        id: tenant_id(&body.id)?,
        name: body.name,
        org_id: body.org_id,
        rate_limit_per_sec: body.rate_limit_per_sec,
        rate_limit_burst: body.rate_limit_burst,
        max_concurrency: body.max_concurrency,
    })?;
    let record = app::admin::create_tenant(&app, &admin.0.subject, new).await?;
    Ok((
        StatusCode::CREATED,
        Json(TenantBody {
            tenant: Sorted(record),
        }),
    ))
}

/// Every tenant.
#[utoipa::path(
    get,
    path = "/v1/admin/tenants",
    tag = "admin",
    security(("bearer" = [])),
    responses((status = 200, body = TenantsBody)),
    extensions(("x-veneer-errors" = json!(errors(&[HOST, TOKEN, PLATFORM_ADMIN])))),
)]
async fn list(State(app): State<AppState>, _admin: PlatformAdmin) -> ApiResult<Json<TenantsBody>> {
    Ok(Json(TenantsBody {
        tenants: Sorted(app.storage.platform().list_tenants().await?),
    }))
}

/// One tenant, its custom domains and its quota.
#[utoipa::path(
    get,
    path = "/v1/admin/tenants/{id}",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The tenant's id")),
    responses((status = 200, body = ShowBody)),
    extensions(("x-veneer-errors" = json!(errors(&[HOST, TOKEN, PLATFORM_ADMIN, &[Code::InvalidTenantId, Code::NotFound]])))),
)]
async fn show(
    State(app): State<AppState>,
    _admin: PlatformAdmin,
    Path(id): Path<String>,
) -> ApiResult<Json<ShowBody>> {
    let id = tenant_id(&id)?;
    let record = app
        .storage
        .platform()
        .tenant(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no tenant `{id}`")))?;
    let domains = app::domains::list(&app, &id).await?;
    let quota = app.storage.platform().quota(&id).await?;
    Ok(Json(ShowBody {
        domains,
        quota: quota.and_then(|q| serde_json::from_str::<Value>(&q).ok()),
        tenant: Sorted(record),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateTenant {
    name: Option<String>,
    /// Links the tenant to another Clerk organisation.
    org_id: Option<String>,
    status: Option<TenantStatus>,
    rate_limit_per_sec: Option<u32>,
    rate_limit_burst: Option<u32>,
    max_concurrency: Option<u32>,
}

/// Changes a tenant: name, organisation, status (suspend, resume), limits.
#[utoipa::path(
    patch,
    path = "/v1/admin/tenants/{id}",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The tenant's id")),
    request_body = UpdateTenant,
    responses((status = 200, body = TenantBody)),
    extensions(("x-veneer-errors" = json!(errors(&[HOST, TOKEN, PLATFORM_ADMIN, JSON, &[Code::InvalidTenantId, Code::InvalidName, Code::InvalidLimit, Code::Invalid, Code::NotFound, Code::Conflict]])))),
)]
async fn update(
    State(app): State<AppState>,
    admin: PlatformAdmin,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<UpdateTenant>,
) -> ApiResult<Json<TenantBody>> {
    let id = tenant_id(&id)?;
    app::admin::check_limits(
        body.rate_limit_per_sec,
        body.rate_limit_burst,
        body.max_concurrency,
    )?;
    let record = app::admin::update_tenant(
        &app,
        &admin.0.subject,
        &id,
        &TenantPatch {
            name: body.name,
            org_id: body.org_id,
            status: body.status,
            rate_limit_per_sec: body.rate_limit_per_sec,
            rate_limit_burst: body.rate_limit_burst,
            max_concurrency: body.max_concurrency,
        },
    )
    .await?;
    Ok(Json(TenantBody {
        tenant: Sorted(record),
    }))
}

/// Deletes a tenant: no longer served, purged after the grace period.
#[utoipa::path(
    delete,
    path = "/v1/admin/tenants/{id}",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The tenant's id")),
    responses((status = 200, body = TenantBody)),
    extensions(("x-veneer-errors" = json!(errors(&[HOST, TOKEN, PLATFORM_ADMIN, &[Code::InvalidTenantId, Code::NotFound, Code::Conflict]])))),
)]
async fn delete(
    State(app): State<AppState>,
    admin: PlatformAdmin,
    Path(id): Path<String>,
) -> ApiResult<Json<TenantBody>> {
    let id = tenant_id(&id)?;
    let record = app::lifecycle::delete_tenant(&app, &admin.0.subject, &id).await?;
    Ok(Json(TenantBody {
        tenant: Sorted(record),
    }))
}

/// Restores a deleted tenant within its grace period.
#[utoipa::path(
    post,
    path = "/v1/admin/tenants/{id}/restore",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The tenant's id")),
    responses((status = 200, body = TenantBody)),
    extensions(("x-veneer-errors" = json!(errors(&[HOST, TOKEN, PLATFORM_ADMIN, &[Code::InvalidTenantId, Code::NotFound, Code::Conflict]])))),
)]
async fn restore(
    State(app): State<AppState>,
    admin: PlatformAdmin,
    Path(id): Path<String>,
) -> ApiResult<Json<TenantBody>> {
    let id = tenant_id(&id)?;
    let record = app::lifecycle::restore_tenant(&app, &admin.0.subject, &id).await?;
    Ok(Json(TenantBody {
        tenant: Sorted(record),
    }))
}

/// Purges a deleted tenant now, without waiting for its grace period.
#[utoipa::path(
    post,
    path = "/v1/admin/tenants/{id}/purge",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The tenant's id")),
    responses((status = 200, body = PurgedBody)),
    extensions(("x-veneer-errors" = json!(errors(&[HOST, TOKEN, PLATFORM_ADMIN, &[Code::InvalidTenantId, Code::NotFound, Code::Conflict]])))),
)]
async fn purge(
    State(app): State<AppState>,
    admin: PlatformAdmin,
    Path(id): Path<String>,
) -> ApiResult<Json<PurgedBody>> {
    let id = tenant_id(&id)?;
    let report = app::lifecycle::purge_tenant(&app, &admin.0.subject, &id).await?;
    Ok(Json(PurgedBody {
        purged: Sorted(report),
    }))
}

/// `POST /v1/admin/tenants/{id}/export`: `{}` for the defaults.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
struct ExportRequest {
    /// Seal the tenant's secrets under this key (`<id>:<base64 of 32
    /// bytes>`); without it they are left out.
    export_key: Option<String>,
    /// Leave the history tables out.
    without_history: bool,
}

/// One archive of everything the tenant owns (`application/gzip`), audited.
#[utoipa::path(
    post,
    path = "/v1/admin/tenants/{id}/export",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The tenant's id")),
    request_body = ExportRequest,
    responses((status = 200, description = "The archive (`<id>-<time>.veneer.tar.gz`)", content_type = "application/gzip", body = Vec<u8>)),
    extensions(("x-veneer-errors" = json!(errors(&[HOST, TOKEN, PLATFORM_ADMIN, JSON, &[Code::InvalidTenantId, Code::Invalid, Code::NotFound]])))),
)]
async fn export(
    State(app): State<AppState>,
    admin: PlatformAdmin,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<ExportRequest>,
) -> ApiResult<axum::response::Response> {
    let id = tenant_id(&id)?;
    let key = request
        .export_key
        .as_deref()
        .map(|spec| {
            crate::secrets::SecretBox::from_env_or_dev(Some(spec), &[], false).map_err(|err| {
                ApiError::new(
                    Code::Invalid,
                    format!("export_key must be `<id>:<base64 of 32 bytes>`: {err}"),
                )
            })
        })
        .transpose()?;
    let options = app::archives::ExportOptions {
        secrets_key: key.as_ref(),
        history: !request.without_history,
    };
    let export =
        app::archives::export_audited(&app.storage, &app.secrets, &id, options, &admin.0.subject)
            .await?;
    let name = format!("{id}-{}.veneer.tar.gz", export.manifest.exported_at);
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "application/gzip".to_owned(),
            ),
            (
                axum::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        export.bytes,
    )
        .into_response())
}

/// `POST /v1/admin/tenants/import` query.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields, default)]
struct ImportQuery {
    /// Import under this id instead of the archive's.
    #[serde(rename = "as")]
    as_id: Option<String>,
    /// Link this organisation instead of the archive's.
    org: Option<String>,
    /// Replace the tenant if it exists.
    replace: bool,
    /// Import a sealed archive without its secrets.
    without_secrets: bool,
}

/// `POST /v1/admin/tenants/import`.
#[derive(Serialize, ToSchema)]
struct ImportBody {
    #[schema(value_type = app::archives::ImportReport)]
    import: Sorted<app::archives::ImportReport>,
}

/// The header carrying the export key of a sealed archive (never a query
/// parameter: those end up in access logs).
const EXPORT_KEY_HEADER: &str = "veneer-export-key";

/// One import at a time on this node: an archive is held in memory whole.
static IMPORTING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// Restores a tenant archive (the body, `application/gzip`) into this
/// instance, as `veneer tenant import` does, and drops what this node and the
/// others cached of the tenant.
#[utoipa::path(
    post,
    path = "/v1/admin/tenants/import",
    tag = "admin",
    security(("bearer" = [])),
    params(ImportQuery, ("veneer-export-key" = Option<String>, Header, description = "The key a sealed archive's secrets were sealed under: `<id>:<base64 of 32 bytes>` (never a query parameter)")),
    request_body(content = Vec<u8>, content_type = "application/gzip", description = "A tenant archive from the export route or `veneer tenant export`"),
    responses((status = 200, body = ImportBody)),
    extensions(("x-veneer-errors" = json!(errors(&[HOST, TOKEN, PLATFORM_ADMIN, RAW, &[Code::InvalidTenantId, Code::Invalid, Code::Conflict]])))),
)]
async fn import(
    State(app): State<AppState>,
    admin: PlatformAdmin,
    query: Result<Query<ImportQuery>, axum::extract::rejection::QueryRejection>,
    headers: axum::http::HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Json<ImportBody>> {
    let Query(query) = query.map_err(|err| {
        ApiError::new(
            Code::Invalid,
            format!("use ?as=<id>&org=<organisation>&replace=true&without_secrets=true (each optional): {err}"),
        )
    })?;
    let Ok(_permit) = IMPORTING.try_acquire() else {
        return Err(ApiError::new(
            Code::Conflict,
            "another import is running on this node; retry when it is done",
        ));
    };
    let as_id = query.as_id.as_deref().map(tenant_id).transpose()?;
    let key = headers
        .get(EXPORT_KEY_HEADER)
        .map(|value| {
            let spec = value.to_str().unwrap_or_default();
            crate::secrets::SecretBox::from_env_or_dev(Some(spec), &[], false).map_err(|err| {
                ApiError::new(
                    Code::Invalid,
                    format!("{EXPORT_KEY_HEADER} must be `<id>:<base64 of 32 bytes>`: {err}"),
                )
            })
        })
        .transpose()?;
    let options = app::archives::ImportOptions {
        as_id,
        org: query.org,
        replace: query.replace,
        secrets_key: key.as_ref(),
        without_secrets: query.without_secrets,
        actor: &admin.0.subject,
        limits: app::archives::ImportLimits {
            max_bytes: app.config.backups.max_import_mib.saturating_mul(4 << 20),
            ..app::archives::ImportLimits::default()
        },
    };
    let report = app::archives::import(&app.storage, &app.secrets, &body, options).await?;
    if let Ok(id) = TenantId::new(&report.tenant) {
        app.invalidate(&id);
        app.invalidate_hosts();
    }
    Ok(Json(ImportBody {
        import: Sorted(report),
    }))
}

/// A tenant's default plugin quota.
#[utoipa::path(
    get,
    path = "/v1/admin/tenants/{id}/quota",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The tenant's id")),
    responses((status = 200, body = TenantQuotaBody)),
    extensions(("x-veneer-errors" = json!(errors(&[HOST, TOKEN, PLATFORM_ADMIN, &[Code::InvalidTenantId, Code::NotFound]])))),
)]
async fn get_quota(
    State(app): State<AppState>,
    _admin: PlatformAdmin,
    Path(id): Path<String>,
) -> ApiResult<Json<TenantQuotaBody>> {
    let id = tenant_id(&id)?;
    app.storage
        .platform()
        .tenant(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no tenant `{id}`")))?;
    let quota: Quota = match app.storage.platform().quota(&id).await? {
        Some(json) => serde_json::from_str(&json).map_err(ApiError::internal)?,
        None => Quota::default(),
    };
    Ok(Json(TenantQuotaBody {
        quota: Sorted(quota),
        tenant: Sorted(id),
    }))
}

/// Sets a tenant's default plugin quota.
#[utoipa::path(
    put,
    path = "/v1/admin/tenants/{id}/quota",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The tenant's id")),
    request_body = Quota,
    responses((status = 200, body = TenantQuotaBody)),
    extensions(("x-veneer-errors" = json!(errors(&[HOST, TOKEN, PLATFORM_ADMIN, JSON, &[Code::InvalidTenantId, Code::InvalidQuota, Code::NotFound]])))),
)]
async fn set_quota(
    State(app): State<AppState>,
    admin: PlatformAdmin,
    Path(id): Path<String>,
    JsonBody(quota): JsonBody<Quota>,
) -> ApiResult<Json<TenantQuotaBody>> {
    let id = tenant_id(&id)?;
    quota
        .validate()
        .map_err(|err| ApiError::new(Code::InvalidQuota, err.to_string()))?;
    app::admin::set_quota(&app, &admin.0.subject, &id, &quota).await?;
    Ok(Json(TenantQuotaBody {
        quota: Sorted(quota),
        tenant: Sorted(id),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AuditQuery {
    /// Only this tenant's entries.
    tenant: Option<String>,
    /// Entries per page: 1 to 1000 (default 100).
    limit: Option<u32>,
    /// The `next` of the previous page.
    before: Option<i64>,
}

/// The audit log of every tenant (or one), newest first, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/admin/audit",
    tag = "admin",
    security(("bearer" = [])),
    params(AuditQuery),
    responses((status = 200, body = AdminAuditBody)),
    extensions(("x-veneer-errors" = json!(errors(&[HOST, TOKEN, PLATFORM_ADMIN, QUERY, &[Code::InvalidTenantId]])))),
)]
async fn audit(
    State(app): State<AppState>,
    _admin: PlatformAdmin,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<AdminAuditBody>> {
    let tenant = q.tenant.as_deref().map(tenant_id).transpose()?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1_000);
    let rows = app
        .storage
        .platform()
        .audit_page(tenant.as_ref(), q.before, limit)
        .await?;
    let next = (rows.len() == limit as usize)
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    Ok(Json(AdminAuditBody {
        audit: Sorted(rows),
        next,
    }))
}
