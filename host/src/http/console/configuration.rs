//! The tenant's effective configuration by section (categories, size
//! charts, each email template), each with where it came from: the base, or
//! the installations whose output is in it, and the chain's runs that made it
//! (a step that failed is shown with its reason: its input passed on).
//! Resolved by [`crate::app::config::effective`], as `GET /v1/config` is.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use super::layout::{self, PageError};
use super::session::TenantViewer;
use crate::app;
use crate::resolve::{Resolved, Source};
use crate::state::AppState;

/// Where a section came from, and the runs behind it.
fn provenance<T>(resolved: &Resolved<T>) -> Markup {
    let from: Vec<&str> = resolved
        .runs
        .iter()
        .filter(|r| r.outcome == crate::runtime::OutcomeKind::Ok)
        .filter_map(|r| r.installation.as_deref())
        .collect();
    html! {
        p.source {
            "From: "
            @match resolved.source {
                Source::Base => span.badge { "base" },
                Source::Plugin => {
                    "base, then "
                    @for (i, name) in from.iter().enumerate() {
                        @if i > 0 { " → " }
                        a.badge.live href={ "/console/installations/" (name) } { (name) }
                    }
                }
            }
        }
        @let failed: Vec<_> = resolved.runs.iter().filter(|r| r.outcome != crate::runtime::OutcomeKind::Ok).collect();
        @if !failed.is_empty() {
            ul {
                @for r in failed {
                    li.error {
                        (r.installation.as_deref().unwrap_or("?")) " fell back: "
                        (r.outcome.as_str()) " " (r.message.as_deref().unwrap_or(""))
                    }
                }
            }
        }
    }
}

fn section<T: serde::Serialize>(title: &str, id: &str, resolved: &Resolved<T>) -> Markup {
    let json = serde_json::to_string_pretty(&resolved.value).unwrap_or_default();
    html! {
        section.card id=(id) {
            h2 { (title) }
            (provenance(resolved))
            details { summary { "Value" } pre { (json) } }
        }
    }
}

/// `GET /console/config`.
pub(super) async fn page(
    State(app): State<AppState>,
    viewer: TenantViewer,
) -> Result<Response, PageError> {
    let state = viewer.tenant.state(&app).await?;
    let config = app::config::effective(&app, &state).await?;
    let body = html! {
        p.muted { "Base version " code { (config.base_version) } " · configuration version " code { (config.version) } }
        (section("Categories", "categories", &config.categories))
        (section("Size charts", "size-charts", &config.size_charts))
        @for (id, template) in &config.emails {
            (section(&format!("Email: {id}"), &format!("email-{id}"), template))
        }
    };
    Ok(layout::page(&viewer.frame(), "Effective configuration", None, body).into_response())
}
