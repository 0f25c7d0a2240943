//! `veneer tenant create|list`: tenants straight in the database, for a fresh
//! production install (its first tenant, before any platform admin can call
//! the API) and for an operator's look. `create` applies the admin API's rules
//! and defaults (`app::admin::new_tenant`) and audits the creation. Exit code
//! 1 when the tenant is refused (the message says why and what to do), 2 when
//! the command could not run (the database unreachable, …).

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use crate::app;
use crate::storage::{Storage, StorageOptions, TenantRecord};
use crate::tenancy::TenantId;

/// `veneer tenant …`.
#[derive(Debug, Subcommand)]
pub(super) enum TenantCommand {
    /// Create a tenant (the first one of a fresh install, say), with the admin
    /// API's validation and defaults.
    Create(CreateArgs),
    /// Every tenant, with its status (deleted ones with their purge time).
    List(ListArgs),
}

#[derive(Debug, Args)]
pub(super) struct Db {
    /// Database URL (migrated first if needed).
    #[arg(
        long,
        env = "VENEER_DATABASE_URL",
        default_value = "sqlite://veneer.db"
    )]
    database_url: String,
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
        }
    })
}

async fn connect(db: &Db) -> anyhow::Result<Storage> {
    Storage::connect(&db.database_url, &StorageOptions::default())
        .await
        .with_context(|| "cannot open the database (give --database-url or VENEER_DATABASE_URL)")
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
