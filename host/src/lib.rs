//! Veneer: a multi-tenant configuration host. Each tenant gets the platform's
//! base configuration changed by its own override plugin, a WebAssembly component
//! run in a sandbox under quotas.
//!
//! Modules, each owning one thing:
//! - [`base`], [`validate`], [`digest`], [`secrets`] (re-exported from the
//!   `veneer-core` crate, which has no network, database or sandbox): the base
//!   configuration typed and versioned, the invariants every section must keep,
//!   content digests stable across nodes and Rust releases, sealing credentials
//!   at rest; the tenant id and the email address and template checks live
//!   there too;
//! - [`runtime`]: the wasmtime sandbox, crate `veneer-runtime` (`host/runtime`, the only
//!   crate depending on wasmtime), re-exported here;
//! - [`resolve`]: effective configuration = validate(plugin(base)), with fallback;
//! - [`app`]: the use cases (effective configuration, quotes, email
//!   rendering, plugin loading and compiling, run recording, tenant state),
//!   called by both adapters below and importing neither;
//! - [`tenancy`]: tenant ids, hosts to tenants, cached tenant state;
//! - [`auth`]: token verification (Clerk-style JWTs, JWKS, dev key), crate
//!   `veneer-auth` (`host/auth`), re-exported here;
//! - [`storage`]: SQLite and PostgreSQL, crate `veneer-storage` (`host/storage`,
//!   the only crate depending on sqlx, with the migrations), re-exported here;
//! - [`cache`], [`limits`], [`usage`]: caches, per-tenant limits, run recording;
//! - [`invalidation`]: cache invalidation across nodes (PostgreSQL LISTEN/NOTIFY);
//! - [`metrics`]: Prometheus metrics per tenant, with a bounded series count;
//! - [`email`]: per-tenant email: settings, rendering, SMTP sending, bounces;
//! - [`outbound`]: which addresses and ports a tenant-directed connection may reach;
//! - [`jobs`]: per-tenant durable background jobs with fair scheduling;
//! - [`shopify`]: per-tenant Shopify stores, webhooks and the Admin API client;
//! - [`clerk`]: Clerk's webhooks: Svix signatures and the organisation and
//!   membership events;
//! - [`http`]: the API (adapter: extractors, handlers, error mapping);
//! - [`workers`]: the job handlers (adapter over the same use cases);
//! - [`state`], [`server`], [`config`], [`demo`]: running it; [`telemetry`]:
//!   trace export over OTLP (`--otlp-endpoint`);
//! - [`tls`]: HTTPS serving, certificates chosen by SNI and kept current;
//!   [`acme`]: the ACME client certificates are ordered with (the ordering
//!   rules are [`app::certificates`]'); [`certs`]: certificates as PEM and as
//!   rustls serves them;
//! - [`cli`]: the `veneer` command line;
//! - `test_support` (tests only, feature `test-support`): what the tests share.

pub mod acme;
pub mod app;
pub use veneer_auth as auth;
#[cfg(feature = "bench-native")]
pub mod bench_native;
pub mod cache;
pub mod certs;
pub mod clerk;
pub mod cli;
pub mod config;
pub mod demo;
pub mod dns;
pub mod email;
pub mod http;
pub mod invalidation;
pub mod jobs;
pub mod limits;
pub mod metrics;
pub mod outbound;
pub mod resolve;
pub use veneer_runtime as runtime;
pub mod server;
pub mod shopify;
pub mod state;
pub use veneer_storage as storage;
pub mod telemetry;
pub mod tenancy;
#[cfg(any(test, feature = "test-support"))]
pub mod test_support;
pub mod tls;
pub mod usage;
pub mod workers;

pub use http::openapi::document as openapi_document;
pub use http::router;
pub use server::serve;
/// Moved to the `veneer-core` crate (no I/O); re-exported at their old paths.
pub use veneer_core::{
    base, config_diff, digest, policy, redact, rollout as rollout_settings, secrets, validate,
};
/// The both-backends test macro, from the storage crate's test support.
#[cfg(any(test, feature = "test-support"))]
pub use veneer_storage::both_backends;
