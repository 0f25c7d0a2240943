//! The platform handle: tenants, their domains and quotas, and the whole audit
//! log. Runs in platform mode (`app.platform = on` on PostgreSQL), so it is for
//! admin operations and host lookups only, never for serving a tenant's data.

use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, Row as _, Transaction};

use super::error::{check_json, is_unique_on};
use super::records::{AuditEntry, AuditRecord, NewTenant, TenantPatch, TenantRecord};
use super::session::{self, Access, Scope};
use super::time::now_ms;
use super::{Backend, StorageError, rows};
use veneer_core::tenancy_id::TenantId;

/// The columns of `tenants`, in the order [`tenant_from_row`] reads them.
macro_rules! tenant_columns {
    () => {
        "id, org_id, name, status, rate_limit_per_sec, rate_limit_burst, max_concurrency, \
         created_at, updated_at, deleted_at, purge_after"
    };
}
pub(super) use tenant_columns;

/// The columns of `audit_log`, in the order [`audit_from_row`] reads them.
macro_rules! audit_columns {
    () => {
        "id, tenant_id, actor, action, plugin_sha256, before, after, created_at"
    };
}
pub(super) use audit_columns;

/// Admin operations and host lookups, across tenants. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PlatformDb {
    pool: AnyPool,
    backend: Backend,
}

impl PlatformDb {
    pub(super) fn new(pool: AnyPool, backend: Backend) -> Self {
        Self { pool, backend }
    }

    /// A platform-scoped transaction (for the other storage submodules).
    pub(super) async fn begin(
        &self,
        access: Access,
    ) -> Result<Transaction<'static, Any>, StorageError> {
        session::begin(&self.pool, self.backend, Scope::Platform, access).await
    }

    /// The backend (for the other storage submodules' dialect choices).
    pub(super) fn backend(&self) -> Backend {
        self.backend
    }

    /// Creates an active tenant. Conflict if its id or its organisation is taken.
    pub async fn create_tenant(&self, new: &NewTenant) -> Result<TenantRecord, StorageError> {
        let name = required("tenant name", &new.name)?;
        let org_id = required("organisation id", &new.org_id)?;
        let mut tx = self.begin(Access::Write).await?;
        let taken: Vec<(String, String, Option<i64>)> = sqlx::query_as(
            "SELECT id, org_id, deleted_at FROM tenants WHERE id = $1 OR org_id = $2",
        )
        .bind(new.id.as_str())
        .bind(org_id)
        .fetch_all(&mut *tx)
        .await?;
        for (id, org, deleted_at) in &taken {
            if id == new.id.as_str() {
                return Err(if deleted_at.is_some() {
                    StorageError::Conflict(format!(
                        "tenant id `{id}` belongs to a deleted tenant awaiting its purge: restore \
                         it, or purge it first and then create the tenant again"
                    ))
                } else {
                    id_taken(&new.id)
                });
            }
            if org == org_id {
                return Err(org_taken(org_id, id));
            }
        }
        let now = now_ms();
        let row = sqlx::query(concat!(
            "INSERT INTO tenants (id, org_id, name, status, rate_limit_per_sec, \
             rate_limit_burst, max_concurrency, created_at, updated_at) \
             VALUES ($1, $2, $3, 'active', $4, $5, $6, $7, $7) RETURNING ",
            tenant_columns!()
        ))
        .bind(new.id.as_str())
        .bind(org_id)
        .bind(name)
        .bind(i64::from(new.rate_limit_per_sec))
        .bind(i64::from(new.rate_limit_burst))
        .bind(i64::from(new.max_concurrency))
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        // Lost a race with another node between the check and the insert.
        .map_err(|e| {
            if is_unique_on(&e, "tenants_org_id_key", "tenants.org_id") {
                org_taken(org_id, "another tenant")
            } else if is_unique_on(&e, "tenants_pkey", "tenants.id") {
                id_taken(&new.id)
            } else {
                StorageError::from(e)
            }
        })?;
        let record = tenant_from_row(&row)?;
        tx.commit().await?;
        Ok(record)
    }

    /// The tenant with this id.
    pub async fn tenant(&self, id: &TenantId) -> Result<Option<TenantRecord>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let row = sqlx::query(concat!(
            "SELECT ",
            tenant_columns!(),
            " FROM tenants WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.as_ref().map(tenant_from_row).transpose()
    }

    /// The tenant a custom domain is mapped to. A malformed host is simply
    /// unknown, not an error: it comes straight from a request.
    pub async fn tenant_by_domain(
        &self,
        domain: &str,
    ) -> Result<Option<TenantRecord>, StorageError> {
        let Ok(domain) = normalize_domain(domain) else {
            return Ok(None);
        };
        let mut tx = self.begin(Access::Read).await?;
        let row = sqlx::query(
            "SELECT t.id, t.org_id, t.name, t.status, t.rate_limit_per_sec, t.rate_limit_burst, \
                    t.max_concurrency, t.created_at, t.updated_at, t.deleted_at, t.purge_after \
               FROM domains d JOIN tenants t ON t.id = d.tenant_id \
              WHERE d.domain = $1 AND d.status IN ('verified', 'grace')",
        )
        .bind(domain.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.as_ref().map(tenant_from_row).transpose()
    }

    /// The tenant of a Clerk organisation.
    pub async fn tenant_by_org(&self, org_id: &str) -> Result<Option<TenantRecord>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let row = sqlx::query(concat!(
            "SELECT ",
            tenant_columns!(),
            " FROM tenants WHERE org_id = $1"
        ))
        .bind(org_id)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.as_ref().map(tenant_from_row).transpose()
    }

    /// Every tenant, by id.
    pub async fn list_tenants(&self) -> Result<Vec<TenantRecord>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            tenant_columns!(),
            " FROM tenants ORDER BY id"
        ))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter().map(tenant_from_row).collect()
    }

    /// Changes the fields the patch sets. NotFound if there is no such tenant.
    pub async fn update_tenant(
        &self,
        id: &TenantId,
        patch: &TenantPatch,
    ) -> Result<TenantRecord, StorageError> {
        let name = patch
            .name
            .as_deref()
            .map(|n| required("tenant name", n))
            .transpose()?;
        let org_id = patch
            .org_id
            .as_deref()
            .map(|o| required("organisation id", o))
            .transpose()?;
        let mut tx = self.begin(Access::Write).await?;
        if let Some(org_id) = org_id {
            let holder: Option<String> =
                sqlx::query_scalar("SELECT id FROM tenants WHERE org_id = $1 AND id <> $2")
                    .bind(org_id)
                    .bind(id.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
            if let Some(holder) = holder {
                return Err(org_taken(org_id, &holder));
            }
        }
        let row = sqlx::query(concat!(
            "UPDATE tenants SET \
                name = COALESCE($2, name), \
                org_id = COALESCE($8, org_id), \
                status = COALESCE($3, status), \
                rate_limit_per_sec = COALESCE($4, rate_limit_per_sec), \
                rate_limit_burst = COALESCE($5, rate_limit_burst), \
                max_concurrency = COALESCE($6, max_concurrency), \
                updated_at = $7 \
              WHERE id = $1 RETURNING ",
            tenant_columns!()
        ))
        .bind(id.as_str())
        .bind(name)
        .bind(patch.status.map(|s| s.as_str()))
        .bind(patch.rate_limit_per_sec.map(i64::from))
        .bind(patch.rate_limit_burst.map(i64::from))
        .bind(patch.max_concurrency.map(i64::from))
        .bind(now_ms())
        .bind(org_id)
        .fetch_optional(&mut *tx)
        .await
        // Lost a race with another node between the check and the update.
        .map_err(|e| {
            if is_unique_on(&e, "tenants_org_id_key", "tenants.org_id") {
                org_taken(org_id.unwrap_or_default(), "another tenant")
            } else {
                StorageError::from(e)
            }
        })?
        .ok_or_else(|| missing_tenant(id))?;
        let record = tenant_from_row(&row)?;
        tx.commit().await?;
        Ok(record)
    }

    /// Sets a tenant's runtime quota. The JSON is the runtime's business; storage
    /// only checks that it is JSON. NotFound if the tenant does not exist.
    pub async fn set_quota(&self, tenant: &TenantId, json: &str) -> Result<(), StorageError> {
        check_json("the quota", json)?;
        let mut tx = self.begin(Access::Write).await?;
        sqlx::query(
            "INSERT INTO quotas (tenant_id, json, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant_id) DO UPDATE SET json = excluded.json, \
                                                   updated_at = excluded.updated_at",
        )
        .bind(tenant.as_str())
        .bind(json)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(super::error::tenant_fk(tenant))?;
        tx.commit().await?;
        Ok(())
    }

    /// A tenant's runtime quota, if one was set.
    pub async fn quota(&self, tenant: &TenantId) -> Result<Option<String>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let json = sqlx::query_scalar("SELECT json FROM quotas WHERE tenant_id = $1")
            .bind(tenant.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(json)
    }

    /// Appends an audit entry for any tenant.
    pub async fn audit(&self, entry: &AuditEntry<'_>) -> Result<(), StorageError> {
        let mut tx = self.begin(Access::Write).await?;
        insert_audit(&mut tx, entry).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The newest `limit` audit entries, of one tenant or of all.
    pub async fn audit_log(
        &self,
        tenant: Option<&TenantId>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StorageError> {
        self.audit_page(tenant, None, limit).await
    }

    /// The newest `limit` audit entries older than entry `before` (a cursor:
    /// the last id of the previous page), of one tenant or of all.
    pub async fn audit_page(
        &self,
        tenant: Option<&TenantId>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StorageError> {
        let before = before.unwrap_or(i64::MAX);
        let mut tx = self.begin(Access::Read).await?;
        let rows = match tenant {
            Some(tenant) => {
                sqlx::query(concat!(
                    "SELECT ",
                    audit_columns!(),
                    " FROM audit_log WHERE tenant_id = $1 AND id < $3 ORDER BY id DESC LIMIT $2"
                ))
                .bind(tenant.as_str())
                .bind(i64::from(limit))
                .bind(before)
                .fetch_all(&mut *tx)
                .await?
            }
            None => {
                sqlx::query(concat!(
                    "SELECT ",
                    audit_columns!(),
                    " FROM audit_log WHERE id < $2 ORDER BY id DESC LIMIT $1"
                ))
                .bind(i64::from(limit))
                .bind(before)
                .fetch_all(&mut *tx)
                .await?
            }
        };
        tx.commit().await?;
        rows.iter().map(audit_from_row).collect()
    }
}

/// Appends one audit row inside `tx` (platform or the entry's own tenant scope).
pub(super) async fn insert_audit(
    tx: &mut Transaction<'static, Any>,
    entry: &AuditEntry<'_>,
) -> Result<(), StorageError> {
    if let Some(before) = entry.before {
        check_json("the audit `before` snapshot", before)?;
    }
    if let Some(after) = entry.after {
        check_json("the audit `after` snapshot", after)?;
    }
    sqlx::query(
        "INSERT INTO audit_log (tenant_id, actor, action, plugin_sha256, before, after, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(entry.tenant.as_str())
    .bind(entry.actor)
    .bind(entry.action)
    .bind(entry.plugin_sha256)
    .bind(entry.before)
    .bind(entry.after)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(super) fn audit_from_row(row: &AnyRow) -> Result<AuditRecord, StorageError> {
    Ok(AuditRecord {
        id: rows::int(row, "id")?,
        tenant_id: rows::text(row, "tenant_id")?,
        actor: rows::text(row, "actor")?,
        action: rows::text(row, "action")?,
        plugin_sha256: rows::opt_text(row, "plugin_sha256")?,
        before: rows::opt_json(row, "before")?,
        after: rows::opt_json(row, "after")?,
        created_at: rows::int(row, "created_at")?,
    })
}

pub(super) fn tenant_from_row(row: &AnyRow) -> Result<TenantRecord, StorageError> {
    let corrupt = |column: &str, e: String| {
        StorageError::Database(sqlx::Error::ColumnDecode {
            index: column.to_owned(),
            source: e.into(),
        })
    };
    Ok(TenantRecord {
        id: TenantId::new(rows::text(row, "id")?).map_err(|e| corrupt("id", e.to_string()))?,
        org_id: rows::text(row, "org_id")?,
        name: rows::text(row, "name")?,
        status: rows::text(row, "status")?
            .parse()
            .map_err(|e: super::InvalidTenantStatus| corrupt("status", e.to_string()))?,
        rate_limit_per_sec: rows::u32(row, "rate_limit_per_sec")?,
        rate_limit_burst: rows::u32(row, "rate_limit_burst")?,
        max_concurrency: rows::u32(row, "max_concurrency")?,
        created_at: rows::int(row, "created_at")?,
        updated_at: rows::int(row, "updated_at")?,
        deleted_at: row.try_get("deleted_at")?,
        purge_after: row.try_get("purge_after")?,
    })
}

/// Lowercases, drops a trailing dot and checks a host name: letters, digits and
/// hyphens in dot-separated labels of at most 63, at most 253 in all.
pub(super) fn normalize_domain(domain: &str) -> Result<String, StorageError> {
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if domain.len() <= 253 && domain.contains('.') && domain.split('.').all(label_ok) {
        Ok(domain)
    } else {
        Err(StorageError::Invalid(format!(
            "`{}` is not a domain name: use a host name such as `shop.example.com`, without \
             scheme, port or path",
            domain.chars().take(80).collect::<String>()
        )))
    }
}

fn required<'a>(what: &str, value: &'a str) -> Result<&'a str, StorageError> {
    let value = value.trim();
    if value.is_empty() {
        Err(StorageError::Invalid(format!(
            "the {what} must not be empty"
        )))
    } else {
        Ok(value)
    }
}

pub(super) fn missing_tenant(id: &TenantId) -> StorageError {
    StorageError::NotFound(format!("tenant `{id}` does not exist"))
}

fn id_taken(id: &TenantId) -> StorageError {
    StorageError::Conflict(format!("tenant id `{id}` is taken: choose another id"))
}

fn org_taken(org_id: &str, tenant: &str) -> StorageError {
    StorageError::Conflict(format!(
        "organisation `{org_id}` already has a tenant ({tenant}): one organisation maps to one \
         tenant"
    ))
}
