//! A tenant's rows out of one backend and into the other: every tenant table
//! (seeded by the purge test's `seed`, which covers them all), new generated
//! ids, and nothing of another tenant touched.

use crate::testing::Db;
use crate::testing::harness::{Ctx, run, tid};
use crate::{Cell, ImportOutcome, StorageError, TenantTable, tenant_column};

use super::lifecycle::{counts, seed};

/// Import markers (the app layer's name the archive).
const M0: &str = r#"{"archive":"0"}"#;
const M1: &str = r#"{"archive":"1"}"#;
const M2: &str = r#"{"archive":"2"}"#;

/// Every table of `ctx` with a tenant column, in `id`'s rows.
async fn rows_of(ctx: &Ctx, id: &str) -> Vec<TenantTable> {
    let platform = ctx.storage.platform();
    let names: Vec<String> = platform
        .schema()
        .await
        .unwrap()
        .into_iter()
        .filter(|t| tenant_column(t).is_some())
        .map(|t| t.name)
        .collect();
    platform.tenant_rows(&tid(id), &names).await.unwrap()
}

async fn sqlite_to_postgres(source: Ctx, target: Ctx) {
    seed(&source, "a").await;
    seed(&source, "b").await;
    seed(&target, "b").await;
    let a = rows_of(&source, "a").await;
    let b_before = rows_of(&target, "b").await;
    let into = target.storage.platform();

    // A row of another tenant in the archive: refused, nothing written.
    let mut hostile = a.clone();
    let kv = hostile
        .iter_mut()
        .find(|t| t.table == "kv")
        .expect("kv rows");
    let at = kv.position("tenant_id").expect("tenant_id");
    kv.rows[0][at] = Cell::Text("b".into());
    let refused = into
        .import_tenant(&tid("a"), &hostile, false, "t", M0)
        .await;
    assert!(matches!(refused, Err(StorageError::Invalid(m)) if m.contains("another tenant")));
    assert_eq!(into.tenant(&tid("a")).await.unwrap(), None);

    let outcome = into
        .import_tenant(&tid("a"), &a, false, "t", M1)
        .await
        .unwrap();
    assert!(matches!(
        outcome,
        ImportOutcome::Imported {
            replaced: false,
            ..
        }
    ));
    let mut expected = counts(&source, "a").await;
    // The import's own audit entry.
    *expected.get_mut("audit_log").unwrap() += 1;
    assert_eq!(counts(&target, "a").await, expected);
    // Release ids are the target's, and still joined up.
    let releases = rows_of(&target, "a").await;
    let ids: Vec<&Cell> = releases
        .iter()
        .find(|t| t.table == "releases")
        .map(|t| {
            let at = t.position("id").unwrap();
            t.rows.iter().map(|r| &r[at]).collect()
        })
        .unwrap();
    for (table, column) in [("shadows", "release_id"), ("shadow_runs", "release_id")] {
        let t = releases.iter().find(|t| t.table == table).unwrap();
        let at = t.position(column).unwrap();
        assert!(
            t.rows.iter().all(|r| ids.contains(&&r[at])),
            "{table}.{column} names a release of the target"
        );
    }
    assert_eq!(rows_of(&target, "b").await, b_before, "b untouched");

    // Again: nothing to do; replacing gives the same rows.
    assert_eq!(
        into.import_tenant(&tid("a"), &a, false, "t", M1)
            .await
            .unwrap(),
        ImportOutcome::AlreadyImported
    );
    assert!(matches!(
        into.import_tenant(&tid("a"), &a, false, "t", M2).await,
        Err(StorageError::Conflict(_))
    ));
    into.import_tenant(&tid("a"), &a, true, "t", M2)
        .await
        .unwrap();
    assert_eq!(counts(&target, "a").await, expected);
    assert_eq!(rows_of(&target, "b").await, b_before, "b untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_moves_from_sqlite_to_postgresql_with_every_table() {
    run(Db::Sqlite, async |source| {
        run(Db::Postgres, async |target| {
            sqlite_to_postgres(source, target).await
        })
        .await;
    })
    .await;
}
