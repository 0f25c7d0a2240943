//! `veneer db copy --from URL --to URL`: a whole instance moved to another
//! database (the embedded SQLite default to PostgreSQL, say), then verified:
//! every table's rows counted on both sides (`storage::copy_instance`), and
//! every tenant's effective configuration resolved on both and compared
//! (`app::instance_copy`), each side through a state built as a server's would
//! be. Exit code 0 when the copy is made and verified, 1 when it is refused or
//! does not verify (the message says what to do), 2 when it could not run.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::app::instance_copy::{TenantCheck, Verification};
use crate::state::{AppState, redact};
use crate::storage::{CopyReport, StorageError, StorageOptions, copy_instance};

/// `veneer db …`.
#[derive(Debug, Subcommand)]
pub(super) enum DbCommand {
    /// Copy a whole instance into a new, empty database and verify the copy
    /// (see docs/operations.md, "Moving an instance").
    Copy(CopyArgs),
}

#[derive(Debug, Args)]
pub(super) struct CopyArgs {
    /// The instance's database, only read (stop its servers first: what they
    /// write after the copy's snapshot is not copied).
    #[arg(long)]
    from: String,
    /// The database to copy into: new and empty (it is migrated first).
    #[arg(long)]
    to: String,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(command: DbCommand) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match command {
            DbCommand::Copy(args) => copy(args).await,
        }
    })
}

async fn copy(args: CopyArgs) -> anyhow::Result<ExitCode> {
    let options = StorageOptions {
        max_connections: 2,
        acquire_timeout: std::time::Duration::from_secs(10),
        ..StorageOptions::default()
    };
    let report = match copy_instance(&args.from, &args.to, &options).await {
        Ok(report) => report,
        Err(err @ (StorageError::Invalid(_) | StorageError::Conflict(_))) => {
            eprintln!("error: {err}");
            return Ok(ExitCode::from(1));
        }
        Err(err) => return Err(err.into()),
    };
    let source = state_on(&args.from).await?;
    let target = state_on(&args.to).await?;
    let verified = crate::app::instance_copy::verify(&source, &target).await;
    source.storage.close().await;
    target.storage.close().await;
    let verified = verified.map_err(|err| anyhow::anyhow!("verifying the copy: {err}"))?;
    let ok = report.counts_match() && verified.all_same();
    if args.json {
        outln!(
            "{}",
            serde_json::json!({ "copy": report, "tenants": verified.tenants, "verified": ok })
        );
    } else {
        print(&args, &report, &verified)?;
    }
    if ok {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "error: the copy does not match its source: do not switch to it; drop and create the \
         target again, stop every server of the source, and copy again"
    );
    Ok(ExitCode::from(1))
}

/// A state on `url` as `veneer serve` would build it (its `VENEER_*`
/// settings; without a secrets key the development one: nothing secret is
/// opened), with no artifact directory: plugins compile in memory and the
/// check writes no file.
async fn state_on(url: &str) -> anyhow::Result<AppState> {
    let mut config = super::serve_config_on(url)?;
    config.artifact_dir = std::path::PathBuf::new();
    AppState::build(config).await
}

fn print(args: &CopyArgs, report: &CopyReport, verified: &Verification) -> anyhow::Result<()> {
    outln!(
        "copied {} ({}) into {} ({}), schema at {}: {} rows in {} tables",
        redact(&args.from),
        report.source,
        redact(&args.to),
        report.target,
        report.schema,
        report.rows(),
        report.tables.len()
    );
    for table in &report.tables {
        let mark = if table.source == table.target {
            ""
        } else {
            "  DIFFERS"
        };
        outln!(
            "  {:<24} {:>10} {:>10}{mark}",
            table.table,
            table.source,
            table.target
        );
    }
    outln!("effective configuration, source against copy:");
    for (tenant, check) in &verified.tenants {
        let line = match check {
            TenantCheck::Same => "same".to_owned(),
            TenantCheck::Differs { what } => format!("DIFFERS: {}", what.join(", ")),
        };
        outln!("  {tenant:<24} {line}");
    }
    outln!(
        "{} tenants: {} the same, {} different",
        verified.tenants.len(),
        verified.count(|c| *c == TenantCheck::Same),
        verified.count(|c| matches!(c, TenantCheck::Differs { .. }))
    );
    Ok(())
}
