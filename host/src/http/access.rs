//! The access log: one line per request (target `veneer::access`) with the
//! method, host, tenant (for a `<tenant>.<base-domain>` host), path, status,
//! latency and request id; and the `request` span everything the request does
//! runs in (exported with `--otlp-endpoint`: [`crate::telemetry`]). The
//! request id is the client's `X-Request-Id` when it is a plain token (1 to 64
//! of `A-Z a-z 0-9 . _ -`), else a fresh one; it is sent back on every
//! response, so a client's report names the log line. `--access-log false`
//! turns the lines off; `--log-format json` makes every log line one JSON
//! object.
//!
//! It also counts every request in the metrics ([`crate::metrics`]): by the
//! tenant the request was resolved to (the [`TenantHost`](super::TenantHost)
//! extractor fills in the [`ResolvedTenant`] slot this middleware hands down,
//! so an unknown host or a custom domain is counted right, and a host naming
//! no tenant never makes a label), the matched route's group and the status
//! class.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

use crate::state::AppState;
use crate::tenancy::{HostTarget, TenantId, classify};

/// Where the tenant extractor leaves the id of the existing tenant a request
/// is for, for the metrics counted once the response is known.
#[derive(Debug, Clone, Default)]
pub struct ResolvedTenant(Arc<OnceLock<TenantId>>);

impl ResolvedTenant {
    /// Records the request's tenant (the first one set stays).
    pub fn set(&self, tenant: &TenantId) {
        if self.0.set(tenant.clone()).is_ok() {
            tracing::Span::current().record("tenant", tenant.as_str());
        }
    }
}

/// The request id header, read and written.
pub const REQUEST_ID: &str = "x-request-id";

fn usable(id: &HeaderValue) -> Option<&str> {
    let id = id.to_str().ok()?;
    (!id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')))
    .then_some(id)
}

/// Middleware: times the request, logs it, and answers with its request id.
pub async fn access_log(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(usable)
        .map_or_else(|| format!("{:016x}", rand::random::<u64>()), str::to_owned);
    let method = request.method().clone();
    let path: String = request.uri().path().chars().take(200).collect();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let resolved = ResolvedTenant::default();
    let (mut parts, body) = request.into_parts();
    let host = super::request_host(&parts).unwrap_or_default();
    parts.extensions.insert(resolved.clone());
    // Everything the request does (plugin calls, host functions, log lines)
    // happens inside this span; the tenant is recorded once it is known, the
    // status once answered. The `otel.*` fields are only set when spans are
    // exported (`crate::telemetry`), so log lines do not carry them.
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %method,
        route = route.as_deref().unwrap_or("-"),
        tenant = tracing::field::Empty,
        status = tracing::field::Empty,
        otel.kind = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    let exported = app.config.otlp.enabled();
    if exported {
        span.record("otel.kind", "server");
        crate::telemetry::continue_trace(&span, &parts.headers);
    }
    let request = Request::from_parts(parts, body);
    let mut response = tracing::Instrument::instrument(next.run(request), span.clone()).await;
    span.record("status", response.status().as_u16());
    if exported && response.status().is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    app.metrics.request(
        resolved.0.get(),
        route.as_deref(),
        response.status().as_u16(),
        started.elapsed(),
    );
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    if app.config.access_log {
        let tenant = match classify(&host, &app.config.base_domain) {
            HostTarget::Subdomain(tenant) => Some(tenant.to_string()),
            _ => None,
        };
        let host: String = host.chars().take(100).collect();
        tracing::info!(
            target: "veneer::access",
            method = %method,
            host = %host,
            tenant = tenant.as_deref().unwrap_or("-"),
            path = %path,
            status = response.status().as_u16(),
            latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            request_id = %id,
            "request"
        );
    }
    response
}
