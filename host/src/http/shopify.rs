//! The Shopify integration's routes: a tenant admin connects or disconnects the
//! tenant's store; Shopify delivers webhooks to the tenant's host. Connecting
//! proves ownership first (the shop's Admin API must answer the supplied token
//! with the same shop) and only then checks that no other tenant holds the
//! shop, so a caller without a working token learns nothing about other
//! tenants' shops; disconnecting and uninstalling release the shop. A webhook
//! is authenticated with that tenant's own app secret (HMAC over the raw body,
//! constant time), must come from the shop connected to the host's tenant, is
//! deduplicated on its webhook id, and is acknowledged at once: the work runs as a
//! job in the tenant's queue.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::{
    Json, Router,
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::app::jobs::{WEBHOOK_JOB, WEBHOOK_JOB_ATTEMPTS};
use crate::http::context::{JsonBody, Member, RawBody, TenantAdmin, TenantHost};
use crate::http::{ApiError, ApiResult, Code};
use crate::shopify::{
    AdminClient, ShopifyError, WebhookError, authenticate_webhook_for, ownership_policy,
    prove_ownership, seal_credentials,
};
use crate::state::AppState;
use crate::storage::NewJob;

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
    JsonBody(body): JsonBody<Connect>,
) -> ApiResult<Json<ConnectBody>> {
    let tenant = admin.tenant.id();
    for (field, value) in [
        ("access_token", &body.access_token),
        ("app_secret", &body.app_secret),
    ] {
        if value.is_empty() || value.len() > 512 || value.chars().any(char::is_control) {
            return Err(ApiError::new(
                Code::InvalidCredentials,
                format!("{field} must be 1 to 512 visible characters"),
            ));
        }
    }
    let shop_domain = body
        .shop_domain
        .trim()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let mut client = AdminClient::new(
        app.http.clone(),
        &shop_domain,
        &body.access_token,
        &body.api_version,
    )
    .map_err(|err| ApiError::new(Code::InvalidShopifyStore, err.to_string()))?
    .with_retry_policy(ownership_policy());
    if let Some(base) = &app.config.shopify_api_base {
        client = client.with_base_url(base);
    }
    // Ownership first: until it is proven, nothing about other tenants' shops
    // is looked at, so nothing about them can leak into the answer.
    prove_ownership(&client)
        .await
        .map_err(|err| not_proven(&shop_domain, err))?;
    let (token_enc, secret_enc) =
        seal_credentials(&app.secrets, tenant, &body.access_token, &body.app_secret);
    let db = app.storage.tenant(tenant);
    let store = db
        .connect_shopify(&shop_domain, &token_enc, &secret_enc, &body.api_version)
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
    Ok(Json(ConnectBody {
        api_version: store.api_version,
        connected: true,
        shop_domain: store.shop_domain,
    }))
}

/// The answer when Shopify did not confirm that the token belongs to the shop.
fn not_proven(shop: &str, err: ShopifyError) -> ApiError {
    const CODE: Code = Code::ShopOwnershipNotProven;
    match err {
        ShopifyError::Unauthorized { status: 401, .. } => ApiError::new(
            CODE,
            format!(
                "Shopify refused the access token for `{shop}`: give the Admin API access \
                 token (shpat_…) of the app installed on `{shop}`"
            ),
        ),
        ShopifyError::Unauthorized { .. }
        | ShopifyError::ShopMismatch { .. }
        | ShopifyError::NotFound { .. }
        | ShopifyError::ShopUnavailable { .. } => ApiError::new(CODE, err.to_string()),
        ShopifyError::Http { status: code, .. } if (400..500).contains(&code) => ApiError::new(
            CODE,
            format!(
                "Shopify answered HTTP {code} for `{shop}`: check the shop domain and the \
                 access token"
            ),
        ),
        ShopifyError::InvalidConfig(message) => ApiError::new(Code::InvalidShopifyStore, message),
        other => {
            tracing::warn!(shop, error = %other, "cannot ask Shopify who owns a shop");
            ApiError::new(
                Code::ShopifyUnavailable,
                format!(
                    "Shopify could not be asked to confirm the access token for `{shop}`; \
                     nothing was connected, try again shortly"
                ),
            )
        }
    }
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

fn unauthenticated() -> ApiError {
    // One answer for an unknown shop, a shop of another tenant and a bad
    // signature: a prober learns nothing about which shops exist.
    ApiError::new(
        Code::InvalidWebhook,
        "the webhook is not signed by the shop connected to this tenant",
    )
}

async fn webhook(
    State(app): State<AppState>,
    tenant: TenantHost,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<WebhookBody>)> {
    let verified =
        match authenticate_webhook_for(&app.storage, &app.secrets, tenant.id(), &headers, &body)
            .await
        {
            Ok(verified) => verified,
            Err(WebhookError::MissingHeader(name)) => {
                return Err(ApiError::new(
                    Code::MissingHeader,
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
                return Err(ApiError::new(
                    Code::InvalidHeader,
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
            Json(WebhookBody::Duplicate {
                status: "duplicate",
                webhook_id,
            }),
        ));
    }
    let payload: Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(err) => {
            // Signed but not JSON: Shopify never sends that; keep a record, do nothing.
            tracing::warn!(tenant = %tenant.id(), error = %err, "a signed webhook body is not JSON");
            return Err(ApiError::new(
                Code::InvalidJson,
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
            Json(WebhookBody::Queued {
                job: job.id,
                status: "queued",
            }),
        )),
        Err(err) => {
            // Forget the delivery so Shopify's retry is processed, then 503.
            let _ = db.forget_shopify_webhook(&webhook_id).await;
            Err(err.into())
        }
    }
}
