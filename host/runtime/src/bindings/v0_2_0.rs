//! `veneer:plugin@0.2.0`: its bindings, its imports and its conversions to
//! the host's types. Beside 0.1.0's: the plugin's description and settings
//! schema in `describe`, and the `product-category` hook.

wasmtime::component::bindgen!({
    path: "../../wit/v0.2.0",
    world: "plugin",
    imports: { default: trappable },
});

use std::collections::BTreeMap;

use wasmtime::Store;

use self::veneer::plugin::types as wit;
use super::{Described, HookResult};
use crate::hook::Hook;
use crate::outcome::LogSource;
use crate::state::HostState;
use veneer_core::base;

super::shared_conversions!();
super::shared_imports!();

fn hook_in(h: wit::Hook) -> Hook {
    match h {
        wit::Hook::Categories => Hook::Categories,
        wit::Hook::SizeCharts => Hook::SizeCharts,
        wit::Hook::Commission => Hook::Commission,
        wit::Hook::Email => Hook::Email,
        wit::Hook::ProductCategory => Hook::ProductCategory,
    }
}

/// `describe`, with the description and settings schema 0.2.0 adds.
pub(crate) fn describe(b: &Plugin, store: &mut Store<HostState>) -> wasmtime::Result<Described> {
    let info = b.veneer_plugin_hooks().call_describe(store)?;
    Ok(Described {
        name: info.name,
        version: info.version,
        hooks: info.hooks.into_iter().map(hook_in).collect(),
        description: info.description,
        settings_schema: info.settings_schema,
    })
}

/// `product-category`: the product and the base's choice in, the plugin's
/// choice out (checked against the tenant's tree by the resolver).
pub(crate) fn product_category(
    b: &Plugin,
    store: &mut Store<HostState>,
    product: &base::Product,
    base: Option<&str>,
) -> HookResult<Option<String>> {
    let product = wit::Product {
        title: product.title.clone(),
        vendor: product.vendor.clone(),
        product_type: product.product_type.clone(),
        tags: product.tags.clone(),
    };
    let out = b
        .veneer_plugin_hooks()
        .call_product_category(store, &product, base)?;
    Ok(out.map_err(plugin_error))
}
