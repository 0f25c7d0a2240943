//! What happened: the run log (filtered by hook and outcome, each run's logs
//! under it), background jobs and dead letters (retried by an admin), and the
//! tenant's audit log (admins). Plain reads of `storage`, as `/v1/runs`,
//! `/v1/jobs` and `/v1/audit` are; the retry is [`crate::app::jobs::retry`].

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::html;
use serde::Deserialize;

use super::layout::{self, PageError, csrf, when};
use super::overview::Notice;
use super::session::{Act, TenantViewer};
use crate::app;
use crate::state::AppState;
use crate::storage::JobState;

/// Runs the run log page reads (newest first) before filtering.
const RUN_WINDOW: u32 = 500;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/runs", get(runs))
        .route("/console/jobs", get(jobs))
        .route("/console/jobs/{id}/retry", post(retry))
        .route("/console/audit", get(audit))
}

/// `?hook=&outcome=`: `outcome=failed` is every outcome but `ok`.
#[derive(Debug, Deserialize)]
struct RunFilter {
    #[serde(default)]
    hook: String,
    #[serde(default)]
    outcome: String,
}

/// `GET /console/runs`.
async fn runs(
    State(app): State<AppState>,
    viewer: TenantViewer,
    Query(filter): Query<RunFilter>,
) -> Result<Response, PageError> {
    let all = app
        .storage
        .tenant(viewer.tenant.id())
        .runs(RUN_WINDOW)
        .await?;
    let mut hooks: Vec<&str> = all.iter().map(|r| r.hook.as_str()).collect();
    hooks.sort_unstable();
    hooks.dedup();
    let mut outcomes: Vec<&str> = all.iter().map(|r| r.outcome.as_str()).collect();
    outcomes.sort_unstable();
    outcomes.dedup();
    let shown: Vec<_> = all
        .iter()
        .filter(|r| filter.hook.is_empty() || r.hook == filter.hook)
        .filter(|r| match filter.outcome.as_str() {
            "" => true,
            "failed" => r.outcome != "ok",
            o => r.outcome == o,
        })
        .collect();
    let body = html! {
        form.card method="get" action="/console/runs" {
            label for="hook" { "Hook" }
            select name="hook" id="hook" {
                option value="" { "any" }
                @for h in &hooks { option value=(h) selected[*h == filter.hook] { (h) } }
            }
            label for="outcome" { "Outcome" }
            select name="outcome" id="outcome" {
                option value="" { "any" }
                option value="failed" selected[filter.outcome == "failed"] { "any but ok" }
                @for o in &outcomes { option value=(o) selected[*o == filter.outcome] { (o) } }
            }
            button type="submit" { "Filter" }
        }
        p.muted { (shown.len()) " of the newest " (all.len()) " runs." }
        table id="runs" {
            tr { th { "When" } th { "Installation" } th { "Release" } th { "Hook" } th { "Outcome" } th { "Fuel" } th { "Memory" } th { "Time" } }
            @for r in &shown {
                tr {
                    td { (when(r.created_at)) }
                    td { (r.installation.as_deref().unwrap_or("-")) }
                    td { @if let Some(id) = r.release_id { "#" (id) } }
                    td { (r.hook) }
                    td { span class={ "badge " @if r.outcome == "ok" { "ok" } @else { "fail" } } { (r.outcome) } }
                    td { (r.fuel_used) } td { (r.peak_memory_bytes / 1024) " KiB" } td { (r.wall_time_us) " µs" }
                }
                @if r.message.is_some() || !r.logs.is_null() && r.logs != serde_json::json!([]) {
                    tr {
                        td colspan="8" {
                            @if let Some(m) = &r.message { p.error { (m) } }
                            details { summary { "Logs" } pre { (serde_json::to_string_pretty(&r.logs).unwrap_or_default()) } }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page(&viewer.frame(), "Runs", None, body).into_response())
}

/// `GET /console/jobs`.
async fn jobs(
    State(app): State<AppState>,
    viewer: TenantViewer,
    Query(q): Query<Notice>,
) -> Result<Response, PageError> {
    let db = app.storage.tenant(viewer.tenant.id());
    let dead = db.jobs(Some(JobState::Dead), 100).await?;
    let recent = db.jobs(None, 100).await?;
    let table = |jobs: &[crate::storage::JobRecord], retry: bool| {
        html! {
            table {
                tr { th { "Id" } th { "Kind" } th { "State" } th { "Attempts" } th { "Due" } th { "Last error" } th { "" } }
                @for j in jobs {
                    tr {
                        td { (j.id) } td { (j.kind) } td { (format!("{:?}", j.state).to_lowercase()) }
                        td { (j.attempts) " / " (j.max_attempts) } td { (when(j.run_at)) }
                        td { (j.last_error.as_deref().unwrap_or("")) }
                        td {
                            @if retry && viewer.is_admin() {
                                form method="post" action={ "/console/jobs/" (j.id) "/retry" } {
                                    (csrf(&viewer.csrf))
                                    button.secondary type="submit" { "Retry" }
                                }
                            }
                        }
                    }
                }
                @if jobs.is_empty() { tr { td.muted colspan="7" { "None." } } }
            }
        }
    };
    let body = html! {
        h2 { "Dead letters" }
        (table(&dead, true))
        h2 { "Recent jobs" }
        (table(&recent, false))
    };
    Ok(layout::page(
        &viewer.frame(),
        "Jobs",
        layout::notice(q.notice.as_deref()),
        body,
    )
    .into_response())
}

#[derive(Debug, Deserialize)]
struct Empty {}

/// `POST /console/jobs/{id}/retry`.
async fn retry(
    State(app): State<AppState>,
    Path(id): Path<i64>,
    act: Act<TenantViewer, Empty>,
) -> Result<Response, PageError> {
    let viewer = &act.viewer;
    viewer.require_admin()?;
    app::jobs::retry(&app, viewer.tenant.id(), &viewer.principal.subject, id).await?;
    Ok(Redirect::to("/console/jobs?notice=retried").into_response())
}

/// `?before=`: the audit page's cursor.
#[derive(Debug, Deserialize)]
struct Page {
    before: Option<i64>,
}

/// An audit table (tenant's or all tenants').
pub(super) fn audit_table(rows: &[crate::storage::AuditRecord], with_tenant: bool) -> maud::Markup {
    html! {
        table id="audit" {
            tr { th { "When" } @if with_tenant { th { "Tenant" } } th { "Actor" } th { "Action" } th { "Change" } }
            @for a in rows {
                tr {
                    td { (when(a.created_at)) }
                    @if with_tenant { td { (a.tenant_id) } }
                    td { (a.actor) } td { code { (a.action) } }
                    td {
                        @if a.before.is_some() || a.after.is_some() {
                            details {
                                summary { "before / after" }
                                @if let Some(b) = &a.before { pre { (b.to_string()) } }
                                @if let Some(x) = &a.after { pre { (x.to_string()) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /console/audit` (admins).
async fn audit(
    State(app): State<AppState>,
    viewer: TenantViewer,
    Query(page): Query<Page>,
) -> Result<Response, PageError> {
    viewer.require_admin()?;
    let rows = app
        .storage
        .tenant(viewer.tenant.id())
        .audit_page(page.before, 100)
        .await?;
    let next = (rows.len() == 100)
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    let body = html! {
        (audit_table(&rows, false))
        @if let Some(next) = next { p { a href={ "/console/audit?before=" (next) } { "Older" } } }
    };
    Ok(layout::page(&viewer.frame(), "Audit log", None, body).into_response())
}
