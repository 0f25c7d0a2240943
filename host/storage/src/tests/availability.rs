//! A database that is down, full or slow is `Unavailable` (503), promptly.

use std::time::{Duration, Instant};

use crate::testing::harness::{Ctx, options, tid};
use crate::{Storage, StorageError, StorageOptions};

crate::both_backends!(via crate::testing::harness::run;
    an_exhausted_pool_is_unavailable_within_the_acquire_timeout,
    a_closed_storage_is_unavailable
);

#[tokio::test]
async fn unreachable_postgres_is_unavailable_within_the_acquire_timeout() {
    let options = StorageOptions {
        acquire_timeout: Duration::from_secs(1),
        ..StorageOptions::default()
    };
    let started = Instant::now();
    let result = Storage::connect("postgres://postgres@127.0.0.1:1/veneer", &options).await;
    assert!(
        matches!(result, Err(StorageError::Unavailable(_))),
        "{result:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn unsupported_urls_are_invalid() {
    for url in ["mysql://root@localhost/veneer", "veneer.db", ""] {
        let result = Storage::connect(url, &options()).await;
        assert!(
            matches!(result, Err(StorageError::Invalid(_))),
            "{url}: {result:?}"
        );
    }
}

async fn an_exhausted_pool_is_unavailable_within_the_acquire_timeout(ctx: Ctx) {
    ctx.tenant("acme").await;
    let options = StorageOptions {
        max_connections: 1,
        acquire_timeout: Duration::from_millis(300),
        ..StorageOptions::default()
    };
    let storage = Storage::connect(&ctx.url, &options).await.unwrap();
    let held = storage.pool.acquire().await.unwrap();
    let started = Instant::now();
    assert!(matches!(
        storage.ping().await,
        Err(StorageError::Unavailable(_))
    ));
    let read = storage.tenant(&tid("acme")).kv_get("k").await;
    assert!(
        matches!(read, Err(StorageError::Unavailable(_))),
        "{read:?}"
    );
    let lookup = storage.platform().tenant(&tid("acme")).await;
    assert!(
        matches!(lookup, Err(StorageError::Unavailable(_))),
        "{lookup:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    drop(held);
    storage.ping().await.unwrap();
    storage.close().await;
}

async fn a_closed_storage_is_unavailable(ctx: Ctx) {
    let storage = Storage::connect(&ctx.url, &options()).await.unwrap();
    storage.ping().await.unwrap();
    storage.close().await;
    assert!(matches!(
        storage.ping().await,
        Err(StorageError::Unavailable(_))
    ));
    assert!(matches!(
        storage.tenant(&tid("acme")).installations().await,
        Err(StorageError::Unavailable(_))
    ));
}
