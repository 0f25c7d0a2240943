//! The console's sessions, the way Clerk apps keep them: the session JWT is
//! Clerk's `__session` cookie (or an `Authorization: Bearer` header), and
//! each request verifies it exactly as the API does ([`admit`]). In `--dev`
//! the sign-in page issues a development session (a token signed with the
//! development key `serve --dev` trusts) for the host's tenant and a chosen
//! role, or, on the base domain, for a platform admin; the cookie is
//! `HttpOnly` and `SameSite=Strict`, and no token is ever put in a URL or in
//! the HTML.
//!
//! Proofs against cross-site requests, both applied:
//! - every state-changing request must come from the console's own origin
//!   ([`same_origin`]: its `Origin` header names the request's host, or it is
//!   a non-browser call authenticated by a header);
//! - every state-changing form carries a CSRF token bound to its session: an
//!   HMAC of the session token under a key derived from the server's secret
//!   key, so it needs no storage and holds on every node ([`Act`]).

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use hmac::{Hmac, Mac};
use maud::html;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::Sha256;

use super::layout::{self, PageError};
use crate::auth::{OrgRole, Principal, dev_token};
use crate::http::context::{PlatformHost, TenantCtx, TenantHost, admit};
use crate::http::{ApiError, Code, request_host};
use crate::state::AppState;
use crate::tenancy::{HostTarget, classify};

/// Clerk's session cookie.
pub(super) const COOKIE: &str = "__session";

/// How long a development session lasts.
const DEV_SESSION: std::time::Duration = std::time::Duration::from_secs(8 * 3600);

/// The session token of a request: the `Authorization` header's bearer token,
/// else the `__session` cookie.
fn session_token(headers: &HeaderMap) -> Option<(String, bool)> {
    if let Some(value) = headers.get(header::AUTHORIZATION)
        && let Ok(value) = value.to_str()
        && let Ok(token) = crate::auth::bearer(value)
    {
        return Some((token.to_owned(), false));
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| (value.trim().to_owned(), true))
        .filter(|(value, _)| !value.is_empty())
}

/// The CSRF token of a session: HMAC-SHA256 of its token, hex.
fn csrf_for(app: &AppState, token: &str) -> String {
    hex::encode(csrf_mac(app, token).finalize().into_bytes())
}

fn csrf_mac(app: &AppState, token: &str) -> Hmac<Sha256> {
    let key = app.secrets.derive_key("veneer:console:csrf:v1");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes a key of any length");
    mac.update(token.as_bytes());
    mac
}

/// Whether `given` is the session's CSRF token (compared in constant time).
fn csrf_holds(app: &AppState, token: &str, given: &str) -> bool {
    match hex::decode(given) {
        Ok(bytes) => csrf_mac(app, token).verify_slice(&bytes).is_ok(),
        Err(_) => false,
    }
}

fn refused(why: &str) -> PageError {
    PageError::Api(ApiError::new(
        Code::CsrfRefused,
        format!(
            "{why}; nothing was changed. Post the console's own form from its page (reload it first)"
        ),
    ))
}

/// Middleware: a state-changing request (anything but GET, HEAD, OPTIONS)
/// must come from the request's own origin: its `Origin` header names the
/// host it is sent to. A caller authenticated by an `Authorization` header
/// (not a browser's ambient cookie) may omit `Origin`.
pub(super) async fn same_origin(request: Request, next: Next) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    if let Err(err) = check_origin(&parts) {
        return err.into_response();
    }
    next.run(Request::from_parts(parts, body)).await
}

fn check_origin(parts: &Parts) -> Result<(), PageError> {
    let host = request_host(parts).map_err(PageError::Api)?;
    match parts.headers.get(header::ORIGIN) {
        Some(origin) => {
            let origin = origin.to_str().unwrap_or("");
            let authority = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"))
                .unwrap_or("");
            if authority.is_empty() || !authority.eq_ignore_ascii_case(&host) {
                return Err(refused("the form was posted from another site"));
            }
            Ok(())
        }
        None if parts.headers.contains_key(header::AUTHORIZATION) => Ok(()),
        None => Err(refused("the post carries no Origin header")),
    }
}

/// A signed-in member (or admin) of the host's tenant.
#[derive(Debug, Clone)]
pub(super) struct TenantViewer {
    /// The tenant.
    pub tenant: TenantCtx,
    /// Who.
    pub principal: Arc<Principal>,
    /// The session's CSRF token, for the forms of the page.
    pub csrf: String,
    /// The session token the CSRF token is checked against (never rendered).
    session: String,
}

impl TenantViewer {
    /// Whether the viewer is an admin of the tenant.
    pub fn is_admin(&self) -> bool {
        self.principal.org_role == Some(OrgRole::Admin)
    }

    /// Refuses a non-admin (403 page).
    pub fn require_admin(&self) -> Result<(), PageError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(PageError::Api(ApiError::new(
                Code::InsufficientRole,
                "this needs the organisation's admin role",
            )))
        }
    }

    /// The frame's view of the session.
    pub fn frame(&self) -> layout::Frame {
        layout::Frame {
            area: layout::Area::Tenant(self.tenant.id().to_string()),
            who: self.principal.subject.clone(),
            role: if self.is_admin() { "admin" } else { "member" },
            csrf: self.csrf.clone(),
        }
    }
}

impl FromRequestParts<AppState> for TenantViewer {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, PageError> {
        let tenant = TenantHost::from_request_parts(parts, app)
            .await
            .map_err(PageError::Api)?;
        let (token, _) = session_token(&parts.headers).ok_or(PageError::SignIn)?;
        let principal = app
            .auth
            .verify(&token)
            .await
            .map_err(|err| PageError::Session(ApiError::from(err)))?;
        let (tenant, principal) = admit(app, tenant, principal, false)
            .await
            .map_err(PageError::Api)?;
        Ok(Self {
            tenant,
            principal,
            csrf: csrf_for(app, &token),
            session: token,
        })
    }
}

/// A signed-in platform admin on the base domain.
#[derive(Debug, Clone)]
pub(super) struct PlatformViewer {
    /// Who.
    pub principal: Arc<Principal>,
    /// The session's CSRF token.
    pub csrf: String,
    /// The session token the CSRF token is checked against (never rendered).
    session: String,
}

impl PlatformViewer {
    /// The frame's view of the session.
    pub fn frame(&self) -> layout::Frame {
        layout::Frame {
            area: layout::Area::Platform,
            who: self.principal.subject.clone(),
            role: "platform admin",
            csrf: self.csrf.clone(),
        }
    }
}

impl FromRequestParts<AppState> for PlatformViewer {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, PageError> {
        PlatformHost::from_request_parts(parts, app)
            .await
            .map_err(PageError::Api)?;
        let (token, _) = session_token(&parts.headers).ok_or(PageError::SignIn)?;
        let principal = app
            .auth
            .verify(&token)
            .await
            .map_err(|err| PageError::Session(ApiError::from(err)))?;
        if !principal.platform_admin {
            return Err(PageError::Api(ApiError::forbidden(
                "this needs a platform admin (the configured admin claim set to true)",
            )));
        }
        Ok(Self {
            principal,
            csrf: csrf_for(app, &token),
            session: token,
        })
    }
}

/// The viewer of a page, with the session token its CSRF proof is checked against.
pub(super) trait Viewer: FromRequestParts<AppState, Rejection = PageError> {
    /// The session token.
    fn session(&self) -> &str;
}

impl Viewer for TenantViewer {
    fn session(&self) -> &str {
        &self.session
    }
}

impl Viewer for PlatformViewer {
    fn session(&self) -> &str {
        &self.session
    }
}

/// A state-changing form post (`application/x-www-form-urlencoded`) by a
/// signed-in viewer, its CSRF token checked before the form is read:
/// the only way a console handler receives a form.
#[derive(Debug)]
pub(super) struct Act<V, T> {
    /// Who posted.
    pub viewer: V,
    /// The form, without its `csrf` field.
    pub form: T,
}

#[derive(Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

impl<V: Viewer + Send, T: DeserializeOwned + Send> FromRequest<AppState> for Act<V, T> {
    type Rejection = PageError;

    async fn from_request(request: Request, app: &AppState) -> Result<Self, PageError> {
        let (mut parts, body) = request.into_parts();
        let viewer = V::from_request_parts(&mut parts, app).await?;
        let bytes = axum::body::Bytes::from_request(Request::from_parts(parts, body), app)
            .await
            .map_err(|rejection| {
                PageError::Api(ApiError::new(Code::BadBody, rejection.body_text()))
            })?;
        let given: CsrfField = serde_urlencoded::from_bytes(&bytes).unwrap_or(CsrfField {
            csrf: String::new(),
        });
        check_csrf(app, viewer.session(), &given.csrf)?;
        let form = serde_urlencoded::from_bytes(&bytes).map_err(|err| {
            PageError::Api(ApiError::new(
                Code::InvalidJson,
                format!("the form did not read: {err}"),
            ))
        })?;
        Ok(Self { viewer, form })
    }
}

/// Refuses a form of `viewer`'s whose CSRF token is missing or not the
/// session's (for forms read otherwise than by [`Act`]: the multipart upload).
pub(super) fn check_csrf_of(
    app: &AppState,
    viewer: &impl Viewer,
    given: &str,
) -> Result<(), PageError> {
    check_csrf(app, viewer.session(), given)
}

/// Refuses a form whose CSRF token is missing or not the session's.
pub(super) fn check_csrf(app: &AppState, session: &str, given: &str) -> Result<(), PageError> {
    if given.is_empty() {
        return Err(refused("the form carries no CSRF token"));
    }
    if !csrf_holds(app, session, given) {
        return Err(refused("the form's CSRF token is not this session's"));
    }
    Ok(())
}

/// `GET /console/sign-in`.
pub(super) async fn sign_in_page(
    State(app): State<AppState>,
    parts: Parts,
) -> Result<Response, PageError> {
    let host = request_host(&parts).map_err(PageError::Api)?;
    let target = classify(&host, &app.config.base_domain);
    let body = if !app.config.dev {
        html! {
            p { "Sign in through your organisation's sign-in page (Clerk). It sets the "
                code { "__session" } " cookie for this host; then open "
                a href="/console" { "the console" } "." }
        }
    } else {
        match target {
            HostTarget::Platform => {
                let tenants = app
                    .storage
                    .platform()
                    .list_tenants()
                    .await
                    .map_err(|e| PageError::Api(e.into()))?;
                html! {
                    p { "Development mode: sign in as a platform admin here, or as a tenant's member or admin on its own host." }
                    form method="post" action="/console/sign-in" {
                        input type="hidden" name="role" value="platform";
                        button type="submit" id="sign-in-platform" { "Sign in as platform admin" }
                    }
                    h2 { "Demo tenants" }
                    ul {
                        @for t in tenants.iter().filter(|t| !t.is_deleted()) {
                            li { a href={ "//" (t.id) "." (host) "/console/sign-in" } { (t.name) " (" (t.id) ")" } }
                        }
                    }
                }
            }
            _ => {
                let tenant = TenantHost::from_request_parts(&mut parts.clone(), &app)
                    .await
                    .map_err(PageError::Api)?;
                html! {
                    p { "Development mode: a development session for " strong { (tenant.0.name) } " (" (tenant.id()) ")." }
                    form method="post" action="/console/sign-in" {
                        label for="role" { "Role" }
                        select name="role" id="role" {
                            option value="admin" { "admin" }
                            option value="member" { "member" }
                        }
                        button type="submit" id="sign-in" { "Sign in" }
                    }
                }
            }
        }
    };
    Ok(layout::bare("Sign in", body))
}

#[derive(Deserialize)]
pub(super) struct SignIn {
    role: String,
}

/// `POST /console/sign-in` (dev only): sets a development session cookie.
pub(super) async fn sign_in(
    State(app): State<AppState>,
    parts: Parts,
    axum::Form(form): axum::Form<SignIn>,
) -> Result<Response, PageError> {
    if !app.config.dev {
        return Err(PageError::Api(ApiError::not_found(
            "development sessions exist only in dev mode; sign in through the identity provider",
        )));
    }
    let host = request_host(&parts).map_err(PageError::Api)?;
    let token = match (classify(&host, &app.config.base_domain), form.role.as_str()) {
        (HostTarget::Platform, "platform") => {
            dev_token("", OrgRole::Member, "user_platform", true, DEV_SESSION)
        }
        (HostTarget::Platform, _) => {
            return Err(PageError::Api(ApiError::new(
                Code::InvalidJson,
                "on the base domain the role is `platform`",
            )));
        }
        (_, role) => {
            let tenant = TenantHost::from_request_parts(&mut parts.clone(), &app)
                .await
                .map_err(PageError::Api)?;
            let role = match role {
                "admin" => OrgRole::Admin,
                "member" => OrgRole::Member,
                _ => {
                    return Err(PageError::Api(ApiError::new(
                        Code::InvalidJson,
                        "the role is `admin` or `member`",
                    )));
                }
            };
            dev_token(
                &tenant.0.org_id,
                role,
                &format!("user_{}_{}", tenant.id(), role.as_str()),
                false,
                DEV_SESSION,
            )
        }
    };
    let mut response = Redirect::to("/console").into_response();
    let cookie = format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        DEV_SESSION.as_secs(),
        if app.config.tls.enabled {
            "; Secure"
        } else {
            ""
        }
    );
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| PageError::Api(ApiError::internal(e)))?,
    );
    Ok(response)
}

/// `POST /console/sign-out`: clears the cookie (CSRF-checked like every form).
pub(super) async fn sign_out(
    State(app): State<AppState>,
    request: Request,
) -> Result<Response, PageError> {
    let token = session_token(request.headers()).ok_or(PageError::SignIn)?.0;
    let bytes = axum::body::Bytes::from_request(request, &app)
        .await
        .map_err(|rejection| PageError::Api(ApiError::new(Code::BadBody, rejection.body_text())))?;
    let given: CsrfField = serde_urlencoded::from_bytes(&bytes).unwrap_or(CsrfField {
        csrf: String::new(),
    });
    check_csrf(&app, &token, &given.csrf)?;
    let mut response = Redirect::to("/console/sign-in").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("__session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_wins_over_the_cookie_and_the_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; __session=tok; b=2"),
        );
        assert_eq!(session_token(&headers), Some(("tok".to_owned(), true)));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer hdr"),
        );
        assert_eq!(session_token(&headers), Some(("hdr".to_owned(), false)));
        let mut empty = HeaderMap::new();
        empty.insert(header::COOKIE, HeaderValue::from_static("__session="));
        assert_eq!(session_token(&empty), None);
    }

    fn parts(method: Method, headers: &[(&str, &str)]) -> Parts {
        let mut builder = axum::http::Request::builder()
            .method(method)
            .uri("/console/installations");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn a_post_from_another_origin_or_without_one_is_refused() {
        let host = ("host", "acme.veneer.test:8080");
        assert!(
            check_origin(&parts(
                Method::POST,
                &[host, ("origin", "http://acme.veneer.test:8080")]
            ))
            .is_ok()
        );
        assert!(
            check_origin(&parts(
                Method::POST,
                &[host, ("origin", "https://evil.example")]
            ))
            .is_err()
        );
        assert!(
            check_origin(&parts(
                Method::POST,
                &[host, ("origin", "http://globex.veneer.test:8080")]
            ))
            .is_err()
        );
        assert!(check_origin(&parts(Method::POST, &[host, ("origin", "null")])).is_err());
        assert!(
            check_origin(&parts(Method::POST, &[host])).is_err(),
            "a cookie post without Origin"
        );
        assert!(check_origin(&parts(Method::POST, &[host, ("authorization", "Bearer x")])).is_ok());
    }
}
