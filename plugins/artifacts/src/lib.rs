//! The plugin components of this repository, built from `plugins/` for
//! `wasm32-wasip2` by this crate's build script (the pattern of wasmtime's
//! `crates/test-programs/artifacts`): a constant per plugin with its path, [`ALL`]
//! of them, and [`bytes`], the example plugins embedded for the demo tenants.
//!
//! Only the host's tests and benches (a dev-dependency) and a host built with
//! the `demo-plugins` feature depend on it, so a plain `cargo check` or build of
//! the host never builds plugins.

include!(concat!(env!("OUT_DIR"), "/plugins.rs"));
