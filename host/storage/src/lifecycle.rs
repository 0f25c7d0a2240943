//! The end of a tenant's life, on the platform handle: soft deletion (the row
//! stays, marked `deleted_at`, until `purge_after`), restoration within that
//! grace period, and the purge that follows it — every row of the tenant in
//! every table, in bounded batches of one transaction each, then a last
//! transaction that takes what writers in flight added meanwhile together with
//! the tenant's row.
//!
//! The purge finds the tenant's tables in the schema itself (every table with a
//! `tenant_id` column, children before the parents their foreign keys name), so
//! a table added later is purged without a change here. The tables keyed
//! otherwise are listed: `tenants` (its `id`) and `output_policies` (its
//! `scope`). On PostgreSQL the batches go through `veneer_purge_batch` (see the
//! `0017_tenant_lifecycle` migration), which may delete from the append-only
//! tables the application role cannot touch, and only for a deleted tenant.
//! It does not touch files (compiled artifacts are the runtime's) or caches.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::{Any, AssertSqlSafe, Transaction};

use super::platform::{missing_tenant, tenant_columns, tenant_from_row};
use super::records::TenantRecord;
use super::session::Access;
use super::tables::quote_ident;
use super::time::now_ms;
use super::{Backend, PlatformDb, StorageError};
use veneer_core::tenancy_id::TenantId;

/// Rows deleted per transaction of a purge.
pub const PURGE_BATCH: u32 = 1_000;

/// Rounds of the purge's last transaction before it gives up on rows that keep
/// coming back.
const FINAL_ROUNDS: usize = 10;

/// What a purge removed: rows per table (tables it found empty left out).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct PurgeReport {
    pub tenant: String,
    pub rows: BTreeMap<String, u64>,
}

impl PlatformDb {
    /// Marks a live tenant deleted, to be purged at `purge_after` (Unix
    /// milliseconds). NotFound if there is no such tenant, Conflict if it is
    /// already deleted.
    pub async fn delete_tenant(
        &self,
        id: &TenantId,
        purge_after: i64,
    ) -> Result<TenantRecord, StorageError> {
        let now = now_ms();
        let mut tx = self.begin(Access::Write).await?;
        let row = sqlx::query(concat!(
            "UPDATE tenants SET deleted_at = $2, purge_after = $3, updated_at = $2 \
              WHERE id = $1 AND deleted_at IS NULL RETURNING ",
            tenant_columns!()
        ))
        .bind(id.as_str())
        .bind(now)
        .bind(purge_after)
        .fetch_optional(&mut *tx)
        .await?;
        let record = match row {
            Some(row) => tenant_from_row(&row)?,
            None => {
                tx.rollback().await?;
                return Err(match self.tenant(id).await? {
                    None => missing_tenant(id),
                    Some(_) => StorageError::Conflict(format!(
                        "tenant `{id}` is already deleted: restore it, or purge it now"
                    )),
                });
            }
        };
        tx.commit().await?;
        Ok(record)
    }

    /// Brings a deleted tenant back, with everything it had, while its purge is
    /// still ahead. NotFound if there is no such tenant, Conflict if it is not
    /// deleted or its grace period is over (its purge has started or is due).
    pub async fn restore_tenant(&self, id: &TenantId) -> Result<TenantRecord, StorageError> {
        let now = now_ms();
        let mut tx = self.begin(Access::Write).await?;
        let row = sqlx::query(concat!(
            "UPDATE tenants SET deleted_at = NULL, purge_after = NULL, updated_at = $2 \
              WHERE id = $1 AND deleted_at IS NOT NULL AND purge_after > $2 RETURNING ",
            tenant_columns!()
        ))
        .bind(id.as_str())
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let record = match row {
            Some(row) => tenant_from_row(&row)?,
            None => {
                tx.rollback().await?;
                return Err(match self.tenant(id).await? {
                    None => missing_tenant(id),
                    Some(t) if !t.is_deleted() => {
                        StorageError::Conflict(format!("tenant `{id}` is not deleted"))
                    }
                    Some(_) => StorageError::Conflict(format!(
                        "tenant `{id}`'s grace period is over and its purge is due: it can no \
                         longer be restored"
                    )),
                });
            }
        };
        tx.commit().await?;
        Ok(record)
    }

    /// Brings a deleted tenant's purge forward to `at` (never later than it
    /// was). NotFound if there is no such tenant, Conflict if it is not deleted.
    pub async fn purge_tenant_at(
        &self,
        id: &TenantId,
        at: i64,
    ) -> Result<TenantRecord, StorageError> {
        let mut tx = self.begin(Access::Write).await?;
        let row = sqlx::query(concat!(
            "UPDATE tenants SET purge_after = CASE WHEN purge_after < $2 THEN purge_after \
                                                    ELSE $2 END \
              WHERE id = $1 AND deleted_at IS NOT NULL RETURNING ",
            tenant_columns!()
        ))
        .bind(id.as_str())
        .bind(at)
        .fetch_optional(&mut *tx)
        .await?;
        let record = match row {
            Some(row) => tenant_from_row(&row)?,
            None => {
                tx.rollback().await?;
                return Err(match self.tenant(id).await? {
                    None => missing_tenant(id),
                    Some(_) => StorageError::Conflict(format!(
                        "tenant `{id}` is not deleted: delete it first, then purge it"
                    )),
                });
            }
        };
        tx.commit().await?;
        Ok(record)
    }

    /// Deleted tenants whose purge is due at `now`, soonest first.
    pub async fn tenants_due_for_purge(
        &self,
        now: i64,
        limit: u32,
    ) -> Result<Vec<TenantId>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM tenants WHERE deleted_at IS NOT NULL AND purge_after <= $1 \
              ORDER BY purge_after, id LIMIT $2",
        )
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        ids.into_iter()
            .map(|id| {
                TenantId::new(&id).map_err(|e| StorageError::Invalid(format!("tenant id: {e}")))
            })
            .collect()
    }

    /// Removes every row of a deleted tenant whose purge is due, in every
    /// table, `batch` rows per transaction; the `tenants` row goes last, so an
    /// interrupted purge is finished by the next one. NotFound if there is no
    /// such tenant, Conflict if it is not deleted or not due yet.
    pub async fn purge_tenant(
        &self,
        id: &TenantId,
        batch: u32,
    ) -> Result<PurgeReport, StorageError> {
        let record = self.tenant(id).await?.ok_or_else(|| missing_tenant(id))?;
        match record.purge_after {
            None => {
                return Err(StorageError::Conflict(format!(
                    "tenant `{id}` is not deleted: delete it first, then purge it"
                )));
            }
            Some(at) if at > now_ms() => {
                return Err(StorageError::Conflict(format!(
                    "tenant `{id}` is in its grace period until {at} (Unix ms): purge it now \
                     explicitly, or wait"
                )));
            }
            Some(_) => {}
        }
        let batch = batch.max(1);
        let mut report = PurgeReport {
            tenant: id.to_string(),
            rows: BTreeMap::new(),
        };
        let tables = self.tenant_tables().await?;
        for table in &tables {
            let mut removed = 0u64;
            loop {
                let n = self.purge_batch(table, id, batch).await?;
                removed += n;
                if n < u64::from(batch) {
                    break;
                }
            }
            if removed > 0 {
                report.rows.insert(table.clone(), removed);
            }
        }
        // Writers that were in flight while the batches ran (a usage flush,
        // a rate-window prune) may have added rows since. The last pass takes
        // those stragglers, checks, and removes the tenant's row in one write
        // transaction with the row locked: on SQLite no other writer runs
        // meanwhile, on PostgreSQL an insert naming the tenant waits for it
        // and then fails its foreign key.
        let mut tx = self.begin(Access::Write).await?;
        if self.backend() == Backend::Postgres {
            sqlx::query("SELECT id FROM tenants WHERE id = $1 FOR UPDATE")
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
        }
        // A few rounds: on PostgreSQL a row updated meanwhile (a usage counter)
        // moves, so the batch that aimed at it deletes nothing; the next round
        // finds it where it went.
        let mut pending = tables.clone();
        for _ in 0..FINAL_ROUNDS {
            for table in &pending {
                let mut removed = 0u64;
                loop {
                    let n = self.purge_batch_in(&mut tx, table, id, batch).await?;
                    removed += n;
                    if n < u64::from(batch) {
                        break;
                    }
                }
                if removed > 0 {
                    *report.rows.entry(table.clone()).or_default() += removed;
                }
            }
            // Checked, not assumed: a batch that silently deleted nothing (a
            // policy, a grant) must not let the tenant's row go with rows left.
            pending = Self::tables_with_rows_of(&mut tx, id, &pending).await?;
            if pending.is_empty() {
                break;
            }
        }
        if !pending.is_empty() {
            tx.rollback().await?;
            return Err(StorageError::Database(sqlx::Error::Protocol(format!(
                "the purge of tenant `{id}` left rows in {}: its tenant row is kept, and the \
                 next purge tries again",
                pending.join(", ")
            ))));
        }
        let policies = sqlx::query("DELETE FROM output_policies WHERE scope = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let tenants = sqlx::query("DELETE FROM tenants WHERE id = $1 AND deleted_at IS NOT NULL")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        for (table, n) in [("output_policies", policies), ("tenants", tenants)] {
            if n > 0 {
                report.rows.insert(table.to_owned(), n);
            }
        }
        Ok(report)
    }

    /// The tables among `tables` that still hold a row of the tenant.
    async fn tables_with_rows_of(
        tx: &mut Transaction<'static, Any>,
        id: &TenantId,
        tables: &[String],
    ) -> Result<Vec<String>, StorageError> {
        let mut left = Vec::new();
        for table in tables {
            let sql = format!(
                "SELECT 1 FROM {} WHERE tenant_id = $1 LIMIT 1",
                quote_ident(table)
            );
            let found: Option<i32> = sqlx::query_scalar(AssertSqlSafe(sql))
                .bind(id.as_str())
                .fetch_optional(&mut **tx)
                .await?;
            if found.is_some() {
                left.push(table.clone());
            }
        }
        Ok(left)
    }

    /// One batch of one table, in a transaction of its own.
    async fn purge_batch(
        &self,
        table: &str,
        id: &TenantId,
        batch: u32,
    ) -> Result<u64, StorageError> {
        let mut tx = self.begin(Access::Write).await?;
        let n = self.purge_batch_in(&mut tx, table, id, batch).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// One batch of one table, in the caller's transaction.
    pub(super) async fn purge_batch_in(
        &self,
        tx: &mut Transaction<'static, Any>,
        table: &str,
        id: &TenantId,
        batch: u32,
    ) -> Result<u64, StorageError> {
        Ok(match self.backend() {
            Backend::Postgres => {
                let n: i64 = sqlx::query_scalar("SELECT veneer_purge_batch($1, $2, $3)")
                    .bind(table)
                    .bind(id.as_str())
                    .bind(i32::try_from(batch).unwrap_or(i32::MAX))
                    .fetch_one(&mut **tx)
                    .await?;
                u64::try_from(n).unwrap_or(0)
            }
            Backend::Sqlite => {
                let quoted = quote_ident(table);
                let sql = format!(
                    "DELETE FROM {quoted} WHERE rowid IN \
                       (SELECT rowid FROM {quoted} WHERE tenant_id = $1 LIMIT $2) \
                       AND EXISTS (SELECT 1 FROM tenants WHERE id = $1 AND deleted_at IS NOT NULL)"
                );
                sqlx::query(AssertSqlSafe(sql))
                    .bind(id.as_str())
                    .bind(i64::from(batch))
                    .execute(&mut **tx)
                    .await?
                    .rows_affected()
            }
        })
    }

    /// Every table with a `tenant_id` column, read from the schema, each after
    /// the tables whose foreign keys name it (so deleting in this order never
    /// trips a constraint).
    pub async fn tenant_tables(&self) -> Result<Vec<String>, StorageError> {
        let (tables_sql, keys_sql) = match self.backend() {
            Backend::Sqlite => (
                "SELECT m.name FROM sqlite_master m JOIN pragma_table_info(m.name) c \
                  WHERE m.type = 'table' AND c.name = 'tenant_id' ORDER BY m.name",
                "SELECT m.name, f.\"table\" FROM sqlite_master m \
                   JOIN pragma_foreign_key_list(m.name) f WHERE m.type = 'table'",
            ),
            Backend::Postgres => (
                "SELECT c.relname::text FROM pg_class c \
                   JOIN pg_namespace s ON s.oid = c.relnamespace \
                   JOIN pg_attribute a ON a.attrelid = c.oid \
                  WHERE s.nspname = current_schema() AND c.relkind IN ('r', 'p') \
                    AND a.attname = 'tenant_id' AND NOT a.attisdropped ORDER BY 1",
                "SELECT c.relname::text, p.relname::text FROM pg_constraint k \
                   JOIN pg_class c ON c.oid = k.conrelid \
                   JOIN pg_class p ON p.oid = k.confrelid \
                   JOIN pg_namespace s ON s.oid = c.relnamespace \
                  WHERE k.contype = 'f' AND s.nspname = current_schema()",
            ),
        };
        let mut tx = self.begin(Access::Read).await?;
        let tables: Vec<String> = sqlx::query_scalar(tables_sql).fetch_all(&mut *tx).await?;
        let keys: Vec<(String, String)> = sqlx::query_as(keys_sql).fetch_all(&mut *tx).await?;
        tx.commit().await?;
        Ok(children_first(tables, &keys))
    }

    /// Every plugin sha256 some tenant stores or the catalogue offers: the
    /// compiled artifacts worth keeping.
    pub async fn plugin_shas_in_use(&self) -> Result<BTreeSet<String>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let shas: Vec<String> = sqlx::query_scalar(
            "SELECT sha256 FROM plugin_versions UNION SELECT sha256 FROM catalogue_plugins",
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(shas.into_iter().collect())
    }
}

/// `tables` ordered so that each comes after every other table of the set
/// whose foreign key names it; a cycle (none today) falls back to name order.
fn children_first(tables: Vec<String>, keys: &[(String, String)]) -> Vec<String> {
    let set: BTreeSet<String> = tables.into_iter().collect();
    // parent -> its children still to be emptied
    let mut children: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (child, parent) in keys {
        if child != parent && set.contains(child) && set.contains(parent) {
            children.entry(parent).or_default().insert(child);
        }
    }
    let mut left: BTreeSet<&str> = set.iter().map(String::as_str).collect();
    let mut order = Vec::with_capacity(set.len());
    while !left.is_empty() {
        let ready: Vec<&str> = left
            .iter()
            .copied()
            .filter(|t| {
                children
                    .get(t)
                    .is_none_or(|kids| kids.iter().all(|k| !left.contains(k)))
            })
            .collect();
        let step = if ready.is_empty() {
            left.iter().copied().collect()
        } else {
            ready
        };
        for t in step {
            left.remove(t);
            order.push(t.to_owned());
        }
    }
    order
}

/// An identifier, quoted (the same way on both backends).
#[cfg(test)]
mod tests {
    use super::children_first;

    #[test]
    fn children_come_before_the_tables_they_reference() {
        let tables = ["installations", "plugin_versions", "releases", "shadows"]
            .map(String::from)
            .to_vec();
        let keys = [
            ("releases", "installations"),
            ("releases", "plugin_versions"),
            ("shadows", "releases"),
            ("shadows", "installations"),
            ("installations", "tenants"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()));
        let order = children_first(tables, &keys);
        let at = |t: &str| order.iter().position(|o| o == t).unwrap();
        assert!(at("shadows") < at("releases"));
        assert!(at("releases") < at("installations"));
        assert!(at("releases") < at("plugin_versions"));
        assert_eq!(order.len(), 4);
    }
}
