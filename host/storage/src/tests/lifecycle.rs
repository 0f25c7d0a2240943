//! Tenant deletion, restoration and purge. The purge test seeds two tenants
//! with rows in every tenant table the schema has (and fails if a table is left
//! unseeded, so a table added later must be seeded here too), purges one, and
//! checks table by table, from the schema, that none of its rows is left and
//! that the other's are untouched.

use std::collections::BTreeMap;

use sqlx::AssertSqlSafe;

use crate::session::Access;
use crate::testing::harness::{Ctx, job, tid, upload};
use crate::{NewHookRecord, NewRelease, ShadowRun, StorageError};

crate::both_backends!(via crate::testing::harness::run;
    delete_and_purge_leaves_no_row_of_a_in_any_table,
    a_deleted_tenant_is_restored_within_its_grace_only,
    a_deleted_tenants_jobs_are_not_claimed,
    a_purge_takes_the_rows_writers_in_flight_add,
);

/// Tables keyed by the tenant under another column than `tenant_id`.
const OTHER_KEYS: &[(&str, &str)] = &[("tenants", "id"), ("output_policies", "scope")];

/// Gives tenant `id` at least one row in every tenant table.
pub(super) async fn seed(ctx: &Ctx, id: &str) {
    let db = ctx.tenant(id).await;
    super::rls::seed_rows(&ctx.storage, id).await;
    super::shopify::seed_rows(&db, id).await;
    super::email::seed_rows(&db, id).await;
    let platform = ctx.storage.platform();
    platform.take_rate(&tid(id), 1_000, 1).await.unwrap();
    platform
        .revoke_member(&tid(id), "user_seed", 1_000, 0)
        .await
        .unwrap();
    db.enqueue_job(&job("test.kind")).await.unwrap();
    db.set_rollout_settings("{}", "owner").await.unwrap();
    db.put_data_request("dr-1", "cust-1", "{}").await.unwrap();
    db.put_shopify_app("client", "v1:k:sealed", "read_products")
        .await
        .unwrap();
    db.begin_shopify_install(&format!("nonce-{id}"), "shop.myshopify.com", i64::MAX)
        .await
        .unwrap();
    db.record_hook_call(&NewHookRecord {
        hook: "categories",
        input: "{}",
        output: "{}",
        outcome: "ok",
        chain: "[]",
        fuel: 1,
        expires_at: i64::MAX,
    })
    .await
    .unwrap();
    let version = upload(&db, 2).await;
    let candidate = db
        .create_release(&NewRelease {
            installation: "main",
            sha256: &version.sha256,
            settings: "{}",
            quota: "{}",
            note: None,
            created_by: "owner",
        })
        .await
        .unwrap();
    db.set_shadow("main", candidate.id, 0.5, "owner")
        .await
        .unwrap();
    db.record_shadow_run(&ShadowRun {
        installation: "main".into(),
        release_id: candidate.id,
        hook: "categories".into(),
        outcome: "ok".into(),
        differs: false,
        live_fee: None,
        shadow_fee: None,
        currency: None,
        fuel: 1,
        memory: 1,
        wall_us: 1,
        message: None,
        sample: None,
        created_at: 0,
    })
    .await
    .unwrap();
    // Tables nothing writes through a handle any more (kept by migrations),
    // or written by the certificate worker from DNS: raw rows.
    let mut tx = platform.begin(Access::Write).await.unwrap();
    for sql in [
        format!(
            "INSERT INTO activations (tenant_id, sha256, action, actor, created_at) \
             VALUES ('{id}', '{}', 'activate', 'owner', 1)",
            version.sha256
        ),
        format!(
            "INSERT INTO plugin_settings (tenant_id, json, version, updated_at) \
             VALUES ('{id}', '{{}}', 1, 1)"
        ),
        format!(
            "INSERT INTO certificates (domain, tenant_id, status, next_attempt_at, updated_at) \
             VALUES ('{id}.example', '{id}', 'pending', 1, 1)"
        ),
        format!(
            "INSERT INTO output_policies (scope, json, updated_by, updated_at) \
             VALUES ('{id}', '{{}}', 'admin', 1)"
        ),
    ] {
        sqlx::query(AssertSqlSafe(sql))
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
}

/// Rows of tenant `id` in every tenant table, read from the schema.
pub(super) async fn counts(ctx: &Ctx, id: &str) -> BTreeMap<String, i64> {
    let platform = ctx.storage.platform();
    let mut tables: Vec<(String, &str)> = platform
        .tenant_tables()
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t, "tenant_id"))
        .collect();
    tables.extend(OTHER_KEYS.iter().map(|&(t, c)| (t.to_owned(), c)));
    let mut tx = platform.begin(Access::Read).await.unwrap();
    let mut out = BTreeMap::new();
    for (table, column) in tables {
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT count(*) FROM {table} WHERE {column} = $1"
        )))
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        out.insert(table, n);
    }
    tx.commit().await.unwrap();
    out
}

async fn delete_and_purge_leaves_no_row_of_a_in_any_table(ctx: Ctx) {
    seed(&ctx, "a").await;
    seed(&ctx, "b").await;
    let a_before = counts(&ctx, "a").await;
    let unseeded: Vec<_> = a_before.iter().filter(|(_, n)| **n == 0).collect();
    assert!(
        unseeded.is_empty(),
        "seed every tenant table, so the purge is checked on it: {unseeded:?}"
    );
    assert!(a_before.len() >= 30, "{a_before:?}");
    let b_before = counts(&ctx, "b").await;

    let platform = ctx.storage.platform();
    // Not deleted: no purge.
    assert!(matches!(
        platform.purge_tenant(&tid("a"), 7).await,
        Err(StorageError::Conflict(_))
    ));
    let far = i64::MAX / 2;
    let deleted = platform.delete_tenant(&tid("a"), far).await.unwrap();
    assert!(deleted.is_deleted());
    assert_eq!(deleted.purge_after, Some(far));
    // Deleted, but in its grace period: no purge either, and nothing gone.
    assert!(matches!(
        platform.purge_tenant(&tid("a"), 7).await,
        Err(StorageError::Conflict(_))
    ));
    assert_eq!(counts(&ctx, "a").await, a_before);
    assert_eq!(platform.tenants_due_for_purge(1, 10).await.unwrap(), vec![]);

    platform.purge_tenant_at(&tid("a"), 0).await.unwrap();
    assert_eq!(
        platform.tenants_due_for_purge(1, 10).await.unwrap(),
        vec![tid("a")]
    );
    // Small batches, so tables take several.
    let report = platform.purge_tenant(&tid("a"), 1).await.unwrap();
    assert_eq!(report.rows.get("tenants"), Some(&1));
    assert_eq!(
        report.rows.get("audit_log").copied(),
        a_before.get("audit_log").map(|&n| n as u64)
    );

    let a_after = counts(&ctx, "a").await;
    for (table, n) in &a_after {
        assert_eq!(*n, 0, "{table}: rows of a left after the purge");
    }
    assert_eq!(counts(&ctx, "b").await, b_before, "b's rows changed");
    assert_eq!(platform.tenant(&tid("a")).await.unwrap(), None);
    // The id is free again.
    ctx.tenant("a").await;
}

/// A usage flush (or any writer that began before the deletion) keeps adding
/// rows while the purge runs: the purge still ends with none left, and what the
/// writer tries after it fails instead of leaving rows behind for whoever takes
/// the id next.
async fn a_purge_takes_the_rows_writers_in_flight_add(ctx: Ctx) {
    seed(&ctx, "a").await;
    let db = ctx.storage.tenant(&tid("a"));
    let platform = ctx.storage.platform();
    platform.delete_tenant(&tid("a"), 0).await.unwrap();
    let (started, mut first) = tokio::sync::oneshot::channel();
    let writer = tokio::spawn(async move {
        let mut started = Some(started);
        let mut written = 0u64;
        loop {
            match db.add_usage(1, 0, 0).await {
                Ok(()) => {
                    written += 1;
                    if let Some(tx) = started.take() {
                        let _ = tx.send(());
                    }
                }
                Err(err) => return (written, err),
            }
            tokio::task::yield_now().await;
        }
    });
    (&mut first).await.unwrap();
    let report = platform.purge_tenant(&tid("a"), 1).await.unwrap();
    assert_eq!(report.rows.get("tenants"), Some(&1));
    // A safety net, not a timing claim: a writer that never fails would hang.
    let (written, err) = tokio::time::timeout(std::time::Duration::from_secs(60), writer)
        .await
        .expect("the writer's next insert fails once the tenant is gone")
        .unwrap();
    assert!(written >= 1);
    assert!(
        !matches!(err, StorageError::Unavailable(_)),
        "a write for a purged tenant is refused, not retried: {err:?}"
    );
    for (table, n) in counts(&ctx, "a").await {
        assert_eq!(n, 0, "{table}: rows of a left after the purge");
    }
}

async fn a_deleted_tenant_is_restored_within_its_grace_only(ctx: Ctx) {
    let db = ctx.tenant("a").await;
    db.kv_put("k", "v").await.unwrap();
    let platform = ctx.storage.platform();
    let far = i64::MAX / 2;
    assert!(matches!(
        platform.restore_tenant(&tid("a")).await,
        Err(StorageError::Conflict(_))
    ));
    platform.delete_tenant(&tid("a"), far).await.unwrap();
    assert!(matches!(
        platform.delete_tenant(&tid("a"), far).await,
        Err(StorageError::Conflict(_))
    ));
    // The id stays taken while it awaits its purge.
    assert!(matches!(
        platform
            .create_tenant(&crate::testing::harness::new_tenant("a"))
            .await,
        Err(StorageError::Conflict(m)) if m.contains("deleted")
    ));
    let restored = platform.restore_tenant(&tid("a")).await.unwrap();
    assert!(!restored.is_deleted());
    assert_eq!(restored.purge_after, None);
    assert_eq!(db.kv_get("k").await.unwrap().as_deref(), Some("v"));

    // Past its grace period it cannot come back.
    platform.delete_tenant(&tid("a"), far).await.unwrap();
    platform.purge_tenant_at(&tid("a"), 0).await.unwrap();
    assert!(matches!(
        platform.restore_tenant(&tid("a")).await,
        Err(StorageError::Conflict(m)) if m.contains("grace")
    ));
    assert!(matches!(
        platform.restore_tenant(&tid("nobody")).await,
        Err(StorageError::NotFound(_))
    ));
}

async fn a_deleted_tenants_jobs_are_not_claimed(ctx: Ctx) {
    let db = ctx.tenant("a").await;
    db.enqueue_job(&job("test.kind")).await.unwrap();
    let platform = ctx.storage.platform();
    platform
        .delete_tenant(&tid("a"), i64::MAX / 2)
        .await
        .unwrap();
    let lease = std::time::Duration::from_secs(30);
    assert!(
        crate::testing::harness::claim_one(&ctx, "w", lease)
            .await
            .is_none()
    );
    platform.restore_tenant(&tid("a")).await.unwrap();
    assert!(
        crate::testing::harness::claim_one(&ctx, "w", lease)
            .await
            .is_some()
    );
}

/// A PostgreSQL database owned by a role of its own that is no superuser, as
/// in production (so `FORCE` row-level security applies to the owner): made
/// by the superuser, dropped with its role by [`OwnedDb::drop_all`].
pub(super) struct OwnedDb {
    /// The owner's URL.
    pub url: String,
    name: String,
    su: sqlx::PgConnection,
}

impl OwnedDb {
    pub(super) async fn create() -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        // A database migrated by the superuser first, so `veneer_app` exists.
        let scratch = crate::testing::TestDb::new(crate::testing::Db::Postgres).await;
        crate::Storage::connect(&scratch.url, &crate::testing::harness::options())
            .await
            .unwrap()
            .close()
            .await;
        let admin = crate::testing::postgres_admin_url();
        // Only digits and underscores: safe to splice into SQL.
        let name = format!(
            "veneer_owner_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut su = crate::testing::superuser(&admin).await;
        for sql in [
            format!("CREATE ROLE {name} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS"),
            format!("GRANT veneer_app TO {name}"),
            format!("CREATE DATABASE {name} OWNER {name}"),
        ] {
            sqlx::raw_sql(AssertSqlSafe(sql))
                .execute(&mut su)
                .await
                .unwrap();
        }
        let (server, _) = admin.rsplit_once('/').unwrap();
        let (scheme, host) = server.split_once("://").unwrap();
        let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
        let url = format!("{scheme}://{name}@{host}/{name}");
        Self { url, name, su }
    }

    /// Drops the database and its role.
    pub(super) async fn drop_all(mut self) {
        for sql in [
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            format!("DROP ROLE IF EXISTS {}", self.name),
        ] {
            let _ = sqlx::raw_sql(AssertSqlSafe(sql))
                .execute(&mut self.su)
                .await;
        }
    }
}

/// In production the schema's owner is no superuser, so row-level security
/// (FORCE) applies to `veneer_purge_batch` too: the purge must still remove
/// everything, the append-only tables included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_purge_works_with_an_owner_that_is_no_superuser() {
    let owned = OwnedDb::create().await;
    let url = owned.url.clone();
    let outcome = tokio::spawn(async move {
        let storage = crate::Storage::connect(&url, &crate::testing::harness::options())
            .await
            .unwrap();
        let ctx = Ctx {
            storage: storage.clone(),
            url,
        };
        seed(&ctx, "a").await;
        seed(&ctx, "b").await;
        let b_before = counts(&ctx, "b").await;
        let platform = ctx.storage.platform();
        platform.delete_tenant(&tid("a"), 0).await.unwrap();
        platform.purge_tenant(&tid("a"), PURGE).await.unwrap();
        let a_after = counts(&ctx, "a").await;
        let b_after = counts(&ctx, "b").await;
        storage.close().await;
        (a_after, b_before, b_after)
    })
    .await;
    owned.drop_all().await;
    let (a_after, b_before, b_after) = outcome.unwrap();
    for (table, n) in &a_after {
        assert_eq!(*n, 0, "{table}: rows of a left after the purge");
    }
    assert_eq!(b_after, b_before);
}

/// A batch size that makes tables take several batches.
const PURGE: u32 = 2;
