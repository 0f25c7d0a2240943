//! Settings, key-value data, runs and usage through the tenant handle.

use std::collections::BTreeMap;

use crate::testing::harness::{Ctx, options, tid};
use crate::time::{now_ms, utc_day};
use crate::{KvLimits, KvUsage, NewRun, Storage, StorageError, StorageOptions, UsageDelta};

crate::both_backends!(via crate::testing::harness::run;
    kv_stores_lists_by_literal_prefix_and_deletes,
    kv_caps_hold_keys_and_bytes_and_lose_nothing,
    concurrent_kv_writes_cannot_overshoot_the_cap,
    runs_are_recorded_listed_and_pruned_per_tenant,
    usage_accumulates_per_utc_day,
    a_batch_writes_runs_usage_and_pruning_together_or_nothing,
    writes_for_a_tenant_that_does_not_exist_are_not_found,
    reconnecting_keeps_data_and_reapplies_nothing,
);

async fn kv_stores_lists_by_literal_prefix_and_deletes(ctx: Ctx) {
    let acme = ctx.tenant("acme").await;
    let beta = ctx.tenant("beta").await;
    let keys = [
        "user/1", "user/2", "user/10", "user_x", "userAx", "user%", "users", "u", "é/1", "é/2", "ü",
    ];
    for key in keys {
        acme.kv_put(key, &format!("v:{key}")).await.unwrap();
    }
    assert_eq!(
        acme.kv_get("user/1").await.unwrap().as_deref(),
        Some("v:user/1")
    );
    assert_eq!(acme.kv_get("missing").await.unwrap(), None);
    acme.kv_put("user/1", "new").await.unwrap();
    assert_eq!(acme.kv_get("user/1").await.unwrap().as_deref(), Some("new"));

    let list = |prefix: &'static str, limit: u32| {
        let acme = acme.clone();
        async move {
            acme.kv_list(prefix, limit)
                .await
                .unwrap()
                .into_iter()
                .map(|(k, _)| k)
                .collect::<Vec<_>>()
        }
    };
    // Bytewise order on both backends.
    assert_eq!(list("user/", 10).await, ["user/1", "user/10", "user/2"]);
    assert_eq!(
        list("user", 10).await,
        [
            "user%", "user/1", "user/10", "user/2", "userAx", "user_x", "users"
        ]
    );
    // `_` and `%` are literal, not LIKE wildcards.
    assert_eq!(list("user_", 10).await, ["user_x"]);
    assert_eq!(list("user%", 10).await, ["user%"]);
    assert_eq!(list("é/", 10).await, ["é/1", "é/2"]);
    assert_eq!(list("user", 2).await, ["user%", "user/1"]);
    assert!(list("nothing", 10).await.is_empty());
    let everything = list("", 100).await;
    let mut sorted: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    sorted.sort();
    assert_eq!(everything, sorted);
    assert_eq!(
        acme.kv_list("user/1", 10).await.unwrap()[0],
        ("user/1".into(), "new".into())
    );

    let all = acme.kv_all(100).await.unwrap();
    assert_eq!(all.keys().cloned().collect::<Vec<_>>(), sorted);
    assert_eq!(all["ü"], "v:ü");
    assert_eq!(acme.kv_all(3).await.unwrap().len(), 3);

    // The attack: beta names acme's keys.
    assert_eq!(beta.kv_get("user/1").await.unwrap(), None);
    assert!(beta.kv_list("", 100).await.unwrap().is_empty());
    assert!(!beta.kv_delete("user/1").await.unwrap());
    beta.kv_put("user/1", "beta's").await.unwrap();
    assert_eq!(acme.kv_get("user/1").await.unwrap().as_deref(), Some("new"));
    assert_eq!(
        beta.kv_get("user/1").await.unwrap().as_deref(),
        Some("beta's")
    );

    assert!(acme.kv_delete("user/1").await.unwrap());
    assert!(!acme.kv_delete("user/1").await.unwrap());
    assert_eq!(acme.kv_get("user/1").await.unwrap(), None);
    assert_eq!(
        beta.kv_get("user/1").await.unwrap().as_deref(),
        Some("beta's")
    );

    assert!(matches!(
        acme.kv_put("a\0b", "v").await,
        Err(StorageError::Invalid(_))
    ));
    assert!(matches!(
        acme.kv_put("k", "v\0").await,
        Err(StorageError::Invalid(_))
    ));
}

fn run<'a>(sha: &'a str, outcome: &'a str, fuel: u64) -> NewRun<'a> {
    NewRun {
        installation: None,
        release_id: None,
        sha256: sha,
        hook: "categories",
        outcome,
        message: None,
        fuel_used: fuel,
        peak_memory_bytes: 65_536,
        wall_time_us: 120,
        logs_json: "[]",
    }
}

async fn capped(ctx: &Ctx, max_keys: u64, max_bytes: u64) -> Storage {
    Storage::connect(
        &ctx.url,
        &StorageOptions {
            kv_limits: KvLimits {
                max_keys,
                max_bytes,
            },
            ..options()
        },
    )
    .await
    .unwrap()
}

fn quota_message(result: Result<(), StorageError>) -> String {
    match result {
        Err(StorageError::KvQuotaExceeded(message)) => message,
        other => panic!("expected the kv quota to refuse, got {other:?}"),
    }
}

async fn kv_caps_hold_keys_and_bytes_and_lose_nothing(ctx: Ctx) {
    ctx.tenant("acme").await;
    let beta = ctx.tenant("beta").await;
    let storage = capped(&ctx, 3, 100).await;
    let acme = storage.tenant(&tid("acme"));
    assert_eq!(acme.kv_usage().await.unwrap(), KvUsage::default());
    for (k, v) in [("a", "1"), ("b", "2"), ("c", "3")] {
        acme.kv_put(k, v).await.unwrap();
    }
    let full = acme.kv_usage().await.unwrap();
    assert_eq!((full.keys, full.bytes), (3, 6));

    // A fourth key: refused, saying the limit and how to make room.
    let message = quota_message(acme.kv_put("d", "4").await);
    assert!(
        message.contains("3 keys") && message.contains("limit is 3"),
        "{message}"
    );
    assert!(message.contains("delete keys"), "{message}");
    // Overwriting an existing key does not add one.
    acme.kv_put("a", &"x".repeat(50)).await.unwrap();
    assert_eq!(acme.kv_usage().await.unwrap().bytes, 1 + 50 + 4);
    // Bytes: 55 held, b would grow by 59 to 114 > 100.
    let message = quota_message(acme.kv_put("b", &"y".repeat(60)).await);
    assert!(message.contains("limit is 100"), "{message}");
    assert!(message.contains("59 more"), "{message}");
    // Multibyte characters count as their UTF-8 bytes.
    let message = quota_message(acme.kv_put("c", &"é".repeat(30)).await);
    assert!(message.contains("limit is 100"), "{message}");

    // Nothing was lost or half-written, and refusals did not change the version.
    let before = acme.kv_usage().await.unwrap();
    let expected: BTreeMap<String, String> =
        [("a", "x".repeat(50)), ("b", "2".into()), ("c", "3".into())]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
    assert_eq!(acme.kv_all(100).await.unwrap(), expected);
    let snapshot = acme.kv_snapshot(100).await.unwrap();
    assert_eq!(snapshot.entries, expected);
    assert_eq!(snapshot.version, Some(before.version));
    assert!(acme.kv_put("d", "4").await.is_err());
    assert_eq!(acme.kv_usage().await.unwrap(), before);

    // Deleting makes room; every write changes the version.
    assert!(acme.kv_delete("c").await.unwrap());
    let after_delete = acme.kv_usage().await.unwrap();
    assert_eq!((after_delete.keys, after_delete.bytes), (2, 53));
    assert_ne!(after_delete.version, before.version);
    assert!(!acme.kv_delete("c").await.unwrap());
    assert_eq!(
        acme.kv_usage().await.unwrap(),
        after_delete,
        "a miss changes nothing"
    );
    acme.kv_put("d", "4").await.unwrap();

    // Caps are per tenant: beta has its own, untouched by acme's.
    let beta_capped = storage.tenant(&tid("beta"));
    for k in ["a", "b", "c"] {
        beta_capped.kv_put(k, "v").await.unwrap();
    }
    assert!(beta_capped.kv_put("d", "v").await.is_err());

    // Over a lowered cap (written under the default one), a tenant can still
    // shrink and delete, but not grow.
    for i in 0..5 {
        beta.kv_put(&format!("more/{i}"), "0123456789")
            .await
            .unwrap();
    }
    assert_eq!(beta.kv_usage().await.unwrap().keys, 8);
    assert!(beta_capped.kv_put("e", "v").await.is_err());
    assert!(beta_capped.kv_put("more/0", &"z".repeat(40)).await.is_err());
    beta_capped.kv_put("more/0", "short").await.unwrap();
    assert!(beta_capped.kv_delete("more/1").await.unwrap());
    assert_eq!(
        beta.kv_usage().await.unwrap().keys,
        7,
        "usage is shared by both handles"
    );
    storage.close().await;
}

async fn concurrent_kv_writes_cannot_overshoot_the_cap(ctx: Ctx) {
    ctx.tenant("acme").await;
    let storage = capped(&ctx, 3, 1 << 20).await;
    let mut tasks = Vec::new();
    for i in 0..12 {
        let db = storage.tenant(&tid("acme"));
        tasks.push(tokio::spawn(async move {
            db.kv_put(&format!("k{i}"), "v").await
        }));
    }
    let mut stored = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => stored += 1,
            Err(StorageError::KvQuotaExceeded(_)) => {}
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(stored, 3, "exactly the cap's worth of writes got in");
    let acme = storage.tenant(&tid("acme"));
    assert_eq!(acme.kv_all(100).await.unwrap().len(), 3);
    assert_eq!(acme.kv_usage().await.unwrap().keys, 3);
    storage.close().await;
}

async fn runs_are_recorded_listed_and_pruned_per_tenant(ctx: Ctx) {
    let acme = ctx.tenant("acme").await;
    let beta = ctx.tenant("beta").await;
    let sha = "a".repeat(64);
    let mut ids = Vec::new();
    for fuel in 1..=5 {
        ids.push(acme.record_run(&run(&sha, "ok", fuel)).await.unwrap());
    }
    let trapped = NewRun {
        message: Some("out of fuel"),
        logs_json: r#"[{"level":"info","line":"hello"}]"#,
        fuel_used: u64::try_from(i64::MAX).unwrap(),
        ..run(&sha, "out_of_fuel", 0)
    };
    ids.push(acme.record_run(&trapped).await.unwrap());
    beta.record_run(&run(&sha, "ok", 1)).await.unwrap();
    beta.record_run(&run(&sha, "ok", 2)).await.unwrap();

    let runs = acme.runs(10).await.unwrap();
    assert_eq!(runs.len(), 6);
    assert_eq!(
        runs.iter().map(|r| r.id).collect::<Vec<_>>(),
        ids.iter().rev().copied().collect::<Vec<_>>(),
        "newest first"
    );
    let newest = &runs[0];
    assert_eq!(newest.outcome, "out_of_fuel");
    assert_eq!(newest.message.as_deref(), Some("out of fuel"));
    assert_eq!(newest.fuel_used, u64::try_from(i64::MAX).unwrap());
    assert_eq!(newest.peak_memory_bytes, 65_536);
    assert_eq!(newest.wall_time_us, 120);
    assert_eq!(newest.hook, "categories");
    assert_eq!(newest.sha256, sha);
    assert_eq!(
        newest.logs,
        serde_json::json!([{"level": "info", "line": "hello"}])
    );
    assert!(newest.created_at > 0);
    assert_eq!(runs[1].message, None);
    assert_eq!(acme.runs(2).await.unwrap(), runs[..2].to_vec());

    assert_eq!(acme.prune_runs(3).await.unwrap(), 3);
    assert_eq!(
        acme.runs(10).await.unwrap(),
        runs[..3].to_vec(),
        "the newest stay"
    );
    assert_eq!(acme.prune_runs(3).await.unwrap(), 0);
    assert_eq!(
        beta.runs(10).await.unwrap().len(),
        2,
        "pruning is per tenant"
    );
    assert_eq!(acme.prune_runs(0).await.unwrap(), 3);
    assert!(acme.runs(10).await.unwrap().is_empty());
    assert_eq!(beta.runs(10).await.unwrap().len(), 2);

    assert!(matches!(
        acme.record_run(&NewRun {
            logs_json: "[",
            ..run(&sha, "ok", 1)
        })
        .await,
        Err(StorageError::Invalid(_))
    ));
    assert!(matches!(
        acme.record_run(&run(&sha, "ok", u64::MAX)).await,
        Err(StorageError::Invalid(_))
    ));
}

async fn usage_accumulates_per_utc_day(ctx: Ctx) {
    let acme = ctx.tenant("acme").await;
    let beta = ctx.tenant("beta").await;
    acme.add_usage(1, 0, 0).await.unwrap();
    acme.add_usage(2, 1, 500).await.unwrap();
    acme.add_usage(0, 2, 1_000_000_000_000).await.unwrap();
    let usage = acme.usage(7).await.unwrap();
    assert_eq!(usage.len(), 1);
    // Midnight UTC may pass between the writes and this check; accept either day.
    let today = utc_day(now_ms());
    assert!(usage[0].day <= today, "{usage:?}");
    assert_eq!(
        (usage[0].requests, usage[0].plugin_runs, usage[0].fuel_used),
        (3, 3, 1_000_000_000_500)
    );
    assert!(acme.usage(0).await.unwrap().is_empty());
    assert!(beta.usage(7).await.unwrap().is_empty());
    assert!(matches!(
        acme.add_usage(-1, 0, 0).await,
        Err(StorageError::Invalid(_))
    ));
}

async fn a_batch_writes_runs_usage_and_pruning_together_or_nothing(ctx: Ctx) {
    let acme = ctx.tenant("acme").await;
    let beta = ctx.tenant("beta").await;
    let sha = "b".repeat(64);
    beta.record_run(&run(&sha, "ok", 9)).await.unwrap();
    let delta = UsageDelta {
        requests: 7,
        plugin_runs: 4,
        fuel: 10,
    };
    let four: Vec<NewRun<'_>> = (1..=4).map(|fuel| run(&sha, "ok", fuel)).collect();
    acme.record_batch(&four, delta, None).await.unwrap();
    let runs = acme.runs(10).await.unwrap();
    assert_eq!(
        runs.iter().map(|r| r.fuel_used).collect::<Vec<_>>(),
        [4, 3, 2, 1],
        "written oldest first, listed newest first"
    );
    // A second batch prunes to the newest three, its own rows included.
    acme.record_batch(&four[..2], delta, Some(3)).await.unwrap();
    assert_eq!(
        acme.runs(10)
            .await
            .unwrap()
            .iter()
            .map(|r| r.fuel_used)
            .collect::<Vec<_>>(),
        [2, 1, 4]
    );
    let usage = acme.usage(1).await.unwrap();
    assert_eq!(
        (usage[0].requests, usage[0].plugin_runs, usage[0].fuel_used),
        (14, 8, 20)
    );
    // Usage alone (no runs) is a batch too.
    acme.record_batch(
        &[],
        UsageDelta {
            requests: 1,
            ..UsageDelta::default()
        },
        Some(3),
    )
    .await
    .unwrap();
    assert_eq!(acme.usage(1).await.unwrap()[0].requests, 15);

    // One bad row, or a negative count, and nothing of the batch is written.
    let bad = [
        run(&sha, "ok", 5),
        NewRun {
            logs_json: "[",
            ..run(&sha, "ok", 6)
        },
    ];
    assert!(matches!(
        acme.record_batch(&bad, delta, Some(0)).await,
        Err(StorageError::Invalid(_))
    ));
    let negative = UsageDelta {
        requests: -1,
        ..delta
    };
    assert!(matches!(
        acme.record_batch(&four, negative, Some(0)).await,
        Err(StorageError::Invalid(_))
    ));
    assert_eq!(acme.runs(10).await.unwrap().len(), 3);
    assert_eq!(acme.usage(1).await.unwrap()[0].requests, 15);
    assert_eq!(
        beta.runs(10).await.unwrap().len(),
        1,
        "pruning is per tenant"
    );
    let ghost = ctx.storage.tenant(&tid("ghost"));
    assert!(matches!(
        ghost.record_batch(&four, delta, None).await,
        Err(StorageError::NotFound(_))
    ));
}

async fn writes_for_a_tenant_that_does_not_exist_are_not_found(ctx: Ctx) {
    let ghost = ctx.storage.tenant(&tid("ghost"));
    let not_found = |r: Result<(), StorageError>| {
        assert!(
            matches!(r, Err(StorageError::NotFound(ref m)) if m.contains("ghost")),
            "{r:?}"
        );
    };
    not_found(ghost.kv_put("k", "v").await);
    not_found(
        ghost
            .record_run(&run(&"a".repeat(64), "ok", 1))
            .await
            .map(|_| ()),
    );
    not_found(ghost.add_usage(1, 1, 1).await);
    assert_eq!(ghost.kv_get("k").await.unwrap(), None);
    assert!(ghost.runs(10).await.unwrap().is_empty());
}

async fn reconnecting_keeps_data_and_reapplies_nothing(ctx: Ctx) {
    let acme = ctx.tenant("acme").await;
    acme.kv_put("k", "v").await.unwrap();
    let again = crate::Storage::connect(&ctx.url, &crate::testing::harness::options())
        .await
        .unwrap();
    assert_eq!(again.backend(), ctx.backend());
    assert_eq!(
        again
            .tenant(&tid("acme"))
            .kv_get("k")
            .await
            .unwrap()
            .as_deref(),
        Some("v")
    );
    again.ping().await.unwrap();
    again.close().await;
}
