//! A tenant's plugin versions, stored by content hash (what runs where is
//! `installations`'), and the per-tenant lock that serializes changes to what
//! is live, so two hosts activating or rolling back at once still leave a
//! history where every entry follows from the one before.

use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

use super::error::{tenant_fk, to_i64};
use super::records::{NewPluginVersion, PluginVersion};
use super::session::Access;
use super::tenant::TenantDb;
use super::time::now_ms;
use super::{Backend, StorageError, rows};

/// Namespace (first key) of the per-tenant advisory lock that serializes
/// activation changes on PostgreSQL: "VEN". The two-int4 form cannot collide with
/// the single-bigint lock sqlx's migrator takes.
const ACTIVATION_LOCK_CLASS: i32 = 0x0056_454e;

/// Per-tenant caps on stored plugin versions (each up to 16 MiB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginStoreLimits {
    /// Versions one tenant may store.
    pub max_versions: u32,
    /// Bytes of components one tenant may store.
    pub max_bytes: u64,
}

impl Default for PluginStoreLimits {
    fn default() -> Self {
        Self {
            max_versions: 50,
            max_bytes: 256 << 20,
        }
    }
}

/// Why a stored version cannot be deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionDeletion {
    /// Deleted.
    Deleted,
    /// No such version.
    Missing,
    /// Releases use it (`installation#release`): rollback needs it.
    InUse(Vec<String>),
}

macro_rules! version_columns {
    () => {
        "sha256, name, version, hooks, size_bytes, uploaded_by, created_at, wit_version, \
         description, settings_schema"
    };
}

impl TenantDb {
    /// Stores a plugin version. Storing the same sha256 again changes nothing and
    /// returns what is stored. Invalid if the hash or size does not match the
    /// binary; NotFound if the tenant does not exist.
    pub async fn put_plugin_version(
        &self,
        new: &NewPluginVersion<'_>,
    ) -> Result<PluginVersion, StorageError> {
        check_sha256(new.sha256)?;
        let actual = hex::encode(Sha256::digest(new.binary));
        if actual != new.sha256 {
            return Err(StorageError::Invalid(format!(
                "sha256 {} does not match the uploaded binary (its sha256 is {actual})",
                new.sha256
            )));
        }
        if usize::try_from(new.size_bytes).ok() != Some(new.binary.len()) {
            return Err(StorageError::Invalid(format!(
                "size_bytes {} does not match the binary's {} bytes",
                new.size_bytes,
                new.binary.len()
            )));
        }
        if new.name.trim().is_empty() || new.version.trim().is_empty() {
            return Err(StorageError::Invalid(
                "a plugin version needs a name and a version".into(),
            ));
        }
        let hooks = serde_json::to_string(new.hooks)
            .map_err(|e| StorageError::Invalid(format!("hooks cannot be stored: {e}")))?;
        let mut tx = self.begin(Access::Write).await?;
        // Two uploads at once must not both squeeze under the caps.
        self.lock_history(&mut tx).await?;
        if self.version_in(&mut tx, new.sha256).await?.is_none() {
            let (count, bytes): (i64, i64) = sqlx::query_as(
                "SELECT count(*), CAST(COALESCE(sum(size_bytes), 0) AS BIGINT) \
                   FROM plugin_versions WHERE tenant_id = $1",
            )
            .bind(self.tenant_id().as_str())
            .fetch_one(&mut *tx)
            .await?;
            let limits = self.plugin_limits();
            let (count, bytes) = (
                u64::try_from(count).unwrap_or(0),
                u64::try_from(bytes).unwrap_or(0),
            );
            if count >= u64::from(limits.max_versions) {
                return Err(StorageError::PluginStoreFull(format!(
                    "the tenant stores {count} plugin versions, the most allowed is {}; delete \
                     unused ones (DELETE /v1/plugins/<sha256>: versions no release uses)",
                    limits.max_versions
                )));
            }
            if bytes.saturating_add(new.size_bytes) > limits.max_bytes {
                return Err(StorageError::PluginStoreFull(format!(
                    "the tenant's plugin versions take {} KiB; this one ({} KiB) would pass the \
                     {} KiB allowed; delete unused ones (DELETE /v1/plugins/<sha256>)",
                    bytes / 1024,
                    new.size_bytes / 1024,
                    limits.max_bytes / 1024
                )));
            }
        }
        sqlx::query(
            "INSERT INTO plugin_versions (tenant_id, sha256, name, version, hooks, size_bytes, \
                                          wasm_binary, uploaded_by, created_at, wit_version, \
                                          description, settings_schema) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (tenant_id, sha256) DO NOTHING",
        )
        .bind(self.tenant_id().as_str())
        .bind(new.sha256)
        .bind(new.name)
        .bind(new.version)
        .bind(hooks)
        .bind(to_i64("size_bytes", new.size_bytes)?)
        .bind(new.binary)
        .bind(new.uploaded_by)
        .bind(now_ms())
        .bind(new.about.wit_version)
        .bind(new.about.description)
        .bind(new.about.settings_schema)
        .execute(&mut *tx)
        .await
        .map_err(tenant_fk(self.tenant_id()))?;
        let stored = self.version_in(&mut tx, new.sha256).await?;
        tx.commit().await?;
        stored.ok_or_else(|| {
            // The row was just inserted or already there, in this transaction.
            StorageError::Database(sqlx::Error::RowNotFound)
        })
    }

    /// Deletes a stored version no release uses (a release keeps its component
    /// for rollback, a draft until it is deleted).
    pub async fn delete_plugin_version(
        &self,
        sha256: &str,
    ) -> Result<VersionDeletion, StorageError> {
        if check_sha256(sha256).is_err() {
            return Ok(VersionDeletion::Missing);
        }
        let mut tx = self.begin(Access::Write).await?;
        self.lock_history(&mut tx).await?;
        let users: Vec<(String, i64)> = sqlx::query_as(
            "SELECT installation, id FROM releases WHERE tenant_id = $1 AND sha256 = $2 \
              ORDER BY installation, id",
        )
        .bind(self.tenant_id().as_str())
        .bind(sha256)
        .fetch_all(&mut *tx)
        .await?;
        if !users.is_empty() {
            tx.commit().await?;
            return Ok(VersionDeletion::InUse(
                users
                    .into_iter()
                    .map(|(installation, id)| format!("{installation}#{id}"))
                    .collect(),
            ));
        }
        // The single-plugin history from before installations is read by
        // nothing; its rows must not keep a version alive.
        sqlx::query("DELETE FROM activations WHERE tenant_id = $1 AND sha256 = $2")
            .bind(self.tenant_id().as_str())
            .bind(sha256)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM plugin_versions WHERE tenant_id = $1 AND sha256 = $2")
            .bind(self.tenant_id().as_str())
            .bind(sha256)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(if done.rows_affected() == 1 {
            VersionDeletion::Deleted
        } else {
            VersionDeletion::Missing
        })
    }

    /// Every stored version, newest first, `active` when live in an installation.
    pub async fn plugin_versions(&self) -> Result<Vec<PluginVersion>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let live = live_in(&mut tx, self).await?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            version_columns!(),
            " FROM plugin_versions WHERE tenant_id = $1 \
              ORDER BY created_at DESC, sha256 DESC"
        ))
        .bind(self.tenant_id().as_str())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter()
            .map(|row| version_from_row(row, &live))
            .collect()
    }

    /// One stored version.
    pub async fn plugin_version(
        &self,
        sha256: &str,
    ) -> Result<Option<PluginVersion>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let version = self.version_in(&mut tx, sha256).await?;
        tx.commit().await?;
        Ok(version)
    }

    /// A stored version's component bytes.
    pub async fn plugin_binary(&self, sha256: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let binary = sqlx::query_scalar(
            "SELECT wasm_binary FROM plugin_versions WHERE tenant_id = $1 AND sha256 = $2",
        )
        .bind(self.tenant_id().as_str())
        .bind(sha256)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(binary)
    }

    /// Serializes history changes of this tenant across connections and hosts.
    /// SQLite needs nothing more: the write transaction (`BEGIN IMMEDIATE`)
    /// already excludes every other writer.
    pub(super) async fn lock_history(
        &self,
        tx: &mut Transaction<'static, Any>,
    ) -> Result<(), StorageError> {
        if self.backend() == Backend::Postgres {
            sqlx::query("SELECT 1 FROM (SELECT pg_advisory_xact_lock($1, hashtext($2))) AS locked")
                .bind(ACTIVATION_LOCK_CLASS)
                .bind(self.tenant_id().as_str())
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    async fn version_in(
        &self,
        tx: &mut Transaction<'static, Any>,
        sha256: &str,
    ) -> Result<Option<PluginVersion>, StorageError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            version_columns!(),
            " FROM plugin_versions WHERE tenant_id = $1 AND sha256 = $2"
        ))
        .bind(self.tenant_id().as_str())
        .bind(sha256)
        .fetch_optional(&mut **tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let live = live_in(tx, self).await?;
        version_from_row(&row, &live).map(Some)
    }
}

/// The plugins live in any of the tenant's installations.
async fn live_in(
    tx: &mut Transaction<'static, Any>,
    db: &TenantDb,
) -> Result<Vec<String>, StorageError> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT r.sha256 FROM installations i \
           JOIN releases r ON r.tenant_id = i.tenant_id AND r.installation = i.name \
                          AND r.id = i.active_release \
          WHERE i.tenant_id = $1",
    )
    .bind(db.tenant_id().as_str())
    .fetch_all(&mut **tx)
    .await?)
}

fn version_from_row(row: &AnyRow, live: &[String]) -> Result<PluginVersion, StorageError> {
    let sha256 = rows::text(row, "sha256")?;
    let hooks_json = rows::text(row, "hooks")?;
    let hooks = serde_json::from_str(&hooks_json).map_err(|e| {
        StorageError::Database(sqlx::Error::ColumnDecode {
            index: "hooks".into(),
            source: e.into(),
        })
    })?;
    Ok(PluginVersion {
        active: live.contains(&sha256),
        sha256,
        name: rows::text(row, "name")?,
        version: rows::text(row, "version")?,
        hooks,
        size_bytes: rows::u64(row, "size_bytes")?,
        uploaded_by: rows::text(row, "uploaded_by")?,
        created_at: rows::int(row, "created_at")?,
        wit_version: rows::text(row, "wit_version")?,
        description: rows::text(row, "description")?,
        settings_schema: rows::opt_text(row, "settings_schema")?,
    })
}

fn check_sha256(sha256: &str) -> Result<(), StorageError> {
    if sha256.len() == 64
        && sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(StorageError::Invalid(format!(
            "`{}` is not a sha256: use 64 lowercase hex digits",
            sha256.chars().take(80).collect::<String>()
        )))
    }
}
