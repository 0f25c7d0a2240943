//! What Shopify's compliance webhooks ask of a tenant's data: the rows about
//! one customer (the emails sent to them, their suppression, the commissions of
//! their orders) to hand over, the same made anonymous or removed, and a whole
//! shop's data removed after its uninstall. Every statement names the tenant.

use serde::Serialize;

use super::email::{EmailMessageRecord, EmailSuppression, message_from_row, suppression_from_row};
use super::session::Access;
use super::time::now_ms;
use super::{Backend, StorageError, TenantDb, rows};

/// What is kept of a redacted message's recipient and subject.
pub const REDACTED: &str = "redacted";

/// One data request as kept for the tenant admin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DataRequestRecord {
    pub request_id: String,
    pub customer_id: String,
    /// The export, JSON.
    pub export: String,
    pub created_at: i64,
}

/// What a customer redaction changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CustomerRedaction {
    pub emails: u64,
    pub suppressions: u64,
    pub data_requests: u64,
}

/// What a shop redaction removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ShopRedaction {
    pub commissions: u64,
    pub products: u64,
    pub webhooks: u64,
    pub data_requests: u64,
    pub stores: u64,
}

impl TenantDb {
    /// The messages this tenant sent to `address` (any case), newest first.
    pub async fn emails_to(
        &self,
        address: &str,
        limit: u32,
    ) -> Result<Vec<EmailMessageRecord>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            super::email::message_columns!(),
            " FROM email_messages WHERE tenant_id = $1 AND lower(to_address) = lower($2) \
              ORDER BY created_at DESC, id DESC LIMIT $3"
        ))
        .bind(self.tenant_id().as_str())
        .bind(address)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter().map(message_from_row).collect()
    }

    /// This tenant's suppression of `address`, if any.
    pub async fn suppression_of(
        &self,
        address: &str,
    ) -> Result<Option<EmailSuppression>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let row = sqlx::query(
            "SELECT address, reason, source_message_id, created_at FROM email_suppressions \
              WHERE tenant_id = $1 AND address = lower($2)",
        )
        .bind(self.tenant_id().as_str())
        .bind(address)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.as_ref().map(suppression_from_row).transpose()
    }

    /// Keeps a data request's export (again: replaced).
    pub async fn put_data_request(
        &self,
        request_id: &str,
        customer_id: &str,
        export: &str,
    ) -> Result<(), StorageError> {
        let mut tx = self.begin(Access::Write).await?;
        sqlx::query(
            "INSERT INTO shopify_data_requests (tenant_id, request_id, customer_id, export, \
                                                created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant_id, request_id) DO UPDATE SET customer_id = excluded.customer_id, \
                 export = excluded.export, created_at = excluded.created_at",
        )
        .bind(self.tenant_id().as_str())
        .bind(request_id)
        .bind(customer_id)
        .bind(export)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(super::error::tenant_fk(self.tenant_id()))?;
        tx.commit().await?;
        Ok(())
    }

    /// This tenant's data requests, newest first (exports included).
    pub async fn data_requests(&self, limit: u32) -> Result<Vec<DataRequestRecord>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let rows = sqlx::query(
            "SELECT request_id, customer_id, export, created_at FROM shopify_data_requests \
              WHERE tenant_id = $1 ORDER BY created_at DESC, request_id LIMIT $2",
        )
        .bind(self.tenant_id().as_str())
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter().map(data_request_from_row).collect()
    }

    /// This tenant's data request `request_id`, with its export.
    pub async fn data_request(
        &self,
        request_id: &str,
    ) -> Result<Option<DataRequestRecord>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let row = sqlx::query(
            "SELECT request_id, customer_id, export, created_at FROM shopify_data_requests \
              WHERE tenant_id = $1 AND request_id = $2",
        )
        .bind(self.tenant_id().as_str())
        .bind(request_id)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.as_ref().map(data_request_from_row).transpose()
    }

    /// Makes the messages to `address` anonymous (recipient, subject, the
    /// relay's and bounce's words), removes its suppression and the data
    /// requests of `customer_id`, in one transaction.
    pub async fn redact_customer(
        &self,
        address: Option<&str>,
        customer_id: &str,
    ) -> Result<CustomerRedaction, StorageError> {
        let mut tx = self.begin(Access::Write).await?;
        let tenant = self.tenant_id().as_str();
        let mut out = CustomerRedaction::default();
        if let Some(address) = address.filter(|a| !a.is_empty()) {
            out.emails = sqlx::query(
                "UPDATE email_messages SET to_address = $3, subject = $3, smtp_reply = NULL, \
                        bounce_diagnostic = NULL \
                  WHERE tenant_id = $1 AND lower(to_address) = lower($2)",
            )
            .bind(tenant)
            .bind(address)
            .bind(REDACTED)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            out.suppressions = sqlx::query(
                "DELETE FROM email_suppressions WHERE tenant_id = $1 AND address = lower($2)",
            )
            .bind(tenant)
            .bind(address)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        out.data_requests = sqlx::query(
            "DELETE FROM shopify_data_requests WHERE tenant_id = $1 AND customer_id = $2",
        )
        .bind(tenant)
        .bind(customer_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(out)
    }

    /// Removes everything of the tenant's uninstalled store: its commissions,
    /// products, seen webhooks, data requests and the store row with its
    /// credentials, in one transaction. Conflict while the store is installed.
    pub async fn redact_shop(&self) -> Result<ShopRedaction, StorageError> {
        let mut tx = self.begin(Access::Write).await?;
        let tenant = self.tenant_id().as_str();
        let installed: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM shopify_stores WHERE tenant_id = $1 AND enabled = TRUE",
        )
        .bind(tenant)
        .fetch_optional(&mut *tx)
        .await?;
        if installed.is_some() {
            return Err(StorageError::Conflict(
                "the store is still installed: shop/redact follows an uninstall".into(),
            ));
        }
        let mut out = ShopRedaction {
            commissions: match self.backend() {
                Backend::Postgres => {
                    let n: i64 = sqlx::query_scalar("SELECT veneer_redact_shop_commissions($1)")
                        .bind(tenant)
                        .fetch_one(&mut *tx)
                        .await?;
                    u64::try_from(n).unwrap_or(0)
                }
                Backend::Sqlite => {
                    sqlx::query("DELETE FROM shopify_commissions WHERE tenant_id = $1")
                        .bind(tenant)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                }
            },
            ..ShopRedaction::default()
        };
        for (table, count) in [
            ("shopify_products", &mut out.products),
            ("shopify_webhooks", &mut out.webhooks),
            ("shopify_data_requests", &mut out.data_requests),
            ("shopify_stores", &mut out.stores),
        ] {
            *count = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE tenant_id = $1"
            )))
            .bind(tenant)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Up to `limit` finished (done or dead) jobs of `kind` after id `after`:
    /// (id, payload as stored).
    pub async fn finished_jobs(
        &self,
        kind: &str,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(i64, String)>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT id, payload FROM jobs WHERE tenant_id = $1 AND kind = $2 \
               AND state IN ('done', 'dead') AND id > $3 ORDER BY id LIMIT $4",
        )
        .bind(self.tenant_id().as_str())
        .bind(kind)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// Deletes finished job `id`; whether it was one.
    pub async fn delete_finished_job(&self, id: i64) -> Result<bool, StorageError> {
        let mut tx = self.begin(Access::Write).await?;
        let n = sqlx::query(
            "DELETE FROM jobs WHERE tenant_id = $1 AND id = $2 AND state IN ('done', 'dead')",
        )
        .bind(self.tenant_id().as_str())
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }
}

fn data_request_from_row(row: &sqlx::any::AnyRow) -> Result<DataRequestRecord, StorageError> {
    Ok(DataRequestRecord {
        request_id: rows::text(row, "request_id")?,
        customer_id: rows::text(row, "customer_id")?,
        export: rows::text(row, "export")?,
        created_at: rows::int(row, "created_at")?,
    })
}
