//! A tenant's key-value store (what plugins read and write through the host).
//! Keys compare bytewise on both backends (SQLite BINARY, PostgreSQL "C"), so a
//! prefix is a key range and listing order is the same everywhere.
//!
//! Each tenant's usage (keys, and bytes of keys plus values) is kept in
//! `kv_usage`, changed by every write in the write's own transaction, and capped
//! by [`KvLimits`]: a write first locks the tenant's usage row (an upsert, so on
//! PostgreSQL concurrent writes of one tenant queue behind it; SQLite has one
//! writer anyway), so two writes cannot both squeeze under the cap. Its `version`
//! changes with every write: a snapshot of the data read at one version is the
//! same for everyone who reads that version, so it can be shared.

use std::collections::BTreeMap;

use sqlx::{Any, Transaction};

use super::StorageError;
use super::error::tenant_fk;
use super::rows;
use super::session::Access;
use super::tenant::TenantDb;
use super::time::now_ms;

/// Per-tenant caps on the key-value store, checked by every write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvLimits {
    /// Keys one tenant may hold.
    pub max_keys: u64,
    /// Bytes one tenant may hold: its keys plus its values, in UTF-8.
    pub max_bytes: u64,
}

impl Default for KvLimits {
    fn default() -> Self {
        Self {
            max_keys: 10_000,
            max_bytes: 16 << 20,
        }
    }
}

/// What a tenant's key-value store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KvUsage {
    /// Keys held.
    pub keys: u64,
    /// Bytes held: keys plus values, in UTF-8.
    pub bytes: u64,
    /// Changes with every write (0 before the first one).
    pub version: i64,
}

/// A consistent read of a tenant's key-value data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvSnapshotRead {
    /// The entries (at most the limit asked for, by key).
    pub entries: BTreeMap<String, String>,
    /// The usage version the entries are exactly the data of; `None` when the
    /// data changed while it was read (then the entries are some mix, and the
    /// next read will see the change: do not share them under a version).
    pub version: Option<i64>,
}

impl TenantDb {
    /// The value under `key`.
    pub async fn kv_get(&self, key: &str) -> Result<Option<String>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let value = sqlx::query_scalar("SELECT value FROM kv WHERE tenant_id = $1 AND key = $2")
            .bind(self.tenant_id().as_str())
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(value)
    }

    /// Sets `key` to `value`, replacing any previous value, unless the tenant's
    /// store would then hold more keys or bytes than its [`KvLimits`] allow
    /// ([`StorageError::KvQuotaExceeded`], and nothing changes). A write that
    /// does not grow the store is always taken, so a tenant over a lowered cap
    /// can still shrink its values.
    pub async fn kv_put(&self, key: &str, value: &str) -> Result<(), StorageError> {
        // PostgreSQL text cannot hold NUL; refuse it on both backends alike.
        if key.contains('\0') || value.contains('\0') {
            return Err(StorageError::Invalid(
                "a key-value key or value must not contain NUL characters".into(),
            ));
        }
        let limits = self.kv_limits();
        let mut tx = self.begin(Access::Write).await?;
        let (keys, bytes) = self.lock_kv_usage(&mut tx).await?;
        let old: Option<i64> = sqlx::query_scalar(
            "SELECT octet_length(key) + octet_length(value) FROM kv \
              WHERE tenant_id = $1 AND key = $2",
        )
        .bind(self.tenant_id().as_str())
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?;
        let entry = i64::try_from(key.len() + value.len()).unwrap_or(i64::MAX);
        let new_keys = keys + i64::from(old.is_none());
        let new_bytes = (bytes - old.unwrap_or(0) + entry).max(0);
        if new_keys > keys && over(new_keys, limits.max_keys) {
            return Err(StorageError::KvQuotaExceeded(format!(
                "this tenant's key-value store holds {keys} keys and its limit is {}: \
                 delete keys you no longer need, or overwrite an existing key, to store this one",
                limits.max_keys
            )));
        }
        if new_bytes > bytes && over(new_bytes, limits.max_bytes) {
            return Err(StorageError::KvQuotaExceeded(format!(
                "this tenant's key-value store holds {bytes} bytes (keys plus values) and its \
                 limit is {}; this write needs {} more: delete keys you no longer need or \
                 store shorter values",
                limits.max_bytes,
                new_bytes - bytes
            )));
        }
        sqlx::query(
            "INSERT INTO kv (tenant_id, key, value, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant_id, key) DO UPDATE SET value = excluded.value, \
                                                        updated_at = excluded.updated_at",
        )
        .bind(self.tenant_id().as_str())
        .bind(key)
        .bind(value)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(tenant_fk(self.tenant_id()))?;
        self.set_kv_usage(&mut tx, new_keys, new_bytes).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes `key`; false if it was not there.
    pub async fn kv_delete(&self, key: &str) -> Result<bool, StorageError> {
        let mut tx = self.begin(Access::Write).await?;
        // Usage first, as in `kv_put`: one lock order, so no deadlock between them.
        let (keys, bytes) = self.lock_kv_usage(&mut tx).await?;
        let freed: Option<i64> = sqlx::query_scalar(
            "DELETE FROM kv WHERE tenant_id = $1 AND key = $2 \
             RETURNING octet_length(key) + octet_length(value)",
        )
        .bind(self.tenant_id().as_str())
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(freed) = freed else {
            // Nothing changed: the usage row's no-op update goes with the rollback.
            return Ok(false);
        };
        self.set_kv_usage(&mut tx, (keys - 1).max(0), (bytes - freed).max(0))
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// What the tenant's store holds now.
    pub async fn kv_usage(&self) -> Result<KvUsage, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let usage = self.read_kv_usage(&mut tx).await?;
        tx.commit().await?;
        Ok(usage)
    }

    /// Up to `limit` entries, by key, with the usage version they are the data
    /// of (see [`KvSnapshotRead::version`]). The version is read before and after
    /// the entries: equal means no write committed in between, on PostgreSQL's
    /// per-statement snapshots too.
    pub async fn kv_snapshot(&self, limit: u32) -> Result<KvSnapshotRead, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let before = self.read_kv_usage(&mut tx).await?.version;
        let entries: Vec<(String, String)> =
            sqlx::query_as("SELECT key, value FROM kv WHERE tenant_id = $1 ORDER BY key LIMIT $2")
                .bind(self.tenant_id().as_str())
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await?;
        let after = self.read_kv_usage(&mut tx).await?.version;
        tx.commit().await?;
        Ok(KvSnapshotRead {
            entries: entries.into_iter().collect(),
            version: (before == after).then_some(after),
        })
    }

    async fn read_kv_usage(
        &self,
        tx: &mut Transaction<'static, Any>,
    ) -> Result<KvUsage, StorageError> {
        let row = sqlx::query("SELECT keys, bytes, version FROM kv_usage WHERE tenant_id = $1")
            .bind(self.tenant_id().as_str())
            .fetch_optional(&mut **tx)
            .await?;
        match row {
            Some(row) => Ok(KvUsage {
                keys: rows::u64(&row, "keys")?,
                bytes: rows::u64(&row, "bytes")?,
                version: rows::int(&row, "version")?,
            }),
            None => Ok(KvUsage::default()),
        }
    }

    /// Locks the tenant's usage row (creating it at zero) and returns its keys
    /// and bytes. An upsert rather than `SELECT .. FOR UPDATE`: one statement on
    /// both backends, and it works for a tenant's first write too.
    async fn lock_kv_usage(
        &self,
        tx: &mut Transaction<'static, Any>,
    ) -> Result<(i64, i64), StorageError> {
        let row = sqlx::query(
            "INSERT INTO kv_usage (tenant_id, keys, bytes, version) VALUES ($1, 0, 0, 0) \
             ON CONFLICT (tenant_id) DO UPDATE SET keys = kv_usage.keys \
             RETURNING keys, bytes",
        )
        .bind(self.tenant_id().as_str())
        .fetch_one(&mut **tx)
        .await
        .map_err(tenant_fk(self.tenant_id()))?;
        Ok((rows::int(&row, "keys")?, rows::int(&row, "bytes")?))
    }

    async fn set_kv_usage(
        &self,
        tx: &mut Transaction<'static, Any>,
        keys: i64,
        bytes: i64,
    ) -> Result<(), StorageError> {
        sqlx::query("UPDATE kv_usage SET keys = $2, bytes = $3, version = $4 WHERE tenant_id = $1")
            .bind(self.tenant_id().as_str())
            .bind(keys)
            .bind(bytes)
            // Random rather than +1: a tenant deleted and created again under
            // the same id must not meet its old versions (and their snapshots).
            .bind(rand::random::<i64>())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Up to `limit` entries whose key starts with `prefix`, by key. The prefix is
    /// matched literally (no wildcards) as the key range `[prefix, successor)`,
    /// which the primary key index serves.
    pub async fn kv_list(
        &self,
        prefix: &str,
        limit: u32,
    ) -> Result<Vec<(String, String)>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let entries = match prefix_successor(prefix) {
            Some(end) => {
                sqlx::query_as(
                    "SELECT key, value FROM kv \
                      WHERE tenant_id = $1 AND key >= $2 AND key < $3 \
                      ORDER BY key LIMIT $4",
                )
                .bind(self.tenant_id().as_str())
                .bind(prefix)
                .bind(end)
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await?
            }
            None => {
                sqlx::query_as(
                    "SELECT key, value FROM kv \
                      WHERE tenant_id = $1 AND key >= $2 ORDER BY key LIMIT $3",
                )
                .bind(self.tenant_id().as_str())
                .bind(prefix)
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await?
            }
        };
        tx.commit().await?;
        Ok(entries)
    }

    /// Up to `limit` entries, by key.
    pub async fn kv_all(&self, limit: u32) -> Result<BTreeMap<String, String>, StorageError> {
        Ok(self.kv_list("", limit).await?.into_iter().collect())
    }
}

/// Whether `count` is over `cap`.
fn over(count: i64, cap: u64) -> bool {
    u64::try_from(count).is_ok_and(|count| count > cap)
}

/// The smallest string greater than every string starting with `prefix`, or
/// `None` when there is none (empty prefix, or only `char::MAX`s). Bytewise
/// UTF-8 order is code point order, so bumping the last bumpable character is it.
fn prefix_successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match u32::from(last) + 1 {
            // Skip the surrogate range, which is not made of chars.
            0xD800 => Some('\u{E000}'),
            n => char::from_u32(n),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::prefix_successor;

    #[test]
    fn successor_bounds_exactly_the_prefixed_keys() {
        assert_eq!(prefix_successor(""), None);
        assert_eq!(prefix_successor("a"), Some("b".into()));
        assert_eq!(prefix_successor("user/"), Some("user0".into()));
        assert_eq!(prefix_successor("a\u{D7FF}"), Some("a\u{E000}".into()));
        assert_eq!(prefix_successor("a\u{10FFFF}"), Some("b".into()));
        assert_eq!(prefix_successor("\u{10FFFF}"), None);
        let end = prefix_successor("é").unwrap_or_default();
        assert!("é" < "éz" && "éz" < end.as_str() && "é\u{10FFFF}" < end.as_str());
    }
}
