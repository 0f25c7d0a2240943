//! Runs one test body against each backend, with a fresh database each time
//! (`both_backends!(via harness::run; …)` over a [`TestDb`](crate::testing::TestDb)).

use std::future::Future;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::testing::{Db, TestDb};
use crate::{
    Backend, JobRecord, NewJob, NewPluginVersion, NewTenant, PluginAbout, PluginVersion, Storage,
    StorageOptions, TenantDb,
};
use veneer_core::tenancy_id::TenantId;

/// What a test body gets: a connected storage and the URL it came from (to open
/// a second "host" on the same database, or a raw connection).
pub struct Ctx {
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

pub fn options() -> StorageOptions {
    StorageOptions {
        max_connections: 4,
        acquire_timeout: Duration::from_secs(10),
        ..StorageOptions::default()
    }
}

pub fn tid(id: &str) -> TenantId {
    TenantId::new(id).unwrap()
}

pub fn new_tenant(id: &str) -> NewTenant {
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
pub fn binary(n: u8) -> (Vec<u8>, String) {
    let bytes = [b"\0asm\x0d\0\x01\0".as_slice(), &[n; 32]].concat();
    let sha = hex::encode(Sha256::digest(&bytes));
    (bytes, sha)
}

pub async fn upload(db: &TenantDb, n: u8) -> PluginVersion {
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
        about: PluginAbout::default(),
    })
    .await
    .unwrap()
}

/// Runs `test` on a fresh database of `kind` (a PostgreSQL one is dropped
/// afterwards, also when the test panics): the runner of
/// `both_backends!(via …)`.
pub async fn run<F, Fut>(kind: Db, test: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()>,
{
    let db = TestDb::new(kind).await;
    let storage = Storage::connect(&db.url, &options()).await.unwrap();
    test(Ctx {
        storage: storage.clone(),
        url: db.url.clone(),
    })
    .await;
    storage.close().await;
}

/// Runs `test` on a fresh PostgreSQL database only.
pub async fn on_postgres<F, Fut>(test: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()>,
{
    run(Db::Postgres, test).await
}

/// A per-tenant cap no test reaches, for the tests about something else.
pub const NO_CAP: u32 = u32::MAX;

/// A job of `kind` with a small payload, three attempts, no delay or key.
pub fn job(kind: &str) -> NewJob<'_> {
    NewJob {
        kind,
        payload: r#"{"n":1}"#,
        max_attempts: 3,
        run_at: None,
        dedupe_key: None,
    }
}

/// Claims at most one job as `worker`, leased for `lease`.
pub async fn claim_one(ctx: &Ctx, worker: &str, lease: Duration) -> Option<JobRecord> {
    let mut claimed = ctx
        .storage
        .platform()
        .claim_jobs(worker, 1, lease, NO_CAP)
        .await
        .unwrap();
    assert!(claimed.len() <= 1);
    claimed.pop()
}
