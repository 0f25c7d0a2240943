//! The Shopify integration's routes: a tenant admin connects or disconnects the
//! tenant's store; Shopify delivers webhooks to the tenant's host. A webhook is
//! authenticated with that tenant's own app secret (HMAC over the raw body,
//! constant time), must come from the shop connected to the host's tenant, is
//! deduplicated on its webhook id, and is acknowledged at once: the work runs as a
//! job in the tenant's queue.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::{
    Json, Router,
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::http::context::{JsonBody, Member, RawBody, TenantAdmin, TenantHost};
use crate::http::{ApiError, ApiResult};
use crate::shopify::{WebhookError, authenticate_webhook, seal_credentials};
use crate::state::AppState;
use crate::storage::NewJob;

/// The job kind that processes a webhook.
pub const WEBHOOK_JOB: &str = "shopify.webhook";
/// Attempts before a webhook job is dead-lettered.
pub const WEBHOOK_JOB_ATTEMPTS: u32 = 8;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/shopify", get(status).put(connect).delete(disconnect))
        .route("/v1/shopify/webhooks", post(webhook))
        .route("/v1/shopify/commissions", get(commissions))
        .route("/v1/shopify/products", get(products))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Connect {
    shop_domain: String,
    access_token: String,
    app_secret: String,
    #[serde(default = "default_api_version")]
    api_version: String,
}

fn default_api_version() -> String {
    "2025-10".into()
}

async fn status(State(app): State<AppState>, member: Member) -> ApiResult<Json<Value>> {
    let store = app
        .storage
        .tenant(member.tenant.id())
        .shopify_store()
        .await?;
    Ok(Json(json!({
        "connected": store.as_ref().is_some_and(|s| s.access_token_enc.is_some()),
        "shop_domain": store.as_ref().map(|s| s.shop_domain.clone()),
        "api_version": store.as_ref().map(|s| s.api_version.clone()),
        "enabled": store.as_ref().is_some_and(|s| s.enabled),
        "connected_at": store.as_ref().map(|s| s.connected_at),
        "uninstalled_at": store.as_ref().and_then(|s| s.uninstalled_at),
    })))
}

async fn connect(
    State(app): State<AppState>,
    admin: TenantAdmin,
    JsonBody(body): JsonBody<Connect>,
) -> ApiResult<Json<Value>> {
    let tenant = admin.tenant.id();
    for (field, value) in [
        ("access_token", &body.access_token),
        ("app_secret", &body.app_secret),
    ] {
        if value.is_empty() || value.len() > 512 || value.chars().any(char::is_control) {
            return Err(ApiError::bad_request(
                "invalid_credentials",
                format!("{field} must be 1 to 512 visible characters"),
            ));
        }
    }
    let (token_enc, secret_enc) =
        seal_credentials(&app.secrets, tenant, &body.access_token, &body.app_secret);
    let db = app.storage.tenant(tenant);
    let store = db
        .connect_shopify(
            &body.shop_domain.to_ascii_lowercase(),
            &token_enc,
            &secret_enc,
            &body.api_version,
        )
        .await?;
    let after =
        json!({ "shop_domain": store.shop_domain, "api_version": store.api_version }).to_string();
    db.audit(
        &admin.principal.subject,
        "shopify.connect",
        None,
        None,
        Some(&after),
    )
    .await?;
    Ok(Json(
        json!({ "connected": true, "shop_domain": store.shop_domain, "api_version": store.api_version }),
    ))
}

async fn disconnect(State(app): State<AppState>, admin: TenantAdmin) -> ApiResult<StatusCode> {
    let db = app.storage.tenant(admin.tenant.id());
    if !db.disconnect_shopify().await? {
        return Err(ApiError::not_found(
            "this tenant has no Shopify store connected",
        ));
    }
    db.audit(
        &admin.principal.subject,
        "shopify.disconnect",
        None,
        None,
        None,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
struct CommissionQuery {
    order_id: Option<String>,
    limit: Option<u32>,
}

async fn commissions(
    State(app): State<AppState>,
    member: Member,
    axum::extract::Query(q): axum::extract::Query<CommissionQuery>,
) -> ApiResult<Json<Value>> {
    let rows = app
        .storage
        .tenant(member.tenant.id())
        .shopify_commissions(q.order_id.as_deref(), q.limit.unwrap_or(100).min(1_000))
        .await?;
    let rows: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            json!({
                "order_id": r.order_id, "line_item_id": r.line_item_id, "source": r.source, "outcome": r.outcome,
                "decision": serde_json::from_str::<Value>(&r.decision_json).unwrap_or(Value::Null), "created_at": r.created_at,
            })
        })
        .collect();
    Ok(Json(json!({ "commissions": rows })))
}

async fn products(State(app): State<AppState>, member: Member) -> ApiResult<Json<Value>> {
    let rows = app
        .storage
        .tenant(member.tenant.id())
        .shopify_products(1_000)
        .await?;
    let rows: Vec<Value> = rows
        .into_iter()
        .map(|p| json!({ "product_id": p.product_id, "product_type": p.product_type, "category_id": p.category_id, "updated_at": p.updated_at }))
        .collect();
    Ok(Json(json!({ "products": rows })))
}

fn unauthenticated() -> ApiError {
    // One answer for an unknown shop, a shop of another tenant and a bad
    // signature: a prober learns nothing about which shops exist.
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_webhook",
        "the webhook is not signed by the shop connected to this tenant",
    )
}

async fn webhook(
    State(app): State<AppState>,
    tenant: TenantHost,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let verified = match authenticate_webhook(&app.storage, &app.secrets, &headers, &body).await {
        Ok(verified) => verified,
        Err(WebhookError::MissingHeader(name)) => {
            return Err(ApiError::bad_request(
                "missing_header",
                format!("the webhook has no {name} header"),
            ));
        }
        // A malformed signature is a bad signature: same answer as any other.
        Err(WebhookError::InvalidHeader { name, .. })
            if name.eq_ignore_ascii_case("x-shopify-hmac-sha256") =>
        {
            return Err(unauthenticated());
        }
        Err(WebhookError::InvalidHeader { name, reason }) => {
            return Err(ApiError::bad_request(
                "invalid_header",
                format!("the {name} header is invalid: {reason}"),
            ));
        }
        Err(WebhookError::Storage(err)) => return Err(err.into()),
        Err(other) => {
            tracing::info!(tenant = %tenant.id(), reason = %other, "refused a Shopify webhook");
            return Err(unauthenticated());
        }
    };
    if &verified.tenant != tenant.id() {
        tracing::warn!(host_tenant = %tenant.id(), shop_tenant = %verified.tenant, "a shop's webhook was sent to another tenant's host");
        return Err(unauthenticated());
    }
    let db = app.storage.tenant(tenant.id());
    let webhook_id = verified.headers.webhook_id.clone();
    let topic = verified.headers.topic.as_str().to_owned();
    if !db.record_shopify_webhook(&webhook_id, &topic).await? {
        return Ok((
            StatusCode::OK,
            Json(json!({ "status": "duplicate", "webhook_id": webhook_id })),
        ));
    }
    let payload: Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(err) => {
            // Signed but not JSON: Shopify never sends that; keep a record, do nothing.
            tracing::warn!(tenant = %tenant.id(), error = %err, "a signed webhook body is not JSON");
            return Err(ApiError::bad_request(
                "invalid_json",
                "the webhook body is not JSON",
            ));
        }
    };
    let job_payload = json!({
        "topic": topic,
        "webhook_id": webhook_id,
        "shop_domain": verified.headers.shop_domain,
        "store_enabled": verified.store_enabled,
        "body": payload,
    })
    .to_string();
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
        Ok((job, _)) => Ok((
            StatusCode::OK,
            Json(json!({ "status": "queued", "job": job.id })),
        )),
        Err(err) => {
            // Forget the delivery so Shopify's retry is processed, then 503.
            let _ = db.forget_shopify_webhook(&webhook_id).await;
            Err(err.into())
        }
    }
}
