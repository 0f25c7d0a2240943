//! Proof that a tenant holds a store: before a shop is bound to a tenant, the
//! host asks that shop's Admin API, with the access token the tenant supplied,
//! for `shop { myshopifyDomain }`. Shopify answers a token only for the shop it
//! was issued for (any other token is a 401), so an answer naming the shop
//! being connected proves the caller holds a working token for it. Nothing is
//! looked up in storage before this succeeds, so a caller without a token for
//! a shop learns nothing about whether another tenant holds it.

use std::time::Duration;

use serde_json::{Value, json};

use super::{AdminClient, RetryPolicy, ShopifyError};

/// The query whose answer names the token's shop.
pub const SHOP_OWNER_QUERY: &str = "query shopOwner { shop { myshopifyDomain } }";

/// Limits for a proof made while a person waits on `PUT /v1/shopify`: a few
/// quick attempts, short waits, rather than the background jobs' patience.
pub fn ownership_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_secs(2),
        max_throttle_wait: Duration::from_secs(2),
        default_query_cost: 1.0,
        request_timeout: Duration::from_secs(8),
    }
}

/// Succeeds if `client`'s token is answered by Shopify for `client`'s shop.
/// [`ShopifyError::Unauthorized`] when Shopify refuses the token (a wrong,
/// revoked or another shop's token), [`ShopifyError::ShopMismatch`] when the
/// answer names another shop; other errors mean Shopify could not be asked.
pub async fn prove_ownership(client: &AdminClient) -> Result<(), ShopifyError> {
    let data = client.graphql(SHOP_OWNER_QUERY, json!({})).await?;
    let answered = data
        .pointer("/shop/myshopifyDomain")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ShopifyError::InvalidResponse("the shop query's answer names no shop".into())
        })?;
    let answered = answered.trim().trim_end_matches('.').to_ascii_lowercase();
    if answered != client.shop_domain() {
        return Err(ShopifyError::ShopMismatch {
            shop: client.shop_domain().to_owned(),
        });
    }
    Ok(())
}
