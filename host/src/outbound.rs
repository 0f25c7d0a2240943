//! The rule for outbound connections a tenant can point somewhere (today: its
//! own SMTP relay): which addresses and ports they may reach, with the
//! exceptions the platform's operator grants. It owns the address classifier
//! and name resolution for those connections, and nothing else: callers
//! connect to the addresses it returns, never to the name again, so a DNS
//! answer that changes between the check and the connection cannot slip an
//! internal address through.
//!
//! An address is refused when it is not public: loopback, private (RFC 1918),
//! shared (CGNAT), link-local (the cloud metadata service at 169.254.169.254
//! included), unique-local, site-local, unspecified, broadcast, multicast,
//! documentation, benchmarking and reserved ranges, for IPv4 and IPv6 alike;
//! IPv6 forms that carry an IPv4 address (mapped, compatible, NAT64, 6to4) are
//! judged by that address. A name is refused when ANY of its addresses is.
//! The platform's own relay is configured by the operator and is not checked.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

/// Mail submission ports a tenant's relay may use by default.
pub const SUBMISSION_PORTS: [u16; 4] = [25, 465, 587, 2525];

/// How long resolving a tenant-supplied name may take.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why an address is not public.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Internal {
    /// 0.0.0.0/8, `::`.
    Unspecified,
    /// 127.0.0.0/8, `::1`.
    Loopback,
    /// 10/8, 172.16/12, 192.168/16.
    Private,
    /// 100.64/10, carrier-grade NAT.
    Shared,
    /// 169.254.169.254 (and fd00:ec2::254), the cloud metadata service.
    Metadata,
    /// 169.254/16, fe80::/10.
    LinkLocal,
    /// fc00::/7.
    UniqueLocal,
    /// fec0::/10 (deprecated, still routed inside some networks).
    SiteLocal,
    /// 224/4, ff00::/8.
    Multicast,
    /// 255.255.255.255.
    Broadcast,
    /// 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32, 3fff::/20.
    Documentation,
    /// 198.18/15.
    Benchmarking,
    /// Everything else that is not global unicast: 192.0.0/24, 192.88.99/24,
    /// 240/4, IPv6 outside 2000::/3, 2001::/23, 64:ff9b:1::/48, 100::/64.
    Reserved,
}

impl Internal {
    /// The rule's name, as an error message says it.
    pub fn describe(self) -> &'static str {
        match self {
            Internal::Unspecified => "an unspecified",
            Internal::Loopback => "a loopback",
            Internal::Private => "a private",
            Internal::Shared => "a shared (carrier-grade NAT)",
            Internal::Metadata => "the cloud metadata",
            Internal::LinkLocal => "a link-local",
            Internal::UniqueLocal => "a unique-local",
            Internal::SiteLocal => "a site-local",
            Internal::Multicast => "a multicast",
            Internal::Broadcast => "the broadcast",
            Internal::Documentation => "a documentation",
            Internal::Benchmarking => "a benchmarking",
            Internal::Reserved => "a reserved",
        }
    }
}

/// `None` for a public address, else why it is not.
pub fn classify(ip: IpAddr) -> Option<Internal> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn in_v6(ip: Ipv6Addr, net: [u16; 8], prefix: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
    u128::from(ip) & mask == u128::from(Ipv6Addr::from(net)) & mask
}

fn classify_v4(ip: Ipv4Addr) -> Option<Internal> {
    use Internal::*;
    let ranges: [([u8; 4], u32, Internal); 17] = [
        ([169, 254, 169, 254], 32, Metadata),
        ([255, 255, 255, 255], 32, Broadcast),
        ([0, 0, 0, 0], 8, Unspecified),
        ([10, 0, 0, 0], 8, Private),
        ([100, 64, 0, 0], 10, Shared),
        ([127, 0, 0, 0], 8, Loopback),
        ([169, 254, 0, 0], 16, LinkLocal),
        ([172, 16, 0, 0], 12, Private),
        ([192, 0, 0, 0], 24, Reserved),
        ([192, 0, 2, 0], 24, Documentation),
        ([192, 88, 99, 0], 24, Reserved),
        ([192, 168, 0, 0], 16, Private),
        ([198, 18, 0, 0], 15, Benchmarking),
        ([198, 51, 100, 0], 24, Documentation),
        ([203, 0, 113, 0], 24, Documentation),
        ([224, 0, 0, 0], 4, Multicast),
        ([240, 0, 0, 0], 4, Reserved),
    ];
    ranges
        .iter()
        .find(|(net, prefix, _)| in_v4(ip, *net, *prefix))
        .map(|(_, _, kind)| *kind)
}

fn classify_v6(ip: Ipv6Addr) -> Option<Internal> {
    use Internal::*;
    let bits = u128::from(ip);
    if ip.is_unspecified() {
        return Some(Unspecified);
    }
    if ip.is_loopback() {
        return Some(Loopback);
    }
    // Forms that carry an IPv4 address are judged by it: mapped ::ffff:a.b.c.d,
    // compatible ::a.b.c.d (deprecated, still parsed), NAT64 64:ff9b::a.b.c.d.
    let low32 = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    if in_v6(ip, [0, 0, 0, 0, 0, 0xffff, 0, 0], 96)
        || in_v6(ip, [0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96)
    {
        return classify_v4(low32);
    }
    if in_v6(ip, [0; 8], 96) {
        // Deprecated; never a public address, whatever it embeds.
        return Some(classify_v4(low32).unwrap_or(Reserved));
    }
    // 6to4 (2002::/16) carries an IPv4 address in bits 16..48.
    if in_v6(ip, [0x2002, 0, 0, 0, 0, 0, 0, 0], 16) {
        let embedded = Ipv4Addr::from(((bits >> 80) & 0xffff_ffff) as u32);
        return classify_v4(embedded);
    }
    let ranges: [([u16; 8], u32, Internal); 11] = [
        ([0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254], 128, Metadata),
        ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, LinkLocal),
        ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, SiteLocal),
        ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, UniqueLocal),
        ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, Multicast),
        ([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32, Documentation),
        ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, Documentation),
        ([0x2001, 0, 0, 0, 0, 0, 0, 0], 23, Reserved),
        ([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48, Reserved),
        ([0x100, 0, 0, 0, 0, 0, 0, 0], 64, Reserved),
        ([0x2001, 0x2, 0, 0, 0, 0, 0, 0], 48, Benchmarking),
    ];
    if let Some((_, _, kind)) = ranges
        .iter()
        .find(|(net, prefix, _)| in_v6(ip, *net, *prefix))
    {
        return Some(*kind);
    }
    // Global unicast is 2000::/3; everything else is unassigned or special.
    if !in_v6(ip, [0x2000, 0, 0, 0, 0, 0, 0, 0], 3) {
        return Some(Reserved);
    }
    None
}

/// An exception the operator grants: addresses (one, or a network) a tenant's
/// connection may reach although they are internal, on one port or on the
/// allowed ports. Written `IP`, `IP/PREFIX`, `IP:PORT`, `IP/PREFIX:PORT`, with
/// IPv6 in brackets when a port follows (`[::1]:2525`, `[fd00::/8]:587`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedTarget {
    net: IpAddr,
    prefix: u8,
    port: Option<u16>,
}

impl AllowedTarget {
    /// Whether `addr` is inside this exception (address and, if set, port).
    fn covers(&self, addr: SocketAddr) -> bool {
        let ip = canonical(addr.ip());
        let inside = match (self.net, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => in_v4(ip, net.octets(), u32::from(self.prefix)),
            (IpAddr::V6(net), IpAddr::V6(ip)) => in_v6(ip, net.segments(), u32::from(self.prefix)),
            _ => false,
        };
        inside && self.port.is_none_or(|port| port == addr.port())
    }
}

/// IPv4-mapped IPv6 addresses as the IPv4 address they are.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl FromStr for AllowedTarget {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!(
                "`{text}` {why}; write an address, a network or either with a port: \
                 10.0.0.5, 10.0.0.0/24, 10.0.0.5:2525, [fd00::1]:587"
            )
        };
        let text = text.trim();
        let (net, port) = if let Some(rest) = text.strip_prefix('[') {
            let (inside, after) = rest.split_once(']').ok_or_else(|| bad("has no `]`"))?;
            let port = match after {
                "" => None,
                after => Some(
                    after
                        .strip_prefix(':')
                        .ok_or_else(|| bad("has text after `]`"))?,
                ),
            };
            (inside, port)
        } else if text.matches(':').count() == 1 {
            let (net, port) = text.split_once(':').ok_or_else(|| bad("is malformed"))?;
            (net, Some(port))
        } else {
            (text, None)
        };
        let port = port
            .map(|p| {
                p.parse::<u16>()
                    .ok()
                    .filter(|&p| p != 0)
                    .ok_or_else(|| bad("has a port that is not 1 to 65535"))
            })
            .transpose()?;
        let (ip, prefix) = match net.split_once('/') {
            Some((ip, prefix)) => (ip, Some(prefix)),
            None => (net, None),
        };
        let ip: IpAddr = ip.parse().map_err(|_| bad("is not an IP address"))?;
        let ip = canonical(ip);
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or_else(|| bad("has a prefix length out of range"))?,
            None => max,
        };
        Ok(AllowedTarget {
            net: ip,
            prefix,
            port,
        })
    }
}

impl fmt::Display for AllowedTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let full = if self.net.is_ipv4() { 32 } else { 128 };
        let net = if self.prefix == full {
            self.net.to_string()
        } else {
            format!("{}/{}", self.net, self.prefix)
        };
        match (self.port, self.net) {
            (Some(port), IpAddr::V6(_)) => write!(f, "[{net}]:{port}"),
            (Some(port), IpAddr::V4(_)) => write!(f, "{net}:{port}"),
            (None, _) => f.write_str(&net),
        }
    }
}

/// A tenant-directed connection that may not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The port is not one the platform allows.
    #[error("port {port} is not allowed; use one of {allowed}")]
    Port {
        /// The port asked for.
        port: u16,
        /// The allowed ports, listed.
        allowed: String,
    },
    /// An address the name resolves to (or the address given) is internal.
    /// The address itself is not named: the tenant learns the rule, not the
    /// platform's network.
    #[error("resolves to {} address, which a tenant's connection may not reach; give a public host name", .0.describe())]
    Address(Internal),
    /// The name does not resolve (or not in time).
    #[error("does not resolve ({0}); check the host name")]
    Unresolvable(String),
}

impl Refusal {
    /// A stable code for the rule, e.g. for an API error.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Port { .. } => "relay_port_not_allowed",
            Refusal::Address(_) => "relay_address_not_allowed",
            Refusal::Unresolvable(_) => "relay_unresolvable",
        }
    }
}

/// Where tenant-directed connections may go: public addresses on `ports`,
/// plus the operator's exceptions in `allow`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundPolicy {
    /// Ports allowed on any public address.
    pub ports: Vec<u16>,
    /// Internal addresses (and ports) allowed all the same.
    pub allow: Vec<AllowedTarget>,
}

impl Default for OutboundPolicy {
    fn default() -> Self {
        OutboundPolicy {
            ports: SUBMISSION_PORTS.to_vec(),
            allow: Vec::new(),
        }
    }
}

impl OutboundPolicy {
    fn port_refusal(&self, port: u16) -> Refusal {
        let allowed = self
            .ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        Refusal::Port {
            port,
            allowed: if allowed.is_empty() {
                "none (the platform allows no relay ports)".into()
            } else {
                allowed
            },
        }
    }

    /// Whether a connection to `addr` may be made.
    pub fn check(&self, addr: SocketAddr) -> Result<(), Refusal> {
        let listed = self.ports.contains(&addr.port());
        let excepted = self
            .allow
            .iter()
            .any(|a| a.covers(addr) && (a.port.is_some() || listed));
        if excepted {
            return Ok(());
        }
        if let Some(kind) = classify(addr.ip()) {
            return Err(Refusal::Address(kind));
        }
        if !listed {
            return Err(self.port_refusal(addr.port()));
        }
        Ok(())
    }

    /// Resolves `host` (a name or an IP address) for `port` and checks every
    /// address; the connection must go to one of those returned, never to the
    /// name again.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, Refusal> {
        // A port nothing allows is refused before any DNS query is made.
        if !self.ports.contains(&port) && !self.allow.iter().any(|a| a.port == Some(port)) {
            return Err(self.port_refusal(port));
        }
        let found = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port)))
            .await
            .map_err(|_| Refusal::Unresolvable(format!("no answer within {RESOLVE_TIMEOUT:?}")))?
            .map_err(|err| Refusal::Unresolvable(err.to_string()))?;
        let addrs: Vec<SocketAddr> = found.collect();
        if addrs.is_empty() {
            return Err(Refusal::Unresolvable("no addresses".into()));
        }
        for addr in &addrs {
            self.check(*addr)?;
        }
        Ok(addrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect(text)
    }

    #[test]
    fn the_classifier_knows_every_internal_range() {
        use Internal::*;
        let cases: &[(&str, Option<Internal>)] = &[
            // IPv4
            ("0.0.0.0", Some(Unspecified)),
            ("0.1.2.3", Some(Unspecified)),
            ("10.0.0.1", Some(Private)),
            ("10.255.255.255", Some(Private)),
            ("100.64.0.1", Some(Shared)),
            ("100.127.255.255", Some(Shared)),
            ("100.128.0.1", None),
            ("127.0.0.1", Some(Loopback)),
            ("127.255.0.9", Some(Loopback)),
            ("169.254.169.254", Some(Metadata)),
            ("169.254.0.1", Some(LinkLocal)),
            ("172.16.0.1", Some(Private)),
            ("172.31.255.255", Some(Private)),
            ("172.32.0.1", None),
            ("172.15.255.255", None),
            ("192.0.0.8", Some(Reserved)),
            ("192.0.2.7", Some(Documentation)),
            ("192.88.99.1", Some(Reserved)),
            ("192.168.1.1", Some(Private)),
            ("198.18.0.1", Some(Benchmarking)),
            ("198.19.255.255", Some(Benchmarking)),
            ("198.51.100.1", Some(Documentation)),
            ("203.0.113.9", Some(Documentation)),
            ("224.0.0.1", Some(Multicast)),
            ("239.255.255.250", Some(Multicast)),
            ("240.0.0.1", Some(Reserved)),
            ("255.255.255.255", Some(Broadcast)),
            ("8.8.8.8", None),
            ("93.184.216.34", None),
            ("1.1.1.1", None),
            // IPv6
            ("::", Some(Unspecified)),
            ("::1", Some(Loopback)),
            ("fe80::1", Some(LinkLocal)),
            ("febf::1", Some(LinkLocal)),
            ("fec0::1", Some(SiteLocal)),
            ("fc00::1", Some(UniqueLocal)),
            ("fd12:3456::1", Some(UniqueLocal)),
            ("fd00:ec2::254", Some(Metadata)),
            ("ff02::1", Some(Multicast)),
            ("2001:db8::1", Some(Documentation)),
            ("3fff::1", Some(Documentation)),
            ("2001::1", Some(Reserved)),
            ("2001:2::1", Some(Reserved)),
            ("100::1", Some(Reserved)),
            ("64:ff9b:1::1", Some(Reserved)),
            ("4000::1", Some(Reserved)),
            ("2606:4700:4700::1111", None),
            ("2a00:1450:4007:80e::200e", None),
            // IPv4 inside IPv6
            ("::ffff:127.0.0.1", Some(Loopback)),
            ("::ffff:7f00:1", Some(Loopback)),
            ("::ffff:10.0.0.1", Some(Private)),
            ("::ffff:169.254.169.254", Some(Metadata)),
            ("::ffff:8.8.8.8", None),
            ("::127.0.0.1", Some(Loopback)),
            ("::10.0.0.1", Some(Private)),
            ("::8.8.8.8", Some(Reserved)),
            ("64:ff9b::127.0.0.1", Some(Loopback)),
            ("64:ff9b::a9fe:a9fe", Some(Metadata)),
            ("64:ff9b::8.8.8.8", None),
            ("2002:7f00:1::", Some(Loopback)),
            ("2002:a00:1::1", Some(Private)),
            ("2002:808:808::1", None),
        ];
        for (text, expected) in cases {
            assert_eq!(classify(ip(text)), *expected, "{text}");
        }
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect(text)
    }

    #[test]
    fn ports_and_exceptions() {
        let policy = OutboundPolicy::default();
        assert_eq!(policy.check(addr("8.8.8.8:587")), Ok(()));
        assert_eq!(policy.check(addr("[2606:4700::1]:465")), Ok(()));
        assert_eq!(
            policy.check(addr("8.8.8.8:9")).unwrap_err().code(),
            "relay_port_not_allowed"
        );
        assert_eq!(
            policy.check(addr("127.0.0.1:587")),
            Err(Refusal::Address(Internal::Loopback))
        );

        let policy = OutboundPolicy {
            ports: vec![587],
            allow: vec![
                "127.0.0.1:2525".parse().unwrap(),
                "10.1.0.0/16".parse().unwrap(),
                "[fd00::/8]:25".parse().unwrap(),
            ],
        };
        // The exception with a port allows that port, and only it.
        assert_eq!(policy.check(addr("127.0.0.1:2525")), Ok(()));
        assert_eq!(policy.check(addr("[::ffff:127.0.0.1]:2525")), Ok(()));
        assert!(policy.check(addr("127.0.0.1:4222")).is_err());
        assert!(policy.check(addr("127.0.0.2:2525")).is_err());
        // Without a port, the allowed ports.
        assert_eq!(policy.check(addr("10.1.2.3:587")), Ok(()));
        assert!(policy.check(addr("10.1.2.3:25")).is_err());
        assert!(policy.check(addr("10.2.0.1:587")).is_err());
        assert_eq!(policy.check(addr("[fd12::1]:25")), Ok(()));
        assert!(policy.check(addr("[fe80::1]:25")).is_err());
        // Public addresses: the allowed ports only.
        assert!(policy.check(addr("8.8.8.8:25")).is_err());
    }

    #[test]
    fn exceptions_parse_and_print() {
        for (text, shown) in [
            ("127.0.0.1", "127.0.0.1"),
            ("127.0.0.1:2525", "127.0.0.1:2525"),
            ("10.0.0.0/8", "10.0.0.0/8"),
            ("10.0.0.0/8:587", "10.0.0.0/8:587"),
            ("::1", "::1"),
            ("[::1]:2525", "[::1]:2525"),
            ("[fd00::/8]:25", "[fd00::/8]:25"),
            ("fd00::/8", "fd00::/8"),
            ("[::ffff:127.0.0.1]:25", "127.0.0.1:25"),
        ] {
            let parsed: AllowedTarget = text.parse().expect(text);
            assert_eq!(parsed.to_string(), shown, "{text}");
        }
        for bad in [
            "",
            "localhost",
            "10.0.0.1:0",
            "10.0.0.1:99999",
            "10.0.0.0/33",
            "[::1",
            "[::1]x",
            "::1/129",
        ] {
            assert!(bad.parse::<AllowedTarget>().is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn names_are_resolved_and_every_address_checked() {
        let policy = OutboundPolicy::default();
        for host in [
            "127.0.0.1",
            "::1",
            "::ffff:127.0.0.1",
            "10.0.0.1",
            "169.254.169.254",
            "localhost",
            "127.1",
        ] {
            let err = policy.resolve(host, 587).await.expect_err(host);
            assert_eq!(err.code(), "relay_address_not_allowed", "{host}: {err}");
            assert!(
                !err.to_string().contains("127.0.0.1"),
                "the address is not echoed: {err}"
            );
        }
        // The port is refused before any lookup.
        let err = policy
            .resolve("nats.internal.invalid", 4222)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "relay_port_not_allowed", "{err}");
        let err = policy
            .resolve("no-such-host.invalid", 587)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "relay_unresolvable", "{err}");
        // An exception lets the test relay on loopback through, at that address.
        let policy = OutboundPolicy {
            allow: vec!["127.0.0.1:2600".parse().unwrap()],
            ..OutboundPolicy::default()
        };
        assert_eq!(
            policy.resolve("127.0.0.1", 2600).await,
            Ok(vec![addr("127.0.0.1:2600")])
        );
    }
}
