//! Scheduled tenant backups: once per `--backup-every-secs`, every tenant's
//! archive ([`super::archives`]) written to `<--backup-dir>/<tenant>/`, the
//! newest `--backup-keep` kept. Each backup is a job (`tenant.backup`) in the
//! tenant's queue, so it runs under the queue's bounds (one node, per-tenant
//! concurrency, a time budget, retries with backoff) and several nodes
//! scheduling the same period queue it once (the job's dedupe key names the
//! period). The directory is the operator's: a local path, or a mounted
//! network or object store.

use std::path::{Path, PathBuf};

use super::{Error, Result};
use crate::secrets::SecretBox;
use crate::state::AppState;
use crate::tenancy::TenantId;

/// The job kind of one tenant's backup.
pub const BACKUP_JOB: &str = "tenant.backup";

/// Attempts of one backup before it is a dead letter.
const BACKUP_ATTEMPTS: u32 = 3;

/// The key backups seal secrets under, if one is configured. An error names
/// the setting to fix.
pub fn export_key(app: &AppState) -> Result<Option<SecretBox>> {
    let Some(path) = &app.config.backups.backup_export_key_file else {
        return Ok(None);
    };
    let spec = std::fs::read_to_string(path).map_err(|err| {
        Error::Invalid(format!(
            "--backup-export-key-file {}: cannot read it ({err})",
            path.display()
        ))
    })?;
    SecretBox::from_env_or_dev(Some(spec.trim()), &[], false)
        .map(Some)
        .map_err(|err| {
            Error::Invalid(format!(
                "--backup-export-key-file {}: not a key `<id>:<base64 of 32 bytes>` ({err})",
                path.display()
            ))
        })
}

/// Queues this period's backup of every tenant not deleted (a tenant whose
/// backup of this period is queued or done already is skipped); how many
/// tenants there are.
pub async fn schedule(app: &AppState) -> Result<usize> {
    let every_ms = i64::try_from(app.config.backups.backup_every_secs.saturating_mul(1_000))
        .unwrap_or(i64::MAX)
        .max(1);
    let period = super::jobs::now_ms() / every_ms;
    let dedupe = format!("{BACKUP_JOB}:{period}");
    let tenants = app.storage.platform().list_tenants().await?;
    let mut queued = 0;
    for tenant in tenants.iter().filter(|t| !t.is_deleted()) {
        app.storage
            .tenant(&tenant.id)
            .enqueue_job(&crate::storage::NewJob {
                kind: BACKUP_JOB,
                payload: "{}",
                max_attempts: BACKUP_ATTEMPTS,
                run_at: None,
                dedupe_key: Some(&dedupe),
            })
            .await?;
        queued += 1;
    }
    Ok(queued)
}

/// Writes one archive of `tenant` to its backup directory and removes the
/// oldest past `--backup-keep`; the archive's path.
pub async fn back_up(app: &AppState, tenant: &TenantId) -> Result<PathBuf> {
    let Some(root) = app.config.backups.backup_dir.clone() else {
        return Err(Error::Invalid(
            "backups are off: start with --backup-dir".into(),
        ));
    };
    let key = export_key(app)?;
    let options = super::archives::ExportOptions {
        secrets_key: key.as_ref(),
        history: true,
    };
    let export = super::archives::export_audited(
        &app.storage,
        &app.secrets,
        tenant,
        options,
        "veneer-backup",
    )
    .await?;
    let dir = root.join(tenant.as_str());
    // Fixed-width milliseconds: names sort as times do.
    let path = dir.join(format!(
        "{tenant}-{:013}.tar.gz",
        export.manifest.exported_at
    ));
    let keep = app.config.backups.backup_keep as usize;
    let written = path.clone();
    tokio::task::spawn_blocking(move || write_and_prune(&dir, &written, &export.bytes, keep))
        .await
        .map_err(|err| Error::Invalid(format!("the backup writer stopped: {err}")))?
        .map_err(|err| {
            Error::Invalid(format!("cannot write the backup {}: {err}", path.display()))
        })?;
    // Purged while this backup ran: the purge removed the directory before
    // the archive landed in it; nothing of the tenant may stay.
    if app.storage.platform().tenant(tenant).await?.is_none() {
        remove_backups(app, tenant);
        return Err(Error::NotFound(format!(
            "tenant `{tenant}` was purged during its backup; the archive was removed"
        )));
    }
    Ok(path)
}

fn write_and_prune(dir: &Path, path: &Path, bytes: &[u8], keep: usize) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let partial = path.with_extension("partial");
    std::fs::write(&partial, bytes)?;
    std::fs::rename(&partial, path)?;
    let mut archives: Vec<PathBuf> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .collect();
    archives.sort();
    let excess = archives.len().saturating_sub(keep);
    for old in &archives[..excess] {
        std::fs::remove_file(old)?;
    }
    Ok(())
}

/// Removes a purged tenant's backups (its whole directory); how many files
/// went.
pub fn remove_backups(app: &AppState, tenant: &TenantId) -> usize {
    let Some(root) = &app.config.backups.backup_dir else {
        return 0;
    };
    let dir = root.join(tenant.as_str());
    let count = std::fs::read_dir(&dir).map_or(0, |d| d.flatten().count());
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => count,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => 0,
        Err(err) => {
            tracing::warn!(%tenant, dir = %dir.display(), error = %err, "could not remove a purged tenant's backups");
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::write_and_prune;

    #[test]
    fn writing_keeps_the_newest_archives_and_leaves_other_files() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("notes.txt"), "mine").expect("write");
        for at in [3, 1, 2, 4] {
            let path = dir.path().join(format!("t-{at:013}.tar.gz"));
            write_and_prune(dir.path(), &path, b"archive", 2).expect("written");
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "notes.txt",
                "t-0000000000003.tar.gz",
                "t-0000000000004.tar.gz"
            ]
        );
    }
}
