//! The platform's catalogue of stock plugins: components platform admins
//! publish (by name and version, with a description and a settings example),
//! which every tenant can read and install. Installing copies the component
//! into the tenant's own plugin versions, so a tenant's releases only ever
//! name its own rows. Publishing the same name and version again with other
//! bytes is a conflict: a published version never changes.

use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

use super::records::{CatalogueEntry, NewCatalogueEntry};
use super::session::Access;
use super::time::now_ms;
use super::{PlatformDb, StorageError, TenantDb, rows};

macro_rules! entry_columns {
    () => {
        "name, version, sha256, description, settings_example, hooks, size_bytes, published_by, \
         created_at, wit_version, settings_schema"
    };
}

impl PlatformDb {
    /// Publishes a stock plugin. Publishing the same bytes again returns what
    /// is stored; other bytes under a published name and version are a
    /// conflict.
    pub async fn publish_catalogue(
        &self,
        new: &NewCatalogueEntry<'_>,
    ) -> Result<CatalogueEntry, StorageError> {
        super::error::check_json("the settings example", new.settings_example)?;
        let hooks = serde_json::to_string(new.hooks)
            .map_err(|e| StorageError::Invalid(format!("hooks: {e}")))?;
        let mut tx = self.begin(Access::Write).await?;
        let existing = sqlx::query(concat!(
            "SELECT ",
            entry_columns!(),
            " FROM catalogue_plugins WHERE name = $1 AND version = $2"
        ))
        .bind(new.name)
        .bind(new.version)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = existing {
            let entry = entry_from_row(&row)?;
            if entry.sha256 != new.sha256 {
                return Err(StorageError::Conflict(format!(
                    "{} {} is already published with other bytes; publish a new version",
                    new.name, new.version
                )));
            }
            tx.commit().await?;
            return Ok(entry);
        }
        let row = sqlx::query(concat!(
            "INSERT INTO catalogue_plugins (name, version, sha256, description, settings_example, \
             hooks, size_bytes, wasm_binary, published_by, created_at, wit_version, settings_schema) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING ",
            entry_columns!()
        ))
        .bind(new.name)
        .bind(new.version)
        .bind(new.sha256)
        .bind(new.description)
        .bind(new.settings_example)
        .bind(&hooks)
        .bind(super::error::to_i64("size_bytes", new.binary.len() as u64)?)
        .bind(new.binary)
        .bind(new.published_by)
        .bind(now_ms())
        .bind(new.wit_version)
        .bind(new.settings_schema)
        .fetch_one(&mut *tx)
        .await?;
        let entry = entry_from_row(&row)?;
        tx.commit().await?;
        Ok(entry)
    }

    /// The catalogue, as tenants see it (see [`TenantDb::catalogue`]).
    pub async fn catalogue(&self) -> Result<Vec<CatalogueEntry>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let entries = list(&mut tx).await?;
        tx.commit().await?;
        Ok(entries)
    }

    /// Removes a published version. Whether it existed. Tenants that
    /// installed it keep their copies.
    pub async fn unpublish_catalogue(
        &self,
        name: &str,
        version: &str,
    ) -> Result<bool, StorageError> {
        let mut tx = self.begin(Access::Write).await?;
        let done = sqlx::query("DELETE FROM catalogue_plugins WHERE name = $1 AND version = $2")
            .bind(name)
            .bind(version)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(done > 0)
    }
}

impl TenantDb {
    /// The catalogue, by name then newest version first (no binaries).
    pub async fn catalogue(&self) -> Result<Vec<CatalogueEntry>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let entries = list(&mut tx).await?;
        tx.commit().await?;
        Ok(entries)
    }

    /// One published version with its component; the newest when `version`
    /// is `None`.
    pub async fn catalogue_entry(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<Option<(CatalogueEntry, Vec<u8>)>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let row = match version {
            Some(version) => {
                sqlx::query(concat!(
                    "SELECT ",
                    entry_columns!(),
                    ", wasm_binary FROM catalogue_plugins WHERE name = $1 AND version = $2"
                ))
                .bind(name)
                .bind(version)
                .fetch_optional(&mut *tx)
                .await?
            }
            None => {
                sqlx::query(concat!(
                    "SELECT ",
                    entry_columns!(),
                    ", wasm_binary FROM catalogue_plugins WHERE name = $1 \
                     ORDER BY created_at DESC, version DESC LIMIT 1"
                ))
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?
            }
        };
        tx.commit().await?;
        match row {
            None => Ok(None),
            Some(row) => {
                let binary: Vec<u8> = sqlx::Row::try_get(&row, "wasm_binary")?;
                Ok(Some((entry_from_row(&row)?, binary)))
            }
        }
    }
}

/// Every published version, by name then newest first (no binaries).
async fn list(tx: &mut Transaction<'static, Any>) -> Result<Vec<CatalogueEntry>, StorageError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        entry_columns!(),
        " FROM catalogue_plugins ORDER BY name, created_at DESC, version DESC"
    ))
    .fetch_all(&mut **tx)
    .await?;
    rows.iter().map(entry_from_row).collect()
}

fn entry_from_row(row: &AnyRow) -> Result<CatalogueEntry, StorageError> {
    let hooks_json = rows::text(row, "hooks")?;
    Ok(CatalogueEntry {
        name: rows::text(row, "name")?,
        version: rows::text(row, "version")?,
        sha256: rows::text(row, "sha256")?,
        description: rows::text(row, "description")?,
        settings_example: rows::json(row, "settings_example")?,
        hooks: serde_json::from_str(&hooks_json).unwrap_or_default(),
        size_bytes: rows::u64(row, "size_bytes")?,
        published_by: rows::text(row, "published_by")?,
        created_at: rows::int(row, "created_at")?,
        wit_version: rows::text(row, "wit_version")?,
        settings_schema: rows::opt_text(row, "settings_schema")?,
    })
}
