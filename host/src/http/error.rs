//! The one error type of the HTTP API. Every error has a status, a stable code
//! and a message saying what to fix, rendered as `{"error":{"code","message"}}`.
//! The codes are the variants of [`Code`], each naming its status and its
//! string: a handler picks one and cannot invent another (the list is
//! documented once, in `docs/api.md`, and a test keeps the two in step).
//! Errors of the layers below (`app`, `storage`, `auth`, `runtime`'s checks)
//! are mapped here, and only here. Server-side failures are logged with their
//! detail and answered with a generic message: internals never reach a client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::app::Error as AppError;
use crate::auth::AuthError;
use crate::resolve::InputError;
use crate::runtime::CheckError;
use crate::storage::StorageError;

macro_rules! codes {
    ($( $(#[doc = $doc:literal])* $variant:ident => $status:ident $code:literal, )*) => {
        /// Every error the API answers with: its stable code and its status.
        /// One code may come with two statuses (two variants), never the
        /// reverse.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Code {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl Code {
            /// Every variant.
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            /// The stable code clients match on.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code,)* }
            }

            /// The status it is answered with.
            pub fn status(self) -> StatusCode {
                match self { $(Code::$variant => StatusCode::$status,)* }
            }
        }
    };
}

codes! {
    /// No route has this path.
    NoRoute => NOT_FOUND "no_route",
    /// The route does not take this method.
    MethodNotAllowed => METHOD_NOT_ALLOWED "method_not_allowed",
    /// The request ran past the server's time limit.
    RequestTimeout => SERVICE_UNAVAILABLE "request_timeout",
    /// The server failed; the detail is in its log.
    Internal => INTERNAL_SERVER_ERROR "internal",
    /// The thing asked for does not exist (or is another tenant's).
    NotFound => NOT_FOUND "not_found",
    /// The caller may not do this.
    Forbidden => FORBIDDEN "forbidden",
    /// The tenant is over its request rate.
    RateLimited => TOO_MANY_REQUESTS "rate_limited",
    /// No tenant is served at the request's host (or the route is the platform's).
    UnknownHost => NOT_FOUND "unknown_host",
    /// More than one Host header.
    DuplicateHost => BAD_REQUEST "duplicate_host",
    /// The Host header is not ASCII.
    InvalidHost => BAD_REQUEST "invalid_host",
    /// HTTP/2 `:authority` and Host disagree.
    ConflictingHost => BAD_REQUEST "conflicting_host",
    /// The request names no host.
    MissingHost => BAD_REQUEST "missing_host",
    /// The tenant is suspended.
    TenantSuspended => FORBIDDEN "tenant_suspended",
    /// The tenant is deleted (restorable until its purge, gone after).
    TenantDeleted => GONE "tenant_deleted",
    /// No bearer token.
    MissingToken => UNAUTHORIZED "missing_token",
    /// The token (or the Authorization header) is not a well-formed JWT.
    MalformedToken => UNAUTHORIZED "malformed_token",
    /// The token's algorithm is not accepted.
    AlgorithmNotAllowed => UNAUTHORIZED "algorithm_not_allowed",
    /// No configured key has the token's key id.
    UnknownKey => UNAUTHORIZED "unknown_key",
    /// The signature does not verify.
    BadSignature => UNAUTHORIZED "bad_signature",
    /// The token has expired.
    Expired => UNAUTHORIZED "expired",
    /// The token's lifetime is over the server's maximum.
    TokenLifetimeTooLong => UNAUTHORIZED "token_lifetime_too_long",
    /// The token is not valid yet.
    NotYetValid => UNAUTHORIZED "not_yet_valid",
    /// The token's issuer is not the configured one.
    WrongIssuer => UNAUTHORIZED "wrong_issuer",
    /// The token's authorised party is not allowed.
    UnauthorizedParty => UNAUTHORIZED "unauthorized_party",
    /// The token lacks a required claim.
    MissingClaim => UNAUTHORIZED "missing_claim",
    /// The identity provider's keys could not be fetched.
    KeysUnavailable => SERVICE_UNAVAILABLE "keys_unavailable",
    /// The token's organisation is not the host's tenant.
    WrongTenant => FORBIDDEN "wrong_tenant",
    /// The token's role does not allow the route.
    InsufficientRole => FORBIDDEN "insufficient_role",
    /// The body is not the JSON the route takes.
    InvalidJson => BAD_REQUEST "invalid_json",
    /// The body is not declared as JSON.
    InvalidJsonType => UNSUPPORTED_MEDIA_TYPE "invalid_json",
    /// The body is over the server's size limit.
    BodyTooLarge => PAYLOAD_TOO_LARGE "body_too_large",
    /// The body could not be read.
    BadBody => BAD_REQUEST "bad_body",
    /// The query string does not parse as the route's parameters.
    InvalidQuery => BAD_REQUEST "invalid_query",
    /// A query's `state` is not a job state.
    InvalidState => BAD_REQUEST "invalid_state",
    /// A plugin is not named by a lowercase hex sha256.
    InvalidSha256 => BAD_REQUEST "invalid_sha256",
    /// Tenant settings are not a JSON object.
    InvalidSettings => BAD_REQUEST "invalid_settings",
    /// Tenant settings are over their size limit.
    SettingsTooLarge => PAYLOAD_TOO_LARGE "settings_too_large",
    /// Release settings break the plugin's settings JSON Schema; `details`
    /// lists each error with its JSON path.
    SettingsSchemaViolation => UNPROCESSABLE_ENTITY "settings_schema_violation",
    /// An output policy that cannot hold or is not one.
    InvalidPolicy => BAD_REQUEST "invalid_policy",
    /// An installation name that cannot be one.
    InvalidInstallation => BAD_REQUEST "invalid_installation",
    /// A release id that is not a positive number.
    InvalidReleaseId => BAD_REQUEST "invalid_release_id",
    /// The plugin did not run cleanly with a release's settings on the base.
    ReleaseRejected => UNPROCESSABLE_ENTITY "release_rejected",
    /// A release without enough clean shadow calls for the gate.
    ShadowGate => CONFLICT "shadow_gate",
    /// Forcing past the shadow gate needs a platform admin and a reason.
    ForceNotAllowed => FORBIDDEN "force_not_allowed",
    /// Rollout settings out of their bounds.
    InvalidRollout => BAD_REQUEST "invalid_rollout",
    /// A key-value key is empty, too long or has control characters.
    InvalidKey => BAD_REQUEST "invalid_key",
    /// A key-value value is over 64 KiB.
    ValueTooLarge => PAYLOAD_TOO_LARGE "value_too_large",
    /// The change clashes with stored data or a concurrent change.
    Conflict => CONFLICT "conflict",
    /// The input cannot be stored as given.
    Invalid => BAD_REQUEST "invalid",
    /// A write would take the tenant's key-value store over its caps.
    KvQuotaExceeded => CONFLICT "kv_quota_exceeded",
    /// Another plugin version would take the tenant past its storage caps.
    PluginStoreFull => CONFLICT "plugin_store_full",
    /// A base configuration that does not load or validate.
    InvalidBase => UNPROCESSABLE_ENTITY "invalid_base",
    /// The tenant queued as many emails today as it may.
    EmailQuotaExceeded => TOO_MANY_REQUESTS "email_quota_exceeded",
    /// The database cannot serve now.
    DatabaseUnavailable => SERVICE_UNAVAILABLE "database_unavailable",
    /// No email template has this id.
    UnknownTemplate => NOT_FOUND "unknown_template",
    /// The sale is malformed.
    InvalidSale => UNPROCESSABLE_ENTITY "invalid_sale",
    /// A render's context is over its bound.
    ContextTooLarge => BAD_REQUEST "context_too_large",
    /// The template does not render with this context.
    RenderFailed => UNPROCESSABLE_ENTITY "render_failed",
    /// Every plugin slot of the tenant stayed busy.
    TenantBusy => SERVICE_UNAVAILABLE "tenant_busy",
    /// The tenant's earlier uploads are still compiling.
    CompileBusy => TOO_MANY_REQUESTS "compile_busy",
    /// Every compile slot of the host stayed busy.
    HostCompileBusy => SERVICE_UNAVAILABLE "compile_busy",
    /// Compiling took longer than the compile timeout.
    CompileTimeout => SERVICE_UNAVAILABLE "compile_timeout",
    /// An empty plugin upload.
    EmptyFile => UNPROCESSABLE_ENTITY "empty_file",
    /// A plugin over the size limit.
    TooLarge => PAYLOAD_TOO_LARGE "too_large",
    /// A core module, not a component.
    CoreModule => UNPROCESSABLE_ENTITY "core_module",
    /// Not WebAssembly.
    NotWasm => UNPROCESSABLE_ENTITY "not_wasm",
    /// A component that does not validate.
    InvalidComponent => UNPROCESSABLE_ENTITY "invalid_component",
    /// A component importing something the host does not give.
    ForbiddenImport => UNPROCESSABLE_ENTITY "forbidden_import",
    /// A component of another world.
    WrongWorld => UNPROCESSABLE_ENTITY "wrong_world",
    /// A component over a structural bound.
    TooComplex => UNPROCESSABLE_ENTITY "too_complex",
    /// The component's `describe` failed.
    DescribeFailed => UNPROCESSABLE_ENTITY "describe_failed",
    /// The plugin's settings schema is not valid JSON Schema or too large.
    InvalidSettingsSchema => UNPROCESSABLE_ENTITY "invalid_settings_schema",
    /// Email settings break a rule.
    InvalidEmailSettings => UNPROCESSABLE_ENTITY "invalid_email_settings",
    /// The sender's display name reads as an address.
    InvalidFromName => BAD_REQUEST "invalid_from_name",
    /// A custom relay's port is not allowed.
    RelayPortNotAllowed => BAD_REQUEST "relay_port_not_allowed",
    /// A custom relay resolves to an internal address.
    RelayAddressNotAllowed => BAD_REQUEST "relay_address_not_allowed",
    /// A custom relay's name does not resolve.
    RelayUnresolvable => BAD_REQUEST "relay_unresolvable",
    /// A send before the tenant's email settings are set.
    EmailNotConfigured => CONFLICT "email_not_configured",
    /// The recipient is not one email address.
    InvalidRecipient => BAD_REQUEST "invalid_recipient",
    /// The server takes no bounce reports.
    BouncesDisabled => NOT_FOUND "bounces_disabled",
    /// A bounce report without the right token.
    InvalidBounceToken => UNAUTHORIZED "invalid_bounce_token",
    /// A bounce report that cannot be read.
    InvalidBounce => UNPROCESSABLE_ENTITY "invalid_bounce",
    /// Shopify credentials are empty or too long.
    InvalidCredentials => BAD_REQUEST "invalid_credentials",
    /// The shop domain or store settings are invalid.
    InvalidShopifyStore => BAD_REQUEST "invalid_shopify_store",
    /// Shopify did not confirm the token is the shop's.
    ShopOwnershipNotProven => UNPROCESSABLE_ENTITY "shop_ownership_not_proven",
    /// Shopify could not be asked.
    ShopifyUnavailable => SERVICE_UNAVAILABLE "shopify_unavailable",
    /// A Shopify install callback that does not prove itself, or a grant
    /// short of the app's scopes.
    ShopifyInstallRefused => FORBIDDEN "shopify_install_refused",
    /// A webhook not signed by the tenant's shop.
    InvalidWebhook => UNAUTHORIZED "invalid_webhook",
    /// A webhook without a required header.
    MissingHeader => BAD_REQUEST "missing_header",
    /// A webhook with an invalid header.
    InvalidHeader => BAD_REQUEST "invalid_header",
    /// The server takes no Clerk webhooks.
    ClerkWebhooksDisabled => NOT_FOUND "clerk_webhooks_disabled",
    /// A Clerk webhook not signed with the endpoint secret, or too old.
    InvalidClerkWebhook => UNAUTHORIZED "invalid_clerk_webhook",
    /// A token issued before its user's membership or role changed.
    TokenRevoked => UNAUTHORIZED "token_revoked",
    /// A tenant id that is not one.
    InvalidTenantId => BAD_REQUEST "invalid_tenant_id",
    /// A limit out of range.
    InvalidLimit => BAD_REQUEST "invalid_limit",
    /// A tenant name that is empty or too long.
    InvalidName => BAD_REQUEST "invalid_name",
    /// A custom domain that is not a host name (or is under the base domain).
    InvalidDomain => BAD_REQUEST "invalid_domain",
    /// A quota out of range.
    InvalidQuota => BAD_REQUEST "invalid_quota",
    /// A console form post without its CSRF proof (its session's token, sent
    /// from the console's own origin).
    CsrfRefused => FORBIDDEN "csrf_refused",
}

/// An API error. Clone, so one failed load shared by concurrent requests can
/// answer each of them.
#[derive(Debug, Clone)]
pub struct ApiError {
    code: Code,
    message: String,
    retry_after: Option<u64>,
    /// Structured detail some codes carry (`settings_schema_violation`: one
    /// `{path, message}` per error).
    details: Option<serde_json::Value>,
}

impl ApiError {
    /// An error with this code (and so its status) and message. Every 503 but
    /// `keys_unavailable` says `Retry-After: 1`.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        let retry_after = (code.status() == StatusCode::SERVICE_UNAVAILABLE
            && code != Code::KeysUnavailable)
            .then_some(1);
        Self {
            code,
            message: message.into(),
            retry_after,
            details: None,
        }
    }

    /// The same error with `details` in its body.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Code::NotFound, message)
    }

    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(Code::Forbidden, message)
    }

    /// 429 with Retry-After.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self {
            retry_after: Some(retry_after_secs.max(1)),
            ..Self::new(
                Code::RateLimited,
                "this tenant is over its request rate; retry after the time in Retry-After",
            )
        }
    }

    /// 500: the detail is logged, the client gets a generic message.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            Code::Internal,
            "the server failed to handle the request; it has been logged",
        )
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code.as_str()
    }

    /// The message (what to fix), as a client is given it.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// `{"error":{"code","message"}}`.
#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
}

/// The inside of [`Body`] (keys in order).
#[derive(Serialize)]
struct Detail<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a serde_json::Value>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Detail {
                code: self.code.as_str(),
                message: &self.message,
                details: self.details.as_ref(),
            },
        };
        let status = self.code.status();
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after
            && let Ok(value) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"veneer\""),
            );
        }
        response
    }
}

impl From<StorageError> for ApiError {
    fn from(err: StorageError) -> Self {
        AppError::from(err).into()
    }
}

impl From<AppError> for ApiError {
    fn from(err: AppError) -> Self {
        let code = match &err {
            AppError::Input(input) => return input.clone().into(),
            AppError::Internal(detail) => return Self::internal(detail),
            AppError::NotFound(_) => Code::NotFound,
            AppError::Conflict(_) => Code::Conflict,
            AppError::Invalid(_) => Code::Invalid,
            // 409 for a full store: the store's state, not the request, is
            // what stands in the way, and the caller can change that state
            // (delete keys) and retry.
            AppError::KvQuotaExceeded(_) => Code::KvQuotaExceeded,
            AppError::PluginStoreFull(_) => Code::PluginStoreFull,
            AppError::InvalidBase(_) => Code::InvalidBase,
            AppError::EmailQuotaExceeded(_) => Code::EmailQuotaExceeded,
            AppError::InvalidLimit(_) => Code::InvalidLimit,
            AppError::InvalidName(_) => Code::InvalidName,
            AppError::DatabaseUnavailable => Code::DatabaseUnavailable,
            AppError::ContextTooLarge { .. } => Code::ContextTooLarge,
            AppError::RenderFailed(_) => Code::RenderFailed,
            AppError::EmailNotConfigured => Code::EmailNotConfigured,
            AppError::InvalidRecipient { .. } => Code::InvalidRecipient,
            AppError::InvalidSettings(_) => Code::InvalidSettings,
            AppError::SettingsTooLarge(_) => Code::SettingsTooLarge,
            AppError::ReleaseRejected(_) => Code::ReleaseRejected,
            AppError::SettingsSchema(invalid) => {
                return Self::new(Code::SettingsSchemaViolation, err.to_string())
                    .with_details(serde_json::json!(invalid.errors));
            }
            AppError::ShadowGate(_) => Code::ShadowGate,
            AppError::ForceNotAllowed(_) => Code::ForceNotAllowed,
            AppError::InvalidRollout(_) => Code::InvalidRollout,
            AppError::InvalidPolicy(_) => Code::InvalidPolicy,
            AppError::InvalidEmailSettings(_) => Code::InvalidEmailSettings,
            AppError::InvalidFromName(_) => Code::InvalidFromName,
            AppError::RelayPortNotAllowed(_) => Code::RelayPortNotAllowed,
            AppError::RelayAddressNotAllowed(_) => Code::RelayAddressNotAllowed,
            AppError::RelayUnresolvable(_) => Code::RelayUnresolvable,
            AppError::InvalidCredentials(_) => Code::InvalidCredentials,
            AppError::InvalidShopifyStore(_) => Code::InvalidShopifyStore,
            AppError::ShopOwnershipNotProven(_) => Code::ShopOwnershipNotProven,
            AppError::ShopifyUnavailable(_) => Code::ShopifyUnavailable,
            AppError::ShopifyInstallRefused(_) => Code::ShopifyInstallRefused,
            AppError::WebhookMissingHeader(_) => Code::MissingHeader,
            AppError::WebhookInvalidHeader { .. } => Code::InvalidHeader,
            AppError::WebhookNotAuthenticated => Code::InvalidWebhook,
            AppError::WebhookNotJson => Code::InvalidJson,
            AppError::ClerkWebhooksDisabled => Code::ClerkWebhooksDisabled,
            AppError::ClerkWebhookNotAuthenticated(_) => Code::InvalidClerkWebhook,
            AppError::ClerkEventInvalid(_) => Code::InvalidJson,
            AppError::TokenRevoked => Code::TokenRevoked,
            AppError::TenantBusy => Code::TenantBusy,
            AppError::TenantCompileBusy => Code::CompileBusy,
            AppError::HostCompileBusy => Code::HostCompileBusy,
            AppError::CompileTimeout { .. } => Code::CompileTimeout,
        };
        Self::new(code, err.to_string())
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        let code = match err {
            AuthError::MissingToken => Code::MissingToken,
            AuthError::MalformedToken { .. } => Code::MalformedToken,
            AuthError::AlgorithmNotAllowed { .. } => Code::AlgorithmNotAllowed,
            AuthError::UnknownKey { .. } => Code::UnknownKey,
            AuthError::BadSignature => Code::BadSignature,
            AuthError::Expired => Code::Expired,
            AuthError::LifetimeTooLong { .. } => Code::TokenLifetimeTooLong,
            AuthError::NotYetValid => Code::NotYetValid,
            AuthError::WrongIssuer { .. } => Code::WrongIssuer,
            AuthError::UnauthorizedParty { .. } => Code::UnauthorizedParty,
            AuthError::MissingClaim { .. } => Code::MissingClaim,
            AuthError::KeysUnavailable => Code::KeysUnavailable,
        };
        Self::new(code, err.to_string())
    }
}

impl From<CheckError> for ApiError {
    fn from(err: CheckError) -> Self {
        let code = match err {
            CheckError::Empty => Code::EmptyFile,
            CheckError::TooLarge { .. } => Code::TooLarge,
            CheckError::CoreModule => Code::CoreModule,
            CheckError::NotWasm => Code::NotWasm,
            CheckError::Invalid(_) => Code::InvalidComponent,
            CheckError::ForbiddenImport(_) => Code::ForbiddenImport,
            CheckError::WrongWorld(_) => Code::WrongWorld,
            CheckError::TooComplex(_) => Code::TooComplex,
            CheckError::DescribeFailed(_) => Code::DescribeFailed,
            CheckError::InvalidSettingsSchema(_) => Code::InvalidSettingsSchema,
        };
        Self::new(code, err.to_string())
    }
}

impl From<InputError> for ApiError {
    fn from(err: InputError) -> Self {
        let code = match err {
            InputError::UnknownTemplate(_) => Code::UnknownTemplate,
            InputError::Sale { .. } => Code::InvalidSale,
        };
        Self::new(code, err.to_string())
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    /// The codes `docs/api.md` lists: the first column of its error table.
    fn documented() -> Vec<(String, u16)> {
        include_str!("../../../docs/api.md")
            .lines()
            .filter_map(|line| {
                let mut cells = line.split('|').map(str::trim).skip(1);
                let code = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
                let status = cells.next()?.parse().ok()?;
                Some((code.to_owned(), status))
            })
            .collect()
    }

    #[test]
    fn every_code_the_api_can_answer_is_documented_with_its_status() {
        let documented = documented();
        for code in Code::ALL {
            let entry = (code.as_str().to_owned(), code.status().as_u16());
            assert!(
                documented.contains(&entry),
                "docs/api.md lacks `| `{}` | {} |`",
                entry.0,
                entry.1
            );
        }
        for (code, status) in &documented {
            assert!(
                Code::ALL
                    .iter()
                    .any(|c| c.as_str() == code && c.status().as_u16() == *status),
                "docs/api.md documents `{code}` {status}, which the API never answers"
            );
        }
    }

    #[test]
    fn the_codes_of_the_layers_below_map_to_the_same_strings() {
        let auth = [
            AuthError::MissingToken,
            AuthError::BadSignature,
            AuthError::Expired,
            AuthError::NotYetValid,
            AuthError::KeysUnavailable,
        ];
        for err in auth {
            let code = err.code();
            assert_eq!(ApiError::from(err).code(), code);
        }
        for err in [
            CheckError::Empty,
            CheckError::CoreModule,
            CheckError::NotWasm,
            CheckError::Invalid("x".into()),
            CheckError::ForbiddenImport("x".into()),
            CheckError::WrongWorld("x".into()),
            CheckError::TooComplex("x".into()),
            CheckError::DescribeFailed("x".into()),
            CheckError::InvalidSettingsSchema("x".into()),
        ] {
            let code = err.code();
            assert_eq!(ApiError::from(err).code(), code);
        }
        for err in [
            AppError::InvalidLimit("x".into()),
            AppError::InvalidName("x".into()),
            AppError::InvalidSettings("x".into()),
            AppError::SettingsTooLarge("x".into()),
            AppError::ReleaseRejected("x".into()),
            AppError::ShadowGate("x".into()),
            AppError::ForceNotAllowed("x".into()),
            AppError::InvalidRollout("x".into()),
            AppError::InvalidPolicy("x".into()),
            AppError::InvalidEmailSettings("x".into()),
            AppError::InvalidFromName("x".into()),
            AppError::RelayPortNotAllowed("x".into()),
            AppError::RelayAddressNotAllowed("x".into()),
            AppError::RelayUnresolvable("x".into()),
            AppError::InvalidCredentials("x".into()),
            AppError::InvalidShopifyStore("x".into()),
            AppError::ShopOwnershipNotProven("x".into()),
            AppError::ShopifyUnavailable("x".into()),
            AppError::WebhookMissingHeader("x".into()),
            AppError::WebhookInvalidHeader {
                name: "x".into(),
                reason: "y".into(),
            },
            AppError::WebhookNotAuthenticated,
            AppError::WebhookNotJson,
            AppError::ClerkWebhooksDisabled,
            AppError::ClerkWebhookNotAuthenticated("x".into()),
            AppError::ClerkEventInvalid("x".into()),
            AppError::TokenRevoked,
            AppError::TenantBusy,
            AppError::TenantCompileBusy,
            AppError::HostCompileBusy,
            AppError::CompileTimeout { secs: 1 },
            AppError::DatabaseUnavailable,
            AppError::RenderFailed("x".into()),
            AppError::EmailNotConfigured,
            AppError::InvalidRecipient { why: "x".into() },
            AppError::ContextTooLarge { bytes: 2, limit: 1 },
            AppError::KvQuotaExceeded("x".into()),
            AppError::PluginStoreFull("x".into()),
            AppError::InvalidBase("x".into()),
            AppError::EmailQuotaExceeded("x".into()),
            AppError::Conflict("x".into()),
            AppError::Invalid("x".into()),
            AppError::NotFound("x".into()),
            AppError::Input(InputError::UnknownTemplate("x".into())),
        ] {
            let code = err.code();
            assert_eq!(ApiError::from(err).code(), code);
        }
    }

    #[test]
    fn statuses_and_retry_after_are_as_before() {
        let busy = ApiError::from(AppError::TenantCompileBusy);
        assert_eq!(busy.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(busy.retry_after, None);
        let host = ApiError::from(AppError::HostCompileBusy);
        assert_eq!(host.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(host.retry_after, Some(1));
        let keys = ApiError::from(AuthError::KeysUnavailable);
        assert_eq!(keys.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(keys.retry_after, None, "as before: no Retry-After");
        assert_eq!(
            ApiError::from(AuthError::Expired).status(),
            StatusCode::UNAUTHORIZED
        );
    }
}
