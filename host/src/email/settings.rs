//! Checking a tenant's email settings before they are stored. Address, domain
//! and host name syntax is `veneer_core::email_check`'s, the one check every caller uses.
//!
//! The from address must be in the sending domain exactly: `news@acme.example`
//! for `acme.example`, not `news@mail.acme.example`. A subdomain is a different
//! sending domain (its own SPF/DKIM records), so a tenant who sends from one
//! sets it as the sending domain.

use std::net::IpAddr;

use crate::storage::{EmailRelay, EmailSettings, EmailTls};
use crate::tenancy::TenantId;
pub use veneer_core::email_check::check_display_name;
use veneer_core::email_check::{DomainError, check_address, check_domain, check_host_name};

/// Longest display name accepted, in characters.
const MAX_FROM_NAME_CHARS: usize = 100;
/// Longest user name or password ciphertext accepted, in bytes.
const MAX_CREDENTIAL_BYTES: usize = 4096;

/// Settings that cannot be used, naming the field and what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {message}")]
pub struct EmailSettingsError {
    /// The stable error code: [`SETTINGS_CODE`] for most rules, a code of its
    /// own for a rule a client may want to tell apart ([`FROM_NAME_CODE`]).
    pub code: &'static str,
    /// The settings field at fault, e.g. `from_address`.
    pub field: &'static str,
    /// What is wrong and what to do, e.g. "`a@other.com` is outside the sending
    /// domain `acme.example`; use an address @acme.example".
    pub message: String,
}

/// The code of most settings errors (answered 422).
pub const SETTINGS_CODE: &str = "invalid_email_settings";
/// The code of a display name that reads as an address (answered 400).
pub const FROM_NAME_CODE: &str = "invalid_from_name";

fn error(field: &'static str, message: impl Into<String>) -> EmailSettingsError {
    EmailSettingsError {
        code: SETTINGS_CODE,
        field,
        message: message.into(),
    }
}

/// Checks settings before they are stored: addresses and domains well formed
/// and free of line breaks, the from address in the sending domain, a custom
/// relay complete (host and port) and never sending credentials in clear.
pub fn validate_settings(settings: &EmailSettings) -> Result<(), EmailSettingsError> {
    let s = settings;
    // Line breaks first, everywhere: a CR or LF in any value that reaches a
    // header or an SMTP command is an injection, whatever the field.
    for (field, value) in [
        ("sending_domain", Some(s.sending_domain.as_str())),
        ("from_name", Some(s.from_name.as_str())),
        ("from_address", Some(s.from_address.as_str())),
        ("reply_to", s.reply_to.as_deref()),
        ("smtp_host", s.smtp_host.as_deref()),
        ("smtp_username", s.smtp_username.as_deref()),
        ("smtp_password_enc", s.smtp_password_enc.as_deref()),
    ] {
        let Some(value) = value else { continue };
        if value.contains(['\r', '\n']) {
            return Err(error(
                field,
                "contains a line break (CR or LF); remove it, the value must be one line",
            ));
        }
        if value.chars().any(char::is_control) {
            return Err(error(field, "contains a control character; remove it"));
        }
    }

    check_domain(&s.sending_domain).map_err(|why| {
        error(
            "sending_domain",
            format!(
                "`{}` {why}; give the domain you send from, such as `acme.example`",
                shown(&s.sending_domain)
            ),
        )
    })?;

    check_display_name(&s.from_name).map_err(|why| EmailSettingsError {
        field: "from_name",
        message: format!("`{}` {why}", shown(&s.from_name)),
        code: FROM_NAME_CODE,
    })?;
    let name_chars = s.from_name.chars().count();
    if name_chars > MAX_FROM_NAME_CHARS {
        return Err(error(
            "from_name",
            format!("has {name_chars} characters, more than {MAX_FROM_NAME_CHARS}; shorten it"),
        ));
    }

    let domain_of_from = check_address(&s.from_address).map_err(|why| {
        error(
            "from_address",
            format!(
                "`{}` {why}; give one address such as `hello@{}`",
                shown(&s.from_address),
                s.sending_domain.to_ascii_lowercase()
            ),
        )
    })?;
    if !domain_of_from.eq_ignore_ascii_case(&s.sending_domain) {
        let domain = s.sending_domain.to_ascii_lowercase();
        return Err(error(
            "from_address",
            format!(
                "`{}` is outside the sending domain `{domain}`; use an address @{domain} \
                 (a subdomain counts as another sending domain)",
                shown(&s.from_address)
            ),
        ));
    }

    if let Some(reply_to) = &s.reply_to {
        check_address(reply_to).map_err(|why| {
            error(
                "reply_to",
                format!(
                    "`{}` {why}; give one address such as `help@example.com`, or none",
                    shown(reply_to)
                ),
            )
        })?;
    }

    if let Some(host) = &s.smtp_host {
        check_host(host).map_err(|why| {
            error(
                "smtp_host",
                format!(
                    "`{}` {why}; give the relay's host name such as `smtp.example.com`, or its IP address",
                    shown(host)
                ),
            )
        })?;
    }
    if let Some(port) = s.smtp_port
        && !(1..=65535).contains(&port)
    {
        return Err(error(
            "smtp_port",
            format!(
                "{port} is not a TCP port; use 1 to 65535 (usually 587 with starttls, 465 with tls)"
            ),
        ));
    }
    for (field, value) in [
        ("smtp_username", &s.smtp_username),
        ("smtp_password_enc", &s.smtp_password_enc),
    ] {
        if let Some(value) = value {
            if value.is_empty() {
                return Err(error(field, "is empty; leave it out instead"));
            }
            if value.len() > MAX_CREDENTIAL_BYTES {
                return Err(error(
                    field,
                    format!("is longer than {MAX_CREDENTIAL_BYTES} bytes; shorten it"),
                ));
            }
        }
    }
    match (&s.smtp_username, &s.smtp_password_enc) {
        (Some(_), None) => {
            return Err(error(
                "smtp_password_enc",
                "is missing while smtp_username is set; give the relay's password too, \
                 or remove the user name",
            ));
        }
        (None, Some(_)) => {
            return Err(error(
                "smtp_username",
                "is missing while a password is set; give the relay's user name too, \
                 or remove the password",
            ));
        }
        _ => {}
    }

    if s.relay == EmailRelay::Custom {
        if s.smtp_host.is_none() {
            return Err(error(
                "smtp_host",
                "is required with relay `custom`; give your relay's host name, or use relay \
                 `platform`",
            ));
        }
        if s.smtp_port.is_none() {
            return Err(error(
                "smtp_port",
                "is required with relay `custom`; give your relay's port (usually 587 with \
                 starttls, 465 with tls)",
            ));
        }
        if s.smtp_tls == EmailTls::None && s.smtp_username.is_some() {
            return Err(error(
                "smtp_tls",
                "is `none` but credentials are set: they would cross the network in clear; \
                 use `starttls` or `tls`",
            ));
        }
    }
    Ok(())
}

/// The additional authenticated data to encrypt and decrypt a tenant's SMTP
/// password with, so a ciphertext copied to another tenant's row does not
/// decrypt there.
pub fn password_aad(tenant: &TenantId) -> String {
    format!("email.smtp_password:{tenant}")
}

/// Input shown in an error, cut so a huge value does not flood the message.
fn shown(value: &str) -> String {
    let mut out: String = value.chars().take(80).collect();
    if out.len() < value.len() {
        out.push('…');
    }
    out
}

/// A relay: a host name (one label allowed, e.g. `localhost`) or an IP address.
fn check_host(host: &str) -> Result<(), DomainError> {
    if host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    check_host_name(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> EmailSettings {
        EmailSettings {
            sending_domain: "acme.example".into(),
            from_name: "Acme Store".into(),
            from_address: "orders@acme.example".into(),
            reply_to: Some("help@support.acme-help.example".into()),
            relay: EmailRelay::Custom,
            smtp_host: Some("smtp.acme.example".into()),
            smtp_port: Some(587),
            smtp_tls: EmailTls::Starttls,
            smtp_username: Some("acme".into()),
            smtp_password_enc: Some("v1:opaque".into()),
        }
    }

    fn refused(edit: impl FnOnce(&mut EmailSettings)) -> EmailSettingsError {
        let mut settings = good();
        edit(&mut settings);
        validate_settings(&settings).expect_err("should be refused")
    }

    #[test]
    fn good_settings_pass() {
        validate_settings(&good()).unwrap();
        let platform = EmailSettings {
            relay: EmailRelay::Platform,
            smtp_host: None,
            smtp_port: None,
            smtp_tls: EmailTls::None,
            smtp_username: None,
            smtp_password_enc: None,
            reply_to: None,
            from_name: String::new(),
            ..good()
        };
        validate_settings(&platform).unwrap();
        // Case does not matter in domains.
        validate_settings(&EmailSettings {
            from_address: "Orders@ACME.example".into(),
            ..good()
        })
        .unwrap();
        // A plain loopback relay without credentials (tests, local relays).
        validate_settings(&EmailSettings {
            smtp_host: Some("127.0.0.1".into()),
            smtp_port: Some(2525),
            smtp_tls: EmailTls::None,
            smtp_username: None,
            smtp_password_enc: None,
            ..good()
        })
        .unwrap();
    }

    #[test]
    fn a_from_address_outside_the_sending_domain_is_refused() {
        let err = refused(|s| s.from_address = "a@other.com".into());
        assert_eq!(err.field, "from_address");
        assert!(
            err.to_string().starts_with(
                "from_address `a@other.com` is outside the sending domain `acme.example`; \
                 use an address @acme.example"
            ),
            "{err}"
        );
        // Exact domain only: a subdomain, or a look-alike suffix, is outside.
        assert_eq!(
            refused(|s| s.from_address = "a@mail.acme.example".into()).field,
            "from_address"
        );
        assert_eq!(
            refused(|s| s.from_address = "a@evilacme.example".into()).field,
            "from_address"
        );
    }

    #[test]
    fn line_breaks_are_refused_in_every_field() {
        type Edit = fn(&mut EmailSettings);
        let cases: [(&str, Edit); 7] = [
            ("sending_domain", |s| {
                s.sending_domain = "acme.example\r\n".into()
            }),
            ("from_name", |s| {
                s.from_name = "Acme\r\nBcc: victim@x.example".into()
            }),
            ("from_address", |s| {
                s.from_address = "orders@acme.example\nBcc: v@x.example".into()
            }),
            ("reply_to", |s| s.reply_to = Some("a@b.example\r".into())),
            ("smtp_host", |s| {
                s.smtp_host = Some("smtp.acme.example\r\nRSET".into())
            }),
            ("smtp_username", |s| {
                s.smtp_username = Some("u\nAUTH".into())
            }),
            ("smtp_password_enc", |s| {
                s.smtp_password_enc = Some("v1\n".into())
            }),
        ];
        for (field, edit) in cases {
            let err = refused(edit);
            assert_eq!(err.field, field);
            assert!(err.message.contains("line break"), "{err}");
        }
        assert!(
            refused(|s| s.from_name = "A\u{0}B".into())
                .message
                .contains("control")
        );
    }

    #[test]
    fn bad_addresses_and_domains_are_refused() {
        for bad in [
            "orders",
            "@acme.example",
            "a@b@acme.example",
            "a b@acme.example",
            ".a@acme.example",
            "a..b@acme.example",
            "\"a\"@acme.example",
            "a@acme.example.",
            "a@acme",
            "a@-acme.example",
            "a@acmé.example",
        ] {
            assert_eq!(
                refused(|s| s.reply_to = Some(bad.into())).field,
                "reply_to",
                "{bad}"
            );
        }
        for bad in [
            "",
            "acme",
            "acme..example",
            "acme.example.",
            "10.0.0.1",
            "a_b.example",
        ] {
            assert_eq!(
                refused(|s| s.sending_domain = bad.into()).field,
                "sending_domain",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_custom_relay_needs_host_port_and_safe_credentials() {
        assert_eq!(refused(|s| s.smtp_host = None).field, "smtp_host");
        assert_eq!(refused(|s| s.smtp_port = None).field, "smtp_port");
        for port in [0, 65536, 70000] {
            let err = refused(|s| s.smtp_port = Some(port));
            assert_eq!(err.field, "smtp_port");
            assert!(err.message.contains("1 to 65535"), "{err}");
        }
        assert_eq!(
            refused(|s| s.smtp_host = Some("smtp acme".into())).field,
            "smtp_host"
        );
        let err = refused(|s| s.smtp_tls = EmailTls::None);
        assert_eq!(err.field, "smtp_tls");
        assert!(err.message.contains("in clear"), "{err}");
        assert_eq!(
            refused(|s| s.smtp_password_enc = None).field,
            "smtp_password_enc"
        );
        assert_eq!(refused(|s| s.smtp_username = None).field, "smtp_username");
        assert_eq!(
            refused(|s| s.from_name = "n".repeat(101)).field,
            "from_name"
        );
    }

    #[test]
    fn a_display_name_that_reads_as_an_address_is_refused() {
        for forged in [
            "\"Bank\" <ceo@bank.example>",
            "ceo@bank.example",
            "Bank <ceo>",
            "Bank \u{FF1C}ceo\u{FF20}bank.example\u{FF1E}",
            "ceo\u{FE6B}bank.example",
        ] {
            let err = refused(|s| s.from_name = forged.into());
            assert_eq!(
                (err.field, err.code),
                ("from_name", FROM_NAME_CODE),
                "{forged}"
            );
            assert!(err.message.contains("read as an address"), "{err}");
        }
        for fine in [
            "Maison «Léa»",
            "Acme & Sons",
            "O'Brien \"Shop\"",
            "Acme (Returns)",
        ] {
            let mut settings = good();
            settings.from_name = fine.into();
            assert_eq!(validate_settings(&settings), Ok(()), "{fine}");
        }
        // Other rules keep the general code.
        assert_eq!(
            refused(|s| s.from_name = "n".repeat(101)).code,
            SETTINGS_CODE
        );
    }

    #[test]
    fn the_password_aad_names_the_tenant() {
        let a = password_aad(&TenantId::new("a").unwrap());
        let b = password_aad(&TenantId::new("b").unwrap());
        assert_ne!(a, b);
    }
}
