//! Which tenant a request's host names: `<tenant>.<base-domain>`, a custom domain
//! mapped in the database, or the platform itself (the base domain, an IP
//! address or `localhost`), which serves only health and admin routes.

use super::TenantId;

/// What a host header names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostTarget {
    /// The platform: health and admin routes only.
    Platform,
    /// A tenant subdomain of the base domain.
    Subdomain(TenantId),
    /// Some other name: maybe a tenant's custom domain.
    Custom(String),
    /// Not a usable host name.
    Invalid,
}

/// Classifies a `Host` header value against the base domain.
pub fn classify(host: &str, base_domain: &str) -> HostTarget {
    let host = strip_port(host.trim()).trim_end_matches('.');
    let base = base_domain.trim_end_matches('.');
    if host.is_empty()
        || host.len() > 253
        || !host.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || b == b'-'
                || b == b'.'
                || b == b':'
                || b == b'['
                || b == b']'
        })
    {
        return HostTarget::Invalid;
    }
    // Every byte is ASCII from here on, so byte offsets are char boundaries.
    if host.eq_ignore_ascii_case(base)
        || host.eq_ignore_ascii_case("localhost")
        || host.starts_with('[')
        || host.parse::<std::net::IpAddr>().is_ok()
    {
        return HostTarget::Platform;
    }
    let label_end = host.len().saturating_sub(base.len() + 1);
    if host.len() > base.len()
        && host.as_bytes()[label_end] == b'.'
        && host[label_end + 1..].eq_ignore_ascii_case(base)
    {
        let sub = &host[..label_end];
        let id = if sub.bytes().any(|b| b.is_ascii_uppercase()) {
            TenantId::new(sub.to_ascii_lowercase())
        } else {
            TenantId::new(sub)
        };
        return match id {
            Ok(id) => HostTarget::Subdomain(id),
            // a.b.<base> or an invalid label: no tenant has it.
            Err(_) => HostTarget::Invalid,
        };
    }
    HostTarget::Custom(host.to_ascii_lowercase())
}

/// The name of a `name:port` host (an IPv6 literal keeps its brackets).
pub fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        // [v6]:port
        return host
            .split_once("]:")
            .map_or(host, |(addr, _)| &host[..=addr.len()]);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(id: &str) -> HostTarget {
        HostTarget::Subdomain(TenantId::new(id).unwrap())
    }

    #[test]
    fn classifies_hosts() {
        assert_eq!(
            classify("acme.veneer.example", "veneer.example"),
            sub("acme")
        );
        assert_eq!(
            classify("ACME.Veneer.Example:8080", "veneer.example"),
            sub("acme")
        );
        assert_eq!(
            classify("veneer.example", "veneer.example"),
            HostTarget::Platform
        );
        assert_eq!(
            classify("127.0.0.1:8080", "veneer.example"),
            HostTarget::Platform
        );
        assert_eq!(
            classify("[::1]:8080", "veneer.example"),
            HostTarget::Platform
        );
        assert_eq!(
            classify("localhost:8080", "localhost"),
            HostTarget::Platform
        );
        assert_eq!(classify("acme.localhost:8080", "localhost"), sub("acme"));
        assert_eq!(
            classify("shop.acme.com", "veneer.example"),
            HostTarget::Custom("shop.acme.com".into())
        );
        assert_eq!(
            classify("a.b.veneer.example", "veneer.example"),
            HostTarget::Invalid
        );
        assert_eq!(classify("evil/..", "veneer.example"), HostTarget::Invalid);
        // The base must follow a dot: a look-alike domain is someone else's.
        assert_eq!(
            classify("acmeveneer.example", "veneer.example"),
            HostTarget::Custom("acmeveneer.example".into())
        );
        assert_eq!(
            classify("Shop.Acme.COM.", "veneer.example"),
            HostTarget::Custom("shop.acme.com".into())
        );
        assert_eq!(
            classify(".veneer.example", "veneer.example"),
            HostTarget::Invalid
        );
        assert_eq!(
            classify("LOCALHOST", "veneer.example"),
            HostTarget::Platform
        );
        assert_eq!(
            classify("acme.veneer.example", "Veneer.Example."),
            sub("acme")
        );
        assert_eq!(
            classify("acmé.veneer.example", "veneer.example"),
            HostTarget::Invalid
        );
        assert_eq!(classify("", "veneer.example"), HostTarget::Invalid);
    }
}
