//! Platform administration as use cases: creating and changing tenants, their
//! custom domains and their plugins' quotas — each audited in the tenant's log
//! and followed by the invalidation it needs (host mappings, the tenant's
//! caches) on every node. A new tenant's name, limits and their defaults are
//! checked here ([`new_tenant`]), for the admin API and the CLI alike; other
//! input shapes (ids, domain syntax, quota ranges) are checked by the caller;
//! storage enforces uniqueness. Deletion is [`super::lifecycle`]'s.

use super::{Error, Result};
use crate::runtime::Quota;
use crate::state::AppState;
use crate::storage::{AuditEntry, NewTenant, Storage, TenantPatch, TenantRecord};
use crate::tenancy::TenantId;

/// Default request rate for a new tenant (per second) and burst.
pub const DEFAULT_RATE: u32 = 200;
/// Default request burst for a new tenant.
pub const DEFAULT_BURST: u32 = 400;
/// Default concurrent plugin executions for a new tenant.
pub const DEFAULT_CONCURRENCY: u32 = 4;

/// What a platform admin asks for when creating a tenant (API or CLI); what is
/// left out takes its default.
#[derive(Debug, Clone)]
pub struct TenantSpec {
    pub id: TenantId,
    pub name: String,
    /// The Clerk organisation; `org_<id>` (hyphens as underscores) by default.
    pub org_id: Option<String>,
    pub rate_limit_per_sec: Option<u32>,
    pub rate_limit_burst: Option<u32>,
    pub max_concurrency: Option<u32>,
}

/// Checks the limits given (each between 1 and its maximum).
pub fn check_limits(rate: Option<u32>, burst: Option<u32>, concurrency: Option<u32>) -> Result<()> {
    for (name, value, max) in [
        ("rate_limit_per_sec", rate, 100_000),
        ("rate_limit_burst", burst, 1_000_000),
        ("max_concurrency", concurrency, 1_024),
    ] {
        if let Some(v) = value
            && (v == 0 || v > max)
        {
            return Err(Error::InvalidLimit(format!(
                "{name} must be between 1 and {max}"
            )));
        }
    }
    Ok(())
}

/// The longest organisation id taken (Clerk's are about 30 characters).
const MAX_ORG_ID: usize = 128;

/// Checks an organisation id: 1 to 128 of `A-Z a-z 0-9 _ -` (Clerk's are
/// `org_` and base62).
pub fn check_org_id(org_id: &str) -> Result<()> {
    if org_id.is_empty()
        || org_id.len() > MAX_ORG_ID
        || !org_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(Error::Invalid(format!(
            "org_id must be 1 to {MAX_ORG_ID} of A-Z a-z 0-9 _ - (a Clerk organisation id such as org_2abc…)"
        )));
    }
    Ok(())
}

/// The tenant to create from `spec`: checked, defaults filled in.
pub fn new_tenant(spec: TenantSpec) -> Result<NewTenant> {
    check_limits(
        spec.rate_limit_per_sec,
        spec.rate_limit_burst,
        spec.max_concurrency,
    )?;
    if spec.name.trim().is_empty() || spec.name.len() > 200 {
        return Err(Error::InvalidName(
            "name must be 1 to 200 characters".into(),
        ));
    }
    let org_id = spec
        .org_id
        .unwrap_or_else(|| format!("org_{}", spec.id.as_str().replace('-', "_")));
    check_org_id(&org_id)?;
    Ok(NewTenant {
        id: spec.id,
        org_id,
        name: spec.name,
        rate_limit_per_sec: spec.rate_limit_per_sec.unwrap_or(DEFAULT_RATE),
        rate_limit_burst: spec.rate_limit_burst.unwrap_or(DEFAULT_BURST),
        max_concurrency: spec.max_concurrency.unwrap_or(DEFAULT_CONCURRENCY),
    })
}

/// Creates a tenant in `storage`, audited as `actor`'s, without touching any
/// node's caches (the CLI's way in, on a database no server has cached yet;
/// a server's cached answer for an unknown host lasts its TTL).
pub async fn create_tenant_in(
    storage: &Storage,
    actor: &str,
    new: NewTenant,
) -> Result<TenantRecord> {
    let platform = storage.platform();
    let record = platform.create_tenant(&new).await?;
    let after = serde_json::to_string(&record).unwrap_or_default();
    platform
        .audit(&AuditEntry {
            tenant: &new.id,
            actor,
            action: "tenant.create",
            plugin_sha256: None,
            before: None,
            after: Some(&after),
        })
        .await?;
    Ok(record)
}

fn no_tenant(id: &TenantId) -> Error {
    Error::NotFound(format!("no tenant `{id}`"))
}

/// Creates a tenant, audited as `actor`'s.
pub async fn create_tenant(app: &AppState, actor: &str, new: NewTenant) -> Result<TenantRecord> {
    let record = create_tenant_in(&app.storage, actor, new).await?;
    app.invalidate_hosts();
    Ok(record)
}

/// Changes a tenant's name, organisation, status or limits, audited as
/// `actor`'s (before and after). Every node forgets the tenant's row at once,
/// so a new organisation's tokens are taken, and the old one's refused, from
/// the next request on.
pub async fn update_tenant(
    app: &AppState,
    actor: &str,
    id: &TenantId,
    patch: &TenantPatch,
) -> Result<TenantRecord> {
    if let Some(org_id) = &patch.org_id {
        check_org_id(org_id)?;
    }
    let platform = app.storage.platform();
    let before = platform.tenant(id).await?.ok_or_else(|| no_tenant(id))?;
    let record = platform.update_tenant(id, patch).await?;
    app.invalidate(id);
    app.invalidate_hosts();
    let (before, after) = (
        serde_json::to_string(&before).unwrap_or_default(),
        serde_json::to_string(&record).unwrap_or_default(),
    );
    platform
        .audit(&AuditEntry {
            tenant: id,
            actor,
            action: "tenant.update",
            plugin_sha256: None,
            before: Some(&before),
            after: Some(&after),
        })
        .await?;
    Ok(record)
}

/// Sets the quota (already validated) of a tenant's plugin, audited as
/// `actor`'s; the tenant's caches are invalidated on every node.
pub async fn set_quota(app: &AppState, actor: &str, id: &TenantId, quota: &Quota) -> Result<()> {
    let platform = app.storage.platform();
    platform.tenant(id).await?.ok_or_else(|| no_tenant(id))?;
    let before = platform.quota(id).await?;
    let json = serde_json::to_string(quota).map_err(Error::internal)?;
    platform.set_quota(id, &json).await?;
    app.invalidate(id);
    platform
        .audit(&AuditEntry {
            tenant: id,
            actor,
            action: "quota.update",
            plugin_sha256: None,
            before: before.as_deref(),
            after: Some(&json),
        })
        .await?;
    Ok(())
}
