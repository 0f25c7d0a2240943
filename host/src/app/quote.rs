//! Commission quotes: one sale through the tenant's chain (or the base rules),
//! on the request path for the API and per line item for order jobs, each run
//! recorded against its installation. Checking the sale, the chain and the
//! fallback are `resolve`'s; the calls themselves are the runtime's.

use std::sync::Arc;

use super::Result;
use super::plugins::{Chain, budget, chain};
use super::runs::{paused_message, record_run};
use super::slots::{on_blocking_thread, slot, with_slot};
use crate::base::{CommissionDecision, Sale};
use crate::resolve::{Budget, ChainStep, InputError, Resolved, Resolver};
use crate::runtime::OutcomeKind;
use crate::state::AppState;
use crate::tenancy::TenantState;

/// Fuel a quote's plugin call may use in place, on the request's own worker
/// thread (a commission call needs about 9,000); one that needs more is run
/// again on a blocking thread with its whole quota.
pub const INLINE_FUEL: u64 = 1_000_000;

/// A quote: the decision and how it was reached.
#[derive(Debug)]
pub struct Quote {
    /// The decision, its source and the plugin runs, in chain order.
    pub resolved: Resolved<CommissionDecision>,
    /// The sha256 of the last plugin that ran, if one did.
    pub plugin: Option<String>,
    /// What went wrong in the first run that failed, or why a step did not
    /// run (paused).
    pub message: Option<String>,
}

/// The commission for one sale, on the request path (see [`commission_quote`]).
pub async fn quote(app: &AppState, tenant: &Arc<TenantState>, sale: Sale) -> Result<Quote> {
    crate::resolve::check_sale(&app.base(), &sale)?;
    let plugins = chain(app, tenant).await?;
    let shadowed = kept_for_after(tenant).then(|| sale.clone());
    let resolved = commission_quote(app, tenant, &plugins, sale).await??;
    for run in &resolved.runs {
        record_run(app, tenant, run);
    }
    if let Some(sale) = &shadowed {
        after_commission(app, tenant, sale, &resolved);
    }
    let message = resolved
        .first_failure()
        .and_then(|r| r.message.clone())
        .or_else(|| paused_message(app, tenant));
    Ok(Quote {
        plugin: resolved.last_run().map(|r| r.plugin.clone()),
        message,
        resolved,
    })
}

/// The commission for one sale in a background job: under one of the tenant's
/// plugin slots, on its warm instances, the runs recorded when it resolved.
pub async fn commission(
    app: &AppState,
    tenant: &Arc<TenantState>,
    plugins: &Chain,
    sale: Sale,
) -> Result<std::result::Result<Resolved<CommissionDecision>, InputError>> {
    let shadowed = kept_for_after(tenant).then(|| sale.clone());
    let (runtime, base, state, loaded, mut budget) = (
        app.runtime.clone(),
        app.base(),
        tenant.clone(),
        plugins.clone(),
        budget(app),
    );
    let resolved = with_slot(app, tenant, plugins.runs_plugin(), move || {
        let steps = loaded.steps(&state, true);
        Resolver::new(&runtime, &base).commission_chain(&steps, &mut budget, &sale)
    })
    .await?;
    if let Ok(resolved) = &resolved {
        for run in &resolved.runs {
            record_run(app, tenant, run);
        }
        if let Some(sale) = &shadowed {
            after_commission(app, tenant, sale, resolved);
        }
    }
    Ok(resolved)
}

/// The commission for one sale through the tenant's chain, on the request
/// path. The chain runs first in place, on this worker thread, every step's
/// budget capped at [`INLINE_FUEL`] and `--inline-ms` (on its warm
/// instance): a commission hook needs a few microseconds, and skipping the hop
/// to a blocking thread is most of a quote's saving. When a step runs out of
/// that capped budget (and its quota allows more), the whole chain is run
/// again from fresh stores on a blocking thread with the whole quotas, within
/// what is left of the request's budget; each step's recorded fuel includes
/// its first attempt's. Hooks are functions of their inputs, so the repeat is
/// safe; the first attempt's logs are dropped. Either way the chain holds one
/// of the tenant's plugin slots.
async fn commission_quote(
    app: &AppState,
    tenant: &Arc<TenantState>,
    plugins: &Chain,
    sale: Sale,
) -> Result<std::result::Result<Resolved<CommissionDecision>, InputError>> {
    #[cfg(feature = "bench-native")]
    let native = app.config.bench_native;
    #[cfg(not(feature = "bench-native"))]
    let native = false;
    let base = app.base();
    let resolver = Resolver::new(&app.runtime, &base);
    let mut budget = budget(app);
    if !plugins.runs_plugin() {
        let steps = plugins.steps(tenant, false);
        return Ok(resolver.commission_chain(&steps, &mut budget, &sale));
    }
    let permit = slot(app, tenant).await?;
    let mut capped: Vec<&str> = Vec::new();
    let inline: Vec<ChainStep<'_>> = plugins
        .steps(tenant, true)
        .into_iter()
        .map(|mut step| {
            let quota = step.quota.capped(INLINE_FUEL, app.config.inline_ms);
            if quota != step.quota {
                capped.push(step.installation);
            }
            step.quota = quota;
            step
        })
        .collect();
    let first = run_commission(&resolver, &inline, &mut budget, &sale, native);
    let ran_short = first.as_ref().is_ok_and(|resolved| {
        resolved.runs.iter().any(|run| {
            !run.budget_spent
                && matches!(run.outcome, OutcomeKind::OutOfFuel | OutcomeKind::Deadline)
                && capped.contains(&run.installation.as_deref().unwrap_or(""))
        })
    });
    drop(inline);
    if !ran_short {
        drop(permit);
        return Ok(first);
    }
    let spent: Vec<(Option<String>, u64)> = first
        .as_ref()
        .map(|resolved| {
            resolved
                .runs
                .iter()
                .map(|run| (run.installation.clone(), run.stats.fuel_used))
                .collect()
        })
        .unwrap_or_default();
    let (runtime, base, state, loaded) = (
        app.runtime.clone(),
        app.base(),
        tenant.clone(),
        plugins.clone(),
    );
    let mut second = on_blocking_thread(permit, move || {
        let steps = loaded.steps(&state, false);
        let resolver = Resolver::new(&runtime, &base);
        run_commission(&resolver, &steps, &mut budget, &sale, native)
    })
    .await?;
    if let Ok(resolved) = &mut second {
        for run in &mut resolved.runs {
            let first: u64 = spent
                .iter()
                .filter(|(installation, _)| *installation == run.installation)
                .map(|(_, fuel)| fuel)
                .sum();
            run.stats.fuel_used = run.stats.fuel_used.saturating_add(first);
        }
    }
    Ok(second)
}

/// Whether anything runs after a live commission (shadow releases, recording),
/// so the sale is kept for it.
fn kept_for_after(tenant: &TenantState) -> bool {
    !tenant.shadows.is_empty() || super::records::wanted(tenant)
}

/// What follows a live commission, off the request path: shadow runs and
/// recording.
fn after_commission(
    app: &AppState,
    tenant: &Arc<TenantState>,
    sale: &Sale,
    live: &Resolved<CommissionDecision>,
) {
    super::shadow::after_commission(app, tenant, sale, live);
    super::records::after_commission(app, tenant, sale, live);
}

/// One commission through `steps` (or, in a `--bench-native` benchmark server
/// with one installation of the benchmark's plugin, the same logic compiled
/// in).
fn run_commission(
    resolver: &Resolver<'_>,
    steps: &[ChainStep<'_>],
    budget: &mut Budget,
    sale: &Sale,
    native: bool,
) -> std::result::Result<Resolved<CommissionDecision>, InputError> {
    #[cfg(feature = "bench-native")]
    if native
        && let [step] = steps
        && let Some(plugin) = step.plugin
        && crate::bench_native::applies(plugin)
    {
        let data = step.data.clone();
        return resolver.commission_with(Some(plugin), sale, |_, base| {
            crate::bench_native::commission(&*data, sale, base)
        });
    }
    let _ = native;
    resolver.commission_chain(steps, budget, sale)
}
