//! Shadow releases and their runs. An installation may have one draft release
//! in shadow: live calls of the installation also run it, off the request
//! path, sampled at the tenant's rate, and each such run is stored here with
//! how it compared to the live answer. At most [`MAX_SHADOW_RUNS`] runs are
//! kept per release (a report needs no more; later runs are not stored).
//! The tenant's rollout settings (JSON the application reads) live here too.

use sqlx::any::AnyRow;

use super::error::check_json;
use super::session::Access;
use super::tenant::TenantDb;
use super::time::now_ms;
use super::{StorageError, rows};

/// Most shadow runs stored per release.
pub const MAX_SHADOW_RUNS: i64 = 10_000;

/// A release in shadow.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct ShadowRecord {
    pub installation: String,
    pub release_id: i64,
    /// The share of live calls that also run the shadow release, 0 to 1.
    pub rate: f64,
    pub started_by: String,
    /// Unix milliseconds.
    pub started_at: i64,
}

/// One shadow run, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ShadowRun {
    pub installation: String,
    pub release_id: i64,
    pub hook: String,
    /// The shadow step's outcome (`ok`, `out_of_fuel`, `policy_violation`, …).
    pub outcome: String,
    /// Whether the answer with the shadow release differs from the live one.
    pub differs: bool,
    /// For a commission: the live fee and the fee with the shadow release, in
    /// minor units of `currency`.
    pub live_fee: Option<u64>,
    pub shadow_fee: Option<u64>,
    pub currency: Option<String>,
    pub fuel: u64,
    pub memory: u64,
    pub wall_us: u64,
    /// What went wrong, for a failed run.
    pub message: Option<String>,
    /// The input and both answers (JSON), kept for runs that differ or fail.
    pub sample: Option<String>,
    /// Unix milliseconds (set by storage when recording).
    pub created_at: i64,
}

impl TenantDb {
    /// Puts release `release_id` of `installation` in shadow at `rate`,
    /// replacing any release in shadow there. NotFound if the release is not
    /// the installation's; Conflict if it is the live one.
    pub async fn set_shadow(
        &self,
        installation: &str,
        release_id: i64,
        rate: f64,
        actor: &str,
    ) -> Result<ShadowRecord, StorageError> {
        if !(0.0..=1.0).contains(&rate) {
            return Err(StorageError::Invalid(format!(
                "rate {rate} is not between 0 and 1"
            )));
        }
        let Some(record) = self.installation(installation).await? else {
            return Err(StorageError::NotFound(format!(
                "installation `{installation}` does not exist"
            )));
        };
        if record.active_release == Some(release_id) {
            return Err(StorageError::Conflict(format!(
                "release {release_id} is the live release of `{installation}`; shadow a draft"
            )));
        }
        if self.release(installation, release_id).await?.is_none() {
            return Err(StorageError::NotFound(format!(
                "installation `{installation}` has no release {release_id}"
            )));
        }
        let shadow = ShadowRecord {
            installation: installation.to_owned(),
            release_id,
            rate,
            started_by: actor.to_owned(),
            started_at: now_ms(),
        };
        let mut tx = self.begin(Access::Write).await?;
        sqlx::query(
            "INSERT INTO shadows (tenant_id, installation, release_id, rate, started_by, started_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (tenant_id, installation) DO UPDATE SET release_id = excluded.release_id, \
                 rate = excluded.rate, started_by = excluded.started_by, started_at = excluded.started_at",
        )
        .bind(self.tenant_id().as_str())
        .bind(&shadow.installation)
        .bind(shadow.release_id)
        .bind(shadow.rate)
        .bind(&shadow.started_by)
        .bind(shadow.started_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(shadow)
    }

    /// Takes an installation's release out of shadow (its runs stay). Whether
    /// one was in shadow.
    pub async fn remove_shadow(&self, installation: &str) -> Result<bool, StorageError> {
        let mut tx = self.begin(Access::Write).await?;
        let done = sqlx::query("DELETE FROM shadows WHERE tenant_id = $1 AND installation = $2")
            .bind(self.tenant_id().as_str())
            .bind(installation)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Every release in shadow, in installation order.
    pub async fn shadows(&self) -> Result<Vec<ShadowRecord>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let rows = sqlx::query(
            "SELECT installation, release_id, rate, started_by, started_at FROM shadows \
              WHERE tenant_id = $1 ORDER BY installation",
        )
        .bind(self.tenant_id().as_str())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter().map(shadow_from_row).collect()
    }

    /// Records a shadow run, unless its release has [`MAX_SHADOW_RUNS`]
    /// already. Whether it was stored.
    pub async fn record_shadow_run(&self, run: &ShadowRun) -> Result<bool, StorageError> {
        if let Some(sample) = &run.sample {
            check_json("the shadow sample", sample)?;
        }
        let mut tx = self.begin(Access::Write).await?;
        let done = sqlx::query(
            "INSERT INTO shadow_runs (tenant_id, installation, release_id, hook, outcome, differs, \
                                      live_fee, shadow_fee, currency, fuel, memory, wall_us, \
                                      message, sample, created_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15 \
              WHERE (SELECT count(*) FROM shadow_runs WHERE tenant_id = $1 AND release_id = $3) < $16",
        )
        .bind(self.tenant_id().as_str())
        .bind(&run.installation)
        .bind(run.release_id)
        .bind(&run.hook)
        .bind(&run.outcome)
        .bind(i64::from(run.differs))
        .bind(run.live_fee.map(clamp))
        .bind(run.shadow_fee.map(clamp))
        .bind(run.currency.as_deref())
        .bind(clamp(run.fuel))
        .bind(clamp(run.memory))
        .bind(clamp(run.wall_us))
        .bind(run.message.as_deref())
        .bind(run.sample.as_deref())
        .bind(now_ms())
        .bind(MAX_SHADOW_RUNS)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// The shadow runs of a release, oldest first, without their samples.
    pub async fn shadow_runs(&self, release_id: i64) -> Result<Vec<ShadowRun>, StorageError> {
        self.shadow_rows(release_id, false, MAX_SHADOW_RUNS).await
    }

    /// The newest `limit` runs of a release that kept a sample (they differ
    /// or failed), newest first.
    pub async fn shadow_samples(
        &self,
        release_id: i64,
        limit: u32,
    ) -> Result<Vec<ShadowRun>, StorageError> {
        self.shadow_rows(release_id, true, i64::from(limit)).await
    }

    async fn shadow_rows(
        &self,
        release_id: i64,
        samples: bool,
        limit: i64,
    ) -> Result<Vec<ShadowRun>, StorageError> {
        let sql = if samples {
            "SELECT installation, release_id, hook, outcome, differs, live_fee, shadow_fee, currency, \
                    fuel, memory, wall_us, message, sample, created_at FROM shadow_runs \
              WHERE tenant_id = $1 AND release_id = $2 AND sample IS NOT NULL \
              ORDER BY id DESC LIMIT $3"
        } else {
            "SELECT installation, release_id, hook, outcome, differs, live_fee, shadow_fee, currency, \
                    fuel, memory, wall_us, message, NULL AS sample, created_at FROM shadow_runs \
              WHERE tenant_id = $1 AND release_id = $2 ORDER BY id LIMIT $3"
        };
        let mut tx = self.begin(Access::Read).await?;
        let rows = sqlx::query(sql)
            .bind(self.tenant_id().as_str())
            .bind(release_id)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        rows.iter().map(run_from_row).collect()
    }

    /// The tenant's rollout settings (JSON), if it has set any.
    pub async fn rollout_settings(&self) -> Result<Option<String>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let json = sqlx::query_scalar("SELECT json FROM rollout_settings WHERE tenant_id = $1")
            .bind(self.tenant_id().as_str())
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(json)
    }

    /// Replaces the tenant's rollout settings.
    pub async fn set_rollout_settings(&self, json: &str, actor: &str) -> Result<(), StorageError> {
        check_json("the rollout settings", json)?;
        let mut tx = self.begin(Access::Write).await?;
        sqlx::query(
            "INSERT INTO rollout_settings (tenant_id, json, updated_by, updated_at) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant_id) DO UPDATE SET json = excluded.json, \
                 updated_by = excluded.updated_by, updated_at = excluded.updated_at",
        )
        .bind(self.tenant_id().as_str())
        .bind(json)
        .bind(actor)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

fn clamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn shadow_from_row(row: &AnyRow) -> Result<ShadowRecord, StorageError> {
    Ok(ShadowRecord {
        installation: rows::text(row, "installation")?,
        release_id: rows::int(row, "release_id")?,
        rate: sqlx::Row::try_get(row, "rate")?,
        started_by: rows::text(row, "started_by")?,
        started_at: rows::int(row, "started_at")?,
    })
}

fn run_from_row(row: &AnyRow) -> Result<ShadowRun, StorageError> {
    let opt_u64 = |column: &str| -> Result<Option<u64>, StorageError> {
        let value: Option<i64> = sqlx::Row::try_get(row, column)?;
        Ok(value.map(|v| u64::try_from(v).unwrap_or(0)))
    };
    Ok(ShadowRun {
        installation: rows::text(row, "installation")?,
        release_id: rows::int(row, "release_id")?,
        hook: rows::text(row, "hook")?,
        outcome: rows::text(row, "outcome")?,
        differs: rows::int(row, "differs")? != 0,
        live_fee: opt_u64("live_fee")?,
        shadow_fee: opt_u64("shadow_fee")?,
        currency: rows::opt_text(row, "currency")?,
        fuel: rows::u64(row, "fuel")?,
        memory: rows::u64(row, "memory")?,
        wall_us: rows::u64(row, "wall_us")?,
        message: rows::opt_text(row, "message")?,
        sample: rows::opt_text(row, "sample")?,
        created_at: rows::int(row, "created_at")?,
    })
}
