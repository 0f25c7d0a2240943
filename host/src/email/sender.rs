//! The seam between the send job and SMTP: [`EmailSender`] hands one built
//! message to a relay (the platform's, or a tenant's checked one) and answers
//! the outcome types of [`super::send`]. [`SmtpSender`] is the real one
//! (lettre, exactly [`super::send()`]); tests put an in-memory sender in its
//! place to drive the job handler without a socket. Owns no policy of its own:
//! which relay, and what an outcome does to the message, are the caller's.

use std::future::Future;
use std::pin::Pin;

use lettre::Message;

use super::send::{SendError, SmtpConfig, SmtpOutcome, send};

/// The future an [`EmailSender`] returns.
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<SmtpOutcome, SendError>> + Send + 'a>>;

/// Sends one built message through `relay`.
pub trait EmailSender: Send + Sync + 'static {
    /// Hands `message` to `relay`: sent (the relay's reply), or a temporary
    /// or permanent refusal.
    fn send<'a>(&'a self, relay: &'a SmtpConfig, message: &'a Message) -> SendFuture<'a>;
}

/// The real sender: SMTP through lettre ([`super::send()`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct SmtpSender;

impl EmailSender for SmtpSender {
    fn send<'a>(&'a self, relay: &'a SmtpConfig, message: &'a Message) -> SendFuture<'a> {
        Box::pin(send(relay, message))
    }
}
