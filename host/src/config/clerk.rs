//! The Clerk webhook settings of `veneer serve` (`--clerk-webhook-secret` and
//! what goes with it), a group of [`super::ServeConfig`]. Owns nothing else:
//! verifying deliveries is `clerk`'s, acting on them `app::clerk`'s.

use clap::Args;

/// Clerk organisation webhooks (off unless `--clerk-webhook-secret` is set).
#[derive(Clone, Args)]
pub struct ClerkConfig {
    /// The signing secret of the Clerk webhook endpoint (`whsec_…`, from the
    /// endpoint's page in Clerk's dashboard). Unset: `POST /v1/clerk/webhooks`
    /// answers 404 `clerk_webhooks_disabled`.
    #[arg(long, env = "VENEER_CLERK_WEBHOOK_SECRET", hide_env_values = true)]
    pub clerk_webhook_secret: Option<String>,

    /// Create a tenant for each new Clerk organisation (`organization.created`),
    /// its id from the organisation's slug. Off: tenants are created by
    /// platform admins only.
    #[arg(long, env = "VENEER_CLERK_PROVISION_TENANTS")]
    pub clerk_provision_tenants: bool,

    /// Deliveries the Clerk webhook endpoint takes per second, from anyone,
    /// before checking signatures (burst: ten seconds' worth).
    #[arg(long, env = "VENEER_CLERK_WEBHOOK_RATE_PER_SEC", default_value_t = 50)]
    pub clerk_webhook_rate_per_sec: u32,
}

impl Default for ClerkConfig {
    fn default() -> Self {
        Self {
            clerk_webhook_secret: None,
            clerk_provision_tenants: false,
            clerk_webhook_rate_per_sec: 50,
        }
    }
}

impl std::fmt::Debug for ClerkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret signs deliveries: never in a log.
        f.debug_struct("ClerkConfig")
            .field(
                "clerk_webhook_secret",
                &self.clerk_webhook_secret.as_ref().map(|_| "<set>"),
            )
            .field("clerk_provision_tenants", &self.clerk_provision_tenants)
            .field(
                "clerk_webhook_rate_per_sec",
                &self.clerk_webhook_rate_per_sec,
            )
            .finish()
    }
}
