//! Installations and releases on both backends: drafts change nothing live,
//! activation and rollback move one installation's live release and leave a
//! history, the chain comes back in the tenant's order, and another tenant
//! reaches none of it by any id. Then the migration from the single-plugin
//! schema, on a database built by the previous release's migrations.

use sqlx::{AnyConnection, Connection};

use crate::testing::harness::{Ctx, binary, tid, upload};
use crate::testing::{Db, TestDb};
use crate::{NewRelease, ReleaseRecord, StorageError, TenantDb};

crate::both_backends!(via crate::testing::harness::run;
    installations_are_named_ordered_and_capped,
    drafts_change_nothing_until_activated_and_rollback_restores_the_release,
    deleting_drafts_and_installations,
    another_tenant_reaches_nothing_by_any_id,
    output_policies_apply_to_all_or_one,
);

crate::both_backends!(
    migration_from_the_single_plugin_schema,
    a_single_plugin_database_migrates_to_one_installation
);

fn release<'a>(installation: &'a str, sha: &'a str, settings: &'a str) -> NewRelease<'a> {
    NewRelease {
        installation,
        sha256: sha,
        settings,
        quota: r#"{"fuel": 1000000}"#,
        note: None,
        created_by: "user_alice",
    }
}

async fn live(db: &TenantDb) -> Vec<(String, i64)> {
    db.live_releases()
        .await
        .unwrap()
        .into_iter()
        .map(|l| (l.release.installation, l.release.id))
        .collect()
}

async fn installations_are_named_ordered_and_capped(ctx: Ctx) {
    let acme = ctx.tenant("acme").await;
    for bad in ["", "Commission", "-x", "a b", &"x".repeat(41), "ünï"] {
        assert!(
            matches!(
                acme.create_installation(bad, "u").await,
                Err(StorageError::Invalid(_))
            ),
            "{bad:?}"
        );
    }
    let commission = acme.create_installation("commission", "u").await.unwrap();
    assert_eq!(commission.position, 0);
    assert_eq!(commission.active_release, None);
    let emails = acme.create_installation("brand-emails", "u").await.unwrap();
    assert_eq!(emails.position, 1);
    match acme.create_installation("commission", "u").await {
        Err(StorageError::Conflict(m)) => assert!(m.contains("already"), "{m}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    let names = |list: Vec<crate::InstallationRecord>| -> Vec<String> {
        list.into_iter().map(|i| i.name).collect()
    };
    assert_eq!(
        names(acme.installations().await.unwrap()),
        ["commission", "brand-emails"]
    );
    let reordered = acme
        .reorder_installations(&["brand-emails".into(), "commission".into()])
        .await
        .unwrap();
    assert_eq!(names(reordered), ["brand-emails", "commission"]);
    assert_eq!(
        names(acme.installations().await.unwrap()),
        ["brand-emails", "commission"]
    );
    for bad in [
        vec!["commission".to_owned()],
        vec!["commission".into(), "commission".into()],
        vec!["commission".into(), "brand-emails".into(), "ghost".into()],
    ] {
        match acme.reorder_installations(&bad).await {
            Err(StorageError::Invalid(m)) => assert!(m.contains("exactly once"), "{m}"),
            other => panic!("expected a refusal for {bad:?}, got {other:?}"),
        }
    }
    for n in 2..crate::MAX_INSTALLATIONS {
        acme.create_installation(&format!("i{n}"), "u")
            .await
            .unwrap();
    }
    assert!(matches!(
        acme.create_installation("one-too-many", "u").await,
        Err(StorageError::Conflict(_))
    ));
}

async fn drafts_change_nothing_until_activated_and_rollback_restores_the_release(ctx: Ctx) {
    let acme = ctx.tenant("acme").await;
    let one = upload(&acme, 1).await.sha256;
    let two = upload(&acme, 2).await.sha256;
    acme.create_installation("commission", "u").await.unwrap();
    acme.create_installation("brand-emails", "u").await.unwrap();

    // Bad references and bad JSON are refused; nothing is stored.
    assert!(matches!(
        acme.create_release(&release("ghost", &one, "{}")).await,
        Err(StorageError::NotFound(_))
    ));
    assert!(matches!(
        acme.create_release(&release("commission", &"0".repeat(64), "{}"))
            .await,
        Err(StorageError::NotFound(_))
    ));
    assert!(matches!(
        acme.create_release(&release("commission", &one, "{nope"))
            .await,
        Err(StorageError::Invalid(_))
    ));
    let too_big = format!("\"{}\"", "x".repeat(crate::MAX_RELEASE_SETTINGS_BYTES));
    assert!(matches!(
        acme.create_release(&release("commission", &one, &too_big))
            .await,
        Err(StorageError::Invalid(_))
    ));
    assert!(acme.releases("commission", 10).await.unwrap().is_empty());

    let r1 = acme
        .create_release(&release("commission", &one, r#"{"rate": 1}"#))
        .await
        .unwrap();
    assert!(!r1.ever_active);
    assert_eq!(live(&acme).await, [], "a draft is not live");
    acme.activate_release("commission", r1.id, "activate", "user_alice")
        .await
        .unwrap();
    assert_eq!(live(&acme).await, [("commission".to_owned(), r1.id)]);

    // A second draft, then live; the emails installation joins the chain.
    let r2 = acme
        .create_release(&release("commission", &two, r#"{"rate": 2}"#))
        .await
        .unwrap();
    assert_eq!(live(&acme).await, [("commission".to_owned(), r1.id)]);
    acme.activate_release("commission", r2.id, "activate", "user_alice")
        .await
        .unwrap();
    let e1 = acme
        .create_release(&release("brand-emails", &one, "{}"))
        .await
        .unwrap();
    acme.activate_release("brand-emails", e1.id, "activate", "u")
        .await
        .unwrap();
    assert_eq!(
        live(&acme).await,
        [
            ("commission".to_owned(), r2.id),
            ("brand-emails".to_owned(), e1.id)
        ]
    );
    // The live release carries exactly what was stored.
    let chain = acme.live_releases().await.unwrap();
    assert_eq!(chain[0].release.settings, r#"{"rate": 2}"#);
    assert_eq!(chain[0].release.sha256, two);
    assert_eq!(chain[0].release.quota, r#"{"fuel": 1000000}"#);

    // A release of one installation is not another's.
    assert!(matches!(
        acme.activate_release("brand-emails", r1.id, "activate", "u")
            .await,
        Err(StorageError::NotFound(_))
    ));

    // Rollback: to the previous release, then back (twice returns).
    let back = acme
        .rollback_release("commission", None, "u")
        .await
        .unwrap();
    assert_eq!(back.release_id, Some(r1.id));
    assert_eq!(back.action, "rollback");
    assert_eq!(live(&acme).await[0], ("commission".to_owned(), r1.id));
    acme.rollback_release("commission", None, "u")
        .await
        .unwrap();
    assert_eq!(live(&acme).await[0], ("commission".to_owned(), r2.id));
    // Across three releases, by id.
    let r3 = acme
        .create_release(&release("commission", &one, r#"{"rate": 3}"#))
        .await
        .unwrap();
    acme.activate_release("commission", r3.id, "activate", "u")
        .await
        .unwrap();
    acme.rollback_release("commission", Some(r1.id), "u")
        .await
        .unwrap();
    assert_eq!(live(&acme).await[0], ("commission".to_owned(), r1.id));
    // A draft was never live: nothing to roll back to.
    let draft = acme
        .create_release(&release("commission", &two, "{}"))
        .await
        .unwrap();
    assert!(matches!(
        acme.rollback_release("commission", Some(draft.id), "u")
            .await,
        Err(StorageError::Conflict(_))
    ));

    // Deactivated: out of the chain; a rollback brings the last one back.
    acme.deactivate_installation("commission", "u")
        .await
        .unwrap();
    assert_eq!(live(&acme).await, [("brand-emails".to_owned(), e1.id)]);
    let again = acme
        .rollback_release("commission", None, "u")
        .await
        .unwrap();
    assert_eq!(again.release_id, Some(r1.id));

    // The history, newest first, names every change and who made it.
    let events = acme.release_events("commission", 20).await.unwrap();
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "rollback",
            "deactivate",
            "rollback",
            "activate",
            "rollback",
            "rollback",
            "activate",
            "activate"
        ]
    );
    assert_eq!(events.last().unwrap().actor, "user_alice");
    // Nothing to roll back to in an installation that never had a release.
    acme.create_installation("empty", "u").await.unwrap();
    assert!(matches!(
        acme.rollback_release("empty", None, "u").await,
        Err(StorageError::Conflict(_))
    ));
    assert!(matches!(
        acme.rollback_release("ghost", None, "u").await,
        Err(StorageError::NotFound(_))
    ));
}

async fn deleting_drafts_and_installations(ctx: Ctx) {
    let acme = ctx.tenant("acme").await;
    let one = upload(&acme, 1).await.sha256;
    acme.create_installation("commission", "u").await.unwrap();
    let live_one = acme
        .create_release(&release("commission", &one, "{}"))
        .await
        .unwrap();
    acme.activate_release("commission", live_one.id, "activate", "u")
        .await
        .unwrap();
    let draft = acme
        .create_release(&release("commission", &one, r#"{"x": 1}"#))
        .await
        .unwrap();
    match acme.delete_release("commission", live_one.id).await {
        Err(StorageError::Conflict(m)) => assert!(m.contains("only drafts"), "{m}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    acme.delete_release("commission", draft.id).await.unwrap();
    assert!(matches!(
        acme.delete_release("commission", draft.id).await,
        Err(StorageError::NotFound(_))
    ));
    let ids: Vec<i64> = acme
        .releases("commission", 10)
        .await
        .unwrap()
        .iter()
        .map(|r: &ReleaseRecord| r.id)
        .collect();
    assert_eq!(ids, [live_one.id]);

    assert!(acme.delete_installation("commission").await.unwrap());
    assert!(!acme.delete_installation("commission").await.unwrap());
    assert!(live(&acme).await.is_empty());
    assert!(acme.releases("commission", 10).await.unwrap().is_empty());
    assert!(
        acme.release_events("commission", 10)
            .await
            .unwrap()
            .is_empty()
    );
    // The name is free again, with an empty history.
    acme.create_installation("commission", "u").await.unwrap();
    assert!(matches!(
        acme.rollback_release("commission", None, "u").await,
        Err(StorageError::Conflict(_))
    ));
}

async fn another_tenant_reaches_nothing_by_any_id(ctx: Ctx) {
    let acme = ctx.tenant("acme").await;
    let beta = ctx.tenant("beta").await;
    let one = upload(&acme, 1).await.sha256;
    acme.create_installation("commission", "u").await.unwrap();
    let r = acme
        .create_release(&release("commission", &one, r#"{"secret": "acme"}"#))
        .await
        .unwrap();
    acme.activate_release("commission", r.id, "activate", "u")
        .await
        .unwrap();
    ctx.storage
        .platform()
        .set_installation_quota(&tid("acme"), "commission", r#"{"fuel": 5}"#)
        .await
        .unwrap();

    // Beta, with the same installation name and acme's ids and hash.
    assert_eq!(beta.installation("commission").await.unwrap(), None);
    assert!(beta.installations().await.unwrap().is_empty());
    beta.create_installation("commission", "mallory")
        .await
        .unwrap();
    assert!(beta.releases("commission", 10).await.unwrap().is_empty());
    assert_eq!(beta.release("commission", r.id).await.unwrap(), None);
    assert!(matches!(
        beta.activate_release("commission", r.id, "activate", "mallory")
            .await,
        Err(StorageError::NotFound(_))
    ));
    assert!(matches!(
        beta.rollback_release("commission", Some(r.id), "mallory")
            .await,
        Err(StorageError::NotFound(_))
    ));
    assert!(matches!(
        beta.delete_release("commission", r.id).await,
        Err(StorageError::NotFound(_))
    ));
    assert!(matches!(
        beta.create_release(&release("commission", &one, "{}"))
            .await,
        Err(StorageError::NotFound(_))
    ));
    assert!(beta.live_releases().await.unwrap().is_empty());
    assert_eq!(beta.installation_quota("commission").await.unwrap(), None);
    assert!(
        beta.release_events("commission", 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Acme's is untouched.
    assert_eq!(live(&acme).await, [("commission".to_owned(), r.id)]);
    assert_eq!(
        acme.installation_quota("commission")
            .await
            .unwrap()
            .as_deref(),
        Some(r#"{"fuel": 5}"#)
    );
    // A quota for an installation that does not exist is refused.
    assert!(matches!(
        ctx.storage
            .platform()
            .set_installation_quota(&tid("acme"), "ghost", "{}")
            .await,
        Err(StorageError::NotFound(_))
    ));
}

/// Builds a database with the previous release's schema (every migration up
/// to `kv usage`), as that release left it: tenant `acme` ran plugin 1, then
/// 2, rolled back to 1 and has settings and a quota; `beta` activated and
/// deactivated; `gamma` never had a plugin.
async fn a_single_plugin_database_migrates_to_one_installation(kind: Db) {
    let db = TestDb::new(kind).await;
    sqlx::any::install_default_drivers();
    let url = match kind {
        Db::Sqlite => format!("{}?mode=rwc", db.url),
        Db::Postgres => db.url.clone(),
    };
    let mut conn = AnyConnection::connect(&url).await.unwrap();
    match kind {
        Db::Sqlite => crate::migrate::sqlite_until(7),
        Db::Postgres => crate::migrate::postgres_until(8),
    }
    .run_direct(None, &mut conn, false)
    .await
    .unwrap();
    let (bytes_1, sha_1) = binary(1);
    let (bytes_2, sha_2) = binary(2);
    let hex = |b: &[u8]| hex::encode(b);
    let blob = |b: &[u8]| match kind {
        Db::Sqlite => format!("X'{}'", hex(b)),
        Db::Postgres => format!("'\\x{}'::bytea", hex(b)),
    };
    let mut statements = vec![];
    for t in ["acme", "beta", "gamma"] {
        statements.push(format!(
            "INSERT INTO tenants (id, org_id, name, rate_limit_per_sec, rate_limit_burst, max_concurrency, created_at, updated_at) \
             VALUES ('{t}', 'org_{t}', '{t}', 10, 10, 2, 1, 1)"
        ));
    }
    for (t, sha, bytes) in [
        ("acme", &sha_1, &bytes_1),
        ("acme", &sha_2, &bytes_2),
        ("beta", &sha_1, &bytes_1),
    ] {
        statements.push(format!(
            "INSERT INTO plugin_versions (tenant_id, sha256, name, version, hooks, size_bytes, wasm_binary, uploaded_by, created_at) \
             VALUES ('{t}', '{sha}', 'p', '1.0.0', '[\"commission\"]', {}, {}, 'user', 1)",
            bytes.len(),
            blob(bytes)
        ));
    }
    for (t, sha, action, at) in [
        ("acme", Some(&sha_1), "activate", 10),
        ("acme", Some(&sha_2), "activate", 20),
        ("acme", Some(&sha_1), "rollback", 30),
        ("beta", Some(&sha_1), "activate", 40),
        ("beta", None, "deactivate", 50),
    ] {
        let sha = sha.map_or("NULL".to_owned(), |s| format!("'{s}'"));
        statements.push(format!(
            "INSERT INTO activations (tenant_id, sha256, action, actor, created_at) \
             VALUES ('{t}', {sha}, '{action}', 'user_{t}', {at})"
        ));
    }
    statements.push(
        "INSERT INTO plugin_settings (tenant_id, json, version, updated_at) VALUES ('acme', '{\"cap\": 5}', 3, 1)".into(),
    );
    statements.push(
        "INSERT INTO quotas (tenant_id, json, updated_at) VALUES ('acme', '{\"fuel\": 77}', 1)"
            .into(),
    );
    for sql in statements {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    conn.close().await.unwrap();

    // The new release migrates it on start.
    let storage = crate::Storage::connect(&db.url, &crate::testing::harness::options())
        .await
        .unwrap();
    let acme = storage.tenant(&tid("acme"));
    let installations = acme.installations().await.unwrap();
    assert_eq!(installations.len(), 1);
    assert_eq!(installations[0].name, "main");
    let chain = acme.live_releases().await.unwrap();
    assert_eq!(chain.len(), 1);
    assert_eq!(chain[0].release.sha256, sha_1, "rolled back to plugin 1");
    assert_eq!(chain[0].release.settings, r#"{"cap": 5}"#);
    assert_eq!(chain[0].release.quota, r#"{"fuel": 77}"#);
    let releases = acme.releases("main", 10).await.unwrap();
    let shas: Vec<&str> = releases.iter().map(|r| r.sha256.as_str()).collect();
    assert_eq!(shas, [sha_2.as_str(), sha_1.as_str()], "one per plugin run");
    assert!(releases.iter().all(|r| r.ever_active));
    let actions: Vec<String> = acme
        .release_events("main", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, ["rollback", "activate", "activate"]);
    // A rollback works on the migrated history: back to plugin 2.
    let back = acme.rollback_release("main", None, "u").await.unwrap();
    assert_eq!(back.release_id, Some(releases[0].id));

    let beta = storage.tenant(&tid("beta"));
    assert_eq!(beta.installations().await.unwrap().len(), 1);
    assert!(
        beta.live_releases().await.unwrap().is_empty(),
        "deactivated"
    );
    let gamma = storage.tenant(&tid("gamma"));
    assert!(gamma.installations().await.unwrap().is_empty());
    storage.close().await;
}

async fn output_policies_apply_to_all_or_one(ctx: Ctx) {
    let acme = ctx.tenant("acme").await;
    let beta = ctx.tenant("beta").await;
    let platform = ctx.storage.platform();
    assert!(acme.output_policies().await.unwrap().is_empty());
    platform
        .set_output_policy(Some(&tid("acme")), r#"{"own":1}"#, "admin")
        .await
        .unwrap();
    platform
        .set_output_policy(None, r#"{"all":1}"#, "admin")
        .await
        .unwrap();
    // Every tenant's first, then its own; beta sees only the one for all.
    assert_eq!(
        acme.output_policies().await.unwrap(),
        [r#"{"all":1}"#, r#"{"own":1}"#]
    );
    assert_eq!(beta.output_policies().await.unwrap(), [r#"{"all":1}"#]);
    assert!(matches!(
        platform.set_output_policy(None, "{nope", "admin").await,
        Err(StorageError::Invalid(_))
    ));
    assert!(
        platform
            .remove_output_policy(Some(&tid("acme")))
            .await
            .unwrap()
    );
    assert!(
        !platform
            .remove_output_policy(Some(&tid("acme")))
            .await
            .unwrap()
    );
    assert_eq!(acme.output_policies().await.unwrap(), [r#"{"all":1}"#]);
    assert_eq!(
        platform.output_policy(None).await.unwrap().as_deref(),
        Some(r#"{"all":1}"#)
    );
}
