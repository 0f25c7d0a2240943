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
