//! Who and what a request is for, in the order of the design's request flow:
//! the host names a tenant (an unknown host is a 404 before anything else), the
//! tenant's row says whether it is active (a suspended tenant is a 403, a
//! deleted one a 410), the
//! bearer token is verified and its organisation must be that tenant's, it must
//! not predate its user's last membership change there (Clerk's webhooks), the
//! role must allow the route, the tenant's request rate is charged — and only then,
//! and only if the handler needs it, is the tenant's state (settings, key-value
//! data) loaded. A request without a valid token for the tenant never costs more
//! than a small cached row.
//!
//! The host comes from [`request_host`], the one place every route reads it.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, Version, header};
use serde::de::DeserializeOwned;

use crate::auth::{OrgRole, Principal, bearer};
use crate::http::{ApiError, Code};
use crate::state::AppState;
use crate::storage::{TenantRecord, TenantStatus};
use crate::tenancy::{HostTarget, TenantId, TenantState, classify, strip_port};

/// The host a request is for, read the same way by every route:
/// - the authority of the request target when it has one: an absolute-form
///   target (`GET http://acme.example/v1/config HTTP/1.1`), whose authority wins
///   over `Host` (RFC 9112 §3.2.2), or HTTP/2's `:authority` (hyper puts both in
///   the URI); an HTTP/2 request whose `Host` names another host is refused
///   (RFC 9113 §8.3.1);
/// - else the `Host` header; more than one is refused (RFC 9112 §3.2: the
///   server cannot know which one a proxy in front of it routed by).
///
/// Userinfo and port are dropped; [`classify`] says what the name is.
pub fn request_host(parts: &Parts) -> Result<String, ApiError> {
    let mut hosts = parts.headers.get_all(header::HOST).iter();
    let host_header = hosts.next();
    if hosts.next().is_some() {
        return Err(ApiError::new(
            Code::DuplicateHost,
            "the request has more than one Host header; send exactly one",
        ));
    }
    let host_header =
        match host_header {
            None => None,
            Some(value) => Some(value.to_str().map_err(|_| {
                ApiError::new(Code::InvalidHost, "the Host header is not ASCII text")
            })?),
        };
    if let Some(authority) = parts.uri.authority() {
        let host = authority.host();
        if parts.version == Version::HTTP_2
            && let Some(header) = host_header
            && !strip_port(header.trim()).eq_ignore_ascii_case(host)
        {
            return Err(ApiError::new(
                Code::ConflictingHost,
                "the Host header names another host than the request's :authority; send one host",
            ));
        }
        return Ok(match authority.port_u16() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        });
    }
    host_header.map(str::to_owned).ok_or_else(|| {
        ApiError::new(
            Code::MissingHost,
            "the request names no host: send a Host header (e.g. Host: <tenant>.<base-domain>)",
        )
    })
}

fn unknown_host(host: &str) -> ApiError {
    let shown: String = host.chars().take(100).collect();
    ApiError::new(
        Code::UnknownHost,
        format!(
            "no tenant is served at `{shown}`; use <tenant>.<base-domain>, or a custom domain once it is verified (GET /v1/domains shows its status and the DNS record to publish)"
        ),
    )
}

/// The request is on the platform's own host (health, admin and bounce routes).
#[derive(Debug, Clone, Copy)]
pub struct PlatformHost;

impl FromRequestParts<AppState> for PlatformHost {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let host = request_host(parts)?;
        if classify(&host, &app.config.base_domain) != HostTarget::Platform {
            let shown: String = host.chars().take(100).collect();
            return Err(ApiError::new(
                Code::UnknownHost,
                format!(
                    "this endpoint is served on the platform's own host ({}) only, not at `{shown}`",
                    app.config.base_domain
                ),
            ));
        }
        Ok(Self)
    }
}

/// The active tenant the request's host names, as its row only (status,
/// organisation, limits): what routes need before, or without, a bearer token.
/// Never loads the tenant's settings or key-value data.
#[derive(Debug, Clone)]
pub struct TenantHost(pub Arc<TenantRecord>);

impl TenantHost {
    /// The tenant's id.
    pub fn id(&self) -> &TenantId {
        &self.0.id
    }
}

impl FromRequestParts<AppState> for TenantHost {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        if let Some(tenant) = parts.extensions.get::<TenantHost>() {
            return Ok(tenant.clone());
        }
        let host = request_host(parts)?;
        let id = match classify(&host, &app.config.base_domain) {
            HostTarget::Subdomain(id) => id,
            HostTarget::Custom(domain) => app
                .tenant_for_domain(&domain)
                .await?
                .ok_or_else(|| unknown_host(&host))?,
            HostTarget::Platform | HostTarget::Invalid => return Err(unknown_host(&host)),
        };
        let record = app
            .tenant_record(&id)
            .await?
            .ok_or_else(|| unknown_host(&host))?;
        if let Some(slot) = parts.extensions.get::<super::access::ResolvedTenant>() {
            slot.set(&record.id);
        }
        check_active(&record)?;
        let tenant = TenantHost(record);
        parts.extensions.insert(tenant.clone());
        Ok(tenant)
    }
}

fn check_active(record: &TenantRecord) -> Result<(), ApiError> {
    if record.is_deleted() {
        return Err(ApiError::new(
            Code::TenantDeleted,
            "this tenant was deleted; a platform admin can restore it until its purge",
        ));
    }
    if record.status == TenantStatus::Suspended {
        return Err(ApiError::new(
            Code::TenantSuspended,
            "this tenant is suspended; contact the platform's support",
        ));
    }
    Ok(())
}

/// The host's tenant, for an authenticated caller (see [`Member`] and
/// [`TenantAdmin`]): its row at once, its full state (settings, key-value data)
/// only when a handler asks for it, so routes that do not need the state (key-value
/// writes, settings, runs, ...) never load it.
#[derive(Debug, Clone)]
pub struct TenantCtx(Arc<TenantRecord>);

impl TenantCtx {
    /// The tenant's id.
    pub fn id(&self) -> &TenantId {
        &self.0.id
    }

    /// The tenant's row.
    pub fn record(&self) -> &TenantRecord {
        &self.0
    }

    /// The tenant's full state: cached, or loaded once for every request that
    /// needs it at the same time.
    pub async fn state(&self, app: &AppState) -> Result<Arc<TenantState>, ApiError> {
        Ok(crate::app::tenants::state(app, self.id()).await?)
    }
}

async fn principal(parts: &Parts, app: &AppState) -> Result<Arc<Principal>, ApiError> {
    let header = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::new(
                Code::MissingToken,
                "send a bearer token: Authorization: Bearer <jwt>",
            )
        })?
        .to_str()
        .map_err(|_| ApiError::new(Code::MalformedToken, "the Authorization header is not text"))?;
    let token = bearer(header)?;
    Ok(app.auth.verify(token).await?)
}

async fn caller(
    parts: &mut Parts,
    app: &AppState,
    need_admin: bool,
) -> Result<(TenantCtx, Arc<Principal>), ApiError> {
    let tenant = TenantHost::from_request_parts(parts, app).await?;
    let principal = principal(parts, app).await?;
    admit(app, tenant, principal, need_admin).await
}

/// Admits a verified caller to the host's tenant, by the rules every tenant
/// route applies: the token's organisation is the tenant's, no membership
/// change revoked it since it was issued, its role allows the route, and the
/// tenant's request rate is charged. The console admits its sessions (cookie
/// or header) through this same gate.
pub(crate) async fn admit(
    app: &AppState,
    tenant: TenantHost,
    principal: Arc<Principal>,
    need_admin: bool,
) -> Result<(TenantCtx, Arc<Principal>), ApiError> {
    if principal.org_id.as_deref() != Some(tenant.0.org_id.as_str()) {
        return Err(ApiError::new(
            Code::WrongTenant,
            "the token's organisation is not this host's tenant; use a token for this tenant's organisation",
        ));
    }
    // A membership or role change since the token was issued: refused, so
    // the change holds from the next request on.
    crate::app::clerk::check_token(app, tenant.id(), &principal).await?;
    match (principal.org_role, need_admin) {
        (Some(OrgRole::Admin), _) | (Some(OrgRole::Member), false) => {}
        (Some(OrgRole::Member), true) => {
            return Err(ApiError::new(
                Code::InsufficientRole,
                "this needs the organisation's admin role",
            ));
        }
        (None, _) => {
            return Err(ApiError::new(
                Code::InsufficientRole,
                "the token carries no organisation role",
            ));
        }
    }
    if let Err(wait) = app.limits.check_rate(&tenant.0).await {
        app.metrics.rate_limited(tenant.id());
        return Err(ApiError::rate_limited(wait.as_secs_f64().ceil() as u64));
    }
    app.recorder.request(tenant.id());
    // Authenticated, authorised and within its rate: the handler may now load
    // the heavy part.
    Ok((TenantCtx(tenant.0), principal))
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
        PlatformHost::from_request_parts(parts, app).await?;
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
                        Code::InvalidJsonType
                    } else {
                        Code::InvalidJson
                    },
                    rejection.body_text(),
                ))
            }
        }
    }
}

/// The 413 answer.
pub fn too_large() -> ApiError {
    ApiError::new(
        Code::BodyTooLarge,
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
                    ApiError::new(Code::BadBody, rejection.body_text())
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use axum::http::{Request, Version};

    use super::*;

    fn parts(version: Version, uri: &str, hosts: &[&str]) -> Parts {
        let mut builder = Request::builder().version(version).uri(uri);
        for host in hosts {
            builder = builder.header(header::HOST, *host);
        }
        builder.body(()).unwrap().into_parts().0
    }

    fn code(result: Result<String, ApiError>) -> &'static str {
        let err = result.unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        err.code()
    }

    #[test]
    fn the_host_header_names_the_host_of_an_origin_form_request() {
        let p = parts(Version::HTTP_11, "/v1/config", &["acme.localhost:8080"]);
        assert_eq!(request_host(&p).unwrap(), "acme.localhost:8080");
    }

    #[test]
    fn more_than_one_host_header_is_refused() {
        let p = parts(
            Version::HTTP_11,
            "/v1/config",
            &["acme.localhost", "globex.localhost"],
        );
        assert_eq!(code(request_host(&p)), "duplicate_host");
        let p = parts(
            Version::HTTP_11,
            "/v1/config",
            &["acme.localhost", "acme.localhost"],
        );
        assert_eq!(code(request_host(&p)), "duplicate_host", "even when equal");
    }

    #[test]
    fn an_absolute_form_target_wins_over_the_host_header() {
        let p = parts(
            Version::HTTP_11,
            "http://globex.localhost:8080/v1/config",
            &["acme.localhost"],
        );
        assert_eq!(request_host(&p).unwrap(), "globex.localhost:8080");
        let p = parts(
            Version::HTTP_11,
            "http://user@globex.localhost/v1/config",
            &[],
        );
        assert_eq!(
            request_host(&p).unwrap(),
            "globex.localhost",
            "userinfo dropped"
        );
        let p = parts(Version::HTTP_11, "http://[::1]:8080/healthz", &[]);
        assert_eq!(request_host(&p).unwrap(), "[::1]:8080");
    }

    #[test]
    fn http2_reads_the_authority_and_refuses_a_host_header_naming_another() {
        let p = parts(Version::HTTP_2, "http://acme.localhost:8080/v1/config", &[]);
        assert_eq!(request_host(&p).unwrap(), "acme.localhost:8080");
        let p = parts(
            Version::HTTP_2,
            "http://acme.localhost:8080/v1/config",
            &["ACME.localhost:9"],
        );
        assert_eq!(
            request_host(&p).unwrap(),
            "acme.localhost:8080",
            "same name"
        );
        let p = parts(
            Version::HTTP_2,
            "http://acme.localhost/v1/config",
            &["globex.localhost"],
        );
        assert_eq!(code(request_host(&p)), "conflicting_host");
    }

    #[test]
    fn no_host_at_all_is_a_clear_400() {
        let p = parts(Version::HTTP_11, "/v1/config", &[]);
        assert_eq!(code(request_host(&p)), "missing_host");
        let mut p = parts(Version::HTTP_11, "/v1/config", &[]);
        p.headers.insert(
            header::HOST,
            axum::http::HeaderValue::from_bytes(b"acm\xe9.localhost").unwrap(),
        );
        assert_eq!(code(request_host(&p)), "invalid_host");
    }
}

/// A query string whose rejection is an API error (400 `invalid_query`, the
/// message naming what did not parse) rather than axum's plain text.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::new(
                Code::InvalidQuery,
                format!("the query string: {}", rejection.body_text()),
            )),
        }
    }
}
