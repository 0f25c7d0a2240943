//! A tenant's plugin versions (stored by content hash) and its activation
//! history, whose latest entry names the active plugin. Changes to the history
//! are serialized per tenant so two hosts activating or rolling back at once
//! still leave a history where every entry follows from the one before.

use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::error::{tenant_fk, to_i64};
use super::records::{Activation, NewPluginVersion, PluginVersion};
use super::session::Access;
use super::tenant::TenantDb;
use super::time::now_ms;
use super::{Backend, StorageError, rows};

/// Namespace (first key) of the per-tenant advisory lock that serializes
/// activation changes on PostgreSQL: "VEN". The two-int4 form cannot collide with
/// the single-bigint lock sqlx's migrator takes.
const ACTIVATION_LOCK_CLASS: i32 = 0x0056_454e;

macro_rules! version_columns {
    () => {
        "sha256, name, version, hooks, size_bytes, uploaded_by, created_at"
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
        sqlx::query(
            "INSERT INTO plugin_versions (tenant_id, sha256, name, version, hooks, size_bytes, \
                                          wasm_binary, uploaded_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
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

    /// Every stored version, newest first, with `active` set on the active one.
    pub async fn plugin_versions(&self) -> Result<Vec<PluginVersion>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let active = active_in(&mut tx, self).await?;
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
            .map(|row| version_from_row(row, active.as_deref()))
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

    /// Makes a stored version the active plugin. NotFound if this tenant has no
    /// such version.
    pub async fn activate(&self, sha256: &str, actor: &str) -> Result<Activation, StorageError> {
        let mut tx = self.begin(Access::Write).await?;
        self.lock_history(&mut tx).await?;
        let exists: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM plugin_versions WHERE tenant_id = $1 AND sha256 = $2",
        )
        .bind(self.tenant_id().as_str())
        .bind(sha256)
        .fetch_optional(&mut *tx)
        .await?;
        if exists.is_none() {
            return Err(StorageError::NotFound(format!(
                "tenant `{}` has no plugin version with that sha256: upload it first",
                self.tenant_id()
            )));
        }
        let activation = self
            .record_activation(&mut tx, Some(sha256), "activate", actor)
            .await?;
        tx.commit().await?;
        Ok(activation)
    }

    /// Re-activates the plugin that was active before the current one: the
    /// newest earlier entry naming a different plugin (after a deactivation,
    /// the last plugin that was active). Rolling back twice therefore returns to
    /// where it started. Conflict if there is no such plugin.
    pub async fn rollback(&self, actor: &str) -> Result<Activation, StorageError> {
        let mut tx = self.begin(Access::Write).await?;
        self.lock_history(&mut tx).await?;
        let latest = sqlx::query(
            "SELECT id, sha256 FROM activations WHERE tenant_id = $1 ORDER BY id DESC LIMIT 1",
        )
        .bind(self.tenant_id().as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let previous: Option<String> = match latest {
            None => None,
            Some(latest) => {
                let id = rows::int(&latest, "id")?;
                match rows::opt_text(&latest, "sha256")? {
                    Some(current) => {
                        sqlx::query_scalar(
                            "SELECT sha256 FROM activations \
                              WHERE tenant_id = $1 AND id < $2 \
                                AND sha256 IS NOT NULL AND sha256 <> $3 \
                              ORDER BY id DESC LIMIT 1",
                        )
                        .bind(self.tenant_id().as_str())
                        .bind(id)
                        .bind(current)
                        .fetch_optional(&mut *tx)
                        .await?
                    }
                    None => {
                        sqlx::query_scalar(
                            "SELECT sha256 FROM activations \
                              WHERE tenant_id = $1 AND id < $2 AND sha256 IS NOT NULL \
                              ORDER BY id DESC LIMIT 1",
                        )
                        .bind(self.tenant_id().as_str())
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?
                    }
                }
            }
        };
        let Some(previous) = previous else {
            return Err(StorageError::Conflict(
                "no previous plugin to roll back to".into(),
            ));
        };
        let activation = self
            .record_activation(&mut tx, Some(&previous), "rollback", actor)
            .await?;
        tx.commit().await?;
        Ok(activation)
    }

    /// Leaves the tenant without an active plugin: it is served the base
    /// configuration.
    pub async fn deactivate(&self, actor: &str) -> Result<Activation, StorageError> {
        let mut tx = self.begin(Access::Write).await?;
        self.lock_history(&mut tx).await?;
        let activation = self
            .record_activation(&mut tx, None, "deactivate", actor)
            .await?;
        tx.commit().await?;
        Ok(activation)
    }

    /// The sha256 of the active plugin, if any.
    pub async fn active_plugin(&self) -> Result<Option<String>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let active = active_in(&mut tx, self).await?;
        tx.commit().await?;
        Ok(active)
    }

    /// The newest `limit` entries of the activation history.
    pub async fn activations(&self, limit: u32) -> Result<Vec<Activation>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let rows = sqlx::query(
            "SELECT sha256, action, actor, created_at FROM activations \
              WHERE tenant_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(self.tenant_id().as_str())
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter().map(activation_from_row).collect()
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

    async fn record_activation(
        &self,
        tx: &mut Transaction<'static, Any>,
        sha256: Option<&str>,
        action: &'static str,
        actor: &str,
    ) -> Result<Activation, StorageError> {
        let row = sqlx::query(
            "INSERT INTO activations (tenant_id, sha256, action, actor, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING sha256, action, actor, created_at",
        )
        .bind(self.tenant_id().as_str())
        .bind(sha256)
        .bind(action)
        .bind(actor)
        .bind(now_ms())
        .fetch_one(&mut **tx)
        .await
        .map_err(tenant_fk(self.tenant_id()))?;
        activation_from_row(&row)
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
        let active = active_in(tx, self).await?;
        version_from_row(&row, active.as_deref()).map(Some)
    }
}

async fn active_in(
    tx: &mut Transaction<'static, Any>,
    db: &TenantDb,
) -> Result<Option<String>, StorageError> {
    let latest: Option<Option<String>> = sqlx::query_scalar(
        "SELECT sha256 FROM activations WHERE tenant_id = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(db.tenant_id().as_str())
    .fetch_optional(&mut **tx)
    .await?;
    Ok(latest.flatten())
}

fn version_from_row(row: &AnyRow, active: Option<&str>) -> Result<PluginVersion, StorageError> {
    let sha256 = rows::text(row, "sha256")?;
    let hooks_json = rows::text(row, "hooks")?;
    let hooks = serde_json::from_str(&hooks_json).map_err(|e| {
        StorageError::Database(sqlx::Error::ColumnDecode {
            index: "hooks".into(),
            source: e.into(),
        })
    })?;
    Ok(PluginVersion {
        active: active == Some(sha256.as_str()),
        sha256,
        name: rows::text(row, "name")?,
        version: rows::text(row, "version")?,
        hooks,
        size_bytes: rows::u64(row, "size_bytes")?,
        uploaded_by: rows::text(row, "uploaded_by")?,
        created_at: rows::int(row, "created_at")?,
    })
}

fn activation_from_row(row: &AnyRow) -> Result<Activation, StorageError> {
    Ok(Activation {
        sha256: row.try_get("sha256")?,
        action: rows::text(row, "action")?,
        actor: rows::text(row, "actor")?,
        created_at: rows::int(row, "created_at")?,
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
