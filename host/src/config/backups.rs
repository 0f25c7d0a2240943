//! The tenant archives of `veneer serve`: scheduled backups (`--backup-dir`
//! and what goes with it) and the import route's bound, a group of
//! [`super::ServeConfig`]. Owns nothing else: the
//! backups are `app::backups`'.

use std::path::PathBuf;

use clap::Args;

/// Scheduled per-tenant backup settings (off unless `--backup-dir` is set).
#[derive(Debug, Clone, Args)]
pub struct BackupConfig {
    /// Write a tenant archive of every tenant to `<dir>/<tenant>/` once per
    /// `--backup-every-secs` (docs/operations.md, "Tenant archives"). Off
    /// when unset.
    #[arg(long, env = "VENEER_BACKUP_DIR")]
    pub backup_dir: Option<PathBuf>,

    /// How often each tenant is backed up, in seconds.
    #[arg(long, env = "VENEER_BACKUP_EVERY_SECS", default_value_t = 86_400,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub backup_every_secs: u64,

    /// Archives kept per tenant (the oldest go).
    #[arg(long, env = "VENEER_BACKUP_KEEP", default_value_t = 7,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub backup_keep: u32,

    /// Seal the tenants' secrets in the backups under the key in this file
    /// (`<id>:<base64 of 32 bytes>`); without it, backups leave them out.
    #[arg(long, env = "VENEER_BACKUP_EXPORT_KEY_FILE")]
    pub backup_export_key_file: Option<PathBuf>,

    /// The largest archive `POST /v1/admin/tenants/import` takes, in MiB
    /// (larger ones: `veneer tenant import`). One import runs at a time.
    #[arg(long, env = "VENEER_MAX_IMPORT_MIB", default_value_t = 256)]
    pub max_import_mib: u64,
}

impl Default for BackupConfig {
    fn default() -> Self {
        Self {
            backup_dir: None,
            backup_every_secs: 86_400,
            backup_keep: 7,
            backup_export_key_file: None,
            max_import_mib: 256,
        }
    }
}
