//! `veneer tenant create|list|export|import`: tenants straight in the
//! database, for a fresh production install (its first tenant, before any
//! platform admin can call the API), an operator's look, and a tenant's backup,
//! restore or move to another instance (`app::archives`). `create` applies the admin API's rules
//! and defaults (`app::admin::new_tenant`) and audits the creation. Exit code
//! 1 when the tenant is refused (the message says why and what to do), 2 when
//! the command could not run (the database unreachable, …).

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use super::database::{Db, connect};
use crate::app;
use crate::secrets::SecretBox;
use crate::storage::TenantRecord;
use crate::tenancy::TenantId;

/// `veneer tenant …`.
#[derive(Debug, Subcommand)]
pub(super) enum TenantCommand {
    /// Create a tenant (the first one of a fresh install, say), with the admin
    /// API's validation and defaults.
    Create(CreateArgs),
    /// Every tenant, with its status (deleted ones with their purge time).
    List(ListArgs),
    /// Write one archive of everything a tenant owns (see docs/operations.md).
    Export(ExportArgs),
    /// Restore a tenant archive into this instance's database.
    Import(ImportArgs),
}

/// The instance's own secrets key (the server's), to open and seal secrets.
#[derive(Debug, Args)]
pub(super) struct InstanceKey {
    /// The current key, `<id>:<base64>`.
    #[arg(long, env = "VENEER_SECRET_KEY", hide_env_values = true)]
    secret_key: Option<String>,
    /// Older keys (comma-separated).
    #[arg(
        long,
        env = "VENEER_SECRET_OLD_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    secret_old_keys: Vec<String>,
    /// Accept the insecure development key (an instance run with --dev).
    #[arg(long)]
    dev: bool,
}

impl InstanceKey {
    fn open(&self) -> anyhow::Result<SecretBox> {
        Ok(SecretBox::from_env_or_dev(
            self.secret_key.as_deref(),
            &self.secret_old_keys,
            self.dev,
        )?)
    }
}

/// A key file holding `<id>:<base64 of 32 bytes>` (`openssl rand -base64 32`).
fn export_key(path: &std::path::Path) -> anyhow::Result<SecretBox> {
    let spec = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the export key file {}", path.display()))?;
    SecretBox::from_env_or_dev(Some(spec.trim()), &[], false)
        .with_context(|| format!("{}: not a key `<id>:<base64 of 32 bytes>`", path.display()))
}

#[derive(Debug, Args)]
pub(super) struct ExportArgs {
    /// The tenant to export.
    id: String,
    /// Where to write the archive (`.tar.gz`); written whole, then renamed.
    #[arg(long)]
    out: std::path::PathBuf,
    /// Seal the tenant's secrets under this key (a file holding
    /// `<id>:<base64>`); without it they are left out.
    #[arg(long)]
    export_key_file: Option<std::path::PathBuf>,
    /// Leave history out (plugin runs, hook records, shadow runs, sent-email
    /// log, usage counters).
    #[arg(long)]
    no_history: bool,
    #[command(flatten)]
    key: InstanceKey,
    /// Who the audit log names.
    #[arg(long, default_value = "veneer-cli")]
    actor: String,
    #[command(flatten)]
    db: Db,
}

#[derive(Debug, Args)]
pub(super) struct ImportArgs {
    /// The archive to restore.
    file: std::path::PathBuf,
    /// Import under this tenant id instead of the archive's.
    #[arg(long = "as")]
    as_id: Option<String>,
    /// Link it to this Clerk organisation instead of the archive's (one
    /// organisation maps to one tenant: needed beside the original).
    #[arg(long)]
    org: Option<String>,
    /// Replace the tenant if it exists (its current rows are deleted first,
    /// all in one transaction).
    #[arg(long)]
    replace: bool,
    /// The key the archive's secrets were sealed under at export.
    #[arg(long)]
    export_key_file: Option<std::path::PathBuf>,
    /// Import a sealed archive without its secrets (reconnect Shopify, SMTP
    /// and sending domains afterwards).
    #[arg(long, conflicts_with = "export_key_file")]
    without_secrets: bool,
    /// Refuse archives larger than this, uncompressed.
    #[arg(long, default_value_t = 2048)]
    max_mib: u64,
    #[command(flatten)]
    key: InstanceKey,
    /// Who the audit log names.
    #[arg(long, default_value = "veneer-cli")]
    actor: String,
    #[command(flatten)]
    db: Db,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(super) struct CreateArgs {
    /// The tenant id: its subdomain (`<id>.<base-domain>`).
    #[arg(long)]
    id: String,
    /// Its display name.
    #[arg(long)]
    name: String,
    /// The Clerk organisation whose tokens act for it (default `org_<id>`).
    #[arg(long)]
    org: Option<String>,
    /// Requests per second (default as the API's).
    #[arg(long)]
    rate_limit_per_sec: Option<u32>,
    /// Request burst (default as the API's).
    #[arg(long)]
    rate_limit_burst: Option<u32>,
    /// Concurrent plugin executions (default as the API's).
    #[arg(long)]
    max_concurrency: Option<u32>,
    /// Who the audit log names.
    #[arg(long, default_value = "veneer-cli")]
    actor: String,
    #[command(flatten)]
    db: Db,
    /// Print the tenant as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(super) struct ListArgs {
    #[command(flatten)]
    db: Db,
    /// One JSON object per tenant instead of a table.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(command: TenantCommand) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match command {
            TenantCommand::Create(args) => create(args).await,
            TenantCommand::List(args) => list(args).await,
            TenantCommand::Export(args) => export(args).await,
            TenantCommand::Import(args) => import(args).await,
        }
    })
}

async fn create(args: CreateArgs) -> anyhow::Result<ExitCode> {
    let id = match TenantId::new(&args.id) {
        Ok(id) => id,
        Err(err) => return refused(&format!("--id: {err}")),
    };
    let spec = app::admin::TenantSpec {
        id,
        name: args.name,
        org_id: args.org,
        rate_limit_per_sec: args.rate_limit_per_sec,
        rate_limit_burst: args.rate_limit_burst,
        max_concurrency: args.max_concurrency,
    };
    let new = match app::admin::new_tenant(spec) {
        Ok(new) => new,
        Err(err) => return refused(&err.to_string()),
    };
    let storage = connect(&args.db).await?;
    let created = app::admin::create_tenant_in(&storage, &args.actor, new).await;
    storage.close().await;
    let record = match created {
        Ok(record) => record,
        Err(
            err @ (app::Error::Conflict(_)
            | app::Error::Invalid(_)
            | app::Error::InvalidName(_)
            | app::Error::InvalidLimit(_)),
        ) => return refused(&err.to_string()),
        Err(err) => return Err(err.into()),
    };
    if args.json {
        outln!("{}", serde_json::to_string(&record)?);
    } else {
        outln!(
            "created tenant {} ({}) for organisation {}",
            record.id,
            record.name,
            record.org_id
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn refused(why: &str) -> anyhow::Result<ExitCode> {
    eprintln!("error: {why}");
    Ok(ExitCode::from(1))
}

async fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let storage = connect(&args.db).await?;
    let tenants = storage.platform().list_tenants().await;
    storage.close().await;
    for tenant in tenants? {
        if args.json {
            outln!("{}", serde_json::to_string(&tenant)?);
        } else {
            outln!("{}", line(&tenant));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn line(tenant: &TenantRecord) -> String {
    let state = match tenant.purge_after {
        Some(at) => format!("deleted (purge after {at} ms)"),
        None => tenant.status.to_string(),
    };
    format!(
        "{:<24} {:<28} {:<28} {state}",
        tenant.id, tenant.org_id, tenant.name
    )
}

async fn export(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let id = match TenantId::new(&args.id) {
        Ok(id) => id,
        Err(err) => return refused(&format!("tenant id: {err}")),
    };
    let secrets = args.key.open()?;
    let key = args
        .export_key_file
        .as_deref()
        .map(export_key)
        .transpose()?;
    let storage = connect(&args.db).await?;
    let options = app::archives::ExportOptions {
        secrets_key: key.as_ref(),
        history: !args.no_history,
    };
    let result = app::archives::export_audited(&storage, &secrets, &id, options, &args.actor).await;
    storage.close().await;
    let export = match result {
        Ok(export) => export,
        Err(err @ (app::Error::NotFound(_) | app::Error::Invalid(_))) => {
            return refused(&err.to_string());
        }
        Err(err) => return Err(err.into()),
    };
    let tmp = args.out.with_extension("partial");
    std::fs::write(&tmp, &export.bytes)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &args.out)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let rows: u64 = export.manifest.files.values().filter_map(|f| f.rows).sum();
    outln!(
        "exported tenant {} to {}: {} rows in {} tables, {} bytes; secrets {}",
        id,
        args.out.display(),
        rows,
        export
            .manifest
            .files
            .keys()
            .filter(|n| n.starts_with("tables/"))
            .count(),
        export.bytes.len(),
        export.manifest.secrets.describe()
    );
    Ok(ExitCode::SUCCESS)
}

async fn import(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let as_id = match args.as_id.as_deref().map(TenantId::new).transpose() {
        Ok(id) => id,
        Err(err) => return refused(&format!("--as: {err}")),
    };
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let secrets = args.key.open()?;
    let key = args
        .export_key_file
        .as_deref()
        .map(export_key)
        .transpose()?;
    let storage = connect(&args.db).await?;
    let options = app::archives::ImportOptions {
        as_id,
        org: args.org,
        replace: args.replace,
        secrets_key: key.as_ref(),
        without_secrets: args.without_secrets,
        actor: &args.actor,
        limits: app::archives::ImportLimits {
            max_bytes: args.max_mib.saturating_mul(1 << 20),
            ..app::archives::ImportLimits::default()
        },
    };
    let result = app::archives::import(&storage, &secrets, &bytes, options).await;
    if matches!(&result, Ok(report) if report.imported) {
        // A server on this database drops what it cached of the tenant.
        if let Ok(report) = &result
            && let Ok(id) = TenantId::new(&report.tenant)
        {
            crate::invalidation::publish_tenant(&storage, &id).await;
        }
    }
    storage.close().await;
    let report = match result {
        Ok(report) => report,
        Err(err @ (app::Error::Conflict(_) | app::Error::Invalid(_) | app::Error::NotFound(_))) => {
            return refused(&err.to_string());
        }
        Err(err) => return Err(err.into()),
    };
    if args.json {
        outln!("{}", serde_json::to_string(&report)?);
    } else if !report.imported {
        outln!(
            "tenant {} already holds this archive (imported before): nothing changed",
            report.tenant
        );
    } else {
        let rows: u64 = report.rows.values().sum();
        outln!(
            "imported tenant {} (archive of {}): {} rows in {} tables{}",
            report.tenant,
            report.from_tenant,
            rows,
            report.rows.len(),
            if report.replaced {
                ", replacing the tenant that was there"
            } else {
                ""
            }
        );
        if !report.secrets_left_out.is_empty() {
            outln!(
                "left out (set them again): {}",
                report.secrets_left_out.join(", ")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
