//! A tenant's telemetry: recorded plugin runs (kept to a bounded number by
//! pruning) and daily usage counters (incremented by upserts, one row per UTC day).

use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

use super::error::{check_json, tenant_fk, to_i64};
use super::records::{NewRun, RunRecord, UsageRecord};
use super::session::Access;
use super::tenant::TenantDb;
use super::time::{now_ms, utc_day, utc_day_before};
use super::{StorageError, rows};
use veneer_core::tenancy_id::TenantId;

impl TenantDb {
    /// Records one plugin run and returns its id. `logs_json` must be JSON.
    pub async fn record_run(&self, run: &NewRun<'_>) -> Result<i64, StorageError> {
        check_json("the run's logs", run.logs_json)?;
        let mut tx = self.begin(Access::Write).await?;
        let id = insert_run(&mut tx, self.tenant_id(), run).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Writes what the usage recorder gathered for this tenant in one
    /// transaction: `runs` (oldest first), the usage increments, and, when
    /// `prune_to` is given, the pruning of all but the newest that many runs.
    /// A run whose logs are not JSON fails the whole batch before anything is written.
    pub async fn record_batch(
        &self,
        runs: &[NewRun<'_>],
        usage: UsageDelta,
        prune_to: Option<u32>,
    ) -> Result<(), StorageError> {
        for run in runs {
            check_json("the run's logs", run.logs_json)?;
        }
        usage.check()?;
        let mut tx = self.begin(Access::Write).await?;
        for run in runs {
            insert_run(&mut tx, self.tenant_id(), run).await?;
        }
        upsert_usage(&mut tx, self.tenant_id(), usage).await?;
        if let Some(keep) = prune_to {
            delete_old_runs(&mut tx, self.tenant_id(), keep).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The newest `limit` runs, newest first.
    pub async fn runs(&self, limit: u32) -> Result<Vec<RunRecord>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let rows = sqlx::query(
            "SELECT id, sha256, installation, release_id, hook, outcome, message, fuel_used, \
                    peak_memory_bytes, wall_time_us, logs, created_at \
               FROM plugin_runs WHERE tenant_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(self.tenant_id().as_str())
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter().map(run_from_row).collect()
    }

    /// What the newest `limit` recorded runs of one installation used:
    /// (fuel, peak memory bytes, wall time µs, outcome), newest first. For
    /// headroom figures; the run log is a sample under load.
    pub async fn installation_run_figures(
        &self,
        installation: &str,
        limit: u32,
    ) -> Result<Vec<(u64, u64, u64, String)>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let rows = sqlx::query(
            "SELECT fuel_used, peak_memory_bytes, wall_time_us, outcome FROM plugin_runs \
              WHERE tenant_id = $1 AND installation = $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(self.tenant_id().as_str())
        .bind(installation)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter()
            .map(|row| {
                Ok((
                    rows::u64(row, "fuel_used")?,
                    rows::u64(row, "peak_memory_bytes")?,
                    rows::u64(row, "wall_time_us")?,
                    rows::text(row, "outcome")?,
                ))
            })
            .collect()
    }

    /// Deletes all but the newest `keep` runs; returns how many went.
    pub async fn prune_runs(&self, keep: u32) -> Result<u64, StorageError> {
        let mut tx = self.begin(Access::Write).await?;
        let done = delete_old_runs(&mut tx, self.tenant_id(), keep).await?;
        tx.commit().await?;
        Ok(done)
    }

    /// Adds to today's (UTC) usage counters. Increments must not be negative.
    pub async fn add_usage(
        &self,
        requests: i64,
        plugin_runs: i64,
        fuel: i64,
    ) -> Result<(), StorageError> {
        let usage = UsageDelta {
            requests,
            plugin_runs,
            fuel,
        };
        usage.check()?;
        let mut tx = self.begin(Access::Write).await?;
        upsert_usage(&mut tx, self.tenant_id(), usage).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Usage of the last `days` UTC days (today included), oldest first; days
    /// without activity have no row.
    pub async fn usage(&self, days: u32) -> Result<Vec<UsageRecord>, StorageError> {
        if days == 0 {
            return Ok(Vec::new());
        }
        let since = utc_day_before(now_ms(), days - 1);
        let mut tx = self.begin(Access::Read).await?;
        let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
            "SELECT day, requests, plugin_runs, fuel_used FROM usage \
              WHERE tenant_id = $1 AND day >= $2 ORDER BY day",
        )
        .bind(self.tenant_id().as_str())
        .bind(since)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rows
            .into_iter()
            .map(|(day, requests, plugin_runs, fuel_used)| UsageRecord {
                day,
                requests,
                plugin_runs,
                fuel_used,
            })
            .collect())
    }
}

/// Increments of a tenant's usage counters for today (UTC).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageDelta {
    /// Requests served.
    pub requests: i64,
    /// Plugin runs.
    pub plugin_runs: i64,
    /// Fuel those runs used.
    pub fuel: i64,
}

impl UsageDelta {
    fn check(&self) -> Result<(), StorageError> {
        if self.requests < 0 || self.plugin_runs < 0 || self.fuel < 0 {
            return Err(StorageError::Invalid(
                "usage only grows: requests, plugin runs and fuel must not be negative".into(),
            ));
        }
        Ok(())
    }
}

async fn insert_run(
    tx: &mut Transaction<'static, Any>,
    tenant: &TenantId,
    run: &NewRun<'_>,
) -> Result<i64, StorageError> {
    sqlx::query_scalar(
        "INSERT INTO plugin_runs (tenant_id, sha256, installation, release_id, hook, outcome, \
                                  message, fuel_used, peak_memory_bytes, wall_time_us, logs, \
                                  created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
    )
    .bind(tenant.as_str())
    .bind(run.sha256)
    .bind(run.installation)
    .bind(run.release_id)
    .bind(run.hook)
    .bind(run.outcome)
    .bind(run.message)
    .bind(to_i64("fuel_used", run.fuel_used)?)
    .bind(to_i64("peak_memory_bytes", run.peak_memory_bytes)?)
    .bind(to_i64("wall_time_us", run.wall_time_us)?)
    .bind(run.logs_json)
    .bind(now_ms())
    .fetch_one(&mut **tx)
    .await
    .map_err(tenant_fk(tenant))
}

async fn upsert_usage(
    tx: &mut Transaction<'static, Any>,
    tenant: &TenantId,
    usage: UsageDelta,
) -> Result<(), StorageError> {
    sqlx::query(
        "INSERT INTO usage (tenant_id, day, requests, plugin_runs, fuel_used) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (tenant_id, day) DO UPDATE SET \
             requests = usage.requests + excluded.requests, \
             plugin_runs = usage.plugin_runs + excluded.plugin_runs, \
             fuel_used = usage.fuel_used + excluded.fuel_used",
    )
    .bind(tenant.as_str())
    .bind(utc_day(now_ms()))
    .bind(usage.requests)
    .bind(usage.plugin_runs)
    .bind(usage.fuel)
    .execute(&mut **tx)
    .await
    .map_err(tenant_fk(tenant))?;
    Ok(())
}

async fn delete_old_runs(
    tx: &mut Transaction<'static, Any>,
    tenant: &TenantId,
    keep: u32,
) -> Result<u64, StorageError> {
    // The (keep+1)-th newest id and everything older go. With fewer runs the
    // subquery is NULL and the comparison deletes nothing.
    let done = sqlx::query(
        "DELETE FROM plugin_runs WHERE tenant_id = $1 AND id <= \
           (SELECT id FROM plugin_runs WHERE tenant_id = $1 \
             ORDER BY id DESC LIMIT 1 OFFSET $2)",
    )
    .bind(tenant.as_str())
    .bind(i64::from(keep))
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected())
}

fn run_from_row(row: &AnyRow) -> Result<RunRecord, StorageError> {
    Ok(RunRecord {
        id: rows::int(row, "id")?,
        sha256: rows::text(row, "sha256")?,
        installation: rows::opt_text(row, "installation")?,
        release_id: sqlx::Row::try_get(row, "release_id")?,
        hook: rows::text(row, "hook")?,
        outcome: rows::text(row, "outcome")?,
        message: rows::opt_text(row, "message")?,
        fuel_used: rows::u64(row, "fuel_used")?,
        peak_memory_bytes: rows::u64(row, "peak_memory_bytes")?,
        wall_time_us: rows::u64(row, "wall_time_us")?,
        logs: rows::json(row, "logs")?,
        created_at: rows::int(row, "created_at")?,
    })
}
