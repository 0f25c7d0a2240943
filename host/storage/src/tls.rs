//! HTTPS certificates, their ACME accounts and challenges (platform scope).
//!
//! - `certificates`: one row per name Veneer orders a certificate for — the
//!   base domain (no tenant) or a routed custom domain (its tenant) — with the
//!   current chain and its private key (sealed by the caller: this crate never
//!   sees a key in clear), when the next order is due (a renewal, or a retry
//!   after a failure, with the failure's text and count), and the lease of the
//!   one node ordering it now. [`PlatformDb::sync_certificates`] keeps the rows
//!   in step with the domains that route; a certificate is only ever read for
//!   serving while its domain routes for its tenant.
//! - `acme_accounts`: the ACME account per directory URL (sealed credentials).
//! - `acme_challenges`: HTTP-01 tokens and their key authorizations, so that
//!   whichever node the CA reaches answers.
//!
//! The lease is a conditional `UPDATE` (free or expired, and due): on either
//! backend exactly one of two racing nodes sees its row updated.

use sqlx::Row;
use sqlx::any::AnyRow;
use veneer_core::tenancy_id::TenantId;

use super::session::Access;
use super::time::now_ms;
use super::{PlatformDb, StorageError, rows};

/// Where a certificate stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CertificateStatus {
    /// None issued yet (being ordered, or waiting to retry).
    Pending,
    /// Issued: served, and renewed when due.
    Issued,
}

impl CertificateStatus {
    fn parse(text: &str) -> Result<Self, StorageError> {
        match text {
            "pending" => Ok(Self::Pending),
            "issued" => Ok(Self::Issued),
            other => Err(StorageError::Invalid(format!(
                "stored certificate status `{other}` is unknown"
            ))),
        }
    }
}

/// A certificate's state, without its key: what admins see.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct CertificateRecord {
    pub domain: String,
    /// None for the base domain's.
    pub tenant_id: Option<String>,
    pub status: CertificateStatus,
    /// Unix milliseconds (of the current certificate, when issued).
    pub not_before: Option<i64>,
    pub not_after: Option<i64>,
    pub issued_at: Option<i64>,
    /// Why the last order failed (cleared by the next success).
    pub last_error: Option<String>,
    /// Failed orders since the last success.
    pub attempts: u32,
    /// When the next order (renewal or retry) is due, unix milliseconds.
    pub next_attempt_at: i64,
    /// The node ordering it now, if any.
    pub ordering_node: Option<String>,
}

/// A certificate to serve: the chain and its sealed key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedCertificate {
    pub domain: String,
    pub tenant_id: Option<String>,
    pub chain_pem: String,
    /// Sealed with the secrets key; the additional data names the domain.
    pub key_sealed: String,
    /// Changes whenever the certificate does.
    pub updated_at: i64,
}

/// A newly issued certificate.
#[derive(Debug, Clone)]
pub struct IssuedCertificate<'a> {
    pub chain_pem: &'a str,
    pub key_sealed: &'a str,
    pub not_before: i64,
    pub not_after: i64,
    /// When to renew it.
    pub renew_at: i64,
}

/// The statuses under which a custom domain routes (`DomainStatus::routes`).
macro_rules! routes {
    () => {
        "('verified', 'grace')"
    };
}

macro_rules! certificate_columns {
    () => {
        "domain, tenant_id, status, not_before, not_after, issued_at, last_error, attempts, \
         next_attempt_at, ordering_node"
    };
}

impl PlatformDb {
    /// Brings the certificate rows in step with what routes: a row (due now)
    /// for every routed custom domain and for `base` (the base domain, when
    /// Veneer orders its certificate), none for anything else — a domain that
    /// no longer routes, or routes for another tenant, loses its row and its
    /// certificate. Returns how many rows were added and removed.
    pub async fn sync_certificates(&self, base: Option<&str>) -> Result<(u64, u64), StorageError> {
        let now = now_ms();
        let mut tx = self.begin(Access::Write).await?;
        let removed = sqlx::query(concat!(
            "DELETE FROM certificates \
              WHERE (tenant_id IS NULL AND domain <> $1) \
                 OR (tenant_id IS NOT NULL AND NOT EXISTS ( \
                        SELECT 1 FROM domains d \
                         WHERE d.domain = certificates.domain \
                           AND d.tenant_id = certificates.tenant_id \
                           AND d.status IN ",
            routes!(),
            "))"
        ))
        .bind(base.unwrap_or(""))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let mut added = sqlx::query(concat!(
            "INSERT INTO certificates (domain, tenant_id, status, next_attempt_at, updated_at) \
             SELECT d.domain, d.tenant_id, 'pending', $1, $1 FROM domains d \
              WHERE d.status IN ",
            routes!(),
            " \
             ON CONFLICT (domain) DO NOTHING"
        ))
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if let Some(base) = base {
            added += sqlx::query(
                "INSERT INTO certificates (domain, tenant_id, status, next_attempt_at, updated_at) \
                 VALUES ($1, NULL, 'pending', $2, $2) ON CONFLICT (domain) DO NOTHING",
            )
            .bind(base)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok((added, removed))
    }

    /// Up to `limit` certificates due for an order now and not leased,
    /// soonest due first: (domain, tenant).
    pub async fn due_certificates(
        &self,
        limit: u32,
    ) -> Result<Vec<(String, Option<String>)>, StorageError> {
        let now = now_ms();
        let mut tx = self.begin(Access::Read).await?;
        let rows = sqlx::query(
            "SELECT domain, tenant_id FROM certificates \
              WHERE next_attempt_at <= $1 AND (ordering_until IS NULL OR ordering_until < $1) \
              ORDER BY next_attempt_at, domain LIMIT $2",
        )
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter()
            .map(|r| Ok((rows::text(r, "domain")?, rows::opt_text(r, "tenant_id")?)))
            .collect()
    }

    /// Takes the lease to order `domain`'s certificate for `node` until
    /// `until` (unix ms), if it is due and nobody holds an unexpired lease:
    /// true for exactly one of several nodes racing for it.
    pub async fn lease_certificate(
        &self,
        domain: &str,
        node: &str,
        until: i64,
    ) -> Result<bool, StorageError> {
        let now = now_ms();
        let mut tx = self.begin(Access::Write).await?;
        let done = sqlx::query(
            "UPDATE certificates SET ordering_node = $2, ordering_until = $3 \
              WHERE domain = $1 AND next_attempt_at <= $4 \
                AND (ordering_until IS NULL OR ordering_until < $4)",
        )
        .bind(domain)
        .bind(node)
        .bind(until)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Stores the certificate `node` ordered under its lease (and ends the
    /// lease); false when the lease was lost meanwhile (the row was removed or
    /// another node took it after it expired), in which case nothing changes.
    pub async fn store_certificate(
        &self,
        domain: &str,
        node: &str,
        issued: &IssuedCertificate<'_>,
    ) -> Result<bool, StorageError> {
        let now = now_ms();
        let mut tx = self.begin(Access::Write).await?;
        let done = sqlx::query(
            "UPDATE certificates SET status = 'issued', chain_pem = $3, key_sealed = $4, \
                    not_before = $5, not_after = $6, issued_at = $7, last_error = NULL, \
                    attempts = 0, next_attempt_at = $8, ordering_node = NULL, \
                    ordering_until = NULL, updated_at = $7 \
              WHERE domain = $1 AND ordering_node = $2",
        )
        .bind(domain)
        .bind(node)
        .bind(issued.chain_pem)
        .bind(issued.key_sealed)
        .bind(issued.not_before)
        .bind(issued.not_after)
        .bind(now)
        .bind(issued.renew_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records that `node`'s order of `domain` failed with `error` (and ends
    /// the lease): one more attempt, the next due at `retry_at`. The current
    /// certificate, if any, stays and is still served.
    pub async fn fail_certificate(
        &self,
        domain: &str,
        node: &str,
        error: &str,
        retry_at: i64,
    ) -> Result<bool, StorageError> {
        let error: String = error.chars().take(2_000).collect();
        let mut tx = self.begin(Access::Write).await?;
        let done = sqlx::query(
            "UPDATE certificates SET last_error = $3, attempts = attempts + 1, \
                    next_attempt_at = $4, ordering_node = NULL, ordering_until = NULL \
              WHERE domain = $1 AND ordering_node = $2",
        )
        .bind(domain)
        .bind(node)
        .bind(error)
        .bind(retry_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Makes `domain`'s next order due now (an operator's retry); false when
    /// Veneer orders no certificate for it.
    pub async fn retry_certificate(&self, domain: &str) -> Result<bool, StorageError> {
        let now = now_ms();
        let mut tx = self.begin(Access::Write).await?;
        let done = sqlx::query("UPDATE certificates SET next_attempt_at = $2 WHERE domain = $1")
            .bind(domain)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// The certificate states of `tenant`'s domains.
    pub async fn tenant_certificates(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<CertificateRecord>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            certificate_columns!(),
            " FROM certificates WHERE tenant_id = $1 ORDER BY domain"
        ))
        .bind(tenant.as_str())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter().map(from_row).collect()
    }

    /// One certificate's state.
    pub async fn certificate(
        &self,
        domain: &str,
    ) -> Result<Option<CertificateRecord>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let row = sqlx::query(concat!(
            "SELECT ",
            certificate_columns!(),
            " FROM certificates WHERE domain = $1"
        ))
        .bind(domain)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.as_ref().map(from_row).transpose()
    }

    /// (domain, updated_at) of every certificate to serve now: issued, and
    /// either the base domain's or its domain's routed for its tenant. Cheap
    /// enough to poll: a serving node loads only what changed.
    pub async fn served_certificate_stamps(&self) -> Result<Vec<(String, i64)>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let rows = sqlx::query(concat!(
            "SELECT c.domain, c.updated_at FROM certificates c \
              WHERE c.status = 'issued' AND (c.tenant_id IS NULL OR EXISTS ( \
                    SELECT 1 FROM domains d WHERE d.domain = c.domain \
                       AND d.tenant_id = c.tenant_id AND d.status IN ",
            routes!(),
            "))"
        ))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter()
            .map(|r| Ok((rows::text(r, "domain")?, rows::int(r, "updated_at")?)))
            .collect()
    }

    /// The certificate to serve for `domain`, under the same rule as
    /// [`PlatformDb::served_certificate_stamps`].
    pub async fn served_certificate(
        &self,
        domain: &str,
    ) -> Result<Option<ServedCertificate>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let row = sqlx::query(concat!(
            "SELECT c.domain, c.tenant_id, c.chain_pem, c.key_sealed, c.updated_at \
               FROM certificates c \
              WHERE c.domain = $1 AND c.status = 'issued' AND (c.tenant_id IS NULL OR EXISTS ( \
                    SELECT 1 FROM domains d WHERE d.domain = c.domain \
                       AND d.tenant_id = c.tenant_id AND d.status IN ",
            routes!(),
            "))"
        ))
        .bind(domain)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.map(|r| {
            Ok(ServedCertificate {
                domain: rows::text(&r, "domain")?,
                tenant_id: rows::opt_text(&r, "tenant_id")?,
                chain_pem: rows::text(&r, "chain_pem")?,
                key_sealed: rows::text(&r, "key_sealed")?,
                updated_at: rows::int(&r, "updated_at")?,
            })
        })
        .transpose()
    }

    /// (domain, sealed key) of every stored certificate key (a secrets-key
    /// rotation reads them).
    pub async fn sealed_certificate_keys(&self) -> Result<Vec<(String, String)>, StorageError> {
        self.sealed_pairs(
            "SELECT domain, key_sealed FROM certificates WHERE key_sealed IS NOT NULL \
              ORDER BY domain",
        )
        .await
    }

    /// Replaces a certificate's sealed key if it is still `old` (a renewal
    /// meanwhile wins); whether it did.
    pub async fn replace_certificate_key(
        &self,
        domain: &str,
        old: &str,
        new: &str,
    ) -> Result<bool, StorageError> {
        self.swap_sealed(
            "UPDATE certificates SET key_sealed = $3 WHERE domain = $1 AND key_sealed = $2",
            domain,
            old,
            new,
        )
        .await
    }

    /// (directory, sealed credentials) of every stored ACME account.
    pub async fn acme_accounts(&self) -> Result<Vec<(String, String)>, StorageError> {
        self.sealed_pairs(
            "SELECT directory, credentials_sealed FROM acme_accounts ORDER BY directory",
        )
        .await
    }

    /// Replaces an ACME account's sealed credentials if still `old`.
    pub async fn replace_acme_account(
        &self,
        directory: &str,
        old: &str,
        new: &str,
    ) -> Result<bool, StorageError> {
        self.swap_sealed(
            "UPDATE acme_accounts SET credentials_sealed = $3 \
              WHERE directory = $1 AND credentials_sealed = $2",
            directory,
            old,
            new,
        )
        .await
    }

    /// (key, sealed value) rows of `sql`.
    async fn sealed_pairs(&self, sql: &'static str) -> Result<Vec<(String, String)>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let rows: Vec<(String, String)> = sqlx::query_as(sql).fetch_all(&mut *tx).await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// Runs the compare-and-swap `sql` (`$1` the key, `$2` the value it must
    /// still hold, `$3` the new one); whether it swapped.
    async fn swap_sealed(
        &self,
        sql: &'static str,
        key: &str,
        old: &str,
        new: &str,
    ) -> Result<bool, StorageError> {
        let mut tx = self.begin(Access::Write).await?;
        let done = sqlx::query(sql)
            .bind(key)
            .bind(old)
            .bind(new)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// The sealed ACME account credentials for `directory`.
    pub async fn acme_account(&self, directory: &str) -> Result<Option<String>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let sealed: Option<String> =
            sqlx::query_scalar("SELECT credentials_sealed FROM acme_accounts WHERE directory = $1")
                .bind(directory)
                .fetch_optional(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(sealed)
    }

    /// Saves the ACME account for `directory` unless one was saved meanwhile
    /// (by another node); returns the one stored.
    pub async fn save_acme_account(
        &self,
        directory: &str,
        sealed: &str,
    ) -> Result<String, StorageError> {
        let mut tx = self.begin(Access::Write).await?;
        sqlx::query(
            "INSERT INTO acme_accounts (directory, credentials_sealed, created_at) \
             VALUES ($1, $2, $3) ON CONFLICT (directory) DO NOTHING",
        )
        .bind(directory)
        .bind(sealed)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        let stored: String =
            sqlx::query_scalar("SELECT credentials_sealed FROM acme_accounts WHERE directory = $1")
                .bind(directory)
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(stored)
    }

    /// Publishes an HTTP-01 answer until `expires_at` (and drops expired ones).
    pub async fn put_acme_challenge(
        &self,
        token: &str,
        key_authorization: &str,
        domain: &str,
        expires_at: i64,
    ) -> Result<(), StorageError> {
        let mut tx = self.begin(Access::Write).await?;
        sqlx::query("DELETE FROM acme_challenges WHERE expires_at < $1")
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO acme_challenges (token, key_authorization, domain, expires_at) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (token) DO UPDATE SET key_authorization = excluded.key_authorization, \
                    domain = excluded.domain, expires_at = excluded.expires_at",
        )
        .bind(token)
        .bind(key_authorization)
        .bind(domain)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The key authorization for an unexpired HTTP-01 `token`.
    pub async fn acme_challenge(&self, token: &str) -> Result<Option<String>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let answer: Option<String> = sqlx::query_scalar(
            "SELECT key_authorization FROM acme_challenges WHERE token = $1 AND expires_at >= $2",
        )
        .bind(token)
        .bind(now_ms())
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(answer)
    }

    /// Withdraws an HTTP-01 answer.
    pub async fn remove_acme_challenge(&self, token: &str) -> Result<(), StorageError> {
        let mut tx = self.begin(Access::Write).await?;
        sqlx::query("DELETE FROM acme_challenges WHERE token = $1")
            .bind(token)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

fn from_row(row: &AnyRow) -> Result<CertificateRecord, StorageError> {
    Ok(CertificateRecord {
        domain: rows::text(row, "domain")?,
        tenant_id: rows::opt_text(row, "tenant_id")?,
        status: CertificateStatus::parse(&rows::text(row, "status")?)?,
        not_before: row.try_get("not_before")?,
        not_after: row.try_get("not_after")?,
        issued_at: row.try_get("issued_at")?,
        last_error: rows::opt_text(row, "last_error")?,
        attempts: rows::u32(row, "attempts")?,
        next_attempt_at: rows::int(row, "next_attempt_at")?,
        ordering_node: rows::opt_text(row, "ordering_node")?,
    })
}
