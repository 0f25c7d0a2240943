//! Building the message a tenant sends: headers from its settings (a template
//! may override the display name and Reply-To), a Message-ID in its sending
//! domain, text and HTML as multipart/alternative, and the VERP bounce address
//! as the envelope sender.
//!
//! No `Return-Path` header is written: the envelope sender is the return path,
//! and the receiving MTA records it as `Return-Path` on final delivery; RFC 5321
//! §4.4 asks the originating system not to send one.

use lettre::Message;
use lettre::address::{Address, Envelope};
use lettre::message::{Mailbox, MultiPart};

use super::Rendered;
use super::settings::check_display_name;
use super::verp::message_id_header;
use crate::storage::{EmailSettings, is_email_message_id};
use veneer_core::email_check::check_address;

/// A message that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// An address or display name is unusable; names the field.
    #[error("{field} `{value}` {reason}; fix the {field}")]
    Field {
        /// to, from_address, reply_to, from_name or bounce_address.
        field: &'static str,
        /// What was given (cut to 80 characters).
        value: String,
        reason: String,
    },
    /// The message id is not one of ours.
    #[error("message id `{0}` is not 32 lowercase hex digits; make one with new_message_id")]
    MessageId(String),
    /// lettre refused the assembled message (a bug rather than bad input).
    #[error("the message cannot be assembled: {0}")]
    Assemble(String),
}

fn field_error(field: &'static str, value: &str, reason: impl Into<String>) -> BuildError {
    BuildError::Field {
        field,
        value: value.chars().take(80).collect(),
        reason: reason.into(),
    }
}

fn address(field: &'static str, value: &str) -> Result<Address, BuildError> {
    check_address(value).map_err(|why| field_error(field, value, why.to_string()))?;
    value
        .parse::<Address>()
        .map_err(|e| field_error(field, value, e.to_string()))
}

/// The message `rendered` from the tenant (`settings`) to `to`, with
/// Message-ID `<message_id@sending_domain>` and envelope sender
/// `bounce_address` (see [`bounce_address`](super::bounce_address)).
pub fn build_message(
    settings: &EmailSettings,
    rendered: &Rendered,
    to: &str,
    message_id: &str,
    bounce_address: &str,
) -> Result<Message, BuildError> {
    if !is_email_message_id(message_id) {
        return Err(BuildError::MessageId(message_id.chars().take(80).collect()));
    }
    let from_name = rendered
        .from_name
        .as_deref()
        .filter(|name| !name.trim().is_empty())
        .unwrap_or(&settings.from_name);
    if from_name.chars().any(char::is_control) {
        return Err(field_error(
            "from_name",
            from_name,
            "contains a line break or control character",
        ));
    }
    // Settings and templates are checked when stored and returned; this holds
    // for rows written before the rule existed.
    check_display_name(from_name).map_err(|why| field_error("from_name", from_name, why))?;
    let from = Mailbox::new(
        Some(from_name.to_owned()).filter(|n| !n.trim().is_empty()),
        address("from_address", &settings.from_address)?,
    );
    let to_address = address("to", to)?;
    let envelope = Envelope::new(
        Some(address("bounce_address", bounce_address)?),
        vec![to_address.clone()],
    )
    .map_err(|e| BuildError::Assemble(e.to_string()))?;

    let mut builder = Message::builder()
        .from(from)
        .to(Mailbox::new(None, to_address))
        .subject(rendered.subject.as_str())
        .message_id(Some(message_id_header(
            message_id,
            &settings.sending_domain,
        )))
        .envelope(envelope);
    let reply_to = rendered
        .reply_to
        .as_deref()
        .filter(|r| !r.trim().is_empty())
        .or(settings.reply_to.as_deref());
    if let Some(reply_to) = reply_to {
        builder = builder.reply_to(Mailbox::new(None, address("reply_to", reply_to)?));
    }
    builder
        .multipart(MultiPart::alternative_plain_html(
            rendered.text.clone(),
            rendered.html.clone(),
        ))
        .map_err(|e| BuildError::Assemble(e.to_string()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::base::EmailTemplate;
    use crate::email::{bounce_address, dsn, render};
    use crate::storage::{EmailRelay, EmailTls};
    use crate::tenancy::TenantId;

    const ID: &str = "00112233445566778899aabbccddeeff";

    fn settings() -> EmailSettings {
        EmailSettings {
            sending_domain: "acme.example".into(),
            from_name: "Acme Store".into(),
            from_address: "orders@acme.example".into(),
            reply_to: Some("help@acme.example".into()),
            relay: EmailRelay::Platform,
            smtp_host: None,
            smtp_port: None,
            smtp_tls: EmailTls::None,
            smtp_username: None,
            smtp_password_enc: None,
        }
    }

    fn rendered(from_name: Option<&str>, reply_to: Option<&str>) -> Rendered {
        let template = EmailTemplate {
            id: "order".into(),
            subject: "Order {{ order }} for {{ name }}".into(),
            html: "<p>Hello {{ name }}</p>".into(),
            text: "Hello {{ name }}".into(),
            from_name: from_name.map(Into::into),
            reply_to: reply_to.map(Into::into),
        };
        let ctx = BTreeMap::from([
            ("name".to_owned(), "<script>Ann</script> & co".to_owned()),
            ("order".to_owned(), "#42".to_owned()),
        ]);
        render(&template, &ctx).unwrap()
    }

    fn verp() -> String {
        bounce_address(
            "bounces.veneer.example",
            &TenantId::new("acme").unwrap(),
            ID,
        )
    }

    /// The message's top-level headers, unfolded, and its bytes.
    fn formatted(message: &Message) -> (Vec<(String, String)>, String) {
        let raw = message.formatted();
        let (head, _) = dsn::split_head(&raw);
        (dsn::parse_headers(head), String::from_utf8(raw).unwrap())
    }

    fn get<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
        headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    #[test]
    fn headers_come_from_the_settings_and_the_envelope_from_verp() {
        let message = build_message(
            &settings(),
            &rendered(None, None),
            "ann@example.com",
            ID,
            &verp(),
        )
        .unwrap();
        let (headers, raw) = formatted(&message);
        assert_eq!(
            get(&headers, "from"),
            ["\"Acme Store\" <orders@acme.example>"]
        );
        assert_eq!(get(&headers, "to"), ["ann@example.com"]);
        assert_eq!(get(&headers, "reply-to"), ["help@acme.example"]);
        assert_eq!(
            get(&headers, "message-id"),
            [format!("<{ID}@acme.example>").as_str()]
        );
        assert_eq!(
            get(&headers, "subject"),
            ["Order #42 for <script>Ann</script> & co"]
        );
        assert!(get(&headers, "return-path").is_empty(), "{raw}");
        assert_eq!(get(&headers, "date").len(), 1);

        let envelope = message.envelope();
        assert_eq!(
            envelope.from().map(ToString::to_string),
            Some(format!("bounce+acme.{ID}@bounces.veneer.example"))
        );
        let to: Vec<String> = envelope.to().iter().map(ToString::to_string).collect();
        assert_eq!(to, ["ann@example.com"]);

        // Both parts, the HTML one escaped by rendering, the text one not.
        assert!(
            get(&headers, "content-type")[0].starts_with("multipart/alternative"),
            "{raw}"
        );
        assert!(
            raw.contains("Content-Type: text/plain; charset=utf-8"),
            "{raw}"
        );
        assert!(
            raw.contains("Content-Type: text/html; charset=utf-8"),
            "{raw}"
        );
        assert!(raw.contains("Hello <script>Ann</script> & co"), "{raw}");
        assert!(
            raw.contains("<p>Hello &lt;script&gt;Ann&lt;&#x2f;script&gt; &amp; co</p>"),
            "{raw}"
        );
    }

    #[test]
    fn the_template_overrides_name_and_reply_to() {
        let message = build_message(
            &settings(),
            &rendered(Some("Acme Returns"), Some("returns@acme-help.example")),
            "ann@example.com",
            ID,
            &verp(),
        )
        .unwrap();
        let (headers, _) = formatted(&message);
        assert_eq!(
            get(&headers, "from"),
            ["\"Acme Returns\" <orders@acme.example>"]
        );
        assert_eq!(get(&headers, "reply-to"), ["returns@acme-help.example"]);

        // Without a Reply-To anywhere there is none.
        let plain = EmailSettings {
            reply_to: None,
            ..settings()
        };
        let message = build_message(
            &plain,
            &rendered(None, None),
            "ann@example.com",
            ID,
            &verp(),
        )
        .unwrap();
        assert!(get(&formatted(&message).0, "reply-to").is_empty());
    }

    #[test]
    fn bad_inputs_are_refused_by_field() {
        let field = |err: BuildError| match err {
            BuildError::Field { field, .. } => field,
            other => panic!("{other:?}"),
        };
        let r = rendered(None, None);
        for bad_to in [
            "ann",
            "ann@example.com\r\nBcc: x@evil.example",
            "a@b@example.com",
        ] {
            let err = build_message(&settings(), &r, bad_to, ID, &verp()).unwrap_err();
            assert_eq!(field(err), "to", "{bad_to:?}");
        }
        let err = build_message(
            &settings(),
            &rendered(Some("Evil\r\nBcc: x@evil.example"), None),
            "ann@example.com",
            ID,
            &verp(),
        )
        .unwrap_err();
        assert_eq!(field(err), "from_name");
        for forged in [
            "\"Bank\" <ceo@bank.example>",
            "ceo@bank.example",
            "Bank \u{FF1C}ceo\u{FF20}bank.example\u{FF1E}",
        ] {
            let mut settings = settings();
            settings.from_name = forged.into();
            let err = build_message(&settings, &r, "ann@example.com", ID, &verp()).unwrap_err();
            assert_eq!(field(err), "from_name", "{forged}");
        }
        let err = build_message(
            &settings(),
            &rendered(None, Some("x@evil.example\nBcc: y@evil.example")),
            "ann@example.com",
            ID,
            &verp(),
        )
        .unwrap_err();
        assert_eq!(field(err), "reply_to");
        assert!(matches!(
            build_message(&settings(), &r, "ann@example.com", "../../etc", &verp()),
            Err(BuildError::MessageId(_))
        ));
    }
}
