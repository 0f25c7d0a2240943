//! `veneer:plugin@0.1.0`, frozen: its bindings, its imports and its
//! conversions to the host's types. Nothing here changes after release; a
//! later version is a module beside this one.

wasmtime::component::bindgen!({
    path: "../../wit/v0.1.0",
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
    }
}

/// `describe`: 0.1.0 has no description and no settings schema.
pub(crate) fn describe(b: &Plugin, store: &mut Store<HostState>) -> wasmtime::Result<Described> {
    let info = b.veneer_plugin_hooks().call_describe(store)?;
    Ok(Described {
        name: info.name,
        version: info.version,
        hooks: info.hooks.into_iter().map(hook_in).collect(),
        description: String::new(),
        settings_schema: None,
    })
}
