//! Bounces and complaints: what came back for a message, from a DSN or an
//! ARF feedback report ([`parse_dsn`]) or a relay's JSON webhook
//! ([`parse_bounce_webhook`]), and what it does to the tenant's data
//! ([`record_bounce`]).
//!
//! A spam complaint (an ARF report, RFC 5965, or a webhook of type
//! `complaint`) puts the address the message went to on the tenant's
//! suppression list, like a hard bounce; the message itself stays delivered.
//!
//! A hard bounce (action failed with a 5.x.x status, or a webhook's `hard`)
//! marks the message bounced and puts the address the message went to on the
//! tenant's suppression list. A soft one (failed with 4.x.x, or `soft`) marks
//! the message bounced without suppressing; a delay notice changes nothing.
//!
//! [`parse_dsn`]: super::parse_dsn

use serde::Deserialize;

use super::verp::{message_id_from_header, parse_bounce_address};
use crate::storage::{Storage, StorageError, is_email_message_id};
use crate::tenancy::TenantId;
use veneer_core::email_check::check_address;

/// What a report says about one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BounceAction {
    /// Delivery failed; the relay gave up.
    Failed,
    /// Not delivered yet; the relay keeps trying.
    Delayed,
}

/// One recipient's bounce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounce {
    /// The recipient the report names, lowercased.
    pub recipient: String,
    pub action: BounceAction,
    /// Failed for good: suppress the address.
    pub hard: bool,
    /// A spam complaint about a delivered message (suppress the address,
    /// leave the message delivered).
    pub complaint: bool,
    /// The enhanced status code, e.g. `5.1.1`.
    pub status: Option<String>,
    /// The remote server's explanation, e.g. `smtp; 550 5.1.1 User unknown`.
    pub diagnostic: Option<String>,
    /// The tenant, when the report names it (VERP, or the webhook's field).
    pub tenant: Option<TenantId>,
    /// Our message id, when the report names it.
    pub message_id: Option<String>,
}

/// A report that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BounceError {
    /// Not a multipart/report with a delivery-status part.
    #[error(
        "not a delivery status notification: expected multipart/report with a \
         message/delivery-status part"
    )]
    NotADsn,
    /// The webhook body is not the expected JSON.
    #[error("the bounce webhook body is not valid: {0}")]
    Webhook(String),
    /// A webhook event of another type (delivery, open, ...).
    #[error(
        "the webhook event is of type `{0}`, not `bounce` or `complaint`; only those are processed"
    )]
    NotABounce(String),
    /// The report's fields name different tenants or messages.
    #[error("the bounce is contradictory: {0}")]
    Conflicting(String),
}

/// The JSON webhook form: `{"type":"bounce","bounce_type":"hard"|"soft",
/// "recipient":"x@y","message_id":"...","tenant":"acme","verp":"bounce+...",
/// "diagnostic":"...","status":"5.1.1"}`. Unknown fields are ignored
/// (providers add their own).
#[derive(Debug, Deserialize)]
struct Webhook {
    #[serde(rename = "type")]
    kind: String,
    bounce_type: Option<String>,
    recipient: String,
    message_id: Option<String>,
    tenant: Option<String>,
    verp: Option<String>,
    diagnostic: Option<String>,
    status: Option<String>,
}

fn webhook_error(message: impl Into<String>) -> BounceError {
    BounceError::Webhook(message.into())
}

/// Parses the JSON webhook form into a [`Bounce`]. The VERP address, when
/// given, names tenant and message; `tenant` and `message_id` (our id, or a
/// Message-ID header of ours) must then agree with it.
pub fn parse_bounce_webhook(body: &[u8]) -> Result<Bounce, BounceError> {
    let hook: Webhook = serde_json::from_slice(body).map_err(|e| {
        webhook_error(format!(
            "{e}; send an object with type, bounce_type and recipient"
        ))
    })?;
    let complaint = match hook.kind.as_str() {
        "bounce" => false,
        "complaint" => true,
        other => return Err(BounceError::NotABounce(other.chars().take(40).collect())),
    };
    let hard = match hook.bounce_type.as_deref() {
        _ if complaint => true,
        Some("hard") => true,
        Some("soft") => false,
        Some(other) => {
            return Err(webhook_error(format!(
                "bounce_type `{}` is not known; use `hard` or `soft`",
                other.chars().take(40).collect::<String>()
            )));
        }
        None => {
            return Err(webhook_error(
                "bounce_type is missing; use `hard` or `soft`",
            ));
        }
    };
    let recipient = hook.recipient.trim().to_lowercase();
    check_address(&recipient).map_err(|why| {
        webhook_error(format!(
            "recipient `{}` {why}; give the address that bounced",
            recipient.chars().take(80).collect::<String>()
        ))
    })?;

    let from_verp = match hook.verp.as_deref() {
        Some(verp) => Some(parse_bounce_address(verp).ok_or_else(|| {
            webhook_error(format!(
                "verp `{}` is not a bounce address of ours (bounce+<tenant>.<id>@<domain>)",
                verp.chars().take(120).collect::<String>()
            ))
        })?),
        None => None,
    };
    let tenant = match hook.tenant.as_deref() {
        Some(t) => Some(TenantId::new(t).map_err(|e| webhook_error(format!("tenant: {e}")))?),
        None => None,
    };
    let message_id = match hook.message_id.as_deref() {
        Some(m) => {
            let bare = m.trim().to_ascii_lowercase();
            let id = if is_email_message_id(&bare) {
                Some(bare)
            } else {
                message_id_from_header(m)
            };
            Some(id.ok_or_else(|| {
                webhook_error(format!(
                    "message_id `{}` is not one of ours (32 hex digits, or <id@domain>)",
                    m.chars().take(120).collect::<String>()
                ))
            })?)
        }
        None => None,
    };
    let (tenant, message_id) = match from_verp {
        Some((verp_tenant, verp_id)) => {
            if tenant.as_ref().is_some_and(|t| *t != verp_tenant) {
                return Err(BounceError::Conflicting(format!(
                    "tenant names `{}` but the VERP address names `{verp_tenant}`",
                    tenant.as_ref().map(TenantId::as_str).unwrap_or_default()
                )));
            }
            if message_id.as_ref().is_some_and(|m| *m != verp_id) {
                return Err(BounceError::Conflicting(
                    "message_id and the VERP address name different messages".into(),
                ));
            }
            (Some(verp_tenant), Some(verp_id))
        }
        None => (tenant, message_id),
    };
    let cut = |s: String| -> Option<String> {
        let s: String = s.trim().chars().take(1000).collect();
        (!s.is_empty() && !s.contains('\0')).then_some(s)
    };
    Ok(Bounce {
        recipient,
        action: BounceAction::Failed,
        hard,
        complaint,
        status: hook.status.and_then(cut),
        diagnostic: hook.diagnostic.and_then(cut),
        tenant,
        message_id,
    })
}

/// What [`record_bounce`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BounceOutcome {
    /// A delay notice: nothing recorded, the relay is still trying.
    Delayed,
    /// No message of any tenant matches: nothing recorded.
    Unattributed,
    /// The tenant's message was marked bounced; `suppressed` is the address
    /// put on its suppression list (hard bounces only).
    Recorded {
        tenant: TenantId,
        message_id: String,
        hard: bool,
        suppressed: Option<String>,
    },
}

/// Applies a bounce to the tenant whose message it is. The message is found
/// by tenant and id together (from VERP), or by id alone; a bounce naming a
/// tenant that does not have that message is unattributed, so nobody can
/// suppress addresses for a tenant without knowing one of its message ids.
/// The address suppressed is the one the message was sent to, which is what
/// the next send checks (the report's recipient can differ after forwarding).
pub async fn record_bounce(
    storage: &Storage,
    bounce: &Bounce,
) -> Result<BounceOutcome, StorageError> {
    if bounce.action == BounceAction::Delayed {
        return Ok(BounceOutcome::Delayed);
    }
    let Some(id) = bounce.message_id.as_deref() else {
        return Ok(BounceOutcome::Unattributed);
    };
    let platform = storage.platform();
    let message = match &bounce.tenant {
        Some(tenant) => platform.email_message_by_id(tenant, id).await?,
        None => platform.email_find_message(id).await?,
    };
    let Some(message) = message else {
        tracing::info!(tenant = ?bounce.tenant, message_id = id, "bounce for no known message");
        return Ok(BounceOutcome::Unattributed);
    };
    if !message.to_address.eq_ignore_ascii_case(&bounce.recipient) {
        tracing::info!(
            tenant = %message.tenant,
            message_id = id,
            "bounce names another recipient than the message's (forwarding?)"
        );
    }
    let diagnostic = [bounce.status.as_deref(), bounce.diagnostic.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let db = storage.tenant(&message.tenant);
    if bounce.complaint {
        let reason = format!("spam complaint {diagnostic}").trim_end().to_owned();
        let entry = db
            .email_suppress(&message.to_address, &reason, Some(&message.id))
            .await?;
        return Ok(BounceOutcome::Recorded {
            tenant: message.tenant,
            message_id: message.id,
            hard: true,
            suppressed: Some(entry.address),
        });
    }
    match db
        .email_mark_bounced(&message.id, bounce.hard, &diagnostic)
        .await
    {
        Ok(_) => {}
        // A message that was never sent (suppressed) cannot have bounced.
        Err(StorageError::Conflict(_)) => return Ok(BounceOutcome::Unattributed),
        Err(e) => return Err(e),
    }
    let suppressed = if bounce.hard {
        let reason = format!("hard bounce {diagnostic}").trim_end().to_owned();
        let entry = db
            .email_suppress(&message.to_address, &reason, Some(&message.id))
            .await?;
        Some(entry.address)
    } else {
        None
    };
    Ok(BounceOutcome::Recorded {
        tenant: message.tenant,
        message_id: message.id,
        hard: bounce.hard,
        suppressed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn a_webhook_hard_bounce_with_verp() {
        let body = format!(
            r#"{{"type":"bounce","bounce_type":"hard","recipient":"Ann@Example.com",
                "verp":"bounce+acme.{ID}@bounces.veneer.example","tenant":"acme",
                "message_id":"<{ID}@acme.example>","diagnostic":"550 5.1.1 unknown user",
                "status":"5.1.1","provider_extra":{{"x":1}}}}"#
        );
        let b = parse_bounce_webhook(body.as_bytes()).unwrap();
        assert_eq!(
            b,
            Bounce {
                recipient: "ann@example.com".into(),
                action: BounceAction::Failed,
                hard: true,
                complaint: false,
                status: Some("5.1.1".into()),
                diagnostic: Some("550 5.1.1 unknown user".into()),
                tenant: Some(TenantId::new("acme").unwrap()),
                message_id: Some(ID.into()),
            }
        );
    }

    #[test]
    fn a_webhook_soft_bounce_without_verp() {
        let body = format!(
            r#"{{"type":"bounce","bounce_type":"soft","recipient":"a@b.example","message_id":"{ID}"}}"#
        );
        let b = parse_bounce_webhook(body.as_bytes()).unwrap();
        assert!(!b.hard);
        assert_eq!(b.tenant, None);
        assert_eq!(b.message_id.as_deref(), Some(ID));
    }

    #[test]
    fn a_webhook_complaint_suppresses_like_a_hard_bounce() {
        let body = format!(
            r#"{{"type":"complaint","recipient":"Ann@Example.com","verp":"bounce+acme.{ID}@bounces.veneer.example","feedback_type":"abuse"}}"#
        );
        let b = parse_bounce_webhook(body.as_bytes()).unwrap();
        assert!(b.complaint && b.hard);
        assert_eq!(b.recipient, "ann@example.com");
        assert_eq!(b.tenant, Some(TenantId::new("acme").unwrap()));
        assert_eq!(b.message_id.as_deref(), Some(ID));
    }

    #[test]
    fn bad_or_contradictory_webhooks_are_refused() {
        let cases = [
            (r#"not json"#.to_owned(), "valid"),
            (r#"{"type":"delivery","recipient":"a@b.example"}"#.to_owned(), "delivery"),
            (r#"{"type":"bounce","bounce_type":"medium","recipient":"a@b.example"}"#.to_owned(), "medium"),
            (r#"{"type":"bounce","recipient":"a@b.example"}"#.to_owned(), "missing"),
            (r#"{"type":"bounce","bounce_type":"hard","recipient":"a\r\nb@c.example"}"#.to_owned(), "recipient"),
            (r#"{"type":"bounce","bounce_type":"hard","recipient":"a@b.example","verp":"bounce+acme.zz@b.example"}"#.to_owned(), "verp"),
            (r#"{"type":"bounce","bounce_type":"hard","recipient":"a@b.example","tenant":"Not Valid"}"#.to_owned(), "tenant"),
            (r#"{"type":"bounce","bounce_type":"hard","recipient":"a@b.example","message_id":"1' OR 1=1"}"#.to_owned(), "message_id"),
            (
                format!(r#"{{"type":"bounce","bounce_type":"hard","recipient":"a@b.example","tenant":"other","verp":"bounce+acme.{ID}@b.example"}}"#),
                "contradictory",
            ),
            (
                format!(r#"{{"type":"bounce","bounce_type":"hard","recipient":"a@b.example","message_id":"{}","verp":"bounce+acme.{ID}@b.example"}}"#, "f".repeat(32)),
                "contradictory",
            ),
        ];
        for (body, expected) in cases {
            let err = parse_bounce_webhook(body.as_bytes()).unwrap_err();
            assert!(err.to_string().contains(expected), "{body}: {err}");
        }
    }
}
