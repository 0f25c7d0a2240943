//! The end of a tenant's life as use cases: deletion (soft: the tenant stops
//! being served and its jobs stop, its rows stay until its grace period,
//! `--tenant-purge-grace-secs`, is over), restoration within that period, and
//! the purge after it — every row of the tenant in every table (storage's
//! [`purge_tenant`](crate::storage::PlatformDb::purge_tenant)), then the
//! compiled artifacts no tenant needs any more. Each step invalidates the
//! tenant's caches and the host mappings on every node.
//!
//! Deletion and restoration are audited in the tenant's own log, which the
//! purge removes with everything else: what is left of a purged tenant is the
//! `tenant purged` line of the purging node's log (tenant id, actor, rows per
//! table), nothing in the database.

use super::{Result, jobs::now_ms};
use crate::state::AppState;
use crate::storage::{AuditEntry, PURGE_BATCH, PurgeReport, TenantRecord};
use crate::tenancy::TenantId;

/// Deleted tenants purged per sweep at most (the next sweep takes the rest).
const PURGES_PER_SWEEP: u32 = 10;

/// Deletes a live tenant, audited as `actor`'s: it is purged after the grace
/// period unless restored before.
pub async fn delete_tenant(app: &AppState, actor: &str, id: &TenantId) -> Result<TenantRecord> {
    let grace_ms =
        i64::try_from(app.config.tenant_purge_grace_secs.saturating_mul(1_000)).unwrap_or(i64::MAX);
    let record = app
        .storage
        .platform()
        .delete_tenant(id, now_ms().saturating_add(grace_ms))
        .await?;
    app.invalidate(id);
    app.invalidate_hosts();
    audit(app, actor, id, "tenant.delete", &record).await?;
    Ok(record)
}

/// Restores a deleted tenant within its grace period, audited as `actor`'s.
pub async fn restore_tenant(app: &AppState, actor: &str, id: &TenantId) -> Result<TenantRecord> {
    let record = app.storage.platform().restore_tenant(id).await?;
    app.invalidate(id);
    app.invalidate_hosts();
    audit(app, actor, id, "tenant.restore", &record).await?;
    Ok(record)
}

/// Purges a deleted tenant now, grace period or not.
pub async fn purge_tenant(app: &AppState, actor: &str, id: &TenantId) -> Result<PurgeReport> {
    app.storage.platform().purge_tenant_at(id, now_ms()).await?;
    purge(app, actor, id).await
}

/// One round of the periodic sweep: purges the deleted tenants whose grace
/// period is over, then removes the compiled artifacts of this node that no
/// tenant needs any more (also those of a purge another node ran).
pub async fn sweep(app: &AppState) -> Result<Vec<PurgeReport>> {
    let due = app
        .storage
        .platform()
        .tenants_due_for_purge(now_ms(), PURGES_PER_SWEEP)
        .await?;
    let mut reports = Vec::with_capacity(due.len());
    for id in due {
        reports.push(purge(app, "veneer", &id).await?);
    }
    if reports.is_empty() {
        remove_unused_artifacts(app).await?;
    }
    Ok(reports)
}

async fn purge(app: &AppState, actor: &str, id: &TenantId) -> Result<PurgeReport> {
    let report = app.storage.platform().purge_tenant(id, PURGE_BATCH).await?;
    app.invalidate(id);
    app.invalidate_hosts();
    let artifacts = remove_unused_artifacts(app).await?;
    let backups = super::backups::remove_backups(app, id);
    tracing::info!(tenant = %id, actor, rows = ?report.rows, artifacts, backups, "tenant purged");
    Ok(report)
}

/// Removes this node's compiled artifacts of plugins no tenant stores and the
/// catalogue does not offer; how many files went.
async fn remove_unused_artifacts(app: &AppState) -> Result<usize> {
    let keep = app.storage.platform().plugin_shas_in_use().await?;
    Ok(app
        .runtime
        .remove_unused_artifacts(&|sha| keep.contains(sha)))
}

async fn audit(
    app: &AppState,
    actor: &str,
    id: &TenantId,
    action: &str,
    record: &TenantRecord,
) -> Result<()> {
    let after = serde_json::to_string(record).unwrap_or_default();
    app.storage
        .platform()
        .audit(&AuditEntry {
            tenant: id,
            actor,
            action,
            plugin_sha256: None,
            before: None,
            after: Some(&after),
        })
        .await?;
    Ok(())
}
