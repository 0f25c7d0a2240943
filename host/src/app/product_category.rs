//! A product's category through the tenant's chain (the `product-category`
//! hook, WIT 0.2.0): the caller's base choice (the platform's fixed mapping
//! of the product type) goes in, each installation whose plugin implements
//! the hook may change it, and an answer that names no category of the
//! tenant's effective tree is refused like any invalid output (its input
//! passes on). Runs are recorded against their installations, under one of
//! the tenant's plugin slots. The mapping itself is the caller's; the chain
//! and its fallback are `resolve`'s.

use std::sync::Arc;

use super::Result;
use super::plugins::{budget, chain};
use super::runs::record_run;
use super::slots::with_slot;
use crate::base::{Category, Product};
use crate::resolve::{Resolved, Resolver};
use crate::runtime::hook;
use crate::state::AppState;
use crate::tenancy::TenantState;

/// The category of `product` through `tenant`'s chain, starting from `base`
/// and checked against `categories` (the tenant's effective tree).
pub async fn resolve(
    app: &AppState,
    tenant: &Arc<TenantState>,
    product: Product,
    base: Option<String>,
    categories: Vec<Category>,
) -> Result<Resolved<Option<String>>> {
    let plugins = chain(app, tenant).await?;
    let (runtime, base_config, state, loaded, mut budget) = (
        app.runtime.clone(),
        app.base(),
        tenant.clone(),
        plugins.clone(),
        budget(app),
    );
    let resolved = with_slot(app, tenant, plugins.runs_plugin(), move || {
        let steps = loaded.steps(&state, false);
        Resolver::new(&runtime, &base_config).resolve_chain::<hook::ProductCategory>(
            &steps,
            &mut budget,
            (&product, base.as_deref()),
            &categories,
        )
    })
    .await?;
    for run in &resolved.runs {
        record_run(app, tenant, run);
    }
    Ok(resolved)
}
