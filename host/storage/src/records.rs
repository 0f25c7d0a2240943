//! The values storage takes and returns. Plain data: no handles, no SQL.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use veneer_core::tenancy_id::TenantId;

/// Whether a tenant is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TenantStatus {
    /// Served normally.
    Active,
    /// Refused: its hosts answer with an error until reactivated.
    Suspended,
}

impl TenantStatus {
    /// The stored (and serialized) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TenantStatus::Active => "active",
            TenantStatus::Suspended => "suspended",
        }
    }
}

impl fmt::Display for TenantStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not a tenant status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a tenant status: use `active` or `suspended`")]
pub struct InvalidTenantStatus(pub String);

impl FromStr for TenantStatus {
    type Err = InvalidTenantStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(TenantStatus::Active),
            "suspended" => Ok(TenantStatus::Suspended),
            other => Err(InvalidTenantStatus(other.chars().take(40).collect())),
        }
    }
}

/// A tenant as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TenantRecord {
    pub id: TenantId,
    /// The Clerk organisation id that maps to this tenant.
    pub org_id: String,
    pub name: String,
    pub status: TenantStatus,
    pub rate_limit_per_sec: u32,
    pub rate_limit_burst: u32,
    pub max_concurrency: u32,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub updated_at: i64,
    /// When the tenant was deleted (Unix milliseconds); `None` while it lives.
    /// A deleted tenant is not served and runs no jobs.
    pub deleted_at: Option<i64>,
    /// When a deleted tenant's rows are purged (Unix milliseconds); it can be
    /// restored until then.
    pub purge_after: Option<i64>,
}

impl TenantRecord {
    /// Whether the tenant is deleted (awaiting its purge).
    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }
}

/// What an admin gives to create a tenant; it starts active.
#[derive(Debug, Clone)]
pub struct NewTenant {
    pub id: TenantId,
    pub org_id: String,
    pub name: String,
    pub rate_limit_per_sec: u32,
    pub rate_limit_burst: u32,
    pub max_concurrency: u32,
}

/// A partial update of a tenant: `None` leaves the field as it is.
#[derive(Debug, Clone, Default)]
pub struct TenantPatch {
    pub name: Option<String>,
    /// Links the tenant to another Clerk organisation (unique among tenants,
    /// deleted ones included until their purge).
    pub org_id: Option<String>,
    pub status: Option<TenantStatus>,
    pub rate_limit_per_sec: Option<u32>,
    pub rate_limit_burst: Option<u32>,
    pub max_concurrency: Option<u32>,
}

/// A plugin upload. `sha256` (lowercase hex) must be the hash of `binary` and
/// `size_bytes` its length: storage checks both.
#[derive(Debug, Clone, Copy)]
pub struct NewPluginVersion<'a> {
    pub sha256: &'a str,
    pub name: &'a str,
    pub version: &'a str,
    pub hooks: &'a [String],
    pub size_bytes: u64,
    pub binary: &'a [u8],
    pub uploaded_by: &'a str,
    /// What the plugin says about itself beyond its name and hooks.
    pub about: PluginAbout<'a>,
}

/// What a plugin says about itself beyond its name and hooks (WIT 0.2.0), as
/// the runtime checked it: the contract version it speaks, its description
/// and its settings JSON Schema. The default is a 0.1.0 plugin's: no
/// description, no schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginAbout<'a> {
    /// `0.1.0`, `0.2.0`.
    pub wit_version: &'a str,
    pub description: &'a str,
    /// JSON Schema text; `None` when the plugin declares none.
    pub settings_schema: Option<&'a str>,
}

impl Default for PluginAbout<'_> {
    fn default() -> Self {
        Self {
            wit_version: "0.1.0",
            description: "",
            settings_schema: None,
        }
    }
}

/// A stored plugin version, without its binary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PluginVersion {
    pub sha256: String,
    pub name: String,
    pub version: String,
    pub hooks: Vec<String>,
    pub size_bytes: u64,
    pub uploaded_by: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Whether a release of it is live in one of the tenant's installations.
    pub active: bool,
    /// The WIT contract version it speaks.
    pub wit_version: String,
    /// What it says it does (empty for 0.1.0 plugins).
    pub description: String,
    /// Its settings JSON Schema, as JSON text; `None` when it declares none.
    pub settings_schema: Option<String>,
}

/// One of a tenant's installations: a named place in its chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct InstallationRecord {
    pub name: String,
    /// Order in the chain (smaller runs first).
    pub position: i64,
    /// The live release, if any.
    pub active_release: Option<i64>,
    pub created_by: String,
    /// Unix milliseconds.
    pub created_at: i64,
    pub updated_at: i64,
}

/// A release to store: plugin, settings and quota of one installation.
#[derive(Debug, Clone, Copy)]
pub struct NewRelease<'a> {
    pub installation: &'a str,
    pub sha256: &'a str,
    /// The settings document (JSON).
    pub settings: &'a str,
    /// The quota (the runtime's JSON), fixed for the release's life.
    pub quota: &'a str,
    pub note: Option<&'a str>,
    pub created_by: &'a str,
}

/// An immutable release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReleaseRecord {
    pub id: i64,
    pub installation: String,
    pub sha256: String,
    pub settings: String,
    pub quota: String,
    pub note: Option<String>,
    pub created_by: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Whether it has ever been live (a draft has not).
    pub ever_active: bool,
}

/// A live release and its installation's place in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveRelease {
    pub position: i64,
    pub release: ReleaseRecord,
    /// When it was made live (unix milliseconds).
    pub live_since: i64,
}

/// A change of an installation's live release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReleaseEvent {
    pub id: i64,
    pub installation: String,
    /// Live after this change; `None` after a deactivation.
    pub release_id: Option<i64>,
    /// `activate`, `rollback`, `deactivate` or `quota`.
    pub action: String,
    pub actor: String,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// A stock plugin to publish in the platform's catalogue.
#[derive(Debug, Clone, Copy)]
pub struct NewCatalogueEntry<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub sha256: &'a str,
    pub description: &'a str,
    /// Example settings (JSON) for tenants to start from.
    pub settings_example: &'a str,
    pub hooks: &'a [String],
    pub binary: &'a [u8],
    pub published_by: &'a str,
    /// The WIT contract version the component speaks.
    pub wit_version: &'a str,
    /// Its settings JSON Schema (from the component's `describe`).
    pub settings_schema: Option<&'a str>,
}

/// A published stock plugin (without its component).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CatalogueEntry {
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub description: String,
    pub settings_example: serde_json::Value,
    pub hooks: Vec<String>,
    pub size_bytes: u64,
    pub published_by: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// The WIT contract version the component speaks.
    pub wit_version: String,
    /// Its settings JSON Schema, as JSON text; `None` when it declares none.
    pub settings_schema: Option<String>,
}

/// One plugin run to record.
#[derive(Debug, Clone, Copy)]
pub struct NewRun<'a> {
    pub sha256: &'a str,
    /// The installation and release the run belongs to (`None` outside a
    /// tenant's chain).
    pub installation: Option<&'a str>,
    pub release_id: Option<i64>,
    pub hook: &'a str,
    pub outcome: &'a str,
    pub message: Option<&'a str>,
    pub fuel_used: u64,
    pub peak_memory_bytes: u64,
    pub wall_time_us: u64,
    /// The captured log lines, as a JSON value.
    pub logs_json: &'a str,
}

/// A recorded plugin run.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RunRecord {
    pub id: i64,
    pub sha256: String,
    pub installation: Option<String>,
    pub release_id: Option<i64>,
    pub hook: String,
    pub outcome: String,
    pub message: Option<String>,
    pub fuel_used: u64,
    pub peak_memory_bytes: u64,
    pub wall_time_us: u64,
    pub logs: serde_json::Value,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// An audit entry to append. `before` and `after` are JSON snapshots.
#[derive(Debug, Clone, Copy)]
pub struct AuditEntry<'a> {
    pub tenant: &'a TenantId,
    pub actor: &'a str,
    pub action: &'a str,
    pub plugin_sha256: Option<&'a str>,
    pub before: Option<&'a str>,
    pub after: Option<&'a str>,
}

/// A stored audit entry.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AuditRecord {
    pub id: i64,
    pub tenant_id: String,
    pub actor: String,
    pub action: String,
    pub plugin_sha256: Option<String>,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// One UTC day of a tenant's usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct UsageRecord {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    pub requests: i64,
    pub plugin_runs: i64,
    pub fuel_used: i64,
}
