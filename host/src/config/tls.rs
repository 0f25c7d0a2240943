//! The HTTPS settings of `veneer serve` (`--tls` and what goes with it), a
//! group of [`super::ServeConfig`], and their checks at start. Owns nothing
//! else: serving is `tls`'s, ordering `app::certificates`'.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

/// Let's Encrypt's production directory.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// HTTPS settings.
#[derive(Debug, Clone, Args)]
pub struct TlsConfig {
    /// Serve HTTPS (on --tls-listen) with certificates chosen by SNI: the
    /// base domain's (--tls-cert/--tls-key, or ordered with ACME) and one per
    /// verified custom domain, ordered with ACME. --listen then answers ACME
    /// HTTP-01 challenges and redirects everything else to HTTPS. Without it,
    /// plain HTTP only (behind a TLS proxy: see docs/deployment.md).
    #[arg(long = "tls", env = "VENEER_TLS")]
    pub enabled: bool,

    /// Address HTTPS is served on (with --tls).
    #[arg(long, env = "VENEER_TLS_LISTEN", default_value = "0.0.0.0:443")]
    pub tls_listen: SocketAddr,

    /// PEM file with the base domain's certificate chain (typically
    /// `*.<base-domain>` and `<base-domain>`); with --tls-key. Unset: the base
    /// domain's certificate is ordered with ACME (for the base domain itself).
    #[arg(long, env = "VENEER_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM file with the private key of --tls-cert.
    #[arg(long, env = "VENEER_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// ACME directory certificates are ordered from.
    #[arg(long, env = "VENEER_ACME_DIRECTORY", default_value = LETS_ENCRYPT)]
    pub acme_directory: String,

    /// Contact email of the ACME account (the CA writes about expiring
    /// certificates and policy changes).
    #[arg(long, env = "VENEER_ACME_CONTACT")]
    pub acme_contact: Option<String>,

    /// PEM file with a root certificate to trust for the connection to the
    /// ACME directory, besides the system's (a private CA, or a test CA).
    #[arg(long, env = "VENEER_ACME_CA_ROOT")]
    pub acme_ca_root: Option<PathBuf>,

    /// `Strict-Transport-Security: max-age=<this>` on HTTPS answers; 0: no
    /// header. Once browsers have seen it they refuse plain HTTP to the host for
    /// that long: raise it only when HTTPS works for every name served.
    #[arg(long, env = "VENEER_HSTS_MAX_AGE", default_value_t = 0)]
    pub hsts_max_age: u64,

    /// Seconds before a failed certificate order is tried again; doubles
    /// with each failure in a row, up to six hours.
    #[arg(long, env = "VENEER_ACME_RETRY_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub acme_retry_secs: u64,

    /// How often each node looks for certificates to order or renew and for
    /// certificates other nodes stored, in milliseconds.
    #[arg(long, env = "VENEER_TLS_TICK_MS", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(100..))]
    pub tls_tick_ms: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            tls_listen: SocketAddr::from(([0, 0, 0, 0], 443)),
            tls_cert: None,
            tls_key: None,
            acme_directory: LETS_ENCRYPT.to_owned(),
            acme_contact: None,
            acme_ca_root: None,
            hsts_max_age: 0,
            acme_retry_secs: 60,
            tls_tick_ms: 5_000,
        }
    }
}

impl TlsConfig {
    /// The tick as a duration.
    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.tls_tick_ms.max(100))
    }

    /// The first pause after a failed order.
    pub fn acme_retry(&self) -> Duration {
        Duration::from_secs(self.acme_retry_secs.max(1))
    }

    /// Whether the base domain's certificate is ordered with ACME (no PEM given).
    pub fn orders_base(&self) -> bool {
        self.tls_cert.is_none()
    }

    /// Checks what can be checked before start: an error says which setting
    /// to fix.
    pub fn check(&self, listen: SocketAddr) -> Result<(), String> {
        if !self.enabled {
            return Ok(());
        }
        if self.tls_listen == listen && listen.port() != 0 {
            return Err(format!(
                "--tls-listen and --listen are both {listen}: HTTPS and the HTTP listener (ACME challenges, redirects) need two ports"
            ));
        }
        if !(self.acme_directory.starts_with("https://")
            || self.acme_directory.starts_with("http://"))
        {
            return Err(format!(
                "--acme-directory `{}` is not a URL; give the directory's https:// URL",
                self.acme_directory
            ));
        }
        if let Some(contact) = &self.acme_contact
            && !contact.contains('@')
        {
            return Err(format!(
                "--acme-contact `{contact}` is not an email address"
            ));
        }
        for (flag, path) in [
            ("--tls-cert", &self.tls_cert),
            ("--tls-key", &self.tls_key),
            ("--acme-ca-root", &self.acme_ca_root),
        ] {
            if let Some(path) = path
                && !path.is_file()
            {
                return Err(format!("{flag} {}: no such file", path.display()));
            }
        }
        Ok(())
    }
}
