//! The application layer: the use cases of the host, one module per group,
//! called by both adapters — the HTTP handlers (`http`) and the job handlers
//! (`workers`) — so a quote, a render or a plugin load does the
//! same thing whichever of them asks.
//!
//! - [`config`]: a tenant's effective configuration, cached;
//! - [`quote`]: commission quotes through the tenant's plugin;
//! - [`product_category`]: a product's category through the tenant's chain;
//! - [`email`]: rendering a template through the plugin, queueing a send,
//!   saving a tenant's email settings;
//! - [`plugins`]: the tenant's chain of plugins ready to run, loading,
//!   compiling and storing components;
//! - [`installations`]: installations, releases (checked, then activated,
//!   rolled back, deactivated) and per-installation quotas;
//! - [`headroom`]: what an installation's runs use against its quota;
//! - [`policies`]: the platform's output policies, set for all tenants or one;
//! - [`rollout`]: automatic rollback of a release failing right after it went live;
//! - [`records`]: sampled, redacted recording of live calls for replay;
//! - [`shadow`]: draft releases run beside the live ones, their report and the activation gate;
//! - [`runs`]: recording plugin runs (run log, breaker, automatic rollback);
//! - [`shopify`]: connecting a tenant's store, accepting its webhooks;
//! - [`slots`]: the tenant's plugin slots and the blocking threads calls run on;
//! - [`tenants`]: a tenant's loaded state and its own writes (settings, key-value data);
//! - [`admin`]: platform administration (tenants, quotas);
//! - [`clerk`]: Clerk's organisation and membership webhooks, and the
//!   membership revocations a request checks;
//! - [`lifecycle`]: deleting, restoring and purging tenants;
//! - [`domains`]: custom domains, proven by DNS before they route;
//! - [`certificates`]: HTTPS certificates of the base and routed domains,
//!   ordered with ACME, renewed, retried with backoff;
//! - [`catalogue`]: the platform's stock plugins, published and installed;
//! - [`jobs`]: the kinds of the background jobs the use cases queue;
//! - [`metrics`]: the metrics exposition, with the job queue read at scrape time;
//! - [`instance_copy`]: whether a copied instance serves every tenant as its source does.
//!
//! It owns the use cases and their typed [`Error`]; it decides nothing about
//! transport. It depends on `resolve`, `runtime`, `storage`, `tenancy`,
//! `limits`, `usage`, `cache`, `email`, `shopify`, `clerk`, `metrics` and the shared [`crate::state::AppState`],
//! and must not import the adapters, `http` or `workers` (nothing below them
//! knows them): statuses and response shapes are the HTTP layer's.

pub mod admin;
pub mod archives;
pub mod backups;
pub mod base;
pub mod catalogue;
pub mod certificates;
pub mod clerk;
pub mod config;
pub mod domains;
pub mod email;
mod error;
pub mod headroom;
pub mod installations;
pub mod instance_copy;
pub mod jobs;
pub mod key_rotation;
pub mod lifecycle;
pub mod metrics;
pub mod plugins;
pub mod policies;
pub mod product_category;
pub mod quote;
pub mod records;
pub mod rollout;
pub mod runs;
pub mod sending_domains;
pub mod shadow;
pub mod shopify;
pub mod shopify_install;
pub mod shopify_privacy;
pub mod shopify_webhooks;
pub mod slots;
pub mod tenants;

pub use error::Error;

/// Result of a use case.
pub type Result<T> = std::result::Result<T, Error>;
