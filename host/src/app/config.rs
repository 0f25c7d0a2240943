//! A tenant's effective configuration as the use cases get it: remembered by
//! the tenant's state while the cache holds it, else from the cache, else
//! resolved (under a plugin slot when a plugin runs), its runs recorded, and
//! cached unless it may not repeat. What is served is `resolve`'s decision;
//! how it is serialised is the HTTP layer's (it keeps its documents in the
//! configuration's opaque [`crate::resolve::Memo`]).

use std::sync::Arc;

use super::Result;
use super::plugins::{Chain, budget, chain};
use super::runs::record_run;
use super::slots::with_slot;
use crate::cache::EffectiveKey;
use crate::resolve::{EffectiveConfig, Resolver};
use crate::state::AppState;
use crate::tenancy::TenantState;

/// The tenant's effective configuration.
pub async fn effective(app: &AppState, tenant: &Arc<TenantState>) -> Result<Arc<EffectiveConfig>> {
    if let Some(kept) = tenant.effective() {
        app.metrics.cache(&tenant.record.id, "effective", true);
        return Ok(kept);
    }
    let key = EffectiveKey::new(&tenant.record.id, &app.base().version, tenant.data_version);
    if let Some(hit) = app.caches.effective(&key) {
        app.metrics.cache(&tenant.record.id, "effective", true);
        tenant.keep_effective(&hit);
        return Ok(hit);
    }
    app.metrics.cache(&tenant.record.id, "effective", false);
    let plugins = chain(app, tenant).await?;
    let (runtime, base, state, mut budget, version, loaded) = (
        app.runtime.clone(),
        app.base(),
        tenant.clone(),
        budget(app),
        key.version(),
        plugins.clone(),
    );
    let config = with_slot(app, tenant, plugins.runs_plugin(), move || {
        let steps = loaded.steps(&state, false);
        Resolver::new(&runtime, &base).effective_chain(
            &steps,
            &mut budget,
            Chain::releases(&state),
            version,
        )
    })
    .await?;
    for run in config.runs() {
        record_run(app, tenant, run);
    }
    let config = Arc::new(config);
    // A paused plugin's answers are not its chain's configuration: never cache them.
    if !config.is_transient() && !plugins.any_paused() {
        app.caches.put_effective(key, config.clone());
        tenant.keep_effective(&config);
    }
    Ok(config)
}

/// The tenant's effective configuration resolved now under `base` (with
/// `version` as its version), past every cache and recording no run: for
/// comparing what would be served (a candidate base, a copied instance), never
/// for serving.
pub async fn resolve_unrecorded(
    app: &AppState,
    tenant: &Arc<TenantState>,
    base: Arc<crate::base::BaseConfig>,
    version: String,
) -> Result<EffectiveConfig> {
    let plugins = chain(app, tenant).await?;
    let (runtime, state, mut budget, loaded) = (
        app.runtime.clone(),
        tenant.clone(),
        budget(app),
        plugins.clone(),
    );
    with_slot(app, tenant, plugins.runs_plugin(), move || {
        let steps = loaded.steps(&state, false);
        Resolver::new(&runtime, &base).effective_chain(
            &steps,
            &mut budget,
            Chain::releases(&state),
            version,
        )
    })
    .await
}
