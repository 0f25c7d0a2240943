//! The job handlers driven directly, with an in-memory [`EmailSender`] and
//! [`ShopifyClient`] on a temporary SQLite database: what a send or a webhook
//! job does with each outcome, without SMTP or Shopify on a socket (the e2e
//! suite runs the real ones).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::{EmailSend, ShopifyWebhook};
use crate::app::jobs::{SEND_JOB, WEBHOOK_JOB, WEBHOOK_JOB_ATTEMPTS};
use crate::config::ServeConfig;
use crate::email::{EmailSender, SendError, SendFuture, SmtpConfig, SmtpOutcome};
use crate::jobs::{JobContext, JobError, JobHandler};
use crate::shopify::{
    AdminFuture, OpenedCredentials, ShopifyClient, ShopifyError, seal_credentials,
};
use crate::state::AppState;
use crate::storage::{
    EmailRelay, EmailSettings, EmailState, EmailTls, JobRecord, JobState, NewTenant, TenantDb,
};
use crate::tenancy::TenantId;
use crate::test_support::{Db, TestDb};

/// A sender that records what it was handed and answers scripted outcomes
/// (then `250 ok`).
#[derive(Default)]
struct FakeSender {
    outcomes: Mutex<VecDeque<Result<SmtpOutcome, SendError>>>,
    /// (relay host, envelope recipients, the formatted message).
    sent: Mutex<Vec<(String, Vec<String>, String)>>,
}

impl FakeSender {
    fn answering(outcomes: impl IntoIterator<Item = Result<SmtpOutcome, SendError>>) -> Self {
        Self {
            outcomes: Mutex::new(outcomes.into_iter().collect()),
            ..Self::default()
        }
    }

    fn sent(&self) -> Vec<(String, Vec<String>, String)> {
        self.sent.lock().expect("lock").clone()
    }
}

impl EmailSender for FakeSender {
    fn send<'a>(&'a self, relay: &'a SmtpConfig, message: &'a lettre::Message) -> SendFuture<'a> {
        let to = message
            .envelope()
            .to()
            .iter()
            .map(ToString::to_string)
            .collect();
        let text = String::from_utf8_lossy(&message.formatted()).into_owned();
        self.sent
            .lock()
            .expect("lock")
            .push((relay.host.clone(), to, text));
        let next = self.outcomes.lock().expect("lock").pop_front();
        Box::pin(async move {
            next.unwrap_or_else(|| {
                Ok(SmtpOutcome {
                    code: 250,
                    reply: "250 ok queued as FAKE".into(),
                })
            })
        })
    }
}

/// An Admin API with product types in memory, or down.
#[derive(Default)]
struct FakeShopify {
    types: HashMap<u64, String>,
    down: bool,
    /// (shop, product id) per call.
    calls: Mutex<Vec<(String, u64)>>,
}

impl FakeShopify {
    fn calls(&self) -> Vec<(String, u64)> {
        self.calls.lock().expect("lock").clone()
    }
}

impl ShopifyClient for FakeShopify {
    fn product_type<'a>(
        &'a self,
        credentials: &'a OpenedCredentials,
        product_id: u64,
    ) -> AdminFuture<'a, String> {
        self.calls
            .lock()
            .expect("lock")
            .push((credentials.shop_domain.clone(), product_id));
        let answer = if self.down {
            Err(ShopifyError::Transport("connection refused".into()))
        } else {
            Ok(self.types.get(&product_id).cloned().unwrap_or_default())
        };
        Box::pin(async move { answer })
    }
}

/// A state on a fresh SQLite database with one tenant, `shop`, and no plugin.
async fn state() -> (TestDb, AppState, TenantId, TenantDb) {
    let db = TestDb::new(Db::Sqlite).await;
    let mut config = ServeConfig::for_tests(db.url.clone());
    config.worker_concurrency = 0;
    config.max_order_lines = 3;
    let app = AppState::build(config).await.expect("the state builds");
    let tenant = TenantId::new("shop").expect("tenant id");
    app.storage
        .platform()
        .create_tenant(&NewTenant {
            id: tenant.clone(),
            org_id: "org_shop".into(),
            name: "Shop".into(),
            rate_limit_per_sec: 100,
            rate_limit_burst: 100,
            max_concurrency: 4,
        })
        .await
        .expect("tenant created");
    let tenant_db = app.storage.tenant(&tenant);
    (db, app, tenant, tenant_db)
}

fn context(tenant: &TenantId, db: &TenantDb, job: JobRecord) -> JobContext {
    JobContext {
        tenant: tenant.clone(),
        db: db.clone(),
        job,
    }
}

// ---- the send job ----

/// Sending as `hello@shop.example` through the platform's relay.
fn platform_settings() -> EmailSettings {
    EmailSettings {
        sending_domain: "shop.example".into(),
        from_name: "Shop".into(),
        from_address: "hello@shop.example".into(),
        reply_to: None,
        relay: EmailRelay::Platform,
        smtp_host: None,
        smtp_port: None,
        smtp_tls: EmailTls::None,
        smtp_username: None,
        smtp_password_enc: None,
    }
}

/// Email settings on the platform's relay, a welcome message queued through
/// the application layer, and its job as a worker claims it (first attempt).
async fn queued_send(app: &AppState, tenant: &TenantId, db: &TenantDb) -> (String, JobRecord) {
    queued_send_with(app, tenant, db, platform_settings()).await
}

/// Like [`queued_send`], with `settings`.
async fn queued_send_with(
    app: &AppState,
    tenant: &TenantId,
    db: &TenantDb,
    settings: EmailSettings,
) -> (String, JobRecord) {
    db.email_set_settings(&settings)
        .await
        .expect("settings saved");
    let state = app
        .tenant_state(tenant)
        .await
        .expect("tenant state")
        .expect("tenant exists");
    let context = BTreeMap::from(
        [
            ("customer_name", "Ada"),
            ("store_name", "Shop"),
            ("shop_url", "https://shop.example"),
            ("sell_url", "https://shop.example/sell"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let queued =
        crate::app::email::queue_send(app, &state, "test", "welcome", "ada@example.com", context)
            .await
            .expect("queued");
    let mut job = db
        .job(queued.job)
        .await
        .expect("job read")
        .expect("job exists");
    assert_eq!(job.kind, SEND_JOB);
    job.attempts = 1;
    job.state = JobState::Running;
    (queued.message_id, job)
}

async fn message_state(db: &TenantDb, id: &str) -> (EmailState, Option<String>) {
    let message = db
        .email_message(id)
        .await
        .expect("message read")
        .expect("message exists");
    (message.state, message.smtp_reply)
}

#[tokio::test]
async fn a_send_hands_the_rendered_message_to_the_relay_and_marks_it_sent() {
    let (_db, app, tenant, db) = state().await;
    // The sending domain proven (its DKIM key found in DNS): mail goes as
    // the tenant's own address, signed.
    let view = crate::app::sending_domains::ensure(&app, &tenant, "test", "shop.example")
        .await
        .expect("a sending domain with its key");
    let selector = view.record.keys[0].selector.clone();
    db.record_sending_domain_check(
        "shop.example",
        &crate::storage::SendingDomainCheck {
            status: crate::storage::SendingDomainStatus::Verified,
            result: "found",
            spf: None,
            dmarc: None,
            activate: Some(&selector),
        },
    )
    .await
    .expect("verified");
    let (id, job) = queued_send(&app, &tenant, &db).await;
    let sender = Arc::new(FakeSender::default());
    let handler = EmailSend::new(sender.clone());
    let job = context(&tenant, &db, job);

    handler.run(&app, &job).await.expect("sent");

    let sent = sender.sent();
    assert_eq!(sent.len(), 1, "one message handed over");
    let (relay, to, text) = &sent[0];
    assert_eq!(relay, "127.0.0.1", "the platform's relay");
    assert_eq!(to, &["ada@example.com".to_owned()]);
    assert!(text.contains("Subject: Welcome to Shop, Ada"), "{text}");
    assert!(text.contains("From: Shop <hello@shop.example>"), "{text}");
    assert!(
        text.contains(&format!("d=shop.example; s={selector};")),
        "DKIM-signed: {text}"
    );
    let message = db.email_message(&id).await.expect("read").expect("exists");
    assert_eq!(message.state, EmailState::Sent);

    // Idempotent: the job run again does not send a second copy.
    handler.run(&app, &job).await.expect("no-op");
    assert_eq!(sender.sent().len(), 1, "a sent message is not sent again");
}

#[tokio::test]
async fn a_permanent_refusal_fails_the_message_without_retry() {
    let (_db, app, tenant, db) = state().await;
    let (id, job) = queued_send(&app, &tenant, &db).await;
    let sender = Arc::new(FakeSender::answering([Err(SendError::Permanent(
        "550 5.1.1 no such user".into(),
    ))]));
    let outcome = EmailSend::new(sender.clone())
        .run(&app, &context(&tenant, &db, job))
        .await;

    assert!(
        matches!(&outcome, Err(JobError::Fail(reply)) if reply.contains("550")),
        "{outcome:?}"
    );
    let (state, error) = message_state(&db, &id).await;
    assert_eq!(state, EmailState::Failed);
    assert!(error.unwrap_or_default().contains("550 5.1.1"));
}

#[tokio::test]
async fn a_temporary_refusal_is_retried_until_the_last_attempt() {
    let (_db, app, tenant, db) = state().await;
    let (id, mut job) = queued_send(&app, &tenant, &db).await;
    let temporary = || Err(SendError::Temporary("451 4.3.0 try later".into()));
    let sender = Arc::new(FakeSender::answering([temporary(), temporary()]));
    let handler = EmailSend::new(sender.clone());

    let first = handler.run(&app, &context(&tenant, &db, job.clone())).await;
    assert!(matches!(&first, Err(JobError::Retry(_))), "{first:?}");
    let (state, error) = message_state(&db, &id).await;
    assert_eq!(state, EmailState::Queued, "still queued for the retry");
    assert!(error.unwrap_or_default().contains("451"));

    // The last attempt gives up: the message fails rather than waiting forever.
    job.attempts = job.max_attempts;
    let last = handler.run(&app, &context(&tenant, &db, job)).await;
    assert!(matches!(&last, Err(JobError::Fail(_))), "{last:?}");
    assert_eq!(message_state(&db, &id).await.0, EmailState::Failed);
    assert_eq!(sender.sent().len(), 2);
}

#[tokio::test]
async fn a_suppressed_recipient_is_skipped_without_a_send() {
    let (_db, app, tenant, db) = state().await;
    let (id, job) = queued_send(&app, &tenant, &db).await;
    db.email_suppress("ada@example.com", "bounce", None)
        .await
        .expect("suppressed");
    let sender = Arc::new(FakeSender::default());
    EmailSend::new(sender.clone())
        .run(&app, &context(&tenant, &db, job))
        .await
        .expect("skipped");
    assert!(sender.sent().is_empty(), "nothing handed to the relay");
    assert_eq!(
        message_state(&db, &id).await.0,
        EmailState::SkippedSuppressed
    );
}

/// The tenant's own relay, with its password sealed as the settings API
/// seals it.
fn custom_relay(app: &AppState, tenant: &TenantId, password_enc: Option<String>) -> EmailSettings {
    let password_enc = password_enc.unwrap_or_else(|| {
        app.secrets
            .encrypt(b"relay-pass", &crate::email::password_aad(tenant))
    });
    EmailSettings {
        relay: EmailRelay::Custom,
        smtp_host: Some("smtp.shop.example".into()),
        smtp_port: Some(587),
        smtp_tls: EmailTls::Starttls,
        smtp_username: Some("shop".into()),
        smtp_password_enc: Some(password_enc),
        ..platform_settings()
    }
}

/// A sender that keeps the relay it was handed.
#[derive(Default)]
struct RelaySpy(Mutex<Option<SmtpConfig>>);

impl EmailSender for RelaySpy {
    fn send<'a>(&'a self, relay: &'a SmtpConfig, _: &'a lettre::Message) -> SendFuture<'a> {
        *self.0.lock().expect("lock") = Some(relay.clone());
        Box::pin(async {
            Ok(SmtpOutcome {
                code: 250,
                reply: "250 ok".into(),
            })
        })
    }
}

#[tokio::test]
async fn a_tenant_relay_gets_its_decrypted_credentials_and_the_outbound_rule() {
    let (_db, app, tenant, db) = state().await;
    let settings = custom_relay(&app, &tenant, None);
    let (id, job) = queued_send_with(&app, &tenant, &db, settings).await;
    let spy = Arc::new(RelaySpy::default());
    EmailSend::new(spy.clone())
        .run(&app, &context(&tenant, &db, job))
        .await
        .expect("sent");

    let relay = spy.0.lock().expect("lock").clone().expect("handed over");
    assert_eq!(relay.host, "smtp.shop.example");
    assert_eq!(relay.port, 587);
    assert_eq!(relay.tls, EmailTls::Starttls);
    assert_eq!(relay.username.as_deref(), Some("shop"));
    assert_eq!(relay.password.as_deref(), Some("relay-pass"));
    assert_eq!(
        relay.policy,
        Some(app.config.relay_policy()),
        "a tenant's relay is checked against the outbound rule at send time"
    );
    assert_eq!(message_state(&db, &id).await.0, EmailState::Sent);
}

#[tokio::test]
async fn a_password_that_does_not_decrypt_fails_the_message_unsent() {
    let (_db, app, tenant, db) = state().await;
    // Sealed for another tenant: the AAD does not match.
    let other = TenantId::new("other").expect("tenant id");
    let foreign = app
        .secrets
        .encrypt(b"relay-pass", &crate::email::password_aad(&other));
    let settings = custom_relay(&app, &tenant, Some(foreign));
    let (id, job) = queued_send_with(&app, &tenant, &db, settings).await;
    let sender = Arc::new(FakeSender::default());
    let outcome = EmailSend::new(sender.clone())
        .run(&app, &context(&tenant, &db, job))
        .await;

    assert!(
        matches!(&outcome, Err(JobError::Fail(why)) if why.contains("save the email settings again")),
        "{outcome:?}"
    );
    assert!(sender.sent().is_empty(), "nothing handed to a relay");
    assert_eq!(message_state(&db, &id).await.0, EmailState::Failed);
}

// ---- the webhook job ----

async fn connect_store(app: &AppState, tenant: &TenantId, db: &TenantDb) {
    let (token, secret) = seal_credentials(&app.secrets, tenant, "shpat_test", "app-secret");
    db.connect_shopify("shop-one.myshopify.com", &token, &secret, "2025-07")
        .await
        .expect("store connected");
}

/// The commissions recorded for the test order, `1001`.
async fn order_1001(db: &TenantDb) -> Vec<crate::storage::ShopifyCommissionRecord> {
    db.shopify_commissions(Some("1001"), 10)
        .await
        .expect("commissions read")
}

fn webhook_job(tenant: &TenantId, topic: &str, body: Value) -> JobRecord {
    JobRecord {
        id: 1,
        tenant_id: tenant.as_str().to_owned(),
        kind: WEBHOOK_JOB.into(),
        payload: json!({ "topic": topic, "webhook_id": "wh-1", "body": body }),
        state: JobState::Running,
        attempts: 1,
        max_attempts: WEBHOOK_JOB_ATTEMPTS,
        run_at: 0,
        last_error: None,
        locked_by: None,
        lease_until: None,
        created_at: 0,
        updated_at: 0,
        finished_at: None,
    }
}

fn line(id: u64, product_id: u64, product_type: Option<&str>) -> Value {
    let mut line = json!({
        "id": id, "product_id": product_id, "sku": format!("SKU-{id}"),
        "title": "item", "quantity": 1, "price": "250.00", "vendor": "seller-1",
    });
    if let Some(product_type) = product_type {
        line["product_type"] = json!(product_type);
    }
    line
}

fn order(lines: Vec<Value>) -> Value {
    order_in("EUR", lines)
}

fn order_in(currency: &str, lines: Vec<Value>) -> Value {
    json!({ "id": 1001, "name": "#1001", "currency": currency, "line_items": lines })
}

#[tokio::test]
async fn an_order_maps_its_lines_to_categories_and_records_commissions() {
    let (_db, app, tenant, db) = state().await;
    connect_store(&app, &tenant, &db).await;
    let shopify = Arc::new(FakeShopify {
        types: HashMap::from([(22, "Watches".to_owned())]),
        ..FakeShopify::default()
    });
    // Line 1 carries its type; line 2 lacks one, so it is fetched.
    let body = order(vec![line(1, 11, Some("Sneakers")), line(2, 22, None)]);
    let job = context(&tenant, &db, webhook_job(&tenant, "orders/create", body));

    ShopifyWebhook::new(shopify.clone())
        .run(&app, &job)
        .await
        .expect("processed");

    assert_eq!(
        shopify.calls(),
        [("shop-one.myshopify.com".to_owned(), 22)],
        "only the line without a type is looked up, with the tenant's store"
    );
    let fetched = db
        .shopify_product("22")
        .await
        .expect("read")
        .expect("the fetched type is kept");
    assert_eq!(fetched.product_type, "Watches");
    assert_eq!(fetched.category_id.as_deref(), Some("watches"));
    let mut commissions = order_1001(&db).await;
    commissions.sort_by(|a, b| a.line_item_id.cmp(&b.line_item_id));
    let lines: Vec<_> = commissions
        .iter()
        .map(|c| c.line_item_id.as_str())
        .collect();
    assert_eq!(lines, ["1", "2"], "one commission per line");
    // Each line's category picks the base's commission rule.
    for (commission, rule) in commissions.iter().zip(["sneakers", "watches"]) {
        assert_eq!(
            commission.source, "base",
            "no plugin: the base decides: {commission:?}"
        );
        assert_eq!(commission.outcome, "base");
        let decision: Value = serde_json::from_str(&commission.decision_json).expect("json");
        assert_eq!(decision["rule_id"], rule, "{decision}");
    }

    // A redelivery records nothing twice and calls Shopify no more.
    ShopifyWebhook::new(shopify.clone())
        .run(&app, &job)
        .await
        .expect("redelivery");
    assert_eq!(shopify.calls().len(), 1);
    assert_eq!(order_1001(&db).await.len(), 2);
}

#[tokio::test]
async fn an_order_over_the_line_cap_is_refused_and_records_nothing() {
    let (_db, app, tenant, db) = state().await;
    let shopify = Arc::new(FakeShopify::default());
    let lines = (1..=4).map(|id| line(id, id, Some("Sneakers"))).collect();
    let outcome = ShopifyWebhook::new(shopify.clone())
        .run(
            &app,
            &context(
                &tenant,
                &db,
                webhook_job(&tenant, "orders/create", order(lines)),
            ),
        )
        .await;

    assert!(
        matches!(&outcome, Err(JobError::Fail(why)) if why.contains("4 line items") && why.contains("at most 3")),
        "{outcome:?}"
    );
    assert!(shopify.calls().is_empty());
    assert!(order_1001(&db).await.is_empty());
}

#[tokio::test]
async fn a_shopify_outage_is_retried_and_the_retry_finishes_the_order() {
    let (_db, app, tenant, db) = state().await;
    connect_store(&app, &tenant, &db).await;
    let body = order(vec![line(1, 11, Some("Sneakers")), line(2, 22, None)]);
    let job = context(&tenant, &db, webhook_job(&tenant, "orders/create", body));
    let down = Arc::new(FakeShopify {
        down: true,
        ..FakeShopify::default()
    });

    let outcome = ShopifyWebhook::new(down).run(&app, &job).await;
    assert!(
        matches!(&outcome, Err(JobError::Retry(why)) if why.contains("Shopify Admin API")),
        "{outcome:?}"
    );
    let recorded = order_1001(&db).await;
    let lines: Vec<_> = recorded.iter().map(|c| c.line_item_id.as_str()).collect();
    assert_eq!(lines, ["1"], "the line before the outage is kept");

    let up = Arc::new(FakeShopify {
        types: HashMap::from([(22, "Watches".to_owned())]),
        ..FakeShopify::default()
    });
    ShopifyWebhook::new(up.clone())
        .run(&app, &job)
        .await
        .expect("the retry finishes");
    assert_eq!(up.calls().len(), 1, "only the missing line is looked up");
    assert_eq!(order_1001(&db).await.len(), 2);
}

#[tokio::test]
async fn a_line_without_a_store_to_ask_fails_the_job() {
    let (_db, app, tenant, db) = state().await;
    let shopify = Arc::new(FakeShopify::default());
    let body = order(vec![line(1, 11, None)]);
    let outcome = ShopifyWebhook::new(shopify.clone())
        .run(
            &app,
            &context(&tenant, &db, webhook_job(&tenant, "orders/create", body)),
        )
        .await;
    assert!(
        matches!(&outcome, Err(JobError::Fail(why)) if why.contains("no Shopify store")),
        "{outcome:?}"
    );
    assert!(shopify.calls().is_empty());
}

#[tokio::test]
async fn a_line_the_base_cannot_price_is_recorded_as_an_invalid_sale() {
    let (_db, app, tenant, db) = state().await;
    let body = order_in("USD", vec![line(1, 11, Some("Sneakers"))]);
    ShopifyWebhook::new(Arc::new(FakeShopify::default()))
        .run(
            &app,
            &context(&tenant, &db, webhook_job(&tenant, "orders/create", body)),
        )
        .await
        .expect("recorded, not retried");
    let recorded = order_1001(&db).await;
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].outcome, "invalid_sale");
    assert_eq!(recorded[0].source, "none");
    assert!(
        recorded[0].decision_json.contains("settlement currency"),
        "{}",
        recorded[0].decision_json
    );
}

/// An Admin client that cannot be set up for the store's credentials.
struct Misconfigured;

impl ShopifyClient for Misconfigured {
    fn product_type<'a>(&'a self, _: &'a OpenedCredentials, _: u64) -> AdminFuture<'a, String> {
        Box::pin(async { Err(ShopifyError::InvalidConfig("bad shop domain".into())) })
    }
}

#[tokio::test]
async fn a_client_that_cannot_be_set_up_fails_the_job_without_retry() {
    let (_db, app, tenant, db) = state().await;
    connect_store(&app, &tenant, &db).await;
    let body = order(vec![line(1, 11, None)]);
    let outcome = ShopifyWebhook::new(Arc::new(Misconfigured))
        .run(
            &app,
            &context(&tenant, &db, webhook_job(&tenant, "orders/create", body)),
        )
        .await;
    assert!(
        matches!(&outcome, Err(JobError::Fail(why)) if why.contains("bad shop domain")),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_product_event_stores_the_type_and_its_category() {
    let (_db, app, tenant, db) = state().await;
    let shopify = Arc::new(FakeShopify::default());
    let body = json!({ "id": 77, "title": "Runner", "product_type": "Sneakers" });
    ShopifyWebhook::new(shopify.clone())
        .run(
            &app,
            &context(&tenant, &db, webhook_job(&tenant, "products/create", body)),
        )
        .await
        .expect("stored");
    let product = db
        .shopify_product("77")
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(product.product_type, "Sneakers");
    assert_eq!(product.category_id.as_deref(), Some("sneakers"));
    assert!(shopify.calls().is_empty(), "the event carries the type");
}

#[tokio::test]
async fn an_uninstall_disables_the_store_and_is_audited() {
    let (_db, app, tenant, db) = state().await;
    connect_store(&app, &tenant, &db).await;
    ShopifyWebhook::new(Arc::new(FakeShopify::default()))
        .run(
            &app,
            &context(
                &tenant,
                &db,
                webhook_job(&tenant, "app/uninstalled", json!({})),
            ),
        )
        .await
        .expect("processed");
    let store = db.shopify_store().await.expect("read").expect("kept");
    assert!(!store.enabled, "the host no longer acts for the store");
    let log = db.audit_log(10).await.expect("audit read");
    assert!(
        log.iter()
            .any(|entry| entry.action == "shopify.uninstalled"),
        "{log:?}"
    );
}
