//! One tenant's rows out of an instance and into another (a tenant archive's
//! storage side). The app layer chooses the tables, seals and unseals secrets
//! and writes the archive file; here the rows are read in one snapshot and
//! written in one transaction, with what an instance of its own decides:
//! generated ids (new ones here, release ids mapped wherever they are named),
//! conflicts with other tenants (a domain verified for another tenant, its
//! organisation), and whether the archive was imported already.
//!
//! Every statement names the tenant: reading filters on it, writing refuses a
//! row whose tenant column is not the target, and replacing deletes only rows
//! that carry it. Restoring a tenant cannot touch another tenant's rows.

use std::collections::{BTreeMap, HashMap};

use super::lifecycle::PURGE_BATCH;
use super::platform::insert_audit;
use super::records::AuditEntry;
use super::session::Access;
use super::tables::{self, Cell, TableSchema};
use super::time::now_ms;
use super::{PlatformDb, StorageError};
use veneer_core::tenancy_id::TenantId;

/// The audit action that marks an import (its `after` names the archive).
pub const IMPORT_ACTION: &str = "tenant.import";

/// Columns that hold a release id (rewritten to the ids the target gives).
const RELEASE_REFERENCES: &[(&str, &str)] = &[
    ("installations", "active_release"),
    ("release_events", "release_id"),
    ("shadows", "release_id"),
    ("shadow_runs", "release_id"),
    ("plugin_runs", "release_id"),
];

/// The column that says whose row it is, for tables that have one.
pub fn tenant_column(table: &TableSchema) -> Option<&'static str> {
    match table.name.as_str() {
        "tenants" => Some("id"),
        "output_policies" => Some("scope"),
        _ => table.kind("tenant_id").map(|_| "tenant_id"),
    }
}

/// One table's rows of a tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantTable {
    pub table: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

impl TenantTable {
    /// The position of `column`.
    pub fn position(&self, column: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == column)
    }
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum ImportOutcome {
    /// Rows written per table (a replaced tenant's old rows went first).
    Imported {
        rows: BTreeMap<String, u64>,
        replaced: bool,
    },
    /// This archive was imported into this tenant before: nothing changed.
    AlreadyImported,
}

impl PlatformDb {
    /// The schema, parents before children.
    pub async fn schema(&self) -> Result<Vec<TableSchema>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let schema = tables::schema(&mut tx, self.backend()).await?;
        tx.commit().await?;
        Ok(schema)
    }

    /// Every row of tenant `id` in the tables named (each must have a tenant
    /// column), read in one snapshot. NotFound if there is no such tenant.
    pub async fn tenant_rows(
        &self,
        id: &TenantId,
        names: &[String],
    ) -> Result<Vec<TenantTable>, StorageError> {
        let mut tx = self.begin(Access::Snapshot).await?;
        let schema = tables::schema(&mut tx, self.backend()).await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM tenants WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(super::platform::missing_tenant(id));
        }
        let mut out = Vec::with_capacity(names.len());
        for table in schema.iter().filter(|t| names.contains(&t.name)) {
            let column = tenant_column(table).ok_or_else(|| {
                StorageError::Invalid(format!("table `{}` holds no tenant's rows", table.name))
            })?;
            let rows = tables::read_rows(&mut tx, table, Some((column, id.as_str())), None).await?;
            out.push(TenantTable {
                table: table.name.clone(),
                columns: table.columns.iter().map(|(c, _)| c.clone()).collect(),
                rows,
            });
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Writes `tables` (every row's tenant column already `id`) as tenant `id`,
    /// in one transaction. A tenant that exists is a Conflict unless `replace`
    /// (its rows go first) or this archive (`marker`, compared with earlier
    /// imports' audit entries) was imported into it already. A domain the
    /// archive has routing that another tenant has routing, or an organisation
    /// another tenant has, is a Conflict; nothing is written then.
    pub async fn import_tenant(
        &self,
        id: &TenantId,
        tables: &[TenantTable],
        replace: bool,
        actor: &str,
        marker: &str,
    ) -> Result<ImportOutcome, StorageError> {
        let mut tx = self.begin(Access::Write).await?;
        let schema = tables::schema(&mut tx, self.backend()).await?;
        let by_name: HashMap<&str, &TenantTable> =
            tables.iter().map(|t| (t.table.as_str(), t)).collect();
        check_rows(id, tables, &schema)?;
        if !by_name.contains_key("tenants") {
            return Err(StorageError::Invalid(
                "the archive has no `tenants` row: it is not a tenant archive".into(),
            ));
        }

        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM tenants WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_some() && !replace {
            let seen: Option<i64> = sqlx::query_scalar(
                "SELECT 1 FROM audit_log WHERE tenant_id = $1 AND action = $2 AND after = $3 \
                  LIMIT 1",
            )
            .bind(id.as_str())
            .bind(IMPORT_ACTION)
            .bind(marker)
            .fetch_optional(&mut *tx)
            .await?;
            tx.rollback().await?;
            return match seen {
                Some(_) => Ok(ImportOutcome::AlreadyImported),
                None => Err(StorageError::Conflict(format!(
                    "tenant `{id}` exists already: import under another id, or replace it \
                     with the archive's contents"
                ))),
            };
        }
        check_conflicts(&mut tx, id, &by_name).await?;
        if exists.is_some() {
            self.remove_tenant_rows(&mut tx, id, &schema).await?;
        }

        let mut report = BTreeMap::new();
        let mut releases: HashMap<i64, i64> = HashMap::new();
        let mut active: Vec<(String, i64)> = Vec::new();
        // Tables that name a release (but not by a foreign key the schema
        // orders by) go after every other, once the new release ids are known.
        let names_release = |t: &&TableSchema| {
            t.name != "installations" && RELEASE_REFERENCES.iter().any(|(r, _)| *r == t.name)
        };
        let order = schema
            .iter()
            .filter(|t| !names_release(t))
            .chain(schema.iter().filter(names_release));
        for table in order {
            let Some(rows) = by_name.get(table.name.as_str()) else {
                continue;
            };
            let drop_id = table.generated_id;
            let columns: Vec<&str> = rows
                .columns
                .iter()
                .map(String::as_str)
                .filter(|c| !(drop_id && *c == "id"))
                .collect();
            let positions: Vec<usize> = columns
                .iter()
                .map(|c| rows.position(c).unwrap_or_default())
                .collect();
            let references: Vec<usize> = RELEASE_REFERENCES
                .iter()
                .filter(|(t, _)| *t == table.name)
                .filter_map(|(_, c)| columns.iter().position(|x| x == c))
                .collect();
            let id_at = rows.position("id");
            for row in &rows.rows {
                let mut values: Vec<Cell> = positions.iter().map(|&i| row[i].clone()).collect();
                for &at in &references {
                    if let Cell::Int(old) = values[at] {
                        if table.name == "installations" {
                            // Its release comes later (releases name their
                            // installation): set once releases are in.
                            let name = columns.iter().position(|c| *c == "name");
                            if let Some(Cell::Text(name)) = name.map(|i| &values[i]) {
                                active.push((name.clone(), old));
                            }
                        }
                        values[at] = match releases.get(&old) {
                            Some(new) if table.name != "installations" => Cell::Int(*new),
                            _ => Cell::Null,
                        };
                    }
                }
                let returning = (table.name == "releases").then_some("id");
                let how = tables::Insert {
                    returning,
                    ..tables::Insert::default()
                };
                let new = tables::insert_row(&mut tx, table, &columns, &values, how).await?;
                if let (Some(new), Some(at)) = (new, id_at)
                    && let Cell::Int(old) = row[at]
                {
                    releases.insert(old, new);
                }
            }
            if !rows.rows.is_empty() {
                report.insert(table.name.clone(), rows.rows.len() as u64);
            }
        }
        for (name, old) in active {
            let Some(new) = releases.get(&old) else {
                continue;
            };
            sqlx::query(
                "UPDATE installations SET active_release = $1 WHERE tenant_id = $2 AND name = $3",
            )
            .bind(*new)
            .bind(id.as_str())
            .bind(name)
            .execute(&mut *tx)
            .await?;
        }
        insert_audit(
            &mut tx,
            &AuditEntry {
                tenant: id,
                actor,
                action: IMPORT_ACTION,
                plugin_sha256: None,
                before: None,
                after: Some(marker),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(ImportOutcome::Imported {
            rows: report,
            replaced: exists.is_some(),
        })
    }

    /// Deletes every row of tenant `id`, its own row last, in the caller's
    /// transaction (which rolls it all back if the import then fails).
    async fn remove_tenant_rows(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        id: &TenantId,
        schema: &[TableSchema],
    ) -> Result<(), StorageError> {
        // The purge function only works on a deleted tenant.
        let now = now_ms();
        sqlx::query("UPDATE tenants SET deleted_at = $2, purge_after = $2 WHERE id = $1")
            .bind(id.as_str())
            .bind(now)
            .execute(&mut **tx)
            .await?;
        // Children before their parents: the schema's order, reversed.
        for table in schema
            .iter()
            .rev()
            .filter(|t| t.kind("tenant_id").is_some())
        {
            while self
                .purge_batch_in(tx, &table.name, id, PURGE_BATCH)
                .await?
                >= u64::from(PURGE_BATCH)
            {}
        }
        sqlx::query("DELETE FROM output_policies WHERE scope = $1")
            .bind(id.as_str())
            .execute(&mut **tx)
            .await?;
        sqlx::query("DELETE FROM tenants WHERE id = $1")
            .bind(id.as_str())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

/// Every table known to this schema, every column known to its table, every
/// row the tenant's.
fn check_rows(
    id: &TenantId,
    tables: &[TenantTable],
    schema: &[TableSchema],
) -> Result<(), StorageError> {
    for rows in tables {
        let table = schema
            .iter()
            .find(|t| t.name == rows.table)
            .ok_or_else(|| {
                StorageError::Invalid(format!(
                    "the archive has table `{}`, which this Veneer does not know: import it into a \
                 Veneer of the archive's version or newer",
                    rows.table
                ))
            })?;
        let column = tenant_column(table).ok_or_else(|| {
            StorageError::Invalid(format!("table `{}` holds no tenant's rows", rows.table))
        })?;
        if let Some(unknown) = rows.columns.iter().find(|c| table.kind(c).is_none()) {
            return Err(StorageError::Invalid(format!(
                "the archive's table `{}` has column `{unknown}`, which this Veneer does not \
                 know: import it into a Veneer of the archive's version or newer",
                rows.table
            )));
        }
        let at = rows.position(column).ok_or_else(|| {
            StorageError::Invalid(format!(
                "the archive's table `{}` lacks its tenant column `{column}`",
                rows.table
            ))
        })?;
        for row in &rows.rows {
            if row.len() != rows.columns.len() {
                return Err(StorageError::Invalid(format!(
                    "a row of the archive's table `{}` has {} values for {} columns",
                    rows.table,
                    row.len(),
                    rows.columns.len()
                )));
            }
            if row[at] != Cell::Text(id.to_string()) {
                return Err(StorageError::Invalid(format!(
                    "a row of the archive's table `{}` belongs to another tenant than `{id}`",
                    rows.table
                )));
            }
        }
    }
    Ok(())
}

/// Another tenant's routing domain or organisation, named by the archive.
async fn check_conflicts(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    id: &TenantId,
    by_name: &HashMap<&str, &TenantTable>,
) -> Result<(), StorageError> {
    if let Some(domains) = by_name.get("domains")
        && let (Some(d), Some(s)) = (domains.position("domain"), domains.position("status"))
    {
        let mut taken = Vec::new();
        for row in &domains.rows {
            let (Cell::Text(domain), Cell::Text(status)) = (&row[d], &row[s]) else {
                continue;
            };
            if !matches!(status.as_str(), "verified" | "grace") {
                continue;
            }
            let other: Option<String> = sqlx::query_scalar(
                "SELECT tenant_id FROM domains WHERE domain = $1 AND tenant_id <> $2 \
                   AND status IN ('verified', 'grace') LIMIT 1",
            )
            .bind(domain.as_str())
            .bind(id.as_str())
            .fetch_optional(&mut **tx)
            .await?;
            if other.is_some() {
                taken.push(domain.clone());
            }
        }
        if !taken.is_empty() {
            return Err(StorageError::Conflict(format!(
                "domain(s) {} are verified for another tenant here: remove them there first, \
                 or from the archive's tenant before exporting",
                taken.join(", ")
            )));
        }
    }
    if let Some(tenants) = by_name.get("tenants")
        && let Some(o) = tenants.position("org_id")
        && let Some(Cell::Text(org)) = tenants.rows.first().map(|r| &r[o])
    {
        let other: Option<String> =
            sqlx::query_scalar("SELECT id FROM tenants WHERE org_id = $1 AND id <> $2")
                .bind(org.as_str())
                .bind(id.as_str())
                .fetch_optional(&mut **tx)
                .await?;
        if let Some(other) = other {
            return Err(StorageError::Conflict(format!(
                "organisation `{org}` belongs to tenant `{other}` here: one organisation maps \
                 to one tenant"
            )));
        }
    }
    Ok(())
}
