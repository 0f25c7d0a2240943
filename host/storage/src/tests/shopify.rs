//! Shopify stores, webhook deduplication, commissions and products through the
//! handles, on both backends; the credentials read back raw to prove they are
//! never stored in clear; and, on PostgreSQL, row-level security attacked with
//! raw SQL in the application role.

use std::time::Duration;

use sqlx::postgres::PgQueryResult;
use sqlx::{AnyConnection, AssertSqlSafe, Connection, PgConnection, Row};

use crate::testing::harness::{Ctx, on_postgres, tid};
use crate::{
    NewShopifyCommission, SHOPIFY_WEBHOOK_MIN_RETENTION, SHOPIFY_WEBHOOK_RETENTION,
    ShopifyStoredCredentials, StorageError, TenantDb,
};
use veneer_core::secrets::SecretBox;

crate::both_backends!(via crate::testing::harness::run;
    a_store_connects_disconnects_and_uninstalls,
    a_shop_domain_belongs_to_one_tenant_and_is_not_revealed,
    credentials_are_never_stored_in_clear,
    webhooks_are_deduplicated_per_tenant_and_pruned,
    a_commission_is_recorded_once_per_order_line,
    products_keep_their_latest_version,
    rotation_walks_every_store_and_never_overwrites_a_reconnect,
    writes_for_a_missing_tenant_are_not_found,
    an_install_state_works_once_for_its_tenant_until_it_expires,
    redaction_removes_a_customer_of_one_tenant_and_a_shop_after_its_uninstall,
);

const TOKEN: &str = "shpat_0123456789abcdef";
const APP_SECRET: &str = "shpss_fedcba9876543210";

fn secrets() -> SecretBox {
    SecretBox::new(("k1".into(), [7; 32]), Vec::new()).unwrap()
}

/// Connects `db` to `shop` with credentials sealed the way the host seals them.
async fn connect(db: &TenantDb, shop: &str) -> crate::ShopifyStoreRecord {
    let secrets = secrets();
    let tenant = db.tenant_id().as_str();
    let token = secrets.encrypt(TOKEN.as_bytes(), &format!("{tenant}/shopify/access_token"));
    let secret = secrets.encrypt(
        APP_SECRET.as_bytes(),
        &format!("{tenant}/shopify/app_secret"),
    );
    db.connect_shopify(shop, &token, &secret, "2025-07")
        .await
        .unwrap()
}

async fn a_store_connects_disconnects_and_uninstalls(ctx: Ctx) {
    let acme = ctx.tenant("acme").await;
    assert_eq!(acme.shopify_store().await.unwrap(), None);
    assert!(!acme.disconnect_shopify().await.unwrap());
    assert!(!acme.mark_shopify_uninstalled().await.unwrap());

    let store = connect(&acme, " Acme.MyShopify.com ").await;
    assert_eq!(store.shop_domain, "acme.myshopify.com");
    assert!(store.enabled);
    assert_eq!(store.api_version, "2025-07");
    assert_eq!(store.uninstalled_at, None);
    assert!(store.connected_at > 0);
    assert!(
        store
            .access_token_enc
            .as_deref()
            .unwrap()
            .starts_with("v1:k1:")
    );
    assert_eq!(acme.shopify_store().await.unwrap().as_ref(), Some(&store));
    let shown = format!("{store:?}");
    assert!(!shown.contains("v1:k1:"), "{shown}");

    assert!(acme.mark_shopify_uninstalled().await.unwrap());
    let uninstalled = acme.shopify_store().await.unwrap().unwrap();
    assert!(!uninstalled.enabled);
    assert!(uninstalled.uninstalled_at.is_some());
    assert_eq!(
        uninstalled.access_token_enc, None,
        "the revoked token is wiped"
    );
    assert_eq!(
        uninstalled.app_secret_enc, store.app_secret_enc,
        "the app secret stays, for the webhooks Shopify sends after an uninstall"
    );
    assert_eq!(
        ctx.storage
            .platform()
            .tenant_by_shop_domain("acme.myshopify.com")
            .await
            .unwrap(),
        Some(tid("acme")),
        "an uninstalled shop still maps to its tenant"
    );

    // Reinstalling reconnects: enabled again, the uninstall forgotten.
    let again = connect(&acme, "acme.myshopify.com").await;
    assert!(again.enabled);
    assert_eq!(again.uninstalled_at, None);
    assert_ne!(again.access_token_enc, store.access_token_enc);

    assert!(acme.disconnect_shopify().await.unwrap());
    let off = acme.shopify_store().await.unwrap().unwrap();
    assert!(!off.enabled);
    assert_eq!((off.access_token_enc, off.app_secret_enc), (None, None));
    assert_eq!(off.shop_domain, "acme.myshopify.com");

    // Moving to another shop replaces the first one.
    let moved = connect(&acme, "acme-eu.myshopify.com").await;
    assert_eq!(moved.shop_domain, "acme-eu.myshopify.com");
    let platform = ctx.storage.platform();
    assert_eq!(
        platform
            .tenant_by_shop_domain("acme.myshopify.com")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        platform
            .tenant_by_shop_domain("ACME-EU.myshopify.com")
            .await
            .unwrap(),
        Some(tid("acme"))
    );
    for junk in [
        "",
        "acme-eu",
        "evil.example",
        "acme-eu.myshopify.com/x",
        "\0",
    ] {
        assert_eq!(
            platform.tenant_by_shop_domain(junk).await.unwrap(),
            None,
            "{junk}"
        );
    }

    for (shop, version) in [
        ("acme.example.com", "2025-07"),
        ("127.0.0.1", "2025-07"),
        ("acme.myshopify.com", "latest"),
    ] {
        let sealed = secrets().encrypt(b"x", "acme/shopify/access_token");
        assert!(
            matches!(
                acme.connect_shopify(shop, &sealed, &sealed, version).await,
                Err(StorageError::Invalid(_))
            ),
            "{shop} {version}"
        );
    }
    assert_eq!(acme.shopify_store().await.unwrap().as_ref(), Some(&moved));

    assert!(acme.delete_shopify_store().await.unwrap());
    assert_eq!(acme.shopify_store().await.unwrap(), None);
    assert!(!acme.delete_shopify_store().await.unwrap());
}

async fn a_shop_domain_belongs_to_one_tenant_and_is_not_revealed(ctx: Ctx) {
    let owner = ctx.tenant("secret-owner").await;
    let mallory = ctx.tenant("mallory").await;
    let store = connect(&owner, "target.myshopify.com").await;

    let sealed = secrets().encrypt(b"stolen", "mallory/shopify/access_token");
    match mallory
        .connect_shopify("TARGET.myshopify.com", &sealed, &sealed, "2025-07")
        .await
    {
        Err(StorageError::Conflict(message)) => {
            assert!(message.contains("another Veneer tenant"), "{message}");
            assert!(
                !message.contains("secret-owner"),
                "names the owner: {message}"
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(mallory.shopify_store().await.unwrap(), None);
    assert_eq!(owner.shopify_store().await.unwrap(), Some(store));
    // Mallory's own store cannot be moved onto the target either.
    connect(&mallory, "mallory.myshopify.com").await;
    assert!(matches!(
        mallory
            .connect_shopify("target.myshopify.com", &sealed, &sealed, "2025-07")
            .await,
        Err(StorageError::Conflict(_))
    ));
    assert_eq!(
        mallory.shopify_store().await.unwrap().unwrap().shop_domain,
        "mallory.myshopify.com"
    );
    // Disconnecting releases the shop (the row stays, disabled, for the
    // record): another tenant may now connect it.
    let platform = ctx.storage.platform();
    owner.disconnect_shopify().await.unwrap();
    assert_eq!(
        platform
            .tenant_by_shop_domain("target.myshopify.com")
            .await
            .unwrap(),
        Some(tid("secret-owner")),
        "a released shop still finds the tenant that released it"
    );
    connect(&mallory, "target.myshopify.com").await;
    assert_eq!(
        platform
            .tenant_by_shop_domain("target.myshopify.com")
            .await
            .unwrap(),
        Some(tid("mallory")),
        "the tenant holding it comes first"
    );
    let released = owner.shopify_store().await.unwrap().unwrap();
    assert_eq!(
        (released.shop_domain.as_str(), released.enabled),
        ("target.myshopify.com", false)
    );
    // Now the first owner is the one refused, without being told who holds it.
    let sealed = secrets().encrypt(b"x", "secret-owner/shopify/access_token");
    match owner
        .connect_shopify("target.myshopify.com", &sealed, &sealed, "2025-07")
        .await
    {
        Err(StorageError::Conflict(message)) => {
            assert!(!message.contains("mallory"), "names the holder: {message}")
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(!owner.shopify_store().await.unwrap().unwrap().enabled);

    // An uninstall releases it too.
    assert!(mallory.mark_shopify_uninstalled().await.unwrap());
    connect(&owner, "target.myshopify.com").await;
    assert_eq!(
        platform
            .tenant_by_shop_domain("target.myshopify.com")
            .await
            .unwrap(),
        Some(tid("secret-owner"))
    );
    // Deleting a store frees its row entirely.
    owner.delete_shopify_store().await.unwrap();
    assert_eq!(
        platform
            .tenant_by_shop_domain("target.myshopify.com")
            .await
            .unwrap(),
        Some(tid("mallory"))
    );
    mallory.delete_shopify_store().await.unwrap();
    assert_eq!(
        platform
            .tenant_by_shop_domain("target.myshopify.com")
            .await
            .unwrap(),
        None
    );
}

async fn credentials_are_never_stored_in_clear(ctx: Ctx) {
    let acme = ctx.tenant("acme").await;
    // Plaintext is refused outright.
    for (token, secret) in [(TOKEN, "v1:k1:AAAA"), ("v1:k1:AAAA", APP_SECRET)] {
        match acme
            .connect_shopify("acme.myshopify.com", token, secret, "2025-07")
            .await
        {
            Err(StorageError::Invalid(m)) => assert!(m.contains("encrypted"), "{m}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    assert_eq!(acme.shopify_store().await.unwrap(), None);

    let store = connect(&acme, "acme.myshopify.com").await;
    // The raw row, read past the application (and, on PostgreSQL, past RLS as
    // the owner).
    let mut raw = AnyConnection::connect(&ctx.url).await.unwrap();
    let row = sqlx::query(
        "SELECT tenant_id, shop_domain, access_token_enc, app_secret_enc, api_version \
           FROM shopify_stores",
    )
    .fetch_one(&mut raw)
    .await
    .unwrap();
    let mut columns = Vec::new();
    for i in 0..5 {
        columns.push(row.try_get::<String, _>(i).unwrap());
    }
    raw.close().await.unwrap();
    for column in &columns {
        assert!(
            !column.contains(TOKEN) && !column.contains(APP_SECRET),
            "{column}"
        );
        assert!(
            !column.contains("shpat_") && !column.contains("shpss_"),
            "{column}"
        );
    }
    assert_eq!(Some(&columns[2]), store.access_token_enc.as_ref());
    // What is stored opens only with the right tenant and field.
    let secrets = secrets();
    let token = secrets
        .decrypt(&columns[2], "acme/shopify/access_token")
        .unwrap();
    assert_eq!(token.as_slice(), TOKEN.as_bytes());
    assert!(
        secrets
            .decrypt(&columns[2], "beta/shopify/access_token")
            .is_err()
    );
    assert!(
        secrets
            .decrypt(&columns[2], "acme/shopify/app_secret")
            .is_err()
    );
    assert!(
        secrets
            .decrypt(&columns[3], "acme/shopify/app_secret")
            .is_ok()
    );
}

/// Makes every webhook row of `tenant` look `age` old.
async fn age_webhooks(ctx: &Ctx, tenant: &str, age: Duration) {
    let mut raw = AnyConnection::connect(&ctx.url).await.unwrap();
    let when = crate::time::now_ms() - i64::try_from(age.as_millis()).unwrap();
    sqlx::query("UPDATE shopify_webhooks SET received_at = $1 WHERE tenant_id = $2")
        .bind(when)
        .bind(tenant)
        .execute(&mut raw)
        .await
        .unwrap();
    raw.close().await.unwrap();
}

async fn webhooks_are_deduplicated_per_tenant_and_pruned(ctx: Ctx) {
    let acme = ctx.tenant("acme").await;
    let beta = ctx.tenant("beta").await;
    assert!(
        acme.record_shopify_webhook("wh-1", "orders/create")
            .await
            .unwrap()
    );
    assert!(
        !acme
            .record_shopify_webhook("wh-1", "orders/create")
            .await
            .unwrap(),
        "a redelivery is recognised"
    );
    assert!(
        beta.record_shopify_webhook("wh-1", "orders/create")
            .await
            .unwrap(),
        "ids are per tenant: another tenant's id never suppresses ours"
    );
    // Recorded but not enqueued: forgotten, so Shopify's retry is processed.
    assert!(
        acme.record_shopify_webhook("wh-x", "orders/create")
            .await
            .unwrap()
    );
    assert!(
        !beta.forget_shopify_webhook("wh-x").await.unwrap(),
        "not beta's to forget"
    );
    assert!(acme.forget_shopify_webhook("wh-x").await.unwrap());
    assert!(!acme.forget_shopify_webhook("wh-x").await.unwrap());
    assert!(
        acme.record_shopify_webhook("wh-x", "orders/create")
            .await
            .unwrap()
    );
    assert!(acme.forget_shopify_webhook("wh-x").await.unwrap());
    for bad in ["", &"x".repeat(256), "a\0b"] {
        assert!(matches!(
            acme.record_shopify_webhook(bad, "orders/create").await,
            Err(StorageError::Invalid(_))
        ));
    }

    // Too short a retention would forget ids Shopify may still retry.
    for short in [Duration::ZERO, Duration::from_secs(3600)] {
        assert!(matches!(
            acme.prune_shopify_webhooks(short).await,
            Err(StorageError::Invalid(_))
        ));
        assert!(matches!(
            ctx.storage.platform().prune_shopify_webhooks(short).await,
            Err(StorageError::Invalid(_))
        ));
    }
    assert_eq!(
        acme.prune_shopify_webhooks(SHOPIFY_WEBHOOK_MIN_RETENTION)
            .await
            .unwrap(),
        0
    );

    // Eight days old: gone after a 7-day prune, but only this tenant's.
    age_webhooks(&ctx, "acme", Duration::from_secs(8 * 86_400)).await;
    age_webhooks(&ctx, "beta", Duration::from_secs(8 * 86_400)).await;
    assert!(
        acme.record_shopify_webhook("wh-2", "products/update")
            .await
            .unwrap()
    );
    assert_eq!(
        acme.prune_shopify_webhooks(SHOPIFY_WEBHOOK_RETENTION)
            .await
            .unwrap(),
        1
    );
    assert!(
        !acme
            .record_shopify_webhook("wh-2", "products/update")
            .await
            .unwrap(),
        "a recent id survives the prune"
    );
    assert!(
        acme.record_shopify_webhook("wh-1", "orders/create")
            .await
            .unwrap(),
        "a pruned id counts as new"
    );
    assert!(
        !beta
            .record_shopify_webhook("wh-1", "orders/create")
            .await
            .unwrap()
    );
    // The platform prune covers every tenant.
    age_webhooks(&ctx, "beta", Duration::from_secs(8 * 86_400)).await;
    assert_eq!(
        ctx.storage
            .platform()
            .prune_shopify_webhooks(SHOPIFY_WEBHOOK_RETENTION)
            .await
            .unwrap(),
        1
    );
    assert!(
        beta.record_shopify_webhook("wh-1", "orders/create")
            .await
            .unwrap()
    );
}

fn commission<'a>(order: &'a str, line: &'a str, decision: &'a str) -> NewShopifyCommission<'a> {
    NewShopifyCommission {
        order_id: order,
        line_item_id: line,
        decision_json: decision,
        source: "plugin",
        outcome: "ok",
    }
}

async fn a_commission_is_recorded_once_per_order_line(ctx: Ctx) {
    let acme = ctx.tenant("acme").await;
    let beta = ctx.tenant("beta").await;
    assert!(
        acme.record_shopify_commission(&commission("1001", "1", r#"{"fee":100}"#))
            .await
            .unwrap()
    );
    assert!(
        acme.record_shopify_commission(&commission("1001", "2", r#"{"fee":200}"#))
            .await
            .unwrap()
    );
    assert!(
        !acme
            .record_shopify_commission(&NewShopifyCommission {
                source: "base",
                outcome: "plugin trapped",
                ..commission("1001", "1", r#"{"fee":999}"#)
            })
            .await
            .unwrap(),
        "a second decision for the same line is not recorded"
    );
    assert!(
        acme.record_shopify_commission(&commission("1002", "1", r#"{"fee":5}"#))
            .await
            .unwrap()
    );
    assert!(
        beta.record_shopify_commission(&commission("1001", "1", r#"{"fee":1}"#))
            .await
            .unwrap(),
        "another tenant's order numbers are its own"
    );

    let order = acme.shopify_commissions(Some("1001"), 100).await.unwrap();
    assert_eq!(order.len(), 2);
    assert_eq!(
        (
            order[0].line_item_id.as_str(),
            order[0].decision_json.as_str()
        ),
        ("1", r#"{"fee":100}"#)
    );
    assert_eq!(
        (order[0].source.as_str(), order[0].outcome.as_str()),
        ("plugin", "ok")
    );
    assert_eq!(order[1].line_item_id, "2");
    assert_eq!(acme.shopify_commissions(None, 100).await.unwrap().len(), 3);
    assert_eq!(acme.shopify_commissions(None, 2).await.unwrap().len(), 2);
    assert_eq!(
        acme.shopify_commissions(Some("404"), 10).await.unwrap(),
        vec![]
    );
    let theirs = beta.shopify_commissions(None, 100).await.unwrap();
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].decision_json, r#"{"fee":1}"#);

    for bad in [
        commission("1003", "1", "{fee"),
        commission("", "1", "{}"),
        commission("1003", "", "{}"),
    ] {
        assert!(matches!(
            acme.record_shopify_commission(&bad).await,
            Err(StorageError::Invalid(_))
        ));
    }
}

async fn products_keep_their_latest_version(ctx: Ctx) {
    let acme = ctx.tenant("acme").await;
    let beta = ctx.tenant("beta").await;
    assert!(
        acme.upsert_shopify_product("p1", "Sneakers", Some("sneakers"), 2_000)
            .await
            .unwrap()
    );
    assert!(
        acme.upsert_shopify_product("p2", "Mystery", None, 1_000)
            .await
            .unwrap()
    );
    // A late delivery of an older version changes nothing.
    assert!(
        !acme
            .upsert_shopify_product("p1", "Shoes", Some("shoes"), 1_000)
            .await
            .unwrap()
    );
    let p1 = acme.shopify_product("p1").await.unwrap().unwrap();
    assert_eq!(
        (
            p1.product_type.as_str(),
            p1.category_id.as_deref(),
            p1.updated_at
        ),
        ("Sneakers", Some("sneakers"), 2_000)
    );
    // The same version again (a redelivery) and newer ones apply.
    assert!(
        acme.upsert_shopify_product("p1", "Sneakers", Some("sneakers"), 2_000)
            .await
            .unwrap()
    );
    assert!(
        acme.upsert_shopify_product("p1", "Boots", Some("shoes-boots"), 3_000)
            .await
            .unwrap()
    );
    let all = acme.shopify_products(10).await.unwrap();
    assert_eq!(
        all.iter()
            .map(|p| (p.product_id.as_str(), p.category_id.as_deref()))
            .collect::<Vec<_>>(),
        [("p1", Some("shoes-boots")), ("p2", None)]
    );
    assert_eq!(acme.shopify_products(1).await.unwrap().len(), 1);
    assert_eq!(beta.shopify_product("p1").await.unwrap(), None);
    assert_eq!(beta.shopify_products(10).await.unwrap(), vec![]);
    assert!(!beta.delete_shopify_product("p1").await.unwrap());
    assert!(acme.delete_shopify_product("p1").await.unwrap());
    assert_eq!(acme.shopify_product("p1").await.unwrap(), None);
    assert!(matches!(
        acme.upsert_shopify_product("", "x", None, 1).await,
        Err(StorageError::Invalid(_))
    ));
}

async fn rotation_walks_every_store_and_never_overwrites_a_reconnect(ctx: Ctx) {
    let platform = ctx.storage.platform();
    for name in ["t1", "t2", "t3"] {
        let db = ctx.tenant(name).await;
        connect(&db, &format!("{name}.myshopify.com")).await;
    }
    ctx.storage
        .tenant(&tid("t2"))
        .disconnect_shopify()
        .await
        .unwrap();

    let first = platform.shopify_stores_for_rotation(None, 2).await.unwrap();
    assert_eq!(
        first.iter().map(|c| c.tenant.as_str()).collect::<Vec<_>>(),
        ["t1", "t2"]
    );
    assert_eq!(
        (
            first[1].access_token_enc.as_ref(),
            first[1].app_secret_enc.as_ref()
        ),
        (None, None)
    );
    let rest = platform
        .shopify_stores_for_rotation(Some(&first[1].tenant), 2)
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].tenant.as_str(), "t3");
    assert!(
        platform
            .shopify_stores_for_rotation(Some(&rest[0].tenant), 2)
            .await
            .unwrap()
            .is_empty()
    );

    let rotated = SecretBox::new(("k2".into(), [8; 32]), vec![("k1".into(), [7; 32])]).unwrap();
    let old = &first[0];
    let aad = "t1/shopify/access_token";
    let new = ShopifyStoredCredentials {
        tenant: old.tenant.clone(),
        access_token_enc: Some(
            rotated
                .reencrypt(old.access_token_enc.as_deref().unwrap(), aad)
                .unwrap()
                .unwrap(),
        ),
        app_secret_enc: old.app_secret_enc.clone(),
    };
    assert!(
        platform
            .replace_shopify_credentials(old, &new)
            .await
            .unwrap()
    );
    let stored = ctx
        .storage
        .tenant(&tid("t1"))
        .shopify_store()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.access_token_enc, new.access_token_enc);
    assert!(!rotated.needs_rotation(stored.access_token_enc.as_deref().unwrap()));
    assert_eq!(
        rotated
            .decrypt(stored.access_token_enc.as_deref().unwrap(), aad)
            .unwrap()
            .as_slice(),
        TOKEN.as_bytes()
    );
    // A second rotation working from the stale values loses.
    assert!(
        !platform
            .replace_shopify_credentials(old, &new)
            .await
            .unwrap()
    );

    // A tenant reconnecting while a rotation runs keeps its fresh credentials.
    let before = platform
        .shopify_stores_for_rotation(Some(&tid("t2")), 1)
        .await
        .unwrap();
    let fresh = connect(&ctx.storage.tenant(&tid("t3")), "t3.myshopify.com").await;
    let overwrite = ShopifyStoredCredentials {
        access_token_enc: Some("v1:k2:AAAA".into()),
        ..before[0].clone()
    };
    assert!(
        !platform
            .replace_shopify_credentials(&before[0], &overwrite)
            .await
            .unwrap()
    );
    assert_eq!(
        ctx.storage
            .tenant(&tid("t3"))
            .shopify_store()
            .await
            .unwrap()
            .unwrap()
            .access_token_enc,
        fresh.access_token_enc
    );
    // Nulls compare as equal: a disconnected store is "unchanged" and stays so.
    assert!(
        platform
            .replace_shopify_credentials(&first[1], &first[1])
            .await
            .unwrap()
    );

    // Refused: plaintext, or another tenant's row.
    let plaintext = ShopifyStoredCredentials {
        access_token_enc: Some(TOKEN.into()),
        ..new.clone()
    };
    assert!(matches!(
        platform.replace_shopify_credentials(&new, &plaintext).await,
        Err(StorageError::Invalid(_))
    ));
    let other = ShopifyStoredCredentials {
        tenant: tid("t3"),
        ..new.clone()
    };
    assert!(matches!(
        platform.replace_shopify_credentials(&new, &other).await,
        Err(StorageError::Invalid(_))
    ));
}

async fn writes_for_a_missing_tenant_are_not_found(ctx: Ctx) {
    let ghost = ctx.storage.tenant(&tid("ghost"));
    let sealed = secrets().encrypt(b"x", "ghost/shopify/access_token");
    assert!(matches!(
        ghost
            .connect_shopify("ghost.myshopify.com", &sealed, &sealed, "2025-07")
            .await,
        Err(StorageError::NotFound(_))
    ));
    assert!(matches!(
        ghost.record_shopify_webhook("wh", "orders/create").await,
        Err(StorageError::NotFound(_))
    ));
    assert!(matches!(
        ghost
            .record_shopify_commission(&commission("1", "1", "{}"))
            .await,
        Err(StorageError::NotFound(_))
    ));
    assert!(matches!(
        ghost.upsert_shopify_product("p", "x", None, 1).await,
        Err(StorageError::NotFound(_))
    ));
}

// --- PostgreSQL row-level security, attacked from below -----------------------

/// The Shopify tables and a row to forge in each for tenant `b`.
const TABLES: &[(&str, &str)] = &[
    (
        "shopify_stores",
        "INSERT INTO shopify_stores (tenant_id, shop_domain, api_version, enabled, \
         connected_at, updated_at) VALUES ('b', 'forged.myshopify.com', '2025-07', TRUE, 1, 1)",
    ),
    (
        "shopify_webhooks",
        "INSERT INTO shopify_webhooks (tenant_id, webhook_id, topic, received_at) \
         VALUES ('b', 'forged', 'orders/create', 1)",
    ),
    (
        "shopify_commissions",
        "INSERT INTO shopify_commissions (tenant_id, order_id, line_item_id, decision, source, \
         outcome, created_at) VALUES ('b', 'o9', 'l9', '{}', 'forged', 'ok', 1)",
    ),
    (
        "shopify_products",
        "INSERT INTO shopify_products (tenant_id, product_id, product_type, updated_at) \
         VALUES ('b', 'p9', 'forged', 1)",
    ),
];

async fn seed(ctx: &Ctx, id: &str) {
    let db = ctx.tenant(id).await;
    seed_rows(&db, id).await;
}

/// Shopify rows of every kind for the existing tenant `id` (also used by the
/// purge test).
pub(super) async fn seed_rows(db: &crate::TenantDb, id: &str) {
    connect(db, &format!("{id}.myshopify.com")).await;
    db.record_shopify_webhook("wh-1", "orders/create")
        .await
        .unwrap();
    db.record_shopify_commission(&commission("o1", "l1", r#"{"fee":1}"#))
        .await
        .unwrap();
    db.upsert_shopify_product("p1", "Sneakers", Some("sneakers"), 1)
        .await
        .unwrap();
}

#[derive(Debug, PartialEq)]
struct Snapshot {
    store: Option<crate::ShopifyStoreRecord>,
    commissions: Vec<crate::ShopifyCommissionRecord>,
    products: Vec<crate::ShopifyProductRecord>,
}

async fn snapshot(ctx: &Ctx, id: &str) -> Snapshot {
    let db = ctx.storage.tenant(&tid(id));
    Snapshot {
        store: db.shopify_store().await.unwrap(),
        commissions: db.shopify_commissions(None, 100).await.unwrap(),
        products: db.shopify_products(100).await.unwrap(),
    }
}

async fn app_connection(url: &str, tenant: Option<&str>) -> PgConnection {
    let mut conn = PgConnection::connect(url).await.unwrap();
    sqlx::query("SET ROLE veneer_app")
        .execute(&mut conn)
        .await
        .unwrap();
    if let Some(tenant) = tenant {
        sqlx::query("SELECT set_config('app.tenant_id', $1, false)")
            .bind(tenant)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    conn
}

async fn run(conn: &mut PgConnection, sql: &str) -> Result<PgQueryResult, sqlx::Error> {
    // Only constant SQL from this file.
    sqlx::query(AssertSqlSafe(sql.to_owned()))
        .execute(conn)
        .await
}

async fn count(conn: &mut PgConnection, sql: &str) -> i64 {
    sqlx::query_scalar(AssertSqlSafe(sql.to_owned()))
        .fetch_one(conn)
        .await
        .unwrap()
}

fn affected(result: Result<PgQueryResult, sqlx::Error>, what: &str) -> u64 {
    result
        .unwrap_or_else(|e| panic!("{what}: {e}"))
        .rows_affected()
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
async fn tenant_a_cannot_reach_b_shopify_rows_under_rls() {
    on_postgres(|ctx: Ctx| async move {
        seed(&ctx, "a").await;
        seed(&ctx, "b").await;
        let a_before = snapshot(&ctx, "a").await;
        let b_before = snapshot(&ctx, "b").await;

        let mut conn = app_connection(&ctx.url, Some("a")).await;
        for &(table, forge) in TABLES {
            let all = count(&mut conn, &format!("SELECT count(*) FROM {table}")).await;
            let own = count(&mut conn, &format!("SELECT count(*) FROM {table} WHERE tenant_id = 'a'")).await;
            assert!(own > 0, "{table}: a sees its own rows");
            assert_eq!(all, own, "{table}: a sees b's rows");

            let steal = format!("UPDATE {table} SET tenant_id = 'a' WHERE tenant_id = 'b'");
            let delete_b = format!("DELETE FROM {table} WHERE tenant_id = 'b'");
            let give_away = format!("UPDATE {table} SET tenant_id = 'b' WHERE tenant_id = 'a'");
            if table == "shopify_commissions" {
                // The ledger is append-only for the application.
                for sql in [&steal, &delete_b, &give_away] {
                    refused(run(&mut conn, sql).await, sql);
                }
            } else if table == "shopify_webhooks" {
                refused(run(&mut conn, &steal).await, &steal);
                assert_eq!(affected(run(&mut conn, &delete_b).await, &delete_b), 0);
            } else {
                assert_eq!(affected(run(&mut conn, &steal).await, &steal), 0);
                assert_eq!(affected(run(&mut conn, &delete_b).await, &delete_b), 0);
                refused(run(&mut conn, &give_away).await, &give_away);
            }
            refused(run(&mut conn, forge).await, forge);
        }
        // Reading b's credentials, or pointing b's store at a's tokens.
        assert_eq!(
            count(&mut conn, "SELECT count(*) FROM shopify_stores WHERE shop_domain = 'b.myshopify.com'").await,
            0
        );
        assert_eq!(
            affected(
                run(&mut conn, "UPDATE shopify_stores SET access_token_enc = NULL WHERE shop_domain = 'b.myshopify.com'").await,
                "wipe b"
            ),
            0
        );
        // Upserts that would land on b's rows go through neither door.
        for sql in [
            "INSERT INTO shopify_stores (tenant_id, shop_domain, api_version, enabled, \
             connected_at, updated_at) VALUES ('b', 'b2.myshopify.com', '2025-07', TRUE, 1, 1) \
             ON CONFLICT (tenant_id) DO UPDATE SET access_token_enc = NULL",
            "INSERT INTO shopify_products (tenant_id, product_id, product_type, updated_at) \
             VALUES ('b', 'p1', 'pwned', 9) ON CONFLICT (tenant_id, product_id) \
             DO UPDATE SET product_type = excluded.product_type",
        ] {
            refused(run(&mut conn, sql).await, sql);
        }
        // Claiming b's shop for a hits the unique index, whatever RLS hides.
        match run(
            &mut conn,
            "UPDATE shopify_stores SET shop_domain = 'b.myshopify.com' WHERE tenant_id = 'a'",
        )
        .await
        {
            Err(sqlx::Error::Database(e)) => assert!(e.is_unique_violation(), "{e}"),
            other => panic!("expected a unique violation, got {other:?}"),
        }
        conn.close().await.unwrap();

        // With no tenant set, nothing at all.
        let mut anonymous = app_connection(&ctx.url, None).await;
        for &(table, _) in TABLES {
            assert_eq!(count(&mut anonymous, &format!("SELECT count(*) FROM {table}")).await, 0, "{table}");
        }
        anonymous.close().await.unwrap();

        assert_eq!(snapshot(&ctx, "a").await, a_before, "a's rows are intact");
        assert_eq!(snapshot(&ctx, "b").await, b_before, "b's rows are intact");
        let b = ctx.storage.tenant(&tid("b"));
        assert!(!b.record_shopify_webhook("wh-1", "orders/create").await.unwrap());
    })
    .await;
}

async fn an_install_state_works_once_for_its_tenant_until_it_expires(ctx: Ctx) {
    let a = ctx.tenant("a").await;
    let b = ctx.tenant("b").await;
    let later = crate::time::now_ms() + 600_000;
    a.begin_shopify_install("n1", "Shop-A.myshopify.com", later)
        .await
        .unwrap();
    // Another tenant cannot take it; its owner can, once.
    assert_eq!(b.take_shopify_install("n1").await.unwrap(), None);
    assert_eq!(
        a.take_shopify_install("n1").await.unwrap().as_deref(),
        Some("shop-a.myshopify.com")
    );
    assert_eq!(a.take_shopify_install("n1").await.unwrap(), None);
    // An expired one is gone too.
    a.begin_shopify_install("n2", "shop-a.myshopify.com", 1)
        .await
        .unwrap();
    assert_eq!(a.take_shopify_install("n2").await.unwrap(), None);
    // Not a shop domain: refused.
    assert!(matches!(
        a.begin_shopify_install("n3", "evil.example", later).await,
        Err(StorageError::Invalid(_))
    ));
    // At most so many pending at once.
    for i in 0..crate::MAX_PENDING_INSTALLS {
        a.begin_shopify_install(&format!("p{i}"), "shop-a.myshopify.com", later)
            .await
            .unwrap();
    }
    assert!(matches!(
        a.begin_shopify_install("over", "shop-a.myshopify.com", later)
            .await,
        Err(StorageError::Conflict(_))
    ));
    // The app: the secret only sealed.
    assert!(
        a.put_shopify_app("cid", "clear-secret", "read_products")
            .await
            .is_err()
    );
    a.put_shopify_app("cid", "v1:k:sealed", "read_products,write_products")
        .await
        .unwrap();
    assert_eq!(a.shopify_app().await.unwrap().unwrap().client_id, "cid");
    assert_eq!(b.shopify_app().await.unwrap(), None);
    assert!(a.delete_shopify_app().await.unwrap());
    assert_eq!(
        a.take_shopify_install("p0").await.unwrap(),
        None,
        "states went too"
    );
}

async fn redaction_removes_a_customer_of_one_tenant_and_a_shop_after_its_uninstall(ctx: Ctx) {
    let a = ctx.tenant("a").await;
    let b = ctx.tenant("b").await;
    for db in [&a, &b] {
        seed_rows(db, db.tenant_id().as_str()).await;
        super::email::queue(db, "Jane.Doe@example.com").await;
        super::email::queue(db, "someone@example.com").await;
        db.email_suppress("jane.doe@example.com", "manual", None)
            .await
            .unwrap();
        db.put_data_request("dr-9", "42", r#"{"email":"jane.doe@example.com"}"#)
            .await
            .unwrap();
    }
    assert_eq!(
        a.emails_to("jane.doe@EXAMPLE.com", 10).await.unwrap().len(),
        1
    );
    assert!(
        a.suppression_of("JANE.DOE@example.com")
            .await
            .unwrap()
            .is_some()
    );

    let redacted = a
        .redact_customer(Some("jane.doe@example.com"), "42")
        .await
        .unwrap();
    assert_eq!(
        redacted,
        crate::CustomerRedaction {
            emails: 1,
            suppressions: 1,
            data_requests: 1
        }
    );
    assert!(
        a.emails_to("jane.doe@example.com", 10)
            .await
            .unwrap()
            .is_empty()
    );
    let kept: Vec<String> = a
        .email_messages(10)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.to_address)
        .collect();
    assert!(kept.contains(&crate::REDACTED.to_owned()), "{kept:?}");
    assert!(kept.contains(&"someone@example.com".to_owned()), "{kept:?}");
    assert_eq!(
        a.suppression_of("jane.doe@example.com").await.unwrap(),
        None
    );
    assert!(a.data_requests(10).await.unwrap().is_empty());
    // b's rows about the same address are b's: untouched.
    assert_eq!(
        b.emails_to("jane.doe@example.com", 10).await.unwrap().len(),
        1
    );
    assert!(
        b.suppression_of("jane.doe@example.com")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(b.data_requests(10).await.unwrap().len(), 1);

    // The shop: refused while installed; after the uninstall, all of it goes.
    assert!(matches!(
        a.redact_shop().await,
        Err(StorageError::Conflict(_))
    ));
    a.mark_shopify_uninstalled().await.unwrap();
    let removed = a.redact_shop().await.unwrap();
    assert_eq!(
        (
            removed.commissions,
            removed.products,
            removed.webhooks,
            removed.stores
        ),
        (1, 1, 1, 1)
    );
    let after = snapshot(&ctx, "a").await;
    assert_eq!(after.store, None);
    assert!(after.commissions.is_empty() && after.products.is_empty());
    let other = snapshot(&ctx, "b").await;
    assert!(other.store.is_some() && !other.commissions.is_empty());
}
