//! Custom domains over HTTP: a tenant admin adds, lists, checks and removes
//! its own (`/v1/domains` on its host), a platform admin any tenant's
//! (`/v1/admin/tenants/{id}/domains`). Each answer shows the claim's status,
//! the DNS records to publish and the last check. The use cases are
//! [`crate::app::domains`]'.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::admin::tenant_id;
use crate::app;
use crate::app::domains::DomainView;
use crate::http::body::Sorted;
use crate::http::context::{JsonBody, Member, PlatformAdmin, TenantAdmin};
use crate::http::{ApiError, ApiResult, Code};
use crate::state::AppState;
use crate::tenancy::TenantId;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/domains", get(list).post(add))
        .route("/v1/domains/{domain}", get(show).delete(remove))
        .route("/v1/domains/{domain}/check", post(check))
        .route(
            "/v1/admin/tenants/{id}/domains",
            get(admin_list).post(admin_add),
        )
        .route(
            "/v1/admin/tenants/{id}/domains/{domain}",
            get(admin_show).delete(admin_remove),
        )
        .route(
            "/v1/admin/tenants/{id}/domains/{domain}/check",
            post(admin_check),
        )
}

#[derive(Serialize)]
struct DomainsBody {
    domains: Vec<Sorted<DomainView>>,
}

#[derive(Serialize)]
struct DomainBody {
    domain: Sorted<DomainView>,
}

#[derive(Debug, Deserialize)]
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

async fn list(State(app): State<AppState>, member: Member) -> ApiResult<Json<DomainsBody>> {
    listed(&app, member.tenant.id()).await
}

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

async fn show(
    State(app): State<AppState>,
    member: Member,
    Path(domain): Path<String>,
) -> ApiResult<Json<DomainBody>> {
    shown(&app, member.tenant.id(), &domain).await
}

async fn remove(
    State(app): State<AppState>,
    admin: TenantAdmin,
    Path(domain): Path<String>,
) -> ApiResult<StatusCode> {
    let domain = domain.to_ascii_lowercase();
    app::domains::remove(&app, &admin.principal.subject, admin.tenant.id(), &domain).await?;
    Ok(StatusCode::NO_CONTENT)
}

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

async fn admin_list(
    State(app): State<AppState>,
    _admin: PlatformAdmin,
    Path(id): Path<String>,
) -> ApiResult<Json<DomainsBody>> {
    listed(&app, &tenant_id(&id)?).await
}

async fn admin_add(
    State(app): State<AppState>,
    admin: PlatformAdmin,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<AddDomain>,
) -> ApiResult<(StatusCode, Json<DomainBody>)> {
    added(&app, &admin.0.subject, &tenant_id(&id)?, &body.domain).await
}

async fn admin_show(
    State(app): State<AppState>,
    _admin: PlatformAdmin,
    Path((id, domain)): Path<(String, String)>,
) -> ApiResult<Json<DomainBody>> {
    shown(&app, &tenant_id(&id)?, &domain).await
}

async fn admin_remove(
    State(app): State<AppState>,
    admin: PlatformAdmin,
    Path((id, domain)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let id = tenant_id(&id)?;
    app::domains::remove(&app, &admin.0.subject, &id, &domain.to_ascii_lowercase()).await?;
    Ok(StatusCode::NO_CONTENT)
}

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
