//! The console's frame (header, navigation, sign-out), its error pages, its
//! two static assets, and the security headers every console response
//! carries. The Content-Security-Policy allows scripts and styles from the
//! console's own origin only: no inline script or style anywhere, so the
//! pages use classes and the one script file.

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{DOCTYPE, Markup, html};

use crate::http::ApiError;

/// The policy: nothing but the console's own script, style, images and
/// frames (email previews; inline SVG is markup, not script).
pub(super) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; frame-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

/// Middleware: the security headers of every console response (a response
/// that set a stricter policy of its own, an email preview, keeps it).
pub(super) async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Which console a page belongs to.
#[derive(Debug, Clone)]
pub(super) enum Area {
    /// A tenant's, by id.
    Tenant(String),
    /// The platform admin's.
    Platform,
}

/// What the frame shows of the session.
#[derive(Debug, Clone)]
pub(super) struct Frame {
    pub area: Area,
    pub who: String,
    pub role: &'static str,
    /// The CSRF token the frame's own form (sign-out) carries.
    pub csrf: String,
}

/// The hidden CSRF field every state-changing form carries.
pub(super) fn csrf(token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(token); }
}

/// A page in the frame.
pub(super) fn page(frame: &Frame, title: &str, notice: Option<&str>, body: Markup) -> Markup {
    let nav: &[(&str, &str)] = match frame.area {
        Area::Tenant(_) => &[
            ("/console", "Overview"),
            ("/console/config", "Configuration"),
            ("/console/installations", "Installations"),
            ("/console/runs", "Runs"),
            ("/console/data", "Data"),
            ("/console/emails", "Emails"),
            ("/console/jobs", "Jobs"),
            ("/console/audit", "Audit"),
        ],
        Area::Platform => &[
            ("/console/admin", "Tenants"),
            ("/console/admin/usage", "Usage"),
            ("/console/admin/audit", "Audit"),
        ],
    };
    let place = match &frame.area {
        Area::Tenant(id) => id.clone(),
        Area::Platform => "platform".to_owned(),
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Veneer console" }
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body {
                header.top {
                    span.brand { "Veneer" }
                    span.place { (place) }
                    nav { @for (href, label) in nav { a href=(href) { (label) } } }
                    span.who { (frame.who) " · " (frame.role) }
                    form.inline method="post" action="/console/sign-out" {
                        (csrf(&frame.csrf))
                        button.link type="submit" { "Sign out" }
                    }
                }
                main {
                    h1 { (title) }
                    @if let Some(notice) = notice { p.notice role="status" { (notice) } }
                    (body)
                }
            }
        }
    }
}

/// A page outside the frame (sign-in, errors).
pub(super) fn bare(title: &str, body: Markup) -> Response {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) " · Veneer console" }
                link rel="stylesheet" href="/console/assets/console.css";
            }
            body {
                header.top { span.brand { "Veneer" } }
                main.narrow { h1 { (title) } (body) }
            }
        }
    }
    .into_response()
}

/// Why a console page is not shown.
#[derive(Debug)]
pub(super) enum PageError {
    /// No session: go and sign in.
    SignIn,
    /// A session token that does not verify (expired, forged, of another issuer).
    Session(ApiError),
    /// Anything else the API would refuse, with its status and code.
    Api(ApiError),
}

impl From<ApiError> for PageError {
    fn from(err: ApiError) -> Self {
        Self::Api(err)
    }
}

impl From<crate::app::Error> for PageError {
    fn from(err: crate::app::Error) -> Self {
        Self::Api(err.into())
    }
}

impl From<crate::storage::StorageError> for PageError {
    fn from(err: crate::storage::StorageError) -> Self {
        Self::Api(err.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (err, sign_in) = match self {
            Self::SignIn => return Redirect::to("/console/sign-in").into_response(),
            Self::Session(err) => (err, true),
            Self::Api(err) => (err, false),
        };
        let status = err.status();
        let title = match status {
            StatusCode::UNAUTHORIZED => "Sign in again",
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::TOO_MANY_REQUESTS => "Too many requests",
            s if s.is_server_error() => "Something went wrong",
            _ => "Cannot do that",
        };
        let mut response = bare(
            title,
            html! {
                p.error { (err.message()) }
                p.code { "Status " (status.as_u16()) " · code " code { (err.code()) } }
                @if sign_in || status == StatusCode::FORBIDDEN || status == StatusCode::UNAUTHORIZED {
                    p { a href="/console/sign-in" { "Sign in" } }
                }
            },
        );
        *response.status_mut() = status;
        response
    }
}

/// A page answered with a status other than 200 (a form shown again with its errors).
pub(super) fn with_status(status: StatusCode, markup: Markup) -> Response {
    (status, markup).into_response()
}

/// The notice a redirect after a post asks for (`?notice=`): only these
/// fixed texts, so a link cannot make the console say anything else.
pub(super) fn notice(key: Option<&str>) -> Option<&'static str> {
    Some(match key? {
        "created" => "Installation created.",
        "release" => "Release created as a draft: nothing served changes until it is activated.",
        "activated" => "Release activated: it is live on every node.",
        "rolled-back" => "Rolled back: the release live before is live again.",
        "deleted" => "Draft deleted.",
        "saved" => "Saved.",
        "removed" => "Removed.",
        "retried" => "Job queued again.",
        "tenant-created" => "Tenant created.",
        "suspended" => "Tenant suspended: its hosts answer 403 until it is resumed.",
        "resumed" => "Tenant resumed.",
        "quota" => "Quota saved.",
        "limits" => "Rate limits saved.",
        _ => return None,
    })
}

/// `GET /console/assets/console.css`.
pub(super) async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        include_str!("assets/console.css"),
    )
        .into_response()
}

/// `GET /console/assets/console.js`.
pub(super) async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        include_str!("assets/console.js"),
    )
        .into_response()
}

/// Unix milliseconds as `YYYY-MM-DD HH:MM` UTC.
pub(super) fn when(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// Days since 1970-01-01 as a proleptic Gregorian date (Howard Hinnant's
/// `civil_from_days`).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_utc_dates() {
        assert_eq!(when(0), "1970-01-01 00:00");
        assert_eq!(when(1_700_000_000_000), "2023-11-14 22:13");
    }

    #[test]
    fn only_known_notices_are_shown() {
        assert!(notice(Some("activated")).is_some());
        assert_eq!(notice(Some("<script>")), None);
        assert_eq!(notice(None), None);
    }
}
