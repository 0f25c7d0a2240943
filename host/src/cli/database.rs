//! The database the CLI's commands work on: one `--database-url` argument
//! group and one way to open it, for `veneer tenant …` and `veneer domains …`.

use anyhow::Context as _;
use clap::Args;

use crate::storage::{Storage, StorageOptions};

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

/// Opens (and migrates) the database `db` names.
pub(super) async fn connect(db: &Db) -> anyhow::Result<Storage> {
    Storage::connect(&db.database_url, &StorageOptions::default())
        .await
        .with_context(|| "cannot open the database (give --database-url or VENEER_DATABASE_URL)")
}
