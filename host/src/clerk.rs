//! Clerk as a source of events: verifying a webhook delivery the way Svix
//! (which sends Clerk's webhooks) signs it ([`svix`]), and reading Veneer's
//! meaning out of the events it carries ([`events`]: organisations created,
//! updated and deleted, memberships created, updated and deleted).
//!
//! It owns the signing scheme and the payload shapes. It must not touch
//! tenants, the database or HTTP statuses: what an event does is
//! `app::clerk`'s, the route and its answers `http::clerk`'s. Token
//! verification (the session tokens Clerk issues) is `auth`'s.

pub mod events;
pub mod svix;

pub use events::{ClerkEvent, Envelope, EventError, MembershipChange};
pub use svix::{Delivery, SvixError, WebhookSecret};
