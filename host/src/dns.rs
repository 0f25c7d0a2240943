//! DNS lookups for proving domains: TXT and CNAME records, through
//! hickory-resolver, without a cache (a re-check must see a record that was
//! just published or removed), each lookup bounded in time. The name server
//! is the system's (`/etc/resolv.conf`) unless `--dns-server` names one (tests
//! point it at a local DNS server).

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::rr::RecordType;
use hickory_resolver::proto::xfer::Protocol;

/// How long one lookup may take, retries included.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a lookup gave no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DnsError {
    /// The name has no record of that type (a definite answer).
    #[error("no {0} record")]
    NoRecord(&'static str),
    /// The name server could not be asked, or did not answer in time
    /// (temporary: ask again later).
    #[error("the DNS lookup failed: {0}")]
    Unavailable(String),
}

/// The resolver Veneer proves domains with.
#[derive(Clone)]
pub struct Dns {
    resolver: TokioResolver,
}

impl std::fmt::Debug for Dns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dns").finish_non_exhaustive()
    }
}

impl Dns {
    /// A resolver asking `server` (UDP, then TCP for long answers), or the
    /// system's name servers when `None`.
    pub fn new(server: Option<SocketAddr>) -> anyhow::Result<Self> {
        let mut options = ResolverOpts::default();
        options.cache_size = 0;
        options.timeout = Duration::from_secs(2);
        options.attempts = 2;
        let builder = match server {
            Some(addr) => {
                let mut config = ResolverConfig::new();
                config.add_name_server(NameServerConfig::new(addr, Protocol::Udp));
                config.add_name_server(NameServerConfig::new(addr, Protocol::Tcp));
                TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
            }
            None => TokioResolver::builder_tokio()?,
        };
        Ok(Self {
            resolver: builder.with_options(options).build(),
        })
    }

    /// The TXT strings at `name` (each record's strings joined).
    pub async fn txt(&self, name: &str) -> Result<Vec<String>, DnsError> {
        let lookup = tokio::time::timeout(LOOKUP_TIMEOUT, self.resolver.txt_lookup(fqdn(name)))
            .await
            .map_err(|_| DnsError::Unavailable("timed out".into()))?
            .map_err(|err| classify(&err, "TXT"))?;
        Ok(lookup
            .iter()
            .map(|txt| {
                txt.txt_data()
                    .iter()
                    .map(|part| String::from_utf8_lossy(part).into_owned())
                    .collect::<String>()
            })
            .collect())
    }

    /// The CNAME target of `name`, lowercase, without the final dot.
    pub async fn cname(&self, name: &str) -> Result<String, DnsError> {
        let lookup = tokio::time::timeout(
            LOOKUP_TIMEOUT,
            self.resolver.lookup(fqdn(name), RecordType::CNAME),
        )
        .await
        .map_err(|_| DnsError::Unavailable("timed out".into()))?
        .map_err(|err| classify(&err, "CNAME"))?;
        lookup
            .record_iter()
            .filter_map(|record| record.data().as_cname())
            .map(|target| {
                target
                    .0
                    .to_ascii()
                    .trim_end_matches('.')
                    .to_ascii_lowercase()
            })
            .next()
            .ok_or(DnsError::NoRecord("CNAME"))
    }
}

fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    }
}

fn classify(err: &hickory_resolver::ResolveError, kind: &'static str) -> DnsError {
    if err.is_no_records_found() {
        DnsError::NoRecord(kind)
    } else {
        DnsError::Unavailable(err.to_string())
    }
}
