//! Commission quotes: one sale through the tenant's plugin (or the base rules),
//! on the request path for the API and per line item for order jobs, each run
//! recorded. Checking the sale and the fallback are `resolve`'s; the call
//! itself is the runtime's.

use std::sync::Arc;

use super::Result;
use super::plugins::active_plugin;
use super::runs::{paused_message, record_run};
use super::slots::{on_blocking_thread, slot, with_slot};
use crate::base::{CommissionDecision, Sale};
use crate::resolve::{InputError, Resolved, Resolver};
use crate::runtime::{LoadedPlugin, OutcomeKind, WarmKey};
use crate::state::AppState;
use crate::tenancy::TenantState;

/// Fuel a quote's plugin call may use in place, on the request's own worker
/// thread (a commission call needs about 9,000); one that needs more is run
/// again on a blocking thread with its whole quota.
pub const INLINE_FUEL: u64 = 1_000_000;
/// Deadline of the in-place attempt, in milliseconds.
pub const INLINE_DEADLINE_MS: u64 = 2;

/// A quote: the decision and how it was reached.
#[derive(Debug)]
pub struct Quote {
    /// The decision, its source and the plugin run.
    pub resolved: Resolved<CommissionDecision>,
    /// The sha256 of the plugin that was asked, if one was.
    pub plugin: Option<String>,
    /// What went wrong in the run, or why no plugin ran (paused).
    pub message: Option<String>,
}

/// The commission for one sale, on the request path (see [`commission_quote`]).
pub async fn quote(app: &AppState, tenant: &Arc<TenantState>, sale: Sale) -> Result<Quote> {
    crate::resolve::check_sale(&app.base, &sale)?;
    let plugin = active_plugin(app, tenant).await?;
    let resolved = commission_quote(app, tenant, plugin.clone(), sale).await??;
    if let (Some(plugin), Some(run)) = (&plugin, &resolved.run) {
        record_run(app, tenant, &plugin.info().sha256, run);
    }
    let message = resolved
        .run
        .as_ref()
        .and_then(|r| r.message.clone())
        .or_else(|| paused_message(app, tenant));
    Ok(Quote {
        plugin: plugin.map(|p| p.info().sha256.clone()),
        message,
        resolved,
    })
}

/// The commission for one sale in a background job: under one of the tenant's
/// plugin slots, on its warm instance, the run recorded when it resolved.
pub async fn commission(
    app: &AppState,
    tenant: &Arc<TenantState>,
    plugin: Option<Arc<LoadedPlugin>>,
    sale: Sale,
) -> Result<std::result::Result<Resolved<CommissionDecision>, InputError>> {
    let (runtime, base, data, quota, plugin_for_run, warm) = (
        app.runtime.clone(),
        app.base.clone(),
        tenant.data(),
        tenant.quota,
        plugin.clone(),
        tenant.warm_key().clone(),
    );
    let resolved = with_slot(app, tenant, plugin.is_some(), move || {
        Resolver::new(&runtime, &base).commission(
            plugin_for_run.as_deref(),
            Some(&warm),
            data,
            &quota,
            &sale,
        )
    })
    .await?;
    if let (Some(plugin), Ok(Resolved { run: Some(run), .. })) = (&plugin, &resolved) {
        record_run(app, tenant, &plugin.info().sha256, run);
    }
    Ok(resolved)
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
) -> Result<std::result::Result<Resolved<CommissionDecision>, InputError>> {
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
) -> std::result::Result<Resolved<CommissionDecision>, InputError> {
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
