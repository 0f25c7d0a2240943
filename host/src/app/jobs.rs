//! The kinds of the background jobs the use cases queue (with their attempt
//! budgets): the HTTP handlers write them, the job handlers in
//! [`crate::workers`] are registered under them. Names only: the handlers
//! themselves live with the worker, never here.

/// The job kind that sends one queued email.
pub const SEND_JOB: &str = "email.send";
/// Attempts of a send before it is given up.
pub const SEND_JOB_ATTEMPTS: u32 = 10;
/// The job kind that processes one Shopify webhook delivery.
pub const WEBHOOK_JOB: &str = "shopify.webhook";
/// Attempts of a webhook job before it is given up.
pub const WEBHOOK_JOB_ATTEMPTS: u32 = 8;
/// The job kind that checks one custom domain's DNS proof.
pub const DOMAIN_JOB: &str = "domain.check";
/// Attempts of a pending domain's check before it is marked failed: with the
/// backoff doubling from `--job-backoff-ms` up to 5 minutes, about 2.5 hours
/// by default.
pub const DOMAIN_JOB_ATTEMPTS: u32 = 40;
/// The job kind that checks one sending domain's DKIM record (and reads its
/// SPF and DMARC records).
pub const SENDING_DOMAIN_JOB: &str = "email.domain_check";
/// Attempts of a pending sending domain's check before it is marked failed
/// (the same schedule as [`DOMAIN_JOB_ATTEMPTS`]).
pub const SENDING_DOMAIN_JOB_ATTEMPTS: u32 = DOMAIN_JOB_ATTEMPTS;

/// Queues a DNS check of `domain` for `tenant` (`kind` is [`DOMAIN_JOB`] or
/// [`SENDING_DOMAIN_JOB`]) at `at` (Unix milliseconds; now when `None`).
pub(super) async fn queue_dns_check(
    app: &crate::state::AppState,
    tenant: &crate::tenancy::TenantId,
    kind: &'static str,
    domain: &str,
    at: Option<i64>,
) -> super::Result<()> {
    enqueue_dns_check(
        &app.storage,
        app.config.domain_recheck_secs,
        tenant,
        kind,
        domain,
        at,
    )
    .await
}

/// [`queue_dns_check`] with the storage and the recheck period given (for
/// callers without the application state: the CLI).
pub(super) async fn enqueue_dns_check(
    storage: &crate::storage::Storage,
    recheck_secs: u64,
    tenant: &crate::tenancy::TenantId,
    kind: &'static str,
    domain: &str,
    at: Option<i64>,
) -> super::Result<()> {
    let payload = serde_json::json!({ "domain": domain }).to_string();
    // A check asked for now always runs; the next scheduled check is one per
    // recheck period: checks that ran at once (a tenant asking again and
    // again, two nodes) schedule one next check, not a chain each.
    let dedupe = match at {
        None => format!(
            "{kind}:{domain}:now:{}:{:08x}",
            now_ms(),
            rand::random::<u32>()
        ),
        Some(at) => {
            let period = i64::try_from(recheck_secs.saturating_mul(1_000))
                .unwrap_or(i64::MAX)
                .max(1_000);
            format!("{kind}:{domain}:later:{}", at / period)
        }
    };
    storage
        .tenant(tenant)
        .enqueue_job(&crate::storage::NewJob {
            kind,
            payload: &payload,
            max_attempts: DOMAIN_JOB_ATTEMPTS,
            run_at: at,
            dedupe_key: Some(&dedupe),
        })
        .await?;
    Ok(())
}

/// Unix milliseconds now.
pub(super) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The associated data a job payload of `tenant` is sealed with: a sealed
/// part moved to another tenant, kind or item does not open.
pub fn payload_aad(tenant: &crate::tenancy::TenantId, kind: &str, id: &str) -> String {
    format!("job:{tenant}:{kind}:{id}")
}

/// A job payload whose contents are encrypted at rest: `clear` (routing
/// fields an operator may see in the jobs API, e.g. a topic) with `id` and the
/// whole of `full` sealed under the tenant-bound key. Webhook bodies and
/// rendered emails wait in the jobs table like this.
pub fn seal_payload(
    app: &crate::state::AppState,
    tenant: &crate::tenancy::TenantId,
    kind: &str,
    id: &str,
    clear: serde_json::Value,
    full: &serde_json::Value,
) -> String {
    let sealed = app
        .secrets
        .encrypt(full.to_string().as_bytes(), &payload_aad(tenant, kind, id));
    let mut out = match clear {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    out.insert("id".into(), id.into());
    out.insert("sealed".into(), sealed.into());
    serde_json::Value::Object(out).to_string()
}

/// The payload a job handler works on: a sealed payload opened (its `id`
/// and AAD checked), anything else as stored (jobs queued before sealing).
pub fn open_payload(
    app: &crate::state::AppState,
    tenant: &crate::tenancy::TenantId,
    kind: &str,
    stored: &serde_json::Value,
) -> std::result::Result<serde_json::Value, String> {
    let Some(sealed) = stored.get("sealed").and_then(serde_json::Value::as_str) else {
        return Ok(stored.clone());
    };
    let id = stored
        .get("id")
        .and_then(serde_json::Value::as_str)
        .ok_or("a sealed job payload without its id")?;
    let plain = app
        .secrets
        .decrypt(sealed, &payload_aad(tenant, kind, id))
        .map_err(|err| format!("cannot open the job's sealed payload: {err}"))?;
    serde_json::from_slice(&plain).map_err(|err| format!("the sealed payload is not JSON: {err}"))
}

/// Queues `tenant`'s dead job `id` again (attempts reset), audited as
/// `actor`'s (`job.retry`). Only a dead job is retried: another is the
/// storage's not-found or conflict.
pub async fn retry(
    app: &crate::state::AppState,
    tenant: &crate::tenancy::TenantId,
    actor: &str,
    id: i64,
) -> super::Result<crate::storage::JobRecord> {
    let db = app.storage.tenant(tenant);
    let job = db.retry_job(id).await?;
    db.audit(
        actor,
        "job.retry",
        None,
        None,
        Some(&serde_json::json!({ "job": id }).to_string()),
    )
    .await?;
    Ok(job)
}
