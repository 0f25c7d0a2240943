//! Sending domains, authenticated before mail goes out as them. Setting a
//! sending domain in the email settings adds it `pending` with a new DKIM key
//! (RSA 2048, the private half encrypted at rest) and the records to publish:
//! the DKIM key (required), an SPF include and a DMARC policy (advice). A job
//! looks the DKIM record up and marks the domain `verified` once the key is
//! found — from then on mail through the platform relay goes out as the
//! tenant's own address, DKIM-signed — or `failed` after
//! [`SENDING_DOMAIN_JOB_ATTEMPTS`] tries. A verified domain is checked again
//! every `--domain-recheck-secs`; a signing record gone missing puts it back
//! to `pending` (mail goes from the platform's address until it is back).
//!
//! Rotation adds a second key under a new selector: the old one keeps signing
//! until the new one's record is found, then the new one signs and the old
//! one is retired (its record can be removed).

use std::sync::LazyLock;

use serde::Serialize;
use serde_json::json;
use tokio::sync::Semaphore;

use super::jobs::{SENDING_DOMAIN_JOB, SENDING_DOMAIN_JOB_ATTEMPTS, now_ms, queue_dns_check};
use super::{Error, Result};
use crate::dns::DnsError;
use crate::email::dkim;
use crate::state::AppState;
use crate::storage::{
    NewDkimKey, SendingDomainCheck, SendingDomainRecord, SendingDomainStatus, StorageError,
};
use crate::tenancy::TenantId;

/// Sending domains one tenant may have: each costs a key pair and a DNS
/// check schedule.
pub const MAX_SENDING_DOMAINS: usize = 10;

/// Key pairs made at once on this host (each keeps a core busy for tens to
/// hundreds of milliseconds).
static KEYGEN: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(1));

/// A sending domain as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SendingDomainView {
    /// Its status, keys (public halves) and what the last check found.
    #[serde(flatten)]
    pub record: SendingDomainRecord,
    /// Whether mail through the platform relay goes out as this domain now.
    pub sends_as_domain: bool,
    /// The records to publish.
    pub records: Vec<RecordToPublish>,
}

/// A DNS record to publish for a sending domain.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RecordToPublish {
    /// `dkim`, `spf` or `dmarc`.
    pub purpose: &'static str,
    /// `TXT`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub name: String,
    pub value: String,
    /// Whether mail goes out as the domain only once it is published.
    pub required: bool,
    /// What it is for, in words.
    pub why: String,
}

/// What a tenant sees of its sending domain.
pub fn view(app: &AppState, record: SendingDomainRecord) -> SendingDomainView {
    let mut records = Vec::new();
    for key in &record.keys {
        let why = match key.state {
            crate::storage::DkimKeyState::Pending if record.active_key().is_some() => {
                "the new key (rotation): it signs once this record is found; keep the current \
                 key's record until then"
            }
            crate::storage::DkimKeyState::Pending => {
                "DKIM: mail goes out as this domain, signed, once this record is found"
            }
            crate::storage::DkimKeyState::Active => "DKIM: the key mail is signed with now",
            crate::storage::DkimKeyState::Retired => continue,
        };
        records.push(RecordToPublish {
            purpose: "dkim",
            kind: "TXT",
            name: dkim::record_name(&key.selector, &record.domain),
            value: dkim::record_value(&key.public_key),
            required: true,
            why: why.into(),
        });
    }
    records.push(RecordToPublish {
        purpose: "spf",
        kind: "TXT",
        name: record.domain.clone(),
        value: format!("v=spf1 include:{} ~all", spf_include(app)),
        required: false,
        why: format!(
            "SPF: lets the platform's relay send for the domain (merge the include into an \
             existing v=spf1 record; one per domain). Mail through the platform relay has the \
             envelope sender @{}, so DMARC passes by the DKIM signature alone",
            app.config.bounce_domain.to_ascii_lowercase()
        ),
    });
    records.push(RecordToPublish {
        purpose: "dmarc",
        kind: "TXT",
        name: format!("_dmarc.{}", record.domain),
        value: "v=DMARC1; p=none; adkim=r; aspf=r".into(),
        required: false,
        why: "DMARC: start with p=none, then move to p=quarantine once reports show only \
              signed mail"
            .into(),
    });
    SendingDomainView {
        sends_as_domain: sends_as(&record),
        record,
        records,
    }
}

fn sends_as(record: &SendingDomainRecord) -> bool {
    record.status == SendingDomainStatus::Verified && record.active_key().is_some()
}

fn spf_include(app: &AppState) -> String {
    let configured = app.config.spf_include.trim();
    if configured.is_empty() {
        format!("_spf.{}", app.config.bounce_domain.to_ascii_lowercase())
    } else {
        configured.to_ascii_lowercase()
    }
}

/// A fresh key, encrypted for `tenant`'s `domain`: (selector, public key,
/// private key ciphertext).
async fn new_key(
    app: &AppState,
    tenant: &TenantId,
    domain: &str,
) -> Result<(String, String, String)> {
    let _permit = KEYGEN
        .acquire()
        .await
        .map_err(|_| Error::internal("the key generator is closed"))?;
    let key = tokio::task::spawn_blocking(dkim::generate)
        .await
        .map_err(|err| Error::internal(format!("key generation failed: {err}")))?
        .map_err(|err| Error::internal(err.to_string()))?;
    let selector = dkim::new_selector();
    let sealed = app.secrets.encrypt(
        key.private_pem.as_bytes(),
        &dkim::key_aad(tenant, domain, &selector),
    );
    Ok((selector, key.public_key, sealed))
}

/// Makes sure `domain` is one of `tenant`'s sending domains (the email
/// settings name it): a new one gets its first key and a check is queued.
/// Conflict past [`MAX_SENDING_DOMAINS`].
pub async fn ensure(
    app: &AppState,
    tenant: &TenantId,
    actor: &str,
    domain: &str,
) -> Result<SendingDomainView> {
    let db = app.storage.tenant(tenant);
    if let Some(existing) = db.sending_domain(domain).await? {
        return Ok(view(app, existing));
    }
    let count = db.sending_domains().await?.len();
    if count >= MAX_SENDING_DOMAINS {
        return Err(Error::Conflict(format!(
            "the tenant has {count} sending domains, the most allowed; remove one it no longer \
             sends from (DELETE /v1/email/domains/<domain>) first"
        )));
    }
    let (selector, public_key, sealed) = new_key(app, tenant, domain).await?;
    let (record, created) = db
        .add_sending_domain(
            domain,
            &NewDkimKey {
                selector: &selector,
                public_key: &public_key,
                private_key_enc: &sealed,
            },
        )
        .await?;
    if created {
        queue_dns_check(app, tenant, SENDING_DOMAIN_JOB, &record.domain, None).await?;
        audit(app, tenant, actor, "email.domain.add", &record).await?;
    }
    Ok(view(app, record))
}

/// A tenant's sending domains.
pub async fn list(app: &AppState, tenant: &TenantId) -> Result<Vec<SendingDomainView>> {
    Ok(app
        .storage
        .tenant(tenant)
        .sending_domains()
        .await?
        .into_iter()
        .map(|r| view(app, r))
        .collect())
}

/// One of a tenant's sending domains.
pub async fn get(app: &AppState, tenant: &TenantId, domain: &str) -> Result<SendingDomainView> {
    let record = app
        .storage
        .tenant(tenant)
        .sending_domain(domain)
        .await?
        .ok_or_else(|| not_found(tenant, domain))?;
    Ok(view(app, record))
}

fn not_found(tenant: &TenantId, domain: &str) -> Error {
    Error::NotFound(format!(
        "tenant `{tenant}` has no sending domain `{}`; set it as the sending_domain of the email \
         settings (PUT /v1/email/settings)",
        domain.chars().take(80).collect::<String>()
    ))
}

/// Queues a check of `domain` now (after publishing its records, or to retry
/// a failed one).
pub async fn check_now(
    app: &AppState,
    tenant: &TenantId,
    domain: &str,
) -> Result<SendingDomainView> {
    let db = app.storage.tenant(tenant);
    let mut record = db
        .sending_domain(domain)
        .await?
        .ok_or_else(|| not_found(tenant, domain))?;
    if record.status == SendingDomainStatus::Failed {
        db.record_sending_domain_check(
            &record.domain,
            &SendingDomainCheck {
                status: SendingDomainStatus::Pending,
                result: "checking again",
                spf: record.spf_result.as_deref(),
                dmarc: record.dmarc_result.as_deref(),
                activate: None,
            },
        )
        .await?;
        record.status = SendingDomainStatus::Pending;
    }
    queue_dns_check(app, tenant, SENDING_DOMAIN_JOB, &record.domain, None).await?;
    Ok(view(app, record))
}

/// Starts a key rotation: a new key under a new selector, pending until its
/// record is found (the current key signs meanwhile). Conflict while a key is
/// already waiting for its record.
pub async fn rotate(
    app: &AppState,
    tenant: &TenantId,
    actor: &str,
    domain: &str,
) -> Result<SendingDomainView> {
    let db = app.storage.tenant(tenant);
    let record = db
        .sending_domain(domain)
        .await?
        .ok_or_else(|| not_found(tenant, domain))?;
    if let Some(pending) = record.pending_key() {
        return Err(Error::Conflict(format!(
            "key `{}` of {} is still waiting for its DNS record: publish it and check \
             (POST /v1/email/domains/{}/check) before rotating again",
            pending.selector, record.domain, record.domain
        )));
    }
    let (selector, public_key, sealed) = new_key(app, tenant, &record.domain).await?;
    let record = db
        .add_dkim_key(
            &record.domain,
            &NewDkimKey {
                selector: &selector,
                public_key: &public_key,
                private_key_enc: &sealed,
            },
        )
        .await?;
    queue_dns_check(app, tenant, SENDING_DOMAIN_JOB, &record.domain, None).await?;
    audit(app, tenant, actor, "email.domain.rotate", &record).await?;
    Ok(view(app, record))
}

/// Removes a sending domain and its keys (mail from it then goes from the
/// platform's address); NotFound if there is none.
pub async fn remove(app: &AppState, tenant: &TenantId, actor: &str, domain: &str) -> Result<()> {
    let db = app.storage.tenant(tenant);
    let record = db
        .sending_domain(domain)
        .await?
        .ok_or_else(|| not_found(tenant, domain))?;
    db.remove_sending_domain(&record.domain).await?;
    audit(app, tenant, actor, "email.domain.remove", &record).await
}

/// What a check concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// Nothing more to do now (the next check, if any, is queued).
    Done,
    /// Not proven yet, or DNS did not answer: check again after a backoff.
    Again(String),
}

/// Checks `tenant`'s sending domain `domain` once (the job handler's use
/// case); `last` is the job's last attempt.
pub async fn check(app: &AppState, tenant: &TenantId, domain: &str, last: bool) -> Result<Checked> {
    let db = app.storage.tenant(tenant);
    let Some(record) = db.sending_domain(domain).await? else {
        return Ok(Checked::Done); // removed meanwhile
    };
    if record.status == SendingDomainStatus::Failed {
        return Ok(Checked::Done);
    }
    let spf = spf_finding(app, &record.domain).await;
    let dmarc = dmarc_finding(app, &record.domain).await;
    let mut unavailable = None;

    // A new key found: it signs from now on.
    let mut activate = None;
    if let Some(pending) = record.pending_key() {
        match key_published(app, &record.domain, &pending.selector, &pending.public_key).await {
            Ok(true) => activate = Some(pending.selector.clone()),
            Ok(false) => {}
            Err(why) => unavailable = Some(why),
        }
    }
    let signing = match (&activate, record.active_key()) {
        (Some(selector), _) => Some(Ok(selector.clone())),
        (None, Some(active)) => Some(
            match key_published(app, &record.domain, &active.selector, &active.public_key).await {
                Ok(true) => Ok(active.selector.clone()),
                Ok(false) => Err(format!(
                    "the record of the signing key `{}` is gone from {}: mail goes from the \
                     platform's address until it is back",
                    active.selector,
                    dkim::record_name(&active.selector, &record.domain)
                )),
                Err(why) => {
                    unavailable = Some(why.clone());
                    Err(why)
                }
            },
        ),
        (None, None) => None,
    };
    let recheck =
        i64::try_from(app.config.domain_recheck_secs.saturating_mul(1_000)).unwrap_or(i64::MAX);
    let write = |status, result: String, activate: Option<String>| {
        let db = db.clone();
        let (spf, dmarc) = (spf.clone(), dmarc.clone());
        let domain = record.domain.clone();
        async move {
            db.record_sending_domain_check(
                &domain,
                &SendingDomainCheck {
                    status,
                    result: &result,
                    spf: Some(&spf),
                    dmarc: Some(&dmarc),
                    activate: activate.as_deref(),
                },
            )
            .await
        }
    };
    let recheck_later = async || {
        queue_dns_check(
            app,
            tenant,
            SENDING_DOMAIN_JOB,
            &record.domain,
            Some(now_ms().saturating_add(recheck)),
        )
        .await
    };
    if let Some(Ok(selector)) = &signing {
        write(
            SendingDomainStatus::Verified,
            format!(
                "DKIM record of `{selector}` found at {}",
                dkim::record_name(selector, &record.domain)
            ),
            activate.clone(),
        )
        .await?;
        if (activate.is_some() || record.status != SendingDomainStatus::Verified)
            && let Some(after) = db.sending_domain(&record.domain).await?
        {
            audit(app, tenant, "veneer:email", "email.domain.verified", &after).await?;
        }
        if activate.is_none()
            && let Some(pending) = record.pending_key()
            && !last
        {
            // A rotation still waits for its new key's record: keep looking.
            return Ok(Checked::Again(format!(
                "the new key's record is not at {} yet",
                dkim::record_name(&pending.selector, &record.domain)
            )));
        }
        recheck_later().await?;
        return Ok(Checked::Done);
    }
    if let Some(why) = unavailable {
        if !last {
            return Ok(Checked::Again(why));
        }
        if record.status == SendingDomainStatus::Verified {
            // DNS down for a whole schedule: keep the proven state, look later.
            recheck_later().await?;
            return Ok(Checked::Done);
        }
    }
    let why = match (signing, record.pending_key()) {
        (Some(Err(why)), _) => why,
        (_, Some(key)) => format!(
            "no TXT record at {} holding this key (v=DKIM1; k=rsa; p=<its public key>)",
            dkim::record_name(&key.selector, &record.domain)
        ),
        _ => "no key to look for: rotate to make one".into(),
    };
    if last {
        let why = format!(
            "{why}; gave up after {SENDING_DOMAIN_JOB_ATTEMPTS} checks (check again with \
             POST /v1/email/domains/{}/check)",
            record.domain
        );
        write(SendingDomainStatus::Failed, why, None).await?;
        return Ok(Checked::Done);
    }
    if record.status == SendingDomainStatus::Verified {
        audit_status(app, tenant, &record, SendingDomainStatus::Pending).await?;
    }
    write(SendingDomainStatus::Pending, why.clone(), None).await?;
    Ok(Checked::Again(why))
}

/// Whether `public_key` is published under `selector`; Err when DNS did not
/// answer.
async fn key_published(
    app: &AppState,
    domain: &str,
    selector: &str,
    public_key: &str,
) -> std::result::Result<bool, String> {
    match app.dns.txt(&dkim::record_name(selector, domain)).await {
        Ok(values) => Ok(values
            .iter()
            .any(|v| dkim::published_key(v).as_deref() == Some(public_key))),
        Err(DnsError::NoRecord(_)) => Ok(false),
        Err(DnsError::Unavailable(why)) => Err(why),
    }
}

async fn spf_finding(app: &AppState, domain: &str) -> String {
    let include = spf_include(app);
    match app.dns.txt(domain).await {
        Ok(values) => {
            let spf: Vec<&String> = values
                .iter()
                .filter(|v| v.trim_start().to_ascii_lowercase().starts_with("v=spf1"))
                .collect();
            match spf.as_slice() {
                [] => format!("no SPF record; suggested: v=spf1 include:{include} ~all"),
                [one]
                    if one
                        .to_ascii_lowercase()
                        .contains(&format!("include:{include}")) =>
                {
                    format!("SPF record includes {include}")
                }
                [_] => format!("SPF record found without include:{include}; add it"),
                _ => {
                    "more than one SPF record: receivers treat that as an error; merge them".into()
                }
            }
        }
        Err(DnsError::NoRecord(_)) => {
            format!("no SPF record; suggested: v=spf1 include:{include} ~all")
        }
        Err(DnsError::Unavailable(why)) => format!("not checked: {why}"),
    }
}

async fn dmarc_finding(app: &AppState, domain: &str) -> String {
    match app.dns.txt(&format!("_dmarc.{domain}")).await {
        Ok(values) => match values
            .iter()
            .find(|v| v.trim_start().to_ascii_uppercase().starts_with("V=DMARC1"))
        {
            Some(policy) => format!("DMARC policy found: {}", policy.trim()),
            None => "no DMARC policy; suggested: v=DMARC1; p=none; adkim=r; aspf=r".into(),
        },
        Err(DnsError::NoRecord(_)) => {
            "no DMARC policy; suggested: v=DMARC1; p=none; adkim=r; aspf=r".into()
        }
        Err(DnsError::Unavailable(why)) => format!("not checked: {why}"),
    }
}

/// The key to sign `tenant`'s mail from `domain` with: (selector, PKCS#1
/// PEM), when the domain is verified.
pub async fn signing_key(
    app: &AppState,
    tenant: &TenantId,
    domain: &str,
) -> Result<Option<(String, zeroize::Zeroizing<String>)>> {
    let Some(record) = app.storage.tenant(tenant).sending_domain(domain).await? else {
        return Ok(None);
    };
    if !sends_as(&record) {
        return Ok(None);
    }
    let Some(key) = record.active_key() else {
        return Ok(None);
    };
    let plain = app
        .secrets
        .decrypt(
            &key.private_key_enc,
            &dkim::key_aad(tenant, &record.domain, &key.selector),
        )
        .map_err(|err| {
            Error::internal(format!(
                "cannot decrypt the DKIM key `{}` of {}: {err}",
                key.selector, record.domain
            ))
        })?;
    let pem = String::from_utf8(plain.to_vec())
        .map_err(|_| Error::internal("the DKIM key is not PEM text"))?;
    Ok(Some((key.selector.clone(), zeroize::Zeroizing::new(pem))))
}

/// Whether `tenant`'s mail may go out as `domain` through the platform relay.
pub async fn verified(app: &AppState, tenant: &TenantId, domain: &str) -> Result<bool> {
    Ok(app
        .storage
        .tenant(tenant)
        .sending_domain(domain)
        .await?
        .is_some_and(|r| sends_as(&r)))
}

async fn audit_status(
    app: &AppState,
    tenant: &TenantId,
    record: &SendingDomainRecord,
    status: SendingDomainStatus,
) -> Result<()> {
    let after = SendingDomainRecord {
        status,
        ..record.clone()
    };
    audit(app, tenant, "veneer:email", "email.domain.missing", &after).await
}

async fn audit(
    app: &AppState,
    tenant: &TenantId,
    actor: &str,
    action: &str,
    record: &SendingDomainRecord,
) -> Result<()> {
    let after = json!({
        "domain": record.domain,
        "status": record.status,
        "keys": record.keys.iter().map(|k| json!({ "selector": k.selector, "state": k.state })).collect::<Vec<_>>(),
    })
    .to_string();
    app.storage
        .tenant(tenant)
        .audit(actor, action, None, None, Some(&after))
        .await
        .map_err(|err: StorageError| err.into())
}
