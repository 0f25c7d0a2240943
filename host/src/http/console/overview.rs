//! The tenant's overview (`/console` on its host): what is live (each
//! installation's live release), the recent fallbacks (runs that did not end
//! well, with their reasons), usage today, and charts of calls, fuel and
//! outcomes over the last days. On the base domain `/console` leads to the
//! platform admin's pages.

use std::collections::BTreeMap;

use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{PreEscaped, html};
use serde::Deserialize;

use super::charts;
use super::layout::{self, PageError, when};
use super::session::TenantViewer;
use crate::http::request_host;
use crate::state::AppState;
use crate::storage::{RunRecord, UsageRecord};
use crate::tenancy::{HostTarget, classify};

/// `?notice=`.
#[derive(Debug, Deserialize)]
pub(super) struct Notice {
    pub notice: Option<String>,
}

/// `GET /console`.
pub(super) async fn page(
    State(app): State<AppState>,
    mut parts: Parts,
    Query(q): Query<Notice>,
) -> Result<Response, PageError> {
    let host = request_host(&parts)?;
    if classify(&host, &app.config.base_domain) == HostTarget::Platform {
        return Ok(Redirect::to("/console/admin").into_response());
    }
    let viewer = TenantViewer::from_request_parts(&mut parts, &app).await?;
    let db = app.storage.tenant(viewer.tenant.id());
    let installations = db.installations().await?;
    let live = db.live_releases().await?;
    let runs = db.runs(500).await?;
    let usage = db.usage(30).await?;
    let fallbacks: Vec<&RunRecord> = runs.iter().filter(|r| r.outcome != "ok").take(10).collect();
    let today = usage.iter().max_by(|a, b| a.day.cmp(&b.day));
    let body = html! {
        div.grid {
            div.stat { "Requests today" b { (today.map_or(0, |u| u.requests)) } }
            div.stat { "Plugin runs today" b { (today.map_or(0, |u| u.plugin_runs)) } }
            div.stat { "Fuel today" b { (today.map_or(0, |u| u.fuel_used)) } }
            div.stat { "Live installations" b { (live.len()) " of " (installations.len()) } }
        }
        h2 { "What is live" }
        @if installations.is_empty() {
            p.muted { "No installations: the base configuration is served. " a href="/console/installations" { "Create one" } "." }
        } @else {
            table {
                tr { th { "Position" } th { "Installation" } th { "Live release" } th { "Plugin" } th { "Since" } }
                @for inst in &installations {
                    @let release = live.iter().find(|l| l.release.installation == inst.name);
                    tr {
                        td { (inst.position) }
                        td { a href={ "/console/installations/" (inst.name) } { (inst.name) } }
                        @match release {
                            Some(l) => {
                                td { span.badge.live { "#" (l.release.id) } }
                                td { code { (l.release.sha256.get(..12).unwrap_or(&l.release.sha256)) } }
                                td { (when(inst.updated_at)) }
                            }
                            None => { td.muted colspan="3" { "nothing live (base passes through)" } }
                        }
                    }
                }
            }
        }
        h2 { "Recent fallbacks" }
        @if fallbacks.is_empty() {
            p.muted { "None among the last " (runs.len()) " runs." }
        } @else {
            table {
                tr { th { "When" } th { "Installation" } th { "Hook" } th { "Outcome" } th { "Reason" } }
                @for run in &fallbacks {
                    tr {
                        td { (when(run.created_at)) }
                        td { (run.installation.as_deref().unwrap_or("-")) }
                        td { (run.hook) }
                        td { span.badge.fail { (run.outcome) } }
                        td { (run.message.as_deref().unwrap_or("")) }
                    }
                }
            }
            p { a href="/console/runs?outcome=failed" { "All failed runs" } }
        }
        h2 { "Over the last 30 days" }
        (usage_charts(&usage))
        (outcome_chart(&runs))
    };
    Ok(layout::page(
        &viewer.frame(),
        "Overview",
        layout::notice(q.notice.as_deref()),
        body,
    )
    .into_response())
}

/// Calls and fuel per day, oldest first.
pub(super) fn usage_charts(usage: &[UsageRecord]) -> maud::Markup {
    let mut days: Vec<&UsageRecord> = usage.iter().collect();
    days.sort_by(|a, b| a.day.cmp(&b.day));
    let labels: Vec<String> = days.iter().map(|u| u.day.clone()).collect();
    let calls: Vec<f64> = days.iter().map(|u| u.plugin_runs as f64).collect();
    let fuel: Vec<f64> = days.iter().map(|u| u.fuel_used as f64).collect();
    html! {
        div.grid.chart {
            @match charts::line("Plugin calls per day", &labels, &calls) {
                Some(svg) => div { (PreEscaped(svg)) },
                None => p.muted { "No usage recorded yet." },
            }
            @if let Some(svg) = charts::line("Fuel per day", &labels, &fuel) { div { (PreEscaped(svg)) } }
        }
    }
}

/// Runs' outcomes per day (of the runs given).
fn outcome_chart(runs: &[RunRecord]) -> maud::Markup {
    let mut per_day: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for run in runs {
        let day = when(run.created_at)[..10].to_owned();
        *per_day
            .entry(day)
            .or_default()
            .entry(run.outcome.clone())
            .or_default() += 1;
    }
    let days: Vec<String> = per_day.keys().cloned().collect();
    let mut outcomes: Vec<String> = per_day
        .values()
        .flat_map(|m| m.keys().cloned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    // `ok` first, so it takes the first (green) colour.
    outcomes.sort_by_key(|o| (o != "ok", o.clone()));
    let series: Vec<(String, Vec<u64>)> = outcomes
        .iter()
        .map(|o| {
            let counts = days
                .iter()
                .map(|d| per_day[d].get(o).copied().unwrap_or(0))
                .collect();
            (o.clone(), counts)
        })
        .collect();
    html! {
        @if let Some(svg) = charts::stacked("Run outcomes per day (recent runs)", &days, &series) {
            div.chart { (PreEscaped(svg)) }
        }
    }
}
