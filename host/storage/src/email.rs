//! Email storage: a tenant's sending settings, the messages it sent (one row per
//! message, following it from queued to sent, failed or bounced) and its
//! suppression list. Suppressions are per tenant: an address that bounced for
//! one tenant may still receive another tenant's mail.
//!
//! Storage keeps what it is given: the SMTP password arrives already encrypted
//! (opaque text), and settings are checked by `email::validate_settings` before
//! they get here. What storage checks itself is what the schema needs: the
//! message id's shape (the VERP bounce address and the Message-ID are built
//! from it), no NUL characters (PostgreSQL text cannot hold them), and which
//! state may follow which.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

use super::error::tenant_fk;
use super::jobs::{JobRecord, NewJob};
use super::platform::PlatformDb;
use super::session::Access;
use super::tenant::TenantDb;
use super::time::now_ms;
use super::{StorageError, rows};
use veneer_core::tenancy_id::TenantId;

/// Length of a message id: 32 lowercase hex digits (128 random bits).
pub const EMAIL_MESSAGE_ID_LEN: usize = 32;

/// Whether `id` has the shape of a message id: exactly
/// [`EMAIL_MESSAGE_ID_LEN`] lowercase hex digits.
pub fn is_email_message_id(id: &str) -> bool {
    id.len() == EMAIL_MESSAGE_ID_LEN && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Which SMTP relay a tenant's mail leaves through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EmailRelay {
    /// The platform's relay (the host's own SMTP configuration).
    Platform,
    /// The tenant's own relay, from the `smtp_*` settings.
    Custom,
}

/// How the connection to the relay is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EmailTls {
    /// Plain SMTP (loopback and test relays only: no credentials allowed).
    None,
    /// Plain connection upgraded with STARTTLS, which is required (usually port 587).
    Starttls,
    /// TLS from the first byte (usually port 465).
    Tls,
}

/// A string that is not a relay or TLS mode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} `{value}` is not known: use {allowed}")]
pub struct InvalidEmailChoice {
    /// relay or smtp_tls.
    pub field: &'static str,
    /// What was given (cut to 40 characters).
    pub value: String,
    /// The accepted spellings.
    pub allowed: &'static str,
}

impl EmailRelay {
    /// The stored (and serialized) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EmailRelay::Platform => "platform",
            EmailRelay::Custom => "custom",
        }
    }
}

impl FromStr for EmailRelay {
    type Err = InvalidEmailChoice;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "platform" => Ok(EmailRelay::Platform),
            "custom" => Ok(EmailRelay::Custom),
            other => Err(InvalidEmailChoice {
                field: "relay",
                value: other.chars().take(40).collect(),
                allowed: "`platform` or `custom`",
            }),
        }
    }
}

impl fmt::Display for EmailRelay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl EmailTls {
    /// The stored (and serialized) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EmailTls::None => "none",
            EmailTls::Starttls => "starttls",
            EmailTls::Tls => "tls",
        }
    }
}

impl FromStr for EmailTls {
    type Err = InvalidEmailChoice;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(EmailTls::None),
            "starttls" => Ok(EmailTls::Starttls),
            "tls" => Ok(EmailTls::Tls),
            other => Err(InvalidEmailChoice {
                field: "smtp_tls",
                value: other.chars().take(40).collect(),
                allowed: "`none`, `starttls` or `tls`",
            }),
        }
    }
}

impl fmt::Display for EmailTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A tenant's email settings. Serializes without the password ciphertext.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EmailSettings {
    /// The domain the tenant sends as; `from_address` must be in it.
    pub sending_domain: String,
    /// The sender's display name (a template may override it).
    pub from_name: String,
    /// The sender's address, `@sending_domain`.
    pub from_address: String,
    /// The default Reply-To (a template may override it).
    pub reply_to: Option<String>,
    /// Which relay sends the tenant's mail.
    pub relay: EmailRelay,
    /// The custom relay's host name (needed with [`EmailRelay::Custom`]).
    pub smtp_host: Option<String>,
    /// The custom relay's port (needed with [`EmailRelay::Custom`]); wider
    /// than `u16` so an out-of-range value reaches validation and gets a
    /// clear message.
    pub smtp_port: Option<u32>,
    /// How the connection to the custom relay is protected.
    pub smtp_tls: EmailTls,
    /// The custom relay's user name.
    pub smtp_username: Option<String>,
    /// The custom relay's password, encrypted by the secrets module.
    #[serde(skip_serializing)]
    pub smtp_password_enc: Option<String>,
}

/// Email settings as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EmailSettingsRecord {
    #[serde(flatten)]
    pub settings: EmailSettings,
    /// Unix milliseconds.
    pub updated_at: i64,
}

/// Where a message is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EmailState {
    /// Waiting to be sent (also between temporary failures).
    Queued,
    /// The relay accepted it.
    Sent,
    /// Not sent: the address is on the tenant's suppression list.
    SkippedSuppressed,
    /// The relay refused it for good (or retries ran out).
    Failed,
    /// Accepted, then bounced back.
    Bounced,
}

impl EmailState {
    /// The stored (and serialized) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EmailState::Queued => "queued",
            EmailState::Sent => "sent",
            EmailState::SkippedSuppressed => "skipped_suppressed",
            EmailState::Failed => "failed",
            EmailState::Bounced => "bounced",
        }
    }

    fn parse(s: &str) -> Result<Self, StorageError> {
        Ok(match s {
            "queued" => EmailState::Queued,
            "sent" => EmailState::Sent,
            "skipped_suppressed" => EmailState::SkippedSuppressed,
            "failed" => EmailState::Failed,
            "bounced" => EmailState::Bounced,
            other => {
                return Err(StorageError::Database(sqlx::Error::ColumnDecode {
                    index: "state".into(),
                    source: format!("unknown email state `{other}`").into(),
                }));
            }
        })
    }
}

impl fmt::Display for EmailState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message about to be sent.
#[derive(Debug, Clone, Copy)]
pub struct NewEmailMessage<'a> {
    /// From `email::new_message_id`: 32 lowercase hex digits.
    pub id: &'a str,
    pub template_id: &'a str,
    pub to_address: &'a str,
    pub subject: &'a str,
    /// The Message-ID header, `<id@sending_domain>`.
    pub message_id: &'a str,
}

/// A message as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EmailMessageRecord {
    pub tenant: TenantId,
    pub id: String,
    pub template_id: String,
    pub to_address: String,
    pub subject: String,
    /// The Message-ID header as sent.
    pub message_id: String,
    pub state: EmailState,
    /// The relay's last reply (success or failure), code first.
    pub smtp_reply: Option<String>,
    /// `hard` or `soft`, once a bounce came back.
    pub bounce_type: Option<String>,
    /// The bounce's diagnostic (status and the remote server's words).
    pub bounce_diagnostic: Option<String>,
    /// Delivery attempts made (successful or not).
    pub attempts: u32,
    /// Unix milliseconds.
    pub created_at: i64,
    pub sent_at: Option<i64>,
    pub bounced_at: Option<i64>,
}

/// An address the tenant no longer sends to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EmailSuppression {
    /// Lowercased.
    pub address: String,
    /// Why, e.g. `hard bounce 5.1.1: ...` or `manual`.
    pub reason: String,
    /// The message whose bounce put it here, if any.
    pub source_message_id: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// The columns of `email_messages`, in the order [`message_from_row`] reads them.
macro_rules! message_columns {
    () => {
        "tenant_id, id, template_id, to_address, subject, message_id, state, smtp_reply, \
         bounce_type, bounce_diagnostic, attempts, created_at, sent_at, bounced_at"
    };
}
pub(super) use message_columns;

/// The columns of `email_settings`, in the order [`settings_from_row`] reads them.
macro_rules! settings_columns {
    () => {
        "sending_domain, from_name, from_address, reply_to, relay, smtp_host, smtp_port, \
         smtp_tls, smtp_username, smtp_password_enc, updated_at"
    };
}

/// PostgreSQL text cannot hold NUL; refuse it on both backends alike.
fn no_nul(field: &str, value: &str) -> Result<(), StorageError> {
    if value.contains('\0') {
        return Err(StorageError::Invalid(format!(
            "{field} contains a NUL character; remove it"
        )));
    }
    Ok(())
}

fn check_id(id: &str) -> Result<(), StorageError> {
    if is_email_message_id(id) {
        Ok(())
    } else {
        Err(StorageError::Invalid(format!(
            "`{}` is not a message id: use {EMAIL_MESSAGE_ID_LEN} lowercase hex digits \
             (email::new_message_id makes one)",
            id.chars().take(80).collect::<String>()
        )))
    }
}

fn normalize_address(address: &str) -> Result<String, StorageError> {
    no_nul("the address", address)?;
    let address = address.trim().to_lowercase();
    if address.is_empty() {
        return Err(StorageError::Invalid(
            "the address is empty; give an email address".into(),
        ));
    }
    Ok(address)
}

impl TenantDb {
    /// The tenant's email settings, if it set any.
    pub async fn email_settings(&self) -> Result<Option<EmailSettingsRecord>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let row = sqlx::query(concat!(
            "SELECT ",
            settings_columns!(),
            " FROM email_settings WHERE tenant_id = $1"
        ))
        .bind(self.tenant_id().as_str())
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.as_ref().map(settings_from_row).transpose()
    }

    /// Replaces the tenant's email settings (all fields, the password
    /// ciphertext included: to keep a password, pass the stored one back).
    pub async fn email_set_settings(
        &self,
        settings: &EmailSettings,
    ) -> Result<EmailSettingsRecord, StorageError> {
        let s = settings;
        for (field, value) in [
            ("sending_domain", Some(s.sending_domain.as_str())),
            ("from_name", Some(s.from_name.as_str())),
            ("from_address", Some(s.from_address.as_str())),
            ("reply_to", s.reply_to.as_deref()),
            ("smtp_host", s.smtp_host.as_deref()),
            ("smtp_username", s.smtp_username.as_deref()),
            ("smtp_password_enc", s.smtp_password_enc.as_deref()),
        ] {
            no_nul(field, value.unwrap_or_default())?;
        }
        let mut tx = self.begin(Access::Write).await?;
        let row = sqlx::query(concat!(
            "INSERT INTO email_settings (tenant_id, sending_domain, from_name, from_address, \
                 reply_to, relay, smtp_host, smtp_port, smtp_tls, smtp_username, \
                 smtp_password_enc, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (tenant_id) DO UPDATE SET sending_domain = excluded.sending_domain, \
                 from_name = excluded.from_name, from_address = excluded.from_address, \
                 reply_to = excluded.reply_to, relay = excluded.relay, \
                 smtp_host = excluded.smtp_host, smtp_port = excluded.smtp_port, \
                 smtp_tls = excluded.smtp_tls, smtp_username = excluded.smtp_username, \
                 smtp_password_enc = excluded.smtp_password_enc, \
                 updated_at = excluded.updated_at \
             RETURNING ",
            settings_columns!()
        ))
        .bind(self.tenant_id().as_str())
        .bind(s.sending_domain.as_str())
        .bind(s.from_name.as_str())
        .bind(s.from_address.as_str())
        .bind(s.reply_to.as_deref())
        .bind(s.relay.as_str())
        .bind(s.smtp_host.as_deref())
        .bind(s.smtp_port.map(i64::from))
        .bind(s.smtp_tls.as_str())
        .bind(s.smtp_username.as_deref())
        .bind(s.smtp_password_enc.as_deref())
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await
        .map_err(tenant_fk(self.tenant_id()))?;
        let record = settings_from_row(&row)?;
        tx.commit().await?;
        Ok(record)
    }

    /// How many messages the tenant queued since `since_ms` (Unix
    /// milliseconds): the daily send cap counts these.
    pub async fn email_count_since(&self, since_ms: i64) -> Result<u64, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM email_messages WHERE tenant_id = $1 AND created_at >= $2",
        )
        .bind(self.tenant_id().as_str())
        .bind(since_ms)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Replaces the SMTP password ciphertext (a secrets-key rotation) if it is
    /// still `old`; false when the settings changed meanwhile.
    pub async fn email_replace_password(&self, old: &str, new: &str) -> Result<bool, StorageError> {
        let mut tx = self.begin(Access::Write).await?;
        let done = sqlx::query(
            "UPDATE email_settings SET smtp_password_enc = $3 \
              WHERE tenant_id = $1 AND smtp_password_enc = $2",
        )
        .bind(self.tenant_id().as_str())
        .bind(old)
        .bind(new)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records a message as queued, with no attempt yet. Conflict if the id is
    /// taken.
    pub async fn email_create_message(
        &self,
        new: &NewEmailMessage<'_>,
    ) -> Result<EmailMessageRecord, StorageError> {
        self.email_queue_message(new, None)
            .await
            .map(|(record, _)| record)
    }

    /// Creates a queued message and, in the same transaction, the job that
    /// sends it: either both are written or neither is.
    pub async fn email_queue_message(
        &self,
        new: &NewEmailMessage<'_>,
        job: Option<&NewJob<'_>>,
    ) -> Result<(EmailMessageRecord, Option<JobRecord>), StorageError> {
        if let Some(job) = job {
            super::jobs::check_new_job(job)?;
        }
        check_id(new.id)?;
        for (field, value) in [
            ("template_id", new.template_id),
            ("to_address", new.to_address),
            ("subject", new.subject),
            ("message_id", new.message_id),
        ] {
            no_nul(field, value)?;
        }
        let mut tx = self.begin(Access::Write).await?;
        let row = sqlx::query(concat!(
            "INSERT INTO email_messages (tenant_id, id, template_id, to_address, subject, \
                 message_id, state, attempts, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 'queued', 0, $7) \
             RETURNING ",
            message_columns!()
        ))
        .bind(self.tenant_id().as_str())
        .bind(new.id)
        .bind(new.template_id)
        .bind(new.to_address)
        .bind(new.subject)
        .bind(new.message_id)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => StorageError::Conflict(
                format!("message `{}` already exists; make a new id", new.id),
            ),
            _ => tenant_fk(self.tenant_id())(e),
        })?;
        let record = message_from_row(&row)?;
        let job = match job {
            Some(job) => Some(
                super::jobs::insert_job(&mut tx, self.tenant_id(), job)
                    .await?
                    .0,
            ),
            None => None,
        };
        tx.commit().await?;
        Ok((record, job))
    }

    /// A queued message was accepted by the relay (`reply` is its answer).
    pub async fn email_mark_sent(
        &self,
        id: &str,
        reply: &str,
    ) -> Result<EmailMessageRecord, StorageError> {
        self.transition(
            id,
            "sent",
            "state = 'sent', smtp_reply = $3, attempts = attempts + 1, sent_at = $4",
            Some(reply),
            true,
        )
        .await
    }

    /// A queued message failed for now and will be tried again: counts the
    /// attempt and keeps the relay's reply; it stays queued.
    pub async fn email_mark_retry(
        &self,
        id: &str,
        reply: &str,
    ) -> Result<EmailMessageRecord, StorageError> {
        self.transition(
            id,
            "retried",
            "smtp_reply = $3, attempts = attempts + 1",
            Some(reply),
            false,
        )
        .await
    }

    /// A queued message failed for good (a permanent refusal, or retries ran
    /// out); `reply` is the relay's answer.
    pub async fn email_mark_failed(
        &self,
        id: &str,
        reply: &str,
    ) -> Result<EmailMessageRecord, StorageError> {
        self.transition(
            id,
            "failed",
            "state = 'failed', smtp_reply = $3, attempts = attempts + 1",
            Some(reply),
            false,
        )
        .await
    }

    /// A queued message was not sent because its address is suppressed.
    pub async fn email_mark_skipped(&self, id: &str) -> Result<EmailMessageRecord, StorageError> {
        self.transition(id, "skipped", "state = 'skipped_suppressed'", None, false)
            .await
    }

    /// A bounce came back for a message. Any state but skipped (a message
    /// never handed to a relay cannot bounce): a relay may accept a message
    /// whose acknowledgement we then lost, so a queued or failed one can
    /// bounce too. A second bounce updates the diagnostic and keeps the first
    /// time.
    pub async fn email_mark_bounced(
        &self,
        id: &str,
        hard: bool,
        diagnostic: &str,
    ) -> Result<EmailMessageRecord, StorageError> {
        no_nul("the diagnostic", diagnostic)?;
        check_id(id)?;
        let mut tx = self.begin(Access::Write).await?;
        let row = sqlx::query(concat!(
            "UPDATE email_messages SET state = 'bounced', bounce_type = $3, \
                 bounce_diagnostic = $4, bounced_at = COALESCE(bounced_at, $5) \
             WHERE tenant_id = $1 AND id = $2 AND state <> 'skipped_suppressed' \
             RETURNING ",
            message_columns!()
        ))
        .bind(self.tenant_id().as_str())
        .bind(id)
        .bind(if hard { "hard" } else { "soft" })
        .bind(diagnostic)
        .bind(now_ms())
        .fetch_optional(&mut *tx)
        .await?;
        let record = match row {
            Some(row) => message_from_row(&row)?,
            None => return Err(self.why_unchanged(&mut tx, id, "bounced").await),
        };
        tx.commit().await?;
        Ok(record)
    }

    /// The newest `limit` messages, newest first.
    pub async fn email_messages(
        &self,
        limit: u32,
    ) -> Result<Vec<EmailMessageRecord>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            message_columns!(),
            " FROM email_messages WHERE tenant_id = $1 \
              ORDER BY created_at DESC, id DESC LIMIT $2"
        ))
        .bind(self.tenant_id().as_str())
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter().map(message_from_row).collect()
    }

    /// One message of this tenant.
    pub async fn email_message(
        &self,
        id: &str,
    ) -> Result<Option<EmailMessageRecord>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let row = sqlx::query(concat!(
            "SELECT ",
            message_columns!(),
            " FROM email_messages WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(self.tenant_id().as_str())
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.as_ref().map(message_from_row).transpose()
    }

    /// Puts `address` (lowercased) on the tenant's suppression list. Already
    /// there: the reason and source are updated, the first time is kept.
    pub async fn email_suppress(
        &self,
        address: &str,
        reason: &str,
        source_message_id: Option<&str>,
    ) -> Result<EmailSuppression, StorageError> {
        let address = normalize_address(address)?;
        no_nul("the reason", reason)?;
        no_nul(
            "the source message id",
            source_message_id.unwrap_or_default(),
        )?;
        let mut tx = self.begin(Access::Write).await?;
        let row = sqlx::query(
            "INSERT INTO email_suppressions (tenant_id, address, reason, source_message_id, \
                 created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant_id, address) DO UPDATE SET reason = excluded.reason, \
                 source_message_id = excluded.source_message_id \
             RETURNING address, reason, source_message_id, created_at",
        )
        .bind(self.tenant_id().as_str())
        .bind(address.as_str())
        .bind(reason)
        .bind(source_message_id)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await
        .map_err(tenant_fk(self.tenant_id()))?;
        let record = suppression_from_row(&row)?;
        tx.commit().await?;
        Ok(record)
    }

    /// Takes `address` off the suppression list; false if it was not on it.
    pub async fn email_unsuppress(&self, address: &str) -> Result<bool, StorageError> {
        let address = normalize_address(address)?;
        let mut tx = self.begin(Access::Write).await?;
        let done =
            sqlx::query("DELETE FROM email_suppressions WHERE tenant_id = $1 AND address = $2")
                .bind(self.tenant_id().as_str())
                .bind(address.as_str())
                .execute(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Whether `address` (any case) is on this tenant's suppression list.
    pub async fn email_is_suppressed(&self, address: &str) -> Result<bool, StorageError> {
        let address = normalize_address(address)?;
        let mut tx = self.begin(Access::Read).await?;
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM email_suppressions WHERE tenant_id = $1 AND address = $2",
        )
        .bind(self.tenant_id().as_str())
        .bind(address.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(found.is_some())
    }

    /// The newest `limit` suppressions, newest first.
    pub async fn email_suppressions(
        &self,
        limit: u32,
    ) -> Result<Vec<EmailSuppression>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let rows = sqlx::query(
            "SELECT address, reason, source_message_id, created_at FROM email_suppressions \
              WHERE tenant_id = $1 ORDER BY created_at DESC, address LIMIT $2",
        )
        .bind(self.tenant_id().as_str())
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter().map(suppression_from_row).collect()
    }

    /// Applies one change to a queued message. `set` uses $3 for the reply
    /// when there is one, and $4 for the time when `stamped`: PostgreSQL
    /// refuses parameters a statement does not use.
    async fn transition(
        &self,
        id: &str,
        verb: &str,
        set: &'static str,
        reply: Option<&str>,
        stamped: bool,
    ) -> Result<EmailMessageRecord, StorageError> {
        check_id(id)?;
        no_nul("the SMTP reply", reply.unwrap_or_default())?;
        let sql = format!(
            "UPDATE email_messages SET {set} WHERE tenant_id = $1 AND id = $2 \
             AND state = 'queued' RETURNING {}",
            message_columns!()
        );
        let mut tx = self.begin(Access::Write).await?;
        // `set` is a static string of this file, never input.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(self.tenant_id().as_str())
            .bind(id);
        if let Some(reply) = reply {
            query = query.bind(reply);
        }
        if stamped {
            query = query.bind(now_ms());
        }
        let row = query.fetch_optional(&mut *tx).await?;
        let record = match row {
            Some(row) => message_from_row(&row)?,
            None => return Err(self.why_unchanged(&mut tx, id, verb).await),
        };
        tx.commit().await?;
        Ok(record)
    }

    /// NotFound or Conflict, for a transition that changed no row.
    async fn why_unchanged(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        id: &str,
        verb: &str,
    ) -> StorageError {
        let state: Result<Option<String>, _> =
            sqlx::query_scalar("SELECT state FROM email_messages WHERE tenant_id = $1 AND id = $2")
                .bind(self.tenant_id().as_str())
                .bind(id)
                .fetch_optional(&mut **tx)
                .await;
        match state {
            Ok(Some(state)) => {
                StorageError::Conflict(format!("message `{id}` is {state} and cannot be {verb}"))
            }
            Ok(None) => StorageError::NotFound(format!(
                "no message `{id}` for tenant `{}`",
                self.tenant_id()
            )),
            Err(e) => StorageError::from(e),
        }
    }
}

impl PlatformDb {
    /// Tenant `tenant`'s message `id`, for attributing a bounce whose VERP
    /// address named both. None unless that tenant has that message.
    pub async fn email_message_by_id(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<EmailMessageRecord>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let row = sqlx::query(concat!(
            "SELECT ",
            message_columns!(),
            " FROM email_messages WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant.as_str())
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.as_ref().map(message_from_row).transpose()
    }

    /// The message with id `id` whichever tenant sent it, for a bounce that
    /// only carries the returned Message-ID. None when no tenant, or (ids are
    /// 128 random bits, so only by tampering) more than one, has it.
    pub async fn email_find_message(
        &self,
        id: &str,
    ) -> Result<Option<EmailMessageRecord>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            message_columns!(),
            " FROM email_messages WHERE id = $1 LIMIT 2"
        ))
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        match rows.as_slice() {
            [row] => message_from_row(row).map(Some),
            _ => Ok(None),
        }
    }
}

fn decode<T: FromStr<Err = InvalidEmailChoice>>(
    row: &AnyRow,
    column: &str,
) -> Result<T, StorageError> {
    rows::text(row, column)?
        .parse()
        .map_err(|e: InvalidEmailChoice| {
            StorageError::Database(sqlx::Error::ColumnDecode {
                index: column.to_owned(),
                source: e.to_string().into(),
            })
        })
}

fn settings_from_row(row: &AnyRow) -> Result<EmailSettingsRecord, StorageError> {
    let port = sqlx::Row::try_get::<Option<i64>, _>(row, "smtp_port")?;
    Ok(EmailSettingsRecord {
        settings: EmailSettings {
            sending_domain: rows::text(row, "sending_domain")?,
            from_name: rows::text(row, "from_name")?,
            from_address: rows::text(row, "from_address")?,
            reply_to: rows::opt_text(row, "reply_to")?,
            relay: decode(row, "relay")?,
            smtp_host: rows::opt_text(row, "smtp_host")?,
            // The schema keeps it within 1..=65535.
            smtp_port: port.and_then(|p| u32::try_from(p).ok()),
            smtp_tls: decode(row, "smtp_tls")?,
            smtp_username: rows::opt_text(row, "smtp_username")?,
            smtp_password_enc: rows::opt_text(row, "smtp_password_enc")?,
        },
        updated_at: rows::int(row, "updated_at")?,
    })
}

pub(super) fn message_from_row(row: &AnyRow) -> Result<EmailMessageRecord, StorageError> {
    let tenant = rows::text(row, "tenant_id")?;
    Ok(EmailMessageRecord {
        tenant: TenantId::new(&tenant).map_err(|e| {
            StorageError::Database(sqlx::Error::ColumnDecode {
                index: "tenant_id".into(),
                source: e.to_string().into(),
            })
        })?,
        id: rows::text(row, "id")?,
        template_id: rows::text(row, "template_id")?,
        to_address: rows::text(row, "to_address")?,
        subject: rows::text(row, "subject")?,
        message_id: rows::text(row, "message_id")?,
        state: EmailState::parse(&rows::text(row, "state")?)?,
        smtp_reply: rows::opt_text(row, "smtp_reply")?,
        bounce_type: rows::opt_text(row, "bounce_type")?,
        bounce_diagnostic: rows::opt_text(row, "bounce_diagnostic")?,
        attempts: rows::u32(row, "attempts")?,
        created_at: rows::int(row, "created_at")?,
        sent_at: sqlx::Row::try_get(row, "sent_at")?,
        bounced_at: sqlx::Row::try_get(row, "bounced_at")?,
    })
}

pub(super) fn suppression_from_row(row: &AnyRow) -> Result<EmailSuppression, StorageError> {
    Ok(EmailSuppression {
        address: rows::text(row, "address")?,
        reason: rows::text(row, "reason")?,
        source_message_id: rows::opt_text(row, "source_message_id")?,
        created_at: rows::int(row, "created_at")?,
    })
}
