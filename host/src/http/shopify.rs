//! The Shopify integration's routes: a tenant admin connects or disconnects the
//! tenant's store; Shopify delivers webhooks to the tenant's host. Connecting
//! proves ownership first (the shop's Admin API must answer the supplied token
//! with the same shop) and only then checks that no other tenant holds the
//! shop, so a caller without a working token learns nothing about other
//! tenants' shops; disconnecting and uninstalling release the shop. A webhook
//! is authenticated with that tenant's own app secret (HMAC over the raw body,
//! constant time), must come from the shop connected to the host's tenant, is
//! deduplicated on its webhook id, and is acknowledged at once: the work runs as a
//! job in the tenant's queue. Both use cases are [`crate::app::shopify`]'s.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::{
    Json, Router,
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::app;
use crate::http::context::{JsonBody, Member, RawBody, TenantAdmin, TenantHost};
use crate::http::{ApiError, ApiResult};
use crate::state::AppState;

// Response bodies: fields in alphabetical order (see `http::body`).

/// `GET /v1/shopify`.
#[derive(Serialize)]
struct StatusBody {
    api_version: Option<String>,
    connected: bool,
    connected_at: Option<i64>,
    enabled: bool,
    shop_domain: Option<String>,
    uninstalled_at: Option<i64>,
}

/// `PUT /v1/shopify`.
#[derive(Serialize)]
struct ConnectBody {
    api_version: String,
    connected: bool,
    shop_domain: String,
}

/// One commission of `GET /v1/shopify/commissions`.
#[derive(Serialize)]
struct CommissionBody {
    created_at: i64,
    decision: Value,
    line_item_id: String,
    order_id: String,
    outcome: String,
    source: String,
}

/// `GET /v1/shopify/commissions`.
#[derive(Serialize)]
struct CommissionsBody {
    commissions: Vec<CommissionBody>,
}

/// One product of `GET /v1/shopify/products`.
#[derive(Serialize)]
struct ProductBody {
    category_id: Option<String>,
    product_id: String,
    product_type: String,
    updated_at: i64,
}

/// `GET /v1/shopify/products`.
#[derive(Serialize)]
struct ProductsBody {
    products: Vec<ProductBody>,
}

/// `POST /v1/shopify/webhooks`.
#[derive(Serialize)]
#[serde(untagged)]
enum WebhookBody {
    Duplicate {
        status: &'static str,
        webhook_id: String,
    },
    Queued {
        job: i64,
        status: &'static str,
    },
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/shopify", get(status).put(connect).delete(disconnect))
        .route("/v1/shopify/webhooks", post(webhook))
        .route("/v1/shopify/commissions", get(commissions))
        .route("/v1/shopify/products", get(products))
}

async fn status(State(app): State<AppState>, member: Member) -> ApiResult<Json<StatusBody>> {
    let store = app
        .storage
        .tenant(member.tenant.id())
        .shopify_store()
        .await?;
    Ok(Json(StatusBody {
        api_version: store.as_ref().map(|s| s.api_version.clone()),
        connected: store.as_ref().is_some_and(|s| s.access_token_enc.is_some()),
        connected_at: store.as_ref().map(|s| s.connected_at),
        enabled: store.as_ref().is_some_and(|s| s.enabled),
        shop_domain: store.as_ref().map(|s| s.shop_domain.clone()),
        uninstalled_at: store.as_ref().and_then(|s| s.uninstalled_at),
    }))
}

async fn connect(
    State(app): State<AppState>,
    admin: TenantAdmin,
    JsonBody(body): JsonBody<app::shopify::Connect>,
) -> ApiResult<Json<ConnectBody>> {
    let store =
        app::shopify::connect(&app, admin.tenant.id(), &admin.principal.subject, body).await?;
    Ok(Json(ConnectBody {
        api_version: store.api_version,
        connected: true,
        shop_domain: store.shop_domain,
    }))
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
) -> ApiResult<Json<CommissionsBody>> {
    let rows = app
        .storage
        .tenant(member.tenant.id())
        .shopify_commissions(q.order_id.as_deref(), q.limit.unwrap_or(100).min(1_000))
        .await?;
    let commissions = rows
        .into_iter()
        .map(|r| CommissionBody {
            created_at: r.created_at,
            decision: serde_json::from_str::<Value>(&r.decision_json).unwrap_or(Value::Null),
            line_item_id: r.line_item_id,
            order_id: r.order_id,
            outcome: r.outcome,
            source: r.source,
        })
        .collect();
    Ok(Json(CommissionsBody { commissions }))
}

async fn products(State(app): State<AppState>, member: Member) -> ApiResult<Json<ProductsBody>> {
    let rows = app
        .storage
        .tenant(member.tenant.id())
        .shopify_products(1_000)
        .await?;
    let products = rows
        .into_iter()
        .map(|p| ProductBody {
            category_id: p.category_id,
            product_id: p.product_id,
            product_type: p.product_type,
            updated_at: p.updated_at,
        })
        .collect();
    Ok(Json(ProductsBody { products }))
}

async fn webhook(
    State(app): State<AppState>,
    tenant: TenantHost,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<WebhookBody>)> {
    // Unauthenticated until its signature is checked: charged to the
    // tenant's request rate first, so a flood at one tenant's webhook
    // endpoint is that tenant's alone (Shopify retries a 429).
    if let Err(wait) = app.limits.check_rate(&tenant.0).await {
        app.metrics.rate_limited(tenant.id());
        return Err(ApiError::rate_limited(wait.as_secs_f64().ceil() as u64));
    }
    let body = match app::shopify::accept_webhook(&app, tenant.id(), &headers, &body).await? {
        app::shopify::Accepted::Duplicate { webhook_id } => WebhookBody::Duplicate {
            status: "duplicate",
            webhook_id,
        },
        app::shopify::Accepted::Queued { job } => WebhookBody::Queued {
            job,
            status: "queued",
        },
    };
    Ok((StatusCode::OK, Json(body)))
}
