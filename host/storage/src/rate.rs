//! Shared request-rate windows for the global rate-limit mode: one counter per
//! tenant and window in `rate_windows`, taken in blocks by the nodes. Platform
//! scope: the counters are the platform's bookkeeping, not tenant data.

use sqlx::Row;

use super::session::Access;
use super::{PlatformDb, StorageError};
use veneer_core::tenancy_id::TenantId;

impl PlatformDb {
    /// Adds `take` to the tenant's counter for the window starting at
    /// `window_start_ms` and returns the counter before and after, atomically
    /// across nodes (`ON CONFLICT DO UPDATE` serialises on the row).
    pub async fn take_rate(
        &self,
        tenant: &TenantId,
        window_start_ms: i64,
        take: i64,
    ) -> Result<(i64, i64), StorageError> {
        let mut tx = self.begin(Access::Write).await?;
        let row = sqlx::query(
            "INSERT INTO rate_windows (tenant_id, window_start, count) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant_id, window_start) \
             DO UPDATE SET count = rate_windows.count + excluded.count \
             RETURNING count",
        )
        .bind(tenant.as_str())
        .bind(window_start_ms)
        .bind(take)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        let after: i64 = row.try_get("count")?;
        Ok((after - take, after))
    }

    /// Deletes the tenant's windows that started before `before_ms`.
    pub async fn prune_rate_windows(
        &self,
        tenant: &TenantId,
        before_ms: i64,
    ) -> Result<(), StorageError> {
        let mut tx = self.begin(Access::Write).await?;
        sqlx::query("DELETE FROM rate_windows WHERE tenant_id = $1 AND window_start < $2")
            .bind(tenant.as_str())
            .bind(before_ms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
