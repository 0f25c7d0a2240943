//! HTTPS at the HTTP layer: the plain-HTTP listener's router under `--tls`
//! (ACME HTTP-01 answers from the database, health, and a 308 to HTTPS for
//! everything else), the HSTS header on HTTPS answers, a TLS proxy's `ask`
//! (`GET /v1/tls/ask?domain=`, on the platform host, for Caddy's on-demand
//! TLS: 200 only for names Veneer serves) and an admin's retry of a failed
//! certificate order. The rules are [`crate::app::certificates`]'.

use axum::extract::{Path, Request, State};
use axum::http::header::{CONTENT_TYPE, LOCATION, STRICT_TRANSPORT_SECURITY};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::admin::tenant_id;
use crate::app;
use crate::http::context::{ApiQuery, PlatformAdmin, PlatformHost, TenantAdmin};
use crate::http::openapi::{HOST, MEMBER, PLATFORM_ADMIN, QUERY, TENANT_HOST, TOKEN, errors};
use crate::http::{ApiError, ApiResult, Code, request_host};
use crate::state::AppState;
use crate::tenancy::strip_port;

/// The routes of the API proper (on every listener that serves it).
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(ask))
        .routes(routes!(retry))
        .routes(routes!(admin_retry))
}

/// The plain-HTTP listener's router under `--tls`: ACME challenges and
/// health answered, everything else redirected (308, method and body kept)
/// to the same host and path on HTTPS port `https_port`.
pub fn redirect_router(state: AppState, https_port: u16) -> Router {
    Router::new()
        .route("/.well-known/acme-challenge/{token}", get(challenge))
        .merge(super::health::routes().split_for_parts().0)
        .fallback(move |request: Request| redirect(request, https_port))
        .with_state(state)
}

/// `router` with `Strict-Transport-Security: max-age=<max_age>` on every
/// answer (none when 0).
pub fn with_hsts(router: Router, max_age: u64) -> Router {
    if max_age == 0 {
        return router;
    }
    let Ok(value) = HeaderValue::from_str(&format!("max-age={max_age}")) else {
        return router;
    };
    router.layer(axum::middleware::map_response(
        move |mut response: Response| {
            let value = value.clone();
            async move {
                response
                    .headers_mut()
                    .insert(STRICT_TRANSPORT_SECURITY, value);
                response
            }
        },
    ))
}

async fn challenge(State(app): State<AppState>, Path(token): Path<String>) -> ApiResult<Response> {
    match app::certificates::challenge_answer(&app, &token).await? {
        Some(answer) => Ok((
            [(
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            )],
            answer,
        )
            .into_response()),
        None => Err(ApiError::not_found(
            "no ACME challenge with this token is being answered",
        )),
    }
}

async fn redirect(request: Request, https_port: u16) -> Response {
    let (parts, _body) = request.into_parts();
    let host = match request_host(&parts) {
        Ok(host) => host,
        Err(err) => return err.into_response(),
    };
    let name = strip_port(&host).to_owned();
    let host_name = |b: u8| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b);
    if name.is_empty() || name.len() > 253 || !name.bytes().all(host_name) {
        return ApiError::new(Code::InvalidHost, "the Host header is not a host name")
            .into_response();
    }
    let authority = if https_port == 443 {
        name
    } else if name.contains(':') && !name.starts_with('[') {
        format!("[{name}]:{https_port}")
    } else {
        format!("{name}:{https_port}")
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    match HeaderValue::from_str(&format!("https://{authority}{path}")) {
        Ok(location) => (StatusCode::PERMANENT_REDIRECT, [(LOCATION, location)]).into_response(),
        Err(_) => {
            ApiError::new(Code::InvalidHost, "the Host header is not a host name").into_response()
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AskQuery {
    /// The name a TLS proxy asks to get a certificate for.
    domain: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct Asked {
    domain: String,
    served: bool,
}

/// A TLS proxy's on-demand `ask` (Caddy): 200 only for names Veneer serves
/// (the base domain, its tenants, verified custom domains), on the platform's host.
#[utoipa::path(
    get,
    path = "/v1/tls/ask",
    tag = "tls",
    security(()),
    params(AskQuery),
    responses(
        (status = 200, body = Asked, description = "Veneer serves this name"),
    ),
    extensions(("x-veneer-errors" = json!(errors(&[HOST, QUERY, &[Code::InvalidDomain, Code::DatabaseUnavailable]])))),
)]
async fn ask(
    State(app): State<AppState>,
    _platform: PlatformHost,
    ApiQuery(query): ApiQuery<AskQuery>,
) -> ApiResult<Json<Asked>> {
    let Some(domain) = query.domain.filter(|d| !d.trim().is_empty()) else {
        return Err(ApiError::new(
            Code::InvalidDomain,
            "give the name to ask about: /v1/tls/ask?domain=shop.example.com",
        ));
    };
    if !app::certificates::may_serve(&app, &domain).await? {
        return Err(ApiError::new(
            Code::UnknownHost,
            format!(
                "`{}` is not served here: only the base domain, its tenants and verified custom domains are",
                domain.chars().take(100).collect::<String>()
            ),
        ));
    }
    Ok(Json(Asked {
        domain: domain.trim().trim_end_matches('.').to_ascii_lowercase(),
        served: true,
    }))
}

/// Orders a custom domain's certificate again after a failure (admins).
#[utoipa::path(
    post,
    path = "/v1/domains/{domain}/certificate/retry",
    tag = "tls",
    security(("bearer" = [])),
    params(("domain" = String, Path, description = "The custom domain")),
    responses(
        (status = 202, description = "A new certificate order is queued"),
    ),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, &[Code::NotFound, Code::Conflict]])))),
)]
async fn retry(
    State(app): State<AppState>,
    admin: TenantAdmin,
    Path(domain): Path<String>,
) -> ApiResult<StatusCode> {
    app::certificates::retry(&app, admin.tenant.id(), &domain.to_ascii_lowercase()).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Orders a tenant's custom domain certificate again (platform admins).
#[utoipa::path(
    post,
    path = "/v1/admin/tenants/{id}/domains/{domain}/certificate/retry",
    tag = "tls",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The tenant's id"), ("domain" = String, Path, description = "The custom domain")),
    responses(
        (status = 202, description = "A new certificate order is queued"),
    ),
    extensions(("x-veneer-errors" = json!(errors(&[HOST, TOKEN, PLATFORM_ADMIN, &[Code::InvalidTenantId, Code::NotFound, Code::Conflict]])))),
)]
async fn admin_retry(
    State(app): State<AppState>,
    _admin: PlatformAdmin,
    Path((id, domain)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    app::certificates::retry(&app, &tenant_id(&id)?, &domain.to_ascii_lowercase()).await?;
    Ok(StatusCode::ACCEPTED)
}
