//! Custom domains over HTTP: a tenant admin adds, lists, checks and removes
//! its own (`/v1/domains` on its host), a platform admin any tenant's
//! (`/v1/admin/tenants/{id}/domains`). Each answer shows the claim's status,
//! the DNS records to publish and the last check. The use cases are
//! [`crate::app::domains`]'.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::admin::tenant_id;
use crate::app;
use crate::app::domains::DomainView;
use crate::http::body::Sorted;
use crate::http::context::{JsonBody, Member, PlatformAdmin, TenantAdmin};
use crate::http::openapi::{HOST, JSON, MEMBER, PLATFORM_ADMIN, TENANT_HOST, TOKEN, errors};
use crate::http::{ApiError, ApiResult, Code};
use crate::state::AppState;
use crate::tenancy::TenantId;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, add))
        .routes(routes!(show, remove))
        .routes(routes!(check))
        .routes(routes!(admin_list, admin_add))
        .routes(routes!(admin_show, admin_remove))
        .routes(routes!(admin_check))
}

#[derive(Serialize, ToSchema)]
struct DomainsBody {
    #[schema(value_type = Vec<DomainView>)]
    domains: Vec<Sorted<DomainView>>,
}

#[derive(Serialize, ToSchema)]
struct DomainBody {
    #[schema(value_type = DomainView)]
    domain: Sorted<DomainView>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct AddDomain {
    domain: String,
}

/// A host name a tenant may claim: not under the base domain (those are
/// tenants' own subdomains), a host name in labels.
fn check_domain(app: &AppState, domain: &str) -> ApiResult<String> {
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let labels_ok = domain.split('.').count() >= 2
        && domain.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
        });
    let base = app.config.base_domain.to_ascii_lowercase();
    if !labels_ok || domain.len() > 253 {
        return Err(ApiError::new(
            Code::InvalidDomain,
            "give a host name such as shop.example.com",
        ));
    }
    if domain == base || domain.ends_with(&format!(".{base}")) {
        return Err(ApiError::new(
            Code::InvalidDomain,
            "names under the base domain are tenant subdomains already",
        ));
    }
    Ok(domain)
}

async fn listed(app: &AppState, tenant: &TenantId) -> ApiResult<Json<DomainsBody>> {
    Ok(Json(DomainsBody {
        domains: app::domains::list(app, tenant)
            .await?
            .into_iter()
            .map(Sorted)
            .collect(),
    }))
}

async fn added(
    app: &AppState,
    actor: &str,
    tenant: &TenantId,
    domain: &str,
) -> ApiResult<(StatusCode, Json<DomainBody>)> {
    let domain = check_domain(app, domain)?;
    let (view, created) = app::domains::add(app, actor, tenant, &domain).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(DomainBody {
            domain: Sorted(view),
        }),
    ))
}

async fn shown(app: &AppState, tenant: &TenantId, domain: &str) -> ApiResult<Json<DomainBody>> {
    let domain = domain.to_ascii_lowercase();
    let view = app::domains::list(app, tenant)
        .await?
        .into_iter()
        .find(|v| v.record.domain == domain)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "this tenant has no domain `{}`",
                domain.chars().take(80).collect::<String>()
            ))
        })?;
    Ok(Json(DomainBody {
        domain: Sorted(view),
    }))
}

/// The tenant's custom domains: status, DNS records to publish, certificate.
#[utoipa::path(
    get,
    path = "/v1/domains",
    tag = "domains",
    security(("bearer" = [])),
    responses(
        (status = 200, body = DomainsBody),
    ),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER])))),
)]
async fn list(State(app): State<AppState>, member: Member) -> ApiResult<Json<DomainsBody>> {
    listed(&app, member.tenant.id()).await
}

/// Claims a custom domain (admins); it is served once its TXT record proves it.
#[utoipa::path(
    post,
    path = "/v1/domains",
    tag = "domains",
    security(("bearer" = [])),
    request_body = AddDomain,
    responses(
        (status = 201, body = DomainBody, description = "Claimed"),
        (status = 200, body = DomainBody, description = "Already claimed by this tenant"),
    ),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, JSON, &[Code::InvalidDomain, Code::Conflict, Code::Invalid]])))),
)]
async fn add(
    State(app): State<AppState>,
    admin: TenantAdmin,
    JsonBody(body): JsonBody<AddDomain>,
) -> ApiResult<(StatusCode, Json<DomainBody>)> {
    added(
        &app,
        &admin.principal.subject,
        admin.tenant.id(),
        &body.domain,
    )
    .await
}

/// One custom domain.
#[utoipa::path(
    get,
    path = "/v1/domains/{domain}",
    tag = "domains",
    security(("bearer" = [])),
    params(("domain" = String, Path, description = "The custom domain")),
    responses(
        (status = 200, body = DomainBody),
    ),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, &[Code::NotFound]])))),
)]
async fn show(
    State(app): State<AppState>,
    member: Member,
    Path(domain): Path<String>,
) -> ApiResult<Json<DomainBody>> {
    shown(&app, member.tenant.id(), &domain).await
}

/// Removes a custom domain (admins).
#[utoipa::path(
    delete,
    path = "/v1/domains/{domain}",
    tag = "domains",
    security(("bearer" = [])),
    params(("domain" = String, Path, description = "The custom domain")),
    responses(
        (status = 204, description = "Removed"),
    ),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, &[Code::NotFound]])))),
)]
async fn remove(
    State(app): State<AppState>,
    admin: TenantAdmin,
    Path(domain): Path<String>,
) -> ApiResult<StatusCode> {
    let domain = domain.to_ascii_lowercase();
    app::domains::remove(&app, &admin.principal.subject, admin.tenant.id(), &domain).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Checks a custom domain's DNS now (admins).
#[utoipa::path(
    post,
    path = "/v1/domains/{domain}/check",
    tag = "domains",
    security(("bearer" = [])),
    params(("domain" = String, Path, description = "The custom domain")),
    responses(
        (status = 202, body = DomainBody, description = "A check is queued"),
    ),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, &[Code::NotFound, Code::Conflict]])))),
)]
async fn check(
    State(app): State<AppState>,
    admin: TenantAdmin,
    Path(domain): Path<String>,
) -> ApiResult<(StatusCode, Json<DomainBody>)> {
    let view =
        app::domains::check_now(&app, admin.tenant.id(), &domain.to_ascii_lowercase()).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(DomainBody {
            domain: Sorted(view),
        }),
    ))
}

/// A tenant's custom domains (platform admins).
#[utoipa::path(
    get,
    path = "/v1/admin/tenants/{id}/domains",
    tag = "domains",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The tenant's id")),
    responses(
        (status = 200, body = DomainsBody),
    ),
    extensions(("x-veneer-errors" = json!(errors(&[HOST, TOKEN, PLATFORM_ADMIN, &[Code::InvalidTenantId, Code::NotFound]])))),
)]
async fn admin_list(
    State(app): State<AppState>,
    _admin: PlatformAdmin,
    Path(id): Path<String>,
) -> ApiResult<Json<DomainsBody>> {
    listed(&app, &tenant_id(&id)?).await
}

/// Claims a custom domain for a tenant (platform admins).
#[utoipa::path(
    post,
    path = "/v1/admin/tenants/{id}/domains",
    tag = "domains",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The tenant's id")),
    request_body = AddDomain,
    responses(
        (status = 201, body = DomainBody, description = "Claimed"),
        (status = 200, body = DomainBody, description = "Already claimed by this tenant"),
    ),
    extensions(("x-veneer-errors" = json!(errors(&[HOST, TOKEN, PLATFORM_ADMIN, JSON, &[Code::InvalidTenantId, Code::InvalidDomain, Code::NotFound, Code::Conflict, Code::Invalid]])))),
)]
async fn admin_add(
    State(app): State<AppState>,
    admin: PlatformAdmin,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<AddDomain>,
) -> ApiResult<(StatusCode, Json<DomainBody>)> {
    added(&app, &admin.0.subject, &tenant_id(&id)?, &body.domain).await
}

/// One of a tenant's custom domains (platform admins).
#[utoipa::path(
    get,
    path = "/v1/admin/tenants/{id}/domains/{domain}",
    tag = "domains",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The tenant's id"), ("domain" = String, Path, description = "The custom domain")),
    responses(
        (status = 200, body = DomainBody),
    ),
    extensions(("x-veneer-errors" = json!(errors(&[HOST, TOKEN, PLATFORM_ADMIN, &[Code::InvalidTenantId, Code::NotFound]])))),
)]
async fn admin_show(
    State(app): State<AppState>,
    _admin: PlatformAdmin,
    Path((id, domain)): Path<(String, String)>,
) -> ApiResult<Json<DomainBody>> {
    shown(&app, &tenant_id(&id)?, &domain).await
}

/// Removes a tenant's custom domain (platform admins).
#[utoipa::path(
    delete,
    path = "/v1/admin/tenants/{id}/domains/{domain}",
    tag = "domains",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The tenant's id"), ("domain" = String, Path, description = "The custom domain")),
    responses(
        (status = 204, description = "Removed"),
    ),
    extensions(("x-veneer-errors" = json!(errors(&[HOST, TOKEN, PLATFORM_ADMIN, &[Code::InvalidTenantId, Code::NotFound]])))),
)]
async fn admin_remove(
    State(app): State<AppState>,
    admin: PlatformAdmin,
    Path((id, domain)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let id = tenant_id(&id)?;
    app::domains::remove(&app, &admin.0.subject, &id, &domain.to_ascii_lowercase()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Checks a tenant's custom domain now (platform admins).
#[utoipa::path(
    post,
    path = "/v1/admin/tenants/{id}/domains/{domain}/check",
    tag = "domains",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The tenant's id"), ("domain" = String, Path, description = "The custom domain")),
    responses(
        (status = 202, body = DomainBody, description = "A check is queued"),
    ),
    extensions(("x-veneer-errors" = json!(errors(&[HOST, TOKEN, PLATFORM_ADMIN, &[Code::InvalidTenantId, Code::NotFound, Code::Conflict]])))),
)]
async fn admin_check(
    State(app): State<AppState>,
    _admin: PlatformAdmin,
    Path((id, domain)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<DomainBody>)> {
    let id = tenant_id(&id)?;
    let view = app::domains::check_now(&app, &id, &domain.to_ascii_lowercase()).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(DomainBody {
            domain: Sorted(view),
        }),
    ))
}
