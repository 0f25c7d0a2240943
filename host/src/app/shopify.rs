//! The Shopify integration as use cases: a tenant admin connects the tenant's
//! store (ownership proven by the shop's own Admin API before anything is
//! stored or compared with other tenants' shops), and the tenant's host accepts
//! a webhook (authenticated with that tenant's app secret, from the shop
//! connected to that tenant, deduplicated, queued as a job in the tenant's
//! queue). The Admin API client, the HMAC and the sealing are
//! `crate::shopify`'s; what a webhook does is the job handler's (`workers`).

use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};

use super::jobs::{WEBHOOK_JOB, WEBHOOK_JOB_ATTEMPTS};
use super::{Error, Result};
use crate::shopify::{
    AdminClient, ShopifyError, WebhookError, authenticate_webhook_for, ownership_policy,
    prove_ownership, seal_credentials,
};
use crate::state::AppState;
use crate::storage::{NewJob, ShopifyStoreRecord};
use crate::tenancy::TenantId;

/// What a tenant admin gives to connect a store (a custom app's credentials).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Connect {
    /// `<shop>.myshopify.com` (trimmed and lowercased here).
    pub shop_domain: String,
    /// The Admin API access token (`shpat_…`), in clear; stored sealed.
    pub access_token: String,
    /// The app's API secret (signs webhooks), in clear; stored sealed.
    pub app_secret: String,
    /// The Admin API version to call.
    #[serde(default = "default_api_version")]
    pub api_version: String,
}

fn default_api_version() -> String {
    "2025-10".into()
}

/// Connects `tenant` to the store of `connect` (audited as `actor`): the
/// credentials' shape first, then ownership (Shopify must answer the token with
/// that very shop), and only then the store is stored, which also checks that no
/// other tenant holds the shop. A caller without a working token learns nothing
/// about other tenants' shops.
pub async fn connect(
    app: &AppState,
    tenant: &TenantId,
    actor: &str,
    connect: Connect,
) -> Result<ShopifyStoreRecord> {
    for (field, value) in [
        ("access_token", &connect.access_token),
        ("app_secret", &connect.app_secret),
    ] {
        if value.is_empty() || value.len() > 512 || value.chars().any(char::is_control) {
            return Err(Error::InvalidCredentials(format!(
                "{field} must be 1 to 512 visible characters"
            )));
        }
    }
    let shop_domain = connect
        .shop_domain
        .trim()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let mut client = AdminClient::new(
        app.http.clone(),
        &shop_domain,
        &connect.access_token,
        &connect.api_version,
    )
    .map_err(|err| Error::InvalidShopifyStore(err.to_string()))?
    .with_retry_policy(ownership_policy());
    if let Some(base) = &app.config.shopify_api_base {
        client = client.with_base_url(base);
    }
    // Ownership first: until it is proven, nothing about other tenants' shops
    // is looked at, so nothing about them can leak into the answer.
    prove_ownership(&client)
        .await
        .map_err(|err| not_proven(&shop_domain, err))?;
    let (token_enc, secret_enc) = seal_credentials(
        &app.secrets,
        tenant,
        &connect.access_token,
        &connect.app_secret,
    );
    let db = app.storage.tenant(tenant);
    let store = db
        .connect_shopify(&shop_domain, &token_enc, &secret_enc, &connect.api_version)
        .await?;
    let after =
        json!({ "shop_domain": store.shop_domain, "api_version": store.api_version }).to_string();
    db.audit(actor, "shopify.connect", None, None, Some(&after))
        .await?;
    Ok(store)
}

/// The error when Shopify did not confirm that the token belongs to the shop.
fn not_proven(shop: &str, err: ShopifyError) -> Error {
    match err {
        ShopifyError::Unauthorized { status: 401, .. } => Error::ShopOwnershipNotProven(format!(
            "Shopify refused the access token for `{shop}`: give the Admin API access \
             token (shpat_…) of the app installed on `{shop}`"
        )),
        ShopifyError::Unauthorized { .. }
        | ShopifyError::ShopMismatch { .. }
        | ShopifyError::NotFound { .. }
        | ShopifyError::ShopUnavailable { .. } => Error::ShopOwnershipNotProven(err.to_string()),
        ShopifyError::Http { status: code, .. } if (400..500).contains(&code) => {
            Error::ShopOwnershipNotProven(format!(
                "Shopify answered HTTP {code} for `{shop}`: check the shop domain and the \
                 access token"
            ))
        }
        ShopifyError::InvalidConfig(message) => Error::InvalidShopifyStore(message),
        other => {
            tracing::warn!(shop, error = %other, "cannot ask Shopify who owns a shop");
            Error::ShopifyUnavailable(format!(
                "Shopify could not be asked to confirm the access token for `{shop}`; \
                 nothing was connected, try again shortly"
            ))
        }
    }
}

/// What became of an accepted webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// Seen before (Shopify retries deliveries): nothing queued again.
    Duplicate {
        /// Shopify's id of the delivery.
        webhook_id: String,
    },
    /// Queued as a job in the tenant's queue.
    Queued {
        /// The job's id.
        job: i64,
    },
}

/// Accepts a webhook delivered to `tenant`'s host: the HMAC must be that of the
/// shop connected to `tenant` (one refusal for an unknown shop, another
/// tenant's shop and a bad signature), a delivery id seen before is a
/// duplicate, and the work is queued as a job. When queueing fails the delivery
/// is forgotten again, so Shopify's retry is processed.
/// Counted in the metrics: accepted, duplicate, or rejected (any refusal; a
/// failure of the server's own is not the sender's and is not counted).
pub async fn accept_webhook(
    app: &AppState,
    tenant: &TenantId,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Accepted> {
    use crate::metrics::WebhookResult;
    let accepted = accept(app, tenant, headers, body).await;
    let result = match &accepted {
        Ok(Accepted::Queued { .. }) => Some(WebhookResult::Accepted),
        Ok(Accepted::Duplicate { .. }) => Some(WebhookResult::Duplicate),
        Err(
            Error::WebhookMissingHeader(_)
            | Error::WebhookInvalidHeader { .. }
            | Error::WebhookNotAuthenticated
            | Error::WebhookNotJson,
        ) => Some(WebhookResult::Rejected),
        Err(_) => None,
    };
    if let Some(result) = result {
        app.metrics.webhook(tenant, result);
    }
    accepted
}

async fn accept(
    app: &AppState,
    tenant: &TenantId,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Accepted> {
    let verified =
        match authenticate_webhook_for(&app.storage, &app.secrets, tenant, headers, body).await {
            Ok(verified) => verified,
            Err(WebhookError::MissingHeader(name)) => {
                return Err(Error::WebhookMissingHeader(name.to_string()));
            }
            // A malformed signature is a bad signature: same answer as any other.
            Err(WebhookError::InvalidHeader { name, .. })
                if name.eq_ignore_ascii_case("x-shopify-hmac-sha256") =>
            {
                return Err(Error::WebhookNotAuthenticated);
            }
            Err(WebhookError::InvalidHeader { name, reason }) => {
                return Err(Error::WebhookInvalidHeader {
                    name: name.to_string(),
                    reason: reason.to_string(),
                });
            }
            Err(WebhookError::Storage(err)) => return Err(err.into()),
            Err(other) => {
                tracing::info!(%tenant, reason = %other, "refused a Shopify webhook");
                return Err(Error::WebhookNotAuthenticated);
            }
        };
    if &verified.tenant != tenant {
        tracing::warn!(host_tenant = %tenant, shop_tenant = %verified.tenant, "a shop's webhook was sent to another tenant's host");
        return Err(Error::WebhookNotAuthenticated);
    }
    let db = app.storage.tenant(tenant);
    let webhook_id = verified.headers.webhook_id.clone();
    let topic = verified.headers.topic.as_str().to_owned();
    if !db.record_shopify_webhook(&webhook_id, &topic).await? {
        return Ok(Accepted::Duplicate { webhook_id });
    }
    let payload: Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(err) => {
            // Signed but not JSON: Shopify never sends that; keep a record, do nothing.
            tracing::warn!(%tenant, error = %err, "a signed webhook body is not JSON");
            return Err(Error::WebhookNotJson);
        }
    };
    let full = json!({
        "topic": topic,
        "webhook_id": webhook_id,
        "shop_domain": verified.headers.shop_domain,
        "store_enabled": verified.store_enabled,
        "body": payload,
    });
    // The body (customers, orders) waits in the jobs table sealed.
    let job_payload = super::jobs::seal_payload(
        app,
        tenant,
        WEBHOOK_JOB,
        &webhook_id,
        json!({ "topic": topic, "webhook_id": webhook_id }),
        &full,
    );
    let dedupe = format!("shopify:{webhook_id}");
    let enqueued = db
        .enqueue_job(&NewJob {
            kind: WEBHOOK_JOB,
            payload: &job_payload,
            max_attempts: WEBHOOK_JOB_ATTEMPTS,
            run_at: None,
            dedupe_key: Some(&dedupe),
        })
        .await;
    match enqueued {
        Ok((job, _)) => Ok(Accepted::Queued { job: job.id }),
        Err(err) => {
            let _ = db.forget_shopify_webhook(&webhook_id).await;
            Err(err.into())
        }
    }
}
