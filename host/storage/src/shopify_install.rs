//! The Shopify install flow's rows: a tenant's own Shopify app (client id,
//! sealed client secret, the scopes it asks for) and the installs it started
//! and has not finished (the OAuth `state` nonces: single use, bound to tenant
//! and shop, expiring; at most [`MAX_PENDING_INSTALLS`] at a time).

use super::session::Access;
use super::shopify::{check_encrypted, normalize_shop_domain};
use super::time::now_ms;
use super::{StorageError, TenantDb, rows};

/// Installs one tenant may have started and not finished at once.
pub const MAX_PENDING_INSTALLS: i64 = 20;

/// A tenant's Shopify app, as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct ShopifyAppRecord {
    pub client_id: String,
    /// Sealed with `secrets::SecretBox`, bound to the tenant.
    pub client_secret_enc: String,
    /// The scopes asked for at install, comma-separated.
    pub scopes: String,
    pub updated_at: i64,
}

impl std::fmt::Debug for ShopifyAppRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShopifyAppRecord")
            .field("client_id", &self.client_id)
            .field("scopes", &self.scopes)
            .field("updated_at", &self.updated_at)
            .finish_non_exhaustive()
    }
}

impl TenantDb {
    /// Sets this tenant's Shopify app (replacing the one before).
    pub async fn put_shopify_app(
        &self,
        client_id: &str,
        client_secret_enc: &str,
        scopes: &str,
    ) -> Result<ShopifyAppRecord, StorageError> {
        check_encrypted("client secret", client_secret_enc)?;
        let now = now_ms();
        let mut tx = self.begin(Access::Write).await?;
        sqlx::query(
            "INSERT INTO shopify_apps (tenant_id, client_id, client_secret_enc, scopes, updated_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant_id) DO UPDATE SET client_id = excluded.client_id, \
                 client_secret_enc = excluded.client_secret_enc, scopes = excluded.scopes, \
                 updated_at = excluded.updated_at",
        )
        .bind(self.tenant_id().as_str())
        .bind(client_id)
        .bind(client_secret_enc)
        .bind(scopes)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(super::error::tenant_fk(self.tenant_id()))?;
        tx.commit().await?;
        Ok(ShopifyAppRecord {
            client_id: client_id.to_owned(),
            client_secret_enc: client_secret_enc.to_owned(),
            scopes: scopes.to_owned(),
            updated_at: now,
        })
    }

    /// Swaps the app's sealed client secret for `new` (re-encrypted under
    /// another key) if it is still `old`; whether it was.
    pub async fn replace_shopify_client_secret(
        &self,
        old: &str,
        new: &str,
    ) -> Result<bool, StorageError> {
        check_encrypted("client secret", new)?;
        let mut tx = self.begin(Access::Write).await?;
        let n = sqlx::query(
            "UPDATE shopify_apps SET client_secret_enc = $3 \
              WHERE tenant_id = $1 AND client_secret_enc = $2",
        )
        .bind(self.tenant_id().as_str())
        .bind(old)
        .bind(new)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }

    /// This tenant's Shopify app, if it set one.
    pub async fn shopify_app(&self) -> Result<Option<ShopifyAppRecord>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let row = sqlx::query(
            "SELECT client_id, client_secret_enc, scopes, updated_at FROM shopify_apps \
              WHERE tenant_id = $1",
        )
        .bind(self.tenant_id().as_str())
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.map(|row| {
            Ok(ShopifyAppRecord {
                client_id: rows::text(&row, "client_id")?,
                client_secret_enc: rows::text(&row, "client_secret_enc")?,
                scopes: rows::text(&row, "scopes")?,
                updated_at: rows::int(&row, "updated_at")?,
            })
        })
        .transpose()
    }

    /// Removes this tenant's Shopify app and its unfinished installs; whether
    /// it had one.
    pub async fn delete_shopify_app(&self) -> Result<bool, StorageError> {
        let mut tx = self.begin(Access::Write).await?;
        sqlx::query("DELETE FROM shopify_oauth_states WHERE tenant_id = $1")
            .bind(self.tenant_id().as_str())
            .execute(&mut *tx)
            .await?;
        let n = sqlx::query("DELETE FROM shopify_apps WHERE tenant_id = $1")
            .bind(self.tenant_id().as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n > 0)
    }

    /// Records an install started for `shop`, with its `nonce`, until
    /// `expires_at` (Unix ms). Expired ones are dropped first; Conflict when
    /// [`MAX_PENDING_INSTALLS`] are still pending.
    pub async fn begin_shopify_install(
        &self,
        nonce: &str,
        shop: &str,
        expires_at: i64,
    ) -> Result<(), StorageError> {
        let shop = normalize_shop_domain(shop)?;
        let mut tx = self.begin(Access::Write).await?;
        sqlx::query("DELETE FROM shopify_oauth_states WHERE tenant_id = $1 AND expires_at <= $2")
            .bind(self.tenant_id().as_str())
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        let pending: i64 =
            sqlx::query_scalar("SELECT count(*) FROM shopify_oauth_states WHERE tenant_id = $1")
                .bind(self.tenant_id().as_str())
                .fetch_one(&mut *tx)
                .await?;
        if pending >= MAX_PENDING_INSTALLS {
            return Err(StorageError::Conflict(format!(
                "{pending} Shopify installs are started and not finished: finish one, or wait \
                 until they expire (10 minutes)"
            )));
        }
        sqlx::query(
            "INSERT INTO shopify_oauth_states (nonce, tenant_id, shop, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(nonce)
        .bind(self.tenant_id().as_str())
        .bind(shop.as_str())
        .bind(expires_at)
        .execute(&mut *tx)
        .await
        .map_err(super::error::tenant_fk(self.tenant_id()))?;
        tx.commit().await?;
        Ok(())
    }

    /// Takes (removes) the unfinished install of `nonce`: its shop, if it
    /// was this tenant's and has not expired. A nonce works once.
    pub async fn take_shopify_install(&self, nonce: &str) -> Result<Option<String>, StorageError> {
        let mut tx = self.begin(Access::Write).await?;
        let row: Option<(String, i64)> = sqlx::query_as(
            "DELETE FROM shopify_oauth_states WHERE nonce = $1 AND tenant_id = $2 \
             RETURNING shop, expires_at",
        )
        .bind(nonce)
        .bind(self.tenant_id().as_str())
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(row.and_then(|(shop, expires_at)| (expires_at > now_ms()).then_some(shop)))
    }
}
