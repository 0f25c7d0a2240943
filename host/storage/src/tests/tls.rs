//! Certificates, ACME accounts and challenges: rows follow what routes, one
//! node of two racing for an order gets the lease, only routed domains'
//! certificates are served, and the tables are the platform's alone.

use crate::testing::harness::{Ctx, options, tid};
use crate::{Backend, CertificateStatus, DomainStatus, IssuedCertificate, Storage};

crate::both_backends!(via crate::testing::harness::run;
    certificate_rows_follow_the_domains_that_route,
    one_node_of_two_gets_the_lease_to_order,
    accounts_and_challenges_are_shared_by_the_nodes,
);

async fn verified(ctx: &Ctx, tenant: &str, domain: &str) {
    let platform = ctx.storage.platform();
    platform
        .claim_domain(domain, &tid(tenant), "token")
        .await
        .unwrap();
    platform
        .record_domain_check(domain, &tid(tenant), DomainStatus::Verified, "ok", None)
        .await
        .unwrap();
}

fn issued(now: i64) -> IssuedCertificate<'static> {
    IssuedCertificate {
        chain_pem: "CHAIN",
        key_sealed: "SEALED",
        not_before: now,
        not_after: now + 90_000,
        renew_at: now + 60_000,
    }
}

fn now() -> i64 {
    crate::time::now_ms()
}

async fn certificate_rows_follow_the_domains_that_route(ctx: Ctx) {
    let platform = ctx.storage.platform();
    ctx.tenant("acme").await;
    ctx.tenant("beta").await;
    verified(&ctx, "acme", "shop.acme.example").await;
    verified(&ctx, "beta", "beta.example").await;
    platform
        .claim_domain("pending.example", &tid("beta"), "t")
        .await
        .unwrap();

    assert_eq!(
        platform
            .sync_certificates(Some("veneer.test"))
            .await
            .unwrap(),
        (3, 0)
    );
    assert_eq!(
        platform
            .sync_certificates(Some("veneer.test"))
            .await
            .unwrap(),
        (0, 0),
        "idempotent"
    );
    let due = platform.due_certificates(10).await.unwrap();
    let names: Vec<_> = due.iter().map(|(d, _)| d.as_str()).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(due.contains(&("veneer.test".to_owned(), None)));
    assert!(due.contains(&("shop.acme.example".to_owned(), Some("acme".to_owned()))));
    assert!(
        !names.contains(&"pending.example"),
        "never proven: no order"
    );

    // Nothing is served before it is issued.
    assert!(
        platform
            .served_certificate_stamps()
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        platform
            .lease_certificate("shop.acme.example", "node-a", now() + 60_000)
            .await
            .unwrap()
    );
    assert!(
        platform
            .store_certificate("shop.acme.example", "node-a", &issued(now()))
            .await
            .unwrap()
    );
    let state = platform
        .certificate("shop.acme.example")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.status, CertificateStatus::Issued);
    assert_eq!(state.tenant_id.as_deref(), Some("acme"));
    assert_eq!(state.attempts, 0);
    assert!(state.next_attempt_at > now(), "renewal scheduled ahead");
    let served = platform
        .served_certificate("shop.acme.example")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (served.chain_pem.as_str(), served.key_sealed.as_str()),
        ("CHAIN", "SEALED")
    );
    assert_eq!(
        platform
            .tenant_certificates(&tid("acme"))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        platform.tenant_certificates(&tid("beta")).await.unwrap()[0].status
            == CertificateStatus::Pending
    );

    // A failed renewal keeps the certificate served and says why.
    platform
        .retry_certificate("shop.acme.example")
        .await
        .unwrap();
    assert!(
        platform
            .lease_certificate("shop.acme.example", "node-a", now() + 60_000)
            .await
            .unwrap()
    );
    assert!(
        platform
            .fail_certificate("shop.acme.example", "node-a", "CA down", now() + 5_000)
            .await
            .unwrap()
    );
    let state = platform
        .certificate("shop.acme.example")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.status, CertificateStatus::Issued);
    assert_eq!(state.last_error.as_deref(), Some("CA down"));
    assert_eq!(state.attempts, 1);
    assert!(
        platform
            .served_certificate("shop.acme.example")
            .await
            .unwrap()
            .is_some()
    );

    // A domain that stops routing is no longer served, even before the rows
    // are synced, and then loses its row.
    platform
        .record_domain_check(
            "shop.acme.example",
            &tid("acme"),
            DomainStatus::Disabled,
            "gone",
            None,
        )
        .await
        .unwrap();
    assert!(
        platform
            .served_certificate("shop.acme.example")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        platform
            .served_certificate_stamps()
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(platform.sync_certificates(None).await.unwrap(), (0, 2));
    assert!(
        platform
            .certificate("shop.acme.example")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        platform.certificate("veneer.test").await.unwrap().is_none(),
        "PEM now"
    );
    assert!(!platform.retry_certificate("nowhere.example").await.unwrap());

    if ctx.backend() == Backend::Postgres {
        let mut raw = crate::testing::RawSql::connect(&ctx.url).await;
        for table in ["certificates", "acme_accounts", "acme_challenges"] {
            assert_eq!(
                raw.scalar(&format!(
                    "SELECT count(*) FROM pg_class WHERE oid = to_regclass('{table}') \
                        AND relrowsecurity AND relforcerowsecurity"
                ))
                .await,
                1,
                "{table}: row-level security enabled and forced"
            );
        }
        // The application role in a tenant's transaction sees none of it.
        use sqlx::Connection as _;
        let mut conn = sqlx::PgConnection::connect(&ctx.url).await.unwrap();
        let mut tx = conn.begin().await.unwrap();
        sqlx::query("SET LOCAL ROLE veneer_app")
            .execute(&mut *tx)
            .await
            .unwrap();
        sqlx::query("SELECT set_config('app.tenant_id', 'beta', true)")
            .execute(&mut *tx)
            .await
            .unwrap();
        let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM certificates")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(seen, 0, "beta has a certificate row, and cannot see it");
    }
}

async fn one_node_of_two_gets_the_lease_to_order(ctx: Ctx) {
    ctx.tenant("acme").await;
    verified(&ctx, "acme", "shop.acme.example").await;
    let other = Storage::connect(&ctx.url, &options()).await.unwrap();
    let (a, b) = (ctx.storage.platform(), other.platform());
    a.sync_certificates(None).await.unwrap();
    b.sync_certificates(None).await.unwrap();

    let until = now() + 60_000;
    let (won_a, won_b) = tokio::join!(
        a.lease_certificate("shop.acme.example", "node-a", until),
        b.lease_certificate("shop.acme.example", "node-b", until),
    );
    let (won_a, won_b) = (won_a.unwrap(), won_b.unwrap());
    assert!(won_a ^ won_b, "exactly one wins: a {won_a}, b {won_b}");
    let (winner, loser, db) = if won_a {
        ("node-a", "node-b", &b)
    } else {
        ("node-b", "node-a", &a)
    };
    assert!(
        db.due_certificates(10).await.unwrap().is_empty(),
        "a leased certificate is not offered"
    );
    assert!(
        !db.store_certificate("shop.acme.example", loser, &issued(now()))
            .await
            .unwrap(),
        "only the lease holder stores"
    );
    assert!(
        !db.fail_certificate("shop.acme.example", loser, "x", now())
            .await
            .unwrap()
    );
    assert!(
        db.store_certificate("shop.acme.example", winner, &issued(now()))
            .await
            .unwrap()
    );
    assert!(
        !db.lease_certificate("shop.acme.example", loser, until)
            .await
            .unwrap(),
        "not due again before its renewal"
    );

    // An expired lease (its node died) can be taken over.
    db.retry_certificate("shop.acme.example").await.unwrap();
    assert!(
        db.lease_certificate("shop.acme.example", winner, now() - 1)
            .await
            .unwrap()
    );
    assert!(
        db.lease_certificate("shop.acme.example", loser, until)
            .await
            .unwrap()
    );
}

async fn accounts_and_challenges_are_shared_by_the_nodes(ctx: Ctx) {
    let other = Storage::connect(&ctx.url, &options()).await.unwrap();
    let (a, b) = (ctx.storage.platform(), other.platform());
    let dir = "https://acme.example/dir";
    assert_eq!(a.acme_account(dir).await.unwrap(), None);
    assert_eq!(a.save_acme_account(dir, "first").await.unwrap(), "first");
    assert_eq!(
        b.save_acme_account(dir, "second").await.unwrap(),
        "first",
        "the account saved first is everyone's"
    );
    assert_eq!(b.acme_account(dir).await.unwrap().as_deref(), Some("first"));

    a.put_acme_challenge("tok", "tok.thumb", "shop.example", now() + 60_000)
        .await
        .unwrap();
    a.put_acme_challenge("old", "old.thumb", "shop.example", now() - 1)
        .await
        .unwrap();
    assert_eq!(
        b.acme_challenge("tok").await.unwrap().as_deref(),
        Some("tok.thumb")
    );
    assert_eq!(b.acme_challenge("old").await.unwrap(), None, "expired");
    assert_eq!(b.acme_challenge("nope").await.unwrap(), None);
    a.remove_acme_challenge("tok").await.unwrap();
    assert_eq!(b.acme_challenge("tok").await.unwrap(), None);
}
