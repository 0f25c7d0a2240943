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

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app;
use crate::http::context::{JsonBody, Member, RawBody, TenantAdmin, TenantHost};
use crate::http::openapi::{JSON, MEMBER, QUERY, RAW, TENANT_HOST, TOKEN, errors};
use crate::http::{ApiError, ApiResult, Code};
use crate::state::AppState;

// Response bodies: fields in alphabetical order (see `http::body`).

/// `GET /v1/shopify`.
#[derive(Serialize, ToSchema)]
struct StatusBody {
    api_version: Option<String>,
    connected: bool,
    connected_at: Option<i64>,
    enabled: bool,
    /// The tenant's app asks for scopes the install did not grant: install
    /// again (`GET /v1/shopify/install`).
    reinstall_needed: bool,
    /// Granted at install (none for a store connected with a pasted token).
    scopes: Option<Vec<String>>,
    shop_domain: Option<String>,
    uninstalled_at: Option<i64>,
}

/// `PUT /v1/shopify`.
#[derive(Serialize, ToSchema)]
struct ConnectBody {
    api_version: String,
    connected: bool,
    shop_domain: String,
}

/// One commission of `GET /v1/shopify/commissions`.
#[derive(Serialize, ToSchema)]
struct CommissionBody {
    created_at: i64,
    decision: Value,
    line_item_id: String,
    order_id: String,
    outcome: String,
    source: String,
}

/// `GET /v1/shopify/commissions`.
#[derive(Serialize, ToSchema)]
struct CommissionsBody {
    commissions: Vec<CommissionBody>,
}

/// One product of `GET /v1/shopify/products`.
#[derive(Serialize, ToSchema)]
struct ProductBody {
    category_id: Option<String>,
    product_id: String,
    product_type: String,
    updated_at: i64,
}

/// `GET /v1/shopify/products`.
#[derive(Serialize, ToSchema)]
struct ProductsBody {
    products: Vec<ProductBody>,
}

/// `POST /v1/shopify/webhooks`.
#[derive(Serialize, ToSchema)]
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

/// `GET|PUT /v1/shopify/app`.
#[derive(Serialize, ToSchema)]
struct AppBody {
    app: Option<app::shopify_install::AppView>,
}

/// `GET /v1/shopify/callback`: the store the install connected.
#[derive(Serialize, ToSchema)]
struct InstalledBody {
    api_version: String,
    connected: bool,
    scopes: Vec<String>,
    shop_domain: String,
}

/// One of `GET /v1/shopify/data-requests`.
#[derive(Serialize, ToSchema)]
struct DataRequestItem {
    created_at: i64,
    customer_id: String,
    request_id: String,
}

/// `GET /v1/shopify/data-requests`.
#[derive(Serialize, ToSchema)]
struct DataRequestsBody {
    data_requests: Vec<DataRequestItem>,
}

/// `GET /v1/shopify/data-requests/{id}`.
#[derive(Serialize, ToSchema)]
struct DataRequestBody {
    created_at: i64,
    customer_id: String,
    export: Value,
    request_id: String,
}

/// `GET /v1/shopify/subscriptions`.
#[derive(Serialize, ToSchema)]
struct SubscriptionsBody {
    address: String,
    subscriptions: Vec<app::shopify_webhooks::Subscription>,
}

/// `POST /v1/shopify/subscriptions/sync`.
#[derive(Serialize, ToSchema)]
struct SyncBody {
    sync: app::shopify_webhooks::SyncReport,
}

/// `GET /v1/shopify/install` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct InstallQuery {
    shop: String,
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_app, put_app, delete_app))
        .routes(routes!(install))
        .routes(routes!(subscriptions))
        .routes(routes!(data_requests))
        .routes(routes!(data_request))
        .routes(routes!(sync_subscriptions))
        .routes(routes!(callback))
        .routes(routes!(status, connect, disconnect))
        .routes(routes!(webhook))
        .routes(routes!(commissions))
        .routes(routes!(products))
}

/// The tenant's Shopify store: connected or not, scopes, whether to reinstall.
#[utoipa::path(
    get,
    path = "/v1/shopify",
    tag = "shopify",
    security(("bearer" = [])),
    responses(
        (status = 200, body = StatusBody),
    ),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER])))),
)]
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
        reinstall_needed: app::shopify_install::reinstall_needed(
            &app,
            member.tenant.id(),
            store.as_ref(),
        )
        .await?,
        scopes: store.as_ref().and_then(|s| {
            s.scopes.as_deref().map(|g| {
                g.split(',')
                    .filter(|x| !x.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
        }),
        shop_domain: store.as_ref().map(|s| s.shop_domain.clone()),
        uninstalled_at: store.as_ref().and_then(|s| s.uninstalled_at),
    }))
}

/// Connects the tenant's store with a pasted Admin API token, once the shop
/// proves it owns it (admins).
#[utoipa::path(
    put,
    path = "/v1/shopify",
    tag = "shopify",
    security(("bearer" = [])),
    request_body = app::shopify::Connect,
    responses(
        (status = 200, body = ConnectBody),
    ),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, JSON, &[Code::InvalidShopifyStore, Code::InvalidCredentials, Code::ShopOwnershipNotProven, Code::ShopifyUnavailable, Code::Conflict, Code::Invalid]])))),
)]
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

/// Disconnects the tenant's store (admins).
#[utoipa::path(
    delete,
    path = "/v1/shopify",
    tag = "shopify",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Disconnected"),
    ),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, &[Code::NotFound]])))),
)]
async fn disconnect(State(app): State<AppState>, admin: TenantAdmin) -> ApiResult<StatusCode> {
    // The shop stops delivering here first (best effort: a store whose token
    // no longer works cannot be asked, and is disconnected all the same).
    match app::shopify_webhooks::remove_all(&app, admin.tenant.id()).await {
        Ok(removed) => {
            tracing::info!(tenant = %admin.tenant.id(), removed, "Shopify webhook subscriptions removed")
        }
        Err(err) => {
            tracing::warn!(tenant = %admin.tenant.id(), error = %err, "could not remove the shop's webhook subscriptions")
        }
    }
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

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct CommissionQuery {
    order_id: Option<String>,
    limit: Option<u32>,
}

/// Commissions computed for the store's orders, newest first.
#[utoipa::path(
    get,
    path = "/v1/shopify/commissions",
    tag = "shopify",
    security(("bearer" = [])),
    params(CommissionQuery),
    responses(
        (status = 200, body = CommissionsBody),
    ),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, QUERY])))),
)]
async fn commissions(
    State(app): State<AppState>,
    member: Member,
    crate::http::context::ApiQuery(q): crate::http::context::ApiQuery<CommissionQuery>,
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

/// The store's products and the category each was given.
#[utoipa::path(
    get,
    path = "/v1/shopify/products",
    tag = "shopify",
    security(("bearer" = [])),
    responses(
        (status = 200, body = ProductsBody),
    ),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER])))),
)]
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

/// The tenant's Shopify app (its client id and scopes), if set (admins).
#[utoipa::path(
    get,
    path = "/v1/shopify/app",
    tag = "shopify",
    security(("bearer" = [])),
    responses(
        (status = 200, body = AppBody),
    ),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER])))),
)]
async fn get_app(State(app): State<AppState>, admin: TenantAdmin) -> ApiResult<Json<AppBody>> {
    Ok(Json(AppBody {
        app: app::shopify_install::app_view(&app, admin.tenant.id()).await?,
    }))
}

/// Sets the tenant's Shopify app, for installs through OAuth (admins).
#[utoipa::path(
    put,
    path = "/v1/shopify/app",
    tag = "shopify",
    security(("bearer" = [])),
    request_body = app::shopify_install::AppSettings,
    responses(
        (status = 200, body = AppBody),
    ),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, JSON, &[Code::Invalid]])))),
)]
async fn put_app(
    State(app): State<AppState>,
    admin: TenantAdmin,
    JsonBody(body): JsonBody<app::shopify_install::AppSettings>,
) -> ApiResult<Json<AppBody>> {
    let view =
        app::shopify_install::set_app(&app, admin.tenant.id(), &admin.principal.subject, body)
            .await?;
    Ok(Json(AppBody { app: Some(view) }))
}

/// Removes the tenant's Shopify app (admins).
#[utoipa::path(
    delete,
    path = "/v1/shopify/app",
    tag = "shopify",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Removed"),
    ),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, &[Code::NotFound]])))),
)]
async fn delete_app(State(app): State<AppState>, admin: TenantAdmin) -> ApiResult<StatusCode> {
    let db = app.storage.tenant(admin.tenant.id());
    if !db.delete_shopify_app().await? {
        return Err(ApiError::not_found("this tenant has no Shopify app set"));
    }
    db.audit(
        &admin.principal.subject,
        "shopify.app.delete",
        None,
        None,
        None,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The customers' data requests Shopify sent, newest first.
#[utoipa::path(
    get,
    path = "/v1/shopify/data-requests",
    tag = "shopify",
    security(("bearer" = [])),
    responses(
        (status = 200, body = DataRequestsBody),
    ),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER])))),
)]
async fn data_requests(
    State(app): State<AppState>,
    admin: TenantAdmin,
) -> ApiResult<Json<DataRequestsBody>> {
    let requests = app
        .storage
        .tenant(admin.tenant.id())
        .data_requests(1_000)
        .await?;
    Ok(Json(DataRequestsBody {
        data_requests: requests
            .into_iter()
            .map(|r| DataRequestItem {
                created_at: r.created_at,
                customer_id: r.customer_id,
                request_id: r.request_id,
            })
            .collect(),
    }))
}

/// One data request with its export, to hand over to the customer.
#[utoipa::path(
    get,
    path = "/v1/shopify/data-requests/{id}",
    tag = "shopify",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The data request's id")),
    responses(
        (status = 200, body = DataRequestBody),
    ),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, &[Code::NotFound]])))),
)]
async fn data_request(
    State(app): State<AppState>,
    admin: TenantAdmin,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> ApiResult<Json<DataRequestBody>> {
    let found = app
        .storage
        .tenant(admin.tenant.id())
        .data_request(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such data request for this tenant"))?;
    Ok(Json(DataRequestBody {
        created_at: found.created_at,
        customer_id: found.customer_id,
        export: serde_json::from_str(&found.export).map_err(ApiError::internal)?,
        request_id: found.request_id,
    }))
}

/// The shop's webhook subscriptions, as Shopify lists them.
#[utoipa::path(
    get,
    path = "/v1/shopify/subscriptions",
    tag = "shopify",
    security(("bearer" = [])),
    responses(
        (status = 200, body = SubscriptionsBody),
    ),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, &[Code::NotFound, Code::Conflict, Code::InvalidCredentials, Code::ShopifyUnavailable]])))),
)]
async fn subscriptions(
    State(app): State<AppState>,
    admin: TenantAdmin,
) -> ApiResult<Json<SubscriptionsBody>> {
    let tenant = admin.tenant.id();
    Ok(Json(SubscriptionsBody {
        address: app::shopify_webhooks::address(&app, tenant),
        subscriptions: app::shopify_webhooks::list(&app, tenant).await?,
    }))
}

/// Makes the shop's subscriptions what Veneer handles, now.
#[utoipa::path(
    post,
    path = "/v1/shopify/subscriptions/sync",
    tag = "shopify",
    security(("bearer" = [])),
    responses(
        (status = 200, body = SyncBody),
    ),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, &[Code::NotFound, Code::Conflict, Code::InvalidCredentials, Code::ShopifyUnavailable]])))),
)]
async fn sync_subscriptions(
    State(app): State<AppState>,
    admin: TenantAdmin,
) -> ApiResult<Json<SyncBody>> {
    let sync =
        app::shopify_webhooks::sync(&app, admin.tenant.id(), &admin.principal.subject).await?;
    Ok(Json(SyncBody { sync }))
}

/// Starts an install: 302 to the shop's authorize page, with the cookie that
/// binds the install to this browser (HttpOnly, SameSite=Lax so Shopify's
/// redirect back carries it, Secure over HTTPS, only sent to the callback).
#[utoipa::path(
    get,
    path = "/v1/shopify/install",
    tag = "shopify",
    security(("bearer" = [])),
    params(InstallQuery),
    responses(
        (status = 302, description = "To the shop's authorize page, with the cookie that binds the install to this browser"),
    ),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, TOKEN, MEMBER, &[Code::InvalidShopifyStore, Code::NotFound, Code::Conflict, Code::Invalid]])))),
)]
async fn install(
    State(app): State<AppState>,
    admin: TenantAdmin,
    headers: HeaderMap,
    query: Result<axum::extract::Query<InstallQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let axum::extract::Query(query) = query.map_err(|err| {
        ApiError::new(
            crate::http::Code::InvalidShopifyStore,
            format!("use ?shop=<name>.myshopify.com: {err}"),
        )
    })?;
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let secure = app.config.tls.enabled || !app.config.dev;
    let scheme = if secure { "https" } else { "http" };
    let redirect_uri = format!("{scheme}://{host}/v1/shopify/callback");
    let started =
        app::shopify_install::start(&app, admin.tenant.id(), &query.shop, &redirect_uri).await?;
    let cookie = format!(
        "{}={}; Path=/v1/shopify/callback; Max-Age={}; HttpOnly; SameSite=Lax{}",
        app::shopify_install::COOKIE,
        started.nonce,
        app::shopify_install::STATE_TTL.as_secs(),
        if secure { "; Secure" } else { "" }
    );
    Ok((
        StatusCode::FOUND,
        [
            (axum::http::header::LOCATION, started.authorize_url),
            (axum::http::header::SET_COOKIE, cookie),
            (axum::http::header::CACHE_CONTROL, "no-store".to_owned()),
        ],
    )
        .into_response())
}

/// Shopify's redirect back after the merchant approved: no token (a browser
/// navigation); the callback proves itself (`app::shopify_install::finish`).
#[utoipa::path(
    get,
    path = "/v1/shopify/callback",
    tag = "shopify",
    security(()),
    params(("code" = String, Query, description = "Shopify's authorization code"), ("shop" = String, Query, description = "The shop"), ("state" = String, Query, description = "The install's nonce"), ("hmac" = String, Query, description = "Shopify's signature of the query"), ("timestamp" = String, Query, description = "When Shopify signed it")),
    responses(
        (status = 200, body = InstalledBody),
    ),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, &[Code::RateLimited, Code::ShopifyInstallRefused, Code::ShopifyUnavailable, Code::Conflict]])))),
)]
async fn callback(
    State(app): State<AppState>,
    tenant: TenantHost,
    headers: HeaderMap,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    // Unauthenticated: charged to the tenant's request rate first.
    if let Err(wait) = app.limits.check_rate(&tenant.0).await {
        app.metrics.rate_limited(tenant.id());
        return Err(ApiError::rate_limited(wait.as_secs_f64().ceil() as u64));
    }
    let raw = raw.unwrap_or_default();
    if raw.len() > 4096 {
        return Err(
            app::Error::ShopifyInstallRefused("the callback's query is too long".into()).into(),
        );
    }
    let mut query = std::collections::BTreeMap::new();
    let parsed = reqwest::Url::parse(&format!("http://callback/?{raw}")).map_err(|_| {
        app::Error::ShopifyInstallRefused("the callback's query does not parse".into())
    })?;
    for (k, v) in parsed.query_pairs() {
        if query.insert(k.into_owned(), v.into_owned()).is_some() {
            return Err(app::Error::ShopifyInstallRefused(
                "the callback repeats a parameter".into(),
            )
            .into());
        }
    }
    let cookie = cookie_value(&headers, app::shopify_install::COOKIE);
    let store = app::shopify_install::finish(&app, tenant.id(), &query, cookie.as_deref()).await?;
    let clear = format!(
        "{}=; Path=/v1/shopify/callback; Max-Age=0; HttpOnly; SameSite=Lax",
        app::shopify_install::COOKIE
    );
    Ok((
        [
            (axum::http::header::SET_COOKIE, clear),
            (axum::http::header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        Json(InstalledBody {
            api_version: store.api_version,
            connected: true,
            scopes: store
                .scopes
                .as_deref()
                .unwrap_or_default()
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            shop_domain: store.shop_domain,
        }),
    )
        .into_response())
}

/// The value of cookie `name`, if the request carries it.
fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// A Shopify webhook for the host's tenant: verified with the tenant's app
/// secret, deduplicated on its webhook id, queued as a job.
#[utoipa::path(
    post,
    path = "/v1/shopify/webhooks",
    tag = "webhooks",
    security(("shopify_hmac" = [])),
    request_body(content = Object, description = "A Shopify webhook payload (signed over its raw bytes)", content_type = "application/json"),
    responses(
        (status = 200, body = WebhookBody),
    ),
    extensions(("x-veneer-errors" = json!(errors(&[TENANT_HOST, RAW, &[Code::RateLimited, Code::MissingHeader, Code::InvalidHeader, Code::InvalidWebhook, Code::InvalidJson, Code::NotFound, Code::Conflict]])))),
)]
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
