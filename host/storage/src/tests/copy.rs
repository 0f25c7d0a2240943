//! Instance copies (`copy_instance`): a seeded SQLite instance (two tenants,
//! a row in every tenant table) into a fresh PostgreSQL database and back,
//! compared table by table and row by row from the schema; ids generated after
//! the copy continue past every id the source gave; a target holding rows, a
//! source of an older schema and a copy onto itself are refused with nothing
//! written.

use std::collections::BTreeMap;

use sqlx::{AnyConnection, Connection};

use super::lifecycle::{OwnedDb, seed};
use crate::testing::harness::{Ctx, job, options, tid};
use crate::testing::{Db, TestDb};
use crate::{AuditEntry, Backend, Cell, NewRelease, Storage, StorageError, copy_instance, tables};

/// Every row of every table, each as (column, value) in column-name order
/// (the backends order some columns apart), booleans as 0/1 (SQLite's).
async fn rows_of(url: &str) -> BTreeMap<String, Vec<Vec<(String, Cell)>>> {
    let backend = crate::backend_of(url).unwrap();
    let mut conn = AnyConnection::connect(url).await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    if backend == Backend::Postgres {
        sqlx::query("SELECT set_config('app.platform', 'on', true)")
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    let mut out = BTreeMap::new();
    for table in tables::schema(&mut tx, backend).await.unwrap() {
        let rows = tables::read_rows(&mut tx, &table, None, None)
            .await
            .unwrap();
        let rows = rows
            .into_iter()
            .map(|row| {
                let mut named: Vec<(String, Cell)> = table
                    .columns
                    .iter()
                    .map(|(c, _)| c.clone())
                    .zip(row.into_iter().map(|cell| match cell {
                        Cell::Bool(b) => Cell::Int(i64::from(b)),
                        other => other,
                    }))
                    .collect();
                named.sort_by(|a, b| a.0.cmp(&b.0));
                named
            })
            .collect();
        out.insert(table.name, rows);
    }
    tx.commit().await.unwrap();
    conn.close().await.unwrap();
    out
}

async fn raw(url: &str, sql: &str) {
    let mut conn = AnyConnection::connect(url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
}

/// New rows in tables with generated ids take ids past `floor`.
async fn new_ids_pass(url: &str, floor: i64) {
    let storage = Storage::connect(url, &options()).await.unwrap();
    let a = tid("a");
    storage
        .platform()
        .audit(&AuditEntry {
            tenant: &a,
            actor: "test",
            action: "after.copy",
            plugin_sha256: None,
            before: None,
            after: None,
        })
        .await
        .unwrap();
    let audit = storage.platform().audit_log(Some(&a), 1).await.unwrap();
    assert_eq!(audit[0].action, "after.copy");
    assert!(audit[0].id > floor, "audit id {} ≤ {floor}", audit[0].id);
    let db = storage.tenant(&a);
    let (job, created) = db.enqueue_job(&job("after.copy")).await.unwrap();
    assert!(created);
    assert!(job.id > 1, "a job id the source gave: {}", job.id);
    let release = db
        .create_release(&NewRelease {
            installation: "main",
            sha256: &live_sha(&storage).await,
            settings: "{}",
            quota: "{}",
            note: Some("after the copy"),
            created_by: "test",
        })
        .await
        .unwrap();
    assert!(release.id > 1, "{release:?}");
    storage.close().await;
}

async fn live_sha(storage: &Storage) -> String {
    let versions = storage.tenant(&tid("a")).plugin_versions().await.unwrap();
    versions[0].sha256.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_goes_from_sqlite_to_postgresql_and_back_row_for_row() {
    let source = TestDb::new(Db::Sqlite).await;
    let storage = Storage::connect(&source.url, &options()).await.unwrap();
    let ctx = Ctx {
        storage,
        url: source.url.clone(),
    };
    seed(&ctx, "a").await;
    seed(&ctx, "b").await;
    ctx.storage.close().await;
    // The source's counter is past its highest id (rows were deleted, say):
    // the copy keeps it past that too.
    raw(
        &source.url,
        "UPDATE sqlite_sequence SET seq = 1000 WHERE name = 'audit_log'",
    )
    .await;
    let before = rows_of(&source.url).await;
    let empty: Vec<&String> = before
        .iter()
        .filter(|(_, rows)| rows.is_empty())
        .map(|(t, _)| t)
        .collect();
    assert!(before.len() >= 30, "{:?}", before.keys());

    let postgres = TestDb::new(Db::Postgres).await;
    let report = copy_instance(&source.url, &postgres.url, &options())
        .await
        .unwrap();
    assert!(report.counts_match(), "{report:?}");
    assert_eq!((report.source, report.target), ("sqlite", "postgres"));
    assert_eq!(report.tables.len(), before.len());
    let copied: usize = before.values().map(Vec::len).sum();
    assert_eq!(report.rows(), copied as u64);
    assert_eq!(rows_of(&postgres.url).await, before, "empty: {empty:?}");

    // Between two PostgreSQL databases.
    let other = TestDb::new(Db::Postgres).await;
    let report = copy_instance(&postgres.url, &other.url, &options())
        .await
        .unwrap();
    assert!(report.counts_match(), "{report:?}");
    assert_eq!(rows_of(&other.url).await, before);

    // Back into SQLite, from PostgreSQL.
    let back = TestDb::new(Db::Sqlite).await;
    let report = copy_instance(&postgres.url, &back.url, &options())
        .await
        .unwrap();
    assert!(report.counts_match(), "{report:?}");
    assert_eq!(rows_of(&back.url).await, before);

    // Ids continue past every one the source gave, on both targets.
    new_ids_pass(&postgres.url, 1000).await;
    new_ids_pass(&back.url, 1000).await;

    // A target with rows (the PostgreSQL copy, now) is refused, untouched.
    let now = rows_of(&postgres.url).await;
    let err = copy_instance(&source.url, &postgres.url, &options())
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Conflict(_)), "{err}");
    assert!(err.to_string().contains("already holds rows"), "{err}");
    assert!(err.to_string().contains("tenants"), "{err}");
    assert_eq!(rows_of(&postgres.url).await, now);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_source_and_a_copy_onto_itself_are_refused() {
    let source = TestDb::new(Db::Sqlite).await;
    let err = copy_instance(&source.url, &source.url, &options())
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Invalid(_)), "{err}");

    // A database of an earlier release (10 migrations) is not migrated by the
    // copy: refused, with what to do.
    let mut conn = AnyConnection::connect(&format!("{}?mode=rwc", source.url))
        .await
        .unwrap();
    crate::migrate::sqlite_until(10)
        .run_direct(None, &mut conn, false)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let target = TestDb::new(Db::Postgres).await;
    let err = copy_instance(&source.url, &target.url, &options())
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Invalid(_)), "{err}");
    assert!(err.to_string().contains("older"), "{err}");
    assert!(err.to_string().contains("veneer serve"), "{err}");
}

/// In production the URL's user owns the tables but is no superuser: row-level
/// security (`FORCE`) applies to it, and it moves the sequences as their owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_copy_works_with_an_owner_that_is_no_superuser() {
    let source = TestDb::new(Db::Sqlite).await;
    let storage = Storage::connect(&source.url, &options()).await.unwrap();
    let ctx = Ctx {
        storage,
        url: source.url.clone(),
    };
    seed(&ctx, "a").await;
    ctx.storage.close().await;
    let before = rows_of(&source.url).await;
    let owned = OwnedDb::create().await;
    let (from, to) = (source.url.clone(), owned.url.clone());
    let back = TestDb::new(Db::Sqlite).await;
    let back_url = back.url.clone();
    let outcome = tokio::spawn(async move {
        let there = copy_instance(&from, &to, &options()).await.unwrap();
        let again = copy_instance(&from, &to, &options()).await.unwrap_err();
        new_ids_pass(&to, 1).await;
        let home = copy_instance(&to, &back_url, &options()).await.unwrap();
        (there, again, home)
    })
    .await;
    owned.drop_all().await;
    let (there, again, home) = outcome.unwrap();
    assert!(
        there.counts_match() && home.counts_match(),
        "{there:?} {home:?}"
    );
    assert_eq!(
        there.rows(),
        before.values().map(Vec::len).sum::<usize>() as u64
    );
    assert!(matches!(again, StorageError::Conflict(_)), "{again}");
    // What came home is the source plus the rows `new_ids_pass` added there.
    assert_eq!(home.rows(), there.rows() + 3);
}

/// Keyset pages cover a table whose key is composite, each row once, in key
/// order, on both backends.
async fn keyset_pages_cover_a_table_once(ctx: Ctx) {
    let db = ctx.tenant("a").await;
    let b = ctx.tenant("b").await;
    for i in 0..1_203 {
        db.kv_put(&format!("k{i:05}"), "v").await.unwrap();
    }
    b.kv_put("k00000", "v").await.unwrap();
    let platform = ctx.storage.platform();
    let schema = platform.schema().await.unwrap();
    let kv = schema.iter().find(|t| t.name == "kv").unwrap();
    assert_eq!(kv.primary_key, ["tenant_id", "key"]);
    let mut tx = platform.begin(crate::session::Access::Read).await.unwrap();
    let mut seen: Vec<Vec<Cell>> = Vec::new();
    let mut after: Option<Vec<Cell>> = None;
    loop {
        let page = tables::read_after(&mut tx, kv, after.as_deref(), 500, 0)
            .await
            .unwrap();
        seen.extend(page.iter().map(|row| tables::key_of(kv, row)));
        if page.len() < 500 {
            break;
        }
        after = page.last().map(|row| tables::key_of(kv, row));
    }
    tx.commit().await.unwrap();
    assert_eq!(seen.len(), 1_204);
    let texts: Vec<String> = seen.iter().map(|k| format!("{k:?}")).collect();
    let mut sorted = texts.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), texts.len(), "no row twice");
}

crate::both_backends!(via crate::testing::harness::run; keyset_pages_cover_a_table_once);
