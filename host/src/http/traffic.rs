//! API traffic: the tenant's effective configuration (whole and per section,
//! serialised once per cached configuration and kept in its
//! [`crate::resolve::Memo`], with ETags), commission quotes and email render
//! previews. Extractors, handlers and response shapes only: the use cases are
//! [`crate::app`]'s.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::extract::{Path, State};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::{
    Json, Router,
    routing::{get, post},
};
use serde::{Deserialize, Serialize};

use crate::app;
use crate::base::{CommissionDecision, Sale};
use crate::http::ServedDocument;
use crate::http::body::Sorted;
use crate::http::context::{JsonBody, Member};
use crate::http::{ApiError, ApiResult};
use crate::resolve::{EffectiveConfig, Resolved, RunRecord, Source};
use crate::runtime::OutcomeKind;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/config", get(config))
        .route("/v1/config/{section}", get(section))
        .route("/v1/commission/quote", post(quote))
        .route("/v1/email/preview", post(preview))
}

/// The documents served for one effective configuration, kept in its memo.
#[derive(Default)]
struct Served {
    whole: OnceLock<ServedDocument>,
    sections: [OnceLock<ServedDocument>; SECTION_COUNT],
}

fn served(config: &EffectiveConfig) -> ApiResult<&Served> {
    config
        .memo
        .get_or_init(Served::default)
        .ok_or_else(|| ApiError::internal("the configuration's memo holds another type"))
}

fn etag(version: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}

/// A step of a section's chain that failed, so its input passed on (keys in
/// order).
#[derive(Serialize)]
struct Fallback {
    installation: Option<String>,
    message: Option<String>,
    outcome: OutcomeKind,
    release: Option<i64>,
    section: String,
}

fn fallbacks(config: &EffectiveConfig) -> Vec<Fallback> {
    let mut out = Vec::new();
    let mut push = |section: String, runs: &[RunRecord]| {
        for run in runs.iter().filter(|run| run.outcome != OutcomeKind::Ok) {
            out.push(Fallback {
                installation: run.installation.clone(),
                message: run.message.clone(),
                outcome: run.outcome,
                release: run.release,
                section: section.clone(),
            });
        }
    };
    push("categories".into(), &config.categories.runs);
    push("size_charts".into(), &config.size_charts.runs);
    for (id, email) in &config.emails {
        push(format!("emails.{id}"), &email.runs);
    }
    out
}

/// One step of a resolution, as bodies show it (keys in order).
#[derive(Serialize)]
struct StepBody<'a> {
    fuel_used: u64,
    installation: Option<&'a str>,
    message: Option<&'a str>,
    outcome: OutcomeKind,
    plugin: &'a str,
    release: Option<i64>,
}

impl<'a> StepBody<'a> {
    fn of(run: &'a RunRecord) -> Self {
        Self {
            fuel_used: run.stats.fuel_used,
            installation: run.installation.as_deref(),
            message: run.message.as_deref(),
            outcome: run.outcome,
            plugin: &run.plugin,
            release: run.release,
        }
    }
}

/// The run a one-line summary speaks of: the first that failed, else the last.
fn summary<T>(resolved: &Resolved<T>) -> Option<&RunRecord> {
    resolved.first_failure().or(resolved.last_run())
}

/// `GET /v1/config` as serialised: borrowed from the cached configuration.
#[derive(Serialize)]
struct Document<'a> {
    tenant: &'a str,
    version: &'a str,
    base_version: &'a str,
    releases: &'a [crate::resolve::ReleaseRef],
    categories: &'a [crate::base::Category],
    size_charts: &'a [crate::base::SizeChart],
    emails: BTreeMap<&'a str, &'a crate::base::EmailTemplate>,
    commission_rules: &'a crate::base::CommissionRules,
    sources: BTreeMap<String, Source>,
    fallbacks: Vec<Fallback>,
}

/// Serialises the whole configuration once (and gzips it once).
fn serve_document(app: &AppState, tenant: &str, config: &EffectiveConfig) -> ServedDocument {
    let base = app.base();
    let sources: BTreeMap<String, _> = [
        ("categories".to_owned(), config.categories.source),
        ("size_charts".to_owned(), config.size_charts.source),
    ]
    .into_iter()
    .chain(
        config
            .emails
            .iter()
            .map(|(id, e)| (format!("emails.{id}"), e.source)),
    )
    .collect();
    let document = Document {
        tenant,
        version: &config.version,
        base_version: &config.base_version,
        releases: &config.releases,
        categories: &config.categories.value,
        size_charts: &config.size_charts.value,
        emails: config
            .emails
            .iter()
            .map(|(id, e)| (id.as_str(), &e.value))
            .collect(),
        commission_rules: &base.commission,
        sources,
        fallbacks: fallbacks(config),
    };
    // Serialising borrowed base types cannot fail.
    let json = serde_json::to_vec(&document).unwrap_or_default();
    ServedDocument::new(json, etag(&config.version))
}

async fn config(
    State(app): State<AppState>,
    member: Member,
    // The request itself rather than a `HeaderMap` (which axum clones).
    request: axum::extract::Request,
) -> ApiResult<Response> {
    let headers = request.headers();
    let tenant = &member.tenant.state(&app).await?;
    let config = app::config::effective(&app, tenant).await?;
    let served = served(&config)?
        .whole
        .get_or_init(|| serve_document(&app, tenant.record.id.as_str(), &config));
    Ok(served.answer(headers))
}

/// The section names `GET /v1/config/{section}` answers to, each with its own
/// served document (the body echoes the name asked for).
pub(crate) const SECTIONS: [&str; 6] = [
    "categories",
    "size-charts",
    "size_charts",
    "emails",
    "commission-rules",
    "commission_rules",
];
/// How many names [`SECTIONS`] holds.
pub(crate) const SECTION_COUNT: usize = SECTIONS.len();

async fn section(
    State(app): State<AppState>,
    member: Member,
    Path(section): Path<String>,
    request: axum::extract::Request,
) -> ApiResult<Response> {
    let Some(slot) = SECTIONS.iter().position(|name| *name == section) else {
        return Err(ApiError::not_found(format!(
            "there is no section `{}`; use categories, size-charts, emails or commission-rules",
            section.chars().take(40).collect::<String>()
        )));
    };
    let headers = request.headers();
    let tenant = &member.tenant.state(&app).await?;
    let config = app::config::effective(&app, tenant).await?;
    let served = served(&config)?.sections[slot]
        .get_or_init(|| serve_section(&app, tenant.record.id.as_str(), &config, SECTIONS[slot]));
    Ok(served.answer(headers))
}

/// One resolved value in a section's body (keys in order).
#[derive(Serialize)]
struct SectionValue<'a, T> {
    message: Option<&'a str>,
    outcome: Option<OutcomeKind>,
    source: Source,
    value: Sorted<&'a T>,
}

impl<'a, T: Serialize> SectionValue<'a, T> {
    fn of(r: &'a Resolved<T>) -> Self {
        Self {
            message: summary(r).and_then(|run| run.message.as_deref()),
            outcome: summary(r).map(|run| run.outcome),
            source: r.source,
            value: Sorted(&r.value),
        }
    }
}

/// `GET /v1/config/{section}` for a resolved section (keys in order).
#[derive(Serialize)]
struct ResolvedSection<'a, T> {
    message: Option<&'a str>,
    outcome: Option<OutcomeKind>,
    section: &'a str,
    source: Source,
    tenant: &'a str,
    value: Sorted<&'a T>,
    version: &'a str,
}

/// `GET /v1/config/emails` (keys in order).
#[derive(Serialize)]
struct EmailsSection<'a> {
    section: &'a str,
    tenant: &'a str,
    value: BTreeMap<&'a str, SectionValue<'a, crate::base::EmailTemplate>>,
    version: &'a str,
}

/// `GET /v1/config/commission-rules`: the base's own (keys in order).
#[derive(Serialize)]
struct RulesSection<'a> {
    section: &'a str,
    source: Source,
    tenant: &'a str,
    value: Sorted<&'a crate::base::CommissionRules>,
    version: &'a str,
}

/// Serialises one section once (and gzips it once, when worth it).
fn serve_section(
    app: &AppState,
    tenant: &str,
    config: &EffectiveConfig,
    section: &str,
) -> ServedDocument {
    let version = config.version.as_str();
    fn resolved<'a, T>(
        one: SectionValue<'a, T>,
        section: &'a str,
        tenant: &'a str,
        version: &'a str,
    ) -> ResolvedSection<'a, T> {
        ResolvedSection {
            message: one.message,
            outcome: one.outcome,
            section,
            source: one.source,
            tenant,
            value: one.value,
            version,
        }
    }
    // Serialising these types cannot fail.
    let base = app.base();
    let json = match section {
        "categories" => serde_json::to_vec(&resolved(
            SectionValue::of(&config.categories),
            section,
            tenant,
            version,
        )),
        "size-charts" | "size_charts" => serde_json::to_vec(&resolved(
            SectionValue::of(&config.size_charts),
            section,
            tenant,
            version,
        )),
        "emails" => serde_json::to_vec(&EmailsSection {
            section,
            tenant,
            value: config
                .emails
                .iter()
                .map(|(id, e)| (id.as_str(), SectionValue::of(e)))
                .collect(),
            version,
        }),
        _ => serde_json::to_vec(&RulesSection {
            section,
            source: Source::Base,
            tenant,
            value: Sorted(&base.commission),
            version,
        }),
    }
    .unwrap_or_default();
    ServedDocument::new(json, etag(version))
}

/// `POST /v1/commission/quote` (keys in order). `fuel_used` is the chain's
/// total; `outcome` the first failed step's, else the last step's; `plugin`
/// the last step's; `steps` each step in chain order.
#[derive(Serialize)]
struct QuoteBody<'a> {
    decision: Sorted<&'a CommissionDecision>,
    fuel_used: Option<u64>,
    message: Option<String>,
    outcome: Option<OutcomeKind>,
    plugin: Option<String>,
    source: Source,
    steps: Vec<StepBody<'a>>,
}

async fn quote(
    State(app): State<AppState>,
    member: Member,
    JsonBody(sale): JsonBody<Sale>,
) -> ApiResult<Response> {
    let tenant = member.tenant.state(&app).await?;
    let quote = app::quote::quote(&app, &tenant, sale).await?;
    let resolved = &quote.resolved;
    let ran = !resolved.runs.is_empty();
    let body = QuoteBody {
        decision: Sorted(&resolved.value),
        fuel_used: ran.then(|| resolved.runs.iter().map(|r| r.stats.fuel_used).sum()),
        message: quote.message.clone(),
        outcome: summary(resolved).map(|r| r.outcome),
        plugin: quote.plugin.clone(),
        source: resolved.source,
        steps: resolved.runs.iter().map(StepBody::of).collect(),
    };
    Ok(Json(body).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PreviewRequest {
    template: String,
    #[serde(default)]
    context: Option<BTreeMap<String, String>>,
}

/// `POST /v1/email/preview` (keys in order).
#[derive(Serialize)]
struct PreviewBody {
    message: Option<String>,
    outcome: Option<OutcomeKind>,
    rendered: Sorted<crate::email::Rendered>,
    source: Source,
    template: String,
}

async fn preview(
    State(app): State<AppState>,
    member: Member,
    JsonBody(request): JsonBody<PreviewRequest>,
) -> ApiResult<Json<PreviewBody>> {
    let tenant = member.tenant.state(&app).await?;
    let (resolved, rendered) = app::email::render_email(
        &app,
        &tenant,
        &request.template,
        request.context.unwrap_or_default(),
    )
    .await?;
    Ok(Json(PreviewBody {
        message: summary(&resolved).and_then(|r| r.message.clone()),
        outcome: summary(&resolved).map(|r| r.outcome),
        rendered: Sorted(rendered),
        source: resolved.source,
        template: request.template,
    }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn decision() -> CommissionDecision {
        CommissionDecision {
            rule_id: "bags".into(),
            rate_bps: 1_500,
            min_fee: 100,
            max_fee: 90_000,
            fee: 4_500,
            note: "luxury".into(),
        }
    }

    /// The typed bodies answer the same bytes the `json!` literals did.
    #[test]
    fn quote_and_preview_bodies_keep_their_json_bytes() {
        let decided = decision();
        let typed = QuoteBody {
            decision: Sorted(&decided),
            fuel_used: Some(9_000),
            message: None,
            outcome: Some(OutcomeKind::Ok),
            plugin: Some("ab".into()),
            source: Source::Plugin,
            steps: Vec::new(),
        };
        let literal = json!({
            "decision": decision(),
            "source": Source::Plugin,
            "plugin": Some("ab"),
            "outcome": Some(OutcomeKind::Ok),
            "message": None::<String>,
            "fuel_used": Some(9_000),
            "steps": [],
        });
        assert_eq!(serde_json::to_string(&typed).unwrap(), literal.to_string());
        let rendered = crate::email::Rendered {
            subject: "Hi".into(),
            html: "<p>Hi</p>".into(),
            text: "Hi".into(),
            from_name: None,
            reply_to: Some("help@example.com".into()),
        };
        let typed = PreviewBody {
            message: Some("refused".into()),
            outcome: Some(OutcomeKind::InvalidOutput),
            rendered: Sorted(rendered.clone()),
            source: Source::Base,
            template: "welcome".into(),
        };
        let literal = json!({
            "template": "welcome",
            "source": Source::Base,
            "outcome": Some(OutcomeKind::InvalidOutput),
            "message": Some("refused"),
            "rendered": rendered,
        });
        assert_eq!(serde_json::to_string(&typed).unwrap(), literal.to_string());
    }
}
