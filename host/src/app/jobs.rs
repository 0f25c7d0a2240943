//! The kinds of the background jobs the use cases queue (with their attempt
//! budgets): the HTTP handlers write them, the job handlers in
//! [`crate::workers`] are registered under them. Names only: the handlers
//! themselves live with the worker, never here.

/// The job kind that sends one queued email.
pub const SEND_JOB: &str = "email.send";
/// Attempts of a send before it is given up.
pub const SEND_JOB_ATTEMPTS: u32 = 10;
/// The job kind that processes one Shopify webhook delivery.
pub const WEBHOOK_JOB: &str = "shopify.webhook";
/// Attempts of a webhook job before it is given up.
pub const WEBHOOK_JOB_ATTEMPTS: u32 = 8;
/// The job kind that checks one custom domain's DNS proof.
pub const DOMAIN_JOB: &str = "domain.check";
/// Attempts of a pending domain's check before it is marked failed: with the
/// backoff doubling from `--job-backoff-ms` up to 5 minutes, about 2.5 hours
/// by default.
pub const DOMAIN_JOB_ATTEMPTS: u32 = 40;
