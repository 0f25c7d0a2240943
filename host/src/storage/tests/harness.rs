//! Runs one test body against each backend, with a fresh database each time.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::{AssertSqlSafe, Connection, PgConnection};

use crate::storage::{
    Backend, NewPluginVersion, NewTenant, PluginVersion, Storage, StorageOptions, TenantDb,
};
use crate::tenancy::TenantId;

/// What a test body gets: a connected storage and the URL it came from (to open
/// a second "host" on the same database, or a raw connection).
pub(crate) struct Ctx {
    pub storage: Storage,
    pub url: String,
}

impl Ctx {
    pub fn backend(&self) -> Backend {
        self.storage.backend()
    }

    /// Creates tenant `id` (organisation `org_<id>`) and returns its handle.
    pub async fn tenant(&self, id: &str) -> TenantDb {
        self.storage
            .platform()
            .create_tenant(&new_tenant(id))
            .await
            .unwrap();
        self.storage.tenant(&tid(id))
    }
}

/// Defines, for each named `async fn(Ctx)`, a module with a `sqlite` and a
/// `postgres` test running it.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $crate::storage::tests::harness::on_sqlite(super::$name).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $crate::storage::tests::harness::on_postgres(super::$name).await
            }
        }
    )*};
}

pub(crate) fn options() -> StorageOptions {
    StorageOptions {
        max_connections: 4,
        acquire_timeout: Duration::from_secs(10),
        ..StorageOptions::default()
    }
}

pub(crate) fn tid(id: &str) -> TenantId {
    TenantId::new(id).unwrap()
}

pub(crate) fn new_tenant(id: &str) -> NewTenant {
    NewTenant {
        id: tid(id),
        org_id: format!("org_{id}"),
        name: format!("Tenant {id}"),
        rate_limit_per_sec: 50,
        rate_limit_burst: 100,
        max_concurrency: 8,
    }
}

/// A fake component: distinct bytes per `n`, and their sha256.
pub(crate) fn binary(n: u8) -> (Vec<u8>, String) {
    let bytes = [b"\0asm\x0d\0\x01\0".as_slice(), &[n; 32]].concat();
    let sha = hex::encode(Sha256::digest(&bytes));
    (bytes, sha)
}

pub(crate) async fn upload(db: &TenantDb, n: u8) -> PluginVersion {
    let (bytes, sha) = binary(n);
    let hooks = vec!["categories".to_owned(), "commission".to_owned()];
    db.put_plugin_version(&NewPluginVersion {
        sha256: &sha,
        name: "luxury-consignment",
        version: &format!("1.0.{n}"),
        hooks: &hooks,
        size_bytes: bytes.len() as u64,
        binary: &bytes,
        uploaded_by: "user_alice",
    })
    .await
    .unwrap()
}

pub(crate) async fn on_sqlite<F, Fut>(test: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::TempDir::new().unwrap();
    let url = format!("sqlite://{}", dir.path().join("veneer.db").display());
    let storage = Storage::connect(&url, &options()).await.unwrap();
    test(Ctx {
        storage: storage.clone(),
        url,
    })
    .await;
    storage.close().await;
}

pub(crate) fn pg_server() -> String {
    std::env::var("VENEER_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

async fn pg_admin() -> PgConnection {
    let url = format!("{}/postgres", pg_server());
    PgConnection::connect(&url).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL at {url} is needed for these tests ({e}); start it with \
             `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`"
        )
    })
}

/// Runs `test` on a database of its own, dropped afterwards even if it panics.
pub(crate) async fn on_postgres<F, Fut>(test: F)
where
    F: FnOnce(Ctx) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "veneer_t_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let mut admin = pg_admin().await;
    // Only digits and underscores: safe to splice.
    sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let url = format!("{}/{name}", pg_server());
    let outcome = tokio::spawn(async move {
        let storage = Storage::connect(&url, &options()).await.unwrap();
        test(Ctx {
            storage: storage.clone(),
            url,
        })
        .await;
        storage.close().await;
    })
    .await;
    sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    admin.close().await.unwrap();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
