//! API traffic: the tenant's effective configuration (whole and per section,
//! cached, with ETags), commission quotes that run the plugin on the request path,
//! and email render previews.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use axum::{
    Json, Router,
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::base::{CommissionDecision, Sale};
use crate::cache::EffectiveKey;
use crate::email;
use crate::http::ServedDocument;
use crate::http::context::{JsonBody, Member};
use crate::http::{ApiError, ApiResult};
use crate::resolve::{EffectiveConfig, Resolved, Resolver};
use crate::runtime::{LoadedPlugin, OutcomeKind, WarmKey};
use crate::state::AppState;
use crate::tenancy::TenantState;
use tokio::sync::OwnedSemaphorePermit;

/// How long a request waits for one of its tenant's plugin slots.
const SLOT_WAIT: Duration = Duration::from_secs(5);

/// Fuel a quote's plugin call may use in place, on the request's own worker
/// thread (a commission call needs about 9,000); one that needs more is run
/// again on a blocking thread with its whole quota.
pub const INLINE_FUEL: u64 = 1_000_000;
/// Deadline of the in-place attempt, in milliseconds.
pub const INLINE_DEADLINE_MS: u64 = 2;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/config", get(config))
        .route("/v1/config/{section}", get(section))
        .route("/v1/commission/quote", post(quote))
        .route("/v1/email/preview", post(preview))
}

/// The tenant's active plugin, ready to run.
pub(crate) async fn active_plugin(
    app: &AppState,
    tenant: &TenantState,
) -> ApiResult<Option<Arc<LoadedPlugin>>> {
    if app.limits.plugin_paused(&tenant.record).is_some() {
        // Paused after repeated limit failures: serve the base, run nothing.
        return Ok(None);
    }
    match &tenant.active_plugin {
        Some(sha) => Ok(Some(app.plugin(&tenant.record.id, sha).await?)),
        None => Ok(None),
    }
}

/// Records a plugin run: in the tenant's run log and in its breaker.
pub(crate) fn record_run(
    app: &AppState,
    tenant: &TenantState,
    plugin: &str,
    run: &crate::resolve::RunRecord,
) {
    app.recorder.run(&tenant.record.id, plugin, run);
    app.limits.record_outcome(&tenant.record, run.outcome);
}

/// The message served while a tenant's plugin is paused.
pub(crate) fn paused_message(app: &AppState, tenant: &TenantState) -> Option<String> {
    app.limits.plugin_paused(&tenant.record).map(|left| {
        format!(
            "the plugin is paused for {} s after repeatedly running out of fuel or time; the base is served meanwhile",
            left.as_secs() + 1
        )
    })
}

/// Runs `f` on a blocking thread while holding one of the tenant's plugin
/// slots — when it runs a plugin. Without one (none active, or paused)
/// `f` only computes base answers: it runs right here, with no slot and no
/// thread hop, so a paused tenant's traffic stays cheap for everyone else.
pub(crate) async fn with_slot<T: Send + 'static>(
    app: &AppState,
    tenant: &TenantState,
    runs_plugin: bool,
    f: impl FnOnce() -> T + Send + 'static,
) -> ApiResult<T> {
    if !runs_plugin {
        return Ok(f());
    }
    let permit = slot(app, tenant).await?;
    on_blocking_thread(permit, f).await
}

/// One of the tenant's plugin slots, waiting up to [`SLOT_WAIT`].
async fn slot(app: &AppState, tenant: &TenantState) -> ApiResult<OwnedSemaphorePermit> {
    let slots = app.limits.calls(&tenant.record);
    tokio::time::timeout(SLOT_WAIT, slots.acquire_owned())
        .await
        .map_err(|_| {
            ApiError::unavailable(
                "tenant_busy",
                "all of this tenant's plugin slots are busy; retry shortly or ask for a higher concurrency limit",
            )
        })?
        .map_err(|_| ApiError::internal("tenant slots closed"))
}

/// Runs `f` on a blocking thread, holding `permit` until it ends.
async fn on_blocking_thread<T: Send + 'static>(
    permit: OwnedSemaphorePermit,
    f: impl FnOnce() -> T + Send + 'static,
) -> ApiResult<T> {
    let out = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        f()
    })
    .await
    .map_err(|err| ApiError::internal(format!("plugin task failed: {err}")))?;
    Ok(out)
}

/// The tenant's effective configuration: remembered by the tenant's state while
/// the cache holds it, else from the cache, else computed.
pub(crate) async fn effective(
    app: &AppState,
    tenant: &Arc<TenantState>,
) -> ApiResult<Arc<EffectiveConfig>> {
    if let Some(kept) = tenant.effective() {
        return Ok(kept);
    }
    let key = EffectiveKey::new(
        &tenant.record.id,
        &app.base.version,
        tenant.active_plugin.as_deref(),
        tenant.settings.version,
        tenant.data_version,
    );
    if let Some(hit) = app.caches.effective(&key) {
        tenant.keep_effective(&hit);
        return Ok(hit);
    }
    let plugin = active_plugin(app, tenant).await?;
    let (runtime, base, data, quota, version) = (
        app.runtime.clone(),
        app.base.clone(),
        tenant.data(),
        tenant.quota,
        key.version(),
    );
    let config = with_slot(app, tenant, plugin.is_some(), move || {
        Resolver::new(&runtime, &base).effective(plugin.as_deref(), data, &quota, version)
    })
    .await?;
    if let Some(sha) = &config.plugin {
        for run in config.runs() {
            record_run(app, tenant, sha, run);
        }
    }
    let config = Arc::new(config);
    // A paused plugin's base answers are not its configuration: never cache them.
    let paused = tenant.active_plugin.is_some() && config.plugin.is_none();
    if !config.is_transient() && !paused {
        app.caches.put_effective(key, config.clone());
        tenant.keep_effective(&config);
    }
    Ok(config)
}

fn etag(version: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}

fn fallbacks(config: &EffectiveConfig) -> Vec<Value> {
    let mut out = Vec::new();
    let mut push = |section: String, resolved_run: Option<&crate::resolve::RunRecord>| {
        if let Some(run) = resolved_run
            && run.outcome != crate::runtime::OutcomeKind::Ok
        {
            out.push(json!({ "section": section, "outcome": run.outcome, "message": run.message }));
        }
    };
    push("categories".into(), config.categories.run.as_ref());
    push("size_charts".into(), config.size_charts.run.as_ref());
    for (id, email) in &config.emails {
        push(format!("emails.{id}"), email.run.as_ref());
    }
    out
}

/// `GET /v1/config` as serialised: borrowed from the cached configuration.
#[derive(Serialize)]
struct Document<'a> {
    tenant: &'a str,
    version: &'a str,
    base_version: &'a str,
    plugin: &'a Option<String>,
    categories: &'a [crate::base::Category],
    size_charts: &'a [crate::base::SizeChart],
    emails: BTreeMap<&'a str, &'a crate::base::EmailTemplate>,
    commission_rules: &'a crate::base::CommissionRules,
    sources: BTreeMap<String, crate::resolve::Source>,
    fallbacks: Vec<Value>,
}

/// Serialises the whole configuration once (and gzips it once).
fn serve_document(app: &AppState, tenant: &str, config: &EffectiveConfig) -> ServedDocument {
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
        plugin: &config.plugin,
        categories: &config.categories.value,
        size_charts: &config.size_charts.value,
        emails: config
            .emails
            .iter()
            .map(|(id, e)| (id.as_str(), &e.value))
            .collect(),
        commission_rules: &app.base.commission,
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
    let config = effective(&app, tenant).await?;
    let served = config
        .served
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
    let config = effective(&app, tenant).await?;
    let served = config.served_sections[slot]
        .get_or_init(|| serve_section(&app, tenant.record.id.as_str(), &config, SECTIONS[slot]));
    Ok(served.answer(headers))
}

/// Serialises one section once (and gzips it once, when worth it).
fn serve_section(
    app: &AppState,
    tenant: &str,
    config: &EffectiveConfig,
    section: &str,
) -> ServedDocument {
    fn one<T: serde::Serialize>(r: &Resolved<T>) -> Value {
        json!({ "source": r.source, "value": r.value, "outcome": r.run.as_ref().map(|run| run.outcome), "message": r.run.as_ref().and_then(|run| run.message.clone()) })
    }
    let mut body = match section {
        "categories" => one(&config.categories),
        "size-charts" | "size_charts" => one(&config.size_charts),
        "emails" => {
            let emails: BTreeMap<_, _> = config
                .emails
                .iter()
                .map(|(id, e)| (id.clone(), one(e)))
                .collect();
            json!({ "value": emails })
        }
        _ => json!({ "source": "base", "value": app.base.commission }),
    };
    if let Some(obj) = body.as_object_mut() {
        obj.insert("tenant".into(), json!(tenant));
        obj.insert("section".into(), json!(section));
        obj.insert("version".into(), json!(config.version));
    }
    // Serialising a JSON value cannot fail.
    let json = serde_json::to_vec(&body).unwrap_or_default();
    ServedDocument::new(json, etag(&config.version))
}

/// The commission for one sale through the tenant's plugin, on the request
/// path. The plugin call runs first in place, on this worker thread, under a
/// budget capped at [`INLINE_FUEL`] and [`INLINE_DEADLINE_MS`] (on the tenant's
/// warm instance): a commission hook needs a few microseconds, and skipping the
/// hop to a blocking thread is most of a quote's saving. A call that runs out
/// of that budget (and whose quota allows more) is run again from a fresh store
/// on a blocking thread with its whole quota; its recorded fuel includes the
/// first attempt's. Hooks are functions of their inputs, so the repeat is safe;
/// the first attempt's log is dropped. Either way the call holds one of the
/// tenant's plugin slots.
async fn commission_quote(
    app: &AppState,
    tenant: &Arc<TenantState>,
    plugin: Option<Arc<LoadedPlugin>>,
    sale: Sale,
) -> ApiResult<Result<Resolved<CommissionDecision>, crate::resolve::InputError>> {
    let (runtime, base, data, quota) = (
        app.runtime.clone(),
        app.base.clone(),
        tenant.data(),
        tenant.quota,
    );
    #[cfg(feature = "bench-native")]
    let native = app.config.bench_native;
    #[cfg(not(feature = "bench-native"))]
    let native = false;
    let Some(plugin) = plugin else {
        return Ok(Resolver::new(&runtime, &base).commission(None, None, data, &quota, &sale));
    };
    let inline = quota.capped(INLINE_FUEL, INLINE_DEADLINE_MS);
    let permit = slot(app, tenant).await?;
    let first = run_commission(
        &runtime,
        &base,
        &plugin,
        Some(tenant.warm_key()),
        data.clone(),
        &inline,
        &sale,
        native,
    );
    let first_run = first.as_ref().ok().and_then(|r| r.run.as_ref());
    let ran_short = first_run
        .is_some_and(|run| matches!(run.outcome, OutcomeKind::OutOfFuel | OutcomeKind::Deadline))
        && inline != quota;
    if !ran_short {
        drop(permit);
        return Ok(first);
    }
    let spent = first_run.map_or(0, |run| run.stats.fuel_used);
    let mut second = on_blocking_thread(permit, move || {
        run_commission(&runtime, &base, &plugin, None, data, &quota, &sale, native)
    })
    .await?;
    if let Ok(Resolved { run: Some(run), .. }) = &mut second {
        run.stats.fuel_used = run.stats.fuel_used.saturating_add(spent);
    }
    Ok(second)
}

/// One commission call through `plugin` (or, in a `--bench-native` benchmark
/// server, the same logic compiled in).
#[allow(clippy::too_many_arguments)]
fn run_commission(
    runtime: &crate::runtime::Runtime,
    base: &crate::base::BaseConfig,
    plugin: &LoadedPlugin,
    warm: Option<&WarmKey>,
    data: Arc<dyn crate::runtime::TenantData>,
    quota: &crate::runtime::Quota,
    sale: &Sale,
    native: bool,
) -> Result<Resolved<CommissionDecision>, crate::resolve::InputError> {
    let resolver = Resolver::new(runtime, base);
    #[cfg(feature = "bench-native")]
    if native && crate::bench_native::applies(plugin) {
        return resolver.commission_with(Some(plugin), sale, |_, base| {
            crate::bench_native::commission(&*data, sale, base)
        });
    }
    let _ = native;
    resolver.commission(Some(plugin), warm, data, quota, sale)
}

async fn quote(
    State(app): State<AppState>,
    member: Member,
    JsonBody(sale): JsonBody<Sale>,
) -> ApiResult<Json<Value>> {
    let tenant = member.tenant.state(&app).await?;
    crate::resolve::check_sale(&app.base, &sale)?;
    let plugin = active_plugin(&app, &tenant).await?;
    let resolved = commission_quote(&app, &tenant, plugin.clone(), sale).await??;
    if let (Some(plugin), Some(run)) = (&plugin, &resolved.run) {
        record_run(&app, &tenant, &plugin.info().sha256, run);
    }
    let run = resolved.run.as_ref();
    Ok(Json(json!({
        "decision": resolved.value,
        "source": resolved.source,
        "plugin": plugin.as_ref().map(|p| p.info().sha256.clone()),
        "outcome": run.map(|r| r.outcome),
        "message": run.and_then(|r| r.message.clone()).or_else(|| paused_message(&app, &tenant)),
        "fuel_used": run.map(|r| r.stats.fuel_used),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PreviewRequest {
    template: String,
    #[serde(default)]
    context: Option<BTreeMap<String, String>>,
}

/// Largest context a caller may pass to a render, keys and values together:
/// it bounds what one template instruction can cost (fuel counts instructions,
/// not bytes).
pub const MAX_EMAIL_CONTEXT_BYTES: usize = 64 * 1024;

/// A template customised by the tenant's plugin for `caller_context` (on top of
/// the template's sample values) and rendered: what a preview shows and a send
/// sends. The plugin call and the rendering run on a blocking thread, under one
/// of the tenant's plugin slots when a plugin runs (rendering the base alone
/// needs no slot, but still leaves the async workers). A plugin template that
/// does not render, or goes past a rendering bound, is the plugin's
/// `invalid_output`: the base template is rendered and served instead.
pub(crate) async fn render_email(
    app: &AppState,
    tenant: &Arc<TenantState>,
    template: &str,
    caller_context: BTreeMap<String, String>,
) -> ApiResult<(Resolved<crate::base::EmailTemplate>, email::Rendered)> {
    let def = app
        .base
        .email(template)
        .ok_or_else(|| crate::resolve::InputError::UnknownTemplate(template.to_owned()))?;
    let context_bytes: usize = caller_context.iter().map(|(k, v)| k.len() + v.len()).sum();
    if context_bytes > MAX_EMAIL_CONTEXT_BYTES {
        return Err(ApiError::bad_request(
            "context_too_large",
            format!(
                "the context holds {context_bytes} bytes, more than {MAX_EMAIL_CONTEXT_BYTES}; \
                 pass only the values the template shows"
            ),
        ));
    }
    // Sample values first, the caller's on top: a partial context still renders.
    let mut context = def.sample.clone();
    context.extend(caller_context);
    let plugin = active_plugin(app, tenant).await?;
    let (runtime, base, data, quota) = (
        app.runtime.clone(),
        app.base.clone(),
        tenant.data(),
        tenant.quota,
    );
    let (id, plugin_for_run) = (template.to_owned(), plugin.clone());
    let work = move || {
        let resolved = Resolver::new(&runtime, &base).email(
            plugin_for_run.as_deref(),
            data,
            &quota,
            &id,
            Some(&context),
        )?;
        let base_template = base.email(&id).map(|d| d.template.clone());
        Ok::<_, crate::resolve::InputError>(render_or_base(resolved, base_template, &context))
    };
    let (resolved, rendered) = if plugin.is_some() {
        with_slot(app, tenant, true, work).await??
    } else {
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|err| ApiError::internal(format!("render task failed: {err}")))??
    };
    if let (Some(plugin), Some(run)) = (&plugin, &resolved.run) {
        record_run(app, tenant, &plugin.info().sha256, run);
    }
    let rendered = rendered.map_err(|err| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "render_failed",
            err.to_string(),
        )
    })?;
    Ok((resolved, rendered))
}

/// Renders the resolved template; when it is the plugin's and does not render
/// (a bound, or an error of its own), renders `base` instead and marks the run
/// `invalid_output`. When the base does not render either, the context is at
/// fault: the base's error is returned and the run is left as it was.
fn render_or_base(
    mut resolved: Resolved<crate::base::EmailTemplate>,
    base: Option<crate::base::EmailTemplate>,
    context: &BTreeMap<String, String>,
) -> (
    Resolved<crate::base::EmailTemplate>,
    Result<email::Rendered, email::RenderError>,
) {
    let first = email::render(&resolved.value, context);
    let (Err(err), crate::resolve::Source::Plugin, Some(base)) = (&first, resolved.source, base)
    else {
        return (resolved, first);
    };
    match email::render(&base, context) {
        Ok(rendered) => {
            tracing::info!(template = %base.id, part = err.part, bound = ?err.bound, "plugin template does not render; serving the base");
            if let Some(run) = &mut resolved.run {
                run.outcome = OutcomeKind::InvalidOutput;
                run.message = Some(format!("the plugin's email template is refused: {err}"));
            }
            resolved.value = base;
            resolved.source = crate::resolve::Source::Base;
            (resolved, Ok(rendered))
        }
        Err(base_err) => (resolved, Err(base_err)),
    }
}

async fn preview(
    State(app): State<AppState>,
    member: Member,
    JsonBody(request): JsonBody<PreviewRequest>,
) -> ApiResult<Json<Value>> {
    let tenant = member.tenant.state(&app).await?;
    let (resolved, rendered) = render_email(
        &app,
        &tenant,
        &request.template,
        request.context.unwrap_or_default(),
    )
    .await?;
    Ok(Json(json!({
        "template": request.template,
        "source": resolved.source,
        "outcome": resolved.run.as_ref().map(|r| r.outcome),
        "message": resolved.run.as_ref().and_then(|r| r.message.clone()),
        "rendered": rendered,
    })))
}
