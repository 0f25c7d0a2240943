//! What the Clerk integration keeps: the Svix message ids of webhook
//! deliveries already handled (platform bookkeeping, pruned past Svix's retry
//! schedule) and, per tenant, the members whose membership or role changed,
//! with the time before which their tokens no longer count. Platform handle
//! only: a delivery names an organisation, and a request reads its caller's
//! revocation before the tenant's state is loaded.

use std::time::Duration;

use super::StorageError;
use super::error::tenant_fk;
use super::platform::PlatformDb;
use super::session::Access;
use super::time::now_ms;
use veneer_core::tenancy_id::TenantId;

/// How long a delivery's id is remembered: past Svix's whole retry schedule
/// (about three days), so a retry of a handled message is never acted on again.
pub const CLERK_DELIVERY_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// The longest svix id, event type or user id stored.
const MAX_ID: usize = 256;

fn check(what: &str, value: &str) -> Result<(), StorageError> {
    if value.is_empty() || value.len() > MAX_ID || value.chars().any(char::is_control) {
        return Err(StorageError::Invalid(format!(
            "{what} must be 1 to {MAX_ID} printable characters"
        )));
    }
    Ok(())
}

impl PlatformDb {
    /// Records a delivery of Clerk webhook `svix_id` (and prunes the ids past
    /// [`CLERK_DELIVERY_RETENTION`]); true the first time the id is seen, false
    /// for a retry or replay, which must be acknowledged and not acted on.
    pub async fn record_clerk_delivery(
        &self,
        svix_id: &str,
        event_type: &str,
    ) -> Result<bool, StorageError> {
        check("svix id", svix_id)?;
        check("event type", event_type)?;
        let now = now_ms();
        let retention = i64::try_from(CLERK_DELIVERY_RETENTION.as_millis()).unwrap_or(i64::MAX);
        let mut tx = self.begin(Access::Write).await?;
        sqlx::query("DELETE FROM clerk_webhook_deliveries WHERE received_at < $1")
            .bind(now.saturating_sub(retention))
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query(
            "INSERT INTO clerk_webhook_deliveries (svix_id, event_type, received_at) \
             VALUES ($1, $2, $3) ON CONFLICT (svix_id) DO NOTHING",
        )
        .bind(svix_id)
        .bind(event_type)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Forgets a delivery, so Svix's retry of it is acted on: for when acting
    /// on it failed. False if it was not recorded.
    pub async fn forget_clerk_delivery(&self, svix_id: &str) -> Result<bool, StorageError> {
        let mut tx = self.begin(Access::Write).await?;
        let done = sqlx::query("DELETE FROM clerk_webhook_deliveries WHERE svix_id = $1")
            .bind(svix_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Refuses `user`'s tokens for `tenant` issued before `before` (Unix ms);
    /// an earlier time already stored is moved forward, a later one kept.
    /// Revocations older than `forget_before` (no token that old is still
    /// accepted) are pruned. Returns the time now in force.
    pub async fn revoke_member(
        &self,
        tenant: &TenantId,
        user: &str,
        before: i64,
        forget_before: i64,
    ) -> Result<i64, StorageError> {
        check("user id", user)?;
        let mut tx = self.begin(Access::Write).await?;
        sqlx::query("DELETE FROM member_revocations WHERE revoked_before < $1")
            .bind(forget_before)
            .execute(&mut *tx)
            .await?;
        let in_force: i64 = sqlx::query_scalar(
            "INSERT INTO member_revocations (tenant_id, user_id, revoked_before) \
             VALUES ($1, $2, $3) \
             ON CONFLICT (tenant_id, user_id) DO UPDATE SET revoked_before = \
                 CASE WHEN excluded.revoked_before > member_revocations.revoked_before \
                      THEN excluded.revoked_before ELSE member_revocations.revoked_before END \
             RETURNING revoked_before",
        )
        .bind(tenant.as_str())
        .bind(user)
        .bind(before)
        .fetch_one(&mut *tx)
        .await
        .map_err(tenant_fk(tenant))?;
        tx.commit().await?;
        Ok(in_force)
    }

    /// The time before which `user`'s tokens for `tenant` are refused, if any.
    pub async fn member_revoked_before(
        &self,
        tenant: &TenantId,
        user: &str,
    ) -> Result<Option<i64>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let before = sqlx::query_scalar(
            "SELECT revoked_before FROM member_revocations WHERE tenant_id = $1 AND user_id = $2",
        )
        .bind(tenant.as_str())
        .bind(user)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(before)
    }
}
