//! `veneer secrets rotate` as a use case: every secret Veneer stores sealed —
//! Shopify credentials and tenants' Shopify app client secrets, tenants' SMTP relay passwords, the private halves of
//! DKIM keys, the sealed parts of job payloads (webhook bodies, rendered
//! emails), certificate keys and ACME accounts — re-encrypted under the current key when it is sealed under an
//! older one. Each value is swapped only if it is still what was read (a
//! tenant saving new settings meanwhile keeps them: counted as `raced`, run
//! again); one that no configured key opens is reported, never dropped.

use crate::email::{dkim, password_aad};
use crate::secrets::{SecretBox, SecretsError};
use crate::storage::Storage;
use crate::tenancy::TenantId;

/// What a rotation did to one kind of secret.
#[derive(Debug, Default)]
pub struct KindReport {
    /// Re-encrypted under the current key.
    pub rotated: u64,
    /// Already under the current key.
    pub unchanged: u64,
    /// Changed during the run: run again.
    pub raced: u64,
    /// Could not be opened (with which tenant and item, and why).
    pub failed: Vec<(String, SecretsError)>,
}

impl KindReport {
    /// Re-encrypts `old` (bound by `aad`) under the current key and stores it
    /// with `replace`, which swaps only if the value is still `old`; counts
    /// what came of it (`item` names a value no key opens).
    async fn swap(
        &mut self,
        secrets: &SecretBox,
        old: &str,
        aad: &str,
        item: impl FnOnce() -> String,
        replace: impl AsyncFnOnce(String) -> Result<bool, crate::storage::StorageError>,
    ) -> super::Result<()> {
        match secrets.reencrypt(old, aad) {
            Ok(None) => self.unchanged += 1,
            Ok(Some(new)) => {
                if replace(new).await? {
                    self.rotated += 1;
                } else {
                    self.raced += 1;
                }
            }
            Err(err) => self.failed.push((item(), err)),
        }
        Ok(())
    }
}

/// What a rotation did, by kind.
#[derive(Debug, Default)]
pub struct RotationReport {
    /// Shopify access tokens and app secrets (counted per store).
    pub shopify: KindReport,
    /// Client secrets of tenants' own Shopify apps (the install flow's).
    pub shopify_apps: KindReport,
    /// SMTP passwords of tenants' own relays.
    pub smtp_passwords: KindReport,
    /// DKIM private keys of sending domains.
    pub dkim_keys: KindReport,
    /// Sealed job payloads (webhook bodies and rendered emails waiting or
    /// kept in the jobs table).
    pub job_payloads: KindReport,
    /// Private keys of served certificates.
    pub certificate_keys: KindReport,
    /// ACME account credentials.
    pub acme_accounts: KindReport,
}

impl RotationReport {
    /// Whether every secret is now under the current key.
    pub fn complete(&self) -> bool {
        [
            &self.shopify,
            &self.shopify_apps,
            &self.smtp_passwords,
            &self.dkim_keys,
            &self.job_payloads,
            &self.certificate_keys,
            &self.acme_accounts,
        ]
        .iter()
        .all(|k| k.failed.is_empty() && k.raced == 0)
    }
}

/// Re-encrypts every stored secret not under `secrets`' current key. Safe to
/// run while serving, and again.
pub async fn rotate(storage: &Storage, secrets: &SecretBox) -> super::Result<RotationReport> {
    let platform = storage.platform();
    let shopify = crate::shopify::rotate_credentials(&platform, secrets)
        .await
        .map_err(|err| super::Error::internal(err.to_string()))?;
    let mut report = RotationReport {
        shopify: KindReport {
            rotated: shopify.rotated,
            unchanged: shopify.unchanged,
            raced: shopify.raced,
            failed: shopify
                .failed
                .into_iter()
                .map(|(tenant, err)| (tenant.to_string(), err))
                .collect(),
        },
        ..RotationReport::default()
    };
    for tenant in platform.list_tenants().await? {
        rotate_tenant(storage, secrets, &tenant.id, &mut report).await?;
    }
    rotate_jobs(storage, secrets, &mut report.job_payloads).await?;
    for (domain, old) in platform.sealed_certificate_keys().await? {
        report
            .certificate_keys
            .swap(
                secrets,
                &old,
                &super::certificates::key_aad(&domain),
                || format!("certificate key of {domain}"),
                async |new| platform.replace_certificate_key(&domain, &old, &new).await,
            )
            .await?;
    }
    for (directory, old) in platform.acme_accounts().await? {
        report
            .acme_accounts
            .swap(
                secrets,
                &old,
                &super::certificates::account_aad(&directory),
                || format!("ACME account of {directory}"),
                async |new| platform.replace_acme_account(&directory, &old, &new).await,
            )
            .await?;
    }
    Ok(report)
}

async fn rotate_jobs(
    storage: &Storage,
    secrets: &SecretBox,
    kind: &mut KindReport,
) -> super::Result<()> {
    const PAGE: u32 = 200;
    let platform = storage.platform();
    let mut after = 0;
    loop {
        let page = platform.sealed_job_payloads(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for job in &page {
            let Ok(serde_json::Value::Object(mut payload)) = serde_json::from_str(&job.payload)
            else {
                continue;
            };
            let (Some(sealed), Some(id)) = (
                payload.get("sealed").and_then(|v| v.as_str()),
                payload.get("id").and_then(|v| v.as_str()),
            ) else {
                continue;
            };
            let aad = super::jobs::payload_aad(&job.tenant, &job.kind, id);
            let sealed = sealed.to_owned();
            kind.swap(
                secrets,
                &sealed,
                &aad,
                || format!("{} job {} ({})", job.tenant, job.id, job.kind),
                async |new| {
                    payload.insert("sealed".into(), new.into());
                    let new = serde_json::Value::Object(payload).to_string();
                    platform
                        .replace_job_payload(job.id, &job.payload, &new)
                        .await
                },
            )
            .await?;
        }
        if page.len() < PAGE as usize {
            break;
        }
    }
    Ok(())
}

async fn rotate_tenant(
    storage: &Storage,
    secrets: &SecretBox,
    tenant: &TenantId,
    report: &mut RotationReport,
) -> super::Result<()> {
    let db = storage.tenant(tenant);
    if let Some(app) = db.shopify_app().await? {
        let old = &app.client_secret_enc;
        report
            .shopify_apps
            .swap(
                secrets,
                old,
                &super::shopify_install::client_secret_aad(tenant),
                || format!("{tenant} Shopify app client secret"),
                async |new| db.replace_shopify_client_secret(old, &new).await,
            )
            .await?;
    }
    if let Some(settings) = db.email_settings().await?
        && let Some(old) = settings.settings.smtp_password_enc.as_deref()
    {
        report
            .smtp_passwords
            .swap(
                secrets,
                old,
                &password_aad(tenant),
                || format!("{tenant} SMTP password"),
                async |new| db.email_replace_password(old, &new).await,
            )
            .await?;
    }
    for domain in db.sending_domains().await? {
        for key in &domain.keys {
            let old = &key.private_key_enc;
            report
                .dkim_keys
                .swap(
                    secrets,
                    old,
                    &dkim::key_aad(tenant, &domain.domain, &key.selector),
                    || format!("{tenant} DKIM key {} of {}", key.selector, domain.domain),
                    async |new| {
                        db.replace_dkim_key_enc(&domain.domain, &key.selector, old, &new)
                            .await
                    },
                )
                .await?;
        }
    }
    Ok(())
}
