//! The tenant handle: every query it runs is scoped to its tenant twice, by an
//! explicit `tenant_id = $1` and (on PostgreSQL) by row-level security through
//! `app.tenant_id`. This file holds the handle, settings, quota and audit; plugin
//! versions, key-value data and runs live in sibling files as more `impl TenantDb`.

use sqlx::{Any, AnyPool, Row, Transaction};

use super::error::{check_json, tenant_fk};
use super::platform::{audit_columns, audit_from_row, insert_audit};
use super::records::{AuditEntry, AuditRecord, SettingsRecord};
use super::session::{self, Access, Scope};
use super::time::now_ms;
use super::{Backend, KvLimits, StorageError, rows};
use veneer_core::tenancy_id::TenantId;

/// One tenant's data. Obtained from [`Storage::tenant`](super::Storage::tenant);
/// it cannot reach another tenant's rows. Cheap to clone.
#[derive(Debug, Clone)]
pub struct TenantDb {
    pool: AnyPool,
    backend: Backend,
    tenant: TenantId,
    kv_limits: KvLimits,
}

impl TenantDb {
    pub(super) fn new(
        pool: AnyPool,
        backend: Backend,
        tenant: TenantId,
        kv_limits: KvLimits,
    ) -> Self {
        Self {
            pool,
            backend,
            tenant,
            kv_limits,
        }
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

    /// The tenant's plugin settings; `{}` at version 0 if never set.
    pub async fn settings(&self) -> Result<SettingsRecord, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let row = sqlx::query(
            "SELECT json, version, updated_at FROM plugin_settings WHERE tenant_id = $1",
        )
        .bind(self.tenant.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.map(|row| settings_from_row(&row))
            .transpose()
            .map(Option::unwrap_or_default)
    }

    /// Replaces the settings. With `expected_version`, only if the stored version
    /// is still that one (0 for never set): Conflict otherwise, so two editors
    /// cannot silently overwrite each other. Each check-and-write is one
    /// statement, hence atomic on both backends.
    pub async fn set_settings(
        &self,
        json: &str,
        expected_version: Option<i64>,
    ) -> Result<SettingsRecord, StorageError> {
        check_json("the settings", json)?;
        let now = now_ms();
        let mut tx = self.begin(Access::Write).await?;
        let query = match expected_version {
            None => sqlx::query(
                "INSERT INTO plugin_settings (tenant_id, json, version, updated_at) \
                 VALUES ($1, $2, 1, $3) \
                 ON CONFLICT (tenant_id) DO UPDATE SET json = excluded.json, \
                     version = plugin_settings.version + 1, updated_at = excluded.updated_at \
                 RETURNING json, version, updated_at",
            )
            .bind(self.tenant.as_str())
            .bind(json)
            .bind(now),
            Some(0) => sqlx::query(
                "INSERT INTO plugin_settings (tenant_id, json, version, updated_at) \
                 VALUES ($1, $2, 1, $3) \
                 ON CONFLICT (tenant_id) DO NOTHING \
                 RETURNING json, version, updated_at",
            )
            .bind(self.tenant.as_str())
            .bind(json)
            .bind(now),
            Some(expected) => sqlx::query(
                "UPDATE plugin_settings SET json = $2, version = version + 1, updated_at = $3 \
                 WHERE tenant_id = $1 AND version = $4 \
                 RETURNING json, version, updated_at",
            )
            .bind(self.tenant.as_str())
            .bind(json)
            .bind(now)
            .bind(expected),
        };
        let row = query
            .fetch_optional(&mut *tx)
            .await
            .map_err(tenant_fk(&self.tenant))?;
        let Some(row) = row else {
            let current: Option<i64> =
                sqlx::query_scalar("SELECT version FROM plugin_settings WHERE tenant_id = $1")
                    .bind(self.tenant.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
            return Err(StorageError::Conflict(format!(
                "the settings changed meanwhile: you edited version {}, the current one is {}; \
                 reload them and apply your change again",
                expected_version.unwrap_or_default(),
                current.unwrap_or_default()
            )));
        };
        let record = settings_from_row(&row)?;
        tx.commit().await?;
        Ok(record)
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
        let mut tx = self.begin(Access::Read).await?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            audit_columns!(),
            " FROM audit_log WHERE tenant_id = $1 ORDER BY id DESC LIMIT $2"
        ))
        .bind(self.tenant.as_str())
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter().map(audit_from_row).collect()
    }
}

fn settings_from_row(row: &sqlx::any::AnyRow) -> Result<SettingsRecord, StorageError> {
    Ok(SettingsRecord {
        json: row.try_get("json")?,
        version: rows::int(row, "version")?,
        updated_at: rows::int(row, "updated_at")?,
    })
}
