//! Custom domains and their proof. A tenant's claim of a domain starts
//! `pending` with a random token; the application checks DNS for it and marks
//! the claim `verified` (it routes), `failed` (never proven in time), and later
//! `grace` (its record went missing: it still routes for a grace period) or
//! `disabled` (missing past the grace period: it no longer routes). Several
//! tenants may claim one domain; at most one claim is verified (or in grace)
//! at a time — the partial unique index `domains_routed` holds it, so two
//! nodes verifying two claims at once cannot both win.

use sqlx::any::AnyRow;
use veneer_core::tenancy_id::TenantId;

use super::error::is_unique_on;
use super::platform::{missing_tenant, normalize_domain};
use super::session::Access;
use super::time::now_ms;
use super::{PlatformDb, StorageError, rows};

/// A claim's state.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum DomainStatus {
    /// Waiting for its record.
    Pending,
    /// Proven: it routes.
    Verified,
    /// Proven, but its record is missing: it routes until the grace period ends.
    Grace,
    /// Never proven in time.
    Failed,
    /// Its record stayed missing past the grace period: it no longer routes.
    Disabled,
}

impl DomainStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            DomainStatus::Pending => "pending",
            DomainStatus::Verified => "verified",
            DomainStatus::Grace => "grace",
            DomainStatus::Failed => "failed",
            DomainStatus::Disabled => "disabled",
        }
    }

    fn parse(text: &str) -> Result<Self, StorageError> {
        Ok(match text {
            "pending" => DomainStatus::Pending,
            "verified" => DomainStatus::Verified,
            "grace" => DomainStatus::Grace,
            "failed" => DomainStatus::Failed,
            "disabled" => DomainStatus::Disabled,
            other => {
                return Err(StorageError::Invalid(format!(
                    "stored domain status `{other}` is unknown"
                )));
            }
        })
    }

    /// Whether a domain in this state is served.
    pub fn routes(self) -> bool {
        matches!(self, DomainStatus::Verified | DomainStatus::Grace)
    }
}

/// One tenant's claim of a domain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct DomainRecord {
    pub domain: String,
    pub tenant_id: String,
    pub status: DomainStatus,
    /// What the TXT record must hold (`veneer-verify=<token>`).
    pub token: String,
    /// Unix milliseconds.
    pub created_at: i64,
    pub verified_at: Option<i64>,
    pub last_checked_at: Option<i64>,
    /// What the last check found, in words.
    pub last_result: Option<String>,
    /// While in grace: since when its record has been missing.
    pub missing_since: Option<i64>,
}

macro_rules! domain_columns {
    () => {
        "domain, tenant_id, status, token, created_at, verified_at, last_checked_at, last_result, \
         missing_since"
    };
}

impl PlatformDb {
    /// Claims `domain` for `tenant` with `token` (a fresh claim is pending);
    /// an existing claim of the tenant's is returned as it is. Conflict when
    /// another tenant has it verified; NotFound if the tenant does not exist.
    pub async fn claim_domain(
        &self,
        domain: &str,
        tenant: &TenantId,
        token: &str,
    ) -> Result<(DomainRecord, bool), StorageError> {
        let domain = normalize_domain(domain)?;
        let mut tx = self.begin(Access::Write).await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM tenants WHERE id = $1")
            .bind(tenant.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(missing_tenant(tenant));
        }
        let claims = sqlx::query(concat!(
            "SELECT ",
            domain_columns!(),
            " FROM domains WHERE domain = $1"
        ))
        .bind(domain.as_str())
        .fetch_all(&mut *tx)
        .await?;
        for row in &claims {
            let claim = from_row(row)?;
            if claim.tenant_id == tenant.as_str() {
                tx.commit().await?;
                return Ok((claim, false));
            }
            if claim.status.routes() {
                return Err(taken(&domain));
            }
        }
        let now = now_ms();
        sqlx::query(
            "INSERT INTO domains (domain, tenant_id, status, token, created_at, last_result) \
             VALUES ($1, $2, 'pending', $3, $4, 'not checked yet')",
        )
        .bind(domain.as_str())
        .bind(tenant.as_str())
        .bind(token)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(concat!(
            "SELECT ",
            domain_columns!(),
            " FROM domains WHERE domain = $1 AND tenant_id = $2"
        ))
        .bind(domain.as_str())
        .bind(tenant.as_str())
        .fetch_one(&mut *tx)
        .await?;
        let claim = from_row(&row)?;
        tx.commit().await?;
        Ok((claim, true))
    }

    /// Removes a tenant's claim of a domain; false if it had none.
    pub async fn remove_domain(
        &self,
        domain: &str,
        tenant: &TenantId,
    ) -> Result<bool, StorageError> {
        let Ok(domain) = normalize_domain(domain) else {
            return Ok(false);
        };
        let mut tx = self.begin(Access::Write).await?;
        let done = sqlx::query("DELETE FROM domains WHERE domain = $1 AND tenant_id = $2")
            .bind(domain.as_str())
            .bind(tenant.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// A tenant's domain claims, sorted by domain.
    pub async fn domains(&self, tenant: &TenantId) -> Result<Vec<DomainRecord>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            domain_columns!(),
            " FROM domains WHERE tenant_id = $1 ORDER BY domain"
        ))
        .bind(tenant.as_str())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter().map(from_row).collect()
    }

    /// One tenant's claim of a domain.
    pub async fn domain(
        &self,
        domain: &str,
        tenant: &TenantId,
    ) -> Result<Option<DomainRecord>, StorageError> {
        let Ok(domain) = normalize_domain(domain) else {
            return Ok(None);
        };
        let mut tx = self.begin(Access::Read).await?;
        let row = sqlx::query(concat!(
            "SELECT ",
            domain_columns!(),
            " FROM domains WHERE domain = $1 AND tenant_id = $2"
        ))
        .bind(domain.as_str())
        .bind(tenant.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Records a check of a claim: its new status and what was found.
    /// `verified_at` is set when it becomes verified, `missing_since` while in
    /// grace. Conflict when it would become the second routed claim of the
    /// domain (another tenant's was verified meanwhile).
    pub async fn record_domain_check(
        &self,
        domain: &str,
        tenant: &TenantId,
        status: DomainStatus,
        result: &str,
        missing_since: Option<i64>,
    ) -> Result<(), StorageError> {
        let now = now_ms();
        let mut tx = self.begin(Access::Write).await?;
        sqlx::query(
            "UPDATE domains SET status = $3, last_checked_at = $4, last_result = $5, \
                    missing_since = $6, \
                    verified_at = CASE WHEN $3 = 'verified' AND status <> 'verified' AND status <> 'grace' \
                                       THEN $4 ELSE verified_at END \
              WHERE domain = $1 AND tenant_id = $2",
        )
        .bind(domain)
        .bind(tenant.as_str())
        .bind(status.as_str())
        .bind(now)
        .bind(result)
        .bind(missing_since)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_on(&e, "domains_routed", "domains.domain") {
                taken(domain)
            } else {
                StorageError::from(e)
            }
        })?;
        tx.commit().await?;
        Ok(())
    }
}

fn taken(domain: &str) -> StorageError {
    StorageError::Conflict(format!(
        "domain `{domain}` is verified for another tenant; it must be removed there first"
    ))
}

fn from_row(row: &AnyRow) -> Result<DomainRecord, StorageError> {
    Ok(DomainRecord {
        domain: rows::text(row, "domain")?,
        tenant_id: rows::text(row, "tenant_id")?,
        status: DomainStatus::parse(&rows::text(row, "status")?)?,
        token: rows::text(row, "token")?,
        created_at: rows::int(row, "created_at")?,
        verified_at: sqlx::Row::try_get(row, "verified_at")?,
        last_checked_at: sqlx::Row::try_get(row, "last_checked_at")?,
        last_result: rows::opt_text(row, "last_result")?,
        missing_since: sqlx::Row::try_get(row, "missing_since")?,
    })
}
