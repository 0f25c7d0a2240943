//! The certificates one node serves, by SNI: the base domain and its tenant
//! subdomains get the base certificate (the operator's PEM, else the one
//! ordered for the base domain), a custom domain gets its own — only while it
//! routes for the tenant it was ordered for (`storage` serves no other) — and
//! any other name, or none, gets nothing: the handshake fails, so no name
//! ever sees a tenant's certificate that is not its own.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::app::certificates::key_aad;
use crate::certs::certified_key;
use crate::state::AppState;

/// The served certificates. Shared by the handshakes and the reload loop.
#[derive(Debug)]
pub struct Certificates {
    base_domain: String,
    base_pem: Option<Arc<CertifiedKey>>,
    /// Stored certificates by domain, with the stamp they were loaded at.
    stored: RwLock<HashMap<String, (i64, Arc<CertifiedKey>)>>,
}

impl Certificates {
    /// Serving `base_pem` (if given) for the base domain and its subdomains.
    pub fn new(base_domain: &str, base_pem: Option<Arc<CertifiedKey>>) -> Self {
        Self {
            base_domain: base_domain.trim_end_matches('.').to_ascii_lowercase(),
            base_pem,
            stored: RwLock::default(),
        }
    }

    /// The certificate served for SNI `name`, if any.
    pub fn for_name(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let stored = self.stored.read().unwrap_or_else(|p| p.into_inner());
        let under_base = name
            .strip_suffix(&self.base_domain)
            .is_some_and(|rest| rest.is_empty() || rest.ends_with('.'));
        if under_base {
            return self
                .base_pem
                .clone()
                .or_else(|| stored.get(&self.base_domain).map(|(_, k)| k.clone()));
        }
        stored.get(&name).map(|(_, k)| k.clone())
    }

    /// The names with a stored certificate loaded (sorted).
    pub fn loaded(&self) -> Vec<String> {
        let stored = self.stored.read().unwrap_or_else(|p| p.into_inner());
        let mut names: Vec<String> = stored.keys().cloned().collect();
        names.sort();
        names
    }

    /// Brings the stored certificates up to date with the database: loads
    /// new and changed ones, drops those no longer served. A certificate that
    /// does not open or parse is logged and the one loaded before kept.
    pub async fn refresh(&self, app: &AppState) -> Result<(), crate::app::Error> {
        let platform = app.storage.platform();
        let stamps = platform.served_certificate_stamps().await?;
        let changed: Vec<String> = {
            let stored = self.stored.read().unwrap_or_else(|p| p.into_inner());
            stamps
                .iter()
                .filter(|(domain, at)| stored.get(domain).is_none_or(|(had, _)| had != at))
                .map(|(domain, _)| domain.clone())
                .collect()
        };
        let mut loaded = Vec::new();
        for domain in changed {
            let Some(row) = platform.served_certificate(&domain).await? else {
                continue;
            };
            let key = match app.secrets.decrypt(&row.key_sealed, &key_aad(&row.domain)) {
                Ok(key) => key,
                Err(err) => {
                    tracing::error!(domain, %err, "a stored certificate key does not open");
                    continue;
                }
            };
            match certified_key(row.chain_pem.as_bytes(), &key) {
                Ok(certified) => loaded.push((row.domain, row.updated_at, certified)),
                Err(err) => tracing::error!(domain, %err, "a stored certificate cannot be served"),
            }
        }
        let mut stored = self.stored.write().unwrap_or_else(|p| p.into_inner());
        stored.retain(|domain, _| stamps.iter().any(|(d, _)| d == domain));
        for (domain, at, certified) in loaded {
            stored.insert(domain, (at, certified));
        }
        Ok(())
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.for_name(hello.server_name()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_for(name: &str) -> Arc<CertifiedKey> {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        certified_key(cert.pem().as_bytes(), key.serialize_pem().as_bytes()).unwrap()
    }

    #[test]
    fn names_get_their_own_certificate_or_none() {
        let base = key_for("*.veneer.test");
        let certs = Certificates::new("veneer.test", Some(base.clone()));
        let shop = key_for("shop.example");
        certs
            .stored
            .write()
            .unwrap()
            .insert("shop.example".into(), (1, shop.clone()));
        assert!(Arc::ptr_eq(&certs.for_name("veneer.test").unwrap(), &base));
        assert!(Arc::ptr_eq(
            &certs.for_name("ACME.veneer.test.").unwrap(),
            &base
        ));
        assert!(Arc::ptr_eq(&certs.for_name("shop.example").unwrap(), &shop));
        assert!(certs.for_name("other.example").is_none());
        assert!(
            certs.for_name("xveneer.test").is_none(),
            "not under the base"
        );
        assert!(certs.for_name("www.shop.example").is_none());
    }
}
