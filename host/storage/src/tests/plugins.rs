//! Plugin versions and the activation history, including two hosts changing it
//! at once.

use std::time::Duration;

use crate::testing::harness::{Ctx, binary, options, upload};
use crate::{Activation, NewPluginVersion, Storage, StorageError};

crate::both_backends!(via crate::testing::harness::run;
    plugin_versions_are_stored_once_by_hash_and_stay_with_their_tenant,
    uploads_that_lie_about_their_binary_are_refused,
    activation_history_drives_the_active_plugin_and_rollback,
    concurrent_activations_from_two_hosts_keep_the_history_consistent,
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
    assert!(matches!(
        beta.activate(&sha_1, "mallory").await,
        Err(StorageError::NotFound(_))
    ));
    assert_eq!(beta.active_plugin().await.unwrap(), None);
    assert_eq!(acme.active_plugin().await.unwrap(), None, "acme untouched");

    // The same binary uploaded by beta is beta's own copy.
    let beta_copy = upload(&beta, 1).await;
    assert_eq!(beta_copy.sha256, sha_1);
    beta.activate(&sha_1, "user_bob").await.unwrap();
    assert_eq!(acme.active_plugin().await.unwrap(), None);

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

fn action(a: &Activation) -> (&str, Option<&str>) {
    (a.action.as_str(), a.sha256.as_deref())
}

async fn activation_history_drives_the_active_plugin_and_rollback(ctx: Ctx) {
    let acme = ctx.tenant("acme").await;
    let a = upload(&acme, 1).await.sha256;
    let b = upload(&acme, 2).await.sha256;

    match acme.rollback("alice").await {
        Err(StorageError::Conflict(m)) => assert_eq!(m, "no previous plugin to roll back to"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(matches!(
        acme.activate(&"f".repeat(64), "alice").await,
        Err(StorageError::NotFound(_))
    ));

    let first = acme.activate(&a, "alice").await.unwrap();
    assert_eq!(action(&first), ("activate", Some(a.as_str())));
    assert_eq!(first.actor, "alice");
    assert!(first.created_at > 0);
    assert_eq!(
        acme.active_plugin().await.unwrap().as_deref(),
        Some(a.as_str())
    );
    assert!(
        matches!(acme.rollback("alice").await, Err(StorageError::Conflict(_))),
        "only one plugin ever active: nothing to roll back to"
    );

    acme.activate(&b, "bob").await.unwrap();
    let versions = acme.plugin_versions().await.unwrap();
    let active: Vec<_> = versions
        .iter()
        .filter(|v| v.active)
        .map(|v| &v.sha256)
        .collect();
    assert_eq!(active, vec![&b]);
    assert!(acme.plugin_version(&b).await.unwrap().unwrap().active);
    assert!(!acme.plugin_version(&a).await.unwrap().unwrap().active);

    let back = acme.rollback("carol").await.unwrap();
    assert_eq!(action(&back), ("rollback", Some(a.as_str())));
    assert_eq!(back.actor, "carol");
    assert_eq!(
        acme.active_plugin().await.unwrap().as_deref(),
        Some(a.as_str())
    );
    // Before the current one (a) was b: rolling back again returns there.
    let again = acme.rollback("carol").await.unwrap();
    assert_eq!(action(&again), ("rollback", Some(b.as_str())));

    let off = acme.deactivate("dave").await.unwrap();
    assert_eq!(action(&off), ("deactivate", None));
    assert_eq!(acme.active_plugin().await.unwrap(), None);
    assert!(
        acme.plugin_versions()
            .await
            .unwrap()
            .iter()
            .all(|v| !v.active)
    );
    // After a deactivation, rollback restores the last active plugin.
    let restored = acme.rollback("dave").await.unwrap();
    assert_eq!(action(&restored), ("rollback", Some(b.as_str())));

    let history = acme.activations(10).await.unwrap();
    let history: Vec<_> = history.iter().map(action).collect();
    assert_eq!(
        history,
        vec![
            ("rollback", Some(b.as_str())),
            ("deactivate", None),
            ("rollback", Some(b.as_str())),
            ("rollback", Some(a.as_str())),
            ("activate", Some(b.as_str())),
            ("activate", Some(a.as_str())),
        ]
    );
    assert_eq!(acme.activations(2).await.unwrap().len(), 2);

    let beta = ctx.tenant("beta").await;
    assert!(beta.activations(10).await.unwrap().is_empty());
    assert!(matches!(
        beta.rollback("mallory").await,
        Err(StorageError::Conflict(_))
    ));
    assert_eq!(
        acme.active_plugin().await.unwrap().as_deref(),
        Some(b.as_str())
    );
}

/// What `rollback` must have chosen at `index` of an oldest-first history.
fn expected_rollback(history: &[Activation], index: usize) -> Option<&str> {
    let current = history[index - 1].sha256.as_deref();
    history[..index - 1]
        .iter()
        .rev()
        .filter_map(|a| a.sha256.as_deref())
        .find(|sha| Some(*sha) != current)
}

async fn concurrent_activations_from_two_hosts_keep_the_history_consistent(ctx: Ctx) {
    let acme = ctx.tenant("acme").await;
    let shas = [
        upload(&acme, 1).await.sha256,
        upload(&acme, 2).await.sha256,
        upload(&acme, 3).await.sha256,
    ];
    let other_host = Storage::connect(&ctx.url, &options()).await.unwrap();
    let hosts = [ctx.storage.clone(), other_host.clone()];

    let mut tasks = Vec::new();
    for i in 0..24 {
        let db = hosts[i % 2].tenant(acme.tenant_id());
        let sha = shas[i % 3].clone();
        tasks.push(tokio::spawn(async move {
            match i % 4 {
                0 | 1 => db.activate(&sha, "racer").await.map(|_| ()),
                _ => match db.rollback("racer").await {
                    Err(StorageError::Conflict(_)) => Ok(()),
                    other => other.map(|_| ()),
                },
            }
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }

    let mut history = acme.activations(1000).await.unwrap();
    history.reverse();
    assert!(history.len() >= 12, "every activation is recorded");
    for (index, entry) in history.iter().enumerate() {
        if entry.action == "rollback" {
            assert_eq!(
                entry.sha256.as_deref(),
                expected_rollback(&history, index),
                "rollback #{index} did not follow from the entry before it: {history:#?}"
            );
        }
    }
    assert_eq!(
        acme.active_plugin().await.unwrap(),
        history.last().and_then(|a| a.sha256.clone())
    );
    other_host.close().await;
}
