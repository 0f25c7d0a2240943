//! Platform administration as use cases: creating and changing tenants, their
//! custom domains and their plugins' quotas — each audited in the tenant's log
//! and followed by the invalidation it needs (host mappings, the tenant's
//! caches) on every node. Input shapes (ids, limits, domain syntax, quota
//! ranges) are checked by the caller; storage enforces uniqueness.

use super::{Error, Result};
use crate::runtime::Quota;
use crate::state::AppState;
use crate::storage::{AuditEntry, NewTenant, TenantPatch, TenantRecord};
use crate::tenancy::TenantId;

fn no_tenant(id: &TenantId) -> Error {
    Error::NotFound(format!("no tenant `{id}`"))
}

/// Creates a tenant, audited as `actor`'s.
pub async fn create_tenant(app: &AppState, actor: &str, new: NewTenant) -> Result<TenantRecord> {
    let platform = app.storage.platform();
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
    app.invalidate_hosts();
    Ok(record)
}

/// Changes a tenant's name, status or limits, audited as `actor`'s.
pub async fn update_tenant(
    app: &AppState,
    actor: &str,
    id: &TenantId,
    patch: &TenantPatch,
) -> Result<TenantRecord> {
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
