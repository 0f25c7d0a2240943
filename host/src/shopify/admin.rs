//! The seam between the webhook job and Shopify's Admin API:
//! [`ShopifyClient`] is the calls the job makes (today one: a product's
//! type), with a store's opened credentials. [`AdminApi`] is the real one
//! (an [`AdminClient`] per call, its retries and throttling unchanged); tests
//! put an in-memory client in its place to drive the job handler without a
//! socket. Owns no decision of its own: what a failure does to the job is
//! the caller's.

use std::future::Future;
use std::pin::Pin;

use serde_json::{Value, json};

use super::ShopifyError;
use super::client::AdminClient;
use super::credentials::OpenedCredentials;

/// The future a [`ShopifyClient`] call returns.
pub type AdminFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, ShopifyError>> + Send + 'a>>;

/// The Admin API calls of the webhook job.
pub trait ShopifyClient: Send + Sync + 'static {
    /// The `productType` of product `product_id` of the store of
    /// `credentials` (empty when it has none). A client that cannot be set up
    /// for these credentials answers [`ShopifyError::InvalidConfig`].
    fn product_type<'a>(
        &'a self,
        credentials: &'a OpenedCredentials,
        product_id: u64,
    ) -> AdminFuture<'a, String>;
}

/// The real client: GraphQL over HTTPS with the store's own token.
#[derive(Debug, Clone)]
pub struct AdminApi {
    http: reqwest::Client,
    /// Replaces `https://{shop}` (tests and proxies); `--shopify-api-base`.
    base_url: Option<String>,
}

impl AdminApi {
    /// Calls through `http`, to `base_url` instead of the shop's own domain
    /// when given.
    pub fn new(http: reqwest::Client, base_url: Option<String>) -> Self {
        Self { http, base_url }
    }

    fn client(&self, credentials: &OpenedCredentials) -> Result<AdminClient, ShopifyError> {
        let client = credentials.client(self.http.clone())?;
        Ok(match &self.base_url {
            Some(base) => client.with_base_url(base),
            None => client,
        })
    }
}

impl ShopifyClient for AdminApi {
    fn product_type<'a>(
        &'a self,
        credentials: &'a OpenedCredentials,
        product_id: u64,
    ) -> AdminFuture<'a, String> {
        Box::pin(async move {
            let client = self.client(credentials)?;
            let data = client
                .graphql(
                    "query productType($id: ID!) { product(id: $id) { productType } }",
                    json!({ "id": format!("gid://shopify/Product/{product_id}") }),
                )
                .await?;
            Ok(data
                .pointer("/product/productType")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned())
        })
    }
}
