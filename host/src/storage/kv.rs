//! A tenant's key-value store (what plugins read and write through the host).
//! Keys compare bytewise on both backends (SQLite BINARY, PostgreSQL "C"), so a
//! prefix is a key range and listing order is the same everywhere.

use std::collections::BTreeMap;

use super::StorageError;
use super::error::tenant_fk;
use super::session::Access;
use super::tenant::TenantDb;
use super::time::now_ms;

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

    /// Sets `key` to `value`, replacing any previous value.
    pub async fn kv_put(&self, key: &str, value: &str) -> Result<(), StorageError> {
        // PostgreSQL text cannot hold NUL; refuse it on both backends alike.
        if key.contains('\0') || value.contains('\0') {
            return Err(StorageError::Invalid(
                "a key-value key or value must not contain NUL characters".into(),
            ));
        }
        let mut tx = self.begin(Access::Write).await?;
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
        tx.commit().await?;
        Ok(())
    }

    /// Removes `key`; false if it was not there.
    pub async fn kv_delete(&self, key: &str) -> Result<bool, StorageError> {
        let mut tx = self.begin(Access::Write).await?;
        let done = sqlx::query("DELETE FROM kv WHERE tenant_id = $1 AND key = $2")
            .bind(self.tenant_id().as_str())
            .bind(key)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
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
