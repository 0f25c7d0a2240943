//! The platform admin's pages, on the base domain: tenants (create, suspend,
//! resume), one tenant's quotas (its default and each installation's), rate
//! limits and custom domains with their verification state, usage across
//! tenants, and the audit log across tenants. The use cases are
//! [`crate::app::admin`], [`crate::app::installations`] and
//! [`crate::app::domains`]', as for `/v1/admin`.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, PreEscaped, html};
use serde::Deserialize;
use serde_json::Value;

use super::activity::audit_table;
use super::charts;
use super::layout::{self, PageError, csrf, when};
use super::overview::Notice;
use super::session::{Act, PlatformViewer};
use crate::app;
use crate::http::{ApiError, Code};
use crate::runtime::Quota;
use crate::state::AppState;
use crate::storage::{TenantPatch, TenantStatus};
use crate::tenancy::TenantId;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/admin", get(tenants))
        .route("/console/admin/tenants", post(create))
        .route("/console/admin/tenants/{id}", get(tenant))
        .route("/console/admin/tenants/{id}/status", post(status))
        .route("/console/admin/tenants/{id}/limits", post(limits))
        .route("/console/admin/tenants/{id}/quota", post(quota))
        .route(
            "/console/admin/tenants/{id}/installations/{name}/quota",
            post(installation_quota),
        )
        .route("/console/admin/usage", get(usage))
        .route("/console/admin/audit", get(audit))
}

fn tenant_id(id: &str) -> Result<TenantId, PageError> {
    TenantId::new(id)
        .map_err(|err| PageError::Api(ApiError::new(Code::InvalidTenantId, err.to_string())))
}

/// `GET /console/admin`.
async fn tenants(
    State(app): State<AppState>,
    viewer: PlatformViewer,
    Query(q): Query<Notice>,
) -> Result<Response, PageError> {
    Ok(
        tenants_page(&app, &viewer, layout::notice(q.notice.as_deref()), None)
            .await?
            .into_response(),
    )
}

async fn tenants_page(
    app: &AppState,
    viewer: &PlatformViewer,
    notice: Option<&str>,
    error: Option<(&CreateForm, String)>,
) -> Result<Markup, PageError> {
    let tenants = app.storage.platform().list_tenants().await?;
    let body = html! {
        table id="tenants" {
            tr { th { "Tenant" } th { "Name" } th { "Organisation" } th { "Status" } th { "Rate / burst / concurrency" } th { "" } }
            @for t in &tenants {
                tr {
                    td { a href={ "/console/admin/tenants/" (t.id) } { (t.id) } }
                    td { (t.name) } td { code { (t.org_id) } }
                    td {
                        @if t.is_deleted() { span.badge.fail { "deleted" } }
                        @else { span class={ "badge " @if t.status == TenantStatus::Active { "ok" } @else { "fail" } } { (t.status) } }
                    }
                    td { (t.rate_limit_per_sec) " / " (t.rate_limit_burst) " / " (t.max_concurrency) }
                    td {
                        @if !t.is_deleted() {
                            form method="post" action={ "/console/admin/tenants/" (t.id) "/status" } {
                                (csrf(&viewer.csrf))
                                @if t.status == TenantStatus::Active {
                                    input type="hidden" name="status" value="suspended";
                                    button.danger type="submit" { "Suspend" }
                                } @else {
                                    input type="hidden" name="status" value="active";
                                    button.secondary type="submit" { "Resume" }
                                }
                            }
                        }
                    }
                }
            }
        }
        form.card method="post" action="/console/admin/tenants" {
            (csrf(&viewer.csrf))
            h2 { "Create a tenant" }
            label for="id" { "Id (its subdomain)" }
            input type="text" name="id" id="id" value=(error.as_ref().map_or("", |(f, _)| f.id.as_str()));
            label for="tenant-name" { "Name" }
            input type="text" name="name" id="tenant-name" value=(error.as_ref().map_or("", |(f, _)| f.name.as_str()));
            label for="org_id" { "Clerk organisation id (optional)" }
            input type="text" name="org_id" id="org_id" value=(error.as_ref().map_or("", |(f, _)| f.org_id.as_str()));
            @if let Some((_, message)) = &error { p.field-error { (message) } }
            button type="submit" { "Create" }
        }
    };
    Ok(layout::page(&viewer.frame(), "Tenants", notice, body))
}

#[derive(Debug, Deserialize)]
struct CreateForm {
    id: String,
    name: String,
    #[serde(default)]
    org_id: String,
}

async fn create(
    State(app): State<AppState>,
    act: Act<PlatformViewer, CreateForm>,
) -> Result<Response, PageError> {
    let form = &act.form;
    let made = async {
        let id = TenantId::new(form.id.trim()).map_err(|e| e.to_string())?;
        let org = Some(form.org_id.trim().to_owned()).filter(|o| !o.is_empty());
        let new = app::admin::new_tenant(app::admin::TenantSpec {
            id,
            name: form.name.trim().to_owned(),
            org_id: org,
            rate_limit_per_sec: None,
            rate_limit_burst: None,
            max_concurrency: None,
        })
        .map_err(|e| ApiError::from(e).message().to_owned())?;
        app::admin::create_tenant(&app, &act.viewer.principal.subject, new)
            .await
            .map_err(|e| ApiError::from(e).message().to_owned())
    }
    .await;
    match made {
        Ok(record) => Ok(Redirect::to(&format!(
            "/console/admin/tenants/{}?notice=tenant-created",
            record.id
        ))
        .into_response()),
        Err(message) => Ok(layout::with_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            tenants_page(&app, &act.viewer, None, Some((form, message))).await?,
        )),
    }
}

#[derive(Debug, Deserialize)]
struct StatusForm {
    status: String,
}

async fn status(
    State(app): State<AppState>,
    Path(id): Path<String>,
    act: Act<PlatformViewer, StatusForm>,
) -> Result<Response, PageError> {
    let id = tenant_id(&id)?;
    let (status, notice) = match act.form.status.as_str() {
        "suspended" => (TenantStatus::Suspended, "suspended"),
        "active" => (TenantStatus::Active, "resumed"),
        _ => {
            return Err(PageError::Api(ApiError::new(
                Code::InvalidJson,
                "status is `active` or `suspended`",
            )));
        }
    };
    app::admin::update_tenant(
        &app,
        &act.viewer.principal.subject,
        &id,
        &TenantPatch {
            status: Some(status),
            ..TenantPatch::default()
        },
    )
    .await?;
    Ok(Redirect::to(&format!("/console/admin?notice={notice}")).into_response())
}

/// The quota fields in their order on the form.
const QUOTA_FIELDS: [(&str, &str); 8] = [
    ("fuel", "Fuel (instructions)"),
    ("memory_bytes", "Memory (bytes)"),
    ("deadline_ms", "Deadline (ms)"),
    ("output_bytes", "Output (bytes)"),
    ("host_call_bytes", "Bytes across host calls"),
    ("log_bytes", "Log bytes"),
    ("table_elements", "Table elements"),
    ("instances", "Core instances"),
];

fn quota_form(action: &str, token: &str, id: &str, values: &Value, error: Option<&str>) -> Markup {
    html! {
        form.card method="post" action=(action) id=(id) {
            (csrf(token))
            div.grid {
                @for (field, label) in QUOTA_FIELDS {
                    div {
                        label for={ (id) "-" (field) } { (label) }
                        input type="text" inputmode="numeric" name=(field) id={ (id) "-" (field) }
                            value=(values.get(field).map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)).unwrap_or_default());
                    }
                }
            }
            @if let Some(error) = error { p.field-error id={ (id) "-error" } { (error) } }
            button type="submit" { "Save quota" }
        }
    }
}

/// Reads a posted quota: every field a whole number, within the engine's ranges.
fn read_quota(form: &BTreeMap<String, String>) -> Result<Quota, String> {
    let mut object = serde_json::Map::new();
    for (field, label) in QUOTA_FIELDS {
        let text = form.get(field).map(|s| s.trim()).unwrap_or("");
        let value: u64 = text
            .replace('_', "")
            .parse()
            .map_err(|_| format!("{label}: `{text}` is not a whole number."))?;
        object.insert(field.to_owned(), Value::from(value));
    }
    let quota: Quota = serde_json::from_value(Value::Object(object)).map_err(|e| e.to_string())?;
    quota
        .validate()
        .map_err(|e| format!("{}: {}", e.field, e.message))?;
    Ok(quota)
}

/// What the tenant page shows again after a refused form.
#[derive(Debug, Default)]
struct Refused {
    /// Which form (`tenant`, `limits` or an installation's name) and its values.
    form: String,
    values: Value,
    error: String,
}

/// `GET /console/admin/tenants/{id}`.
async fn tenant(
    State(app): State<AppState>,
    viewer: PlatformViewer,
    Path(id): Path<String>,
    Query(q): Query<Notice>,
) -> Result<Response, PageError> {
    let id = tenant_id(&id)?;
    Ok(tenant_page(
        &app,
        &viewer,
        &id,
        layout::notice(q.notice.as_deref()),
        None,
    )
    .await?
    .into_response())
}

async fn tenant_page(
    app: &AppState,
    viewer: &PlatformViewer,
    id: &TenantId,
    notice: Option<&str>,
    refused: Option<Refused>,
) -> Result<Markup, PageError> {
    let platform = app.storage.platform();
    let record = platform
        .tenant(id)
        .await?
        .ok_or_else(|| PageError::Api(ApiError::not_found(format!("no tenant `{id}`"))))?;
    let quota: Quota = match platform.quota(id).await? {
        Some(json) => {
            serde_json::from_str(&json).map_err(|e| PageError::Api(ApiError::internal(e)))?
        }
        None => Quota::default(),
    };
    let installations = app.storage.tenant(id).installations().await?;
    let mut ceilings = Vec::new();
    for inst in &installations {
        ceilings.push((
            inst.name.clone(),
            app::installations::ceiling(app, id, &inst.name).await?,
        ));
    }
    let domains = app::domains::list(app, id).await?;
    let refused_for = |form: &str| refused.as_ref().filter(|r| r.form == form);
    let values_of = |form: &str, quota: &Quota| {
        refused_for(form)
            .map(|r| r.values.clone())
            .unwrap_or_else(|| serde_json::to_value(quota).unwrap_or(Value::Null))
    };
    let limits = refused_for("limits")
        .map(|r| r.values.clone())
        .unwrap_or_else(|| {
            serde_json::json!({
                "rate_limit_per_sec": record.rate_limit_per_sec,
                "rate_limit_burst": record.rate_limit_burst,
                "max_concurrency": record.max_concurrency,
            })
        });
    let shown = |v: &Value, key: &str| {
        v.get(key)
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .unwrap_or_default()
    };
    let base = format!("/console/admin/tenants/{id}");
    let body = html! {
        p { (record.name) " · organisation " code { (record.org_id) } " · " (record.status) " · created " (when(record.created_at)) }
        h2 { "Rate limits" }
        form.card method="post" action={ (base) "/limits" } id="limits" {
            (csrf(&viewer.csrf))
            div.grid {
                div { label for="rate" { "Requests per second" } input type="text" name="rate_limit_per_sec" id="rate" value=(shown(&limits, "rate_limit_per_sec")); }
                div { label for="burst" { "Burst" } input type="text" name="rate_limit_burst" id="burst" value=(shown(&limits, "rate_limit_burst")); }
                div { label for="conc" { "Concurrent requests" } input type="text" name="max_concurrency" id="conc" value=(shown(&limits, "max_concurrency")); }
            }
            @if let Some(r) = refused_for("limits") { p.field-error id="limits-error" { (r.error) } }
            button type="submit" { "Save limits" }
        }
        h2 { "Default quota of the tenant's plugins" }
        (quota_form(&format!("{base}/quota"), &viewer.csrf, "tenant-quota", &values_of("tenant", &quota), refused_for("tenant").map(|r| r.error.as_str())))
        @for (name, ceiling) in &ceilings {
            h2 { "Quota of installation " (name) }
            (quota_form(&format!("{base}/installations/{name}/quota"), &viewer.csrf, &format!("quota-{name}"), &values_of(name, ceiling), refused_for(name).map(|r| r.error.as_str())))
        }
        h2 { "Domains" }
        table id="domains" {
            tr { th { "Domain" } th { "Status" } th { "Last check" } }
            @for d in &domains {
                @let v = serde_json::to_value(d).unwrap_or(Value::Null);
                tr {
                    td { (shown(&v, "domain")) }
                    td { span.badge { (shown(&v, "status")) } }
                    td { (shown(&v, "last_result")) }
                }
            }
            @if domains.is_empty() { tr { td.muted colspan="3" { "No custom domains: served at " (id) "." (app.config.base_domain) " only." } } }
        }
    };
    Ok(layout::page(
        &viewer.frame(),
        &format!("Tenant {id}"),
        notice,
        body,
    ))
}

async fn limits(
    State(app): State<AppState>,
    Path(id): Path<String>,
    act: Act<PlatformViewer, BTreeMap<String, String>>,
) -> Result<Response, PageError> {
    let id = tenant_id(&id)?;
    let number = |key: &str, label: &str| -> Result<u32, String> {
        let text = act.form.get(key).map(|s| s.trim()).unwrap_or("");
        text.parse()
            .map_err(|_| format!("{label}: `{text}` is not a whole number."))
    };
    let done = async {
        let (rate, burst, concurrency) = (
            number("rate_limit_per_sec", "Requests per second")?,
            number("rate_limit_burst", "Burst")?,
            number("max_concurrency", "Concurrent requests")?,
        );
        app::admin::check_limits(Some(rate), Some(burst), Some(concurrency))
            .map_err(|e| ApiError::from(e).message().to_owned())?;
        app::admin::update_tenant(
            &app,
            &act.viewer.principal.subject,
            &id,
            &TenantPatch {
                rate_limit_per_sec: Some(rate),
                rate_limit_burst: Some(burst),
                max_concurrency: Some(concurrency),
                ..TenantPatch::default()
            },
        )
        .await
        .map_err(|e| ApiError::from(e).message().to_owned())
    }
    .await;
    match done {
        Ok(_) => {
            Ok(Redirect::to(&format!("/console/admin/tenants/{id}?notice=limits")).into_response())
        }
        Err(error) => {
            let refused = Refused {
                form: "limits".into(),
                values: serde_json::to_value(&act.form).unwrap_or(Value::Null),
                error,
            };
            Ok(layout::with_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                tenant_page(&app, &act.viewer, &id, None, Some(refused)).await?,
            ))
        }
    }
}

async fn quota(
    State(app): State<AppState>,
    Path(id): Path<String>,
    act: Act<PlatformViewer, BTreeMap<String, String>>,
) -> Result<Response, PageError> {
    let id = tenant_id(&id)?;
    let done = match read_quota(&act.form) {
        Ok(quota) => app::admin::set_quota(&app, &act.viewer.principal.subject, &id, &quota)
            .await
            .map_err(|e| ApiError::from(e).message().to_owned()),
        Err(error) => Err(error),
    };
    quota_answer(&app, &act, &id, "tenant", done).await
}

async fn installation_quota(
    State(app): State<AppState>,
    Path((id, name)): Path<(String, String)>,
    act: Act<PlatformViewer, BTreeMap<String, String>>,
) -> Result<Response, PageError> {
    let id = tenant_id(&id)?;
    crate::storage::check_installation_name(&name)
        .map_err(|e| PageError::Api(ApiError::new(Code::InvalidInstallation, e.to_string())))?;
    let done = match read_quota(&act.form) {
        Ok(quota) => app::installations::set_installation_quota(
            &app,
            &act.viewer.principal.subject,
            &id,
            &name,
            &quota,
        )
        .await
        .map(|_| ())
        .map_err(|e| ApiError::from(e).message().to_owned()),
        Err(error) => Err(error),
    };
    quota_answer(&app, &act, &id, &name, done).await
}

async fn quota_answer(
    app: &AppState,
    act: &Act<PlatformViewer, BTreeMap<String, String>>,
    id: &TenantId,
    form: &str,
    done: Result<(), String>,
) -> Result<Response, PageError> {
    match done {
        Ok(()) => {
            Ok(Redirect::to(&format!("/console/admin/tenants/{id}?notice=quota")).into_response())
        }
        Err(error) => {
            let refused = Refused {
                form: form.to_owned(),
                values: serde_json::to_value(&act.form).unwrap_or(Value::Null),
                error,
            };
            Ok(layout::with_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                tenant_page(app, &act.viewer, id, None, Some(refused)).await?,
            ))
        }
    }
}

/// `GET /console/admin/usage`: the last 30 days of every tenant.
async fn usage(State(app): State<AppState>, viewer: PlatformViewer) -> Result<Response, PageError> {
    let tenants = app.storage.platform().list_tenants().await?;
    let mut rows = Vec::new();
    let mut per_day: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for t in tenants.iter().filter(|t| !t.is_deleted()) {
        let usage = app.storage.tenant(&t.id).usage(30).await?;
        let (mut requests, mut runs, mut fuel) = (0i64, 0i64, 0i64);
        for u in &usage {
            requests += u.requests;
            runs += u.plugin_runs;
            fuel += u.fuel_used;
            let day = per_day.entry(u.day.clone()).or_default();
            day.0 += u.plugin_runs as f64;
            day.1 += u.fuel_used as f64;
        }
        rows.push((t.id.to_string(), requests, runs, fuel));
    }
    let days: Vec<String> = per_day.keys().cloned().collect();
    let calls: Vec<f64> = per_day.values().map(|v| v.0).collect();
    let fuel: Vec<f64> = per_day.values().map(|v| v.1).collect();
    let body = html! {
        div.grid.chart {
            @match charts::line("Plugin calls per day, all tenants", &days, &calls) {
                Some(svg) => div { (PreEscaped(svg)) },
                None => p.muted { "No usage recorded yet." },
            }
            @if let Some(svg) = charts::line("Fuel per day, all tenants", &days, &fuel) { div { (PreEscaped(svg)) } }
        }
        table id="usage" {
            tr { th { "Tenant" } th { "Requests" } th { "Plugin runs" } th { "Fuel" } }
            @for (id, requests, runs, fuel) in &rows {
                tr { td { a href={ "/console/admin/tenants/" (id) } { (id) } } td { (requests) } td { (runs) } td { (fuel) } }
            }
        }
    };
    Ok(layout::page(&viewer.frame(), "Usage, last 30 days", None, body).into_response())
}

/// `?before=`.
#[derive(Debug, Deserialize)]
struct Page {
    before: Option<i64>,
}

/// `GET /console/admin/audit`: every tenant's entries, newest first.
async fn audit(
    State(app): State<AppState>,
    viewer: PlatformViewer,
    Query(page): Query<Page>,
) -> Result<Response, PageError> {
    let rows = app
        .storage
        .platform()
        .audit_page(None, page.before, 100)
        .await?;
    let next = (rows.len() == 100)
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    let body = html! {
        (audit_table(&rows, true))
        @if let Some(next) = next { p { a href={ "/console/admin/audit?before=" (next) } { "Older" } } }
    };
    Ok(layout::page(&viewer.frame(), "Audit, all tenants", None, body).into_response())
}
