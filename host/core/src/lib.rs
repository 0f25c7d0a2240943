//! Veneer's core: the data and the checks every other crate shares, with no network,
//! database, sandbox or async runtime (it must never depend on wasmtime, sqlx, tokio,
//! axum or reqwest). Its only I/O is reading a base configuration directory when asked.
//!
//! - [`base`]: the base configuration types, loading (a directory or the embedded
//!   `base-config/`) and the base commission decision;
//! - [`validate`]: the invariants every configuration section must keep;
//! - [`digest`]: content digests stable across nodes and Rust releases;
//! - [`tenancy_id`]: the tenant id type;
//! - [`email_check`]: address, display-name and template-subset checks;
//! - [`secrets`]: sealing credentials at rest (AES-256-GCM) and derived keys;
//! - [`policy`]: the platform's output policies (what plugins' results must keep);
//! - [`config_diff`]: what changes between two effective configurations;
//! - [`rollout`]: a tenant's rollout settings (shadow gate, rollback, recording);
//! - [`redact`]: personal data taken out of recorded hook inputs;
//! - [`settings_schema`]: plugins' settings JSON Schemas, checked and applied.
//!
//! The `veneer` crate re-exports these modules at their old paths
//! (`veneer::base`, `veneer::validate`, `veneer::digest`, `veneer::secrets`,
//! `veneer::tenancy::TenantId`).

pub mod base;
pub mod config_diff;
pub mod digest;
pub mod email_check;
pub mod policy;
pub mod redact;
pub mod rollout;
pub mod secrets;
pub mod settings_schema;
pub mod tenancy_id;
pub mod validate;
