//! Veneer: a multi-tenant configuration host. Each tenant gets the platform's
//! base configuration changed by its own override plugin, a WebAssembly component
//! run in a sandbox under quotas.
//!
//! Modules, each owning one thing:
//! - [`base`]: the base configuration files, typed and versioned;
//! - [`validate`]: the invariants every section must keep;
//! - [`runtime`]: the wasmtime sandbox (the only module touching wasmtime);
//! - [`resolve`]: effective configuration = validate(plugin(base)), with fallback;
//! - [`cli`]: the `veneer` command line.

pub mod base;
pub mod cli;
pub mod resolve;
pub mod runtime;
pub mod validate;

/// Paths of the plugin components that `build.rs` builds from `plugins/`, for
/// tests, benchmarks and the demo.
pub mod built_plugins {
    include!(concat!(env!("OUT_DIR"), "/plugins.rs"));
}
