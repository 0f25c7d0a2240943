//! A tenant's Shopify store: its encrypted credentials, the webhook ids already
//! accepted (deduplication), the commission decisions taken on order lines (at
//! most one per line, ever) and the product types of its products. Credentials
//! arrive here already encrypted (`secrets::SecretBox`) and are refused
//! otherwise; this module never sees a plaintext token.
//!
//! **Binding.** A shop is bound to at most one tenant at a time: the one whose
//! store row for it is enabled (a unique index over enabled rows). Disconnecting
//! and uninstalling disable the row, which releases the shop for another
//! tenant while the row (and, after an uninstall, the app secret) stays for
//! the record. Callers prove ownership before connecting (`shopify::
//! prove_ownership`), so the conflict below only ever answers a caller who
//! holds a working token for the shop.
//!
//! Booleans are BOOLEAN on PostgreSQL and INTEGER on SQLite: statements write
//! the literals TRUE/FALSE (both accept them) and read `CASE WHEN enabled ..`,
//! which yields an integer on both.

use std::time::Duration;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::error::{check_json, is_unique_on, tenant_fk};
use super::platform::PlatformDb;
use super::session::Access;
use super::tenant::TenantDb;
use super::time::now_ms;
use super::{StorageError, rows};
use veneer_core::tenancy_id::TenantId;

/// Webhook ids are kept at least this long: Shopify retries a delivery for
/// hours, and a retry must still be recognised.
pub const SHOPIFY_WEBHOOK_MIN_RETENTION: Duration = Duration::from_secs(24 * 3600);
/// How long webhook ids are kept by default before pruning.
pub const SHOPIFY_WEBHOOK_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// The longest webhook id, topic, order, line or product id stored.
const MAX_ID_LEN: usize = 255;

/// The columns of `shopify_stores`, in the order [`store_from_row`] reads them.
macro_rules! store_columns {
    () => {
        "shop_domain, access_token_enc, app_secret_enc, api_version, \
         CASE WHEN enabled THEN 1 ELSE 0 END AS enabled, connected_at, uninstalled_at, updated_at, \
         scopes"
    };
}

/// The columns of `shopify_commissions`, in the order [`commission_from_row`] reads them.
macro_rules! commission_columns {
    () => {
        "order_id, line_item_id, decision, source, outcome, created_at"
    };
}

/// A tenant's connected Shopify store. The credentials are ciphertexts made by
/// `secrets::SecretBox` (`None` once wiped).
#[derive(Clone, PartialEq, Eq)]
pub struct ShopifyStoreRecord {
    /// `<shop>.myshopify.com`, lower case.
    pub shop_domain: String,
    /// The Admin API access token, encrypted.
    pub access_token_enc: Option<String>,
    /// The app's client secret that signs webhooks, encrypted.
    pub app_secret_enc: Option<String>,
    /// The Admin API version to call, e.g. `2025-07`.
    pub api_version: String,
    /// Whether the host acts for this store (false once disconnected or uninstalled).
    pub enabled: bool,
    pub connected_at: i64,
    pub uninstalled_at: Option<i64>,
    pub updated_at: i64,
    /// The scopes Shopify granted at install (comma-separated); None for a
    /// store connected with a pasted token.
    pub scopes: Option<String>,
}

impl std::fmt::Debug for ShopifyStoreRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Ciphertexts are useless without the key, but logs need not carry them.
        let shown = |v: &Option<String>| v.as_ref().map(|_| "<encrypted>");
        f.debug_struct("ShopifyStoreRecord")
            .field("shop_domain", &self.shop_domain)
            .field("access_token_enc", &shown(&self.access_token_enc))
            .field("app_secret_enc", &shown(&self.app_secret_enc))
            .field("api_version", &self.api_version)
            .field("enabled", &self.enabled)
            .field("connected_at", &self.connected_at)
            .field("uninstalled_at", &self.uninstalled_at)
            .field("updated_at", &self.updated_at)
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// A commission decision to record for one order line.
#[derive(Debug, Clone, Copy)]
pub struct NewShopifyCommission<'a> {
    pub order_id: &'a str,
    pub line_item_id: &'a str,
    /// The decision, as JSON.
    pub decision_json: &'a str,
    /// Who decided, e.g. `plugin` or `base`.
    pub source: &'a str,
    /// How the decision went, e.g. `ok` or the reason the base was used.
    pub outcome: &'a str,
}

/// A recorded commission decision.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ShopifyCommissionRecord {
    pub order_id: String,
    pub line_item_id: String,
    pub decision_json: String,
    pub source: String,
    pub outcome: String,
    pub created_at: i64,
}

/// A product's type and the category it maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShopifyProductRecord {
    pub product_id: String,
    pub product_type: String,
    /// The tenant's category for this product type, if one matched.
    pub category_id: Option<String>,
    /// The product's update time at Shopify, unix milliseconds.
    pub updated_at: i64,
}

/// One store's encrypted credentials, for re-encryption under a new key.
#[derive(Clone, PartialEq, Eq)]
pub struct ShopifyStoredCredentials {
    pub tenant: TenantId,
    pub access_token_enc: Option<String>,
    pub app_secret_enc: Option<String>,
}

impl std::fmt::Debug for ShopifyStoredCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShopifyStoredCredentials")
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

impl TenantDb {
    /// Connects (or reconnects) this tenant's store: replaces any previous
    /// store, enabled, not uninstalled. The credentials must be encrypted, and
    /// the caller must have proven the tenant holds the shop. Conflict if the
    /// shop is bound to another tenant (which one is not said: that is the
    /// other tenant's business).
    pub async fn connect_shopify(
        &self,
        shop_domain: &str,
        access_token_enc: &str,
        app_secret_enc: &str,
        api_version: &str,
    ) -> Result<ShopifyStoreRecord, StorageError> {
        self.connect_shopify_with_scopes(
            shop_domain,
            access_token_enc,
            app_secret_enc,
            api_version,
            None,
        )
        .await
    }

    /// [`connect_shopify`](Self::connect_shopify) for a store installed through
    /// OAuth, with the scopes Shopify granted.
    pub async fn connect_shopify_with_scopes(
        &self,
        shop_domain: &str,
        access_token_enc: &str,
        app_secret_enc: &str,
        api_version: &str,
        scopes: Option<&str>,
    ) -> Result<ShopifyStoreRecord, StorageError> {
        let domain = normalize_shop_domain(shop_domain)?;
        check_api_version(api_version)?;
        check_encrypted("access token", access_token_enc)?;
        check_encrypted("app secret", app_secret_enc)?;
        let now = now_ms();
        let mut tx = self.begin(Access::Write).await?;
        let row = sqlx::query(concat!(
            "INSERT INTO shopify_stores (tenant_id, shop_domain, access_token_enc, \
             app_secret_enc, api_version, enabled, connected_at, uninstalled_at, updated_at, \
             scopes) \
             VALUES ($1, $2, $3, $4, $5, TRUE, $6, NULL, $6, $7) \
             ON CONFLICT (tenant_id) DO UPDATE SET shop_domain = excluded.shop_domain, \
                 access_token_enc = excluded.access_token_enc, \
                 app_secret_enc = excluded.app_secret_enc, \
                 api_version = excluded.api_version, enabled = TRUE, \
                 connected_at = excluded.connected_at, uninstalled_at = NULL, \
                 updated_at = excluded.updated_at, scopes = excluded.scopes \
             RETURNING ",
            store_columns!()
        ))
        .bind(self.tenant_id().as_str())
        .bind(domain.as_str())
        .bind(access_token_enc)
        .bind(app_secret_enc)
        .bind(api_version)
        .bind(now)
        .bind(scopes)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_on(
                &e,
                "shopify_stores_bound_shop",
                "shopify_stores.shop_domain",
            ) {
                StorageError::Conflict(format!(
                    "the Shopify store `{domain}` is connected to another Veneer tenant: it \
                     must be disconnected there (or the app uninstalled) before it can be \
                     connected here"
                ))
            } else {
                tenant_fk(self.tenant_id())(e)
            }
        })?;
        let record = store_from_row(&row)?;
        tx.commit().await?;
        Ok(record)
    }

    /// This tenant's store, connected or not, if it ever had one.
    pub async fn shopify_store(&self) -> Result<Option<ShopifyStoreRecord>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let row = sqlx::query(concat!(
            "SELECT ",
            store_columns!(),
            " FROM shopify_stores WHERE tenant_id = $1"
        ))
        .bind(self.tenant_id().as_str())
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.as_ref().map(store_from_row).transpose()
    }

    /// Disconnects the store: wipes both credentials and disables it, which
    /// releases the shop for another tenant (the row stays, for the record).
    /// False if there was no store.
    pub async fn disconnect_shopify(&self) -> Result<bool, StorageError> {
        self.update_store(
            "UPDATE shopify_stores SET access_token_enc = NULL, app_secret_enc = NULL, \
                    enabled = FALSE, updated_at = $2 \
              WHERE tenant_id = $1",
        )
        .await
    }

    /// Records that the app was uninstalled from the shop: disables the store,
    /// which releases the shop for another tenant, and wipes the access token
    /// (Shopify has revoked it). The app secret is kept so the privacy webhooks
    /// Shopify sends after an uninstall can still be verified. False if there
    /// was no store.
    pub async fn mark_shopify_uninstalled(&self) -> Result<bool, StorageError> {
        self.update_store(
            "UPDATE shopify_stores SET access_token_enc = NULL, enabled = FALSE, \
                    uninstalled_at = $2, updated_at = $2 \
              WHERE tenant_id = $1",
        )
        .await
    }

    /// Forgets the store entirely, freeing its shop domain for another tenant.
    /// Webhook ids, commissions and products stay. False if there was no store.
    pub async fn delete_shopify_store(&self) -> Result<bool, StorageError> {
        let mut tx = self.begin(Access::Write).await?;
        let done = sqlx::query("DELETE FROM shopify_stores WHERE tenant_id = $1")
            .bind(self.tenant_id().as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn update_store(&self, sql: &'static str) -> Result<bool, StorageError> {
        let mut tx = self.begin(Access::Write).await?;
        let done = sqlx::query(sql)
            .bind(self.tenant_id().as_str())
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Records a webhook delivery; true the first time this id is seen, false
    /// for a redelivery (which must then be acknowledged and not processed).
    pub async fn record_shopify_webhook(
        &self,
        webhook_id: &str,
        topic: &str,
    ) -> Result<bool, StorageError> {
        check_id("webhook id", webhook_id)?;
        check_id("webhook topic", topic)?;
        let mut tx = self.begin(Access::Write).await?;
        let done = sqlx::query(
            "INSERT INTO shopify_webhooks (tenant_id, webhook_id, topic, received_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, webhook_id) DO NOTHING",
        )
        .bind(self.tenant_id().as_str())
        .bind(webhook_id)
        .bind(topic)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(tenant_fk(self.tenant_id()))?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Forgets one webhook id, so a redelivery is processed: for when the
    /// delivery was recorded but its job could not be enqueued. False if it
    /// was not recorded.
    pub async fn forget_shopify_webhook(&self, webhook_id: &str) -> Result<bool, StorageError> {
        let mut tx = self.begin(Access::Write).await?;
        let done =
            sqlx::query("DELETE FROM shopify_webhooks WHERE tenant_id = $1 AND webhook_id = $2")
                .bind(self.tenant_id().as_str())
                .bind(webhook_id)
                .execute(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Forgets this tenant's webhook ids received more than `older_than` ago;
    /// how many. Refuses to go below [`SHOPIFY_WEBHOOK_MIN_RETENTION`].
    pub async fn prune_shopify_webhooks(&self, older_than: Duration) -> Result<u64, StorageError> {
        let cutoff = webhook_cutoff(older_than)?;
        let mut tx = self.begin(Access::Write).await?;
        let done =
            sqlx::query("DELETE FROM shopify_webhooks WHERE tenant_id = $1 AND received_at < $2")
                .bind(self.tenant_id().as_str())
                .bind(cutoff)
                .execute(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// Records the commission decision for one order line; true if recorded,
    /// false if that line already had one (which is kept unchanged).
    pub async fn record_shopify_commission(
        &self,
        new: &NewShopifyCommission<'_>,
    ) -> Result<bool, StorageError> {
        check_id("order id", new.order_id)?;
        check_id("line item id", new.line_item_id)?;
        check_id("commission source", new.source)?;
        check_json("the commission decision", new.decision_json)?;
        if new.outcome.contains('\0') {
            return Err(StorageError::Invalid(
                "the commission outcome must not contain NUL characters".into(),
            ));
        }
        let mut tx = self.begin(Access::Write).await?;
        let done = sqlx::query(
            "INSERT INTO shopify_commissions (tenant_id, order_id, line_item_id, decision, \
             source, outcome, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (tenant_id, order_id, line_item_id) DO NOTHING",
        )
        .bind(self.tenant_id().as_str())
        .bind(new.order_id)
        .bind(new.line_item_id)
        .bind(new.decision_json)
        .bind(new.source)
        .bind(new.outcome)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(tenant_fk(self.tenant_id()))?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Recorded commission decisions: one order's lines (by line id), or the
    /// newest `limit` of all orders.
    pub async fn shopify_commissions(
        &self,
        order_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ShopifyCommissionRecord>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let rows = match order_id {
            Some(order_id) => {
                sqlx::query(concat!(
                    "SELECT ",
                    commission_columns!(),
                    " FROM shopify_commissions WHERE tenant_id = $1 AND order_id = $2 \
                      ORDER BY line_item_id LIMIT $3"
                ))
                .bind(self.tenant_id().as_str())
                .bind(order_id)
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await?
            }
            None => {
                sqlx::query(concat!(
                    "SELECT ",
                    commission_columns!(),
                    " FROM shopify_commissions WHERE tenant_id = $1 \
                      ORDER BY created_at DESC, order_id, line_item_id LIMIT $2"
                ))
                .bind(self.tenant_id().as_str())
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await?
            }
        };
        tx.commit().await?;
        rows.iter().map(commission_from_row).collect()
    }

    /// Stores a product's type and category, unless a version updated later at
    /// Shopify is already stored (webhooks can arrive late or twice). True if
    /// stored.
    pub async fn upsert_shopify_product(
        &self,
        product_id: &str,
        product_type: &str,
        category_id: Option<&str>,
        updated_at: i64,
    ) -> Result<bool, StorageError> {
        check_id("product id", product_id)?;
        if product_type.contains('\0') || category_id.is_some_and(|c| c.contains('\0')) {
            return Err(StorageError::Invalid(
                "a product type or category id must not contain NUL characters".into(),
            ));
        }
        let mut tx = self.begin(Access::Write).await?;
        let done = sqlx::query(
            "INSERT INTO shopify_products (tenant_id, product_id, product_type, category_id, \
             updated_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant_id, product_id) DO UPDATE SET \
                 product_type = excluded.product_type, category_id = excluded.category_id, \
                 updated_at = excluded.updated_at \
             WHERE shopify_products.updated_at <= excluded.updated_at",
        )
        .bind(self.tenant_id().as_str())
        .bind(product_id)
        .bind(product_type)
        .bind(category_id)
        .bind(updated_at)
        .execute(&mut *tx)
        .await
        .map_err(tenant_fk(self.tenant_id()))?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// One product.
    pub async fn shopify_product(
        &self,
        product_id: &str,
    ) -> Result<Option<ShopifyProductRecord>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let row = sqlx::query(
            "SELECT product_id, product_type, category_id, updated_at FROM shopify_products \
              WHERE tenant_id = $1 AND product_id = $2",
        )
        .bind(self.tenant_id().as_str())
        .bind(product_id)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.as_ref().map(product_from_row).transpose()
    }

    /// Up to `limit` products, by product id.
    pub async fn shopify_products(
        &self,
        limit: u32,
    ) -> Result<Vec<ShopifyProductRecord>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let rows = sqlx::query(
            "SELECT product_id, product_type, category_id, updated_at FROM shopify_products \
              WHERE tenant_id = $1 ORDER BY product_id LIMIT $2",
        )
        .bind(self.tenant_id().as_str())
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter().map(product_from_row).collect()
    }

    /// Forgets a product (deleted at Shopify). False if it was not stored.
    pub async fn delete_shopify_product(&self, product_id: &str) -> Result<bool, StorageError> {
        let mut tx = self.begin(Access::Write).await?;
        let done =
            sqlx::query("DELETE FROM shopify_products WHERE tenant_id = $1 AND product_id = $2")
                .bind(self.tenant_id().as_str())
                .bind(product_id)
                .execute(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }
}

impl PlatformDb {
    /// The tenant a shop is bound to, or, when none holds it, the tenant that
    /// released it last (its store disabled). A malformed domain is simply
    /// unknown: it comes straight from a webhook header.
    pub async fn tenant_by_shop_domain(
        &self,
        shop_domain: &str,
    ) -> Result<Option<TenantId>, StorageError> {
        let Ok(domain) = normalize_shop_domain(shop_domain) else {
            return Ok(None);
        };
        let mut tx = self.begin(Access::Read).await?;
        // The tenant holding it, else the one that released it last.
        let tenant: Option<String> = sqlx::query_scalar(
            "SELECT tenant_id FROM shopify_stores WHERE shop_domain = $1 \
              ORDER BY CASE WHEN enabled THEN 0 ELSE 1 END, updated_at DESC, tenant_id \
              LIMIT 1",
        )
        .bind(domain.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        tenant.map(|t| stored_tenant(&t)).transpose()
    }

    /// A page of every store's encrypted credentials, by tenant, after `after`:
    /// what a key rotation walks through.
    pub async fn shopify_stores_for_rotation(
        &self,
        after: Option<&TenantId>,
        limit: u32,
    ) -> Result<Vec<ShopifyStoredCredentials>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let rows = sqlx::query(
            "SELECT tenant_id, access_token_enc, app_secret_enc FROM shopify_stores \
              WHERE tenant_id > $1 ORDER BY tenant_id LIMIT $2",
        )
        .bind(after.map_or("", TenantId::as_str))
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter()
            .map(|row| {
                Ok(ShopifyStoredCredentials {
                    tenant: stored_tenant(&rows::text(row, "tenant_id")?)?,
                    access_token_enc: rows::opt_text(row, "access_token_enc")?,
                    app_secret_enc: rows::opt_text(row, "app_secret_enc")?,
                })
            })
            .collect()
    }

    /// Replaces a store's encrypted credentials with `new`'s, only if they are
    /// still `old`'s (a reconnect meanwhile wins over a rotation). True if
    /// replaced.
    pub async fn replace_shopify_credentials(
        &self,
        old: &ShopifyStoredCredentials,
        new: &ShopifyStoredCredentials,
    ) -> Result<bool, StorageError> {
        if old.tenant != new.tenant {
            return Err(StorageError::Invalid(
                "credentials can only be replaced by the same tenant's".into(),
            ));
        }
        for value in [&new.access_token_enc, &new.app_secret_enc]
            .into_iter()
            .flatten()
        {
            check_encrypted("credential", value)?;
        }
        let mut tx = self.begin(Access::Write).await?;
        let done = sqlx::query(
            "UPDATE shopify_stores SET access_token_enc = $2, app_secret_enc = $3, \
                    updated_at = $6 \
              WHERE tenant_id = $1 AND access_token_enc IS NOT DISTINCT FROM $4 \
                AND app_secret_enc IS NOT DISTINCT FROM $5",
        )
        .bind(new.tenant.as_str())
        .bind(new.access_token_enc.as_deref())
        .bind(new.app_secret_enc.as_deref())
        .bind(old.access_token_enc.as_deref())
        .bind(old.app_secret_enc.as_deref())
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Forgets every tenant's webhook ids received more than `older_than` ago;
    /// how many. Refuses to go below [`SHOPIFY_WEBHOOK_MIN_RETENTION`].
    pub async fn prune_shopify_webhooks(&self, older_than: Duration) -> Result<u64, StorageError> {
        let cutoff = webhook_cutoff(older_than)?;
        let mut tx = self.begin(Access::Write).await?;
        let done = sqlx::query("DELETE FROM shopify_webhooks WHERE received_at < $1")
            .bind(cutoff)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }
}

fn store_from_row(row: &AnyRow) -> Result<ShopifyStoreRecord, StorageError> {
    Ok(ShopifyStoreRecord {
        shop_domain: rows::text(row, "shop_domain")?,
        access_token_enc: rows::opt_text(row, "access_token_enc")?,
        app_secret_enc: rows::opt_text(row, "app_secret_enc")?,
        api_version: rows::text(row, "api_version")?,
        enabled: rows::int(row, "enabled")? != 0,
        connected_at: rows::int(row, "connected_at")?,
        uninstalled_at: row.try_get("uninstalled_at")?,
        updated_at: rows::int(row, "updated_at")?,
        scopes: rows::opt_text(row, "scopes")?,
    })
}

fn commission_from_row(row: &AnyRow) -> Result<ShopifyCommissionRecord, StorageError> {
    Ok(ShopifyCommissionRecord {
        order_id: rows::text(row, "order_id")?,
        line_item_id: rows::text(row, "line_item_id")?,
        decision_json: rows::text(row, "decision")?,
        source: rows::text(row, "source")?,
        outcome: rows::text(row, "outcome")?,
        created_at: rows::int(row, "created_at")?,
    })
}

fn product_from_row(row: &AnyRow) -> Result<ShopifyProductRecord, StorageError> {
    Ok(ShopifyProductRecord {
        product_id: rows::text(row, "product_id")?,
        product_type: rows::text(row, "product_type")?,
        category_id: rows::opt_text(row, "category_id")?,
        updated_at: rows::int(row, "updated_at")?,
    })
}

fn stored_tenant(id: &str) -> Result<TenantId, StorageError> {
    TenantId::new(id).map_err(|e| {
        StorageError::Database(sqlx::Error::ColumnDecode {
            index: "tenant_id".into(),
            source: e.to_string().into(),
        })
    })
}

fn webhook_cutoff(older_than: Duration) -> Result<i64, StorageError> {
    if older_than < SHOPIFY_WEBHOOK_MIN_RETENTION {
        return Err(StorageError::Invalid(format!(
            "webhook ids must be kept at least {} hours so Shopify's retries are still \
             recognised; asked to prune after {} s",
            SHOPIFY_WEBHOOK_MIN_RETENTION.as_secs() / 3600,
            older_than.as_secs()
        )));
    }
    let age = i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX);
    Ok(now_ms().saturating_sub(age))
}

/// Lowercases and checks a shop's `<name>.myshopify.com` domain: the only kind
/// Shopify names in webhooks, and the only host the Admin API client will call
/// (anything else could point the host's requests at an internal address).
pub(super) fn normalize_shop_domain(domain: &str) -> Result<String, StorageError> {
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let valid = domain.strip_suffix(".myshopify.com").is_some_and(|name| {
        !name.is_empty()
            && name.len() <= 63
            && !name.starts_with('-')
            && !name.ends_with('-')
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    });
    if valid {
        Ok(domain)
    } else {
        Err(StorageError::Invalid(format!(
            "`{}` is not a Shopify shop domain: give the store's `<name>.myshopify.com` \
             domain (Settings > Domains in the Shopify admin), not its custom domain",
            domain.chars().take(80).collect::<String>()
        )))
    }
}

/// `YYYY-MM` or `unstable`.
fn check_api_version(version: &str) -> Result<(), StorageError> {
    let b = version.as_bytes();
    let dated = b.len() == 7
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..].iter().all(u8::is_ascii_digit);
    if dated || version == "unstable" {
        Ok(())
    } else {
        Err(StorageError::Invalid(format!(
            "`{}` is not a Shopify API version: use `YYYY-MM`, e.g. `2025-07`",
            version.chars().take(40).collect::<String>()
        )))
    }
}

/// A guard against storing a credential in clear by mistake: only values in
/// the `secrets` format are accepted.
pub(super) fn check_encrypted(what: &str, value: &str) -> Result<(), StorageError> {
    let mut parts = value.splitn(3, ':');
    let looks_sealed = parts.next() == Some("v1")
        && parts.next().is_some_and(|id| !id.is_empty())
        && parts.next().is_some_and(|data| !data.is_empty());
    if looks_sealed {
        Ok(())
    } else {
        Err(StorageError::Invalid(format!(
            "the Shopify {what} must be encrypted with secrets::SecretBox before it is stored"
        )))
    }
}

fn check_id(what: &str, value: &str) -> Result<(), StorageError> {
    if value.is_empty() || value.len() > MAX_ID_LEN || value.contains('\0') {
        Err(StorageError::Invalid(format!(
            "the {what} must be 1 to {MAX_ID_LEN} bytes, without NUL characters"
        )))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shop_domains_are_myshopify_hosts() {
        assert_eq!(
            normalize_shop_domain(" Acme-Store.MyShopify.com. ").unwrap(),
            "acme-store.myshopify.com"
        );
        for bad in [
            "",
            "myshopify.com",
            ".myshopify.com",
            "acme.example.com",
            "acme.myshopify.com.evil.example",
            "evil.example/acme.myshopify.com",
            "127.0.0.1",
            "a.b.myshopify.com",
            "-acme.myshopify.com",
            "acme.myshopify.com:8080",
        ] {
            assert!(normalize_shop_domain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn api_versions_and_sealed_values() {
        assert!(check_api_version("2025-07").is_ok());
        assert!(check_api_version("unstable").is_ok());
        for bad in ["", "2025-7", "2025/07", "latest", "2025-07-01"] {
            assert!(check_api_version(bad).is_err(), "{bad}");
        }
        assert!(check_encrypted("token", "v1:k1:AAAA").is_ok());
        for bad in ["shpat_123", "v1::AAAA", "v1:k1:", "v2:k1:AAAA", ""] {
            assert!(check_encrypted("token", bad).is_err(), "{bad}");
        }
    }
}
