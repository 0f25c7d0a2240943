//! The webhook subscriptions of a tenant's connected shop, kept in step with
//! what Veneer handles: every topic of [`TOPICS`] subscribed once, at the
//! tenant's webhook address, in JSON; anything else pointing at that address
//! removed. Done through the Admin GraphQL API with the store's own token
//! (`webhookSubscriptions`, `webhookSubscriptionCreate`,
//! `webhookSubscriptionDelete`): after an install (a job, retried with
//! backoff), on demand (`POST /v1/shopify/webhooks/sync`), and on disconnect
//! (every subscription at Veneer's address removed). Shopify removes an
//! uninstalled app's subscriptions itself.

use serde::Serialize;
use serde_json::{Value, json};

use super::{Error, Result};
use crate::shopify::{AdminClient, ShopifyError, open_credentials};
use crate::state::AppState;
use crate::tenancy::TenantId;

/// The topics Veneer handles (Shopify's GraphQL names).
pub const TOPICS: &[&str] = &[
    "ORDERS_CREATE",
    "PRODUCTS_CREATE",
    "PRODUCTS_UPDATE",
    "PRODUCTS_DELETE",
    "APP_UNINSTALLED",
];

/// The job kind that syncs a tenant's subscriptions.
pub const SYNC_JOB: &str = "shopify.webhook_sync";
/// Attempts of a sync job before it is a dead letter.
pub const SYNC_JOB_ATTEMPTS: u32 = 8;

/// Subscriptions read at most (Shopify pages at 100; a shop with more at our
/// address is not one we made).
const MAX_SUBSCRIPTIONS: usize = 100;

/// One subscription as Shopify lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Subscription {
    pub id: String,
    pub topic: String,
    pub uri: String,
}

/// What a sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SyncReport {
    /// Where the shop now delivers.
    pub address: String,
    /// Topics subscribed now.
    pub created: Vec<String>,
    /// Topics that were right already.
    pub kept: Vec<String>,
    /// Subscriptions removed (wrong address or format, a topic not handled,
    /// a duplicate), as `TOPIC uri`.
    pub removed: Vec<String>,
}

/// The address a tenant's shop delivers webhooks to: the tenant's platform
/// host, over HTTPS (Shopify takes no other).
pub fn address(app: &AppState, tenant: &TenantId) -> String {
    format!(
        "https://{tenant}.{}/v1/shopify/webhooks",
        app.config.base_domain
    )
}

async fn client(app: &AppState, tenant: &TenantId) -> Result<AdminClient> {
    let store = app
        .storage
        .tenant(tenant)
        .shopify_store()
        .await?
        .ok_or_else(|| Error::Conflict("this tenant has no Shopify store connected".into()))?;
    let credentials = open_credentials(&app.secrets, tenant, &store).map_err(|err| match err {
        ShopifyError::NotConnected => {
            Error::Conflict("this tenant's Shopify store is not connected".into())
        }
        other => Error::Internal(format!("the store's token does not open: {other}")),
    })?;
    let client = credentials
        .client(app.http.clone())
        .map_err(|err| Error::InvalidShopifyStore(err.to_string()))?;
    Ok(match &app.config.shopify_api_base {
        Some(base) => client.with_base_url(base),
        None => client,
    })
}

fn unavailable(err: ShopifyError) -> Error {
    tracing::warn!(error = %err, "a Shopify webhook subscription call failed");
    Error::ShopifyUnavailable(format!(
        "Shopify did not answer the webhook subscription call ({err}); try again shortly"
    ))
}

/// The shop's subscriptions (the first [`MAX_SUBSCRIPTIONS`]).
pub async fn list(app: &AppState, tenant: &TenantId) -> Result<Vec<Subscription>> {
    let client = client(app, tenant).await?;
    list_with(&client).await
}

async fn list_with(client: &AdminClient) -> Result<Vec<Subscription>> {
    let data = client
        .graphql(
            "query subscriptions($first: Int!) { webhookSubscriptions(first: $first) \
             { edges { node { id topic uri } } } }",
            json!({ "first": MAX_SUBSCRIPTIONS }),
        )
        .await
        .map_err(unavailable)?;
    let edges = data
        .pointer("/webhookSubscriptions/edges")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    Ok(edges
        .iter()
        .filter_map(|edge| {
            let node = edge.get("node")?;
            Some(Subscription {
                id: node.get("id")?.as_str()?.to_owned(),
                topic: node.get("topic")?.as_str()?.to_owned(),
                uri: node.get("uri")?.as_str()?.to_owned(),
            })
        })
        .collect())
}

/// Makes the shop's subscriptions what Veneer handles (audited when it changed
/// something).
pub async fn sync(app: &AppState, tenant: &TenantId, actor: &str) -> Result<SyncReport> {
    let client = client(app, tenant).await?;
    let ours = address(app, tenant);
    let existing = list_with(&client).await?;
    let mut report = SyncReport {
        address: ours.clone(),
        ..SyncReport::default()
    };
    for subscription in &existing {
        let wanted = TOPICS.contains(&subscription.topic.as_str());
        let first_right =
            wanted && subscription.uri == ours && !report.kept.contains(&subscription.topic);
        if first_right {
            report.kept.push(subscription.topic.clone());
        } else if wanted || subscription.uri == ours {
            delete(&client, &subscription.id).await?;
            report
                .removed
                .push(format!("{} {}", subscription.topic, subscription.uri));
        }
    }
    for topic in TOPICS {
        if report.kept.iter().any(|k| k == topic) {
            continue;
        }
        create(&client, topic, &ours).await?;
        report.created.push((*topic).to_owned());
    }
    if !report.created.is_empty() || !report.removed.is_empty() {
        let after = serde_json::to_string(&report).unwrap_or_default();
        app.storage
            .tenant(tenant)
            .audit(actor, "shopify.webhooks.sync", None, None, Some(&after))
            .await?;
    }
    Ok(report)
}

/// Removes every subscription that delivers to Veneer's address; how many.
pub async fn remove_all(app: &AppState, tenant: &TenantId) -> Result<usize> {
    let client = client(app, tenant).await?;
    let ours = address(app, tenant);
    let mut removed = 0;
    for subscription in list_with(&client).await? {
        if subscription.uri == ours {
            delete(&client, &subscription.id).await?;
            removed += 1;
        }
    }
    Ok(removed)
}

async fn create(client: &AdminClient, topic: &str, uri: &str) -> Result<()> {
    let data = client
        .graphql(
            "mutation create($topic: WebhookSubscriptionTopic!, $sub: WebhookSubscriptionInput!) \
             { webhookSubscriptionCreate(topic: $topic, webhookSubscription: $sub) \
             { webhookSubscription { id } userErrors { field message } } }",
            json!({ "topic": topic, "sub": { "uri": uri, "format": "JSON" } }),
        )
        .await
        .map_err(unavailable)?;
    user_errors(&data, "/webhookSubscriptionCreate/userErrors", topic)
}

async fn delete(client: &AdminClient, id: &str) -> Result<()> {
    let data = client
        .graphql(
            "mutation delete($id: ID!) { webhookSubscriptionDelete(id: $id) \
             { deletedWebhookSubscriptionId userErrors { field message } } }",
            json!({ "id": id }),
        )
        .await
        .map_err(unavailable)?;
    user_errors(&data, "/webhookSubscriptionDelete/userErrors", id)
}

fn user_errors(data: &Value, pointer: &str, what: &str) -> Result<()> {
    let errors: Vec<String> = data
        .pointer(pointer)
        .and_then(Value::as_array)
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e.get("message").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::ShopifyUnavailable(format!(
            "Shopify refused the subscription change for {what}: {}",
            errors.join("; ")
        )))
    }
}

/// Queues a sync of `tenant`'s subscriptions (after an install).
pub async fn queue_sync(app: &AppState, tenant: &TenantId) -> Result<()> {
    let dedupe = format!("{SYNC_JOB}:{}", super::jobs::now_ms());
    app.storage
        .tenant(tenant)
        .enqueue_job(&crate::storage::NewJob {
            kind: SYNC_JOB,
            payload: "{}",
            max_attempts: SYNC_JOB_ATTEMPTS,
            run_at: None,
            dedupe_key: Some(&dedupe),
        })
        .await?;
    Ok(())
}
