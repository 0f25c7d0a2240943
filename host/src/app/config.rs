//! A tenant's effective configuration as the use cases get it: remembered by
//! the tenant's state while the cache holds it, else from the cache, else
//! resolved (under a plugin slot when a plugin runs), its runs recorded, and
//! cached unless it may not repeat. What is served is `resolve`'s decision;
//! how it is serialised is the HTTP layer's (it keeps its documents in the
//! configuration's opaque [`crate::resolve::Memo`]).

use std::sync::Arc;

use super::Result;
use super::plugins::active_plugin;
use super::runs::record_run;
use super::slots::with_slot;
use crate::cache::EffectiveKey;
use crate::resolve::{EffectiveConfig, Resolver};
use crate::state::AppState;
use crate::tenancy::TenantState;

/// The tenant's effective configuration.
pub async fn effective(app: &AppState, tenant: &Arc<TenantState>) -> Result<Arc<EffectiveConfig>> {
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
