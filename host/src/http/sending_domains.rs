//! Sending domains over HTTP: a tenant's members see them (`/v1/email/domains`
//! on its host: status, keys, the records to publish, what the last check
//! found), its admins check, rotate and remove them; a platform admin sees any
//! tenant's (`/v1/admin/tenants/{id}/email/domains`). A sending domain is
//! added by naming it in the email settings. The use cases are
//! [`crate::app::sending_domains`]'.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;

use super::admin::tenant_id;
use crate::app;
use crate::app::sending_domains::SendingDomainView;
use crate::http::ApiResult;
use crate::http::body::Sorted;
use crate::http::context::{Member, PlatformAdmin, TenantAdmin};
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/email/domains", get(list))
        .route("/v1/email/domains/{domain}", get(show).delete(remove))
        .route("/v1/email/domains/{domain}/check", post(check))
        .route("/v1/email/domains/{domain}/rotate", post(rotate))
        .route("/v1/admin/tenants/{id}/email/domains", get(admin_list))
}

/// `GET /v1/email/domains`.
#[derive(Serialize)]
struct DomainsBody {
    domains: Vec<Sorted<SendingDomainView>>,
}

/// One sending domain.
#[derive(Serialize)]
struct DomainBody {
    domain: Sorted<SendingDomainView>,
}

fn one(view: SendingDomainView) -> Json<DomainBody> {
    Json(DomainBody {
        domain: Sorted(view),
    })
}

async fn list(State(app): State<AppState>, member: Member) -> ApiResult<Json<DomainsBody>> {
    let domains = app::sending_domains::list(&app, member.tenant.id()).await?;
    Ok(Json(DomainsBody {
        domains: domains.into_iter().map(Sorted).collect(),
    }))
}

async fn show(
    State(app): State<AppState>,
    member: Member,
    Path(domain): Path<String>,
) -> ApiResult<Json<DomainBody>> {
    Ok(one(app::sending_domains::get(
        &app,
        member.tenant.id(),
        &domain,
    )
    .await?))
}

async fn check(
    State(app): State<AppState>,
    admin: TenantAdmin,
    Path(domain): Path<String>,
) -> ApiResult<(StatusCode, Json<DomainBody>)> {
    let view = app::sending_domains::check_now(&app, admin.tenant.id(), &domain).await?;
    Ok((StatusCode::ACCEPTED, one(view)))
}

async fn rotate(
    State(app): State<AppState>,
    admin: TenantAdmin,
    Path(domain): Path<String>,
) -> ApiResult<(StatusCode, Json<DomainBody>)> {
    let view =
        app::sending_domains::rotate(&app, admin.tenant.id(), &admin.principal.subject, &domain)
            .await?;
    Ok((StatusCode::CREATED, one(view)))
}

async fn remove(
    State(app): State<AppState>,
    admin: TenantAdmin,
    Path(domain): Path<String>,
) -> ApiResult<StatusCode> {
    app::sending_domains::remove(&app, admin.tenant.id(), &admin.principal.subject, &domain)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn admin_list(
    State(app): State<AppState>,
    _admin: PlatformAdmin,
    Path(id): Path<String>,
) -> ApiResult<Json<DomainsBody>> {
    let tenant = tenant_id(&id)?;
    app.storage
        .platform()
        .tenant(&tenant)
        .await?
        .ok_or_else(|| crate::http::ApiError::not_found(format!("no tenant `{tenant}`")))?;
    let domains = app::sending_domains::list(&app, &tenant).await?;
    Ok(Json(DomainsBody {
        domains: domains.into_iter().map(Sorted).collect(),
    }))
}
