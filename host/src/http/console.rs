//! The web console at `/console`: server-rendered HTML (maud) for a tenant's
//! members and admins on the tenant's host, and for platform admins on the
//! base domain. Forms post and redirect, so every page works with scripts
//! disabled; the one script (`/console/assets/console.js`) only adds drag and
//! drop to the plugin upload.
//!
//! Like the JSON handlers it is an adapter: pages call the use cases of
//! [`crate::app`] and read `storage` the way the `/v1` handlers do, never the
//! `/v1` handlers themselves. Who may see a page is decided by the API's own
//! gate ([`super::context::admit`]): the session token (Clerk's `__session`
//! cookie, or an `Authorization` header) is verified by the same verifier
//! (issuer, keys, lifetime, organisation-to-host, membership revocations,
//! rate). What it adds for browsers is in [`session`]: the CSRF proof every
//! state-changing form carries, the strict origin check, and the security
//! headers (Content-Security-Policy without inline script or style) set on
//! every console response.
//!
//! One file per page group: [`session`] (sign-in, sign-out, the session and
//! its proofs), [`layout`] (the frame, error pages, assets), [`overview`],
//! [`configuration`], [`installations`], [`activity`] (runs, jobs, audit),
//! [`data`] (key-value data, email previews), [`platform`] (platform admin),
//! and [`charts`] (SVG charts drawn by plotters).

mod activity;
mod charts;
mod configuration;
mod data;
mod installations;
mod layout;
mod overview;
mod platform;
mod session;

use axum::Router;
use axum::routing::{get, post};

use crate::state::AppState;

/// Every console route; the security headers and the origin check wrap them all.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console", get(overview::page))
        .route("/console/", get(overview::page))
        .route(
            "/console/sign-in",
            get(session::sign_in_page).post(session::sign_in),
        )
        .route("/console/sign-out", post(session::sign_out))
        .route("/console/assets/console.css", get(layout::stylesheet))
        .route("/console/assets/console.js", get(layout::script))
        .route("/console/config", get(configuration::page))
        .merge(installations::routes())
        .merge(activity::routes())
        .merge(data::routes())
        .merge(platform::routes())
        .layer(axum::middleware::from_fn(session::same_origin))
        .layer(axum::middleware::from_fn(layout::security_headers))
}
