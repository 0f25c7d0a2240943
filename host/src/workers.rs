//! The server's background work: the job handlers (Shopify webhooks, email
//! sends) and starting the worker that runs them, and the periodic purge of
//! deleted tenants ([`start_purge_sweeper`]). Each handler runs in the job's
//! tenant context — the tenant's scoped database handle, its plugin, quota and
//! credentials — restored from the job, never from anything global.
//!
//! Bounds: each kind has its own time budget (`--shopify-job-budget-secs`,
//! `--email-job-budget-secs`), a tenant runs at most `--jobs-per-tenant` jobs
//! at once, and an order carries at most `--max-order-lines` line items. An
//! order job that ran out of time comes back for the lines it has not
//! recorded yet, so every attempt makes progress.
//!
//! An adapter, like `http`: the use cases (effective configuration,
//! commissions, run recording) are the application layer's ([`crate::app`]),
//! the job kinds are [`crate::app::jobs`]'s; it never calls HTTP code.
//! SMTP and Shopify's Admin API are reached only through the handlers'
//! [`EmailSender`] and [`ShopifyClient`] (the real ones wired in [`start`]),
//! so the handlers are unit-tested with in-memory ones.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::config::effective;
use crate::app::jobs::{DOMAIN_JOB, SEND_JOB, SENDING_DOMAIN_JOB, WEBHOOK_JOB};
use crate::app::plugins::chain;
use crate::base::{Product, Sale};
use crate::email::{EmailSender, SmtpSender};
use crate::jobs::{JobContext, JobError, JobHandler, Worker, WorkerConfig, WorkerHandle};
use crate::shopify::{
    AdminApi, LineItem, OrderCreated, ProductEvent, ShopifyClient, ShopifyError, map_product_type,
    money_to_minor, open_credentials, parse_timestamp_ms,
};
use crate::state::AppState;
use crate::storage::NewShopifyCommission;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

type Fut<'a> = Pin<Box<dyn Future<Output = Result<(), JobError>> + Send + 'a>>;

/// Starts the worker with every handler registered, unless concurrency is 0.
pub fn start(app: &AppState) -> Option<WorkerHandle> {
    if app.config.worker_concurrency == 0 {
        return None;
    }
    let mut worker = Worker::new(
        app.storage.clone(),
        Arc::new(app.clone()),
        WorkerConfig {
            concurrency: app.config.worker_concurrency,
            base_backoff: Duration::from_millis(app.config.job_backoff_ms.max(1)),
            poll_interval: Duration::from_millis(100),
            max_running_per_tenant: app.config.jobs_per_tenant,
            ..WorkerConfig::default()
        },
    );
    worker.register(
        WEBHOOK_JOB,
        ShopifyWebhook::new(Arc::new(AdminApi::new(
            app.http.clone(),
            app.config.shopify_api_base.clone(),
        ))),
    );
    worker.set_budget(
        WEBHOOK_JOB,
        Duration::from_secs(app.config.shopify_job_budget_secs),
    );
    worker.observe(|app: &AppState, tenant, kind, state| {
        use crate::metrics::JobOutcome;
        use crate::storage::JobState;
        let outcome = match state {
            JobState::Done => JobOutcome::Done,
            JobState::Dead => JobOutcome::Dead,
            JobState::Queued | JobState::Running => JobOutcome::Retry,
        };
        if let Ok(tenant) = crate::tenancy::TenantId::new(tenant) {
            app.metrics.job(&tenant, kind, outcome);
        }
    });
    worker.register(DOMAIN_JOB, DomainCheck);
    worker.register(
        crate::app::shopify_webhooks::SYNC_JOB,
        ShopifySubscriptionSync,
    );
    worker.register(crate::app::backups::BACKUP_JOB, TenantBackup);
    worker.set_budget(
        crate::app::backups::BACKUP_JOB,
        Duration::from_secs(BACKUP_BUDGET_SECS),
    );
    worker.register(SENDING_DOMAIN_JOB, SendingDomainCheck);
    worker.register(SEND_JOB, EmailSend::new(Arc::new(SmtpSender)));
    worker.set_budget(
        SEND_JOB,
        Duration::from_secs(app.config.email_job_budget_secs),
    );
    Some(worker.start())
}

/// Starts the sweep that purges deleted tenants once their grace period is
/// over and removes unused compiled artifacts (`app::lifecycle::sweep`), every
/// `--tenant-purge-interval-secs` (none at 0). Every node runs it: purges are
/// idempotent, and each node's artifact directory is its own.
pub fn start_purge_sweeper(app: &AppState) -> Option<tokio::task::JoinHandle<()>> {
    let every = app.config.tenant_purge_interval_secs;
    if every == 0 {
        return None;
    }
    let app = app.clone();
    Some(tokio::spawn(async move {
        let period = Duration::from_secs(every);
        // The first sweep one period after start, not at once.
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(err) = crate::app::lifecycle::sweep(&app).await {
                tracing::warn!(error = %err, "the purge of deleted tenants failed; retried at the next sweep");
            }
        }
    }))
}

/// Starts the scheduler of tenant backups (`--backup-dir`): every
/// `--backup-every-secs`, the first round at once, this period's backup of
/// every tenant is queued (`app::backups::schedule`; several nodes queue it
/// once). An unreadable `--backup-export-key-file` stops the start.
pub fn start_backup_scheduler(
    app: &AppState,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    if app.config.backups.backup_dir.is_none() {
        return Ok(None);
    }
    crate::app::backups::export_key(app)?;
    let app = app.clone();
    Ok(Some(tokio::spawn(async move {
        let period = Duration::from_secs(app.config.backups.backup_every_secs);
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(err) = crate::app::backups::schedule(&app).await {
                tracing::warn!(error = %err, "could not queue the tenant backups; tried again next period");
            }
        }
    })))
}

/// Syncs a tenant's Shopify webhook subscriptions
/// (`app::shopify_webhooks::sync`): Shopify not answering is retried with
/// backoff; a store no longer connected ends the job.
pub struct ShopifySubscriptionSync;

impl JobHandler<AppState> for ShopifySubscriptionSync {
    fn run<'a>(&'a self, app: &'a AppState, job: &'a JobContext) -> Fut<'a> {
        Box::pin(async move {
            match crate::app::shopify_webhooks::sync(app, &job.tenant, "veneer").await {
                Ok(report) => {
                    tracing::info!(tenant = %job.tenant, created = ?report.created, removed = ?report.removed, "Shopify webhook subscriptions synced");
                    Ok(())
                }
                Err(err @ crate::app::Error::Conflict(_)) => Err(JobError::Fail(err.to_string())),
                Err(err) => Err(JobError::Retry(err.to_string())),
            }
        })
    }
}

/// How long one tenant's backup may take (export, compression, write).
const BACKUP_BUDGET_SECS: u64 = 600;

/// Writes one tenant's backup archive (`app::backups::back_up`).
pub struct TenantBackup;

impl JobHandler<AppState> for TenantBackup {
    fn run<'a>(&'a self, app: &'a AppState, job: &'a JobContext) -> Fut<'a> {
        Box::pin(async move {
            let path = crate::app::backups::back_up(app, &job.tenant)
                .await
                .map_err(|err| JobError::Retry(err.to_string()))?;
            tracing::info!(tenant = %job.tenant, path = %path.display(), "tenant backed up");
            Ok(())
        })
    }
}

/// Checks one custom domain's DNS proof (`app::domains::check`): not proven
/// yet, or DNS not answering, is retried with the queue's backoff.
pub struct DomainCheck;

#[derive(Debug, Deserialize)]
struct DomainJob {
    domain: String,
}

impl JobHandler<AppState> for DomainCheck {
    fn run<'a>(&'a self, app: &'a AppState, job: &'a JobContext) -> Fut<'a> {
        Box::pin(async move {
            let payload: DomainJob =
                serde_json::from_value(job.job.payload.clone()).map_err(|err| {
                    JobError::Fail(format!("the job's payload is not a domain: {err}"))
                })?;
            let last = job.job.attempts >= job.job.max_attempts;
            match crate::app::domains::check(app, &job.tenant, &payload.domain, last)
                .await
                .map_err(|err| retry(err.code()))?
            {
                crate::app::domains::Checked::Done => Ok(()),
                crate::app::domains::Checked::Again(why) => Err(JobError::Retry(why)),
            }
        })
    }
}

/// Checks one sending domain's DKIM record (`app::sending_domains::check`):
/// not found yet, or DNS not answering, is retried with the queue's backoff.
pub struct SendingDomainCheck;

impl JobHandler<AppState> for SendingDomainCheck {
    fn run<'a>(&'a self, app: &'a AppState, job: &'a JobContext) -> Fut<'a> {
        Box::pin(async move {
            use crate::app::sending_domains::{Checked, check};
            let payload: DomainJob =
                serde_json::from_value(job.job.payload.clone()).map_err(|err| {
                    JobError::Fail(format!("the job's payload is not a domain: {err}"))
                })?;
            let last = job.job.attempts >= job.job.max_attempts;
            match check(app, &job.tenant, &payload.domain, last)
                .await
                .map_err(|err| retry(err.code()))?
            {
                Checked::Done => Ok(()),
                Checked::Again(why) => Err(JobError::Retry(why)),
            }
        })
    }
}

/// A compliance webhook's outcome: a payload that cannot be acted on is a
/// dead letter (visible to the operator), anything else is retried.
fn privacy_outcome(result: crate::app::Result<()>) -> Result<(), JobError> {
    match result {
        Ok(()) => Ok(()),
        Err(err @ crate::app::Error::Invalid(_)) => Err(JobError::Fail(err.to_string())),
        Err(err) => Err(JobError::Retry(err.to_string())),
    }
}

fn retry(err: impl std::fmt::Display) -> JobError {
    JobError::Retry(err.to_string())
}

#[derive(Debug, Deserialize)]
struct WebhookJob {
    topic: String,
    webhook_id: String,
    #[serde(default = "yes")]
    store_enabled: bool,
    body: Value,
}

fn yes() -> bool {
    true
}

/// Processes one Shopify webhook delivery, calling the Admin API through
/// `shopify`.
pub struct ShopifyWebhook {
    shopify: Arc<dyn ShopifyClient>,
}

impl ShopifyWebhook {
    /// The handler, calling Shopify through `shopify` ([`AdminApi`] in
    /// production).
    pub fn new(shopify: Arc<dyn ShopifyClient>) -> Self {
        Self { shopify }
    }
}

impl JobHandler<AppState> for ShopifyWebhook {
    fn run<'a>(&'a self, app: &'a AppState, job: &'a JobContext) -> Fut<'a> {
        Box::pin(async move {
            let opened =
                crate::app::jobs::open_payload(app, &job.tenant, WEBHOOK_JOB, &job.job.payload)
                    .map_err(JobError::Fail)?;
            let payload: WebhookJob = serde_json::from_value(opened).map_err(|err| {
                JobError::Fail(format!("the job's payload is not a webhook: {err}"))
            })?;
            // An uninstalled store's webhooks still verify: act only on the
            // uninstall itself and the compliance topics.
            let privacy = matches!(
                payload.topic.as_str(),
                "customers/data_request" | "customers/redact" | "shop/redact"
            );
            if !payload.store_enabled && payload.topic != "app/uninstalled" && !privacy {
                return Ok(());
            }
            match payload.topic.as_str() {
                "orders/create" => orders_create(app, self.shopify.as_ref(), job, &payload).await,
                "products/create" | "products/update" => product_upsert(app, job, &payload).await,
                "products/delete" => {
                    let id = payload
                        .body
                        .get("id")
                        .map(|v| v.to_string())
                        .unwrap_or_default();
                    job.db.delete_shopify_product(&id).await.map_err(retry)?;
                    Ok(())
                }
                "customers/data_request" => privacy_outcome(
                    crate::app::shopify_privacy::data_request(app, &job.tenant, &payload.body)
                        .await,
                ),
                "customers/redact" => privacy_outcome(
                    crate::app::shopify_privacy::redact_customer(app, &job.tenant, &payload.body)
                        .await,
                ),
                "shop/redact" => privacy_outcome(
                    crate::app::shopify_privacy::redact_shop(app, &job.tenant, &payload.body).await,
                ),
                "app/uninstalled" => {
                    job.db.mark_shopify_uninstalled().await.map_err(retry)?;
                    job.db
                        .audit(
                            "shopify",
                            "shopify.uninstalled",
                            None,
                            None,
                            Some(&json!({ "webhook": payload.webhook_id }).to_string()),
                        )
                        .await
                        .map_err(retry)?;
                    app.invalidate(&job.tenant);
                    Ok(())
                }
                other => {
                    tracing::debug!(tenant = %job.tenant, topic = other, "ignoring a webhook topic we do not handle");
                    Ok(())
                }
            }
        })
    }
}

/// The category of a line item: the product's stored mapping, its product type
/// mapped onto the tenant's effective categories, or — when the payload lacks a
/// type — the type fetched through the Admin API with the tenant's own token.
async fn line_category(
    app: &AppState,
    shopify: &dyn ShopifyClient,
    job: &JobContext,
    line: &LineItem,
    categories: &[crate::base::Category],
) -> Result<String, JobError> {
    if let Some(product_id) = line.product_id
        && let Some(product) = job
            .db
            .shopify_product(&product_id.to_string())
            .await
            .map_err(retry)?
        && let Some(category) = product.category_id
    {
        return Ok(category);
    }
    if let Some(product_type) = line.product_type.as_deref().filter(|t| !t.is_empty())
        && let Some(category) = map_product_type(product_type, categories)
    {
        return Ok(category);
    }
    let Some(product_id) = line.product_id else {
        return Ok(UNMAPPED.into());
    };
    let product_type = fetch_product_type(app, shopify, job, product_id).await?;
    let category = map_product_type(&product_type, categories);
    job.db
        .upsert_shopify_product(
            &product_id.to_string(),
            &product_type,
            category.as_deref(),
            now_ms(),
        )
        .await
        .map_err(retry)?;
    Ok(category.unwrap_or_else(|| UNMAPPED.into()))
}

/// Category id for items whose type maps to none of the tenant's categories:
/// the base's default commission rule applies.
const UNMAPPED: &str = "unmapped";

async fn fetch_product_type(
    app: &AppState,
    shopify: &dyn ShopifyClient,
    job: &JobContext,
    product_id: u64,
) -> Result<String, JobError> {
    let store = job
        .db
        .shopify_store()
        .await
        .map_err(retry)?
        .ok_or_else(|| JobError::Fail("the tenant has no Shopify store connected".into()))?;
    let credentials = open_credentials(&app.secrets, &job.tenant, &store)
        .map_err(|err| JobError::Fail(format!("cannot open the store's credentials: {err}")))?;
    shopify
        .product_type(&credentials, product_id)
        .await
        .map_err(|err| match err {
            // The client cannot be set up for these credentials: no retry helps.
            ShopifyError::InvalidConfig(_) => JobError::Fail(err.to_string()),
            err => JobError::Retry(format!("Shopify Admin API: {err}")),
        })
}

async fn orders_create(
    app: &AppState,
    shopify: &dyn ShopifyClient,
    job: &JobContext,
    payload: &WebhookJob,
) -> Result<(), JobError> {
    let order: OrderCreated = serde_json::from_value(payload.body.clone())
        .map_err(|err| JobError::Fail(format!("orders/create body is not an order: {err}")))?;
    let max_lines = usize::try_from(app.config.max_order_lines).unwrap_or(usize::MAX);
    if order.line_items.len() > max_lines {
        return Err(JobError::Fail(too_many_lines(
            order.line_items.len(),
            max_lines,
        )));
    }
    // Lines recorded by an earlier attempt (one that ran out of time, say)
    // are not computed again: their decision stands.
    let order_id = order.id.to_string();
    let recorded: HashSet<String> = job
        .db
        .shopify_commissions(
            Some(&order_id),
            u32::try_from(order.line_items.len()).unwrap_or(u32::MAX),
        )
        .await
        .map_err(retry)?
        .into_iter()
        .map(|c| c.line_item_id)
        .collect();
    if order
        .line_items
        .iter()
        .all(|line| recorded.contains(&line.id.to_string()))
    {
        return Ok(());
    }
    let tenant = app
        .tenant_state(&job.tenant)
        .await
        .map_err(|err| retry(err.code()))?
        .ok_or_else(|| JobError::Fail("the tenant no longer exists".into()))?;
    let config = effective(app, &tenant)
        .await
        .map_err(|err| retry(err.code()))?;
    let plugins = chain(app, &tenant).await.map_err(|err| retry(err.code()))?;
    for line in &order.line_items {
        if recorded.contains(&line.id.to_string()) {
            continue;
        }
        let category_id = line_category(app, shopify, job, line, &config.categories.value).await?;
        let unit_price = money_to_minor(&line.price, &order.currency)
            .map_err(|err| JobError::Fail(format!("line {}: {err}", line.id)))?;
        let sale = Sale {
            order_id: order.id.to_string(),
            sku: line.sku.clone().unwrap_or_else(|| line.id.to_string()),
            category_id,
            unit_price,
            quantity: line.quantity.max(1),
            currency: order.currency.clone(),
            seller_id: line.vendor.clone(),
            attributes: Vec::new(),
        };
        let resolved = crate::app::quote::commission(app, &tenant, &plugins, sale.clone())
            .await
            .map_err(|err| retry(err.code()))?;
        let (decision, source, outcome) = match resolved {
            Ok(resolved) => {
                // The first failure of the chain, else how the last run ended.
                let outcome = resolved
                    .first_failure()
                    .or(resolved.last_run())
                    .map_or("base".to_owned(), |r| r.outcome.as_str().to_owned());
                let source = serde_json::to_value(resolved.source).unwrap_or(Value::Null);
                (
                    serde_json::to_string(&resolved.value).unwrap_or_default(),
                    source.as_str().unwrap_or("base").to_owned(),
                    outcome,
                )
            }
            Err(err) => (
                json!({ "error": err.to_string() }).to_string(),
                "none".into(),
                "invalid_sale".into(),
            ),
        };
        job.db
            .record_shopify_commission(&NewShopifyCommission {
                order_id: &sale.order_id,
                line_item_id: &line.id.to_string(),
                decision_json: &decision,
                source: &source,
                outcome: &outcome,
            })
            .await
            .map_err(retry)?;
    }
    Ok(())
}

/// Why an order with more line items than the cap is refused. The default cap
/// (500) is above the 499 line items Shopify's Admin API accepts on a draft
/// order, so genuine orders pass; a tenant can sign its own webhooks, so the
/// cap is what bounds the work one delivery can ask for.
fn too_many_lines(lines: usize, max: usize) -> String {
    format!(
        "the order has {lines} line items; at most {max} are processed per order \
         (VENEER_MAX_ORDER_LINES): no commission was recorded for it"
    )
}

async fn product_upsert(
    app: &AppState,
    job: &JobContext,
    payload: &WebhookJob,
) -> Result<(), JobError> {
    let product: ProductEvent = serde_json::from_value(payload.body.clone())
        .map_err(|err| JobError::Fail(format!("the product body is not a product: {err}")))?;
    let tenant = app
        .tenant_state(&job.tenant)
        .await
        .map_err(|err| retry(err.code()))?
        .ok_or_else(|| JobError::Fail("the tenant no longer exists".into()))?;
    let config = effective(app, &tenant)
        .await
        .map_err(|err| retry(err.code()))?;
    // The fixed mapping's answer is the base; the tenant's chain may change
    // it (`product-category`), within its effective tree.
    let base = map_product_type(&product.product_type, &config.categories.value);
    let category = crate::app::product_category::resolve(
        app,
        &tenant,
        Product {
            title: product.title.clone(),
            vendor: product.vendor.clone().unwrap_or_default(),
            product_type: product.product_type.clone(),
            tags: product.tags.clone(),
        },
        base,
        config.categories.value.clone(),
    )
    .await
    .map_err(|err| retry(err.code()))?
    .value;
    let updated_at = product
        .updated_at
        .as_deref()
        .and_then(parse_timestamp_ms)
        .unwrap_or_else(now_ms);
    job.db
        .upsert_shopify_product(
            &product.id.to_string(),
            &product.product_type,
            category.as_deref(),
            updated_at,
        )
        .await
        .map_err(retry)?;
    Ok(())
}

#[derive(Debug, Deserialize)]
struct SendJob {
    message: String,
    to: String,
    rendered: crate::email::Rendered,
}

/// Sends one rendered message through the tenant's relay, handing it to
/// `sender`. Idempotent: a message that is no longer queued (sent, skipped,
/// failed) is not sent again.
pub struct EmailSend {
    sender: Arc<dyn EmailSender>,
}

impl EmailSend {
    /// The handler, sending through `sender` ([`SmtpSender`] in production).
    pub fn new(sender: Arc<dyn EmailSender>) -> Self {
        Self { sender }
    }
}

/// What a send attempt did with the message, for the metrics.
enum Delivery {
    /// Handed to the relay.
    Sent,
    /// Not sent: the address is suppressed.
    Skipped,
    /// Nothing to do: the message is no longer queued.
    NotQueued,
}

impl JobHandler<AppState> for EmailSend {
    fn run<'a>(&'a self, app: &'a AppState, job: &'a JobContext) -> Fut<'a> {
        Box::pin(async move {
            use crate::metrics::EmailEvent;
            let delivery = self.send(app, job).await;
            match &delivery {
                Ok(Delivery::Sent) => app.metrics.email(&job.tenant, EmailEvent::Sent),
                Ok(Delivery::Skipped) => app.metrics.email(&job.tenant, EmailEvent::Skipped),
                Err(JobError::Fail(_)) => app.metrics.email(&job.tenant, EmailEvent::Failed),
                Ok(Delivery::NotQueued) | Err(JobError::Retry(_)) => {}
            }
            delivery.map(|_| ())
        })
    }
}

impl EmailSend {
    async fn send(&self, app: &AppState, job: &JobContext) -> Result<Delivery, JobError> {
        {
            use crate::email::{
                SendError, SmtpConfig, bounce_address, build_message, relay_config,
            };
            use crate::storage::EmailState;

            let opened =
                crate::app::jobs::open_payload(app, &job.tenant, SEND_JOB, &job.job.payload)
                    .map_err(JobError::Fail)?;
            let payload: SendJob = serde_json::from_value(opened)
                .map_err(|err| JobError::Fail(format!("the job's payload is not a send: {err}")))?;
            let db = &job.db;
            let message = db
                .email_message(&payload.message)
                .await
                .map_err(retry)?
                .ok_or_else(|| JobError::Fail("the message no longer exists".into()))?;
            if message.state != EmailState::Queued {
                return Ok(Delivery::NotQueued);
            }
            if db.email_is_suppressed(&payload.to).await.map_err(retry)? {
                db.email_mark_skipped(&payload.message)
                    .await
                    .map_err(retry)?;
                return Ok(Delivery::Skipped);
            }
            let Some(settings) = db.email_settings().await.map_err(retry)? else {
                db.email_mark_failed(&payload.message, "the tenant has no email settings")
                    .await
                    .map_err(retry)?;
                return Err(JobError::Fail("the tenant has no email settings".into()));
            };
            let settings = settings.settings;
            // Only a domain the tenant has proven is sent as through the
            // platform's relay.
            let identity = crate::app::email::sending_as(app, &job.tenant, &settings)
                .await
                .map_err(|err| retry(err.code()))?;
            let sent_as = crate::storage::EmailSettings {
                from_address: identity.from_address,
                sending_domain: identity.domain,
                reply_to: identity.reply_to,
                ..settings.clone()
            };
            let bounce = bounce_address(&app.config.bounce_domain, &job.tenant, &payload.message);
            let built = build_message(
                &sent_as,
                &payload.rendered,
                &payload.to,
                &payload.message,
                &bounce,
            );
            let mut email = match built {
                Ok(email) => email,
                Err(err) => {
                    db.email_mark_failed(&payload.message, &err.to_string())
                        .await
                        .map_err(retry)?;
                    return Err(JobError::Fail(err.to_string()));
                }
            };
            // Mail from a verified sending domain is DKIM-signed, whichever relay.
            if identity.own_domain {
                let key = crate::app::sending_domains::signing_key(
                    app,
                    &job.tenant,
                    &sent_as.sending_domain,
                )
                .await
                .map_err(|err| retry(err.code()))?;
                if let Some((selector, pem)) = key
                    && let Err(err) = crate::email::dkim::sign(
                        &mut email,
                        &sent_as.sending_domain,
                        &selector,
                        &pem,
                    )
                {
                    db.email_mark_failed(&payload.message, &err.to_string())
                        .await
                        .map_err(retry)?;
                    return Err(JobError::Fail(err.to_string()));
                }
            }
            let password = match &settings.smtp_password_enc {
                Some(enc) => {
                    let plain = match app
                        .secrets
                        .decrypt(enc, &crate::email::password_aad(&job.tenant))
                    {
                        Ok(plain) => plain,
                        Err(err) => {
                            let reason = format!(
                                "cannot decrypt the SMTP password ({err}); save the email settings again"
                            );
                            db.email_mark_failed(&payload.message, &reason)
                                .await
                                .map_err(retry)?;
                            return Err(JobError::Fail(reason));
                        }
                    };
                    Some(String::from_utf8_lossy(&plain).into_owned())
                }
                None => None,
            };
            let mut platform = SmtpConfig::plain(&app.config.smtp_host, app.config.smtp_port);
            platform.tls = app.config.smtp_tls.parse().unwrap_or(platform.tls);
            let relay =
                match relay_config(&settings, &platform, password, &app.config.relay_policy()) {
                    Ok(relay) => relay,
                    Err(err) => {
                        db.email_mark_failed(&payload.message, &err.to_string())
                            .await
                            .map_err(retry)?;
                        return Err(JobError::Fail(err.to_string()));
                    }
                };
            match self.sender.send(&relay, &email).await {
                Ok(outcome) => {
                    db.email_mark_sent(&payload.message, &outcome.reply)
                        .await
                        .map_err(retry)?;
                    Ok(Delivery::Sent)
                }
                Err(SendError::Temporary(reply)) => {
                    if job.job.attempts >= job.job.max_attempts {
                        db.email_mark_failed(&payload.message, &reply)
                            .await
                            .map_err(retry)?;
                        return Err(JobError::Fail(reply));
                    }
                    db.email_mark_retry(&payload.message, &reply)
                        .await
                        .map_err(retry)?;
                    Err(JobError::Retry(reply))
                }
                Err(SendError::Permanent(reply)) => {
                    db.email_mark_failed(&payload.message, &reply)
                        .await
                        .map_err(retry)?;
                    Err(JobError::Fail(reply))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
