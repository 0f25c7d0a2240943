//! Who and what a request is for, in the order of the design's request flow:
//! the host names a tenant (an unknown host is a 404 before anything else), the
//! tenant's state is loaded (a suspended tenant is a 403), the bearer token is
//! verified and its organisation must be that tenant's, the role must allow the
//! route, and the tenant's request rate is charged.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::auth::{OrgRole, Principal, bearer};
use crate::cache::HostKey;
use crate::http::ApiError;
use crate::state::AppState;
use crate::storage::TenantStatus;
use crate::tenancy::{HostTarget, TenantId, TenantState, classify};

fn host_of(parts: &Parts) -> String {
    parts
        .headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .or_else(|| parts.uri.authority().map(|a| a.as_str().to_owned()))
        .unwrap_or_default()
}

fn unknown_host(host: &str) -> ApiError {
    let shown: String = host.chars().take(100).collect();
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_host",
        format!(
            "no tenant is served at `{shown}`; use <tenant>.<base-domain> or a domain mapped to your tenant"
        ),
    )
}

/// The tenant named by the request's host, loaded and active.
#[derive(Debug, Clone)]
pub struct TenantCtx(pub Arc<TenantState>);

impl TenantCtx {
    /// The tenant's id.
    pub fn id(&self) -> &TenantId {
        &self.0.record.id
    }
}

async fn tenant_for_host(app: &AppState, host: &str) -> Result<Arc<TenantState>, ApiError> {
    let id = match classify(host, &app.config.base_domain) {
        HostTarget::Subdomain(id) => id,
        HostTarget::Custom(domain) => {
            let key = HostKey::new(&domain);
            let cached = app.caches.host(&key);
            let id = match cached {
                Some(id) => id,
                None => {
                    let id = app
                        .storage
                        .platform()
                        .tenant_by_domain(&domain)
                        .await?
                        .map(|record| record.id);
                    app.caches.put_host(key, id.clone());
                    id
                }
            };
            id.ok_or_else(|| unknown_host(host))?
        }
        HostTarget::Platform | HostTarget::Invalid => return Err(unknown_host(host)),
    };
    app.tenant_state(&id)
        .await?
        .ok_or_else(|| unknown_host(host))
}

impl FromRequestParts<AppState> for TenantCtx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        if let Some(ctx) = parts.extensions.get::<TenantCtx>() {
            return Ok(ctx.clone());
        }
        let state = tenant_for_host(app, &host_of(parts)).await?;
        if state.record.status == TenantStatus::Suspended {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "tenant_suspended",
                "this tenant is suspended; contact the platform's support",
            ));
        }
        let ctx = TenantCtx(state);
        parts.extensions.insert(ctx.clone());
        Ok(ctx)
    }
}

async fn principal(parts: &Parts, app: &AppState) -> Result<Arc<Principal>, ApiError> {
    let header = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing_token",
                "send a bearer token: Authorization: Bearer <jwt>",
            )
        })?
        .to_str()
        .map_err(|_| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "malformed_token",
                "the Authorization header is not text",
            )
        })?;
    let token = bearer(header)?;
    Ok(app.auth.verify(token).await?)
}

async fn caller(
    parts: &mut Parts,
    app: &AppState,
    need_admin: bool,
) -> Result<(TenantCtx, Arc<Principal>), ApiError> {
    let tenant = TenantCtx::from_request_parts(parts, app).await?;
    let principal = principal(parts, app).await?;
    if principal.org_id.as_deref() != Some(tenant.0.record.org_id.as_str()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "wrong_tenant",
            "the token's organisation is not this host's tenant; use a token for this tenant's organisation",
        ));
    }
    match (principal.org_role, need_admin) {
        (Some(OrgRole::Admin), _) | (Some(OrgRole::Member), false) => {}
        (Some(OrgRole::Member), true) => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "insufficient_role",
                "this needs the organisation's admin role",
            ));
        }
        (None, _) => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "insufficient_role",
                "the token carries no organisation role",
            ));
        }
    }
    if let Err(wait) = app.limits.check_rate(&tenant.0.record).await {
        return Err(ApiError::rate_limited(wait.as_secs_f64().ceil() as u64));
    }
    app.recorder.request(tenant.id());
    Ok((tenant, principal))
}

/// A member (or admin) of the host's tenant.
#[derive(Debug, Clone)]
pub struct Member {
    /// The tenant.
    pub tenant: TenantCtx,
    /// The caller (shared with the verified-token cache: no copy per request).
    pub principal: Arc<Principal>,
}

impl FromRequestParts<AppState> for Member {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let (tenant, principal) = caller(parts, app, false).await?;
        Ok(Self { tenant, principal })
    }
}

/// An admin of the host's tenant.
#[derive(Debug, Clone)]
pub struct TenantAdmin {
    /// The tenant.
    pub tenant: TenantCtx,
    /// The caller (shared with the verified-token cache: no copy per request).
    pub principal: Arc<Principal>,
}

impl FromRequestParts<AppState> for TenantAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let (tenant, principal) = caller(parts, app, true).await?;
        Ok(Self { tenant, principal })
    }
}

/// A platform admin, on the platform's own host.
#[derive(Debug, Clone)]
pub struct PlatformAdmin(pub Arc<Principal>);

impl FromRequestParts<AppState> for PlatformAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let host = host_of(parts);
        if classify(&host, &app.config.base_domain) != HostTarget::Platform {
            return Err(unknown_host(&host));
        }
        let principal = principal(parts, app).await?;
        if !principal.platform_admin {
            return Err(ApiError::forbidden(
                "this needs a platform admin token (the configured admin claim set to true)",
            ));
        }
        Ok(Self(principal))
    }
}

/// A JSON body whose rejection is an API error saying what is wrong.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => {
                let status = rejection.status();
                if status == StatusCode::PAYLOAD_TOO_LARGE {
                    return Err(too_large());
                }
                Err(ApiError::new(
                    if status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
                        status
                    } else {
                        StatusCode::BAD_REQUEST
                    },
                    "invalid_json",
                    rejection.body_text(),
                ))
            }
        }
    }
}

/// The 413 answer.
pub fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        "the request body is over the server's size limit",
    )
}

/// A raw body (plugin uploads) whose rejection is an API error.
#[derive(Debug)]
pub struct RawBody(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        axum::body::Bytes::from_request(req, state)
            .await
            .map(Self)
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    too_large()
                } else {
                    ApiError::bad_request("bad_body", rejection.body_text())
                }
            })
    }
}
