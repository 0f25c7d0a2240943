//! Email address and domain syntax: the one check every caller uses — a
//! tenant's from and reply-to addresses, a send's recipient, the recipient of
//! a bounce report, the domain of a VERP address, and the `reply_to` of an
//! email template a plugin returns (`validate.rs`). It does no I/O and
//! depends on nothing else of the crate, so any module may use it; it must not
//! grow DNS lookups or knowledge of tenants.
//!
//! An address is the plain `local@domain` form: a dot-atom local part (no
//! quoted string, comment or display name) of at most 64 characters and an
//! ASCII domain of at least two labels (an international domain in its
//! `xn--` form, never an IP address), 254 characters in all. That is stricter
//! than RFC 5322 allows and what every relay and mailbox provider accepts;
//! above all, a value that passes can carry neither a second header nor a
//! second recipient.

/// Most characters an address may have (RFC 5321: a 256-character path,
/// angle brackets included).
pub const MAX_ADDRESS_CHARS: usize = 254;
/// Most characters before the '@' (RFC 5321).
pub const MAX_LOCAL_CHARS: usize = 64;
/// Most characters of a domain name.
pub const MAX_DOMAIN_CHARS: usize = 253;
/// Most characters of one label of a domain name.
pub const MAX_LABEL_CHARS: usize = 63;

/// Characters that make a value a list of addresses or an address with a
/// display name, never one bare address.
const NOT_BARE: [char; 4] = [',', ';', '<', '>'];

/// Why a value is not an address. Each message completes a sentence about the
/// value ("`ann` has no '@'"); the caller adds what to give instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// A CR or LF: a header injection.
    #[error("contains a line break")]
    LineBreak,
    /// Another control character (tab included).
    #[error("contains a control character")]
    Control,
    /// A list separator or angle bracket.
    #[error(
        "contains `{0}`: it must be one bare address, without a display name, angle brackets or a list"
    )]
    NotBare(char),
    /// A space, or any other whitespace.
    #[error("contains whitespace")]
    Whitespace,
    /// Longer than [`MAX_ADDRESS_CHARS`].
    #[error("is longer than {MAX_ADDRESS_CHARS} characters")]
    TooLong,
    /// No '@' at all.
    #[error("has no '@'")]
    NoAt,
    /// Two or more.
    #[error("has more than one '@'")]
    SeveralAt,
    /// Nothing before the '@'.
    #[error("has nothing before the '@'")]
    EmptyLocal,
    /// Longer than [`MAX_LOCAL_CHARS`] before the '@'.
    #[error("has more than {MAX_LOCAL_CHARS} characters before the '@'")]
    LocalTooLong,
    /// A character outside RFC 5322's atext (and '.') before the '@'.
    #[error(
        "has `{}` before the '@', which an address cannot contain unquoted",
        .0.escape_default()
    )]
    LocalCharacter(char),
    /// A '.' at either end of the local part, or two in a row.
    #[error("has a misplaced '.' before the '@' (at an end, or two in a row)")]
    MisplacedDot,
    /// The part after the '@' is not a domain name.
    #[error("has a domain that {0}")]
    Domain(DomainError),
}

/// Why a value is not a domain (or host) name. Each message completes a
/// sentence about the name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// Nothing at all.
    #[error("is empty")]
    Empty,
    /// Longer than [`MAX_DOMAIN_CHARS`].
    #[error("is longer than {MAX_DOMAIN_CHARS} characters")]
    TooLong,
    /// Not ASCII (an IDN not in its `xn--` form).
    #[error("is not ASCII; write an international domain in its `xn--` form")]
    NotAscii,
    /// A leading, trailing or doubled '.'.
    #[error("has an empty label (a leading, trailing or doubled '.')")]
    EmptyLabel,
    /// A label longer than [`MAX_LABEL_CHARS`].
    #[error("has a label longer than {MAX_LABEL_CHARS} characters")]
    LabelTooLong,
    /// A character other than a letter, digit, '-' or '.'.
    #[error("contains `{}`; use letters, digits, '-' and '.'", .0.escape_default())]
    Character(char),
    /// A label starting or ending with '-'.
    #[error("has a label starting or ending with '-'")]
    Hyphen,
    /// One label only, where a public domain is needed.
    #[error("has a single label; use a full domain such as `acme.example`")]
    SingleLabel,
    /// An all-digit last label: an IP address, not a domain.
    #[error("ends in a numeric label; use a domain name, not an IP address")]
    Numeric,
}

/// Checks that `address` is one plain `local@domain` address (see the module
/// docs) and returns its domain, as written.
pub fn check_address(address: &str) -> Result<&str, AddressError> {
    if address.contains(['\r', '\n']) {
        return Err(AddressError::LineBreak);
    }
    if address.chars().any(char::is_control) {
        return Err(AddressError::Control);
    }
    if let Some(c) = address.chars().find(|c| NOT_BARE.contains(c)) {
        return Err(AddressError::NotBare(c));
    }
    if address.chars().any(char::is_whitespace) {
        return Err(AddressError::Whitespace);
    }
    if address.chars().count() > MAX_ADDRESS_CHARS {
        return Err(AddressError::TooLong);
    }
    let Some((local, domain)) = address.rsplit_once('@') else {
        return Err(AddressError::NoAt);
    };
    if local.contains('@') {
        return Err(AddressError::SeveralAt);
    }
    check_local_part(local)?;
    check_domain(domain).map_err(AddressError::Domain)?;
    Ok(domain)
}

fn check_local_part(local: &str) -> Result<(), AddressError> {
    if local.is_empty() {
        return Err(AddressError::EmptyLocal);
    }
    if local.chars().count() > MAX_LOCAL_CHARS {
        return Err(AddressError::LocalTooLong);
    }
    // RFC 5322 atext, without quoted strings.
    let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
    if let Some(c) = local.chars().find(|&c| !(atext(c) || c == '.')) {
        return Err(AddressError::LocalCharacter(c));
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(AddressError::MisplacedDot);
    }
    Ok(())
}

/// Checks a public domain name: ASCII labels of letters, digits and inner
/// '-', at least two of them, the last not all digits.
pub fn check_domain(domain: &str) -> Result<(), DomainError> {
    check_host_name(domain)?;
    if !domain.contains('.') {
        return Err(DomainError::SingleLabel);
    }
    if domain
        .rsplit('.')
        .next()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(DomainError::Numeric);
    }
    Ok(())
}

/// Checks a host name: like [`check_domain`], but one label (`localhost`) and
/// an all-digit last label are allowed. An IP address is the caller's case.
pub fn check_host_name(name: &str) -> Result<(), DomainError> {
    if name.is_empty() {
        return Err(DomainError::Empty);
    }
    if name.len() > MAX_DOMAIN_CHARS {
        return Err(DomainError::TooLong);
    }
    if !name.is_ascii() {
        return Err(DomainError::NotAscii);
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(DomainError::EmptyLabel);
        }
        if label.len() > MAX_LABEL_CHARS {
            return Err(DomainError::LabelTooLong);
        }
        if let Some(c) = label
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || c == '-'))
        {
            return Err(DomainError::Character(c));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(DomainError::Hyphen);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::AddressError as A;
    use super::DomainError as D;
    use super::*;

    #[test]
    fn plain_addresses_pass_and_give_their_domain() {
        for (address, domain) in [
            ("ann@example.com", "example.com"),
            ("Ann.Lee@Example.COM", "Example.COM"),
            ("o'brien+orders@shop.example.co.uk", "shop.example.co.uk"),
            ("a!#$%&'*+-/=?^_`{|}~z@acme.example", "acme.example"),
            ("x@xn--bcher-kva.example", "xn--bcher-kva.example"),
            (
                "help@support.acme-help.example",
                "support.acme-help.example",
            ),
            ("1@2.example", "2.example"),
        ] {
            assert_eq!(check_address(address), Ok(domain), "{address}");
        }
        let longest_local = format!("{}@acme.example", "a".repeat(MAX_LOCAL_CHARS));
        assert!(check_address(&longest_local).is_ok());
        let longest_label = format!("a@{}.example", "b".repeat(MAX_LABEL_CHARS));
        assert!(check_address(&longest_label).is_ok());
        let longest = format!("a@{}.example", [&*"b".repeat(60); 4].join("."));
        assert_eq!(longest.len(), MAX_ADDRESS_CHARS - 1);
        assert!(check_address(&longest).is_ok());
    }

    /// Every case the two former checks refused (the template `reply_to`
    /// check in `validate.rs` and the email settings check), plus the
    /// recipients the send API refuses, each with the reason it now gets.
    #[test]
    fn everything_either_former_check_refused_is_refused() {
        let over_local = format!("{}@acme.example", "a".repeat(MAX_LOCAL_CHARS + 1));
        let over_label = format!("a@{}.example", "b".repeat(MAX_LABEL_CHARS + 1));
        let over_all = format!("a@{}.example", [&*"b".repeat(62); 4].join("."));
        let cases: Vec<(&str, AddressError)> = vec![
            ("", A::NoAt),
            ("help", A::NoAt),
            ("orders", A::NoAt),
            ("ann@", A::Domain(D::Empty)),
            ("@example.com", A::EmptyLocal),
            ("a@b@example.com", A::SeveralAt),
            ("help@localhost", A::Domain(D::SingleLabel)),
            ("a@acme", A::Domain(D::SingleLabel)),
            ("help@example.com.", A::Domain(D::EmptyLabel)),
            ("a@.example.com", A::Domain(D::EmptyLabel)),
            ("a@acme..example", A::Domain(D::EmptyLabel)),
            ("help @example.com", A::Whitespace),
            ("a b@acme.example", A::Whitespace),
            ("a@acme .example", A::Whitespace),
            ("a\u{a0}b@acme.example", A::Whitespace),
            ("a\tb@acme.example", A::Control),
            ("a\u{0}b@acme.example", A::Control),
            ("a@example.com,b@example.com", A::NotBare(',')),
            ("ann@example.com, bob@example.com", A::NotBare(',')),
            ("a@example.com;b@example.com", A::NotBare(';')),
            ("Ann <ann@example.com>", A::NotBare('<')),
            ("<ann@example.com>", A::NotBare('<')),
            (".a@acme.example", A::MisplacedDot),
            ("a.@acme.example", A::MisplacedDot),
            ("a..b@acme.example", A::MisplacedDot),
            ("\"a\"@acme.example", A::LocalCharacter('"')),
            ("a(comment)@acme.example", A::LocalCharacter('(')),
            ("é@acme.example", A::LocalCharacter('é')),
            (&over_local, A::LocalTooLong),
            ("a@-acme.example", A::Domain(D::Hyphen)),
            ("a@acme-.example", A::Domain(D::Hyphen)),
            ("a@acmé.example", A::Domain(D::NotAscii)),
            ("a@a_b.example", A::Domain(D::Character('_'))),
            ("a@10.0.0.1", A::Domain(D::Numeric)),
            ("a@[10.0.0.1]", A::Domain(D::Character('['))),
            (&over_label, A::Domain(D::LabelTooLong)),
            (&over_all, A::TooLong),
        ];
        for (address, why) in cases {
            assert_eq!(check_address(address), Err(why), "{address:?}");
        }
    }

    /// A hostile value never gets through as an address: a second header, a
    /// second recipient, or a display name that forges the sender.
    #[test]
    fn header_and_recipient_injection_is_refused() {
        for hostile in [
            "ann@example.com\r\nBcc: victim@evil.example",
            "help@example.com\nReply-To: x@evil.example",
            "ann@example.com\rX: y",
            "ann@example.com,victim@evil.example",
            "\"Bank\" <ceo@bank.example>",
            "ann@example.com>, <victim@evil.example",
        ] {
            assert!(check_address(hostile).is_err(), "{hostile:?}");
        }
        assert_eq!(
            check_address("ann@example.com\r\nBcc: victim@evil.example"),
            Err(A::LineBreak)
        );
    }

    #[test]
    fn messages_complete_a_sentence_about_the_value() {
        let say = |value: &str| {
            let why = check_address(value).expect_err("refused");
            format!("`{value}` {why}")
        };
        assert_eq!(say("ann"), "`ann` has no '@'");
        assert_eq!(
            say("a@acme"),
            "`a@acme` has a domain that has a single label; use a full domain such as `acme.example`"
        );
        assert_eq!(
            say("\"a\"@x.example"),
            "`\"a\"@x.example` has `\\\"` before the '@', which an address cannot contain unquoted"
        );
        assert!(say("Ann <a@x.example>").contains("without a display name"));
    }

    #[test]
    fn domains_and_host_names() {
        for ok in ["acme.example", "xn--bcher-kva.example", "a-b.c9.example"] {
            assert_eq!(check_domain(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("", D::Empty),
            ("acme", D::SingleLabel),
            ("acme..example", D::EmptyLabel),
            ("acme.example.", D::EmptyLabel),
            ("10.0.0.1", D::Numeric),
            ("a_b.example", D::Character('_')),
            ("acmé.example", D::NotAscii),
        ] {
            assert_eq!(check_domain(bad), Err(why), "{bad:?}");
        }
        assert_eq!(
            check_domain(&format!("{}.example", [&*"a".repeat(63); 4].join("."))),
            Err(D::TooLong)
        );
        // A host may be one label, or look like an address.
        for ok in ["localhost", "smtp.acme.example", "10.0.0.1"] {
            assert_eq!(check_host_name(ok), Ok(()), "{ok}");
        }
        assert_eq!(check_host_name("smtp_relay"), Err(D::Character('_')));
    }
}
