//! `veneer domains list|check`: the operator's view of custom domains,
//! straight from the database. `list` shows every tenant's claims (or one
//! tenant's) with status, last check and its result, and with `--tls` the
//! certificate's expiry or its last failed order; `check DOMAIN` shows
//! what DNS answers now from this machine, queues a check for the running
//! server's workers (the same use case as `POST …/domains/{domain}/check`)
//! and waits for its result. Exit code 1 when a listed or checked domain is
//! not served (pending, failed or disabled).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::json;

use super::database::{Db, connect};
use crate::app;
use crate::storage::{DomainRecord, Storage};
use crate::tenancy::TenantId;

/// `veneer domains …`.
#[derive(Debug, Subcommand)]
pub(super) enum DomainsCommand {
    /// Every tenant's custom domains (or one tenant's), with their status and
    /// last check.
    List(ListArgs),
    /// What DNS shows of a domain's proof now; queues a check by the running
    /// server and waits for its result.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub(super) struct ListArgs {
    #[command(flatten)]
    db: Db,
    /// Only this tenant's.
    #[arg(long)]
    tenant: Option<String>,
    /// One JSON object per domain instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(super) struct CheckArgs {
    /// The domain.
    domain: String,
    #[command(flatten)]
    db: Db,
    /// The tenant whose claim to check (when several tenants claim it).
    #[arg(long)]
    tenant: Option<String>,
    /// The DNS server to ask (`IP:PORT`; default: the system's), as
    /// `veneer serve --dns-server`.
    #[arg(long, env = "VENEER_DNS_SERVER")]
    dns_server: Option<SocketAddr>,
    /// The base domain (the CNAME target is `<tenant>.<base-domain>`).
    #[arg(long, env = "VENEER_BASE_DOMAIN", default_value = "localhost")]
    base_domain: String,
    /// Seconds to wait for the server's check (0: only queue it).
    #[arg(long, default_value_t = 30)]
    wait_secs: u64,
}

pub(super) fn run(command: DomainsCommand) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match command {
            DomainsCommand::List(args) => list(args).await,
            DomainsCommand::Check(args) => check(args).await,
        }
    })
}

/// Every claim of the tenants asked for, by tenant then domain.
async fn claims(storage: &Storage, tenant: Option<&str>) -> anyhow::Result<Vec<DomainRecord>> {
    let platform = storage.platform();
    let tenants = match tenant {
        Some(id) => vec![TenantId::new(id).map_err(|err| anyhow::anyhow!("--tenant: {err}"))?],
        None => platform
            .list_tenants()
            .await?
            .into_iter()
            .map(|t| t.id)
            .collect(),
    };
    let mut out = Vec::new();
    for tenant in tenants {
        out.extend(platform.domains(&tenant).await?);
    }
    Ok(out)
}

fn time(ms: Option<i64>) -> String {
    ms.map_or_else(|| "-".into(), |ms| format!("{}s ago", age_secs(ms)))
}

fn age_secs(ms: i64) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    now.saturating_sub(ms) / 1_000
}

/// A certificate in a few words: expiry in days, or why it is not issued.
fn describe(cert: &crate::storage::CertificateRecord) -> String {
    let expiry = cert
        .not_after
        .map(|ms| format!("expires in {} days", -age_secs(ms) / 86_400));
    match (&cert.last_error, expiry) {
        (Some(error), Some(expiry)) => format!("{expiry}; last order failed: {error}"),
        (Some(error), None) => format!("not issued; last order failed: {error}"),
        (None, Some(expiry)) => expiry,
        (None, None) => "ordering".into(),
    }
}

async fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let storage = connect(&args.db).await?;
    let claims = claims(&storage, args.tenant.as_deref()).await?;
    let mut unserved = 0;
    if !args.json {
        outln!("DOMAIN\tTENANT\tSTATUS\tSERVED\tLAST CHECK\tRESULT\tCERTIFICATE");
    }
    for claim in &claims {
        if !claim.status.routes() {
            unserved += 1;
        }
        // With `--tls`: the certificate's state and expiry.
        let certificate = storage.platform().certificate(&claim.domain).await?;
        if args.json {
            outln!(
                "{}",
                json!({
                    "domain": claim.domain,
                    "tenant": claim.tenant_id,
                    "status": claim.status,
                    "served": claim.status.routes(),
                    "verified_at": claim.verified_at,
                    "last_checked_at": claim.last_checked_at,
                    "last_result": claim.last_result,
                    "missing_since": claim.missing_since,
                    "certificate": certificate,
                })
            );
        } else {
            outln!(
                "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                claim.domain,
                claim.tenant_id,
                claim.status.as_str(),
                if claim.status.routes() { "yes" } else { "no" },
                time(claim.last_checked_at),
                claim.last_result.as_deref().unwrap_or("-"),
                certificate
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), describe)
            );
        }
    }
    if !args.json {
        outln!("{} domains, {unserved} not served", claims.len());
    }
    Ok(if unserved == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let storage = connect(&args.db).await?;
    let domain = args
        .domain
        .trim()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let found: Vec<DomainRecord> = claims(&storage, args.tenant.as_deref())
        .await?
        .into_iter()
        .filter(|c| c.domain == domain)
        .collect();
    let claim = match found.as_slice() {
        [] => anyhow::bail!("no tenant claims `{domain}` (add it with POST /v1/domains)"),
        [one] => one.clone(),
        several => anyhow::bail!(
            "{} tenants claim `{domain}` ({}): give --tenant",
            several.len(),
            several
                .iter()
                .map(|c| c.tenant_id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let tenant = TenantId::new(&claim.tenant_id)?;
    outln!(
        "{domain} (tenant {tenant}): {}, last checked {}: {}",
        claim.status.as_str(),
        time(claim.last_checked_at),
        claim.last_result.as_deref().unwrap_or("-")
    );
    let dns = crate::dns::Dns::new(args.dns_server)?;
    outln!(
        "DNS now: {}",
        app::domains::diagnose(&dns, &args.base_domain, &claim).await
    );
    let before = claim.last_checked_at;
    // (The recheck period only spaces out scheduled checks; this one is now.)
    app::domains::request_check(&storage, 3_600, &tenant, &domain)
        .await
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    if args.wait_secs == 0 {
        outln!("check queued");
        return Ok(ExitCode::SUCCESS);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.wait_secs);
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let Some(now) = storage.platform().domain(&domain, &tenant).await? else {
            anyhow::bail!("the claim was removed meanwhile");
        };
        if now.last_checked_at != before && now.last_result.as_deref() != Some("checking again") {
            outln!(
                "checked: {}: {}",
                now.status.as_str(),
                now.last_result.as_deref().unwrap_or("-")
            );
            return Ok(if now.status.routes() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
    }
    outln!(
        "check queued; no server picked it up within {}s (is `veneer serve` running on this database?)",
        args.wait_secs
    );
    Ok(ExitCode::from(1))
}
