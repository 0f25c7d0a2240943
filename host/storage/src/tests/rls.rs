//! PostgreSQL row-level security, attacked from below: raw SQL in the
//! application role, as if the application's own tenant filter were missing or
//! forged. Tenant `a` tries to read, change, steal, delete and forge `b`'s rows
//! in every tenant table; with no tenant set, nothing is visible at all.

use std::time::{Duration, Instant};

use sqlx::postgres::PgQueryResult;
use sqlx::{AssertSqlSafe, Connection, PgConnection};

use crate::testing::harness::{Ctx, on_postgres, options, tid, upload};
use crate::{
    AuditRecord, PluginVersion, RunRecord, Storage, StorageError, StorageOptions, TenantRecord,
    UsageRecord,
};

/// Every tenant table in use and the column that names the tenant (the
/// single-plugin tables `activations` and `plugin_settings`, kept by the
/// installations migration and read by nothing, are still forged against below).
const TABLES: &[(&str, &str)] = &[
    ("tenants", "id"),
    ("domains", "tenant_id"),
    ("plugin_versions", "tenant_id"),
    ("quotas", "tenant_id"),
    ("kv", "tenant_id"),
    ("kv_usage", "tenant_id"),
    ("plugin_runs", "tenant_id"),
    ("usage", "tenant_id"),
    ("audit_log", "tenant_id"),
    ("installations", "tenant_id"),
    ("releases", "tenant_id"),
    ("release_events", "tenant_id"),
    ("installation_quotas", "tenant_id"),
];

/// Append-only tables: no UPDATE or DELETE at all for the application.
const APPEND_ONLY: &[&str] = &["audit_log", "release_events"];

/// Tables a tenant may write its own rows in (the others it may only read).
const TENANT_WRITABLE: &[&str] = &[
    "plugin_versions",
    "kv",
    "kv_usage",
    "plugin_runs",
    "usage",
    "installations",
    "releases",
];

/// Gives tenant `id` at least one row in every table.
async fn seed(storage: &Storage, id: &str) {
    storage
        .platform()
        .create_tenant(&crate::testing::harness::new_tenant(id))
        .await
        .unwrap();
    seed_rows(storage, id).await;
}

/// Rows in the core tenant tables for the existing tenant `id` (also used by
/// the purge test).
pub(super) async fn seed_rows(storage: &Storage, id: &str) {
    let platform = storage.platform();
    platform
        .claim_domain(&format!("{id}.example"), &tid(id), "token")
        .await
        .unwrap();
    platform.set_quota(&tid(id), r#"{"fuel":1}"#).await.unwrap();
    let db = storage.tenant(&tid(id));
    let version = upload(&db, 1).await;
    db.kv_put("k1", "secret-1").await.unwrap();
    db.kv_put("k2", "secret-2").await.unwrap();
    db.record_run(&crate::NewRun {
        installation: None,
        release_id: None,
        sha256: &version.sha256,
        hook: "categories",
        outcome: "ok",
        message: None,
        fuel_used: 1,
        peak_memory_bytes: 1,
        wall_time_us: 1,
        logs_json: "[]",
    })
    .await
    .unwrap();
    db.add_usage(1, 1, 1).await.unwrap();
    db.audit("owner", "seed", None, None, None).await.unwrap();
    db.create_installation("main", "owner").await.unwrap();
    let release = db
        .create_release(&crate::NewRelease {
            installation: "main",
            sha256: &version.sha256,
            settings: r#"{"secret":true}"#,
            quota: "{}",
            note: None,
            created_by: "owner",
        })
        .await
        .unwrap();
    db.activate_release("main", release.id, "activate", "owner")
        .await
        .unwrap();
    platform
        .set_installation_quota(&tid(id), "main", r#"{"fuel":2}"#)
        .await
        .unwrap();
}

/// Everything tenant `id` has, read through the handles.
#[derive(Debug, PartialEq)]
struct Snapshot {
    tenant: Option<TenantRecord>,
    domains: Vec<String>,
    quota: Option<String>,
    versions: Vec<PluginVersion>,
    kv: Vec<(String, String)>,
    runs: Vec<RunRecord>,
    usage: Vec<UsageRecord>,
    audit: Vec<AuditRecord>,
    installations: Vec<crate::InstallationRecord>,
    releases: Vec<crate::ReleaseRecord>,
    events: Vec<crate::ReleaseEvent>,
    installation_quota: Option<String>,
}

async fn snapshot(storage: &Storage, id: &str) -> Snapshot {
    let platform = storage.platform();
    let db = storage.tenant(&tid(id));
    Snapshot {
        tenant: platform.tenant(&tid(id)).await.unwrap(),
        domains: platform
            .domains(&tid(id))
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.domain)
            .collect(),
        quota: platform.quota(&tid(id)).await.unwrap(),
        versions: db.plugin_versions().await.unwrap(),
        kv: db.kv_list("", 100).await.unwrap(),
        runs: db.runs(100).await.unwrap(),
        usage: db.usage(2).await.unwrap(),
        audit: db.audit_log(100).await.unwrap(),
        installations: db.installations().await.unwrap(),
        releases: db.releases("main", 100).await.unwrap(),
        events: db.release_events("main", 100).await.unwrap(),
        installation_quota: db.installation_quota("main").await.unwrap(),
    }
}

/// A raw connection acting as the application role, outside the storage code.
async fn app_connection(url: &str) -> PgConnection {
    let mut conn = PgConnection::connect(url).await.unwrap();
    sqlx::query("SET ROLE veneer_app")
        .execute(&mut conn)
        .await
        .unwrap();
    conn
}

async fn run(conn: &mut PgConnection, sql: String) -> Result<PgQueryResult, sqlx::Error> {
    // Table and column names come from `TABLES`, never from input.
    sqlx::query(AssertSqlSafe(sql)).execute(conn).await
}

async fn count(conn: &mut PgConnection, sql: String) -> i64 {
    sqlx::query_scalar(AssertSqlSafe(sql))
        .fetch_one(conn)
        .await
        .unwrap()
}

fn affected(result: Result<PgQueryResult, sqlx::Error>, what: &str) -> u64 {
    match result {
        Ok(done) => done.rows_affected(),
        Err(e) => panic!("{what}: {e}"),
    }
}

/// Refused by the database: no privilege, or a row-level security check.
fn refused(result: Result<PgQueryResult, sqlx::Error>, what: &str) {
    match result {
        Err(sqlx::Error::Database(e)) => {
            assert_eq!(e.code().as_deref(), Some("42501"), "{what}: {e}")
        }
        other => panic!("{what}: expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_a_touches_no_row_of_b_in_any_table() {
    on_postgres(|ctx: Ctx| async move {
        seed(&ctx.storage, "a").await;
        seed(&ctx.storage, "b").await;
        let b_before = snapshot(&ctx.storage, "b").await;
        let a_before = snapshot(&ctx.storage, "a").await;

        let mut conn = app_connection(&ctx.url).await;
        sqlx::query("SELECT set_config('app.tenant_id', 'a', false)")
            .execute(&mut conn)
            .await
            .unwrap();

        for &(table, col) in TABLES {
            let of_b = count(&mut conn, format!("SELECT count(*) FROM {table} WHERE {col} = 'b'")).await;
            assert_eq!(of_b, 0, "{table}: a reads b's rows");
            let visible = count(&mut conn, format!("SELECT count(*) FROM {table}")).await;
            let own = count(&mut conn, format!("SELECT count(*) FROM {table} WHERE {col} = 'a'")).await;
            assert!(own > 0, "{table}: a sees its own rows");
            assert_eq!(visible, own, "{table}: a sees only its own rows");

            let touch_b = format!("UPDATE {table} SET {col} = {col} WHERE {col} = 'b'");
            let steal = format!("UPDATE {table} SET {col} = 'a' WHERE {col} <> 'a'");
            let delete_b = format!("DELETE FROM {table} WHERE {col} <> 'a'");
            let give_away = format!("UPDATE {table} SET {col} = 'b' WHERE {col} = 'a'");
            if APPEND_ONLY.contains(&table) {
                // Append-only: no UPDATE or DELETE at all for the application.
                for sql in [touch_b, steal, delete_b, give_away] {
                    refused(run(&mut conn, sql).await, table);
                }
                continue;
            }
            assert_eq!(affected(run(&mut conn, touch_b).await, table), 0, "{table}: update b");
            assert_eq!(affected(run(&mut conn, steal).await, table), 0, "{table}: steal b");
            assert_eq!(affected(run(&mut conn, delete_b).await, table), 0, "{table}: delete b");
            if TENANT_WRITABLE.contains(&table) {
                // Moving its own row to b fails the WITH CHECK.
                refused(run(&mut conn, give_away).await, table);
            } else {
                // Platform-managed: a tenant cannot even change its own rows.
                assert_eq!(affected(run(&mut conn, give_away).await, table), 0, "{table}");
            }
        }

        // Forging rows for b.
        let now = 1;
        for sql in [
            format!("INSERT INTO kv (tenant_id, key, value, updated_at) VALUES ('b', 'x', 'y', {now})"),
            format!(
                "INSERT INTO plugin_settings (tenant_id, json, version, updated_at) \
                 VALUES ('b', '{{}}', 99, {now})"
            ),
            format!(
                "INSERT INTO audit_log (tenant_id, actor, action, created_at) \
                 VALUES ('b', 'mallory', 'forged', {now})"
            ),
            "INSERT INTO usage (tenant_id, day, requests, plugin_runs, fuel_used) \
             VALUES ('b', '2000-01-01', 1, 1, 1)"
                .to_owned(),
            format!(
                "INSERT INTO tenants (id, org_id, name, rate_limit_per_sec, rate_limit_burst, \
                 max_concurrency, created_at, updated_at) VALUES ('c', 'org_c', 'c', 1, 1, 1, {now}, {now})"
            ),
            format!("INSERT INTO domains (domain, tenant_id, created_at) VALUES ('evil.example', 'a', {now})"),
            format!("INSERT INTO quotas (tenant_id, json, updated_at) VALUES ('a', '{{}}', {now})"),
            format!(
                "INSERT INTO installations (tenant_id, name, position, created_by, created_at, updated_at) \
                 VALUES ('b', 'forged', 9, 'mallory', {now}, {now})"
            ),
            format!(
                "INSERT INTO releases (tenant_id, installation, sha256, settings, quota, created_by, created_at) \
                 SELECT 'b', 'main', sha256, '{{\"pwned\":1}}', '{{}}', 'mallory', {now} FROM plugin_versions"
            ),
            format!(
                "INSERT INTO release_events (tenant_id, installation, release_id, action, actor, created_at) \
                 VALUES ('b', 'main', NULL, 'deactivate', 'mallory', {now})"
            ),
            format!(
                "INSERT INTO output_policies (scope, json, updated_by, updated_at) \
                 VALUES ('a', '{{}}', 'mallory', {now})"
            ),
            format!(
                "INSERT INTO catalogue_plugins (name, version, sha256, description, settings_example, \
                 hooks, size_bytes, wasm_binary, published_by, created_at) \
                 VALUES ('forged', '1.0.0', 'x', 'x', '{{}}', '[]', 0, '\\x00', 'mallory', {now})"
            ),
            format!(
                "INSERT INTO installation_quotas (tenant_id, installation, json, updated_at) \
                 VALUES ('a', 'main', '{{\"fuel\":999999999}}', {now}) \
                 ON CONFLICT (tenant_id, installation) DO UPDATE SET json = excluded.json"
            ),
        ] {
            refused(run(&mut conn, sql.clone()).await, &sql);
        }
        // Upserting into b's settings row goes through neither door.
        refused(
            run(
                &mut conn,
                "INSERT INTO plugin_settings (tenant_id, json, version, updated_at) \
                 VALUES ('b', '{\"pwned\":1}', 1, 1) ON CONFLICT (tenant_id) \
                 DO UPDATE SET json = excluded.json"
                    .into(),
            )
            .await,
            "upsert into b",
        );
        conn.close().await.unwrap();

        assert_eq!(snapshot(&ctx.storage, "b").await, b_before, "b's rows are intact");
        assert_eq!(snapshot(&ctx.storage, "a").await, a_before, "a's own rows are intact");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_tenant_nothing_is_visible_or_writable() {
    on_postgres(|ctx: Ctx| async move {
        seed(&ctx.storage, "a").await;
        seed(&ctx.storage, "b").await;
        let before = (
            snapshot(&ctx.storage, "a").await,
            snapshot(&ctx.storage, "b").await,
        );

        let mut conn = app_connection(&ctx.url).await;
        for round in ["unset", "empty"] {
            if round == "empty" {
                sqlx::query("SELECT set_config('app.tenant_id', '', false)")
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
            for &(table, col) in TABLES {
                let visible = count(&mut conn, format!("SELECT count(*) FROM {table}")).await;
                assert_eq!(
                    visible, 0,
                    "{table} ({round}): rows visible without a tenant"
                );
                let update = run(&mut conn, format!("UPDATE {table} SET {col} = {col}")).await;
                let delete = run(&mut conn, format!("DELETE FROM {table}")).await;
                if APPEND_ONLY.contains(&table) {
                    refused(update, table);
                    refused(delete, table);
                } else {
                    assert_eq!(affected(update, table), 0, "{table} ({round})");
                    assert_eq!(affected(delete, table), 0, "{table} ({round})");
                }
            }
        }

        // The tenant set for one transaction does not outlive it on the connection:
        // the next user of a pooled connection starts from nothing.
        let mut tx = conn.begin().await.unwrap();
        sqlx::query("SELECT set_config('app.tenant_id', 'a', true)")
            .execute(&mut *tx)
            .await
            .unwrap();
        let inside: i64 = sqlx::query_scalar("SELECT count(*) FROM kv")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(inside, 2);
        tx.commit().await.unwrap();
        let after: i64 = sqlx::query_scalar("SELECT count(*) FROM kv")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(after, 0, "app.tenant_id leaked past its transaction");

        // Platform mode is the only way to see across tenants.
        sqlx::query("SELECT set_config('app.platform', 'on', false)")
            .execute(&mut conn)
            .await
            .unwrap();
        let tenants: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(tenants, 2);
        conn.close().await.unwrap();

        let after = (
            snapshot(&ctx.storage, "a").await,
            snapshot(&ctx.storage, "b").await,
        );
        assert_eq!(after, before);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_role_owns_nothing_and_cannot_bypass_rls() {
    on_postgres(|ctx: Ctx| async move {
        let mut admin = PgConnection::connect(&ctx.url).await.unwrap();
        let (superuser, bypass): (bool, bool) = sqlx::query_as(
            "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = 'veneer_app'",
        )
        .fetch_one(&mut admin)
        .await
        .unwrap();
        assert!(!superuser && !bypass);
        for &(table, _) in TABLES {
            let (owner, enabled, forced): (String, bool, bool) = sqlx::query_as(
                "SELECT pg_get_userbyid(c.relowner)::text, c.relrowsecurity, c.relforcerowsecurity \
                   FROM pg_class c WHERE c.oid = to_regclass($1)",
            )
            .bind(table)
            .fetch_one(&mut admin)
            .await
            .unwrap();
            assert_ne!(owner, "veneer_app", "{table}");
            assert!(
                enabled && forced,
                "{table}: RLS enabled {enabled}, forced {forced}"
            );
        }
        admin.close().await.unwrap();

        // The pool really is the app role, with the configured timeouts.
        let mut conn = ctx.storage.pool.acquire().await.unwrap();
        let who: String = sqlx::query_scalar("SELECT current_user::text")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(who, "veneer_app");
        let statement: String = sqlx::query_scalar("SHOW statement_timeout")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(statement, "5s");
        let idle: String = sqlx::query_scalar("SHOW idle_in_transaction_session_timeout")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(idle, "10s");
        let migrations = sqlx::query("SELECT count(*) FROM _sqlx_migrations")
            .execute(&mut *conn)
            .await;
        assert!(
            migrations.is_err(),
            "the app role has no business with the schema history"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_over_the_timeout_is_unavailable() {
    on_postgres(|ctx: Ctx| async move {
        let options = StorageOptions {
            statement_timeout: Duration::from_millis(200),
            ..options()
        };
        let storage = Storage::connect(&ctx.url, &options).await.unwrap();
        let started = Instant::now();
        let slow = sqlx::query("SELECT 1 FROM (SELECT pg_sleep(3)) AS slept")
            .execute(&storage.pool)
            .await
            .map_err(StorageError::from);
        assert!(
            matches!(slow, Err(StorageError::Unavailable(_))),
            "{slow:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "took {:?}",
            started.elapsed()
        );
        storage.close().await;
    })
    .await;
}
