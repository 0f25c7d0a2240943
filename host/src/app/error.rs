//! The application layer's error: what went wrong in a use case, with the
//! stable code a client or a job log is given. Statuses are the HTTP layer's
//! business (`http::error` maps each variant); this module knows nothing of
//! HTTP. Clone, so one failed load shared by concurrent callers can answer
//! each of them (storage errors are classified on the way in for that).

use crate::resolve::InputError;
use crate::storage::StorageError;

/// What went wrong in a use case.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The thing asked for does not exist (or is another tenant's).
    #[error("{0}")]
    NotFound(String),
    /// The change clashes with stored data or a concurrent change.
    #[error("{0}")]
    Conflict(String),
    /// The input cannot be stored as given.
    #[error("{0}")]
    Invalid(String),
    /// A write would take the tenant's key-value store over its caps.
    #[error("{0}")]
    KvQuotaExceeded(String),
    /// A base configuration that does not load or validate (the served one stays).
    #[error("{0}")]
    InvalidBase(String),
    /// Another plugin version would take the tenant past its storage caps.
    #[error("{0}")]
    PluginStoreFull(String),
    /// The tenant queued as many emails today as it may.
    #[error("{0}")]
    EmailQuotaExceeded(String),
    /// A tenant limit out of its range (the message names it).
    #[error("{0}")]
    InvalidLimit(String),
    /// A tenant name that is empty or too long.
    #[error("{0}")]
    InvalidName(String),
    /// The database cannot serve now; retry shortly.
    #[error("the database is unavailable; retry shortly")]
    DatabaseUnavailable,
    /// The request's input is wrong (a sale, a template name).
    #[error(transparent)]
    Input(#[from] InputError),
    /// The context passed to a render is over its bound.
    #[error(
        "the context holds {bytes} bytes, more than {limit}; pass only the values the template shows"
    )]
    ContextTooLarge {
        /// Bytes given, keys and values together.
        bytes: usize,
        /// The bound.
        limit: usize,
    },
    /// The template does not render with this context.
    #[error("{0}")]
    RenderFailed(String),
    /// A send before the tenant's email settings are set.
    #[error("set the tenant's email settings first: PUT /v1/email/settings")]
    EmailNotConfigured,
    /// The recipient is not one email address (`why` says what is wrong).
    #[error("`to` {why}; give one email address such as ann@example.com")]
    InvalidRecipient {
        /// What is wrong with it.
        why: String,
    },
    /// Release settings that are not a JSON object.
    #[error("{0}")]
    InvalidSettings(String),
    /// Release settings over their size limit.
    #[error("{0}")]
    SettingsTooLarge(String),
    /// An output policy that cannot hold (the message says which part).
    #[error("{0}")]
    InvalidPolicy(String),
    /// Release settings that break the plugin's settings JSON Schema (each
    /// error named by its JSON path).
    #[error(
        "the settings do not match the plugin's settings schema (GET /v1/plugins/<sha256> shows it): {0}"
    )]
    SettingsSchema(veneer_core::settings_schema::SettingsInvalid),
    /// The plugin did not run cleanly with a release's settings on the base.
    #[error("the release is refused: {0}")]
    ReleaseRejected(String),
    /// Activation refused by the shadow gate (the message gives the counts).
    #[error("{0}")]
    ShadowGate(String),
    /// Forcing past the shadow gate without being allowed to, or without a reason.
    #[error("{0}")]
    ForceNotAllowed(String),
    /// Rollout settings out of their bounds (the message names the field).
    #[error("{0}")]
    InvalidRollout(String),
    /// The email settings break a rule (the message names the field).
    #[error("{0}")]
    InvalidEmailSettings(String),
    /// The from name reads as an address (a spoofing device).
    #[error("{0}")]
    InvalidFromName(String),
    /// A tenant's own relay is on a port that is not a submission port.
    #[error("{0}")]
    RelayPortNotAllowed(String),
    /// A tenant's own relay resolves to an address it may not reach.
    #[error("{0}")]
    RelayAddressNotAllowed(String),
    /// A tenant's own relay does not resolve.
    #[error("{0}")]
    RelayUnresolvable(String),
    /// Shopify credentials that cannot be a token or secret.
    #[error("{0}")]
    InvalidCredentials(String),
    /// A shop domain or API version that cannot be a Shopify store's.
    #[error("{0}")]
    InvalidShopifyStore(String),
    /// Shopify did not confirm that the token belongs to the shop.
    #[error("{0}")]
    ShopOwnershipNotProven(String),
    /// Shopify could not be asked; nothing changed.
    #[error("{0}")]
    ShopifyUnavailable(String),
    /// A Shopify install callback that does not prove itself (its HMAC,
    /// state, shop or cookie), or whose grant falls short; nothing stored.
    #[error("{0}")]
    ShopifyInstallRefused(String),
    /// A webhook without a header it must carry.
    #[error("the webhook has no {0} header")]
    WebhookMissingHeader(String),
    /// A webhook header that cannot be what it claims (but the signature's).
    #[error("the {name} header is invalid: {reason}")]
    WebhookInvalidHeader {
        /// The header.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// One answer for an unknown shop, another tenant's shop and a bad
    /// signature: a prober learns nothing about which shops exist.
    #[error("the webhook is not signed by the shop connected to this tenant")]
    WebhookNotAuthenticated,
    /// A signed webhook whose body is not JSON.
    #[error("the webhook body is not JSON")]
    WebhookNotJson,
    /// The server takes no Clerk webhooks (no endpoint secret configured).
    #[error(
        "this server takes no Clerk webhooks: set VENEER_CLERK_WEBHOOK_SECRET to the endpoint's signing secret"
    )]
    ClerkWebhooksDisabled,
    /// A Clerk webhook whose Svix signature, headers or timestamp do not
    /// check out (the message says which).
    #[error("the Clerk webhook is refused: {0}")]
    ClerkWebhookNotAuthenticated(String),
    /// A signed Clerk webhook whose body is not the event its type says.
    #[error("{0}")]
    ClerkEventInvalid(String),
    /// A token issued before its user's membership or role in the tenant's
    /// organisation changed.
    #[error(
        "this token was issued before your membership or role in this organisation changed; get a fresh session token"
    )]
    TokenRevoked,
    /// Every plugin slot of the tenant stayed busy for the whole wait.
    #[error(
        "all of this tenant's plugin slots are busy; retry shortly or ask for a higher concurrency limit"
    )]
    TenantBusy,
    /// The tenant already runs its share of the compile slots.
    #[error("this tenant's earlier uploads are still compiling; retry when they finish")]
    TenantCompileBusy,
    /// Every compile slot of the host stayed busy for the whole wait.
    #[error("every compile slot of the host is busy; retry shortly")]
    HostCompileBusy,
    /// A compile took longer than its limit.
    #[error("compiling the plugin took longer than {secs} s; try a smaller plugin or retry later")]
    CompileTimeout {
        /// The limit, in seconds.
        secs: u64,
    },
    /// A failure of the host itself (the detail is for the log, not a client).
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// The stable code of this error (the same the HTTP API answers with).
    pub fn code(&self) -> &'static str {
        match self {
            Error::NotFound(_) => "not_found",
            Error::Conflict(_) => "conflict",
            Error::Invalid(_) => "invalid",
            Error::KvQuotaExceeded(_) => "kv_quota_exceeded",
            Error::PluginStoreFull(_) => "plugin_store_full",
            Error::InvalidBase(_) => "invalid_base",
            Error::EmailQuotaExceeded(_) => "email_quota_exceeded",
            Error::InvalidLimit(_) => "invalid_limit",
            Error::InvalidName(_) => "invalid_name",
            Error::DatabaseUnavailable => "database_unavailable",
            Error::Input(InputError::UnknownTemplate(_)) => "unknown_template",
            Error::Input(InputError::Sale { .. }) => "invalid_sale",
            Error::ContextTooLarge { .. } => "context_too_large",
            Error::RenderFailed(_) => "render_failed",
            Error::EmailNotConfigured => "email_not_configured",
            Error::InvalidRecipient { .. } => "invalid_recipient",
            Error::InvalidSettings(_) => "invalid_settings",
            Error::SettingsTooLarge(_) => "settings_too_large",
            Error::SettingsSchema(_) => "settings_schema_violation",
            Error::ReleaseRejected(_) => "release_rejected",
            Error::ShadowGate(_) => "shadow_gate",
            Error::ForceNotAllowed(_) => "force_not_allowed",
            Error::InvalidRollout(_) => "invalid_rollout",
            Error::InvalidPolicy(_) => "invalid_policy",
            Error::InvalidEmailSettings(_) => "invalid_email_settings",
            Error::InvalidFromName(_) => "invalid_from_name",
            Error::RelayPortNotAllowed(_) => "relay_port_not_allowed",
            Error::RelayAddressNotAllowed(_) => "relay_address_not_allowed",
            Error::RelayUnresolvable(_) => "relay_unresolvable",
            Error::InvalidCredentials(_) => "invalid_credentials",
            Error::InvalidShopifyStore(_) => "invalid_shopify_store",
            Error::ShopOwnershipNotProven(_) => "shop_ownership_not_proven",
            Error::ShopifyUnavailable(_) => "shopify_unavailable",
            Error::ShopifyInstallRefused(_) => "shopify_install_refused",
            Error::WebhookMissingHeader(_) => "missing_header",
            Error::WebhookInvalidHeader { .. } => "invalid_header",
            Error::WebhookNotAuthenticated => "invalid_webhook",
            Error::WebhookNotJson => "invalid_json",
            Error::ClerkWebhooksDisabled => "clerk_webhooks_disabled",
            Error::ClerkWebhookNotAuthenticated(_) => "invalid_clerk_webhook",
            Error::ClerkEventInvalid(_) => "invalid_json",
            Error::TokenRevoked => "token_revoked",
            Error::TenantBusy => "tenant_busy",
            Error::TenantCompileBusy | Error::HostCompileBusy => "compile_busy",
            Error::CompileTimeout { .. } => "compile_timeout",
            Error::Internal(_) => "internal",
        }
    }

    /// A failure of the host itself.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Error::Internal(detail.to_string())
    }
}

impl From<StorageError> for Error {
    fn from(err: StorageError) -> Self {
        match err {
            StorageError::NotFound(what) => Error::NotFound(what),
            StorageError::Conflict(what) => Error::Conflict(what),
            StorageError::Invalid(what) => Error::Invalid(what),
            StorageError::KvQuotaExceeded(what) => Error::KvQuotaExceeded(what),
            StorageError::PluginStoreFull(what) => Error::PluginStoreFull(what),
            StorageError::Unavailable(detail) => {
                tracing::warn!(%detail, "database unavailable");
                Error::DatabaseUnavailable
            }
            other => Error::Internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_errors_keep_their_codes_and_hide_database_detail() {
        let err = Error::from(StorageError::Unavailable(
            "pool timed out at 10.0.0.3".into(),
        ));
        assert_eq!(err.code(), "database_unavailable");
        assert!(!err.to_string().contains("10.0.0.3"), "{err}");
        assert_eq!(
            Error::from(StorageError::KvQuotaExceeded("full".into())).code(),
            "kv_quota_exceeded"
        );
        assert_eq!(
            Error::from(StorageError::NotFound("x".into())).code(),
            "not_found"
        );
    }
}
