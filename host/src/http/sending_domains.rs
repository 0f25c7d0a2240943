//! Sending domains over HTTP: a tenant's members see them (`/v1/email/domains`
//! on its host: status, keys, the records to publish, what the last check
//! found), its admins check, rotate and remove them; a platform admin sees any
//! tenant's (`/v1/admin/tenants/{id}/email/domains`). A sending domain is
//! added by naming it in the email settings. The use cases are
//! [`crate::app::sending_domains`]'.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::admin::tenant_id;
use crate::app;
use crate::app::sending_domains::SendingDomainView;
use crate::http::body::Sorted;
use crate::http::context::{Member, PlatformAdmin, TenantAdmin};
use crate::http::openapi::{HOST, MEMBER, PLATFORM_ADMIN, TENANT_HOST, TOKEN, errors};
use crate::http::{ApiResult, Code};
use crate::state::AppState;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show, remove))
        .routes(routes!(check))
        .routes(routes!(rotate))
        .routes(routes!(admin_list))
}

/// `GET /v1/email/domains`.
#[derive(Serialize, ToSchema)]
struct SendingDomainsBody {
    #[schema(value_type = Vec<SendingDomainView>)]
    domains: Vec<Sorted<SendingDomainView>>,
}

/// One sending domain.
#[derive(Serialize, ToSchema)]
struct SendingDomainBody {
    #[schema(value_type = SendingDomainView)]
    domain: Sorted<SendingDomainView>,
}

fn one(view: SendingDomainView) -> Json<SendingDomainBody> {
    Json(SendingDomainBody {
        domain: Sorted(view),
    })
}

/// The tenant's sending domains: status, DKIM keys, records to publish.
#[utoipa::path(
    get,
    path = "/v1/email/domains",
    tag = "email",
    security(("bearer" = [])),
    responses(
        (status = 200, body = SendingDomainsBody),
    ),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER])))),
)]
async fn list(State(app): State<AppState>, member: Member) -> ApiResult<Json<SendingDomainsBody>> {
    let domains = app::sending_domains::list(&app, member.tenant.id()).await?;
    Ok(Json(SendingDomainsBody {
        domains: domains.into_iter().map(Sorted).collect(),
    }))
}

/// One sending domain.
#[utoipa::path(
    get,
    path = "/v1/email/domains/{domain}",
    tag = "email",
    security(("bearer" = [])),
    params(("domain" = String, Path, description = "The sending domain")),
    responses(
        (status = 200, body = SendingDomainBody),
    ),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, &[Code::NotFound]])))),
)]
async fn show(
    State(app): State<AppState>,
    member: Member,
    Path(domain): Path<String>,
) -> ApiResult<Json<SendingDomainBody>> {
    Ok(one(app::sending_domains::get(
        &app,
        member.tenant.id(),
        &domain,
    )
    .await?))
}

/// Checks a sending domain's DNS now (admins).
#[utoipa::path(
    post,
    path = "/v1/email/domains/{domain}/check",
    tag = "email",
    security(("bearer" = [])),
    params(("domain" = String, Path, description = "The sending domain")),
    responses(
        (status = 202, body = SendingDomainBody, description = "A check is queued"),
    ),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, &[Code::NotFound, Code::Conflict]])))),
)]
async fn check(
    State(app): State<AppState>,
    admin: TenantAdmin,
    Path(domain): Path<String>,
) -> ApiResult<(StatusCode, Json<SendingDomainBody>)> {
    let view = app::sending_domains::check_now(&app, admin.tenant.id(), &domain).await?;
    Ok((StatusCode::ACCEPTED, one(view)))
}

/// Starts a DKIM key rotation (admins).
#[utoipa::path(
    post,
    path = "/v1/email/domains/{domain}/rotate",
    tag = "email",
    security(("bearer" = [])),
    params(("domain" = String, Path, description = "The sending domain")),
    responses(
        (status = 201, body = SendingDomainBody, description = "A new DKIM key to publish"),
    ),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, &[Code::NotFound, Code::Conflict, Code::Invalid]])))),
)]
async fn rotate(
    State(app): State<AppState>,
    admin: TenantAdmin,
    Path(domain): Path<String>,
) -> ApiResult<(StatusCode, Json<SendingDomainBody>)> {
    let view =
        app::sending_domains::rotate(&app, admin.tenant.id(), &admin.principal.subject, &domain)
            .await?;
    Ok((StatusCode::CREATED, one(view)))
}

/// Removes a sending domain (admins).
#[utoipa::path(
    delete,
    path = "/v1/email/domains/{domain}",
    tag = "email",
    security(("bearer" = [])),
    params(("domain" = String, Path, description = "The sending domain")),
    responses(
        (status = 204, description = "Removed"),
    ),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, &[Code::NotFound, Code::Conflict]])))),
)]
async fn remove(
    State(app): State<AppState>,
    admin: TenantAdmin,
    Path(domain): Path<String>,
) -> ApiResult<StatusCode> {
    app::sending_domains::remove(&app, admin.tenant.id(), &admin.principal.subject, &domain)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A tenant's sending domains (platform admins).
#[utoipa::path(
    get,
    path = "/v1/admin/tenants/{id}/email/domains",
    tag = "email",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The tenant's id")),
    responses(
        (status = 200, body = SendingDomainsBody),
    ),
    extensions(("x-veneer-errors" = json!(errors(&[HOST, TOKEN, PLATFORM_ADMIN, &[Code::InvalidTenantId, Code::NotFound]])))),
)]
async fn admin_list(
    State(app): State<AppState>,
    _admin: PlatformAdmin,
    Path(id): Path<String>,
) -> ApiResult<Json<SendingDomainsBody>> {
    let tenant = tenant_id(&id)?;
    app.storage
        .platform()
        .tenant(&tenant)
        .await?
        .ok_or_else(|| crate::http::ApiError::not_found(format!("no tenant `{tenant}`")))?;
    let domains = app::sending_domains::list(&app, &tenant).await?;
    Ok(Json(SendingDomainsBody {
        domains: domains.into_iter().map(Sorted).collect(),
    }))
}
