//! Custom domains, proven before they route. Adding a domain (a tenant admin
//! for its tenant, or a platform admin) claims it `pending` with a random
//! token and queues a check; the check (a job, retried with backoff) looks for
//! a TXT record `_veneer-challenge.<domain>` holding `veneer-verify=<token>`,
//! or a CNAME of the domain to the tenant's own host, and marks the claim
//! `verified` — only then does the domain route — or, after
//! [`DOMAIN_JOB_ATTEMPTS`] tries, `failed`. A verified domain is checked again
//! every `--domain-recheck-secs`; a record gone missing puts it in `grace`
//! (it still routes) and, after `--domain-grace-secs`, `disabled` (it no
//! longer routes); each change is audited and reaches every node's host
//! cache. A domain verified for one tenant cannot be claimed by another.

use serde::Serialize;
use serde_json::json;

use super::jobs::{DOMAIN_JOB, DOMAIN_JOB_ATTEMPTS, enqueue_dns_check, now_ms, queue_dns_check};
use super::{Error, Result};
use crate::dns::DnsError;
use crate::state::AppState;
use crate::storage::{AuditEntry, DomainRecord, DomainStatus};
use crate::tenancy::TenantId;

/// The label the TXT record lives under.
pub const CHALLENGE_LABEL: &str = "_veneer-challenge";

/// A domain as the API shows it: the claim and the records to publish.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DomainView {
    /// The claim: status, last check and what it found.
    #[serde(flatten)]
    pub record: DomainRecord,
    /// Whether requests to it are served now.
    pub routes: bool,
    /// Publish one of these.
    pub records: Vec<DnsRecord>,
    /// Its HTTPS certificate, with `--tls` once it routes (in lists and
    /// single views; not in the answers of add and check).
    pub certificate: Option<super::certificates::CertificateView>,
}

/// A DNS record to publish.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DnsRecord {
    /// `TXT` or `CNAME`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Its name.
    pub name: String,
    /// Its value.
    pub value: String,
}

/// What an admin sees of a claim.
pub fn view(app: &AppState, record: DomainRecord) -> DomainView {
    let records = vec![
        DnsRecord {
            kind: "TXT",
            name: format!("{CHALLENGE_LABEL}.{}", record.domain),
            value: format!("veneer-verify={}", record.token),
        },
        DnsRecord {
            kind: "CNAME",
            name: record.domain.clone(),
            value: tenant_host(app, &record.tenant_id),
        },
    ];
    DomainView {
        routes: record.status.routes(),
        record,
        records,
        certificate: None,
    }
}

fn tenant_host(app: &AppState, tenant: &str) -> String {
    format!("{tenant}.{}", app.config.base_domain.to_ascii_lowercase())
}

/// Claims `domain` (its syntax already checked) for `tenant`, audited as
/// `actor`'s, and queues its first check.
pub async fn add(
    app: &AppState,
    actor: &str,
    tenant: &TenantId,
    domain: &str,
) -> Result<(DomainView, bool)> {
    let token = format!("{:032x}", rand::random::<u128>());
    let platform = app.storage.platform();
    let (record, created) = platform.claim_domain(domain, tenant, &token).await?;
    if created {
        queue_check(app, tenant, &record.domain, None).await?;
        audit(app, tenant, actor, "domain.add", None, Some(&record)).await?;
    }
    Ok((view(app, record), created))
}

/// Removes `tenant`'s claim of `domain`, audited.
pub async fn remove(app: &AppState, actor: &str, tenant: &TenantId, domain: &str) -> Result<()> {
    let platform = app.storage.platform();
    let Some(record) = platform.domain(domain, tenant).await? else {
        return Err(Error::NotFound(format!(
            "tenant `{tenant}` has no domain `{}`",
            domain.chars().take(80).collect::<String>()
        )));
    };
    platform.remove_domain(&record.domain, tenant).await?;
    app.invalidate_hosts();
    audit(app, tenant, actor, "domain.remove", Some(&record), None).await
}

/// A tenant's domains, with their certificates.
pub async fn list(app: &AppState, tenant: &TenantId) -> Result<Vec<DomainView>> {
    let mut certificates = super::certificates::of_tenant(app, tenant).await?;
    Ok(app
        .storage
        .platform()
        .domains(tenant)
        .await?
        .into_iter()
        .map(|r| {
            let certificate = certificates.remove(&r.domain);
            DomainView {
                certificate,
                ..view(app, r)
            }
        })
        .collect())
}

/// Queues a check of `domain` now (after publishing its record, or to retry
/// a failed one).
pub async fn check_now(app: &AppState, tenant: &TenantId, domain: &str) -> Result<DomainView> {
    let record =
        request_check(&app.storage, app.config.domain_recheck_secs, tenant, domain).await?;
    Ok(view(app, record))
}

/// [`check_now`] for callers without the application state (the CLI: a
/// running server's workers do the check): a failed claim goes back to
/// `pending`, and a check is queued.
pub async fn request_check(
    storage: &crate::storage::Storage,
    recheck_secs: u64,
    tenant: &TenantId,
    domain: &str,
) -> Result<DomainRecord> {
    let platform = storage.platform();
    let Some(mut record) = platform.domain(domain, tenant).await? else {
        return Err(Error::NotFound(format!(
            "tenant `{tenant}` has no domain `{}`",
            domain.chars().take(80).collect::<String>()
        )));
    };
    if record.status == DomainStatus::Failed {
        platform
            .record_domain_check(
                &record.domain,
                tenant,
                DomainStatus::Pending,
                "checking again",
                None,
            )
            .await?;
        record.status = DomainStatus::Pending;
    }
    enqueue_dns_check(
        storage,
        recheck_secs,
        tenant,
        DOMAIN_JOB,
        &record.domain,
        None,
    )
    .await?;
    Ok(record)
}

async fn queue_check(
    app: &AppState,
    tenant: &TenantId,
    domain: &str,
    at: Option<i64>,
) -> Result<()> {
    queue_dns_check(app, tenant, DOMAIN_JOB, domain, at).await
}

/// What a check concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// Nothing more to do now (the next check, if any, is queued).
    Done,
    /// Not proven yet, or DNS did not answer: check again after a backoff.
    Again(String),
}

/// Checks `tenant`'s claim of `domain` once (the job handler's use case);
/// `last` is the job's last attempt.
pub async fn check(app: &AppState, tenant: &TenantId, domain: &str, last: bool) -> Result<Checked> {
    let platform = app.storage.platform();
    let Some(record) = platform.domain(domain, tenant).await? else {
        return Ok(Checked::Done); // removed meanwhile
    };
    if record.status == DomainStatus::Failed {
        return Ok(Checked::Done);
    }
    let found = prove(app, &record).await;
    let now = now_ms();
    let recheck =
        i64::try_from(app.config.domain_recheck_secs.saturating_mul(1_000)).unwrap_or(i64::MAX);
    let grace =
        i64::try_from(app.config.domain_grace_secs.saturating_mul(1_000)).unwrap_or(i64::MAX);
    match (record.status, found) {
        (_, Ok(how)) => {
            let result = format!("verified by {how}");
            match platform
                .record_domain_check(
                    &record.domain,
                    tenant,
                    DomainStatus::Verified,
                    &result,
                    None,
                )
                .await
            {
                Ok(()) => {}
                Err(crate::storage::StorageError::Conflict(why)) => {
                    platform
                        .record_domain_check(
                            &record.domain,
                            tenant,
                            DomainStatus::Failed,
                            &why,
                            None,
                        )
                        .await?;
                    return Ok(Checked::Done);
                }
                Err(err) => return Err(err.into()),
            }
            if !record.status.routes() {
                app.invalidate_hosts();
                let after = DomainRecord {
                    status: DomainStatus::Verified,
                    ..record.clone()
                };
                audit(
                    app,
                    tenant,
                    "veneer:domains",
                    "domain.verified",
                    Some(&record),
                    Some(&after),
                )
                .await?;
            }
            queue_check(
                app,
                tenant,
                &record.domain,
                Some(now.saturating_add(recheck)),
            )
            .await?;
            Ok(Checked::Done)
        }
        (status, Err(Missing::Unavailable(why))) => {
            if last && status != DomainStatus::Pending {
                // Keep checking a proven domain on its schedule.
                queue_check(
                    app,
                    tenant,
                    &record.domain,
                    Some(now.saturating_add(recheck)),
                )
                .await?;
                return Ok(Checked::Done);
            }
            if last {
                platform
                    .record_domain_check(&record.domain, tenant, DomainStatus::Failed, &why, None)
                    .await?;
                return Ok(Checked::Done);
            }
            Ok(Checked::Again(why))
        }
        (DomainStatus::Pending, Err(Missing::Absent(why))) => {
            if last {
                let why = format!(
                    "{why}; gave up after {DOMAIN_JOB_ATTEMPTS} checks (check again with POST …/check)"
                );
                platform
                    .record_domain_check(&record.domain, tenant, DomainStatus::Failed, &why, None)
                    .await?;
                return Ok(Checked::Done);
            }
            platform
                .record_domain_check(&record.domain, tenant, DomainStatus::Pending, &why, None)
                .await?;
            Ok(Checked::Again(why))
        }
        (
            DomainStatus::Verified | DomainStatus::Grace | DomainStatus::Disabled,
            Err(Missing::Absent(why)),
        ) => {
            let since = record.missing_since.unwrap_or(now);
            let status =
                if record.status == DomainStatus::Disabled || now.saturating_sub(since) >= grace {
                    DomainStatus::Disabled
                } else {
                    DomainStatus::Grace
                };
            let result = match status {
                DomainStatus::Disabled => format!("{why}: disabled after its grace period"),
                _ => format!("{why}: served until the grace period ends"),
            };
            platform
                .record_domain_check(&record.domain, tenant, status, &result, Some(since))
                .await?;
            if status != record.status {
                let after = DomainRecord {
                    status,
                    missing_since: Some(since),
                    ..record.clone()
                };
                let action = if status == DomainStatus::Disabled {
                    app.invalidate_hosts();
                    "domain.disabled"
                } else {
                    "domain.missing"
                };
                audit(
                    app,
                    tenant,
                    "veneer:domains",
                    action,
                    Some(&record),
                    Some(&after),
                )
                .await?;
            }
            // During grace, look again when it ends (or sooner).
            let next = if status == DomainStatus::Grace {
                recheck.min(grace.saturating_sub(now.saturating_sub(since)).max(1_000))
            } else {
                recheck
            };
            queue_check(app, tenant, &record.domain, Some(now.saturating_add(next))).await?;
            Ok(Checked::Done)
        }
        (DomainStatus::Failed, Err(_)) => Ok(Checked::Done),
    }
}

enum Missing {
    /// DNS answered: no proof.
    Absent(String),
    /// DNS did not answer.
    Unavailable(String),
}

/// Looks for the claim's proof: how it was found, or why not.
async fn prove(
    app: &AppState,
    record: &DomainRecord,
) -> std::result::Result<&'static str, Missing> {
    prove_with(&app.dns, &app.config.base_domain, record).await
}

/// What DNS shows of a claim's proof now, in words (the CLI's diagnosis;
/// nothing is recorded).
pub async fn diagnose(dns: &crate::dns::Dns, base_domain: &str, record: &DomainRecord) -> String {
    match prove_with(dns, base_domain, record).await {
        Ok(how) => format!("proven by its {how} record"),
        Err(Missing::Absent(why)) => why,
        Err(Missing::Unavailable(why)) => format!("DNS did not answer: {why}"),
    }
}

async fn prove_with(
    dns: &crate::dns::Dns,
    base_domain: &str,
    record: &DomainRecord,
) -> std::result::Result<&'static str, Missing> {
    let name = format!("{CHALLENGE_LABEL}.{}", record.domain);
    let want = format!("veneer-verify={}", record.token);
    let txt = dns.txt(&name).await;
    if let Ok(values) = &txt
        && values.iter().any(|v| v.trim() == want)
    {
        return Ok("TXT");
    }
    let host = format!("{}.{}", record.tenant_id, base_domain.to_ascii_lowercase());
    let cname = dns.cname(&record.domain).await;
    if let Ok(target) = &cname
        && *target == host
    {
        return Ok("CNAME");
    }
    match (txt, cname) {
        (Err(DnsError::Unavailable(why)), _) | (_, Err(DnsError::Unavailable(why))) => {
            Err(Missing::Unavailable(why))
        }
        _ => Err(Missing::Absent(format!(
            "no TXT record {name} holding {want}, and no CNAME of {} to {host}",
            record.domain
        ))),
    }
}

async fn audit(
    app: &AppState,
    tenant: &TenantId,
    actor: &str,
    action: &str,
    before: Option<&DomainRecord>,
    after: Option<&DomainRecord>,
) -> Result<()> {
    let text = |r: Option<&DomainRecord>| {
        r.map(|r| json!({ "domain": r.domain, "status": r.status }).to_string())
    };
    let (before, after) = (text(before), text(after));
    app.storage
        .platform()
        .audit(&AuditEntry {
            tenant,
            actor,
            action,
            plugin_sha256: None,
            before: before.as_deref(),
            after: after.as_deref(),
        })
        .await?;
    Ok(())
}
