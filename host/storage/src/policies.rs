//! The platform's output policies as stored: opaque JSON (the core crate's
//! `policy::Policy`) per scope, `*` for every tenant or a tenant id. Tenants
//! read theirs and the one for all; only the platform writes.

use veneer_core::tenancy_id::TenantId;

use super::error::check_json;
use super::session::Access;
use super::time::now_ms;
use super::{PlatformDb, StorageError, TenantDb};

/// The scope of the policy for every tenant.
const ALL: &str = "*";

impl PlatformDb {
    /// Sets the policy for `tenant`, or for every tenant when `None`.
    pub async fn set_output_policy(
        &self,
        tenant: Option<&TenantId>,
        json: &str,
        actor: &str,
    ) -> Result<(), StorageError> {
        check_json("the policy", json)?;
        let mut tx = self.begin(Access::Write).await?;
        sqlx::query(
            "INSERT INTO output_policies (scope, json, updated_by, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (scope) DO UPDATE SET json = excluded.json, updated_by = excluded.updated_by, \
                                               updated_at = excluded.updated_at",
        )
        .bind(tenant.map_or(ALL, TenantId::as_str))
        .bind(json)
        .bind(actor)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The policy for `tenant` (or for every tenant when `None`), if set.
    pub async fn output_policy(
        &self,
        tenant: Option<&TenantId>,
    ) -> Result<Option<String>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let json = sqlx::query_scalar("SELECT json FROM output_policies WHERE scope = $1")
            .bind(tenant.map_or(ALL, TenantId::as_str))
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(json)
    }

    /// Removes the policy of a scope. Whether there was one.
    pub async fn remove_output_policy(
        &self,
        tenant: Option<&TenantId>,
    ) -> Result<bool, StorageError> {
        let mut tx = self.begin(Access::Write).await?;
        let done = sqlx::query("DELETE FROM output_policies WHERE scope = $1")
            .bind(tenant.map_or(ALL, TenantId::as_str))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(done > 0)
    }
}

impl TenantDb {
    /// The policies this tenant's plugins' outputs must keep: the one for
    /// every tenant, then its own (each when set).
    pub async fn output_policies(&self) -> Result<Vec<String>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT scope, json FROM output_policies WHERE scope = $1 OR scope = $2",
        )
        .bind(ALL)
        .bind(self.tenant_id().as_str())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut out: Vec<(bool, String)> = rows
            .into_iter()
            .map(|(scope, json)| (scope != ALL, json))
            .collect();
        out.sort_by_key(|(own, _)| *own);
        Ok(out.into_iter().map(|(_, json)| json).collect())
    }
}
