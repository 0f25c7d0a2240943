//! Shopify: what the host needs to act for a tenant's Shopify store. Owns
//! webhook authentication (HMAC-SHA256 over the raw body with the tenant's own
//! app secret, compared in constant time) and header parsing, the webhook
//! payload types and money amounts, mapping product types onto the tenant's
//! categories, sealing credentials with [`crate::secrets`], and the Admin
//! GraphQL client that respects Shopify's cost-based throttle.
//!
//! It must not run SQL (it goes through [`crate::storage`]), answer HTTP (the
//! routes in `http` call [`authenticate_webhook`] and answer fast) or run plugins
//! (background jobs take the parsed payloads from here to `resolve`).
//!
//! A webhook's life: [`authenticate_webhook`] parses the headers, finds the
//! tenant by shop domain, opens its app secret and verifies the signature;
//! the route then records the webhook id (`TenantDb::record_shopify_webhook`,
//! false = a redelivery: acknowledge and drop), enqueues a job and answers 200.
//! If enqueueing fails it forgets the id again and answers 503, so Shopify's
//! retry is processed.
//!
//! A store is connected only once its ownership is proven:
//! [`prove_ownership`] asks the shop's Admin API, with the token the tenant
//! supplied, which shop the token belongs to, and the answer must name the
//! shop being connected.

mod admin;
mod client;
mod credentials;
mod mapping;
mod ownership;
mod payload;
mod time;
mod webhook;

#[cfg(test)]
mod tests;

pub use admin::{AdminApi, AdminFuture, ShopifyClient};
pub use client::{AdminClient, QueryCost, RetryPolicy, ThrottleStatus};
pub use credentials::{
    OpenedCredentials, RotationReport, VerifiedWebhook, access_token_aad, app_secret_aad,
    authenticate_webhook, authenticate_webhook_for, open_credentials, rotate_credentials,
    seal_credentials,
};
pub use mapping::map_product_type;
pub use ownership::{SHOP_OWNER_QUERY, ownership_policy, prove_ownership};
pub use payload::{
    AppUninstalled, InvalidMoney, LineItem, OrderCreated, ProductEvent, currency_exponent,
    money_to_minor,
};
pub use time::parse_timestamp_ms;
pub use webhook::{
    WebhookError, WebhookHeaders, WebhookTopic, parse_webhook_headers, sign_webhook, verify_webhook,
};

use crate::secrets::SecretsError;
use crate::storage::StorageError;

/// What went wrong talking to Shopify or opening a store's credentials. Every
/// message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ShopifyError {
    /// The client was given something it cannot call.
    #[error("Shopify client misconfigured: {0}")]
    InvalidConfig(String),
    /// 401/403: the token is wrong, revoked, or lacks a scope. Not retried.
    #[error(
        "Shopify refused the access token for {shop} (HTTP {status}): {hint}; Shopify said: \
         {message}"
    )]
    Unauthorized {
        shop: String,
        status: u16,
        hint: &'static str,
        message: String,
    },
    /// 402/423: the shop is frozen (unpaid) or locked. Not retried.
    #[error(
        "the Shopify store {shop} is unavailable (HTTP {status}: {reason}); it must be \
         reactivated in Shopify before the host can call it"
    )]
    ShopUnavailable {
        shop: String,
        status: u16,
        reason: &'static str,
    },
    /// The token works, but for another shop than the one being connected.
    #[error(
        "the access token belongs to another shop than `{shop}`: connect `{shop}` with the \
         Admin API access token of its own app installation"
    )]
    ShopMismatch { shop: String },
    /// 404: no such shop, or no such API version.
    #[error(
        "Shopify answered 404 for {shop}: check the shop domain and that API version `{version}` \
         is still supported"
    )]
    NotFound { shop: String, version: String },
    /// A query costs more than the shop's whole bucket: it can never run.
    #[error(
        "the query costs {requested} points but the shop's bucket holds {maximum}: request fewer \
         items per page (`first:`) or fewer fields"
    )]
    CostExceedsBucket { requested: f64, maximum: f64 },
    /// Shopify answered with GraphQL errors (the query or its variables are wrong).
    #[error("Shopify rejected the query: {}", messages.join("; "))]
    GraphQl { messages: Vec<String> },
    /// Still throttled, failing or unreachable after every attempt.
    #[error("Shopify call failed after {attempts} attempts: {last}; try again later")]
    GaveUp {
        attempts: u32,
        last: Box<ShopifyError>,
    },
    /// A 4xx/5xx answer not covered above.
    #[error("Shopify answered HTTP {status}: {body}")]
    Http { status: u16, body: String },
    /// Throttled (the last answer before giving up).
    #[error("throttled by Shopify's cost limit ({0})")]
    Throttled(String),
    /// The request did not get an answer.
    #[error("cannot reach Shopify: {0}")]
    Transport(String),
    /// The answer is not the GraphQL JSON shape.
    #[error("unexpected answer from Shopify: {0}")]
    InvalidResponse(String),
    /// The tenant has no connected store (or its credentials were wiped).
    #[error("no Shopify store is connected for this tenant: connect one first")]
    NotConnected,
    /// Stored credentials cannot be opened.
    #[error("the stored Shopify credentials cannot be opened: {0}")]
    Credentials(#[from] SecretsError),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}
