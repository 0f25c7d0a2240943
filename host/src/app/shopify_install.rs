//! Installing a tenant's Shopify app on a shop: OAuth's authorization code
//! grant, the way Shopify documents it for apps.
//!
//! 1. A tenant admin sets the tenant's app (`client_id`, `client_secret`,
//!    the scopes it asks for): [`set_app`].
//! 2. They start an install for a shop ([`start`]): a single-use `state` is
//!    stored (bound to tenant and shop, ten minutes), signed with a key derived
//!    from the secrets key, and also set as a cookie on the admin's browser;
//!    the browser goes to the shop's authorize page.
//! 3. Shopify sends the browser back to the tenant's host ([`finish`]): the
//!    query's HMAC (the app's client secret over the sorted parameters), the
//!    `state` (signature, stored and unused, the same shop, the cookie), the
//!    shop name (`<name>.myshopify.com` only) and the timestamp must all hold;
//!    then the code is exchanged for the access token at the shop, the granted
//!    scopes must cover the asked ones, and the store is connected with the
//!    token sealed. Ownership of the shop is proven by construction: only the
//!    shop's own admin could approve the grant.
//!
//! After an install the shop's webhook subscriptions are synced by a job
//! ([`super::shopify_webhooks`]). Re-installing replaces the token (and the
//! granted scopes); asking for more scopes is a new install. The manual path (`PUT /v1/shopify` with a custom
//! app's token, ownership proven by the Admin API) stays.

use std::collections::BTreeMap;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::{Error, Result};
use crate::shopify::seal_credentials;
use crate::state::AppState;
use crate::storage::ShopifyStoreRecord;
use crate::tenancy::TenantId;

/// The cookie that binds an install to the browser that started it.
pub const COOKIE: &str = "veneer_shopify_install";
/// How long an install may take, start to callback.
pub const STATE_TTL: Duration = Duration::from_secs(600);
/// How old a callback's `timestamp` may be.
const CALLBACK_MAX_AGE_SECS: i64 = 600;
/// The Admin API version a store installed here is called with.
const API_VERSION: &str = "2025-10";
/// At most this long for the token exchange.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(15);

type HmacSha256 = Hmac<Sha256>;

/// What a tenant admin gives to set the tenant's app.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppSettings {
    /// The app's client id (API key).
    pub client_id: String,
    /// The app's client secret (API secret key), in clear; stored sealed.
    pub client_secret: String,
    /// The access scopes to ask for, e.g. `["read_products", "read_orders"]`.
    pub scopes: Vec<String>,
}

/// The tenant's app as shown (never the secret).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AppView {
    pub client_id: String,
    pub scopes: Vec<String>,
    pub updated_at: i64,
}

fn split_scopes(scopes: &str) -> Vec<String> {
    scopes
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Sets `tenant`'s Shopify app (audited as `actor`).
pub async fn set_app(
    app: &AppState,
    tenant: &TenantId,
    actor: &str,
    settings: AppSettings,
) -> Result<AppView> {
    let visible = |field: &str, value: &str, max: usize| {
        if value.is_empty() || value.len() > max || value.chars().any(char::is_control) {
            Err(Error::InvalidCredentials(format!(
                "{field} must be 1 to {max} visible characters"
            )))
        } else {
            Ok(())
        }
    };
    visible("client_id", &settings.client_id, 128)?;
    visible("client_secret", &settings.client_secret, 512)?;
    if settings.scopes.is_empty() || settings.scopes.len() > 64 {
        return Err(Error::Invalid(
            "scopes: give 1 to 64 access scopes, e.g. [\"read_products\"]".into(),
        ));
    }
    for scope in &settings.scopes {
        let ok = !scope.is_empty()
            && scope.len() <= 64
            && scope
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !ok {
            return Err(Error::Invalid(format!(
                "scope `{}` is not a Shopify access scope (lowercase letters, digits and `_`, \
                 e.g. read_products)",
                scope.chars().take(64).collect::<String>()
            )));
        }
    }
    let sealed = app.secrets.encrypt(
        settings.client_secret.as_bytes(),
        &client_secret_aad(tenant),
    );
    let scopes = settings.scopes.join(",");
    let db = app.storage.tenant(tenant);
    let record = db
        .put_shopify_app(&settings.client_id, &sealed, &scopes)
        .await?;
    let after = serde_json::json!({ "client_id": record.client_id, "scopes": scopes }).to_string();
    db.audit(actor, "shopify.app", None, None, Some(&after))
        .await?;
    Ok(AppView {
        client_id: record.client_id,
        scopes: split_scopes(&record.scopes),
        updated_at: record.updated_at,
    })
}

/// `tenant`'s Shopify app, if it set one.
pub async fn app_view(app: &AppState, tenant: &TenantId) -> Result<Option<AppView>> {
    Ok(app
        .storage
        .tenant(tenant)
        .shopify_app()
        .await?
        .map(|r| AppView {
            client_id: r.client_id,
            scopes: split_scopes(&r.scopes),
            updated_at: r.updated_at,
        }))
}

/// The associated data binding a client secret to its tenant.
pub fn client_secret_aad(tenant: &TenantId) -> String {
    format!("{tenant}/shopify/client_secret")
}

/// An install started: where to send the browser, and the cookie to set.
#[derive(Debug)]
pub struct Started {
    pub authorize_url: String,
    /// The cookie's value (the state's nonce).
    pub nonce: String,
}

/// Starts installing `tenant`'s app on `shop`; `redirect_uri` is the tenant
/// host's callback as the browser reaches it.
pub async fn start(
    app: &AppState,
    tenant: &TenantId,
    shop: &str,
    redirect_uri: &str,
) -> Result<Started> {
    let db = app.storage.tenant(tenant);
    let record = db.shopify_app().await?.ok_or_else(|| {
        Error::Conflict(
            "set the tenant's Shopify app first: PUT /v1/shopify/app with its client id, \
             client secret and scopes"
                .into(),
        )
    })?;
    let shop = shop.trim().trim_end_matches('.').to_ascii_lowercase();
    let nonce = hex::encode(rand::random::<[u8; 16]>());
    let expires_at =
        super::jobs::now_ms() + i64::try_from(STATE_TTL.as_millis()).unwrap_or(i64::MAX);
    db.begin_shopify_install(&nonce, &shop, expires_at).await?;
    let state = format!("{nonce}.{}", sign_state(app, tenant, &shop, &nonce));
    let mut url = reqwest::Url::parse(&format!("{}/admin/oauth/authorize", shop_base(app, &shop)))
        .map_err(|err| Error::InvalidShopifyStore(format!("the shop's address: {err}")))?;
    url.query_pairs_mut()
        .append_pair("client_id", &record.client_id)
        .append_pair("scope", &record.scopes)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("state", &state);
    Ok(Started {
        authorize_url: url.to_string(),
        nonce,
    })
}

/// Where a shop's OAuth and Admin API endpoints are (`--shopify-api-base`
/// replaces it for tests and proxies).
fn shop_base(app: &AppState, shop: &str) -> String {
    match &app.config.shopify_api_base {
        Some(base) => base.trim_end_matches('/').to_owned(),
        None => format!("https://{shop}"),
    }
}

fn state_key(app: &AppState) -> [u8; 32] {
    app.secrets.derive_key("veneer:shopify-install:v1")
}

fn sign_state(app: &AppState, tenant: &TenantId, shop: &str, nonce: &str) -> String {
    let mut mac =
        HmacSha256::new_from_slice(&state_key(app)).expect("HMAC takes a key of any length");
    mac.update(format!("{tenant}|{shop}|{nonce}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn refused(why: impl Into<String>) -> Error {
    Error::ShopifyInstallRefused(why.into())
}

/// Finishes an install on Shopify's callback to `tenant`'s host: `query` is
/// the callback's parameters, `cookie` the install cookie the browser sent.
/// Audited as `shopify.install`.
pub async fn finish(
    app: &AppState,
    tenant: &TenantId,
    query: &BTreeMap<String, String>,
    cookie: Option<&str>,
) -> Result<ShopifyStoreRecord> {
    let param = |name: &str| {
        query
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| refused(format!("the callback has no `{name}`")))
    };
    let (code, hmac, shop, state, timestamp) = (
        param("code")?,
        param("hmac")?,
        param("shop")?,
        param("state")?,
        param("timestamp")?,
    );
    let db = app.storage.tenant(tenant);
    let record = db
        .shopify_app()
        .await?
        .ok_or_else(|| refused("this tenant has no Shopify app set"))?;
    let secret = app
        .secrets
        .decrypt(&record.client_secret_enc, &client_secret_aad(tenant))
        .map_err(|err| Error::Internal(format!("the stored client secret does not open: {err}")))?;
    // Shopify's HMAC first: nothing else is looked at for a forged callback.
    if !query_hmac_matches(query, hmac, &secret) {
        return Err(refused(
            "the callback's hmac is not Shopify's for this app: start the install again",
        ));
    }
    let fresh = timestamp
        .parse::<i64>()
        .is_ok_and(|at| (super::jobs::now_ms() / 1_000 - at).abs() <= CALLBACK_MAX_AGE_SECS);
    if !fresh {
        return Err(refused("the callback is too old: start the install again"));
    }
    let (nonce, signature) = state
        .split_once('.')
        .ok_or_else(|| refused("the callback's state is not one this host issued"))?;
    let shop = shop.to_ascii_lowercase();
    if !constant_eq(signature, &sign_state(app, tenant, &shop, nonce)) {
        return Err(refused(
            "the callback's state was not issued to this tenant for this shop",
        ));
    }
    if !cookie.is_some_and(|c| constant_eq(c, nonce)) {
        return Err(refused(
            "this browser did not start the install: finish it in the browser that began it",
        ));
    }
    let started_for = db
        .take_shopify_install(nonce)
        .await?
        .ok_or_else(|| refused("the install's state was used already or expired: start again"))?;
    if started_for != shop {
        return Err(refused("the callback names another shop than the install"));
    }
    let (token, granted) = exchange(app, &shop, &record.client_id, &secret, code).await?;
    let wanted = split_scopes(&record.scopes);
    let missing: Vec<&String> = wanted.iter().filter(|s| !covers(&granted, s)).collect();
    if !missing.is_empty() {
        return Err(refused(format!(
            "Shopify granted {} but the app asks for {}: nothing was connected; install again \
             and approve every scope",
            if granted.is_empty() {
                "no scope".to_owned()
            } else {
                granted.join(",")
            },
            missing
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(",")
        )));
    }
    let secret = String::from_utf8(secret.to_vec())
        .map_err(|_| Error::Internal("the stored client secret is not text".into()))?;
    let (token_enc, secret_enc) = seal_credentials(&app.secrets, tenant, &token, &secret);
    let store = db
        .connect_shopify_with_scopes(
            &shop,
            &token_enc,
            &secret_enc,
            API_VERSION,
            Some(&granted.join(",")),
        )
        .await?;
    let after = serde_json::json!({
        "shop_domain": store.shop_domain,
        "scopes": store.scopes,
    })
    .to_string();
    db.audit(
        "shopify-install",
        "shopify.install",
        None,
        None,
        Some(&after),
    )
    .await?;
    // The shop's webhook subscriptions, in the background (retried): the
    // install is done whatever Shopify answers to those calls.
    if let Err(err) = super::shopify_webhooks::queue_sync(app, tenant).await {
        tracing::warn!(%tenant, error = %err, "could not queue the webhook subscription sync");
    }
    Ok(store)
}

/// Whether `tenant`'s app asks for a scope its installed store was not
/// granted (the app's scopes changed since the install): a new install asks
/// the merchant for them. False for a store connected with a pasted token.
pub async fn reinstall_needed(
    app: &AppState,
    tenant: &TenantId,
    store: Option<&ShopifyStoreRecord>,
) -> Result<bool> {
    let Some(granted) = store
        .filter(|s| s.enabled)
        .and_then(|s| s.scopes.as_deref())
    else {
        return Ok(false);
    };
    let Some(record) = app.storage.tenant(tenant).shopify_app().await? else {
        return Ok(false);
    };
    let granted = split_scopes(granted);
    Ok(split_scopes(&record.scopes)
        .iter()
        .any(|s| !covers(&granted, s)))
}

/// Whether the granted scopes give `scope` (a `write_` scope implies its
/// `read_`).
fn covers(granted: &[String], scope: &str) -> bool {
    granted.iter().any(|g| g == scope)
        || scope
            .strip_prefix("read_")
            .is_some_and(|rest| granted.iter().any(|g| g == &format!("write_{rest}")))
}

/// Shopify's callback HMAC: hex HMAC-SHA256 with the client secret over the
/// other parameters, sorted, as `key=value` joined by `&`.
fn query_hmac_matches(query: &BTreeMap<String, String>, given: &str, secret: &[u8]) -> bool {
    let message = query
        .iter()
        .filter(|(k, _)| k.as_str() != "hmac" && k.as_str() != "signature")
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let Ok(given) = hex::decode(given) else {
        return false;
    };
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(message.as_bytes());
    mac.verify_slice(&given).is_ok()
}

fn constant_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Exchanges the code at the shop for the access token and granted scopes.
async fn exchange(
    app: &AppState,
    shop: &str,
    client_id: &str,
    secret: &[u8],
    code: &str,
) -> Result<(String, Vec<String>)> {
    #[derive(Deserialize)]
    struct Granted {
        access_token: String,
        #[serde(default)]
        scope: String,
    }
    let unavailable = |why: String| {
        tracing::warn!(shop, error = %why, "the Shopify token exchange failed");
        Error::ShopifyUnavailable(format!(
            "Shopify did not give the access token for `{shop}`; nothing was connected: start \
             the install again"
        ))
    };
    let response = app
        .http
        .post(format!("{}/admin/oauth/access_token", shop_base(app, shop)))
        .timeout(EXCHANGE_TIMEOUT)
        .json(&serde_json::json!({
            "client_id": client_id,
            "client_secret": String::from_utf8_lossy(secret),
            "code": code,
        }))
        .send()
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let status = response.status();
    if status.is_client_error() {
        return Err(refused(format!(
            "Shopify refused the code (HTTP {}): it was used already or is not this app's; \
             start the install again",
            status.as_u16()
        )));
    }
    if !status.is_success() {
        return Err(unavailable(format!("HTTP {status}")));
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    if body.len() > 64 << 10 {
        return Err(unavailable("an answer over 64 KiB".into()));
    }
    let granted: Granted =
        serde_json::from_slice(&body).map_err(|e| unavailable(format!("its answer: {e}")))?;
    if granted.access_token.is_empty() || granted.access_token.len() > 512 {
        return Err(unavailable("an access token of no or odd length".into()));
    }
    Ok((granted.access_token, split_scopes(&granted.scope)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_scopes_cover_their_reads() {
        let granted = vec!["write_products".to_owned(), "read_orders".to_owned()];
        assert!(covers(&granted, "read_products"));
        assert!(covers(&granted, "write_products"));
        assert!(covers(&granted, "read_orders"));
        assert!(!covers(&granted, "write_orders"));
    }

    #[test]
    fn the_callback_hmac_is_over_the_sorted_other_parameters() {
        // Shopify's documented example shape: hex HMAC-SHA256 of `k=v&…`.
        let query: BTreeMap<String, String> = [
            ("shop", "demo.myshopify.com"),
            ("code", "abc"),
            ("timestamp", "1700000000"),
            ("state", "n.s"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let mut mac = HmacSha256::new_from_slice(b"secret").unwrap();
        mac.update(b"code=abc&shop=demo.myshopify.com&state=n.s&timestamp=1700000000");
        let hmac = hex::encode(mac.finalize().into_bytes());
        assert!(query_hmac_matches(&query, &hmac, b"secret"));
        assert!(!query_hmac_matches(&query, &hmac, b"other"));
        let mut tampered = query.clone();
        tampered.insert("shop".into(), "evil.myshopify.com".into());
        assert!(!query_hmac_matches(&tampered, &hmac, b"secret"));
        assert!(!query_hmac_matches(&query, "not-hex", b"secret"));
    }
}
