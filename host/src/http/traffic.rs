//! API traffic: the tenant's effective configuration (whole and per section,
//! serialised once per cached configuration and kept in its
//! [`crate::resolve::Memo`], with ETags), commission quotes and email render
//! previews. Extractors, handlers and response shapes only: the use cases are
//! [`crate::app`]'s.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app;
use crate::base::{Category, CommissionDecision, CommissionRules, EmailTemplate, Sale, SizeChart};
use crate::http::ServedDocument;
use crate::http::body::Sorted;
use crate::http::context::{JsonBody, Member};
use crate::http::openapi::{JSON, MEMBER, TENANT_HOST, TOKEN, errors};
use crate::http::{ApiError, ApiResult, Code};
use crate::resolve::{EffectiveConfig, Resolved, RunRecord, Source};
use crate::runtime::OutcomeKind;
use crate::state::AppState;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(config))
        .routes(routes!(section))
        .routes(routes!(quote))
        .routes(routes!(preview))
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
#[derive(Serialize, ToSchema)]
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
#[derive(Serialize, ToSchema)]
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
/// `sources` and `fallbacks` name sections as `categories`, `size_charts` and
/// `emails.<template>`.
#[derive(Serialize, ToSchema)]
struct Document<'a> {
    tenant: &'a str,
    /// The configuration's content version (its ETag).
    version: &'a str,
    base_version: &'a str,
    /// The live releases of the tenant's chain, in order.
    #[schema(value_type = Vec<crate::resolve::ReleaseRef>)]
    releases: &'a [crate::resolve::ReleaseRef],
    #[schema(value_type = Vec<Category>)]
    categories: &'a [Category],
    #[schema(value_type = Vec<SizeChart>)]
    size_charts: &'a [SizeChart],
    #[schema(value_type = BTreeMap<String, EmailTemplate>)]
    emails: BTreeMap<&'a str, &'a EmailTemplate>,
    #[schema(value_type = CommissionRules)]
    commission_rules: &'a CommissionRules,
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

/// The tenant's whole effective configuration: the base changed by its
/// installations' plugins, section by section, with where each came from.
/// ETag'd (`If-None-Match` answers 304) and gzip'd for clients that accept it.
#[utoipa::path(get, path = "/v1/config", tag = "configuration", security(("bearer" = [])),
    responses(
        (status = 200, body = Document),
        (status = 304, description = "Not modified: the `If-None-Match` ETag is current"),
    ),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, &[Code::TenantBusy]])))))]
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

/// One section of the effective configuration: `categories`,
/// `size-charts` (or `size_charts`), `emails`, `commission-rules` (or
/// `commission_rules`); the body echoes the name asked for. ETag'd like
/// `GET /v1/config`.
#[utoipa::path(get, path = "/v1/config/{section}", tag = "configuration", security(("bearer" = [])),
    params(("section" = String, Path, description = "The section's name")),
    responses(
        (status = 200, body = SectionBody),
        (status = 304, description = "Not modified: the `If-None-Match` ETag is current"),
    ),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, &[Code::NotFound, Code::TenantBusy]])))))]
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

/// What a section's chain ended in: where the value came from and, when a
/// plugin ran, the outcome and message of its first failed step (else its
/// last).
struct Summary<'a> {
    message: Option<&'a str>,
    outcome: Option<OutcomeKind>,
    source: Source,
}

impl<'a> Summary<'a> {
    fn of<T>(r: &'a Resolved<T>) -> Self {
        Self {
            message: summary(r).and_then(|run| run.message.as_deref()),
            outcome: summary(r).map(|run| run.outcome),
            source: r.source,
        }
    }
}

/// `GET /v1/config/{section}`: one of these, by the section asked for.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
enum SectionBody<'a> {
    Categories(CategoriesSection<'a>),
    SizeCharts(SizeChartsSection<'a>),
    Emails(EmailsSection<'a>),
    Rules(RulesSection<'a>),
}

/// `GET /v1/config/categories` (keys in order).
#[derive(Serialize, ToSchema)]
struct CategoriesSection<'a> {
    message: Option<&'a str>,
    outcome: Option<OutcomeKind>,
    section: &'a str,
    source: Source,
    tenant: &'a str,
    #[schema(value_type = Vec<Category>)]
    value: Sorted<&'a Vec<Category>>,
    version: &'a str,
}

/// `GET /v1/config/size-charts` (keys in order).
#[derive(Serialize, ToSchema)]
struct SizeChartsSection<'a> {
    message: Option<&'a str>,
    outcome: Option<OutcomeKind>,
    section: &'a str,
    source: Source,
    tenant: &'a str,
    #[schema(value_type = Vec<SizeChart>)]
    value: Sorted<&'a Vec<SizeChart>>,
    version: &'a str,
}

/// One email template of `GET /v1/config/emails` (keys in order).
#[derive(Serialize, ToSchema)]
struct ResolvedEmail<'a> {
    message: Option<&'a str>,
    outcome: Option<OutcomeKind>,
    source: Source,
    #[schema(value_type = EmailTemplate)]
    value: Sorted<&'a EmailTemplate>,
}

/// `GET /v1/config/emails` (keys in order).
#[derive(Serialize, ToSchema)]
struct EmailsSection<'a> {
    section: &'a str,
    tenant: &'a str,
    #[schema(value_type = BTreeMap<String, ResolvedEmail>)]
    value: BTreeMap<&'a str, ResolvedEmail<'a>>,
    version: &'a str,
}

/// `GET /v1/config/commission-rules`: the base's own (keys in order).
#[derive(Serialize, ToSchema)]
struct RulesSection<'a> {
    section: &'a str,
    source: Source,
    tenant: &'a str,
    #[schema(value_type = CommissionRules)]
    value: Sorted<&'a CommissionRules>,
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
    let base = app.base();
    let body = match section {
        "categories" => {
            let Summary {
                message,
                outcome,
                source,
            } = Summary::of(&config.categories);
            SectionBody::Categories(CategoriesSection {
                message,
                outcome,
                section,
                source,
                tenant,
                value: Sorted(&config.categories.value),
                version,
            })
        }
        "size-charts" | "size_charts" => {
            let Summary {
                message,
                outcome,
                source,
            } = Summary::of(&config.size_charts);
            SectionBody::SizeCharts(SizeChartsSection {
                message,
                outcome,
                section,
                source,
                tenant,
                value: Sorted(&config.size_charts.value),
                version,
            })
        }
        "emails" => SectionBody::Emails(EmailsSection {
            section,
            tenant,
            value: config
                .emails
                .iter()
                .map(|(id, e)| {
                    let Summary {
                        message,
                        outcome,
                        source,
                    } = Summary::of(e);
                    let email = ResolvedEmail {
                        message,
                        outcome,
                        source,
                        value: Sorted(&e.value),
                    };
                    (id.as_str(), email)
                })
                .collect(),
            version,
        }),
        _ => SectionBody::Rules(RulesSection {
            section,
            source: Source::Base,
            tenant,
            value: Sorted(&base.commission),
            version,
        }),
    };
    // Serialising these types cannot fail.
    let json = serde_json::to_vec(&body).unwrap_or_default();
    ServedDocument::new(json, etag(version))
}

/// `POST /v1/commission/quote` (keys in order). `fuel_used` is the chain's
/// total; `outcome` the first failed step's, else the last step's; `plugin`
/// the last step's; `steps` each step in chain order.
#[derive(Serialize, ToSchema)]
struct QuoteBody<'a> {
    #[schema(value_type = CommissionDecision)]
    decision: Sorted<&'a CommissionDecision>,
    fuel_used: Option<u64>,
    message: Option<String>,
    outcome: Option<OutcomeKind>,
    plugin: Option<String>,
    source: Source,
    steps: Vec<StepBody<'a>>,
}

/// A commission quote for one sale: the base's rules changed by the
/// tenant's plugins, with each step of the chain.
#[utoipa::path(post, path = "/v1/commission/quote", tag = "traffic", security(("bearer" = [])),
    request_body = Sale,
    responses((status = 200, body = QuoteBody)),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, JSON, &[Code::InvalidSale, Code::TenantBusy]])))))]
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PreviewRequest {
    /// The email template's id.
    template: String,
    /// The template's variables.
    #[serde(default)]
    context: Option<BTreeMap<String, String>>,
}

/// `POST /v1/email/preview` (keys in order).
#[derive(Serialize, ToSchema)]
struct PreviewBody {
    message: Option<String>,
    outcome: Option<OutcomeKind>,
    #[schema(value_type = crate::email::Rendered)]
    rendered: Sorted<crate::email::Rendered>,
    source: Source,
    template: String,
}

/// Renders one email template with the tenant's plugins and the given
/// variables, without sending it.
#[utoipa::path(post, path = "/v1/email/preview", tag = "email", security(("bearer" = [])),
    request_body = PreviewRequest,
    responses((status = 200, body = PreviewBody)),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, JSON, &[Code::UnknownTemplate, Code::ContextTooLarge, Code::RenderFailed, Code::TenantBusy]])))))]
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
