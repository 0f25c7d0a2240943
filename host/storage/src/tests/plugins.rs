//! Plugin versions, and the history of what is live with two hosts changing
//! it at once.

use std::time::Duration;

use crate::testing::harness::{Ctx, binary, options, upload};
use crate::{
    NewPluginVersion, NewRelease, PluginAbout, PluginStoreLimits, ReleaseEvent, Storage,
    StorageError, StorageOptions, VersionDeletion,
};

crate::both_backends!(via crate::testing::harness::run;
    plugin_versions_are_stored_once_by_hash_and_stay_with_their_tenant,
    uploads_that_lie_about_their_binary_are_refused,
    concurrent_activations_from_two_hosts_keep_the_history_consistent,
    plugin_storage_is_capped_and_unused_versions_are_deleted,
    what_a_plugin_says_about_itself_is_stored_with_it,
);

async fn plugin_versions_are_stored_once_by_hash_and_stay_with_their_tenant(ctx: Ctx) {
    let acme = ctx.tenant("acme").await;
    let beta = ctx.tenant("beta").await;

    let first = upload(&acme, 1).await;
    let (bytes_1, sha_1) = binary(1);
    assert_eq!(first.sha256, sha_1);
    assert_eq!(first.version, "1.0.1");
    assert_eq!(first.hooks, vec!["categories", "commission"]);
    assert_eq!(first.size_bytes, bytes_1.len() as u64);
    assert_eq!(first.uploaded_by, "user_alice");
    assert!(!first.active);
    assert_eq!(
        upload(&acme, 1).await,
        first,
        "same hash: stored once, same record"
    );

    // Distinct creation times, so "newest first" is observable.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let second = upload(&acme, 2).await;
    assert_eq!(
        acme.plugin_versions().await.unwrap(),
        vec![second.clone(), first.clone()]
    );
    assert_eq!(
        acme.plugin_version(&sha_1).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(acme.plugin_version(&"0".repeat(64)).await.unwrap(), None);
    assert_eq!(
        acme.plugin_binary(&sha_1).await.unwrap(),
        Some(bytes_1.clone())
    );
    assert_eq!(acme.plugin_binary(&"0".repeat(64)).await.unwrap(), None);

    // The attack: beta knows acme's hash and asks for it by every route.
    assert!(beta.plugin_versions().await.unwrap().is_empty());
    assert_eq!(beta.plugin_version(&sha_1).await.unwrap(), None);
    assert_eq!(beta.plugin_binary(&sha_1).await.unwrap(), None);
    beta.create_installation("main", "mallory").await.unwrap();
    assert!(matches!(
        beta.create_release(&release(&sha_1)).await,
        Err(StorageError::NotFound(_))
    ));
    assert!(beta.live_releases().await.unwrap().is_empty());

    // The same binary uploaded by beta is beta's own copy; live there, it is
    // not acme's.
    let beta_copy = upload(&beta, 1).await;
    assert_eq!(beta_copy.sha256, sha_1);
    let live = beta.create_release(&release(&sha_1)).await.unwrap();
    beta.activate_release("main", live.id, "activate", "user_bob")
        .await
        .unwrap();
    assert!(beta.plugin_version(&sha_1).await.unwrap().unwrap().active);
    assert!(!acme.plugin_version(&sha_1).await.unwrap().unwrap().active);

    let nobody = ctx.storage.tenant(&crate::testing::harness::tid("nobody"));
    let (bytes, sha) = binary(9);
    let hooks = vec![];
    let upload_for_nobody = nobody
        .put_plugin_version(&NewPluginVersion {
            sha256: &sha,
            name: "x",
            version: "1",
            hooks: &hooks,
            size_bytes: bytes.len() as u64,
            binary: &bytes,
            uploaded_by: "u",
            about: PluginAbout::default(),
        })
        .await;
    assert!(matches!(upload_for_nobody, Err(StorageError::NotFound(m)) if m.contains("nobody")));
}

async fn uploads_that_lie_about_their_binary_are_refused(ctx: Ctx) {
    let acme = ctx.tenant("acme").await;
    let (bytes, sha) = binary(1);
    let (_, other_sha) = binary(2);
    let hooks = vec!["categories".to_owned()];
    let good = NewPluginVersion {
        sha256: &sha,
        name: "p",
        version: "1.0.0",
        hooks: &hooks,
        size_bytes: bytes.len() as u64,
        binary: &bytes,
        uploaded_by: "u",
        about: PluginAbout::default(),
    };
    let upper = sha.to_uppercase();
    let cases = [
        NewPluginVersion {
            sha256: &other_sha,
            ..good
        },
        NewPluginVersion {
            sha256: &upper,
            ..good
        },
        NewPluginVersion {
            sha256: "abc",
            ..good
        },
        NewPluginVersion {
            size_bytes: 1,
            ..good
        },
        NewPluginVersion { name: " ", ..good },
        NewPluginVersion {
            version: "",
            ..good
        },
    ];
    for case in &cases {
        assert!(
            matches!(
                acme.put_plugin_version(case).await,
                Err(StorageError::Invalid(_))
            ),
            "{case:?}"
        );
    }
    assert!(acme.plugin_versions().await.unwrap().is_empty());
    acme.put_plugin_version(&good).await.unwrap();
}

/// What a rollback at `index` of an oldest-first history must have chosen:
/// the newest release live before, other than the one live just before it.
fn expected_rollback(history: &[ReleaseEvent], index: usize) -> Option<i64> {
    let current = history[index - 1].release_id;
    history[..index - 1]
        .iter()
        .rev()
        .filter_map(|e| e.release_id)
        .find(|id| Some(*id) != current)
}

async fn concurrent_activations_from_two_hosts_keep_the_history_consistent(ctx: Ctx) {
    let acme = ctx.tenant("acme").await;
    acme.create_installation("main", "u").await.unwrap();
    let mut releases = Vec::new();
    for n in 1..=3 {
        let sha = upload(&acme, n).await.sha256;
        releases.push(acme.create_release(&release(&sha)).await.unwrap().id);
    }
    let other_host = Storage::connect(&ctx.url, &options()).await.unwrap();
    let hosts = [ctx.storage.clone(), other_host.clone()];

    let mut tasks = Vec::new();
    for i in 0..24 {
        let db = hosts[i % 2].tenant(acme.tenant_id());
        let id = releases[i % 3];
        tasks.push(tokio::spawn(async move {
            match i % 4 {
                0 | 1 => db
                    .activate_release("main", id, "activate", "racer")
                    .await
                    .map(|_| ()),
                _ => match db.rollback_release("main", None, "racer").await {
                    Err(StorageError::Conflict(_)) => Ok(()),
                    other => other.map(|_| ()),
                },
            }
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }

    let mut history = acme.release_events("main", 1000).await.unwrap();
    history.reverse();
    assert!(history.len() >= 12, "every activation is recorded");
    for (index, entry) in history.iter().enumerate() {
        if entry.action == "rollback" {
            assert_eq!(
                entry.release_id,
                expected_rollback(&history, index),
                "rollback #{index} did not follow from the entry before it: {history:#?}"
            );
        }
    }
    assert_eq!(
        acme.installation("main")
            .await
            .unwrap()
            .unwrap()
            .active_release,
        history.last().and_then(|e| e.release_id)
    );
    other_host.close().await;
}

fn release(sha: &str) -> NewRelease<'_> {
    NewRelease {
        installation: "main",
        sha256: sha,
        settings: "{}",
        quota: "{}",
        note: None,
        created_by: "u",
    }
}

async fn plugin_storage_is_capped_and_unused_versions_are_deleted(ctx: Ctx) {
    ctx.tenant("acme").await;
    let (one, _) = binary(1);
    // A host whose tenants may store two versions, or three versions' bytes
    // less one.
    let capped = |max_versions, max_bytes| {
        let url = ctx.url.clone();
        async move {
            Storage::connect(
                &url,
                &StorageOptions {
                    plugin_limits: PluginStoreLimits {
                        max_versions,
                        max_bytes,
                    },
                    ..options()
                },
            )
            .await
            .unwrap()
        }
    };
    let by_count = capped(2, u64::MAX).await;
    let acme = by_count.tenant(&crate::testing::harness::tid("acme"));
    upload(&acme, 1).await;
    upload(&acme, 2).await;
    let (bytes, sha) = binary(3);
    let third = NewPluginVersion {
        sha256: &sha,
        name: "p",
        version: "3",
        hooks: &[],
        size_bytes: bytes.len() as u64,
        binary: &bytes,
        uploaded_by: "u",
        about: PluginAbout::default(),
    };
    match acme.put_plugin_version(&third).await {
        Err(StorageError::PluginStoreFull(why)) => {
            assert!(why.contains("2 plugin versions"), "{why}")
        }
        other => panic!("expected the cap, got {other:?}"),
    }
    // Storing a version it has is not a new one.
    upload(&acme, 2).await;

    // One used by a release cannot go; an unused one can, and makes room.
    acme.create_installation("main", "u").await.unwrap();
    let (_, sha_1) = binary(1);
    let (_, sha_2) = binary(2);
    let used = acme.create_release(&release(&sha_1)).await.unwrap();
    assert_eq!(
        acme.delete_plugin_version(&sha_1).await.unwrap(),
        VersionDeletion::InUse(vec![format!("main#{}", used.id)])
    );
    assert_eq!(
        acme.delete_plugin_version(&sha_2).await.unwrap(),
        VersionDeletion::Deleted
    );
    assert_eq!(
        acme.delete_plugin_version(&sha_2).await.unwrap(),
        VersionDeletion::Missing
    );
    assert_eq!(
        acme.delete_plugin_version("not-a-sha").await.unwrap(),
        VersionDeletion::Missing
    );
    acme.put_plugin_version(&third).await.unwrap();
    // Another tenant's versions are not counted, nor deletable.
    let beta = ctx.tenant("beta").await;
    let beta_capped = by_count.tenant(&crate::testing::harness::tid("beta"));
    upload(&beta_capped, 1).await;
    assert_eq!(
        beta.delete_plugin_version(&sha).await.unwrap(),
        VersionDeletion::Missing
    );
    assert!(acme.plugin_version(&sha).await.unwrap().is_some());
    by_count.close().await;

    // By bytes: two fit, a third does not.
    let by_bytes = capped(u32::MAX, 2 * one.len() as u64).await;
    let gamma_id = "gamma";
    ctx.tenant(gamma_id).await;
    let gamma = by_bytes.tenant(&crate::testing::harness::tid(gamma_id));
    upload(&gamma, 1).await;
    upload(&gamma, 2).await;
    assert!(matches!(
        gamma.put_plugin_version(&third).await,
        Err(StorageError::PluginStoreFull(_))
    ));
    by_bytes.close().await;
}

async fn what_a_plugin_says_about_itself_is_stored_with_it(ctx: Ctx) {
    let acme = ctx.tenant("acme").await;
    let old = upload(&acme, 1).await;
    assert_eq!(
        (
            old.wit_version.as_str(),
            old.description.as_str(),
            old.settings_schema
        ),
        ("0.1.0", "", None),
        "a 0.1.0 plugin says nothing more"
    );
    let (bytes, sha) = binary(2);
    let schema = r#"{"type":"object"}"#;
    let stored = acme
        .put_plugin_version(&NewPluginVersion {
            sha256: &sha,
            name: "p",
            version: "2.0.0",
            hooks: &["product-category".to_owned()],
            size_bytes: bytes.len() as u64,
            binary: &bytes,
            uploaded_by: "u",
            about: PluginAbout {
                wit_version: "0.2.0",
                description: "Chooses categories.",
                settings_schema: Some(schema),
            },
        })
        .await
        .unwrap();
    assert_eq!(stored.wit_version, "0.2.0");
    assert_eq!(stored.description, "Chooses categories.");
    assert_eq!(stored.settings_schema.as_deref(), Some(schema));
    assert_eq!(acme.plugin_version(&sha).await.unwrap(), Some(stored));
}
