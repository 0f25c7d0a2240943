//! Recorded hook calls, for replay: per tenant, a sample of its hook calls
//! with their input (redacted by the application before it gets here), the
//! answer served and the chain that served it. A record lives until its
//! `expires_at` (the tenant's retention); expired ones are purged as new ones
//! are written, and a tenant holds at most [`MAX_RECORDS`].

use sqlx::any::AnyRow;

use super::error::check_json;
use super::session::Access;
use super::tenant::TenantDb;
use super::time::now_ms;
use super::{StorageError, rows};

/// Most records a tenant holds (later ones are not stored until older ones
/// expire).
pub const MAX_RECORDS: i64 = 50_000;

/// A hook call to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewHookRecord<'a> {
    pub hook: &'a str,
    /// JSON, already redacted.
    pub input: &'a str,
    /// JSON: what was served.
    pub output: &'a str,
    pub outcome: &'a str,
    /// JSON: the chain's steps (installation, release, plugin, outcome).
    pub chain: &'a str,
    pub fuel: u64,
    /// Unix milliseconds after which it is purged.
    pub expires_at: i64,
}

/// A stored record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HookRecord {
    pub id: i64,
    pub hook: String,
    pub input: String,
    pub output: String,
    pub outcome: String,
    pub chain: String,
    pub fuel: u64,
    pub created_at: i64,
}

impl TenantDb {
    /// Purges the tenant's expired records and stores this one, unless the
    /// tenant holds [`MAX_RECORDS`] already. Whether it was stored.
    pub async fn record_hook_call(&self, record: &NewHookRecord<'_>) -> Result<bool, StorageError> {
        for (what, json) in [
            ("the input", record.input),
            ("the output", record.output),
            ("the chain", record.chain),
        ] {
            check_json(what, json)?;
        }
        let now = now_ms();
        let mut tx = self.begin(Access::Write).await?;
        sqlx::query("DELETE FROM hook_records WHERE tenant_id = $1 AND expires_at < $2")
            .bind(self.tenant_id().as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query(
            "INSERT INTO hook_records (tenant_id, hook, input, output, outcome, chain, fuel, \
                                       created_at, expires_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 \
              WHERE (SELECT count(*) FROM hook_records WHERE tenant_id = $1) < $10",
        )
        .bind(self.tenant_id().as_str())
        .bind(record.hook)
        .bind(record.input)
        .bind(record.output)
        .bind(record.outcome)
        .bind(record.chain)
        .bind(i64::try_from(record.fuel).unwrap_or(i64::MAX))
        .bind(now)
        .bind(record.expires_at)
        .bind(MAX_RECORDS)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// The newest `limit` unexpired records of `hook` made since `since_ms`,
    /// newest first.
    pub async fn recent_hook_records(
        &self,
        hook: &str,
        since_ms: i64,
        limit: u32,
    ) -> Result<Vec<HookRecord>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let rows = sqlx::query(
            "SELECT id, hook, input, output, outcome, chain, fuel, created_at FROM hook_records \
              WHERE tenant_id = $1 AND hook = $2 AND created_at >= $3 AND expires_at >= $4 \
              ORDER BY id DESC LIMIT $5",
        )
        .bind(self.tenant_id().as_str())
        .bind(hook)
        .bind(since_ms)
        .bind(now_ms())
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter().map(from_row).collect()
    }

    /// Up to `limit` unexpired records with ids above `after`, oldest first.
    pub async fn hook_records(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<HookRecord>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let rows = sqlx::query(
            "SELECT id, hook, input, output, outcome, chain, fuel, created_at FROM hook_records \
              WHERE tenant_id = $1 AND id > $2 AND expires_at >= $3 ORDER BY id LIMIT $4",
        )
        .bind(self.tenant_id().as_str())
        .bind(after)
        .bind(now_ms())
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter().map(from_row).collect()
    }
}

fn from_row(row: &AnyRow) -> Result<HookRecord, StorageError> {
    Ok(HookRecord {
        id: rows::int(row, "id")?,
        hook: rows::text(row, "hook")?,
        input: rows::text(row, "input")?,
        output: rows::text(row, "output")?,
        outcome: rows::text(row, "outcome")?,
        chain: rows::text(row, "chain")?,
        fuel: rows::u64(row, "fuel")?,
        created_at: rows::int(row, "created_at")?,
    })
}
