//! The schema, embedded in the binary: one migration list per backend, built from
//! the files in `host/storage/migrations/` at compile time so a moved binary still knows
//! its schema. Versions and descriptions must match the file names; an applied
//! migration must never change (sqlx checks its checksum on every start).
//!
//! Callers apply them with `Migrator::run_direct` on a connection: `run` takes
//! an `Acquire` whose lifetime bound makes the enclosing future not `Send`
//! (the workaround sqlx itself documents on `run_direct`), and `Storage::connect`
//! must be spawnable.

use std::borrow::Cow;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

/// (version, description, SQL) of each migration, oldest first.
type Source = (i64, &'static str, &'static str);

const SQLITE: &[Source] = &[
    (
        1,
        "init",
        include_str!("../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "jobs",
        include_str!("../migrations/sqlite/0002_jobs.sql"),
    ),
    (
        3,
        "shopify",
        include_str!("../migrations/sqlite/0003_shopify.sql"),
    ),
    (
        4,
        "email",
        include_str!("../migrations/sqlite/0004_email.sql"),
    ),
    (
        5,
        "rate windows",
        include_str!("../migrations/sqlite/0005_rate_windows.sql"),
    ),
    (
        6,
        "shopify binding",
        include_str!("../migrations/sqlite/0006_shopify_binding.sql"),
    ),
    (
        7,
        "kv usage",
        include_str!("../migrations/sqlite/0007_kv_usage.sql"),
    ),
    (
        8,
        "installations",
        include_str!("../migrations/sqlite/0008_installations.sql"),
    ),
    (
        9,
        "catalogue",
        include_str!("../migrations/sqlite/0009_catalogue.sql"),
    ),
    (
        10,
        "output policies",
        include_str!("../migrations/sqlite/0010_output_policies.sql"),
    ),
    (
        11,
        "rollout",
        include_str!("../migrations/sqlite/0011_rollout.sql"),
    ),
    (
        12,
        "records",
        include_str!("../migrations/sqlite/0012_records.sql"),
    ),
    (
        13,
        "domain verification",
        include_str!("../migrations/sqlite/0013_domain_verification.sql"),
    ),
    (
        14,
        "sending domains",
        include_str!("../migrations/sqlite/0014_sending_domains.sql"),
    ),
    (15, "tls", include_str!("../migrations/sqlite/0015_tls.sql")),
    (
        16,
        "tenant lifecycle",
        include_str!("../migrations/sqlite/0016_tenant_lifecycle.sql"),
    ),
    (
        17,
        "shopify oauth",
        include_str!("../migrations/sqlite/0017_shopify_oauth.sql"),
    ),
    (
        18,
        "clerk",
        include_str!("../migrations/sqlite/0018_clerk.sql"),
    ),
    (
        19,
        "shopify privacy",
        include_str!("../migrations/sqlite/0019_shopify_privacy.sql"),
    ),
    (
        20,
        "plugin settings schema",
        include_str!("../migrations/sqlite/0020_plugin_settings_schema.sql"),
    ),
];

const POSTGRES: &[Source] = &[
    (
        1,
        "init",
        include_str!("../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "row level security",
        include_str!("../migrations/postgres/0002_row_level_security.sql"),
    ),
    (
        3,
        "jobs",
        include_str!("../migrations/postgres/0003_jobs.sql"),
    ),
    (
        4,
        "shopify",
        include_str!("../migrations/postgres/0004_shopify.sql"),
    ),
    (
        5,
        "email",
        include_str!("../migrations/postgres/0005_email.sql"),
    ),
    (
        6,
        "rate windows",
        include_str!("../migrations/postgres/0006_rate_windows.sql"),
    ),
    (
        7,
        "shopify binding",
        include_str!("../migrations/postgres/0007_shopify_binding.sql"),
    ),
    (
        8,
        "kv usage",
        include_str!("../migrations/postgres/0008_kv_usage.sql"),
    ),
    (
        9,
        "installations",
        include_str!("../migrations/postgres/0009_installations.sql"),
    ),
    (
        10,
        "catalogue",
        include_str!("../migrations/postgres/0010_catalogue.sql"),
    ),
    (
        11,
        "output policies",
        include_str!("../migrations/postgres/0011_output_policies.sql"),
    ),
    (
        12,
        "rollout",
        include_str!("../migrations/postgres/0012_rollout.sql"),
    ),
    (
        13,
        "records",
        include_str!("../migrations/postgres/0013_records.sql"),
    ),
    (
        14,
        "domain verification",
        include_str!("../migrations/postgres/0014_domain_verification.sql"),
    ),
    (
        15,
        "sending domains",
        include_str!("../migrations/postgres/0015_sending_domains.sql"),
    ),
    (
        16,
        "tls",
        include_str!("../migrations/postgres/0016_tls.sql"),
    ),
    (
        17,
        "tenant lifecycle",
        include_str!("../migrations/postgres/0017_tenant_lifecycle.sql"),
    ),
    (
        18,
        "shopify oauth",
        include_str!("../migrations/postgres/0018_shopify_oauth.sql"),
    ),
    (
        19,
        "clerk",
        include_str!("../migrations/postgres/0019_clerk.sql"),
    ),
    (
        20,
        "shopify privacy",
        include_str!("../migrations/postgres/0020_shopify_privacy.sql"),
    ),
    (
        21,
        "plugin settings schema",
        include_str!("../migrations/postgres/0021_plugin_settings_schema.sql"),
    ),
];

fn migrator(sources: &[Source]) -> Migrator {
    Migrator::with_migrations(
        sources
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    Cow::Borrowed(description),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// The SQLite schema.
pub(super) fn sqlite() -> Migrator {
    migrator(SQLITE)
}

/// The PostgreSQL schema, row-level security included.
pub(super) fn postgres() -> Migrator {
    migrator(POSTGRES)
}

/// The SQLite schema up to `version` only: tests build a database of an
/// earlier release and then migrate it.
#[cfg(test)]
pub(crate) fn sqlite_until(version: i64) -> Migrator {
    let sources: Vec<Source> = SQLITE.iter().copied().filter(|m| m.0 <= version).collect();
    migrator(&sources)
}

/// The PostgreSQL schema up to `version` only (see [`sqlite_until`]).
#[cfg(test)]
pub(crate) fn postgres_until(version: i64) -> Migrator {
    let sources: Vec<Source> = POSTGRES
        .iter()
        .copied()
        .filter(|m| m.0 <= version)
        .collect();
    migrator(&sources)
}
