//! What only SQLite has: the file, its journal mode and pragmas.

use crate::testing::harness::options;
use crate::{Backend, Storage};

#[tokio::test]
async fn the_file_is_created_in_wal_mode_with_foreign_keys_on() {
    let dir = tempfile::TempDir::new().unwrap();
    let path = dir.path().join("fresh.db");
    assert!(!path.exists());
    let storage = Storage::connect(&format!("sqlite://{}", path.display()), &options())
        .await
        .unwrap();
    assert_eq!(storage.backend(), Backend::Sqlite);
    assert!(path.exists(), "created if missing");

    let mut conn = storage.pool.acquire().await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(foreign_keys, 1);
    drop(conn);
    storage.close().await;
}
