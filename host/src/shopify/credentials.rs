//! A store's credentials between storage and use: sealed with the tenant and
//! the field as associated data (a ciphertext moved to another tenant's row,
//! or from the token column to the secret column, does not open), opened only
//! to call Shopify or check a webhook, and re-encrypted on key rotation.

use axum::http::HeaderMap;
use zeroize::Zeroizing;

use super::webhook::{WebhookError, WebhookHeaders, parse_webhook_headers, verify_webhook};
use super::{AdminClient, ShopifyError};
use crate::secrets::{SecretBox, SecretsError};
use crate::storage::{PlatformDb, ShopifyStoreRecord, ShopifyStoredCredentials, Storage};
use crate::tenancy::TenantId;

/// The associated data binding an access token to its tenant and field.
pub fn access_token_aad(tenant: &TenantId) -> String {
    format!("{tenant}/shopify/access_token")
}

/// The associated data binding an app secret to its tenant and field.
pub fn app_secret_aad(tenant: &TenantId) -> String {
    format!("{tenant}/shopify/app_secret")
}

/// Encrypts a store's access token and app secret for `tenant`, as
/// `(access_token_enc, app_secret_enc)` for `TenantDb::connect_shopify`.
pub fn seal_credentials(
    secrets: &SecretBox,
    tenant: &TenantId,
    access_token: &str,
    app_secret: &str,
) -> (String, String) {
    (
        secrets.encrypt(access_token.as_bytes(), &access_token_aad(tenant)),
        secrets.encrypt(app_secret.as_bytes(), &app_secret_aad(tenant)),
    )
}

/// What is needed to call a store's Admin API. The token is wiped on drop
/// and never shown by `Debug`.
pub struct OpenedCredentials {
    pub shop_domain: String,
    pub api_version: String,
    pub access_token: Zeroizing<String>,
}

impl std::fmt::Debug for OpenedCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedCredentials")
            .field("shop_domain", &self.shop_domain)
            .field("api_version", &self.api_version)
            .finish_non_exhaustive()
    }
}

impl OpenedCredentials {
    /// An Admin API client with these credentials.
    pub fn client(&self, http: reqwest::Client) -> Result<AdminClient, ShopifyError> {
        AdminClient::new(
            http,
            &self.shop_domain,
            &self.access_token,
            &self.api_version,
        )
    }
}

/// Opens `tenant`'s access token. [`ShopifyError::NotConnected`] if the store
/// is disabled or its token was wiped.
pub fn open_credentials(
    secrets: &SecretBox,
    tenant: &TenantId,
    store: &ShopifyStoreRecord,
) -> Result<OpenedCredentials, ShopifyError> {
    let sealed = match (&store.access_token_enc, store.enabled) {
        (Some(sealed), true) => sealed,
        _ => return Err(ShopifyError::NotConnected),
    };
    let plain = secrets.decrypt(sealed, &access_token_aad(tenant))?;
    let token = String::from_utf8(plain.to_vec())
        .map_err(|_| SecretsError::Malformed("the decrypted access token is not UTF-8".into()))?;
    Ok(OpenedCredentials {
        shop_domain: store.shop_domain.clone(),
        api_version: store.api_version.clone(),
        access_token: Zeroizing::new(token),
    })
}

/// A webhook whose signature checked out under its tenant's app secret.
#[derive(Debug, Clone)]
pub struct VerifiedWebhook {
    pub tenant: TenantId,
    pub headers: WebhookHeaders,
    /// Whether the store is enabled. A disabled (uninstalled) store still has
    /// its app secret, so its webhooks verify; jobs should only act on
    /// `app/uninstalled` and privacy topics for it.
    pub store_enabled: bool,
}

/// Parses the headers, finds the shop's tenant and checks the signature over
/// `raw_body` (the bytes as received, before any parsing) with that tenant's
/// own app secret. It does not record the webhook id: the caller does, next
/// to enqueueing the job. A shop that was released by one tenant and
/// connected by another is found as the tenant holding it now.
pub async fn authenticate_webhook(
    storage: &Storage,
    secrets: &SecretBox,
    headers: &HeaderMap,
    raw_body: &[u8],
) -> Result<VerifiedWebhook, WebhookError> {
    let headers = parse_webhook_headers(headers)?;
    let tenant = storage
        .platform()
        .tenant_by_shop_domain(&headers.shop_domain)
        .await?
        .ok_or(WebhookError::UnknownShop)?;
    verify_for(storage, secrets, tenant, headers, raw_body).await
}

/// [`authenticate_webhook`] for a delivery made to `tenant`'s host: the shop
/// must be the one `tenant` has (or last had) connected, and the signature
/// must check out with `tenant`'s app secret. No other tenant's store is
/// looked at, so the answer is the same whoever else holds the shop.
pub async fn authenticate_webhook_for(
    storage: &Storage,
    secrets: &SecretBox,
    tenant: &TenantId,
    headers: &HeaderMap,
    raw_body: &[u8],
) -> Result<VerifiedWebhook, WebhookError> {
    let headers = parse_webhook_headers(headers)?;
    verify_for(storage, secrets, tenant.clone(), headers, raw_body).await
}

async fn verify_for(
    storage: &Storage,
    secrets: &SecretBox,
    tenant: TenantId,
    headers: WebhookHeaders,
    raw_body: &[u8],
) -> Result<VerifiedWebhook, WebhookError> {
    let store = storage
        .tenant(&tenant)
        .shopify_store()
        .await?
        .filter(|store| store.shop_domain.eq_ignore_ascii_case(&headers.shop_domain))
        .ok_or(WebhookError::UnknownShop)?;
    let sealed = store
        .app_secret_enc
        .as_deref()
        .ok_or(WebhookError::NotConnected)?;
    let secret = secrets.decrypt(sealed, &app_secret_aad(&tenant))?;
    if !verify_webhook(&secret, raw_body, &headers.hmac_b64) {
        return Err(WebhookError::BadSignature);
    }
    Ok(VerifiedWebhook {
        tenant,
        headers,
        store_enabled: store.enabled,
    })
}

/// What a key rotation did.
#[derive(Debug, Default)]
pub struct RotationReport {
    /// Stores whose credentials were re-encrypted under the current key.
    pub rotated: u64,
    /// Stores already entirely under the current key (or without credentials).
    pub unchanged: u64,
    /// Stores whose credentials changed during the run (a reconnect): run again.
    pub raced: u64,
    /// Stores whose credentials could not be opened, with why: their tenants
    /// must reconnect (or the missing old key be configured).
    pub failed: Vec<(TenantId, SecretsError)>,
}

/// Re-encrypts every store's credentials that are not under `secrets`'
/// current key. Safe to run while serving, and again: a store reconnected
/// meanwhile keeps its new credentials.
pub async fn rotate_credentials(
    platform: &PlatformDb,
    secrets: &SecretBox,
) -> Result<RotationReport, ShopifyError> {
    const PAGE: u32 = 100;
    let mut report = RotationReport::default();
    let mut after: Option<TenantId> = None;
    loop {
        let page = platform
            .shopify_stores_for_rotation(after.as_ref(), PAGE)
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.tenant.clone());
        for old in &page {
            let fresh = (|| {
                let token = old
                    .access_token_enc
                    .as_deref()
                    .map(|v| secrets.reencrypt(v, &access_token_aad(&old.tenant)))
                    .transpose()?
                    .flatten();
                let secret = old
                    .app_secret_enc
                    .as_deref()
                    .map(|v| secrets.reencrypt(v, &app_secret_aad(&old.tenant)))
                    .transpose()?
                    .flatten();
                Ok::<_, SecretsError>((token, secret))
            })();
            match fresh {
                Err(e) => {
                    tracing::warn!(tenant = %old.tenant, error = %e, "cannot re-encrypt Shopify credentials");
                    report.failed.push((old.tenant.clone(), e));
                }
                Ok((None, None)) => report.unchanged += 1,
                Ok((token, secret)) => {
                    let new = ShopifyStoredCredentials {
                        tenant: old.tenant.clone(),
                        access_token_enc: token.or_else(|| old.access_token_enc.clone()),
                        app_secret_enc: secret.or_else(|| old.app_secret_enc.clone()),
                    };
                    if platform.replace_shopify_credentials(old, &new).await? {
                        report.rotated += 1;
                    } else {
                        report.raced += 1;
                    }
                }
            }
        }
        if page.len() < PAGE as usize {
            break;
        }
    }
    Ok(report)
}
