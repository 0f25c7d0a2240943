//! Tenants, domains, quotas and the audit log through the platform handle.

use std::str::FromStr;

use crate::testing::harness::{Ctx, new_tenant, tid};
use crate::{AuditEntry, DomainStatus, StorageError, TenantPatch, TenantStatus};

crate::both_backends!(via crate::testing::harness::run;
    tenants_are_created_found_listed_and_updated,
    taken_ids_and_organisations_conflict_and_say_which,
    domains_map_hosts_to_tenants,
    quotas_are_opaque_json_per_tenant,
    audit_log_is_own_rows_for_tenants_and_everything_for_admins,
);

async fn tenants_are_created_found_listed_and_updated(ctx: Ctx) {
    let platform = ctx.storage.platform();
    let acme = platform.create_tenant(&new_tenant("acme")).await.unwrap();
    assert_eq!(acme.id, tid("acme"));
    assert_eq!(acme.org_id, "org_acme");
    assert_eq!(acme.name, "Tenant acme");
    assert_eq!(acme.status, TenantStatus::Active);
    assert_eq!(
        (
            acme.rate_limit_per_sec,
            acme.rate_limit_burst,
            acme.max_concurrency
        ),
        (50, 100, 8)
    );
    assert!(acme.created_at > 1_600_000_000_000);
    assert_eq!(acme.created_at, acme.updated_at);
    let beta = platform.create_tenant(&new_tenant("beta")).await.unwrap();

    assert_eq!(
        platform.tenant(&tid("acme")).await.unwrap(),
        Some(acme.clone())
    );
    assert_eq!(platform.tenant(&tid("nobody")).await.unwrap(), None);
    assert_eq!(
        platform.tenant_by_org("org_beta").await.unwrap(),
        Some(beta.clone())
    );
    assert_eq!(platform.tenant_by_org("org_nobody").await.unwrap(), None);
    assert_eq!(
        platform.list_tenants().await.unwrap(),
        vec![acme.clone(), beta.clone()]
    );

    let patch = TenantPatch {
        status: Some(TenantStatus::Suspended),
        rate_limit_per_sec: Some(7),
        max_concurrency: Some(u32::MAX),
        ..TenantPatch::default()
    };
    let updated = platform.update_tenant(&tid("acme"), &patch).await.unwrap();
    assert_eq!(updated.status, TenantStatus::Suspended);
    assert_eq!(updated.rate_limit_per_sec, 7);
    assert_eq!(updated.rate_limit_burst, 100, "unpatched fields stay");
    assert_eq!(
        updated.max_concurrency,
        u32::MAX,
        "the whole u32 range fits"
    );
    assert_eq!(updated.name, acme.name);
    assert!(updated.updated_at >= acme.updated_at);
    assert_eq!(
        platform.tenant(&tid("acme")).await.unwrap(),
        Some(updated.clone())
    );

    let renamed = platform
        .update_tenant(
            &tid("acme"),
            &TenantPatch {
                name: Some("Acme Ltd".into()),
                ..TenantPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(renamed.name, "Acme Ltd");
    assert_eq!(renamed.status, TenantStatus::Suspended);
    assert_eq!(
        platform.tenant(&tid("beta")).await.unwrap(),
        Some(beta),
        "others untouched"
    );

    let missing = platform.update_tenant(&tid("nobody"), &patch).await;
    assert!(matches!(missing, Err(StorageError::NotFound(m)) if m.contains("nobody")));
    let blank = TenantPatch {
        name: Some("  ".into()),
        ..TenantPatch::default()
    };
    assert!(matches!(
        platform.update_tenant(&tid("acme"), &blank).await,
        Err(StorageError::Invalid(_))
    ));
}

async fn taken_ids_and_organisations_conflict_and_say_which(ctx: Ctx) {
    let platform = ctx.storage.platform();
    platform.create_tenant(&new_tenant("acme")).await.unwrap();

    let mut same_id = new_tenant("acme");
    same_id.org_id = "org_other".into();
    match platform.create_tenant(&same_id).await {
        Err(StorageError::Conflict(m)) => assert!(m.contains("tenant id `acme`"), "{m}"),
        other => panic!("expected a conflict on the id, got {other:?}"),
    }

    let mut same_org = new_tenant("other");
    same_org.org_id = "org_acme".into();
    match platform.create_tenant(&same_org).await {
        Err(StorageError::Conflict(m)) => assert!(m.contains("organisation `org_acme`"), "{m}"),
        other => panic!("expected a conflict on the organisation, got {other:?}"),
    }

    // Relinking: to a free organisation, never to a taken one.
    platform.create_tenant(&new_tenant("beta")).await.unwrap();
    let relink = |org: &str| TenantPatch {
        org_id: Some(org.to_owned()),
        ..TenantPatch::default()
    };
    match platform
        .update_tenant(&tid("beta"), &relink("org_acme"))
        .await
    {
        Err(StorageError::Conflict(m)) => assert!(m.contains("organisation `org_acme`"), "{m}"),
        other => panic!("expected a conflict on the organisation, got {other:?}"),
    }
    let moved = platform
        .update_tenant(&tid("beta"), &relink("org_2beta"))
        .await
        .unwrap();
    assert_eq!(moved.org_id, "org_2beta");
    assert_eq!(
        platform.tenant_by_org("org_beta").await.unwrap(),
        None,
        "the old organisation is free"
    );
    let same = platform
        .update_tenant(&tid("beta"), &relink("org_2beta"))
        .await
        .unwrap();
    assert_eq!(same.org_id, "org_2beta", "its own organisation again");
    assert!(matches!(
        platform.update_tenant(&tid("beta"), &relink(" ")).await,
        Err(StorageError::Invalid(_))
    ));

    let mut nameless = new_tenant("nameless");
    nameless.name = " ".into();
    assert!(matches!(
        platform.create_tenant(&nameless).await,
        Err(StorageError::Invalid(_))
    ));
    assert_eq!(
        platform.list_tenants().await.unwrap().len(),
        2,
        "nothing half-created"
    );
}

async fn domains_map_hosts_to_tenants(ctx: Ctx) {
    let platform = ctx.storage.platform();
    let acme = platform.create_tenant(&new_tenant("acme")).await.unwrap();
    platform.create_tenant(&new_tenant("beta")).await.unwrap();

    let (claim, created) = platform
        .claim_domain("Shop.Acme.example.", &tid("acme"), "t1")
        .await
        .unwrap();
    assert!(created);
    assert_eq!(claim.domain, "shop.acme.example");
    assert_eq!(claim.status, DomainStatus::Pending);
    platform
        .claim_domain("acme.example", &tid("acme"), "t2")
        .await
        .unwrap();
    let (again, created) = platform
        .claim_domain("shop.acme.example", &tid("acme"), "other")
        .await
        .expect("claiming again is a no-op");
    assert!(!created);
    assert_eq!(again.token, "t1", "the first claim stands");

    // Pending claims route nowhere; a second tenant may claim an unproven domain.
    assert_eq!(
        platform
            .tenant_by_domain("shop.acme.example")
            .await
            .unwrap(),
        None
    );
    platform
        .claim_domain("shop.acme.example", &tid("beta"), "t3")
        .await
        .expect("an unproven domain may be claimed by another tenant");

    platform
        .record_domain_check(
            "shop.acme.example",
            &tid("acme"),
            DomainStatus::Verified,
            "verified by TXT",
            None,
        )
        .await
        .unwrap();
    for host in [
        "shop.acme.example",
        "SHOP.ACME.EXAMPLE",
        "shop.acme.example.",
    ] {
        assert_eq!(
            platform.tenant_by_domain(host).await.unwrap(),
            Some(acme.clone()),
            "{host}"
        );
    }
    let verified = platform
        .domain("shop.acme.example", &tid("acme"))
        .await
        .unwrap()
        .unwrap();
    assert!(verified.verified_at.is_some());
    assert_eq!(verified.last_result.as_deref(), Some("verified by TXT"));
    // One routed claim per domain: beta's cannot verify, nor can a new one be made.
    match platform
        .record_domain_check(
            "shop.acme.example",
            &tid("beta"),
            DomainStatus::Verified,
            "x",
            None,
        )
        .await
    {
        Err(StorageError::Conflict(m)) => assert!(m.contains("shop.acme.example"), "{m}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    platform.create_tenant(&new_tenant("gamma")).await.unwrap();
    match platform
        .claim_domain("shop.acme.example", &tid("gamma"), "t4")
        .await
    {
        Err(StorageError::Conflict(m)) => {
            assert!(
                !m.contains("acme`") && !m.contains("tenant `acme"),
                "does not name the owner: {m}"
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    // In grace it still routes; disabled it does not.
    platform
        .record_domain_check(
            "shop.acme.example",
            &tid("acme"),
            DomainStatus::Grace,
            "missing",
            Some(5),
        )
        .await
        .unwrap();
    assert!(
        platform
            .tenant_by_domain("shop.acme.example")
            .await
            .unwrap()
            .is_some()
    );
    platform
        .record_domain_check(
            "shop.acme.example",
            &tid("acme"),
            DomainStatus::Disabled,
            "gone",
            Some(5),
        )
        .await
        .unwrap();
    assert_eq!(
        platform
            .tenant_by_domain("shop.acme.example")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        platform.tenant_by_domain("unknown.example").await.unwrap(),
        None
    );
    assert_eq!(platform.tenant_by_domain("not a host").await.unwrap(), None);
    let names: Vec<String> = platform
        .domains(&tid("acme"))
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.domain)
        .collect();
    assert_eq!(names, ["acme.example", "shop.acme.example"]);

    assert!(matches!(
        platform
            .claim_domain("new.example", &tid("nobody"), "t")
            .await,
        Err(StorageError::NotFound(_))
    ));
    for bad in [
        "https://x.example",
        "x.example:8080",
        "nodot",
        "-x.example",
        "",
    ] {
        assert!(
            matches!(
                platform.claim_domain(bad, &tid("acme"), "t").await,
                Err(StorageError::Invalid(_))
            ),
            "{bad}"
        );
    }

    assert!(
        platform
            .remove_domain("SHOP.acme.example", &tid("acme"))
            .await
            .unwrap()
    );
    assert!(
        !platform
            .remove_domain("shop.acme.example", &tid("acme"))
            .await
            .unwrap()
    );
    assert_eq!(
        platform.domains(&tid("beta")).await.unwrap().len(),
        1,
        "beta's claim stays"
    );
}

async fn quotas_are_opaque_json_per_tenant(ctx: Ctx) {
    let acme = ctx.tenant("acme").await;
    let beta = ctx.tenant("beta").await;
    let platform = ctx.storage.platform();
    assert_eq!(platform.quota(&tid("acme")).await.unwrap(), None);
    assert_eq!(acme.quota().await.unwrap(), None);

    let quota = r#"{"fuel":1000000,"memory_bytes":16777216,"wall_time_ms":50}"#;
    platform.set_quota(&tid("acme"), quota).await.unwrap();
    assert_eq!(
        platform.quota(&tid("acme")).await.unwrap().as_deref(),
        Some(quota)
    );
    assert_eq!(acme.quota().await.unwrap().as_deref(), Some(quota));
    assert_eq!(
        beta.quota().await.unwrap(),
        None,
        "one tenant's quota is not another's"
    );

    platform
        .set_quota(&tid("acme"), r#"{"fuel":5}"#)
        .await
        .unwrap();
    assert_eq!(
        acme.quota().await.unwrap().as_deref(),
        Some(r#"{"fuel":5}"#)
    );

    assert!(matches!(
        platform.set_quota(&tid("acme"), "{fuel").await,
        Err(StorageError::Invalid(_))
    ));
    assert!(matches!(
        platform.set_quota(&tid("nobody"), "{}").await,
        Err(StorageError::NotFound(m)) if m.contains("nobody")
    ));
}

async fn audit_log_is_own_rows_for_tenants_and_everything_for_admins(ctx: Ctx) {
    let acme = ctx.tenant("acme").await;
    let beta = ctx.tenant("beta").await;
    let platform = ctx.storage.platform();
    platform
        .audit(&AuditEntry {
            tenant: &tid("acme"),
            actor: "admin_root",
            action: "tenant.create",
            plugin_sha256: None,
            before: None,
            after: Some(r#"{"name":"Acme"}"#),
        })
        .await
        .unwrap();
    acme.audit(
        "user_alice",
        "plugin.activate",
        Some("ab".repeat(32).as_str()),
        Some(r#"{"active":null}"#),
        Some(r#"{"active":"x"}"#),
    )
    .await
    .unwrap();
    beta.audit("user_bob", "settings.update", None, None, None)
        .await
        .unwrap();

    let own = acme.audit_log(10).await.unwrap();
    assert_eq!(own.len(), 2);
    assert!(own.iter().all(|r| r.tenant_id == "acme"));
    assert_eq!(own[0].action, "plugin.activate", "newest first");
    assert_eq!(own[0].actor, "user_alice");
    assert_eq!(
        own[0].plugin_sha256.as_deref(),
        Some("ab".repeat(32).as_str())
    );
    assert_eq!(own[0].before, Some(serde_json::json!({"active": null})));
    assert_eq!(own[0].after, Some(serde_json::json!({"active": "x"})));
    assert_eq!(own[1].action, "tenant.create");
    assert_eq!(own[1].before, None);
    assert!(own[0].id > own[1].id);
    assert_eq!(acme.audit_log(1).await.unwrap(), own[..1].to_vec());

    let theirs = beta.audit_log(10).await.unwrap();
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].tenant_id, "beta");

    let all = platform.audit_log(None, 10).await.unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].action, "settings.update");
    assert_eq!(
        platform.audit_log(Some(&tid("acme")), 10).await.unwrap(),
        own
    );
    assert_eq!(platform.audit_log(None, 1).await.unwrap().len(), 1);

    assert!(matches!(
        acme.audit("a", "b", None, Some("not json"), None).await,
        Err(StorageError::Invalid(_))
    ));
}

#[test]
fn tenant_status_parses_and_serializes_in_snake_case() {
    assert_eq!(TenantStatus::from_str("active"), Ok(TenantStatus::Active));
    assert_eq!(
        TenantStatus::from_str("suspended"),
        Ok(TenantStatus::Suspended)
    );
    assert!(TenantStatus::from_str("Active").is_err());
    assert_eq!(
        serde_json::to_string(&TenantStatus::Suspended).unwrap(),
        r#""suspended""#
    );
    assert_eq!(
        serde_json::from_str::<TenantStatus>(r#""active""#).unwrap(),
        TenantStatus::Active
    );
    assert_eq!(TenantStatus::Active.to_string(), "active");
}
