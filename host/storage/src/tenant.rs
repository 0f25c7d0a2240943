//! The tenant handle: every query it runs is scoped to its tenant twice, by an
//! explicit `tenant_id = $1` and (on PostgreSQL) by row-level security through
//! `app.tenant_id`. This file holds the handle, settings, quota and audit; plugin
//! versions, key-value data and runs live in sibling files as more `impl TenantDb`.

use sqlx::{Any, AnyPool, Transaction};

use super::platform::{audit_columns, audit_from_row, insert_audit};
use super::records::{AuditEntry, AuditRecord};
use super::session::{self, Access, Scope};
use super::{Backend, KvLimits, StorageError};
use veneer_core::tenancy_id::TenantId;

/// One tenant's data. Obtained from [`Storage::tenant`](super::Storage::tenant);
/// it cannot reach another tenant's rows. Cheap to clone.
#[derive(Debug, Clone)]
pub struct TenantDb {
    pool: AnyPool,
    backend: Backend,
    tenant: TenantId,
    kv_limits: KvLimits,
    plugin_limits: super::PluginStoreLimits,
}

impl TenantDb {
    pub(super) fn new(
        pool: AnyPool,
        backend: Backend,
        tenant: TenantId,
        kv_limits: KvLimits,
        plugin_limits: super::PluginStoreLimits,
    ) -> Self {
        Self {
            pool,
            backend,
            tenant,
            kv_limits,
            plugin_limits,
        }
    }

    /// The caps every plugin upload is checked against.
    pub fn plugin_limits(&self) -> super::PluginStoreLimits {
        self.plugin_limits
    }

    /// The caps every key-value write is checked against.
    pub fn kv_limits(&self) -> KvLimits {
        self.kv_limits
    }

    /// The tenant this handle is bound to.
    pub fn tenant_id(&self) -> &TenantId {
        &self.tenant
    }

    pub(super) fn backend(&self) -> Backend {
        self.backend
    }

    /// A transaction scoped to this tenant.
    pub(super) async fn begin(
        &self,
        access: Access,
    ) -> Result<Transaction<'static, Any>, StorageError> {
        session::begin(
            &self.pool,
            self.backend,
            Scope::Tenant(&self.tenant),
            access,
        )
        .await
    }

    /// The runtime quota the platform set for this tenant, if any (opaque JSON).
    pub async fn quota(&self) -> Result<Option<String>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let json = sqlx::query_scalar("SELECT json FROM quotas WHERE tenant_id = $1")
            .bind(self.tenant.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(json)
    }

    /// Appends an audit entry for this tenant. `before` and `after` are JSON.
    pub async fn audit(
        &self,
        actor: &str,
        action: &str,
        plugin_sha256: Option<&str>,
        before: Option<&str>,
        after: Option<&str>,
    ) -> Result<(), StorageError> {
        let mut tx = self.begin(Access::Write).await?;
        insert_audit(
            &mut tx,
            &AuditEntry {
                tenant: &self.tenant,
                actor,
                action,
                plugin_sha256,
                before,
                after,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// This tenant's newest `limit` audit entries.
    pub async fn audit_log(&self, limit: u32) -> Result<Vec<AuditRecord>, StorageError> {
        self.audit_page(None, limit).await
    }

    /// This tenant's newest `limit` audit entries older than entry `before`
    /// (a cursor: the last id of the previous page), newest first.
    pub async fn audit_page(
        &self,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            audit_columns!(),
            " FROM audit_log WHERE tenant_id = $1 AND id < $3 ORDER BY id DESC LIMIT $2"
        ))
        .bind(self.tenant.as_str())
        .bind(i64::from(limit))
        .bind(before.unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter().map(audit_from_row).collect()
    }
}
