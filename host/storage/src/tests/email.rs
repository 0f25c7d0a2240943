//! Email storage on both backends: settings, the message lifecycle, the
//! per-tenant suppression list; and, on PostgreSQL,
//! row-level security attacked from below.

use sqlx::{AssertSqlSafe, Connection, PgConnection};

use crate::testing::harness::{Ctx, on_postgres, tid};
use crate::{
    DkimKeyState, EmailMessageRecord, EmailRelay, EmailSettings, EmailState, EmailTls, NewDkimKey,
    NewEmailMessage, NewJob, SendingDomainCheck, SendingDomainStatus, StorageError, TenantDb,
};

crate::both_backends!(via crate::testing::harness::run;
    settings_round_trip_and_replace,
    message_lifecycle,
    transitions_refuse_wrong_states,
    suppression_is_per_tenant,
    bad_input_is_refused,
    a_message_and_its_send_job_are_written_together,
    sending_domain_keys_verify_and_rotate,
);

/// A fresh message id, as the host makes them (32 hex digits).
fn new_message_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

fn message_id_header(id: &str, domain: &str) -> String {
    format!("<{id}@{domain}>")
}

fn settings(domain: &str) -> EmailSettings {
    EmailSettings {
        sending_domain: domain.into(),
        from_name: "Shop".into(),
        from_address: format!("orders@{domain}"),
        reply_to: Some(format!("help@{domain}")),
        relay: EmailRelay::Custom,
        smtp_host: Some(format!("smtp.{domain}")),
        smtp_port: Some(587),
        smtp_tls: EmailTls::Starttls,
        smtp_username: Some("user".into()),
        smtp_password_enc: Some("v1:ciphertext".into()),
    }
}

pub(super) async fn queue(db: &TenantDb, to: &str) -> EmailMessageRecord {
    let id = new_message_id();
    let header = message_id_header(&id, "shop.example");
    db.email_create_message(&NewEmailMessage {
        id: &id,
        template_id: "welcome",
        to_address: to,
        subject: "Welcome",
        message_id: &header,
    })
    .await
    .unwrap()
}

async fn settings_round_trip_and_replace(ctx: Ctx) {
    let db = ctx.tenant("a").await;
    assert_eq!(db.email_settings().await.unwrap(), None);
    let stored = db.email_set_settings(&settings("a.example")).await.unwrap();
    assert_eq!(stored.settings, settings("a.example"));
    assert_eq!(db.email_settings().await.unwrap(), Some(stored.clone()));

    let platform = EmailSettings {
        relay: EmailRelay::Platform,
        reply_to: None,
        smtp_host: None,
        smtp_port: None,
        smtp_tls: EmailTls::None,
        smtp_username: None,
        smtp_password_enc: None,
        ..settings("a.example")
    };
    let replaced = db.email_set_settings(&platform).await.unwrap();
    assert_eq!(replaced.settings, platform);
    assert!(replaced.updated_at >= stored.updated_at);
    // The ciphertext never leaves in JSON.
    let json = serde_json::to_string(&stored).unwrap();
    assert!(
        !json.contains("ciphertext") && json.contains("\"relay\":\"custom\""),
        "{json}"
    );

    // Another tenant sees none of it; a tenant that does not exist cannot write.
    let b = ctx.tenant("b").await;
    assert_eq!(b.email_settings().await.unwrap(), None);
    let ghost = ctx.storage.tenant(&tid("ghost"));
    assert!(matches!(
        ghost.email_set_settings(&settings("g.example")).await,
        Err(StorageError::NotFound(_))
    ));
}

async fn message_lifecycle(ctx: Ctx) {
    let db = ctx.tenant("a").await;
    let m = queue(&db, "ann@example.com").await;
    assert_eq!(m.state, EmailState::Queued);
    assert_eq!(
        (m.attempts, m.sent_at, m.smtp_reply.as_deref()),
        (0, None, None)
    );
    assert_eq!(m.tenant, tid("a"));

    let retried = db.email_mark_retry(&m.id, "451 4.3.0 later").await.unwrap();
    assert_eq!(retried.state, EmailState::Queued);
    assert_eq!(retried.attempts, 1);
    assert_eq!(retried.smtp_reply.as_deref(), Some("451 4.3.0 later"));

    let sent = db
        .email_mark_sent(&m.id, "250 2.0.0 queued as X")
        .await
        .unwrap();
    assert_eq!(sent.state, EmailState::Sent);
    assert_eq!(sent.attempts, 2);
    assert!(sent.sent_at.is_some());

    let bounced = db
        .email_mark_bounced(&m.id, true, "5.1.1 smtp; 550 unknown")
        .await
        .unwrap();
    assert_eq!(bounced.state, EmailState::Bounced);
    assert_eq!(bounced.bounce_type.as_deref(), Some("hard"));
    let first = bounced.bounced_at;
    assert!(first.is_some());
    let again = db.email_mark_bounced(&m.id, false, "again").await.unwrap();
    assert_eq!(again.bounced_at, first, "the first bounce time is kept");

    let failed = queue(&db, "bob@example.com").await;
    let failed = db
        .email_mark_failed(&failed.id, "550 5.7.1 no")
        .await
        .unwrap();
    assert_eq!((failed.state, failed.attempts), (EmailState::Failed, 1));
    let skipped = queue(&db, "carl@example.com").await;
    let skipped = db.email_mark_skipped(&skipped.id).await.unwrap();
    assert_eq!(
        (skipped.state, skipped.attempts),
        (EmailState::SkippedSuppressed, 0)
    );

    let listed = db.email_messages(10).await.unwrap();
    assert_eq!(listed.len(), 3);
    assert_eq!(db.email_messages(1).await.unwrap().len(), 1);
    assert_eq!(db.email_message(&m.id).await.unwrap(), Some(again.clone()));
    assert_eq!(
        ctx.storage
            .platform()
            .email_message_by_id(&tid("a"), &m.id)
            .await
            .unwrap(),
        Some(again)
    );
    // The id is unique per tenant.
    let dup = db
        .email_create_message(&NewEmailMessage {
            id: &m.id,
            template_id: "t",
            to_address: "x@example.com",
            subject: "s",
            message_id: "<x@y>",
        })
        .await;
    assert!(matches!(dup, Err(StorageError::Conflict(_))), "{dup:?}");
}

async fn transitions_refuse_wrong_states(ctx: Ctx) {
    let db = ctx.tenant("a").await;
    let m = queue(&db, "ann@example.com").await;
    db.email_mark_sent(&m.id, "250 ok").await.unwrap();
    for result in [
        db.email_mark_sent(&m.id, "250 ok").await,
        db.email_mark_retry(&m.id, "451").await,
        db.email_mark_failed(&m.id, "550").await,
        db.email_mark_skipped(&m.id).await,
    ] {
        assert!(
            matches!(&result, Err(StorageError::Conflict(msg)) if msg.contains("is sent")),
            "{result:?}"
        );
    }
    let skipped = queue(&db, "bob@example.com").await;
    db.email_mark_skipped(&skipped.id).await.unwrap();
    assert!(matches!(
        db.email_mark_bounced(&skipped.id, true, "x").await,
        Err(StorageError::Conflict(_))
    ));
    let unknown = new_message_id();
    assert!(matches!(
        db.email_mark_sent(&unknown, "250").await,
        Err(StorageError::NotFound(_))
    ));

    // Tenant b cannot move a's message, nor see it.
    let b = ctx.tenant("b").await;
    let m2 = queue(&db, "carl@example.com").await;
    assert!(matches!(
        b.email_mark_sent(&m2.id, "250").await,
        Err(StorageError::NotFound(_))
    ));
    assert!(matches!(
        b.email_mark_bounced(&m.id, true, "x").await,
        Err(StorageError::NotFound(_))
    ));
    assert_eq!(b.email_message(&m2.id).await.unwrap(), None);
    assert!(b.email_messages(10).await.unwrap().is_empty());
    assert_eq!(
        db.email_message(&m2.id).await.unwrap().unwrap().state,
        EmailState::Queued
    );
}

async fn suppression_is_per_tenant(ctx: Ctx) {
    let a = ctx.tenant("a").await;
    let b = ctx.tenant("b").await;
    let entry = a
        .email_suppress(" Ann@Example.COM ", "hard bounce 5.1.1", None)
        .await
        .unwrap();
    assert_eq!(entry.address, "ann@example.com");
    assert!(a.email_is_suppressed("ann@example.com").await.unwrap());
    assert!(a.email_is_suppressed("ANN@example.com").await.unwrap());
    assert!(
        !b.email_is_suppressed("ann@example.com").await.unwrap(),
        "only a suppressed it"
    );
    assert!(b.email_suppressions(10).await.unwrap().is_empty());

    // Again: updated reason, first time kept.
    let again = a
        .email_suppress("ann@example.com", "manual", Some("m1"))
        .await
        .unwrap();
    assert_eq!(again.created_at, entry.created_at);
    assert_eq!(
        (again.reason.as_str(), again.source_message_id.as_deref()),
        ("manual", Some("m1"))
    );
    a.email_suppress("bob@example.com", "manual", None)
        .await
        .unwrap();
    assert_eq!(a.email_suppressions(10).await.unwrap().len(), 2);
    assert_eq!(a.email_suppressions(1).await.unwrap().len(), 1);

    // b cannot lift a's suppression.
    assert!(!b.email_unsuppress("ann@example.com").await.unwrap());
    assert!(a.email_is_suppressed("ann@example.com").await.unwrap());
    assert!(a.email_unsuppress("Ann@example.com").await.unwrap());
    assert!(!a.email_is_suppressed("ann@example.com").await.unwrap());
    assert!(!a.email_unsuppress("ann@example.com").await.unwrap());
}

async fn bad_input_is_refused(ctx: Ctx) {
    let db = ctx.tenant("a").await;
    for id in [
        "",
        "xyz",
        "0123456789ABCDEF0123456789ABCDEF",
        "0123456789abcdef",
    ] {
        let result = db
            .email_create_message(&NewEmailMessage {
                id,
                template_id: "t",
                to_address: "a@example.com",
                subject: "s",
                message_id: "<x@y>",
            })
            .await;
        assert!(
            matches!(result, Err(StorageError::Invalid(_))),
            "{id}: {result:?}"
        );
    }
    let nul = EmailSettings {
        from_name: "a\0b".into(),
        ..settings("a.example")
    };
    assert!(matches!(
        db.email_set_settings(&nul).await,
        Err(StorageError::Invalid(_))
    ));
    assert!(matches!(
        db.email_suppress("a\0@example.com", "r", None).await,
        Err(StorageError::Invalid(_))
    ));
    assert!(matches!(
        db.email_suppress("  ", "r", None).await,
        Err(StorageError::Invalid(_))
    ));
    // The schema's own checks hold on both backends.
    let bad_port = EmailSettings {
        smtp_port: Some(70000),
        ..settings("a.example")
    };
    assert!(matches!(
        db.email_set_settings(&bad_port).await,
        Err(StorageError::Invalid(_))
    ));
}

/// Every email table and whether the seed gives each tenant rows in it.
const TABLES: &[&str] = &[
    "email_settings",
    "email_messages",
    "email_suppressions",
    "sending_domains",
    "dkim_keys",
];

async fn app_connection(url: &str, tenant: &str) -> PgConnection {
    let mut conn = PgConnection::connect(url).await.unwrap();
    sqlx::query("SET ROLE veneer_app")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("SELECT set_config('app.tenant_id', $1, false)")
        .bind(tenant)
        .execute(&mut conn)
        .await
        .unwrap();
    conn
}

async fn seed(ctx: &Ctx, id: &str) -> EmailMessageRecord {
    let db = ctx.tenant(id).await;
    seed_rows(&db, id).await
}

/// Email rows of every kind for the existing tenant `id` (also used by the
/// purge test).
pub(super) async fn seed_rows(db: &crate::TenantDb, id: &str) -> EmailMessageRecord {
    db.email_set_settings(&settings(&format!("{id}.example")))
        .await
        .unwrap();
    db.email_suppress(&format!("x@{id}.example"), "manual", None)
        .await
        .unwrap();
    db.add_sending_domain(&format!("{id}.example"), &key("s1"))
        .await
        .unwrap();
    queue(db, "ann@example.com").await
}

fn key(selector: &str) -> NewDkimKey<'_> {
    NewDkimKey {
        selector,
        public_key: "MIIBIjAN",
        private_key_enc: "v1:ciphertext",
    }
}

fn found<'a>(activate: Option<&'a str>) -> SendingDomainCheck<'a> {
    SendingDomainCheck {
        status: SendingDomainStatus::Verified,
        result: "found",
        spf: Some("missing"),
        dmarc: None,
        activate,
    }
}

async fn sending_domain_keys_verify_and_rotate(ctx: Ctx) {
    let a = ctx.tenant("a").await;
    let b = ctx.tenant("b").await;
    let (first, created) = a
        .add_sending_domain("Shop.Example", &key("s1"))
        .await
        .unwrap();
    assert!(created);
    assert_eq!(first.domain, "shop.example");
    assert_eq!(first.status, SendingDomainStatus::Pending);
    assert_eq!(first.pending_key().unwrap().selector, "s1");
    assert!(first.active_key().is_none());
    // Adding it again keeps the first key.
    let (again, created) = a
        .add_sending_domain("shop.example", &key("s2"))
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(again, first);
    // Another tenant has its own, separately.
    b.add_sending_domain("shop.example", &key("s1"))
        .await
        .unwrap();
    // No rotation while a key waits for its record.
    assert!(matches!(
        a.add_dkim_key("shop.example", &key("s2")).await,
        Err(StorageError::Conflict(_))
    ));

    a.record_sending_domain_check("shop.example", &found(Some("s1")))
        .await
        .unwrap();
    let verified = a.sending_domain("shop.example").await.unwrap().unwrap();
    assert_eq!(verified.status, SendingDomainStatus::Verified);
    assert!(verified.verified_at.is_some());
    assert_eq!(verified.active_key().unwrap().selector, "s1");
    assert_eq!(verified.spf_result.as_deref(), Some("missing"));
    // b's is untouched.
    let of_b = b.sending_domain("shop.example").await.unwrap().unwrap();
    assert_eq!(of_b.status, SendingDomainStatus::Pending);
    assert!(of_b.active_key().is_none());

    // Rotation: the new key is pending, the old one still signs; once found
    // the new one signs and the old one is retired.
    let rotating = a.add_dkim_key("shop.example", &key("s2")).await.unwrap();
    assert_eq!(rotating.active_key().unwrap().selector, "s1");
    assert_eq!(rotating.pending_key().unwrap().selector, "s2");
    assert!(matches!(
        a.add_dkim_key("shop.example", &key("s1")).await,
        Err(StorageError::Conflict(_))
    ));
    a.record_sending_domain_check("shop.example", &found(Some("s2")))
        .await
        .unwrap();
    let rotated = a.sending_domain("shop.example").await.unwrap().unwrap();
    assert_eq!(rotated.active_key().unwrap().selector, "s2");
    let old = rotated.keys.iter().find(|k| k.selector == "s1").unwrap();
    assert_eq!(old.state, DkimKeyState::Retired);
    assert!(old.retired_at.is_some());
    assert_eq!(rotated.verified_at, verified.verified_at);

    // Bad input.
    assert!(matches!(
        a.add_dkim_key("shop.example", &key("Bad Selector")).await,
        Err(StorageError::Invalid(_))
    ));
    assert!(matches!(
        a.add_dkim_key("other.example", &key("s3")).await,
        Err(StorageError::NotFound(_))
    ));
    assert!(a.remove_sending_domain("shop.example").await.unwrap());
    assert!(a.sending_domain("shop.example").await.unwrap().is_none());
    assert_eq!(a.sending_domains().await.unwrap().len(), 0);
    assert_eq!(b.sending_domains().await.unwrap().len(), 1);
}

fn refused<T: std::fmt::Debug>(result: Result<T, sqlx::Error>, what: &str) {
    match result {
        Err(sqlx::Error::Database(e)) => {
            assert_eq!(e.code().as_deref(), Some("42501"), "{what}: {e}")
        }
        other => panic!("{what}: expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rls_keeps_tenant_a_out_of_bs_email() {
    on_postgres(|ctx: Ctx| async move {
        let _ = seed(&ctx, "a").await;
        let b_message = seed(&ctx, "b").await;
        let b = ctx.storage.tenant(&tid("b"));
        let b_before = (
            b.email_settings().await.unwrap(),
            b.email_messages(10).await.unwrap(),
            b.email_suppressions(10).await.unwrap(),
        );

        let mut conn = app_connection(&ctx.url, "a").await;
        for table in TABLES {
            let count = |sql: String| sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql));
            let of_b = count(format!(
                "SELECT count(*) FROM {table} WHERE tenant_id = 'b'"
            ))
            .fetch_one(&mut conn)
            .await
            .unwrap();
            assert_eq!(of_b, 0, "{table}: a reads b's rows");
            let all = count(format!("SELECT count(*) FROM {table}"))
                .fetch_one(&mut conn)
                .await
                .unwrap();
            assert_eq!(all, 1, "{table}: a sees exactly its own row");
            for sql in [
                format!("UPDATE {table} SET tenant_id = tenant_id WHERE tenant_id = 'b'"),
                format!("UPDATE {table} SET tenant_id = 'a' WHERE tenant_id <> 'a'"),
                format!("DELETE FROM {table} WHERE tenant_id <> 'a'"),
            ] {
                let done = sqlx::query(AssertSqlSafe(sql.clone()))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                assert_eq!(done.rows_affected(), 0, "{sql}");
            }
            // Handing its own row to b fails the WITH CHECK.
            refused(
                sqlx::query(AssertSqlSafe(format!(
                    "UPDATE {table} SET tenant_id = 'b' WHERE tenant_id = 'a'"
                )))
                .execute(&mut conn)
                .await,
                table,
            );
        }
        // Forging rows for b: a suppression that would silence b's mail, a
        // message, b's relay settings (upsert included).
        for sql in [
            "INSERT INTO email_suppressions (tenant_id, address, reason, created_at) \
             VALUES ('b', 'vip@customer.example', 'forged', 1)"
                .to_owned(),
            format!(
                "INSERT INTO email_messages (tenant_id, id, template_id, to_address, subject, \
                 message_id, created_at) VALUES ('b', '{}', 't', 'x@y.example', 's', '<m>', 1)",
                new_message_id()
            ),
            "INSERT INTO email_settings (tenant_id, sending_domain, from_name, from_address, \
             relay, smtp_tls, updated_at) VALUES ('b', 'evil.example', 'b', 'x@evil.example', \
             'platform', 'none', 1) ON CONFLICT (tenant_id) DO UPDATE SET \
             smtp_host = 'evil.example'"
                .to_owned(),
        ] {
            refused(
                sqlx::query(AssertSqlSafe(sql.clone()))
                    .execute(&mut conn)
                    .await,
                &sql,
            );
        }
        // Marking b's message bounced, by id, from a's session: no row.
        let done = sqlx::query("UPDATE email_messages SET state = 'bounced' WHERE id = $1")
            .bind(&b_message.id)
            .execute(&mut conn)
            .await
            .unwrap();
        assert_eq!(done.rows_affected(), 0);

        // Without a tenant nothing is visible.
        sqlx::query("SELECT set_config('app.tenant_id', '', false)")
            .execute(&mut conn)
            .await
            .unwrap();
        for table in TABLES {
            let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                .fetch_one(&mut conn)
                .await
                .unwrap();
            assert_eq!(n, 0, "{table} without a tenant");
        }
        conn.close().await.unwrap();

        let b_after = (
            b.email_settings().await.unwrap(),
            b.email_messages(10).await.unwrap(),
            b.email_suppressions(10).await.unwrap(),
        );
        assert_eq!(b_after, b_before, "b's email data is intact");
        assert!(!b.email_is_suppressed("vip@customer.example").await.unwrap());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_tables_force_rls() {
    on_postgres(|ctx: Ctx| async move {
        let mut admin = PgConnection::connect(&ctx.url).await.unwrap();
        for table in TABLES {
            let (enabled, forced): (bool, bool) = sqlx::query_as(
                "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = to_regclass($1)",
            )
            .bind(table)
            .fetch_one(&mut admin)
            .await
            .unwrap();
            assert!(enabled && forced, "{table}");
        }
        admin.close().await.unwrap();
    })
    .await;
}

/// The send route writes the message and its job in one transaction: both or
/// neither (a failure between two separate writes used to leave a queued
/// message that nothing would ever send).
async fn a_message_and_its_send_job_are_written_together(ctx: Ctx) {
    let db = ctx.tenant("a").await;
    let id = new_message_id();
    let header = message_id_header(&id, "shop.example");
    let dedupe = format!("email:{id}");
    let job = NewJob {
        kind: "email.send",
        payload: r#"{"message":"m"}"#,
        max_attempts: 3,
        run_at: None,
        dedupe_key: Some(&dedupe),
    };
    let message = NewEmailMessage {
        id: &id,
        template_id: "welcome",
        to_address: "a@example.com",
        subject: "Welcome",
        message_id: &header,
    };
    let (record, written) = db.email_queue_message(&message, Some(&job)).await.unwrap();
    let written = written.expect("the job");
    assert_eq!(record.state, EmailState::Queued);
    let stored = db.job(written.id).await.unwrap().expect("job stored");
    assert_eq!(stored.kind, "email.send");
    // A second message with the same id fails, and takes its new job with it.
    let other = format!("email:{id}-again");
    let again = NewJob {
        dedupe_key: Some(&other),
        ..job
    };
    let dup = db.email_queue_message(&message, Some(&again)).await;
    assert!(matches!(dup, Err(StorageError::Conflict(_))), "{dup:?}");
    let ours = db.jobs(None, 100).await.unwrap();
    assert_eq!(ours.len(), 1, "{ours:?}");
}
