//! Email: what a tenant's mail looks like and how it leaves and comes back.
//! Owns template rendering (minijinja, HTML auto-escaped, bounded: a language
//! subset, fuel, nesting and output caps), the one check of address and domain
//! syntax (`veneer_core::email_check`, shared with the template rules in `validate`), the
//! tenant's email settings rules (the from address in its sending domain, a
//! complete custom relay), building the message (lettre), sending it over SMTP with the reply
//! sorted into retry or give up, VERP bounce addresses, and reading bounces
//! (RFC 3464 DSNs and a JSON webhook) into the tenant's suppression list, and
//! DKIM keys, records and signatures for tenants' sending domains ([`dkim`]).
//!
//! It runs no SQL (storage keeps settings, messages and suppressions), knows
//! nothing of HTTP or jobs (callers decide when to send and retry), and never
//! sees a key: the SMTP password arrives decrypted from the secrets module,
//! with [`password_aad`] binding its ciphertext to the tenant.
//!
//! Every tenant sends as itself: From and Message-ID are in its sending domain,
//! and the envelope sender is `bounce+<tenant>.<message id>@<bounce domain>`,
//! so a bounce finds its tenant and message by the address it returns to.

mod bounce;
pub mod dkim;
mod dsn;
mod message;
mod render;
mod send;
mod sender;
mod settings;
mod verp;

#[cfg(test)]
mod on_databases;

#[cfg(test)]
mod tests;

pub use bounce::{
    Bounce, BounceAction, BounceError, BounceOutcome, parse_bounce_webhook, record_bounce,
};
pub use dsn::parse_dsn;
pub use message::{BuildError, build_message};
pub use render::{
    Bound, MAX_HTML_OUTPUT, MAX_RANGE, MAX_SUBJECT_OUTPUT, MAX_TEXT_OUTPUT, RenderError, Rendered,
    TEMPLATE_FUEL, TEMPLATE_RECURSION, render,
};
pub use send::{SendError, SmtpConfig, SmtpOutcome, check_relay, relay_config, send};
pub use sender::{EmailSender, SendFuture, SmtpSender};
pub use settings::{
    EmailSettingsError, FROM_NAME_CODE, SETTINGS_CODE, check_display_name, password_aad,
    validate_settings,
};
pub use veneer_core::email_check::{AddressError, DomainError, check_address, check_domain};
pub use veneer_core::email_check::{TEMPLATE_FILTERS, check_template};
pub use verp::{
    bounce_address, message_id_from_header, message_id_header, new_message_id, parse_bounce_address,
};

pub use crate::storage::{EmailRelay, EmailSettings, EmailTls};
