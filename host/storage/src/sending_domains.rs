//! A tenant's sending domains and their DKIM keys. A sending domain starts
//! `pending`; the application checks DNS for its DKIM record and marks it
//! `verified` (mail goes out as it, signed) or `failed` (never proven in
//! time). Each domain has keys by selector: `pending` until its public key is
//! found at `<selector>._domainkey.<domain>`, then `active` (the one signing
//! key: the partial unique index `dkim_keys_active` holds it), and `retired`
//! once a newer key became active (selector rotation).
//!
//! Storage keeps what it is given: the private key arrives encrypted (opaque
//! text) and leaves the same way; selectors and domains are the
//! application's, checked here only for what the schema needs.

use sqlx::any::AnyRow;

use super::error::tenant_fk;
use super::platform::normalize_domain;
use super::session::Access;
use super::tenant::TenantDb;
use super::time::now_ms;
use super::{StorageError, rows};

/// A sending domain's state.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SendingDomainStatus {
    /// Its DKIM record is not (or no longer) found.
    Pending,
    /// Its active key's record is published: mail goes out as it.
    Verified,
    /// Never proven in time.
    Failed,
}

impl SendingDomainStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            SendingDomainStatus::Pending => "pending",
            SendingDomainStatus::Verified => "verified",
            SendingDomainStatus::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Result<Self, StorageError> {
        Ok(match text {
            "pending" => SendingDomainStatus::Pending,
            "verified" => SendingDomainStatus::Verified,
            "failed" => SendingDomainStatus::Failed,
            other => {
                return Err(StorageError::Invalid(format!(
                    "stored sending domain status `{other}` is unknown"
                )));
            }
        })
    }
}

/// A DKIM key's state.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum DkimKeyState {
    /// Waiting for its record.
    Pending,
    /// The signing key.
    Active,
    /// Replaced by a newer key; its record may be removed.
    Retired,
}

impl DkimKeyState {
    fn parse(text: &str) -> Result<Self, StorageError> {
        Ok(match text {
            "pending" => DkimKeyState::Pending,
            "active" => DkimKeyState::Active,
            "retired" => DkimKeyState::Retired,
            other => {
                return Err(StorageError::Invalid(format!(
                    "stored DKIM key state `{other}` is unknown"
                )));
            }
        })
    }
}

/// One DKIM key of a sending domain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct DkimKeyRecord {
    pub selector: String,
    pub state: DkimKeyState,
    /// Base64 of the public key's SubjectPublicKeyInfo (the `p=` tag).
    pub public_key: String,
    /// Ciphertext from the secrets module; never serialized.
    #[serde(skip)]
    pub private_key_enc: String,
    /// Unix milliseconds.
    pub created_at: i64,
    pub activated_at: Option<i64>,
    pub retired_at: Option<i64>,
}

/// A tenant's sending domain with its keys (newest first).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct SendingDomainRecord {
    pub domain: String,
    pub status: SendingDomainStatus,
    /// Unix milliseconds.
    pub created_at: i64,
    pub verified_at: Option<i64>,
    pub last_checked_at: Option<i64>,
    /// What the last check found of DKIM, in words.
    pub last_result: Option<String>,
    /// What the last check found of SPF, in words (advice: it does not gate).
    pub spf_result: Option<String>,
    /// What the last check found of DMARC, in words (advice: it does not gate).
    pub dmarc_result: Option<String>,
    pub keys: Vec<DkimKeyRecord>,
}

impl SendingDomainRecord {
    /// The key mail is signed with, if one is active.
    pub fn active_key(&self) -> Option<&DkimKeyRecord> {
        self.keys.iter().find(|k| k.state == DkimKeyState::Active)
    }

    /// The key waiting for its record, if any.
    pub fn pending_key(&self) -> Option<&DkimKeyRecord> {
        self.keys.iter().find(|k| k.state == DkimKeyState::Pending)
    }
}

/// A key to store: the application generated and encrypted it.
#[derive(Debug, Clone, Copy)]
pub struct NewDkimKey<'a> {
    pub selector: &'a str,
    pub public_key: &'a str,
    pub private_key_enc: &'a str,
}

/// What a check of a sending domain found.
#[derive(Debug, Clone, Copy)]
pub struct SendingDomainCheck<'a> {
    pub status: SendingDomainStatus,
    pub result: &'a str,
    pub spf: Option<&'a str>,
    pub dmarc: Option<&'a str>,
    /// The pending key whose record was found: it becomes the active key and
    /// the active one, if any, is retired.
    pub activate: Option<&'a str>,
}

fn check_selector(selector: &str) -> Result<(), StorageError> {
    let ok = !selector.is_empty()
        && selector.len() <= 63
        && selector
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(StorageError::Invalid(format!(
            "DKIM selector `{}` is not one DNS label of lowercase letters, digits and hyphens",
            selector.chars().take(80).collect::<String>()
        )))
    }
}

impl TenantDb {
    /// The tenant's sending domain `domain`, with its keys.
    pub async fn sending_domain(
        &self,
        domain: &str,
    ) -> Result<Option<SendingDomainRecord>, StorageError> {
        let Ok(domain) = normalize_domain(domain) else {
            return Ok(None);
        };
        let mut tx = self.begin(Access::Read).await?;
        let row = sqlx::query(
            "SELECT domain, status, created_at, verified_at, last_checked_at, last_result, \
                    spf_result, dmarc_result \
               FROM sending_domains WHERE tenant_id = $1 AND domain = $2",
        )
        .bind(self.tenant_id().as_str())
        .bind(domain.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.commit().await?;
            return Ok(None);
        };
        let keys = sqlx::query(
            "SELECT selector, state, public_key, private_key_enc, created_at, activated_at, \
                    retired_at \
               FROM dkim_keys WHERE tenant_id = $1 AND domain = $2 \
              ORDER BY created_at DESC, selector",
        )
        .bind(self.tenant_id().as_str())
        .bind(domain.as_str())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(domain_from_row(
            &row,
            keys.iter().map(key_from_row).collect::<Result<_, _>>()?,
        )?))
    }

    /// The tenant's sending domains, by name, with their keys.
    pub async fn sending_domains(&self) -> Result<Vec<SendingDomainRecord>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT domain FROM sending_domains WHERE tenant_id = $1 ORDER BY domain",
        )
        .bind(self.tenant_id().as_str())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            if let Some(record) = self.sending_domain(&name).await? {
                out.push(record);
            }
        }
        Ok(out)
    }

    /// Adds `domain` as a pending sending domain with its first key; an
    /// existing one is returned as it is (and `key` is not stored). Whether it
    /// was created.
    pub async fn add_sending_domain(
        &self,
        domain: &str,
        key: &NewDkimKey<'_>,
    ) -> Result<(SendingDomainRecord, bool), StorageError> {
        let domain = normalize_domain(domain)?;
        check_selector(key.selector)?;
        if let Some(existing) = self.sending_domain(&domain).await? {
            return Ok((existing, false));
        }
        let now = now_ms();
        let mut tx = self.begin(Access::Write).await?;
        let inserted = sqlx::query(
            "INSERT INTO sending_domains (tenant_id, domain, status, created_at, last_result) \
             VALUES ($1, $2, 'pending', $3, 'not checked yet') \
             ON CONFLICT (tenant_id, domain) DO NOTHING",
        )
        .bind(self.tenant_id().as_str())
        .bind(domain.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(tenant_fk(self.tenant_id()))?;
        if inserted.rows_affected() == 0 {
            // Added by a concurrent request meanwhile.
            tx.commit().await?;
            let existing = self.sending_domain(&domain).await?;
            return existing
                .map(|e| (e, false))
                .ok_or_else(|| StorageError::Conflict("the sending domain changed".into()));
        }
        insert_key(&mut tx, self, &domain, key, now).await?;
        tx.commit().await?;
        let record = self
            .sending_domain(&domain)
            .await?
            .ok_or_else(|| StorageError::Conflict("the sending domain changed".into()))?;
        Ok((record, true))
    }

    /// Adds a pending key to `domain` (a rotation: it signs once its record is
    /// found). NotFound without the domain; Conflict while another key is
    /// still pending.
    pub async fn add_dkim_key(
        &self,
        domain: &str,
        key: &NewDkimKey<'_>,
    ) -> Result<SendingDomainRecord, StorageError> {
        let domain = normalize_domain(domain)?;
        check_selector(key.selector)?;
        let Some(existing) = self.sending_domain(&domain).await? else {
            return Err(StorageError::NotFound(format!(
                "sending domain `{domain}` is not set up"
            )));
        };
        if let Some(pending) = existing.pending_key() {
            return Err(StorageError::Conflict(format!(
                "key `{}` of {domain} is still waiting for its DNS record: publish it and \
                 check, or use it as it is",
                pending.selector
            )));
        }
        let mut tx = self.begin(Access::Write).await?;
        insert_key(&mut tx, self, &domain, key, now_ms()).await?;
        tx.commit().await?;
        self.sending_domain(&domain)
            .await?
            .ok_or_else(|| StorageError::Conflict("the sending domain changed".into()))
    }

    /// Records a check of `domain`: its status and findings, and the key to
    /// activate, if one was found. `verified_at` is set when it becomes
    /// verified.
    pub async fn record_sending_domain_check(
        &self,
        domain: &str,
        check: &SendingDomainCheck<'_>,
    ) -> Result<(), StorageError> {
        let domain = normalize_domain(domain)?;
        let now = now_ms();
        let mut tx = self.begin(Access::Write).await?;
        if let Some(selector) = check.activate {
            // Only while that key is still pending: two checks that both
            // found it must not retire the key the first one activated.
            sqlx::query(
                "UPDATE dkim_keys SET state = 'retired', retired_at = $3 \
                  WHERE tenant_id = $1 AND domain = $2 AND state = 'active' \
                    AND selector <> $4 \
                    AND EXISTS (SELECT 1 FROM dkim_keys p \
                                 WHERE p.tenant_id = $1 AND p.domain = $2 \
                                   AND p.selector = $4 AND p.state = 'pending')",
            )
            .bind(self.tenant_id().as_str())
            .bind(domain.as_str())
            .bind(now)
            .bind(selector)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE dkim_keys SET state = 'active', activated_at = $4 \
                  WHERE tenant_id = $1 AND domain = $2 AND selector = $3 AND state = 'pending'",
            )
            .bind(self.tenant_id().as_str())
            .bind(domain.as_str())
            .bind(selector)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "UPDATE sending_domains SET status = $3, last_checked_at = $4, last_result = $5, \
                    spf_result = $6, dmarc_result = $7, \
                    verified_at = CASE WHEN $3 = 'verified' AND status <> 'verified' \
                                       THEN $4 ELSE verified_at END \
              WHERE tenant_id = $1 AND domain = $2",
        )
        .bind(self.tenant_id().as_str())
        .bind(domain.as_str())
        .bind(check.status.as_str())
        .bind(now)
        .bind(check.result)
        .bind(check.spf)
        .bind(check.dmarc)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Replaces the ciphertext of one key (a secrets-key rotation) if it is
    /// still `old`; false when it changed meanwhile or is gone.
    pub async fn replace_dkim_key_enc(
        &self,
        domain: &str,
        selector: &str,
        old: &str,
        new: &str,
    ) -> Result<bool, StorageError> {
        let mut tx = self.begin(Access::Write).await?;
        let done = sqlx::query(
            "UPDATE dkim_keys SET private_key_enc = $5 \
              WHERE tenant_id = $1 AND domain = $2 AND selector = $3 AND private_key_enc = $4",
        )
        .bind(self.tenant_id().as_str())
        .bind(domain)
        .bind(selector)
        .bind(old)
        .bind(new)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes a sending domain and its keys; false if there was none.
    pub async fn remove_sending_domain(&self, domain: &str) -> Result<bool, StorageError> {
        let Ok(domain) = normalize_domain(domain) else {
            return Ok(false);
        };
        let mut tx = self.begin(Access::Write).await?;
        sqlx::query("DELETE FROM dkim_keys WHERE tenant_id = $1 AND domain = $2")
            .bind(self.tenant_id().as_str())
            .bind(domain.as_str())
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM sending_domains WHERE tenant_id = $1 AND domain = $2")
            .bind(self.tenant_id().as_str())
            .bind(domain.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }
}

async fn insert_key(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    db: &TenantDb,
    domain: &str,
    key: &NewDkimKey<'_>,
    now: i64,
) -> Result<(), StorageError> {
    sqlx::query(
        "INSERT INTO dkim_keys (tenant_id, domain, selector, state, private_key_enc, public_key, \
                                created_at) \
         VALUES ($1, $2, $3, 'pending', $4, $5, $6)",
    )
    .bind(db.tenant_id().as_str())
    .bind(domain)
    .bind(key.selector)
    .bind(key.private_key_enc)
    .bind(key.public_key)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(|e| match StorageError::from(e) {
        StorageError::Conflict(_) => StorageError::Conflict(format!(
            "selector `{}` is taken for {domain}; use another",
            key.selector
        )),
        other => other,
    })?;
    Ok(())
}

fn domain_from_row(
    row: &AnyRow,
    keys: Vec<DkimKeyRecord>,
) -> Result<SendingDomainRecord, StorageError> {
    Ok(SendingDomainRecord {
        domain: rows::text(row, "domain")?,
        status: SendingDomainStatus::parse(&rows::text(row, "status")?)?,
        created_at: rows::int(row, "created_at")?,
        verified_at: sqlx::Row::try_get(row, "verified_at")?,
        last_checked_at: sqlx::Row::try_get(row, "last_checked_at")?,
        last_result: rows::opt_text(row, "last_result")?,
        spf_result: rows::opt_text(row, "spf_result")?,
        dmarc_result: rows::opt_text(row, "dmarc_result")?,
        keys,
    })
}

fn key_from_row(row: &AnyRow) -> Result<DkimKeyRecord, StorageError> {
    Ok(DkimKeyRecord {
        selector: rows::text(row, "selector")?,
        state: DkimKeyState::parse(&rows::text(row, "state")?)?,
        public_key: rows::text(row, "public_key")?,
        private_key_enc: rows::text(row, "private_key_enc")?,
        created_at: rows::int(row, "created_at")?,
        activated_at: sqlx::Row::try_get(row, "activated_at")?,
        retired_at: sqlx::Row::try_get(row, "retired_at")?,
    })
}
